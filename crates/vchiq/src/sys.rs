//! The system calls this crate makes, as small safe functions over `rustix`:
//! `SOCK_SEQPACKET` sockets, `sendmsg`/`recvmsg` with `SCM_RIGHTS`, and sealed memfds.
//!
//! There is no `unsafe` here (rustix wraps the syscalls); everything platform-specific is
//! in this module.

use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

/// Seals on every memfd this crate passes to the daemon: its size is fixed and the seals
/// themselves are frozen, so the daemon can rely on `size` bytes being there.
pub(crate) const BULK_SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::SEAL);

/// Connects a `SOCK_SEQPACKET` Unix socket to `path` (close-on-exec).
pub(crate) fn connect_seqpacket(path: &Path) -> io::Result<OwnedFd> {
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let addr = SocketAddrUnix::new(path)?;
    loop {
        match rustix::net::connect(&fd, &addr) {
            Ok(()) => return Ok(fd),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A connected pair of `SOCK_SEQPACKET` sockets (for tests and in-process daemons).
#[cfg(test)]
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Sends one packet made of `parts`, with `pass` attached as `SCM_RIGHTS` if given.
/// Never raises `SIGPIPE` (`MSG_NOSIGNAL`); a hung-up peer gives `EPIPE`.
pub(crate) fn send_frame(
    sock: BorrowedFd<'_>,
    parts: &[&[u8]],
    pass: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let iov: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let fds: Vec<BorrowedFd<'_>> = pass.into_iter().collect();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("SCM_RIGHTS control buffer too small"));
    }
    loop {
        match rustix::net::sendmsg(sock, &iov, &mut control, SendFlags::NOSIGNAL) {
            // A SEQPACKET send is all or nothing; a short count would be a kernel bug.
            Ok(n) if n == total => return Ok(()),
            Ok(n) => {
                return Err(io::Error::other(format!(
                    "short send: {n} of {total} bytes"
                )));
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One received packet.
pub(crate) struct Received {
    /// Bytes of the packet (possibly more than the buffer if `truncated`).
    pub len: usize,
    /// The packet did not fit the buffer.
    pub truncated: bool,
    /// File descriptors that came with it.
    pub fds: Vec<OwnedFd>,
}

/// Receives one packet into `buf`; `len == 0` with no fds means the peer hung up.
pub(crate) fn recv_frame(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        let mut iov = [IoSliceMut::new(buf)];
        match rustix::net::recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Ok(m) => break m,
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
    Ok(Received {
        len: msg.bytes,
        truncated: msg.flags.contains(ReturnFlags::TRUNC),
        fds,
    })
}

/// Makes both directions of `sock` fail: a reader blocked in `recv_frame` sees EOF.
pub(crate) fn shutdown_socket(sock: BorrowedFd<'_>) {
    // Errors (e.g. ENOTCONN once the peer is gone) leave the socket just as dead.
    let _ = rustix::net::shutdown(sock, rustix::net::Shutdown::Both);
}

/// A memfd holding `data`, sealed ([`BULK_SEALS`]) after writing: for bulk transmits.
pub(crate) fn memfd_with(name: &str, data: &[u8]) -> io::Result<File> {
    let file = File::from(rustix::fs::memfd_create(
        name,
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?);
    file.set_len(data.len() as u64)?;
    file.write_all_at(data, 0)?;
    rustix::fs::fcntl_add_seals(&file, BULK_SEALS)?;
    Ok(file)
}

/// A zero-filled memfd of `len` bytes, sealed ([`BULK_SEALS`]): for bulk receives. The
/// daemon can write into it but cannot change its size.
pub(crate) fn memfd_sized(name: &str, len: usize) -> io::Result<File> {
    let file = File::from(rustix::fs::memfd_create(
        name,
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?);
    file.set_len(len as u64)?;
    rustix::fs::fcntl_add_seals(&file, BULK_SEALS)?;
    Ok(file)
}

/// Writes `data` at the start of a (reused) bulk memfd.
pub(crate) fn overwrite(file: &File, data: &[u8]) -> io::Result<()> {
    file.write_all_at(data, 0)
}

/// The size of a memfd.
pub(crate) fn file_len(file: &File) -> io::Result<usize> {
    Ok(usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX))
}

/// The first `len` bytes of `file`.
pub(crate) fn read_all(file: &File, len: usize) -> io::Result<Vec<u8>> {
    // Read into spare capacity: no zeroing of a buffer about to be overwritten.
    let mut data: Vec<u8> = Vec::with_capacity(len);
    while data.len() < len {
        let at = data.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut data), at) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    data.truncate(len);
    Ok(data)
}

/// The seals on `fd` (tests check what the daemon would see).
#[cfg(test)]
pub(crate) fn seals(fd: impl std::os::fd::AsFd) -> io::Result<SealFlags> {
    Ok(rustix::fs::fcntl_get_seals(fd)?)
}

/// The calling thread's id (the driver keys interrupted BLOCKING bulks by it).
pub(crate) fn gettid() -> u32 {
    rustix::thread::gettid()
        .as_raw_nonzero()
        .get()
        .unsigned_abs()
}

/// The effective uid (chooses the default socket path).
pub(crate) fn geteuid() -> u32 {
    rustix::process::geteuid().as_raw()
}
