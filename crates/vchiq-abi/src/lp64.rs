//! ioctl argument structs as a 64-bit (LP64: x86-64, AArch64) caller lays them out (spec §3.3).
//!
//! Pointers and `size_t` are `u64`; every hole the C compiler would leave
//! is an explicit zero-filled `_padN` field, so the structs derive
//! [`IntoBytes`] and have the same size and offsets on any host.
//! C `int` fields are `i32`, `unsigned int` and C enums (which have no
//! negative values, so GCC makes them `unsigned int`) are `u32`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub use crate::common::SetServiceOption;

/// vchiq_if.h: `VCHIQ_SERVICE_PARAMS_T` (32 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ServiceParams {
    /// Service fourcc (see [`crate::FourCc`]).
    pub fourcc: i32,
    /// Padding (always zero).
    pub _pad0: [u8; 4],
    /// Callback function pointer (ignored by the driver).
    pub callback: u64,
    /// Opaque pointer, echoed back as `service_userdata` in completions.
    pub userdata: u64,
    /// Service version.
    pub version: i16,
    /// Oldest peer version accepted.
    pub version_min: i16,
    /// Padding (always zero).
    pub _pad1: [u8; 4],
}

/// vchiq_ioctl.h: `VCHIQ_CREATE_SERVICE_T` (48 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CreateService {
    /// Service parameters.
    pub params: ServiceParams,
    /// Non-zero: open a client (send OPEN); zero: add a server.
    pub is_open: i32,
    /// Non-zero: a VCHI service (messages are dequeued, not delivered).
    pub is_vchi: i32,
    /// OUT: the kernel service handle.
    pub handle: u32,
    /// Padding (always zero).
    pub _pad0: [u8; 4],
}

/// vchiq_if.h: `VCHIQ_ELEMENT_T` (16 bytes); layout-identical to VCHI's `VCHI_MSG_VECTOR_T`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Element {
    /// Pointer to the data.
    pub data: u64,
    /// Length in bytes (`int` in userland, read as unsigned by the kernel).
    pub size: u32,
    /// Padding (always zero).
    pub _pad0: [u8; 4],
}

/// vchiq_ioctl.h: `VCHIQ_QUEUE_MESSAGE_T` (16 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct QueueMessage {
    /// Kernel service handle.
    pub handle: u32,
    /// Number of elements (at most `MAX_ELEMENTS`).
    pub count: u32,
    /// Pointer to `count` [`Element`]s.
    pub elements: u64,
}

/// vchiq_ioctl.h: `VCHIQ_QUEUE_BULK_TRANSFER_T` (40 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct QueueBulkTransfer {
    /// Kernel service handle.
    pub handle: u32,
    /// Padding (always zero).
    pub _pad0: [u8; 4],
    /// Pointer to the buffer.
    pub data: u64,
    /// Length in bytes.
    pub size: u32,
    /// Padding (always zero).
    pub _pad1: [u8; 4],
    /// Opaque pointer, echoed back as `bulk_userdata`.
    pub userdata: u64,
    /// IN/OUT: a [`crate::enums::BulkMode`]; the driver writes back WAITING on `-EINTR`.
    pub mode: u32,
    /// Padding (always zero).
    pub _pad2: [u8; 4],
}

/// vchiq_ioctl.h: `VCHIQ_COMPLETION_DATA_T` (32 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CompletionData {
    /// A [`crate::enums::Reason`].
    pub reason: u32,
    /// Padding (always zero).
    pub _pad0: [u8; 4],
    /// Pointer to the message (header + data) in a user buffer, or 0.
    pub header: u64,
    /// The `userdata` given at CREATE_SERVICE.
    pub service_userdata: u64,
    /// The `userdata` of the bulk transfer, or 0.
    pub bulk_userdata: u64,
}

/// vchiq_ioctl.h: `VCHIQ_AWAIT_COMPLETION_T` (32 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct AwaitCompletion {
    /// Capacity of `buf`, in records.
    pub count: u32,
    /// Padding (always zero).
    pub _pad0: [u8; 4],
    /// Pointer to an array of [`CompletionData`].
    pub buf: u64,
    /// Size of each message buffer.
    pub msgbufsize: u32,
    /// IN/OUT: number of entries of `msgbufs`; the driver takes them from the end.
    pub msgbufcount: u32,
    /// Pointer to an array of message-buffer pointers.
    pub msgbufs: u64,
}

/// vchiq_ioctl.h: `VCHIQ_DEQUEUE_MESSAGE_T` (24 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct DequeueMessage {
    /// Kernel service handle.
    pub handle: u32,
    /// Non-zero: wait for a message.
    pub blocking: i32,
    /// Size of `buf`.
    pub bufsize: u32,
    /// Padding (always zero).
    pub _pad0: [u8; 4],
    /// Pointer to the buffer for the payload (no header), or 0 to discard.
    pub buf: u64,
}

/// vchiq_ioctl.h: `VCHIQ_GET_CONFIG_T` (16 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GetConfig {
    /// Bytes of [`crate::Config`] to copy (at most 20).
    pub config_size: u32,
    /// Padding (always zero).
    pub _pad0: [u8; 4],
    /// Pointer to the caller's [`crate::Config`].
    pub pconfig: u64,
}

/// vchiq_ioctl.h: `VCHIQ_DUMP_MEM_T` (16 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct DumpMem {
    /// Pointer to the memory to dump.
    pub virt_addr: u64,
    /// Length in bytes (`size_t`).
    pub num_bytes: u64,
}

const _: () = assert!(size_of::<ServiceParams>() == 32);
const _: () = assert!(size_of::<CreateService>() == 48);
const _: () = assert!(size_of::<Element>() == 16);
const _: () = assert!(size_of::<QueueMessage>() == 16);
const _: () = assert!(size_of::<QueueBulkTransfer>() == 40);
const _: () = assert!(size_of::<CompletionData>() == 32);
const _: () = assert!(size_of::<AwaitCompletion>() == 32);
const _: () = assert!(size_of::<DequeueMessage>() == 24);
const _: () = assert!(size_of::<GetConfig>() == 16);
const _: () = assert!(size_of::<SetServiceOption>() == 12);
const _: () = assert!(size_of::<DumpMem>() == 16);

#[cfg(test)]
mod tests {
    use core::mem::offset_of;

    use super::*;

    #[test]
    fn offsets_match_spec() {
        assert_eq!(offset_of!(ServiceParams, fourcc), 0);
        assert_eq!(offset_of!(ServiceParams, callback), 8);
        assert_eq!(offset_of!(ServiceParams, userdata), 16);
        assert_eq!(offset_of!(ServiceParams, version), 24);
        assert_eq!(offset_of!(ServiceParams, version_min), 26);

        assert_eq!(offset_of!(CreateService, params), 0);
        assert_eq!(offset_of!(CreateService, is_open), 32);
        assert_eq!(offset_of!(CreateService, is_vchi), 36);
        assert_eq!(offset_of!(CreateService, handle), 40);

        assert_eq!(offset_of!(Element, data), 0);
        assert_eq!(offset_of!(Element, size), 8);

        assert_eq!(offset_of!(QueueMessage, handle), 0);
        assert_eq!(offset_of!(QueueMessage, count), 4);
        assert_eq!(offset_of!(QueueMessage, elements), 8);

        assert_eq!(offset_of!(QueueBulkTransfer, handle), 0);
        assert_eq!(offset_of!(QueueBulkTransfer, data), 8);
        assert_eq!(offset_of!(QueueBulkTransfer, size), 16);
        assert_eq!(offset_of!(QueueBulkTransfer, userdata), 24);
        assert_eq!(offset_of!(QueueBulkTransfer, mode), 32);

        assert_eq!(offset_of!(CompletionData, reason), 0);
        assert_eq!(offset_of!(CompletionData, header), 8);
        assert_eq!(offset_of!(CompletionData, service_userdata), 16);
        assert_eq!(offset_of!(CompletionData, bulk_userdata), 24);

        assert_eq!(offset_of!(AwaitCompletion, count), 0);
        assert_eq!(offset_of!(AwaitCompletion, buf), 8);
        assert_eq!(offset_of!(AwaitCompletion, msgbufsize), 16);
        assert_eq!(offset_of!(AwaitCompletion, msgbufcount), 20);
        assert_eq!(offset_of!(AwaitCompletion, msgbufs), 24);

        assert_eq!(offset_of!(DequeueMessage, handle), 0);
        assert_eq!(offset_of!(DequeueMessage, blocking), 4);
        assert_eq!(offset_of!(DequeueMessage, bufsize), 8);
        assert_eq!(offset_of!(DequeueMessage, buf), 16);

        assert_eq!(offset_of!(GetConfig, config_size), 0);
        assert_eq!(offset_of!(GetConfig, pconfig), 8);

        assert_eq!(offset_of!(SetServiceOption, handle), 0);
        assert_eq!(offset_of!(SetServiceOption, option), 4);
        assert_eq!(offset_of!(SetServiceOption, value), 8);

        assert_eq!(offset_of!(DumpMem, virt_addr), 0);
        assert_eq!(offset_of!(DumpMem, num_bytes), 8);
    }
}
