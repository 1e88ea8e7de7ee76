//! Structs whose layout is the same for LP64 and ILP32 callers (spec §3.3).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::defs::{
    self, MAX_MSG_SIZE, MAX_SERVICES, NUM_SERVICE_BULKS, VCHIQ_VERSION, VCHIQ_VERSION_MIN,
};

/// vchiq_if.h: `VCHIQ_CONFIG_T`, what `GET_CONFIG` copies out (20 bytes).
///
/// The driver copies `config_size` bytes (≤ 20) of [`DRIVER_CONFIG`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Config {
    /// Largest DATA payload (`VCHIQ_MAX_MSG_SIZE`).
    pub max_msg_size: i32,
    /// Size above which bulk transfers are preferred (same as `max_msg_size`).
    pub bulk_threshold: i32,
    /// Outstanding bulks per direction per service (`VCHIQ_NUM_SERVICE_BULKS`).
    pub max_outstanding_bulks: i32,
    /// Services per link (`VCHIQ_MAX_SERVICES`).
    pub max_services: i32,
    /// Driver version (`VCHIQ_VERSION`).
    pub version: i16,
    /// Oldest library version accepted (`VCHIQ_VERSION_MIN`).
    pub version_min: i16,
}

/// vchiq_arm.c: the config the driver reports: {4088, 4088, 4, 4096, 8, 3}.
pub const DRIVER_CONFIG: Config = Config {
    max_msg_size: MAX_MSG_SIZE as i32,
    bulk_threshold: MAX_MSG_SIZE as i32,
    max_outstanding_bulks: NUM_SERVICE_BULKS as i32,
    max_services: MAX_SERVICES as i32,
    version: VCHIQ_VERSION as i16,
    version_min: VCHIQ_VERSION_MIN as i16,
};

impl Config {
    /// The config the driver reports ([`DRIVER_CONFIG`]).
    pub const DRIVER: Config = DRIVER_CONFIG;

    /// The 20 bytes as `GET_CONFIG` copies them (native byte order).
    pub fn as_bytes(&self) -> &[u8] {
        IntoBytes::as_bytes(self)
    }
}

/// vchiq_if.h: `VCHIQ_HEADER_T`, the 8-byte header before every message.
///
/// `msgid` is `int` in C; it is unsigned here because it is a bit field
/// (see [`defs::msgid`]). The `size` data bytes follow the header.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Header {
    /// `(type << 24) | (srcport << 12) | dstport`, possibly with CLAIMED set.
    pub msgid: u32,
    /// Payload length in bytes.
    pub size: u32,
}

impl Header {
    /// A header for a message of type `ty` from `src` to `dst` with `size` payload bytes.
    pub const fn new(ty: u32, src: u32, dst: u32, size: u32) -> Self {
        Self {
            msgid: defs::msgid(ty, src, dst),
            size,
        }
    }

    /// The type byte ([`defs::msg_type`]); includes the CLAIMED bit.
    pub const fn msg_type(&self) -> u32 {
        defs::msg_type(self.msgid)
    }

    /// The source port.
    pub const fn srcport(&self) -> u32 {
        defs::msg_srcport(self.msgid)
    }

    /// The destination port.
    pub const fn dstport(&self) -> u32 {
        defs::msg_dstport(self.msgid)
    }

    /// Whether the receiver has claimed this message ([`defs::MSGID_CLAIMED`]).
    pub const fn is_claimed(&self) -> bool {
        self.msgid & defs::MSGID_CLAIMED != 0
    }

    /// Bytes this message occupies in a slot, header included ([`defs::stride`]).
    pub const fn stride(&self) -> u32 {
        defs::stride(self.size)
    }

    /// The 8 bytes of the header (native byte order).
    pub fn as_bytes(&self) -> &[u8] {
        IntoBytes::as_bytes(self)
    }
}

/// vchiq_ioctl.h: `VCHIQ_SET_SERVICE_OPTION_T` (12 bytes in both layouts).
///
/// Re-exported as `lp64::SetServiceOption` and `ilp32::SetServiceOption`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SetServiceOption {
    /// Kernel service handle.
    pub handle: u32,
    /// A [`crate::enums::ServiceOption`] (C enum with no negative values: `unsigned int`).
    pub option: u32,
    /// The option's value.
    pub value: i32,
}

const _: () = assert!(size_of::<Config>() == 20);
const _: () = assert!(size_of::<Header>() == defs::HEADER_SIZE);
const _: () = assert!(size_of::<SetServiceOption>() == 12);

#[cfg(test)]
mod tests {
    use core::mem::offset_of;

    use super::*;
    use crate::msg::MsgType;

    #[test]
    fn config_layout_and_value() {
        assert_eq!(offset_of!(Config, max_msg_size), 0);
        assert_eq!(offset_of!(Config, bulk_threshold), 4);
        assert_eq!(offset_of!(Config, max_outstanding_bulks), 8);
        assert_eq!(offset_of!(Config, max_services), 12);
        assert_eq!(offset_of!(Config, version), 16);
        assert_eq!(offset_of!(Config, version_min), 18);
        let c = DRIVER_CONFIG;
        assert_eq!(
            (
                c.max_msg_size,
                c.bulk_threshold,
                c.max_outstanding_bulks,
                c.max_services,
                c.version,
                c.version_min
            ),
            (4088, 4088, 4, 4096, 8, 3)
        );
        assert_eq!(Config::DRIVER, c);
        let mut want = Vec::new();
        for v in [4088i32, 4088, 4, 4096] {
            want.extend_from_slice(&v.to_ne_bytes());
        }
        want.extend_from_slice(&8i16.to_ne_bytes());
        want.extend_from_slice(&3i16.to_ne_bytes());
        assert_eq!(c.as_bytes(), &want[..]);
        assert_eq!(Config::read_from_bytes(&want), Ok(c));
    }

    #[test]
    fn header_layout_and_accessors() {
        assert_eq!(offset_of!(Header, msgid), 0);
        assert_eq!(offset_of!(Header, size), 4);
        let h = Header::new(MsgType::Data.raw(), 3, 7, 12);
        assert_eq!(h.msgid, 0x0500_3007);
        assert_eq!(
            (h.msg_type(), h.srcport(), h.dstport(), h.size),
            (5, 3, 7, 12)
        );
        assert!(!h.is_claimed());
        assert_eq!(h.stride(), 24);
        let c = Header {
            msgid: h.msgid | defs::MSGID_CLAIMED,
            ..h
        };
        assert!(c.is_claimed());
        assert_eq!(c.msg_type(), 0x45);
        let mut want = 0x0500_3007u32.to_ne_bytes().to_vec();
        want.extend_from_slice(&12u32.to_ne_bytes());
        assert_eq!(h.as_bytes(), &want[..]);
    }

    #[test]
    fn set_service_option_layout() {
        assert_eq!(offset_of!(SetServiceOption, handle), 0);
        assert_eq!(offset_of!(SetServiceOption, option), 4);
        assert_eq!(offset_of!(SetServiceOption, value), 8);
    }
}
