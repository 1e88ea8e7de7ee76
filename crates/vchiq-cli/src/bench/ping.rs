//! `vchiq bench ping`: message round trips through the whole stack against a
//! `SOCK_SEQPACKET` ping-pong between two threads, unpinned and pinned to one CPU.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};
use vchiq::{Instance, Service};

use super::{Private, figure, median, recv_packet, send_packet, socketpair_seqpacket, us};

/// The message sizes (4088 is the largest VCHIQ message).
const SIZES: [usize; 3] = [64, 1024, 4088];

/// `MSG_ECHO` of the echo service: the whole message back.
const MSG_ECHO: u32 = 5;

/// This machine's scheduling drifts (cross-CPU wake-ups come and go), so vchiq and the
/// baseline are measured in alternating rounds and compared by their medians.
const ROUNDS: u32 = 5;

pub(super) fn run(iters: u32) -> Result<()> {
    measure("unpinned", iters)?;
    let pin = Pinned::to_one_cpu()?;
    eprintln!(
        "ping: pinned run on CPU {} (of {} allowed before)",
        pin.cpu,
        pin.original.count()
    );
    let r = measure("pinned, 1 CPU", iters);
    drop(pin);
    r
}

/// The calling thread's affinity narrowed to one CPU until drop. Threads created in the
/// meantime inherit it.
struct Pinned {
    original: CpuSet,
    cpu: usize,
}

impl Pinned {
    fn to_one_cpu() -> Result<Pinned> {
        let original = sched_getaffinity(None).context("sched_getaffinity")?;
        let cpu = (0..CpuSet::MAX_CPU)
            .find(|&c| original.is_set(c))
            .context("this thread may run on no CPU")?;
        let mut one = CpuSet::new();
        one.set(cpu);
        sched_setaffinity(None, &one).context("sched_setaffinity to one CPU")?;
        Ok(Pinned { original, cpu })
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Err(e) = sched_setaffinity(None, &self.original) {
            eprintln!("ping: cannot restore the CPU affinity: {e}");
        }
    }
}

/// The threads of this process that were checked, and every one whose affinity is not
/// exactly `cpu` (tid, name, CPUs).
fn threads_not_on(cpu: usize) -> (usize, Vec<String>) {
    let mut off = Vec::new();
    let mut checked = 0;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return (0, vec!["cannot read /proc/self/task".into()]);
    };
    for entry in dir.flatten() {
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let Some(pid) = rustix::process::Pid::from_raw(tid) else {
            continue;
        };
        match sched_getaffinity(Some(pid)) {
            Ok(set) if set.count() == 1 && set.is_set(cpu) => checked += 1,
            // The thread ended meanwhile.
            Err(rustix::io::Errno::SRCH) => {}
            Ok(set) => {
                let cpus: Vec<String> = (0..CpuSet::MAX_CPU)
                    .filter(|&c| set.is_set(c))
                    .map(|c| c.to_string())
                    .collect();
                off.push(format!("{tid} {} on CPUs {}", name.trim(), cpus.join(",")));
            }
            Err(e) => off.push(format!("{tid} {}: {e}", name.trim())),
        }
    }
    (checked + off.len(), off)
}

/// One mode: a new private daemon and instance (started by this thread, so they share its
/// affinity), every size against the baseline.
fn measure(mode: &str, iters: u32) -> Result<()> {
    let d = Private::start()?;
    let inst = Instance::connect_to(&d.socket)?;
    let (svc, rx) = echo_service(&inst)?;
    let pinned_cpu = sched_getaffinity(None)
        .ok()
        .filter(|s| s.count() == 1)
        .and_then(|s| (0..CpuSet::MAX_CPU).find(|&c| s.is_set(c)));
    let per = (iters / ROUNDS).max(1);
    let mut seq = 0u32;
    for size in SIZES {
        let mut msg = vec![0u8; size];
        echo_pings(&svc, &rx, &mut msg, per / 10 + 1, &mut seq)?; // warm-up
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            ours.extend(echo_pings(&svc, &rx, &mut msg, per, &mut seq)?);
            base.extend(socket_ping(size, per, pinned_cpu)?);
        }
        if let Some(cpu) = pinned_cpu {
            let (checked, off) = threads_not_on(cpu);
            if !off.is_empty() {
                bail!(
                    "ping (pinned): {} of {checked} threads of this process are not on CPU {cpu}: {}",
                    off.len(),
                    off.join("; ")
                );
            }
            if size == SIZES[0] {
                eprintln!(
                    "ping: all {checked} threads of this process (daemon, VideoCore, client) on CPU {cpu}"
                );
            }
        }
        figure(
            &format!("ping {size}B round trip ({mode})"),
            us(median(ours)),
            us(median(base)),
            "us",
        );
    }
    let _ = svc.remove();
    drop(inst);
    Ok(())
}

fn echo_service(inst: &Instance) -> Result<(Service, mpsc::Receiver<Vec<u8>>)> {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let svc = super::open_echo(inst, move |d| {
        let _ = super::lock(&tx).send(d);
    })?;
    Ok((svc, rx))
}

/// Writes message number `seq` into `msg`: MSG_ECHO, the number, then a pattern.
fn fill(msg: &mut [u8], seq: u32) {
    msg[..4].copy_from_slice(&MSG_ECHO.to_le_bytes());
    msg[4..8].copy_from_slice(&seq.to_le_bytes());
    let b = seq as u8;
    for (i, x) in msg[8..].iter_mut().enumerate() {
        *x = b.wrapping_add(i as u8);
    }
}

/// Round trips through the echo service; returns each one's duration. Every reply must
/// be the message sent.
fn echo_pings(
    svc: &Service,
    rx: &mpsc::Receiver<Vec<u8>>,
    msg: &mut [u8],
    n: u32,
    seq: &mut u32,
) -> Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(n as usize);
    for _ in 0..n {
        *seq = seq.wrapping_add(1);
        fill(msg, *seq);
        let t = Instant::now();
        svc.queue_message(msg)?;
        let reply = rx
            .recv_timeout(Duration::from_secs(10))
            .context("ping: no echo within 10 s")?;
        let e = t.elapsed();
        if reply != msg {
            bail!(
                "ping: the echo of message {} ({} bytes) differs from it ({} bytes back)",
                *seq,
                msg.len(),
                reply.len()
            );
        }
        times.push(e);
    }
    Ok(times)
}

/// Round trips of a SEQPACKET ping-pong between two threads, each reply compared. With
/// `cpu`, the echo thread is checked to be pinned there too (it inherits this thread's
/// affinity).
fn socket_ping(size: usize, iters: u32, cpu: Option<usize>) -> Result<Vec<Duration>> {
    let (a, b) = socketpair_seqpacket()?;
    let echo = std::thread::Builder::new()
        .name("bench-ping-echo".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = recv_packet(&b, &mut buf) {
                if n <= 1 {
                    break;
                }
                if send_packet(&b, &buf[..n]).is_err() {
                    break;
                }
            }
        })?;
    let mut msg = vec![0u8; size.max(8)];
    let mut buf = vec![0u8; 65536];
    let mut times = Vec::with_capacity(iters as usize);
    let mut result = Ok(());
    for i in 0..iters {
        fill(&mut msg, i);
        let t = Instant::now();
        send_packet(&a, &msg)?;
        let n = recv_packet(&a, &mut buf)?;
        let e = t.elapsed();
        if buf[..n] != msg[..] {
            result = Err(anyhow::anyhow!(
                "ping baseline: the echo of message {i} differs"
            ));
            break;
        }
        times.push(e);
    }
    if let Some(cpu) = cpu {
        let (_, off) = threads_not_on(cpu);
        if !off.is_empty() && result.is_ok() {
            result = Err(anyhow::anyhow!(
                "ping baseline (pinned): thread(s) not on CPU {cpu}: {}",
                off.join("; ")
            ));
        }
    }
    send_packet(&a, &[0xff])?;
    let _ = echo.join();
    result.map(|()| times)
}
