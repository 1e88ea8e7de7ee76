//! A raw peer for tests: it plays one side of the link by writing slot zero, messages, headers
//! and shared-state fields directly, honest or not (RV `mock.rs`: "mocking the driver side").
//!
//! It follows the protocol only as far as a test asks it to: [`MockPeer::send`] frames and
//! publishes a well-formed message, [`MockPeer::receive`] parses and recycles what the honest side
//! sent, and the raw writers ([`MockPeer::write`], [`MockPeer::store`], [`MockPeer::set_tx_pos`],
//! ...) let hostile-peer tests put anything anywhere.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use zerocopy::{FromBytes, IntoBytes};

use crate::abi::defs::{SLOT_SIZE, SLOT_ZERO_SIZE, msgid, stride};
use crate::doorbell::Doorbell;
use crate::layout::{
    ARMED_OFF, FIRED_OFF, INITIALISED_OFF, MASTER_STATE_OFF, MsgHeader, RECYCLE_OFF,
    SLAVE_STATE_OFF, SLOT_QUEUE_OFF, SLOT_QUEUE_RECYCLE_OFF, SlotZero, TRIGGER_OFF, TX_POS_OFF,
};
use crate::parse::{SlotImage, parse_slot};
use crate::pos::TxPos;
use crate::shm::SlotMem;
use crate::{LinkConfig, Result};

/// A message the mock received: raw msgid and payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawMsg {
    /// The msgid as written (type, ports).
    pub msgid: u32,
    /// The payload.
    pub payload: Vec<u8>,
}

impl RawMsg {
    /// The type byte.
    pub fn ty(&self) -> u32 {
        self.msgid >> 24
    }
    /// Source port.
    pub fn src(&self) -> u32 {
        (self.msgid >> 12) & 0xFFF
    }
    /// Destination port.
    pub fn dst(&self) -> u32 {
        self.msgid & 0xFFF
    }
}

/// One side of a link played by hand.
pub struct MockPeer<M: SlotMem> {
    mem: M,
    bell: Arc<dyn Doorbell>,
    own: usize,
    peer: usize,
    tx_pos: TxPos,
    cur_slot: Option<u32>,
    rx_pos: TxPos,
    recycle_next: u32,
    peer_first: u32,
    peer_last: u32,
}

impl<M: SlotMem> MockPeer<M> {
    /// Plays the master against an honest slave that already initialised slot zero. `bell` wakes
    /// the slave.
    ///
    /// # Errors
    /// Memory access errors.
    pub fn master(mem: M, bell: Arc<dyn Doorbell>) -> Result<Self> {
        let z = read_slot_zero(&mem)?;
        let start = TxPos(z.slave.tx_pos);
        let mut half = z.master;
        crate::link::init_half(&mut half, start);
        half.initialised = 0;
        mem.write(MASTER_STATE_OFF, half.as_bytes())?;
        mem.store_u32(MASTER_STATE_OFF + INITIALISED_OFF, 1, Ordering::Release)?;
        let peer_count = z.slave.slot_last - z.slave.slot_first + 1;
        Ok(Self {
            mem,
            bell,
            own: MASTER_STATE_OFF,
            peer: SLAVE_STATE_OFF,
            tx_pos: start,
            cur_slot: None,
            rx_pos: start,
            recycle_next: start.queue_index().wrapping_add(peer_count),
            peer_first: z.slave.slot_first,
            peer_last: z.slave.slot_last,
        })
    }

    /// Plays the slave: writes slot zero for `config` and sets `slave.initialised`; start an
    /// honest master on the same memory afterwards. `bell` wakes the master.
    ///
    /// # Errors
    /// Memory access errors.
    pub fn slave(mem: M, config: LinkConfig, bell: Arc<dyn Doorbell>) -> Result<Self> {
        let z = crate::link::write_slot_zero(&mem, &config, TxPos(0))?;
        mem.store_u32(SLAVE_STATE_OFF + INITIALISED_OFF, 1, Ordering::Release)?;
        let peer_count = z.master.slot_last - z.master.slot_first + 1;
        Ok(Self {
            mem,
            bell,
            own: SLAVE_STATE_OFF,
            peer: MASTER_STATE_OFF,
            tx_pos: TxPos(0),
            cur_slot: None,
            rx_pos: TxPos(0),
            recycle_next: peer_count,
            peer_first: z.master.slot_first,
            peer_last: z.master.slot_last,
        })
    }

    /// The shared memory.
    pub fn mem(&self) -> &M {
        &self.mem
    }

    /// Offset of the mock's own shared state.
    pub fn own_state(&self) -> usize {
        self.own
    }

    /// Offset of the honest side's shared state.
    pub fn peer_state(&self) -> usize {
        self.peer
    }

    /// The mock's transmit position.
    pub fn tx_pos(&self) -> u32 {
        self.tx_pos.0
    }

    /// Writes a well-formed message (with padding if needed) and publishes it.
    ///
    /// # Errors
    /// Memory access errors.
    pub fn send(&mut self, ty: u32, src: u32, dst: u32, payload: &[u8]) -> Result<()> {
        self.write_message(msgid(ty, src, dst), payload)?;
        self.publish()
    }

    /// Writes a message with an arbitrary raw msgid without publishing it.
    ///
    /// # Errors
    /// Memory access errors.
    pub fn write_message(&mut self, raw_msgid: u32, payload: &[u8]) -> Result<()> {
        let stride = stride(payload.len() as u32) as usize;
        let off = self.tx_pos.offset();
        if off != 0 && stride > SLOT_SIZE - off {
            if let Some(cur) = self.cur_slot {
                let h = MsgHeader {
                    msgid: 0,
                    size: (SLOT_SIZE - off - 8) as u32,
                };
                self.mem
                    .write(cur as usize * SLOT_SIZE + off, h.as_bytes())?;
            }
            self.tx_pos = self.tx_pos.next_slot_boundary();
        }
        if self.tx_pos.offset() == 0 {
            let entry = self.tx_pos.queue_entry();
            self.cur_slot = Some(
                self.mem
                    .load_u32(self.own + SLOT_QUEUE_OFF + 4 * entry, Ordering::Relaxed)?,
            );
        }
        let slot = self.cur_slot.unwrap_or(0);
        let base = slot as usize * SLOT_SIZE + self.tx_pos.offset();
        self.mem.write(base + 8, payload)?;
        self.mem.write(
            base,
            MsgHeader {
                msgid: raw_msgid,
                size: payload.len() as u32,
            }
            .as_bytes(),
        )?;
        self.tx_pos = self.tx_pos.advance(stride as u32);
        Ok(())
    }

    /// Stores the mock's `tx_pos` and signals the honest side's trigger.
    ///
    /// # Errors
    /// Memory access errors.
    pub fn publish(&mut self) -> Result<()> {
        self.mem
            .store_u32(self.own + TX_POS_OFF, self.tx_pos.0, Ordering::Release)?;
        self.signal(TRIGGER_OFF)
    }

    /// Overwrites the mock's `tx_pos` (in shared memory and privately) and signals.
    ///
    /// # Errors
    /// Memory access errors.
    pub fn set_tx_pos(&mut self, v: u32) -> Result<()> {
        self.tx_pos = TxPos(v);
        self.publish()
    }

    /// Signals one of the honest side's events (`layout::TRIGGER_OFF`, `RECYCLE_OFF`, ...).
    ///
    /// # Errors
    /// Memory access errors.
    pub fn signal(&self, event_off: usize) -> Result<()> {
        self.mem
            .store_u32(self.peer + event_off + FIRED_OFF, 1, Ordering::SeqCst)?;
        if self
            .mem
            .load_u32(self.peer + event_off + ARMED_OFF, Ordering::SeqCst)?
            != 0
        {
            self.bell.ring();
        }
        self.bell.ring();
        Ok(())
    }

    /// Raw write anywhere.
    ///
    /// # Errors
    /// Out-of-bounds writes.
    pub fn write(&self, off: usize, data: &[u8]) -> Result<()> {
        self.mem.write(off, data)
    }

    /// Raw word store anywhere.
    ///
    /// # Errors
    /// Out-of-bounds or misaligned stores.
    pub fn store(&self, off: usize, v: u32) -> Result<()> {
        self.mem.store_u32(off, v, Ordering::SeqCst)
    }

    /// Reads and parses everything the honest side published since the last call, recycling
    /// each of its slots once passed. Stops quietly at anything malformed.
    ///
    /// # Errors
    /// Memory access errors.
    pub fn receive(&mut self) -> Result<Vec<RawMsg>> {
        let tx = TxPos(
            self.mem
                .load_u32(self.peer + TX_POS_OFF, Ordering::Acquire)?,
        );
        let mut out = Vec::new();
        let mut image: Box<SlotImage> = Box::new([0u8; SLOT_SIZE]);
        let mut guard = 0;
        while self.rx_pos != tx && guard < 4096 {
            guard += 1;
            let entry = self.rx_pos.queue_entry();
            let slot = self
                .mem
                .load_u32(self.peer + SLOT_QUEUE_OFF + 4 * entry, Ordering::Relaxed)?;
            if !(self.peer_first..=self.peer_last).contains(&slot) {
                break;
            }
            let off = self.rx_pos.offset();
            let end = off + (tx.delta(self.rx_pos) as usize).min(SLOT_SIZE - off);
            self.mem
                .read(slot as usize * SLOT_SIZE + off, &mut image[off..end])?;
            let mut advanced = 0;
            for m in parse_slot(&image, off, end) {
                let Ok(m) = m else { break };
                if m.msgid != 0 {
                    let payload = image[m.offset + 8..m.offset + 8 + (m.stride - 8)].to_vec();
                    let size = u32::from_le_bytes(
                        image[m.offset + 4..m.offset + 8]
                            .try_into()
                            .unwrap_or([0; 4]),
                    );
                    out.push(RawMsg {
                        msgid: m.msgid,
                        payload: payload[..size as usize].to_vec(),
                    });
                }
                advanced += m.stride;
            }
            if advanced == 0 {
                break;
            }
            self.rx_pos = self.rx_pos.advance(advanced as u32);
            if self.rx_pos.offset() == 0 {
                let e = (self.recycle_next as usize) & 63;
                self.mem
                    .store_u32(self.peer + SLOT_QUEUE_OFF + 4 * e, slot, Ordering::Relaxed)?;
                self.recycle_next = self.recycle_next.wrapping_add(1);
                self.mem.store_u32(
                    self.peer + SLOT_QUEUE_RECYCLE_OFF,
                    self.recycle_next,
                    Ordering::Release,
                )?;
                self.signal(RECYCLE_OFF)?;
            }
        }
        Ok(out)
    }
}

fn read_slot_zero<M: SlotMem>(mem: &M) -> Result<SlotZero> {
    let mut b = [0u8; SLOT_ZERO_SIZE];
    mem.read(0, &mut b)?;
    Ok(SlotZero::read_from_bytes(&b[..]).unwrap_or_else(|_| SlotZero::zeroed()))
}
