//! Whole request sequences of the daemon's socket protocol, from two clients at once,
//! against the daemon's own request handling over an embedded VideoCore (in-process:
//! `vchiqd::server::fuzzing`). Each message of the input (see `split.rs`) is one request:
//!
//! - byte 0 picks the client (bit 0), attaches a sealed memfd to a bulk (bit 1), keeps the
//!   fuzzer's magic instead of the valid one (bit 2), and makes the client hang up and
//!   reconnect after this request (bit 3);
//! - the rest is the frame: a request header and its payload. The harness sets the tag
//!   (unique per request), and maps small handles (below 16) to handles the clients really
//!   hold, its own or the other client's, and CANCEL's target to an earlier tag.
//!
//! After every request: no panic, every reply answers a request of that client once, a
//! request on the other client's handle fails, the two clients' handles stay disjoint and
//! no client holds more than the limits allow. After the input: ending both connections
//! leaves no instance and no service behind.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use vchiq_abi::wire::{self, Op, RequestHeader};
use vchiqd::limits::Limits;
use vchiqd::server::fuzzing::{Harness, Session};

#[path = "split.rs"]
mod split;

/// Small limits, so that inputs reach them.
const LIMITS: Limits = Limits {
    instances_per_uid: 1024,
    services_per_instance: 8,
    queued_bytes_per_instance: 64 * 1024,
    completions_per_instance: 32,
    node_requests_per_opener: 8,
};

/// Requests per input (each may wait for the VideoCore).
const MAX_STEPS: usize = 48;

/// How long a request may keep its connection busy (pooled, stalled) before the next.
const SETTLE: Duration = Duration::from_millis(300);

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| Harness::new(LIMITS).expect("the embedded VideoCore starts"))
}

/// What a request was, for checking its reply.
struct Sent {
    op: Option<Op>,
    /// It named a handle of the other client.
    foreign: bool,
}

struct Client {
    session: Session,
    /// Handles CREATE_SERVICE gave this client.
    created: Vec<u32>,
    sent: HashMap<u32, Sent>,
    tags: Vec<u32>,
}

impl Client {
    fn new(id: u32) -> Client {
        Client {
            session: harness().session(id, id).expect("a session opens"),
            created: Vec::new(),
            sent: HashMap::new(),
            tags: Vec::new(),
        }
    }

    /// Reads the replies there are and checks each against its request.
    fn collect(&mut self) {
        let replies = self.session.replies().expect("replies are well-formed");
        for r in replies {
            let tag = r.header.tag;
            assert_ne!(
                tag,
                wire::REFUSED_TAG,
                "a connected client is never refused"
            );
            let sent = self
                .sent
                .remove(&tag)
                .unwrap_or_else(|| panic!("reply to tag {tag}, not pending on this client"));
            let result = r.header.result;
            if std::env::var_os("SOCKET_SESSION_TRACE").is_some() {
                eprintln!(
                    "client {}: {:?} tag {tag} -> {result} ({} B)",
                    self.session.client_id(),
                    sent.op,
                    r.payload.len()
                );
            }
            if sent.op == Some(Op::CreateService) && result > 0 {
                let h = u32::try_from(result).expect("handles are u32");
                self.created.push(h);
            }
            if sent.foreign && result >= 0 {
                // GET_CLIENT_ID answers 0 for a handle that is not the caller's.
                let harmless = sent.op == Some(Op::GetClientId) && result == 0;
                assert!(
                    harmless,
                    "{:?} on the other client's handle answered {result}",
                    sent.op
                );
            }
        }
    }

    /// Lets pooled and stalled requests finish (bounded), reading replies meanwhile.
    fn settle(&mut self) {
        let t0 = Instant::now();
        loop {
            self.collect();
            if self.session.pooled() == 0 && !self.session.backlogged() {
                return;
            }
            if t0.elapsed() > SETTLE {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

fn ops_with_handle_arg(op: Op) -> bool {
    matches!(
        op,
        Op::RemoveService
            | Op::CloseService
            | Op::UseService
            | Op::ReleaseService
            | Op::GetClientId
            | Op::CloseDelivered
    )
}

fn ops_with_handle_payload(op: Op) -> bool {
    matches!(
        op,
        Op::QueueMessage
            | Op::QueueBulkTransmit
            | Op::QueueBulkReceive
            | Op::DequeueMessage
            | Op::SetServiceOption
    )
}

/// Maps `v` below 16 to a live handle: even to one of `own`, odd to one of `other`.
/// Returns the handle and whether it is the other client's.
fn map_handle(v: u32, own: &[u32], other: &[u32]) -> (u32, bool) {
    if v >= 16 {
        return (v, other.contains(&v));
    }
    let list = if v % 2 == 0 { own } else { other };
    match list.get((v / 2) as usize % list.len().max(1)) {
        Some(&h) => (h, v % 2 == 1),
        None => (v, false),
    }
}

fn check_invariants(clients: &[Client; 2]) {
    let counts = [clients[0].session.counts(), clients[1].session.counts()];
    for (i, c) in counts.iter().enumerate() {
        assert!(
            c.services.len() <= LIMITS.services_per_instance,
            "client {i} holds {} services",
            c.services.len()
        );
        // Requests that queue completions without a message are refused at the limit;
        // what was already on its way (at most 4 bulks and an open and a close per
        // service) may still arrive.
        let most = LIMITS.completions_per_instance + 6 * LIMITS.services_per_instance;
        assert!(
            c.completions_without_message <= most,
            "client {i} holds {} completions without a message",
            c.completions_without_message
        );
        for h in &c.services {
            assert!(
                !counts[1 - i].services.contains(h),
                "handle {h} is held by both clients"
            );
        }
        for h in &clients[i].created {
            assert!(
                !counts[1 - i].services.contains(h),
                "handle {h}, created by client {i}, is the other's"
            );
        }
    }
    assert_eq!(harness().driver().instance_count(), 2);
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let driver = h.driver();
    assert_eq!(
        driver.instance_count(),
        0,
        "an earlier input leaked an instance"
    );
    let mut next_tag = 1u32;
    let mut clients = [Client::new(1001), Client::new(1002)];
    for m in split::messages(data).into_iter().take(MAX_STEPS) {
        let Some((&sel, body)) = m.split_first() else {
            continue;
        };
        let which = usize::from(sel & 1);
        if clients[which].session.backlogged() {
            // The loop would not read this request yet.
            clients[which].settle();
            if clients[which].session.backlogged() {
                continue;
            }
        }
        let mut frame = body.to_vec();
        let tag = next_tag;
        next_tag += 1;
        let mut op = None;
        let mut foreign = false;
        let mut fds = Vec::new();
        // CANCEL has no reply of its own, unless its flags are refused (EINVAL).
        let mut silent = false;
        if frame.len() >= size_of::<RequestHeader>() {
            let own = clients[which].created.clone();
            let other = clients[1 - which].created.clone();
            let mut hdr: RequestHeader = zerocopy::FromBytes::read_from_prefix(&frame)
                .map(|(h, _)| h)
                .unwrap();
            if sel & 4 == 0 {
                hdr.magic = wire::REQUEST_MAGIC;
            }
            hdr.tag = tag;
            op = Op::from_u32(hdr.op);
            silent = op == Some(Op::Cancel) && hdr.flags == 0;
            if let Some(o) = op {
                if ops_with_handle_arg(o) {
                    let (hd, f) = map_handle(hdr.arg as u32, &own, &other);
                    hdr.arg = u64::from(hd);
                    foreign = f;
                }
                if o == Op::Cancel {
                    let tags = &clients[which].tags;
                    if !tags.is_empty() {
                        hdr.arg = u64::from(tags[hdr.arg as usize % tags.len()]);
                    }
                }
            }
            let hl = size_of::<RequestHeader>();
            frame[..hl].copy_from_slice(zerocopy::IntoBytes::as_bytes(&hdr));
            if let Some(o) = op.filter(|&o| ops_with_handle_payload(o)) {
                if frame.len() >= hl + 4 {
                    let v = u32::from_le_bytes(frame[hl..hl + 4].try_into().unwrap());
                    let (hd, f) = map_handle(v, &own, &other);
                    frame[hl..hl + 4].copy_from_slice(&hd.to_le_bytes());
                    foreign = f;
                }
                if sel & 2 != 0 && matches!(o, Op::QueueBulkTransmit | Op::QueueBulkReceive) {
                    // The memfd's size: the request's, capped (a hostile size is still
                    // the request's own), shrunk when the low bit of the header's arg says
                    // so.
                    let size = frame
                        .get(hl + 4..hl + 8)
                        .map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()))
                        .min(1 << 20);
                    let size = if hdr.arg & 1 != 0 { size / 2 } else { size };
                    let fill = vec![0x5a; size as usize];
                    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
                    if let Ok(fd) = vchiqd::sys::sealed_memfd(&fill, u64::from(size), seals) {
                        fds.push(fd);
                    }
                }
            }
        }
        let c = &mut clients[which];
        c.sent.insert(tag, Sent { op, foreign });
        c.tags.push(tag);
        let framing = c.session.request(&frame, fds);
        let bad_frame = frame.len() < size_of::<RequestHeader>()
            || frame[..4] != wire::REQUEST_MAGIC.to_le_bytes();
        assert_eq!(
            framing.is_err(),
            bad_frame,
            "only a malformed frame ends a connection"
        );
        if silent || framing.is_err() {
            c.sent.remove(&tag); // no reply of its own
        }
        c.settle();
        if framing.is_err() || sel & 8 != 0 {
            // The connection ends (the loop closes it, or the client hangs up); it comes
            // back as a new one.
            let id = c.session.client_id();
            let old = std::mem::replace(c, Client::new(id));
            old.session.end();
        }
        check_invariants(&clients);
    }
    for c in clients {
        c.session.end();
    }
    assert_eq!(
        driver.instance_count(),
        0,
        "an ended connection left its instance"
    );
    // A service being closed frees its port when the VideoCore answers the CLOSE.
    let t0 = Instant::now();
    while !driver.link().services().is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "ended connections left services on the link: {:?}",
            driver.link().services()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
});
