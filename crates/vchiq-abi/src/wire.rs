//! The vchiqd socket protocol: the `/dev/vchiq` ioctl set as request/response frames.
//!
//! A client connects to vchiqd's Unix socket (`SOCK_SEQPACKET`, so every frame is one
//! packet and frame boundaries are kept by the kernel). One connection is one *instance*,
//! exactly as one `open()` of `/dev/vchiq` is. The daemon learns who the client is from the
//! kernel (`SO_PEERCRED`, pinned by a pidfd), never from anything the client sends.
//!
//! Every request is a [`RequestHeader`] followed by an op-specific payload; every response
//! is a [`ResponseHeader`] with the request's `tag` and a `result` that is the ioctl's
//! return value (`>= 0`) or a negated errno (`< 0`), followed by an op-specific payload.
//! Requests may be answered out of order: a blocking request (AWAIT_COMPLETION, a blocking
//! DEQUEUE_MESSAGE, a BLOCKING bulk, ...) is answered when it completes, while the
//! connection goes on serving other requests. [`Op::Cancel`] asks the daemon to end a
//! pending request with `-EINTR`, which is how a signal interrupts an ioctl.
//!
//! Bulk data never travels through the socket: the client passes a sealed memfd with
//! `SCM_RIGHTS` alongside [`BulkRequest`], and the daemon reads it (transmit) or writes it
//! (receive).
//!
//! All integers are little-endian; the structs are `#[repr(C)]` with explicit padding.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::ioctl::Ioctl;

/// The protocol version spoken by this crate. A daemon refuses other major versions in
/// [`Op::Hello`] with `-EPROTO`.
pub const PROTOCOL_VERSION: u32 = 1;

/// `'VQRQ'`: first word of every request.
pub const REQUEST_MAGIC: u32 = 0x5651_5251;
/// `'VQRS'`: first word of every response.
pub const RESPONSE_MAGIC: u32 = 0x5651_5253;

/// The largest request frame (QUEUE_MESSAGE with 8 elements of a 4088-byte message).
pub const MAX_REQUEST: usize = 8 * 1024;

/// The largest frame either side sends. A response to AWAIT_COMPLETION is bounded by it:
/// the daemon stops a batch before the frame would exceed it.
pub const MAX_FRAME: usize = 160 * 1024;

/// The largest text (the status dump) returned in one frame.
pub const MAX_TEXT: usize = MAX_FRAME - 64;

/// The largest bulk one request may move, and the most bulk bytes one instance may have
/// outstanding: bulks that go through the daemon's bulk arena (32 MiB of shared memory,
/// common to every client) may hold at most half of it.
pub const MAX_BULK: u32 = 16 << 20;

/// `msg_size` of a [`CompletionRecord`] that carries no message.
pub const NO_MESSAGE: u32 = u32::MAX;

/// Default socket path when running as root.
pub const DEFAULT_SOCKET_ROOT: &str = "/run/vchiq/vchiq.sock";

/// Environment variable that overrides the socket path for every client.
pub const SOCKET_ENV: &str = "VCHIQ_SOCKET";

/// The socket path a client uses: `$VCHIQ_SOCKET`, else [`DEFAULT_SOCKET_ROOT`] for root,
/// else `$XDG_RUNTIME_DIR/vchiq/vchiq.sock` (falling back to `/tmp/vchiq-$UID/vchiq.sock`).
pub fn default_socket_path(euid: u32) -> std::path::PathBuf {
    if let Some(p) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return p.into();
    }
    if euid == 0 {
        return DEFAULT_SOCKET_ROOT.into();
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        Some(dir) => std::path::PathBuf::from(dir).join("vchiq/vchiq.sock"),
        None => format!("/tmp/vchiq-{euid}/vchiq.sock").into(),
    }
}

/// Operations. Values 0..=17 are the ioctl numbers (`_IOC_NR`) of spec §3.2; the rest are
/// daemon extensions that have no ioctl.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Op {
    /// VCHIQ_IOC_CONNECT (arg unused).
    Connect = 0,
    /// VCHIQ_IOC_SHUTDOWN (arg unused).
    Shutdown = 1,
    /// VCHIQ_IOC_CREATE_SERVICE, payload [`CreateServiceRequest`]; result = handle.
    CreateService = 2,
    /// VCHIQ_IOC_REMOVE_SERVICE, arg = handle.
    RemoveService = 3,
    /// VCHIQ_IOC_QUEUE_MESSAGE, payload [`QueueMessageRequest`] + `count` u32 sizes + data.
    QueueMessage = 4,
    /// VCHIQ_IOC_QUEUE_BULK_TRANSMIT, payload [`BulkRequest`] (+ memfd).
    QueueBulkTransmit = 5,
    /// VCHIQ_IOC_QUEUE_BULK_RECEIVE, payload [`BulkRequest`] (+ memfd).
    QueueBulkReceive = 6,
    /// VCHIQ_IOC_AWAIT_COMPLETION, payload [`AwaitRequest`]; response [`AwaitResponse`],
    /// `result` [`CompletionRecord`]s, then the message bytes.
    AwaitCompletion = 7,
    /// VCHIQ_IOC_DEQUEUE_MESSAGE, payload [`DequeueRequest`]; response = message data.
    DequeueMessage = 8,
    /// VCHIQ_IOC_GET_CLIENT_ID, arg = handle; result = client id.
    GetClientId = 9,
    /// VCHIQ_IOC_GET_CONFIG, arg = config_size; response = that many bytes of the config.
    GetConfig = 10,
    /// VCHIQ_IOC_CLOSE_SERVICE, arg = handle.
    CloseService = 11,
    /// VCHIQ_IOC_USE_SERVICE, arg = handle.
    UseService = 12,
    /// VCHIQ_IOC_RELEASE_SERVICE, arg = handle.
    ReleaseService = 13,
    /// VCHIQ_IOC_SET_SERVICE_OPTION, payload [`SetOptionRequest`].
    SetServiceOption = 14,
    /// VCHIQ_IOC_DUMP_PHYS_MEM: always `-ENOTTY`, as current drivers.
    DumpPhysMem = 15,
    /// VCHIQ_IOC_LIB_VERSION, arg = the library's VCHIQ_VERSION.
    LibVersion = 16,
    /// VCHIQ_IOC_CLOSE_DELIVERED, arg = handle.
    CloseDelivered = 17,
    /// First request of a connection: payload [`HelloRequest`], response [`HelloResponse`].
    Hello = 0x100,
    /// End the pending request whose tag is `arg` with `-EINTR`. No response of its own.
    Cancel = 0x101,
    /// The driver's state dump (what `read()` on /dev/vchiq returns), as UTF-8 text.
    Status = 0x102,
}

impl Op {
    /// Decodes an op number; `None` for unknown values.
    pub fn from_u32(v: u32) -> Option<Op> {
        match v {
            0x100 => Some(Op::Hello),
            0x101 => Some(Op::Cancel),
            0x102 => Some(Op::Status),
            v => Ioctl::from_nr(v).map(Op::from),
        }
    }

    /// The ioctl this op is, `None` for the daemon's own ops.
    pub fn ioctl(self) -> Option<Ioctl> {
        Ioctl::from_nr(self as u32)
    }

    /// The name used in logs (the ioctl name for ioctl ops).
    pub fn name(self) -> &'static str {
        match (self, self.ioctl()) {
            (_, Some(ioctl)) => ioctl.name(),
            (Op::Hello, None) => "HELLO",
            (Op::Cancel, None) => "CANCEL",
            (Op::Status, None) => "STATUS",
            (_, None) => "UNKNOWN",
        }
    }
}

/// The op that forwards an ioctl: same number, same name. This and [`Op::ioctl`] are the
/// only places the two lists meet; a test keeps them equal.
impl From<Ioctl> for Op {
    fn from(i: Ioctl) -> Op {
        match i {
            Ioctl::Connect => Op::Connect,
            Ioctl::Shutdown => Op::Shutdown,
            Ioctl::CreateService => Op::CreateService,
            Ioctl::RemoveService => Op::RemoveService,
            Ioctl::QueueMessage => Op::QueueMessage,
            Ioctl::QueueBulkTransmit => Op::QueueBulkTransmit,
            Ioctl::QueueBulkReceive => Op::QueueBulkReceive,
            Ioctl::AwaitCompletion => Op::AwaitCompletion,
            Ioctl::DequeueMessage => Op::DequeueMessage,
            Ioctl::GetClientId => Op::GetClientId,
            Ioctl::GetConfig => Op::GetConfig,
            Ioctl::CloseService => Op::CloseService,
            Ioctl::UseService => Op::UseService,
            Ioctl::ReleaseService => Op::ReleaseService,
            Ioctl::SetServiceOption => Op::SetServiceOption,
            Ioctl::DumpPhysMem => Op::DumpPhysMem,
            Ioctl::LibVersion => Op::LibVersion,
            Ioctl::CloseDelivered => Op::CloseDelivered,
        }
    }
}

/// Header of every request frame (24 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct RequestHeader {
    /// [`REQUEST_MAGIC`].
    pub magic: u32,
    /// Chosen by the client; echoed in the response. Must be unique among pending requests.
    pub tag: u32,
    /// An [`Op`] value.
    pub op: u32,
    /// [`REQUEST_POSTED`] (QUEUE_MESSAGE), [`REQUEST_BATCH`] (DEQUEUE_MESSAGE) or 0; other
    /// bits, or a flag on another op, are refused with EINVAL.
    pub flags: u32,
    /// The value argument of `_IO` ioctls (a handle, a version), else 0.
    pub arg: u64,
}

/// [`RequestHeader::flags`]: a QUEUE_MESSAGE that is answered only if it fails. The client
/// does not wait for it: messages stream without a round trip each. The daemon serves a
/// connection's requests in order, so a posted message is queued before anything the
/// client sends after it; while it waits for quota the daemon reads nothing more from that
/// connection (the socket's buffer then holds the client back). A failure is answered
/// with the request's tag, the negative errno as the result, and the service handle (u32)
/// as the payload.
pub const REQUEST_POSTED: u32 = 1;

/// [`RequestHeader::flags`]: a DEQUEUE_MESSAGE that takes every queued message that fits
/// one response, not just the first (it waits for the first one as a plain blocking
/// dequeue does). The result is the number of messages; the payload holds each as a u32
/// size and its bytes. A message larger than `bufsize` ends the batch (it is the first
/// message of the next one, or EMSGSIZE when it is first).
pub const REQUEST_BATCH: u32 = 2;

/// [`RequestHeader::flags`]: a QUEUE_BULK_TRANSMIT whose data follows the `BulkRequest`
/// in the frame (exactly `size` bytes, at most [`MAX_INLINE_BULK`]) instead of coming in a
/// memfd: small bulks cost no memfd.
pub const REQUEST_INLINE: u32 = 4;

/// [`ResponseHeader::tag`] of a frame that answers no request: the daemon refused the
/// connection (and closes it). The result is a negated errno (`EUSERS`: the client limit;
/// `EPERM`: the client's identity could not be established) and the payload a UTF-8 reason
/// for the user. Clients never use tag 0 for a request.
pub const REFUSED_TAG: u32 = 0;

/// The largest inline bulk ([`REQUEST_INLINE`]).
pub const MAX_INLINE_BULK: usize = 4096;

/// Header of every response frame (16 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ResponseHeader {
    /// [`RESPONSE_MAGIC`].
    pub magic: u32,
    /// The request's tag.
    pub tag: u32,
    /// The ioctl's return value (>= 0) or a negated errno.
    pub result: i64,
}

/// Payload of [`Op::Hello`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct HelloRequest {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// Reserved (zero).
    pub flags: u32,
}

/// Response payload of [`Op::Hello`]: what the daemon attests about the caller.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct HelloResponse {
    /// The daemon's [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The instance's client id: the caller's PID as the kernel reported it to the daemon.
    pub client_id: u32,
    /// The daemon's instance number (for `vchiq status`).
    pub instance: u32,
    /// The uid the kernel reported.
    pub uid: u32,
    /// Inode of the caller's PID namespace, as the daemon read it (0 if unknown).
    pub pid_namespace: u64,
}

/// Payload of [`Op::CreateService`] (layout-independent form of `VCHIQ_CREATE_SERVICE_T`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CreateServiceRequest {
    /// Service fourcc.
    pub fourcc: u32,
    /// Service version.
    pub version: i16,
    /// Oldest compatible version.
    pub version_min: i16,
    /// 1: open a client service (sends OPEN); 0: add a server.
    pub is_open: u32,
    /// 1: VCHI-style service (messages are dequeued, completions carry no header).
    pub is_vchi: u32,
    /// Echoed back as `service_userdata` in completions.
    pub userdata: u64,
}

/// Payload of [`Op::QueueMessage`]; followed by `count` little-endian u32 element sizes and
/// then the elements' bytes, concatenated.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct QueueMessageRequest {
    /// Service handle.
    pub handle: u32,
    /// Number of elements (at most 8).
    pub count: u32,
}

/// Payload of [`Op::QueueBulkTransmit`] / [`Op::QueueBulkReceive`]. Unless `mode` is
/// WAITING, the frame carries one memfd (`SCM_RIGHTS`) of at least `size` bytes, sealed
/// against shrinking (`F_SEAL_SHRINK`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct BulkRequest {
    /// Service handle.
    pub handle: u32,
    /// Bytes to move.
    pub size: u32,
    /// Echoed back as `bulk_userdata`.
    pub userdata: u64,
    /// A `BulkMode` value (CALLBACK, BLOCKING, NOCALLBACK, WAITING).
    pub mode: u32,
    /// The calling thread's id: a BLOCKING bulk interrupted by [`Op::Cancel`] is resumed
    /// by a WAITING request from the same thread.
    pub thread: u32,
}

/// Response payload of a bulk request that was interrupted: the mode the caller must
/// write back (WAITING) before retrying.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct BulkResponse {
    /// The mode to retry with.
    pub mode: u32,
    /// Explicit padding (zero).
    pub _pad: u32,
}

/// Payload of [`Op::AwaitCompletion`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct AwaitRequest {
    /// Capacity of the caller's completion array.
    pub count: u32,
    /// Size of each message buffer.
    pub msgbufsize: u32,
    /// Number of message buffers the caller has.
    pub msgbufcount: u32,
    /// Explicit padding (zero).
    pub _pad: u32,
}

/// Response payload of [`Op::AwaitCompletion`], followed by `result` records and then
/// the message bytes (header + data each) of the records that carry one, in order.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct AwaitResponse {
    /// Message buffers left (`msgbufcount` written back; buffers are taken from the end).
    pub msgbufcount: u32,
    /// Explicit padding (zero).
    pub _pad: u32,
}

/// One completion.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CompletionRecord {
    /// A `Reason` value.
    pub reason: u32,
    /// Bytes of message (8-byte header + data) that follow for this record, or
    /// [`NO_MESSAGE`].
    pub msg_size: u32,
    /// The userdata given at CREATE_SERVICE.
    pub service_userdata: u64,
    /// The userdata given with the bulk.
    pub bulk_userdata: u64,
}

/// Payload of [`Op::DequeueMessage`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct DequeueRequest {
    /// Service handle.
    pub handle: u32,
    /// Non-zero: wait for a message.
    pub blocking: u32,
    /// Capacity of the caller's buffer.
    pub bufsize: u32,
    /// Non-zero: the caller passed a NULL buffer (release without copying).
    pub null_buf: u32,
}

/// Payload of [`Op::SetServiceOption`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SetOptionRequest {
    /// Service handle.
    pub handle: u32,
    /// A `ServiceOption` value.
    pub option: u32,
    /// The value.
    pub value: i32,
}

const _: () = assert!(size_of::<RequestHeader>() == 24);
const _: () = assert!(size_of::<ResponseHeader>() == 16);
const _: () = assert!(size_of::<HelloResponse>() == 24);
const _: () = assert!(size_of::<CreateServiceRequest>() == 24);
const _: () = assert!(size_of::<BulkRequest>() == 24);
const _: () = assert!(size_of::<CompletionRecord>() == 24);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ioctl_is_the_op_of_its_number_and_name() {
        for i in Ioctl::ALL {
            let op = Op::from(i);
            assert_eq!(op as u32, i.nr(), "{}", i.name());
            assert_eq!(op.ioctl(), Some(i));
            assert_eq!(op.name(), i.name());
            assert_eq!(Op::from_u32(i.nr()), Some(op));
        }
        for op in [Op::Hello, Op::Cancel, Op::Status] {
            assert_eq!(op.ioctl(), None);
            assert_eq!(Op::from_u32(op as u32), Some(op));
        }
        assert_eq!(Op::from_u32(18), None);
    }

    #[test]
    fn ops_round_trip() {
        for v in (0..=17).chain(0x100..=0x102) {
            let op = Op::from_u32(v).expect("known op");
            assert_eq!(op as u32, v);
            assert!(!op.name().is_empty());
        }
        assert_eq!(Op::from_u32(18), None);
        assert_eq!(Op::from_u32(0xffff_ffff), None);
    }

    #[test]
    fn header_encoding_is_little_endian() {
        let h = RequestHeader {
            magic: REQUEST_MAGIC,
            tag: 7,
            op: Op::GetClientId as u32,
            flags: 0,
            arg: 0x1234,
        };
        let b = h.as_bytes();
        assert_eq!(&b[0..4], &REQUEST_MAGIC.to_le_bytes());
        assert_eq!(&b[4..8], &7u32.to_le_bytes());
        assert_eq!(&b[8..12], &9u32.to_le_bytes());
        assert_eq!(&b[16..24], &0x1234u64.to_le_bytes());
        assert_eq!(RequestHeader::read_from_bytes(b).unwrap(), h);
    }

    #[test]
    fn socket_path_rules() {
        // Only the pure branches: the env var is process-global, so it is not touched here.
        if std::env::var_os(SOCKET_ENV).is_none() {
            assert_eq!(
                default_socket_path(0),
                std::path::PathBuf::from(DEFAULT_SOCKET_ROOT)
            );
        }
    }
}
