//! Positions in a transmit stream and the small integer newtypes of the protocol (spec §2.6).
//!
//! A side's transmit stream is an endless byte sequence laid over its data slots. [`TxPos`] is
//! the byte counter into that stream: it only grows and wraps at 2^32, which is harmless because
//! 2^32 / 4096 is a multiple of the 64-entry `slot_queue` ring. From a position:
//!
//! - the *slot-queue index* is `pos / 4096` (its low 6 bits select the `slot_queue` entry that
//!   names the physical slot);
//! - the *offset* inside the slot is `pos & 4095`.

use core::fmt;

use crate::abi::defs::{MAX_SLOTS_PER_SIDE, PORT_FREE, PORT_MAX, SLOT_SIZE};

/// `log2(SLOT_SIZE)`: positions are split into slot-queue index and offset with it.
const SLOT_SHIFT: u32 = SLOT_SIZE.trailing_zeros();
/// vchiq_core.h: `VCHIQ_SLOT_MASK` = `SLOT_SIZE - 1`.
const SLOT_MASK: u32 = SLOT_SIZE as u32 - 1;
/// vchiq_core.h: `VCHIQ_SLOT_QUEUE_MASK` = `MAX_SLOTS_PER_SIDE - 1`.
const SLOT_QUEUE_MASK: u32 = MAX_SLOTS_PER_SIDE as u32 - 1;

/// A byte position in one side's transmit stream (`tx_pos`, the receiver's `rx_pos`).
///
/// # Invariants
/// Arithmetic wraps at 2^32, like the C `int` counter it mirrors; compare positions only through
/// [`TxPos::delta`], never with `<`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TxPos(pub u32);

impl TxPos {
    /// The position `n` bytes further on (wrapping).
    #[must_use]
    pub const fn advance(self, n: u32) -> Self {
        Self(self.0.wrapping_add(n))
    }

    /// Bytes from `earlier` to `self`, wrapping: a position that went backwards shows up as a
    /// huge delta, which callers reject as a jump beyond what the peer's slots can hold.
    pub const fn delta(self, earlier: TxPos) -> u32 {
        self.0.wrapping_sub(earlier.0)
    }

    /// vchiq_core.h: `SLOT_QUEUE_INDEX_FROM_POS(pos)` = `pos / SLOT_SIZE`: the free-running
    /// slot-queue counter of the slot this position falls into.
    pub const fn queue_index(self) -> u32 {
        self.0 >> SLOT_SHIFT
    }

    /// The `slot_queue[]` entry (0..=63) that names this position's slot: `queue_index & 63`.
    pub const fn queue_entry(self) -> usize {
        (self.queue_index() & SLOT_QUEUE_MASK) as usize
    }

    /// Offset inside the slot: `pos & 4095`.
    pub const fn offset(self) -> usize {
        (self.0 & SLOT_MASK) as usize
    }

    /// Bytes left in the current slot (4096 at a slot boundary).
    pub const fn remaining_in_slot(self) -> usize {
        SLOT_SIZE - self.offset()
    }

    /// The start of the next slot (the position itself if it is already on a boundary).
    #[must_use]
    pub const fn next_slot_boundary(self) -> Self {
        if self.offset() == 0 {
            self
        } else {
            self.advance(self.remaining_in_slot() as u32)
        }
    }
}

impl fmt::Debug for TxPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TxPos({:#x}: q{} +{})",
            self.0,
            self.queue_index(),
            self.offset()
        )
    }
}

/// The index of a 4096-byte slot in the shared memory: slot `i` lives at byte `i * 4096` from
/// slot zero (spec §2.2). Always `< MAX_SLOTS` (128) once validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotIndex(pub u16);

impl SlotIndex {
    /// A slot index read from shared memory, if it is below `MAX_SLOTS`.
    pub fn new(raw: u32) -> Option<Self> {
        if (raw as usize) < crate::abi::defs::MAX_SLOTS {
            u16::try_from(raw).ok().map(Self)
        } else {
            None
        }
    }

    /// Byte offset of the slot from the start of the shared memory.
    pub const fn byte_offset(self) -> usize {
        self.0 as usize * SLOT_SIZE
    }

    /// As an array index.
    pub const fn as_usize(self) -> usize {
        self.0 as usize
    }
}

/// A 12-bit service port (0..=4095), the index of a service in a side's service table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u32);

impl PortId {
    /// vchiq_core.h: `VCHIQ_PORT_FREE`: "no remote port"; never a valid port.
    pub const FREE: PortId = PortId(PORT_FREE);

    /// A port if `raw <= 4095`.
    pub const fn new(raw: u32) -> Option<Self> {
        if raw <= PORT_MAX {
            Some(Self(raw))
        } else {
            None
        }
    }

    /// True for 0..=4095 (false for [`PortId::FREE`]).
    pub const fn is_valid(self) -> bool {
        self.0 <= PORT_MAX
    }

    /// As an array index.
    pub const fn as_usize(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_valid() {
            write!(f, "{}", self.0)
        } else {
            f.write_str("FREE")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_position() {
        let p = TxPos(3 * 4096 + 24);
        assert_eq!((p.queue_index(), p.queue_entry(), p.offset()), (3, 3, 24));
        assert_eq!(p.remaining_in_slot(), 4096 - 24);
        assert_eq!(p.next_slot_boundary(), TxPos(4 * 4096));
        assert_eq!(TxPos(8192).next_slot_boundary(), TxPos(8192));
        assert_eq!(TxPos(65 * 4096).queue_entry(), 1);
    }

    #[test]
    fn wraps_at_2_pow_32() {
        let p = TxPos(u32::MAX - 7);
        assert_eq!(p.queue_entry(), 63);
        assert_eq!(p.offset(), 4088);
        let q = p.advance(16);
        assert_eq!(q, TxPos(8));
        assert_eq!(q.delta(p), 16);
        assert_eq!(q.queue_index(), 0);
        // 2^32 / 4096 is a multiple of 64, so the ring entry continues seamlessly: 63 -> 0.
        assert_eq!(q.queue_entry(), 0);
        assert_eq!(
            TxPos(u32::MAX - 4095).next_slot_boundary(),
            TxPos(u32::MAX - 4095)
        );
        assert_eq!(TxPos(u32::MAX - 100).next_slot_boundary(), TxPos(0));
        // Backwards shows up as a huge delta.
        assert!(p.delta(q) > u32::MAX / 2);
    }

    #[test]
    fn slot_and_port_ranges() {
        assert_eq!(SlotIndex::new(127), Some(SlotIndex(127)));
        assert_eq!(SlotIndex::new(128), None);
        assert_eq!(SlotIndex::new(u32::MAX), None);
        assert_eq!(SlotIndex(2).byte_offset(), 8192);
        assert_eq!(PortId::new(4095), Some(PortId(4095)));
        assert_eq!(PortId::new(4096), None);
        assert!(!PortId::FREE.is_valid());
        assert_eq!(PortId::FREE.to_string(), "FREE");
        assert_eq!(PortId(7).to_string(), "7");
    }
}
