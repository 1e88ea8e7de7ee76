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
//! and `syscall(SYS_read/SYS_write)` on a user address ([`user_read`], [`user_write`]: rustix
//! takes only slices, and a slice over an unchecked address would be undefined behaviour),
//! plus closing a raw descriptor and borrowing one, which rustix makes `unsafe` by design.

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

/// How the shim reads and writes its caller's memory without trusting a pointer.
///
/// `process_vm_readv`/`writev` on this very process is one system call per copy. Under
/// qemu-user it does not work: qemu passes the iovecs to the host kernel untranslated, so a
/// guest address means nothing there and every copy fails. There, a pipe does the copy:
/// `write(pipe, user_address)` and `read(pipe, user_address)` take the address as a plain
/// syscall argument, which qemu translates and checks (EFAULT for an unmapped guest page),
/// as the kernel does natively.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UserCopy {
    ProcessVm,
    Pipe,
}

/// The copy method that works in this process, probed once on a buffer of our own.
pub fn user_copy() -> UserCopy {
    use std::sync::atomic::AtomicU8;
    static MODE: AtomicU8 = AtomicU8::new(0);
    match MODE.load(Ordering::Relaxed) {
        1 => return UserCopy::ProcessVm,
        2 => return UserCopy::Pipe,
        _ => {}
    }
    let probe = [0x5au8; 8];
    let mut out = [0u8; 8];
    let works = vm_copy(probe.as_ptr() as u64, out.as_mut_ptr(), 8, false) == Ok(8) && out == probe;
    MODE.store(if works { 1 } else { 2 }, Ordering::Relaxed);
    if works {
        UserCopy::ProcessVm
    } else {
        UserCopy::Pipe
    }
}

/// One `process_vm_readv` (`to_user` false: user → `local`) or `process_vm_writev`
/// (`to_user` true: `local` → user) of up to `len` bytes on this process. Returns the
/// bytes copied.
fn vm_copy(addr: u64, local: *mut u8, len: usize, to_user: bool) -> Result<usize, i32> {
    let l = libc::iovec {
        iov_base: local.cast(),
        iov_len: len,
    };
    let r = libc::iovec {
        iov_base: addr as usize as *mut _,
        iov_len: len,
    };
    // SAFETY: `local` is a live buffer of ours of `len` bytes (only read when `to_user`);
    // the kernel checks `r` and fails with EFAULT rather than touching an unmapped page,
    // and no Rust reference to the user address is made. (rustix has no
    // process_vm_readv/writev.)
    let n = unsafe {
        if to_user {
            libc::process_vm_writev(getpid(), &l, 1, &r, 1, 0)
        } else {
            libc::process_vm_readv(getpid(), &l, 1, &r, 1, 0)
        }
    };
    if n <= 0 {
        Err(libc::EFAULT)
    } else {
        Ok(n as usize)
    }
}

/// `read(2)` (`write` false) or `write(2)` of up to `len` bytes at the user address
/// `addr` on a descriptor of ours; the kernel (or qemu) checks the address. Returns the
/// bytes moved.
fn raw_rw(fd: RawFd, addr: u64, len: usize, write: bool) -> Result<usize, i32> {
    let nr = if write {
        libc::SYS_write
    } else {
        libc::SYS_read
    };
    // SAFETY: a plain system call on a descriptor the shim owns; the kernel checks the
    // address (EFAULT), and no Rust reference to it is made. `syscall` is not one of the
    // entry points the shim interposes.
    let n = unsafe { libc::syscall(nr, fd, addr as usize, len) };
    if n < 0 {
        Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EFAULT))
    } else {
        Ok(n as usize)
    }
}

/// A non-blocking pipe of the shim's own, closed on drop (with the shim's raw `close`).
struct Pipe {
    r: RawFd,
    w: RawFd,
}

impl Pipe {
    fn new() -> Result<Pipe, i32> {
        use rustix::pipe::PipeFlags;
        let (r, w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)
            .map_err(|e| e.raw_os_error())?;
        Ok(Pipe {
            r: raw(r),
            w: raw(w),
        })
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        close(self.r);
        close(self.w);
    }
}

/// The most a pipe takes in one write here (its default capacity is 64 KiB).
const PIPE_CHUNK: usize = 64 * 1024;

fn errno(e: Errno) -> i32 {
    e.raw_os_error()
}

/// User memory → `buf`, through a pipe (see [`UserCopy`]).
fn pipe_read(addr: u64, buf: &mut [u8]) -> Result<(), i32> {
    let p = Pipe::new()?;
    let mut done = 0usize;
    while done < buf.len() {
        // The pipe is empty here, so the write takes at least one byte.
        let want = (buf.len() - done).min(PIPE_CHUNK);
        let n = raw_rw(p.w, addr + done as u64, want, true)?;
        if n == 0 {
            return Err(libc::EFAULT);
        }
        let mut got = 0;
        while got < n {
            let r = borrow(&p.r).map_err(|_| libc::EBADF)?;
            got += rustix::io::read(r, &mut buf[done + got..done + n]).map_err(errno)?;
        }
        done += n;
    }
    Ok(())
}

/// `data` → user memory, through a pipe (see [`UserCopy`]).
fn pipe_write(addr: u64, data: &[u8]) -> Result<(), i32> {
    let p = Pipe::new()?;
    let mut done = 0usize;
    while done < data.len() {
        let want = (data.len() - done).min(PIPE_CHUNK);
        let w = borrow(&p.w).map_err(|_| libc::EBADF)?;
        let n = rustix::io::write(w, &data[done..done + want]).map_err(errno)?;
        let mut put = 0;
        while put < n {
            match raw_rw(p.r, addr + (done + put) as u64, n - put, false)? {
                0 => return Err(libc::EFAULT),
                k => put += k,
            }
        }
        done += n;
    }
    Ok(())
}

/// Copies `len` bytes from this process's address `addr`, so that an unmapped address is
/// `EFAULT` (as the kernel's `copy_from_user`) instead of a crash.
pub fn user_read(addr: u64, len: usize) -> Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; len];
    if len == 0 {
        return Ok(buf);
    }
    if addr == 0 || (addr as usize).checked_add(len).is_none() {
        return Err(libc::EFAULT);
    }
    if user_copy() == UserCopy::Pipe {
        pipe_read(addr, &mut buf)?;
        return Ok(buf);
    }
    let mut done = 0usize;
    while done < len {
        done += vm_copy(
            addr + done as u64,
            buf[done..].as_mut_ptr(),
            len - done,
            false,
        )?;
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
    if user_copy() == UserCopy::Pipe {
        return pipe_write(addr, data);
    }
    let mut done = 0usize;
    while done < data.len() {
        // process_vm_writev only reads the local buffer.
        let local = data[done..].as_ptr().cast_mut();
        done += vm_copy(addr + done as u64, local, data.len() - done, true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both copy methods, whichever this process uses: the pipe one is what runs under
    /// qemu-user.
    #[test]
    fn pipe_copies_move_every_byte_and_fault_on_unmapped_pages() {
        let src: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut dst = vec![0u8; src.len()];
        pipe_read(src.as_ptr() as u64, &mut dst).unwrap();
        assert!(dst == src);
        let mut back = vec![0u8; src.len()];
        pipe_write(back.as_mut_ptr() as u64, &src).unwrap();
        assert!(back == src);
        assert_eq!(pipe_read(8, &mut [0u8; 4]), Err(libc::EFAULT));
        assert_eq!(pipe_write(16, &[1, 2]), Err(libc::EFAULT));
        // A read-only page takes no write.
        let ro = b"constant";
        assert_eq!(pipe_write(ro.as_ptr() as u64, b"x"), Err(libc::EFAULT));
    }

    #[test]
    fn process_vm_copy_is_chosen_where_it_works() {
        // Natively (the unit tests never run under qemu) the one-syscall path must be used.
        assert_eq!(user_copy(), UserCopy::ProcessVm);
    }
}
