//! The subset of the FUSE kernel protocol (`include/uapi/linux/fuse.h`, protocol 7.x) that
//! the file node speaks: opcodes, flags and the `#[repr(C)]` request and reply structs.
//!
//! Only facts of the ABI are recorded here (numbers, field order, sizes); sizes are
//! checked at compile time. All integers are in the host's byte order.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// fuse.h: `FUSE_KERNEL_VERSION`.
pub const KERNEL_VERSION: u32 = 7;
/// The minor version this implementation answers with (at most): 7.31 has every struct
/// used here in its final size.
pub const KERNEL_MINOR: u32 = 31;
/// fuse.h: `FUSE_ROOT_ID`.
pub const ROOT_ID: u64 = 1;

/// fuse.h: `enum fuse_opcode` (the values the node handles or names in logs).
#[allow(missing_docs)]
pub mod opcode {
    pub const LOOKUP: u32 = 1;
    pub const FORGET: u32 = 2;
    pub const GETATTR: u32 = 3;
    pub const OPEN: u32 = 14;
    pub const READ: u32 = 15;
    pub const STATFS: u32 = 17;
    pub const RELEASE: u32 = 18;
    pub const FLUSH: u32 = 25;
    pub const INIT: u32 = 26;
    pub const INTERRUPT: u32 = 36;
    pub const DESTROY: u32 = 38;
    pub const IOCTL: u32 = 39;
    pub const BATCH_FORGET: u32 = 42;
}

/// fuse.h: `FOPEN_DIRECT_IO`: bypass the page cache (reads reach the daemon).
pub const FOPEN_DIRECT_IO: u32 = 1 << 0;
/// fuse.h: `FOPEN_NONSEEKABLE`.
pub const FOPEN_NONSEEKABLE: u32 = 1 << 2;

/// fuse.h: `FUSE_IOCTL_32BIT`: the caller's data model is ILP32 (it arrives with
/// `FUSE_IOCTL_COMPAT`, bit 0, set too: a 32-bit caller on a 64-bit kernel).
pub const IOCTL_32BIT: u32 = 1 << 3;

/// `S_IFDIR` / `S_IFREG`.
pub const S_IFDIR: u32 = 0o040000;
/// `S_IFREG`.
pub const S_IFREG: u32 = 0o100000;

/// fuse.h: `struct fuse_in_header` (40 bytes).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct InHeader {
    /// Length of the request, header included.
    pub len: u32,
    /// Opcode.
    pub opcode: u32,
    /// Request id; the reply echoes it.
    pub unique: u64,
    /// Inode.
    pub nodeid: u64,
    /// Caller's fsuid.
    pub uid: u32,
    /// Caller's fsgid.
    pub gid: u32,
    /// Caller's thread id, in the daemon's PID namespace (0 when invisible or for RELEASE).
    pub pid: u32,
    /// Length of extensions (7.38+).
    pub total_extlen: u16,
    /// Padding.
    pub _pad: u16,
}

/// fuse.h: `struct fuse_out_header` (16 bytes).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct OutHeader {
    /// Length of the reply, header included.
    pub len: u32,
    /// 0 or a negated errno.
    pub error: i32,
    /// The request's id.
    pub unique: u64,
}

/// fuse.h: `struct fuse_init_in` (the first 16 bytes; later fields are ignored).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct InitIn {
    /// Kernel major version.
    pub major: u32,
    /// Kernel minor version.
    pub minor: u32,
    /// Readahead.
    pub max_readahead: u32,
    /// Kernel capability flags.
    pub flags: u32,
}

/// fuse.h: `struct fuse_init_out` (64 bytes).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct InitOut {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Readahead.
    pub max_readahead: u32,
    /// Capabilities wanted (none).
    pub flags: u32,
    /// Background request limit.
    pub max_background: u16,
    /// Congestion threshold.
    pub congestion_threshold: u16,
    /// Largest WRITE.
    pub max_write: u32,
    /// Timestamp granularity.
    pub time_gran: u32,
    /// Largest request in pages (with `FUSE_MAX_PAGES`).
    pub max_pages: u16,
    /// DAX alignment.
    pub map_alignment: u16,
    /// More capability flags.
    pub flags2: u32,
    /// Stacking depth.
    pub max_stack_depth: u32,
    /// Reserved.
    pub unused: [u32; 6],
}

/// fuse.h: `struct fuse_attr` (88 bytes).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Attr {
    /// Inode number.
    pub ino: u64,
    /// Size.
    pub size: u64,
    /// Blocks.
    pub blocks: u64,
    /// Access time.
    pub atime: u64,
    /// Modification time.
    pub mtime: u64,
    /// Change time.
    pub ctime: u64,
    /// ns part.
    pub atimensec: u32,
    /// ns part.
    pub mtimensec: u32,
    /// ns part.
    pub ctimensec: u32,
    /// Type and permission bits.
    pub mode: u32,
    /// Links.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device (unused: the node is a regular file).
    pub rdev: u32,
    /// Block size.
    pub blksize: u32,
    /// Attribute flags.
    pub flags: u32,
}

/// fuse.h: `struct fuse_entry_out` (128 bytes).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EntryOut {
    /// Inode.
    pub nodeid: u64,
    /// Generation.
    pub generation: u64,
    /// Name cache validity (s).
    pub entry_valid: u64,
    /// Attribute cache validity (s).
    pub attr_valid: u64,
    /// ns part.
    pub entry_valid_nsec: u32,
    /// ns part.
    pub attr_valid_nsec: u32,
    /// Attributes.
    pub attr: Attr,
}

/// fuse.h: `struct fuse_attr_out` (104 bytes).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct AttrOut {
    /// Validity (s).
    pub attr_valid: u64,
    /// ns part.
    pub attr_valid_nsec: u32,
    /// Padding.
    pub dummy: u32,
    /// Attributes.
    pub attr: Attr,
}

/// fuse.h: `struct fuse_open_out` (16 bytes).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct OpenOut {
    /// File handle, echoed in later requests on this open file.
    pub fh: u64,
    /// `FOPEN_*`.
    pub open_flags: u32,
    /// Backing file id (unused).
    pub backing_id: i32,
}

/// fuse.h: `struct fuse_release_in` (24 bytes).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ReleaseIn {
    /// File handle.
    pub fh: u64,
    /// open(2) flags.
    pub flags: u32,
    /// Release flags.
    pub release_flags: u32,
    /// Lock owner.
    pub lock_owner: u64,
}

/// fuse.h: `struct fuse_read_in` (40 bytes).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ReadIn {
    /// File handle.
    pub fh: u64,
    /// File offset.
    pub offset: u64,
    /// Bytes wanted.
    pub size: u32,
    /// Read flags.
    pub read_flags: u32,
    /// Lock owner.
    pub lock_owner: u64,
    /// open(2) flags.
    pub flags: u32,
    /// Padding.
    pub _pad: u32,
}

/// fuse.h: `struct fuse_interrupt_in` (8 bytes).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct InterruptIn {
    /// The `unique` of the request to interrupt.
    pub unique: u64,
}

/// fuse.h: `struct fuse_ioctl_in` (32 bytes), followed by `in_size` bytes of the
/// caller's struct (restricted mode: `_IOC_SIZE(cmd)` bytes at `arg`, when `_IOC_WRITE`).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct IoctlIn {
    /// File handle.
    pub fh: u64,
    /// `FUSE_IOCTL_*`.
    pub flags: u32,
    /// The ioctl request number.
    pub cmd: u32,
    /// The raw argument (a user pointer or a value; zero-extended for 32-bit callers).
    pub arg: u64,
    /// Bytes that follow.
    pub in_size: u32,
    /// Bytes the kernel copies back to `arg` on success (`_IOC_READ`).
    pub out_size: u32,
}

/// fuse.h: `struct fuse_ioctl_out` (16 bytes), followed by up to `out_size` bytes.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct IoctlOut {
    /// The ioctl's return value (when `error` is 0).
    pub result: i32,
    /// `FUSE_IOCTL_*` (RETRY is CUSE-only; always 0 here).
    pub flags: u32,
    /// Retry iovecs (unused).
    pub in_iovs: u32,
    /// Retry iovecs (unused).
    pub out_iovs: u32,
}

/// fuse.h: `struct fuse_kstatfs` inside `fuse_statfs_out` (80 bytes).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct StatfsOut {
    /// Blocks.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Available blocks.
    pub bavail: u64,
    /// Files.
    pub files: u64,
    /// Free files.
    pub ffree: u64,
    /// Block size.
    pub bsize: u32,
    /// Longest name.
    pub namelen: u32,
    /// Fragment size.
    pub frsize: u32,
    /// Padding.
    pub _pad: u32,
    /// Reserved.
    pub spare: [u32; 6],
}

const _: () = assert!(size_of::<InHeader>() == 40);
const _: () = assert!(size_of::<OutHeader>() == 16);
const _: () = assert!(size_of::<InitOut>() == 64);
const _: () = assert!(size_of::<Attr>() == 88);
const _: () = assert!(size_of::<EntryOut>() == 128);
const _: () = assert!(size_of::<AttrOut>() == 104);
const _: () = assert!(size_of::<OpenOut>() == 16);
const _: () = assert!(size_of::<ReleaseIn>() == 24);
const _: () = assert!(size_of::<ReadIn>() == 40);
const _: () = assert!(size_of::<IoctlIn>() == 32);
const _: () = assert!(size_of::<IoctlOut>() == 16);
const _: () = assert!(size_of::<StatfsOut>() == 80);

/// Name of an opcode for logs.
pub fn opcode_name(op: u32) -> &'static str {
    match op {
        opcode::LOOKUP => "LOOKUP",
        opcode::FORGET => "FORGET",
        opcode::GETATTR => "GETATTR",
        opcode::OPEN => "OPEN",
        opcode::READ => "READ",
        opcode::STATFS => "STATFS",
        opcode::RELEASE => "RELEASE",
        opcode::FLUSH => "FLUSH",
        opcode::INIT => "INIT",
        opcode::INTERRUPT => "INTERRUPT",
        opcode::DESTROY => "DESTROY",
        opcode::IOCTL => "IOCTL",
        opcode::BATCH_FORGET => "BATCH_FORGET",
        _ => "other",
    }
}
