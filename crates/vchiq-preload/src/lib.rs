//! `libvchiq_preload.so`: the `/dev/vchiq` ioctl ABI for unmodified programs, without a
//! device node, forwarded to vchiqd's Unix socket.
//!
//! # When to use it
//!
//! The file node (`vchiq daemon --dev-node`, a FUSE file) is the first choice: it needs
//! nothing in the program's process and works for static binaries. This shim is the
//! fallback where FUSE cannot be used (no `/dev/fuse`, no privileges to mount):
//!
//! ```text
//! LD_PRELOAD=/path/to/libvchiq_preload.so VCHIQ_SOCKET=/run/vchiq/vchiq.sock ./hello_triangle
//! ```
//!
//! # What it interposes
//!
//! - `open`, `open64`, `openat`, `openat64`, `__open_2`, `__open64_2` of exactly
//!   `"/dev/vchiq"` connect to the daemon (`$VCHIQ_SOCKET`, else the default path) and
//!   return the connected socket's descriptor. The daemon attests the caller's identity
//!   from the socket (`SO_PEERCRED`), so GET_CLIENT_ID is the host PID as through the node.
//! - `ioctl`, `read`, `close`, `dup`, `dup2`, `dup3` on the descriptors it made. `dup` and
//!   `fork` share the connection, hence the instance; the daemon ends the instance when
//!   the last descriptor (in every process) is closed, as the kernel does at RELEASE.
//!
//! Everything else, and these calls on any other descriptor or path, go straight to the
//! next definition (`dlsym(RTLD_NEXT)`): the cost for an unrelated `read`/`close` is one
//! relaxed atomic load (and a bit test while shim descriptors exist).
//!
//! # Semantics
//!
//! The ioctls are translated to the socket protocol of `vchiq_abi::wire` ([`ioctl`]); the
//! daemon's driver core does the rest, so the errnos are the driver's. A signal during a
//! blocking ioctl makes the shim send `CANCEL` and return what the daemon answers, `EINTR`
//! (with `mode = WAITING` written back for a blocking bulk), as the real driver does.
//!
//! # Limits
//!
//! - Static binaries and programs that make the system call themselves are not reached:
//!   use the file node.
//! - After `fork`, parent and child share one connection: a blocking call in one while
//!   the other also waits on the same descriptor can receive the other's reply, which is
//!   then lost to its owner. libvchiq_arm programs do not use an instance across fork.
//! - A bulk receive in NOCALLBACK mode has no completion to say when its data arrived, so
//!   its data is not copied into the caller's buffer.
//! - `fcntl(F_DUPFD)` and descriptors inherited across `exec` are not tracked.
//! - The shim must match the program's architecture: `-m32` programs need the i386 build
//!   (`--target i686-unknown-linux-gnu`), and an armhf program under qemu-user an ARM one.
#![allow(unsafe_code)]

mod conn;
mod ioctl;
mod sys;

use std::collections::BTreeMap;
use std::ffi::{CStr, c_char, c_int, c_ulong, c_void};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use conn::Conn;
use sys::Next;

/// The path the shim answers for.
pub const DEVICE: &[u8] = b"/dev/vchiq";

/// Number of shim descriptors in this process (0: every call passes straight through).
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
/// One bit per descriptor below 4096 (larger ones are looked up in the table).
static BITS: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];
/// Shim descriptor → its connection.
static TABLE: Mutex<BTreeMap<RawFd, Arc<Conn>>> = Mutex::new(BTreeMap::new());

fn table() -> MutexGuard<'static, BTreeMap<RawFd, Arc<Conn>>> {
    TABLE.lock().unwrap_or_else(|p| p.into_inner())
}

fn bit(fd: RawFd) -> Option<(usize, u64)> {
    let i = usize::try_from(fd).ok()?;
    (i < 64 * 64).then_some((i / 64, 1u64 << (i % 64)))
}

/// The connection of a shim descriptor, if `fd` is one.
fn lookup(fd: RawFd) -> Option<Arc<Conn>> {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return None;
    }
    if let Some((w, m)) = bit(fd) {
        if BITS[w].load(Ordering::Relaxed) & m == 0 {
            return None;
        }
    }
    table().get(&fd).cloned()
}

fn register(fd: RawFd, c: Arc<Conn>) {
    let mut t = table();
    if t.insert(fd, c).is_none() {
        ACTIVE.fetch_add(1, Ordering::Relaxed);
    }
    if let Some((w, m)) = bit(fd) {
        BITS[w].fetch_or(m, Ordering::Relaxed);
    }
}

/// Forgets a descriptor; the connection closes when its last descriptor goes.
fn unregister(fd: RawFd) -> bool {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return false;
    }
    let mut t = table();
    let gone = t.remove(&fd);
    if gone.is_some() {
        ACTIVE.fetch_sub(1, Ordering::Relaxed);
        if let Some((w, m)) = bit(fd) {
            BITS[w].fetch_and(!m, Ordering::Relaxed);
        }
    }
    drop(t);
    gone.is_some()
}

fn fail<T: From<i8>>(errno: i32) -> T {
    sys::set_errno(errno);
    T::from(-1)
}

/// True if `path` is the device.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
unsafe fn is_device(path: *const c_char) -> bool {
    // SAFETY: the caller passed a C string (or NULL, checked).
    !path.is_null() && unsafe { CStr::from_ptr(path) }.to_bytes() == DEVICE
}

/// Opens a connection for an `open("/dev/vchiq", flags)`.
fn open_device(flags: c_int) -> c_int {
    let path = vchiq_abi::wire::default_socket_path({
        // SAFETY: geteuid always succeeds.
        unsafe { libc::geteuid() }
    });
    use std::os::unix::ffi::OsStrExt;
    let fd = match sys::connect_seqpacket(path.as_os_str().as_bytes(), flags & libc::O_CLOEXEC != 0)
    {
        Ok(fd) => fd,
        // No daemon: as if there were no such device.
        Err(e) => {
            return fail(match e.raw_os_error() {
                Some(libc::ENOENT) => libc::ENOENT,
                Some(libc::ECONNREFUSED) => libc::ENXIO,
                Some(other) => other,
                None => libc::EIO,
            });
        }
    };
    match Conn::new(fd) {
        Ok(c) => {
            register(fd, Arc::new(c));
            fd
        }
        Err(e) => {
            sys::close(fd);
            fail(e)
        }
    }
}

type OpenFn = unsafe extern "C" fn(*const c_char, c_int, libc::mode_t) -> c_int;
type OpenatFn = unsafe extern "C" fn(c_int, *const c_char, c_int, libc::mode_t) -> c_int;
type Open2Fn = unsafe extern "C" fn(*const c_char, c_int) -> c_int;

static NEXT_OPEN: Next = Next::new(b"open\0");
static NEXT_OPEN64: Next = Next::new(b"open64\0");
static NEXT_OPENAT: Next = Next::new(b"openat\0");
static NEXT_OPENAT64: Next = Next::new(b"openat64\0");
static NEXT_OPEN_2: Next = Next::new(b"__open_2\0");
static NEXT_OPEN64_2: Next = Next::new(b"__open64_2\0");
static NEXT_IOCTL: Next = Next::new(b"ioctl\0");
static NEXT_READ: Next = Next::new(b"read\0");
static NEXT_CLOSE: Next = Next::new(b"close\0");
static NEXT_DUP: Next = Next::new(b"dup\0");
static NEXT_DUP2: Next = Next::new(b"dup2\0");
static NEXT_DUP3: Next = Next::new(b"dup3\0");

macro_rules! next {
    ($next:expr, $ty:ty) => {{
        let a = $next.get();
        if a == 0 {
            return fail(libc::ENOSYS);
        }
        // SAFETY: `a` is the address of the libc function of that name, whose C
        // signature is `$ty`.
        unsafe { std::mem::transmute::<usize, $ty>(a) }
    }};
}

/// `open(2)`. The mode is declared as a fixed third argument: on the supported ABIs a
/// variadic caller passes it where a fixed parameter is read, and it is only used with
/// `O_CREAT`/`O_TMPFILE`, when the caller did pass it.
///
/// # Safety
/// As `open(2)`: `path` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: libc::mode_t) -> c_int {
    // SAFETY: forwarded from the caller's contract.
    if unsafe { is_device(path) } {
        return open_device(flags);
    }
    let f = next!(NEXT_OPEN, OpenFn);
    // SAFETY: the caller's arguments, forwarded unchanged.
    unsafe { f(path, flags, mode) }
}

/// `open64(2)`.
///
/// # Safety
/// As `open(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: libc::mode_t) -> c_int {
    // SAFETY: forwarded from the caller's contract.
    if unsafe { is_device(path) } {
        return open_device(flags);
    }
    let f = next!(NEXT_OPEN64, OpenFn);
    // SAFETY: the caller's arguments, forwarded unchanged.
    unsafe { f(path, flags, mode) }
}

/// `openat(2)` (the device path is absolute, so `dirfd` does not matter for it).
///
/// # Safety
/// As `openat(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn openat(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: libc::mode_t,
) -> c_int {
    // SAFETY: forwarded from the caller's contract.
    if unsafe { is_device(path) } {
        return open_device(flags);
    }
    let f = next!(NEXT_OPENAT, OpenatFn);
    // SAFETY: the caller's arguments, forwarded unchanged.
    unsafe { f(dirfd, path, flags, mode) }
}

/// `openat64(2)`.
///
/// # Safety
/// As `openat(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn openat64(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: libc::mode_t,
) -> c_int {
    // SAFETY: forwarded from the caller's contract.
    if unsafe { is_device(path) } {
        return open_device(flags);
    }
    let f = next!(NEXT_OPENAT64, OpenatFn);
    // SAFETY: the caller's arguments, forwarded unchanged.
    unsafe { f(dirfd, path, flags, mode) }
}

/// `__open_2` (what `_FORTIFY_SOURCE` turns `open` without a mode into).
///
/// # Safety
/// As `open(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __open_2(path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: forwarded from the caller's contract.
    if unsafe { is_device(path) } {
        return open_device(flags);
    }
    let f = next!(NEXT_OPEN_2, Open2Fn);
    // SAFETY: the caller's arguments, forwarded unchanged.
    unsafe { f(path, flags) }
}

/// `__open64_2`.
///
/// # Safety
/// As `open(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __open64_2(path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: forwarded from the caller's contract.
    if unsafe { is_device(path) } {
        return open_device(flags);
    }
    let f = next!(NEXT_OPEN64_2, Open2Fn);
    // SAFETY: the caller's arguments, forwarded unchanged.
    unsafe { f(path, flags) }
}

/// `ioctl(2)`: VCHIQ commands on a shim descriptor are served; the rest pass through.
///
/// # Safety
/// As `ioctl(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    if let Some(c) = lookup(fd) {
        // glibc passes the request as unsigned long; the kernel looks at 32 bits.
        return match ioctl::ioctl(&c, request as u32, arg as u64) {
            Ok(v) => v as c_int,
            Err(e) => fail(e),
        };
    }
    let f = next!(
        NEXT_IOCTL,
        unsafe extern "C" fn(c_int, c_ulong, *mut c_void) -> c_int
    );
    // SAFETY: the caller's arguments, forwarded unchanged.
    unsafe { f(fd, request, arg) }
}

/// `read(2)`: on a shim descriptor, the driver's state dump, like the device's.
///
/// # Safety
/// As `read(2)`: `buf` is writable for `count` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, count: usize) -> isize {
    if let Some(c) = lookup(fd) {
        let mut books = c.books.lock().unwrap_or_else(|p| p.into_inner());
        if books.dump_pos == 0 || books.dump_pos > books.dump.len() {
            drop(books);
            let text = match c.call(vchiq_abi::wire::Op::Status, 0, &[], None) {
                Ok(f) if f.result >= 0 => f.payload,
                Ok(f) => return fail((-f.result) as i32),
                Err(e) => return fail(e),
            };
            books = c.books.lock().unwrap_or_else(|p| p.into_inner());
            books.dump = text;
            books.dump_pos = 0;
        }
        let start = books.dump_pos;
        let n = count.min(books.dump.len() - start);
        if n == 0 {
            books.dump_pos = 0; // EOF now; the next read starts a fresh dump
            return 0;
        }
        if let Err(e) = sys::user_write(buf as u64, &books.dump[start..start + n]) {
            return fail(e);
        }
        books.dump_pos = start + n;
        return n as isize;
    }
    let f = next!(
        NEXT_READ,
        unsafe extern "C" fn(c_int, *mut c_void, usize) -> isize
    );
    // SAFETY: the caller's arguments, forwarded unchanged.
    unsafe { f(fd, buf, count) }
}

/// `close(2)`.
///
/// # Safety
/// As `close(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    unregister(fd);
    let f = next!(NEXT_CLOSE, unsafe extern "C" fn(c_int) -> c_int);
    // SAFETY: the caller's argument, forwarded unchanged.
    unsafe { f(fd) }
}

/// `dup(2)`: a duplicate of a shim descriptor shares its instance.
///
/// # Safety
/// As `dup(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    let f = next!(NEXT_DUP, unsafe extern "C" fn(c_int) -> c_int);
    // SAFETY: the caller's argument, forwarded unchanged.
    let new = unsafe { f(fd) };
    if new >= 0 {
        if let Some(c) = lookup(fd) {
            register(new, c);
        }
    }
    new
}

/// `dup2(2)`.
///
/// # Safety
/// As `dup2(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    let f = next!(NEXT_DUP2, unsafe extern "C" fn(c_int, c_int) -> c_int);
    let conn = lookup(old);
    // SAFETY: the caller's arguments, forwarded unchanged.
    let r = unsafe { f(old, new) };
    if r >= 0 && old != new {
        unregister(new);
        if let Some(c) = conn {
            register(new, c);
        }
    }
    r
}

/// `dup3(2)`.
///
/// # Safety
/// As `dup3(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    let f = next!(
        NEXT_DUP3,
        unsafe extern "C" fn(c_int, c_int, c_int) -> c_int
    );
    let conn = lookup(old);
    // SAFETY: the caller's arguments, forwarded unchanged.
    let r = unsafe { f(old, new, flags) };
    if r >= 0 {
        unregister(new);
        if let Some(c) = conn {
            register(new, c);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unrelated_descriptors_pass_through() {
        assert!(lookup(0).is_none());
        assert!(!unregister(12345));
        assert_eq!(bit(4095), Some((63, 1 << 63)));
        assert_eq!(bit(4096), None);
        assert_eq!(bit(-1), None);
    }

    #[test]
    fn only_the_device_path_is_ours() {
        // SAFETY: C string literals.
        unsafe {
            assert!(is_device(c"/dev/vchiq".as_ptr()));
            assert!(!is_device(c"/dev/vchiq0".as_ptr()));
            assert!(!is_device(c"/dev/null".as_ptr()));
            assert!(!is_device(std::ptr::null()));
        }
    }

    #[test]
    fn user_memory_faults_become_efault() {
        assert_eq!(sys::user_read(0, 4), Err(libc::EFAULT));
        assert_eq!(sys::user_read(8, 4), Err(libc::EFAULT));
        let v = 0x1234_5678u32;
        assert_eq!(
            sys::user_read((&raw const v) as u64, 4).unwrap(),
            v.to_ne_bytes()
        );
        let mut w = 0u32;
        sys::user_write((&raw mut w) as u64, &7u32.to_ne_bytes()).unwrap();
        assert_eq!(w, 7);
        assert_eq!(sys::user_write(16, &[1]), Err(libc::EFAULT));
    }
}
