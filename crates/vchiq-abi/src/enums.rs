//! Enumerations of the ioctl ABI and the VCHI layer (spec §3.4, §4.4, §4.5).
//!
//! The ABI structs carry these as raw `u32` (`i32` for [`Status`]); convert
//! with `TryFrom`, which rejects unknown values.

use core::fmt;
use core::ops::{BitOr, BitOrAssign};

abi_enum! {
    /// vchiq_if.h: `VCHIQ_REASON_T`, why a completion (callback) was produced.
    pub enum Reason: u32 {
        /// A remote client opened this server.
        ServiceOpened = 0 => "SERVICE_OPENED",
        /// The service finished closing.
        ServiceClosed = 1 => "SERVICE_CLOSED",
        /// A DATA message arrived.
        MessageAvailable = 2 => "MESSAGE_AVAILABLE",
        /// A bulk transmit completed.
        BulkTransmitDone = 3 => "BULK_TRANSMIT_DONE",
        /// A bulk receive completed.
        BulkReceiveDone = 4 => "BULK_RECEIVE_DONE",
        /// A bulk transmit was aborted.
        BulkTransmitAborted = 5 => "BULK_TRANSMIT_ABORTED",
        /// A bulk receive was aborted.
        BulkReceiveAborted = 6 => "BULK_RECEIVE_ABORTED",
    }
}

abi_enum! {
    /// vchiq_if.h: `VCHIQ_STATUS_T`, the library's and kernel's internal status.
    pub enum Status: i32 {
        /// Failure; the driver maps it to `-EIO`.
        Error = -1 => "ERROR",
        /// Success.
        Success = 0 => "SUCCESS",
        /// Interrupted; the driver maps it to `-EINTR`.
        Retry = 1 => "RETRY",
    }
}

abi_enum! {
    /// vchiq_if.h: `VCHIQ_BULK_MODE_T`, how a bulk transfer reports completion.
    pub enum BulkMode: u32 {
        /// Produce a completion carrying `bulk_userdata`.
        Callback = 0 => "CALLBACK",
        /// The ioctl returns when the transfer is done.
        Blocking = 1 => "BLOCKING",
        /// Report nothing.
        NoCallback = 2 => "NOCALLBACK",
        /// Kernel header only: resume an interrupted BLOCKING transfer
        /// (written back by the driver on `-EINTR`).
        Waiting = 3 => "WAITING",
    }
}

abi_enum! {
    /// vchiq_if.h: `VCHIQ_SERVICE_OPTION_T`, the `option` of `SET_SERVICE_OPTION`.
    pub enum ServiceOption: u32 {
        /// Servers return to LISTENING when closed (default 1).
        AutoClose = 0 => "AUTOCLOSE",
        /// Slots a service may fill before the peer releases them (0 = default).
        SlotQuota = 1 => "SLOT_QUOTA",
        /// Unreleased messages a service may have (0 = default).
        MessageQuota = 2 => "MESSAGE_QUOTA",
        /// Use the synchronous slot (only while HIDDEN or LISTENING).
        Synchronous = 3 => "SYNCHRONOUS",
        /// Trace the service's messages.
        Trace = 4 => "TRACE",
    }
}

abi_enum! {
    /// vchi.h: `VCHI_CALLBACK_REASON_T` (with `USE_VCHIQ_ARM`), the reason given to VCHI callbacks.
    pub enum VchiCallbackReason: u32 {
        /// Lower bound marker.
        Min = 0 => "MIN",
        /// A message is available (to dequeue).
        MsgAvailable = 1 => "MSG_AVAILABLE",
        /// A message was sent.
        MsgSent = 2 => "MSG_SENT",
        /// Message space became available.
        MsgSpaceAvailable = 3 => "MSG_SPACE_AVAILABLE",
        /// A bulk receive completed.
        BulkReceived = 4 => "BULK_RECEIVED",
        /// A bulk transmit completed.
        BulkSent = 5 => "BULK_SENT",
        /// Bulk receive space became available.
        BulkRxSpaceAvailable = 6 => "BULK_RX_SPACE_AVAILABLE",
        /// Bulk transmit space became available.
        BulkTxSpaceAvailable = 7 => "BULK_TX_SPACE_AVAILABLE",
        /// The service closed.
        ServiceClosed = 8 => "SERVICE_CLOSED",
        /// XOFF sent.
        SentXoff = 9 => "SENT_XOFF",
        /// XON sent.
        SentXon = 10 => "SENT_XON",
        /// Bulk data was read.
        BulkDataRead = 11 => "BULK_DATA_READ",
        /// The peer powered off.
        PeerOff = 12 => "PEER_OFF",
        /// The peer suspended.
        PeerSuspended = 13 => "PEER_SUSPENDED",
        /// The peer powered on.
        PeerOn = 14 => "PEER_ON",
        /// The peer resumed.
        PeerResumed = 15 => "PEER_RESUMED",
        /// Forced power off.
        ForcedPowerOff = 16 => "FORCED_POWER_OFF",
        /// A remote client opened this server.
        ServiceOpened = 17 => "SERVICE_OPENED",
        /// A bulk receive was aborted.
        BulkReceiveAborted = 18 => "BULK_RECEIVE_ABORTED",
        /// A bulk transmit was aborted.
        BulkTransmitAborted = 19 => "BULK_TRANSMIT_ABORTED",
        /// Upper bound marker.
        Max = 20 => "MAX",
    }
}

impl VchiCallbackReason {
    /// vchiq_lib.c: the completion thread's map from a VCHIQ reason to the
    /// reason passed to a VCHI callback (spec §4.4).
    pub const fn from_reason(reason: Reason) -> Self {
        match reason {
            Reason::ServiceOpened => Self::ServiceOpened,
            Reason::ServiceClosed => Self::ServiceClosed,
            Reason::MessageAvailable => Self::MsgAvailable,
            Reason::BulkTransmitDone => Self::BulkSent,
            Reason::BulkReceiveDone => Self::BulkReceived,
            Reason::BulkTransmitAborted => Self::BulkTransmitAborted,
            Reason::BulkReceiveAborted => Self::BulkReceiveAborted,
        }
    }
}

impl From<Reason> for VchiCallbackReason {
    fn from(reason: Reason) -> Self {
        Self::from_reason(reason)
    }
}

abi_enum! {
    /// vchi.h: `VCHI_SERVICE_OPTION_T`; the library maps only TRACE (to [`ServiceOption::Trace`]).
    pub enum VchiServiceOption: u32 {
        /// Lower bound marker.
        Min = 0 => "MIN",
        /// Trace the service's messages.
        Trace = 1 => "TRACE",
        /// Synchronous mode (not supported by the library).
        Synchronous = 2 => "SYNCHRONOUS",
        /// Upper bound marker.
        Max = 3 => "MAX",
    }
}

/// vchi_common.h: `VCHI_FLAGS_T`, a bit set passed to VCHI message and bulk calls.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct VchiFlags(pub u32);

impl VchiFlags {
    /// `VCHI_FLAGS_NONE`.
    pub const NONE: Self = Self(0x0);
    /// `VCHI_FLAGS_BLOCK_UNTIL_OP_COMPLETE`.
    pub const BLOCK_UNTIL_OP_COMPLETE: Self = Self(0x1);
    /// `VCHI_FLAGS_CALLBACK_WHEN_OP_COMPLETE`.
    pub const CALLBACK_WHEN_OP_COMPLETE: Self = Self(0x2);
    /// `VCHI_FLAGS_BLOCK_UNTIL_QUEUED`.
    pub const BLOCK_UNTIL_QUEUED: Self = Self(0x4);
    /// `VCHI_FLAGS_ALLOW_PARTIAL`.
    pub const ALLOW_PARTIAL: Self = Self(0x8);
    /// `VCHI_FLAGS_BLOCK_UNTIL_DATA_READ`.
    pub const BLOCK_UNTIL_DATA_READ: Self = Self(0x10);
    /// `VCHI_FLAGS_CALLBACK_WHEN_DATA_READ`.
    pub const CALLBACK_WHEN_DATA_READ: Self = Self(0x20);

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// vchiq_lib.c: the bulk-mode map of `vchi_bulk_queue_transmit/receive` (spec §4.5).
    ///
    /// `CALLBACK_WHEN_OP_COMPLETE | BLOCK_UNTIL_QUEUED` → CALLBACK;
    /// `BLOCK_UNTIL_OP_COMPLETE` (and, for a transmit, `BLOCK_UNTIL_DATA_READ`)
    /// → BLOCKING; `BLOCK_UNTIL_QUEUED` or `NONE` → NOCALLBACK. Any other
    /// combination is unsupported (`None`).
    pub const fn bulk_mode(self, transmit: bool) -> Option<BulkMode> {
        const CALLBACK: u32 =
            VchiFlags::CALLBACK_WHEN_OP_COMPLETE.0 | VchiFlags::BLOCK_UNTIL_QUEUED.0;
        match self.0 {
            CALLBACK => Some(BulkMode::Callback),
            0x1 => Some(BulkMode::Blocking),
            0x10 if transmit => Some(BulkMode::Blocking),
            0x4 | 0x0 => Some(BulkMode::NoCallback),
            _ => None,
        }
    }
}

impl BitOr for VchiFlags {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitOrAssign for VchiFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for VchiFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VchiFlags({:#x})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_values() {
        use Reason::*;
        check_abi_enum!(Reason: u32, &[
            (ServiceOpened, 0, "SERVICE_OPENED"),
            (ServiceClosed, 1, "SERVICE_CLOSED"),
            (MessageAvailable, 2, "MESSAGE_AVAILABLE"),
            (BulkTransmitDone, 3, "BULK_TRANSMIT_DONE"),
            (BulkReceiveDone, 4, "BULK_RECEIVE_DONE"),
            (BulkTransmitAborted, 5, "BULK_TRANSMIT_ABORTED"),
            (BulkReceiveAborted, 6, "BULK_RECEIVE_ABORTED"),
        ], reject: [7, u32::MAX]);
    }

    #[test]
    fn status_values() {
        use Status::*;
        check_abi_enum!(Status: i32, &[
            (Error, -1, "ERROR"),
            (Success, 0, "SUCCESS"),
            (Retry, 1, "RETRY"),
        ], reject: [-2, 2, i32::MIN, i32::MAX]);
    }

    #[test]
    fn bulk_mode_values() {
        use BulkMode::*;
        check_abi_enum!(BulkMode: u32, &[
            (Callback, 0, "CALLBACK"),
            (Blocking, 1, "BLOCKING"),
            (NoCallback, 2, "NOCALLBACK"),
            (Waiting, 3, "WAITING"),
        ], reject: [4, u32::MAX]);
    }

    #[test]
    fn service_option_values() {
        use ServiceOption::*;
        check_abi_enum!(ServiceOption: u32, &[
            (AutoClose, 0, "AUTOCLOSE"),
            (SlotQuota, 1, "SLOT_QUOTA"),
            (MessageQuota, 2, "MESSAGE_QUOTA"),
            (Synchronous, 3, "SYNCHRONOUS"),
            (Trace, 4, "TRACE"),
        ], reject: [5, 42, u32::MAX]);
    }

    #[test]
    fn vchi_service_option_values() {
        use VchiServiceOption::*;
        check_abi_enum!(VchiServiceOption: u32, &[
            (Min, 0, "MIN"),
            (Trace, 1, "TRACE"),
            (Synchronous, 2, "SYNCHRONOUS"),
            (Max, 3, "MAX"),
        ], reject: [4, u32::MAX]);
    }

    #[test]
    fn vchi_callback_reason_values() {
        use VchiCallbackReason::*;
        check_abi_enum!(VchiCallbackReason: u32, &[
            (Min, 0, "MIN"),
            (MsgAvailable, 1, "MSG_AVAILABLE"),
            (MsgSent, 2, "MSG_SENT"),
            (MsgSpaceAvailable, 3, "MSG_SPACE_AVAILABLE"),
            (BulkReceived, 4, "BULK_RECEIVED"),
            (BulkSent, 5, "BULK_SENT"),
            (BulkRxSpaceAvailable, 6, "BULK_RX_SPACE_AVAILABLE"),
            (BulkTxSpaceAvailable, 7, "BULK_TX_SPACE_AVAILABLE"),
            (ServiceClosed, 8, "SERVICE_CLOSED"),
            (SentXoff, 9, "SENT_XOFF"),
            (SentXon, 10, "SENT_XON"),
            (BulkDataRead, 11, "BULK_DATA_READ"),
            (PeerOff, 12, "PEER_OFF"),
            (PeerSuspended, 13, "PEER_SUSPENDED"),
            (PeerOn, 14, "PEER_ON"),
            (PeerResumed, 15, "PEER_RESUMED"),
            (ForcedPowerOff, 16, "FORCED_POWER_OFF"),
            (ServiceOpened, 17, "SERVICE_OPENED"),
            (BulkReceiveAborted, 18, "BULK_RECEIVE_ABORTED"),
            (BulkTransmitAborted, 19, "BULK_TRANSMIT_ABORTED"),
            (Max, 20, "MAX"),
        ], reject: [21, u32::MAX]);
    }

    #[test]
    fn vchi_reason_map() {
        let map: Vec<u32> = Reason::ALL
            .iter()
            .map(|&r| VchiCallbackReason::from_reason(r).raw())
            .collect();
        assert_eq!(map, [17, 8, 1, 5, 4, 19, 18]);
        assert_eq!(
            VchiCallbackReason::from(Reason::BulkTransmitDone),
            VchiCallbackReason::BulkSent
        );
    }

    #[test]
    fn vchi_flags() {
        use VchiFlags as F;
        let raw = [
            F::NONE,
            F::BLOCK_UNTIL_OP_COMPLETE,
            F::CALLBACK_WHEN_OP_COMPLETE,
            F::BLOCK_UNTIL_QUEUED,
            F::ALLOW_PARTIAL,
            F::BLOCK_UNTIL_DATA_READ,
            F::CALLBACK_WHEN_DATA_READ,
        ]
        .map(F::bits);
        assert_eq!(raw, [0x0, 0x1, 0x2, 0x4, 0x8, 0x10, 0x20]);
        let mut f = F::CALLBACK_WHEN_OP_COMPLETE;
        f |= F::BLOCK_UNTIL_QUEUED;
        assert_eq!(f, F(6));
        assert!(f.contains(F::BLOCK_UNTIL_QUEUED) && !f.contains(F::ALLOW_PARTIAL));
        assert!(f.contains(F::NONE));
        assert_eq!(format!("{f:?}"), "VchiFlags(0x6)");
    }

    #[test]
    fn vchi_bulk_mode_map() {
        use VchiFlags as F;
        let cb = F::CALLBACK_WHEN_OP_COMPLETE | F::BLOCK_UNTIL_QUEUED;
        for tx in [false, true] {
            assert_eq!(cb.bulk_mode(tx), Some(BulkMode::Callback));
            assert_eq!(
                F::BLOCK_UNTIL_OP_COMPLETE.bulk_mode(tx),
                Some(BulkMode::Blocking)
            );
            assert_eq!(
                F::BLOCK_UNTIL_QUEUED.bulk_mode(tx),
                Some(BulkMode::NoCallback)
            );
            assert_eq!(F::NONE.bulk_mode(tx), Some(BulkMode::NoCallback));
            assert_eq!(F::ALLOW_PARTIAL.bulk_mode(tx), None);
            assert_eq!(F::CALLBACK_WHEN_OP_COMPLETE.bulk_mode(tx), None);
        }
        assert_eq!(
            F::BLOCK_UNTIL_DATA_READ.bulk_mode(true),
            Some(BulkMode::Blocking)
        );
        assert_eq!(F::BLOCK_UNTIL_DATA_READ.bulk_mode(false), None);
    }
}
