//! `vchiq bench`: benchmarks, each beside a baseline measured in the same run.
//!
//! Every figure is printed as `NAME: VALUE UNIT (baseline: VALUE UNIT, ratio: R)` with
//! `R = VALUE / baseline VALUE`, in the same unit on both sides.
//!
//! - `ping`: full-stack round trip (client → vchiqd → link → VideoCore `echo` → back)
//!   against a `SOCK_SEQPACKET` ping-pong of the same size between two threads.
//! - `bulk`: a `fun2` bulk round trip (transmit + receive of the same buffer) against
//!   `memcpy` of the same bytes.
//! - `clients`: vchiqd's memory per idle client with 1,000 clients connected, against a
//!   thread-per-connection Unix-socket server holding the same connections.
//! - `render`: see `vchiq bench render --help`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use vchiq::{Event, Handler, Instance, Service, ServiceParams};
use vchiq_abi::enums::BulkMode;
use vchiq_abi::fourcc::FourCc;
use vchiqd::{Daemon, DaemonOptions};

/// Options of `vchiq bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand, Debug)]
enum What {
    /// Message round trip through the whole stack vs a raw Unix-socket ping-pong.
    Ping {
        /// Round trips per size.
        #[arg(long, default_value_t = 2000)]
        iters: u32,
    },
    /// Bulk round-trip throughput vs memcpy.
    Bulk {
        /// Round trips per size.
        #[arg(long, default_value_t = 50)]
        iters: u32,
    },
    /// Daemon memory per idle client vs a thread-per-connection socket server.
    Clients {
        /// Clients to connect.
        #[arg(long, default_value_t = 1000)]
        count: u32,
    },
    /// Frames per second of the hello_triangle scene (renderer alone, whole stack, Mesa llvmpipe).
    Render {
        /// Frames to render per measurement.
        #[arg(long, default_value_t = 120)]
        frames: u32,
    },
    /// A thread-per-connection socket server (the `clients` baseline).
    #[command(hide = true)]
    SocketServer {
        /// Socket path.
        path: PathBuf,
    },
}

/// Prints one figure line.
pub fn figure(name: &str, value: f64, baseline: f64, unit: &str) {
    let ratio = if baseline > 0.0 {
        value / baseline
    } else {
        f64::NAN
    };
    println!(
        "{name}: {} {unit} (baseline: {} {unit}, ratio: {ratio:.2})",
        fmt(value),
        fmt(baseline)
    );
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A private in-process daemon for a benchmark.
pub(crate) struct Private {
    pub(crate) socket: PathBuf,
    dir: PathBuf,
    stopper: vchiqd::Stopper,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Private {
    /// A daemon with the default 1920x1080 display.
    pub(crate) fn start() -> Result<Private> {
        Private::with_display(1920, 1080)
    }

    /// A daemon with a display of the given size.
    pub(crate) fn with_display(width: u32, height: u32) -> Result<Private> {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("vchiq-bench-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("vchiq.sock");
        let mut opts = DaemonOptions::new(socket.clone());
        opts.socket_group = None;
        opts.vc.display_width = width;
        opts.vc.display_height = height;
        let daemon = Daemon::start(&opts)?;
        let stopper = daemon.stopper();
        let thread = std::thread::spawn(move || {
            let _ = daemon.run(None);
        });
        Ok(Private {
            socket,
            dir,
            stopper,
            thread: Some(thread),
        })
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        self.stopper.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn run(a: BenchArgs) -> Result<ExitCode> {
    match a.what {
        What::Ping { iters } => ping(iters)?,
        What::Bulk { iters } => bulk(iters)?,
        What::Clients { count } => clients(count)?,
        What::Render { frames } => crate::hello::bench_render(frames)?,
        What::SocketServer { path } => socket_server(&path)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn socketpair_seqpacket() -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    vchiqd::sys::socketpair_seqpacket().context("socketpair")
}

/// Round trips of a SEQPACKET ping-pong between two threads.
fn socket_ping(size: usize, iters: u32) -> Result<Vec<Duration>> {
    let (a, b) = socketpair_seqpacket()?;
    let echo = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) =
            vchiqd::sys::recv_with_fds(std::os::fd::AsFd::as_fd(&b), &mut buf).map(|r| r.0)
        {
            if n == 0 || buf[..n].first() == Some(&0xff) {
                break;
            }
            let _ = vchiqd::sys::send_with_fds(
                std::os::fd::AsFd::as_fd(&b),
                &[std::io::IoSlice::new(&buf[..n])],
                &[],
            );
        }
    });
    let msg = vec![1u8; size.max(1)];
    let mut buf = vec![0u8; 65536];
    let mut times = Vec::with_capacity(iters as usize);
    for _ in 0..iters {
        let t = Instant::now();
        vchiqd::sys::send_with_fds(
            std::os::fd::AsFd::as_fd(&a),
            &[std::io::IoSlice::new(&msg)],
            &[],
        )?;
        vchiqd::sys::recv_with_fds(std::os::fd::AsFd::as_fd(&a), &mut buf)?;
        times.push(t.elapsed());
    }
    vchiqd::sys::send_with_fds(
        std::os::fd::AsFd::as_fd(&a),
        &[std::io::IoSlice::new(&[0xff])],
        &[],
    )?;
    let _ = echo.join();
    Ok(times)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn echo_service(inst: &Instance) -> Result<(Service, mpsc::Receiver<Vec<u8>>)> {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let handler = Handler::Callback(Box::new(move |_s: &Service, ev: Event| {
        if let Event::Message(d) = ev {
            let _ = tx.lock().unwrap_or_else(|p| p.into_inner()).send(d);
        }
    }));
    let svc = inst.open_service(
        ServiceParams {
            fourcc: FourCc::ECHO,
            version: 3,
            version_min: 3,
        },
        handler,
    )?;
    Ok((svc, rx))
}

/// Round trips through the echo service; returns each one's duration.
fn echo_pings(
    svc: &Service,
    rx: &mpsc::Receiver<Vec<u8>>,
    msg: &[u8],
    n: u32,
) -> Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t = Instant::now();
        svc.queue_message(msg)?;
        let reply = rx
            .recv_timeout(Duration::from_secs(10))
            .context("no echo within 10 s")?;
        if reply.len() != msg.len() {
            bail!("echo returned {} bytes for {}", reply.len(), msg.len());
        }
        times.push(t.elapsed());
    }
    Ok(times)
}

fn ping(iters: u32) -> Result<()> {
    let d = Private::start()?;
    let inst = Instance::connect_to(&d.socket)?;
    let (svc, rx) = echo_service(&inst)?;
    // This machine's scheduling drifts (cross-CPU wake-ups come and go), so the two are
    // measured in alternating rounds and compared by their medians.
    const ROUNDS: u32 = 5;
    let per = (iters / ROUNDS).max(1);
    for size in [64usize, 1024, 4088] {
        let mut msg = vec![0xa5u8; size];
        msg[..4].copy_from_slice(&5u32.to_le_bytes()); // MSG_ECHO
        echo_pings(&svc, &rx, &msg, per / 10 + 1)?; // warm-up
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            ours.extend(echo_pings(&svc, &rx, &msg, per)?);
            base.extend(socket_ping(size, per)?);
        }
        figure(
            &format!("ping {size}B round trip"),
            us(median(ours)),
            us(median(base)),
            "us",
        );
    }
    let _ = svc.remove();
    Ok(())
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn bulk(iters: u32) -> Result<()> {
    let d = Private::start()?;
    let inst = Instance::connect_to(&d.socket)?;
    let svc = inst.open_service(
        ServiceParams {
            fourcc: FourCc::FUN2,
            version: 3,
            version_min: 3,
        },
        Handler::Queue,
    )?;
    for size in [64 * 1024usize, 1 << 20, 4 << 20] {
        let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mut times = Vec::new();
        for _ in 0..iters {
            let t = Instant::now();
            let req: Vec<u8> = [size as u32, 0, 0, 0]
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect();
            svc.queue_message(&req)?;
            svc.bulk_transmit(&data, BulkMode::Blocking, 1)?;
            let back = svc
                .bulk_receive(size, BulkMode::Blocking, 2)?
                .context("no data")?;
            if back.len() < size || back[..size] != data[..] {
                bail!("fun2 returned different data");
            }
            times.push(t.elapsed());
        }
        let ours = median(times);
        // Baseline: the same bytes moved twice by memcpy (there and back).
        let mut dst = vec![0u8; size];
        let mut btimes = Vec::new();
        for _ in 0..iters.max(20) {
            let t = Instant::now();
            dst.copy_from_slice(std::hint::black_box(&data));
            let mut back = vec![0u8; size];
            back.copy_from_slice(std::hint::black_box(&dst));
            std::hint::black_box(&back);
            btimes.push(t.elapsed());
        }
        let base = median(btimes);
        let mbps = |d: Duration| (2 * size) as f64 / d.as_secs_f64() / 1e6;
        figure(
            &format!("bulk {} round trip", human(size)),
            mbps(ours),
            mbps(base),
            "MB/s",
        );
    }
    let _ = svc.remove();
    Ok(())
}

fn human(size: usize) -> String {
    if size >= 1 << 20 {
        format!("{}MiB", size >> 20)
    } else {
        format!("{}KiB", size >> 10)
    }
}

fn rss_kib(pid: u32) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("VmRSS not found")
}

fn wait_for(path: &std::path::Path) -> Result<()> {
    let t0 = Instant::now();
    while !path.exists() {
        if t0.elapsed() > Duration::from_secs(20) {
            bail!("{} did not appear", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn clients(count: u32) -> Result<()> {
    let exe = std::env::current_exe()?;
    let dir = std::env::temp_dir().join(format!("vchiq-bench-clients-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // The daemon under test.
    let sock = dir.join("vchiq.sock");
    let mut daemon = Command::new(&exe)
        .args(["daemon", "--socket"])
        .arg(&sock)
        .stderr(Stdio::null())
        .spawn()?;
    wait_for(&sock)?;
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib(daemon.id())?;
    let mut held = Vec::new();
    for _ in 0..count {
        held.push(Instance::connect_to(&sock)?);
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(daemon.id())?;
    drop(held);
    let _ = daemon.kill();
    let _ = daemon.wait();
    // The baseline: a thread-per-connection server holding the same number of connections.
    let bsock = dir.join("baseline.sock");
    let mut server = Command::new(&exe)
        .args(["bench", "socket-server"])
        .arg(&bsock)
        .spawn()?;
    wait_for(&bsock)?;
    std::thread::sleep(Duration::from_millis(300));
    let bbefore = rss_kib(server.id())?;
    let mut conns = Vec::new();
    for _ in 0..count {
        let mut s = UnixStream::connect(&bsock)?;
        s.write_all(b"x")?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b)?;
        conns.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let bafter = rss_kib(server.id())?;
    drop(conns);
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let per = |b: u64, a: u64| a.saturating_sub(b) as f64 / f64::from(count.max(1));
    figure(
        &format!("clients memory per idle client ({count} connected)"),
        per(before, after),
        per(bbefore, bafter),
        "KiB",
    );
    Ok(())
}

fn socket_server(path: &std::path::Path) -> Result<()> {
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    for s in listener.incoming() {
        let mut s = s?;
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let mut b = [0u8; 64];
                while let Ok(n) = s.read(&mut b) {
                    if n == 0 || s.write_all(&b[..n]).is_err() {
                        break;
                    }
                }
            })?;
    }
    Ok(())
}
