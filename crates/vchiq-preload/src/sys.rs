//! The shim's system calls. Descriptor operations on the shim's own descriptors go
//! through `syscall(2)` directly, never through the interposed libc entry points, so that
//! the shim never re-enters itself while holding its own locks.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};

fn last() -> io::Error {
    io::Error::last_os_error()
}

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

/// `close(2)` without going through the interposed `close`.
pub fn close(fd: RawFd) {
    // SAFETY: plain system call on an integer.
    unsafe { libc::syscall(libc::SYS_close, fd) };
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, 3)`: a private, close-on-exec duplicate.
pub fn dup_cloexec(fd: RawFd) -> io::Result<RawFd> {
    // SAFETY: plain system call on integers.
    let r = unsafe { libc::syscall(libc::SYS_fcntl, fd, libc::F_DUPFD_CLOEXEC, 3) };
    if r < 0 { Err(last()) } else { Ok(r as RawFd) }
}

/// The calling thread's id.
pub fn gettid() -> u32 {
    // SAFETY: gettid always succeeds.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

/// The calling process's id.
pub fn getpid() -> i32 {
    // SAFETY: getpid always succeeds.
    unsafe { libc::getpid() }
}

/// Sets `errno`.
pub fn set_errno(e: i32) {
    // SAFETY: `__errno_location` returns this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

/// Connects a close-on-exec `SOCK_SEQPACKET` socket to `path`.
pub fn connect_seqpacket(path: &[u8], cloexec: bool) -> io::Result<RawFd> {
    let ty = libc::SOCK_SEQPACKET | if cloexec { libc::SOCK_CLOEXEC } else { 0 };
    // SAFETY: plain system call.
    let fd = unsafe { libc::socket(libc::AF_UNIX, ty, 0) };
    if fd < 0 {
        return Err(last());
    }
    // SAFETY: sockaddr_un is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if path.len() >= addr.sun_path.len() {
        close(fd);
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    loop {
        // SAFETY: `addr` is a valid sockaddr_un of the given size.
        let r = unsafe {
            libc::connect(
                fd,
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        if r == 0 {
            return Ok(fd);
        }
        let e = last();
        if e.raw_os_error() != Some(libc::EINTR) {
            close(fd);
            return Err(e);
        }
    }
}

/// Sends one packet of `parts`, with `pass` attached as `SCM_RIGHTS` (never SIGPIPE).
pub fn send(fd: RawFd, parts: &[&[u8]], pass: Option<RawFd>) -> io::Result<()> {
    let iov: Vec<libc::iovec> = parts
        .iter()
        .map(|p| libc::iovec {
            iov_base: p.as_ptr() as *mut _,
            iov_len: p.len(),
        })
        .collect();
    let mut cbuf = [0u64; 4];
    // SAFETY: msghdr is plain data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut _;
    msg.msg_iovlen = iov.len();
    if let Some(pfd) = pass {
        // SAFETY: CMSG_SPACE is a pure computation.
        let space = unsafe { libc::CMSG_SPACE(size_of::<RawFd>() as u32) } as usize;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: the control buffer is 32 bytes, enough for one cmsghdr carrying one fd
        // (CMSG_SPACE(4) = 24); CMSG_FIRSTHDR/CMSG_DATA point inside it.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), pfd);
        }
    }
    loop {
        // SAFETY: `msg` points at live iovecs and control data for the call's duration.
        let r = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
        if r >= 0 {
            return Ok(());
        }
        let e = last();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Receives one packet into `buf` (no descriptors are expected; any are closed).
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: msghdr is plain data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&cbuf);
    loop {
        // SAFETY: `msg` describes `buf` and `cbuf`, both writable for their lengths.
        let r = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if r >= 0 {
            // SAFETY: walking the control messages the kernel wrote into `cbuf`.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&msg);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                        close(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>()));
                    }
                    c = libc::CMSG_NXTHDR(&msg, c);
                }
            }
            return Ok(r as usize);
        }
        let e = last();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Waits for `fd` to become readable. `Err(EINTR)` when a signal handler ran.
pub fn wait_readable(fd: RawFd) -> io::Result<()> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd. poll(2) is never restarted after a handler (SA_RESTART or
    // not), which is how a signal reaches the shim.
    let r = unsafe { libc::poll(&mut p, 1, -1) };
    if r < 0 { Err(last()) } else { Ok(()) }
}

/// A new eventfd (close-on-exec, non-blocking).
pub fn eventfd() -> io::Result<RawFd> {
    // SAFETY: plain system call.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 { Err(last()) } else { Ok(fd) }
}

/// Adds 1 to an eventfd.
pub fn eventfd_signal(fd: RawFd) {
    let one = 1u64;
    // SAFETY: writes 8 bytes from a live u64.
    unsafe { libc::syscall(libc::SYS_write, fd, (&raw const one), 8usize) };
}

/// Resets an eventfd.
pub fn eventfd_drain(fd: RawFd) {
    let mut v = 0u64;
    // SAFETY: reads 8 bytes into a live u64.
    unsafe { libc::syscall(libc::SYS_read, fd, (&raw mut v), 8usize) };
}

/// A memfd of `len` bytes holding `data` (or zeros), sealed against shrinking and growing.
pub fn sealed_memfd(len: usize, data: Option<&[u8]>) -> io::Result<RawFd> {
    // SAFETY: the name is a NUL-terminated literal.
    let fd = unsafe {
        libc::memfd_create(
            c"vchiq-bulk".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(last());
    }
    let fail = |fd| {
        let e = last();
        close(fd);
        Err(e)
    };
    // SAFETY: plain system call on integers.
    if unsafe { libc::ftruncate(fd, len as libc::off_t) } < 0 {
        return fail(fd);
    }
    if let Some(d) = data {
        let mut off = 0usize;
        while off < d.len() {
            // SAFETY: reads from the live slice `d[off..]`.
            let n = unsafe {
                libc::pwrite(
                    fd,
                    d[off..].as_ptr().cast(),
                    d.len() - off,
                    off as libc::off_t,
                )
            };
            if n <= 0 {
                return fail(fd);
            }
            off += n as usize;
        }
    }
    // SAFETY: plain fcntl with integer flags.
    if unsafe {
        libc::fcntl(
            fd,
            libc::F_ADD_SEALS,
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
        )
    } < 0
    {
        return fail(fd);
    }
    Ok(fd)
}

/// Reads `len` bytes of a memfd.
pub fn read_memfd(fd: RawFd, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut off = 0usize;
    while off < len {
        // SAFETY: writes into the live buffer `buf[off..]`.
        let n = unsafe {
            libc::pread(
                fd,
                buf[off..].as_mut_ptr().cast(),
                len - off,
                off as libc::off_t,
            )
        };
        if n <= 0 {
            return Err(if n < 0 {
                last()
            } else {
                io::Error::from_raw_os_error(libc::EIO)
            });
        }
        off += n as usize;
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
        // EFAULT rather than touching an unmapped page.
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
        let n = unsafe { libc::process_vm_writev(getpid(), &local, 1, &remote, 1, 0) };
        if n <= 0 {
            return Err(libc::EFAULT);
        }
        done += n as usize;
    }
    Ok(())
}
