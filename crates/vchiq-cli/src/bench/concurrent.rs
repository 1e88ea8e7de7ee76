//! `vchiq bench concurrent`: many clients echoing messages at once, each with its own
//! instance, against the same clients over their own socket pairs.

use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vchiq::{Instance, Service};

use super::{Private, check, figure, lock, recv_packet, send_packet, socketpair_seqpacket};

const MSG_ECHO: u32 = 5;
/// The smallest message: kind, client index and sequence number.
const MIN_SIZE: usize = 12;
/// The largest message.
const MAX_SIZE: usize = 256;
/// A message not echoed this long after the last send is lost.
const LOSS_TIMEOUT: Duration = Duration::from_secs(30);

/// Message `seq` of client `client`, written into `buf`; returns its bytes.
fn message(buf: &mut [u8; MAX_SIZE], client: u32, seq: u32) -> &[u8] {
    let span = (MAX_SIZE - MIN_SIZE + 1) as u64;
    let size = MIN_SIZE + ((u64::from(seq) * 7919 + u64::from(client) * 104_729) % span) as usize;
    buf[..4].copy_from_slice(&MSG_ECHO.to_le_bytes());
    buf[4..8].copy_from_slice(&client.to_le_bytes());
    buf[8..12].copy_from_slice(&seq.to_le_bytes());
    let b = (seq as u8) ^ (seq >> 8) as u8;
    for (i, x) in buf[MIN_SIZE..size].iter_mut().enumerate() {
        *x = b.wrapping_add((i as u8).wrapping_mul(31));
    }
    &buf[..size]
}

/// What one client has seen of its echoes.
#[derive(Debug, Default)]
struct Tally {
    /// Replies of any kind (the window counts them, so that a bad reply cannot stall it).
    replies: u32,
    /// Distinct messages echoed correctly.
    echoed: u32,
    /// The sequence number the next reply should have.
    next: u32,
    seen: Vec<bool>,
    reordered: u32,
    corrupted: u32,
}

/// One client's window and tally, fed by its callback (or the baseline's reader).
struct Track {
    client: u32,
    messages: u32,
    state: Mutex<Tally>,
    cv: Condvar,
}

impl Track {
    fn new(client: u32, messages: u32) -> Track {
        Track {
            client,
            messages,
            state: Mutex::new(Tally {
                seen: vec![false; messages as usize],
                ..Tally::default()
            }),
            cv: Condvar::new(),
        }
    }

    /// A reply: it must be the message it echoes, and the next in sequence.
    fn on_reply(&self, data: &[u8]) {
        let mut buf = [0u8; MAX_SIZE];
        let seq = (data.len() >= MIN_SIZE
            && data[..4] == MSG_ECHO.to_le_bytes()
            && data[4..8] == self.client.to_le_bytes())
        .then(|| u32::from_le_bytes([data[8], data[9], data[10], data[11]]))
        .filter(|&s| s < self.messages && message(&mut buf, self.client, s) == data);
        let mut t = lock(&self.state);
        t.replies += 1;
        match seq {
            Some(s) if !t.seen[s as usize] => {
                if s != t.next {
                    t.reordered += 1;
                }
                t.seen[s as usize] = true;
                t.echoed += 1;
                t.next = s + 1;
            }
            // A second echo of the same message.
            Some(_) => t.reordered += 1,
            None => t.corrupted += 1,
        }
        drop(t);
        self.cv.notify_all();
    }

    /// Sends every message through `send`, keeping at most `window` un-echoed, then waits
    /// for the last echoes. Returns when the client finished (all echoed, or nothing moved
    /// for [`LOSS_TIMEOUT`]).
    fn drive(&self, window: u32, mut send: impl FnMut(&[u8]) -> Result<()>) -> Result<Instant> {
        let mut buf = [0u8; MAX_SIZE];
        for seq in 0..self.messages {
            let t = lock(&self.state);
            let (t, _) = self
                .cv
                .wait_timeout_while(t, LOSS_TIMEOUT, |t| seq.saturating_sub(t.replies) >= window)
                .unwrap_or_else(|p| p.into_inner());
            if seq.saturating_sub(t.replies) >= window {
                // Lost messages hold the window shut: stop here, the rest count as lost.
                return Ok(Instant::now());
            }
            drop(t);
            send(message(&mut buf, self.client, seq))?;
        }
        let t = lock(&self.state);
        let (_t, _) = self
            .cv
            .wait_timeout_while(t, LOSS_TIMEOUT, |t| t.replies < self.messages)
            .unwrap_or_else(|p| p.into_inner());
        Ok(Instant::now())
    }

    /// (lost, reordered, corrupted).
    fn result(&self) -> (u64, u64, u64) {
        let t = lock(&self.state);
        (
            u64::from(self.messages - t.echoed),
            u64::from(t.reordered),
            u64::from(t.corrupted),
        )
    }
}

/// What a run measured: elapsed time and the summed (lost, reordered, corrupted).
struct Outcome {
    elapsed: Duration,
    lost: u64,
    reordered: u64,
    corrupted: u64,
}

/// Runs `clients` threads; `client(i, track, start)` sets up client `i`, waits on `start`
/// and drives its messages. Timing runs from the moment every client is set up to the
/// moment the last one finished.
fn run_clients(
    clients: u32,
    messages: u32,
    client: impl Fn(u32, Arc<Track>, Arc<Barrier>) -> Result<Instant> + Send + Sync + 'static,
) -> Result<Outcome> {
    let client = Arc::new(client);
    let start = Arc::new(Barrier::new(clients as usize + 1));
    let mut threads = Vec::new();
    let mut tracks = Vec::new();
    for i in 0..clients {
        let track = Arc::new(Track::new(i, messages));
        tracks.push(track.clone());
        let (client, start) = (client.clone(), start.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("bench-client-{i}"))
                .stack_size(256 * 1024)
                .spawn(move || client(i, track, start))
                .context("starting a client thread")?,
        );
    }
    start.wait();
    let t0 = Instant::now();
    let mut end = t0;
    let mut first_err = None;
    for t in threads {
        match t.join() {
            Ok(Ok(done)) => end = end.max(done),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(anyhow::anyhow!("a client thread panicked"));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let (mut lost, mut reordered, mut corrupted) = (0, 0, 0);
    for t in &tracks {
        let (l, r, c) = t.result();
        lost += l;
        reordered += r;
        corrupted += c;
    }
    Ok(Outcome {
        elapsed: end - t0,
        lost,
        reordered,
        corrupted,
    })
}

/// Each client: its own instance and echo service; the callback checks the echoes.
fn ours(socket: std::path::PathBuf, clients: u32, messages: u32, window: u32) -> Result<Outcome> {
    run_clients(clients, messages, move |i, track, start| {
        // Setting up must not leave the others waiting at the barrier forever.
        let setup = || -> Result<(Instance, Service)> {
            let inst = Instance::connect_to(&socket)
                .with_context(|| format!("concurrent: client {i}: connecting"))?;
            let t = track.clone();
            let svc = super::open_echo(&inst, move |data| t.on_reply(&data))
                .with_context(|| format!("concurrent: client {i}: opening echo"))?;
            Ok((inst, svc))
        };
        let setup = setup();
        start.wait();
        let (inst, svc) = setup?;
        let done = track.drive(window, |m| {
            svc.queue_message(m)
                .with_context(|| format!("concurrent: client {i}: queue_message"))
        })?;
        let _ = svc.remove();
        drop(inst);
        Ok(done)
    })
}

/// Each client: a socket pair to its own echo thread, and a reader thread that checks the
/// echoes as the callback does.
fn baseline(clients: u32, messages: u32, window: u32) -> Result<Outcome> {
    run_clients(clients, messages, move |i, track, start| {
        let setup = || -> Result<_> {
            let (a, b) = socketpair_seqpacket()?;
            let echo = std::thread::Builder::new()
                .name(format!("bench-echo-{i}"))
                .stack_size(128 * 1024)
                .spawn(move || {
                    let mut buf = [0u8; 512];
                    // Messages are never empty: 0 is the client's end.
                    while let Ok(n) = recv_packet(&b, &mut buf) {
                        if n == 0 || send_packet(&b, &buf[..n]).is_err() {
                            break;
                        }
                    }
                })?;
            let rx = a.try_clone()?;
            let t = track.clone();
            let reader = std::thread::Builder::new()
                .name(format!("bench-read-{i}"))
                .stack_size(128 * 1024)
                .spawn(move || {
                    let mut buf = [0u8; 512];
                    while let Ok(n) = recv_packet(&rx, &mut buf) {
                        if n == 0 {
                            break;
                        }
                        t.on_reply(&buf[..n]);
                    }
                })?;
            Ok((a, echo, reader))
        };
        let setup = setup();
        start.wait();
        let (a, echo, reader) = setup?;
        let done = track.drive(window, |m| {
            send_packet(&a, m).context("concurrent baseline: send")
        })?;
        vchiqd::sys::shutdown_socket(std::os::fd::AsFd::as_fd(&a));
        let _ = echo.join();
        let _ = reader.join();
        Ok(done)
    })
}

pub(super) fn run(clients: u32, messages: u32, window: u32) -> Result<()> {
    let clients = clients.max(1);
    let window = window.max(1);
    let total = u64::from(clients) * u64::from(messages);
    let listeners = clients as usize + 8;
    let d = Private::with_options(|o| o.vc.echo_listeners = listeners)?;
    eprintln!(
        "concurrent: {clients} clients x {messages} messages ({MIN_SIZE}..={MAX_SIZE} bytes, \
         window {window}), daemon with {listeners} echo listeners"
    );
    let o = ours(d.socket.clone(), clients, messages, window)?;
    drop(d);
    let b = baseline(clients, messages, window)?;
    let rate = |o: &Outcome| total as f64 / o.elapsed.as_secs_f64().max(1e-9);
    figure(
        &format!("concurrent {clients} clients x {messages} messages"),
        rate(&o),
        rate(&b),
        "msg/s",
    );
    println!(
        "concurrent: {} lost, {} reordered, {} corrupted",
        o.lost, o.reordered, o.corrupted
    );
    let ok = o.lost == 0 && o.reordered == 0 && o.corrupted == 0;
    check(
        "concurrent lost/reordered",
        format!(
            "{} lost, {} reordered, {} corrupted",
            o.lost, o.reordered, o.corrupted
        ),
        "0 lost, 0 reordered",
        ok,
    );
    if b.lost + b.reordered + b.corrupted > 0 {
        bail!(
            "concurrent baseline: {} lost, {} reordered, {} corrupted",
            b.lost,
            b.reordered,
            b.corrupted
        );
    }
    if !ok {
        bail!(
            "concurrent: {} lost, {} reordered, {} corrupted of {total} messages",
            o.lost,
            o.reordered,
            o.corrupted
        );
    }
    Ok(())
}
