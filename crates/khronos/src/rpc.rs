//! The merge buffer, make-current records and the call classes of the Khronos RPC.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ids;
use crate::{CTRL_THRESHOLD, Channel, MC_RECORD_SIZE, MERGE_BUFFER_SIZE, Shared, StatCounters};

/// The server-side ids a make-current record carries (pid aside).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct McIds {
    /// 0 none, 1 GLES 1.1, 2 GLES 2.0.
    pub(crate) gltype: u32,
    pub(crate) gl_ctx: u32,
    pub(crate) gl_draw: u32,
    pub(crate) gl_read: u32,
}

/// The client's RPC state: the merge buffer and the ids of the pending make-current record.
pub(crate) struct Rpc {
    shared: Arc<Shared>,
    buf: Vec<u8>,
    attached: bool,
    mc: McIds,
    channel: Channel,
}

/// Pad a byte count to whole words.
pub(crate) fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

impl Rpc {
    pub(crate) fn new(shared: Arc<Shared>) -> Rpc {
        Rpc {
            shared,
            buf: Vec::with_capacity(MERGE_BUFFER_SIZE),
            attached: false,
            mc: McIds::default(),
            channel: Channel::Khrn,
        }
    }

    /// Attach: write the first make-current record (pid, all ids 0) into the merge buffer.
    pub(crate) fn ensure_attached(&mut self) -> Result<()> {
        if !self.attached {
            self.buf.clear();
            self.push_mc()?;
            self.attached = true;
        }
        Ok(())
    }

    fn push_mc(&mut self) -> Result<()> {
        let pid = self.shared.current_pid()?;
        let m = self.mc;
        for w in [
            ids::EGLINTMAKECURRENT,
            pid as u32,
            (pid >> 32) as u32,
            m.gltype,
            m.gl_ctx,
            m.gl_draw,
            m.gl_read,
            0,
            0,
        ] {
            self.buf.extend_from_slice(&w.to_le_bytes());
        }
        Ok(())
    }

    /// Send the buffer (unless it holds only its make-current record) and start the next one.
    pub(crate) fn flush(&mut self) -> Result<()> {
        self.ensure_attached()?;
        if self.buf.len() <= MC_RECORD_SIZE {
            return Ok(());
        }
        let sent = self.shared.transport.send(self.channel, &self.buf);
        let stats = &self.shared.stats;
        StatCounters::add(&stats.messages, 1);
        StatCounters::add(&stats.bytes, self.buf.len() as u64);
        // Start a fresh buffer even if the send failed, so a later call does not resend it.
        self.buf.clear();
        let mc = self.push_mc();
        sent?;
        mc
    }

    /// Make room for `bytes` more bytes, flushing first if they would not fit.
    fn reserve(&mut self, id: u32, bytes: usize) -> Result<()> {
        self.ensure_attached()?;
        if bytes > MERGE_BUFFER_SIZE - MC_RECORD_SIZE {
            return Err(Error::CommandTooLarge { id, bytes });
        }
        if self.buf.len() + bytes > MERGE_BUFFER_SIZE {
            self.flush()?;
        }
        Ok(())
    }

    fn push_words(&mut self, words: &[u32]) {
        for w in words {
            self.buf.extend_from_slice(&w.to_le_bytes());
        }
    }

    /// Plain call: `[id, args…]` appended to the merge buffer.
    pub(crate) fn call(&mut self, id: u32, args: &[u32]) -> Result<()> {
        self.reserve(id, 4 + 4 * args.len())?;
        self.push_words(&[id]);
        self.push_words(args);
        Ok(())
    }

    /// IN_CTRL call: `[id, args…]` + `inline` padded to a multiple of 4, no length word.
    pub(crate) fn call_in_ctrl(&mut self, id: u32, args: &[u32], inline: &[u8]) -> Result<()> {
        self.reserve(id, 4 + 4 * args.len() + pad4(inline.len()))?;
        self.push_words(&[id]);
        self.push_words(args);
        self.buf.extend_from_slice(inline);
        self.buf.resize(pad4(self.buf.len()), 0);
        Ok(())
    }

    /// RES call: plain call, flush, and the 4-byte result.
    pub(crate) fn call_res(&mut self, id: u32, args: &[u32]) -> Result<u32> {
        self.call(id, args)?;
        self.recv_res(id)
    }

    fn recv_res(&mut self, id: u32) -> Result<u32> {
        self.flush()?;
        let reply = self.recv()?;
        ids::words::<1>(&reply).map(|[w]| w).ok_or(Error::Reply {
            command: id,
            expected: "a 4-byte result",
            got: reply.len(),
        })
    }

    fn recv(&mut self) -> Result<Vec<u8>> {
        let reply = self.shared.transport.recv(self.channel)?;
        StatCounters::add(&self.shared.stats.replies, 1);
        Ok(reply)
    }

    /// OUT_CTRL call: plain call, flush, then one message `[len, data]`; returns `data`.
    pub(crate) fn call_out_ctrl(&mut self, id: u32, args: &[u32]) -> Result<Vec<u8>> {
        self.call(id, args)?;
        self.flush()?;
        let reply = self.recv()?;
        let bad = |got| Error::Reply {
            command: id,
            expected: "[len, data(len)]",
            got,
        };
        let [len] = reply
            .get(..4)
            .and_then(ids::words::<1>)
            .ok_or(bad(reply.len()))?;
        if reply.len() != 4 + len as usize {
            return Err(bad(reply.len()));
        }
        Ok(reply[4..].to_vec())
    }

    /// OUT_BULK call: plain call, flush, then `[len]` and `len` bytes as a message
    /// (≤ 2032) or a bulk receive.
    pub(crate) fn call_out_bulk(&mut self, id: u32, args: &[u32]) -> Result<Vec<u8>> {
        self.call(id, args)?;
        self.flush()?;
        let head = self.recv()?;
        let [len] = ids::words::<1>(&head).ok_or(Error::Reply {
            command: id,
            expected: "a 4-byte length",
            got: head.len(),
        })?;
        let len = len as usize;
        if len == 0 {
            return Ok(Vec::new());
        }
        let data = if len <= CTRL_THRESHOLD {
            self.recv()?
        } else {
            let data = self.shared.transport.bulk_recv(self.channel, len)?;
            StatCounters::add(&self.shared.stats.bulk, 1);
            StatCounters::add(&self.shared.stats.bulk_bytes, len as u64);
            data
        };
        if data.len() != len {
            return Err(Error::Reply {
                command: id,
                expected: "the announced payload length",
                got: data.len(),
            });
        }
        Ok(data)
    }

    /// IN_BULK call: `[id, args…, len]` (`len` = `0xffffffff` for `None`); a non-empty
    /// payload follows right after a flush, as a message (≤ 2032 bytes) or a bulk transmit.
    pub(crate) fn call_in_bulk(
        &mut self,
        id: u32,
        args: &[u32],
        data: Option<&[u8]>,
    ) -> Result<()> {
        let len = match data {
            None => ids::LENGTH_SIGNAL_NULL,
            Some(d) => {
                u32::try_from(d.len()).map_err(|_| Error::CommandTooLarge { id, bytes: d.len() })?
            }
        };
        self.reserve(id, 8 + 4 * args.len())?;
        self.push_words(&[id]);
        self.push_words(args);
        self.push_words(&[len]);
        if let Some(d) = data.filter(|d| !d.is_empty()) {
            self.flush()?;
            self.send_payload(d)?;
        }
        Ok(())
    }

    /// A plain call followed, right after a flush, by payloads of its own (each a message
    /// of ≤ 2032 bytes or a bulk transmit): the framing of `glShaderSource`.
    pub(crate) fn call_then_payloads(
        &mut self,
        id: u32,
        args: &[u32],
        payloads: &[&[u8]],
    ) -> Result<()> {
        self.call(id, args)?;
        self.flush()?;
        for p in payloads.iter().filter(|p| !p.is_empty()) {
            self.send_payload(p)?;
        }
        Ok(())
    }

    /// IN_BULK_RES call: as [`call_in_bulk`](Rpc::call_in_bulk), then the 4-byte result.
    pub(crate) fn call_in_bulk_res(
        &mut self,
        id: u32,
        args: &[u32],
        data: Option<&[u8]>,
    ) -> Result<u32> {
        self.call_in_bulk(id, args, data)?;
        self.recv_res(id)
    }

    fn send_payload(&mut self, data: &[u8]) -> Result<()> {
        let stats = &self.shared.stats;
        if data.len() <= CTRL_THRESHOLD {
            self.shared.transport.send(self.channel, data)?;
            StatCounters::add(&stats.messages, 1);
            StatCounters::add(&stats.bytes, data.len() as u64);
        } else {
            self.shared.transport.bulk_send(self.channel, data)?;
            StatCounters::add(&stats.bulk, 1);
            StatCounters::add(&stats.bulk_bytes, data.len() as u64);
        }
        Ok(())
    }

    /// `eglMakeCurrent`'s effect on the buffer: rewrite the record in place if it is alone in
    /// the buffer, else append a new one (flushing first if it would not fit).
    pub(crate) fn make_current(&mut self, ids: McIds) -> Result<()> {
        self.ensure_attached()?;
        self.mc = ids;
        if self.buf.len() == MC_RECORD_SIZE {
            self.buf.clear();
            self.push_mc()
        } else if self.buf.len() + MC_RECORD_SIZE <= MERGE_BUFFER_SIZE {
            self.push_mc()
        } else {
            // The flush writes the new record at the start of the next buffer.
            self.flush()
        }
    }
}
