//! Services: [`Service`], its [`Handler`] and the [`Event`]s it receives.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::os::fd::AsFd;
use std::sync::mpsc::channel;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use vchiq_abi::defs::{MAX_MSG_SIZE, NUM_SERVICE_BULKS};
use vchiq_abi::enums::{BulkMode, ServiceOption};
use vchiq_abi::fourcc::FourCc;
use vchiq_abi::wire::{
    BulkRequest, BulkResponse, DequeueRequest, Op, QueueMessageRequest, SetOptionRequest,
};
use zerocopy::{FromBytes, IntoBytes};

use crate::error::{Error, Result, check_message};
use crate::instance::Core;
use crate::sys;
use crate::transport::{BulkPtr, Request, Response, wait_for};

/// The callback of a [`Handler::Callback`] service.
pub type CallbackFn = dyn Fn(&Service, Event) + Send + Sync;

/// How a service receives what the driver reports.
pub enum Handler {
    /// libvchiq_arm's VCHIQ callback: called on the instance's completion thread, one
    /// event at a time, in driver order. Messages arrive as [`Event::Message`].
    ///
    /// The callback may call any method of any service, including `close()` and
    /// `remove()` of its own service (see [`Service::close`]). Do not capture the
    /// [`Instance`](crate::Instance) in it: the service would then keep its own instance
    /// alive and dropping the instance would not shut it down.
    Callback(Box<CallbackFn>),
    /// VCHI style (`is_vchi = 1`): messages stay in the driver until taken with
    /// [`Service::dequeue`]; every other event, including [`Event::MessageAvailable`], is
    /// queued for [`Service::wait_event`].
    Queue,
}

impl Handler {
    /// A [`Handler::Callback`] from a closure.
    pub fn callback(f: impl Fn(&Service, Event) + Send + Sync + 'static) -> Handler {
        Handler::Callback(Box::new(f))
    }
}

impl fmt::Debug for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Handler::Callback(_) => "Handler::Callback",
            Handler::Queue => "Handler::Queue",
        })
    }
}

/// Something the driver reported for a service (a completion, spec §3.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A remote client opened this server (SERVICE_OPENED; servers only).
    Opened,
    /// The service finished closing (SERVICE_CLOSED).
    Closed,
    /// A DATA message: its payload (Callback services).
    Message(Vec<u8>),
    /// A CALLBACK bulk transmit finished.
    BulkTransmitDone {
        /// The userdata given to [`Service::bulk_transmit`].
        userdata: u64,
    },
    /// A CALLBACK bulk receive finished; `data` is what arrived.
    BulkReceiveDone {
        /// The userdata given to [`Service::bulk_receive`].
        userdata: u64,
        /// The received bytes.
        data: Vec<u8>,
    },
    /// A CALLBACK bulk transmit was aborted (size mismatch or close).
    BulkTransmitAborted {
        /// The userdata given to [`Service::bulk_transmit`].
        userdata: u64,
    },
    /// A CALLBACK bulk receive was aborted (size mismatch or close).
    BulkReceiveAborted {
        /// The userdata given to [`Service::bulk_receive`].
        userdata: u64,
    },
    /// Queue services: at least one message waits for [`Service::dequeue`] (coalesced by
    /// the driver: one notification may stand for several messages).
    MessageAvailable,
}

/// The parameters of CREATE_SERVICE that the caller chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceParams {
    /// The service's fourcc.
    pub fourcc: FourCc,
    /// Its version.
    pub version: i16,
    /// The oldest peer version it accepts.
    pub version_min: i16,
}

impl ServiceParams {
    /// Parameters for `fourcc` with `version` and `version_min`.
    pub const fn new(fourcc: FourCc, version: i16, version_min: i16) -> ServiceParams {
        ServiceParams {
            fourcc,
            version,
            version_min,
        }
    }
}

/// Where a service is in its life, as far as the library knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// CREATE_SERVICE has not answered yet.
    Creating,
    /// It has a handle.
    Live,
    /// Creation failed, or it was closed (client) or removed: calls fail locally.
    Invalid,
}

/// A CALLBACK bulk receive whose memory the library keeps until its completion.
pub(crate) struct RxBulk {
    pub id: u64,
    pub userdata: u64,
    pub len: usize,
    pub store: RxStore,
}

/// Where a CALLBACK bulk receive lands.
pub(crate) enum RxStore {
    /// A memfd passed to vchiqd (socket transport).
    Memfd(File),
    /// A buffer whose address the driver has (native transport, see [`BulkPtr`]).
    Buf(Box<[u8]>),
}

impl RxBulk {
    /// The received bytes (called once the completion has arrived).
    pub fn into_data(self) -> Vec<u8> {
        match self.store {
            RxStore::Memfd(file) => sys::read_all(&file, self.len).unwrap_or_default(),
            RxStore::Buf(buf) => {
                let mut v = buf.into_vec();
                v.truncate(self.len);
                v
            }
        }
    }
}

/// Memory of a CALLBACK transmit or a NOCALLBACK transfer that the driver of a native
/// transport may still be using (see [`BulkPtr`]); rx CALLBACK buffers are in `rx_bulks`.
pub(crate) struct KeptBulk {
    pub transmit: bool,
    pub callback: bool,
    pub userdata: u64,
    pub buf: Box<[u8]>,
}

impl KeptBulk {
    /// Keeps `buf` and describes it for the driver. The heap block does not move when
    /// the `Box` does, so the address stays valid while the entry is kept.
    fn new(
        transmit: bool,
        callback: bool,
        userdata: u64,
        mut buf: Box<[u8]>,
    ) -> (KeptBulk, BulkPtr) {
        let ptr = BulkPtr::of_mut(&mut buf);
        (
            KeptBulk {
                transmit,
                callback,
                userdata,
                buf,
            },
            ptr,
        )
    }
}

pub(crate) struct SvcState {
    pub handle: u32,
    pub phase: Phase,
    /// Queue services: events for `wait_event`.
    pub events: VecDeque<Event>,
    /// CALLBACK bulk receives, in the order they were sent.
    pub rx_bulks: VecDeque<RxBulk>,
    pub next_rx_id: u64,
    /// Native transport: memory of transfers the driver may still use.
    pub kept: VecDeque<KeptBulk>,
    /// The completion thread has stopped: no more events will come.
    pub ended: bool,
    /// Queue services: messages a batch dequeue took that no caller has had yet.
    pub fetched: VecDeque<Vec<u8>>,
}

/// The shared part of a [`Service`]; the instance's table holds one per live service.
pub(crate) struct ServiceInner {
    pub core: Arc<Core>,
    pub fourcc: FourCc,
    /// The value passed as CREATE_SERVICE userdata; completions name the service by it.
    pub userdata: u64,
    pub is_open: bool,
    pub handler: Handler,
    pub state: Mutex<SvcState>,
    pub cv: Condvar,
    /// Serialises "record the memfd, send the request" of CALLBACK bulk receives so that
    /// the library's FIFO matches the order the driver sees.
    pub rx_order: Mutex<()>,
    /// Serialises dequeues, so that a batch lands in `fetched` before anyone asks the
    /// driver again and messages keep their order.
    pub dequeue_order: Mutex<()>,
}

impl Drop for ServiceInner {
    fn drop(&mut self) {
        // The driver may still hold the address of a kept buffer (a remove that failed, a
        // NOCALLBACK bulk): hand them to the instance, which frees them only after its
        // device has been closed.
        let s = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        let bufs: Vec<Box<[u8]>> = s
            .kept
            .drain(..)
            .map(|b| b.buf)
            .chain(s.rx_bulks.drain(..).filter_map(|b| match b.store {
                RxStore::Buf(buf) => Some(buf),
                RxStore::Memfd(_) => None,
            }))
            .collect();
        if !bufs.is_empty() {
            self.core.retire(bufs);
        }
    }
}

impl ServiceInner {
    pub fn lock(&self) -> MutexGuard<'_, SvcState> {
        // State updates are single assignments or queue pushes; a panic cannot tear them.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Settles creation: `Some(handle)` makes it live, `None` invalid.
    pub fn set_created(&self, handle: Option<u32>) {
        let mut s = self.lock();
        match handle {
            Some(h) => {
                s.handle = h;
                s.phase = Phase::Live;
            }
            None => s.phase = Phase::Invalid,
        }
        drop(s);
        self.cv.notify_all();
    }

    /// Waits until CREATE_SERVICE has answered (completions can overtake its response);
    /// returns the handle, or `None` if creation failed.
    pub fn wait_created(&self) -> Option<u32> {
        let mut s = self.lock();
        while s.phase == Phase::Creating {
            s = self.cv.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        (s.handle != 0).then_some(s.handle)
    }

    /// Marks the service unusable (closed client, removed, or instance shut down).
    pub fn invalidate(&self) {
        self.lock().phase = Phase::Invalid;
        self.cv.notify_all();
    }

    /// No more events will arrive: wakes `wait_event`.
    pub fn end_events(&self) {
        self.lock().ended = true;
        self.cv.notify_all();
    }

    /// Queues an event for `wait_event`.
    pub fn push_event(&self, event: Event) {
        self.lock().events.push_back(event);
        self.cv.notify_all();
    }

    /// Takes the memfd of the CALLBACK bulk receive that just completed: the first with
    /// this userdata (bulks complete in FIFO order per direction), else the oldest.
    pub fn take_rx_bulk(&self, userdata: u64) -> Option<RxBulk> {
        let mut s = self.lock();
        let i = s
            .rx_bulks
            .iter()
            .position(|b| b.userdata == userdata)
            .unwrap_or(0);
        s.rx_bulks.remove(i)
    }

    /// A CALLBACK transmit completed (or was aborted): its memory is free again.
    pub fn release_tx(&self, userdata: u64) {
        let mut s = self.lock();
        let matching = |b: &KeptBulk| b.transmit && b.callback;
        let i = s
            .kept
            .iter()
            .position(|b| matching(b) && b.userdata == userdata)
            .or_else(|| s.kept.iter().position(matching));
        if let Some(i) = i {
            s.kept.remove(i);
        }
    }

    /// After a NOCALLBACK transfer in one direction was queued: at most
    /// `NUM_SERVICE_BULKS` transfers per direction are outstanding (the driver blocks the
    /// next one) and they complete in order, so only the newest NOCALLBACK buffers of that
    /// direction can still be in use.
    fn trim_nocallback(&self, transmit: bool) {
        let mut s = self.lock();
        let mut seen = 0;
        let mut i = s.kept.len();
        while i > 0 {
            i -= 1;
            let b = &s.kept[i];
            if b.transmit == transmit && !b.callback {
                seen += 1;
                if seen > NUM_SERVICE_BULKS {
                    s.kept.remove(i);
                }
            }
        }
    }

    /// After a BLOCKING transfer in one direction completed: every earlier transfer in that
    /// direction has completed too, so no NOCALLBACK buffer of it is in use.
    fn drop_nocallback(&self, transmit: bool) {
        self.lock()
            .kept
            .retain(|b| b.transmit != transmit || b.callback);
    }

    fn live_handle(&self) -> Result<u32> {
        let s = self.lock();
        match s.phase {
            Phase::Live | Phase::Creating => Ok(s.handle),
            Phase::Invalid => Err(Error::InvalidService { handle: s.handle }),
        }
    }
}

/// One service of an [`Instance`](crate::Instance): cheap to clone.
///
/// Dropping a `Service` does not close it (it is a handle, as in C): the service lives
/// until [`close`](Self::close) (clients), [`remove`](Self::remove) or the instance's
/// shutdown. A `Service` does not keep its instance alive: once the instance is shut down (by
/// [`Instance::shutdown`](crate::Instance::shutdown) or dropping its last clone), every call
/// fails with [`Error::Closed`] or [`Error::InvalidService`].
#[derive(Clone)]
pub struct Service {
    pub(crate) inner: Arc<ServiceInner>,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("handle", &format_args!("{:#x}", self.handle()))
            .field("fourcc", &self.inner.fourcc)
            .field("handler", &self.inner.handler)
            .finish()
    }
}

impl Service {
    /// The driver's handle for this service (what GET_CLIENT_ID and `vchiq status` use).
    pub fn handle(&self) -> u32 {
        self.inner.lock().handle
    }

    /// The service's fourcc.
    pub fn fourcc(&self) -> FourCc {
        self.inner.fourcc
    }

    /// Whether both handles name the same service.
    pub fn same_as(&self, other: &Service) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    fn core(&self) -> &Core {
        &self.inner.core
    }

    /// Sends one DATA message (QUEUE_MESSAGE with one element).
    ///
    /// Over the daemon socket the message is *posted*: this returns once it is on its way,
    /// without a round trip, so messages stream at the socket's rate. The daemon keeps
    /// them in order with everything else this instance sends, and holds the sender back
    /// when the VideoCore's quota is exhausted. A message the daemon could not queue (the
    /// service closed meanwhile) makes the next message call of this instance fail with
    /// that error. On the native `/dev/vchiq` transport it is one ioctl.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] above 4088 bytes (checked locally); `Ioctl` EIO if the
    /// service is not open (or an earlier posted message failed).
    pub fn queue_message(&self, data: &[u8]) -> Result<()> {
        self.queue_message_vectored(&[data])
    }

    /// Sends the concatenation of `parts` as one DATA message (QUEUE_MESSAGE with up to 8
    /// elements, like `vchi_msg_queuev`). Zero-length messages are legal.
    ///
    /// # Errors
    /// [`Error::TooManyElements`] above 8 parts and [`Error::MessageTooLarge`] above 4088
    /// bytes in total, both checked locally before anything is sent.
    pub fn queue_message_vectored(&self, parts: &[&[u8]]) -> Result<()> {
        check_message(parts)?;
        let handle = self.inner.live_handle()?;
        let head = QueueMessageRequest {
            handle,
            count: parts.len() as u32,
        };
        let sizes: Vec<u8> = parts
            .iter()
            .flat_map(|p| (p.len() as u32).to_le_bytes())
            .collect();
        let mut payload: Vec<&[u8]> = Vec::with_capacity(2 + parts.len());
        payload.push(head.as_bytes());
        payload.push(&sizes);
        payload.extend_from_slice(parts);
        self.core().post(&Request::with(Op::QueueMessage, &payload))
    }

    /// Takes the next message of a [`Handler::Queue`] service (DEQUEUE_MESSAGE).
    ///
    /// Blocking waits for a message. Non-blocking returns [`Error::WouldBlock`] when none
    /// is queued. Over the daemon socket one request takes every message queued (a
    /// batch); the rest are handed out by the next calls without a round trip each.
    /// Dequeues of one service are served one at a time, in order.
    pub fn dequeue(&self, blocking: bool) -> Result<Vec<u8>> {
        self.need_queue("dequeue")?;
        let handle = self.inner.live_handle()?;
        let _order = self
            .inner
            .dequeue_order
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(m) = self.inner.lock().fetched.pop_front() {
            return Ok(m);
        }
        let req = DequeueRequest {
            handle,
            blocking: u32::from(blocking),
            bufsize: MAX_MSG_SIZE as u32,
            null_buf: 0,
        };
        let payload = [req.as_bytes()];
        let mut r = Request::with(Op::DequeueMessage, &payload);
        let batch = self.core().transport.batches();
        if batch {
            r.flags = vchiq_abi::wire::REQUEST_BATCH;
        }
        let resp = self.core().call(&r)?;
        let n = resp.check(Op::DequeueMessage)?;
        if !batch {
            let mut data = resp.payload;
            if usize::try_from(n).ok() != Some(data.len()) {
                return Err(Error::Protocol(format!(
                    "DEQUEUE_MESSAGE returned {n} but carried {} bytes",
                    data.len()
                )));
            }
            data.shrink_to_fit();
            return Ok(data);
        }
        let mut messages = split_batch(n, &resp.payload)?;
        let first = messages
            .pop_front()
            .ok_or_else(|| Error::Protocol("a DEQUEUE_MESSAGE batch carried no message".into()))?;
        self.inner.lock().fetched.extend(messages);
        Ok(first)
    }

    /// The next non-message event of a [`Handler::Queue`] service: Opened, Closed, bulk
    /// completions and MessageAvailable. `None` waits without limit.
    ///
    /// # Errors
    /// [`Error::Timeout`] when `timeout` passes; [`Error::Closed`] once the instance has
    /// stopped delivering events and none is left.
    pub fn wait_event(&self, timeout: Option<Duration>) -> Result<Event> {
        self.need_queue("wait_event")?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut s = self.inner.lock();
        loop {
            if let Some(e) = s.events.pop_front() {
                return Ok(e);
            }
            if s.ended {
                return Err(Error::Closed);
            }
            s = match deadline {
                None => self
                    .inner
                    .cv
                    .wait(s)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(Error::Timeout);
                    }
                    self.inner
                        .cv
                        .wait_timeout(s, d - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    /// Sends `data` as a bulk transfer. Over the daemon socket, up to 4 KiB travel in the
    /// request itself; larger transfers are copied into a sealed memfd that is passed to
    /// the daemon.
    ///
    /// BLOCKING returns when the VideoCore has taken the data (`Ioctl` EIO if aborted);
    /// CALLBACK returns at once and reports [`Event::BulkTransmitDone`] (or `...Aborted`)
    /// with `userdata` later; NOCALLBACK reports nothing.
    pub fn bulk_transmit(&self, data: &[u8], mode: BulkMode, userdata: u64) -> Result<()> {
        let size = bulk_size(data.len(), mode)?;
        let handle = self.inner.live_handle()?;
        let req = BulkRequest {
            handle,
            size,
            userdata,
            mode: mode.raw(),
            thread: sys::gettid(),
        };
        if self.core().transport.direct_bulk() {
            return self.bulk_transmit_direct(data, mode, req);
        }
        if self.core().transport.batches() && data.len() <= vchiq_abi::wire::MAX_INLINE_BULK {
            // Small bulks travel in the request: no memfd to create, pass and read. Those
            // whose outcome is a completion (or nothing) are posted, as messages are.
            if matches!(mode, BulkMode::Callback | BulkMode::NoCallback) {
                let payload = [req.as_bytes(), data];
                let mut r = Request::with(Op::QueueBulkTransmit, &payload);
                r.flags = vchiq_abi::wire::REQUEST_INLINE;
                return self.core().post(&r);
            }
            self.bulk_call_with(Op::QueueBulkTransmit, req, None, None, Some(data))?;
            return Ok(());
        }
        if mode == BulkMode::Blocking {
            // The driver is done with the memfd when the call returns: reuse one.
            let memfd = match self.core().take_memfd(data.len()) {
                Some(f) => {
                    sys::overwrite(&f, data)?;
                    f
                }
                None => sys::memfd_with("vchiq-bulk-tx", data)?,
            };
            let size = sys::file_len(&memfd)?;
            self.bulk_call(Op::QueueBulkTransmit, req, Some(&memfd), None)?;
            self.core().keep_memfd(memfd, size);
            return Ok(());
        }
        let memfd = sys::memfd_with("vchiq-bulk-tx", data)?;
        self.bulk_call(Op::QueueBulkTransmit, req, Some(&memfd), None)?;
        Ok(())
    }

    /// Native transport: BLOCKING passes `data` itself (the call returns only when the
    /// driver is done with it); CALLBACK and NOCALLBACK pass a copy kept until the driver
    /// is done ([`KeptBulk`]).
    fn bulk_transmit_direct(&self, data: &[u8], mode: BulkMode, req: BulkRequest) -> Result<()> {
        if mode == BulkMode::Blocking {
            self.bulk_call(Op::QueueBulkTransmit, req, None, Some(BulkPtr::of(data)))?;
            self.inner.drop_nocallback(true);
            return Ok(());
        }
        let callback = mode == BulkMode::Callback;
        let (kept, ptr) = KeptBulk::new(true, callback, req.userdata, data.into());
        self.inner.lock().kept.push_back(kept);
        match self.bulk_call(Op::QueueBulkTransmit, req, None, Some(ptr)) {
            Ok(_) => {
                if !callback {
                    self.inner.trim_nocallback(true);
                }
                Ok(())
            }
            Err(e) => {
                // Not queued: the driver never kept the address.
                self.inner
                    .lock()
                    .kept
                    .retain(|b| b.buf.as_ptr() as usize != ptr.addr);
                Err(e)
            }
        }
    }

    /// Receives a bulk transfer of `len` bytes into a sealed memfd passed to the daemon.
    ///
    /// BLOCKING returns `Some(data)`; CALLBACK returns `None` and later reports
    /// [`Event::BulkReceiveDone`] with the data (the library keeps the memfd until then);
    /// NOCALLBACK returns `None` and the data is discarded.
    pub fn bulk_receive(
        &self,
        len: usize,
        mode: BulkMode,
        userdata: u64,
    ) -> Result<Option<Vec<u8>>> {
        let size = bulk_size(len, mode)?;
        let handle = self.inner.live_handle()?;
        let req = BulkRequest {
            handle,
            size,
            userdata,
            mode: mode.raw(),
            thread: sys::gettid(),
        };
        if self.core().transport.direct_bulk() {
            return self.bulk_receive_direct(len, mode, req);
        }
        if mode == BulkMode::Blocking {
            let memfd = match self.core().take_memfd(len) {
                Some(f) => f,
                None => sys::memfd_sized("vchiq-bulk-rx", len)?,
            };
            let size = sys::file_len(&memfd)?;
            self.bulk_call(Op::QueueBulkReceive, req, Some(&memfd), None)?;
            let data = sys::read_all(&memfd, len)?;
            self.core().keep_memfd(memfd, size);
            return Ok(Some(data));
        }
        let memfd = sys::memfd_sized("vchiq-bulk-rx", len)?;
        match mode {
            BulkMode::Callback => {
                let file = memfd.try_clone()?;
                let payload = [req.as_bytes()];
                let r = Request {
                    op: Op::QueueBulkReceive,
                    arg: 0,
                    payload: &payload,
                    fd: Some(memfd.as_fd()),
                    bulk: None,
                    flags: 0,
                };
                self.submit_rx_callback(&r, len, req.userdata, RxStore::Memfd(file))?;
                Ok(None)
            }
            _ => {
                self.bulk_call(Op::QueueBulkReceive, req, Some(&memfd), None)?;
                if mode == BulkMode::Blocking {
                    Ok(Some(sys::read_all(&memfd, len)?))
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Native transport: the driver writes into a buffer of this library, returned
    /// (BLOCKING), delivered with [`Event::BulkReceiveDone`] (CALLBACK) or kept until the
    /// driver is done and dropped (NOCALLBACK).
    fn bulk_receive_direct(
        &self,
        len: usize,
        mode: BulkMode,
        req: BulkRequest,
    ) -> Result<Option<Vec<u8>>> {
        match mode {
            BulkMode::Blocking => {
                let mut buf = vec![0u8; len];
                self.bulk_call(
                    Op::QueueBulkReceive,
                    req,
                    None,
                    Some(BulkPtr::of_mut(&mut buf)),
                )?;
                self.inner.drop_nocallback(false);
                Ok(Some(buf))
            }
            BulkMode::Callback => {
                let mut buf = vec![0u8; len].into_boxed_slice();
                let ptr = BulkPtr::of_mut(&mut buf);
                let payload = [req.as_bytes()];
                let r = Request {
                    op: Op::QueueBulkReceive,
                    arg: 0,
                    payload: &payload,
                    fd: None,
                    bulk: Some(ptr),
                    flags: 0,
                };
                self.submit_rx_callback(&r, len, req.userdata, RxStore::Buf(buf))?;
                Ok(None)
            }
            _ => {
                let (kept, ptr) = KeptBulk::new(
                    false,
                    false,
                    req.userdata,
                    vec![0u8; len].into_boxed_slice(),
                );
                self.inner.lock().kept.push_back(kept);
                match self.bulk_call(Op::QueueBulkReceive, req, None, Some(ptr)) {
                    Ok(_) => {
                        self.inner.trim_nocallback(false);
                        Ok(None)
                    }
                    Err(e) => {
                        self.inner
                            .lock()
                            .kept
                            .retain(|b| b.buf.as_ptr() as usize != ptr.addr);
                        Err(e)
                    }
                }
            }
        }
    }

    /// A CALLBACK receive: records where the data lands and sends the request under one
    /// lock, so the FIFO of pending receives is in the order the driver sees them.
    fn submit_rx_callback(
        &self,
        r: &Request<'_>,
        len: usize,
        userdata: u64,
        store: RxStore,
    ) -> Result<()> {
        let (tx, rx) = channel();
        let (id, tag) = {
            let _order = self
                .inner
                .rx_order
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let id = {
                let mut s = self.inner.lock();
                let id = s.next_rx_id;
                s.next_rx_id += 1;
                s.rx_bulks.push_back(RxBulk {
                    id,
                    userdata,
                    len,
                    store,
                });
                id
            };
            if r.bulk.is_some() {
                // Native transport: the ioctl runs right here (it blocks only while 4
                // receives are outstanding), still under the order lock.
                let result = self
                    .core()
                    .transport
                    .call(r)
                    .and_then(|resp| resp.check(Op::QueueBulkReceive));
                if let Err(e) = result {
                    self.forget_rx(id);
                    return Err(e);
                }
                return Ok(());
            }
            match self.core().transport.submit(r, tx) {
                Ok(tag) => (id, tag),
                Err(e) => {
                    self.forget_rx(id);
                    return Err(e);
                }
            }
        };
        let result = wait_for(&rx, tag).and_then(|resp| resp.check(Op::QueueBulkReceive));
        if let Err(e) = result {
            self.forget_rx(id);
            return Err(e);
        }
        Ok(())
    }

    fn forget_rx(&self, id: u64) {
        self.inner.lock().rx_bulks.retain(|b| b.id != id);
    }

    /// A bulk request, resumed with WAITING if the driver reports an interrupted BLOCKING
    /// transfer (`-EINTR` with `mode = WAITING` written back, spec §3.5).
    ///
    /// `memfd` (socket transport) or `bulk` (native transport) is the data.
    fn bulk_call(
        &self,
        op: Op,
        req: BulkRequest,
        memfd: Option<&File>,
        bulk: Option<BulkPtr>,
    ) -> Result<Response> {
        self.bulk_call_with(op, req, memfd, bulk, None)
    }

    /// [`Service::bulk_call`], with a transmit's bytes carried in the request itself
    /// (`inline`, socket transport, at most [`vchiq_abi::wire::MAX_INLINE_BULK`]).
    fn bulk_call_with(
        &self,
        op: Op,
        mut req: BulkRequest,
        memfd: Option<&File>,
        bulk: Option<BulkPtr>,
        mut inline: Option<&[u8]>,
    ) -> Result<Response> {
        let mut fd = memfd.map(|f| f.as_fd());
        loop {
            let head = req.as_bytes();
            let with_data;
            let only_head;
            let payload: &[&[u8]] = match inline {
                Some(data) => {
                    with_data = [head, data];
                    &with_data
                }
                None => {
                    only_head = [head];
                    &only_head
                }
            };
            let resp = self.core().transport.call(&Request {
                op,
                arg: 0,
                payload,
                fd,
                bulk,
                flags: if inline.is_some() {
                    vchiq_abi::wire::REQUEST_INLINE
                } else {
                    0
                },
            })?;
            if resp.result == -i64::from(libc::EINTR) {
                if let Ok((back, _)) = BulkResponse::read_from_prefix(&resp.payload) {
                    if back.mode == BulkMode::Waiting.raw() {
                        req.mode = back.mode;
                        // The driver kept the data (or memfd) with the saved waiter.
                        fd = None;
                        inline = None;
                        continue;
                    }
                }
                if req.mode != BulkMode::Waiting.raw() {
                    continue; // interrupted before anything was queued: re-issue as is
                }
            }
            resp.check(op)?;
            return Ok(resp);
        }
    }

    /// GET_CLIENT_ID: the client id the driver recorded for this service, as the ioctl
    /// returns it (for a client service: this instance's attested PID; 0 for an unknown
    /// handle).
    pub fn client_id(&self) -> Result<u32> {
        let handle = self.inner.live_handle()?;
        let resp = self
            .core()
            .transport
            .call(&Request::value(Op::GetClientId, u64::from(handle)))?;
        let id = resp.check(Op::GetClientId)?;
        u32::try_from(id).map_err(|_| Error::Protocol(format!("GET_CLIENT_ID returned {id}")))
    }

    /// USE_SERVICE: raises the service's use count.
    pub fn use_service(&self) -> Result<()> {
        self.value_op(Op::UseService)
    }

    /// RELEASE_SERVICE: lowers the use count (`Ioctl` EINVAL when it is already 0).
    pub fn release_service(&self) -> Result<()> {
        self.value_op(Op::ReleaseService)
    }

    /// SET_SERVICE_OPTION.
    pub fn set_option(&self, option: ServiceOption, value: i32) -> Result<()> {
        let handle = self.inner.live_handle()?;
        let req = SetOptionRequest {
            handle,
            option: option.raw(),
            value,
        };
        self.core()
            .call(&Request::with(Op::SetServiceOption, &[req.as_bytes()]))?;
        Ok(())
    }

    /// CLOSE_SERVICE. Returns once the service has closed and its [`Event::Closed`] has
    /// been delivered (the close-delivered handshake). A client service's handle becomes
    /// invalid; a server goes back to listening.
    ///
    /// May be called from this or any service's callback: the completion thread then
    /// keeps collecting completions while it waits, sends CLOSE_DELIVERED as soon as the
    /// SERVICE_CLOSED arrives, and delivers the collected events (including this
    /// service's Closed) after the calling callback returns.
    pub fn close(&self) -> Result<()> {
        let handle = self.inner.live_handle()?;
        self.core()
            .close_or_remove(&self.inner, Op::CloseService, handle)?;
        if self.inner.is_open {
            self.core().forget(&self.inner);
        }
        Ok(())
    }

    /// REMOVE_SERVICE: closes the service if needed and frees it; the handle becomes
    /// invalid. Like [`close`](Self::close), it may be called from a callback.
    pub fn remove(&self) -> Result<()> {
        let handle = self.inner.live_handle()?;
        self.core()
            .close_or_remove(&self.inner, Op::RemoveService, handle)?;
        self.core().forget(&self.inner);
        Ok(())
    }

    fn value_op(&self, op: Op) -> Result<()> {
        let handle = self.inner.live_handle()?;
        self.core().call(&Request::value(op, u64::from(handle)))?;
        Ok(())
    }

    fn need_queue(&self, op: &'static str) -> Result<()> {
        match self.inner.handler {
            Handler::Queue => Ok(()),
            Handler::Callback(_) => Err(Error::WrongHandler {
                op,
                needs: "Handler::Queue",
            }),
        }
    }
}

/// The wire size of a bulk of `len` bytes, refusing WAITING (internal to the driver).
fn bulk_size(len: usize, mode: BulkMode) -> Result<u32> {
    if mode == BulkMode::Waiting {
        return Err(Error::InvalidBulkMode);
    }
    u32::try_from(len).map_err(|_| Error::BulkTooLarge {
        size: len,
        max: u32::MAX as usize,
    })
}

/// Splits a batch DEQUEUE_MESSAGE response: `count` messages, each a u32 size and its
/// bytes.
fn split_batch(count: i64, mut payload: &[u8]) -> Result<VecDeque<Vec<u8>>> {
    let bad = |what: &str| Error::Protocol(format!("DEQUEUE_MESSAGE batch: {what}"));
    let mut out = VecDeque::new();
    for _ in 0..count {
        let (size, rest) = payload
            .split_at_checked(4)
            .ok_or_else(|| bad("short size"))?;
        let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
        if size > MAX_MSG_SIZE {
            return Err(bad("message larger than 4088 bytes"));
        }
        let (data, rest) = rest
            .split_at_checked(size)
            .ok_or_else(|| bad("short message"))?;
        out.push_back(data.to_vec());
        payload = rest;
    }
    if !payload.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(out)
}
