//! `vchiq bench pipeline`: the `vchiq test -p` pattern (N async or oneway messages, then
//! one sync and a wait for its reply) against the same protocol over a socket pair.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vchiq::Instance;

use super::{Private, figure, lock, median, recv_packet, send_packet, socketpair_seqpacket, us};

const MSG_ONEWAY: u32 = 1;
const MSG_ASYNC: u32 = 2;
const MSG_SYNC: u32 = 3;
const MSG_ECHO: u32 = 5;
/// Baseline only: the server answers `BYE` and ends.
const MSG_STOP: u32 = 0xffff;
const BYE: &[u8] = b"bye\0";

/// How long a sync reply may take before the benchmark fails.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// The replies one side has seen (vchiq's callback or the baseline's reader thread).
#[derive(Default)]
struct Replies {
    state: Mutex<ReplyState>,
    cv: Condvar,
}

#[derive(Clone, Debug, Default)]
struct ReplyState {
    /// Zero-length replies (MSG_ASYNC).
    empty: u64,
    /// One-byte replies (MSG_SYNC).
    syncs: u64,
    /// `empty` when the last sync reply arrived.
    empty_at_sync: u64,
    /// Anything else (e.g. an error string from the echo service).
    other: u64,
    first_other: Option<Vec<u8>>,
}

impl Replies {
    fn on_reply(&self, data: &[u8]) {
        let mut s = lock(&self.state);
        match data.len() {
            0 => s.empty += 1,
            1 => {
                s.syncs += 1;
                s.empty_at_sync = s.empty;
            }
            _ => {
                s.other += 1;
                if s.first_other.is_none() {
                    s.first_other = Some(data.to_vec());
                }
            }
        }
        if data.len() == 1 {
            self.cv.notify_all();
        }
    }

    /// Waits for sync reply number `k` (counted from 1).
    fn wait_sync(&self, k: u64) -> Option<ReplyState> {
        let s = lock(&self.state);
        let (s, _) = self
            .cv
            .wait_timeout_while(s, SYNC_TIMEOUT, |s| s.syncs < k)
            .unwrap_or_else(|p| p.into_inner());
        (s.syncs >= k).then(|| s.clone())
    }
}

/// Checks the replies after iteration `k`: exactly `k * expected` zero-length replies
/// before the sync reply, and nothing else.
fn check(what: &str, st: Option<ReplyState>, k: u64, expected: u64) -> Result<()> {
    let Some(st) = st else {
        bail!("{what}: no reply to the sync message of iteration {k} within 30 s");
    };
    if st.other > 0 {
        bail!(
            "{what}: {} unexpected replies, the first {:?}",
            st.other,
            String::from_utf8_lossy(st.first_other.as_deref().unwrap_or_default())
        );
    }
    if st.syncs != k {
        bail!("{what}: {} sync replies after {k} syncs", st.syncs);
    }
    if st.empty_at_sync != k * expected {
        bail!(
            "{what}: {} zero-length replies before sync {k}, expected {} ({expected} per iteration)",
            st.empty_at_sync,
            k * expected
        );
    }
    Ok(())
}

fn word(kind: u32) -> [u8; 4] {
    kind.to_le_bytes()
}

/// The baseline: a server thread that answers like the echo service and a reader thread
/// that counts the replies, over a SOCK_SEQPACKET socket pair.
struct Baseline {
    tx: std::os::fd::OwnedFd,
    replies: Arc<Replies>,
    server: Option<std::thread::JoinHandle<()>>,
    reader: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Baseline {
    fn start() -> Result<Baseline> {
        let (a, b) = socketpair_seqpacket()?;
        let server = std::thread::Builder::new()
            .name("bench-pipe-srv".into())
            .spawn(move || {
                let mut buf = vec![0u8; 4096];
                loop {
                    // Client messages are at least 4 bytes: 0 is the client's end.
                    let n = match recv_packet(&b, &mut buf) {
                        Ok(n) if n > 0 => n,
                        _ => return,
                    };
                    let kind =
                        (n >= 4).then(|| u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]));
                    let r = match kind {
                        None => send_packet(&b, b"Message too short\0"),
                        Some(MSG_ONEWAY) => Ok(()),
                        Some(MSG_ASYNC) => send_packet(&b, &[]),
                        Some(MSG_SYNC) => send_packet(&b, &[0]),
                        Some(MSG_ECHO) => send_packet(&b, &buf[..n]),
                        Some(MSG_STOP) => {
                            let _ = send_packet(&b, BYE);
                            return;
                        }
                        Some(_) => send_packet(&b, b"Unexpected message type\0"),
                    };
                    if r.is_err() {
                        return;
                    }
                }
            })?;
        let rx = a.try_clone()?;
        let replies = Arc::new(Replies::default());
        let r = replies.clone();
        let reader = std::thread::Builder::new()
            .name("bench-pipe-rd".into())
            .spawn(move || -> Result<()> {
                let mut buf = vec![0u8; 4096];
                loop {
                    let n = recv_packet(&rx, &mut buf).context("pipeline baseline: recv")?;
                    if buf[..n] == *BYE {
                        return Ok(());
                    }
                    r.on_reply(&buf[..n]);
                    // A zero-length read is also what a closed peer returns: bound it.
                    if lock(&r.state).empty > 1 << 40 {
                        bail!("pipeline baseline: the server went away");
                    }
                }
            })?;
        Ok(Baseline {
            tx: a,
            replies,
            server: Some(server),
            reader: Some(reader),
        })
    }

    fn stop(mut self) -> Result<()> {
        send_packet(&self.tx, &word(MSG_STOP))?;
        if let Some(s) = self.server.take() {
            let _ = s.join();
        }
        match self.reader.take().map(|r| r.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => bail!("pipeline baseline: the reader thread panicked"),
            None => Ok(()),
        }
    }
}

pub(super) fn run(count: u32, iters: u32) -> Result<()> {
    let d = Private::start()?;
    let inst = Instance::connect_to(&d.socket)?;
    for (kind, name, replies_per_iter) in [
        (MSG_ASYNC, "async", u64::from(count)),
        (MSG_ONEWAY, "oneway", 0),
    ] {
        let replies = Arc::new(Replies::default());
        let r = replies.clone();
        let svc = super::open_echo(&inst, move |data| r.on_reply(&data))?;
        let base = Baseline::start()?;
        let what = format!("pipeline {count} {name}");
        let msg = word(kind);
        let sync = word(MSG_SYNC);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        // Iteration 0 is the warm-up; vchiq and the baseline alternate.
        for k in 0..=u64::from(iters) {
            let t = Instant::now();
            for _ in 0..count {
                svc.queue_message(&msg)?;
            }
            svc.queue_message(&sync)?;
            let st = replies.wait_sync(k + 1);
            let e = t.elapsed();
            check(&what, st, k + 1, replies_per_iter)?;
            let t = Instant::now();
            for _ in 0..count {
                send_packet(&base.tx, &msg)?;
            }
            send_packet(&base.tx, &sync)?;
            let st = base.replies.wait_sync(k + 1);
            let be = t.elapsed();
            check(&format!("{what} baseline"), st, k + 1, replies_per_iter)?;
            if k > 0 {
                ours.push(e / (count + 1));
                theirs.push(be / (count + 1));
            }
        }
        // Nothing may follow the last sync reply (an extra or late reply).
        std::thread::sleep(Duration::from_millis(50));
        let last = u64::from(iters) + 1;
        for (side, r) in [
            (what.clone(), &replies),
            (format!("{what} baseline"), &base.replies),
        ] {
            let st = lock(&r.state).clone();
            if st.empty != last * replies_per_iter || st.syncs != last || st.other != 0 {
                bail!(
                    "{side}: after the last sync, {} zero-length, {} sync and {} other replies \
                     (expected {}, {last} and 0)",
                    st.empty,
                    st.syncs,
                    st.other,
                    last * replies_per_iter
                );
            }
        }
        base.stop()?;
        let _ = svc.remove();
        figure(&what, us(median(ours)), us(median(theirs)), "us/msg");
    }
    drop(inst);
    drop(d);
    Ok(())
}
