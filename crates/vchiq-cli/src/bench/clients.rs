//! `vchiq bench clients`: the daemon's memory and threads with many idle clients, against
//! a thread-per-connection server holding the same connections.
//!
//! The clients are bare `SOCK_SEQPACKET` sockets speaking the wire protocol (a HELLO
//! frame and its response), so that this process needs one descriptor per client and no
//! thread.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vchiq_abi::wire::{
    HelloRequest, HelloResponse, Op, PROTOCOL_VERSION, REQUEST_MAGIC, RESPONSE_MAGIC,
    RequestHeader, ResponseHeader,
};
use vchiqd::{Daemon, DaemonOptions};
use zerocopy::{FromBytes, IntoBytes};

use super::{check, figure};

/// Stack of each thread of the baseline server.
const BASELINE_STACK: usize = 64 * 1024;
/// How long one response may take.
const REPLY_TIMEOUT_MS: i32 = 10_000;

/// A child process that is stopped (SIGTERM, then SIGKILL) on drop.
struct ChildGuard(Child);

impl ChildGuard {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        vchiqd::sys::terminate(self.0.id());
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process's resident memory and thread count, from /proc/PID/status.
#[derive(Clone, Copy, Debug)]
struct Usage {
    rss_kib: u64,
    threads: u64,
}

impl Usage {
    fn of(pid: u32) -> Result<Usage> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let field = |key: &str| -> Result<u64> {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .with_context(|| format!("{key} not in /proc/{pid}/status"))
        };
        Ok(Usage {
            rss_kib: field("VmRSS:")?,
            threads: field("Threads:")?,
        })
    }
}

/// RLIMIT_NOFILE after [`raise_nofile`]: soft, hard, and why it is below what was wanted.
struct FdLimit {
    soft: u64,
    hard: u64,
    short: Option<String>,
}

/// Raises the soft descriptor limit to `want` (raising the hard limit too if needed and
/// allowed, as root), else as far as the hard limit. Children inherit it.
fn raise_nofile(want: u64) -> FdLimit {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let get = || {
        let l = getrlimit(Resource::Nofile);
        (l.current.unwrap_or(u64::MAX), l.maximum.unwrap_or(u64::MAX))
    };
    let (soft, hard) = get();
    let mut short = None;
    if soft < want {
        let wanted = Rlimit {
            current: Some(want),
            maximum: Some(hard.max(want)),
        };
        if let Err(e) = setrlimit(Resource::Nofile, wanted) {
            let _ = setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(hard),
                    maximum: Some(hard),
                },
            );
            short = Some(format!(
                "{want} wanted, but raising the hard limit {hard} failed ({e}; it needs \
                 CAP_SYS_RESOURCE and at most /proc/sys/fs/nr_open)"
            ));
        }
    }
    let (soft, hard) = get();
    if short.is_none() && soft < want {
        short = Some(format!("{want} wanted"));
    }
    FdLimit { soft, hard, short }
}

fn fd_soft_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

fn hello_frame(tag: u32) -> Vec<u8> {
    let mut f = RequestHeader {
        magic: REQUEST_MAGIC,
        tag,
        op: Op::Hello as u32,
        flags: 0,
        arg: 0,
    }
    .as_bytes()
    .to_vec();
    f.extend_from_slice(
        HelloRequest {
            version: PROTOCOL_VERSION,
            flags: 0,
        }
        .as_bytes(),
    );
    f
}

/// Waits for one packet on `fd` (at most [`REPLY_TIMEOUT_MS`]); its length.
fn recv_reply(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize> {
    let ready = vchiqd::sys::poll_readable(&[fd.as_fd()], REPLY_TIMEOUT_MS).context("poll")?;
    if ready.is_empty() {
        bail!("no response within {} s", REPLY_TIMEOUT_MS / 1000);
    }
    Ok(vchiqd::sys::recv_with_fds(fd.as_fd(), buf)
        .context("recv")?
        .0)
}

/// Checks a HELLO response with `tag`.
fn check_hello(buf: &[u8], n: usize, tag: u32) -> Result<()> {
    if n == 0 {
        bail!("the daemon closed the connection instead of answering HELLO");
    }
    let (hdr, rest) = ResponseHeader::read_from_prefix(&buf[..n])
        .map_err(|_| anyhow::anyhow!("a {n}-byte response is shorter than a header"))?;
    if hdr.magic != RESPONSE_MAGIC || hdr.tag != tag {
        bail!(
            "bad response header (magic {:#x}, tag {} for {tag})",
            hdr.magic,
            hdr.tag
        );
    }
    if hdr.result != 0 {
        bail!("HELLO failed with {}", hdr.result);
    }
    let (resp, _) = HelloResponse::read_from_prefix(rest)
        .map_err(|_| anyhow::anyhow!("HELLO response payload too short"))?;
    if resp.version != PROTOCOL_VERSION || resp.client_id != std::process::id() {
        bail!(
            "HELLO response says version {} and client {} (this is {})",
            resp.version,
            resp.client_id,
            std::process::id()
        );
    }
    Ok(())
}

/// One client of the daemon: connected, HELLO answered.
fn daemon_client(sock: &Path) -> Result<OwnedFd> {
    let fd = vchiqd::sys::seqpacket_connect(sock).context("connect")?;
    let frame = hello_frame(1);
    super::send_packet(&fd, &frame).context("send HELLO")?;
    let mut buf = [0u8; 256];
    let n = recv_reply(&fd, &mut buf)?;
    check_hello(&buf, n, 1)?;
    Ok(fd)
}

/// One client of the baseline: connected, the frame echoed.
fn baseline_client(sock: &Path) -> Result<OwnedFd> {
    let fd = vchiqd::sys::seqpacket_connect(sock).context("connect")?;
    ping_baseline(&fd, 1)?;
    Ok(fd)
}

fn ping_baseline(fd: &OwnedFd, tag: u32) -> Result<()> {
    let frame = hello_frame(tag);
    super::send_packet(fd, &frame).context("send")?;
    let mut buf = [0u8; 256];
    let n = recv_reply(fd, &mut buf)?;
    if n == 0 {
        bail!("the server closed the connection (it could not start a thread for it)");
    }
    if buf[..n] != frame[..] {
        bail!("the server echoed different bytes");
    }
    Ok(())
}

/// Every client sends one more HELLO (all first, then every answer is read). Returns the
/// failures: (client index, why).
fn serve_all(conns: &[OwnedFd]) -> Vec<(usize, String)> {
    let frame = hello_frame(2);
    let mut failed = Vec::new();
    let mut sent = vec![false; conns.len()];
    for (i, fd) in conns.iter().enumerate() {
        match super::send_packet(fd, &frame) {
            Ok(()) => sent[i] = true,
            Err(e) => failed.push((i, format!("send: {e}"))),
        }
    }
    let mut buf = [0u8; 256];
    for (i, fd) in conns.iter().enumerate() {
        if !sent[i] {
            continue;
        }
        if let Err(e) = recv_reply(fd, &mut buf).and_then(|n| check_hello(&buf, n, 2)) {
            failed.push((i, format!("{e:#}")));
        }
    }
    failed
}

fn wait_for(path: &Path, child: &mut ChildGuard) -> Result<()> {
    let t0 = Instant::now();
    while !path.exists() {
        if let Ok(Some(status)) = child.0.try_wait() {
            bail!(
                "the child exited ({status}) before creating {}",
                path.display()
            );
        }
        if t0.elapsed() > Duration::from_secs(20) {
            bail!("{} did not appear within 20 s", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the process finish starting up (threads, first allocations).
    std::thread::sleep(Duration::from_millis(300));
    Ok(())
}

fn log_tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n  ");
    if tail.is_empty() {
        "(empty)".into()
    } else {
        format!("\n  {tail}")
    }
}

pub(super) fn run(count: u32) -> Result<()> {
    let count = count.max(1);
    let n = count as usize;
    // This process holds one descriptor per client; the daemon, which inherits the limit,
    // two (the socket and the pidfd that pins the client); the baseline server one.
    let want = 2 * u64::from(count) + 1024;
    let limit = raise_nofile(want);
    let limit_text = format!(
        "RLIMIT_NOFILE {} (hard {}) for this process and its children{}",
        limit.soft,
        limit.hard,
        limit
            .short
            .as_deref()
            .map(|s| format!(": {s}"))
            .unwrap_or_default()
    );
    eprintln!("clients: {limit_text}");
    let exe = std::env::current_exe()?;
    let dir = std::env::temp_dir().join(format!("vchiq-bench-clients-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = measure(&exe, &dir, count, n, &limit_text);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(exe: &Path, dir: &Path, count: u32, n: usize, limit_text: &str) -> Result<()> {
    // The daemon under test: `vchiq daemon` with a client limit above COUNT.
    let sock = dir.join("vchiq.sock");
    let log = dir.join("daemon.log");
    let mut daemon = ChildGuard(
        Command::new(exe)
            .args(["bench", "daemon", "--socket"])
            .arg(&sock)
            .arg("--max-clients")
            .arg((n + 64).to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting the daemon")?,
    );
    wait_for(&sock, &mut daemon)?;
    let before = Usage::of(daemon.pid())?;
    // The daemon holds two descriptors per client (the socket and the pidfd that pins
    // the client); if its limit cannot hold COUNT, measure as many as it can hold.
    let open = std::fs::read_dir(format!("/proc/{}/fd", daemon.pid()))
        .map(|d| d.count() as u64)
        .unwrap_or(64);
    let fit = (fd_soft_limit().saturating_sub(open + 16) / 2) as usize;
    let (count, n) = if fit < n {
        println!(
            "clients: RLIMIT_NOFILE {} lets the daemon hold at most {fit} clients (2 \
             descriptors each, the socket and a pidfd, beside the {open} it has open): \
             measuring {fit} clients instead of {count}",
            fd_soft_limit()
        );
        (fit as u32, fit)
    } else {
        (count, n)
    };
    if n == 0 {
        bail!("clients: the descriptor limit leaves room for no client ({limit_text})");
    }
    let mut conns = Vec::with_capacity(n);
    let t = Instant::now();
    for i in 0..n {
        match daemon_client(&sock) {
            Ok(fd) => conns.push(fd),
            Err(e) => bail!(
                "clients: client {} of {count} failed: {e:#}. What limits it: {limit_text}; \
                 the daemon needs 2 descriptors per client and was started with a client limit \
                 of {}. Daemon log: {}",
                i + 1,
                n + 64,
                log_tail(&log)
            ),
        }
    }
    let connect_time = t.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let after = Usage::of(daemon.pid())?;
    let t = Instant::now();
    let failed = serve_all(&conns);
    let serve_time = t.elapsed();
    let served = Usage::of(daemon.pid())?;
    drop(conns);
    drop(daemon);
    println!(
        "clients: daemon VmRSS {} -> {} KiB, threads {} -> {} with {count} connected \
         (connected in {:.2} s; {} threads, {} KiB after serving all)",
        before.rss_kib,
        after.rss_kib,
        before.threads,
        after.threads,
        connect_time.as_secs_f64(),
        served.threads,
        served.rss_kib
    );
    if !failed.is_empty() {
        let (i, why) = &failed[0];
        bail!(
            "clients: all served check failed: {} of {count} connections got no answer to a \
             second HELLO; the first, client {}: {why}",
            failed.len(),
            i + 1
        );
    }
    println!(
        "clients: all {count} served (every connection answered a second HELLO, in {:.1} ms)",
        serve_time.as_secs_f64() * 1e3
    );
    check(
        "clients all served",
        format!("all {count} answered"),
        "every client served",
        true,
    );

    // The baseline: a thread-per-connection server holding the same connections.
    let bsock = dir.join("baseline.sock");
    let blog = dir.join("baseline.log");
    let mut server = ChildGuard(
        Command::new(exe)
            .args(["bench", "socket-server"])
            .arg(&bsock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&blog)?)
            .spawn()
            .context("starting the baseline server")?,
    );
    wait_for(&bsock, &mut server)?;
    let bbefore = Usage::of(server.pid())?;
    let mut bconns = Vec::with_capacity(n);
    let mut stopped = None;
    for i in 0..n {
        match baseline_client(&bsock) {
            Ok(fd) => bconns.push(fd),
            Err(e) => {
                stopped = Some(format!(
                    "connection {} failed: {e:#}; server log: {}",
                    i + 1,
                    log_tail(&blog)
                ));
                break;
            }
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let bafter = Usage::of(server.pid())?;
    let reached = bconns.len();
    let mut bserved = 0;
    for (i, fd) in bconns.iter().enumerate() {
        if ping_baseline(fd, 2 + i as u32).is_ok() {
            bserved += 1;
        }
    }
    drop(bconns);
    drop(server);
    println!(
        "clients baseline: thread-per-connection server ({} KiB stacks) VmRSS {} -> {} KiB, \
         threads {} -> {} with {reached} connected ({bserved} served again)",
        BASELINE_STACK / 1024,
        bbefore.rss_kib,
        bafter.rss_kib,
        bbefore.threads,
        bafter.threads
    );
    if let Some(why) = &stopped {
        println!(
            "clients baseline: reached only {reached} of {count} connections ({why}); its \
             figures are for {reached} connections"
        );
    }
    let per = |b: u64, a: u64, k: usize| a.saturating_sub(b) as f64 / k.max(1) as f64;
    figure(
        &format!("clients memory per idle client ({count} connected)"),
        per(before.rss_kib, after.rss_kib, n),
        per(bbefore.rss_kib, bafter.rss_kib, reached),
        "KiB",
    );
    figure(
        &format!("clients daemon threads ({count} connected)"),
        after.threads as f64,
        bafter.threads as f64,
        "threads",
    );
    let added = after.threads.saturating_sub(before.threads);
    let no_thread_per_client = added * 100 < u64::from(count);
    println!(
        "clients: no thread per client: {} (+{added} daemon threads for {count} clients; \
         the bound is {count}/100)",
        if no_thread_per_client { "yes" } else { "NO" }
    );
    check(
        "clients no thread per client",
        format!("+{added} threads for {count} clients"),
        "no thread per client (< COUNT/100 added)",
        no_thread_per_client,
    );
    Ok(())
}

/// The hidden `vchiq bench daemon`: `vchiq daemon` (embedded VideoCore, stops on
/// SIGTERM/SIGINT or when its parent exits) with the client limit raised.
pub(super) fn daemon(socket: PathBuf, max_clients: usize) -> Result<()> {
    let signals = vchiqd::sys::block_termination_signals().context("signal handling")?;
    vchiqd::sys::die_with_parent();
    let mut opts = DaemonOptions::new(socket);
    opts.socket_group = None;
    opts.max_clients = max_clients;
    let daemon = Daemon::start(&opts).context("starting vchiqd")?;
    daemon.run(Some(signals)).context("vchiqd")?;
    Ok(())
}

/// The hidden `vchiq bench socket-server`: a thread per connection (small stacks), each
/// echoing what it receives. A connection it cannot start a thread for is closed.
pub(super) fn socket_server(path: &Path) -> Result<()> {
    vchiqd::sys::die_with_parent();
    let listener = vchiqd::sys::seqpacket_listen(path, 1024)
        .with_context(|| format!("listening on {}", path.display()))?;
    let mut accepted = 0u64;
    let mut said = false;
    loop {
        let conn = match vchiqd::sys::accept(listener.as_fd()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("socket-server: accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        accepted += 1;
        let spawned = std::thread::Builder::new()
            .stack_size(BASELINE_STACK)
            .spawn(move || {
                let mut b = [0u8; 256];
                while let Ok(n) = super::recv_packet(&conn, &mut b) {
                    if n == 0 || super::send_packet(&conn, &b[..n]).is_err() {
                        break;
                    }
                }
            });
        if let Err(e) = spawned {
            if !said {
                eprintln!("socket-server: cannot start a thread for connection {accepted}: {e}");
                said = true;
            }
        }
    }
}
