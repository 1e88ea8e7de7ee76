//! `/dev/vchiq` ioctl numbers (spec §3.2).
//!
//! Numbers are computed with Linux's `_IOC` encoding,
//! `dir << 30 | size << 16 | type << 8 | nr`, from the argument struct's
//! size in each [`Layout`], and pinned against the spec's table in tests.
//! `_IO` commands carry no size and take their argument by value, so they
//! are the same in both layouts; so is `SET_SERVICE_OPTION`, whose struct
//! has no pointer.

use core::fmt;

use crate::defs::IOC_MAGIC;
use crate::{ilp32, lp64};

/// The data model of the calling process, which decides struct layouts and ioctl numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// 64-bit `long` and pointers (x86-64, AArch64).
    Lp64,
    /// 32-bit `int`, `long` and pointers (i386, ARM EABI).
    Ilp32,
}

impl Layout {
    /// The layout of the process this crate is compiled for.
    pub const NATIVE: Layout = if cfg!(target_pointer_width = "64") {
        Layout::Lp64
    } else {
        Layout::Ilp32
    };

    /// Size of a pointer (and of `size_t`) in bytes.
    pub const fn pointer_size(self) -> usize {
        match self {
            Layout::Lp64 => 8,
            Layout::Ilp32 => 4,
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Lp64 => "LP64",
            Layout::Ilp32 => "ILP32",
        })
    }
}

/// asm-generic/ioctl.h: `_IOC_NONE`.
pub const IOC_NONE: u32 = 0;
/// asm-generic/ioctl.h: `_IOC_WRITE` (user space writes, the driver reads).
pub const IOC_WRITE: u32 = 1;
/// asm-generic/ioctl.h: `_IOC_READ` (the driver writes back).
pub const IOC_READ: u32 = 2;

/// asm-generic/ioctl.h: `_IOC(dir, type, nr, size)`.
///
/// # Panics
/// If `size` does not fit the 14-bit size field or `nr` the 8-bit nr
/// field (a compile error when evaluated in a constant). All VCHIQ structs fit.
pub const fn ioc(dir: u32, ty: u8, nr: u32, size: usize) -> u32 {
    assert!(size < (1 << 14), "ioctl size does not fit 14 bits");
    assert!(nr < (1 << 8), "ioctl nr does not fit 8 bits");
    (dir << 30) | ((size as u32) << 16) | ((ty as u32) << 8) | nr
}

/// asm-generic/ioctl.h: `_IO(VCHIQ_IOC_MAGIC, nr)`.
#[doc(alias = "_IO")]
pub const fn io(nr: u32) -> u32 {
    ioc(IOC_NONE, IOC_MAGIC, nr, 0)
}

/// asm-generic/ioctl.h: `_IOW(VCHIQ_IOC_MAGIC, nr, T)` with `size = sizeof(T)`.
#[doc(alias = "_IOW")]
pub const fn iow(nr: u32, size: usize) -> u32 {
    ioc(IOC_WRITE, IOC_MAGIC, nr, size)
}

/// asm-generic/ioctl.h: `_IOWR(VCHIQ_IOC_MAGIC, nr, T)` with `size = sizeof(T)`.
#[doc(alias = "_IOWR")]
pub const fn iowr(nr: u32, size: usize) -> u32 {
    ioc(IOC_READ | IOC_WRITE, IOC_MAGIC, nr, size)
}

/// asm-generic/ioctl.h: `_IOC_DIR(cmd)`.
pub const fn ioc_dir(cmd: u32) -> u32 {
    cmd >> 30
}

/// asm-generic/ioctl.h: `_IOC_TYPE(cmd)`.
pub const fn ioc_type(cmd: u32) -> u8 {
    (cmd >> 8) as u8
}

/// asm-generic/ioctl.h: `_IOC_NR(cmd)`.
pub const fn ioc_nr(cmd: u32) -> u32 {
    cmd & 0xFF
}

/// asm-generic/ioctl.h: `_IOC_SIZE(cmd)`.
pub const fn ioc_size(cmd: u32) -> usize {
    ((cmd >> 16) & 0x3FFF) as usize
}

/// A `/dev/vchiq` command; the discriminant is its `nr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum Ioctl {
    /// `VCHIQ_IOC_CONNECT`: `_IO`, arg 0.
    Connect = 0,
    /// `VCHIQ_IOC_SHUTDOWN`: `_IO`, arg 0.
    Shutdown = 1,
    /// `VCHIQ_IOC_CREATE_SERVICE`: `_IOWR`, `CreateService`.
    CreateService = 2,
    /// `VCHIQ_IOC_REMOVE_SERVICE`: `_IO`, arg handle.
    RemoveService = 3,
    /// `VCHIQ_IOC_QUEUE_MESSAGE`: `_IOW`, `QueueMessage`.
    QueueMessage = 4,
    /// `VCHIQ_IOC_QUEUE_BULK_TRANSMIT`: `_IOWR`, `QueueBulkTransfer`.
    QueueBulkTransmit = 5,
    /// `VCHIQ_IOC_QUEUE_BULK_RECEIVE`: `_IOWR`, `QueueBulkTransfer`.
    QueueBulkReceive = 6,
    /// `VCHIQ_IOC_AWAIT_COMPLETION`: `_IOWR`, `AwaitCompletion`.
    AwaitCompletion = 7,
    /// `VCHIQ_IOC_DEQUEUE_MESSAGE`: `_IOWR`, `DequeueMessage`.
    DequeueMessage = 8,
    /// `VCHIQ_IOC_GET_CLIENT_ID`: `_IO`, arg handle; returns the client id.
    GetClientId = 9,
    /// `VCHIQ_IOC_GET_CONFIG`: `_IOWR`, `GetConfig`.
    GetConfig = 10,
    /// `VCHIQ_IOC_CLOSE_SERVICE`: `_IO`, arg handle.
    CloseService = 11,
    /// `VCHIQ_IOC_USE_SERVICE`: `_IO`, arg handle.
    UseService = 12,
    /// `VCHIQ_IOC_RELEASE_SERVICE`: `_IO`, arg handle.
    ReleaseService = 13,
    /// `VCHIQ_IOC_SET_SERVICE_OPTION`: `_IOW`, `SetServiceOption`.
    SetServiceOption = 14,
    /// `VCHIQ_IOC_DUMP_PHYS_MEM`: `_IOW`, `DumpMem`.
    DumpPhysMem = 15,
    /// `VCHIQ_IOC_LIB_VERSION`: `_IO`, arg the library's `VCHIQ_VERSION`.
    LibVersion = 16,
    /// `VCHIQ_IOC_CLOSE_DELIVERED`: `_IO`, arg handle.
    CloseDelivered = 17,
}

impl Ioctl {
    /// Every command, in `nr` order.
    pub const ALL: [Ioctl; 18] = [
        Ioctl::Connect,
        Ioctl::Shutdown,
        Ioctl::CreateService,
        Ioctl::RemoveService,
        Ioctl::QueueMessage,
        Ioctl::QueueBulkTransmit,
        Ioctl::QueueBulkReceive,
        Ioctl::AwaitCompletion,
        Ioctl::DequeueMessage,
        Ioctl::GetClientId,
        Ioctl::GetConfig,
        Ioctl::CloseService,
        Ioctl::UseService,
        Ioctl::ReleaseService,
        Ioctl::SetServiceOption,
        Ioctl::DumpPhysMem,
        Ioctl::LibVersion,
        Ioctl::CloseDelivered,
    ];

    /// The command's `nr` (0..=[`IOC_MAX`](crate::defs::IOC_MAX)).
    pub const fn nr(self) -> u32 {
        self as u32
    }

    /// The command with this `nr`, if any.
    pub const fn from_nr(nr: u32) -> Option<Ioctl> {
        if nr < Self::ALL.len() as u32 {
            Some(Self::ALL[nr as usize])
        } else {
            None
        }
    }

    /// The `_IOC_DIR` of the command: [`IOC_NONE`], [`IOC_WRITE`] or both.
    pub const fn dir(self) -> u32 {
        match self {
            Ioctl::QueueMessage | Ioctl::SetServiceOption | Ioctl::DumpPhysMem => IOC_WRITE,
            Ioctl::CreateService
            | Ioctl::QueueBulkTransmit
            | Ioctl::QueueBulkReceive
            | Ioctl::AwaitCompletion
            | Ioctl::DequeueMessage
            | Ioctl::GetConfig => IOC_READ | IOC_WRITE,
            _ => IOC_NONE,
        }
    }

    /// Whether this is an `_IO` command whose argument is a value (a
    /// handle, the library version, or 0) rather than a pointer.
    pub const fn takes_value(self) -> bool {
        self.dir() == IOC_NONE
    }

    /// Size of the argument struct in `layout`; 0 for by-value commands.
    pub const fn arg_size(self, layout: Layout) -> usize {
        let lp = matches!(layout, Layout::Lp64);
        match self {
            Ioctl::CreateService if lp => size_of::<lp64::CreateService>(),
            Ioctl::CreateService => size_of::<ilp32::CreateService>(),
            Ioctl::QueueMessage if lp => size_of::<lp64::QueueMessage>(),
            Ioctl::QueueMessage => size_of::<ilp32::QueueMessage>(),
            Ioctl::QueueBulkTransmit | Ioctl::QueueBulkReceive if lp => {
                size_of::<lp64::QueueBulkTransfer>()
            }
            Ioctl::QueueBulkTransmit | Ioctl::QueueBulkReceive => {
                size_of::<ilp32::QueueBulkTransfer>()
            }
            Ioctl::AwaitCompletion if lp => size_of::<lp64::AwaitCompletion>(),
            Ioctl::AwaitCompletion => size_of::<ilp32::AwaitCompletion>(),
            Ioctl::DequeueMessage if lp => size_of::<lp64::DequeueMessage>(),
            Ioctl::DequeueMessage => size_of::<ilp32::DequeueMessage>(),
            Ioctl::GetConfig if lp => size_of::<lp64::GetConfig>(),
            Ioctl::GetConfig => size_of::<ilp32::GetConfig>(),
            Ioctl::SetServiceOption => size_of::<crate::common::SetServiceOption>(),
            Ioctl::DumpPhysMem if lp => size_of::<lp64::DumpMem>(),
            Ioctl::DumpPhysMem => size_of::<ilp32::DumpMem>(),
            _ => 0,
        }
    }

    /// The ioctl request number a `layout` caller passes.
    pub const fn number(self, layout: Layout) -> u32 {
        ioc(self.dir(), IOC_MAGIC, self.nr(), self.arg_size(layout))
    }

    /// The C name without the `VCHIQ_IOC_` prefix, e.g. `"CREATE_SERVICE"`.
    pub fn name(self) -> &'static str {
        match self {
            Ioctl::Connect => "CONNECT",
            Ioctl::Shutdown => "SHUTDOWN",
            Ioctl::CreateService => "CREATE_SERVICE",
            Ioctl::RemoveService => "REMOVE_SERVICE",
            Ioctl::QueueMessage => "QUEUE_MESSAGE",
            Ioctl::QueueBulkTransmit => "QUEUE_BULK_TRANSMIT",
            Ioctl::QueueBulkReceive => "QUEUE_BULK_RECEIVE",
            Ioctl::AwaitCompletion => "AWAIT_COMPLETION",
            Ioctl::DequeueMessage => "DEQUEUE_MESSAGE",
            Ioctl::GetClientId => "GET_CLIENT_ID",
            Ioctl::GetConfig => "GET_CONFIG",
            Ioctl::CloseService => "CLOSE_SERVICE",
            Ioctl::UseService => "USE_SERVICE",
            Ioctl::ReleaseService => "RELEASE_SERVICE",
            Ioctl::SetServiceOption => "SET_SERVICE_OPTION",
            Ioctl::DumpPhysMem => "DUMP_PHYS_MEM",
            Ioctl::LibVersion => "LIB_VERSION",
            Ioctl::CloseDelivered => "CLOSE_DELIVERED",
        }
    }

    /// Identifies a request number: the command and the caller's layout.
    ///
    /// Numbers that are identical in both layouts (`_IO` commands and
    /// `SET_SERVICE_OPTION`) decode as [`Layout::Lp64`]. Unknown numbers,
    /// including a known `nr` with a wrong direction or size, give `None`.
    pub fn decode(cmd: u32) -> Option<(Ioctl, Layout)> {
        if ioc_type(cmd) != IOC_MAGIC {
            return None;
        }
        let ioctl = Self::from_nr(ioc_nr(cmd))?;
        [Layout::Lp64, Layout::Ilp32]
            .into_iter()
            .find(|&layout| ioctl.number(layout) == cmd)
            .map(|layout| (ioctl, layout))
    }
}

impl fmt::Display for Ioctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// vchiq_ioctl.h: `VCHIQ_IOC_CONNECT`.
pub const VCHIQ_IOC_CONNECT: u32 = Ioctl::Connect.number(Layout::Lp64);
/// vchiq_ioctl.h: `VCHIQ_IOC_SHUTDOWN`.
pub const VCHIQ_IOC_SHUTDOWN: u32 = Ioctl::Shutdown.number(Layout::Lp64);
/// vchiq_ioctl.h: `VCHIQ_IOC_CREATE_SERVICE` (LP64).
pub const VCHIQ_IOC_CREATE_SERVICE: u32 = Ioctl::CreateService.number(Layout::Lp64);
/// vchiq_ioctl.h: `VCHIQ_IOC_CREATE_SERVICE` (ILP32; the kernel's `VCHIQ_IOC_CREATE_SERVICE32`).
pub const VCHIQ_IOC_CREATE_SERVICE32: u32 = Ioctl::CreateService.number(Layout::Ilp32);
/// vchiq_ioctl.h: `VCHIQ_IOC_REMOVE_SERVICE`.
pub const VCHIQ_IOC_REMOVE_SERVICE: u32 = Ioctl::RemoveService.number(Layout::Lp64);
/// vchiq_ioctl.h: `VCHIQ_IOC_QUEUE_MESSAGE` (LP64).
pub const VCHIQ_IOC_QUEUE_MESSAGE: u32 = Ioctl::QueueMessage.number(Layout::Lp64);
/// vchiq_ioctl.h: `VCHIQ_IOC_QUEUE_MESSAGE` (ILP32).
pub const VCHIQ_IOC_QUEUE_MESSAGE32: u32 = Ioctl::QueueMessage.number(Layout::Ilp32);
/// vchiq_ioctl.h: `VCHIQ_IOC_QUEUE_BULK_TRANSMIT` (LP64).
pub const VCHIQ_IOC_QUEUE_BULK_TRANSMIT: u32 = Ioctl::QueueBulkTransmit.number(Layout::Lp64);
/// vchiq_ioctl.h: `VCHIQ_IOC_QUEUE_BULK_TRANSMIT` (ILP32).
pub const VCHIQ_IOC_QUEUE_BULK_TRANSMIT32: u32 = Ioctl::QueueBulkTransmit.number(Layout::Ilp32);
/// vchiq_ioctl.h: `VCHIQ_IOC_QUEUE_BULK_RECEIVE` (LP64).
pub const VCHIQ_IOC_QUEUE_BULK_RECEIVE: u32 = Ioctl::QueueBulkReceive.number(Layout::Lp64);
/// vchiq_ioctl.h: `VCHIQ_IOC_QUEUE_BULK_RECEIVE` (ILP32).
pub const VCHIQ_IOC_QUEUE_BULK_RECEIVE32: u32 = Ioctl::QueueBulkReceive.number(Layout::Ilp32);
/// vchiq_ioctl.h: `VCHIQ_IOC_AWAIT_COMPLETION` (LP64).
pub const VCHIQ_IOC_AWAIT_COMPLETION: u32 = Ioctl::AwaitCompletion.number(Layout::Lp64);
/// vchiq_ioctl.h: `VCHIQ_IOC_AWAIT_COMPLETION` (ILP32).
pub const VCHIQ_IOC_AWAIT_COMPLETION32: u32 = Ioctl::AwaitCompletion.number(Layout::Ilp32);
/// vchiq_ioctl.h: `VCHIQ_IOC_DEQUEUE_MESSAGE` (LP64).
pub const VCHIQ_IOC_DEQUEUE_MESSAGE: u32 = Ioctl::DequeueMessage.number(Layout::Lp64);
/// vchiq_ioctl.h: `VCHIQ_IOC_DEQUEUE_MESSAGE` (ILP32).
pub const VCHIQ_IOC_DEQUEUE_MESSAGE32: u32 = Ioctl::DequeueMessage.number(Layout::Ilp32);
/// vchiq_ioctl.h: `VCHIQ_IOC_GET_CLIENT_ID`.
pub const VCHIQ_IOC_GET_CLIENT_ID: u32 = Ioctl::GetClientId.number(Layout::Lp64);
/// vchiq_ioctl.h: `VCHIQ_IOC_GET_CONFIG` (LP64).
pub const VCHIQ_IOC_GET_CONFIG: u32 = Ioctl::GetConfig.number(Layout::Lp64);
/// vchiq_ioctl.h: `VCHIQ_IOC_GET_CONFIG` (ILP32).
pub const VCHIQ_IOC_GET_CONFIG32: u32 = Ioctl::GetConfig.number(Layout::Ilp32);
/// vchiq_ioctl.h: `VCHIQ_IOC_CLOSE_SERVICE`.
pub const VCHIQ_IOC_CLOSE_SERVICE: u32 = Ioctl::CloseService.number(Layout::Lp64);
/// vchiq_ioctl.h: `VCHIQ_IOC_USE_SERVICE`.
pub const VCHIQ_IOC_USE_SERVICE: u32 = Ioctl::UseService.number(Layout::Lp64);
/// vchiq_ioctl.h: `VCHIQ_IOC_RELEASE_SERVICE`.
pub const VCHIQ_IOC_RELEASE_SERVICE: u32 = Ioctl::ReleaseService.number(Layout::Lp64);
/// vchiq_ioctl.h: `VCHIQ_IOC_SET_SERVICE_OPTION` (both layouts).
pub const VCHIQ_IOC_SET_SERVICE_OPTION: u32 = Ioctl::SetServiceOption.number(Layout::Lp64);
/// vchiq_ioctl.h: `VCHIQ_IOC_DUMP_PHYS_MEM` (LP64).
pub const VCHIQ_IOC_DUMP_PHYS_MEM: u32 = Ioctl::DumpPhysMem.number(Layout::Lp64);
/// vchiq_ioctl.h: `VCHIQ_IOC_DUMP_PHYS_MEM` (ILP32).
pub const VCHIQ_IOC_DUMP_PHYS_MEM32: u32 = Ioctl::DumpPhysMem.number(Layout::Ilp32);
/// vchiq_ioctl.h: `VCHIQ_IOC_LIB_VERSION`.
pub const VCHIQ_IOC_LIB_VERSION: u32 = Ioctl::LibVersion.number(Layout::Lp64);
/// vchiq_ioctl.h: `VCHIQ_IOC_CLOSE_DELIVERED`.
pub const VCHIQ_IOC_CLOSE_DELIVERED: u32 = Ioctl::CloseDelivered.number(Layout::Lp64);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defs::IOC_MAX;

    /// Spec §3.2: (command, name, LP64 value, ILP32 value).
    const TABLE: [(Ioctl, &str, u32, u32); 18] = [
        (Ioctl::Connect, "CONNECT", 0x0000_C400, 0x0000_C400),
        (Ioctl::Shutdown, "SHUTDOWN", 0x0000_C401, 0x0000_C401),
        (
            Ioctl::CreateService,
            "CREATE_SERVICE",
            0xC030_C402,
            0xC01C_C402,
        ),
        (
            Ioctl::RemoveService,
            "REMOVE_SERVICE",
            0x0000_C403,
            0x0000_C403,
        ),
        (
            Ioctl::QueueMessage,
            "QUEUE_MESSAGE",
            0x4010_C404,
            0x400C_C404,
        ),
        (
            Ioctl::QueueBulkTransmit,
            "QUEUE_BULK_TRANSMIT",
            0xC028_C405,
            0xC014_C405,
        ),
        (
            Ioctl::QueueBulkReceive,
            "QUEUE_BULK_RECEIVE",
            0xC028_C406,
            0xC014_C406,
        ),
        (
            Ioctl::AwaitCompletion,
            "AWAIT_COMPLETION",
            0xC020_C407,
            0xC014_C407,
        ),
        (
            Ioctl::DequeueMessage,
            "DEQUEUE_MESSAGE",
            0xC018_C408,
            0xC010_C408,
        ),
        (
            Ioctl::GetClientId,
            "GET_CLIENT_ID",
            0x0000_C409,
            0x0000_C409,
        ),
        (Ioctl::GetConfig, "GET_CONFIG", 0xC010_C40A, 0xC008_C40A),
        (
            Ioctl::CloseService,
            "CLOSE_SERVICE",
            0x0000_C40B,
            0x0000_C40B,
        ),
        (Ioctl::UseService, "USE_SERVICE", 0x0000_C40C, 0x0000_C40C),
        (
            Ioctl::ReleaseService,
            "RELEASE_SERVICE",
            0x0000_C40D,
            0x0000_C40D,
        ),
        (
            Ioctl::SetServiceOption,
            "SET_SERVICE_OPTION",
            0x400C_C40E,
            0x400C_C40E,
        ),
        (
            Ioctl::DumpPhysMem,
            "DUMP_PHYS_MEM",
            0x4010_C40F,
            0x4008_C40F,
        ),
        (Ioctl::LibVersion, "LIB_VERSION", 0x0000_C410, 0x0000_C410),
        (
            Ioctl::CloseDelivered,
            "CLOSE_DELIVERED",
            0x0000_C411,
            0x0000_C411,
        ),
    ];

    #[test]
    fn numbers_match_spec_table() {
        for (i, (ioctl, name, lp, ilp)) in TABLE.into_iter().enumerate() {
            assert_eq!(ioctl.nr(), i as u32);
            assert_eq!(Ioctl::ALL[i], ioctl);
            assert_eq!(Ioctl::from_nr(i as u32), Some(ioctl));
            assert_eq!(ioctl.name(), name);
            assert_eq!(ioctl.to_string(), name);
            assert_eq!(ioctl.number(Layout::Lp64), lp, "{name} LP64");
            assert_eq!(ioctl.number(Layout::Ilp32), ilp, "{name} ILP32");
            assert_eq!(ioctl.takes_value(), lp & 0xFFFF_0000 == 0, "{name}");
            assert_eq!(ioc_size(lp), ioctl.arg_size(Layout::Lp64));
            assert_eq!(ioc_size(ilp), ioctl.arg_size(Layout::Ilp32));
            assert_eq!(ioc_dir(lp), ioctl.dir());
        }
        assert_eq!(Ioctl::ALL.len() as u32, IOC_MAX + 1);
        assert_eq!(Ioctl::from_nr(IOC_MAX + 1), None);
    }

    #[test]
    fn named_constants_match_spec_table() {
        let consts = [
            (VCHIQ_IOC_CONNECT, 0x0000_C400),
            (VCHIQ_IOC_SHUTDOWN, 0x0000_C401),
            (VCHIQ_IOC_CREATE_SERVICE, 0xC030_C402),
            (VCHIQ_IOC_CREATE_SERVICE32, 0xC01C_C402),
            (VCHIQ_IOC_REMOVE_SERVICE, 0x0000_C403),
            (VCHIQ_IOC_QUEUE_MESSAGE, 0x4010_C404),
            (VCHIQ_IOC_QUEUE_MESSAGE32, 0x400C_C404),
            (VCHIQ_IOC_QUEUE_BULK_TRANSMIT, 0xC028_C405),
            (VCHIQ_IOC_QUEUE_BULK_TRANSMIT32, 0xC014_C405),
            (VCHIQ_IOC_QUEUE_BULK_RECEIVE, 0xC028_C406),
            (VCHIQ_IOC_QUEUE_BULK_RECEIVE32, 0xC014_C406),
            (VCHIQ_IOC_AWAIT_COMPLETION, 0xC020_C407),
            (VCHIQ_IOC_AWAIT_COMPLETION32, 0xC014_C407),
            (VCHIQ_IOC_DEQUEUE_MESSAGE, 0xC018_C408),
            (VCHIQ_IOC_DEQUEUE_MESSAGE32, 0xC010_C408),
            (VCHIQ_IOC_GET_CLIENT_ID, 0x0000_C409),
            (VCHIQ_IOC_GET_CONFIG, 0xC010_C40A),
            (VCHIQ_IOC_GET_CONFIG32, 0xC008_C40A),
            (VCHIQ_IOC_CLOSE_SERVICE, 0x0000_C40B),
            (VCHIQ_IOC_USE_SERVICE, 0x0000_C40C),
            (VCHIQ_IOC_RELEASE_SERVICE, 0x0000_C40D),
            (VCHIQ_IOC_SET_SERVICE_OPTION, 0x400C_C40E),
            (VCHIQ_IOC_DUMP_PHYS_MEM, 0x4010_C40F),
            (VCHIQ_IOC_DUMP_PHYS_MEM32, 0x4008_C40F),
            (VCHIQ_IOC_LIB_VERSION, 0x0000_C410),
            (VCHIQ_IOC_CLOSE_DELIVERED, 0x0000_C411),
        ];
        for (i, (got, want)) in consts.into_iter().enumerate() {
            assert_eq!(got, want, "constant #{i}: {got:#010x} != {want:#010x}");
        }
    }

    #[test]
    fn helpers_follow_ioc_encoding() {
        assert_eq!(io(0), 0x0000_C400);
        assert_eq!(iow(4, 16), 0x4010_C404);
        assert_eq!(iowr(2, 48), 0xC030_C402);
        assert_eq!(ioc(IOC_READ, 0x12, 0x34, 0x56), 0x8056_1234);
        let cmd = iowr(7, 20);
        assert_eq!(
            (ioc_dir(cmd), ioc_type(cmd), ioc_nr(cmd), ioc_size(cmd)),
            (3, 0xC4, 7, 20)
        );
    }

    #[test]
    fn decode_identifies_command_and_layout() {
        for (ioctl, _, lp, ilp) in TABLE {
            assert_eq!(Ioctl::decode(lp), Some((ioctl, Layout::Lp64)));
            let want = if lp == ilp {
                Layout::Lp64
            } else {
                Layout::Ilp32
            };
            assert_eq!(Ioctl::decode(ilp), Some((ioctl, want)));
        }
        // Wrong magic, out-of-range nr, wrong size, wrong direction.
        for bad in [
            0x0000_C500,
            0x0000_C412,
            0x0000_C4FF,
            0xC031_C402,
            0x4030_C402,
            0x0030_C402,
            0x0010_C400,
            0,
        ] {
            assert_eq!(Ioctl::decode(bad), None, "{bad:#010x}");
        }
    }

    #[test]
    fn layout_basics() {
        assert_eq!(Layout::Lp64.pointer_size(), 8);
        assert_eq!(Layout::Ilp32.pointer_size(), 4);
        assert_eq!(Layout::NATIVE.pointer_size(), size_of::<usize>());
        assert_eq!(Layout::Lp64.to_string(), "LP64");
        assert_eq!(Layout::Ilp32.to_string(), "ILP32");
    }
}
