//! The soak test of issue #12, run by `scripts/soak` against a private daemon (not by CI).
//!
//! Two rounds of `--clients` client processes, each with its own instance, an `echo`
//! service (messages of random sizes, at most `WINDOW` unanswered) and a `fun2` service
//! (a bulk round trip of a random size every `BULK_EVERY` messages, checked byte for
//! byte). Round 1 runs alone; in round 2 a flood attacker holds `--flood` idle
//! connections, churns connect/close, and keeps one client that streams messages and never
//! reads anything, and `--kills` clients are SIGKILLed at random moments and started
//! again. Clients that were not killed must see every message echoed once, in order,
//! intact. After both rounds the daemon must hold no instance and no service beyond the
//! status probe's, and as many descriptors as before round 1. Prints the good clients'
//! latency p50/p99 per round and the daemon's VmRSS.
//!
//! ```text
//! soak --socket PATH --daemon-pid PID [--clients 100] [--messages 10000] [--time 600]
//!      [--kills 10] [--flood 2000]
//! ```

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vchiq::{BulkMode, FourCc, Handler, Instance, ServiceParams};
use vchiq_abi::wire::{self, Op};
use zerocopy::IntoBytes;

const MSG_ECHO: u32 = 5;
/// Messages in flight per client.
const WINDOW: usize = 16;
/// A fun2 bulk round trip after this many messages.
const BULK_EVERY: u32 = 200;
/// Largest bulk.
const MAX_BULK: usize = 256 * 1024;
/// Latencies kept per client (every n-th).
const SAMPLE: u32 = 4;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Message `seq` of client `id`: kind, id, seq, then a size and fill that depend on both.
fn message(id: u32, seq: u32) -> Vec<u8> {
    let mut r = Rng(u64::from(id) << 32 | u64::from(seq) | 1);
    let size = 12 + r.below(1012) as usize;
    let mut m = Vec::with_capacity(size);
    m.extend_from_slice(&MSG_ECHO.to_le_bytes());
    m.extend_from_slice(&id.to_le_bytes());
    m.extend_from_slice(&seq.to_le_bytes());
    while m.len() < size {
        m.push(r.next() as u8);
    }
    m
}

#[derive(Default)]
struct Tally {
    sent_at: HashMap<u32, Instant>,
    next: u32,
    echoed: u32,
    reordered: u32,
    corrupted: u32,
    latencies: Vec<u32>,
}

/// One client process: prints `result ...` and `lat ...` lines.
fn client(socket: &Path, id: u32, messages: u32, deadline: Instant) -> Result<()> {
    let inst = Instance::connect_to(socket).context("connecting")?;
    let tally = Arc::new((Mutex::new(Tally::default()), Condvar::new()));
    let t = tally.clone();
    let echo = inst
        .open_service(
            ServiceParams {
                fourcc: FourCc::ECHO,
                version: 3,
                version_min: 3,
            },
            Handler::callback(move |_s, ev| {
                let vchiq::Event::Message(data) = ev else {
                    return;
                };
                let (lock, cv) = &*t;
                let mut g = lock.lock().unwrap();
                let seq = (data.len() >= 12)
                    .then(|| u32::from_le_bytes([data[8], data[9], data[10], data[11]]));
                match seq {
                    Some(s) if g.sent_at.contains_key(&s) && data == message(id, s) => {
                        if s != g.next {
                            g.reordered += 1;
                        }
                        let at = g.sent_at.remove(&s).unwrap();
                        if s % SAMPLE == 0 {
                            g.latencies.push(at.elapsed().as_micros() as u32);
                        }
                        g.next = s + 1;
                        g.echoed += 1;
                    }
                    _ => g.corrupted += 1,
                }
                cv.notify_all();
            }),
        )
        .context("opening echo")?;
    let fun2 = inst
        .open_service(
            ServiceParams {
                fourcc: FourCc::FUN2,
                version: 3,
                version_min: 3,
            },
            Handler::Queue,
        )
        .context("opening fun2")?;
    let mut rng = Rng(u64::from(id) * 0x9e37_79b9 + 7);
    let (mut bulks, mut bulk_bad) = (0u32, 0u32);
    let mut sent = 0u32;
    let (lock, cv) = &*tally;
    for seq in 0..messages {
        if Instant::now() >= deadline {
            break;
        }
        {
            let g = lock.lock().unwrap();
            let (g, _) = cv
                .wait_timeout_while(g, Duration::from_secs(30), |g| g.sent_at.len() >= WINDOW)
                .unwrap();
            if g.sent_at.len() >= WINDOW {
                break; // lost echoes hold the window shut
            }
        }
        let m = message(id, seq);
        lock.lock().unwrap().sent_at.insert(seq, Instant::now());
        echo.queue_message(&m).context("queue_message")?;
        sent += 1;
        if seq % BULK_EVERY == BULK_EVERY - 1 {
            let size = 1 + rng.below(MAX_BULK as u64) as usize;
            let data: Vec<u8> = (0..size).map(|i| (i as u8) ^ (seq as u8)).collect();
            let req: Vec<u8> = [size as u32, 0, 0, 0]
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect();
            fun2.queue_message(&req).context("fun2 request")?;
            fun2.bulk_transmit(&data, BulkMode::Blocking, 1)
                .context("bulk transmit")?;
            let back = fun2
                .bulk_receive(size, BulkMode::Blocking, 2)
                .context("bulk receive")?;
            bulks += 1;
            if back.as_deref().map(|b| &b[..size.min(b.len())]) != Some(&data[..]) {
                bulk_bad += 1;
            }
        }
    }
    let g = lock.lock().unwrap();
    let (g, _) = cv
        .wait_timeout_while(g, Duration::from_secs(30), |g| !g.sent_at.is_empty())
        .unwrap();
    println!(
        "result {id} sent {sent} echoed {} lost {} reordered {} corrupted {} bulks {bulks} bulk_bad {bulk_bad}",
        g.echoed,
        sent - g.echoed,
        g.reordered,
        g.corrupted
    );
    let lat: Vec<String> = g.latencies.iter().map(u32::to_string).collect();
    println!("lat {}", lat.join(" "));
    drop(g);
    let _ = echo.remove();
    let _ = fun2.remove();
    Ok(())
}

/// What one client run reported.
#[derive(Debug, Default)]
struct Run {
    sent: u64,
    echoed: u64,
    lost: u64,
    reordered: u64,
    corrupted: u64,
    bulks: u64,
    bulk_bad: u64,
    latencies: Vec<u32>,
    finished: bool,
}

fn spawn_client(socket: &Path, id: u32, messages: u32, secs: u64) -> Result<Child> {
    Command::new(std::env::current_exe()?)
        .args(["--client", &id.to_string(), "--socket"])
        .arg(socket)
        .args(["--messages", &messages.to_string()])
        .args(["--time", &secs.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting a client")
}

fn collect(child: Child) -> Run {
    let mut child = child;
    let mut run = Run::default();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
            let w: Vec<&str> = line.split_whitespace().collect();
            match w.first() {
                Some(&"result") => {
                    let v = |k: &str| -> u64 {
                        w.iter()
                            .position(|x| *x == k)
                            .and_then(|i| w.get(i + 1))
                            .and_then(|x| x.parse().ok())
                            .unwrap_or(0)
                    };
                    run.sent = v("sent");
                    run.echoed = v("echoed");
                    run.lost = v("lost");
                    run.reordered = v("reordered");
                    run.corrupted = v("corrupted");
                    run.bulks = v("bulks");
                    run.bulk_bad = v("bulk_bad");
                    run.finished = true;
                }
                Some(&"lat") => run
                    .latencies
                    .extend(w[1..].iter().filter_map(|x| x.parse::<u32>().ok())),
                _ => {}
            }
        }
    }
    let status = child.wait();
    run.finished &= status.is_ok_and(|s| s.success());
    run
}

/// The flood attacker: idle connections, connect/close churn and a client that never
/// reads. Runs until `stop`; returns what it managed.
fn attacker(socket: PathBuf, flood: usize, stop: Arc<AtomicBool>) -> (usize, u64, u64) {
    let mut idle: Vec<OwnedFd> = Vec::new();
    for _ in 0..flood {
        match vchiqd::sys::seqpacket_connect(&socket) {
            Ok(s) => idle.push(s),
            Err(_) => break,
        }
    }
    let held = idle.len();
    // The never-reading client: an echo service, then posted messages until its socket
    // is full; it reads nothing.
    let hog = vchiqd::sys::seqpacket_connect(&socket).ok();
    let mut posted = 0u64;
    if let Some(s) = &hog {
        let send = |tag: u32, op: Op, flags: u32, payload: &[u8]| {
            let hdr = wire::RequestHeader {
                magic: wire::REQUEST_MAGIC,
                tag,
                op: op as u32,
                flags,
                arg: 0,
            };
            vchiqd::sys::try_send_packet(
                std::os::fd::AsFd::as_fd(s),
                &[
                    std::io::IoSlice::new(hdr.as_bytes()),
                    std::io::IoSlice::new(payload),
                ],
            )
        };
        let hello = wire::HelloRequest {
            version: wire::PROTOCOL_VERSION,
            flags: 0,
        };
        let _ = send(1, Op::Hello, 0, hello.as_bytes());
        let _ = send(2, Op::Connect, 0, &[]);
        let create = wire::CreateServiceRequest {
            fourcc: FourCc::ECHO.as_u32(),
            version: 3,
            version_min: 3,
            is_open: 1,
            is_vchi: 0,
            userdata: 1,
        };
        let _ = send(3, Op::CreateService, 0, create.as_bytes());
        // It reads the answers to its setup (the last is its handle), then nothing more.
        let mut handle = 0u32;
        let mut buf = vec![0u8; wire::MAX_FRAME];
        for _ in 0..3 {
            let Ok((n, _)) = vchiqd::sys::recv_with_fds(std::os::fd::AsFd::as_fd(s), &mut buf)
            else {
                break;
            };
            if let Ok((h, _)) =
                <wire::ResponseHeader as zerocopy::FromBytes>::read_from_prefix(&buf[..n])
            {
                if h.tag == 3 {
                    handle = u32::try_from(h.result).unwrap_or(0);
                }
            }
        }
        let mut body = wire::QueueMessageRequest { handle, count: 1 }
            .as_bytes()
            .to_vec();
        let m = message(0xffff, 0);
        body.extend_from_slice(&(m.len() as u32).to_le_bytes());
        body.extend_from_slice(&m);
        // Connect/close churn meanwhile, on its own thread.
        let (s2, st2) = (socket.clone(), stop.clone());
        let churner = std::thread::spawn(move || {
            let mut churn = 0u64;
            while !st2.load(Ordering::Relaxed) {
                if vchiqd::sys::seqpacket_connect(&s2).is_ok() {
                    churn += 1;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            churn
        });
        // As fast as the daemon takes them; when it stops reading this client, keep
        // trying.
        let mut tag = 10u32;
        while !stop.load(Ordering::Relaxed) {
            match send(tag, Op::QueueMessage, wire::REQUEST_POSTED, &body) {
                Ok(true) => {
                    posted += 1;
                    tag = tag.wrapping_add(1).max(10);
                }
                Ok(false) => std::thread::sleep(Duration::from_millis(1)),
                Err(_) => break,
            }
        }
        let churn = churner.join().unwrap_or(0);
        drop(hog);
        drop(idle);
        return (held, posted, churn);
    }
    let mut churn = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if vchiqd::sys::seqpacket_connect(&socket).is_ok() {
            churn += 1;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    drop(hog);
    drop(idle);
    (held, posted, churn)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn vm_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Instances and services the daemon holds, from its status text (the probe's own
/// connection is one instance).
fn held(socket: &Path) -> Result<(usize, usize)> {
    let text = vchiq::daemon_status(socket).context("vchiq status")?;
    let instances = text.lines().filter(|l| l.starts_with("Instance ")).count();
    let services = text
        .lines()
        .filter(|l| l.trim_start().starts_with("Service 0x"))
        .count();
    Ok((instances, services))
}

struct Round {
    runs: Vec<Run>,
    killed: usize,
    elapsed: Duration,
}

fn round(
    socket: &Path,
    clients: u32,
    messages: u32,
    secs: u64,
    kills: usize,
    first_id: u32,
    expected: Duration,
) -> Result<Round> {
    let t0 = Instant::now();
    let mut live: HashMap<u32, Child> = HashMap::new();
    for i in 0..clients {
        live.insert(
            first_id + i,
            spawn_client(socket, first_id + i, messages, secs)?,
        );
    }
    let mut rng = Rng(0x5eed ^ u64::from(first_id));
    let mut killed = 0;
    let mut next_id = first_id + clients;
    // Kills at random moments within the first 80% of the expected run (round 1's time).
    let span = (expected.as_millis() as u64 * 8 / 10).max(1);
    let mut kill_at: Vec<Duration> = (0..kills)
        .map(|_| Duration::from_millis(rng.below(span)))
        .collect();
    kill_at.sort();
    let mut runs = Vec::new();
    loop {
        if let Some(&at) = kill_at.first() {
            if t0.elapsed() >= at && !live.is_empty() {
                kill_at.remove(0);
                let ids: Vec<u32> = live.keys().copied().collect();
                let victim = ids[rng.below(ids.len() as u64) as usize];
                let mut c = live.remove(&victim).unwrap();
                let _ = c.kill();
                let _ = c.wait();
                killed += 1;
                // Started again as a new client.
                live.insert(next_id, spawn_client(socket, next_id, messages, secs)?);
                next_id += 1;
            }
        }
        let done: Vec<u32> = live
            .iter_mut()
            .filter_map(|(id, c)| matches!(c.try_wait(), Ok(Some(_))).then_some(*id))
            .collect();
        for id in done {
            runs.push(collect(live.remove(&id).unwrap()));
        }
        if live.is_empty() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(secs + 120) {
            for (_, mut c) in live.drain() {
                let _ = c.kill();
                runs.push(collect(c));
            }
            bail!("clients still running {} s after the time limit", 120);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Round {
        runs,
        killed,
        elapsed: t0.elapsed(),
    })
}

fn report(name: &str, r: &Round) -> bool {
    let mut lat: Vec<u32> = r.runs.iter().flat_map(|x| x.latencies.clone()).collect();
    lat.sort_unstable();
    let sum = |f: fn(&Run) -> u64| r.runs.iter().map(f).sum::<u64>();
    let unfinished = r.runs.iter().filter(|x| !x.finished).count();
    println!(
        "{name}: {} client runs ({} killed and restarted), {} messages sent, {} echoed, {} lost, {} reordered, {} corrupted, {} bulks ({} bad), {unfinished} runs failed, {:.1} s; latency p50 {} us, p99 {} us",
        r.runs.len(),
        r.killed,
        sum(|x| x.sent),
        sum(|x| x.echoed),
        sum(|x| x.lost),
        sum(|x| x.reordered),
        sum(|x| x.corrupted),
        sum(|x| x.bulks),
        sum(|x| x.bulk_bad),
        r.elapsed.as_secs_f64(),
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
    );
    sum(|x| x.lost + x.reordered + x.corrupted + x.bulk_bad) == 0 && unfinished == 0
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let socket = PathBuf::from(arg(&args, "--socket", String::new()));
    let messages: u32 = arg(&args, "--messages", 10_000);
    let secs: u64 = arg(&args, "--time", 600);
    if let Some(id) = args.iter().position(|a| a == "--client") {
        let id: u32 = args[id + 1].parse()?;
        return client(
            &socket,
            id,
            messages,
            Instant::now() + Duration::from_secs(secs),
        );
    }
    let pid: u32 = arg(&args, "--daemon-pid", 0);
    let clients: u32 = arg(&args, "--clients", 100);
    let kills: usize = arg(&args, "--kills", 10);
    let flood: usize = arg(&args, "--flood", 2000);
    if pid == 0 || socket.as_os_str().is_empty() {
        bail!(
            "usage: soak --socket PATH --daemon-pid PID [--clients N] [--messages M] [--time S] [--kills K] [--flood F]"
        );
    }
    let fds0 = fd_count(pid);
    let held0 = held(&socket)?;
    let rss0 = vm_rss_kb(pid);
    println!(
        "soak: {clients} clients x {messages} messages (two rounds of {} each), {kills} kills, flood {flood}; daemon {pid}: {fds0} fds, VmRSS {rss0} kB",
        messages / 2
    );
    let half = (messages / 2).max(1);
    let budget = (secs / 2).max(1);
    let r1 = round(&socket, clients, half, budget, 0, 0, Duration::ZERO)?;
    let rss1 = vm_rss_kb(pid);
    let ok1 = report("round 1 (no attacker)", &r1);
    let stop = Arc::new(AtomicBool::new(false));
    let s = socket.clone();
    let st = stop.clone();
    let attack = std::thread::spawn(move || attacker(s, flood, st));
    std::thread::sleep(Duration::from_millis(500));
    let rss_attack = vm_rss_kb(pid);
    let r2 = round(&socket, clients, half, budget, kills, 1_000_000, r1.elapsed)?;
    let rss2 = vm_rss_kb(pid);
    stop.store(true, Ordering::Relaxed);
    let (idle, posted, churn) = attack.join().unwrap_or_default();
    let ok2 = report("round 2 (attacker, kills)", &r2);
    println!(
        "attacker: {idle} idle connections held, {posted} never-read messages posted, {churn} connect/close; daemon VmRSS {rss_attack} kB at the attack's start, {rss2} kB at its end"
    );
    // The daemon releases what the clients held as it notices each hang-up.
    let t0 = Instant::now();
    let (mut fds, mut h) = (fd_count(pid), held(&socket)?);
    while (fds != fds0 || h != held0) && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
        fds = fd_count(pid);
        h = held(&socket)?;
    }
    let rss_end = vm_rss_kb(pid);
    println!(
        "after: {fds} fds (before: {fds0}), {} instances and {} services besides the probe's (before: {} and {}), VmRSS {rss0} -> {rss1} (round 1) -> {rss2} (round 2) -> {rss_end} kB",
        h.0.saturating_sub(1),
        h.1,
        held0.0.saturating_sub(1),
        held0.1
    );
    let clean = fds == fds0 && h == held0;
    if ok1 && ok2 && clean {
        println!("soak: PASS");
        Ok(())
    } else {
        bail!("soak: FAIL (round 1 ok: {ok1}, round 2 ok: {ok2}, no leaks: {clean})")
    }
}
