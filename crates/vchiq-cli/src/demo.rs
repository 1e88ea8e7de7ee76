//! `vchiq demo`: the seed story end to end on one machine.
//!
//! It starts vchiqd with the embedded VideoCore on a private socket, launches the Pi's two
//! demos — hello_triangle (OpenGL ES 1.1, left) and hello_triangle2 (OpenGL ES 2.0, right) —
//! each in a fresh PID namespace (both are PID 1 inside), lets them render, and reports
//! what the driver attested for each. With `--legacy-pid` the clients
//! put `getpid()` (1) in their make-current records, as userland did before 2016: the
//! VideoCore finds no KHAN service for pid 1, the posts are lost, and both clients stall
//! on their 4th swap — the freeze people saw in containers.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use vchiqd::{Daemon, DaemonOptions, VideoCoreOptions};

/// Options of `vchiq demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Reproduce the 2016 failure: clients use getpid() instead of GET_CLIENT_ID.
    #[arg(long)]
    legacy_pid: bool,
    /// Frames each client renders.
    #[arg(long, default_value_t = 180)]
    frames: u32,
    /// Output directory for PNG frames and the contact sheet.
    #[arg(long, default_value = "vchiq-demo")]
    out: PathBuf,
    /// Seconds without a new frame after which a client counts as stalled.
    #[arg(long, default_value_t = 5)]
    stall_seconds: u64,
}

/// How clients are isolated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// A new PID namespace (as root).
    PidNamespace,
    /// A new user and PID namespace (without root).
    UserAndPidNamespace,
    /// None: namespaces are not available here.
    None,
}

impl Isolation {
    fn describe(self) -> &'static str {
        match self {
            Isolation::PidNamespace => "a fresh PID namespace",
            Isolation::UserAndPidNamespace => "a fresh user + PID namespace (not root)",
            Isolation::None => "no namespace (namespaces are not available here)",
        }
    }
}

/// Options of the hidden `vchiq nsexec`.
#[derive(Args, Debug)]
pub struct NsExecArgs {
    /// Also create a user namespace (for unprivileged callers).
    #[arg(long)]
    user: bool,
    /// The program and its arguments.
    #[arg(trailing_var_arg = true, required = true)]
    command: Vec<String>,
}

/// `vchiq nsexec`: unshare a PID namespace, run the command as its PID 1, and exit with
/// its status (125 if the namespace could not be created).
pub fn nsexec(a: NsExecArgs) -> Result<ExitCode> {
    if let Err(e) = vchiqd::sys::unshare_pid_namespace(a.user) {
        eprintln!("vchiq nsexec: cannot create a PID namespace: {e}");
        return Ok(ExitCode::from(125));
    }
    let status = Command::new(&a.command[0])
        .args(&a.command[1..])
        .status()
        .with_context(|| format!("running {}", a.command[0]))?;
    Ok(ExitCode::from(status.code().map_or(128 + 9, |c| c as u8)))
}

/// Finds how to isolate clients here: runs `vchiq status --self`-like probes.
pub fn probe_isolation() -> Isolation {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(_) => return Isolation::None,
    };
    let tries: &[(Isolation, bool)] = if vchiqd::sys::geteuid() == 0 {
        &[
            (Isolation::PidNamespace, false),
            (Isolation::UserAndPidNamespace, true),
        ]
    } else {
        &[(Isolation::UserAndPidNamespace, true)]
    };
    for &(iso, user) in tries {
        let mut cmd = Command::new(&exe);
        cmd.arg("nsexec");
        if user {
            cmd.arg("--user");
        }
        cmd.arg("--").arg(&exe).arg("ns-pid");
        if let Ok(out) = cmd.stderr(Stdio::null()).output() {
            if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "1" {
                return iso;
            }
        }
    }
    Isolation::None
}

/// A command that runs `args` under the isolation.
pub fn isolated_command(iso: Isolation, exe: &Path, args: &[String]) -> Command {
    let mut cmd = Command::new(exe);
    match iso {
        Isolation::PidNamespace => {
            cmd.arg("nsexec").arg("--").arg(exe);
        }
        Isolation::UserAndPidNamespace => {
            cmd.arg("nsexec").arg("--user").arg("--").arg(exe);
        }
        Isolation::None => {}
    }
    cmd.args(args);
    // Its own process group, so that the whole namespace can be killed at once.
    cmd.process_group(0);
    cmd
}

#[derive(Default, Debug, Clone)]
struct ClientState {
    pid_inside: Option<u32>,
    client_id: Option<u32>,
    frames: u32,
    khan_posts: u64,
    last_frame: Option<Instant>,
    started: Option<Instant>,
    finished: Option<Instant>,
    summary: Option<String>,
    exited: Option<i32>,
    stalled: bool,
    errors: Vec<String>,
}

fn parse_line(st: &mut ClientState, line: &str) {
    let now = Instant::now();
    if let Some(v) = line.strip_prefix("pid: ") {
        st.pid_inside = v.trim().parse().ok();
    } else if let Some(v) = line.strip_prefix("client_id: ") {
        st.client_id = v.trim().parse().ok();
    } else if let Some(rest) = line.strip_prefix("frame ") {
        let k = rest
            .split(':')
            .next()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(st.frames + 1);
        st.frames = k;
        if let Some(p) = rest
            .rsplit("khan posts ")
            .next()
            .and_then(|s| s.trim().parse().ok())
        {
            st.khan_posts = p;
        }
        st.started.get_or_insert(now);
        st.last_frame = Some(now);
    } else if line.starts_with("window:") {
        st.started = Some(now);
        st.last_frame = Some(now);
    } else if line.starts_with("frames: ") {
        // The summary counts the posts that arrived after the last frame line too.
        if let Some(p) = line
            .rsplit("khan posts: ")
            .next()
            .and_then(|s| s.trim().parse().ok())
        {
            st.khan_posts = p;
        }
        st.summary = Some(line.to_owned());
        st.finished = Some(now);
    }
}

struct Running {
    name: String,
    child: Child,
    state: Arc<Mutex<ClientState>>,
    /// The stdout reader: joined once the child has exited, so that its last lines (the
    /// summary) are parsed before the table is printed.
    reader: Option<std::thread::JoinHandle<()>>,
}

fn spawn_client(iso: Isolation, exe: &Path, name: &str, args: Vec<String>) -> Result<Running> {
    let mut cmd = isolated_command(iso, exe, &args);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
    let state = Arc::new(Mutex::new(ClientState::default()));
    let out = child.stdout.take().context("client stdout")?;
    let err = child.stderr.take().context("client stderr")?;
    let st = state.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            parse_line(&mut st.lock().unwrap_or_else(|p| p.into_inner()), &line);
        }
    });
    let st = state.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            st.lock()
                .unwrap_or_else(|p| p.into_inner())
                .errors
                .push(line);
        }
    });
    Ok(Running {
        name: name.to_owned(),
        child,
        state,
        reader: Some(reader),
    })
}

fn bar(done: u32, total: u32, width: usize) -> String {
    let filled = if total == 0 {
        0
    } else {
        (done.min(total) as usize * width) / total as usize
    };
    format!("[{}{}]", "#".repeat(filled), " ".repeat(width - filled))
}

pub fn run(a: DemoArgs) -> Result<ExitCode> {
    let exe = std::env::current_exe().context("finding this program")?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let out = a.out.canonicalize()?;
    let run_dir = std::env::temp_dir().join(format!("vchiq-demo-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir)?;
    // Stopped by SIGINT/SIGTERM, the demo leaves no socket directory behind (the normal
    // exit removes it below).
    let doomed = run_dir.clone();
    crate::signals::on_termination(move || {
        let _ = std::fs::remove_dir_all(&doomed);
    });
    let socket = run_dir.join("vchiq.sock");

    println!(
        "vchiq demo: hello_triangle (GLES 1.1) and hello_triangle2 (GLES 2.0) in two PID namespaces, one software VideoCore"
    );
    println!(
        "mode: {}",
        if a.legacy_pid {
            "--legacy-pid: clients put getpid() in make-current records (the 2016 bug)"
        } else {
            "clients use GET_CLIENT_ID, the id the driver attests (the 2016 fix)"
        }
    );
    let mut opts = DaemonOptions::new(socket.clone());
    opts.socket_group = None;
    // Two square windows side by side: each cube is framed as the original frames it.
    opts.vc = VideoCoreOptions {
        display_width: 1920,
        display_height: 960,
        ..VideoCoreOptions::default()
    };
    let daemon = Daemon::start(&opts).context("starting vchiqd")?;
    let vc = daemon.videocore().context("embedded VideoCore")?;
    let vc_log = vc.log().clone();
    let framebuffer: Result<_> = Ok(vc.snapshotter());
    let stopper = daemon.stopper();
    let driver = daemon.driver().clone();
    let daemon_thread = std::thread::spawn(move || daemon.run(None));
    println!(
        "vchiqd: listening on {} (VideoCore embedded, display 1920x960)",
        socket.display()
    );

    let iso = probe_isolation();
    println!("isolation: each client runs in {}", iso.describe());

    let mut clients = Vec::new();
    for (i, region, command) in [
        (1, "left", "hello-triangle"),
        (2, "right", "hello-triangle2"),
    ] {
        let dir = out.join(format!("client-{i}"));
        let _ = std::fs::remove_dir_all(&dir);
        let mut args: Vec<String> = vec![
            command.into(),
            "--socket".into(),
            socket.display().to_string(),
            "--frames".into(),
            a.frames.to_string(),
            "--region".into(),
            region.into(),
            "--progress".into(),
            "--png".into(),
            dir.display().to_string(),
            "--png-every".into(),
            (a.frames / 4).max(1).to_string(),
        ];
        if a.legacy_pid {
            args.push("--legacy-pid".into());
        }
        clients.push(spawn_client(iso, &exe, &format!("client {i}"), args)?);
    }

    // Progress until both are done, or stalled.
    let tty = std::io::stdout().is_terminal();
    let stall = Duration::from_secs(a.stall_seconds);
    let begin = Instant::now();
    let mut last_print = Instant::now() - Duration::from_secs(10);
    loop {
        let mut all_done = true;
        for c in &mut clients {
            let exited = c.child.try_wait()?.map(|s| s.code().unwrap_or(-1));
            if let Some(code) = exited {
                if let Some(r) = c.reader.take() {
                    let _ = r.join();
                }
                c.state.lock().unwrap_or_else(|p| p.into_inner()).exited = Some(code);
                continue;
            }
            let mut st = c.state.lock().unwrap_or_else(|p| p.into_inner());
            let idle = st.last_frame.map_or(begin.elapsed(), |t| t.elapsed());
            if idle
                > stall
                    + if st.last_frame.is_none() {
                        Duration::from_secs(20)
                    } else {
                        Duration::ZERO
                    }
            {
                st.stalled = true;
                vchiqd::sys::kill_process_group(c.child.id(), libc::SIGKILL);
                let _ = c.child.wait();
                st.exited = Some(-9);
                continue;
            }
            all_done = false;
        }
        if tty || last_print.elapsed() > Duration::from_secs(3) || all_done {
            let line: Vec<String> = clients
                .iter()
                .map(|c| {
                    let st = c.state.lock().unwrap_or_else(|p| p.into_inner());
                    let tag = if st.stalled { " STALLED" } else { "" };
                    format!(
                        "{} {} {:>3}/{}{}",
                        c.name,
                        bar(st.frames, a.frames, 20),
                        st.frames,
                        a.frames,
                        tag
                    )
                })
                .collect();
            if tty {
                print!("\r{}   ", line.join("   "));
                let _ = std::io::stdout().flush();
            } else {
                println!("{}", line.join("   "));
            }
            last_print = Instant::now();
        }
        if all_done {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if tty {
        println!();
    }

    // The display as the VideoCore composed it, then stop the daemon.
    let states: Vec<(String, ClientState)> = clients
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                c.state.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            )
        })
        .collect();
    let status_dump = driver.dump();
    let log = vc_log.render();
    let display_png = out.join("display.png");
    if let Err(e) =
        framebuffer.and_then(|f| f().write_png(&display_png).map_err(anyhow::Error::from))
    {
        eprintln!("display snapshot: {e:#}");
    }
    stopper.stop();
    let _ = daemon_thread.join();
    let _ = std::fs::remove_dir_all(&run_dir);

    let sheet = out.join("contact-sheet.png");
    let sheet_ok = match contact_sheet(&out, &sheet) {
        Ok(n) if n > 0 => {
            println!(
                "frames: {}/client-*/frame-*.png; contact sheet: {} ({n} frames); display: {}",
                out.display(),
                sheet.display(),
                out.join("display.png").display()
            );
            true
        }
        Ok(_) => false,
        Err(e) => {
            eprintln!("contact sheet: {e:#}");
            false
        }
    };

    println!();
    println!(
        "{:<10} {:>10} {:>12} {:>8} {:>11} {:>8}",
        "client", "PID inside", "client id", "frames", "KHAN posts", "fps"
    );
    for (name, st) in &states {
        let fps = match (st.started, st.last_frame) {
            (Some(s), Some(l)) if st.frames > 1 && l > s => {
                format!("{:.1}", f64::from(st.frames) / (l - s).as_secs_f64())
            }
            _ => "-".into(),
        };
        println!(
            "{:<10} {:>10} {:>12} {:>8} {:>11} {:>8}{}",
            name,
            st.pid_inside.map_or("?".into(), |p| p.to_string()),
            st.client_id.map_or("?".into(), |p| p.to_string()),
            st.frames,
            st.khan_posts,
            fps,
            if st.stalled { "  (stalled)" } else { "" }
        );
    }
    println!();
    println!("vcdbg log msg:");
    for line in log.lines() {
        println!("  {line}");
    }
    if std::env::var_os("VCHIQ_DEMO_STATUS").is_some() {
        println!("\n{status_dump}");
    }
    for (name, st) in &states {
        for e in st.errors.iter().take(5) {
            eprintln!("{name}: {e}");
        }
    }

    let complete = states
        .iter()
        .all(|(_, st)| st.frames >= a.frames && !st.stalled && st.exited == Some(0));
    let stalled = states.iter().filter(|(_, st)| st.stalled).count();
    println!();
    if a.legacy_pid {
        if stalled > 0 {
            println!(
                "As in 2016: {stalled} client(s) froze after 3 frames. getpid() inside a PID namespace is 1, but"
            );
            println!(
                "the driver told the VideoCore each client's host PID, so no KHAN handle matched and no swap completed."
            );
        } else {
            println!(
                "Unexpected: the legacy clients did not stall (are the PID namespaces missing?)"
            );
        }
        return Ok(ExitCode::from(1));
    }
    if !complete {
        bail!("the demo did not complete: see the table above and the VideoCore log");
    }
    let _ = sheet_ok;
    println!(
        "Both clients are PID 1 in their namespaces, yet each was told apart by the client id the driver"
    );
    println!("attested (its host PID), and every swap got its KHAN post.");
    Ok(ExitCode::SUCCESS)
}

/// Prints the caller's PID as it sees it (used to probe namespaces).
pub fn ns_pid() -> Result<ExitCode> {
    println!("{}", std::process::id());
    Ok(ExitCode::SUCCESS)
}

fn read_png(path: &Path) -> Result<vc_gles::Image> {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path)?));
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().context("PNG too large")?];
    let info = reader.next_frame(&mut buf)?;
    let (w, h) = (info.width, info.height);
    let mut img = vc_gles::Image::new(w, h);
    let channels = info.color_type.samples();
    for (i, px) in img.pixels.iter_mut().enumerate() {
        let s = &buf[i * channels..];
        let (r, g, b, a) = match channels {
            4 => (s[0], s[1], s[2], s[3]),
            3 => (s[0], s[1], s[2], 255),
            _ => (s[0], s[0], s[0], 255),
        };
        *px = u32::from_le_bytes([r, g, b, a]);
    }
    Ok(img)
}

/// Builds a grid of the saved frames (rows: clients, columns: frames), each scaled to
/// 320 pixels wide. Returns the number of frames placed.
fn contact_sheet(out: &Path, file: &Path) -> Result<usize> {
    let mut rows: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(out)? {
        let dir = entry?.path();
        if dir.is_dir()
            && dir
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("client-"))
        {
            let mut frames: Vec<PathBuf> = std::fs::read_dir(&dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "png"))
                .collect();
            frames.sort();
            rows.insert(
                dir.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                frames,
            );
        }
    }
    let cols = rows.values().map(Vec::len).max().unwrap_or(0);
    if cols == 0 {
        return Ok(0);
    }
    // Cells 320 pixels wide, with the frames' aspect ratio.
    let first = rows
        .values()
        .flatten()
        .next()
        .map(|p| read_png(p))
        .transpose()?;
    let (fw, fh) = first.map_or((1, 1), |i| (i.width.max(1), i.height.max(1)));
    let (tw, th, pad) = (320u32, (320 * fh / fw).max(1), 8u32);
    let mut sheet = vc_gles::Image::new(
        pad + cols as u32 * (tw + pad),
        pad + rows.len() as u32 * (th + pad),
    );
    for px in sheet.pixels.iter_mut() {
        *px = u32::from_le_bytes([24, 24, 24, 255]);
    }
    let mut placed = 0;
    for (r, frames) in rows.values().enumerate() {
        for (c, path) in frames.iter().enumerate() {
            let img = read_png(path)?;
            let (x0, y0) = (pad + c as u32 * (tw + pad), pad + r as u32 * (th + pad));
            for y in 0..th {
                for x in 0..tw {
                    let sx = (x as u64 * img.width as u64 / tw as u64) as u32;
                    let sy = (y as u64 * img.height as u64 / th as u64) as u32;
                    let v = img.pixels[(sy * img.width + sx) as usize];
                    sheet.pixels[((y0 + y) * sheet.width + x0 + x) as usize] = v;
                }
            }
            placed += 1;
        }
    }
    sheet
        .write_png(file)
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(placed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_lines_are_parsed() {
        let mut st = ClientState::default();
        for l in [
            "pid: 1",
            "client_id: 4242",
            "window: element 19 960x960 at x=0",
            "frame 1: 3.10 ms, khan posts 0",
            "frame 2: 3.20 ms, khan posts 1",
            "frames: 2 in 0.01 s (200.0 fps); per frame: min 3.10 ms, median 3.20 ms, p95 3.20 ms, max 3.20 ms; khan posts: 2",
        ] {
            parse_line(&mut st, l);
        }
        assert_eq!(
            (st.pid_inside, st.client_id, st.frames, st.khan_posts),
            (Some(1), Some(4242), 2, 2)
        );
        assert!(st.summary.is_some());
    }
}
