//! The receiver's message parser: a pure function over a copied slot image (spec §2.6, §2.7).
//!
//! The slot handler copies the bytes of a slot that the peer's `tx_pos` covers out of shared
//! memory (so the peer cannot change them while they are decoded) and hands them here. The parser
//! checks framing (alignment, header inside the slot, size inside the slot, stride inside the
//! published range) and decodes each message into a typed [`Msg`]. Framing errors are
//! [`ProtocolError`]s, after which the rest of the stream cannot be trusted; a bad payload of a
//! known type is [`Msg::Malformed`] and an unknown type is [`Msg::Unknown`], both of which the
//! link logs and skips. This module has no state and is fuzzed (`fuzz/fuzz_targets/slot_parser.rs`).

use zerocopy::FromBytes;

use crate::abi::defs::{HEADER_SIZE, SLOT_SIZE, msg_dstport, msg_srcport, msg_type, msgid, stride};
use crate::abi::msg::{MsgType, msg_type_str};
use crate::layout::{BulkPayload, MsgHeader, OpenPayload};
use crate::pos::PortId;

/// A slot's bytes as copied out of shared memory.
pub type SlotImage = [u8; SLOT_SIZE];

/// A violation of the slot protocol by the peer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A bulk DONE arrived for a queue with nothing outstanding.
    #[error("{ty} for port {port} but no bulk is outstanding in that direction")]
    BulkDoneUnexpected {
        /// `BULK_RX_DONE` or `BULK_TX_DONE`.
        ty: &'static str,
        /// Local port it was addressed to.
        port: u32,
    },
    /// A bulk request names a range outside the bulk arena.
    #[error(
        "bulk range {offset:#x}+{size:#x} is outside the bulk arena {arena_offset:#x}+{arena_size:#x}"
    )]
    BulkOutsideArena {
        /// Offset the peer sent.
        offset: u32,
        /// Size the peer sent.
        size: u32,
        /// Arena start.
        arena_offset: usize,
        /// Arena size.
        arena_size: usize,
    },
    /// The peer queued more than `NUM_SERVICE_BULKS` bulks in one direction on one service.
    #[error("more than {limit} outstanding bulks from the peer on port {port}")]
    BulkQueueOverflow {
        /// Local port.
        port: u32,
        /// The limit (4).
        limit: usize,
    },
    /// A message's stride runs past the position the peer published.
    #[error("message at slot offset {offset} (stride {stride}) runs past the published end {end}")]
    BeyondTxPos {
        /// Slot offset of the header.
        offset: usize,
        /// Its stride.
        stride: usize,
        /// Slot offset of the published `tx_pos`.
        end: usize,
    },
    /// The parse range is not 8-aligned or lies outside the slot.
    #[error("parse range {start}..{end} is misaligned or outside the slot")]
    BadRange {
        /// Start offset.
        start: usize,
        /// End offset.
        end: usize,
    },
    /// The peer recycled a slot index that is not one of ours, or that we never sent.
    #[error("peer recycled slot {slot}, which is not an in-flight slot of ours")]
    BadRecycledSlot {
        /// The slot index it wrote.
        slot: u32,
    },
    /// A `slot_queue` entry of the peer names a slot outside its data slots.
    #[error("peer slot_queue[{entry}] = {slot} is outside its data slots {first}..={last}")]
    BadSlotQueueEntry {
        /// Ring entry.
        entry: usize,
        /// Value found.
        slot: u32,
        /// The peer's first data slot.
        first: u32,
        /// The peer's last data slot.
        last: u32,
    },
    /// The peer's `tx_pos` is not 8-aligned.
    #[error("peer tx_pos {tx_pos:#x} is not 8-byte aligned")]
    MisalignedTxPos {
        /// Value found.
        tx_pos: u32,
    },
    /// The peer's `slot_queue_recycle` moved by more than the slots we have in flight.
    #[error("peer recycled {claimed} slots but only {in_flight} are in flight")]
    RecycleOverrun {
        /// Slots the counter moved by.
        claimed: u32,
        /// Slots that could be recycled.
        in_flight: usize,
    },
    /// A message's size runs past the end of its slot.
    #[error(
        "message at slot offset {offset} has size {size}, but only {room} bytes fit in the slot"
    )]
    SizeBeyondSlot {
        /// Slot offset of the header.
        offset: usize,
        /// Size found.
        size: u32,
        /// Payload bytes that would fit.
        room: usize,
    },
    /// The peer started writing into a slot we have not recycled yet.
    #[error("peer reused slot {slot} before it was recycled")]
    SlotInUse {
        /// The slot.
        slot: u32,
    },
    /// The peer's `tx_pos` went backwards or jumped further than its slots can hold.
    #[error("peer tx_pos jumped from {from:#x} to {to:#x} (more than its {slots} data slots hold)")]
    TxPosJump {
        /// Our receive position.
        from: u32,
        /// The peer's `tx_pos`.
        to: u32,
        /// The peer's data slot count.
        slots: u32,
    },
}

/// A message's decoded payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Msg<'a> {
    /// Filler to the end of a slot.
    Padding,
    /// The peer is connecting.
    Connect,
    /// A request to open a service; `None` if the payload is shorter than 12 bytes, which the
    /// listener treats as "no match" (spec §2.9).
    Open(Option<OpenPayload>),
    /// The server accepted; `version` is `None` when the payload is shorter than 2 bytes.
    OpenAck {
        /// The server's service version.
        version: Option<u16>,
    },
    /// Close (or, with srcport 0 to an opener, a rejected OPEN).
    Close,
    /// Service data.
    Data(&'a [u8]),
    /// Slave wants to receive (`data` = bulk-arena offset).
    BulkRx(BulkPayload),
    /// Slave wants to transmit (`data` = bulk-arena offset).
    BulkTx(BulkPayload),
    /// Master completed a slave BULK_RX.
    BulkRxDone {
        /// Bytes moved, or -1 = aborted.
        actual: i32,
    },
    /// Master completed a slave BULK_TX.
    BulkTxDone {
        /// Bytes moved, or -1 = aborted.
        actual: i32,
    },
    /// Suspend handshake.
    Pause,
    /// Suspend handshake.
    Resume,
    /// Remote use (VC power management).
    RemoteUse,
    /// Remote release.
    RemoteRelease,
    /// Acknowledgement of a remote use.
    RemoteUseActive,
    /// A known type whose payload has the wrong size.
    Malformed {
        /// The type.
        ty: MsgType,
        /// Its size.
        size: u32,
    },
    /// An unknown type (including a claimed DATA, 0x45); logged and skipped.
    Unknown {
        /// The type byte.
        ty: u32,
    },
}

/// One framed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Offset of the header in the slot.
    pub offset: usize,
    /// Bytes it occupies, header included (a multiple of 8).
    pub stride: usize,
    /// Raw msgid.
    pub msgid: u32,
    /// Sender's port.
    pub src: PortId,
    /// Receiver's port.
    pub dst: PortId,
    /// Decoded payload.
    pub msg: Msg<'a>,
}

impl Parsed<'_> {
    /// The type name, for logs.
    pub fn type_name(&self) -> &'static str {
        msg_type_str(msg_type(self.msgid))
    }
}

/// Builds a msgid: `(type << 24) | (src << 12) | dst`.
pub fn make_msgid(ty: MsgType, src: PortId, dst: PortId) -> u32 {
    msgid(ty.raw(), src.0, dst.0)
}

/// Frames and decodes the message at `offset` of `image`, where `end` is the slot offset up to
/// which the peer's `tx_pos` has published (4096 for a finished slot).
///
/// # Errors
/// A [`ProtocolError`] if the range is bad or the message does not fit in the slot or in the
/// published range.
pub fn parse_message(
    image: &SlotImage,
    offset: usize,
    end: usize,
) -> Result<Parsed<'_>, ProtocolError> {
    if offset % 8 != 0 || end % 8 != 0 || end > SLOT_SIZE || offset + HEADER_SIZE > end {
        return Err(ProtocolError::BadRange { start: offset, end });
    }
    let (header, rest) = MsgHeader::read_from_prefix(&image[offset..])
        .map_err(|_| ProtocolError::BadRange { start: offset, end })?;
    let room = SLOT_SIZE - offset - HEADER_SIZE;
    if header.size as usize > room {
        return Err(ProtocolError::SizeBeyondSlot {
            offset,
            size: header.size,
            room,
        });
    }
    let stride = stride(header.size) as usize;
    if offset + stride > end {
        return Err(ProtocolError::BeyondTxPos {
            offset,
            stride,
            end,
        });
    }
    let payload = &rest[..header.size as usize];
    let raw_ty = msg_type(header.msgid);
    let msg = match MsgType::from_raw(raw_ty) {
        None => Msg::Unknown { ty: raw_ty },
        Some(ty) => decode(ty, payload),
    };
    Ok(Parsed {
        offset,
        stride,
        msgid: header.msgid,
        src: PortId(msg_srcport(header.msgid)),
        dst: PortId(msg_dstport(header.msgid)),
        msg,
    })
}

fn decode(ty: MsgType, p: &[u8]) -> Msg<'_> {
    let malformed = Msg::Malformed {
        ty,
        size: p.len() as u32,
    };
    match ty {
        MsgType::Padding => Msg::Padding,
        MsgType::Connect => Msg::Connect,
        MsgType::Open => Msg::Open(OpenPayload::read_from_prefix(p).ok().map(|(o, _)| o)),
        MsgType::OpenAck => Msg::OpenAck {
            version: u16::read_from_prefix(p).ok().map(|(v, _)| v),
        },
        MsgType::Close => Msg::Close,
        MsgType::Data => Msg::Data(p),
        MsgType::BulkRx | MsgType::BulkTx => match BulkPayload::read_from_bytes(p) {
            Ok(b) if ty == MsgType::BulkRx => Msg::BulkRx(b),
            Ok(b) => Msg::BulkTx(b),
            Err(_) => malformed,
        },
        MsgType::BulkRxDone | MsgType::BulkTxDone => match i32::read_from_bytes(p) {
            Ok(actual) if ty == MsgType::BulkRxDone => Msg::BulkRxDone { actual },
            Ok(actual) => Msg::BulkTxDone { actual },
            Err(_) => malformed,
        },
        MsgType::Pause => Msg::Pause,
        MsgType::Resume => Msg::Resume,
        MsgType::RemoteUse => Msg::RemoteUse,
        MsgType::RemoteRelease => Msg::RemoteRelease,
        MsgType::RemoteUseActive => Msg::RemoteUseActive,
    }
}

/// Iterates over the messages of `image[start..end]`; stops after the first error.
#[derive(Debug)]
pub struct SlotParser<'a> {
    image: &'a SlotImage,
    pos: usize,
    end: usize,
    failed: bool,
}

impl<'a> Iterator for SlotParser<'a> {
    type Item = Result<Parsed<'a>, ProtocolError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.end {
            return None;
        }
        let r = parse_message(self.image, self.pos, self.end);
        match &r {
            // Every stride is >= 8, so the loop ends within 512 steps.
            Ok(p) => self.pos += p.stride,
            Err(_) => self.failed = true,
        }
        Some(r)
    }
}

/// All the messages between slot offsets `start` and `end` (both multiples of 8, `end <= 4096`).
pub fn parse_slot(image: &SlotImage, start: usize, end: usize) -> SlotParser<'_> {
    SlotParser {
        image,
        pos: start,
        end: end.min(SLOT_SIZE),
        failed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    fn put(img: &mut SlotImage, off: usize, msgid: u32, payload: &[u8]) -> usize {
        img[off..off + 4].copy_from_slice(&msgid.to_le_bytes());
        img[off + 4..off + 8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        img[off + 8..off + 8 + payload.len()].copy_from_slice(payload);
        off + stride(payload.len() as u32) as usize
    }

    #[test]
    fn msgid_layout() {
        let id = make_msgid(MsgType::Data, PortId(0xABC), PortId(0x123));
        assert_eq!(id, 0x05AB_C123);
        assert_eq!(make_msgid(MsgType::Padding, PortId(0), PortId(0)), 0);
        assert_eq!(make_msgid(MsgType::Open, PortId(5), PortId(0)), 0x0200_5000);
    }

    #[test]
    fn decodes_every_type() {
        let mut img = [0u8; SLOT_SIZE];
        let open = OpenPayload {
            fourcc: 0x4B48_524E,
            client_id: 42,
            version: 3,
            version_min: 2,
        };
        let mut o = 0;
        o = put(
            &mut img,
            o,
            make_msgid(MsgType::Connect, PortId(0), PortId(0)),
            &[],
        );
        o = put(
            &mut img,
            o,
            make_msgid(MsgType::Open, PortId(7), PortId(0)),
            open.as_bytes(),
        );
        o = put(
            &mut img,
            o,
            make_msgid(MsgType::Open, PortId(7), PortId(0)),
            &[1, 2, 3],
        );
        o = put(
            &mut img,
            o,
            make_msgid(MsgType::OpenAck, PortId(1), PortId(7)),
            &5u16.to_le_bytes(),
        );
        o = put(
            &mut img,
            o,
            make_msgid(MsgType::OpenAck, PortId(1), PortId(7)),
            &[9],
        );
        o = put(
            &mut img,
            o,
            make_msgid(MsgType::Data, PortId(1), PortId(7)),
            b"hello",
        );
        o = put(
            &mut img,
            o,
            make_msgid(MsgType::BulkTx, PortId(1), PortId(7)),
            BulkPayload { data: 64, size: 9 }.as_bytes(),
        );
        o = put(
            &mut img,
            o,
            make_msgid(MsgType::BulkRxDone, PortId(1), PortId(7)),
            &(-1i32).to_le_bytes(),
        );
        o = put(
            &mut img,
            o,
            make_msgid(MsgType::BulkTxDone, PortId(1), PortId(7)),
            &[0; 3],
        );
        o = put(&mut img, o, 0x45 << 24, b"claimed");
        o = put(&mut img, o, 0x7F << 24, &[]);
        let end = o;
        let pad = put(&mut img, o, 0, &vec![0; SLOT_SIZE - o - 8]);
        assert_eq!(pad, SLOT_SIZE);
        let got: Vec<_> = parse_slot(&img, 0, end).map(|r| r.unwrap().msg).collect();
        assert_eq!(
            got,
            vec![
                Msg::Connect,
                Msg::Open(Some(open)),
                Msg::Open(None),
                Msg::OpenAck { version: Some(5) },
                Msg::OpenAck { version: None },
                Msg::Data(b"hello"),
                Msg::BulkTx(BulkPayload { data: 64, size: 9 }),
                Msg::BulkRxDone { actual: -1 },
                Msg::Malformed {
                    ty: MsgType::BulkTxDone,
                    size: 3
                },
                Msg::Unknown { ty: 0x45 },
                Msg::Unknown { ty: 0x7F },
            ]
        );
        let all: Vec<_> = parse_slot(&img, 0, SLOT_SIZE).map(|r| r.unwrap()).collect();
        let last = all.last().unwrap();
        assert_eq!(
            (last.msg, last.offset + last.stride),
            (Msg::Padding, SLOT_SIZE)
        );
        assert_eq!(all[5].src, PortId(1));
        assert_eq!(all[5].dst, PortId(7));
        assert_eq!(all[5].type_name(), "DATA");
    }

    #[test]
    fn stride_and_full_slot() {
        let mut img = [0u8; SLOT_SIZE];
        put(
            &mut img,
            0,
            make_msgid(MsgType::Data, PortId(1), PortId(2)),
            &[7; 4088],
        );
        let p = parse_message(&img, 0, SLOT_SIZE).unwrap();
        assert_eq!(p.stride, SLOT_SIZE);
        assert_eq!(p.msg, Msg::Data(&[7; 4088]));
        put(&mut img, 0, 0, &[0; 1]);
        assert_eq!(parse_message(&img, 0, 16).unwrap().stride, 16);
    }

    #[test]
    fn framing_errors() {
        let mut img = [0u8; SLOT_SIZE];
        // Size running past the slot.
        img[4088..4092].copy_from_slice(&(5u32 << 24).to_le_bytes());
        img[4092..4096].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(
            parse_message(&img, 4088, 4096),
            Err(ProtocolError::SizeBeyondSlot {
                offset: 4088,
                size: 1,
                room: 0
            })
        );
        img[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            parse_message(&img, 0, 4096),
            Err(ProtocolError::SizeBeyondSlot { .. })
        ));
        // Published range shorter than the message.
        img[4..8].copy_from_slice(&9u32.to_le_bytes());
        assert_eq!(
            parse_message(&img, 0, 16),
            Err(ProtocolError::BeyondTxPos {
                offset: 0,
                stride: 24,
                end: 16
            })
        );
        // Misaligned or out-of-slot ranges.
        assert!(matches!(
            parse_message(&img, 4, 4096),
            Err(ProtocolError::BadRange { .. })
        ));
        assert!(matches!(
            parse_message(&img, 4096, 4104),
            Err(ProtocolError::BadRange { .. })
        ));
        assert!(matches!(
            parse_message(&img, 0, 4),
            Err(ProtocolError::BadRange { .. })
        ));
        // The iterator stops after an error.
        let v: Vec<_> = parse_slot(&img, 0, 16).collect();
        assert_eq!(v.len(), 1);
    }
}
