//! The protocol engine: slot zero set-up, the slot handler, senders, services and bulks.
//!
//! All mutable protocol state lives in one [`State`] behind one mutex, shared by the callers'
//! threads and the slot-handler thread; a single condition variable wakes every blocked caller
//! whenever something they may wait for changes (recycled slots, open results, bulk completions,
//! shutdown). Service events are queued under the lock and delivered by the handler thread after
//! it has dropped the lock, in the order they were produced.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use tracing::{debug, trace, warn};
use zerocopy::{FromBytes, IntoBytes};

use crate::abi::defs::{
    BULK_ACTUAL_ABORTED, DEBUG_ENTRIES, MAX_MSG_SIZE, MAX_SERVICES, MAX_SLOTS, MAX_SLOTS_PER_SIDE,
    MSGID_CLAIMED, NUM_SERVICE_BULKS, SLOT_SIZE, SLOT_ZERO_SIZE, VCHIQ_MAGIC, VCHIQ_VERSION,
    VCHIQ_VERSION_MIN, stride,
};
use crate::abi::enums::ServiceOption;
use crate::abi::fourcc::FourCc;
use crate::abi::msg::{ConnState, MsgType, SrvState};
use crate::arena::Arena;
use crate::doorbell::Doorbell;
use crate::layout::{
    ARMED_OFF, BulkPayload, FIRED_OFF, INITIALISED_OFF, MASTER_STATE_OFF, MsgHeader, OpenPayload,
    RECYCLE_OFF, SLAVE_STATE_OFF, SLOT_QUEUE_OFF, SLOT_QUEUE_RECYCLE_OFF, SharedState, SlotZero,
    TRIGGER_OFF, TX_POS_OFF, VERSION_OFF,
};
use crate::parse::{Msg, Parsed, ProtocolError, SlotImage, parse_message};
use crate::pos::{PortId, TxPos};
use crate::service::{
    LinkStats, Message, ReleaseClaim, ServiceEvent, ServiceHandle, ServiceHandler, ServiceInfo,
    ServiceParams,
};
use crate::shm::SlotMem;
use crate::{Error, LinkConfig, Result};

/// Control messages queued while no slot is free; past this the handler stops parsing the peer's
/// stream until the peer recycles (back-pressure instead of unbounded growth).
const OUTBOX_LIMIT: usize = 256;
/// Poll interval of the handler while the peer has not initialised its half yet.
const INIT_POLL: Duration = Duration::from_millis(10);
/// Bulk queue directions.
const TX: usize = 0;
const RX: usize = 1;

/// Which half of slot zero this side owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Master,
    Slave,
}

/// Validated slot-zero geometry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    /// Offset of our shared state in slot zero.
    local: usize,
    /// Offset of the peer's shared state.
    remote: usize,
    /// Our data slots, inclusive.
    local_first: u32,
    local_last: u32,
    /// The peer's data slots, inclusive.
    remote_first: u32,
    remote_last: u32,
    /// Bulk arena (absolute offset, size).
    arena_off: usize,
    arena_size: usize,
    /// Where both transmit streams start (0 in production).
    start: TxPos,
}

impl Geometry {
    fn local_count(&self) -> u32 {
        self.local_last - self.local_first + 1
    }
    fn remote_count(&self) -> u32 {
        self.remote_last - self.remote_first + 1
    }
    fn initial_recycle(&self, count: u32) -> u32 {
        self.start.queue_index().wrapping_add(count)
    }
}

/// Per-port quota bookkeeping (spec §2.11); survives service reuse.
#[derive(Clone, Copy, Debug, Default)]
struct Quota {
    slot_quota: u32,
    message_quota: u32,
    slot_use_count: u32,
    message_use_count: u32,
    previous_tx_index: u32,
}

/// What one of our slots carries, for the quota release when it comes back.
#[derive(Clone, Debug, Default)]
struct SlotRecord {
    /// DATA messages per source port.
    ports: Vec<(u16, u32)>,
}

/// The receiver's private counts for one of the peer's slots (spec §2.10).
#[derive(Clone, Copy, Debug, Default)]
struct RxSlot {
    use_count: u32,
    release_count: u32,
}

/// A claimed DATA message.
#[derive(Clone, Copy, Debug)]
struct Claim {
    slot: u32,
    header_off: usize,
    port: u32,
}

/// A bulk queued on this side.
#[derive(Debug)]
struct LocalBulk {
    userdata: u64,
    size: u32,
    /// Master transmit: the data to send.
    data: Option<Vec<u8>>,
    /// Slave: the arena range holding or receiving the data.
    arena: Option<usize>,
}

/// A bulk announced by the slave (master side only).
#[derive(Clone, Copy, Debug)]
struct RemoteBulk {
    offset: u32,
    size: u32,
}

#[derive(Debug, Default)]
struct BulkQueue {
    local: VecDeque<LocalBulk>,
    remote: VecDeque<RemoteBulk>,
}

struct Service {
    handle: ServiceHandle,
    fourcc: FourCc,
    /// Servers: the fourcc the peer can open; cleared by `remove_service`.
    public: bool,
    is_server: bool,
    state: SrvState,
    remoteport: u32,
    client_id: u32,
    version: u16,
    version_min: u16,
    peer_version: u16,
    auto_close: bool,
    trace: bool,
    /// A pool server: every OPEN it accepts first creates its successor listener, and it
    /// is freed when its connection closes (see [`Link::add_service_pool`]).
    replicate: bool,
    handler: Arc<dyn ServiceHandler>,
    bulk: [BulkQueue; 2],
}

/// A control message waiting for slot space.
#[derive(Clone, Copy, Debug)]
struct OutMsg {
    ty: MsgType,
    src: u32,
    dst: u32,
    payload: [u8; 12],
    len: u8,
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
}

/// Outcome of trying to write one message.
enum Sent {
    Yes,
    NoSpace,
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
            this: this.clone(),
        })
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

    fn lookup(st: &mut State, h: ServiceHandle) -> Result<&mut Service> {
        match st.services.get_mut(&h.port()) {
            Some(s) if s.handle == h => Ok(s),
            _ => Err(Error::BadHandle(h)),
        }
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

    // ------------------------------------------------------------------ receiving

    fn parse_incoming(&self, st: &mut State) -> Result<()> {
        // Acquire: pairs with the peer's Release store of tx_pos, so every message below it is
        // visible.
        let tx = TxPos(
            self.mem
                .load_u32(self.geo.remote + TX_POS_OFF, Ordering::Acquire)?,
        );
        if tx.0 % 8 != 0 {
            return Err(ProtocolError::MisalignedTxPos { tx_pos: tx.0 }.into());
        }
        let slots = self.geo.remote_count();
        if tx.delta(st.rx_pos) > slots * SLOT_SIZE as u32 {
            return Err(ProtocolError::TxPosJump {
                from: st.rx_pos.0,
                to: tx.0,
                slots,
            }
            .into());
        }
        let mut image = st
            .rx_image
            .take()
            .unwrap_or_else(|| Box::new([0u8; SLOT_SIZE]));
        let r = self.parse_range(st, tx, &mut image);
        st.rx_image = Some(image);
        r
    }

    fn parse_range(&self, st: &mut State, tx: TxPos, image: &mut SlotImage) -> Result<()> {
        // Each pass consumes at least 8 bytes, and the range is at most the peer's slots.
        while st.rx_pos != tx {
            if st.outbox.len() >= OUTBOX_LIMIT {
                break;
            }
            let slot = match st.rx_slot {
                Some(s) => s,
                None => self.enter_rx_slot(st)?,
            };
            let off = st.rx_pos.offset();
            let avail = (tx.delta(st.rx_pos) as usize).min(SLOT_SIZE - off);
            let end = off + avail;
            self.mem
                .read(Self::slot_base(slot) + off, &mut image[off..end])?;
            let mut p = off;
            while p < end && st.outbox.len() < OUTBOX_LIMIT {
                let parsed = parse_message(image, p, end)?;
                self.handle_message(st, slot, &parsed)?;
                p += parsed.stride;
                st.rx_pos = st.rx_pos.advance(parsed.stride as u32);
                if st.rx_pos.offset() == 0 {
                    // Past the end of the slot: drop the parser's own reference.
                    st.rx_slot = None;
                    self.release_rx_slot(st, slot)?;
                }
            }
        }
        Ok(())
    }

    fn enter_rx_slot(&self, st: &mut State) -> Result<u32> {
        let entry = st.rx_pos.queue_entry();
        // Relaxed: ordered after the Acquire load of tx_pos; we wrote this entry ourselves when
        // recycling, or the peer wrote it before setting `initialised`.
        let slot = self.mem.load_u32(
            self.geo.remote + SLOT_QUEUE_OFF + 4 * entry,
            Ordering::Relaxed,
        )?;
        let (first, last) = (self.geo.remote_first, self.geo.remote_last);
        if !(first..=last).contains(&slot) {
            return Err(ProtocolError::BadSlotQueueEntry {
                entry,
                slot,
                first,
                last,
            }
            .into());
        }
        let info = &mut st.rx_info[slot as usize];
        if info.use_count != info.release_count {
            return Err(ProtocolError::SlotInUse { slot }.into());
        }
        *info = RxSlot {
            use_count: 1,
            release_count: 0,
        };
        st.rx_slot = Some(slot);
        Ok(slot)
    }

    /// One more release of a peer slot; recycles it when every use is released (spec §2.10).
    fn release_rx_slot(&self, st: &mut State, slot: u32) -> Result<()> {
        let info = &mut st.rx_info[slot as usize];
        info.release_count += 1;
        if info.release_count != info.use_count {
            return Ok(());
        }
        let i = st.recycle_next;
        let entry = (i as usize) & (MAX_SLOTS_PER_SIDE - 1);
        // Relaxed: published by the Release store of the counter below.
        self.mem.store_u32(
            self.geo.remote + SLOT_QUEUE_OFF + 4 * entry,
            slot,
            Ordering::Relaxed,
        )?;
        st.recycle_next = i.wrapping_add(1);
        // Release: the slot_queue entry above is visible before the counter that covers it.
        self.mem.store_u32(
            self.geo.remote + SLOT_QUEUE_RECYCLE_OFF,
            st.recycle_next,
            Ordering::Release,
        )?;
        st.stats.slots_recycled += 1;
        self.signal_remote(RECYCLE_OFF)
    }

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

    fn handle_open(
        &self,
        st: &mut State,
        src: u32,
        dst: u32,
        p: Option<OpenPayload>,
    ) -> Result<()> {
        if dst != 0 {
            debug!(dst, "OPEN addressed to a non-zero port");
        }
        let target = p.and_then(|p| {
            st.services
                .iter()
                .find(|(_, s)| {
                    s.public && s.fourcc.as_u32() == p.fourcc && s.state == SrvState::Listening
                })
                .map(|(port, s)| {
                    (
                        *port,
                        s.version >= p.version_min && p.version >= s.version_min,
                    )
                })
        });
        let (p, port) = match (p, target) {
            (Some(p), Some((port, true))) => (p, port),
            (p, t) => {
                debug!(fourcc = ?p.map(|p| FourCc(p.fourcc)), found = t.is_some(), "OPEN rejected");
                return self.queue_control(st, MsgType::Close, 0, src, &[]);
            }
        };
        if st.services[&port].replicate {
            // Keep one listener free for the next client before this one is taken, so
            // that concurrent OPENs of a pool service never find it busy.
            let (params, handler) = {
                let s = &st.services[&port];
                (
                    ServiceParams {
                        fourcc: s.fourcc,
                        version: s.version,
                        version_min: s.version_min,
                    },
                    s.handler.clone(),
                )
            };
            match Self::alloc_port(st, &params, handler, true) {
                Ok(next) => {
                    if let Some(n) = st.services.get_mut(&next) {
                        n.replicate = true;
                    }
                }
                Err(e) => warn!("no successor listener for {}: {e}", params.fourcc),
            }
        }
        let s = st.services.get_mut(&port).expect("found above");
        s.peer_version = p.version;
        s.remoteport = src;
        s.client_id = p.client_id;
        s.state = SrvState::Open;
        let version = s.version;
        Self::reset_quota_index(st, port);
        self.queue_control(st, MsgType::OpenAck, port, src, &version.to_le_bytes())?;
        Self::push_event(
            st,
            port,
            ServiceEvent::Opened {
                client_id: p.client_id,
                peer_version: p.version,
            },
        );
        Ok(())
    }

    fn handle_close(&self, st: &mut State, src: u32, dst: u32) -> Result<()> {
        let matches = |s: &Service| s.state == SrvState::Opening || s.remoteport == src;
        let mut port = st.services.get(&dst).filter(|s| matches(s)).map(|_| dst);
        if port.is_none() && dst == 0 {
            // An OPEN and a CLOSE crossed: find the open service connected to that remote port.
            port = st
                .services
                .iter()
                .find(|(_, s)| s.state == SrvState::Open && s.remoteport == src)
                .map(|(p, _)| *p);
        }
        let Some(port) = port else {
            Self::protocol_warning(st, &format!("stray CLOSE {src} -> {dst}"));
            return Ok(());
        };
        let state = st.services[&port].state;
        match state {
            SrvState::Opening => {
                // Our OPEN was rejected (or the peer closed before acknowledging it).
                if let Some(s) = st.services.get_mut(&port) {
                    s.state = SrvState::CloseWait;
                }
                self.cond.notify_all();
            }
            SrvState::Open => self.close_internal(st, port, true)?,
            SrvState::CloseSent => {
                if self.role == Role::Slave {
                    self.abort_bulks(st, port)?;
                }
                self.close_complete(st, port);
            }
            other => Self::protocol_warning(st, &format!("CLOSE {src} -> {dst} in state {other}")),
        }
        Ok(())
    }

    // ------------------------------------------------------------------ closing

    /// Close an OPEN service (spec §2.9); `from_peer` when answering the peer's CLOSE.
    fn close_internal(&self, st: &mut State, port: u32, from_peer: bool) -> Result<()> {
        if self.role == Role::Master {
            // DONE(-1) for every outstanding slave bulk, before our CLOSE.
            self.abort_bulks(st, port)?;
        }
        self.release_port_claims(st, port)?;
        let remote = st.services[&port].remoteport;
        self.queue_control(st, MsgType::Close, port, remote, &[])?;
        if from_peer {
            if let Some(s) = st.services.get_mut(&port) {
                s.state = SrvState::CloseRecvd;
            }
            if self.role == Role::Slave {
                self.abort_bulks(st, port)?;
            }
            self.close_complete(st, port);
        } else if let Some(s) = st.services.get_mut(&port) {
            s.state = SrvState::CloseSent;
        }
        self.cond.notify_all();
        Ok(())
    }

    fn close_complete(&self, st: &mut State, port: u32) {
        let Some(s) = st.services.get_mut(&port) else {
            return;
        };
        if s.is_server && s.public && s.replicate {
            // A pool connection ends: its successor is already listening.
            s.state = SrvState::Closed;
            s.remoteport = PortId::FREE.0;
        } else if s.is_server && s.public {
            if s.auto_close {
                s.state = SrvState::Listening;
                s.client_id = 0;
                s.remoteport = PortId::FREE.0;
            } else {
                s.state = SrvState::CloseWait;
            }
        } else {
            s.state = SrvState::Closed;
            s.remoteport = PortId::FREE.0;
        }
        let closed = s.state == SrvState::Closed;
        Self::push_event(st, port, ServiceEvent::Closed);
        if closed {
            st.services.remove(&port);
        }
        self.cond.notify_all();
    }

    fn release_port_claims(&self, st: &mut State, port: u32) -> Result<()> {
        let ids: Vec<u64> = st
            .claims
            .iter()
            .filter(|(_, c)| c.port == port)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(c) = st.claims.remove(&id) {
                self.release_rx_slot(st, c.slot)?;
            }
        }
        Ok(())
    }

    /// Abort every outstanding bulk of a service (spec §2.12 "abort on close").
    fn abort_bulks(&self, st: &mut State, port: u32) -> Result<()> {
        for dir in [TX, RX] {
            let Some(s) = st.services.get_mut(&port) else {
                return Ok(());
            };
            let remote: Vec<RemoteBulk> = s.bulk[dir].remote.drain(..).collect();
            let local: Vec<LocalBulk> = s.bulk[dir].local.drain(..).collect();
            let remoteport = s.remoteport;
            for _ in remote {
                // Our transmit queue holds the slave's BULK_RX requests, answered by BULK_RX_DONE.
                let ty = if dir == TX {
                    MsgType::BulkRxDone
                } else {
                    MsgType::BulkTxDone
                };
                self.queue_control(st, ty, port, remoteport, &BULK_ACTUAL_ABORTED.to_le_bytes())?;
            }
            for l in local {
                if let Some(off) = l.arena {
                    st.arena.free(off, l.size as usize);
                }
                st.stats.bulks_aborted += 1;
                let ev = if dir == TX {
                    ServiceEvent::BulkTransmitAborted {
                        userdata: l.userdata,
                    }
                } else {
                    ServiceEvent::BulkReceiveAborted {
                        userdata: l.userdata,
                    }
                };
                Self::push_event(st, port, ev);
            }
        }
        self.cond.notify_all();
        Ok(())
    }

    // ------------------------------------------------------------------ bulk

    fn handle_bulk_request(
        &self,
        st: &mut State,
        src: u32,
        dst: u32,
        dir: usize,
        b: BulkPayload,
    ) -> Result<()> {
        if self.role != Role::Master {
            Self::protocol_warning(
                st,
                &format!("bulk request {src} -> {dst} sent to the slave"),
            );
            return Ok(());
        }
        let ok = matches!(st.services.get(&dst), Some(s) if s.state == SrvState::Open && s.remoteport == src);
        if !ok {
            debug!(
                src,
                dst, "bulk request for a service that is not open; dropped"
            );
            return Ok(());
        }
        let s = st.services.get_mut(&dst).expect("checked above");
        if s.bulk[dir].remote.len() >= NUM_SERVICE_BULKS {
            return Err(ProtocolError::BulkQueueOverflow {
                port: dst,
                limit: NUM_SERVICE_BULKS,
            }
            .into());
        }
        s.bulk[dir].remote.push_back(RemoteBulk {
            offset: b.data,
            size: b.size,
        });
        self.process_bulks(st, dst, dir)
    }

    /// Master: pair local and remote bulks FIFO and move the data (spec §2.12).
    fn process_bulks(&self, st: &mut State, port: u32, dir: usize) -> Result<()> {
        loop {
            let Some(s) = st.services.get_mut(&port) else {
                return Ok(());
            };
            let q = &mut s.bulk[dir];
            if q.local.is_empty() || q.remote.is_empty() {
                break;
            }
            let (Some(l), Some(r)) = (q.local.pop_front(), q.remote.pop_front()) else {
                break;
            };
            let remoteport = s.remoteport;
            let mut actual = BULK_ACTUAL_ABORTED;
            let mut received = None;
            if l.size == r.size {
                let (a0, asz) = (self.geo.arena_off, self.geo.arena_size);
                let start = r.offset as usize;
                if start >= a0 && start.saturating_add(r.size as usize) <= a0 + asz {
                    if dir == TX {
                        self.mem.write(start, l.data.as_deref().unwrap_or(&[]))?;
                    } else {
                        let mut v = vec![0u8; r.size as usize];
                        self.mem.read(start, &mut v)?;
                        received = Some(v);
                    }
                    actual = r.size as i32;
                } else {
                    let e = ProtocolError::BulkOutsideArena {
                        offset: r.offset,
                        size: r.size,
                        arena_offset: a0,
                        arena_size: asz,
                    };
                    Self::protocol_warning(st, &e.to_string());
                }
            } else {
                debug!(
                    port,
                    local = l.size,
                    remote = r.size,
                    "bulk size mismatch; both aborted"
                );
            }
            let ty = if dir == TX {
                MsgType::BulkRxDone
            } else {
                MsgType::BulkTxDone
            };
            self.queue_control(st, ty, port, remoteport, &actual.to_le_bytes())?;
            let ev = match (dir, actual >= 0, received) {
                (TX, true, _) => ServiceEvent::BulkTransmitDone {
                    userdata: l.userdata,
                },
                (TX, false, _) => ServiceEvent::BulkTransmitAborted {
                    userdata: l.userdata,
                },
                (_, true, Some(data)) => ServiceEvent::BulkReceiveDone {
                    userdata: l.userdata,
                    data,
                },
                _ => ServiceEvent::BulkReceiveAborted {
                    userdata: l.userdata,
                },
            };
            if actual >= 0 {
                st.stats.bulks_done += 1;
            } else {
                st.stats.bulks_aborted += 1;
            }
            Self::push_event(st, port, ev);
        }
        self.cond.notify_all();
        Ok(())
    }

    /// Slave: the master finished the head of one of our queues.
    fn handle_bulk_done(&self, st: &mut State, src: u32, dst: u32, dir: usize, actual: i32) {
        let ty = if dir == RX {
            "BULK_RX_DONE"
        } else {
            "BULK_TX_DONE"
        };
        if self.role != Role::Slave {
            Self::protocol_warning(st, &format!("{ty} {src} -> {dst} sent to the master"));
            return;
        }
        let Some(l) = st
            .services
            .get_mut(&dst)
            .and_then(|s| s.bulk[dir].local.pop_front())
        else {
            let e = ProtocolError::BulkDoneUnexpected { ty, port: dst };
            Self::protocol_warning(st, &e.to_string());
            return;
        };
        let off = l.arena.unwrap_or(self.geo.arena_off);
        let ok = actual >= 0 && actual as u32 == l.size;
        if !ok && actual != BULK_ACTUAL_ABORTED {
            Self::protocol_warning(
                st,
                &format!(
                    "{ty} actual {actual} for a {}-byte bulk; treated as aborted",
                    l.size
                ),
            );
        }
        let ev = match (dir, ok) {
            (TX, true) => ServiceEvent::BulkTransmitDone {
                userdata: l.userdata,
            },
            (TX, false) => ServiceEvent::BulkTransmitAborted {
                userdata: l.userdata,
            },
            (_, true) => {
                let mut data = vec![0u8; l.size as usize];
                match self.mem.read(off, &mut data) {
                    Ok(()) => ServiceEvent::BulkReceiveDone {
                        userdata: l.userdata,
                        data,
                    },
                    Err(_) => ServiceEvent::BulkReceiveAborted {
                        userdata: l.userdata,
                    },
                }
            }
            (_, false) => ServiceEvent::BulkReceiveAborted {
                userdata: l.userdata,
            },
        };
        st.arena.free(off, l.size as usize);
        if ok {
            st.stats.bulks_done += 1;
        } else {
            st.stats.bulks_aborted += 1;
        }
        Self::push_event(st, dst, ev);
        self.cond.notify_all();
    }

    // ------------------------------------------------------------------ transmitting

    fn queue_control(
        &self,
        st: &mut State,
        ty: MsgType,
        src: u32,
        dst: u32,
        payload: &[u8],
    ) -> Result<()> {
        let mut m = OutMsg {
            ty,
            src,
            dst,
            payload: [0; 12],
            len: payload.len() as u8,
        };
        m.payload[..payload.len()].copy_from_slice(payload);
        st.outbox.push_back(m);
        self.flush_outbox(st)
    }

    fn flush_outbox(&self, st: &mut State) -> Result<()> {
        while let Some(m) = st.outbox.front().copied() {
            match self.try_send(
                st,
                m.ty,
                m.src,
                m.dst,
                &[&m.payload[..m.len as usize]],
                false,
            )? {
                Sent::Yes => {
                    st.outbox.pop_front();
                }
                Sent::NoSpace => break,
            }
        }
        Ok(())
    }

    /// Writes one message if quotas and free slots allow (spec §2.6 `reserve_space`, §2.11).
    fn try_send(
        &self,
        st: &mut State,
        ty: MsgType,
        src: u32,
        dst: u32,
        parts: &[&[u8]],
        is_data: bool,
    ) -> Result<Sent> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let stride = stride(total as u32) as usize;
        let pos = st.tx_pos;
        let off = pos.offset();
        let fits = off != 0 && stride <= SLOT_SIZE - off;
        let needs_new = !fits;
        let idx = if fits || off == 0 {
            pos.queue_index()
        } else {
            pos.queue_index().wrapping_add(1)
        };
        if is_data {
            if idx != st.previous_data_index && st.data_use_count >= st.data_quota {
                st.stats.quota_stalls += 1;
                return Ok(Sent::NoSpace);
            }
            let q = &st.quotas[src as usize];
            if q.message_use_count >= q.message_quota
                || (idx != q.previous_tx_index && q.slot_use_count >= q.slot_quota)
            {
                st.stats.quota_stalls += 1;
                return Ok(Sent::NoSpace);
            }
        }
        if needs_new && st.free_slots.is_empty() {
            st.stats.quota_stalls += 1;
            return Ok(Sent::NoSpace);
        }
        if needs_new {
            if let (Some(cur), true) = (st.tx_slot, off != 0) {
                // Pad the rest of the slot: msgid 0, size = remaining - 8.
                let h = MsgHeader {
                    msgid: 0,
                    size: (SLOT_SIZE - off - 8) as u32,
                };
                self.mem.write(Self::slot_base(cur) + off, h.as_bytes())?;
                st.tx_pos = pos.advance((SLOT_SIZE - off) as u32);
            }
            let slot = st.free_slots.pop_front().expect("checked non-empty");
            st.tx_slot = Some(slot);
            st.in_flight |= 1u128 << slot;
            st.records[slot as usize].ports.clear();
        }
        let slot = st.tx_slot.expect("a slot was entered");
        let off = st.tx_pos.offset();
        let base = Self::slot_base(slot) + off;
        let mut p = base + 8;
        for part in parts {
            self.mem.write(p, part)?;
            p += part.len();
        }
        let h = MsgHeader {
            msgid: crate::abi::defs::msgid(ty.raw(), src, dst),
            size: total as u32,
        };
        self.mem.write(base, h.as_bytes())?;
        st.tx_pos = st.tx_pos.advance(stride as u32);
        if is_data {
            let rec = &mut st.records[slot as usize].ports;
            match rec.iter_mut().find(|(p, _)| u32::from(*p) == src) {
                Some(e) => e.1 += 1,
                None => rec.push((src as u16, 1)),
            }
            let q = &mut st.quotas[src as usize];
            q.message_use_count += 1;
            if idx != q.previous_tx_index {
                q.slot_use_count += 1;
                q.previous_tx_index = idx;
            }
            if idx != st.previous_data_index {
                st.data_use_count += 1;
                st.previous_data_index = idx;
            }
        }
        if st.tx_pos.offset() == 0 {
            st.tx_slot = None;
        }
        // Release: the header and payload written above are visible before the position that
        // covers them.
        self.mem
            .store_u32(self.geo.local + TX_POS_OFF, st.tx_pos.0, Ordering::Release)?;
        st.stats.messages_sent += 1;
        st.stats.bytes_sent += total as u64;
        trace!(role = ?self.role, ty = ty.name(), src, dst, total, "tx");
        self.signal_remote(TRIGGER_OFF)?;
        Ok(Sent::Yes)
    }

    /// Our slots the peer handed back (spec §2.10 "sender's recycle thread").
    fn process_recycles(&self, st: &mut State) -> Result<()> {
        // Acquire: pairs with the peer's Release store, so the slot_queue entries are visible.
        let r = self
            .mem
            .load_u32(self.geo.local + SLOT_QUEUE_RECYCLE_OFF, Ordering::Acquire)?;
        let n = r.wrapping_sub(st.slot_queue_available);
        if n == 0 {
            return Ok(());
        }
        let partial = st.tx_slot.map_or(0, |s| 1u128 << s);
        let recyclable = (st.in_flight & !partial).count_ones() as usize;
        if n as usize > recyclable {
            return Err(ProtocolError::RecycleOverrun {
                claimed: n,
                in_flight: recyclable,
            }
            .into());
        }
        for _ in 0..n {
            let entry = (st.slot_queue_available as usize) & (MAX_SLOTS_PER_SIDE - 1);
            // Relaxed: ordered by the Acquire load of slot_queue_recycle above.
            let slot = self.mem.load_u32(
                self.geo.local + SLOT_QUEUE_OFF + 4 * entry,
                Ordering::Relaxed,
            )?;
            let bit = if slot < 128 { 1u128 << slot } else { 0 };
            if bit == 0 || st.in_flight & !partial & bit == 0 {
                return Err(ProtocolError::BadRecycledSlot { slot }.into());
            }
            st.in_flight &= !bit;
            let rec = std::mem::take(&mut st.records[slot as usize].ports);
            for &(port, count) in &rec {
                let q = &mut st.quotas[port as usize];
                q.message_use_count = q.message_use_count.saturating_sub(count);
                q.slot_use_count = q.slot_use_count.saturating_sub(1);
            }
            if !rec.is_empty() {
                st.data_use_count = st.data_use_count.saturating_sub(1);
            }
            st.free_slots.push_back(slot);
            st.slot_queue_available = st.slot_queue_available.wrapping_add(1);
            st.stats.slots_reclaimed += 1;
        }
        self.cond.notify_all();
        Ok(())
    }

    fn reset_quota_index(st: &mut State, port: u32) {
        let idx = st.tx_pos.queue_index().wrapping_sub(1);
        let (ds, dm) = (st.default_slot_quota, st.default_message_quota);
        let q = &mut st.quotas[port as usize];
        q.slot_quota = ds;
        q.message_quota = dm;
        if q.slot_use_count == 0 {
            q.previous_tx_index = idx;
        }
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

    fn alloc_port(
        st: &mut State,
        params: &ServiceParams,
        handler: Arc<dyn ServiceHandler>,
        server: bool,
    ) -> Result<u32> {
        let mut port = 0u32;
        for &p in st.services.keys() {
            if p != port {
                break;
            }
            port += 1;
        }
        if port as usize >= MAX_SERVICES {
            return Err(Error::NoFreePort);
        }
        let handle = ServiceHandle(st.handle_seq | port);
        st.handle_seq = st.handle_seq.wrapping_add(4096);
        if st.handle_seq == 0 {
            st.handle_seq = 4096;
        }
        st.services.insert(
            port,
            Service {
                handle,
                fourcc: params.fourcc,
                public: server,
                is_server: server,
                state: if server {
                    SrvState::Listening
                } else {
                    SrvState::Opening
                },
                remoteport: PortId::FREE.0,
                client_id: 0,
                version: params.version,
                version_min: params.version_min,
                peer_version: 0,
                auto_close: true,
                trace: false,
                replicate: false,
                handler,
                bulk: [BulkQueue::default(), BulkQueue::default()],
            },
        );
        Self::reset_quota_index(st, port);
        Ok(port)
    }

    pub(crate) fn add_service(
        &self,
        params: ServiceParams,
        handler: Arc<dyn ServiceHandler>,
        replicate: bool,
    ) -> Result<ServiceHandle> {
        let mut st = self.lock();
        Self::check_link(&st)?;
        let port = Self::alloc_port(&mut st, &params, handler, true)?;
        if let Some(s) = st.services.get_mut(&port) {
            s.replicate = replicate;
        }
        Ok(st.services[&port].handle)
    }

    pub(crate) fn open_service(
        &self,
        params: ServiceParams,
        client_id: u32,
        handler: Arc<dyn ServiceHandler>,
    ) -> Result<ServiceHandle> {
        let mut st = self.lock();
        Self::check_link(&st)?;
        if !(st.connect_sent && st.peer_connected) {
            return Err(Error::NotConnected);
        }
        let port = Self::alloc_port(&mut st, &params, handler, false)?;
        let handle = st.services[&port].handle;
        if let Some(s) = st.services.get_mut(&port) {
            s.client_id = client_id;
        }
        let open = OpenPayload {
            fourcc: params.fourcc.as_u32(),
            client_id,
            version: params.version,
            version_min: params.version_min,
        };
        if let Err(e) = self.queue_control(&mut st, MsgType::Open, port, 0, open.as_bytes()) {
            st.services.remove(&port);
            return Err(e);
        }
        loop {
            if let Err(e) = Self::check_link(&st) {
                st.services.remove(&port);
                return Err(e);
            }
            match st.services.get(&port).map(|s| s.state) {
                Some(SrvState::Open) => return Ok(handle),
                Some(SrvState::Opening) => st = self.wait(st),
                _ => {
                    st.services.remove(&port);
                    return Err(Error::OpenRejected {
                        fourcc: params.fourcc,
                    });
                }
            }
        }
    }

    pub(crate) fn queue_message(
        &self,
        h: ServiceHandle,
        parts: &[&[u8]],
        blocking: bool,
    ) -> Result<()> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > MAX_MSG_SIZE {
            return Err(Error::MessageTooLarge { size: total });
        }
        let mut st = self.lock();
        loop {
            Self::check_link(&st)?;
            let s = Self::lookup(&mut st, h)?;
            if s.state != SrvState::Open {
                return Err(Error::NotOpen {
                    handle: h,
                    state: s.state,
                });
            }
            let remote = s.remoteport;
            self.flush_outbox(&mut st)?;
            if st.outbox.is_empty() {
                if let Sent::Yes =
                    self.try_send(&mut st, MsgType::Data, h.port(), remote, parts, true)?
                {
                    return Ok(());
                }
            }
            if !blocking {
                return Err(Error::WouldBlock);
            }
            st = self.wait(st);
        }
    }

    pub(crate) fn queue_bulk(
        &self,
        h: ServiceHandle,
        dir: usize,
        data: Option<Vec<u8>>,
        size: u32,
        userdata: u64,
    ) -> Result<()> {
        let mut data = data;
        let mut st = self.lock();
        if self.role == Role::Slave && !st.arena.could_fit(size as usize) {
            return Err(Error::BulkTooLarge {
                size: size as usize,
                arena: self.geo.arena_size,
            });
        }
        loop {
            Self::check_link(&st)?;
            let s = Self::lookup(&mut st, h)?;
            if s.state != SrvState::Open {
                return Err(Error::NotOpen {
                    handle: h,
                    state: s.state,
                });
            }
            let remote = s.remoteport;
            if s.bulk[dir].local.len() < NUM_SERVICE_BULKS {
                let port = h.port();
                match self.role {
                    Role::Master => {
                        let l = LocalBulk {
                            userdata,
                            size,
                            data: data.take(),
                            arena: None,
                        };
                        st.services.get_mut(&port).expect("looked up").bulk[dir]
                            .local
                            .push_back(l);
                        self.process_bulks(&mut st, port, dir)?;
                        break;
                    }
                    Role::Slave => {
                        if let Some(off) = st.arena.alloc(size as usize) {
                            if let Some(d) = data.take() {
                                self.mem.write(off, &d)?;
                            }
                            let l = LocalBulk {
                                userdata,
                                size,
                                data: None,
                                arena: Some(off),
                            };
                            st.services.get_mut(&port).expect("looked up").bulk[dir]
                                .local
                                .push_back(l);
                            let ty = if dir == TX {
                                MsgType::BulkTx
                            } else {
                                MsgType::BulkRx
                            };
                            let p = BulkPayload {
                                data: off as u32,
                                size,
                            };
                            self.queue_control(&mut st, ty, port, remote, p.as_bytes())?;
                            break;
                        }
                    }
                }
            }
            st = self.wait(st);
        }
        let has_events = !st.events.is_empty();
        drop(st);
        if has_events {
            self.poke();
        }
        Ok(())
    }

    pub(crate) fn close_service(&self, h: ServiceHandle) -> Result<()> {
        let mut st = self.lock();
        Self::check_link(&st)?;
        let s = Self::lookup(&mut st, h)?;
        match s.state {
            SrvState::Open => self.close_internal(&mut st, h.port(), false)?,
            SrvState::CloseWait => {
                s.state = SrvState::Listening;
                s.client_id = 0;
                s.remoteport = PortId::FREE.0;
            }
            SrvState::CloseSent | SrvState::CloseRecvd => {}
            state => {
                return Err(Error::InvalidState {
                    handle: h,
                    state,
                    op: "close",
                });
            }
        }
        let has_events = !st.events.is_empty();
        drop(st);
        if has_events {
            self.poke();
        }
        Ok(())
    }

    pub(crate) fn remove_service(&self, h: ServiceHandle) -> Result<()> {
        let mut st = self.lock();
        let s = Self::lookup(&mut st, h)?;
        s.public = false;
        let state = s.state;
        if Self::check_link(&st).is_err() {
            st.services.remove(&h.port());
            return Ok(());
        }
        match state {
            SrvState::Open => self.close_internal(&mut st, h.port(), false)?,
            SrvState::CloseSent | SrvState::CloseRecvd => {}
            _ => {
                st.services.remove(&h.port());
            }
        }
        let has_events = !st.events.is_empty();
        drop(st);
        if has_events {
            self.poke();
        }
        Ok(())
    }

    pub(crate) fn set_service_option(
        &self,
        h: ServiceHandle,
        option: ServiceOption,
        value: i32,
    ) -> Result<()> {
        let mut st = self.lock();
        let port = h.port() as usize;
        let (ds, dm) = (st.default_slot_quota, st.default_message_quota);
        let s = Self::lookup(&mut st, h)?;
        match option {
            ServiceOption::AutoClose => s.auto_close = value != 0,
            ServiceOption::Trace => s.trace = value != 0,
            ServiceOption::Synchronous => {
                return Err(Error::Unsupported("synchronous services (spec §2.13)"));
            }
            ServiceOption::SlotQuota | ServiceOption::MessageQuota => {
                let q = &mut st.quotas[port];
                let is_slot = option == ServiceOption::SlotQuota;
                let (default, used) = if is_slot {
                    (ds, q.slot_use_count)
                } else {
                    (dm, q.message_use_count)
                };
                let v = if value == 0 {
                    default
                } else {
                    u32::try_from(value).unwrap_or(u32::MAX)
                };
                if value < 0 || v < used || v >= 65535 {
                    return Err(Error::InvalidOption {
                        option,
                        value,
                        reason: "must be 0 (default), >= the current use count and < 65535",
                    });
                }
                if is_slot {
                    q.slot_quota = v;
                } else {
                    q.message_quota = v;
                }
                self.cond.notify_all();
            }
        }
        Ok(())
    }

    fn info(st: &State, s: &Service, port: u32) -> ServiceInfo {
        let q = &st.quotas[port as usize];
        ServiceInfo {
            handle: s.handle,
            fourcc: s.fourcc,
            is_server: s.is_server && s.public,
            state: s.state,
            localport: port,
            remoteport: PortId::new(s.remoteport).map(|p| p.0),
            client_id: s.client_id,
            version: s.version,
            version_min: s.version_min,
            peer_version: s.peer_version,
            auto_close: s.auto_close,
            slot_quota: q.slot_quota,
            slot_use_count: q.slot_use_count,
            message_quota: q.message_quota,
            message_use_count: q.message_use_count,
            bulk_tx_pending: s.bulk[TX].local.len(),
            bulk_rx_pending: s.bulk[RX].local.len(),
        }
    }

    pub(crate) fn service_info(&self, h: ServiceHandle) -> Option<ServiceInfo> {
        let st = self.lock();
        st.services
            .get(&h.port())
            .filter(|s| s.handle == h)
            .map(|s| Self::info(&st, s, h.port()))
    }

    pub(crate) fn services(&self) -> Vec<ServiceInfo> {
        let st = self.lock();
        st.services
            .iter()
            .map(|(p, s)| Self::info(&st, s, *p))
            .collect()
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

impl<M: SlotMem, D: Doorbell> ReleaseClaim for Core<M, D> {
    fn release_claim(&self, claim: u64) {
        let mut st = self.lock();
        if st.shutdown || st.broken.is_some() {
            return;
        }
        let Some(c) = st.claims.remove(&claim) else {
            return;
        };
        // Clear the informational CLAIMED bit if the header still holds our message.
        if let Ok(id) = self.mem.load_u32(c.header_off, Ordering::Relaxed) {
            if id & MSGID_CLAIMED != 0 {
                let _ = self
                    .mem
                    .store_u32(c.header_off, id & !MSGID_CLAIMED, Ordering::Relaxed);
            }
        }
        if let Err(e) = self.release_rx_slot(&mut st, c.slot) {
            self.break_link(&mut st, &e);
        }
    }
}

/// Writes slot zero as the slave does (spec §2.2), with `slave.initialised` still 0.
pub(crate) fn write_slot_zero<M: SlotMem>(
    mem: &M,
    config: &LinkConfig,
    start: TxPos,
) -> Result<SlotZero> {
    let d = config.data_slots_per_side;
    let num_slots = 2 * (d + 1);
    let mut z = SlotZero::zeroed();
    z.magic = VCHIQ_MAGIC;
    z.version = VCHIQ_VERSION;
    z.version_min = VCHIQ_VERSION_MIN;
    z.slot_zero_size = SLOT_ZERO_SIZE as u32;
    z.slot_size = SLOT_SIZE as u32;
    z.max_slots = MAX_SLOTS as u32;
    z.max_slots_per_side = MAX_SLOTS_PER_SIDE as u32;
    z.platform_data = [config.arena_offset() as u32, config.bulk_arena_size as u32];
    z.master.slot_sync = 1;
    z.master.slot_first = 2;
    z.master.slot_last = num_slots / 2;
    z.slave.slot_sync = 1 + num_slots / 2;
    z.slave.slot_first = 2 + num_slots / 2;
    z.slave.slot_last = num_slots;
    // The master's stream starts where ours does; it reads our initial tx_pos.
    init_half(&mut z.slave, start);
    z.slave.initialised = 0;
    mem.write(0, z.as_bytes())?;
    Ok(z)
}

/// Owner-side initial values of a shared state (spec §2.4).
pub(crate) fn init_half(h: &mut SharedState, start: TxPos) {
    let count = h.slot_last - h.slot_first + 1;
    let q0 = start.queue_index();
    for i in 0..count {
        h.slot_queue[(q0.wrapping_add(i) as usize) & (MAX_SLOTS_PER_SIDE - 1)] = h.slot_first + i;
    }
    h.slot_queue_recycle = q0.wrapping_add(count);
    h.tx_pos = start.0;
    h.debug[0] = DEBUG_ENTRIES as u32;
    // `sync_release` starts signalled: the sync slot is free.
    h.sync_release.fired = 1;
    h.trigger = Default::default();
    h.recycle = Default::default();
    h.sync_trigger = Default::default();
}

/// The sync slot's first header reads PADDING (spec §2.4).
pub(crate) fn write_sync_slot<M: SlotMem>(mem: &M, slot: u32) -> Result<()> {
    mem.write(slot as usize * SLOT_SIZE, MsgHeader::default().as_bytes())
}

fn mismatch(field: &'static str, relation: &'static str, ours: u32, theirs: u32) -> Error {
    Error::SlotZeroMismatch {
        field,
        relation,
        ours,
        theirs,
    }
}

/// The master's checks of slot zero (spec §2.2), and the geometry it describes.
fn validate_slot_zero(z: &SlotZero, slave_initialised: u32, mem_len: usize) -> Result<Geometry> {
    if z.magic != VCHIQ_MAGIC {
        return Err(mismatch("magic", "=", VCHIQ_MAGIC, z.magic));
    }
    if z.version < VCHIQ_VERSION_MIN {
        return Err(mismatch(
            "version",
            ">=",
            VCHIQ_VERSION_MIN.into(),
            z.version.into(),
        ));
    }
    if VCHIQ_VERSION < z.version_min {
        return Err(mismatch(
            "version_min",
            "<=",
            VCHIQ_VERSION.into(),
            z.version_min.into(),
        ));
    }
    for (field, ours, theirs) in [
        ("slot_zero_size", SLOT_ZERO_SIZE as u32, z.slot_zero_size),
        ("slot_size", SLOT_SIZE as u32, z.slot_size),
        ("max_slots", MAX_SLOTS as u32, z.max_slots),
        (
            "max_slots_per_side",
            MAX_SLOTS_PER_SIDE as u32,
            z.max_slots_per_side,
        ),
    ] {
        if ours != theirs {
            return Err(mismatch(field, "=", ours, theirs));
        }
    }
    if slave_initialised == 0 {
        return Err(Error::SlotZeroInvalid {
            field: "slave.initialised",
            value: 0,
            reason: "the slave has not initialised slot zero",
        });
    }
    let inv = |field: &'static str, value: u32, reason: &'static str| Error::SlotZeroInvalid {
        field,
        value: value.into(),
        reason,
    };
    let mem_slots = (mem_len / SLOT_SIZE).min(MAX_SLOTS) as u32;
    let mut used = 1u128; // slot zero
    let mut top = 0u32;
    for (name, h) in [("master", &z.master), ("slave", &z.slave)] {
        let f = |s: &'static str, m: &'static str| if name == "master" { m } else { s };
        let first_n = f("slave.slot_first", "master.slot_first");
        let last_n = f("slave.slot_last", "master.slot_last");
        let sync_n = f("slave.slot_sync", "master.slot_sync");
        if h.slot_first == 0 || h.slot_first >= mem_slots {
            return Err(inv(
                first_n,
                h.slot_first,
                "not a slot inside the shared memory",
            ));
        }
        if h.slot_last < h.slot_first || h.slot_last >= mem_slots {
            return Err(inv(
                last_n,
                h.slot_last,
                "before slot_first or outside the shared memory",
            ));
        }
        let count = h.slot_last - h.slot_first + 1;
        if !(2..=MAX_SLOTS_PER_SIDE as u32).contains(&count) {
            return Err(inv(last_n, h.slot_last, "a side needs 2..=64 data slots"));
        }
        if h.slot_sync == 0 || h.slot_sync >= mem_slots {
            return Err(inv(
                sync_n,
                h.slot_sync,
                "not a slot inside the shared memory",
            ));
        }
        if (h.slot_first..=h.slot_last).contains(&h.slot_sync) {
            return Err(inv(
                sync_n,
                h.slot_sync,
                "the sync slot lies among the data slots",
            ));
        }
        let mut bits = 1u128 << h.slot_sync;
        for s in h.slot_first..=h.slot_last {
            bits |= 1u128 << s;
        }
        if bits & used != 0 {
            return Err(inv(first_n, h.slot_first, "slot ranges overlap"));
        }
        used |= bits;
        top = top.max(h.slot_last).max(h.slot_sync);
    }
    let start = TxPos(z.slave.tx_pos);
    if start.offset() != 0 {
        return Err(inv(
            "slave.tx_pos",
            start.0,
            "the initial position must be slot aligned",
        ));
    }
    let [arena_off, arena_size] = z.platform_data;
    let (ao, asz) = (arena_off as usize, arena_size as usize);
    if ao % 8 != 0
        || ao < (top as usize + 1) * SLOT_SIZE
        || ao.saturating_add(asz) > mem_len
        || asz > i32::MAX as usize
    {
        return Err(inv(
            "platform_data[0] (bulk arena offset)",
            arena_off,
            "the bulk arena must lie after the slots, inside the shared memory",
        ));
    }
    Ok(Geometry {
        local: MASTER_STATE_OFF,
        remote: SLAVE_STATE_OFF,
        local_first: z.master.slot_first,
        local_last: z.master.slot_last,
        remote_first: z.slave.slot_first,
        remote_last: z.slave.slot_last,
        arena_off: ao,
        arena_size: asz,
        start,
    })
}
