//! One-way throughput and round-trip latency of the link, between two threads and between two
//! processes, against a `socketpair(AF_UNIX, SOCK_SEQPACKET)` baseline measured in the same run.
//!
//! Every message starts with a tag byte: `S` = sink (dropped), `E` = echo it back, `Y` = reply
//! with one byte (ends a one-way batch), `Q` = peer process exits. The peer process is this
//! bench binary re-executed with `VCHIQ_LINK_PEER_ROLE` set.

#[path = "../tests/common/fdpass.rs"]
mod fdpass;

use std::os::fd::{AsFd, OwnedFd};
use std::process::Child;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use vchiq_link::{
    Error, EventFd, FourCc, Link, LinkConfig, ServiceEvent, ServiceHandle, ServiceHandler,
    ServiceParams, SharedMemory,
};

use fdpass::{CHILD_ENV, receive_fds, spawn_with_fds};

const SIZES: [usize; 3] = [64, 1024, 4088];

fn params() -> ServiceParams {
    ServiceParams {
        fourcc: FourCc::new(b"bnch"),
        version: 1,
        version_min: 1,
    }
}

fn config() -> LinkConfig {
    LinkConfig {
        data_slots_per_side: 31,
        bulk_arena_size: 1 << 20,
    }
}

/// The answering side of a link: echoes `E`, answers `Y`, exits on `Q` (in a peer process).
fn serve(link: &Link) -> Arc<OnceLock<ServiceHandle>> {
    let me: Arc<OnceLock<ServiceHandle>> = Arc::new(OnceLock::new());
    let (spill_tx, spill_rx): (Sender<Vec<u8>>, Receiver<Vec<u8>>) = channel();
    let l2 = link.clone();
    let m2 = me.clone();
    std::thread::spawn(move || {
        for d in spill_rx {
            if let Some(&h) = m2.get() {
                let _ = l2.queue_message(h, &[&d], true);
            }
        }
    });
    let l3 = link.clone();
    let m3 = me.clone();
    let spill = Mutex::new(spill_tx);
    let handler = move |h: ServiceHandle, e: ServiceEvent| {
        if let ServiceEvent::Message(m) = e {
            let reply: Option<&[u8]> = match m.data().first() {
                Some(b'E') => Some(m.data()),
                Some(b'Y') => Some(b"Y"),
                Some(b'Q') => std::process::exit(0),
                _ => None,
            };
            if let Some(r) = reply {
                let _ = m3.set(h);
                if let Err(Error::WouldBlock) = l3.queue_message(h, &[r], false) {
                    drop(spill.lock().unwrap().send(r.to_vec()));
                }
            }
        }
    };
    link.add_service(params(), Arc::new(handler)).unwrap();
    me
}

trait Peer {
    fn send(&mut self, msg: &[u8]);
    fn wait_reply(&mut self);
}

struct LinkPeer {
    link: Link,
    h: ServiceHandle,
    replies: Receiver<()>,
    other: Option<Link>,
    child: Option<Child>,
}

impl Peer for LinkPeer {
    fn send(&mut self, msg: &[u8]) {
        self.link.queue_message(self.h, &[msg], true).unwrap();
    }
    fn wait_reply(&mut self) {
        self.replies.recv().unwrap();
    }
}

impl Drop for LinkPeer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = self.link.queue_message(self.h, &[b"Q"], true);
            let _ = c.wait();
        }
        self.link.shutdown();
        if let Some(o) = &self.other {
            o.shutdown();
        }
    }
}

fn link_client(link: Link, other: Option<Link>, child: Option<Child>) -> LinkPeer {
    link.wait_remote_initialised(Duration::from_secs(30))
        .unwrap();
    link.connect().unwrap();
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    let handler: Arc<dyn ServiceHandler> = Arc::new(move |_h: ServiceHandle, e: ServiceEvent| {
        if let ServiceEvent::Message(m) = e {
            drop(m);
            let _ = tx.lock().unwrap().send(());
        }
    });
    let h = link
        .open_service(params(), std::process::id(), handler)
        .unwrap();
    LinkPeer {
        link,
        h,
        replies: rx,
        other,
        child,
    }
}

fn link_thread_peer() -> LinkPeer {
    let mem = SharedMemory::create("vchiq-bench", config().memory_size()).unwrap();
    let mem2 = SharedMemory::from_fd(mem.fd().try_clone_to_owned().unwrap()).unwrap();
    let (bs, bm) = (EventFd::new().unwrap(), EventFd::new().unwrap());
    let (bs2, bm2) = (
        EventFd::from_fd(bs.fd().try_clone_to_owned().unwrap()).unwrap(),
        EventFd::from_fd(bm.fd().try_clone_to_owned().unwrap()).unwrap(),
    );
    let slave = Link::slave(mem, config(), bs, bm).unwrap();
    let master = Link::master(mem2, bm2, bs2).unwrap();
    serve(&master);
    let m2 = master.clone();
    let t = std::thread::spawn(move || m2.connect().unwrap());
    let peer = link_client(slave, Some(master), None);
    t.join().unwrap();
    peer
}

fn link_process_peer() -> LinkPeer {
    let mem = SharedMemory::create("vchiq-bench", config().memory_size()).unwrap();
    let (bs, bm) = (EventFd::new().unwrap(), EventFd::new().unwrap());
    let fds: Vec<OwnedFd> = vec![
        mem.fd().try_clone_to_owned().unwrap(),
        bs.fd().try_clone_to_owned().unwrap(),
        bm.fd().try_clone_to_owned().unwrap(),
    ];
    let slave = Link::slave(mem, config(), bs, bm).unwrap();
    let b: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
    let child = spawn_with_fds("link", &[], &b);
    link_client(slave, None, Some(child))
}

fn link_child() {
    let mut fds = receive_fds().into_iter();
    let mem = SharedMemory::from_fd(fds.next().unwrap()).unwrap();
    let bs = EventFd::from_fd(fds.next().unwrap()).unwrap();
    let bm = EventFd::from_fd(fds.next().unwrap()).unwrap();
    let master = Link::master(mem, bm, bs).unwrap();
    serve(&master);
    master.connect().unwrap();
    // Runs until the parent sends `Q` (or dies: then stdin's socket closes).
    let mut b = [0u8; 1];
    let _ = std::io::Read::read(&mut std::io::stdin(), &mut b);
    std::thread::sleep(Duration::from_secs(3600));
}

struct SockPeer {
    fd: OwnedFd,
    buf: Vec<u8>,
    child: Option<Child>,
}

impl Peer for SockPeer {
    fn send(&mut self, msg: &[u8]) {
        rustix::net::send(&self.fd, msg, SendFlags::empty()).unwrap();
    }
    fn wait_reply(&mut self) {
        rustix::net::recv(&self.fd, &mut self.buf[..], RecvFlags::empty()).unwrap();
    }
}

impl Drop for SockPeer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = rustix::net::send(&self.fd, b"Q", SendFlags::empty());
            let _ = c.wait();
        }
    }
}

fn sock_serve(fd: OwnedFd) {
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match rustix::net::recv(&fd, &mut buf[..], RecvFlags::empty()) {
            Ok((n, _)) if n > 0 => n,
            _ => return,
        };
        match buf[0] {
            b'E' => drop(rustix::net::send(&fd, &buf[..n], SendFlags::empty())),
            b'Y' => drop(rustix::net::send(&fd, b"Y", SendFlags::empty())),
            b'Q' => return,
            _ => {}
        }
    }
}

fn socketpair() -> (OwnedFd, OwnedFd) {
    rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap()
}

fn sock_thread_peer() -> SockPeer {
    let (a, b) = socketpair();
    std::thread::spawn(move || sock_serve(b));
    SockPeer {
        fd: a,
        buf: vec![0; 8192],
        child: None,
    }
}

fn sock_process_peer() -> SockPeer {
    let (a, b) = socketpair();
    let child = spawn_with_fds("socket", &[], &[b.as_fd()]);
    drop(b);
    SockPeer {
        fd: a,
        buf: vec![0; 8192],
        child: Some(child),
    }
}

fn sock_child() {
    let fd = receive_fds().into_iter().next().unwrap();
    sock_serve(fd);
}

fn bench_transport(c: &mut Criterion, name: &str, mut peer: Box<dyn Peer>) {
    let mut g = c.benchmark_group(format!("oneway/{name}"));
    for size in SIZES {
        let mut msg = vec![0u8; size];
        msg[0] = b'S';
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    peer.send(&msg);
                }
                peer.send(b"Y");
                peer.wait_reply();
                t.elapsed()
            });
        });
    }
    g.finish();
    let mut g = c.benchmark_group(format!("roundtrip/{name}"));
    for size in SIZES {
        let mut msg = vec![0u8; size];
        msg[0] = b'E';
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| {
                peer.send(&msg);
                peer.wait_reply();
            });
        });
    }
    g.finish();
}

fn main() {
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("link") => return link_child(),
        Ok("socket") => return sock_child(),
        _ => {}
    }
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300))
        .sample_size(10)
        .configure_from_args();
    bench_transport(&mut c, "link-thread", Box::new(link_thread_peer()));
    bench_transport(&mut c, "socket-thread", Box::new(sock_thread_peer()));
    bench_transport(&mut c, "link-process", Box::new(link_process_peer()));
    bench_transport(&mut c, "socket-process", Box::new(sock_process_peer()));
    c.final_summary();
}
