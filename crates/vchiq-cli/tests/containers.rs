//! Real container runtimes (issue 6, item 2): a *static* `vchiq` client inside runc and
//! bubblewrap containers, the daemon's socket directory bind-mounted at `/run/vchiq`, nothing
//! else shared with the host (no --pid=host, no devices, no host libraries).
//!
//! Every container process is PID 1 in its own PID namespace, yet the daemon attests its
//! *host* PID as the client id (SO_PEERCRED), so the KHAN posts of each swap reach it. With
//! `--legacy-pid` the client trusts `getpid()` (= 1) and freezes at the 4th swap, as in 2016.
//!
//! What the tests need: root (for runc), `runc`, `bwrap`, a static `/bin/busybox`
//! (busybox-static) and a static build of `vchiq` (built here once per run, into a target dir
//! of its own). Whatever is missing, or a runtime the machine refuses, makes a test skip with
//! a line saying why; containers, state and temporary directories are always cleaned up.

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::hello::{frames, khan_posts, value};
use common::*;

/// Frames each container renders.
const FRAMES: usize = 20;
/// Frames of each of the two concurrent runc containers: enough that the second is started
/// while the first still renders. 150 frames (under 200 ms once the stack got faster) were
/// sometimes done before `runc start` of the second returned (about 200 ms on a loaded
/// machine); 1,500 take well over a second.
const PAIR_FRAMES: usize = 1500;
/// Where the daemon's socket appears inside a container.
const SOCKET_DIR_IN: &str = "/run/vchiq";
const SOCKET_IN: &str = "/run/vchiq/vchiq.sock";
/// The daemon's display: small, so that the containers' frames are cheap.
const DAEMON_ARGS: &[&str] = &["--display-size", "640x480"];

fn skip(test: &str, why: &str) {
    common::cprog::skip(&format!("{test}: {why}"));
}

// ---------------------------------------------------------------------------------------
// The static client

/// The host target triple (`rustc -vV`), so that RUSTFLAGS do not reach build scripts and
/// proc macros (which cannot be linked statically).
fn host_triple() -> Result<String, String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .map_err(|e| format!("rustc -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| "rustc -vV printed no host triple".to_owned())
}

/// Builds `vchiq` with `+crt-static` once per test run; `Err` says why it could not.
fn static_vchiq() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(build_static_vchiq).clone()
}

fn build_static_vchiq() -> Result<PathBuf, String> {
    let triple = host_triple()?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("static-vchiq");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "building a static vchiq into {} (once per run)...",
        target_dir.display()
    );
    let t0 = Instant::now();
    let out = Command::new(cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "--offline",
            "--release",
            "--bin",
            "vchiq",
            "-p",
            "vchiq-cli",
            "--target",
            &triple,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        return Err(format!(
            "the static build failed ({}):\n{}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    let bin = target_dir.join(&triple).join("release").join("vchiq");
    match elf_interpreter(&bin) {
        Ok(None) => {}
        Ok(Some(interp)) => {
            return Err(format!(
                "{} is dynamic (interpreter {interp})",
                bin.display()
            ));
        }
        Err(e) => return Err(format!("{}: {e}", bin.display())),
    }
    eprintln!("static vchiq built in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(bin)
}

/// The ELF interpreter (PT_INTERP) of an x86-64/aarch64 (64-bit little-endian) executable:
/// `None` for a static (or static-pie) one.
fn elf_interpreter(path: &Path) -> std::io::Result<Option<String>> {
    let data = std::fs::read(path)?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
        return Err(bad("not a 64-bit little-endian ELF file"));
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if ph + 56 > data.len() {
            return Err(bad("truncated program headers"));
        }
        const PT_INTERP: u32 = 3;
        if u32_at(ph) == PT_INTERP {
            let (off, size) = (u64_at(ph + 8), u64_at(ph + 32));
            let raw = data
                .get(off..off + size)
                .ok_or_else(|| bad("truncated PT_INTERP"))?;
            return Ok(Some(
                String::from_utf8_lossy(raw)
                    .trim_end_matches('\0')
                    .to_owned(),
            ));
        }
    }
    Ok(None)
}

#[test]
fn the_static_client_is_static() {
    let bin = match static_vchiq() {
        Ok(b) => b,
        Err(why) => return skip("the_static_client_is_static", &why),
    };
    assert_eq!(elf_interpreter(&bin).unwrap(), None);
    // ldd agrees (its wording differs between static and static-pie; neither lists a library).
    if let Ok(out) = Command::new("ldd").arg(&bin).output() {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains("=>"), "ldd lists shared libraries: {text}");
        assert!(
            text.contains("statically linked") || text.contains("not a dynamic executable"),
            "{text}"
        );
    }
    // And it runs with an empty environment and no library path at all.
    let out = Command::new(&bin)
        .arg("--help")
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

// ---------------------------------------------------------------------------------------
// Root file systems

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "vchiq-ctr-{what}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Busybox, if a static one is installed (busybox-static); the dynamic one cannot run in an
/// empty root.
fn static_busybox() -> Result<PathBuf, String> {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        let p = PathBuf::from(p);
        if let Ok(None) = elf_interpreter(&p) {
            return Ok(p);
        }
    }
    Err("no static busybox (install busybox-static)".into())
}

/// A minimal root: busybox and its applet links, the static `vchiq` at `/vchiq`, and the
/// mount points the runtimes need (`/run/vchiq` for the daemon's socket directory).
fn make_rootfs(root: &Path, vchiq: &Path, busybox: &Path) -> std::io::Result<()> {
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc", "run/vchiq"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy(busybox, root.join("bin/busybox"))?;
    for applet in ["sh", "ls", "cat", "sleep", "echo", "ps"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    if std::fs::hard_link(vchiq, root.join("vchiq")).is_err() {
        std::fs::copy(vchiq, root.join("vchiq"))?;
    }
    Ok(())
}

/// Everything a container test needs, or why it cannot run.
struct Kit {
    vchiq: PathBuf,
    busybox: PathBuf,
}

fn kit(needs_root: bool, runtime: &str) -> Result<Kit, String> {
    if needs_root && !is_root() {
        return Err(format!(
            "{runtime} containers need root here (rootless runc needs a spec generated as that user)"
        ));
    }
    let probe = Command::new(runtime)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(probe, Ok(s) if s.success()) {
        return Err(format!(
            "{runtime} is not installed (Debian: apt-get install runc bubblewrap busybox-static)"
        ));
    }
    let busybox = static_busybox()?;
    let vchiq = static_vchiq()?;
    Ok(Kit { vchiq, busybox })
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Uid:")
                    .map(|r| r.split_whitespace().nth(1) == Some("0"))
            })
        })
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------
// Output

/// A line of output and when it arrived.
type Line = (Instant, String);

/// Reads a pipe's lines on a thread, stamping each with its arrival time.
fn line_reader(pipe: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<Line> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), l)).is_err() {
                break;
            }
        }
    });
    rx
}

/// Lines until EOF (`true`) or until nothing new arrives for `idle` (`false`).
fn collect(rx: &std::sync::mpsc::Receiver<Line>, idle: Duration) -> (Vec<String>, bool) {
    let (lines, eof) = collect_timed(rx, idle);
    (lines.into_iter().map(|(_, l)| l).collect(), eof)
}

fn collect_timed(rx: &std::sync::mpsc::Receiver<Line>, idle: Duration) -> (Vec<Line>, bool) {
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(idle) {
            Ok(l) => lines.push(l),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return (lines, true),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return (lines, false),
        }
    }
}

/// When the first and the last `frame K:` line arrived.
fn frame_span(lines: &[Line]) -> Option<(Instant, Instant)> {
    let mut t = lines
        .iter()
        .filter(|(_, l)| l.starts_with("frame "))
        .map(|(t, _)| *t);
    let first = t.next()?;
    Some((first, t.next_back().unwrap_or(first)))
}

/// The assertions every well-behaved container client must pass.
fn assert_rendered(who: &str, lines: &[String], host_pid: u32, n: usize) {
    assert_eq!(
        value(lines, "pid"),
        Some("1"),
        "{who} must be PID 1 in its namespace: {lines:?}"
    );
    assert_eq!(
        value(lines, "client_id"),
        Some(host_pid.to_string().as_str()),
        "{who}: the client id must be the container process's host PID: {lines:?}"
    );
    assert_eq!(frames(lines), n, "{who}: {lines:?}");
    assert_eq!(
        khan_posts(lines),
        Some(n),
        "{who}: one KHAN post per swap: {lines:?}"
    );
}

fn hello_args(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["/vchiq", "hello-triangle", "--progress"]
        .map(String::from)
        .to_vec();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

// ---------------------------------------------------------------------------------------
// runc

/// A runc container (`runc create`d, state in a private `--root`), killed and deleted on drop
/// together with its bundle.
struct Runc {
    name: String,
    state: PathBuf,
    /// Removed (dropped) after [`Drop::drop`] has deleted the container.
    _bundle: TempDir,
    /// The container's stdout and stderr (runc passes its own through, as `terminal` is false).
    out: std::sync::mpsc::Receiver<Line>,
    err: std::sync::mpsc::Receiver<Line>,
    /// The container process's host PID (`runc state`), known before it starts.
    pid: u32,
}

impl Runc {
    fn cmd(state: &Path) -> Command {
        let mut c = Command::new("runc");
        c.arg("--root").arg(state);
        c
    }

    /// Writes a bundle for `args` and `runc create`s it.
    fn create(
        kit: &Kit,
        state: &Path,
        tag: &str,
        socket_dir: &Path,
        args: Vec<String>,
    ) -> Result<Runc, String> {
        let bundle = TempDir::new(&format!("bundle-{tag}"));
        let rootfs = bundle.0.join("rootfs");
        make_rootfs(&rootfs, &kit.vchiq, &kit.busybox).expect("writing the rootfs");
        let out = Command::new("runc")
            .arg("spec")
            .arg("--bundle")
            .arg(&bundle.0)
            .output()
            .expect("runc spec");
        if !out.status.success() {
            return Err(format!(
                "runc spec failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let path = bundle.0.join("config.json");
        let mut spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        edit_spec(&mut spec, args, socket_dir);
        std::fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();

        let name = format!("vchiq-test-{}-{tag}", std::process::id());
        let mut create = Runc::cmd(state);
        create
            .arg("create")
            .arg("--bundle")
            .arg(&bundle.0)
            .arg(&name);
        let mut child = create
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runc create");
        let out = line_reader(child.stdout.take().unwrap());
        let err = line_reader(child.stderr.take().unwrap());
        let mut r = Runc {
            name,
            state: state.to_owned(),
            _bundle: bundle,
            out,
            err,
            pid: 0,
        };
        let status = wait_with_limit(&mut child, Duration::from_secs(60));
        if !matches!(status, Some(true)) {
            // runc's own complaint (cgroups, namespaces, seccomp...): the machine refused.
            let (why, _) = collect(&r.err, Duration::from_secs(2));
            return Err(format!(
                "runc create failed ({status:?}): {}",
                why.join("\n")
            ));
        }
        let out = r.runc(&["state", &r.name]).output().expect("runc state");
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("runc state: {e}: {}", String::from_utf8_lossy(&out.stderr))
        });
        assert_eq!(state["status"], "created", "{state}");
        r.pid = state["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .filter(|&p| p > 1)
            .expect("runc state pid");
        Ok(r)
    }

    fn runc(&self, args: &[&str]) -> Command {
        let mut c = Runc::cmd(&self.state);
        c.args(args).stdin(Stdio::null());
        c
    }

    fn start(&self) {
        let out = self
            .runc(&["start", &self.name])
            .output()
            .expect("runc start");
        assert!(
            out.status.success(),
            "runc start {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn status(&self) -> String {
        let out = self
            .runc(&["state", &self.name])
            .output()
            .expect("runc state");
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v["status"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "gone".into())
    }
}

impl Drop for Runc {
    fn drop(&mut self) {
        let _ = self
            .runc(&["kill", &self.name, "KILL"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self
            .runc(&["delete", "--force", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Waits for a child up to `limit`: `Some(success)`, or `None` after killing it.
fn wait_with_limit(child: &mut Child, limit: Duration) -> Option<bool> {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s.success());
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `runc spec`'s default, made to run `args` non-interactively with the daemon's socket
/// directory bind-mounted at /run/vchiq (the only thing shared with the host).
fn edit_spec(spec: &mut serde_json::Value, args: Vec<String>, socket_dir: &Path) {
    use serde_json::json;
    let process = &mut spec["process"];
    process["args"] = json!(args);
    process["terminal"] = json!(false);
    let env = process["env"].as_array_mut().expect("process.env");
    env.push(json!(format!("VCHIQ_SOCKET={SOCKET_IN}")));
    env.push(json!("RUST_BACKTRACE=1"));
    spec["root"] = json!({ "path": "rootfs", "readonly": false });
    let mounts = spec["mounts"].as_array_mut().expect("mounts");
    mounts.push(json!({
        "destination": SOCKET_DIR_IN,
        "type": "bind",
        "source": socket_dir.to_str().expect("utf-8 socket dir"),
        "options": ["rbind", "rw"],
    }));
    // No other change: the default spec's namespaces (pid, ipc, uts, mount, network),
    // capabilities, masked paths and cgroup all stay as a real deployment would have them.
    assert!(
        spec["linux"]["namespaces"]
            .as_array()
            .is_some_and(|ns| ns.iter().any(|n| n["type"] == "pid")),
        "runc's default spec has a PID namespace"
    );
}

/// A private runc state directory, removed on drop (after the containers: declare it first).
fn runc_state() -> TempDir {
    TempDir::new("runc-state")
}

fn no_khan_misses(d: &TestDaemon) {
    let (_, log, _) = d.run(&["log"], Duration::from_secs(20));
    assert!(!log.contains("No KHAN handle"), "{log}");
}

#[test]
fn two_runc_containers_at_once_both_pid_1_both_render() {
    const T: &str = "two_runc_containers_at_once_both_pid_1_both_render";
    let kit = match kit(true, "runc") {
        Ok(k) => k,
        Err(why) => return skip(T, &why),
    };
    let d = TestDaemon::start(DAEMON_ARGS);
    let state = runc_state();
    let frames = PAIR_FRAMES.to_string();
    // A: the client is the container's entry point. B: busybox sh execs it, as an image's
    // entry script would.
    let a_args = hello_args(&["--frames", &frames, "--region", "left"]);
    let b_args = vec![
        "/bin/sh".into(),
        "-c".into(),
        format!(
            "exec {}",
            hello_args(&["--frames", &frames, "--region", "right"]).join(" ")
        ),
    ];
    let a = match Runc::create(&kit, &state.0, "a", &d.dir, a_args) {
        Ok(c) => c,
        Err(why) => return skip(T, &why),
    };
    let b = match Runc::create(&kit, &state.0, "b", &d.dir, b_args) {
        Ok(c) => c,
        Err(why) => return skip(T, &why),
    };
    assert_ne!(a.pid, b.pid);
    // Both are created (their PID 1 waits in runc init); start them together.
    a.start();
    b.start();
    let (ta, ea) = collect_timed(&a.out, Duration::from_secs(60));
    let (tb, eb) = collect_timed(&b.out, Duration::from_secs(60));
    let (la, lb): (Vec<String>, Vec<String>) = (
        ta.iter().map(|(_, l)| l.clone()).collect(),
        tb.iter().map(|(_, l)| l.clone()).collect(),
    );
    let (ra, _) = collect(&a.err, Duration::from_millis(200));
    let (rb, _) = collect(&b.err, Duration::from_millis(200));
    assert!(
        ea && eb,
        "both containers must finish: A {la:?} {ra:?}; B {lb:?} {rb:?}"
    );
    assert_rendered(
        "container A",
        &[&la[..], &ra[..]].concat(),
        a.pid,
        PAIR_FRAMES,
    );
    assert_rendered(
        "container B",
        &[&lb[..], &rb[..]].concat(),
        b.pid,
        PAIR_FRAMES,
    );
    // They rendered at the same time: two PID 1s were clients of the daemon at once.
    let (a0, a1) = frame_span(&ta).unwrap();
    let (b0, b1) = frame_span(&tb).unwrap();
    assert!(
        a0 < b1 && b0 < a1,
        "the containers did not render concurrently (A {:?}..{:?}, B {:?}..{:?} after A's first frame)",
        Duration::ZERO,
        a1 - a0,
        b0.saturating_duration_since(a0),
        b1.saturating_duration_since(a0)
    );
    assert_ne!(value(&la, "client_id"), value(&lb, "client_id"));
    assert!(
        !ra.iter().chain(&rb).any(|l| l.contains("khan_callback")),
        "no KHAN message went astray: {ra:?} {rb:?}"
    );
    no_khan_misses(&d);
    assert_eq!(a.status(), "stopped");
    assert_eq!(b.status(), "stopped");
}

#[test]
fn runc_container_with_legacy_pid_stalls_at_the_fourth_swap() {
    const T: &str = "runc_container_with_legacy_pid_stalls_at_the_fourth_swap";
    let kit = match kit(true, "runc") {
        Ok(k) => k,
        Err(why) => return skip(T, &why),
    };
    let d = TestDaemon::start(DAEMON_ARGS);
    let state = runc_state();
    let args = hello_args(&["--frames", "30", "--legacy-pid"]);
    let c = match Runc::create(&kit, &state.0, "legacy", &d.dir, args) {
        Ok(c) => c,
        Err(why) => return skip(T, &why),
    };
    c.start();
    let (lines, exited) = collect(&c.out, Duration::from_secs(5));
    assert!(
        !exited,
        "a legacy client inside a container must stall, not finish: {lines:?}"
    );
    assert_eq!(c.status(), "running");
    let killed = c
        .runc(&["kill", &c.name, "KILL"])
        .output()
        .expect("runc kill");
    assert!(killed.status.success(), "{killed:?}");
    assert_eq!(value(&lines, "pid"), Some("1"));
    assert_eq!(
        value(&lines, "client_id"),
        Some(c.pid.to_string().as_str()),
        "{lines:?}"
    );
    // Three swaps complete on the three initial buffer counts; the 4th blocks forever.
    assert_eq!(frames(&lines), 3, "{lines:?}");
    let (_, log, _) = d.run(&["log"], Duration::from_secs(20));
    assert!(log.contains("*** No KHAN handle found for pid 1"), "{log}");
    drop(c);
}

// ---------------------------------------------------------------------------------------
// bubblewrap

#[test]
fn bubblewrap_pid_1_renders_with_its_host_pid_as_client_id() {
    const T: &str = "bubblewrap_pid_1_renders_with_its_host_pid_as_client_id";
    let kit = match kit(false, "bwrap") {
        Ok(k) => k,
        Err(why) => return skip(T, &why),
    };
    let d = TestDaemon::start(DAEMON_ARGS);
    let root = TempDir::new("bwrap-root");
    make_rootfs(&root.0, &kit.vchiq, &kit.busybox).expect("writing the rootfs");
    let frames = FRAMES.to_string();
    let mut cmd = Command::new("bwrap");
    cmd.args([
        "--unshare-pid",
        "--as-pid-1",
        "--die-with-parent",
        "--ro-bind",
    ])
    .arg(&root.0)
    .arg("/")
    .arg("--bind")
    .arg(&d.dir)
    .arg(SOCKET_DIR_IN)
    .args([
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--clearenv",
        "--setenv",
        "VCHIQ_SOCKET",
        SOCKET_IN,
    ])
    // bwrap writes {"child-pid": HOST_PID, ...} here: the host PID of the sandbox's PID 1.
    .args(["--info-fd", "2"])
    .args(hello_args(&["--frames", &frames]))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return skip(T, &format!("cannot run bwrap: {e}")),
    };
    let out = line_reader(child.stdout.take().unwrap());
    let err = line_reader(child.stderr.take().unwrap());
    let (lines, eof) = collect(&out, Duration::from_secs(60));
    let status = wait_with_limit(&mut child, Duration::from_secs(10));
    if !eof {
        let _ = Command::new("kill")
            .args(["-9", &format!("-{}", child.id())])
            .status();
        let _ = child.wait();
    }
    let (errs, _) = collect(&err, Duration::from_secs(2));
    if lines.is_empty() && errs.iter().any(|l| l.starts_with("bwrap:")) {
        return skip(T, &format!("bwrap refused: {}", errs.join("\n")));
    }
    assert!(
        eof && status == Some(true),
        "bwrap's client must finish: {lines:?} {errs:?}"
    );
    let host_pid = errs
        .iter()
        .find_map(|l| l.trim().strip_prefix("\"child-pid\": "))
        .and_then(|v| v.trim_end_matches(',').parse::<u32>().ok())
        .unwrap_or_else(|| panic!("no child-pid from --info-fd: {errs:?}"));
    assert_rendered("bwrap sandbox", &lines, host_pid, FRAMES);
    no_khan_misses(&d);
}

// ---------------------------------------------------------------------------------------
// systemd socket activation (packaging/systemd/vchiqd.socket)

#[test]
fn vchiqd_serves_a_socket_passed_by_systemd() {
    const T: &str = "vchiqd_serves_a_socket_passed_by_systemd";
    let probe = Command::new("systemd-socket-activate")
        .arg("--version")
        .output();
    if !matches!(&probe, Ok(o) if o.status.success()) {
        return skip(
            T,
            "systemd-socket-activate is not installed (Debian: systemd)",
        );
    }
    let dir = TempDir::new("activation");
    let activated = dir.0.join("activated.sock");
    let unused = dir.0.join("unused.sock");
    // As vchiqd.socket does: a SOCK_SEQPACKET listener, passed as fd 3 with LISTEN_FDS=1.
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.arg("--seqpacket")
        .arg("--listen")
        .arg(&activated)
        .arg(exe())
        .args(["daemon", "--display-size", "64x64", "--socket"])
        .arg(&unused)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut daemon = cmd.spawn().expect("systemd-socket-activate");
    let t0 = Instant::now();
    while !activated.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "systemd-socket-activate did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The first client starts the daemon, which accepts it on the inherited socket.
    let mut c = Command::new(exe());
    c.args(["gencmd", "measure_temp"])
        .env("VCHIQ_SOCKET", &activated);
    let (code, out, err) = run_with_limit(c, Duration::from_secs(30));
    let mut c = Command::new(exe());
    c.arg("status").env("VCHIQ_SOCKET", &activated);
    let (scode, status, _) = run_with_limit(c, Duration::from_secs(30));
    unsafe_free_kill(daemon.id(), 15);
    let stopped = wait_with_limit(&mut daemon, Duration::from_secs(20));
    let mut derr = String::new();
    let _ = std::io::Read::read_to_string(&mut daemon.stderr.take().unwrap(), &mut derr);
    assert_eq!(code, Some(0), "{out} {err} {derr}");
    assert!(out.starts_with("temp="), "{out}");
    assert_eq!(scode, Some(0));
    assert!(status.contains("instance"), "{status}");
    assert!(
        derr.contains(&format!("listening on {}", activated.display())),
        "{derr}"
    );
    assert!(
        !unused.exists(),
        "vchiqd bound its own socket instead of using fd 3"
    );
    assert_eq!(
        stopped,
        Some(true),
        "vchiqd must stop cleanly on SIGTERM: {derr}"
    );
}
