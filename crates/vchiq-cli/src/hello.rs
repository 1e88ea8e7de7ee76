//! `vchiq hello-triangle`: the Raspberry Pi's hello_triangle through the whole stack.
//!
//! The call sequence is the original's: `bcm_host_init` (GCMD, DISP, UPDH, TVSV, TVNT,
//! CECS, CECN; the two TV queries; `set_vll_dir`), EGL and dispmanx set-up, six textures,
//! then one frame per loop iteration with an `eglSwapBuffers` that waits for the
//! VideoCore's KHAN post, exactly as the real client does. With `--legacy-pid` the client
//! writes `getpid()` into its make-current records, as userland did before 2016: inside a
//! PID namespace the VideoCore then finds no KHAN service for that pid, and the 4th swap
//! blocks forever.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use khronos::egl::NativeWindow;
use khronos::hello_triangle::Cube;
use khronos::{PidSource, egl, gles::Gl};
use vchiq::{Instance, Service};
use vchiq_abi::fourcc::FourCc;

use crate::daemon::socket_path;
use crate::tools::{gencmd_request, open_queue, vcdb_png};

/// Which part of the display the window covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Region {
    /// The whole display, as the original.
    Full,
    /// The left half (for side-by-side demos).
    Left,
    /// The right half.
    Right,
}

/// Options of `vchiq hello-triangle`.
#[derive(Args, Debug)]
pub struct HelloArgs {
    /// Socket path (default: $VCHIQ_SOCKET or the standard path).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Frames to render (the original never stops; 0 = run until killed).
    #[arg(long, default_value_t = 300)]
    frames: u32,
    /// Save this client's frames as PNG files in DIR (see --png-every).
    #[arg(long, value_name = "DIR")]
    png: Option<PathBuf>,
    /// With --png: save frames 1, 1+N, 1+2N, ... and the last one.
    #[arg(long, default_value_t = 1, value_name = "N")]
    png_every: u32,
    /// Reproduce the 2016 bug: put getpid() (the namespaced PID) in make-current records
    /// instead of the client id the driver attests (also VCHIQ_LEGACY_PID=1).
    #[arg(long)]
    legacy_pid: bool,
    /// The part of the display to cover.
    #[arg(long, value_enum, default_value_t = Region::Full)]
    region: Region,
    /// Print one line per frame.
    #[arg(long)]
    progress: bool,
    /// Write this number as the pid in make-current records (tests of the VideoCore's
    /// KHAN routing: a forged pid must never wake another client).
    #[arg(long, hide = true, value_name = "PID")]
    forge_pid: Option<u64>,
}

/// A minimal dispmanx client (what `vc_dispmanx_*` send on DISP, spec §4.2).
struct Dispmanx {
    svc: Service,
}

impl Dispmanx {
    fn call(&self, cmd: u32, params: &[u32]) -> Result<Vec<u8>> {
        let head = cmd.to_le_bytes();
        let body: Vec<u8> = params.iter().flat_map(|w| w.to_le_bytes()).collect();
        self.svc.use_service()?;
        self.svc.queue_message_vectored(&[&head, &body])?;
        let reply = if cmd & 0x8000_0000 == 0 { self.svc.dequeue(true)? } else { Vec::new() };
        self.svc.release_service()?;
        Ok(reply)
    }

    fn word(&self, cmd: u32, params: &[u32]) -> Result<u32> {
        let r = self.call(cmd, params)?;
        let b = r.get(..4).with_context(|| format!("dispmanx command {cmd}: short reply"))?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// What `bcm_host_init` does before a program draws.
fn bcm_host_init(inst: &Instance) -> Result<(Dispmanx, Vec<Service>)> {
    let gcmd = open_queue(inst, FourCc::GCMD, 1)?;
    let disp = open_queue(inst, FourCc::DISP, 1)?;
    let updh = open_queue(inst, FourCc::UPDH, 1)?;
    let tvsv = open_queue(inst, FourCc::TVSV, 1)?;
    let tvnt = open_queue(inst, FourCc::TVNT, 1)?;
    for (svc, req) in [(&tvsv, vec![26u32]), (&tvsv, vec![0x8000_0017, 2])] {
        let bytes: Vec<u8> = req.iter().flat_map(|w| w.to_le_bytes()).collect();
        svc.queue_message(&bytes)?;
        svc.dequeue(true).context("TV service query")?;
    }
    let cecs = open_queue(inst, FourCc::CECS, 1)?;
    let cecn = open_queue(inst, FourCc::CECN, 1)?;
    drop(gcmd);
    gencmd_request(inst, &["set_vll_dir".into(), "/sd/vlls".into()])?;
    Ok((Dispmanx { svc: disp }, vec![updh, tvsv, tvnt, cecs, cecn]))
}


pub fn run(a: HelloArgs) -> Result<ExitCode> {
    let pid_source = match (a.forge_pid, a.legacy_pid) {
        (Some(pid), _) => PidSource::Forged(pid),
        (None, true) => PidSource::LegacyGetpid,
        (None, false) => PidSource::from_env(),
    };
    let inst = Instance::connect_to(socket_path(a.socket.clone()))?;
    let hello = inst.hello();
    println!("pid: {}", std::process::id());
    println!("client_id: {}", hello.client_id);
    let source = match pid_source {
        PidSource::ClientId => "GET_CLIENT_ID".to_owned(),
        PidSource::LegacyGetpid => "getpid (legacy)".to_owned(),
        PidSource::Forged(p) => format!("forged ({p})"),
    };
    println!("pid_source: {source}");

    let (disp, _others) = bcm_host_init(&inst)?;
    let client = crate::khronos_link::attach(&inst, pid_source)?;
    let display = egl::get_display(&client);
    display.initialize()?;
    let configs = display.choose_config(&[
        egl::RED_SIZE,
        8,
        egl::GREEN_SIZE,
        8,
        egl::BLUE_SIZE,
        8,
        egl::ALPHA_SIZE,
        8,
        egl::SURFACE_TYPE,
        egl::WINDOW_BIT,
        egl::NONE,
    ])?;
    let config = configs.first().context("no EGL config matches RGBA8888 window")?.clone();
    let context = display.create_context(&config, 1)?;

    // graphics_get_display_size(0): open, get info, close.
    let d = disp.word(8, &[0])?;
    let info = disp.call(14, &[d])?;
    disp.call(0x8000_000f, &[d])?;
    if info.len() < 12 {
        bail!("DisplayGetInfo returned {} bytes", info.len());
    }
    let dw = u32::from_le_bytes([info[4], info[5], info[6], info[7]]);
    let dh = u32::from_le_bytes([info[8], info[9], info[10], info[11]]);
    let (x, w) = match a.region {
        Region::Full => (0, dw),
        Region::Left => (0, dw / 2),
        Region::Right => (dw / 2, dw - dw / 2),
    };
    let display_handle = disp.word(8, &[0])?;
    let update = disp.word(16, &[0])?;
    let mut add = vec![update, display_handle, 0, x, 0, w, dh, 0, 0, 0, w << 16, dh << 16];
    add.extend_from_slice(&[0; 14]);
    let element = disp.word(19, &add)?;
    let status = disp.word(18, &[update])?;
    if status != 0 {
        bail!("dispmanx update_submit_sync failed ({status})");
    }
    let window = NativeWindow { element, width: w, height: dh };
    let surface = display.create_window_surface(&config, &window)?;
    display.make_current(Some(&surface), Some(&surface), Some(&context))?;
    println!("window: element {element} {w}x{dh} at x={x}");

    let gl = Gl::new(&client);
    let mut cube = Cube::new(w, dh);
    cube.setup(&gl)?;
    if let Some(dir) = &a.png {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut times = Vec::new();
    let start = Instant::now();
    let mut k = 1u32;
    loop {
        let t0 = Instant::now();
        cube.frame(&gl, k)?;
        display.swap_buffers(&surface)?;
        let dt = t0.elapsed();
        times.push(dt);
        if a.progress {
            println!("frame {k}: {:.2} ms, khan posts {}", dt.as_secs_f64() * 1e3, client.stats().khan_posts);
        }
        if let Some(dir) = &a.png {
            let last = a.frames != 0 && k == a.frames;
            if (k - 1) % a.png_every.max(1) == 0 || last {
                if let Some(png) = vcdb_png(&inst, &format!("element {element}"))? {
                    let path = dir.join(format!("frame-{k:04}.png"));
                    std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
                }
            }
        }
        if a.frames != 0 && k >= a.frames {
            break;
        }
        k += 1;
    }
    let total = start.elapsed();
    // The posts for the last frames are still in flight: the VideoCore posts as soon as
    // it has presented, so give them a moment before reporting.
    let waited = Instant::now();
    while client.stats().khan_posts < u64::from(k) && waited.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = client.stats();
    summarize(&times, total, stats.khan_posts);
    Ok(ExitCode::SUCCESS)
}

fn summarize(times: &[Duration], total: Duration, posts: u64) {
    if times.is_empty() {
        return;
    }
    let mut ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    println!(
        "frames: {} in {:.2} s ({:.1} fps); per frame: min {:.2} ms, median {:.2} ms, p95 {:.2} ms, max {:.2} ms; khan posts: {}",
        times.len(),
        total.as_secs_f64(),
        times.len() as f64 / total.as_secs_f64(),
        ms[0],
        pct(0.5),
        pct(0.95),
        ms[ms.len() - 1],
        posts
    );
}

/// `vchiq bench render`: the hello_triangle scene at 1920x1080.
pub fn bench_render(frames: u32) -> Result<()> {
    let _ = frames;
    bail!("vchiq bench render is not available yet")
}
