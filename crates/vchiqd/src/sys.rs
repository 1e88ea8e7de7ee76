//! The daemon's system calls: peer credentials, pidfds, `SCM_RIGHTS`, memfds and signals.
//!
//! Everything here returns `io::Result` (or, for best-effort calls, nothing) and goes
//! through rustix's safe wrappers: sockets and their packet I/O, pidfd_open, memfds and
//! seals, fstat, close-on-exec, poll, pread/pwrite, chown, ids, eventfds, signals to
//! other processes, shutdown and `PR_SET_PDEATHSIG`.
//!
//! The `unsafe` left is where rustix has no safe call, each block with its reason:
//! - `SO_PEERCRED`: rustix's `UCred` holds the PID as a non-zero `Pid`, but the kernel
//!   reports 0 for a peer outside our PID namespace (which [`crate::identity`] handles),
//!   so it is read with libc into a plain `ucred`.
//! - `SO_PEERPIDFD`: rustix has no wrapper for it.
//! - `pidfd_send_signal(fd, 0)`: rustix's `Signal` cannot be 0, the existence check.
//! - `pthread_sigmask` and `signalfd`: rustix has neither (its `sigprocmask` is unsafe and
//!   behind the `runtime` feature).
//! - `getgrnam_r`: a libc (NSS) lookup, not a system call.
//! - [`fd_is_open`] and [`own_fd`] work on a raw descriptor number that nobody owns yet,
//!   which rustix (taking `AsFd`) cannot express.
//! - `unshare`: rustix's own wrapper is `unsafe` (because of `CLONE_FILES`).
//! - `kill` with a signal number rustix cannot name (0 and real-time signals).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::fs::{Gid, MemfdFlags, SealFlags};
use rustix::io::{Errno, FdFlags};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, Shutdown, SocketAddrUnix, SocketFlags,
    SocketType,
};
use rustix::process::{Pid, Signal};

/// `SO_PEERPIDFD` (Linux >= 6.5): a pidfd for the process that connected.
const SO_PEERPIDFD: libc::c_int = 77;

/// Bytes in `sockaddr_un::sun_path`; a socket path must fit with its NUL.
const SUN_PATH_LEN: usize = 108;

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
///
/// Not `rustix::net::sockopt::socket_peercred`: its `UCred::pid` is a non-zero `Pid`, and
/// the kernel gives 0 for a peer outside our PID namespace.
pub fn peer_cred(sock: BorrowedFd<'_>) -> io::Result<PeerCred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes and `len` holds the buffer size; a
    // `ucred` is plain integers, so any value the kernel writes is valid.
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
    // SAFETY: `fd` and `len` are valid for writes and `len` holds the buffer size (rustix
    // has no wrapper for `SO_PEERPIDFD`).
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
    // A PID of 0 or below is EINVAL, as from the raw system call.
    let pid = Pid::from_raw(pid.max(0)).ok_or(Errno::INVAL)?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// True if the process behind `pidfd` is still alive (`pidfd_send_signal(fd, 0)`).
pub fn pidfd_alive(pidfd: BorrowedFd<'_>) -> bool {
    // SAFETY: a plain system call with a borrowed descriptor and integers; signal 0 only
    // checks for existence and null info is allowed. (rustix's `pidfd_send_signal` takes a
    // `Signal`, which cannot be 0.)
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
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    rustix::fs::ftruncate(&fd, size)?;
    Ok(fd)
}

/// The seals on a memfd (`F_GET_SEALS`).
pub fn get_seals(fd: BorrowedFd<'_>) -> io::Result<i32> {
    Ok(rustix::fs::fcntl_get_seals(fd)?.bits() as i32)
}

/// The size of a file (`fstat`).
pub fn file_size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(rustix::fs::fstat(fd)?.st_size as u64)
}

/// A file's identity, `(st_dev, st_ino)`: two descriptors of one memfd have the same.
pub type FileId = (u64, u64);

/// The file's size and identity, from one `fstat`.
pub fn file_size_and_id(fd: BorrowedFd<'_>) -> io::Result<(u64, FileId)> {
    let st = rustix::fs::fstat(fd)?;
    Ok((st.st_size as u64, (st.st_dev, st.st_ino)))
}

/// Clears `FD_CLOEXEC` so that a child process inherits `fd`.
pub fn clear_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = rustix::io::fcntl_getfd(fd)?;
    rustix::io::fcntl_setfd(fd, flags - FdFlags::CLOEXEC)?;
    Ok(())
}

/// Blocks SIGINT and SIGTERM in the calling thread (and threads it creates later) and
/// returns a signalfd that reads them.
pub fn block_termination_signals() -> io::Result<OwnedFd> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `sigemptyset` initialises `set` before anything reads it; the calls only
    // modify `set` and the thread's signal mask (rustix has no safe sigprocmask).
    let (set, r) = unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        let mut set = set.assume_init();
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let r = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        (set, r)
    };
    if r != 0 {
        // pthread_sigmask returns the error number rather than setting errno.
        return Err(io::Error::from_raw_os_error(r));
    }
    // SAFETY: `set` is initialised; -1 asks for a new descriptor (rustix has no signalfd).
    let fd = cvt(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) })?;
    // SAFETY: new descriptor returned by the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits on several descriptors for readability; returns the indices that are ready.
/// A negative `timeout_ms` waits forever; an interrupted wait returns no indices.
pub fn poll_readable(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> io::Result<Vec<usize>> {
    let mut pfds: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::from_borrowed_fd(*fd, PollFlags::IN))
        .collect();
    let timeout = (timeout_ms >= 0).then(|| Timespec {
        tv_sec: i64::from(timeout_ms / 1000),
        tv_nsec: i64::from(timeout_ms % 1000) * 1_000_000,
    });
    match rustix::event::poll(&mut pfds, timeout.as_ref()) {
        Ok(_) => {}
        Err(Errno::INTR) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    }
    Ok(pfds
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.revents().is_empty())
        .map(|(i, _)| i)
        .collect())
}

/// `pread` the whole range or fail.
pub fn pread_exact(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::pread(fd, &mut buf[done..], offset + done as u64) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => done += n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `pwrite` the whole range or fail.
pub fn pwrite_all(fd: BorrowedFd<'_>, buf: &[u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::pwrite(fd, &buf[done..], offset + done as u64) {
            Ok(n) => done += n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Changes a path's group (`chown(path, -1, gid)`).
pub fn chgrp(path: &Path, gid: u32) -> io::Result<()> {
    rustix::fs::chown(path, None, Some(Gid::from_raw(gid)))?;
    Ok(())
}

/// Looks up a group id by name (`getgrnam_r`).
pub fn group_id(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    let mut grp = libc::group {
        gr_name: std::ptr::null_mut(),
        gr_passwd: std::ptr::null_mut(),
        gr_gid: 0,
        gr_mem: std::ptr::null_mut(),
    };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call and `buf.len()` is the size of `buf`
    // (a libc NSS lookup, which rustix does not do).
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
    rustix::process::geteuid().as_raw()
}

/// The calling thread's id.
pub fn gettid() -> i32 {
    rustix::thread::gettid().as_raw_pid()
}

/// The address of the Unix socket at `path`, which must fit `sun_path` with its NUL.
fn unix_addr(path: &Path, too_long: impl FnOnce() -> String) -> io::Result<SocketAddrUnix> {
    use std::os::unix::ffi::OsStrExt;
    if path.as_os_str().as_bytes().len() >= SUN_PATH_LEN {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, too_long()));
    }
    Ok(SocketAddrUnix::new(path)?)
}

/// A new `SOCK_SEQPACKET` Unix socket (close-on-exec).
fn seqpacket_socket() -> io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// A listening `SOCK_SEQPACKET` Unix socket bound to `path` (close-on-exec).
pub fn seqpacket_listen(path: &Path, backlog: i32) -> io::Result<OwnedFd> {
    let addr = unix_addr(path, || format!("socket path too long: {}", path.display()))?;
    let fd = seqpacket_socket()?;
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, backlog)?;
    Ok(fd)
}

/// `accept4(SOCK_CLOEXEC)`.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    loop {
        match rustix::net::accept_with(listener, SocketFlags::CLOEXEC) {
            Ok(fd) => return Ok(fd),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// An eventfd used to stop the accept loop.
pub fn eventfd() -> io::Result<OwnedFd> {
    Ok(rustix::event::eventfd(0, EventfdFlags::CLOEXEC)?)
}

/// Adds one to an eventfd.
pub fn eventfd_signal(fd: BorrowedFd<'_>) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

/// `kill(pid, sig)`, or `kill(-pid, sig)` for the process group when `group` is set.
///
/// Named signals go through rustix; other numbers (0, real-time signals), which rustix's
/// `Signal` cannot hold safely, through libc. A `pid` that is not a positive `pid_t` names
/// no process or group, so nothing is sent (`kill(2)` would read 0 as our own group).
fn send_signal(pid: u32, sig: i32, group: bool) {
    let Some(target) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    match Signal::from_named_raw(sig) {
        Some(s) if group => {
            let _ = rustix::process::kill_process_group(target, s);
        }
        Some(s) => {
            let _ = rustix::process::kill_process(target, s);
        }
        None => {
            let raw = target.as_raw_pid();
            let raw = if group { -raw } else { raw };
            // SAFETY: kill(2) takes only integers and touches no memory of this process;
            // `raw` names the positive `pid` or its process group.
            let _ = unsafe { libc::kill(raw, sig) };
        }
    }
}

/// Sends SIGTERM to a process.
pub fn terminate(pid: u32) {
    send_signal(pid, libc::SIGTERM, false);
}

/// `shutdown(SHUT_RDWR)`: wakes a thread blocked reading the socket.
pub fn shutdown_socket(fd: BorrowedFd<'_>) {
    let _ = rustix::net::shutdown(fd, Shutdown::Both);
}

/// Asks the kernel to send SIGTERM to this process when its parent exits.
pub fn die_with_parent() {
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::TERM));
}

/// True if `fd` is an open descriptor of this process.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only queries the descriptor table. (rustix's `fcntl_getfd` needs a
    // `BorrowedFd`, which may only be made for a number known to be open.)
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
    use rustix::thread::UnshareFlags;
    let (uid, gid) = (geteuid(), rustix::process::getegid().as_raw());
    let mut flags = UnshareFlags::NEWPID;
    if user {
        flags |= UnshareFlags::NEWUSER;
    }
    // SAFETY: rustix marks `unshare` unsafe only for `UnshareFlags::FILES` (threads losing
    // sight of each other's descriptors), which `flags` never contains.
    unsafe { rustix::thread::unshare_unsafe(flags) }?;
    if user {
        std::fs::write("/proc/self/setgroups", "deny")?;
        std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
        std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    }
    Ok(())
}

/// Sends a signal to a process group.
pub fn kill_process_group(pgid: u32, signal: i32) {
    send_signal(pgid, signal, true);
}

/// A connected pair of `SOCK_SEQPACKET` Unix sockets (benchmarks and tests).
pub fn socketpair_seqpacket() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Connects a `SOCK_SEQPACKET` Unix socket to `path` (tests and tools that speak the wire
/// protocol directly).
pub fn seqpacket_connect(path: &Path) -> io::Result<OwnedFd> {
    let addr = unix_addr(path, || "socket path too long".to_owned())?;
    let fd = seqpacket_socket()?;
    rustix::net::connect(&fd, &addr)?;
    Ok(fd)
}

/// Creates a memfd holding `data`, sealed with `seals` (tests and tools).
pub fn sealed_memfd(data: &[u8], size: u64, seals: i32) -> io::Result<OwnedFd> {
    let fd = memfd_create("vchiq-bulk", size)?;
    pwrite_all(fd.as_fd(), data, 0)?;
    if seals != 0 {
        rustix::fs::fcntl_add_seals(&fd, SealFlags::from_bits_retain(seals as u32))?;
    }
    Ok(fd)
}

/// Sends a signal to one process.
pub fn signal(pid: u32, signal: i32) {
    send_signal(pid, signal, false);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Command, Stdio};

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "vchiqd-sys-{}-{}-{name}",
            std::process::id(),
            gettid()
        ))
    }

    fn sleeper(group: bool) -> std::process::Child {
        let mut cmd = Command::new("sleep");
        cmd.arg("30").stdin(Stdio::null());
        if group {
            cmd.process_group(0);
        }
        cmd.spawn().unwrap()
    }

    #[test]
    fn peer_credentials_and_pidfds() {
        let (a, _b) = socketpair_seqpacket().unwrap();
        let cred = peer_cred(a.as_fd()).unwrap();
        assert_eq!(cred.pid, std::process::id() as i32);
        assert_eq!(cred.uid, geteuid());
        assert_eq!(cred.gid, rustix::process::getegid().as_raw());
        if let Some(fd) = peer_pidfd(a.as_fd()).unwrap() {
            assert!(pidfd_alive(fd.as_fd()));
        }
        assert!(pidfd_alive(pidfd_open(cred.pid).unwrap().as_fd()));
        assert!(pidfd_open(0).is_err());
        assert!(pidfd_open(-1).is_err());

        let mut child = sleeper(false);
        let fd = pidfd_open(child.id() as i32).unwrap();
        assert!(pidfd_alive(fd.as_fd()));
        terminate(child.id());
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
        assert!(!pidfd_alive(fd.as_fd()));
    }

    #[test]
    fn memfds_seals_and_positional_io() {
        let fd = sealed_memfd(b"hello", 64, libc::F_SEAL_SHRINK | libc::F_SEAL_GROW).unwrap();
        assert_eq!(file_size(fd.as_fd()).unwrap(), 64);
        let seals = get_seals(fd.as_fd()).unwrap();
        assert_eq!(seals, libc::F_SEAL_SHRINK | libc::F_SEAL_GROW);
        pwrite_all(fd.as_fd(), b"world", 59).unwrap();
        let mut buf = [0u8; 5];
        pread_exact(fd.as_fd(), &mut buf, 0).unwrap();
        assert_eq!(&buf, b"hello");
        pread_exact(fd.as_fd(), &mut buf, 59).unwrap();
        assert_eq!(&buf, b"world");
        let err = pread_exact(fd.as_fd(), &mut buf, 62).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(pwrite_all(fd.as_fd(), b"x", 64).is_err(), "grow is sealed");

        let plain = sealed_memfd(&[], 16, 0).unwrap();
        assert_eq!(get_seals(plain.as_fd()).unwrap(), 0);
        assert!(memfd_create("bad\0name", 1).is_err());
    }

    #[test]
    fn cloexec_and_descriptor_checks() {
        let fd = eventfd().unwrap();
        assert!(
            rustix::io::fcntl_getfd(&fd)
                .unwrap()
                .contains(FdFlags::CLOEXEC)
        );
        clear_cloexec(fd.as_fd()).unwrap();
        assert!(
            !rustix::io::fcntl_getfd(&fd)
                .unwrap()
                .contains(FdFlags::CLOEXEC)
        );
        assert!(fd_is_open(fd.as_raw_fd()));
        assert!(!fd_is_open(-1));
    }

    #[test]
    fn poll_sees_an_eventfd() {
        let (a, b) = (eventfd().unwrap(), eventfd().unwrap());
        let fds = [a.as_fd(), b.as_fd()];
        assert!(poll_readable(&fds, 0).unwrap().is_empty());
        let start = std::time::Instant::now();
        assert!(poll_readable(&fds, 50).unwrap().is_empty());
        assert!(start.elapsed() >= std::time::Duration::from_millis(40));
        eventfd_signal(b.as_fd());
        assert_eq!(poll_readable(&fds, -1).unwrap(), vec![1]);
    }

    #[test]
    fn seqpacket_listen_accept_connect() {
        let path = temp_path("sock");
        let _ = std::fs::remove_file(&path);
        let listener = seqpacket_listen(&path, 4).unwrap();
        let client = seqpacket_connect(&path).unwrap();
        let server = accept(listener.as_fd()).unwrap();
        assert!(
            rustix::io::fcntl_getfd(&server)
                .unwrap()
                .contains(FdFlags::CLOEXEC)
        );
        assert!(try_send_packet(client.as_fd(), &[IoSlice::new(b"ping")]).unwrap());
        let mut buf = [0u8; 16];
        let (n, fds) = recv_with_fds(server.as_fd(), &mut buf).unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"ping"[..], 0));
        shutdown_socket(client.as_fd());
        assert_eq!(recv_with_fds(server.as_fd(), &mut buf).unwrap().0, 0);

        chgrp(&path, rustix::process::getegid().as_raw()).unwrap();
        std::fs::remove_file(&path).unwrap();

        let long = std::path::PathBuf::from(format!("/tmp/{}", "x".repeat(103)));
        assert_eq!(long.as_os_str().len(), SUN_PATH_LEN);
        let err = seqpacket_listen(&long, 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().starts_with("socket path too long: /tmp/x"));
        let err = seqpacket_connect(&long).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn ids_and_groups() {
        assert!(gettid() > 0);
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_id("no-such-group-vchiqd"), None);
        assert_eq!(group_id("nul\0byte"), None);
    }

    #[test]
    fn signals_named_and_real_time() {
        let mut child = sleeper(false);
        signal(child.id(), libc::SIGKILL);
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));

        let mut child = sleeper(false);
        signal(child.id(), libc::SIGRTMIN() + 1);
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGRTMIN() + 1));

        let mut child = sleeper(true);
        kill_process_group(child.id(), libc::SIGKILL);
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }
}
