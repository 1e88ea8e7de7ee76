//! How requests reach the driver: the [`Transport`] trait and the vchiqd socket transport.
//!
//! # Multiplexing
//!
//! Every request gets a tag and its response comes back whenever the daemon answers, in
//! any order; callers only send (`sendmsg` of one `SOCK_SEQPACKET` packet is atomic, so no
//! send lock is needed). Responses are read **leader/follower**: a caller waiting in
//! [`Transport::call`] reads the socket itself when no other thread is reading, routes
//! every response it receives by tag, and returns when its own arrives, so a response
//! costs no hand-off to another thread when its caller is the one reading (the
//! completion thread's AWAIT_COMPLETION, most of the time). Callers that arrive while
//! another thread reads wait for it to hand them their response. Requests whose replies
//! go to a channel ([`Transport::submit`]) are read for by the `vchiq-reader` thread,
//! which reads only while such a request waits and no caller leads. A blocking request
//! (AWAIT, blocking DEQUEUE, BLOCKING bulk) therefore blocks only its caller.
//!
//! When the daemon hangs up (EOF), the socket breaks, or a response breaks the protocol,
//! the reader marks the transport dead and fails every pending request; every later
//! submit fails at once the same way ([`Error::Closed`], or [`Error::Protocol`]). Nothing
//! waits forever on a dead daemon.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use vchiq_abi::wire::{
    MAX_FRAME, Op, REFUSED_TAG, REQUEST_MAGIC, REQUEST_POSTED, RESPONSE_MAGIC, RequestHeader,
    ResponseHeader,
};
use zerocopy::{FromBytes, IntoBytes};

use crate::error::{Error, Result};
use crate::sys;

/// One request: an op, its value argument, its payload (gathered from parts) and at most
/// one file descriptor to pass.
pub(crate) struct Request<'a> {
    /// The operation.
    pub op: Op,
    /// `RequestHeader::arg`.
    pub arg: u64,
    /// The payload, in pieces that are sent back to back.
    pub payload: &'a [&'a [u8]],
    /// A memfd to pass with `SCM_RIGHTS`.
    pub fd: Option<BorrowedFd<'a>>,
    /// Bulk data in this process's memory, for transports that let the driver reach it
    /// directly ([`Transport::direct_bulk`]); the socket transport ignores it.
    pub bulk: Option<BulkPtr>,
    /// `RequestHeader::flags` ([`vchiq_abi::wire::REQUEST_BATCH`]); only where
    /// [`Transport::batches`].
    pub flags: u32,
}

/// Memory the driver reads (transmit) or writes (receive) for a bulk transfer on a
/// transport with [`Transport::direct_bulk`]: an address and a length, nothing more.
///
/// Building one is safe; the crate-wide invariant that makes using it sound is kept by
/// `service.rs`: the memory stays allocated, and is neither read (receive) nor written
/// by the library, until the driver is done with the transfer (the BLOCKING ioctl has
/// returned, the CALLBACK completion has arrived, or the bulk can no longer be
/// outstanding). A transmit's memory is never written by the driver.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BulkPtr {
    /// The first byte.
    pub addr: usize,
    /// The number of bytes.
    pub len: usize,
}

impl BulkPtr {
    /// The memory of `data` (for a transmit).
    pub fn of(data: &[u8]) -> BulkPtr {
        BulkPtr {
            addr: data.as_ptr() as usize,
            len: data.len(),
        }
    }

    /// The memory of `buf` (for a receive: the driver writes it).
    pub fn of_mut(buf: &mut [u8]) -> BulkPtr {
        BulkPtr {
            addr: buf.as_mut_ptr() as usize,
            len: buf.len(),
        }
    }
}

impl<'a> Request<'a> {
    /// A request with a value argument and no payload.
    pub fn value(op: Op, arg: u64) -> Request<'static> {
        Request {
            op,
            arg,
            payload: &[],
            fd: None,
            bulk: None,
            flags: 0,
        }
    }

    /// A request with a payload.
    pub fn with(op: Op, payload: &'a [&'a [u8]]) -> Request<'a> {
        Request {
            op,
            arg: 0,
            payload,
            fd: None,
            bulk: None,
            flags: 0,
        }
    }
}

/// A response: the ioctl's return value (or `-errno`) and the op-specific payload.
#[derive(Debug)]
pub(crate) struct Response {
    /// `ResponseHeader::result`.
    pub result: i64,
    /// Everything after the header.
    pub payload: Vec<u8>,
}

impl Response {
    /// The non-negative result, or the error for `op`.
    pub fn check(&self, op: Op) -> Result<i64> {
        if self.result < 0 {
            Err(Error::from_result(op.name(), self.result))
        } else {
            Ok(self.result)
        }
    }
}

/// What arrives on a reply channel: the request's tag and its outcome.
pub(crate) type Reply = (u32, Result<Response>);

/// A way to issue requests to the driver.
///
/// Implemented by [`SocketTransport`] and by the native `/dev/vchiq` transport
/// ([`crate::native::NativeTransport`]), which runs `call` as one ioctl on the calling
/// thread, `submit` on a worker thread and `cancel` by interrupting that worker.
pub(crate) trait Transport: Send + Sync {
    /// Whether bulk requests carry [`Request::bulk`] (the driver reaches this process's
    /// memory) instead of a memfd.
    fn direct_bulk(&self) -> bool {
        false
    }

    /// Whether DEQUEUE_MESSAGE may take a batch ([`vchiq_abi::wire::REQUEST_BATCH`]).
    fn batches(&self) -> bool {
        false
    }

    /// Sends `req`; its response will be sent to `reply_to` with the returned tag.
    fn submit(&self, req: &Request<'_>, reply_to: Sender<Reply>) -> Result<u32>;

    /// Asks the driver to end the pending request `tag` early with `-EINTR`.
    fn cancel(&self, tag: u32);

    /// Closes the connection: pending and later requests fail with [`Error::Closed`].
    fn close(&self);

    /// Sends a QUEUE_MESSAGE (or a CALLBACK/NOCALLBACK bulk transmit) without waiting for
    /// its outcome, if this transport can
    /// (`Ok(true)`); a failure is reported by a later `post`. `Ok(false)`: the caller
    /// must [`Transport::call`] instead.
    fn post(&self, _req: &Request<'_>) -> Result<bool> {
        Ok(false)
    }

    /// Sends `req` and waits for its response.
    fn call(&self, req: &Request<'_>) -> Result<Response> {
        let (tx, rx) = channel();
        let tag = self.submit(req, tx)?;
        wait_for(&rx, tag)
    }
}

/// Waits on `rx` for the reply to `tag` (the channel carries only that one).
pub(crate) fn wait_for(rx: &Receiver<Reply>, tag: u32) -> Result<Response> {
    match rx.recv() {
        Ok((t, reply)) if t == tag => reply,
        Ok((t, _)) => Err(Error::Protocol(format!(
            "reply for tag {t} routed to tag {tag}"
        ))),
        Err(_) => Err(Error::Closed),
    }
}

/// Why the connection is dead.
#[derive(Clone, Debug)]
enum Dead {
    /// EOF, a broken socket, or a local close.
    Closed,
    /// The daemon broke the protocol.
    Protocol(String),
    /// The daemon refused the connection ([`vchiq_abi::wire::REFUSED_TAG`]).
    Refused(String),
}

impl Dead {
    fn error(&self) -> Error {
        match self {
            Dead::Closed => Error::Closed,
            Dead::Protocol(m) => Error::Protocol(m.clone()),
            Dead::Refused(reason) => Error::Refused {
                reason: reason.clone(),
            },
        }
    }
}

/// The tag of every posted request: their successes are not answered, and a failure is
/// kept until the next post reports it. Never given to a request that waits.
const POSTED_TAG: u32 = u32::MAX;

/// Where a request's response goes.
enum Waiter {
    /// A [`Transport::submit`] caller's channel.
    Channel(Sender<Reply>),
    /// A [`Transport::call`] caller: the response, once read.
    Slot(Option<Response>),
}

struct Pending {
    next_tag: u32,
    waiters: HashMap<u32, Waiter>,
    dead: Option<Dead>,
    /// The first failure of a posted message not yet reported.
    posted_failure: Option<Response>,
    /// A thread is reading the socket (a caller or the reader thread).
    leader: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when a response is routed to a slot, the leader lets go, or the
    /// connection dies.
    cv: Condvar,
    /// The leader's receive buffer (only the leader touches it).
    buf: Mutex<Vec<u8>>,
}

impl Pending {
    /// A tag no waiting request has (never 0 or [`POSTED_TAG`]).
    fn fresh_tag(&mut self) -> u32 {
        let mut tag = self.next_tag;
        while tag == 0 || tag == POSTED_TAG || self.waiters.contains_key(&tag) {
            tag = tag.wrapping_add(1);
        }
        self.next_tag = tag.wrapping_add(1);
        tag
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // The critical sections only move map entries; a panic cannot leave them torn.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the connection dead and fails every waiter (a response already read is
    /// still delivered).
    fn kill(&self, why: Dead) {
        let channels: Vec<(u32, Sender<Reply>)> = {
            let mut p = self.lock();
            if p.dead.is_none() {
                p.dead = Some(why);
            }
            let tags: Vec<u32> = p
                .waiters
                .iter()
                .filter(|(_, w)| matches!(w, Waiter::Channel(_)))
                .map(|(t, _)| *t)
                .collect();
            tags.into_iter()
                .filter_map(|t| match p.waiters.remove(&t) {
                    Some(Waiter::Channel(tx)) => Some((t, tx)),
                    _ => None,
                })
                .collect()
        };
        self.cv.notify_all();
        let dead = self.lock().dead.clone().unwrap_or(Dead::Closed);
        for (tag, tx) in channels {
            let _ = tx.send((tag, Err(dead.error())));
        }
    }

    /// Reads one response and routes it (the caller is the leader). `Err` once the
    /// connection is dead (it has been killed).
    fn read_one(&self, sock: BorrowedFd<'_>) -> std::result::Result<(), ()> {
        let mut buf = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
        let why = match read_frame(sock, &mut buf) {
            Ok((REFUSED_TAG, response)) => {
                Dead::Refused(String::from_utf8_lossy(&response.payload).into_owned())
            }
            Ok((tag, response)) => {
                self.route(tag, response);
                return Ok(());
            }
            Err(why) => why,
        };
        drop(buf);
        self.kill(why);
        Err(())
    }

    fn route(&self, tag: u32, response: Response) {
        let mut p = self.lock();
        if tag == POSTED_TAG {
            // A posted request failed; the next post reports it.
            if p.posted_failure.is_none() && response.result < 0 {
                p.posted_failure = Some(response);
            }
            return;
        }
        match p.waiters.get_mut(&tag) {
            Some(Waiter::Slot(slot)) => {
                *slot = Some(response);
                drop(p);
                self.cv.notify_all();
            }
            Some(Waiter::Channel(_)) => {
                if let Some(Waiter::Channel(tx)) = p.waiters.remove(&tag) {
                    drop(p);
                    let _ = tx.send((tag, Ok(response)));
                }
            }
            // A response to nobody (a request abandoned after a send error) is dropped.
            None => {}
        }
    }
}

/// The vchiqd socket transport: a `SOCK_SEQPACKET` connection plus its reader thread.
pub(crate) struct SocketTransport {
    sock: Arc<OwnedFd>,
    shared: Arc<Shared>,
    reader: Mutex<Option<JoinHandle<()>>>,
}

impl SocketTransport {
    /// Takes over a connected socket and starts the reader thread.
    pub fn new(sock: OwnedFd) -> Result<SocketTransport> {
        let sock = Arc::new(sock);
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                next_tag: 1,
                waiters: HashMap::new(),
                dead: None,
                posted_failure: None,
                leader: false,
            }),
            cv: Condvar::new(),
            buf: Mutex::new(vec![0u8; MAX_FRAME]),
        });
        let reader = {
            let sock = Arc::clone(&sock);
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("vchiq-reader".into())
                .spawn(move || read_loop(sock.as_fd(), &shared))?
        };
        Ok(SocketTransport {
            sock,
            shared,
            reader: Mutex::new(Some(reader)),
        })
    }

    fn send(&self, tag: u32, req: &Request<'_>) -> std::io::Result<()> {
        self.send_flagged(tag, req, req.flags)
    }

    fn send_flagged(&self, tag: u32, req: &Request<'_>, flags: u32) -> std::io::Result<()> {
        let header = RequestHeader {
            magic: REQUEST_MAGIC,
            tag,
            op: req.op as u32,
            flags,
            arg: req.arg,
        };
        let mut parts: Vec<&[u8]> = Vec::with_capacity(1 + req.payload.len());
        parts.push(header.as_bytes());
        parts.extend_from_slice(req.payload);
        sys::send_frame(self.sock.as_fd(), &parts, req.fd)
    }
}

impl SocketTransport {
    /// The error for a failed send: the connection's death if that is the cause.
    fn send_error(&self, e: std::io::Error) -> Error {
        match e.raw_os_error() {
            Some(libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN | libc::ESHUTDOWN) => {
                self.read_refusal();
                self.shared
                    .lock()
                    .dead
                    .clone()
                    .unwrap_or(Dead::Closed)
                    .error()
            }
            _ => Error::Io(e),
        }
    }

    /// The daemon hung up before our request went out: it may have said why first
    /// ([`REFUSED_TAG`]). The peer is gone, so this read does not wait; if another thread
    /// is reading, that thread sees it.
    fn read_refusal(&self) {
        if self.shared.lock().dead.is_some() {
            return;
        }
        let Ok(mut buf) = self.shared.buf.try_lock() else {
            return;
        };
        if let Ok((REFUSED_TAG, response)) = read_frame(self.sock.as_fd(), &mut buf) {
            drop(buf);
            self.shared.kill(Dead::Refused(
                String::from_utf8_lossy(&response.payload).into_owned(),
            ));
        }
    }
}

impl Transport for SocketTransport {
    fn batches(&self) -> bool {
        true
    }

    fn submit(&self, req: &Request<'_>, reply_to: Sender<Reply>) -> Result<u32> {
        let tag = {
            let mut p = self.shared.lock();
            if let Some(dead) = &p.dead {
                return Err(dead.error());
            }
            let tag = p.fresh_tag();
            p.waiters.insert(tag, Waiter::Channel(reply_to));
            tag
        };
        // The reader thread may be needed now.
        self.shared.cv.notify_all();
        if let Err(e) = self.send(tag, req) {
            self.shared.lock().waiters.remove(&tag);
            return Err(self.send_error(e));
        }
        Ok(tag)
    }

    fn call(&self, req: &Request<'_>) -> Result<Response> {
        let tag = {
            let mut p = self.shared.lock();
            if let Some(dead) = &p.dead {
                return Err(dead.error());
            }
            let tag = p.fresh_tag();
            p.waiters.insert(tag, Waiter::Slot(None));
            tag
        };
        if let Err(e) = self.send(tag, req) {
            self.shared.lock().waiters.remove(&tag);
            return Err(self.send_error(e));
        }
        let shared = &self.shared;
        let mut p = shared.lock();
        loop {
            if let Some(Waiter::Slot(slot)) = p.waiters.get_mut(&tag) {
                if let Some(response) = slot.take() {
                    p.waiters.remove(&tag);
                    return Ok(response);
                }
            }
            if let Some(dead) = &p.dead {
                let e = dead.error();
                p.waiters.remove(&tag);
                return Err(e);
            }
            if p.leader {
                p = shared.cv.wait(p).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Nobody is reading: read until this response arrives.
            p.leader = true;
            drop(p);
            let read = shared.read_one(self.sock.as_fd());
            p = shared.lock();
            p.leader = false;
            shared.cv.notify_all();
            if read.is_err() {
                continue; // dead: reported above, after a response that was read
            }
        }
    }

    fn post(&self, req: &Request<'_>) -> Result<bool> {
        {
            let mut p = self.shared.lock();
            if let Some(dead) = &p.dead {
                return Err(dead.error());
            }
            if let Some(failed) = p.posted_failure.take() {
                failed.check(req.op)?;
            }
        }
        self.send_flagged(POSTED_TAG, req, REQUEST_POSTED | req.flags)
            .map_err(|e| self.send_error(e))?;
        Ok(true)
    }

    fn cancel(&self, tag: u32) {
        let own = {
            let mut p = self.shared.lock();
            if p.dead.is_some() {
                return;
            }
            p.fresh_tag()
        };
        // Cancel has no response; if the request already finished, the daemon ignores it.
        let _ = self.send(own, &Request::value(Op::Cancel, u64::from(tag)));
    }

    fn close(&self) {
        // A leader in recv sees the end of file; a reader thread waiting for work sees
        // the connection dead.
        sys::shutdown_socket(self.sock.as_fd());
        self.shared.kill(Dead::Closed);
        let reader = self
            .reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(reader) = reader {
            let _ = reader.join();
        }
    }
}

impl Drop for SocketTransport {
    fn drop(&mut self) {
        self.close();
    }
}

/// The reader thread: reads while a [`Transport::submit`] request waits and no caller is
/// reading, until the connection dies.
fn read_loop(sock: BorrowedFd<'_>, shared: &Shared) {
    loop {
        {
            let mut p = shared.lock();
            loop {
                if p.dead.is_some() {
                    return;
                }
                let needed = p.waiters.values().any(|w| matches!(w, Waiter::Channel(_)));
                if needed && !p.leader {
                    p.leader = true;
                    break;
                }
                p = shared.cv.wait(p).unwrap_or_else(PoisonError::into_inner);
            }
        }
        let read = shared.read_one(sock);
        shared.lock().leader = false;
        shared.cv.notify_all();
        if read.is_err() {
            return;
        }
    }
}

/// Receives one response frame: its tag and the response, or why the connection is dead.
fn read_frame(sock: BorrowedFd<'_>, buf: &mut [u8]) -> std::result::Result<(u32, Response), Dead> {
    let got = sys::recv_frame(sock, buf).map_err(|_| Dead::Closed)?;
    // Responses never carry descriptors; any that arrive are closed right here.
    drop(got.fds);
    if got.len == 0 {
        return Err(Dead::Closed);
    }
    if got.truncated {
        return Err(Dead::Protocol(format!(
            "a response of {} bytes exceeds MAX_FRAME ({MAX_FRAME})",
            got.len
        )));
    }
    let frame = &buf[..got.len];
    let Ok((header, payload)) = ResponseHeader::read_from_prefix(frame) else {
        return Err(Dead::Protocol(format!(
            "a response of {} bytes is shorter than its header",
            got.len
        )));
    };
    if header.magic != RESPONSE_MAGIC {
        return Err(Dead::Protocol(format!(
            "bad response magic {:#010x}",
            header.magic
        )));
    }
    Ok((
        header.tag,
        Response {
            result: header.result,
            payload: payload.to_vec(),
        },
    ))
}
