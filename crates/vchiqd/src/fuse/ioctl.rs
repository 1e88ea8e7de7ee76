//! FUSE_IOCTL: the 18 `/dev/vchiq` ioctls in both layouts, on top of the driver core.
//!
//! The kernel hands over the command, the raw `arg` and (for `_IOC_WRITE` commands) the
//! caller's struct; on success it copies the reply's out bytes back to `arg` (for
//! `_IOC_READ` commands). Everything else is reached through [`Caller`]: the requesting
//! thread's memory via `process_vm_readv`/`writev`, every access checked (`EFAULT`).
//!
//! Requests are answered inline when the driver can answer without waiting
//! (`Blocking::No`); only real waits go to a worker thread, which answers through
//! [`Session::finish`] so that an interrupt and a late result never both reply.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use vchiq_abi::args::{
    AbiArgs, AwaitCompletionArgs, CompletionDataArgs, CreateServiceArgs, DequeueMessageArgs,
    ElementArgs, GetConfigArgs, QueueBulkTransferArgs, QueueMessageArgs, SetServiceOptionArgs,
};
use vchiq_abi::defs::{MAX_COMPLETIONS, MAX_ELEMENTS, MAX_MSG_SIZE};
use vchiq_abi::enums::BulkMode;
use vchiq_abi::{Ioctl, Layout};
use zerocopy::FromBytes;

use super::abi::{self, InHeader, IoctlIn};
use super::{IoctlReply, Session, sys};
use crate::driver::{
    BULK_INTERRUPTED, Blocking, BulkSink, CreateService, DriverError, Errno, Instance, Transfer,
};
use crate::server::MAX_BULK;

/// The errno a driver error becomes at the ioctl boundary.
pub(super) fn errno_of(e: DriverError) -> i32 {
    e.errno()
}

/// The memory of the thread that made a request.
#[derive(Clone, Copy, Debug)]
pub(super) struct Caller {
    /// The host TID from the request header.
    pub tid: i32,
}

fn vm_errno(e: std::io::Error) -> i32 {
    match e.raw_os_error() {
        Some(libc::EPERM) => {
            tracing::warn!(
                "process_vm_* refused (EPERM): the daemon needs ptrace rights over its clients"
            );
            libc::EPERM
        }
        _ => libc::EFAULT,
    }
}

impl Caller {
    /// Reads `len` bytes at `addr`.
    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, i32> {
        let mut buf = vec![0u8; len];
        if len > 0 {
            if addr == 0 {
                return Err(libc::EFAULT);
            }
            sys::vm_read(self.tid, addr, &mut buf).map_err(vm_errno)?;
        }
        Ok(buf)
    }

    /// Writes `bytes` at `addr`.
    pub fn write(&self, addr: u64, bytes: &[u8]) -> Result<(), i32> {
        if bytes.is_empty() {
            return Ok(());
        }
        if addr == 0 {
            return Err(libc::EFAULT);
        }
        sys::vm_write(self.tid, addr, bytes).map_err(vm_errno)
    }

    /// Reads one pointer-sized value (an element of a pointer array).
    fn read_ptr(&self, addr: u64, layout: Layout) -> Result<u64, i32> {
        let b = self.read(addr, layout.pointer_size())?;
        Ok(match layout {
            Layout::Lp64 => u64::from_ne_bytes(b.try_into().map_err(|_| libc::EFAULT)?),
            Layout::Ilp32 => u64::from(u32::from_ne_bytes(b.try_into().map_err(|_| libc::EFAULT)?)),
        })
    }
}

/// Writes a bulk receive's data into the caller's memory when the transfer completes.
struct ProcessSink {
    /// The caller's thread group (the thread that queued a CALLBACK bulk may be gone).
    pid: i32,
    addr: u64,
}

impl BulkSink for ProcessSink {
    fn deliver(&mut self, data: &[u8]) -> Result<(), Errno> {
        sys::vm_write(self.pid, self.addr, data).map_err(|_| Errno(libc::EFAULT))
    }
}

/// One decoded ioctl request.
struct Req<'a> {
    inst: Arc<Instance>,
    file: Arc<super::OpenFile>,
    unique: u64,
    caller: Caller,
    layout: Layout,
    arg: u64,
    data: &'a [u8],
}

impl Req<'_> {
    fn args<A: AbiArgs>(&self) -> Result<A, i32> {
        A::decode(self.layout, self.data).map_err(|_| libc::EINVAL)
    }
}

fn unit(r: crate::driver::Result<()>) -> IoctlReply {
    r.map(|()| (0, Vec::new())).map_err(errno_of)
}

/// Handles a FUSE_IOCTL request.
pub(super) fn handle(s: &Arc<Session>, hdr: &InHeader, body: &[u8]) {
    let Ok((io, rest)) = IoctlIn::read_from_prefix(body) else {
        return s.reply_err(hdr.unique, libc::EINVAL);
    };
    let Some(file) = s.file(io.fh) else {
        return s.reply_err(hdr.unique, libc::EBADF);
    };
    let layout = if io.flags & abi::IOCTL_32BIT != 0 {
        Layout::Ilp32
    } else {
        Layout::Lp64
    };
    // A number of the other layout (e.g. a 64-bit caller using ILP32 numbers) is unknown
    // to this caller, as it is to the kernel's native/compat handlers.
    let Some(ioctl) = Ioctl::decode(io.cmd)
        .map(|(i, _)| i)
        .filter(|i| i.number(layout) == io.cmd)
    else {
        return s.reply_err(hdr.unique, libc::ENOTTY);
    };
    let data = rest.get(..io.in_size as usize).unwrap_or(rest);
    let req = Req {
        inst: file.inst.clone(),
        file: file.clone(),
        unique: hdr.unique,
        caller: Caller {
            tid: hdr.pid as i32,
        },
        layout,
        arg: io.arg,
        data,
    };
    // Requests that wait hold a worker or a parked entry: each opener may have only so
    // many at once (as the socket front end bounds its pooled requests per connection).
    let limit = s.driver.limits().node_requests_per_opener;
    let in_flight = file.in_flight.load(Ordering::Acquire);
    if in_flight >= limit {
        if !file.in_flight_warned.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                client_id = file.inst.client_id(),
                instance = file.inst.id,
                "file node request refused: the client has {in_flight} requests waiting, the limit (--max-node-requests-per-client {limit}); more fail with EAGAIN until some are answered"
            );
        }
        return s.reply_err(hdr.unique, libc::EAGAIN);
    }
    file.in_flight_warned.store(false, Ordering::Release);
    if let Some(r) = serve(s, ioctl, &req) {
        s.reply_ioctl(hdr.unique, &r);
    }
}

/// Serves one ioctl; `None` when a worker thread will answer.
fn serve(s: &Arc<Session>, ioctl: Ioctl, r: &Req<'_>) -> Option<IoctlReply> {
    let d = &s.driver;
    let inst = &r.inst;
    let handle = r.arg as u32;
    Some(match ioctl {
        Ioctl::Connect => {
            s.defer(r.unique, &r.file, {
                let inst = inst.clone();
                let unique = r.unique;
                move |s, _| {
                    s.finish(unique, &unit(s.driver.connect(&inst)));
                }
            });
            return None;
        }
        Ioctl::Shutdown => unit(d.shutdown(inst)),
        Ioctl::CreateService => return create_service(s, r),
        Ioctl::RemoveService | Ioctl::CloseService => {
            let inst = inst.clone();
            let unique = r.unique;
            s.defer(unique, &r.file, move |s, t| {
                let res = if ioctl == Ioctl::RemoveService {
                    s.driver.remove_service(&inst, handle, Blocking::Yes(t))
                } else {
                    s.driver.close_service(&inst, handle, Blocking::Yes(t))
                };
                s.finish(unique, &unit(res));
            });
            return None;
        }
        Ioctl::QueueMessage => return queue_message(s, r),
        Ioctl::QueueBulkTransmit | Ioctl::QueueBulkReceive => {
            return bulk(s, r, ioctl == Ioctl::QueueBulkTransmit);
        }
        Ioctl::AwaitCompletion => return await_completion(s, r),
        Ioctl::DequeueMessage => return dequeue_message(s, r),
        Ioctl::GetClientId => Ok((d.get_client_id(inst, handle) as i32, Vec::new())),
        Ioctl::GetConfig => get_config(s, r),
        Ioctl::UseService => unit(d.use_service(inst, handle)),
        Ioctl::ReleaseService => unit(d.release_service(inst, handle)),
        Ioctl::SetServiceOption => match r.args::<SetServiceOptionArgs>() {
            Ok(a) => unit(d.set_service_option(inst, a.handle, a.option, a.value)),
            Err(e) => Err(e),
        },
        // Current drivers no longer dump physical memory.
        Ioctl::DumpPhysMem => Err(libc::ENOTTY),
        Ioctl::LibVersion => unit(d.lib_version(inst, r.arg)),
        Ioctl::CloseDelivered => unit(d.close_delivered(inst, handle)),
    })
}

fn create_service(s: &Arc<Session>, r: &Req<'_>) -> Option<IoctlReply> {
    let mut a = match r.args::<CreateServiceArgs>() {
        Ok(a) => a,
        Err(e) => return Some(Err(e)),
    };
    let req = CreateService {
        fourcc: a.fourcc,
        version: a.version,
        version_min: a.version_min,
        is_open: a.is_open,
        is_vchi: a.is_vchi,
        userdata: a.userdata,
    };
    let layout = r.layout;
    if !req.is_open {
        return Some(
            s.driver
                .create_service(&r.inst, req)
                .map_err(errno_of)
                .map(|h| {
                    a.handle = h;
                    (0, a.encode(layout))
                }),
        );
    }
    // A client waits for the VideoCore's OPENACK.
    let inst = r.inst.clone();
    let unique = r.unique;
    s.defer(unique, &r.file, move |s, _| {
        let res = s.driver.create_service(&inst, req);
        let reply = res.map_err(errno_of).map(|h| {
            a.handle = h;
            (0, a.encode(layout))
        });
        if !s.finish(unique, &reply) {
            // The caller was told EINTR: as the kernel does, the service does not survive.
            if let Ok(h) = res {
                let _ = s.driver.remove_service(&inst, h, Blocking::No);
            }
        }
    });
    None
}

fn queue_message(s: &Arc<Session>, r: &Req<'_>) -> Option<IoctlReply> {
    let parts = match message_parts(r) {
        Ok(p) => p,
        Err(e) => return Some(Err(e)),
    };
    let handle = match r.args::<QueueMessageArgs>() {
        Ok(a) => a.handle,
        Err(e) => return Some(Err(e)),
    };
    let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    match s
        .driver
        .queue_message(&r.inst, handle, &slices, Blocking::No)
    {
        Err(DriverError::WouldBlock) => {
            let inst = r.inst.clone();
            let unique = r.unique;
            s.defer(unique, &r.file, move |s, t| {
                let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                s.finish(
                    unique,
                    &unit(
                        s.driver
                            .queue_message(&inst, handle, &slices, Blocking::Yes(t)),
                    ),
                );
            });
            None
        }
        res => Some(unit(res)),
    }
}

/// Gathers a QUEUE_MESSAGE's elements from the caller.
fn message_parts(r: &Req<'_>) -> Result<Vec<Vec<u8>>, i32> {
    let a = r.args::<QueueMessageArgs>()?;
    if a.count as usize > MAX_ELEMENTS {
        return Err(libc::EINVAL);
    }
    // The kernel's compat handler refuses an empty or missing element array.
    if r.layout == Layout::Ilp32 && (a.count == 0 || a.elements == 0) {
        return Err(libc::EINVAL);
    }
    let esize = ElementArgs::size(r.layout);
    let raw = r.caller.read(a.elements, a.count as usize * esize)?;
    let elements: Vec<ElementArgs> = raw
        .chunks_exact(esize)
        .map(|c| ElementArgs::decode(r.layout, c).map_err(|_| libc::EFAULT))
        .collect::<Result<_, _>>()?;
    let total: u64 = elements.iter().map(|e| u64::from(e.size)).sum();
    if total > MAX_MSG_SIZE as u64 {
        // Too big for a message: let the driver choose between EINVAL (bad handle) and
        // EIO without copying gigabytes.
        return Ok(vec![vec![0; MAX_MSG_SIZE + 1]]);
    }
    elements
        .iter()
        .map(|e| {
            if e.size != 0 && e.data == 0 {
                Err(libc::EFAULT)
            } else {
                r.caller.read(e.data, e.size as usize)
            }
        })
        .collect()
}

/// Offset of `mode` in `VCHIQ_QUEUE_BULK_TRANSFER_T`.
fn bulk_mode_offset(layout: Layout) -> u64 {
    match layout {
        Layout::Lp64 => 32,
        Layout::Ilp32 => 16,
    }
}

fn bulk(s: &Arc<Session>, r: &Req<'_>, transmit: bool) -> Option<IoctlReply> {
    let a = match r.args::<QueueBulkTransferArgs>() {
        Ok(a) => a,
        Err(e) => return Some(Err(e)),
    };
    let Ok(mode) = BulkMode::try_from(a.mode) else {
        return Some(Err(libc::EINVAL));
    };
    if mode != BulkMode::Waiting {
        if a.data == 0 {
            return Some(Err(libc::EIO));
        }
        if a.size > MAX_BULK {
            return Some(Err(libc::EINVAL));
        }
    }
    let thread = r.caller.tid as u32;
    let (layout, caller, arg) = (r.layout, r.caller, r.arg);
    // What the driver moves, read from the caller now (a transmit's data; for a receive,
    // a check that the buffer is mapped, as the kernel pins it at queue time). Built again
    // if the first try must be retried on a worker.
    let material = move || -> Result<Transfer, i32> {
        if mode == BulkMode::Waiting {
            return Ok(Transfer::Transmit(Vec::new()));
        }
        let bytes = caller.read(a.data, a.size as usize)?;
        Ok(if transmit {
            Transfer::Transmit(bytes)
        } else {
            let pid = super::tgid_of(caller.tid as u32).map_or(caller.tid, |p| p as i32);
            Transfer::Receive {
                size: a.size,
                sink: Some(Box::new(ProcessSink { pid, addr: a.data })),
            }
        })
    };
    // As the kernel on an interrupted BLOCKING bulk: the waiter is kept for this thread,
    // and the caller's struct says WAITING so that re-issuing the ioctl resumes the wait.
    let waiting_back = move || {
        let waiting = BulkMode::Waiting.raw().to_ne_bytes();
        if let Err(e) = caller.write(arg + bulk_mode_offset(layout), &waiting) {
            tracing::debug!("writing WAITING back: errno {e}");
        }
    };
    let run = move |s: &Session, inst: &Instance, t: Transfer, b: Blocking<'_>| -> IoctlReply {
        match s
            .driver
            .transfer(inst, a.handle, t, a.userdata, mode, thread, b, true)
        {
            Err(DriverError::Errno(BULK_INTERRUPTED))
                if matches!(mode, BulkMode::Blocking | BulkMode::Waiting) =>
            {
                waiting_back();
                Err(libc::EINTR)
            }
            r => unit(r),
        }
    };
    let first = match material() {
        Ok(t) => t,
        Err(e) => return Some(Err(e)),
    };
    let queued = if mode == BulkMode::Waiting {
        Err(DriverError::Errno(BULK_INTERRUPTED))
    } else {
        // Never waits here (this is the thread that reads /dev/fuse): a BLOCKING bulk is
        // queued and then parked as the saved waiter of the caller's thread.
        s.driver.transfer(
            &r.inst,
            a.handle,
            first,
            a.userdata,
            mode,
            thread,
            Blocking::No,
            false,
        )
    };
    match queued {
        Err(DriverError::Errno(BULK_INTERRUPTED))
            if matches!(mode, BulkMode::Blocking | BulkMode::Waiting) =>
        {
            let inst = r.inst.clone();
            let retry =
                move |s: &Session| s.driver.poll_saved_bulk(&inst, a.handle, thread).map(unit);
            // Interrupted while parked: the waiter stays saved in the driver.
            let undo = Box::new(move |_: &Session| waiting_back());
            s.park(&r.file, r.unique, Box::new(retry), |_| {}, Some(undo))
        }
        Err(DriverError::WouldBlock) => {
            // No room in the link (4 outstanding, the arena full): wait on a worker.
            let again = match material() {
                Ok(t) => t,
                Err(e) => return Some(Err(e)),
            };
            let inst = r.inst.clone();
            let unique = r.unique;
            s.defer(unique, &r.file, move |s, t| {
                let reply = run(s, &inst, again, Blocking::Yes(t));
                s.finish(unique, &reply);
            });
            None
        }
        r => Some(unit(r)),
    }
}

fn await_completion(s: &Arc<Session>, r: &Req<'_>) -> Option<IoctlReply> {
    let a = match r.args::<AwaitCompletionArgs>() {
        Ok(a) => a,
        Err(e) => return Some(Err(e)),
    };
    // Check the caller's arrays before taking completions off the queue, so that a bad
    // pointer loses nothing.
    let most = (a.count as usize).min(MAX_COMPLETIONS);
    let msgbufs = match check_await(r, &a, most) {
        Ok(m) => m,
        Err(e) => return Some(Err(e)),
    };
    let layout = r.layout;
    let caller = r.caller;
    // No more records than were checked: a batch never runs past the validated `buf`.
    let count = most as u32;
    let inst = r.inst.clone();
    let retry = move |s: &Session| match s.driver.await_completion(
        &inst,
        count,
        a.msgbufsize,
        a.msgbufcount,
        usize::MAX,
        Blocking::No,
    ) {
        Err(DriverError::WouldBlock) => None,
        res => Some(
            res.map_err(errno_of)
                .and_then(|out| deliver_await(caller, layout, a, &msgbufs, out)),
        ),
    };
    s.park(&r.file, r.unique, Box::new(retry), |_| {}, None)
}

/// Reads the message-buffer pointers a batch may use (from the end of the array) and
/// checks that the completion array is mapped. Returns the pointers, last first.
fn check_await(r: &Req<'_>, a: &AwaitCompletionArgs, most: usize) -> Result<Vec<u64>, i32> {
    let rsize = CompletionDataArgs::size(r.layout);
    r.caller.read(a.buf, most * rsize)?;
    let usable = (a.msgbufcount as usize).min(most);
    let psize = r.layout.pointer_size() as u64;
    let mut ptrs = Vec::with_capacity(usable);
    for i in 0..usable {
        let idx = u64::from(a.msgbufcount) - 1 - i as u64;
        ptrs.push(
            r.caller
                .read_ptr(a.msgbufs.wrapping_add(idx * psize), r.layout)?,
        );
    }
    Ok(ptrs)
}

/// Writes a batch into the caller's memory: messages into `msgbufs[msgbufcount-1-i]`,
/// records into `buf`; the out struct carries the new `msgbufcount`.
fn deliver_await(
    caller: Caller,
    layout: Layout,
    mut a: AwaitCompletionArgs,
    msgbufs: &[u64],
    out: crate::driver::AwaitOut,
) -> IoctlReply {
    let rsize = CompletionDataArgs::size(layout);
    let mut records = Vec::with_capacity(out.records.len() * rsize);
    let mut used = 0usize;
    for c in &out.records {
        let header = match &c.message {
            Some(m) => {
                let ptr = *msgbufs.get(used).ok_or(libc::EFAULT)?;
                used += 1;
                caller.write(ptr, m)?;
                ptr
            }
            None => 0,
        };
        let rec = CompletionDataArgs {
            reason: c.reason.raw(),
            header,
            service_userdata: c.service_userdata,
            bulk_userdata: c.bulk_userdata,
        };
        records.extend_from_slice(&rec.encode(layout));
    }
    caller.write(a.buf, &records)?;
    a.msgbufcount = out.msgbufcount;
    Ok((out.records.len() as i32, a.encode(layout)))
}

fn dequeue_message(s: &Arc<Session>, r: &Req<'_>) -> Option<IoctlReply> {
    let a = match r.args::<DequeueMessageArgs>() {
        Ok(a) => a,
        Err(e) => return Some(Err(e)),
    };
    let discard = a.buf == 0;
    if !discard {
        // Check the buffer before a message is taken off the queue.
        if let Err(e) = r.caller.read(a.buf, (a.bufsize as usize).min(MAX_MSG_SIZE)) {
            return Some(Err(e));
        }
    }
    let caller = r.caller;
    let finish = move |res: crate::driver::Result<(u32, Option<Vec<u8>>)>| -> IoctlReply {
        let (size, data) = res.map_err(errno_of)?;
        if let Some(d) = data {
            caller.write(a.buf, &d)?;
        }
        Ok((size as i32, Vec::new()))
    };
    let attempt = move |s: &Session, inst: &Instance| match s.driver.dequeue_message(
        inst,
        a.handle,
        a.bufsize,
        discard,
        Blocking::No,
    ) {
        Err(DriverError::WouldBlock) => None,
        res => Some(finish(res)),
    };
    if !a.blocking {
        return Some(attempt(s, &r.inst).unwrap_or(Err(libc::EWOULDBLOCK)));
    }
    // While it waits, a new message raises no MESSAGE_AVAILABLE (as in the kernel); the
    // mark is taken back when it is answered or interrupted.
    let parked = Arc::new(AtomicBool::new(false));
    let (inst, mark) = (r.inst.clone(), parked.clone());
    let retry = move |s: &Session| {
        let reply = attempt(s, &inst)?;
        if mark.swap(false, Ordering::AcqRel) {
            s.driver.set_dequeue_waiting(&inst, a.handle, false);
        }
        Some(reply)
    };
    let (inst, mark) = (r.inst.clone(), parked.clone());
    let undo = Box::new(move |s: &Session| {
        if mark.swap(false, Ordering::AcqRel) {
            s.driver.set_dequeue_waiting(&inst, a.handle, false);
        }
    });
    s.park(
        &r.file,
        r.unique,
        Box::new(retry),
        |s| {
            parked.store(true, Ordering::Release);
            s.driver.set_dequeue_waiting(&r.inst, a.handle, true);
        },
        Some(undo),
    )
}

fn get_config(s: &Session, r: &Req<'_>) -> IoctlReply {
    let a = r.args::<GetConfigArgs>()?;
    let bytes = s.driver.get_config(a.config_size).map_err(errno_of)?;
    r.caller.write(a.pconfig, &bytes)?;
    Ok((0, Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Caller {
        Caller {
            tid: crate::sys::gettid(),
        }
    }

    #[test]
    fn caller_memory_is_checked() {
        let c = me();
        let v = 0xDEAD_BEEFu32;
        assert_eq!(c.read((&raw const v) as u64, 4).unwrap(), v.to_ne_bytes());
        assert_eq!(c.read(0, 4), Err(libc::EFAULT));
        assert_eq!(c.read(8, 4), Err(libc::EFAULT));
        assert_eq!(c.read(u64::MAX - 1, 4), Err(libc::EFAULT));
        assert_eq!(c.read(0, 0).unwrap(), Vec::<u8>::new());
        let mut w = [0u8; 3];
        c.write((&raw mut w) as u64, b"abc").unwrap();
        assert_eq!(&w, b"abc");
        assert_eq!(c.write(16, b"x"), Err(libc::EFAULT));
        let p = [0x1111_2222_3333_4444u64];
        assert_eq!(
            c.read_ptr(p.as_ptr() as u64, Layout::Lp64).unwrap(),
            0x1111_2222_3333_4444
        );
        assert_eq!(
            c.read_ptr(p.as_ptr() as u64, Layout::Ilp32).unwrap(),
            0x3333_4444
        );
    }

    #[test]
    fn waiting_is_written_at_the_mode_field() {
        for layout in [Layout::Lp64, Layout::Ilp32] {
            let a = QueueBulkTransferArgs {
                mode: BulkMode::Waiting.raw(),
                ..Default::default()
            };
            let bytes = a.encode(layout);
            let off = bulk_mode_offset(layout) as usize;
            assert_eq!(bytes[off..off + 4], 3u32.to_ne_bytes(), "{layout}");
        }
    }

    #[test]
    fn driver_errors_map_to_errnos() {
        assert_eq!(errno_of(DriverError::WouldBlock), libc::EAGAIN);
        assert_eq!(errno_of(DriverError::Errno(Errno(libc::EIO))), libc::EIO);
    }
}
