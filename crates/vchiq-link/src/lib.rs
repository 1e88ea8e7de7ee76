//! The VCHIQ shared-memory slot protocol, both sides: the *slave* (the ARM driver's role, played
//! by the daemon) and the *master* (the VideoCore firmware's role).
//!
//! # The model (spec §2)
//!
//! **Memory.** Both sides map one shared region: *slot zero* (a 1288-byte header, [`layout::SlotZero`]),
//! then 4096-byte *slots*, then a *bulk arena*. Slot `i` lives at byte `i * 4096`. The slave
//! creates the region ([`LinkConfig::memory_size`]), writes slot zero and splits the slots: each
//! side gets one *sync slot* and `data_slots_per_side` (31 on a BCM2835) *data slots*. Each side
//! owns half of slot zero (its [`layout::SharedState`]) and sets `initialised` when it is ready.
//!
//! **Streams and positions.** Each side writes an endless stream of messages into its own data
//! slots. Every message is an 8-byte header (`msgid = type << 24 | srcport << 12 | dstport`,
//! `size`) plus payload, padded to a multiple of 8 (the *stride*), and never crosses a slot: if a
//! message does not fit, the rest of the slot becomes a PADDING message. The writer's `tx_pos`
//! ([`pos::TxPos`]) is a byte counter into this stream that wraps at 2^32; `tx_pos / 4096` picks
//! an entry of the writer's 64-entry `slot_queue` ring, which names the physical slot. The writer
//! publishes a message by writing it, then `Release`-storing `tx_pos`, then *signalling* the
//! peer's `trigger` event. The reader parses from its private `rx_pos` up to the `tx_pos` it
//! `Acquire`-loaded.
//!
//! **Events.** An event is an `armed`/`fired` pair in shared memory plus a [`doorbell::Doorbell`]:
//! the signaller sets `fired` and rings the doorbell only if the owner `armed` it before sleeping
//! (spec §2.5). Each side runs one *slot-handler thread* ("vchiq-slave" / "vchiq-master") that
//! sleeps on its doorbell, parses the peer's stream, handles recycled slots and calls the services'
//! [`ServiceHandler`]s.
//!
//! **Recycling.** The reader counts, privately, the uses of each peer slot: one for the parser
//! plus one per DATA message handed out as a [`Message`]. When the parser leaves the slot and
//! every message in it has been released, the reader writes the slot's index into the *writer's*
//! `slot_queue` at the writer's `slot_queue_recycle` counter and signals the writer's `recycle`
//! event. The writer then reuses the slot (spec §2.10).
//!
//! **Quotas.** A writer may only fill so much: per service (indexed by local port) at most
//! `slot_quota` slots (default data slots / 2 = 15) and `message_quota` unreleased messages
//! (default 3840); per link at most `data_quota` = data slots − 1 slots holding DATA, so control
//! messages always find room. A receiver that keeps its messages therefore blocks the sender,
//! which waits (blocking) or gets [`Error::WouldBlock`] (spec §2.11).
//!
//! **Services.** A server ([`Link::add_service`]) listens for OPEN with its fourcc; a client
//! ([`Link::open_service`]) sends OPEN {fourcc, client_id, version, version_min} and gets OPENACK
//! or a rejecting CLOSE (srcport 0). Either side closes with CLOSE, answered by CLOSE; a server
//! with `auto_close` returns to LISTENING (spec §2.9).
//!
//! **Bulk.** Only the master moves bulk data (spec §2.12). Here the slave keeps its bulk buffers
//! in the bulk arena of the shared memory: it copies a transmit's data into an arena range and
//! sends BULK_TX {offset, size}, or reserves a range and sends BULK_RX {offset, size}. The master
//! pairs these with its own queued bulks strictly FIFO per direction per service, copies, and
//! answers BULK_RX_DONE / BULK_TX_DONE {actual}; a size mismatch aborts both (`actual = -1`). On
//! close the master sends `DONE(-1)` for every outstanding slave bulk before its CLOSE.
//!
//! **Trust.** The peer is untrusted: it can write any byte of the shared memory at any time. So
//! this crate never forms references into the mapping (everything is copied through
//! [`shm::SlotMem`], the only module with `unsafe`), parses copies ([`parse`]), keeps its own
//! bookkeeping privately, and validates every value it reads: msgid types, ports, sizes, strides,
//! slot indices, `tx_pos` movements, recycled slots, bulk ranges. A violation is logged with
//! `tracing::warn!`; a bad message is skipped, and a violation after which the stream cannot be
//! trusted marks the link broken ([`Link::broken`]) and wakes every waiter with
//! [`Error::LinkBroken`]. A hostile peer can make the link fail, but not make this side panic,
//! read out of bounds, loop without bound or hang.
//!
//! # Limits
//! - Synchronous services (spec §2.13) are not implemented, though each side's sync slot is
//!   allocated and initialised; PAUSE/RESUME and remote use are accepted and ignored (§2.14).
//! - Bulk data goes through the arena, not through PAGELISTs: both sides must be this crate.
//! - Bulk copies happen under the link's lock; a large bulk delays other senders meanwhile.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use vchiq_abi as abi;

mod arena;
pub mod doorbell;
pub mod layout;
mod link;
#[cfg(any(test, feature = "test-utils"))]
pub mod mock;
pub mod parse;
pub mod pos;
pub mod region;
mod service;
pub mod shm;

pub use abi::enums::ServiceOption;
pub use abi::fourcc::FourCc;
pub use abi::msg::{ConnState, SrvState};
pub use doorbell::{Doorbell, EventFd, LocalDoorbell};
pub use parse::ProtocolError;
pub use service::{
    LinkStats, Message, ServiceEvent, ServiceHandle, ServiceHandler, ServiceInfo, ServiceParams,
};
pub use shm::{HeapMemory, SharedMemory, SlotMem};

use crate::abi::defs::{MAX_SLOTS, SLOT_SIZE};
use crate::link::Core;
use crate::pos::TxPos;

/// Default size of the bulk arena: 32 MiB.
pub const DEFAULT_BULK_ARENA: usize = 32 << 20;

/// Errors of the link.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No live service has this handle.
    #[error("no service has handle {0}")]
    BadHandle(ServiceHandle),
    /// A bulk is larger than the whole bulk arena.
    #[error("bulk of {size} bytes does not fit in the {arena}-byte bulk arena")]
    BulkTooLarge {
        /// Requested size.
        size: usize,
        /// Arena size.
        arena: usize,
    },
    /// A configuration value is out of range.
    #[error("invalid link configuration: {what} = {value}")]
    InvalidConfig {
        /// What was wrong.
        what: &'static str,
        /// The value given.
        value: u64,
    },
    /// A service option value was rejected (spec §2.11).
    #[error("{option} value {value} rejected: {reason}")]
    InvalidOption {
        /// The option.
        option: ServiceOption,
        /// The value given.
        value: i32,
        /// Why.
        reason: &'static str,
    },
    /// A memory ordering that the access cannot use (e.g. a `Release` load).
    #[error("memory ordering {order:?} is not valid for an atomic {access}")]
    InvalidOrdering {
        /// The ordering given.
        order: Ordering,
        /// `"load"` or `"store"`.
        access: &'static str,
    },
    /// The operation is not allowed in the service's state.
    #[error("cannot {op} service {handle} in state {state}")]
    InvalidState {
        /// The service.
        handle: ServiceHandle,
        /// Its state.
        state: SrvState,
        /// The operation.
        op: &'static str,
    },
    /// A system call failed.
    #[error("{op} failed: {source}")]
    Io {
        /// The call.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A protocol error (or a shutdown of the peer's memory) killed the link.
    #[error("the link is broken: {0}")]
    LinkBroken(String),
    /// A word access at an offset that is not 4-byte aligned.
    #[error("shared-memory offset {offset:#x} is not 4-byte aligned")]
    MemoryMisaligned {
        /// The offset.
        offset: usize,
    },
    /// An access outside the shared memory.
    #[error("shared-memory access at {offset:#x} (+{len} bytes) is outside the {size}-byte region")]
    MemoryOutOfBounds {
        /// Start of the access.
        offset: usize,
        /// Its length.
        len: usize,
        /// Size of the region.
        size: usize,
    },
    /// The shared memory is smaller than the configuration needs.
    #[error("shared memory of {size} bytes is too small: {needed} bytes needed")]
    MemoryTooSmall {
        /// Size given.
        size: usize,
        /// Size needed.
        needed: usize,
    },
    /// A message payload above 4088 bytes.
    #[error("message of {size} bytes exceeds the maximum of 4088")]
    MessageTooLarge {
        /// Its size.
        size: usize,
    },
    /// All 4096 ports are in use.
    #[error("no free service port (all 4096 are in use)")]
    NoFreePort,
    /// `open_service` before both sides exchanged CONNECT.
    #[error("the link is not connected (call connect first)")]
    NotConnected,
    /// The service is not OPEN.
    #[error("service {handle} is not open (state {state})")]
    NotOpen {
        /// The service.
        handle: ServiceHandle,
        /// Its state.
        state: SrvState,
    },
    /// The peer answered OPEN with CLOSE: no listener, or incompatible versions.
    #[error("the peer rejected the OPEN of service {fourcc} (no listener or incompatible version)")]
    OpenRejected {
        /// The fourcc that was opened.
        fourcc: FourCc,
    },
    /// The peer violated the protocol.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// [`Link::shutdown`] was called.
    #[error("the link was shut down")]
    Shutdown,
    /// A slot-zero field has a value this side cannot work with.
    #[error("slot zero {field} = {value} is invalid: {reason}")]
    SlotZeroInvalid {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// Why.
        reason: &'static str,
    },
    /// A slot-zero field does not match this side's constants (spec §2.2).
    #[error("slot zero {field} is {theirs}, but this side requires {relation} {ours}")]
    SlotZeroMismatch {
        /// The field.
        field: &'static str,
        /// `"="`, `">="` or `"<="`.
        relation: &'static str,
        /// This side's value.
        ours: u32,
        /// The value in slot zero.
        theirs: u32,
    },
    /// A wait timed out.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// A feature this implementation does not have.
    #[error("{0} is not supported")]
    Unsupported(&'static str),
    /// A non-blocking send found its quota, the free slots or the bulk queue exhausted.
    #[error("the operation would block: quota, free slots or bulk queue exhausted")]
    WouldBlock,
}

impl Error {
    fn io(op: &'static str) -> Self {
        Error::Io {
            op,
            source: std::io::Error::last_os_error(),
        }
    }
}

/// Result alias of the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// The slave's choice of memory layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// Data slots per side (2..=62). Default 31: with slot zero and two sync slots, 65 slots as on
    /// a BCM2835.
    pub data_slots_per_side: u32,
    /// Bytes of bulk arena after the slots (rounded up to 4 KiB). Default [`DEFAULT_BULK_ARENA`].
    pub bulk_arena_size: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            data_slots_per_side: 31,
            bulk_arena_size: DEFAULT_BULK_ARENA,
        }
    }
}

impl LinkConfig {
    /// Slots in use: slot zero plus, per side, a sync slot and the data slots.
    fn total_slots(&self) -> usize {
        1 + 2 * (self.data_slots_per_side as usize + 1)
    }

    pub(crate) fn arena_offset(&self) -> usize {
        self.total_slots() * SLOT_SIZE
    }

    /// Bytes of shared memory needed: `(1 + 2 * (data_slots_per_side + 1)) * 4096` plus the bulk
    /// arena rounded up to 4096.
    pub fn memory_size(&self) -> usize {
        self.arena_offset() + self.bulk_arena_size.next_multiple_of(SLOT_SIZE)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !(2..=62).contains(&self.data_slots_per_side) || self.total_slots() > MAX_SLOTS {
            return Err(Error::InvalidConfig {
                what: "data_slots_per_side (2..=62)",
                value: self.data_slots_per_side.into(),
            });
        }
        if self.bulk_arena_size > i32::MAX as usize - self.arena_offset() {
            return Err(Error::InvalidConfig {
                what: "bulk_arena_size",
                value: self.bulk_arena_size as u64,
            });
        }
        Ok(())
    }
}

/// Stops the link when the last [`Link`] clone goes.
struct Owner<M: SlotMem, D: Doorbell> {
    core: Arc<Core<M, D>>,
}

impl<M: SlotMem, D: Doorbell> Drop for Owner<M, D> {
    fn drop(&mut self) {
        self.core.shutdown();
    }
}

/// One side of a VCHIQ link. Cheap to clone; the link stops when the last clone is dropped or
/// [`Link::shutdown`] is called.
pub struct Link<M: SlotMem = SharedMemory, D: Doorbell = EventFd> {
    owner: Arc<Owner<M, D>>,
}

impl<M: SlotMem, D: Doorbell> Clone for Link<M, D> {
    fn clone(&self) -> Self {
        Self {
            owner: Arc::clone(&self.owner),
        }
    }
}

impl<M: SlotMem, D: Doorbell> std::fmt::Debug for Link<M, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("state", &self.connection_state())
            .field("broken", &self.broken())
            .finish()
    }
}

impl<M: SlotMem, D: Doorbell> Link<M, D> {
    fn core(&self) -> &Core<M, D> {
        &self.owner.core
    }

    fn wrap(core: Arc<Core<M, D>>) -> Self {
        Self {
            owner: Arc::new(Owner { core }),
        }
    }

    /// ARM side: initialises slot zero (magic, versions, sizes, the slot split of spec §2.2,
    /// `platform_data` = bulk-arena offset and size) and the slave half, sets
    /// `slave.initialised` last, and starts the "vchiq-slave" handler thread.
    ///
    /// `local` is the doorbell this side sleeps on; `remote` wakes the peer.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`], [`Error::MemoryTooSmall`], or [`Error::Io`] if the thread cannot
    /// be started.
    pub fn slave(mem: M, config: LinkConfig, local: D, remote: D) -> Result<Self> {
        Core::new_slave(mem, &config, local, remote, TxPos(0)).map(Self::wrap)
    }

    /// Like [`Link::slave`], but both transmit streams start at `initial_tx_pos` (slot aligned)
    /// instead of 0, so that tests reach the wrap of positions at 2^32 quickly.
    ///
    /// # Errors
    /// As [`Link::slave`].
    #[cfg(any(test, feature = "test-utils"))]
    pub fn slave_at(
        mem: M,
        config: LinkConfig,
        local: D,
        remote: D,
        initial_tx_pos: u32,
    ) -> Result<Self> {
        Core::new_slave(mem, &config, local, remote, TxPos(initial_tx_pos)).map(Self::wrap)
    }

    /// VideoCore side: validates slot zero (magic, versions, `slot_zero_size`, `slot_size`,
    /// `max_slots`, `max_slots_per_side`, slot ranges, bulk arena), initialises the master half,
    /// sets `master.initialised = 1` and starts the "vchiq-master" handler thread.
    ///
    /// # Errors
    /// [`Error::SlotZeroMismatch`] naming the field and both values, [`Error::SlotZeroInvalid`],
    /// [`Error::MemoryTooSmall`], [`Error::Io`].
    pub fn master(mem: M, local: D, remote: D) -> Result<Self> {
        Core::new_master(mem, local, remote).map(Self::wrap)
    }

    /// Waits until the peer has set `initialised` in its half of slot zero.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::Shutdown`], [`Error::LinkBroken`].
    pub fn wait_remote_initialised(&self, timeout: Duration) -> Result<()> {
        self.core().wait_remote_initialised(timeout)
    }

    /// Sends this side's CONNECT (once) and blocks until the peer's CONNECT arrived; later calls
    /// return at once. Waits for the peer to initialise first.
    ///
    /// # Errors
    /// [`Error::Shutdown`], [`Error::LinkBroken`].
    pub fn connect(&self) -> Result<()> {
        self.core().connect()
    }

    /// DISCONNECTED, CONNECTING (our CONNECT sent) or CONNECTED (both sent).
    pub fn connection_state(&self) -> ConnState {
        self.core().connection_state()
    }

    /// Creates a server, LISTENING for OPENs of `params.fourcc`. It accepts one connection at a
    /// time; among listeners of one fourcc the lowest port is chosen first.
    ///
    /// # Errors
    /// [`Error::NoFreePort`], [`Error::Shutdown`], [`Error::LinkBroken`].
    pub fn add_service(
        &self,
        params: ServiceParams,
        handler: Arc<dyn ServiceHandler>,
    ) -> Result<ServiceHandle> {
        self.core().add_service(params, handler, false)
    }

    /// Adds a *pool* server: like [`add_service`](Self::add_service), but each OPEN it
    /// accepts first creates a new listener with the same parameters and handler, so any
    /// number of peers can open the fourcc, even at the same moment; a connection's server
    /// is freed when it closes (after its `Closed` event). This is how a firmware serves a
    /// fourcc to every client process, one connection each.
    ///
    /// # Errors
    /// As [`add_service`](Self::add_service).
    pub fn add_service_pool(
        &self,
        params: ServiceParams,
        handler: Arc<dyn ServiceHandler>,
    ) -> Result<ServiceHandle> {
        self.core().add_service(params, handler, true)
    }

    /// Opens a service of the peer: sends OPEN {fourcc, client_id, version, version_min} and
    /// blocks until OPENACK.
    ///
    /// # Errors
    /// [`Error::OpenRejected`] if the peer answers with CLOSE; [`Error::NotConnected`],
    /// [`Error::NoFreePort`], [`Error::Shutdown`], [`Error::LinkBroken`].
    pub fn open_service(
        &self,
        params: ServiceParams,
        client_id: u32,
        handler: Arc<dyn ServiceHandler>,
    ) -> Result<ServiceHandle> {
        self.core().open_service(params, client_id, handler)
    }

    /// Sends `parts`, gathered, as one DATA message. With `blocking`, waits while quotas or free
    /// slots are exhausted (until the peer releases messages, or the service closes, or the link
    /// stops).
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] above 4088 bytes, [`Error::NotOpen`], [`Error::WouldBlock`]
    /// (non-blocking only), [`Error::BadHandle`], [`Error::Shutdown`], [`Error::LinkBroken`].
    pub fn queue_message(&self, h: ServiceHandle, parts: &[&[u8]], blocking: bool) -> Result<()> {
        self.core().queue_message(h, parts, blocking)
    }

    /// Sets the function the handler thread calls after the peer recycled slots, i.e. when
    /// a [`Link::queue_message`] that returned [`Error::WouldBlock`] may now succeed. It
    /// runs on the handler thread with no lock of the link held (it may queue messages)
    /// and must not block. Only the first call takes effect.
    pub fn set_space_waker(&self, waker: Box<dyn Fn() + Send + Sync>) {
        self.core().set_space_waker(waker);
    }

    /// Shares `regions` with this side of the link (both sides of an in-process link get
    /// the same table): bulks may then go through the client's own memory
    /// ([`Link::try_queue_bulk_region`]). Only the first call takes effect.
    pub fn share_bulk_regions(&self, regions: Arc<region::BulkRegions>) {
        self.core().share_bulk_regions(regions);
    }

    /// Whether this side shares a region table (an in-process peer).
    pub fn has_bulk_regions(&self) -> bool {
        self.core().bulk_regions().is_some()
    }

    /// Slave: queues a bulk whose data is `region` itself (a transmit reads its first
    /// `size` bytes, a receive writes them), without waiting: `Ok(false)` when 4 bulks are
    /// outstanding in that direction. Completion is reported as for arena bulks; a
    /// receive's [`ServiceEvent::BulkReceiveDone`] then carries no data (it is in the
    /// region already).
    ///
    /// # Errors
    /// [`Error::BulkTooLarge`] when `size` exceeds the region, [`Error::NotOpen`],
    /// [`Error::BadHandle`], [`Error::Shutdown`], [`Error::LinkBroken`], and
    /// [`Error::InvalidConfig`] when no region table is shared.
    pub fn try_queue_bulk_region(
        &self,
        h: ServiceHandle,
        transmit: bool,
        region: region::Region,
        size: u32,
        userdata: u64,
    ) -> Result<bool> {
        self.core()
            .queue_bulk_region(h, if transmit { 0 } else { 1 }, region, size, userdata)
    }

    /// Queues a bulk transmit; completion is [`ServiceEvent::BulkTransmitDone`] or
    /// [`ServiceEvent::BulkTransmitAborted`]. Blocks while 4 transmits are outstanding (or, on the
    /// slave, while the bulk arena is full).
    ///
    /// # Errors
    /// [`Error::NotOpen`], [`Error::BulkTooLarge`], [`Error::BadHandle`], [`Error::Shutdown`],
    /// [`Error::LinkBroken`].
    pub fn queue_bulk_transmit(
        &self,
        h: ServiceHandle,
        data: Vec<u8>,
        userdata: u64,
    ) -> Result<()> {
        let size = u32::try_from(data.len()).map_err(|_| Error::BulkTooLarge {
            size: data.len(),
            arena: 0,
        })?;
        self.core()
            .queue_bulk(h, 0, &mut Some(data), size, userdata, true)
    }

    /// As [`Link::queue_bulk_transmit`], without waiting: `Ok(Some(data))` gives the data
    /// back when 4 transmits are outstanding or the arena is full.
    ///
    /// # Errors
    /// As [`Link::queue_bulk_transmit`].
    pub fn try_queue_bulk_transmit(
        &self,
        h: ServiceHandle,
        data: Vec<u8>,
        userdata: u64,
    ) -> Result<Option<Vec<u8>>> {
        let size = u32::try_from(data.len()).map_err(|_| Error::BulkTooLarge {
            size: data.len(),
            arena: 0,
        })?;
        let mut data = Some(data);
        match self
            .core()
            .queue_bulk(h, 0, &mut data, size, userdata, false)
        {
            Ok(()) => Ok(None),
            Err(Error::WouldBlock) => Ok(data),
            Err(e) => Err(e),
        }
    }

    /// Queues a bulk receive of `size` bytes; completion is [`ServiceEvent::BulkReceiveDone`]
    /// (with the data) or [`ServiceEvent::BulkReceiveAborted`].
    ///
    /// # Errors
    /// As [`Link::queue_bulk_transmit`].
    pub fn queue_bulk_receive(&self, h: ServiceHandle, size: u32, userdata: u64) -> Result<()> {
        self.core()
            .queue_bulk(h, 1, &mut None, size, userdata, true)
    }

    /// As [`Link::queue_bulk_receive`], without waiting: [`Error::WouldBlock`] when 4
    /// receives are outstanding or the arena is full.
    ///
    /// # Errors
    /// As [`Link::queue_bulk_transmit`], and [`Error::WouldBlock`].
    pub fn try_queue_bulk_receive(&self, h: ServiceHandle, size: u32, userdata: u64) -> Result<()> {
        self.core()
            .queue_bulk(h, 1, &mut None, size, userdata, false)
    }

    /// Starts closing a service (sends CLOSE); completion is reported by [`ServiceEvent::Closed`].
    /// On a CLOSEWAIT server (auto_close off) it returns the server to LISTENING.
    ///
    /// # Errors
    /// [`Error::InvalidState`] for a LISTENING (or otherwise unopened) service,
    /// [`Error::BadHandle`], [`Error::Shutdown`], [`Error::LinkBroken`].
    pub fn close_service(&self, h: ServiceHandle) -> Result<()> {
        self.core().close_service(h)
    }

    /// Removes a service: a server stops being openable at once; an open service is closed
    /// first and its port is freed when the close completes ([`ServiceEvent::Closed`] is still
    /// delivered); otherwise the port is freed now, without an event.
    ///
    /// # Errors
    /// [`Error::BadHandle`]; protocol errors while sending CLOSE.
    pub fn remove_service(&self, h: ServiceHandle) -> Result<()> {
        self.core().remove_service(h)
    }

    /// Sets AUTOCLOSE, SLOT_QUOTA, MESSAGE_QUOTA (0 = default; otherwise ≥ the current use count
    /// and < 65535) or TRACE.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for SYNCHRONOUS, [`Error::InvalidOption`], [`Error::BadHandle`].
    pub fn set_service_option(
        &self,
        h: ServiceHandle,
        option: ServiceOption,
        value: i32,
    ) -> Result<()> {
        self.core().set_service_option(h, option, value)
    }

    /// A snapshot of one service, if the handle is live.
    pub fn service_info(&self, h: ServiceHandle) -> Option<ServiceInfo> {
        self.core().service_info(h)
    }

    /// Snapshots of every live service, by port.
    pub fn services(&self) -> Vec<ServiceInfo> {
        self.core().services()
    }

    /// The link's counters.
    pub fn stats(&self) -> LinkStats {
        self.core().stats()
    }

    /// `Some(reason)` once a protocol error killed the link.
    pub fn broken(&self) -> Option<String> {
        self.core().broken()
    }

    /// Stops and joins the handler thread and wakes every blocked caller with
    /// [`Error::Shutdown`]. Idempotent.
    pub fn shutdown(&self) {
        self.core().shutdown();
    }

    /// This side's current transmit position (tests).
    #[cfg(any(test, feature = "test-utils"))]
    pub fn tx_pos(&self) -> u32 {
        self.core().tx_pos().0
    }
}

#[cfg(test)]
mod tests;
