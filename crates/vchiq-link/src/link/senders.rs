//! The transmit side: writing messages into our slots under the quotas (`try_send`), and the
//! outbox of control messages that wait for slot space.

use std::sync::atomic::Ordering;

use tracing::trace;
use zerocopy::IntoBytes;

use super::{Core, State};
use crate::abi::defs::{MAX_MSG_SIZE, SLOT_SIZE, stride};
use crate::abi::msg::MsgType;
use crate::doorbell::Doorbell;
use crate::layout::{MsgHeader, TRIGGER_OFF, TX_POS_OFF};
use crate::service::ServiceHandle;
use crate::shm::SlotMem;
use crate::{Error, Result};

/// Control messages queued while no slot is free; past this the handler stops parsing the peer's
/// stream until the peer recycles (back-pressure instead of unbounded growth).
pub(super) const OUTBOX_LIMIT: usize = 256;

/// A control message waiting for slot space.
#[derive(Clone, Copy, Debug)]
pub(super) struct OutMsg {
    ty: MsgType,
    src: u32,
    dst: u32,
    payload: [u8; 12],
    len: u8,
}

/// Outcome of trying to write one message.
enum Sent {
    Yes,
    NoSpace,
}

impl<M: SlotMem, D: Doorbell> Core<M, D> {
    // ------------------------------------------------------------------ transmitting

    pub(super) fn queue_control(
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

    pub(super) fn flush_outbox(&self, st: &mut State) -> Result<()> {
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

    // ------------------------------------------------------------------ public operations

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
            let s = Self::lookup_open(&mut st, h)?;
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
}
