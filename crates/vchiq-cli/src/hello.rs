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
use khronos::hello_triangle2::{Fractals, OFFSET};
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
        let reply = if cmd & 0x8000_0000 == 0 {
            self.svc.dequeue(true)?
        } else {
            Vec::new()
        };
        self.svc.release_service()?;
        Ok(reply)
    }

    fn word(&self, cmd: u32, params: &[u32]) -> Result<u32> {
        let r = self.call(cmd, params)?;
        let b = r
            .get(..4)
            .with_context(|| format!("dispmanx command {cmd}: short reply"))?;
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

/// Which of the Pi's two demos a client runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scene {
    /// hello_triangle: the textured cube, OpenGL ES 1.1.
    Cube,
    /// hello_triangle2: the Mandelbrot and Julia fractals drawn by fragment shaders,
    /// OpenGL ES 2.0.
    Fractals,
}

impl Scene {
    fn gles_version(self) -> u32 {
        match self {
            Scene::Cube => 1,
            Scene::Fractals => 2,
        }
    }
}

/// A scene set up on a context.
enum LiveScene {
    Cube(Box<Cube>),
    Fractals(Box<Fractals>),
}

impl LiveScene {
    fn setup(scene: Scene, gl: &Gl, width: u32, height: u32) -> Result<LiveScene> {
        Ok(match scene {
            Scene::Cube => {
                let mut cube = Cube::new(width, height);
                cube.setup(gl)?;
                LiveScene::Cube(Box::new(cube))
            }
            Scene::Fractals => {
                let mut f = Fractals::new(width, height);
                f.setup(gl)?;
                LiveScene::Fractals(Box::new(f))
            }
        })
    }

    fn frame(&self, gl: &Gl, k: u32) -> Result<()> {
        match self {
            LiveScene::Cube(c) => c.frame(gl, k)?,
            // The demo's Julia constant follows the pointer; without one it stays put.
            LiveScene::Fractals(f) => f.frame(gl, OFFSET)?,
        }
        Ok(())
    }
}

pub fn run(a: HelloArgs, scene: Scene) -> Result<ExitCode> {
    let pid_source = match (a.forge_pid, a.legacy_pid) {
        (Some(pid), _) => PidSource::Forged(pid),
        (None, true) => PidSource::LegacyGetpid,
        (None, false) => PidSource::from_env(),
    };
    let opts = ClientOptions {
        socket: socket_path(a.socket.clone()),
        frames: a.frames,
        pid_source,
        region: a.region,
        png: a.png.clone().map(|dir| (dir, a.png_every)),
        progress: a.progress,
        verbose: true,
        scene,
    };
    let t = run_client(&opts)?;
    summarize(&t.times, t.total, t.khan_posts);
    Ok(ExitCode::SUCCESS)
}

/// What [`run_client`] does: the hello_triangle client flow against a daemon.
pub struct ClientOptions {
    /// The daemon's socket.
    pub socket: PathBuf,
    /// Frames to render (0 = until killed).
    pub frames: u32,
    /// Which pid goes into make-current records.
    pub pid_source: PidSource,
    /// The part of the display the window covers.
    pub region: Region,
    /// Save frames 1, 1+N, … and the last one as PNG files in this directory.
    pub png: Option<(PathBuf, u32)>,
    /// Print one line per frame.
    pub progress: bool,
    /// Print the client's identity and window (as `vchiq hello-triangle` does).
    pub verbose: bool,
    /// The demo to run.
    pub scene: Scene,
}

/// What [`run_client`] measured.
pub struct ClientTimings {
    /// Per frame: from the start of the frame's GL calls to the return of its swap.
    pub times: Vec<Duration>,
    /// The whole frame loop.
    pub total: Duration,
    /// KHAN posts received.
    pub khan_posts: u64,
    /// The window size.
    pub size: (u32, u32),
}

/// The hello_triangle client: `bcm_host_init`, EGL and dispmanx set-up, six textures, then
/// one frame per iteration with a swap that waits for the VideoCore's KHAN post.
pub fn run_client(o: &ClientOptions) -> Result<ClientTimings> {
    let pid_source = o.pid_source;
    let inst = crate::tools::connect(Some(o.socket.clone()))?;
    let hello = inst.hello();
    if o.verbose {
        println!("pid: {}", std::process::id());
        println!("client_id: {}", hello.client_id);
        let source = match pid_source {
            PidSource::ClientId => "GET_CLIENT_ID".to_owned(),
            PidSource::LegacyGetpid => "getpid (legacy)".to_owned(),
            PidSource::Forged(p) => format!("forged ({p})"),
        };
        println!("pid_source: {source}");
    }

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
    let config = *configs
        .first()
        .context("no EGL config matches RGBA8888 window")?;
    let context = display.create_context(&config, o.scene.gles_version())?;

    // graphics_get_display_size(0): open, get info, close.
    let d = disp.word(8, &[0])?;
    let info = disp.call(14, &[d])?;
    disp.call(0x8000_000f, &[d])?;
    if info.len() < 12 {
        bail!("DisplayGetInfo returned {} bytes", info.len());
    }
    let dw = u32::from_le_bytes([info[4], info[5], info[6], info[7]]);
    let dh = u32::from_le_bytes([info[8], info[9], info[10], info[11]]);
    let (x, w) = match o.region {
        Region::Full => (0, dw),
        Region::Left => (0, dw / 2),
        Region::Right => (dw / 2, dw - dw / 2),
    };
    let display_handle = disp.word(8, &[0])?;
    let update = disp.word(16, &[0])?;
    let mut add = vec![
        update,
        display_handle,
        0,
        x,
        0,
        w,
        dh,
        0,
        0,
        0,
        w << 16,
        dh << 16,
    ];
    add.extend_from_slice(&[0; 14]);
    let element = disp.word(19, &add)?;
    let status = disp.word(18, &[update])?;
    if status != 0 {
        bail!("dispmanx update_submit_sync failed ({status})");
    }
    let window = NativeWindow {
        element,
        width: w,
        height: dh,
    };
    let surface = display.create_window_surface(&config, &window)?;
    display.make_current(Some(&surface), Some(&surface), Some(&context))?;
    if o.verbose {
        println!("window: element {element} {w}x{dh} at x={x}");
    }

    let gl = Gl::new(&client);
    let scene = LiveScene::setup(o.scene, &gl, w, dh)?;
    if let Some((dir, _)) = &o.png {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut times = Vec::new();
    let start = Instant::now();
    let mut k = 1u32;
    loop {
        let t0 = Instant::now();
        scene.frame(&gl, k)?;
        display.swap_buffers(&surface)?;
        let dt = t0.elapsed();
        times.push(dt);
        if o.progress {
            println!(
                "frame {k}: {:.2} ms, khan posts {}",
                dt.as_secs_f64() * 1e3,
                client.stats().khan_posts
            );
        }
        if let Some((dir, every)) = &o.png {
            let last = o.frames != 0 && k == o.frames;
            if (k - 1) % (*every).max(1) == 0 || last {
                if let Some(png) = vcdb_png(&inst, &format!("element {element}"))? {
                    let path = dir.join(format!("frame-{k:04}.png"));
                    std::fs::write(&path, png)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
            }
        }
        if o.frames != 0 && k >= o.frames {
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
    Ok(ClientTimings {
        times,
        total,
        khan_posts: stats.khan_posts,
        size: (w, dh),
    })
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

/// `vchiq bench render`: frames per second of the hello_triangle scene at 1920x1080, for
/// the renderer alone (vc-gles called directly) and through the whole stack (a private
/// in-process daemon and the hello_triangle client), each beside the same scene rendered
/// by the system's OpenGL ES 1.1 (Mesa llvmpipe) through EGL surfaceless, measured in the
/// same run by a small C program (`bench_render.c`) built with the system `cc`.
pub fn bench_render(frames: u32) -> Result<()> {
    let frames = frames.max(1);
    let (w, h) = (BENCH_WIDTH, BENCH_HEIGHT);
    let size = format!("{w}x{h}");
    let images = khronos::hello_triangle::textures();

    let mesa = mesa_baseline(frames, &images);
    if let Ok(m) = &mesa {
        eprintln!(
            "baseline: {} through EGL surfaceless (OpenGL ES 1.1, FBO, glReadPixels per frame)",
            m.renderer
        );
    }

    let (alone, ours_frame1) = render_alone(frames, &images);
    let line = |name: &str, fps: f64| match &mesa {
        Ok(m) => crate::bench::figure(&format!("render {name} {size}"), fps, m.fps, "fps"),
        Err(_) => println!("render {name} {size}: {} fps", crate::bench::fmt(fps)),
    };
    line("renderer alone", alone);
    if let Ok(m) = &mesa {
        if let Some(theirs) = &m.frame1 {
            eprintln!(
                "same scene: frame 1 of vc-gles and of the baseline agree on {:.2}% of pixels (within ±2 per channel)",
                agreement(&ours_frame1, theirs)
            );
        }
    }

    let stack = whole_stack(frames, Scene::Cube)?;
    line("whole stack", stack);
    if let Err(reason) = &mesa {
        println!("render mesa llvmpipe {size}: baseline skipped ({reason})");
    }
    crate::bench::fractal::run(frames)
}

/// Percentage of pixels of `ours` within ±2 per colour channel of `theirs` (RGBA bytes).
pub(crate) fn agreement(ours: &[[u8; 4]], theirs: &[u8]) -> f64 {
    let same = ours
        .iter()
        .zip(theirs.chunks_exact(4))
        .filter(|(a, b)| (0..3).all(|c| a[c].abs_diff(b[c]) <= 2))
        .count();
    100.0 * same as f64 / ours.len().max(1) as f64
}

pub(crate) const BENCH_WIDTH: u32 = 1920;
pub(crate) const BENCH_HEIGHT: u32 = 1080;
/// Frames rendered before the clock starts (first-frame costs: vertex cache, allocation).
pub(crate) const WARMUP: u32 = 4;

/// The scene drawn by vc-gles directly, as the KHRN server would for the client's calls.
/// Returns the frames per second and frame 1's pixels.
fn render_alone(frames: u32, images: &[Vec<u8>; 3]) -> (f64, Vec<[u8; 4]>) {
    use khronos::hello_triangle::{
        CLEAR_COLOUR, FACE_ROTATIONS, QUADX, TEX_COORDS, frustum_half_extents, model_angles,
    };
    use vc_gles::{AttribArray, AttribType, Gles11, Indices, Surface, VertexArrays, gl};

    let (w, h) = (BENCH_WIDTH, BENCH_HEIGHT);
    let mut ctx = Gles11::new();
    let mut target = Surface::new(w, h, false);
    let [r, g, b, a] = CLEAR_COLOUR;
    ctx.clear_color(r, g, b, a);
    ctx.enable(gl::GL_CULL_FACE);
    ctx.hint(gl::GL_PERSPECTIVE_CORRECTION_HINT, gl::GL_NICEST);
    ctx.viewport(0, 0, w as i32, h as i32);
    ctx.matrix_mode(gl::GL_PROJECTION);
    ctx.load_identity();
    let (hwd, hht) = frustum_half_extents(w, h);
    ctx.frustumf(-hwd, hwd, -hht, hht, 1.0, 500.0);
    ctx.matrix_mode(gl::GL_MODELVIEW);
    let tex = ctx.gen_textures(6);
    for (i, &name) in tex.iter().enumerate() {
        ctx.bind_texture(gl::GL_TEXTURE_2D, name);
        ctx.tex_image_2d(
            gl::GL_TEXTURE_2D,
            0,
            gl::GL_RGB,
            128,
            128,
            0,
            gl::GL_RGB,
            gl::GL_UNSIGNED_BYTE,
            4,
            Some(&images[i / 2]),
        );
        ctx.tex_parameterf(
            gl::GL_TEXTURE_2D,
            gl::GL_TEXTURE_MIN_FILTER,
            gl::GL_NEAREST as f32,
        );
        ctx.tex_parameterf(
            gl::GL_TEXTURE_2D,
            gl::GL_TEXTURE_MAG_FILTER,
            gl::GL_NEAREST as f32,
        );
    }
    ctx.enable(gl::GL_TEXTURE_2D);
    let positions: Vec<u8> = QUADX.iter().map(|&v| v as u8).collect();
    let texcoords: Vec<u8> = TEX_COORDS.iter().flat_map(|t| t.to_le_bytes()).collect();
    let arrays = VertexArrays {
        position: Some(AttribArray {
            size: 3,
            ty: AttribType::Byte,
            normalized: false,
            stride: 0,
            data: &positions,
        }),
        texcoord: Some(AttribArray {
            size: 2,
            ty: AttribType::Float,
            normalized: false,
            stride: 0,
            data: &texcoords,
        }),
        ..Default::default()
    };
    let mut frame = |k: u32, target: &mut Surface| {
        let (ax, ay, az) = model_angles(k);
        ctx.load_identity();
        ctx.translatef(0.0, 0.0, -40.0);
        ctx.rotatef(ax, 1.0, 0.0, 0.0);
        ctx.rotatef(ay, 0.0, 1.0, 0.0);
        ctx.rotatef(az, 0.0, 0.0, 1.0);
        ctx.clear(gl::GL_COLOR_BUFFER_BIT, target);
        for (face, &(angle, x, y, z)) in FACE_ROTATIONS.iter().enumerate() {
            ctx.bind_texture(gl::GL_TEXTURE_2D, tex[face]);
            ctx.rotatef(angle, x, y, z);
            ctx.draw(
                gl::GL_TRIANGLE_STRIP,
                Indices::Range {
                    first: 4 * face as u32,
                    count: 4,
                },
                &arrays,
                target,
            );
        }
    };
    frame(1, &mut target);
    let frame1: Vec<[u8; 4]> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| target.color.get(x, y))
        .collect();
    for k in 2..=WARMUP {
        frame(k, &mut target);
    }
    let start = Instant::now();
    for k in 0..frames {
        frame(WARMUP + 1 + k, &mut target);
    }
    let fps = f64::from(frames) / start.elapsed().as_secs_f64();
    (fps, frame1)
}

/// The hello_triangle client against a private daemon: frames per second after the warm-up.
pub(crate) fn whole_stack(frames: u32, scene: Scene) -> Result<f64> {
    let daemon = crate::bench::Private::with_display(BENCH_WIDTH, BENCH_HEIGHT)?;
    let opts = ClientOptions {
        socket: daemon.socket.clone(),
        frames: WARMUP + frames,
        pid_source: PidSource::ClientId,
        region: Region::Full,
        png: None,
        progress: false,
        verbose: false,
        scene,
    };
    let t = run_client(&opts)?;
    if t.size != (BENCH_WIDTH, BENCH_HEIGHT) {
        bail!("the private daemon's display is {}x{}", t.size.0, t.size.1);
    }
    // A swap returns once a buffer is free: up to 3 frames (the surface's buffers) may
    // still be waiting for their post when the loop ends.
    let swaps = u64::from(WARMUP + frames);
    if t.khan_posts + 3 < swaps {
        bail!("{} KHAN posts for {swaps} swaps", t.khan_posts);
    }
    let timed: Duration = t.times[WARMUP as usize..].iter().sum();
    drop(daemon);
    Ok(f64::from(frames) / timed.as_secs_f64())
}

/// What the Mesa baseline measured.
pub(crate) struct Mesa {
    pub fps: f64,
    pub renderer: String,
    /// Frame 1, RGBA, top row first (the same-scene check).
    pub frame1: Option<Vec<u8>>,
}

/// The baseline program, written for this project.
const BASELINE_C: &str = include_str!("bench_render.c");
/// The EGL set-up both baseline programs include.
const BASELINE_EGL_H: &str = include_str!("bench_egl.h");

/// Builds and runs the baseline; the error is the reason it was skipped.
fn mesa_baseline(frames: u32, images: &[Vec<u8>; 3]) -> std::result::Result<Mesa, String> {
    let dir = std::env::temp_dir().join(format!("vchiq-bench-mesa-{}", std::process::id()));
    let tex = dir.join("textures.rgb");
    let result = std::fs::create_dir_all(&dir)
        .map_err(|e| format!("creating {}: {e}", dir.display()))
        .and_then(|()| {
            std::fs::write(&tex, images.concat())
                .map_err(|e| format!("writing {}: {e}", tex.display()))
        })
        .and_then(|()| {
            let args = [
                BENCH_WIDTH.to_string(),
                BENCH_HEIGHT.to_string(),
                frames.to_string(),
                tex.display().to_string(),
            ];
            run_mesa(
                &dir,
                "bench_render",
                BASELINE_C,
                &["-lGLESv1_CM", "-lm"],
                &args,
            )
        });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Builds `source` (a baseline program of this project) in `dir` with the system `cc`
/// against EGL and `libs`, runs it with `args` and a frame-1 file as its last argument on
/// EGL surfaceless, and reads its `renderer:` and `fps:` lines. The error is the reason
/// the baseline is skipped.
pub(crate) fn run_mesa(
    dir: &std::path::Path,
    name: &str,
    source: &str,
    libs: &[&str],
    args: &[String],
) -> std::result::Result<Mesa, String> {
    use std::process::Command;
    let src = dir.join(format!("{name}.c"));
    let exe = dir.join(name);
    let frame1 = dir.join("frame1.rgba");
    let header = dir.join("bench_egl.h");
    for (path, text) in [(&src, source), (&header, BASELINE_EGL_H)] {
        std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .arg("-O2")
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg("-lEGL")
        .args(libs)
        .output()
        .map_err(|e| format!("no C compiler: {cc}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err
            .lines()
            .find(|l| l.contains("error"))
            .unwrap_or_else(|| err.lines().next().unwrap_or(""));
        return Err(format!(
            "cannot build the EGL/GLES program, are libegl-dev and libgles-dev installed? {}",
            first.trim()
        ));
    }
    let out = Command::new(&exe)
        .env("EGL_PLATFORM", "surfaceless")
        .args(args)
        .arg(&frame1)
        .output()
        .map_err(|e| format!("running {}: {e}", exe.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "Mesa EGL surfaceless unavailable (libegl-mesa0, libgl1-mesa-dri): {}",
            err.lines().last().unwrap_or("no message").trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
    };
    let fps: f64 = field("fps:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("unexpected output: {stdout}"))?;
    let renderer = field("renderer:").unwrap_or("unknown").to_string();
    if !renderer.contains("llvmpipe") {
        return Err(format!("the EGL device is {renderer}, not llvmpipe"));
    }
    let frame1 = std::fs::read(&frame1)
        .ok()
        .filter(|b| b.len() == (BENCH_WIDTH * BENCH_HEIGHT * 4) as usize);
    Ok(Mesa {
        fps,
        renderer,
        frame1,
    })
}
