//! The 18 ioctls, translated to the vchiqd socket protocol.
//!
//! The caller's memory is read and written with `process_vm_readv`/`writev` on this very
//! process ([`sys::user_read`]), so a bad pointer is `EFAULT`, as the kernel's
//! `copy_from_user` makes it, and never a crash inside the shim. Bulk data travels in a
//! sealed memfd; a CALLBACK receive's data is copied into the caller's buffer when its
//! BULK_RECEIVE_DONE completion is handed out by AWAIT_COMPLETION (before the caller can
//! see it), a BLOCKING receive's when the ioctl returns.

use vchiq_abi::args::{
    AbiArgs, AwaitCompletionArgs, CompletionDataArgs, CreateServiceArgs, DequeueMessageArgs,
    ElementArgs, GetConfigArgs, QueueBulkTransferArgs, QueueMessageArgs, SetServiceOptionArgs,
};
use vchiq_abi::defs::{MAX_COMPLETIONS, MAX_ELEMENTS, MAX_MSG_SIZE};
use vchiq_abi::enums::{BulkMode, Reason};
use vchiq_abi::wire::{self, Op};
use vchiq_abi::{Ioctl, Layout};
use zerocopy::{FromBytes, IntoBytes};

use crate::conn::{Conn, RxBulk};
use crate::sys;

/// The layout of this process (the shim is built for it).
const LAYOUT: Layout = Layout::NATIVE;
/// The largest bulk the daemon accepts from a socket client.
const MAX_BULK: u32 = vchiq_abi::wire::MAX_BULK;

/// An ioctl's outcome: the return value, or an errno.
pub type IoResult = Result<i64, i32>;

fn read_args<A: AbiArgs>(arg: u64) -> Result<A, i32> {
    let bytes = sys::user_read(arg, A::size(LAYOUT))?;
    A::decode(LAYOUT, &bytes).map_err(|_| libc::EFAULT)
}

fn write_args<A: AbiArgs>(arg: u64, a: &A) -> Result<(), i32> {
    sys::user_write(arg, &a.encode(LAYOUT))
}

fn result(f: &crate::conn::Frame) -> IoResult {
    if f.result < 0 {
        Err((-f.result) as i32)
    } else {
        Ok(f.result)
    }
}

fn value(c: &Conn, op: Op, arg: u64) -> IoResult {
    result(&c.call(op, arg, &[], None)?)
}

/// Serves `ioctl(fd, cmd, arg)` on a shim descriptor.
pub fn ioctl(c: &Conn, cmd: u32, arg: u64) -> IoResult {
    let Some(io) = Ioctl::decode(cmd)
        .map(|(i, _)| i)
        .filter(|i| i.number(LAYOUT) == cmd)
    else {
        return Err(libc::ENOTTY);
    };
    match io {
        Ioctl::DumpPhysMem => Err(libc::ENOTTY),
        Ioctl::CreateService => create_service(c, arg),
        Ioctl::QueueMessage => queue_message(c, arg),
        Ioctl::QueueBulkTransmit => bulk(c, arg, true),
        Ioctl::QueueBulkReceive => bulk(c, arg, false),
        Ioctl::AwaitCompletion => await_completion(c, arg),
        Ioctl::DequeueMessage => dequeue(c, arg),
        Ioctl::GetConfig => {
            let a: GetConfigArgs = read_args(arg)?;
            let f = c.call(Op::GetConfig, u64::from(a.config_size), &[], None)?;
            result(&f)?;
            sys::user_write(a.pconfig, &f.payload)?;
            Ok(0)
        }
        Ioctl::SetServiceOption => {
            let a: SetServiceOptionArgs = read_args(arg)?;
            let req = wire::SetOptionRequest {
                handle: a.handle,
                option: a.option,
                value: a.value,
            };
            result(&c.call(Op::SetServiceOption, 0, &[req.as_bytes()], None)?)
        }
        // The by-value ioctls (CONNECT, REMOVE_SERVICE, ...): the op is the ioctl, its
        // value argument passes through (the daemon ignores it where there is none).
        _ => value(c, Op::from(io), arg),
    }
}

fn create_service(c: &Conn, arg: u64) -> IoResult {
    let mut a: CreateServiceArgs = read_args(arg)?;
    let req = wire::CreateServiceRequest {
        fourcc: a.fourcc.0,
        version: a.version,
        version_min: a.version_min,
        is_open: u32::from(a.is_open),
        is_vchi: u32::from(a.is_vchi),
        userdata: a.userdata,
    };
    let h = result(&c.call(Op::CreateService, 0, &[req.as_bytes()], None)?)?;
    a.handle = h as u32;
    write_args(arg, &a)?;
    c.books
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .service_userdata
        .insert(a.handle, a.userdata);
    Ok(0)
}

fn queue_message(c: &Conn, arg: u64) -> IoResult {
    let a: QueueMessageArgs = read_args(arg)?;
    if a.count as usize > MAX_ELEMENTS {
        return Err(libc::EINVAL);
    }
    let esize = ElementArgs::size(LAYOUT);
    let raw = sys::user_read(a.elements, a.count as usize * esize)?;
    let mut sizes = Vec::with_capacity(a.count as usize * 4);
    let mut data = Vec::new();
    for chunk in raw.chunks_exact(esize) {
        let e = ElementArgs::decode(LAYOUT, chunk).map_err(|_| libc::EFAULT)?;
        if e.size != 0 && e.data == 0 {
            return Err(libc::EFAULT);
        }
        if data.len() + e.size as usize > MAX_MSG_SIZE {
            return Err(libc::EIO);
        }
        data.extend_from_slice(&sys::user_read(e.data, e.size as usize)?);
        sizes.extend_from_slice(&e.size.to_le_bytes());
    }
    let req = wire::QueueMessageRequest {
        handle: a.handle,
        count: a.count,
    };
    result(&c.call(Op::QueueMessage, 0, &[req.as_bytes(), &sizes, &data], None)?)
}

/// Offset of `mode` in `VCHIQ_QUEUE_BULK_TRANSFER_T` of this layout.
const MODE_OFFSET: u64 = match LAYOUT {
    Layout::Lp64 => 32,
    Layout::Ilp32 => 16,
};

fn bulk(c: &Conn, arg: u64, transmit: bool) -> IoResult {
    let a: QueueBulkTransferArgs = read_args(arg)?;
    let Ok(mode) = BulkMode::try_from(a.mode) else {
        return Err(libc::EINVAL);
    };
    let thread = sys::gettid();
    let mut memfd = None;
    if mode != BulkMode::Waiting {
        if a.data == 0 {
            return Err(libc::EIO);
        }
        if a.size > MAX_BULK {
            return Err(libc::EINVAL);
        }
        // Transmit: copy the data now; receive: check the buffer now (the kernel pins it).
        let bytes = sys::user_read(a.data, a.size as usize)?;
        let fd = sys::sealed_memfd(a.size as usize, transmit.then_some(&bytes[..]))
            .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOMEM))?;
        memfd = Some(fd);
    }
    let req = wire::BulkRequest {
        handle: a.handle,
        size: a.size,
        userdata: a.userdata,
        mode: a.mode,
        thread,
    };
    let op = if transmit {
        Op::QueueBulkTransmit
    } else {
        Op::QueueBulkReceive
    };
    // A CALLBACK receive is registered before it is queued: its completion may reach the
    // completion thread before this call has its answer.
    let sud = c
        .books
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .service_userdata
        .get(&a.handle)
        .copied()
        .unwrap_or(0);
    let early = !transmit && mode == BulkMode::Callback;
    if let (true, Some(memfd)) = (early, memfd) {
        let rx = RxBulk {
            memfd,
            addr: a.data,
            size: a.size,
            userdata: a.userdata,
        };
        c.books
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rx
            .entry(sud)
            .or_default()
            .push_back(rx);
    }
    let unregister = |books: &mut crate::conn::Books| {
        if let (true, Some(fd)) = (early, memfd) {
            if let Some(q) = books.rx.get_mut(&sud) {
                q.retain(|b| b.memfd != fd);
            }
        }
    };
    let f = c.call(op, 0, &[req.as_bytes()], memfd);
    let f = match f {
        Ok(f) => f,
        Err(e) => {
            unregister(&mut c.books.lock().unwrap_or_else(|p| p.into_inner()));
            if let Some(fd) = memfd {
                sys::close(fd);
            }
            return Err(e);
        }
    };
    let res = result(&f);
    let mut books = c.books.lock().unwrap_or_else(|p| p.into_inner());
    // The receive's data: where it is and when it goes to the caller.
    let rx = if transmit {
        if let Some(fd) = memfd {
            sys::close(fd);
        }
        None
    } else if mode == BulkMode::Waiting {
        books.saved_rx.remove(&thread)
    } else if early {
        if res.is_err() {
            unregister(&mut books);
            if let Some(fd) = memfd {
                sys::close(fd);
            }
        }
        None
    } else {
        memfd.map(|memfd| RxBulk {
            memfd,
            addr: a.data,
            size: a.size,
            userdata: a.userdata,
        })
    };
    match res {
        Err(libc::EINTR) if matches!(mode, BulkMode::Blocking | BulkMode::Waiting) => {
            // The daemon kept the waiter; the caller retries with the mode it wrote back.
            let m = wire::BulkResponse::read_from_prefix(&f.payload)
                .map_or(BulkMode::Waiting.raw(), |(r, _)| r.mode);
            let _ = sys::user_write(arg + MODE_OFFSET, &m.to_ne_bytes());
            if let Some(rx) = rx {
                if let Some(old) = books.saved_rx.insert(thread, rx) {
                    sys::close(old.memfd);
                }
            }
            Err(libc::EINTR)
        }
        Err(e) => {
            if let Some(rx) = rx {
                sys::close(rx.memfd);
            }
            Err(e)
        }
        Ok(v) => {
            if let Some(rx) = rx {
                match mode {
                    BulkMode::Blocking | BulkMode::Waiting => {
                        let r = deliver_rx(&rx);
                        sys::close(rx.memfd);
                        r?;
                    }
                    // No completion will ever say when the data arrived. (CALLBACK
                    // receives were registered before the call.)
                    BulkMode::NoCallback | BulkMode::Callback => sys::close(rx.memfd),
                }
            }
            Ok(v)
        }
    }
}

fn deliver_rx(rx: &RxBulk) -> Result<(), i32> {
    let data = sys::read_memfd(rx.memfd, rx.size as usize).map_err(|_| libc::EIO)?;
    sys::user_write(rx.addr, &data)
}

fn await_completion(c: &Conn, arg: u64) -> IoResult {
    let mut a: AwaitCompletionArgs = read_args(arg)?;
    let rsize = CompletionDataArgs::size(LAYOUT);
    let most = (a.count as usize).min(MAX_COMPLETIONS);
    // Check the arrays before completions leave the daemon.
    sys::user_read(a.buf, most * rsize)?;
    let usable = (a.msgbufcount as usize).min(most);
    let psize = LAYOUT.pointer_size();
    let mut ptrs = Vec::with_capacity(usable);
    for i in 0..usable {
        let idx = a.msgbufcount as usize - 1 - i;
        let b = sys::user_read(a.msgbufs.wrapping_add((idx * psize) as u64), psize)?;
        ptrs.push(match LAYOUT {
            Layout::Lp64 => u64::from_ne_bytes(b.try_into().map_err(|_| libc::EFAULT)?),
            Layout::Ilp32 => u64::from(u32::from_ne_bytes(b.try_into().map_err(|_| libc::EFAULT)?)),
        });
    }
    let req = wire::AwaitRequest {
        count: most as u32,
        msgbufsize: a.msgbufsize,
        msgbufcount: a.msgbufcount,
        _pad: 0,
    };
    let f = c.call(Op::AwaitCompletion, 0, &[req.as_bytes()], None)?;
    let n = result(&f)? as usize;
    let (resp, mut rest) =
        wire::AwaitResponse::read_from_prefix(&f.payload).map_err(|_| libc::EPROTO)?;
    let mut recs = Vec::with_capacity(n);
    for _ in 0..n {
        let (r, tail) = wire::CompletionRecord::read_from_prefix(rest).map_err(|_| libc::EPROTO)?;
        recs.push(r);
        rest = tail;
    }
    let mut out = Vec::with_capacity(n * rsize);
    let mut used = 0usize;
    for r in &recs {
        let mut header = 0;
        if r.msg_size != wire::NO_MESSAGE {
            let len = r.msg_size as usize;
            let msg = rest.get(..len).ok_or(libc::EPROTO)?;
            rest = &rest[len..];
            header = *ptrs.get(used).ok_or(libc::EPROTO)?;
            used += 1;
            sys::user_write(header, msg)?;
        }
        if r.reason == Reason::BulkReceiveDone.raw() || r.reason == Reason::BulkReceiveAborted.raw()
        {
            let mut books = c.books.lock().unwrap_or_else(|p| p.into_inner());
            let q = books.rx.entry(r.service_userdata).or_default();
            let pos = q.iter().position(|b| b.userdata == r.bulk_userdata);
            if let Some(rx) = pos.and_then(|p| q.remove(p)) {
                if r.reason == Reason::BulkReceiveDone.raw() {
                    let _ = deliver_rx(&rx);
                }
                sys::close(rx.memfd);
            }
        }
        let rec = CompletionDataArgs {
            reason: r.reason,
            header,
            service_userdata: r.service_userdata,
            bulk_userdata: r.bulk_userdata,
        };
        out.extend_from_slice(&rec.encode(LAYOUT));
    }
    sys::user_write(a.buf, &out)?;
    if resp.msgbufcount != a.msgbufcount {
        a.msgbufcount = resp.msgbufcount;
        write_args(arg, &a)?;
    }
    Ok(n as i64)
}

fn dequeue(c: &Conn, arg: u64) -> IoResult {
    let a: DequeueMessageArgs = read_args(arg)?;
    let null_buf = a.buf == 0;
    if !null_buf {
        sys::user_read(a.buf, (a.bufsize as usize).min(MAX_MSG_SIZE))?;
    }
    let req = wire::DequeueRequest {
        handle: a.handle,
        blocking: u32::from(a.blocking),
        bufsize: a.bufsize,
        null_buf: u32::from(null_buf),
    };
    let f = c.call(Op::DequeueMessage, 0, &[req.as_bytes()], None)?;
    let n = result(&f)?;
    if !null_buf {
        sys::user_write(a.buf, &f.payload)?;
    }
    Ok(n)
}
