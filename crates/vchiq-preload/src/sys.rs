//! The shim's system calls, as small functions over `rustix` (the project's one syscall
//! style; see the client library's `vchiq::sys`).
//!
//! # Never through the interposed entry points
//!
//! Descriptor operations on the shim's own descriptors must never go through the libc
//! entry points the shim interposes (`close`, `read`, `ioctl`, `dup`...), so that the shim
//! never re-enters itself while holding its own locks. rustix here uses its `linux_raw`
//! backend: its build script picks the libc backend only for the `use-libc` feature, the
//! `rustix_use_libc` cfg, a non-Linux OS, or an architecture without its inline-asm
//! syscalls (x86-64, i686, ARM and AArch64 all have them), and this workspace asks for
//! none of those. So every rustix call below is an inline `syscall` instruction that never
//! touches libc's symbols, interposed or not.
//!
//! Two more rules keep it that way:
//! - a descriptor rustix returns as an [`OwnedFd`] is turned into a [`RawFd`] at once:
//!   dropping an `OwnedFd` closes it with std's `close`, which is the shim's own `close`;
//! - the descriptors the public functions take are [`RawFd`]s the shim owns, borrowed for
//!   the length of the call only ([`borrow`]).
//!
//! # Still on libc
//!
//! Only what rustix has no safe call for: `dlsym(RTLD_NEXT)` ([`Next`]), setting `errno`
//! ([`set_errno`]; the raw backend has no `errno`), `process_vm_readv`/`process_vm_writev`
//! ([`user_read`], [`user_write`]), plus closing a raw descriptor and borrowing one, which
//! rustix makes `unsafe` by design.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::event::{EventfdFlags, PollFd, PollFlags};
use rustix::fs::{MemfdFlags, SealFlags};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

/// A libc function found with `dlsym(RTLD_NEXT, name)`, resolved once.
pub struct Next {
    name: &'static [u8],
    addr: AtomicUsize,
}

impl Next {
    /// `name` must be NUL-terminated.
    pub const fn new(name: &'static [u8]) -> Self {
        Next {
            name,
            addr: AtomicUsize::new(0),
        }
    }

    /// The address of the next definition of the symbol, or 0 if there is none.
    pub fn get(&self) -> usize {
        let a = self.addr.load(Ordering::Relaxed);
        if a != 0 {
            return a;
        }
        // SAFETY: `name` is a NUL-terminated symbol name; dlsym only reads it.
        let a = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr().cast()) } as usize;
        self.addr.store(a, Ordering::Relaxed);
        a
    }
}

/// Borrows one of the shim's descriptors for as long as the caller's `fd` variable lives
/// (one call). `EBADF` for a negative number, which a `BorrowedFd` cannot hold.
fn borrow(fd: &RawFd) -> io::Result<BorrowedFd<'_>> {
    if *fd < 0 {
        return Err(Errno::BADF.into());
    }
    // SAFETY: not -1 (checked). The public functions of this module are given descriptors
    // the shim owns (its sockets, eventfds and memfds), which are closed only with
    // [`close`] after their last use, so `fd` stays open while the borrow, bounded by the
    // call, lasts. Were a caller to break that, the raw syscall would get a stale number
    // (EBADF, or another descriptor, as with the libc calls this replaced), not touch
    // memory.
    Ok(unsafe { BorrowedFd::borrow_raw(*fd) })
}

/// Takes a descriptor out of rustix's `OwnedFd` without dropping it (see the module doc).
fn raw(fd: OwnedFd) -> RawFd {
    fd.into_raw_fd()
}

/// `close(2)` without going through the interposed `close`.
pub fn close(fd: RawFd) {
    if fd < 0 {
        return;
    }
    // SAFETY: the caller gives up `fd` (a descriptor of its own) and does not use it
    // afterwards; a raw close(2) of a stale number is EBADF, ignored as before.
    unsafe { rustix::io::close(fd) };
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, 3)`: a private, close-on-exec duplicate.
pub fn dup_cloexec(fd: RawFd) -> io::Result<RawFd> {
    Ok(raw(rustix::io::fcntl_dupfd_cloexec(borrow(&fd)?, 3)?))
}

/// The calling thread's id.
pub fn gettid() -> u32 {
    rustix::thread::gettid().as_raw_nonzero().get() as u32
}

/// The calling process's id.
pub fn getpid() -> i32 {
    rustix::process::getpid().as_raw_nonzero().get()
}

/// Sets `errno`.
pub fn set_errno(e: i32) {
    // SAFETY: `__errno_location` returns this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

/// Connects a close-on-exec `SOCK_SEQPACKET` socket to `path`.
pub fn connect_seqpacket(path: &[u8], cloexec: bool) -> io::Result<RawFd> {
    let flags = if cloexec {
        SocketFlags::CLOEXEC
    } else {
        SocketFlags::empty()
    };
    let fd = raw(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        flags,
        None,
    )?);
    // As before: the path and its NUL must fit in `sun_path`.
    let sun_path =
        size_of::<libc::sockaddr_un>() - std::mem::offset_of!(libc::sockaddr_un, sun_path);
    let addr = if path.len() >= sun_path {
        Err(Errno::NAMETOOLONG)
    } else {
        SocketAddrUnix::new(path)
    };
    let addr = match addr {
        Ok(a) => a,
        Err(e) => {
            close(fd);
            return Err(e.into());
        }
    };
    loop {
        match rustix::net::connect(borrow(&fd)?, &addr) {
            Ok(()) => return Ok(fd),
            Err(Errno::INTR) => continue,
            Err(e) => {
                close(fd);
                return Err(e.into());
            }
        }
    }
}

/// Sends one packet of `parts`, with `pass` attached as `SCM_RIGHTS` (never SIGPIPE).
pub fn send(fd: RawFd, parts: &[&[u8]], pass: Option<RawFd>) -> io::Result<()> {
    let sock = borrow(&fd)?;
    let iov: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let pass = pass.as_ref().map(borrow).transpose()?;
    let fds: Vec<BorrowedFd<'_>> = pass.into_iter().collect();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("SCM_RIGHTS control buffer too small"));
    }
    loop {
        match rustix::net::sendmsg(sock, &iov, &mut control, SendFlags::NOSIGNAL) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one packet into `buf` (no descriptors are expected; any are closed).
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    let sock = borrow(&fd)?;
    // Room for 12 descriptors (64 bytes on 64-bit targets), as before.
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(12))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        let mut iov = [IoSliceMut::new(buf)];
        match rustix::net::recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Ok(m) => break m,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    // Every message is drained here, so the buffer's own drop (which would close the
    // descriptors through std, i.e. the interposed `close`) finds nothing.
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = m {
            for r in rights {
                close(raw(r));
            }
        }
    }
    Ok(msg.bytes)
}

/// Waits for `fd` to become readable. `Err(EINTR)` when a signal handler ran.
pub fn wait_readable(fd: RawFd) -> io::Result<()> {
    let mut p = [PollFd::from_borrowed_fd(borrow(&fd)?, PollFlags::IN)];
    // No timeout: rustix makes this ppoll(2) with a NULL timeout, which (as poll(2)) is
    // never restarted after a handler (SA_RESTART or not): that is how a signal reaches
    // the shim.
    rustix::event::poll(&mut p, None)?;
    Ok(())
}

/// A new eventfd (close-on-exec, non-blocking).
pub fn eventfd() -> io::Result<RawFd> {
    Ok(raw(rustix::event::eventfd(
        0,
        EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK,
    )?))
}

/// Adds 1 to an eventfd.
pub fn eventfd_signal(fd: RawFd) {
    if let Ok(f) = borrow(&fd) {
        let _ = rustix::io::write(f, &1u64.to_ne_bytes());
    }
}

/// Resets an eventfd.
pub fn eventfd_drain(fd: RawFd) {
    if let Ok(f) = borrow(&fd) {
        let mut v = [0u8; 8];
        let _ = rustix::io::read(f, &mut v);
    }
}

/// A memfd of `len` bytes holding `data` (or zeros), sealed against shrinking and growing.
pub fn sealed_memfd(len: usize, data: Option<&[u8]>) -> io::Result<RawFd> {
    let fd = raw(rustix::fs::memfd_create(
        c"vchiq-bulk",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?);
    match fill_and_seal(fd, len, data) {
        Ok(()) => Ok(fd),
        Err(e) => {
            close(fd);
            Err(e)
        }
    }
}

/// Sizes, fills and seals a new memfd for [`sealed_memfd`].
fn fill_and_seal(fd: RawFd, len: usize, data: Option<&[u8]>) -> io::Result<()> {
    let f = borrow(&fd)?;
    rustix::fs::ftruncate(f, len as u64)?;
    if let Some(d) = data {
        let mut off = 0usize;
        while off < d.len() {
            match rustix::io::pwrite(f, &d[off..], off as u64)? {
                0 => return Err(Errno::IO.into()),
                n => off += n,
            }
        }
    }
    rustix::fs::fcntl_add_seals(f, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
    Ok(())
}

/// Reads `len` bytes of a memfd.
pub fn read_memfd(fd: RawFd, len: usize) -> io::Result<Vec<u8>> {
    let f = borrow(&fd)?;
    let mut buf = vec![0u8; len];
    let mut off = 0usize;
    while off < len {
        match rustix::io::pread(f, &mut buf[off..], off as u64)? {
            0 => return Err(Errno::IO.into()),
            n => off += n,
        }
    }
    Ok(buf)
}

/// Copies `len` bytes from this process's address `addr` with `process_vm_readv` on
/// itself, so that an unmapped address is `EFAULT` (as the kernel's `copy_from_user`)
/// instead of a crash.
pub fn user_read(addr: u64, len: usize) -> Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; len];
    if len == 0 {
        return Ok(buf);
    }
    if addr == 0 || (addr as usize).checked_add(len).is_none() {
        return Err(libc::EFAULT);
    }
    let mut done = 0usize;
    while done < len {
        let local = libc::iovec {
            iov_base: buf[done..].as_mut_ptr().cast(),
            iov_len: len - done,
        };
        let remote = libc::iovec {
            iov_base: (addr as usize + done) as *mut _,
            iov_len: len - done,
        };
        // SAFETY: `local` is our live buffer; the kernel checks `remote` and fails with
        // EFAULT rather than touching an unmapped page. (rustix has no process_vm_readv.)
        let n = unsafe { libc::process_vm_readv(getpid(), &local, 1, &remote, 1, 0) };
        if n <= 0 {
            return Err(libc::EFAULT);
        }
        done += n as usize;
    }
    Ok(buf)
}

/// Copies `data` to this process's address `addr` (`EFAULT` if it is not writable).
pub fn user_write(addr: u64, data: &[u8]) -> Result<(), i32> {
    if data.is_empty() {
        return Ok(());
    }
    if addr == 0 || (addr as usize).checked_add(data.len()).is_none() {
        return Err(libc::EFAULT);
    }
    let mut done = 0usize;
    while done < data.len() {
        let local = libc::iovec {
            iov_base: data[done..].as_ptr() as *mut _,
            iov_len: data.len() - done,
        };
        let remote = libc::iovec {
            iov_base: (addr as usize + done) as *mut _,
            iov_len: data.len() - done,
        };
        // SAFETY: `local` is our live buffer (only read); the kernel checks `remote`.
        // (rustix has no process_vm_writev.)
        let n = unsafe { libc::process_vm_writev(getpid(), &local, 1, &remote, 1, 0) };
        if n <= 0 {
            return Err(libc::EFAULT);
        }
        done += n as usize;
    }
    Ok(())
}
