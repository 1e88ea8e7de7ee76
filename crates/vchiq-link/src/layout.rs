//! Layouts of the structures the two sides share (spec §2.3, §2.4, §2.6).
//!
//! These are plain `#[repr(C)]` value types: they are built or decoded *by value* (copied in or
//! out through [`SlotMem`](crate::shm::SlotMem)), never overlaid on the mapping. The protocol code
//! takes its field offsets from the `*_OFF` constants here, all derived with `offset_of!`, and
//! the tests pin every offset to the numbers of the spec.
//!
//! All fields are little-endian on the wire; the crate only builds for little-endian targets.

use core::mem::{offset_of, size_of};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::abi::defs::{DEBUG_ENTRIES, MAX_SLOTS, MAX_SLOTS_PER_SIDE};

#[cfg(target_endian = "big")]
compile_error!("the VCHIQ wire format is little-endian and this crate accesses it natively");

/// vchiq_core.h: `REMOTE_EVENT_T`, a signal from one side to the other (spec §2.5).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct RemoteEvent {
    /// Set by the owner while it sleeps waiting for this event.
    pub armed: u32,
    /// Set by the signaller; cleared by the owner after waking.
    pub fired: u32,
    /// Local-only word (a pointer in old kernels); unused on the wire.
    pub _unused: u32,
}

/// vchiq_core.h: `VCHIQ_SHARED_STATE_T`, one side's half of slot zero (spec §2.4).
///
/// The owner writes everything except the peer-written `slot_queue[]`, `slot_queue_recycle` and
/// the `fired` flags of its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SharedState {
    /// Non-zero once this side is ready.
    pub initialised: u32,
    /// First data slot owned by this side (inclusive).
    pub slot_first: u32,
    /// Last data slot owned by this side (inclusive).
    pub slot_last: u32,
    /// This side's synchronous-message slot.
    pub slot_sync: u32,
    /// "The owner's slot handler should run": new messages from the peer.
    pub trigger: RemoteEvent,
    /// Position in this side's transmit stream where the next message will be written.
    pub tx_pos: u32,
    /// "The peer returned slots to you."
    pub recycle: RemoteEvent,
    /// Next `slot_queue` index the peer writes a recycled slot to (peer-written counter).
    pub slot_queue_recycle: u32,
    /// "A synchronous message was sent to you."
    pub sync_trigger: RemoteEvent,
    /// "Your synchronous message was consumed."
    pub sync_release: RemoteEvent,
    /// Ring of slot indices, the order in which this side uses its data slots.
    pub slot_queue: [u32; MAX_SLOTS_PER_SIDE],
    /// Debug counters; `debug[0]` = `DEBUG_ENTRIES`.
    pub debug: [u32; DEBUG_ENTRIES],
}

/// vchiq_core.h: `VCHIQ_SLOT_INFO_T`; present for layout only (counts are kept privately).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SlotInfo {
    /// Unused on the wire.
    pub use_count: u16,
    /// Unused on the wire.
    pub release_count: u16,
}

/// vchiq_core.h: `VCHIQ_SLOT_ZERO_T`, the header at the start of the shared memory (spec §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SlotZero {
    /// `VCHIQ_MAGIC`.
    pub magic: u32,
    /// Protocol version of the initialiser (may be lowered by the other side).
    pub version: u16,
    /// Oldest version the initialiser accepts.
    pub version_min: u16,
    /// `sizeof(SlotZero)` = 1288.
    pub slot_zero_size: u32,
    /// 4096.
    pub slot_size: u32,
    /// 128.
    pub max_slots: u32,
    /// 64.
    pub max_slots_per_side: u32,
    /// Platform words; here `[0]` = bulk-arena byte offset, `[1]` = bulk-arena size.
    pub platform_data: [u32; 2],
    /// The VideoCore's half.
    pub master: SharedState,
    /// The ARM's half.
    pub slave: SharedState,
    /// Unused slot info (Linux keeps it privately).
    pub slots: [SlotInfo; MAX_SLOTS],
}

/// vchiq_core.h: `VCHIQ_HEADER_T`, the 8-byte header of every message (spec §2.6).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MsgHeader {
    /// `(type << 24) | (srcport << 12) | dstport`, plus the receiver's CLAIMED bit.
    pub msgid: u32,
    /// Payload bytes following the header.
    pub size: u32,
}

/// OPEN payload (spec §2.7): 12 bytes.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct OpenPayload {
    /// Service fourcc.
    pub fourcc: u32,
    /// The opener's client id (a PID on Linux).
    pub client_id: u32,
    /// The opener's service version.
    pub version: u16,
    /// The oldest server version the opener accepts.
    pub version_min: u16,
}

/// BULK_RX / BULK_TX payload (spec §2.7): 8 bytes. `data` is a bulk-arena offset here.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct BulkPayload {
    /// Where the slave's buffer is (a PAGELIST address on Linux, a bulk-arena offset here).
    pub data: u32,
    /// Bytes to move.
    pub size: u32,
}

const _: () = assert!(size_of::<RemoteEvent>() == 12);
const _: () = assert!(size_of::<SharedState>() == 372);
const _: () = assert!(size_of::<SlotZero>() == 1288);
const _: () = assert!(size_of::<MsgHeader>() == 8);
const _: () = assert!(size_of::<OpenPayload>() == 12);
const _: () = assert!(size_of::<BulkPayload>() == 8);

/// Offset of `SlotZero::master` (the VideoCore's shared state).
pub const MASTER_STATE_OFF: usize = offset_of!(SlotZero, master);
/// Offset of `SlotZero::slave` (the ARM's shared state).
pub const SLAVE_STATE_OFF: usize = offset_of!(SlotZero, slave);
/// Offset of `SlotZero::version`.
pub const VERSION_OFF: usize = offset_of!(SlotZero, version);
/// Offset of `SharedState::initialised`.
pub const INITIALISED_OFF: usize = offset_of!(SharedState, initialised);
/// Offset of `SharedState::trigger`.
pub const TRIGGER_OFF: usize = offset_of!(SharedState, trigger);
/// Offset of `SharedState::tx_pos`.
pub const TX_POS_OFF: usize = offset_of!(SharedState, tx_pos);
/// Offset of `SharedState::recycle`.
pub const RECYCLE_OFF: usize = offset_of!(SharedState, recycle);
/// Offset of `SharedState::slot_queue_recycle`.
pub const SLOT_QUEUE_RECYCLE_OFF: usize = offset_of!(SharedState, slot_queue_recycle);
/// Offset of `SharedState::sync_trigger`.
pub const SYNC_TRIGGER_OFF: usize = offset_of!(SharedState, sync_trigger);
/// Offset of `SharedState::sync_release`.
pub const SYNC_RELEASE_OFF: usize = offset_of!(SharedState, sync_release);
/// Offset of `SharedState::slot_queue`.
pub const SLOT_QUEUE_OFF: usize = offset_of!(SharedState, slot_queue);
/// Offset of `RemoteEvent::armed` inside an event.
pub const ARMED_OFF: usize = offset_of!(RemoteEvent, armed);
/// Offset of `RemoteEvent::fired` inside an event.
pub const FIRED_OFF: usize = offset_of!(RemoteEvent, fired);
/// Offset of `MsgHeader::msgid`.
pub const MSGID_OFF: usize = offset_of!(MsgHeader, msgid);
/// Offset of `MsgHeader::size`.
pub const SIZE_OFF: usize = offset_of!(MsgHeader, size);

impl SharedState {
    /// An all-zero shared state.
    pub fn zeroed() -> Self {
        zerocopy::FromZeros::new_zeroed()
    }
}

impl SlotZero {
    /// An all-zero slot zero.
    pub fn zeroed() -> Self {
        zerocopy::FromZeros::new_zeroed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_event_offsets() {
        assert_eq!(offset_of!(RemoteEvent, armed), 0);
        assert_eq!(offset_of!(RemoteEvent, fired), 4);
        assert_eq!(offset_of!(RemoteEvent, _unused), 8);
    }

    #[test]
    fn shared_state_offsets() {
        assert_eq!(offset_of!(SharedState, initialised), 0);
        assert_eq!(offset_of!(SharedState, slot_first), 4);
        assert_eq!(offset_of!(SharedState, slot_last), 8);
        assert_eq!(offset_of!(SharedState, slot_sync), 12);
        assert_eq!(offset_of!(SharedState, trigger), 16);
        assert_eq!(offset_of!(SharedState, tx_pos), 28);
        assert_eq!(offset_of!(SharedState, recycle), 32);
        assert_eq!(offset_of!(SharedState, slot_queue_recycle), 44);
        assert_eq!(offset_of!(SharedState, sync_trigger), 48);
        assert_eq!(offset_of!(SharedState, sync_release), 60);
        assert_eq!(offset_of!(SharedState, slot_queue), 72);
        assert_eq!(offset_of!(SharedState, debug), 328);
        assert_eq!(size_of::<SharedState>(), 372);
    }

    #[test]
    fn slot_zero_offsets() {
        assert_eq!(offset_of!(SlotZero, magic), 0);
        assert_eq!(offset_of!(SlotZero, version), 4);
        assert_eq!(offset_of!(SlotZero, version_min), 6);
        assert_eq!(offset_of!(SlotZero, slot_zero_size), 8);
        assert_eq!(offset_of!(SlotZero, slot_size), 12);
        assert_eq!(offset_of!(SlotZero, max_slots), 16);
        assert_eq!(offset_of!(SlotZero, max_slots_per_side), 20);
        assert_eq!(offset_of!(SlotZero, platform_data), 24);
        assert_eq!(offset_of!(SlotZero, master), 32);
        assert_eq!(offset_of!(SlotZero, slave), 404);
        assert_eq!(offset_of!(SlotZero, slots), 776);
        assert_eq!(size_of::<SlotZero>(), 0x508);
    }

    #[test]
    fn header_and_payload_offsets() {
        assert_eq!(offset_of!(MsgHeader, msgid), 0);
        assert_eq!(offset_of!(MsgHeader, size), 4);
        assert_eq!(offset_of!(OpenPayload, fourcc), 0);
        assert_eq!(offset_of!(OpenPayload, client_id), 4);
        assert_eq!(offset_of!(OpenPayload, version), 8);
        assert_eq!(offset_of!(OpenPayload, version_min), 10);
        assert_eq!(offset_of!(BulkPayload, data), 0);
        assert_eq!(offset_of!(BulkPayload, size), 4);
    }

    #[test]
    fn bytes_are_little_endian() {
        let h = MsgHeader {
            msgid: 0x0512_3456,
            size: 9,
        };
        assert_eq!(h.as_bytes(), &[0x56, 0x34, 0x12, 0x05, 9, 0, 0, 0]);
    }
}
