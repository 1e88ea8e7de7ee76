//! The daemon's system calls: peer credentials, pidfds, `SCM_RIGHTS`, memfds and signals.
//!
//! This is the only module of the crate with `unsafe`: each block is a single libc call
//! whose arguments are checked above it, for the calls that rustix has no safe wrapper
//! for; the socket I/O of the data path is on rustix. Everything here returns
//! `io::Result`.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// `SO_PEERPIDFD` (Linux >= 6.5): a pidfd for the process that connected.
const SO_PEERPIDFD: libc::c_int = 77;

/// What the kernel says about the process at the other end of a Unix socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// PID in the daemon's PID namespace (0 if the peer is outside it).
    pub pid: i32,
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `getsockopt(SO_PEERCRED)`.
pub fn peer_cred(sock: BorrowedFd<'_>) -> io::Result<PeerCred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes and `len` holds the buffer size.
    cvt(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    })?;
    Ok(PeerCred {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// `getsockopt(SO_PEERPIDFD)`: `Ok(None)` where the kernel does not support it.
pub fn peer_pidfd(sock: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    let mut fd: libc::c_int = -1;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` and `len` are valid for writes and `len` holds the buffer size.
    let ret = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            (&raw mut fd).cast(),
            &mut len,
        )
    };
    if ret < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENOPROTOOPT) | Some(libc::EINVAL) => Ok(None),
            _ => Err(err),
        };
    }
    // SAFETY: on success the kernel returned a new file descriptor that we now own.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// `pidfd_open(pid, 0)`.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: a plain system call with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the kernel returned a new file descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// True if the process behind `pidfd` is still alive (`pidfd_send_signal(fd, 0)`).
pub fn pidfd_alive(pidfd: BorrowedFd<'_>) -> bool {
    // SAFETY: signal 0 only checks for existence; null info is allowed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<u8>(),
            0,
        )
    };
    r == 0
}

/// Sends one packet with optional file descriptors (blocking).
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    parts: &[IoSlice<'_>],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("too many descriptors for one packet"));
    }
    loop {
        match rustix::net::sendmsg(sock, parts, &mut control, SendFlags::NOSIGNAL) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sends one packet without waiting: `Ok(false)` when the socket's buffer is full (a
/// `SOCK_SEQPACKET` send is all or nothing, so nothing was sent).
pub fn try_send_packet(sock: BorrowedFd<'_>, parts: &[IoSlice<'_>]) -> io::Result<bool> {
    let mut control = SendAncillaryBuffer::default();
    loop {
        match rustix::net::sendmsg(
            sock,
            parts,
            &mut control,
            SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
        ) {
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::AGAIN) => return Ok(false),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one packet and up to 4 file descriptors (close-on-exec). Returns the byte
/// count (0 = peer closed) and the descriptors. A truncated packet is an error.
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    recv_packet(sock, buf, RecvFlags::empty())?.ok_or_else(|| io::ErrorKind::WouldBlock.into())
}

/// As [`recv_with_fds`], without waiting: `Ok(None)` when nothing is queued.
pub fn try_recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<Option<(usize, Vec<OwnedFd>)>> {
    recv_packet(sock, buf, RecvFlags::DONTWAIT)
}

fn recv_packet(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: RecvFlags,
) -> io::Result<Option<(usize, Vec<OwnedFd>)>> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        let mut iov = [IoSliceMut::new(buf)];
        match rustix::net::recvmsg(
            sock,
            &mut iov,
            &mut control,
            flags | RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(m) => break m,
            Err(rustix::io::Errno::AGAIN) => return Ok(None),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = m {
            fds.extend(rights);
        }
    }
    if msg
        .flags
        .intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "packet or control data truncated",
        ));
    }
    Ok(Some((msg.bytes, fds)))
}

/// Creates a memfd of `size` bytes, sealable.
pub fn memfd_create(name: &str, size: u64) -> io::Result<OwnedFd> {
    let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `cname` is a valid NUL-terminated string.
    let fd = cvt(unsafe {
        libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: the kernel returned a new descriptor that we now own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: plain call on a descriptor we own.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), size as libc::off_t) })?;
    Ok(fd)
}

/// The seals on a memfd (`F_GET_SEALS`).
pub fn get_seals(fd: BorrowedFd<'_>) -> io::Result<i32> {
    // SAFETY: plain fcntl query.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })
}

/// The size of a file (`fstat`).
pub fn file_size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: zero is a valid `stat`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid for writes.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st.st_size as u64)
}

/// Clears `FD_CLOEXEC` so that a child process inherits `fd`.
pub fn clear_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: plain fcntl calls on a borrowed descriptor.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flags & !libc::FD_CLOEXEC) })?;
    Ok(())
}

/// Blocks SIGINT and SIGTERM in the calling thread (and threads it creates later) and
/// returns a signalfd that reads them.
pub fn block_termination_signals() -> io::Result<OwnedFd> {
    // SAFETY: zero is a valid sigset_t before sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset; the calls only modify it and the thread's mask.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: `set` is initialised; -1 asks for a new descriptor.
    let fd = cvt(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) })?;
    // SAFETY: new descriptor returned by the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits on several descriptors for readability; returns the indices that are ready.
pub fn poll_readable(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> io::Result<Vec<usize>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `pfds` is a valid array of `pfds.len()` entries.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(Vec::new());
        }
        return Err(err);
    }
    Ok(pfds
        .iter()
        .enumerate()
        .filter(|(_, p)| p.revents != 0)
        .map(|(i, _)| i)
        .collect())
}

/// `pread` the whole range or fail.
pub fn pread_exact(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the destination range lies inside `buf`.
        let n = unsafe {
            libc::pread(
                fd.as_raw_fd(),
                buf[done..].as_mut_ptr().cast(),
                buf.len() - done,
                (offset + done as u64) as libc::off_t,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        done += n as usize;
    }
    Ok(())
}

/// `pwrite` the whole range or fail.
pub fn pwrite_all(fd: BorrowedFd<'_>, buf: &[u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the source range lies inside `buf`.
        let n = unsafe {
            libc::pwrite(
                fd.as_raw_fd(),
                buf[done..].as_ptr().cast(),
                buf.len() - done,
                (offset + done as u64) as libc::off_t,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        done += n as usize;
    }
    Ok(())
}

/// Changes a path's group (`chown(path, -1, gid)`).
pub fn chgrp(path: &std::path::Path, gid: u32) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated path.
    cvt(unsafe { libc::chown(c.as_ptr(), u32::MAX, gid) })?;
    Ok(())
}

/// Looks up a group id by name (`getgrnam_r`).
pub fn group_id(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    // SAFETY: zero is a valid `group`.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; `buf` is large enough for typical entries.
    let r = unsafe {
        libc::getgrnam_r(
            cname.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if r != 0 || result.is_null() {
        None
    } else {
        Some(grp.gr_gid)
    }
}

/// The effective uid of this process.
pub fn geteuid() -> u32 {
    // SAFETY: always succeeds.
    unsafe { libc::geteuid() }
}

/// The calling thread's id.
pub fn gettid() -> i32 {
    // SAFETY: always succeeds.
    unsafe { libc::gettid() }
}

/// A listening `SOCK_SEQPACKET` Unix socket bound to `path` (close-on-exec).
pub fn seqpacket_listen(path: &std::path::Path, backlog: i32) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: zero is a valid sockaddr_un.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket path too long: {}", path.display()),
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: plain socket creation.
    let fd =
        cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: the kernel returned a new descriptor that we now own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len =
        (std::mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1) as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_un of at least `len` bytes.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), len) })?;
    // SAFETY: plain call on a descriptor we own.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(fd)
}

/// `accept4(SOCK_CLOEXEC)`.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    loop {
        // SAFETY: null address arguments are allowed.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel returned a new descriptor that we now own.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// An eventfd used to stop the accept loop.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain call.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) })?;
    // SAFETY: the kernel returned a new descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to an eventfd.
pub fn eventfd_signal(fd: BorrowedFd<'_>) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64.
    let _ = unsafe { libc::write(fd.as_raw_fd(), (&raw const one).cast(), 8) };
}

/// Sends SIGTERM to a process.
pub fn terminate(pid: u32) {
    // SAFETY: plain kill(2).
    let _ = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
}

/// `shutdown(SHUT_RDWR)`: wakes a thread blocked reading the socket.
pub fn shutdown_socket(fd: BorrowedFd<'_>) {
    // SAFETY: plain call on a borrowed descriptor.
    let _ = unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
}

/// Asks the kernel to send SIGTERM to this process when its parent exits.
pub fn die_with_parent() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) with integer arguments.
    let _ = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) };
}

/// True if `fd` is an open descriptor of this process.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only queries the descriptor table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Takes ownership of an inherited descriptor. The caller checks with [`fd_is_open`]
/// first and must not use the number elsewhere.
pub fn own_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the descriptor is open (checked by the caller) and owned by nobody else in
    // this process: it was inherited across exec for this purpose.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Moves the calling process into new namespaces (`unshare(2)`): a PID namespace (its next
/// child becomes PID 1 there) and, when `user` is set, a user namespace in which the
/// caller's uid and gid map to root (how an unprivileged user gets a PID namespace).
pub fn unshare_pid_namespace(user: bool) -> io::Result<()> {
    let (uid, gid) = (geteuid(), {
        // SAFETY: always succeeds.
        unsafe { libc::getegid() }
    });
    let flags = libc::CLONE_NEWPID | if user { libc::CLONE_NEWUSER } else { 0 };
    // SAFETY: plain system call with flags.
    cvt(unsafe { libc::unshare(flags) })?;
    if user {
        std::fs::write("/proc/self/setgroups", "deny")?;
        std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
        std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    }
    Ok(())
}

/// Sends a signal to a process group.
pub fn kill_process_group(pgid: u32, signal: i32) {
    // SAFETY: plain kill(2) on a negative pid (a process group).
    let _ = unsafe { libc::kill(-(pgid as libc::pid_t), signal) };
}

/// A connected pair of `SOCK_SEQPACKET` Unix sockets (benchmarks and tests).
pub fn socketpair_seqpacket() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: the kernel returned two new descriptors that we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Connects a `SOCK_SEQPACKET` Unix socket to `path` (tests and tools that speak the wire
/// protocol directly).
pub fn seqpacket_connect(path: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: zero is a valid sockaddr_un.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long",
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: plain socket creation.
    let fd =
        cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: the kernel returned a new descriptor that we now own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len =
        (std::mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1) as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_un of at least `len` bytes.
    cvt(unsafe { libc::connect(fd.as_raw_fd(), (&raw const addr).cast(), len) })?;
    Ok(fd)
}

/// Creates a memfd holding `data`, sealed with `seals` (tests and tools).
pub fn sealed_memfd(data: &[u8], size: u64, seals: i32) -> io::Result<OwnedFd> {
    let fd = memfd_create("vchiq-bulk", size)?;
    pwrite_all(fd.as_fd(), data, 0)?;
    if seals != 0 {
        // SAFETY: plain fcntl on a descriptor we own.
        cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    }
    Ok(fd)
}

/// Sends a signal to one process.
pub fn signal(pid: u32, signal: i32) {
    // SAFETY: plain kill(2) on a positive pid.
    let _ = unsafe { libc::kill(pid as libc::pid_t, signal) };
}

/// `len` bytes of `fd` from `offset`, read into a new vector without zeroing it first.
pub fn pread_vec(fd: BorrowedFd<'_>, len: usize, offset: u64) -> io::Result<Vec<u8>> {
    let mut v: Vec<u8> = Vec::with_capacity(len);
    while v.len() < len {
        let at = offset + v.len() as u64;
        // The capacity may exceed `len`: whatever is read past it is cut off below.
        match rustix::io::pread(fd, rustix::buffer::spare_capacity(&mut v), at) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    v.truncate(len);
    Ok(v)
}
