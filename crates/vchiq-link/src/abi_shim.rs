//! Temporary stand-in for the parts of `vchiq-abi` this crate uses, with the same paths and
//! names, until that crate is wired up. Replaced by `use vchiq_abi as abi` in `lib.rs`.
#![allow(dead_code, missing_docs)]

pub mod defs {
    pub const VCHIQ_MAGIC: u32 = 0x5643_4849;
    pub const VCHIQ_VERSION: u16 = 8;
    pub const VCHIQ_VERSION_MIN: u16 = 3;
    pub const SLOT_SIZE: usize = 4096;
    pub const HEADER_SIZE: usize = 8;
    pub const MAX_MSG_SIZE: usize = SLOT_SIZE - HEADER_SIZE;
    pub const MAX_SERVICES: usize = 4096;
    pub const PORT_MAX: u32 = 4095;
    pub const PORT_FREE: u32 = 0x1000;
    pub const MAX_SLOTS: usize = 128;
    pub const MAX_SLOTS_PER_SIDE: usize = 64;
    pub const NUM_SERVICE_BULKS: usize = 4;
    pub const MSGID_PADDING: u32 = 0;
    pub const MSGID_CLAIMED: u32 = 0x4000_0000;
    pub const BULK_ACTUAL_ABORTED: i32 = -1;
    pub const SLOT_ZERO_SIZE: usize = 1288;
    pub const SHARED_STATE_SIZE: usize = 372;
    pub const REMOTE_EVENT_SIZE: usize = 12;
    pub const DEBUG_ENTRIES: usize = 11;
    const PORT_MASK: u32 = 0xFFF;
    pub const fn msgid(ty: u32, src: u32, dst: u32) -> u32 {
        (ty << 24) | ((src & PORT_MASK) << 12) | (dst & PORT_MASK)
    }
    pub const fn msg_type(msgid: u32) -> u32 {
        msgid >> 24
    }
    pub const fn msg_srcport(msgid: u32) -> u32 {
        (msgid >> 12) & PORT_MASK
    }
    pub const fn msg_dstport(msgid: u32) -> u32 {
        msgid & PORT_MASK
    }
    pub const fn stride(size: u32) -> u32 {
        size.saturating_add(HEADER_SIZE as u32 + 7) & !7
    }
}

pub mod fourcc {
    use core::fmt;
    #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
    #[repr(transparent)]
    pub struct FourCc(pub u32);
    impl FourCc {
        pub const fn new(chars: &[u8; 4]) -> Self {
            Self(u32::from_be_bytes(*chars))
        }
        pub const fn as_u32(self) -> u32 {
            self.0
        }
        pub const fn bytes(self) -> [u8; 4] {
            self.0.to_be_bytes()
        }
    }
    impl From<u32> for FourCc {
        fn from(v: u32) -> Self {
            Self(v)
        }
    }
    impl fmt::Display for FourCc {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for b in self.bytes() {
                if (b' '..=b'~').contains(&b) && b != b'\\' {
                    write!(f, "{}", char::from(b))?;
                } else {
                    write!(f, "\\x{b:02x}")?;
                }
            }
            Ok(())
        }
    }
    impl fmt::Debug for FourCc {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "FourCc(\"{self}\")")
        }
    }
}

macro_rules! shim_enum {
    ($name:ident { $($v:ident = $n:literal => $s:literal,)+ }) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u32)]
        pub enum $name { $($v = $n,)+ }
        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$v),+];
            pub const fn name(self) -> &'static str { match self { $(Self::$v => $s,)+ } }
            pub const fn raw(self) -> u32 { self as u32 }
            pub const fn from_raw(value: u32) -> Option<Self> { match value { $($n => Some(Self::$v),)+ _ => None } }
        }
        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result { f.write_str(self.name()) }
        }
    };
}

pub mod msg {
    shim_enum!(MsgType {
        Padding = 0 => "PADDING", Connect = 1 => "CONNECT", Open = 2 => "OPEN", OpenAck = 3 => "OPENACK",
        Close = 4 => "CLOSE", Data = 5 => "DATA", BulkRx = 6 => "BULK_RX", BulkTx = 7 => "BULK_TX",
        BulkRxDone = 8 => "BULK_RX_DONE", BulkTxDone = 9 => "BULK_TX_DONE", Pause = 10 => "PAUSE",
        Resume = 11 => "RESUME", RemoteUse = 12 => "REMOTE_USE", RemoteRelease = 13 => "REMOTE_RELEASE",
        RemoteUseActive = 14 => "REMOTE_USE_ACTIVE",
    });
    pub fn msg_type_str(ty: u32) -> &'static str {
        MsgType::from_raw(ty).map_or("UNKNOWN", MsgType::name)
    }
    shim_enum!(SrvState {
        Free = 0 => "FREE", Hidden = 1 => "HIDDEN", Listening = 2 => "LISTENING", Opening = 3 => "OPENING",
        Open = 4 => "OPEN", OpenSync = 5 => "OPENSYNC", CloseSent = 6 => "CLOSESENT",
        CloseRecvd = 7 => "CLOSERECVD", CloseWait = 8 => "CLOSEWAIT", Closed = 9 => "CLOSED",
    });
    shim_enum!(ConnState {
        Disconnected = 0 => "DISCONNECTED", Connecting = 1 => "CONNECTING", Connected = 2 => "CONNECTED",
        Pausing = 3 => "PAUSING", PauseSent = 4 => "PAUSE_SENT", Paused = 5 => "PAUSED",
        Resuming = 6 => "RESUMING", PauseTimeout = 7 => "PAUSE_TIMEOUT", ResumeTimeout = 8 => "RESUME_TIMEOUT",
    });
}

pub mod enums {
    shim_enum!(ServiceOption {
        AutoClose = 0 => "AUTOCLOSE", SlotQuota = 1 => "SLOT_QUOTA", MessageQuota = 2 => "MESSAGE_QUOTA",
        Synchronous = 3 => "SYNCHRONOUS", Trace = 4 => "TRACE",
    });
}
