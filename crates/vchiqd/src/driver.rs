//! The driver core: one implementation of the `/dev/vchiq` ioctl semantics.
//!
//! [`Driver`] plays the Linux vchiq driver's role on the ARM (slave) side of the link. It
//! multiplexes every client *instance* (one per socket connection, as one `open()` of
//! `/dev/vchiq`) onto the one [`vchiq_link::Link`], and keeps per instance what the kernel
//! keeps: its services, its completion queue, the message queues of VCHI-style services,
//! saved blocking-bulk waiters, and the close-delivered handshake.
//!
//! Front ends (the socket server, later the FUSE file node) differ only in how they reach
//! the caller's memory: they decode requests into plain Rust values, call the methods here,
//! and write the results back. Every method returns the errno the real driver uses
//! (spec §3.5). A method that may wait takes a [`Blocking`]: with [`Blocking::No`] it
//! returns [`DriverError::WouldBlock`] instead of waiting, so that a front end can answer
//! the common case inline and hand only real waits to a thread.
//!
//! Deliberate differences from the Linux driver, each for isolation between clients:
//! - a full completion queue never stalls the link: completions beyond 128 wait in the
//!   instance (the VideoCore's quotas still bound them, since undelivered messages stay
//!   claimed);
//! - GET_CLIENT_ID answers only for the caller's own services (0 otherwise), so that one
//!   client cannot learn another's host PID.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

use vchiq_abi::common::DRIVER_CONFIG;
use vchiq_abi::defs::{MAX_COMPLETIONS, MAX_ELEMENTS, MAX_MSG_SIZE, MSG_QUEUE_SIZE};
use vchiq_abi::enums::{BulkMode, Reason, ServiceOption};
use vchiq_abi::fourcc::FourCc;
use vchiq_link::region::{OwnedRegion, Region};

use crate::queued::{QueueBudget, QueuedMessage};
use vchiq_link::{ServiceEvent, ServiceHandle, ServiceHandler, ServiceParams};

use crate::identity::ClientIdentity;
use crate::link::DriverLink;

/// An errno value (positive, as in `libc::EINVAL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}

/// Why a driver call did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverError {
    /// The call failed with this errno.
    Errno(Errno),
    /// The call would have to wait and was made with [`Blocking::No`].
    WouldBlock,
}

impl DriverError {
    /// The errno it becomes at the ioctl boundary (EAGAIN for a call that would wait).
    pub fn errno(self) -> i32 {
        match self {
            DriverError::Errno(Errno(e)) => e,
            DriverError::WouldBlock => libc::EAGAIN,
        }
    }
}

impl From<Errno> for DriverError {
    fn from(e: Errno) -> Self {
        DriverError::Errno(e)
    }
}

/// The driver's result type.
pub type Result<T> = std::result::Result<T, DriverError>;

fn err<T>(errno: i32) -> Result<T> {
    Err(DriverError::Errno(Errno(errno)))
}

/// A request's cancellation flag: set by the front end when the caller is interrupted
/// (a signal, FUSE_INTERRUPT, the connection going away).
#[derive(Debug, Default)]
pub struct CancelToken(AtomicBool);

impl CancelToken {
    /// A fresh, un-cancelled token.
    pub fn new() -> Arc<Self> {
        Arc::new(CancelToken(AtomicBool::new(false)))
    }
    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
    fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Whether a call may wait.
#[derive(Clone, Copy)]
pub enum Blocking<'a> {
    /// Return [`DriverError::WouldBlock`] instead of waiting.
    No,
    /// Wait, ending with `EINTR` when the token is cancelled.
    Yes(&'a CancelToken),
}

/// Where a bulk receive's data goes (the caller's memfd, or its memory).
pub trait BulkSink: Send + 'static {
    /// Writes the received bytes; an error becomes the bulk's failure.
    fn deliver(&mut self, data: &[u8]) -> std::result::Result<(), Errno>;
}

/// What a [`Driver::try_bulk`] moves.
pub enum Transfer {
    /// A transmit of these bytes.
    Transmit(Vec<u8>),
    /// A receive of `size` bytes into `sink`.
    Receive {
        /// Bytes to receive.
        size: u32,
        /// Where they go.
        sink: Option<Box<dyn BulkSink>>,
    },
    /// A transmit or receive of `size` bytes straight from or into the caller's memory
    /// (its mapped memfd), where the link's peer shares a region table
    /// ([`Driver::zero_copy`]): no copy through the bulk arena.
    Region {
        /// Transmit (else receive).
        transmit: bool,
        /// The caller's memory.
        region: vchiq_link::region::Region,
        /// Bytes to move.
        size: u32,
    },
}

/// A receive through the driver's own buffer: when the VideoCore has written it, its bytes
/// go to the caller's sink.
struct ThroughOwned {
    buf: Arc<OwnedRegion>,
    to: Box<dyn BulkSink>,
}

impl BulkSink for ThroughOwned {
    fn deliver(&mut self, data: &[u8]) -> std::result::Result<(), Errno> {
        // A region receive arrives with no bytes of its own: they are in the buffer.
        if data.is_empty() {
            self.to.deliver(&self.buf.take())
        } else {
            self.to.deliver(data)
        }
    }
}

/// The data side of one bulk request.
struct BulkData {
    dir: Dir,
    /// A transmit's bytes (arena path).
    data: Vec<u8>,
    /// A receive's size (or a region's).
    size: u32,
    sink: Option<Box<dyn BulkSink>>,
    /// The caller's memory, for a zero-copy bulk.
    region: Option<vchiq_link::region::Region>,
}

/// A CREATE_SERVICE request.
#[derive(Clone, Copy, Debug)]
pub struct CreateService {
    /// Service fourcc.
    pub fourcc: FourCc,
    /// Version.
    pub version: i16,
    /// Oldest compatible version.
    pub version_min: i16,
    /// Open a client service (true) or add a server (false).
    pub is_open: bool,
    /// VCHI-style: messages are dequeued, completions carry no header.
    pub is_vchi: bool,
    /// Echoed back as `service_userdata`.
    pub userdata: u64,
}

/// One completion handed to a front end.
#[derive(Debug)]
pub struct CompletionOut {
    /// Why.
    pub reason: Reason,
    /// The service's userdata from CREATE_SERVICE.
    pub service_userdata: u64,
    /// The bulk's userdata.
    pub bulk_userdata: u64,
    /// Header (msgid with CLAIMED, size) + data, for MESSAGE_AVAILABLE on non-VCHI services.
    pub message: Option<Vec<u8>>,
}

/// The result of AWAIT_COMPLETION.
#[derive(Debug, Default)]
pub struct AwaitOut {
    /// Records, in order.
    pub records: Vec<CompletionOut>,
    /// Message buffers left (`msgbufcount` to write back).
    pub msgbufcount: u32,
}

/// What one instance holds ([`Driver::instance_counts`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceCounts {
    /// The handles of its services, in order.
    pub services: Vec<u32>,
    /// Completions queued and not yet awaited.
    pub completions: usize,
    /// Of those, the ones that carry no message (service and bulk events).
    pub completions_without_message: usize,
    /// Bulks queued and not yet collected.
    pub bulks: usize,
    /// Bytes of messages queued for it.
    pub queued_bytes: usize,
    /// Messages of it still claimed in the link's slots.
    pub queued_claims: usize,
}

/// The most bulk bytes one instance may have outstanding (queued and not yet done).
pub const MAX_INSTANCE_BULK_BYTES: usize = vchiq_abi::wire::MAX_BULK as usize;

/// Why an interrupted BLOCKING bulk failed: the front end writes WAITING back.
pub const BULK_INTERRUPTED: Errno = Errno(libc::EINTR);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Hidden,
    Listening,
    Opening,
    Open,
    CloseWait,
    Closed,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Hidden => "HIDDEN",
            Phase::Listening => "LISTENING",
            Phase::Opening => "OPENING",
            Phase::Open => "OPEN",
            Phase::CloseWait => "CLOSEWAIT",
            Phase::Closed => "CLOSED",
        }
    }
}

struct Svc {
    fourcc: FourCc,
    userdata: u64,
    is_vchi: bool,
    is_server: bool,
    version: i16,
    version_min: i16,
    link: Option<ServiceHandle>,
    phase: Phase,
    client_id: u32,
    msgq: VecDeque<QueuedMessage>,
    vchi_notify_pending: bool,
    dequeue_waiters: u32,
    close_pending: bool,
    closed_events: u64,
    use_count: u32,
    auto_close: bool,
    messages_in: u64,
    messages_out: u64,
    bytes_in: u64,
    bytes_out: u64,
}

struct Completion {
    reason: Reason,
    handle: u32,
    service_userdata: u64,
    bulk_userdata: u64,
    message: Option<QueuedMessage>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Transmit,
    Receive,
}

struct BulkState {
    handle: u32,
    size: usize,
    dir: Dir,
    mode: BulkMode,
    userdata: u64,
    sink: Option<Box<dyn BulkSink>>,
    done: Option<bool>,
}

#[derive(Default)]
struct InstState {
    connected: bool,
    closing: bool,
    released: bool,
    use_close_delivered: bool,
    services: BTreeMap<u32, Svc>,
    completions: VecDeque<Completion>,
    /// Of `completions`, those that carry no message.
    bare_completions: usize,
    /// The completion limit was hit and no warning has been logged since (one line per
    /// episode, not per refused request).
    completions_warned: bool,
    bulks: HashMap<u64, BulkState>,
    saved_waiters: HashMap<u32, u64>,
    completions_delivered: u64,
}

/// One client instance: what one `open()` of `/dev/vchiq` is.
pub struct Instance {
    /// Daemon-wide instance number.
    pub id: u32,
    /// Who the client is, as the kernel reported it.
    pub identity: ClientIdentity,
    st: Mutex<InstState>,
    cv: Condvar,
    /// Called after every change a parked request may be waiting for (see
    /// [`Instance::set_waker`]).
    waker: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// What its queued messages hold (see [`crate::queued`]).
    budget: Arc<QueueBudget>,
}

impl Instance {
    fn lock(&self) -> MutexGuard<'_, InstState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The client id the driver attests for this instance.
    pub fn client_id(&self) -> u32 {
        self.identity.client_id
    }

    /// Sets the function called after every change of this instance's state that a
    /// waiting request may be waiting for (a completion queued, a message to dequeue, a
    /// service opened or closed, a bulk done, the instance closing). A front end that
    /// parks requests instead of blocking threads on them retries them from it. It runs
    /// on the thread that made the change (often the link's handler), with no lock of the
    /// driver held, and must not block. Only the first call takes effect.
    pub fn set_waker(&self, waker: Box<dyn Fn() + Send + Sync>) {
        let _ = self.waker.set(waker);
    }

    /// Wakes the threads blocked on this instance and calls the waker.
    fn notify(&self) {
        self.cv.notify_all();
        if let Some(w) = self.waker.get() {
            w();
        }
    }

    fn wait<'a>(&self, g: MutexGuard<'a, InstState>) -> MutexGuard<'a, InstState> {
        // A bounded wait: cancellation and link failure are re-checked by every caller's loop.
        self.cv
            .wait_timeout(g, Duration::from_millis(250))
            .unwrap_or_else(|p| p.into_inner())
            .0
    }

    fn on_link_event(self: &Arc<Self>, handle: u32, event: ServiceEvent) {
        let mut g = self.lock();
        let st = &mut *g;
        match event {
            ServiceEvent::Opened { client_id, .. } => {
                if let Some(svc) = st.services.get_mut(&handle) {
                    svc.phase = Phase::Open;
                    svc.client_id = client_id;
                    let ud = svc.userdata;
                    push(st, Reason::ServiceOpened, handle, ud, 0, None);
                }
            }
            ServiceEvent::Closed => {
                if let Some(svc) = st.services.get_mut(&handle) {
                    svc.closed_events += 1;
                    let was = svc.phase;
                    svc.phase = if svc.is_server && svc.link.is_some() {
                        if svc.auto_close {
                            Phase::Listening
                        } else {
                            Phase::CloseWait
                        }
                    } else {
                        Phase::Closed
                    };
                    svc.msgq.clear();
                    svc.vchi_notify_pending = false;
                    if svc.phase == Phase::Listening {
                        svc.client_id = 0;
                    }
                    let ud = svc.userdata;
                    if was != Phase::Opening {
                        if st.use_close_delivered && svc.phase == Phase::Closed {
                            svc.close_pending = true;
                        }
                        push(st, Reason::ServiceClosed, handle, ud, 0, None);
                    }
                }
            }
            ServiceEvent::Message(m) => {
                if let Some(svc) = st.services.get_mut(&handle) {
                    if svc.phase != Phase::Open {
                        return; // dropping `m` releases it
                    }
                    svc.messages_in += 1;
                    svc.bytes_in += m.data().len() as u64;
                    let ud = svc.userdata;
                    let m = QueuedMessage::new(m, &self.budget);
                    if svc.is_vchi {
                        svc.msgq.push_back(m);
                        if !svc.vchi_notify_pending && svc.dequeue_waiters == 0 {
                            svc.vchi_notify_pending = true;
                            push(st, Reason::MessageAvailable, handle, ud, 0, None);
                        }
                    } else {
                        push(st, Reason::MessageAvailable, handle, ud, 0, Some(m));
                    }
                }
            }
            ServiceEvent::BulkTransmitDone { userdata } => self.bulk_done(st, userdata, true, None),
            ServiceEvent::BulkTransmitAborted { userdata }
            | ServiceEvent::BulkReceiveAborted { userdata } => {
                self.bulk_done(st, userdata, false, None)
            }
            ServiceEvent::BulkReceiveDone { userdata, data } => {
                // Write the data into the caller's memory without holding the lock.
                let sink = st.bulks.get_mut(&userdata).and_then(|b| b.sink.take());
                let ok = match sink {
                    Some(mut sink) => {
                        drop(g);
                        let ok = sink.deliver(&data).is_ok();
                        g = self.lock();
                        ok
                    }
                    None => true,
                };
                self.bulk_done(&mut g, userdata, ok, None);
            }
        }
        drop(g);
        self.notify();
    }

    fn bulk_done(&self, st: &mut InstState, id: u64, ok: bool, _unused: Option<()>) {
        let Some(b) = st.bulks.get_mut(&id) else {
            return;
        };
        b.done = Some(ok);
        match b.mode {
            BulkMode::Callback => {
                let reason = match (b.dir, ok) {
                    (Dir::Transmit, true) => Reason::BulkTransmitDone,
                    (Dir::Receive, true) => Reason::BulkReceiveDone,
                    (Dir::Transmit, false) => Reason::BulkTransmitAborted,
                    (Dir::Receive, false) => Reason::BulkReceiveAborted,
                };
                let (handle, ud) = (b.handle, b.userdata);
                st.bulks.remove(&id);
                let sud = st.services.get(&handle).map_or(0, |s| s.userdata);
                push(st, reason, handle, sud, ud, None);
            }
            BulkMode::NoCallback => {
                st.bulks.remove(&id);
            }
            // The waiter (or a later WAITING retry) collects the result.
            BulkMode::Blocking | BulkMode::Waiting => {}
        }
    }
}

fn push(
    st: &mut InstState,
    reason: Reason,
    handle: u32,
    service_userdata: u64,
    bulk_userdata: u64,
    message: Option<QueuedMessage>,
) {
    if message.is_none() {
        st.bare_completions += 1;
    }
    st.completions.push_back(Completion {
        reason,
        handle,
        service_userdata,
        bulk_userdata,
        message,
    });
}

struct LinkHandler {
    inst: Weak<Instance>,
    handle: u32,
}

impl ServiceHandler for LinkHandler {
    fn event(&self, _service: ServiceHandle, event: ServiceEvent) {
        if let Some(inst) = self.inst.upgrade() {
            inst.on_link_event(self.handle, event);
        }
    }
}

#[derive(Default)]
struct DriverState {
    instances: BTreeMap<u32, Arc<Instance>>,
    limits: crate::limits::Limits,
    /// fourcc → instance that owns servers of that fourcc.
    server_owners: HashMap<FourCc, u32>,
}

/// Counters for `vchiq status` and benchmarks.
#[derive(Debug, Default)]
pub struct DriverStats {
    /// Instances ever created.
    pub instances_created: AtomicU64,
    /// ioctl-level requests served.
    pub requests: AtomicU64,
}

/// The driver role.
pub struct Driver {
    link: DriverLink,
    state: Mutex<DriverState>,
    connect_lock: Mutex<()>,
    next_handle: AtomicU32,
    next_instance: AtomicU32,
    next_bulk: AtomicU64,
    gpu_hang: Mutex<Option<String>>,
    /// [`crate::limits::Limits::queued_bytes_per_instance`], read on every QUEUE_MESSAGE.
    queued_bytes_limit: std::sync::atomic::AtomicUsize,
    /// [`crate::limits::Limits::completions_per_instance`].
    completions_limit: std::sync::atomic::AtomicUsize,
    /// Counters.
    pub stats: DriverStats,
}

impl Driver {
    /// Sets the per-client and per-user limits (they apply to requests from now on).
    pub fn set_limits(&self, limits: crate::limits::Limits) {
        self.lock().limits = limits;
        self.queued_bytes_limit
            .store(limits.queued_bytes_per_instance, Ordering::Relaxed);
        self.completions_limit
            .store(limits.completions_per_instance, Ordering::Relaxed);
    }

    /// The limits in force.
    pub fn limits(&self) -> crate::limits::Limits {
        self.lock().limits
    }

    /// A driver over the slave side of a link.
    pub fn new(link: DriverLink) -> Arc<Self> {
        Arc::new(Driver {
            link,
            state: Mutex::new(DriverState::default()),
            connect_lock: Mutex::new(()),
            next_handle: AtomicU32::new(1),
            next_instance: AtomicU32::new(1),
            next_bulk: AtomicU64::new(1),
            gpu_hang: Mutex::new(None),
            queued_bytes_limit: std::sync::atomic::AtomicUsize::new(
                crate::limits::Limits::default().queued_bytes_per_instance,
            ),
            completions_limit: std::sync::atomic::AtomicUsize::new(
                crate::limits::Limits::default().completions_per_instance,
            ),
            stats: DriverStats::default(),
        })
    }

    /// The link (for status and tests).
    pub fn link(&self) -> &DriverLink {
        &self.link
    }

    fn lock(&self) -> MutexGuard<'_, DriverState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the VideoCore as dead: every later call that needs it fails with EIO, and
    /// every waiter is woken.
    pub fn set_gpu_hang(&self, reason: String) {
        tracing::error!("VideoCore lost: {reason}; clients get EIO from now on");
        *self.gpu_hang.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        for inst in self.lock().instances.values() {
            let mut g = inst.lock();
            let st = &mut *g;
            // Every connected service is gone with the VideoCore: tell the client, as a
            // close by the peer, so that nothing waits for a reply that cannot come.
            let open: Vec<(u32, u64)> = st
                .services
                .iter_mut()
                .filter(|(_, s)| matches!(s.phase, Phase::Open | Phase::Opening | Phase::CloseWait))
                .map(|(h, s)| {
                    s.phase = Phase::Closed;
                    s.closed_events += 1;
                    s.msgq.clear();
                    (*h, s.userdata)
                })
                .collect();
            for (h, ud) in open {
                push(st, Reason::ServiceClosed, h, ud, 0, None);
            }
            for b in st.bulks.values_mut() {
                b.done.get_or_insert(false);
            }
            g.closing = true;
            drop(g);
            inst.notify();
        }
    }

    /// Why the VideoCore is gone, if it is.
    pub fn gpu_hang(&self) -> Option<String> {
        self.gpu_hang
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .or_else(|| self.link.broken())
    }

    fn check_vc(&self) -> Result<()> {
        if self.gpu_hang().is_some() {
            err(libc::EIO)
        } else {
            Ok(())
        }
    }

    /// Creates an instance (an `open()`). It succeeds even when the VideoCore is lost, so
    /// that diagnostics (STATUS, `read()`) still work; everything that needs the VideoCore
    /// then fails with EIO.
    pub fn open_instance(self: &Arc<Self>, identity: ClientIdentity) -> Result<Arc<Instance>> {
        let mut st = self.lock();
        let limit = st.limits.instances_per_uid;
        let held = st
            .instances
            .values()
            .filter(|i| i.identity.uid == identity.uid)
            .count();
        if held >= limit {
            tracing::warn!(
                client_id = identity.client_id,
                uid = identity.uid,
                comm = %identity.comm,
                "instance refused: uid {} holds {held} instances, the limit (--max-instances-per-uid {limit})",
                identity.uid
            );
            return err(crate::limits::Limits::ERRNO);
        }
        let id = self.next_instance.fetch_add(1, Ordering::Relaxed);
        let inst = Arc::new(Instance {
            id,
            identity,
            st: Mutex::new(InstState::default()),
            cv: Condvar::new(),
            waker: std::sync::OnceLock::new(),
            budget: Arc::default(),
        });
        st.instances.insert(id, inst.clone());
        drop(st);
        self.stats.instances_created.fetch_add(1, Ordering::Relaxed);
        tracing::info!(instance = id, client_id = inst.client_id(), comm = %inst.identity.comm, "instance opened");
        Ok(inst)
    }

    /// Ends an instance (the last `close()`): closes every service, drops queued messages
    /// and saved waiters. Never blocks on the client.
    pub fn release_instance(&self, inst: &Arc<Instance>) {
        let links: Vec<ServiceHandle> = {
            let mut g = inst.lock();
            g.closing = true;
            g.released = true;
            g.completions.clear();
            g.bare_completions = 0;
            g.bulks.clear();
            g.saved_waiters.clear();
            let links = g.services.values().filter_map(|s| s.link).collect();
            g.services.clear();
            links
        };
        inst.notify();
        for l in links {
            if let Err(e) = self.link.remove_service(l) {
                tracing::debug!("release: remove_service({l:?}): {e}");
            }
        }
        let mut st = self.lock();
        st.instances.remove(&inst.id);
        st.server_owners.retain(|_, owner| *owner != inst.id);
        tracing::info!(
            instance = inst.id,
            client_id = inst.client_id(),
            "instance released"
        );
    }

    /// Wakes every waiter of an instance after a token was cancelled.
    pub fn cancel(&self, inst: &Instance, token: &CancelToken) {
        token.set();
        inst.notify();
    }

    /// CONNECT.
    pub fn connect(&self, inst: &Arc<Instance>) -> Result<()> {
        self.check_vc()?;
        if inst.lock().connected {
            return err(libc::EINVAL);
        }
        {
            let _serial = self.connect_lock.lock().unwrap_or_else(|p| p.into_inner());
            self.link.connect().map_err(|e| {
                tracing::warn!("link connect failed: {e}");
                DriverError::Errno(Errno(libc::EIO))
            })?;
        }
        let hidden: Vec<(u32, ServiceParams)> = {
            let mut g = inst.lock();
            g.connected = true;
            g.services
                .iter()
                .filter(|(_, s)| s.phase == Phase::Hidden)
                .map(|(h, s)| (*h, params(s.fourcc, s.version, s.version_min)))
                .collect()
        };
        for (h, p) in hidden {
            let handler = Arc::new(LinkHandler {
                inst: Arc::downgrade(inst),
                handle: h,
            });
            let l = self
                .link
                .add_service(p, handler)
                .map_err(|_| DriverError::Errno(Errno(libc::EIO)))?;
            if let Some(s) = inst.lock().services.get_mut(&h) {
                s.link = Some(l);
                s.phase = Phase::Listening;
            }
        }
        Ok(())
    }

    /// SHUTDOWN.
    pub fn shutdown(&self, inst: &Arc<Instance>) -> Result<()> {
        let handles: Vec<u32> = {
            let g = inst.lock();
            if !g.connected {
                return Ok(());
            }
            g.services.keys().copied().collect()
        };
        for h in handles {
            // Errors here are per service and do not stop the shutdown.
            let _ = self.remove_service(inst, h, Blocking::No);
        }
        inst.lock().closing = true;
        inst.notify();
        Ok(())
    }

    /// Refuses a request that would queue a completion without a message while the
    /// instance holds [`crate::limits::Limits::completions_per_instance`] of them.
    ///
    /// The kernel driver makes the producer wait for room in its completion ring; here the
    /// producer is the link's one handler thread, which must never wait for one client.
    /// So the client's own requests that lead to such completions are refused instead
    /// (`ENOBUFS`, until it awaits some), and nothing already queued is dropped or merged:
    /// every completion is still delivered, in order. Completions no request of the client
    /// asked for (a peer closing a service) are at most one per service, so bounded by
    /// the service limit.
    fn check_completion_room(&self, inst: &Instance, what: &str) -> Result<()> {
        let limit = self.completions_limit.load(Ordering::Relaxed);
        let mut g = inst.lock();
        if g.bare_completions < limit {
            g.completions_warned = false;
            return Ok(());
        }
        if !g.completions_warned {
            g.completions_warned = true;
            tracing::warn!(
                client_id = inst.client_id(),
                instance = inst.id,
                "{what} refused: {} completions are queued for the client and not awaited, the limit (--max-queued-completions-per-client {limit}); its requests that queue more fail with ENOBUFS until it awaits them",
                g.bare_completions
            );
        }
        err(libc::ENOBUFS)
    }

    /// CREATE_SERVICE: returns the new handle.
    pub fn create_service(&self, inst: &Arc<Instance>, req: CreateService) -> Result<u32> {
        self.check_vc()?;
        self.check_completion_room(inst, "CREATE_SERVICE")?;
        let connected = inst.lock().connected;
        if req.is_open && !connected {
            return err(libc::ENOTCONN);
        }
        let limit = self.lock().limits.services_per_instance;
        let held = inst.lock().services.len();
        if held >= limit {
            tracing::warn!(
                client_id = inst.client_id(),
                instance = inst.id,
                "CREATE_SERVICE {} refused: the client holds {held} services, the limit (--max-services-per-client {limit})",
                req.fourcc
            );
            return err(crate::limits::Limits::ERRNO);
        }
        if !req.is_open {
            let mut st = self.lock();
            match st.server_owners.get(&req.fourcc) {
                Some(owner) if *owner != inst.id => return err(libc::EEXIST),
                _ => {
                    st.server_owners.insert(req.fourcc, inst.id);
                }
            }
        }
        let handle = self
            .next_handle
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(4096)
            | 0x800
            | (inst.id & 0x7ff);
        let phase = match (req.is_open, connected) {
            (true, _) => Phase::Opening,
            (false, true) => Phase::Listening,
            (false, false) => Phase::Hidden,
        };
        inst.lock().services.insert(
            handle,
            Svc {
                fourcc: req.fourcc,
                userdata: req.userdata,
                is_vchi: req.is_vchi,
                is_server: !req.is_open,
                version: req.version,
                version_min: req.version_min,
                link: None,
                phase,
                client_id: if req.is_open { inst.client_id() } else { 0 },
                msgq: VecDeque::new(),
                vchi_notify_pending: false,
                dequeue_waiters: 0,
                close_pending: false,
                closed_events: 0,
                use_count: u32::from(req.is_open),
                auto_close: true,
                messages_in: 0,
                messages_out: 0,
                bytes_in: 0,
                bytes_out: 0,
            },
        );
        let handler = Arc::new(LinkHandler {
            inst: Arc::downgrade(inst),
            handle,
        });
        let p = params(req.fourcc, req.version, req.version_min);
        let result = match phase {
            Phase::Opening => self.link.open_service(p, inst.client_id(), handler),
            Phase::Listening => self.link.add_service(p, handler),
            _ => return Ok(handle),
        };
        match result {
            Ok(l) => {
                let mut g = inst.lock();
                if let Some(s) = g.services.get_mut(&handle) {
                    s.link = Some(l);
                    if s.phase == Phase::Opening {
                        s.phase = Phase::Open;
                    }
                }
                Ok(handle)
            }
            Err(e) => {
                tracing::debug!("CREATE_SERVICE {}: {e}", req.fourcc);
                inst.lock().services.remove(&handle);
                self.forget_server(inst, req.fourcc);
                err(libc::EIO)
            }
        }
    }

    fn forget_server(&self, inst: &Instance, fourcc: FourCc) {
        let still = inst
            .lock()
            .services
            .values()
            .any(|s| s.is_server && s.fourcc == fourcc);
        if !still {
            let mut st = self.lock();
            if st.server_owners.get(&fourcc) == Some(&inst.id) {
                st.server_owners.remove(&fourcc);
            }
        }
    }

    fn wait_closed(
        &self,
        inst: &Instance,
        handle: u32,
        before: u64,
        blocking: Blocking<'_>,
    ) -> Result<()> {
        let mut g = inst.lock();
        loop {
            let Some(s) = g.services.get(&handle) else {
                return Ok(());
            };
            if s.closed_events > before || matches!(s.phase, Phase::Closed | Phase::Hidden) {
                break;
            }
            // The link always reports a completed close with a Closed event, possibly after
            // it has freed the port: wait for the event (SERVICE_CLOSED must be queued
            // before REMOVE/CLOSE returns), unless the link itself is gone.
            if s.link.is_none() || self.gpu_hang().is_some() {
                break;
            }
            match blocking {
                Blocking::No => return Err(DriverError::WouldBlock),
                Blocking::Yes(t) if t.is_cancelled() => return err(libc::EINTR),
                Blocking::Yes(_) => g = inst.wait(g),
            }
        }
        // Close-delivered handshake: wait until the library acknowledged SERVICE_CLOSED.
        loop {
            let Some(s) = g.services.get(&handle) else {
                return Ok(());
            };
            if !(g.use_close_delivered && s.close_pending) || g.released {
                return Ok(());
            }
            match blocking {
                Blocking::No => return Err(DriverError::WouldBlock),
                Blocking::Yes(t) if t.is_cancelled() => return err(libc::EINTR),
                Blocking::Yes(_) => g = inst.wait(g),
            }
        }
    }

    /// REMOVE_SERVICE.
    pub fn remove_service(
        &self,
        inst: &Arc<Instance>,
        handle: u32,
        blocking: Blocking<'_>,
    ) -> Result<()> {
        let (link, phase, before, fourcc, is_server) = {
            let g = inst.lock();
            let s = g
                .services
                .get(&handle)
                .ok_or(DriverError::Errno(Errno(libc::EINVAL)))?;
            (s.link, s.phase, s.closed_events, s.fourcc, s.is_server)
        };
        let needs_close = matches!(phase, Phase::Open | Phase::Opening);
        if let Some(l) = link {
            if let Err(e) = self.link.remove_service(l) {
                tracing::debug!("remove_service({l:?}): {e}");
            }
        }
        if needs_close && self.gpu_hang().is_none() {
            match self.wait_closed(inst, handle, before, blocking) {
                Ok(()) => {}
                // A re-issued REMOVE resumes the wait; keep the entry until then.
                Err(e) => return Err(e),
            }
        } else if phase == Phase::Closed {
            self.wait_closed(inst, handle, before, blocking)?;
        }
        inst.lock().services.remove(&handle);
        if is_server {
            self.forget_server(inst, fourcc);
        }
        inst.notify();
        Ok(())
    }

    /// CLOSE_SERVICE.
    pub fn close_service(
        &self,
        inst: &Arc<Instance>,
        handle: u32,
        blocking: Blocking<'_>,
    ) -> Result<()> {
        let (link, phase, before, is_server) = {
            let g = inst.lock();
            let s = g
                .services
                .get(&handle)
                .ok_or(DriverError::Errno(Errno(libc::EINVAL)))?;
            (s.link, s.phase, s.closed_events, s.is_server)
        };
        match phase {
            Phase::Hidden | Phase::Listening => return err(libc::EIO),
            Phase::CloseWait => {
                if let Some(l) = link {
                    let _ = self.link.close_service(l);
                }
                if let Some(s) = inst.lock().services.get_mut(&handle) {
                    s.phase = Phase::Listening;
                    s.client_id = 0;
                }
                return Ok(());
            }
            Phase::Open | Phase::Opening => {
                if let Some(l) = link {
                    if let Err(e) = self.link.close_service(l) {
                        tracing::debug!("close_service({l:?}): {e}");
                    }
                }
            }
            Phase::Closed => {}
        }
        self.wait_closed(inst, handle, before, blocking)?;
        if !is_server {
            // A closed client service is freed, as the kernel frees it.
            if let Some(l) = inst.lock().services.remove(&handle).and_then(|s| s.link) {
                let _ = self.link.remove_service(l);
            }
        }
        Ok(())
    }

    /// QUEUE_MESSAGE: `parts` are the elements' bytes (at most 8).
    pub fn queue_message(
        &self,
        inst: &Instance,
        handle: u32,
        parts: &[&[u8]],
        blocking: Blocking<'_>,
    ) -> Result<()> {
        if parts.len() > MAX_ELEMENTS {
            return err(libc::EINVAL);
        }
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let queued = inst.budget.bytes();
        let limit = self.queued_bytes_limit.load(Ordering::Relaxed);
        if queued > limit {
            // Replies come only to what a client sends: while it leaves this much
            // undelivered, it may send no more (see `crate::queued`).
            if inst.budget.over_limit_logged.swap(true, Ordering::Relaxed) {
                return err(libc::ENOBUFS);
            }
            tracing::warn!(
                client_id = inst.client_id(),
                instance = inst.id,
                "QUEUE_MESSAGE refused: {queued} bytes are queued for the client and not awaited, over the limit (--max-queued-bytes-per-client {limit}); its messages fail with ENOBUFS until it reads"
            );
            return err(libc::ENOBUFS);
        }
        inst.budget
            .over_limit_logged
            .store(false, Ordering::Relaxed);
        let link = {
            let g = inst.lock();
            let s = g
                .services
                .get(&handle)
                .ok_or(DriverError::Errno(Errno(libc::EINVAL)))?;
            if total > MAX_MSG_SIZE || s.phase != Phase::Open || g.closing {
                return err(libc::EIO);
            }
            s.link.ok_or(DriverError::Errno(Errno(libc::EIO)))?
        };
        loop {
            match self.link.queue_message(link, parts, false) {
                Ok(()) => break,
                Err(vchiq_link::Error::WouldBlock) => {}
                Err(e) => {
                    tracing::debug!("queue_message: {e}");
                    return err(libc::EIO);
                }
            }
            match blocking {
                Blocking::No => return Err(DriverError::WouldBlock),
                Blocking::Yes(t) if t.is_cancelled() => return err(libc::EINTR),
                Blocking::Yes(_) => {
                    // Quota or slots exhausted: the VideoCore frees them as it releases
                    // messages. Poll briefly rather than hold the link's thread.
                    let g = inst.lock();
                    let closing = g.closing
                        || g.services
                            .get(&handle)
                            .is_none_or(|s| s.phase != Phase::Open);
                    if closing {
                        return err(libc::EIO);
                    }
                    drop(inst.cv.wait_timeout(g, Duration::from_millis(1)));
                }
            }
        }
        if let Some(s) = inst.lock().services.get_mut(&handle) {
            s.messages_out += 1;
            s.bytes_out += total as u64;
        }
        Ok(())
    }

    /// QUEUE_BULK_TRANSMIT: `data` is what the caller supplied (ignored for WAITING).
    #[allow(clippy::too_many_arguments)]
    pub fn bulk_transmit(
        &self,
        inst: &Instance,
        handle: u32,
        data: Vec<u8>,
        userdata: u64,
        mode: BulkMode,
        thread: u32,
        blocking: Blocking<'_>,
    ) -> Result<()> {
        self.transfer(
            inst,
            handle,
            Transfer::Transmit(data),
            userdata,
            mode,
            thread,
            blocking,
            true,
        )
    }

    /// QUEUE_BULK_TRANSMIT or QUEUE_BULK_RECEIVE in CALLBACK or NOCALLBACK mode that never
    /// waits, not even for room in the link (4 outstanding per service, the shared bulk
    /// arena): [`DriverError::WouldBlock`] then, and nothing was queued. For front ends
    /// that serve many clients on one thread.
    pub fn try_bulk(
        &self,
        inst: &Instance,
        handle: u32,
        transfer: Transfer,
        userdata: u64,
        mode: BulkMode,
    ) -> Result<()> {
        if matches!(mode, BulkMode::Blocking | BulkMode::Waiting) {
            return err(libc::EINVAL);
        }
        self.transfer(
            inst,
            handle,
            transfer,
            userdata,
            mode,
            0,
            Blocking::No,
            false,
        )
    }

    /// Polls the BLOCKING bulk saved for `thread` (queued with [`Blocking::No`], which
    /// saves it, or interrupted): `None` while it is not done (it stays saved), else its
    /// outcome, as a WAITING retry would give it. For front ends that park BLOCKING bulks.
    pub fn poll_saved_bulk(&self, inst: &Instance, handle: u32, thread: u32) -> Option<Result<()>> {
        let r = self.transfer(
            inst,
            handle,
            Transfer::Transmit(Vec::new()),
            0,
            BulkMode::Waiting,
            thread,
            Blocking::No,
            false,
        );
        match r {
            Err(DriverError::Errno(BULK_INTERRUPTED)) => None,
            r => Some(r),
        }
    }

    /// Whether bulks can move straight through the caller's memory ([`Transfer::Region`]):
    /// the VideoCore is embedded and shares the link's region table.
    pub fn zero_copy(&self) -> bool {
        self.link.has_bulk_regions()
    }

    /// A bulk of any [`Transfer`] kind, in any mode; BLOCKING and WAITING wait as
    /// [`Driver::bulk_transmit`] does.
    #[allow(clippy::too_many_arguments)]
    pub fn transfer(
        &self,
        inst: &Instance,
        handle: u32,
        transfer: Transfer,
        userdata: u64,
        mode: BulkMode,
        thread: u32,
        blocking: Blocking<'_>,
        queue_wait: bool,
    ) -> Result<()> {
        let owned = self.zero_copy() && mode != BulkMode::Waiting;
        let (dir, data, size, sink, region) = match transfer {
            // With the embedded VideoCore even bytes the driver holds skip the arena: the
            // VideoCore reads them from (or writes them into) the driver's own buffer.
            Transfer::Transmit(data) if owned => {
                let size = u32::try_from(data.len()).map_err(|_| Errno(libc::EINVAL))?;
                let region: Region = Arc::new(OwnedRegion::new(data));
                (Dir::Transmit, Vec::new(), size, None, Some(region))
            }
            Transfer::Receive { size, sink } if owned => {
                let buf = Arc::new(OwnedRegion::zeroed(size as usize));
                let sink = sink.map(|to| {
                    Box::new(ThroughOwned {
                        buf: buf.clone(),
                        to,
                    }) as Box<dyn BulkSink>
                });
                let region: Region = buf;
                (Dir::Receive, Vec::new(), size, sink, Some(region))
            }
            Transfer::Transmit(data) => (Dir::Transmit, data, 0, None, None),
            Transfer::Receive { size, sink } => (Dir::Receive, Vec::new(), size, sink, None),
            Transfer::Region {
                transmit,
                region,
                size,
            } => {
                let dir = if transmit {
                    Dir::Transmit
                } else {
                    Dir::Receive
                };
                (dir, Vec::new(), size, None, Some(region))
            }
        };
        self.bulk(
            inst,
            handle,
            BulkData {
                dir,
                data,
                size,
                sink,
                region,
            },
            userdata,
            mode,
            thread,
            blocking,
            queue_wait,
        )
    }

    /// QUEUE_BULK_RECEIVE: the data goes to `sink` when the transfer completes.
    #[allow(clippy::too_many_arguments)]
    pub fn bulk_receive(
        &self,
        inst: &Instance,
        handle: u32,
        size: u32,
        sink: Option<Box<dyn BulkSink>>,
        userdata: u64,
        mode: BulkMode,
        thread: u32,
        blocking: Blocking<'_>,
    ) -> Result<()> {
        self.transfer(
            inst,
            handle,
            Transfer::Receive { size, sink },
            userdata,
            mode,
            thread,
            blocking,
            true,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn bulk(
        &self,
        inst: &Instance,
        handle: u32,
        what: BulkData,
        userdata: u64,
        mode: BulkMode,
        thread: u32,
        blocking: Blocking<'_>,
        queue_wait: bool,
    ) -> Result<()> {
        let BulkData {
            dir,
            data,
            size,
            sink,
            region,
        } = what;
        if mode == BulkMode::Callback {
            self.check_completion_room(inst, "a CALLBACK bulk")?;
        }
        let id = if mode == BulkMode::Waiting {
            let mut g = inst.lock();
            match g.saved_waiters.remove(&thread) {
                Some(id) => id,
                None => return err(libc::ESRCH),
            }
        } else {
            let link = {
                let g = inst.lock();
                let s = g
                    .services
                    .get(&handle)
                    .ok_or(DriverError::Errno(Errno(libc::EINVAL)))?;
                if s.phase != Phase::Open || g.closing {
                    return err(libc::EIO);
                }
                s.link.ok_or(DriverError::Errno(Errno(libc::EIO)))?
            };
            let id = self.next_bulk.fetch_add(1, Ordering::Relaxed);
            let bytes = if dir == Dir::Transmit && region.is_none() {
                data.len()
            } else {
                size as usize
            };
            let mut g = inst.lock();
            // The bulk arena in shared memory is common to every client: one client's
            // outstanding bulks may not take more than its share of it.
            let outstanding: usize = g
                .bulks
                .values()
                .filter(|b| b.done.is_none())
                .map(|b| b.size)
                .sum();
            if outstanding + bytes > MAX_INSTANCE_BULK_BYTES {
                return err(libc::ENOMEM);
            }
            g.bulks.insert(
                id,
                BulkState {
                    handle,
                    size: bytes,
                    dir,
                    mode,
                    userdata,
                    sink,
                    done: None,
                },
            );
            drop(g);
            let r = match (dir, queue_wait) {
                _ if region.is_some() => {
                    self.queue_region(inst, link, dir, region, size, id, queue_wait)
                }
                (Dir::Transmit, true) => self.link.queue_bulk_transmit(link, data, id),
                (Dir::Receive, true) => self.link.queue_bulk_receive(link, size, id),
                (Dir::Transmit, false) => match self.link.try_queue_bulk_transmit(link, data, id) {
                    Ok(None) => Ok(()),
                    Ok(Some(_)) => Err(vchiq_link::Error::WouldBlock),
                    Err(e) => Err(e),
                },
                (Dir::Receive, false) => self.link.try_queue_bulk_receive(link, size, id),
            };
            match r {
                Ok(()) => {}
                Err(vchiq_link::Error::WouldBlock) => {
                    inst.lock().bulks.remove(&id);
                    return Err(DriverError::WouldBlock);
                }
                Err(e) => {
                    tracing::debug!("queue bulk: {e}");
                    inst.lock().bulks.remove(&id);
                    return err(libc::EIO);
                }
            }
            if mode != BulkMode::Blocking {
                return Ok(());
            }
            id
        };
        // BLOCKING (or a WAITING retry): wait for the result.
        let mut g = inst.lock();
        loop {
            match g.bulks.get(&id).map(|b| b.done) {
                None => return err(libc::EIO),
                Some(Some(ok)) => {
                    g.bulks.remove(&id);
                    return if ok { Ok(()) } else { err(libc::EIO) };
                }
                Some(None) => {}
            }
            if g.closing || self.gpu_hang().is_some() {
                g.bulks.remove(&id);
                return err(libc::EIO);
            }
            match blocking {
                Blocking::Yes(t) if !t.is_cancelled() => g = inst.wait(g),
                _ => {
                    // Interrupted: keep the waiter for this thread's WAITING retry.
                    g.saved_waiters.insert(thread, id);
                    return Err(DriverError::Errno(BULK_INTERRUPTED));
                }
            }
        }
    }

    /// Queues a region bulk; waiting (`queue_wait`) while 4 are outstanding, as the arena
    /// path waits inside the link.
    #[allow(clippy::too_many_arguments)]
    fn queue_region(
        &self,
        inst: &Instance,
        link: ServiceHandle,
        dir: Dir,
        region: Option<vchiq_link::region::Region>,
        size: u32,
        id: u64,
        queue_wait: bool,
    ) -> std::result::Result<(), vchiq_link::Error> {
        let Some(region) = region else {
            return Err(vchiq_link::Error::WouldBlock);
        };
        loop {
            let queued = self.link.try_queue_bulk_region(
                link,
                dir == Dir::Transmit,
                region.clone(),
                size,
                id,
            )?;
            if queued {
                return Ok(());
            }
            if !queue_wait {
                return Err(vchiq_link::Error::WouldBlock);
            }
            // A completion of this instance frees a place; re-checked at least every 250 ms.
            let g = inst.lock();
            drop(inst.wait(g));
        }
    }

    /// AWAIT_COMPLETION. `max_bytes` bounds the message bytes in one batch (front-end
    /// frame limits); a record that does not fit ends the batch.
    pub fn await_completion(
        &self,
        inst: &Instance,
        count: u32,
        msgbufsize: u32,
        msgbufcount: u32,
        max_bytes: usize,
        blocking: Blocking<'_>,
    ) -> Result<AwaitOut> {
        let mut g = inst.lock();
        if !g.connected {
            return err(libc::ENOTCONN);
        }
        while g.completions.is_empty() && !g.closing {
            match blocking {
                Blocking::No => return Err(DriverError::WouldBlock),
                Blocking::Yes(t) if t.is_cancelled() => return err(libc::EINTR),
                Blocking::Yes(_) => g = inst.wait(g),
            }
        }
        let mut out = AwaitOut {
            records: Vec::new(),
            msgbufcount,
        };
        let mut bytes = 0usize;
        while (out.records.len() as u32) < count {
            let Some(front) = g.completions.front() else {
                break;
            };
            if let Some(m) = &front.message {
                let need = 8 + m.data().len();
                if (msgbufsize as usize) < need {
                    if out.records.is_empty() {
                        return err(libc::EMSGSIZE);
                    }
                    break;
                }
                if out.msgbufcount == 0 || bytes + need > max_bytes {
                    break; // stall: no buffer left for this message
                }
            }
            let Some(c) = g.completions.pop_front() else {
                break;
            };
            let st = &mut *g;
            if c.message.is_none() {
                st.bare_completions -= 1;
            }
            let message = c.message.map(|m| {
                out.msgbufcount -= 1;
                let svc = st.services.get(&c.handle);
                let msgid = header_msgid(&self.link, svc.and_then(|s| s.link));
                let mut buf = Vec::with_capacity(8 + m.data().len());
                buf.extend_from_slice(&msgid.to_le_bytes());
                buf.extend_from_slice(&(m.data().len() as u32).to_le_bytes());
                buf.extend_from_slice(m.data());
                bytes += buf.len();
                buf // dropping `m` here releases the message in shared memory
            });
            match c.reason {
                Reason::MessageAvailable if message.is_none() => {
                    if let Some(s) = st.services.get_mut(&c.handle) {
                        s.vchi_notify_pending = false;
                    }
                }
                _ => {}
            }
            st.completions_delivered += 1;
            out.records.push(CompletionOut {
                reason: c.reason,
                service_userdata: c.service_userdata,
                bulk_userdata: c.bulk_userdata,
                message,
            });
        }
        drop(g);
        inst.notify();
        Ok(out)
    }

    /// DEQUEUE_MESSAGE: returns the message data (None when `discard`, i.e. a NULL buffer).
    pub fn dequeue_message(
        &self,
        inst: &Instance,
        handle: u32,
        bufsize: u32,
        discard: bool,
        blocking: Blocking<'_>,
    ) -> Result<(u32, Option<Vec<u8>>)> {
        let mut g = inst.lock();
        let mut waiting = false;
        let result = loop {
            let closing = g.closing;
            let Some(s) = g.services.get_mut(&handle) else {
                break err(libc::EINVAL);
            };
            if !s.is_vchi {
                break err(libc::EINVAL);
            }
            if let Some(m) = s.msgq.front() {
                let size = m.data().len() as u32;
                if size > bufsize && !discard {
                    break err(libc::EMSGSIZE);
                }
                let Some(m) = s.msgq.pop_front() else {
                    break err(libc::EIO);
                };
                let data = if discard { None } else { Some(m.into_data()) };
                break Ok((size, data));
            }
            if s.phase != Phase::Open || closing {
                break err(libc::ENOTCONN);
            }
            match blocking {
                Blocking::No => break Err(DriverError::WouldBlock),
                Blocking::Yes(t) if t.is_cancelled() => break err(libc::EINTR),
                Blocking::Yes(_) => {
                    if !waiting {
                        s.dequeue_waiters += 1;
                        waiting = true;
                    }
                    g = inst.wait(g);
                }
            }
        };
        if waiting {
            if let Some(s) = g.services.get_mut(&handle) {
                s.dequeue_waiters -= 1;
            }
        }
        result
    }

    /// Marks a DEQUEUE_MESSAGE on `handle` as waiting (or no longer), for a front end that
    /// parks the request instead of blocking a thread in [`Driver::dequeue_message`]:
    /// while a dequeue waits, a new message raises no MESSAGE_AVAILABLE completion, as in
    /// the Linux driver.
    pub fn set_dequeue_waiting(&self, inst: &Instance, handle: u32, waiting: bool) {
        if let Some(s) = inst.lock().services.get_mut(&handle) {
            if waiting {
                s.dequeue_waiters += 1;
            } else {
                s.dequeue_waiters = s.dequeue_waiters.saturating_sub(1);
            }
        }
    }

    /// GET_CLIENT_ID: the service's client id, 0 for an unknown handle.
    pub fn get_client_id(&self, inst: &Instance, handle: u32) -> u32 {
        inst.lock().services.get(&handle).map_or(0, |s| s.client_id)
    }

    /// GET_CONFIG: the first `size` bytes of the driver's config (size <= 20).
    pub fn get_config(&self, size: u32) -> Result<Vec<u8>> {
        let bytes = DRIVER_CONFIG.as_bytes();
        if size as usize > bytes.len() {
            return err(libc::EINVAL);
        }
        Ok(bytes[..size as usize].to_vec())
    }

    /// USE_SERVICE.
    pub fn use_service(&self, inst: &Instance, handle: u32) -> Result<()> {
        let mut g = inst.lock();
        let s = g
            .services
            .get_mut(&handle)
            .ok_or(DriverError::Errno(Errno(libc::EINVAL)))?;
        s.use_count = s.use_count.saturating_add(1);
        Ok(())
    }

    /// RELEASE_SERVICE.
    pub fn release_service(&self, inst: &Instance, handle: u32) -> Result<()> {
        let mut g = inst.lock();
        let s = g
            .services
            .get_mut(&handle)
            .ok_or(DriverError::Errno(Errno(libc::EINVAL)))?;
        if s.use_count == 0 {
            tracing::warn!(
                "RELEASE_SERVICE underflow on {} (client {})",
                s.fourcc,
                inst.client_id()
            );
            return err(libc::EINVAL);
        }
        s.use_count -= 1;
        Ok(())
    }

    /// SET_SERVICE_OPTION.
    pub fn set_service_option(
        &self,
        inst: &Instance,
        handle: u32,
        option: u32,
        value: i32,
    ) -> Result<()> {
        let mut g = inst.lock();
        let s = g
            .services
            .get_mut(&handle)
            .ok_or(DriverError::Errno(Errno(libc::EINVAL)))?;
        let Ok(opt) = ServiceOption::try_from(option) else {
            return err(libc::EIO);
        };
        match opt {
            ServiceOption::AutoClose => {
                s.auto_close = value != 0;
            }
            ServiceOption::Trace => return Ok(()),
            ServiceOption::Synchronous => {
                return if matches!(s.phase, Phase::Hidden | Phase::Listening) {
                    Ok(())
                } else {
                    err(libc::EIO)
                };
            }
            ServiceOption::SlotQuota | ServiceOption::MessageQuota => {}
        }
        let Some(l) = s.link else { return Ok(()) };
        drop(g);
        self.link
            .set_service_option(l, opt, value)
            .map_err(|_| DriverError::Errno(Errno(libc::EIO)))
    }

    /// LIB_VERSION.
    pub fn lib_version(&self, inst: &Instance, version: u64) -> Result<()> {
        if version < u64::from(vchiq_abi::defs::VCHIQ_VERSION_MIN) {
            return err(libc::EINVAL);
        }
        if version >= u64::from(vchiq_abi::defs::VCHIQ_VERSION_CLOSE_DELIVERED) {
            inst.lock().use_close_delivered = true;
        }
        Ok(())
    }

    /// CLOSE_DELIVERED.
    pub fn close_delivered(&self, inst: &Instance, handle: u32) -> Result<()> {
        let mut g = inst.lock();
        match g.services.get_mut(&handle) {
            Some(s) if s.close_pending => {
                s.close_pending = false;
                drop(g);
                inst.notify();
                Ok(())
            }
            _ => err(libc::EINVAL),
        }
    }

    /// What one instance holds now (status, tests and the fuzz harness's invariants).
    pub fn instance_counts(&self, inst: &Instance) -> InstanceCounts {
        let g = inst.lock();
        InstanceCounts {
            services: g.services.keys().copied().collect(),
            completions: g.completions.len(),
            completions_without_message: {
                debug_assert_eq!(
                    g.bare_completions,
                    g.completions.iter().filter(|c| c.message.is_none()).count()
                );
                g.bare_completions
            },
            bulks: g.bulks.len(),
            queued_bytes: inst.budget.bytes(),
            queued_claims: inst.budget.claims(),
        }
    }

    /// Number of live instances.
    pub fn instance_count(&self) -> usize {
        self.lock().instances.len()
    }

    /// The state dump (what `read()` on /dev/vchiq returns, and `vchiq status` prints).
    pub fn dump(&self) -> String {
        let mut out = String::new();
        let ls = self.link.stats();
        let _ = writeln!(
            out,
            "vchiqd: link {:?}, {} instance(s)",
            self.link.connection_state(),
            self.instance_count()
        );
        let _ = writeln!(
            out,
            "  link: sent {} msgs ({} B), received {} msgs ({} B), bulks {} done / {} aborted, \
             slots recycled {}, quota stalls {}, protocol errors {}",
            ls.messages_sent,
            ls.bytes_sent,
            ls.messages_received,
            ls.bytes_received,
            ls.bulks_done,
            ls.bulks_aborted,
            ls.slots_recycled,
            ls.quota_stalls,
            ls.protocol_errors
        );
        if let Some(h) = self.gpu_hang() {
            let _ = writeln!(out, "  VideoCore LOST: {h}");
        }
        let instances: Vec<Arc<Instance>> = self.lock().instances.values().cloned().collect();
        for inst in instances {
            let id = &inst.identity;
            let g = inst.lock();
            let _ = writeln!(
                out,
                "Instance {}: client_id {} ({}), uid {}, gid {}, pid_ns {}, cgroup {}, pinned by {}, {}connected, completions {}/{} delivered {}, queued {} B ({} claimed), services {}",
                inst.id,
                id.client_id,
                if id.comm.is_empty() { "?" } else { &id.comm },
                id.uid,
                id.gid,
                id.pid_namespace,
                if id.cgroup.is_empty() {
                    "?"
                } else {
                    &id.cgroup
                },
                id.pinned_by.name(),
                if g.connected { "" } else { "not " },
                g.completions.len(),
                MAX_COMPLETIONS,
                g.completions_delivered,
                inst.budget.bytes(),
                inst.budget.claims(),
                g.services.len(),
            );
            for (h, s) in &g.services {
                let _ = writeln!(
                    out,
                    "  Service {h:#x}: {} {} {}{}, client_id {}, msgs in {} ({} B) out {} ({} B), queued {}/{}, uses {}",
                    s.fourcc,
                    if s.is_server { "server" } else { "client" },
                    s.phase.name(),
                    if s.is_vchi { " vchi" } else { "" },
                    s.client_id,
                    s.messages_in,
                    s.bytes_in,
                    s.messages_out,
                    s.bytes_out,
                    s.msgq.len(),
                    MSG_QUEUE_SIZE,
                    s.use_count,
                );
            }
        }
        out
    }
}

fn params(fourcc: FourCc, version: i16, version_min: i16) -> ServiceParams {
    ServiceParams {
        fourcc,
        version: version as u16,
        version_min: version_min as u16,
    }
}

/// The msgid a user-visible header carries: DATA from the remote port to the local port,
/// with the CLAIMED bit the receiver set (spec §2.6, §3.5).
fn header_msgid(link: &DriverLink, service: Option<ServiceHandle>) -> u32 {
    let (local, remote) = service
        .and_then(|s| link.service_info(s))
        .map_or((0, 0), |i| (i.localport, i.remoteport.unwrap_or(0)));
    vchiq_abi::defs::msgid(
        vchiq_abi::msg::MsgType::Data as u32,
        remote & 0xfff,
        local & 0xfff,
    ) | vchiq_abi::defs::MSGID_CLAIMED
}
