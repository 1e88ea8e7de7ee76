//! The public service-level types: handles, parameters, events, received messages, statistics.

use std::fmt;
use std::sync::Weak;

use crate::abi::fourcc::FourCc;
use crate::abi::msg::SrvState;

/// A service handle: `seq | localport` (spec §1.2). Never 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceHandle(pub u32);

impl ServiceHandle {
    /// The local port encoded in the low 12 bits.
    pub const fn port(self) -> u32 {
        self.0 & 0xFFF
    }
}

impl fmt::Display for ServiceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// What identifies a service and its compatibility: the fourcc and versions sent in OPEN and
/// checked by the listener (spec §2.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceParams {
    /// The service's fourcc.
    pub fourcc: FourCc,
    /// This side's version of the service.
    pub version: u16,
    /// The oldest peer version this side accepts.
    pub version_min: u16,
}

/// Receives a service's events.
pub trait ServiceHandler: Send + Sync + 'static {
    /// Called on the link's handler thread, in protocol order. Must not block on the link (hand
    /// work to another thread); non-blocking calls such as `queue_message(.., false)` and
    /// releasing messages are fine.
    fn event(&self, service: ServiceHandle, event: ServiceEvent);
}

impl<F: Fn(ServiceHandle, ServiceEvent) + Send + Sync + 'static> ServiceHandler for F {
    fn event(&self, service: ServiceHandle, event: ServiceEvent) {
        self(service, event);
    }
}

/// An event delivered to a [`ServiceHandler`].
#[derive(Debug)]
pub enum ServiceEvent {
    /// A peer opened this server (servers only).
    Opened {
        /// The opener's client id (OPEN payload word 1).
        client_id: u32,
        /// The opener's service version.
        peer_version: u16,
    },
    /// The close completed (either side started it).
    Closed,
    /// A DATA message arrived.
    Message(Message),
    /// A queued bulk transmit completed.
    BulkTransmitDone {
        /// The userdata given when it was queued.
        userdata: u64,
    },
    /// A queued bulk receive completed.
    BulkReceiveDone {
        /// The userdata given when it was queued.
        userdata: u64,
        /// The received bytes.
        data: Vec<u8>,
    },
    /// A queued bulk transmit was aborted (size mismatch or close).
    BulkTransmitAborted {
        /// The userdata given when it was queued.
        userdata: u64,
    },
    /// A queued bulk receive was aborted (size mismatch or close).
    BulkReceiveAborted {
        /// The userdata given when it was queued.
        userdata: u64,
    },
}

/// Where a [`Message`] returns its claim.
pub(crate) trait ReleaseClaim: Send + Sync {
    fn release_claim(&self, claim: u64);
}

/// A received DATA message: the payload copied out of shared memory.
///
/// The message stays CLAIMED in its slot until it is released (dropped, [`Message::release`] or
/// [`Message::into_data`]); the slot goes back to the sender only when every message in it has
/// been released, so a receiver that holds messages starves the sender through its quotas
/// (spec §2.10, §2.11). Releasing after the link died or the service closed is harmless.
pub struct Message {
    pub(crate) data: Vec<u8>,
    pub(crate) service: ServiceHandle,
    pub(crate) claim: u64,
    pub(crate) owner: Option<Weak<dyn ReleaseClaim>>,
}

impl Message {
    /// The payload.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Releases the message and returns the payload.
    pub fn into_data(mut self) -> Vec<u8> {
        self.release_now();
        std::mem::take(&mut self.data)
    }

    /// The service it was addressed to.
    pub fn service(&self) -> ServiceHandle {
        self.service
    }

    /// Releases the message (the same as dropping it).
    pub fn release(self) {}

    fn release_now(&mut self) {
        if let Some(owner) = self.owner.take().and_then(|w| w.upgrade()) {
            owner.release_claim(self.claim);
        }
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        self.release_now();
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("service", &self.service)
            .field("len", &self.data.len())
            .finish()
    }
}

/// A snapshot of one service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Its handle.
    pub handle: ServiceHandle,
    /// Its fourcc.
    pub fourcc: FourCc,
    /// True for a server (created with `add_service` and not being removed).
    pub is_server: bool,
    /// State (spec §2.9).
    pub state: SrvState,
    /// Local port.
    pub localport: u32,
    /// The peer's port, if connected.
    pub remoteport: Option<u32>,
    /// Client id: ours for a client, the opener's for an open server, else 0.
    pub client_id: u32,
    /// Our version.
    pub version: u16,
    /// Our minimum accepted peer version.
    pub version_min: u16,
    /// The peer's version, once opened.
    pub peer_version: u16,
    /// Servers: return to LISTENING when closed.
    pub auto_close: bool,
    /// Slots this port may occupy.
    pub slot_quota: u32,
    /// Slots it occupies.
    pub slot_use_count: u32,
    /// Unreleased messages it may have.
    pub message_quota: u32,
    /// Unreleased messages it has.
    pub message_use_count: u32,
    /// Outstanding bulk transmits queued on this side.
    pub bulk_tx_pending: usize,
    /// Outstanding bulk receives queued on this side.
    pub bulk_rx_pending: usize,
}

/// Counters of a link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Messages written (all types, padding excluded).
    pub messages_sent: u64,
    /// Payload bytes written.
    pub bytes_sent: u64,
    /// Messages parsed (all types, padding excluded).
    pub messages_received: u64,
    /// Payload bytes parsed.
    pub bytes_received: u64,
    /// DATA messages delivered to services.
    pub data_delivered: u64,
    /// Protocol violations seen (fatal or not).
    pub protocol_errors: u64,
    /// Peer slots we recycled back to the peer.
    pub slots_recycled: u64,
    /// Our slots the peer recycled back to us.
    pub slots_reclaimed: u64,
    /// Bulk transfers completed with data moved.
    pub bulks_done: u64,
    /// Bulk transfers aborted.
    pub bulks_aborted: u64,
    /// Times a sender found its quotas or the free slots exhausted.
    pub quota_stalls: u64,
}
