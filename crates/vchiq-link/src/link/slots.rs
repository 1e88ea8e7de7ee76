//! Slot handling: the peer's slots on the receive side (entering a slot, parsing the messages
//! in it, the per-slot use and release counts, recycling a slot to the peer), the recycling of
//! our own slots the peer hands back, and slot zero (writing it, validating it, its geometry).

use std::sync::atomic::Ordering;

use zerocopy::IntoBytes;

use super::senders::OUTBOX_LIMIT;
use super::{Core, State};
use crate::abi::defs::{
    DEBUG_ENTRIES, MAX_SLOTS, MAX_SLOTS_PER_SIDE, SLOT_SIZE, SLOT_ZERO_SIZE, VCHIQ_MAGIC,
    VCHIQ_VERSION, VCHIQ_VERSION_MIN,
};
use crate::doorbell::Doorbell;
use crate::layout::{
    MASTER_STATE_OFF, MsgHeader, RECYCLE_OFF, SLAVE_STATE_OFF, SLOT_QUEUE_OFF,
    SLOT_QUEUE_RECYCLE_OFF, SharedState, SlotZero, TX_POS_OFF,
};
use crate::parse::{ProtocolError, SlotImage, parse_message};
use crate::pos::TxPos;
use crate::shm::SlotMem;
use crate::{Error, LinkConfig, Result};

/// Validated slot-zero geometry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    /// Offset of our shared state in slot zero.
    pub(super) local: usize,
    /// Offset of the peer's shared state.
    pub(super) remote: usize,
    /// Our data slots, inclusive.
    pub(super) local_first: u32,
    pub(super) local_last: u32,
    /// The peer's data slots, inclusive.
    pub(super) remote_first: u32,
    pub(super) remote_last: u32,
    /// Bulk arena (absolute offset, size).
    pub(super) arena_off: usize,
    pub(super) arena_size: usize,
    /// Where both transmit streams start (0 in production).
    pub(super) start: TxPos,
}

impl Geometry {
    pub(super) fn local_count(&self) -> u32 {
        self.local_last - self.local_first + 1
    }
    pub(super) fn remote_count(&self) -> u32 {
        self.remote_last - self.remote_first + 1
    }
    pub(super) fn initial_recycle(&self, count: u32) -> u32 {
        self.start.queue_index().wrapping_add(count)
    }
}

/// What one of our slots carries, for the quota release when it comes back.
#[derive(Clone, Debug, Default)]
pub(super) struct SlotRecord {
    /// DATA messages per source port.
    pub(super) ports: Vec<(u16, u32)>,
}

/// The receiver's private counts for one of the peer's slots (spec §2.10).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct RxSlot {
    pub(super) use_count: u32,
    pub(super) release_count: u32,
}

impl<M: SlotMem, D: Doorbell> Core<M, D> {
    // ------------------------------------------------------------------ receiving

    pub(super) fn parse_incoming(&self, st: &mut State) -> Result<()> {
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
    pub(super) fn release_rx_slot(&self, st: &mut State, slot: u32) -> Result<()> {
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

    // ------------------------------------------------------------------ recycling

    /// Our slots the peer handed back (spec §2.10 "sender's recycle thread").
    pub(super) fn process_recycles(&self, st: &mut State) -> Result<()> {
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
        self.space_freed.store(true, Ordering::Release);
        self.cond.notify_all();
        Ok(())
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
pub(super) fn validate_slot_zero(
    z: &SlotZero,
    slave_initialised: u32,
    mem_len: usize,
) -> Result<Geometry> {
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
