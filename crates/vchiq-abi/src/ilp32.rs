//! ioctl argument structs as a 32-bit (ILP32: i386, ARM EABI) caller lays them out (spec §3.3).
//!
//! Pointers and `size_t` are `u32`. None of these structs holds an 8-byte
//! scalar, so they have no holes and no padding fields. Field types
//! otherwise match [`crate::lp64`].

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub use crate::common::SetServiceOption;

/// vchiq_if.h: `VCHIQ_SERVICE_PARAMS_T` (16 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ServiceParams {
    /// Service fourcc (see [`crate::FourCc`]).
    pub fourcc: i32,
    /// Callback function pointer (ignored by the driver).
    pub callback: u32,
    /// Opaque pointer, echoed back as `service_userdata` in completions.
    pub userdata: u32,
    /// Service version.
    pub version: i16,
    /// Oldest peer version accepted.
    pub version_min: i16,
}

/// vchiq_ioctl.h: `VCHIQ_CREATE_SERVICE_T` (28 bytes).
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
}

/// vchiq_if.h: `VCHIQ_ELEMENT_T` (8 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Element {
    /// Pointer to the data.
    pub data: u32,
    /// Length in bytes (`int` in userland, read as unsigned by the kernel).
    pub size: u32,
}

/// vchiq_ioctl.h: `VCHIQ_QUEUE_MESSAGE_T` (12 bytes).
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
    pub elements: u32,
}

/// vchiq_ioctl.h: `VCHIQ_QUEUE_BULK_TRANSFER_T` (20 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct QueueBulkTransfer {
    /// Kernel service handle.
    pub handle: u32,
    /// Pointer to the buffer.
    pub data: u32,
    /// Length in bytes.
    pub size: u32,
    /// Opaque pointer, echoed back as `bulk_userdata`.
    pub userdata: u32,
    /// IN/OUT: a [`crate::enums::BulkMode`]; the driver writes back WAITING on `-EINTR`.
    pub mode: u32,
}

/// vchiq_ioctl.h: `VCHIQ_COMPLETION_DATA_T` (16 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CompletionData {
    /// A [`crate::enums::Reason`].
    pub reason: u32,
    /// Pointer to the message (header + data) in a user buffer, or 0.
    pub header: u32,
    /// The `userdata` given at CREATE_SERVICE.
    pub service_userdata: u32,
    /// The `userdata` of the bulk transfer, or 0.
    pub bulk_userdata: u32,
}

/// vchiq_ioctl.h: `VCHIQ_AWAIT_COMPLETION_T` (20 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct AwaitCompletion {
    /// Capacity of `buf`, in records.
    pub count: u32,
    /// Pointer to an array of [`CompletionData`].
    pub buf: u32,
    /// Size of each message buffer.
    pub msgbufsize: u32,
    /// IN/OUT: number of entries of `msgbufs`; the driver takes them from the end.
    pub msgbufcount: u32,
    /// Pointer to an array of message-buffer pointers.
    pub msgbufs: u32,
}

/// vchiq_ioctl.h: `VCHIQ_DEQUEUE_MESSAGE_T` (16 bytes).
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
    /// Pointer to the buffer for the payload (no header), or 0 to discard.
    pub buf: u32,
}

/// vchiq_ioctl.h: `VCHIQ_GET_CONFIG_T` (8 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GetConfig {
    /// Bytes of [`crate::Config`] to copy (at most 20).
    pub config_size: u32,
    /// Pointer to the caller's [`crate::Config`].
    pub pconfig: u32,
}

/// vchiq_ioctl.h: `VCHIQ_DUMP_MEM_T` (8 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct DumpMem {
    /// Pointer to the memory to dump.
    pub virt_addr: u32,
    /// Length in bytes (`size_t`).
    pub num_bytes: u32,
}

const _: () = assert!(size_of::<ServiceParams>() == 16);
const _: () = assert!(size_of::<CreateService>() == 28);
const _: () = assert!(size_of::<Element>() == 8);
const _: () = assert!(size_of::<QueueMessage>() == 12);
const _: () = assert!(size_of::<QueueBulkTransfer>() == 20);
const _: () = assert!(size_of::<CompletionData>() == 16);
const _: () = assert!(size_of::<AwaitCompletion>() == 20);
const _: () = assert!(size_of::<DequeueMessage>() == 16);
const _: () = assert!(size_of::<GetConfig>() == 8);
const _: () = assert!(size_of::<SetServiceOption>() == 12);
const _: () = assert!(size_of::<DumpMem>() == 8);

#[cfg(test)]
mod tests {
    use core::mem::offset_of;

    use super::*;

    #[test]
    fn offsets_match_spec() {
        assert_eq!(offset_of!(ServiceParams, fourcc), 0);
        assert_eq!(offset_of!(ServiceParams, callback), 4);
        assert_eq!(offset_of!(ServiceParams, userdata), 8);
        assert_eq!(offset_of!(ServiceParams, version), 12);
        assert_eq!(offset_of!(ServiceParams, version_min), 14);

        assert_eq!(offset_of!(CreateService, params), 0);
        assert_eq!(offset_of!(CreateService, is_open), 16);
        assert_eq!(offset_of!(CreateService, is_vchi), 20);
        assert_eq!(offset_of!(CreateService, handle), 24);

        assert_eq!(offset_of!(Element, data), 0);
        assert_eq!(offset_of!(Element, size), 4);

        assert_eq!(offset_of!(QueueMessage, handle), 0);
        assert_eq!(offset_of!(QueueMessage, count), 4);
        assert_eq!(offset_of!(QueueMessage, elements), 8);

        assert_eq!(offset_of!(QueueBulkTransfer, handle), 0);
        assert_eq!(offset_of!(QueueBulkTransfer, data), 4);
        assert_eq!(offset_of!(QueueBulkTransfer, size), 8);
        assert_eq!(offset_of!(QueueBulkTransfer, userdata), 12);
        assert_eq!(offset_of!(QueueBulkTransfer, mode), 16);

        assert_eq!(offset_of!(CompletionData, reason), 0);
        assert_eq!(offset_of!(CompletionData, header), 4);
        assert_eq!(offset_of!(CompletionData, service_userdata), 8);
        assert_eq!(offset_of!(CompletionData, bulk_userdata), 12);

        assert_eq!(offset_of!(AwaitCompletion, count), 0);
        assert_eq!(offset_of!(AwaitCompletion, buf), 4);
        assert_eq!(offset_of!(AwaitCompletion, msgbufsize), 8);
        assert_eq!(offset_of!(AwaitCompletion, msgbufcount), 12);
        assert_eq!(offset_of!(AwaitCompletion, msgbufs), 16);

        assert_eq!(offset_of!(DequeueMessage, handle), 0);
        assert_eq!(offset_of!(DequeueMessage, blocking), 4);
        assert_eq!(offset_of!(DequeueMessage, bufsize), 8);
        assert_eq!(offset_of!(DequeueMessage, buf), 12);

        assert_eq!(offset_of!(GetConfig, config_size), 0);
        assert_eq!(offset_of!(GetConfig, pconfig), 4);

        assert_eq!(offset_of!(SetServiceOption, handle), 0);
        assert_eq!(offset_of!(SetServiceOption, option), 4);
        assert_eq!(offset_of!(SetServiceOption, value), 8);

        assert_eq!(offset_of!(DumpMem, virt_addr), 0);
        assert_eq!(offset_of!(DumpMem, num_bytes), 4);
    }
}
