//! Protocol constants and msgid arithmetic (spec §2.1, §2.3, §2.4, §2.6, §3.7, §4.2, §4.4).
//!
//! Each constant names the C header and macro it corresponds to. Values
//! are facts from the specification; the arithmetic helpers are `const fn`
//! so that they can build other constants.

/// vchiq_core.h: `VCHIQ_MAKE_FOURCC(a, b, c, d)`: the first character goes
/// into the most significant byte.
pub const fn make_fourcc(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}

/// vchiq_core.h: `VCHIQ_MAGIC` = `VCHIQ_MAKE_FOURCC('V','C','H','I')`, the first word of slot zero.
pub const VCHIQ_MAGIC: u32 = 0x5643_4849;
/// vchiq_core.h: `VCHIQ_VERSION`, the protocol version this implementation speaks.
pub const VCHIQ_VERSION: u16 = 8;
/// vchiq_core.h: `VCHIQ_VERSION_MIN`, the oldest peer version accepted.
pub const VCHIQ_VERSION_MIN: u16 = 3;
/// vchiq_core.h: `VCHIQ_VERSION_LIB_VERSION`, the driver version that introduced `IOC_LIB_VERSION`.
pub const VCHIQ_VERSION_LIB_VERSION: u16 = 7;
/// vchiq_core.h: `VCHIQ_VERSION_CLOSE_DELIVERED`, the library version from which
/// `IOC_CLOSE_DELIVERED` handling is enabled.
pub const VCHIQ_VERSION_CLOSE_DELIVERED: u16 = 7;
/// vchiq_core.h: `VCHIQ_VERSION_SYNCHRONOUS_MODE`, the common version needed for sync services.
pub const VCHIQ_VERSION_SYNCHRONOUS_MODE: u16 = 8;

/// vchiq_core.h: `VCHIQ_SLOT_SIZE`, bytes per slot.
pub const SLOT_SIZE: usize = 4096;
/// vchiq_core.h: `VCHIQ_MAX_MSG_SIZE` = `SLOT_SIZE - HEADER_SIZE`.
pub const MAX_MSG_SIZE: usize = SLOT_SIZE - HEADER_SIZE;
/// vchiq_core.h: `sizeof(VCHIQ_HEADER_T)`: `msgid` + `size`.
pub const HEADER_SIZE: usize = 8;
/// vchiq_core.h: `VCHIQ_MAX_SERVICES`, local ports per link.
pub const MAX_SERVICES: usize = 4096;
/// vchiq_core.h: `VCHIQ_PORT_MAX` = `MAX_SERVICES - 1`, the highest port number.
pub const PORT_MAX: u32 = 4095;
/// vchiq_core.h: `VCHIQ_PORT_FREE`, "no remote port"; never fits the 12-bit port field.
pub const PORT_FREE: u32 = 0x1000;
/// vchiq_core.h: `VCHIQ_MAX_SLOTS`, slots described by slot zero.
pub const MAX_SLOTS: usize = 128;
/// vchiq_core.h: `VCHIQ_MAX_SLOTS_PER_SIDE`, length of each `slot_queue` ring (mask 63).
pub const MAX_SLOTS_PER_SIDE: usize = 64;
/// vchiq_core.h: `VCHIQ_NUM_SERVICE_BULKS`, outstanding bulks per direction per service.
pub const NUM_SERVICE_BULKS: usize = 4;
/// vchiq_core.h: `VCHIQ_NUM_CURRENT_BULKS`.
pub const NUM_CURRENT_BULKS: usize = 32;

/// vchiq_core.h: `VCHIQ_MSGID_PADDING`, the msgid of a padding header.
pub const MSGID_PADDING: u32 = 0;
/// vchiq_core.h: `VCHIQ_MSGID_CLAIMED`, set locally by a receiver on a DATA
/// header it handed to a service (a claimed DATA header reads type `0x45`).
pub const MSGID_CLAIMED: u32 = 0x4000_0000;
/// vchiq_if.h: `VCHIQ_FOURCC_INVALID`.
pub const FOURCC_INVALID: u32 = 0;
/// vchiq_core.h: `VCHIQ_BULK_ACTUAL_ABORTED`, the `actual` of an aborted bulk.
pub const BULK_ACTUAL_ABORTED: i32 = -1;
/// vchiq_if.h: `VCHIQ_SERVICE_HANDLE_INVALID`; valid kernel handles are never 0.
pub const SERVICE_HANDLE_INVALID: u32 = 0;
/// vchiq_ioctl.h: `VCHIQ_INVALID_HANDLE` (`~0`); defined but unused by the driver.
pub const INVALID_HANDLE: u32 = !0;

/// vchiq_core.h: `sizeof(VCHIQ_SLOT_ZERO_T)` (0x508): 32-byte header, two
/// shared states, then 128 × 4-byte slot info.
pub const SLOT_ZERO_SIZE: usize = 32 + 2 * SHARED_STATE_SIZE + MAX_SLOTS * 4;
/// vchiq_core.h: `sizeof(VCHIQ_SHARED_STATE_T)`.
pub const SHARED_STATE_SIZE: usize = 372;
/// vchiq_core.h: `sizeof(REMOTE_EVENT_T)`: `armed`, `fired`, one local-only word.
pub const REMOTE_EVENT_SIZE: usize = 12;
/// vchiq_core.h: `DEBUG_MAX` with `VCHIQ_ENABLE_DEBUG`, entries of `debug[]` (also its `[0]`).
pub const DEBUG_ENTRIES: usize = 11;

/// vchiq_arm.c: `MAX_COMPLETIONS`, the per-instance completion ring.
pub const MAX_COMPLETIONS: usize = 128;
/// vchiq_arm.c: `MSG_QUEUE_SIZE`, the per-service message queue of VCHI services.
pub const MSG_QUEUE_SIZE: usize = 128;
/// vchiq_arm.c: `MAX_ELEMENTS`, elements per `QUEUE_MESSAGE`.
pub const MAX_ELEMENTS: usize = 8;
/// vchiq_lib.c: `MSGBUF_SIZE` = `MAX_MSG_SIZE + HEADER_SIZE`, the library's message buffers.
pub const MSGBUF_SIZE: usize = MAX_MSG_SIZE + HEADER_SIZE;
/// vchiq_lib.c: `VCHIQ_MAX_INSTANCE_SERVICES`, services per library instance.
pub const VCHIQ_MAX_INSTANCE_SERVICES: usize = 32;

/// vchiq_ioctl.h: `VCHIQ_IOC_MAGIC`, the ioctl type byte.
pub const IOC_MAGIC: u8 = 0xC4;
/// vchiq_ioctl.h: `VCHIQ_IOC_MAX`, the highest ioctl nr.
pub const IOC_MAX: u32 = 17;

/// Mask of the 12-bit port fields of a msgid.
const PORT_MASK: u32 = 0xFFF;

/// vchiq_core.h: `VCHIQ_MAKE_MSG(type, srcport, dstport)` =
/// `(type << 24) | (srcport << 12) | dstport`.
///
/// Unlike the C macro, the ports are masked to 12 bits, so that an
/// out-of-range port (e.g. [`PORT_FREE`]) cannot corrupt the type field.
pub const fn msgid(ty: u32, src: u32, dst: u32) -> u32 {
    (ty << 24) | ((src & PORT_MASK) << 12) | (dst & PORT_MASK)
}

/// vchiq_core.h: `VCHIQ_MSG_TYPE(msgid)` = `(uint32)msgid >> 24`.
///
/// Includes the CLAIMED bit: a claimed DATA header reads `0x45`.
pub const fn msg_type(msgid: u32) -> u32 {
    msgid >> 24
}

/// vchiq_core.h: `VCHIQ_MSG_SRCPORT(msgid)` = `(msgid >> 12) & 0xfff`.
pub const fn msg_srcport(msgid: u32) -> u32 {
    (msgid >> 12) & PORT_MASK
}

/// vchiq_core.h: `VCHIQ_MSG_DSTPORT(msgid)` = `msgid & 0xfff`.
pub const fn msg_dstport(msgid: u32) -> u32 {
    msgid & PORT_MASK
}

/// vchiq_core.c: `calc_stride(size)` = `(size + HEADER_SIZE)` rounded up to a multiple of 8.
///
/// Saturates instead of wrapping: a hostile `size` near `u32::MAX` yields a
/// stride far larger than [`SLOT_SIZE`], which callers reject, rather than
/// a small wrapped value.
pub const fn stride(size: u32) -> u32 {
    size.saturating_add(HEADER_SIZE as u32 + 7) & !7
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_spec() {
        assert_eq!(VCHIQ_MAGIC, make_fourcc(b'V', b'C', b'H', b'I'));
        assert_eq!(VCHIQ_MAGIC, 0x5643_4849);
        assert_eq!(
            (
                VCHIQ_VERSION,
                VCHIQ_VERSION_MIN,
                VCHIQ_VERSION_LIB_VERSION,
                VCHIQ_VERSION_CLOSE_DELIVERED,
                VCHIQ_VERSION_SYNCHRONOUS_MODE
            ),
            (8, 3, 7, 7, 8)
        );
        assert_eq!((SLOT_SIZE, MAX_MSG_SIZE, HEADER_SIZE), (4096, 4088, 8));
        assert_eq!((MAX_SERVICES, PORT_MAX, PORT_FREE), (4096, 4095, 0x1000));
        assert_eq!(PORT_MAX as usize, MAX_SERVICES - 1);
        assert_eq!((MAX_SLOTS, MAX_SLOTS_PER_SIDE), (128, 64));
        assert_eq!((NUM_SERVICE_BULKS, NUM_CURRENT_BULKS), (4, 32));
        assert_eq!((MSGID_PADDING, MSGID_CLAIMED), (0, 0x4000_0000));
        assert_eq!((FOURCC_INVALID, SERVICE_HANDLE_INVALID), (0, 0));
        assert_eq!(BULK_ACTUAL_ABORTED, -1);
        assert_eq!(INVALID_HANDLE, 0xFFFF_FFFF);
        assert_eq!(SLOT_ZERO_SIZE, 1288);
        assert_eq!(SLOT_ZERO_SIZE, 0x508);
        assert_eq!(
            (SHARED_STATE_SIZE, REMOTE_EVENT_SIZE, DEBUG_ENTRIES),
            (372, 12, 11)
        );
        assert_eq!(
            (MAX_COMPLETIONS, MSG_QUEUE_SIZE, MAX_ELEMENTS),
            (128, 128, 8)
        );
        assert_eq!((MSGBUF_SIZE, VCHIQ_MAX_INSTANCE_SERVICES), (4096, 32));
        assert_eq!((IOC_MAGIC, IOC_MAX), (0xC4, 17));
    }

    #[test]
    fn shared_state_size_adds_up() {
        // initialised, slot_first, slot_last, slot_sync, trigger, tx_pos,
        // recycle, slot_queue_recycle, sync_trigger, sync_release,
        // slot_queue[64], debug[11] (spec §2.4).
        let sum = 4 * 4
            + REMOTE_EVENT_SIZE
            + 4
            + REMOTE_EVENT_SIZE
            + 4
            + 2 * REMOTE_EVENT_SIZE
            + 4 * MAX_SLOTS_PER_SIDE
            + 4 * DEBUG_ENTRIES;
        assert_eq!(sum, SHARED_STATE_SIZE);
    }

    #[test]
    fn make_fourcc_puts_first_char_high() {
        assert_eq!(make_fourcc(b'K', b'H', b'R', b'N'), 0x4B48_524E);
        assert_eq!(make_fourcc(b'f', b'u', b'n', b'c'), 0x6675_6E63);
        assert_eq!(make_fourcc(b'f', b'u', b'n', b'2'), 0x6675_6E32);
        assert_eq!(make_fourcc(b'e', b'c', b'h', b'o'), 0x6563_686F);
        assert_eq!(make_fourcc(0, 0, 0, 0), 0);
    }

    #[test]
    fn msgid_encoding() {
        assert_eq!(msgid(0, 0, 0), MSGID_PADDING);
        assert_eq!(msgid(1, 0, 0), 0x0100_0000);
        assert_eq!(msgid(2, 5, 0), 0x0200_5000);
        assert_eq!(msgid(5, 0x123, 0x456), 0x0512_3456);
        assert_eq!(msgid(14, PORT_MAX, PORT_MAX), 0x0EFF_FFFF);
        // Ports are masked to 12 bits.
        assert_eq!(msgid(5, PORT_FREE, PORT_FREE), 0x0500_0000);

        let id = msgid(5, 0xABC, 0x123);
        assert_eq!(
            (msg_type(id), msg_srcport(id), msg_dstport(id)),
            (5, 0xABC, 0x123)
        );
        // A claimed DATA header reads type 0x45 and keeps its ports.
        let claimed = id | MSGID_CLAIMED;
        assert_eq!(msg_type(claimed), 0x45);
        assert_eq!((msg_srcport(claimed), msg_dstport(claimed)), (0xABC, 0x123));
        assert_eq!(msg_type(u32::MAX), 0xFF);
    }

    #[test]
    fn stride_rounds_header_plus_size_to_8() {
        let cases = [
            (0, 8),
            (1, 16),
            (7, 16),
            (8, 16),
            (9, 24),
            (12, 24),
            (2, 16),
            (4080, 4088),
            (4088, 4096),
        ];
        for (size, want) in cases {
            assert_eq!(stride(size), want, "stride({size})");
        }
        assert_eq!(stride(MAX_MSG_SIZE as u32) as usize, SLOT_SIZE);
        // Hostile sizes saturate rather than wrap.
        assert!(stride(u32::MAX) as usize > SLOT_SIZE);
        assert!(stride(u32::MAX - 7) as usize > SLOT_SIZE);
        assert_eq!(stride(u32::MAX) % 8, 0);
    }
}
