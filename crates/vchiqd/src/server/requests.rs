//! Request frames: decoding, the driver call, and how each request is answered (at
//! once, parked in its connection, or on the waiter pool).
//!
//! A malformed frame (short, bad magic) ends the connection; it never reaches the driver.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use vchiq_abi::enums::BulkMode;
use vchiq_abi::fourcc::FourCc;
use vchiq_abi::wire::{self, Op, RequestHeader};
use zerocopy::{FromBytes, IntoBytes};

use crate::driver::{Blocking, BulkSink, CreateService, DriverError, Errno, Transfer};
use crate::sys;
use crate::waiters::Waiters;

use super::connection::{Connection, StalledMessage, Wait};

/// The largest bulk a socket client may move in one request (the link's arena is shared).
pub const MAX_BULK: u32 = vchiq_abi::wire::MAX_BULK;

/// A response: the result and the payload.
pub type Reply = (i64, Vec<u8>);

pub(super) fn errno_result(e: DriverError) -> i64 {
    match e {
        DriverError::Errno(Errno(e)) => -i64::from(e),
        DriverError::WouldBlock => -i64::from(libc::EAGAIN),
    }
}

pub(super) fn unit(r: crate::driver::Result<()>) -> Reply {
    (r.map_or_else(errno_result, |()| 0), Vec::new())
}

fn parse<T: FromBytes + zerocopy::KnownLayout + zerocopy::Immutable>(payload: &[u8]) -> Option<T> {
    T::read_from_prefix(payload).ok().map(|(v, _)| v)
}

/// Writes a bulk receive's data into the caller's memfd.
struct MemfdSink(OwnedFd);

impl BulkSink for MemfdSink {
    fn deliver(&mut self, data: &[u8]) -> Result<(), Errno> {
        sys::pwrite_all(self.0.as_fd(), data, 0)
            .map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::EIO)))
    }
}

/// Where a bulk's bytes are.
enum BulkMemory {
    /// WAITING: the bytes were given by the interrupted request.
    None,
    /// The client's sealed memfd, and its identity.
    Memfd(OwnedFd, sys::FileId),
    /// In the request frame ([`wire::REQUEST_INLINE`], transmits up to
    /// [`wire::MAX_INLINE_BULK`]).
    Inline,
}

/// Bulks from this size up move straight through the client's mapped memfd when the
/// VideoCore is embedded ([`Transfer::Region`]); below it, mapping costs more than the
/// copy it saves.
pub const ZERO_COPY_MIN: u32 = 64 * 1024;

/// Runs a bulk that may wait (BLOCKING, WAITING, or one the link had no room for).
fn run_bulk(
    c: &Connection,
    req: wire::BulkRequest,
    mode: BulkMode,
    transfer: Transfer,
    blocking: Blocking<'_>,
) -> Reply {
    let r = c.driver.transfer(
        &c.inst,
        req.handle,
        transfer,
        req.userdata,
        mode,
        req.thread,
        blocking,
        true,
    );
    match r {
        Err(DriverError::Errno(crate::driver::BULK_INTERRUPTED)) => {
            (-i64::from(libc::EINTR), waiting_again())
        }
        r => unit(r),
    }
}

/// The payload of an interrupted BLOCKING bulk's answer: mode WAITING, so that the caller
/// re-issues it to resume the wait.
pub(super) fn waiting_again() -> Vec<u8> {
    wire::BulkResponse {
        mode: BulkMode::Waiting as u32,
        _pad: 0,
    }
    .as_bytes()
    .to_vec()
}

/// Checks a bulk memfd: big enough and sealed against shrinking (so the daemon never reads
/// past a truncated end). Returns its identity (the mapping cache's key), from the same
/// `fstat`.
fn check_memfd(fd: &OwnedFd, size: u32) -> Result<sys::FileId, i32> {
    let seals = sys::get_seals(fd.as_fd()).map_err(|_| libc::EINVAL)?;
    if seals & libc::F_SEAL_SHRINK == 0 {
        return Err(libc::EINVAL);
    }
    let (len, id) = sys::file_size_and_id(fd.as_fd()).map_err(|_| libc::EINVAL)?;
    if len < u64::from(size) {
        return Err(libc::EINVAL);
    }
    Ok(id)
}

/// Why a frame ends its connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Shorter than a request header.
    #[error("short frame ({0} bytes)")]
    Short(usize),
    /// Not a vchiqd request.
    #[error("bad frame magic {0:#x}")]
    Magic(u32),
}

/// Decodes one request frame and serves it.
pub fn handle(
    conn: &Arc<Connection>,
    pool: &Arc<Waiters>,
    frame: &[u8],
    fds: Vec<OwnedFd>,
) -> Result<(), FrameError> {
    let Some(hdr) = parse::<RequestHeader>(frame) else {
        return Err(FrameError::Short(frame.len()));
    };
    if hdr.magic != wire::REQUEST_MAGIC {
        return Err(FrameError::Magic(hdr.magic));
    }
    conn.driver
        .stats
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let flagged = (hdr.flags == wire::REQUEST_POSTED && hdr.op == Op::QueueMessage as u32)
        || (hdr.flags == wire::REQUEST_BATCH && hdr.op == Op::DequeueMessage as u32)
        || (hdr.flags & !(wire::REQUEST_INLINE | wire::REQUEST_POSTED) == 0
            && hdr.op == Op::QueueBulkTransmit as u32);
    if hdr.flags != 0 && !flagged {
        conn.reply(hdr.tag, (-i64::from(libc::EINVAL), Vec::new()));
        return Ok(());
    }
    let payload = &frame[size_of::<RequestHeader>()..];
    Requests { conn, pool }.dispatch(hdr, payload, fds);
    Ok(())
}

struct Requests<'a> {
    conn: &'a Arc<Connection>,
    pool: &'a Arc<Waiters>,
}

impl Requests<'_> {
    fn spawn(
        &self,
        tag: u32,
        f: impl FnOnce(&Connection, &crate::driver::CancelToken) -> Reply + Send + 'static,
    ) {
        self.conn.pooled(self.pool, tag, f);
    }

    fn reply_r(&self, tag: u32, reply: Reply) {
        self.conn.reply(tag, reply);
    }

    /// QUEUE_BULK_TRANSMIT / QUEUE_BULK_RECEIVE. BLOCKING and WAITING bulks run on the
    /// pool; CALLBACK and NOCALLBACK ones are queued now, or, when the link has no room
    /// (4 outstanding on the service, the arena full), on the pool with the connection
    /// held so that nothing overtakes them.
    fn bulk(&self, op: Op, hdr: RequestHeader, payload: &[u8], mut fds: Vec<OwnedFd>) {
        let tag = hdr.tag;
        let inval = || (-i64::from(libc::EINVAL), Vec::new());
        let Some(req) = parse::<wire::BulkRequest>(payload) else {
            return self.reply_r(tag, inval());
        };
        let Ok(mode) = BulkMode::try_from(req.mode) else {
            return self.reply_r(tag, (-i64::from(libc::EIO), Vec::new()));
        };
        let transmit = op == Op::QueueBulkTransmit;
        let inline = hdr.flags & wire::REQUEST_INLINE != 0;
        // Posted: CALLBACK and NOCALLBACK transmits only (their outcome is a completion).
        let posted = hdr.flags & wire::REQUEST_POSTED != 0;
        if posted && matches!(mode, BulkMode::Blocking | BulkMode::Waiting) {
            return self.reply_r(tag, inval());
        }
        let answer = |reply: Reply| {
            if !posted {
                self.reply_r(tag, reply);
            } else if reply.0 < 0 {
                self.reply_r(tag, message_failed(reply.0, Some(req.handle), true));
            }
        };
        let inline_data = &payload[size_of::<wire::BulkRequest>()..];
        let memory = if mode == BulkMode::Waiting {
            BulkMemory::None
        } else if inline {
            if !transmit || !fds.is_empty() || inline_data.len() != req.size as usize {
                return self.reply_r(tag, inval());
            }
            BulkMemory::Inline
        } else {
            if req.size > MAX_BULK || fds.len() != 1 {
                return self.reply_r(tag, inval());
            }
            let fd = fds.remove(0);
            match check_memfd(&fd, req.size) {
                Ok(id) => BulkMemory::Memfd(fd, id),
                Err(e) => return self.reply_r(tag, (-i64::from(e), Vec::new())),
            }
        };
        let d = &self.conn.driver;
        let zero_copy = d.zero_copy() && req.size >= ZERO_COPY_MIN;
        // What the driver moves: built again if the first try must be retried on the pool.
        let transfer = |memory: &BulkMemory| -> Result<Transfer, i32> {
            Ok(match memory {
                BulkMemory::Memfd(fd, id) if zero_copy => Transfer::Region {
                    transmit,
                    region: self.conn.map_memfd(fd, *id).map_err(|_| libc::EFAULT)?,
                    size: req.size,
                },
                BulkMemory::Memfd(fd, _) if transmit => Transfer::Transmit(
                    sys::pread_vec(fd.as_fd(), req.size as usize, 0).map_err(|_| libc::EFAULT)?,
                ),
                BulkMemory::Memfd(fd, _) => Transfer::Receive {
                    size: req.size,
                    sink: Some(Box::new(MemfdSink(
                        fd.try_clone().map_err(|_| libc::EMFILE)?,
                    ))),
                },
                BulkMemory::Inline => Transfer::Transmit(inline_data.to_vec()),
                BulkMemory::None if transmit => Transfer::Transmit(Vec::new()),
                BulkMemory::None => Transfer::Receive {
                    size: req.size,
                    sink: None,
                },
            })
        };
        let first = match transfer(&memory) {
            Ok(t) => t,
            Err(e) => return self.reply_r(tag, (-i64::from(e), Vec::new())),
        };
        if matches!(mode, BulkMode::Blocking | BulkMode::Waiting) {
            // Queued now (without waiting for link room) and then parked as the saved
            // waiter of the caller's thread: no thread waits for the transfer.
            let wait = Wait::Bulk {
                handle: req.handle,
                thread: req.thread,
            };
            if mode == BulkMode::Waiting {
                return self.conn.park(tag, wait);
            }
            let r = d.transfer(
                &self.conn.inst,
                req.handle,
                first,
                req.userdata,
                mode,
                req.thread,
                Blocking::No,
                false,
            );
            return match r {
                Err(DriverError::Errno(crate::driver::BULK_INTERRUPTED)) => {
                    self.conn.park(tag, wait)
                }
                Err(DriverError::WouldBlock) => {
                    let again = match transfer(&memory) {
                        Ok(t) => t,
                        Err(e) => return self.reply_r(tag, (-i64::from(e), Vec::new())),
                    };
                    self.conn
                        .pooled_in_order(self.pool, tag, false, move |c, t| {
                            run_bulk(c, req, mode, again, Blocking::Yes(t))
                        });
                }
                r => self.reply_r(tag, unit(r)),
            };
        }
        match d.try_bulk(&self.conn.inst, req.handle, first, req.userdata, mode) {
            Err(DriverError::WouldBlock) => {
                let again = match transfer(&memory) {
                    Ok(t) => t,
                    Err(e) => return self.reply_r(tag, (-i64::from(e), Vec::new())),
                };
                self.conn
                    .pooled_in_order(self.pool, tag, posted, move |c, t| {
                        let r = run_bulk(c, req, mode, again, Blocking::Yes(t));
                        if posted && r.0 < 0 {
                            return message_failed(r.0, Some(req.handle), true);
                        }
                        r
                    });
            }
            r => answer(unit(r)),
        }
    }

    fn dispatch(&self, hdr: RequestHeader, payload: &[u8], fds: Vec<OwnedFd>) {
        let tag = hdr.tag;
        let Some(op) = Op::from_u32(hdr.op) else {
            return self.reply_r(tag, (-i64::from(libc::ENOTTY), Vec::new()));
        };
        let d = &self.conn.driver;
        let inst = &self.conn.inst;
        let inval = (-i64::from(libc::EINVAL), Vec::new());
        let reply: Reply = match op {
            Op::Hello => {
                let Some(req) = parse::<wire::HelloRequest>(payload) else {
                    return self.reply_r(tag, inval);
                };
                if req.version != wire::PROTOCOL_VERSION {
                    (-i64::from(libc::EPROTO), Vec::new())
                } else {
                    let id = &inst.identity;
                    let resp = wire::HelloResponse {
                        version: wire::PROTOCOL_VERSION,
                        client_id: id.client_id,
                        instance: inst.id,
                        uid: id.uid,
                        pid_namespace: id.pid_namespace,
                    };
                    (0, resp.as_bytes().to_vec())
                }
            }
            Op::Cancel => return self.conn.cancel(hdr.arg as u32),
            Op::Status => {
                let mut text = d.dump().into_bytes();
                text.truncate(wire::MAX_TEXT);
                (0, text)
            }
            Op::Connect => {
                return self.spawn(tag, |c, _| unit(c.driver.connect(&c.inst)));
            }
            Op::Shutdown => unit(d.shutdown(inst)),
            Op::CreateService => {
                let Some(req) = parse::<wire::CreateServiceRequest>(payload) else {
                    return self.reply_r(tag, inval);
                };
                let req = CreateService {
                    fourcc: FourCc(req.fourcc),
                    version: req.version,
                    version_min: req.version_min,
                    is_open: req.is_open != 0,
                    is_vchi: req.is_vchi != 0,
                    userdata: req.userdata,
                };
                if req.is_open {
                    return self.spawn(tag, move |c, _| {
                        match c.driver.create_service(&c.inst, req) {
                            Ok(h) => (i64::from(h), Vec::new()),
                            Err(e) => (errno_result(e), Vec::new()),
                        }
                    });
                }
                match d.create_service(inst, req) {
                    Ok(h) => (i64::from(h), Vec::new()),
                    Err(e) => (errno_result(e), Vec::new()),
                }
            }
            Op::RemoveService => {
                let h = hdr.arg as u32;
                return self.spawn(tag, move |c, t| {
                    unit(c.driver.remove_service(&c.inst, h, Blocking::Yes(t)))
                });
            }
            Op::CloseService => {
                let h = hdr.arg as u32;
                return self.spawn(tag, move |c, t| {
                    unit(c.driver.close_service(&c.inst, h, Blocking::Yes(t)))
                });
            }
            Op::QueueMessage => {
                let posted = hdr.flags & wire::REQUEST_POSTED != 0;
                match decode_message(payload) {
                    Err(e) => message_failed(-i64::from(e), None, posted),
                    Ok((handle, parts)) => {
                        let slices: Vec<&[u8]> =
                            parts.iter().map(|r| &payload[r.clone()]).collect();
                        match d.queue_message(inst, handle, &slices, Blocking::No) {
                            Ok(()) if posted => return,
                            Err(DriverError::WouldBlock) => {
                                // Quota or slots are exhausted: this message waits for the
                                // VideoCore to recycle, and nothing after it is read meanwhile.
                                let msg = StalledMessage {
                                    tag,
                                    posted,
                                    handle,
                                    payload: payload.to_vec(),
                                    parts,
                                };
                                return self.conn.stall(msg);
                            }
                            r => message_failed(
                                r.map_or_else(errno_result, |()| 0),
                                Some(handle),
                                posted,
                            ),
                        }
                    }
                }
            }
            Op::QueueBulkTransmit | Op::QueueBulkReceive => {
                return self.bulk(op, hdr, payload, fds);
            }
            Op::AwaitCompletion => {
                let Some(req) = parse::<wire::AwaitRequest>(payload) else {
                    return self.reply_r(tag, inval);
                };
                return self.conn.park(tag, Wait::Await(req));
            }
            Op::DequeueMessage => {
                let Some(req) = parse::<wire::DequeueRequest>(payload) else {
                    return self.reply_r(tag, inval);
                };
                let batch = hdr.flags & wire::REQUEST_BATCH != 0;
                if req.blocking != 0 {
                    return self.conn.park(tag, Wait::Dequeue(req, batch));
                }
                match dequeue(d, inst, req, batch) {
                    Some(reply) => reply,
                    None => encode_dequeue(Err(DriverError::WouldBlock)),
                }
            }
            Op::GetClientId => (i64::from(d.get_client_id(inst, hdr.arg as u32)), Vec::new()),
            Op::GetConfig => match d.get_config(hdr.arg.min(u64::from(u32::MAX)) as u32) {
                Ok(bytes) => (0, bytes),
                Err(e) => (errno_result(e), Vec::new()),
            },
            Op::UseService => unit(d.use_service(inst, hdr.arg as u32)),
            Op::ReleaseService => unit(d.release_service(inst, hdr.arg as u32)),
            Op::SetServiceOption => {
                let Some(req) = parse::<wire::SetOptionRequest>(payload) else {
                    return self.reply_r(tag, inval);
                };
                unit(d.set_service_option(inst, req.handle, req.option, req.value))
            }
            Op::DumpPhysMem => (-i64::from(libc::ENOTTY), Vec::new()),
            Op::LibVersion => unit(d.lib_version(inst, hdr.arg)),
            Op::CloseDelivered => unit(d.close_delivered(inst, hdr.arg as u32)),
        };
        self.reply_r(tag, reply);
    }
}

/// The answer to a QUEUE_MESSAGE that did not go through now (or, `result == 0`, one that
/// did); a posted message's failure carries the service handle.
pub(super) fn message_failed(result: i64, handle: Option<u32>, posted: bool) -> Reply {
    let payload = match (posted, handle) {
        (true, Some(h)) => h.to_le_bytes().to_vec(),
        _ => Vec::new(),
    };
    (result, payload)
}

/// DEQUEUE_MESSAGE without waiting: `None` when nothing is queued. A batch takes every
/// queued message that fits one response ([`wire::REQUEST_BATCH`]).
pub(super) fn dequeue(
    d: &crate::driver::Driver,
    inst: &crate::driver::Instance,
    req: wire::DequeueRequest,
    batch: bool,
) -> Option<Reply> {
    let discard = req.null_buf != 0;
    let first = d.dequeue_message(inst, req.handle, req.bufsize, discard, Blocking::No);
    if first == Err(DriverError::WouldBlock) {
        return None;
    }
    if !batch || discard {
        return Some(encode_dequeue(first));
    }
    let Ok((size, data)) = first else {
        return Some(encode_dequeue(first));
    };
    let mut payload = size.to_le_bytes().to_vec();
    payload.extend_from_slice(&data.unwrap_or_default());
    let mut count = 1i64;
    // Only messages that surely fit the response are taken.
    while payload.len() + 4 + vchiq_abi::defs::MAX_MSG_SIZE <= budget() {
        match d.dequeue_message(inst, req.handle, req.bufsize, false, Blocking::No) {
            Ok((size, data)) => {
                payload.extend_from_slice(&size.to_le_bytes());
                payload.extend_from_slice(&data.unwrap_or_default());
                count += 1;
            }
            Err(_) => break,
        }
    }
    Some((count, payload))
}

/// Message bytes one AWAIT_COMPLETION response may carry.
pub(super) fn budget() -> usize {
    wire::MAX_FRAME - 4096
}

/// Splits a QUEUE_MESSAGE payload into the handle and element byte ranges.
fn decode_message(payload: &[u8]) -> Result<(u32, Vec<std::ops::Range<usize>>), i32> {
    let (req, rest) =
        wire::QueueMessageRequest::read_from_prefix(payload).map_err(|_| libc::EINVAL)?;
    if req.count as usize > vchiq_abi::defs::MAX_ELEMENTS {
        return Err(libc::EINVAL);
    }
    let sizes_len = req.count as usize * 4;
    if rest.len() < sizes_len {
        return Err(libc::EINVAL);
    }
    let mut offset = size_of::<wire::QueueMessageRequest>() + sizes_len;
    let mut ranges = Vec::with_capacity(req.count as usize);
    for chunk in rest[..sizes_len].chunks_exact(4) {
        let size = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as usize;
        let end = offset.checked_add(size).ok_or(libc::EINVAL)?;
        if end > payload.len() {
            return Err(libc::EFAULT);
        }
        ranges.push(offset..end);
        offset = end;
    }
    Ok((req.handle, ranges))
}

pub(super) fn encode_await(r: crate::driver::Result<crate::driver::AwaitOut>) -> Reply {
    match r {
        Err(e) => (errno_result(e), Vec::new()),
        Ok(out) => {
            let mut payload = wire::AwaitResponse {
                msgbufcount: out.msgbufcount,
                _pad: 0,
            }
            .as_bytes()
            .to_vec();
            for c in &out.records {
                let rec = wire::CompletionRecord {
                    reason: c.reason as u32,
                    msg_size: c
                        .message
                        .as_ref()
                        .map_or(wire::NO_MESSAGE, |m| m.len() as u32),
                    service_userdata: c.service_userdata,
                    bulk_userdata: c.bulk_userdata,
                };
                payload.extend_from_slice(rec.as_bytes());
            }
            for c in &out.records {
                if let Some(m) = &c.message {
                    payload.extend_from_slice(m);
                }
            }
            (out.records.len() as i64, payload)
        }
    }
}

pub(super) fn encode_dequeue(r: crate::driver::Result<(u32, Option<Vec<u8>>)>) -> Reply {
    match r {
        Ok((size, data)) => (i64::from(size), data.unwrap_or_default()),
        Err(e) => (errno_result(e), Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(handle: u32, parts: &[&[u8]]) -> Vec<u8> {
        let mut p = wire::QueueMessageRequest {
            handle,
            count: parts.len() as u32,
        }
        .as_bytes()
        .to_vec();
        for part in parts {
            p.extend_from_slice(&(part.len() as u32).to_le_bytes());
        }
        for part in parts {
            p.extend_from_slice(part);
        }
        p
    }

    #[test]
    fn message_payload_is_split_into_elements() {
        let p = message(7, &[b"a", b"bcdef", b"", b"ghij"]);
        let (h, ranges) = decode_message(&p).unwrap();
        assert_eq!(h, 7);
        let joined: Vec<u8> = ranges.iter().flat_map(|r| p[r.clone()].to_vec()).collect();
        assert_eq!(joined, b"abcdefghij");
    }

    #[test]
    fn malformed_message_payloads_are_rejected() {
        assert_eq!(decode_message(&[1, 2, 3]), Err(libc::EINVAL));
        let too_many = message(1, &[&b"x"[..]; 9]);
        assert_eq!(decode_message(&too_many), Err(libc::EINVAL));
        let mut short = message(1, &[b"hello"]);
        short.truncate(short.len() - 1);
        assert_eq!(decode_message(&short), Err(libc::EFAULT));
        let mut huge = message(1, &[b"x"]);
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_message(&huge), Err(libc::EFAULT));
    }
}
