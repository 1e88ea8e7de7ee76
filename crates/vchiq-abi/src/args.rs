//! Layout-independent views of the ioctl argument structs.
//!
//! Each `*Args` type holds the fields of one struct of spec §3.3 with
//! pointers (and `size_t`) widened to `u64`, so that one code path serves
//! both [`Layout`]s. Conversions:
//!
//! - `from_lp64` / `from_ilp32`: lossless, except that C `int` flags
//!   (`is_open`, `is_vchi`, `blocking`) become `bool` (non-zero is `true`).
//! - `to_lp64` / `to_ilp32`: padding is zeroed, `bool` becomes 0 or 1, and
//!   for ILP32 pointers keep their low 32 bits. Values that came from an
//!   ILP32 caller always fit.
//! - `decode(layout, bytes)` reads a prefix of `bytes` (native byte order;
//!   extra bytes are ignored) and fails with [`AbiError::TooShort`];
//!   `encode(layout)` returns exactly [`size`](AbiArgs::size) bytes.
//!
//! Enum fields (`mode`, `reason`, `option`) stay raw `u32`: the driver
//! decides how to reject unknown values (e.g. `BulkMode::try_from(args.mode)`),
//! and `decode` never fails for a well-sized buffer.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::error::{AbiError, Result};
use crate::fourcc::FourCc;
use crate::ioctl::Layout;
use crate::{ilp32, lp64};

/// Conversion between an `*Args` view and its two raw layouts.
pub trait AbiArgs: Sized {
    /// Name of the raw struct, for error messages.
    const NAME: &'static str;
    /// The LP64 raw struct.
    type Lp64: FromBytes + IntoBytes + Immutable + KnownLayout;
    /// The ILP32 raw struct.
    type Ilp32: FromBytes + IntoBytes + Immutable + KnownLayout;

    /// Converts from the LP64 struct.
    fn from_lp64(raw: &Self::Lp64) -> Self;
    /// Converts from the ILP32 struct, widening pointers.
    fn from_ilp32(raw: &Self::Ilp32) -> Self;
    /// Converts to the LP64 struct.
    fn to_lp64(&self) -> Self::Lp64;
    /// Converts to the ILP32 struct, keeping the low 32 bits of pointers.
    fn to_ilp32(&self) -> Self::Ilp32;

    /// Size of the raw struct in `layout`.
    fn size(layout: Layout) -> usize {
        match layout {
            Layout::Lp64 => size_of::<Self::Lp64>(),
            Layout::Ilp32 => size_of::<Self::Ilp32>(),
        }
    }

    /// Decodes the raw struct of `layout` from the start of `bytes`.
    ///
    /// # Errors
    /// [`AbiError::TooShort`] if `bytes` is shorter than [`Self::size`].
    fn decode(layout: Layout, bytes: &[u8]) -> Result<Self> {
        let too_short = || AbiError::TooShort {
            what: Self::NAME,
            layout,
            need: Self::size(layout),
            got: bytes.len(),
        };
        match layout {
            Layout::Lp64 => Self::Lp64::read_from_prefix(bytes)
                .map(|(raw, _)| Self::from_lp64(&raw))
                .map_err(|_| too_short()),
            Layout::Ilp32 => Self::Ilp32::read_from_prefix(bytes)
                .map(|(raw, _)| Self::from_ilp32(&raw))
                .map_err(|_| too_short()),
        }
    }

    /// Encodes the raw struct of `layout` ([`Self::size`] bytes).
    fn encode(&self, layout: Layout) -> Vec<u8> {
        match layout {
            Layout::Lp64 => self.to_lp64().as_bytes().to_vec(),
            Layout::Ilp32 => self.to_ilp32().as_bytes().to_vec(),
        }
    }

    /// Encodes the raw struct of `layout` into the start of `out`.
    ///
    /// # Errors
    /// [`AbiError::TooShort`] if `out` is shorter than [`Self::size`].
    fn encode_into(&self, layout: Layout, out: &mut [u8]) -> Result<()> {
        let need = Self::size(layout);
        let got = out.len();
        let dst = out.get_mut(..need).ok_or(AbiError::TooShort {
            what: Self::NAME,
            layout,
            need,
            got,
        })?;
        dst.copy_from_slice(&self.encode(layout));
        Ok(())
    }
}

/// Field conversions used by [`abi_args!`]: one module per field kind,
/// each with the same four functions.
mod conv {
    /// Same type in both layouts.
    pub mod val {
        pub fn from_lp64<T>(x: T) -> T {
            x
        }
        pub fn from_ilp32<T>(x: T) -> T {
            x
        }
        pub fn to_lp64<T>(x: T) -> T {
            x
        }
        pub fn to_ilp32<T>(x: T) -> T {
            x
        }
    }

    /// A pointer or `size_t`: `u64` on LP64, `u32` on ILP32.
    pub mod ptr {
        pub fn from_lp64(x: u64) -> u64 {
            x
        }
        pub fn from_ilp32(x: u32) -> u64 {
            u64::from(x)
        }
        pub fn to_lp64(x: u64) -> u64 {
            x
        }
        /// Keeps the low 32 bits: ILP32 callers only ever supplied 32-bit values.
        pub fn to_ilp32(x: u64) -> u32 {
            x as u32
        }
    }

    /// A C `int` used as a boolean.
    pub mod flag {
        pub fn from_lp64(x: i32) -> bool {
            x != 0
        }
        pub fn from_ilp32(x: i32) -> bool {
            x != 0
        }
        pub fn to_lp64(x: bool) -> i32 {
            i32::from(x)
        }
        pub fn to_ilp32(x: bool) -> i32 {
            i32::from(x)
        }
    }
}

/// Implements [`AbiArgs`] for `$name` from its inherent conversions, and
/// adds inherent `size`, `decode`, `encode` and `encode_into` so that
/// callers need not import the trait.
macro_rules! impl_abi_args {
    ($name:ident => $raw:ident) => {
        impl AbiArgs for $name {
            const NAME: &'static str = stringify!($raw);
            type Lp64 = lp64::$raw;
            type Ilp32 = ilp32::$raw;

            fn from_lp64(raw: &lp64::$raw) -> Self {
                $name::from_lp64(raw)
            }
            fn from_ilp32(raw: &ilp32::$raw) -> Self {
                $name::from_ilp32(raw)
            }
            fn to_lp64(&self) -> lp64::$raw {
                $name::to_lp64(self)
            }
            fn to_ilp32(&self) -> ilp32::$raw {
                $name::to_ilp32(self)
            }
        }

        impl $name {
            #[doc = concat!("Size of `", stringify!($raw), "` in `layout`.")]
            pub fn size(layout: Layout) -> usize {
                <Self as AbiArgs>::size(layout)
            }

            #[doc = concat!("Decodes a `", stringify!($raw), "` of `layout` from the start of `bytes`.")]
            ///
            /// # Errors
            /// [`AbiError::TooShort`] if `bytes` is too short.
            pub fn decode(layout: Layout, bytes: &[u8]) -> Result<Self> {
                <Self as AbiArgs>::decode(layout, bytes)
            }

            #[doc = concat!("Encodes a `", stringify!($raw), "` of `layout`.")]
            pub fn encode(&self, layout: Layout) -> Vec<u8> {
                <Self as AbiArgs>::encode(self, layout)
            }

            #[doc = concat!("Encodes a `", stringify!($raw), "` of `layout` into the start of `out`.")]
            ///
            /// # Errors
            /// [`AbiError::TooShort`] if `out` is too short.
            pub fn encode_into(&self, layout: Layout, out: &mut [u8]) -> Result<()> {
                <Self as AbiArgs>::encode_into(self, layout, out)
            }
        }
    };
}

/// Declares an `*Args` struct whose fields map one to one onto the raw
/// struct `$raw` of both layouts; each field names its [`conv`] kind.
macro_rules! abi_args {
    (
        $(#[$meta:meta])*
        pub struct $name:ident => $raw:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $kind:ident, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )+
        }

        impl $name {
            #[doc = concat!("Converts from an LP64 `", stringify!($raw), "`.")]
            pub fn from_lp64(raw: &lp64::$raw) -> Self {
                Self { $( $field: conv::$kind::from_lp64(raw.$field), )+ }
            }

            #[doc = concat!("Converts from an ILP32 `", stringify!($raw), "`, widening pointers.")]
            pub fn from_ilp32(raw: &ilp32::$raw) -> Self {
                Self { $( $field: conv::$kind::from_ilp32(raw.$field), )+ }
            }

            #[doc = concat!("Converts to an LP64 `", stringify!($raw), "` with zeroed padding.")]
            #[allow(clippy::needless_update, reason = "not every layout has padding")]
            pub fn to_lp64(&self) -> lp64::$raw {
                lp64::$raw { $( $field: conv::$kind::to_lp64(self.$field), )+ ..Default::default() }
            }

            #[doc = concat!("Converts to an ILP32 `", stringify!($raw), "`, keeping the low 32 bits of pointers.")]
            #[allow(clippy::needless_update, reason = "not every layout has padding")]
            pub fn to_ilp32(&self) -> ilp32::$raw {
                ilp32::$raw { $( $field: conv::$kind::to_ilp32(self.$field), )+ ..Default::default() }
            }
        }

        impl_abi_args!($name => $raw);
    };
}

/// `VCHIQ_CREATE_SERVICE_T` with its `VCHIQ_SERVICE_PARAMS_T` flattened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CreateServiceArgs {
    /// `params.fourcc`.
    pub fourcc: FourCc,
    /// `params.callback` (ignored by the driver).
    pub callback: u64,
    /// `params.userdata`, echoed back as `service_userdata`.
    pub userdata: u64,
    /// `params.version`.
    pub version: i16,
    /// `params.version_min`.
    pub version_min: i16,
    /// Open a client (`true`) or add a server.
    pub is_open: bool,
    /// A VCHI service.
    pub is_vchi: bool,
    /// OUT: the kernel handle.
    pub handle: u32,
}

impl CreateServiceArgs {
    /// Converts from an LP64 `CreateService`.
    pub fn from_lp64(raw: &lp64::CreateService) -> Self {
        let p = &raw.params;
        Self {
            fourcc: FourCc(p.fourcc as u32),
            callback: p.callback,
            userdata: p.userdata,
            version: p.version,
            version_min: p.version_min,
            is_open: conv::flag::from_lp64(raw.is_open),
            is_vchi: conv::flag::from_lp64(raw.is_vchi),
            handle: raw.handle,
        }
    }

    /// Converts from an ILP32 `CreateService`, widening pointers.
    pub fn from_ilp32(raw: &ilp32::CreateService) -> Self {
        let p = &raw.params;
        Self {
            fourcc: FourCc(p.fourcc as u32),
            callback: u64::from(p.callback),
            userdata: u64::from(p.userdata),
            version: p.version,
            version_min: p.version_min,
            is_open: conv::flag::from_ilp32(raw.is_open),
            is_vchi: conv::flag::from_ilp32(raw.is_vchi),
            handle: raw.handle,
        }
    }

    /// Converts to an LP64 `CreateService` with zeroed padding.
    pub fn to_lp64(&self) -> lp64::CreateService {
        lp64::CreateService {
            params: lp64::ServiceParams {
                fourcc: self.fourcc.0 as i32,
                callback: self.callback,
                userdata: self.userdata,
                version: self.version,
                version_min: self.version_min,
                ..Default::default()
            },
            is_open: conv::flag::to_lp64(self.is_open),
            is_vchi: conv::flag::to_lp64(self.is_vchi),
            handle: self.handle,
            ..Default::default()
        }
    }

    /// Converts to an ILP32 `CreateService`, keeping the low 32 bits of pointers.
    pub fn to_ilp32(&self) -> ilp32::CreateService {
        ilp32::CreateService {
            params: ilp32::ServiceParams {
                fourcc: self.fourcc.0 as i32,
                callback: conv::ptr::to_ilp32(self.callback),
                userdata: conv::ptr::to_ilp32(self.userdata),
                version: self.version,
                version_min: self.version_min,
            },
            is_open: conv::flag::to_ilp32(self.is_open),
            is_vchi: conv::flag::to_ilp32(self.is_vchi),
            handle: self.handle,
        }
    }
}

impl_abi_args!(CreateServiceArgs => CreateService);

abi_args! {
    /// `VCHIQ_ELEMENT_T`: one piece of a message.
    pub struct ElementArgs => Element {
        /// Pointer to the data.
        data: u64 = ptr,
        /// Length in bytes.
        size: u32 = val,
    }
}

abi_args! {
    /// `VCHIQ_QUEUE_MESSAGE_T`.
    pub struct QueueMessageArgs => QueueMessage {
        /// Kernel service handle.
        handle: u32 = val,
        /// Number of elements.
        count: u32 = val,
        /// Pointer to the element array (decode it with [`ElementArgs`]).
        elements: u64 = ptr,
    }
}

abi_args! {
    /// `VCHIQ_QUEUE_BULK_TRANSFER_T`.
    pub struct QueueBulkTransferArgs => QueueBulkTransfer {
        /// Kernel service handle.
        handle: u32 = val,
        /// Pointer to the buffer.
        data: u64 = ptr,
        /// Length in bytes.
        size: u32 = val,
        /// Echoed back as `bulk_userdata`.
        userdata: u64 = ptr,
        /// Raw [`crate::enums::BulkMode`] (IN/OUT).
        mode: u32 = val,
    }
}

abi_args! {
    /// `VCHIQ_COMPLETION_DATA_T`.
    pub struct CompletionDataArgs => CompletionData {
        /// Raw [`crate::enums::Reason`].
        reason: u32 = val,
        /// Pointer to the message in a user buffer, or 0.
        header: u64 = ptr,
        /// The service's `userdata`.
        service_userdata: u64 = ptr,
        /// The bulk's `userdata`, or 0.
        bulk_userdata: u64 = ptr,
    }
}

abi_args! {
    /// `VCHIQ_AWAIT_COMPLETION_T`.
    pub struct AwaitCompletionArgs => AwaitCompletion {
        /// Capacity of `buf`, in records.
        count: u32 = val,
        /// Pointer to the completion array.
        buf: u64 = ptr,
        /// Size of each message buffer.
        msgbufsize: u32 = val,
        /// Number of message buffers (IN/OUT).
        msgbufcount: u32 = val,
        /// Pointer to the array of message-buffer pointers.
        msgbufs: u64 = ptr,
    }
}

abi_args! {
    /// `VCHIQ_DEQUEUE_MESSAGE_T`.
    pub struct DequeueMessageArgs => DequeueMessage {
        /// Kernel service handle.
        handle: u32 = val,
        /// Wait for a message.
        blocking: bool = flag,
        /// Size of `buf`.
        bufsize: u32 = val,
        /// Pointer to the payload buffer, or 0 to discard.
        buf: u64 = ptr,
    }
}

abi_args! {
    /// `VCHIQ_GET_CONFIG_T`.
    pub struct GetConfigArgs => GetConfig {
        /// Bytes of config to copy (at most 20).
        config_size: u32 = val,
        /// Pointer to the caller's config.
        pconfig: u64 = ptr,
    }
}

abi_args! {
    /// `VCHIQ_SET_SERVICE_OPTION_T` (the same in both layouts).
    pub struct SetServiceOptionArgs => SetServiceOption {
        /// Kernel service handle.
        handle: u32 = val,
        /// Raw [`crate::enums::ServiceOption`].
        option: u32 = val,
        /// The option's value.
        value: i32 = val,
    }
}

abi_args! {
    /// `VCHIQ_DUMP_MEM_T`.
    pub struct DumpMemArgs => DumpMem {
        /// Pointer to the memory.
        virt_addr: u64 = ptr,
        /// Length in bytes (`size_t`).
        num_bytes: u64 = ptr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enums::{BulkMode, Reason, ServiceOption};
    use crate::ioctl::Ioctl;

    const BOTH: [Layout; 2] = [Layout::Lp64, Layout::Ilp32];

    /// Round trip through both layouts, size checks, and too-short rejection.
    fn round_trip<A: AbiArgs + PartialEq + core::fmt::Debug>(a: &A) {
        for layout in BOTH {
            let bytes = a.encode(layout);
            assert_eq!(bytes.len(), A::size(layout), "{} {layout}", A::NAME);
            assert_eq!(
                &A::decode(layout, &bytes).unwrap(),
                a,
                "{} {layout}",
                A::NAME
            );
            // Trailing bytes are ignored.
            let mut longer = bytes.clone();
            longer.extend_from_slice(&[0xAA; 8]);
            assert_eq!(&A::decode(layout, &longer).unwrap(), a);
            // Every strict prefix is rejected with a precise error.
            for len in 0..bytes.len() {
                assert_eq!(
                    A::decode(layout, &bytes[..len]).err(),
                    Some(AbiError::TooShort {
                        what: A::NAME,
                        layout,
                        need: bytes.len(),
                        got: len
                    })
                );
            }
            let mut out = vec![0x55; bytes.len() + 3];
            a.encode_into(layout, &mut out).unwrap();
            assert_eq!(&out[..bytes.len()], &bytes[..]);
            assert_eq!(&out[bytes.len()..], &[0x55; 3]);
            assert!(matches!(
                a.encode_into(layout, &mut out[..bytes.len() - 1]),
                Err(AbiError::TooShort { .. })
            ));
        }
        assert_eq!(&A::from_lp64(&a.to_lp64()), a);
        assert_eq!(&A::from_ilp32(&a.to_ilp32()), a);
    }

    fn ne32(v: u32) -> [u8; 4] {
        v.to_ne_bytes()
    }

    fn ne64(v: u64) -> [u8; 8] {
        v.to_ne_bytes()
    }

    #[test]
    fn create_service() {
        let a = CreateServiceArgs {
            fourcc: FourCc::KHRN,
            callback: 0x1111_2222,
            userdata: 0x3333_4444,
            version: 3,
            version_min: -2,
            is_open: true,
            is_vchi: false,
            handle: 0x1005,
        };
        round_trip(&a);
        assert_eq!(CreateServiceArgs::size(Layout::Lp64), 48);
        assert_eq!(CreateServiceArgs::size(Layout::Ilp32), 28);
        for (layout, ioctl) in BOTH.map(|l| (l, Ioctl::CreateService)) {
            assert_eq!(CreateServiceArgs::size(layout), ioctl.arg_size(layout));
        }

        // Byte image of the ILP32 struct, field by field.
        let mut want = Vec::new();
        want.extend_from_slice(&ne32(0x4B48_524E));
        want.extend_from_slice(&ne32(0x1111_2222));
        want.extend_from_slice(&ne32(0x3333_4444));
        want.extend_from_slice(&3i16.to_ne_bytes());
        want.extend_from_slice(&(-2i16).to_ne_bytes());
        want.extend_from_slice(&ne32(1));
        want.extend_from_slice(&ne32(0));
        want.extend_from_slice(&ne32(0x1005));
        assert_eq!(a.encode(Layout::Ilp32), want);

        // LP64 image: pointers at 8 and 16, zeroed padding.
        let b = a.encode(Layout::Lp64);
        assert_eq!(&b[0..4], &ne32(0x4B48_524E));
        assert_eq!(&b[4..8], &[0; 4]);
        assert_eq!(&b[8..16], &ne64(0x1111_2222));
        assert_eq!(&b[16..24], &ne64(0x3333_4444));
        assert_eq!(&b[32..36], &ne32(1));
        assert_eq!(&b[40..44], &ne32(0x1005));
        assert_eq!(&b[44..48], &[0; 4]);

        // 64-bit pointers survive LP64 and are truncated for ILP32.
        let wide = CreateServiceArgs {
            userdata: 0xDEAD_BEEF_0000_0010,
            ..a
        };
        assert_eq!(
            CreateServiceArgs::decode(Layout::Lp64, &wide.encode(Layout::Lp64)).unwrap(),
            wide
        );
        assert_eq!(wide.to_ilp32().params.userdata, 0x10);

        // Any non-zero int is true; it is re-encoded as 1.
        let mut raw = a.to_ilp32();
        raw.is_vchi = -7;
        let d = CreateServiceArgs::from_ilp32(&raw);
        assert!(d.is_vchi);
        assert_eq!(d.to_ilp32().is_vchi, 1);
        // Negative fourcc bit patterns round trip.
        raw.params.fourcc = i32::MIN;
        assert_eq!(
            CreateServiceArgs::from_ilp32(&raw).fourcc,
            FourCc(0x8000_0000)
        );
    }

    #[test]
    fn element_and_queue_message() {
        round_trip(&ElementArgs {
            data: 0xFFFF_0000,
            size: 4088,
        });
        round_trip(&QueueMessageArgs {
            handle: 7,
            count: 8,
            elements: 0x7FFF_1234,
        });
        let e = ElementArgs {
            data: 0x1234,
            size: 5,
        }
        .encode(Layout::Lp64);
        assert_eq!(e[..8], ne64(0x1234));
        assert_eq!(e[8..12], ne32(5));
        let q = QueueMessageArgs {
            handle: 1,
            count: 2,
            elements: 3,
        }
        .encode(Layout::Ilp32);
        assert_eq!(q, [ne32(1), ne32(2), ne32(3)].concat());
    }

    #[test]
    fn queue_bulk_transfer() {
        let a = QueueBulkTransferArgs {
            handle: 0x2001,
            data: 0x8000_0000,
            size: 1024,
            userdata: 0x55,
            mode: BulkMode::Blocking.raw(),
        };
        round_trip(&a);
        assert_eq!(
            a.encode(Layout::Ilp32),
            [
                ne32(0x2001),
                ne32(0x8000_0000),
                ne32(1024),
                ne32(0x55),
                ne32(1)
            ]
            .concat()
        );
        let b = a.encode(Layout::Lp64);
        assert_eq!(b[32..36], ne32(1));
        // Unknown modes decode; the driver rejects them itself.
        let odd = QueueBulkTransferArgs { mode: 9, ..a };
        let d = QueueBulkTransferArgs::decode(Layout::Lp64, &odd.encode(Layout::Lp64)).unwrap();
        assert!(BulkMode::try_from(d.mode).is_err());
        // The driver writes WAITING back.
        let w = QueueBulkTransferArgs {
            mode: BulkMode::Waiting.raw(),
            ..a
        };
        assert_eq!(w.to_lp64().mode, 3);
    }

    #[test]
    fn completion_and_await() {
        let c = CompletionDataArgs {
            reason: Reason::MessageAvailable.raw(),
            header: 0x4000,
            service_userdata: 0x5000,
            bulk_userdata: 0,
        };
        round_trip(&c);
        assert_eq!(
            c.encode(Layout::Ilp32),
            [ne32(2), ne32(0x4000), ne32(0x5000), ne32(0)].concat()
        );
        let a = AwaitCompletionArgs {
            count: 8,
            buf: 0x1000,
            msgbufsize: 4096,
            msgbufcount: 8,
            msgbufs: 0x2000,
        };
        round_trip(&a);
        let b = a.encode(Layout::Lp64);
        assert_eq!(b[16..20], ne32(4096));
        assert_eq!(b[20..24], ne32(8));
        assert_eq!(b[24..32], ne64(0x2000));
    }

    #[test]
    fn dequeue_config_option_dump() {
        round_trip(&DequeueMessageArgs {
            handle: 3,
            blocking: true,
            bufsize: 4096,
            buf: 0x9000,
        });
        round_trip(&DequeueMessageArgs::default());
        round_trip(&GetConfigArgs {
            config_size: 20,
            pconfig: 0xABCD,
        });
        let s = SetServiceOptionArgs {
            handle: 4,
            option: ServiceOption::MessageQuota.raw(),
            value: -1,
        };
        round_trip(&s);
        assert_eq!(s.encode(Layout::Lp64), s.encode(Layout::Ilp32));
        round_trip(&DumpMemArgs {
            virt_addr: 0x1234_5678,
            num_bytes: 64,
        });
        assert_eq!(GetConfigArgs::size(Layout::Lp64), 16);
        assert_eq!(DumpMemArgs::size(Layout::Ilp32), 8);
    }

    #[test]
    fn sizes_match_ioctl_numbers() {
        use crate::ioctl::ioc_size;
        type SizeFn = fn(Layout) -> usize;
        let pairs: [(Ioctl, SizeFn); 9] = [
            (Ioctl::CreateService, CreateServiceArgs::size),
            (Ioctl::QueueMessage, QueueMessageArgs::size),
            (Ioctl::QueueBulkTransmit, QueueBulkTransferArgs::size),
            (Ioctl::QueueBulkReceive, QueueBulkTransferArgs::size),
            (Ioctl::AwaitCompletion, AwaitCompletionArgs::size),
            (Ioctl::DequeueMessage, DequeueMessageArgs::size),
            (Ioctl::GetConfig, GetConfigArgs::size),
            (Ioctl::SetServiceOption, SetServiceOptionArgs::size),
            (Ioctl::DumpPhysMem, DumpMemArgs::size),
        ];
        for (ioctl, size) in pairs {
            for layout in BOTH {
                assert_eq!(
                    size(layout),
                    ioc_size(ioctl.number(layout)),
                    "{ioctl} {layout}"
                );
            }
        }
    }
}
