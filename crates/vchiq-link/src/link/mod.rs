//! The protocol engine: slot zero set-up, the slot handler, senders, services and bulks.
//!
//! All mutable protocol state lives in one [`State`] behind one mutex, shared by the callers'
//! threads and the slot-handler thread; a single condition variable wakes every blocked caller
//! whenever something they may wait for changes (recycled slots, open results, bulk completions,
//! shutdown). Service events are queued under the lock and delivered by the handler thread after
//! it has dropped the lock, in the order they were produced.
//!
//! The engine is one type, [`Core`], whose methods are split by concern: [`slots`] (receiving
//! the peer's slots, recycling, slot zero), [`senders`] (writing our stream), [`services`]
//! (services, ports and quotas) and [`bulk`] (bulk transfers). This file holds the core itself,
//! its construction, the slot-handler thread and the link-wide operations.

mod bulk;
mod senders;
mod services;
mod slots;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use tracing::{debug, trace, warn};
use zerocopy::{FromBytes, IntoBytes};

use self::bulk::{RX, TX};
use self::senders::OutMsg;
use self::services::{Claim, Quota, Service};
use self::slots::{Geometry, RxSlot, SlotRecord, validate_slot_zero, write_sync_slot};
use crate::abi::defs::{
    MAX_SERVICES, MAX_SLOTS, MSGID_CLAIMED, SLOT_SIZE, SLOT_ZERO_SIZE, VCHIQ_VERSION,
};
use crate::abi::msg::{ConnState, MsgType, SrvState};
use crate::arena::Arena;
use crate::doorbell::Doorbell;
use crate::layout::{
    ARMED_OFF, FIRED_OFF, INITIALISED_OFF, MASTER_STATE_OFF, RECYCLE_OFF, SLAVE_STATE_OFF,
    SlotZero, TRIGGER_OFF, VERSION_OFF,
};
use crate::parse::{Msg, Parsed, SlotImage};
use crate::pos::TxPos;
use crate::service::{
    LinkStats, Message, ReleaseClaim, ServiceEvent, ServiceHandle, ServiceHandler,
};
use crate::shm::SlotMem;
use crate::{Error, LinkConfig, Result};

pub(crate) use self::slots::{init_half, write_slot_zero};

/// Poll interval of the handler while the peer has not initialised its half yet.
const INIT_POLL: Duration = Duration::from_millis(10);

/// Which half of slot zero this side owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Master,
    Slave,
}

/// An event waiting to be delivered by the handler thread.
struct Pending {
    handler: Arc<dyn ServiceHandler>,
    handle: ServiceHandle,
    event: ServiceEvent,
}

struct State {
    shutdown: bool,
    broken: Option<String>,
    remote_initialised: bool,
    connect_sent: bool,
    peer_connected: bool,
    version_common: u16,

    // --- transmit side ---
    tx_pos: TxPos,
    /// The slot `tx_pos` is inside of (None at a slot boundary).
    tx_slot: Option<u32>,
    /// Our free slots in `slot_queue` order (validated copies).
    free_slots: VecDeque<u32>,
    /// Free-running count of slot-queue entries made available to us (initial + recycled).
    slot_queue_available: u32,
    /// Our slots entered and not yet recycled (bit per slot index).
    in_flight: u128,
    records: Vec<SlotRecord>,
    data_quota: u32,
    data_use_count: u32,
    previous_data_index: u32,
    default_slot_quota: u32,
    default_message_quota: u32,
    quotas: Vec<Quota>,
    outbox: VecDeque<OutMsg>,

    // --- receive side ---
    rx_pos: TxPos,
    rx_slot: Option<u32>,
    rx_image: Option<Box<SlotImage>>,
    rx_info: Vec<RxSlot>,
    /// Next value of the peer's `slot_queue_recycle` (we own that counter).
    recycle_next: u32,
    claims: HashMap<u64, Claim>,
    next_claim: u64,

    // --- services ---
    services: BTreeMap<u32, Service>,
    handle_seq: u32,
    arena: Arena,
    events: VecDeque<Pending>,
    stats: LinkStats,
}

/// The shared core of a link.
pub(crate) struct Core<M: SlotMem, D: Doorbell> {
    mem: M,
    local_bell: D,
    remote_bell: D,
    role: Role,
    geo: Geometry,
    st: Mutex<State>,
    cond: Condvar,
    stop: AtomicBool,
    poke: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
    thread_id: OnceLock<ThreadId>,
    this: Weak<Core<M, D>>,
    /// Set when recycled slots gave quota or slot space back; the handler then calls
    /// `space_waker` once, outside the lock.
    space_freed: AtomicBool,
    space_waker: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Bulk regions shared with an in-process peer (`crate::region`).
    regions: OnceLock<Arc<crate::region::BulkRegions>>,
}

impl<M: SlotMem, D: Doorbell> Core<M, D> {
    // ------------------------------------------------------------------ set-up

    /// ARM side: write slot zero and our half (spec §2.2), `slave.initialised` last.
    pub(crate) fn new_slave(
        mem: M,
        config: &LinkConfig,
        local: D,
        remote: D,
        start: TxPos,
    ) -> Result<Arc<Self>> {
        config.validate()?;
        let needed = config.memory_size();
        if mem.len() < needed {
            return Err(Error::MemoryTooSmall {
                size: mem.len(),
                needed,
            });
        }
        if start.offset() != 0 {
            return Err(Error::InvalidConfig {
                what: "initial tx_pos (must be slot aligned)",
                value: start.0.into(),
            });
        }
        let z = write_slot_zero(&mem, config, start)?;
        let arena_off = config.arena_offset();
        let geo = Geometry {
            local: SLAVE_STATE_OFF,
            remote: MASTER_STATE_OFF,
            local_first: z.slave.slot_first,
            local_last: z.slave.slot_last,
            remote_first: z.master.slot_first,
            remote_last: z.master.slot_last,
            arena_off,
            arena_size: config.bulk_arena_size,
            start,
        };
        let core = Self::build(mem, local, remote, Role::Slave, geo);
        write_sync_slot(&core.mem, z.slave.slot_sync)?;
        // Release: every field of slot zero above is visible before the flag that says it is ready.
        core.mem
            .store_u32(SLAVE_STATE_OFF + INITIALISED_OFF, 1, Ordering::Release)?;
        core.start_thread("vchiq-slave")?;
        Ok(core)
    }

    /// VideoCore side: validate slot zero, initialise our half, `master.initialised = 1`.
    pub(crate) fn new_master(mem: M, local: D, remote: D) -> Result<Arc<Self>> {
        if mem.len() < SLOT_SIZE {
            return Err(Error::MemoryTooSmall {
                size: mem.len(),
                needed: SLOT_SIZE,
            });
        }
        // Acquire: pairs with the slave's Release store, so slot zero is complete if it is set.
        let init = mem.load_u32(SLAVE_STATE_OFF + INITIALISED_OFF, Ordering::Acquire)?;
        let mut bytes = [0u8; SLOT_ZERO_SIZE];
        mem.read(0, &mut bytes)?;
        let z = SlotZero::read_from_bytes(&bytes[..]).map_err(|_| Error::MemoryTooSmall {
            size: 0,
            needed: SLOT_ZERO_SIZE,
        })?;
        let geo = validate_slot_zero(&z, init, mem.len())?;
        if z.version > VCHIQ_VERSION {
            mem.write(VERSION_OFF, &VCHIQ_VERSION.to_le_bytes())?;
        }
        let mut half = z.master;
        init_half(&mut half, geo.start);
        half.initialised = 0;
        mem.write(MASTER_STATE_OFF, half.as_bytes())?;
        let core = Self::build(mem, local, remote, Role::Master, geo);
        write_sync_slot(&core.mem, half.slot_sync)?;
        {
            let mut st = core.lock();
            st.remote_initialised = true;
        }
        // Release: our half is visible before the flag that says it is ready.
        core.mem
            .store_u32(MASTER_STATE_OFF + INITIALISED_OFF, 1, Ordering::Release)?;
        core.start_thread("vchiq-master")?;
        // Tell a slave that polls its trigger that we are here (harmless if it is not waiting).
        core.signal_remote(TRIGGER_OFF)?;
        Ok(core)
    }

    fn build(mem: M, local_bell: D, remote_bell: D, role: Role, geo: Geometry) -> Arc<Self> {
        let lc = geo.local_count();
        let slot_quota = lc / 2;
        let message_quota = (slot_quota * 256).min(65535);
        let quota = Quota {
            slot_quota,
            message_quota,
            previous_tx_index: geo.start.queue_index().wrapping_sub(1),
            ..Quota::default()
        };
        let st = State {
            shutdown: false,
            broken: None,
            remote_initialised: false,
            connect_sent: false,
            peer_connected: false,
            version_common: 0,
            tx_pos: geo.start,
            tx_slot: None,
            free_slots: (geo.local_first..=geo.local_last).collect(),
            slot_queue_available: geo.initial_recycle(lc),
            in_flight: 0,
            records: vec![SlotRecord::default(); MAX_SLOTS],
            data_quota: lc - 1,
            data_use_count: 0,
            previous_data_index: geo.start.queue_index().wrapping_sub(1),
            default_slot_quota: slot_quota,
            default_message_quota: message_quota,
            quotas: vec![quota; MAX_SERVICES],
            outbox: VecDeque::new(),
            rx_pos: geo.start,
            rx_slot: None,
            rx_image: Some(Box::new([0u8; SLOT_SIZE])),
            rx_info: vec![RxSlot::default(); MAX_SLOTS],
            recycle_next: geo.initial_recycle(geo.remote_count()),
            claims: HashMap::new(),
            next_claim: 1,
            services: BTreeMap::new(),
            handle_seq: 4096,
            arena: Arena::new(
                geo.arena_off,
                if role == Role::Slave {
                    geo.arena_size
                } else {
                    0
                },
            ),
            events: VecDeque::new(),
            stats: LinkStats::default(),
        };
        Arc::new_cyclic(|this| Core {
            mem,
            local_bell,
            remote_bell,
            role,
            geo,
            st: Mutex::new(st),
            cond: Condvar::new(),
            stop: AtomicBool::new(false),
            poke: AtomicBool::new(false),
            thread: Mutex::new(None),
            thread_id: OnceLock::new(),
            space_freed: AtomicBool::new(false),
            space_waker: OnceLock::new(),
            regions: OnceLock::new(),
            this: this.clone(),
        })
    }

    pub(crate) fn set_space_waker(&self, waker: Box<dyn Fn() + Send + Sync>) {
        let _ = self.space_waker.set(waker);
    }

    pub(crate) fn share_bulk_regions(&self, regions: Arc<crate::region::BulkRegions>) {
        let _ = self.regions.set(regions);
    }

    pub(crate) fn bulk_regions(&self) -> Option<&Arc<crate::region::BulkRegions>> {
        self.regions.get()
    }

    fn start_thread(self: &Arc<Self>, name: &str) -> Result<()> {
        let core = Arc::clone(self);
        let h = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || core.run())
            .map_err(|e| Error::Io {
                op: "spawn slot-handler thread",
                source: e,
            })?;
        let _ = self.thread_id.set(h.thread().id());
        *self.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(h);
        Ok(())
    }

    // ------------------------------------------------------------------ helpers

    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, g: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.cond.wait(g).unwrap_or_else(PoisonError::into_inner)
    }

    fn check_link(st: &State) -> Result<()> {
        if st.shutdown {
            return Err(Error::Shutdown);
        }
        if let Some(r) = &st.broken {
            return Err(Error::LinkBroken(r.clone()));
        }
        Ok(())
    }

    fn slot_base(slot: u32) -> usize {
        slot as usize * SLOT_SIZE
    }

    /// Wakes our own handler so it delivers queued events.
    fn poke(&self) {
        self.poke.store(true, Ordering::Release);
        self.local_bell.ring();
    }

    /// Signals one of the peer's events (spec §2.5).
    fn signal_remote(&self, event_off: usize) -> Result<()> {
        let base = self.geo.remote + event_off;
        // SeqCst: orders this store after the Release stores it announces, and pairs with the
        // owner's "armed = 1; load fired" so that one of the two sides sees the other.
        self.mem.store_u32(base + FIRED_OFF, 1, Ordering::SeqCst)?;
        // SeqCst: the second half of that pairing.
        if self.mem.load_u32(base + ARMED_OFF, Ordering::SeqCst)? != 0 {
            self.remote_bell.ring();
        }
        Ok(())
    }

    fn break_link(&self, st: &mut State, err: &Error) {
        if st.broken.is_none() {
            warn!(role = ?self.role, error = %err, "vchiq link broken");
            st.broken = Some(err.to_string());
            st.stats.protocol_errors += 1;
        }
        self.cond.notify_all();
    }

    fn protocol_warning(st: &mut State, what: &str) {
        warn!("vchiq protocol error: {what}");
        st.stats.protocol_errors += 1;
    }

    fn push_event(st: &mut State, port: u32, event: ServiceEvent) {
        if let Some(s) = st.services.get(&port) {
            st.events.push_back(Pending {
                handler: Arc::clone(&s.handler),
                handle: s.handle,
                event,
            });
        }
    }

    // ------------------------------------------------------------------ slot handler

    fn run(self: Arc<Self>) {
        let our_events = [TRIGGER_OFF, RECYCLE_OFF];
        loop {
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            self.poke.store(false, Ordering::Relaxed);
            for ev in our_events {
                // Spec §2.5: after waking, disarm then clear `fired`; both SeqCst so that a
                // signal after the clear is seen by the next check below.
                let base = self.geo.local + ev;
                let _ = self.mem.store_u32(base + ARMED_OFF, 0, Ordering::SeqCst);
                let _ = self.mem.store_u32(base + FIRED_OFF, 0, Ordering::SeqCst);
            }
            let (events, done, initialised) = self.poll_once();
            self.dispatch(events);
            if self.space_freed.swap(false, Ordering::AcqRel) {
                if let Some(w) = self.space_waker.get() {
                    w();
                }
            }
            if done {
                break;
            }
            // Arm our events, then re-check `fired` (SeqCst pairs with the signaller's
            // "fired = 1; load armed"), and sleep only if nothing fired meanwhile.
            let mut fired = false;
            for ev in our_events {
                let base = self.geo.local + ev;
                let _ = self.mem.store_u32(base + ARMED_OFF, 1, Ordering::SeqCst);
            }
            for ev in our_events {
                let base = self.geo.local + ev;
                fired |= self
                    .mem
                    .load_u32(base + FIRED_OFF, Ordering::SeqCst)
                    .unwrap_or(0)
                    != 0;
            }
            if fired || self.poke.load(Ordering::Acquire) || self.stop.load(Ordering::Acquire) {
                continue;
            }
            self.local_bell
                .wait(if initialised { None } else { Some(INIT_POLL) });
        }
        // Deliver nothing more; drop what is left outside the lock.
        let left = std::mem::take(&mut self.lock().events);
        drop(left);
    }

    /// One pass of the handler. Returns the events to deliver, whether the handler should
    /// stop, and whether the peer has initialised.
    fn poll_once(&self) -> (VecDeque<Pending>, bool, bool) {
        let mut st = self.lock();
        if st.shutdown || st.broken.is_some() {
            return (std::mem::take(&mut st.events), true, true);
        }
        if !st.remote_initialised {
            // Acquire: pairs with the peer's Release store of `initialised`.
            match self
                .mem
                .load_u32(self.geo.remote + INITIALISED_OFF, Ordering::Acquire)
            {
                Ok(v) if v != 0 => {
                    debug!(role = ?self.role, "remote side initialised");
                    st.remote_initialised = true;
                    self.cond.notify_all();
                }
                Ok(_) => return (std::mem::take(&mut st.events), false, false),
                Err(e) => {
                    self.break_link(&mut st, &e);
                    return (std::mem::take(&mut st.events), true, true);
                }
            }
        }
        let r = self
            .process_recycles(&mut st)
            .and_then(|()| self.flush_outbox(&mut st))
            .and_then(|()| self.parse_incoming(&mut st))
            .and_then(|()| self.flush_outbox(&mut st));
        if let Err(e) = r {
            self.break_link(&mut st, &e);
        }
        (std::mem::take(&mut st.events), false, true)
    }

    fn dispatch(&self, events: VecDeque<Pending>) {
        for p in events {
            let Pending {
                handler,
                handle,
                event,
            } = p;
            if std::panic::catch_unwind(AssertUnwindSafe(|| handler.event(handle, event))).is_err()
            {
                warn!(%handle, "vchiq service handler panicked; event dropped");
            }
        }
    }

    // ------------------------------------------------------------------ incoming messages

    fn handle_message(&self, st: &mut State, slot: u32, m: &Parsed<'_>) -> Result<()> {
        let (src, dst) = (m.src.0, m.dst.0);
        if !matches!(m.msg, Msg::Padding) {
            st.stats.messages_received += 1;
            st.stats.bytes_received += (m.stride - 8) as u64;
        }
        trace!(role = ?self.role, ty = m.type_name(), src, dst, "rx");
        match m.msg {
            Msg::Padding => {}
            Msg::Connect => {
                let mut v = [0u8; 2];
                self.mem.read(VERSION_OFF, &mut v)?;
                st.version_common = u16::from_le_bytes(v).min(VCHIQ_VERSION);
                st.peer_connected = true;
                self.cond.notify_all();
            }
            Msg::Open(p) => self.handle_open(st, src, dst, p)?,
            Msg::OpenAck { version } => match st.services.get_mut(&dst) {
                Some(s) if s.state == SrvState::Opening => {
                    s.state = SrvState::Open;
                    s.remoteport = src;
                    if let Some(v) = version {
                        s.peer_version = v;
                    }
                    self.cond.notify_all();
                }
                _ => Self::protocol_warning(st, &format!("stray OPENACK {src} -> {dst}")),
            },
            Msg::Close => self.handle_close(st, src, dst)?,
            Msg::Data(bytes) => {
                match st.services.get(&dst) {
                    Some(s) if s.state == SrvState::Open && s.remoteport == src => {
                        if s.trace {
                            debug!(handle = %s.handle, src, len = bytes.len(), "trace: DATA received");
                        }
                    }
                    // Data that crossed our CLOSE on the wire: dropped, as the spec says.
                    Some(s) if s.state != SrvState::Open => {
                        debug!(src, dst, state = %s.state, "DATA for a service that is not open; dropped");
                        return Ok(());
                    }
                    _ => {
                        Self::protocol_warning(
                            st,
                            &format!("DATA {src} -> {dst} for no service open to that port"),
                        );
                        return Ok(());
                    }
                }
                let header_off = Self::slot_base(slot) + m.offset;
                // Relaxed: the CLAIMED bit is informational; our own bookkeeping is private.
                self.mem
                    .store_u32(header_off, m.msgid | MSGID_CLAIMED, Ordering::Relaxed)?;
                st.rx_info[slot as usize].use_count += 1;
                let claim = st.next_claim;
                st.next_claim += 1;
                st.claims.insert(
                    claim,
                    Claim {
                        slot,
                        header_off,
                        port: dst,
                    },
                );
                st.stats.data_delivered += 1;
                let handle = st.services[&dst].handle;
                let owner: Weak<dyn ReleaseClaim> = self.this.clone();
                let msg = Message {
                    data: bytes.to_vec(),
                    service: handle,
                    claim,
                    owner: Some(owner),
                };
                Self::push_event(st, dst, ServiceEvent::Message(msg));
            }
            Msg::BulkRx(b) | Msg::BulkTx(b) => {
                let dir = if matches!(m.msg, Msg::BulkRx(_)) {
                    TX
                } else {
                    RX
                };
                self.handle_bulk_request(st, src, dst, dir, b)?;
            }
            Msg::BulkRxDone { actual } => self.handle_bulk_done(st, src, dst, RX, actual),
            Msg::BulkTxDone { actual } => self.handle_bulk_done(st, src, dst, TX, actual),
            Msg::Pause
            | Msg::Resume
            | Msg::RemoteUse
            | Msg::RemoteRelease
            | Msg::RemoteUseActive => {
                debug!(ty = m.type_name(), "ignored power-management message");
            }
            Msg::Malformed { ty, size } => {
                Self::protocol_warning(
                    st,
                    &format!("{ty} {src} -> {dst} with bad payload size {size}; skipped"),
                );
            }
            Msg::Unknown { ty } => {
                Self::protocol_warning(
                    st,
                    &format!("invalid msgid {:#x} (type {ty:#x}); skipped", m.msgid),
                );
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ public operations

    pub(crate) fn wait_remote_initialised(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            Self::check_link(&st)?;
            if st.remote_initialised {
                return Ok(());
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Err(Error::Timeout {
                    what: "the peer to initialise its half of slot zero",
                    after: timeout,
                });
            };
            st = self
                .cond
                .wait_timeout(st, left.min(INIT_POLL))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    pub(crate) fn connect(&self) -> Result<()> {
        let mut st = self.lock();
        loop {
            Self::check_link(&st)?;
            if st.remote_initialised {
                if !st.connect_sent {
                    st.connect_sent = true;
                    self.queue_control(&mut st, MsgType::Connect, 0, 0, &[])?;
                }
                if st.peer_connected {
                    return Ok(());
                }
            }
            st = self.wait(st);
        }
    }

    pub(crate) fn connection_state(&self) -> ConnState {
        let st = self.lock();
        match (st.connect_sent, st.peer_connected) {
            (true, true) => ConnState::Connected,
            (true, false) => ConnState::Connecting,
            _ => ConnState::Disconnected,
        }
    }

    pub(crate) fn stats(&self) -> LinkStats {
        self.lock().stats.clone()
    }

    pub(crate) fn broken(&self) -> Option<String> {
        self.lock().broken.clone()
    }

    pub(crate) fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        let left = {
            let mut st = self.lock();
            st.shutdown = true;
            self.cond.notify_all();
            std::mem::take(&mut st.events)
        };
        drop(left);
        self.local_bell.ring();
        if self.thread_id.get() == Some(&std::thread::current().id()) {
            return;
        }
        let h = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(h) = h {
            let _ = h.join();
        }
    }

    #[cfg(any(test, feature = "test-utils"))]
    pub(crate) fn tx_pos(&self) -> TxPos {
        self.lock().tx_pos
    }
}
