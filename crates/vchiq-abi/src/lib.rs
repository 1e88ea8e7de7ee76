//! The VCHIQ binary interface: `/dev/vchiq` ioctl numbers and argument
//! structs, the enums of the ioctl and slot protocols, and the protocol
//! constants. This crate does no I/O and has no `unsafe`.
//!
//! # The ABI model
//!
//! A process talks to `/dev/vchiq` with `ioctl(fd, cmd, arg)`:
//!
//! - **By value.** `_IO` commands (CONNECT, SHUTDOWN, REMOVE_SERVICE,
//!   GET_CLIENT_ID, CLOSE_SERVICE, USE_SERVICE, RELEASE_SERVICE,
//!   LIB_VERSION, CLOSE_DELIVERED) pass a service handle, the library's
//!   version, or 0 directly as `arg`; see [`Ioctl::takes_value`].
//! - **By pointer.** The others pass a pointer to a C struct in the
//!   caller's memory. Some fields are IN/OUT (the driver writes back the
//!   handle, `mode` or `msgbufcount`), and some are themselves pointers to
//!   more caller memory (elements, completion records, message buffers).
//!
//! The layout of those structs depends on the caller's data model:
//!
//! - **LP64** (x86-64, AArch64): `long` and pointers are 8 bytes, so
//!   pointers sit at 8-byte offsets and the compiler leaves holes. See
//!   [`lp64`], where every hole is an explicit `_padN` field.
//! - **ILP32** (i386, ARM EABI): `int`, `long` and pointers are 4 bytes and
//!   there are no holes. See [`ilp32`].
//!
//! Because `_IOC` encodes the struct size into the request number, most
//! pointer commands have two numbers and the number alone tells a 32-bit
//! caller from a 64-bit one ([`Ioctl::decode`]). A driver can convert
//! either layout into one view, the `*Args` types of [`args`], with
//! pointers widened to `u64`, and handle both with one code path.
//!
//! All integers are in the host's byte order (on every Raspberry Pi: little
//! endian). The layouts of the slot-protocol structures (slot zero, shared
//! state) are not here; only their sizes are, in [`defs`].
//!
//! # Example: a driver serving `CREATE_SERVICE` from either kind of caller
//!
//! ```
//! use vchiq_abi::{CreateServiceArgs, FourCc, Ioctl, Layout};
//!
//! // What a 32-bit client would pass.
//! let request = CreateServiceArgs {
//!     fourcc: FourCc::ECHO,
//!     userdata: 0x1234,
//!     version: 3,
//!     version_min: 3,
//!     is_open: true,
//!     ..Default::default()
//! };
//! let cmd = vchiq_abi::ioctl::VCHIQ_IOC_CREATE_SERVICE32;
//! let bytes = request.encode(Layout::Ilp32);
//!
//! // The driver side: one code path for both layouts.
//! let (ioctl, layout) = Ioctl::decode(cmd).expect("known command");
//! assert_eq!((ioctl, layout), (Ioctl::CreateService, Layout::Ilp32));
//! let mut args = CreateServiceArgs::decode(layout, &bytes)?;
//! assert_eq!(args.fourcc.to_string(), "echo");
//! args.handle = 0x1001; // OUT field
//! let reply = args.encode(layout);
//! assert_eq!(reply.len(), Ioctl::CreateService.arg_size(layout));
//! # Ok::<(), vchiq_abi::AbiError>(())
//! ```
//!
//! # Where the numbers come from
//!
//! Every value is taken from the project's specification
//! (`shared/spec/vchiq.md`, §2 and §3), which records the
//! raspberrypi/userland and Linux `vc04_services` headers and sizes and
//! offsets measured with gcc for x86-64 and `-m32`. Constants name their C
//! counterpart in their doc comment. Ioctl numbers are computed from the
//! struct sizes with the `_IOC` formula and pinned against the spec's hex
//! table in tests; struct sizes are checked at compile time and every
//! field offset in tests.

#[macro_use]
mod macros;

pub mod args;
pub mod common;
pub mod defs;
pub mod enums;
pub mod error;
pub mod fourcc;
pub mod ilp32;
pub mod ioctl;
pub mod lp64;
pub mod msg;
pub mod wire;

pub use args::{
    AbiArgs, AwaitCompletionArgs, CompletionDataArgs, CreateServiceArgs, DequeueMessageArgs,
    DumpMemArgs, ElementArgs, GetConfigArgs, QueueBulkTransferArgs, QueueMessageArgs,
    SetServiceOptionArgs,
};
pub use common::{Config, DRIVER_CONFIG, Header};
pub use enums::{BulkMode, Reason, ServiceOption, Status, VchiCallbackReason, VchiFlags};
pub use error::{AbiError, Result, UnknownValue};
pub use fourcc::{FourCc, FourCcParseError};
pub use ioctl::{Ioctl, Layout};
pub use msg::{ConnState, MsgType, SrvState};
