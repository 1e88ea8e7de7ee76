//! Slot-protocol enums: message types (spec §2.7), service states (§2.9)
//! and connection states (§2.8).

abi_enum! {
    /// vchiq_core.h: `VCHIQ_MSG_*`, the type byte of a msgid ([`crate::defs::msg_type`]).
    ///
    /// The CLAIMED bit is not a type: mask it off before converting.
    pub enum MsgType: u32 {
        /// vchiq_core.h: `VCHIQ_MSG_PADDING`; filler to the end of a slot.
        Padding = 0 => "PADDING",
        /// vchiq_core.h: `VCHIQ_MSG_CONNECT`; sent once per link, no payload.
        Connect = 1 => "CONNECT",
        /// vchiq_core.h: `VCHIQ_MSG_OPEN`; 12 bytes: fourcc, client_id, version, version_min.
        Open = 2 => "OPEN",
        /// vchiq_core.h: `VCHIQ_MSG_OPENACK`; 2 bytes: the server's version.
        OpenAck = 3 => "OPENACK",
        /// vchiq_core.h: `VCHIQ_MSG_CLOSE`; no payload.
        Close = 4 => "CLOSE",
        /// vchiq_core.h: `VCHIQ_MSG_DATA`; 0..=4088 bytes of service payload.
        Data = 5 => "DATA",
        /// vchiq_core.h: `VCHIQ_MSG_BULK_RX`; slave only, 8 bytes: data, size.
        BulkRx = 6 => "BULK_RX",
        /// vchiq_core.h: `VCHIQ_MSG_BULK_TX`; slave only, 8 bytes: data, size.
        BulkTx = 7 => "BULK_TX",
        /// vchiq_core.h: `VCHIQ_MSG_BULK_RX_DONE`; master only, 4 bytes: actual.
        BulkRxDone = 8 => "BULK_RX_DONE",
        /// vchiq_core.h: `VCHIQ_MSG_BULK_TX_DONE`; master only, 4 bytes: actual.
        BulkTxDone = 9 => "BULK_TX_DONE",
        /// vchiq_core.h: `VCHIQ_MSG_PAUSE`; suspend handshake.
        Pause = 10 => "PAUSE",
        /// vchiq_core.h: `VCHIQ_MSG_RESUME`; suspend handshake.
        Resume = 11 => "RESUME",
        /// vchiq_core.h: `VCHIQ_MSG_REMOTE_USE`; sent by the VC.
        RemoteUse = 12 => "REMOTE_USE",
        /// vchiq_core.h: `VCHIQ_MSG_REMOTE_RELEASE`; sent by the VC.
        RemoteRelease = 13 => "REMOTE_RELEASE",
        /// vchiq_core.h: `VCHIQ_MSG_REMOTE_USE_ACTIVE`; sent by the ARM.
        RemoteUseActive = 14 => "REMOTE_USE_ACTIVE",
    }
}

/// vchiq_core.c: `msg_type_str()`: the name of a raw type for logs, `"UNKNOWN"` for others.
pub fn msg_type_str(ty: u32) -> &'static str {
    MsgType::from_raw(ty).map_or("UNKNOWN", MsgType::name)
}

abi_enum! {
    /// vchiq_core.h: `VCHIQ_SRVSTATE_*`, the state of a service (spec §2.9).
    pub enum SrvState: u32 {
        /// Slot unused, or service being destroyed.
        Free = 0 => "FREE",
        /// Server created before its instance connected; cannot be opened yet.
        Hidden = 1 => "HIDDEN",
        /// Server waiting for OPEN.
        Listening = 2 => "LISTENING",
        /// Client sent OPEN, waiting for OPENACK or CLOSE.
        Opening = 3 => "OPENING",
        /// Connected.
        Open = 4 => "OPEN",
        /// Connected, using the synchronous slot.
        OpenSync = 5 => "OPENSYNC",
        /// We sent CLOSE and wait for the peer's CLOSE.
        CloseSent = 6 => "CLOSESENT",
        /// The peer's CLOSE was received and answered; completing.
        CloseRecvd = 7 => "CLOSERECVD",
        /// Closed, waiting for the local owner.
        CloseWait = 8 => "CLOSEWAIT",
        /// Client fully closed, about to be freed.
        Closed = 9 => "CLOSED",
    }
}

abi_enum! {
    /// vchiq_core.h: `VCHIQ_CONNSTATE_*`, the state of the link (spec §2.8).
    pub enum ConnState: u32 {
        /// No CONNECT exchanged yet.
        Disconnected = 0 => "DISCONNECTED",
        /// CONNECT sent, waiting for the peer's.
        Connecting = 1 => "CONNECTING",
        /// Both CONNECTs exchanged.
        Connected = 2 => "CONNECTED",
        /// Suspend requested.
        Pausing = 3 => "PAUSING",
        /// PAUSE sent.
        PauseSent = 4 => "PAUSE_SENT",
        /// Suspended.
        Paused = 5 => "PAUSED",
        /// Resume requested.
        Resuming = 6 => "RESUMING",
        /// The PAUSE handshake timed out.
        PauseTimeout = 7 => "PAUSE_TIMEOUT",
        /// The RESUME handshake timed out.
        ResumeTimeout = 8 => "RESUME_TIMEOUT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defs::{MSGID_CLAIMED, msg_type, msgid};

    #[test]
    fn msg_type_values() {
        use MsgType::*;
        check_abi_enum!(MsgType: u32, &[
            (Padding, 0, "PADDING"),
            (Connect, 1, "CONNECT"),
            (Open, 2, "OPEN"),
            (OpenAck, 3, "OPENACK"),
            (Close, 4, "CLOSE"),
            (Data, 5, "DATA"),
            (BulkRx, 6, "BULK_RX"),
            (BulkTx, 7, "BULK_TX"),
            (BulkRxDone, 8, "BULK_RX_DONE"),
            (BulkTxDone, 9, "BULK_TX_DONE"),
            (Pause, 10, "PAUSE"),
            (Resume, 11, "RESUME"),
            (RemoteUse, 12, "REMOTE_USE"),
            (RemoteRelease, 13, "REMOTE_RELEASE"),
            (RemoteUseActive, 14, "REMOTE_USE_ACTIVE"),
        ], reject: [15, 0x45, 255, u32::MAX]);
    }

    #[test]
    fn msg_type_str_table() {
        for &t in MsgType::ALL {
            assert_eq!(msg_type_str(t.raw()), t.name());
        }
        assert_eq!(msg_type_str(15), "UNKNOWN");
        assert_eq!(msg_type_str(u32::MAX), "UNKNOWN");
        // A claimed DATA header is not a valid type until CLAIMED is masked off.
        let claimed = msgid(5, 1, 2) | MSGID_CLAIMED;
        assert_eq!(msg_type_str(msg_type(claimed)), "UNKNOWN");
        assert_eq!(
            MsgType::try_from(msg_type(claimed & !MSGID_CLAIMED)),
            Ok(MsgType::Data)
        );
    }

    #[test]
    fn srv_state_values() {
        use SrvState::*;
        check_abi_enum!(SrvState: u32, &[
            (Free, 0, "FREE"),
            (Hidden, 1, "HIDDEN"),
            (Listening, 2, "LISTENING"),
            (Opening, 3, "OPENING"),
            (Open, 4, "OPEN"),
            (OpenSync, 5, "OPENSYNC"),
            (CloseSent, 6, "CLOSESENT"),
            (CloseRecvd, 7, "CLOSERECVD"),
            (CloseWait, 8, "CLOSEWAIT"),
            (Closed, 9, "CLOSED"),
        ], reject: [10, u32::MAX]);
    }

    #[test]
    fn conn_state_values() {
        use ConnState::*;
        check_abi_enum!(ConnState: u32, &[
            (Disconnected, 0, "DISCONNECTED"),
            (Connecting, 1, "CONNECTING"),
            (Connected, 2, "CONNECTED"),
            (Pausing, 3, "PAUSING"),
            (PauseSent, 4, "PAUSE_SENT"),
            (Paused, 5, "PAUSED"),
            (Resuming, 6, "RESUMING"),
            (PauseTimeout, 7, "PAUSE_TIMEOUT"),
            (ResumeTimeout, 8, "RESUME_TIMEOUT"),
        ], reject: [9, u32::MAX]);
    }
}
