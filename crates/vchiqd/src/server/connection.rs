//! One client connection of the event loop: its outbox, its parked requests and the
//! requests it has on the waiter pool.
//!
//! Replies are written by whichever thread has them: the loop (requests answered at
//! once), the thread that made a parked request ready (usually the link's handler, through
//! the instance's waker), or a pool waiter. A reply goes straight to the socket with a
//! non-blocking `sendmsg` unless earlier replies are still queued; what the socket cannot
//! take now waits in the outbox, in order, and the loop flushes it on `EPOLLOUT`. While the
//! outbox holds more than [`OUTBOX_LIMIT`] bytes the loop stops reading that client's
//! requests: a client that does not read its replies cannot make the daemon hold more.

use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustix::event::epoll;
use vchiq_abi::wire::{self, ResponseHeader};
use zerocopy::IntoBytes;

use crate::driver::{Blocking, CancelToken, Driver, DriverError, Instance};
use crate::parking::Parking;
use crate::sys;
use crate::sys::FileId;
use vchiq_link::shm::{SharedMemory, SlotMem};

use super::requests::{Reply, encode_await};

/// Reply bytes a connection may have queued before its requests stop being read.
pub const OUTBOX_LIMIT: usize = 1 << 20;

/// Requests of one connection that may wait on the pool at once; more get EAGAIN.
pub const MAX_POOLED_PER_CONNECTION: usize = 64;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A request that waits for the instance's state, kept as data rather than as a thread.
#[derive(Clone, Copy, Debug)]
pub enum Wait {
    /// AWAIT_COMPLETION with nothing queued.
    Await(wire::AwaitRequest),
    /// A blocking DEQUEUE_MESSAGE with nothing queued (and whether it is a batch).
    Dequeue(wire::DequeueRequest, bool),
    /// A BLOCKING bulk that is queued and not done: the driver keeps it as the saved
    /// waiter of `thread`, so this is a WAITING retry, tried again on every change.
    Bulk {
        /// The handle.
        handle: u32,
        /// The caller's thread (the saved waiter's key).
        thread: u32,
    },
}

struct Parked {
    tag: u32,
    wait: Wait,
}

/// A QUEUE_MESSAGE that found the quota or the slots exhausted. It stays at the head of
/// its connection: nothing the client sent after it is read until it is queued, so
/// messages keep their order and a client that outruns the VideoCore is held back by its
/// own socket.
pub struct StalledMessage {
    /// The request's tag.
    pub tag: u32,
    /// Answered only if it fails ([`wire::REQUEST_POSTED`]).
    pub posted: bool,
    /// The service handle.
    pub handle: u32,
    /// The request payload, and the element ranges within it.
    pub payload: Vec<u8>,
    /// Element byte ranges in `payload`.
    pub parts: Vec<std::ops::Range<usize>>,
}

/// The connections with a stalled message; the link's space waker retries them.
#[derive(Default)]
pub struct Stalls(Mutex<Vec<std::sync::Weak<Connection>>>);

impl Stalls {
    /// Retries every stalled connection (on the link's handler thread, after a recycle).
    pub fn retry_all(&self) {
        let waiting = std::mem::take(&mut *lock(&self.0));
        for c in waiting.iter().filter_map(std::sync::Weak::upgrade) {
            c.in_stalls.store(false, Ordering::Release);
            c.retry_stalled();
        }
    }

    /// Registers `conn` once (a connection that is retried and still stalled comes back).
    fn add(&self, conn: &Arc<Connection>) {
        let mut list = lock(&self.0);
        if !conn.in_stalls.swap(true, Ordering::AcqRel) {
            list.push(Arc::downgrade(conn));
        }
    }
}

#[derive(Default)]
struct Outbox {
    frames: VecDeque<Vec<u8>>,
    bytes: usize,
    /// The interest the socket is registered with in the loop's epoll.
    registered: Option<epoll::EventFlags>,
}

/// One client connection: one instance.
pub struct Connection {
    pub(super) driver: Arc<Driver>,
    pub(super) inst: Arc<Instance>,
    pub(super) sock: OwnedFd,
    epoll: Arc<OwnedFd>,
    token: u64,
    out: Mutex<Outbox>,
    parked: Parking<Parked>,
    pooled: Mutex<HashMap<u32, Arc<CancelToken>>>,
    stalled: Mutex<Option<StalledMessage>>,
    is_stalled: AtomicBool,
    /// Registered in [`Stalls`] now.
    in_stalls: AtomicBool,
    stalls: Arc<Stalls>,
    closed: AtomicBool,
    /// Mappings of this client's bulk memfds, by file identity: a client that reuses its
    /// buffer (the library does for BLOCKING bulks) costs no mmap and no page faults per
    /// transfer. At most [`MAPPING_CACHE_BYTES`] in all.
    mappings: Mutex<VecDeque<(FileId, Arc<SharedMemory>)>>,
}

/// Bytes of a client's memfds the daemon keeps mapped between bulks.
pub const MAPPING_CACHE_BYTES: usize = 32 << 20;

impl Connection {
    /// Registers the socket with the loop and the connection as the instance's waker.
    pub(super) fn start(
        driver: Arc<Driver>,
        inst: Arc<Instance>,
        sock: OwnedFd,
        epoll: Arc<OwnedFd>,
        token: u64,
        stalls: Arc<Stalls>,
    ) -> std::io::Result<Arc<Connection>> {
        let conn = Arc::new(Connection {
            driver,
            inst,
            sock,
            epoll,
            token,
            out: Mutex::new(Outbox::default()),
            parked: Parking::default(),
            pooled: Mutex::new(HashMap::new()),
            stalled: Mutex::new(None),
            is_stalled: AtomicBool::new(false),
            in_stalls: AtomicBool::new(false),
            stalls,
            closed: AtomicBool::new(false),
            mappings: Mutex::new(VecDeque::new()),
        });
        let flags = conn.interest(&Outbox::default());
        epoll::add(
            &*conn.epoll,
            &conn.sock,
            epoll::EventData::new_u64(token),
            flags,
        )?;
        lock(&conn.out).registered = Some(flags);
        // Weak: the instance outlives the connection only until release.
        let weak = Arc::downgrade(&conn);
        conn.inst.set_waker(Box::new(move || {
            if let Some(c) = weak.upgrade() {
                c.kick();
            }
        }));
        Ok(conn)
    }

    /// The client id, for logs.
    pub(super) fn client_id(&self) -> u32 {
        self.inst.client_id()
    }

    fn interest(&self, out: &Outbox) -> epoll::EventFlags {
        let mut flags = epoll::EventFlags::RDHUP;
        if !out.frames.is_empty() {
            flags |= epoll::EventFlags::OUT;
        }
        if out.bytes < OUTBOX_LIMIT && !self.is_stalled.load(Ordering::Acquire) {
            flags |= epoll::EventFlags::IN;
        }
        flags
    }

    fn update_interest(&self, out: &mut Outbox) {
        let want = self.interest(out);
        if out.registered == Some(want) || self.closed.load(Ordering::Acquire) {
            return;
        }
        match epoll::modify(
            &*self.epoll,
            &self.sock,
            epoll::EventData::new_u64(self.token),
            want,
        ) {
            Ok(()) => out.registered = Some(want),
            Err(e) => tracing::debug!(client_id = self.client_id(), "epoll modify: {e}"),
        }
    }

    /// The mapping of a client's memfd for a zero-copy bulk, reused while the client
    /// passes the same file.
    pub(super) fn map_memfd(&self, fd: &OwnedFd, id: FileId) -> std::io::Result<Arc<SharedMemory>> {
        let mut cache = lock(&self.mappings);
        if let Some((_, m)) = cache.iter().find(|(k, _)| *k == id) {
            return Ok(m.clone());
        }
        let m = Arc::new(SharedMemory::from_fd(fd.try_clone()?).map_err(std::io::Error::other)?);
        cache.push_back((id, m.clone()));
        // Oldest out first, down to the budget (the newest always stays).
        while cache.len() > 1
            && cache.iter().map(|(_, m)| m.len()).sum::<usize>() > MAPPING_CACHE_BYTES
        {
            cache.pop_front();
        }
        Ok(m)
    }

    /// Sends one response, now if the socket takes it, else after the queued ones.
    pub(super) fn reply(&self, tag: u32, (result, payload): Reply) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let hdr = ResponseHeader {
            magic: wire::RESPONSE_MAGIC,
            tag,
            result,
        };
        let mut out = lock(&self.out);
        if out.frames.is_empty() {
            let parts = [IoSlice::new(hdr.as_bytes()), IoSlice::new(&payload)];
            match sys::try_send_packet(self.sock.as_fd(), &parts) {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    // The peer is gone; the loop sees the hang-up and ends the connection.
                    tracing::debug!(client_id = self.client_id(), "reply dropped: {e}");
                    return;
                }
            }
        }
        let mut frame = Vec::with_capacity(size_of::<ResponseHeader>() + payload.len());
        frame.extend_from_slice(hdr.as_bytes());
        frame.extend_from_slice(&payload);
        out.bytes += frame.len();
        out.frames.push_back(frame);
        self.update_interest(&mut out);
    }

    /// Writes queued replies until the socket is full again (on `EPOLLOUT`).
    pub(super) fn flush(&self) {
        let mut out = lock(&self.out);
        while let Some(frame) = out.frames.front() {
            match sys::try_send_packet(self.sock.as_fd(), &[IoSlice::new(frame)]) {
                Ok(true) => {
                    let n = frame.len();
                    out.frames.pop_front();
                    out.bytes -= n;
                }
                Ok(false) => break,
                Err(e) => {
                    tracing::debug!(client_id = self.client_id(), "replies dropped: {e}");
                    out.frames.clear();
                    out.bytes = 0;
                }
            }
        }
        self.update_interest(&mut out);
    }

    /// True while the outbox is over its limit or a message is stalled (requests are not
    /// read meanwhile).
    pub(super) fn backlogged(&self) -> bool {
        self.is_stalled.load(Ordering::Acquire) || lock(&self.out).bytes >= OUTBOX_LIMIT
    }

    /// Holds `msg` at the head of the connection until the link has room for it.
    pub(super) fn stall(self: &Arc<Self>, msg: StalledMessage) {
        *lock(&self.stalled) = Some(msg);
        self.is_stalled.store(true, Ordering::Release);
        self.update_interest(&mut lock(&self.out));
        // Registered first, then retried: a recycle in between is not missed.
        self.stalls.add(self);
        self.retry_stalled();
    }

    /// Tries the stalled message again; on success (or a final failure) the connection's
    /// requests are read again.
    fn retry_stalled(self: &Arc<Self>) {
        let mut slot = lock(&self.stalled);
        let Some(msg) = slot.as_ref() else {
            return;
        };
        let slices: Vec<&[u8]> = msg.parts.iter().map(|r| &msg.payload[r.clone()]).collect();
        let r = self
            .driver
            .queue_message(&self.inst, msg.handle, &slices, Blocking::No);
        if r == Err(DriverError::WouldBlock) {
            drop(slot);
            if !self.closed.load(Ordering::Acquire) {
                self.stalls.add(self);
            }
            return;
        }
        let Some(msg) = slot.take() else {
            return;
        };
        self.is_stalled.store(false, Ordering::Release);
        drop(slot);
        if !(msg.posted && r.is_ok()) {
            let result = r.map_or_else(super::requests::errno_result, |()| 0);
            self.reply(
                msg.tag,
                super::requests::message_failed(result, Some(msg.handle), msg.posted),
            );
        }
        self.update_interest(&mut lock(&self.out));
    }

    /// Answers `wait` now if it can be, else parks it until the instance changes.
    pub(super) fn park(&self, tag: u32, wait: Wait) {
        let answer = self.parked.park(
            Parked { tag, wait },
            &mut |p| self.attempt(p.wait),
            |p| {
                if let Wait::Dequeue(req, _) = p.wait {
                    self.driver
                        .set_dequeue_waiting(&self.inst, req.handle, true);
                }
            },
            &mut |p, reply| self.answer(p, reply),
        );
        if let Some(reply) = answer {
            self.reply(tag, reply);
        }
    }

    fn answer(&self, p: Parked, reply: Reply) {
        if let Wait::Dequeue(req, _) = p.wait {
            self.driver
                .set_dequeue_waiting(&self.inst, req.handle, false);
        }
        self.reply(p.tag, reply);
    }

    /// Tries a parked request once; `None` while it would still wait.
    fn attempt(&self, wait: Wait) -> Option<Reply> {
        let (d, inst) = (&self.driver, &self.inst);
        match wait {
            Wait::Await(req) => match d.await_completion(
                inst,
                req.count,
                req.msgbufsize,
                req.msgbufcount,
                super::requests::budget(),
                Blocking::No,
            ) {
                Err(DriverError::WouldBlock) => None,
                r => Some(encode_await(r)),
            },
            Wait::Dequeue(req, batch) => super::requests::dequeue(d, inst, req, batch),
            Wait::Bulk { handle, thread } => d
                .poll_saved_bulk(inst, handle, thread)
                .map(super::requests::unit),
        }
    }

    /// The instance changed: retry the parked requests, on this thread (never blocks).
    pub(super) fn kick(self: &Arc<Self>) {
        self.parked
            .kick(&mut |p| self.attempt(p.wait), &mut |p, r| self.answer(p, r));
        // A service that closed (or a VideoCore that died) ends a stalled message too.
        if self.is_stalled.load(Ordering::Acquire) {
            self.retry_stalled();
        }
    }

    /// Runs `f` on a pool waiter, cancellable by tag (requests that wait in several
    /// phases: opens and closes, blocking bulks, a message waiting for quota).
    pub(super) fn pooled(
        self: &Arc<Self>,
        pool: &Arc<crate::waiters::Waiters>,
        tag: u32,
        f: impl FnOnce(&Connection, &CancelToken) -> Reply + Send + 'static,
    ) {
        self.pooled_with(pool, tag, move |c, t| Some(f(c, t)));
    }

    /// As [`Connection::pooled`]; `f` returning `None` sends no reply (a posted request
    /// that succeeded).
    fn pooled_with(
        self: &Arc<Self>,
        pool: &Arc<crate::waiters::Waiters>,
        tag: u32,
        f: impl FnOnce(&Connection, &CancelToken) -> Option<Reply> + Send + 'static,
    ) {
        let token = CancelToken::new();
        {
            let mut pooled = lock(&self.pooled);
            if pooled.len() >= MAX_POOLED_PER_CONNECTION {
                drop(pooled);
                return self.reply(tag, (-i64::from(libc::EAGAIN), Vec::new()));
            }
            pooled.insert(tag, token.clone());
        }
        let conn = self.clone();
        let submitted = pool.submit(Box::new(move || {
            let reply = f(&conn, &token);
            lock(&conn.pooled).remove(&tag);
            if let Some(reply) = reply {
                conn.reply(tag, reply);
            }
        }));
        if !submitted {
            lock(&self.pooled).remove(&tag);
            self.reply(tag, (-i64::from(libc::EAGAIN), Vec::new()));
        }
    }

    /// As [`Connection::pooled`], holding the connection meanwhile: nothing the client
    /// sent after this request is read until it is done (a bulk the link had no room for
    /// keeps its place among the service's bulks).
    /// A `posted` request is answered only if it fails.
    pub(super) fn pooled_in_order(
        self: &Arc<Self>,
        pool: &Arc<crate::waiters::Waiters>,
        tag: u32,
        posted: bool,
        f: impl FnOnce(&Connection, &CancelToken) -> Reply + Send + 'static,
    ) {
        self.is_stalled.store(true, Ordering::Release);
        self.update_interest(&mut lock(&self.out));
        let conn = self.clone();
        self.pooled_with(pool, tag, move |c, t| {
            let reply = f(c, t);
            conn.is_stalled.store(false, Ordering::Release);
            conn.update_interest(&mut lock(&conn.out));
            (!posted || reply.0 < 0).then_some(reply)
        });
        // Refused by the pool (answered EAGAIN): nothing holds the connection.
        if !lock(&self.pooled).contains_key(&tag) {
            self.is_stalled.store(false, Ordering::Release);
            self.update_interest(&mut lock(&self.out));
        }
    }

    /// Requests of this connection on the waiter pool now.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(super) fn pooled_count(&self) -> usize {
        lock(&self.pooled).len()
    }

    /// CANCEL of the request `tag`: a parked one is answered EINTR at once, a pooled one
    /// is interrupted.
    pub(super) fn cancel(&self, tag: u32) {
        if let Some(p) = self.parked.take(|p| p.tag == tag) {
            let payload = match p.wait {
                Wait::Dequeue(req, _) => {
                    self.driver
                        .set_dequeue_waiting(&self.inst, req.handle, false);
                    Vec::new()
                }
                // As the kernel: the waiter stays saved, and the answer says WAITING so
                // that re-issuing the request resumes the wait.
                Wait::Bulk { .. } => super::requests::waiting_again(),
                Wait::Await(_) => Vec::new(),
            };
            return self.reply(tag, (-i64::from(libc::EINTR), payload));
        }
        if let Some(t) = lock(&self.pooled).get(&tag) {
            self.driver.cancel(&self.inst, t);
        }
    }

    /// The client is gone: interrupt what it has waiting, then end the instance.
    pub(super) fn end(&self) {
        self.closed.store(true, Ordering::Release);
        let _ = epoll::delete(&*self.epoll, &self.sock);
        let tokens: Vec<_> = lock(&self.pooled).values().cloned().collect();
        for t in &tokens {
            self.driver.cancel(&self.inst, t);
        }
        self.parked.clear();
        *lock(&self.stalled) = None;
        lock(&self.mappings).clear();
        self.driver.release_instance(&self.inst);
        let mut out = lock(&self.out);
        out.frames.clear();
        out.bytes = 0;
    }
}
