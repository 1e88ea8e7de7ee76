//! The `ioctl(2)` calls of the native transport, and the signal that interrupts one: the
//! only `unsafe` code of this crate.
//!
//! Every function takes Rust borrows for the memory the driver reads or writes during
//! the call, lays the argument struct out for this process's data model
//! ([`Layout::NATIVE`], through the `vchiq_abi::args` views) with pointers into those
//! borrows, and issues the ioctl. The one exception is [`bulk`], whose memory must outlive
//! the call for CALLBACK and NOCALLBACK transfers: see [`BulkPtr`].
//!
//! Results are `Ok(return value)` or `Err(errno)`; nothing is retried here.

#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::thread::JoinHandleExt;
use std::sync::OnceLock;
use std::thread::JoinHandle;

use vchiq_abi::args::{
    AwaitCompletionArgs, CompletionDataArgs, CreateServiceArgs, DequeueMessageArgs, ElementArgs,
    GetConfigArgs, QueueBulkTransferArgs, QueueMessageArgs, SetServiceOptionArgs,
};
use vchiq_abi::ioctl::{Ioctl, Layout};

use crate::transport::BulkPtr;

/// `Ok(ioctl return value)` or `Err(errno)`.
pub(crate) type Ret = std::result::Result<i32, i32>;

const L: Layout = Layout::NATIVE;

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// `ioctl(fd, cmd, arg)` with a pointer argument of `ioctl.arg_size(L)` bytes.
fn ioctl_ptr(fd: BorrowedFd<'_>, ioctl: Ioctl, arg: &mut [u8]) -> Ret {
    assert_eq!(
        arg.len(),
        ioctl.arg_size(L),
        "{} argument size",
        ioctl.name()
    );
    // SAFETY: `arg` is a live, exclusively borrowed buffer of exactly the size encoded in
    // the command number, so the driver's copy_from_user/copy_to_user of the struct stay
    // inside it. Every pointer stored *inside* the struct was set by the callers in this
    // module to memory they borrow for the duration of this call (or, for `bulk`, to
    // memory kept alive by the `BulkPtr` invariant), with the sizes the struct states.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            ioctl.number(L) as _,
            arg.as_mut_ptr().cast::<libc::c_void>(),
        )
    };
    if r < 0 { Err(errno()) } else { Ok(r) }
}

/// An `_IO` ioctl whose argument is a value (a handle, a version or 0).
pub(crate) fn value(fd: BorrowedFd<'_>, ioctl: Ioctl, arg: u64) -> Ret {
    assert!(ioctl.takes_value(), "{} takes a pointer", ioctl.name());
    // SAFETY: a value command: the driver does not dereference `arg`, it uses it as a
    // number (a service handle or a version), so any value is memory-safe.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), ioctl.number(L) as _, arg as libc::c_ulong) };
    if r < 0 { Err(errno()) } else { Ok(r) }
}

/// CREATE_SERVICE. `args.callback` is sent as 0 (the driver ignores it); `userdata` is
/// opaque to the driver (only echoed back). `args.handle` receives the handle.
pub(crate) fn create_service(fd: BorrowedFd<'_>, args: &mut CreateServiceArgs) -> Ret {
    args.callback = 0;
    let mut raw = args.encode(L);
    let r = ioctl_ptr(fd, Ioctl::CreateService, &mut raw)?;
    if let Ok(back) = CreateServiceArgs::decode(L, &raw) {
        args.handle = back.handle;
    }
    Ok(r)
}

/// QUEUE_MESSAGE with one element per part (the caller checks the element limit; the
/// driver refuses more than 8 with EINVAL anyway).
pub(crate) fn queue_message(fd: BorrowedFd<'_>, handle: u32, parts: &[&[u8]]) -> Ret {
    // A zero-length message as one empty element: 32-bit callers on a 64-bit kernel get
    // EINVAL for `count == 0` or NULL `elements` (spec §3.5).
    static EMPTY: [u8; 1] = [0];
    let one_empty: [&[u8]; 1] = [&EMPTY[..0]];
    let parts = if parts.is_empty() {
        &one_empty[..]
    } else {
        parts
    };
    let esize = ElementArgs::size(L);
    let mut elements = vec![0u8; esize * parts.len()];
    for (i, part) in parts.iter().enumerate() {
        let e = ElementArgs {
            data: part.as_ptr() as u64,
            size: u32::try_from(part.len()).map_err(|_| libc::EINVAL)?,
        };
        e.encode_into(L, &mut elements[i * esize..])
            .map_err(|_| libc::EINVAL)?;
    }
    let mut raw = QueueMessageArgs {
        handle,
        count: parts.len() as u32,
        elements: elements.as_ptr() as u64,
    }
    .encode(L);
    ioctl_ptr(fd, Ioctl::QueueMessage, &mut raw)
}

/// QUEUE_BULK_TRANSMIT (`transmit`) or QUEUE_BULK_RECEIVE of `mem`. `mode` is IN/OUT:
/// the driver writes WAITING back when a BLOCKING transfer is interrupted.
///
/// The driver may go on using `mem` after this returns (CALLBACK, NOCALLBACK, and an
/// interrupted BLOCKING transfer); the [`BulkPtr`] invariant keeps it alive until then.
pub(crate) fn bulk(
    fd: BorrowedFd<'_>,
    transmit: bool,
    handle: u32,
    mem: BulkPtr,
    userdata: u64,
    mode: &mut u32,
) -> Ret {
    let args = QueueBulkTransferArgs {
        handle,
        data: mem.addr as u64,
        size: u32::try_from(mem.len).map_err(|_| libc::EINVAL)?,
        userdata,
        mode: *mode,
    };
    let mut raw = args.encode(L);
    let ioctl = if transmit {
        Ioctl::QueueBulkTransmit
    } else {
        Ioctl::QueueBulkReceive
    };
    let r = ioctl_ptr(fd, ioctl, &mut raw);
    if let Ok(back) = QueueBulkTransferArgs::decode(L, &raw) {
        *mode = back.mode;
    }
    r
}

/// AWAIT_COMPLETION into `records` (capacity = its length) with `msgbufs` offered as
/// message buffers (each `msgbufsize` bytes long; the driver takes them from the end).
/// Returns the number of records; `msgbufcount` receives the buffers left.
pub(crate) fn await_completion(
    fd: BorrowedFd<'_>,
    records: &mut Vec<CompletionDataArgs>,
    capacity: usize,
    msgbufs: &mut [Vec<u8>],
    msgbufsize: usize,
    msgbufcount: &mut u32,
) -> Ret {
    let rsize = CompletionDataArgs::size(L);
    let mut buf = vec![0u8; rsize * capacity];
    let psize = L.pointer_size();
    let mut ptrs = vec![0u8; psize * msgbufs.len()];
    for (i, m) in msgbufs.iter_mut().enumerate() {
        if m.len() < msgbufsize {
            m.resize(msgbufsize, 0);
        }
        let p = m.as_mut_ptr() as u64;
        let slot = &mut ptrs[i * psize..(i + 1) * psize];
        if psize == 8 {
            slot.copy_from_slice(&p.to_ne_bytes());
        } else {
            slot.copy_from_slice(&(p as u32).to_ne_bytes());
        }
    }
    let args = AwaitCompletionArgs {
        count: capacity as u32,
        buf: buf.as_mut_ptr() as u64,
        msgbufsize: msgbufsize as u32,
        msgbufcount: msgbufs.len() as u32,
        msgbufs: ptrs.as_mut_ptr() as u64,
    };
    let mut raw = args.encode(L);
    let n = ioctl_ptr(fd, Ioctl::AwaitCompletion, &mut raw)?;
    let back = AwaitCompletionArgs::decode(L, &raw).map_err(|_| libc::EIO)?;
    *msgbufcount = back.msgbufcount;
    records.clear();
    let n_records = usize::try_from(n).unwrap_or(0).min(capacity);
    for i in 0..n_records {
        let rec = CompletionDataArgs::decode(L, &buf[i * rsize..]).map_err(|_| libc::EIO)?;
        records.push(rec);
    }
    Ok(n)
}

/// DEQUEUE_MESSAGE into `buf` (`None`: a NULL buffer, the message is dropped).
pub(crate) fn dequeue(
    fd: BorrowedFd<'_>,
    handle: u32,
    blocking: bool,
    buf: Option<&mut [u8]>,
) -> Ret {
    let (ptr, size) = match buf {
        Some(b) => (b.as_mut_ptr() as u64, b.len()),
        None => (0, 0),
    };
    let mut raw = DequeueMessageArgs {
        handle,
        blocking,
        bufsize: u32::try_from(size).map_err(|_| libc::EINVAL)?,
        buf: ptr,
    }
    .encode(L);
    ioctl_ptr(fd, Ioctl::DequeueMessage, &mut raw)
}

/// GET_CONFIG of `out.len()` bytes into `out`.
pub(crate) fn get_config(fd: BorrowedFd<'_>, out: &mut [u8]) -> Ret {
    let mut raw = GetConfigArgs {
        config_size: u32::try_from(out.len()).map_err(|_| libc::EINVAL)?,
        pconfig: out.as_mut_ptr() as u64,
    }
    .encode(L);
    ioctl_ptr(fd, Ioctl::GetConfig, &mut raw)
}

/// SET_SERVICE_OPTION (no pointers inside).
pub(crate) fn set_option(fd: BorrowedFd<'_>, args: &SetServiceOptionArgs) -> Ret {
    let mut raw = args.encode(L);
    ioctl_ptr(fd, Ioctl::SetServiceOption, &mut raw)
}

/// The signal [`interrupt`] sends: a real-time signal near the top of the range, with an
/// empty handler installed without `SA_RESTART`, so a blocked ioctl returns `EINTR`.
fn wake_signal() -> libc::c_int {
    static SIGNAL: OnceLock<libc::c_int> = OnceLock::new();
    *SIGNAL.get_or_init(|| {
        extern "C" fn nothing(_: libc::c_int) {}
        let sig = libc::SIGRTMAX() - 2;
        // SAFETY: sigaction with a zeroed (valid: empty mask, no flags) struct whose
        // handler is an `extern "C" fn(c_int)` that does nothing (async-signal-safe);
        // the handler is installed only if the signal has none (SIG_DFL), so another
        // user's handler is left alone.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_DFL
            {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = nothing as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&mut act.sa_mask);
                libc::sigaction(sig, &act, std::ptr::null_mut());
            }
        }
        sig
    })
}

/// Interrupts whatever system call `thread` is blocked in (it returns `EINTR`). The
/// caller holds the `JoinHandle`, so the thread has not been joined or detached and its
/// `pthread_t` is valid even if it has already finished.
pub(crate) fn interrupt<T>(thread: &JoinHandle<T>) {
    let sig = wake_signal();
    // SAFETY: the pthread_t comes from a JoinHandle borrowed for this call, so it names a
    // thread that is neither joined nor detached (pthread_kill on it is defined, even
    // after it exited); the signal has a no-op handler (or the application's own).
    unsafe {
        libc::pthread_kill(thread.as_pthread_t() as libc::pthread_t, sig);
    }
}
