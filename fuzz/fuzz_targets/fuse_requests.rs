//! The file node's FUSE request decoder and ioctl argument walker fed hostile requests
//! (in-process: `vchiqd::fuse::fuzzing`, over an embedded VideoCore): INIT, LOOKUP,
//! GETATTR, OPEN, READ, RELEASE, IOCTL in both layouts (`FUSE_IOCTL_32BIT`), INTERRUPT,
//! FORGET, and opcodes the node does not serve (WRITE, POLL, ...).
//!
//! The first message of the input (see `split.rs`) is the caller's memory: it is copied to
//! a fixed address ([`ARENA`], below 4 GiB so that 32-bit pointers reach it), where the
//! pointers in ioctl arguments (message elements, bulk data, completion and message
//! buffers, the config) may point; everything else is unmapped or not ours. Each later
//! message is one request: byte 0 says which header fields the fuzzer keeps (bit 0 `len`,
//! bit 1 `pid`, bit 2 `unique`; otherwise the harness sets the length, this thread's id so
//! the walker reads the arena, and a fresh unique), the rest is the request. Small file
//! handles (below 8) name files really open, small service handles (below 16) services
//! really held (even: the same file's, odd: another file's), and INTERRUPT a request sent
//! before.
//!
//! After every request: no panic, every reply has the length its header says and answers
//! a request sent once, a request on another opener's service fails. After the input:
//! ending the session leaves no instance and no link service.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use vchiq_abi::{Ioctl, Layout};
use vchiqd::fuse::fuzzing::{IOCTL_32BIT, InHeader, IoctlIn, Node, opcode};
use vchiqd::limits::Limits;
use vchiqd::server::fuzzing::Harness;
use zerocopy::{FromBytes, IntoBytes};

#[path = "split.rs"]
mod split;

/// Where the caller's memory is mapped.
const ARENA: usize = 0x4000_0000;
/// Its size.
const ARENA_SIZE: usize = 64 * 1024;
/// Requests per input.
const MAX_STEPS: usize = 48;

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let limits = Limits {
            services_per_instance: 8,
            queued_bytes_per_instance: 64 * 1024,
            completions_per_instance: 32,
            node_requests_per_opener: 8,
            ..Limits::default()
        };
        Harness::new(limits).expect("the embedded VideoCore starts")
    })
}

/// Maps the arena once; returns it as a slice of atomics-free bytes owned by this target.
fn arena() -> &'static mut [u8] {
    static MAPPED: OnceLock<usize> = OnceLock::new();
    let addr = *MAPPED.get_or_init(|| {
        // SAFETY: a fresh anonymous private mapping at an address nothing else uses
        // (MAP_FIXED_NOREPLACE fails instead of replacing an existing mapping).
        let p = unsafe {
            libc::mmap(
                ARENA as *mut libc::c_void,
                ARENA_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        assert_eq!(p as usize, ARENA, "the arena maps at its fixed address");
        p as usize
    });
    // SAFETY: the mapping above is ARENA_SIZE bytes, readable and writable, lives for the
    // process, and only the fuzzing thread (one input at a time) takes this slice; the
    // daemon writes into it only through process_vm_writev while a request is served.
    unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, ARENA_SIZE) }
}

fn tid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// A request sent and not yet answered.
struct Sent {
    opcode: u32,
    ioctl: Option<(Ioctl, Layout)>,
    fh: u64,
    foreign: bool,
}

#[derive(Default)]
struct State {
    /// Open file handles, in the order OPEN gave them.
    fhs: Vec<u64>,
    /// Service handles per file handle.
    handles: HashMap<u64, Vec<u32>>,
    sent: HashMap<u64, Sent>,
    /// Uniques the fuzzer chose (may repeat; not checked).
    raw_uniques: HashSet<u64>,
    uniques: Vec<u64>,
}

impl State {
    fn collect(&mut self, node: &mut Node) {
        for r in node.replies().expect("replies are well-formed") {
            assert!(
                (-4095..=0).contains(&r.error),
                "reply error {} is not a negated errno",
                r.error
            );
            if std::env::var_os("FUSE_REQUESTS_TRACE").is_some() {
                let op = self.sent.get(&r.unique).map(|s| (s.opcode, s.ioctl));
                eprintln!("{:?} -> error {} ({} B)", op, r.error, r.payload.len());
            }
            let Some(sent) = self.sent.remove(&r.unique) else {
                assert!(
                    self.raw_uniques.contains(&r.unique),
                    "reply to {}, which is not pending",
                    r.unique
                );
                continue;
            };
            if sent.opcode == opcode::OPEN && r.error == 0 && r.payload.len() >= 8 {
                let fh = u64::from_le_bytes(r.payload[..8].try_into().unwrap());
                self.fhs.push(fh);
            }
            let Some((ioctl, layout)) = sent.ioctl else {
                continue;
            };
            let result = (r.error == 0 && r.payload.len() >= 4)
                .then(|| i32::from_le_bytes(r.payload[..4].try_into().unwrap()));
            if ioctl == Ioctl::CreateService && result == Some(0) {
                // The handle is the struct's last field but for LP64's padding.
                let off = 16 + if layout == Layout::Lp64 { 40 } else { 24 };
                if let Some(b) = r.payload.get(off..off + 4) {
                    let h = u32::from_le_bytes(b.try_into().unwrap());
                    self.handles.entry(sent.fh).or_default().push(h);
                }
            }
            if sent.foreign {
                let harmless = ioctl == Ioctl::GetClientId && result == Some(0);
                assert!(
                    r.error < 0 || harmless,
                    "{ioctl:?} on another opener's service answered {result:?}"
                );
            }
        }
    }

    fn settle(&mut self, node: &mut Node) {
        // Deferred requests answer from a worker; parked ones may never. Wait while the
        // count of pending requests moves, a bounded time.
        let t0 = Instant::now();
        let mut last = (node.pending(), Instant::now());
        loop {
            self.collect(node);
            let p = node.pending();
            if p == 0 || t0.elapsed() > Duration::from_millis(300) {
                return;
            }
            if p != last.0 {
                last = (p, Instant::now());
            } else if last.1.elapsed() > Duration::from_millis(5) {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// `v` below 16 mapped to a service of `fh` (even) or of another file (odd).
    fn map_handle(&self, v: u32, fh: u64) -> (u32, bool) {
        if v >= 16 {
            return (v, false);
        }
        let own = self.handles.get(&fh).cloned().unwrap_or_default();
        let other: Vec<u32> = self
            .handles
            .iter()
            .filter(|(f, _)| **f != fh)
            .flat_map(|(_, h)| h.iter().copied())
            .collect();
        let list = if v % 2 == 0 { &own } else { &other };
        match list.get((v / 2) as usize % list.len().max(1)) {
            Some(&h) => (h, v % 2 == 1),
            None => (v, false),
        }
    }
}

fn handle_in_arg(i: Ioctl) -> bool {
    matches!(
        i,
        Ioctl::RemoveService
            | Ioctl::CloseService
            | Ioctl::UseService
            | Ioctl::ReleaseService
            | Ioctl::GetClientId
            | Ioctl::CloseDelivered
    )
}

fn handle_in_struct(i: Ioctl) -> bool {
    matches!(
        i,
        Ioctl::QueueMessage
            | Ioctl::QueueBulkTransmit
            | Ioctl::QueueBulkReceive
            | Ioctl::DequeueMessage
            | Ioctl::SetServiceOption
    )
}

fuzz_target!(|data: &[u8]| {
    let driver = harness().driver().clone();
    assert_eq!(
        driver.instance_count(),
        0,
        "an earlier input leaked an instance"
    );
    let messages = split::messages(data);
    let Some((memory, requests)) = messages.split_first() else {
        return;
    };
    let arena = arena();
    arena.fill(0);
    arena[..memory.len()].copy_from_slice(memory);
    let mut node = Node::new(driver.clone()).expect("a node session");
    let mut st = State::default();
    let mut next_unique = 1u64 << 32;
    for m in requests.iter().take(MAX_STEPS) {
        let Some((&sel, body)) = m.split_first() else {
            continue;
        };
        let mut req = body.to_vec();
        let hl = size_of::<InHeader>();
        if req.len() < hl {
            node.request(&req); // short: ignored, no reply
            continue;
        }
        let (mut hdr, _) = InHeader::read_from_prefix(&req).unwrap();
        if sel & 1 == 0 {
            hdr.len = req.len() as u32;
        }
        if sel & 2 == 0 {
            hdr.pid = tid();
        }
        let raw_unique = sel & 4 != 0;
        if !raw_unique {
            hdr.unique = next_unique;
            next_unique += 1;
        }
        let mut sent = Sent {
            opcode: hdr.opcode,
            ioctl: None,
            fh: 0,
            foreign: false,
        };
        let map_fh = |v: u64| -> u64 {
            if v < 8 && !st.fhs.is_empty() {
                st.fhs[v as usize % st.fhs.len()]
            } else {
                v
            }
        };
        let body_at = |req: &[u8], off: usize| -> Option<u64> {
            req.get(hl + off..hl + off + 8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
        };
        match hdr.opcode {
            opcode::READ | opcode::RELEASE | opcode::IOCTL => {
                if let Some(v) = body_at(&req, 0) {
                    sent.fh = map_fh(v);
                    req[hl..hl + 8].copy_from_slice(&sent.fh.to_le_bytes());
                }
            }
            opcode::INTERRUPT => {
                if let Some(v) = body_at(&req, 0) {
                    if v < 64 && !st.uniques.is_empty() {
                        let u = st.uniques[v as usize % st.uniques.len()];
                        req[hl..hl + 8].copy_from_slice(&u.to_le_bytes());
                    }
                }
            }
            _ => {}
        }
        if hdr.opcode == opcode::IOCTL {
            if let Ok((mut io, _)) = IoctlIn::read_from_prefix(&req[hl..]) {
                let layout = if io.flags & IOCTL_32BIT != 0 {
                    Layout::Ilp32
                } else {
                    Layout::Lp64
                };
                let ioctl = Ioctl::decode(io.cmd)
                    .map(|(i, _)| i)
                    .filter(|i| i.number(layout) == io.cmd);
                sent.ioctl = ioctl.map(|i| (i, layout));
                let il = size_of::<IoctlIn>();
                if let Some(i) = ioctl {
                    if handle_in_arg(i) {
                        let (h, f) = st.map_handle(io.arg as u32, sent.fh);
                        io.arg = u64::from(h);
                        sent.foreign = f;
                        req[hl..hl + il].copy_from_slice(io.as_bytes());
                    }
                    let at = hl + il;
                    if handle_in_struct(i) && req.len() >= at + 4 {
                        let v = u32::from_le_bytes(req[at..at + 4].try_into().unwrap());
                        let (h, f) = st.map_handle(v, sent.fh);
                        req[at..at + 4].copy_from_slice(&h.to_le_bytes());
                        sent.foreign = f;
                    }
                }
            }
        }
        req[..hl].copy_from_slice(hdr.as_bytes());
        let replies = !matches!(
            hdr.opcode,
            opcode::INTERRUPT | opcode::FORGET | opcode::BATCH_FORGET
        );
        if raw_unique {
            st.raw_uniques.insert(hdr.unique);
        } else if replies {
            st.sent.insert(hdr.unique, sent);
        }
        st.uniques.push(hdr.unique);
        node.request(&req);
        st.settle(&mut node);
        assert_eq!(driver.instance_count(), node.open_files());
    }
    node.end();
    assert_eq!(
        driver.instance_count(),
        0,
        "ending the node left an instance"
    );
    let t0 = Instant::now();
    while !driver.link().services().is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the ended node left services on the link: {:?}",
            driver.link().services()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
});
