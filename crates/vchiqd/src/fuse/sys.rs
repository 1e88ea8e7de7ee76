//! The file node's system calls: `/dev/fuse`, `mount(2)`, and the caller's memory.
//!
//! This is the only module of the FUSE front end with `unsafe`: each block is one libc
//! call whose pointer arguments come from live Rust buffers of the stated length.
//! Everything returns `io::Result`; nothing here interprets the bytes it moves.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Opens `/dev/fuse` (close-on-exec).
pub fn open_dev_fuse() -> io::Result<OwnedFd> {
    let path = cstr("/dev/fuse")?;
    // SAFETY: `path` is a valid NUL-terminated string; open returns a new descriptor.
    let fd = cvt(unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })?;
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mount(source, target, fstype, flags, data)`.
pub fn mount(
    source: &str,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let src = cstr(source)?;
    let tgt = cpath(target)?;
    let ty = fstype.map(cstr).transpose()?;
    let data = data.map(cstr).transpose()?;
    // SAFETY: every pointer is a valid NUL-terminated string or NULL, alive for the call.
    cvt(unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            ty.as_ref().map_or(std::ptr::null(), |t| t.as_ptr()),
            flags,
            data.as_ref()
                .map_or(std::ptr::null(), |d| d.as_ptr().cast()),
        )
    })?;
    Ok(())
}

/// Bind-mounts `source` onto `target` (`MS_BIND`, plus `MS_REC` when `recursive`).
pub fn bind_mount(source: &Path, target: &Path, recursive: bool) -> io::Result<()> {
    let src = source
        .to_str()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let flags = libc::MS_BIND | if recursive { libc::MS_REC } else { 0 };
    mount(src, target, None, flags, None)
}

/// Moves the mount at `source` to `target` (`MS_MOVE`).
pub fn move_mount(source: &Path, target: &Path) -> io::Result<()> {
    let src = source
        .to_str()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    mount(src, target, None, libc::MS_MOVE, None)
}

/// Lazily unmounts `target` (`umount2(MNT_DETACH)`).
pub fn unmount_detach(target: &Path) -> io::Result<()> {
    let tgt = cpath(target)?;
    // SAFETY: `tgt` is a valid NUL-terminated path.
    cvt(unsafe { libc::umount2(tgt.as_ptr(), libc::MNT_DETACH) })?;
    Ok(())
}

/// Moves the calling process into a new mount namespace in which every mount is private
/// (so nothing done there propagates back), and first into a new user namespace that maps
/// the caller's uid and gid to root when `user` is set (how an unprivileged user may mount).
pub fn enter_private_mount_namespace(user: bool) -> io::Result<()> {
    // SAFETY: geteuid/getegid always succeed.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let flags = libc::CLONE_NEWNS | if user { libc::CLONE_NEWUSER } else { 0 };
    // SAFETY: plain system call with flags.
    cvt(unsafe { libc::unshare(flags) })?;
    if user {
        std::fs::write("/proc/self/setgroups", "deny")?;
        std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
        std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    }
    mount(
        "none",
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
}

/// `read(2)` of one request from `/dev/fuse`.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `writev(2)` of one reply to `/dev/fuse` (the kernel takes a reply whole or not at all).
pub fn writev(fd: BorrowedFd<'_>, parts: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: `IoSlice` is ABI-compatible with `struct iovec`, and every slice is alive
    // and readable for its length during the call.
    let n = unsafe {
        libc::writev(
            fd.as_raw_fd(),
            parts.as_ptr().cast(),
            parts.len() as libc::c_int,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn remote(addr: u64, len: usize) -> io::Result<libc::iovec> {
    let efault = || io::Error::from_raw_os_error(libc::EFAULT);
    let base = usize::try_from(addr).map_err(|_| efault())?;
    base.checked_add(len).ok_or_else(efault)?;
    Ok(libc::iovec {
        iov_base: base as *mut libc::c_void,
        iov_len: len,
    })
}

/// Reads `buf.len()` bytes at `addr` in process (or thread) `pid` with
/// `process_vm_readv`. A short or failed copy is `EFAULT` (or the call's own error, e.g.
/// `ESRCH` for a process that is gone).
pub fn vm_read(pid: i32, addr: u64, buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0usize;
    while done < buf.len() {
        let rest = &mut buf[done..];
        let local = libc::iovec {
            iov_base: rest.as_mut_ptr().cast(),
            iov_len: rest.len(),
        };
        let rem = remote(addr + done as u64, rest.len())?;
        // SAFETY: `local` describes `rest`, writable for its length; the remote iovec is
        // only interpreted by the kernel in the other process, which checks it.
        let n = unsafe { libc::process_vm_readv(pid, &local, 1, &rem, 1, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        done += n as usize;
    }
    Ok(())
}

/// Writes `buf` at `addr` in process (or thread) `pid` with `process_vm_writev`;
/// a short copy is `EFAULT`.
pub fn vm_write(pid: i32, addr: u64, buf: &[u8]) -> io::Result<()> {
    let mut done = 0usize;
    while done < buf.len() {
        let rest = &buf[done..];
        let local = libc::iovec {
            iov_base: rest.as_ptr() as *mut libc::c_void,
            iov_len: rest.len(),
        };
        let rem = remote(addr + done as u64, rest.len())?;
        // SAFETY: `local` describes `rest`, readable for its length (the kernel only reads
        // it); the remote iovec is checked by the kernel against the other process.
        let n = unsafe { libc::process_vm_writev(pid, &local, 1, &rem, 1, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        done += n as usize;
    }
    Ok(())
}

/// The effective uid and gid of this process.
pub fn euid_egid() -> (u32, u32) {
    // SAFETY: geteuid/getegid always succeed.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// `stat(2)` errno of a path (None when it succeeds): tells a dead FUSE mount (`ENOTCONN`)
/// from a missing file.
pub fn stat_errno(path: &Path) -> Option<i32> {
    std::fs::metadata(path)
        .err()
        .map(|e| e.raw_os_error().unwrap_or(libc::EIO))
}
