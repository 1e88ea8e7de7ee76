//! The socket front end: one connection is one instance.
//!
//! Each connection has a reader thread that decodes request frames and calls the
//! [`Driver`]. Requests that can be answered at once are answered by the reader; a request
//! that must wait (AWAIT_COMPLETION with nothing queued, a blocking DEQUEUE, a BLOCKING
//! bulk, CREATE_SERVICE waiting for OPENACK, CLOSE/REMOVE waiting for the close handshake)
//! gets a short-lived thread of its own, registered under its tag so that
//! [`Op::Cancel`] can interrupt it with `-EINTR`. Responses are written under a lock, one
//! packet each. A malformed frame closes the connection; it never reaches the driver.

use std::collections::HashMap;
use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use vchiq_abi::enums::BulkMode;
use vchiq_abi::fourcc::FourCc;
use vchiq_abi::wire::{self, Op, RequestHeader, ResponseHeader};
use zerocopy::{FromBytes, IntoBytes};

use crate::driver::{
    Blocking, BulkSink, CancelToken, CreateService, Driver, DriverError, Errno, Instance,
};
use crate::sys;
use crate::waiters::Waiters;

/// The largest bulk a socket client may move in one request (the link's arena is shared).
pub const MAX_BULK: u32 = vchiq_abi::wire::MAX_BULK;

/// One client connection.
pub struct Connection {
    driver: Arc<Driver>,
    inst: Arc<Instance>,
    sock: OwnedFd,
    send_lock: Mutex<()>,
    pending: Mutex<HashMap<u32, Arc<CancelToken>>>,
    waiters: Arc<Waiters>,
}

type Reply = (i64, Vec<u8>);

fn errno_result(e: DriverError) -> i64 {
    match e {
        DriverError::Errno(Errno(e)) => -i64::from(e),
        DriverError::WouldBlock => -i64::from(libc::EAGAIN),
    }
}

fn unit(r: crate::driver::Result<()>) -> Reply {
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

/// Checks a bulk memfd: big enough and sealed against shrinking (so the daemon never reads
/// past a truncated end).
fn check_memfd(fd: &OwnedFd, size: u32) -> Result<(), i32> {
    let seals = sys::get_seals(fd.as_fd()).map_err(|_| libc::EINVAL)?;
    if seals & libc::F_SEAL_SHRINK == 0 {
        return Err(libc::EINVAL);
    }
    let len = sys::file_size(fd.as_fd()).map_err(|_| libc::EINVAL)?;
    if len < u64::from(size) {
        return Err(libc::EINVAL);
    }
    Ok(())
}

impl Connection {
    /// Serves a connection until it closes; then releases the instance.
    pub fn serve(driver: Arc<Driver>, inst: Arc<Instance>, sock: OwnedFd) {
        let conn = Arc::new(Connection {
            driver,
            inst,
            sock,
            send_lock: Mutex::new(()),
            pending: Mutex::new(HashMap::new()),
            waiters: Waiters::new(),
        });
        let mut buf = vec![0u8; wire::MAX_REQUEST];
        loop {
            let (n, fds) = match sys::recv_with_fds(conn.sock.as_fd(), &mut buf) {
                Ok((0, _)) => break,
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(client_id = conn.inst.client_id(), "connection read: {e}");
                    break;
                }
            };
            let Some(hdr) = parse::<RequestHeader>(&buf[..n]) else {
                tracing::warn!(
                    client_id = conn.inst.client_id(),
                    "short frame ({n} bytes): closing the connection"
                );
                break;
            };
            if hdr.magic != wire::REQUEST_MAGIC {
                tracing::warn!(
                    client_id = conn.inst.client_id(),
                    "bad frame magic {:#x}: closing the connection",
                    hdr.magic
                );
                break;
            }
            let payload = buf[size_of::<RequestHeader>()..n].to_vec();
            conn.driver
                .stats
                .requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            conn.clone().dispatch(hdr, payload, fds);
        }
        // The client is gone: interrupt its waiters, then end the instance.
        for token in conn
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            conn.driver.cancel(&conn.inst, token);
        }
        conn.driver.release_instance(&conn.inst);
        conn.waiters.close();
    }

    fn reply(&self, tag: u32, result: i64, payload: &[u8], fd: Option<&OwnedFd>) {
        let hdr = ResponseHeader {
            magic: wire::RESPONSE_MAGIC,
            tag,
            result,
        };
        let parts = [IoSlice::new(hdr.as_bytes()), IoSlice::new(payload)];
        let fds: Vec<_> = fd.iter().map(|f| f.as_fd()).collect();
        let _g = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = sys::send_with_fds(self.sock.as_fd(), &parts, &fds) {
            tracing::debug!(client_id = self.inst.client_id(), "reply dropped: {e}");
        }
    }

    /// Runs `f` on a thread of its own, cancellable by tag.
    fn spawn(
        self: Arc<Self>,
        tag: u32,
        f: impl FnOnce(&Connection, &CancelToken) -> Reply + Send + 'static,
    ) {
        let token = CancelToken::new();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tag, token.clone());
        let conn = self.clone();
        let submitted = self.waiters.submit(Box::new(move || {
            let (result, payload) = f(&conn, &token);
            conn.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&tag);
            conn.reply(tag, result, &payload, None);
        }));
        if !submitted {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&tag);
            self.reply(tag, -i64::from(libc::EAGAIN), &[], None);
        }
    }

    fn dispatch(self: Arc<Self>, hdr: RequestHeader, payload: Vec<u8>, mut fds: Vec<OwnedFd>) {
        let tag = hdr.tag;
        let Some(op) = Op::from_u32(hdr.op) else {
            self.reply(tag, -i64::from(libc::ENOTTY), &[], None);
            return;
        };
        let d = &self.driver;
        let inst = &self.inst;
        let inval = (-i64::from(libc::EINVAL), Vec::new());
        let reply: Reply = match op {
            Op::Hello => {
                let Some(req) = parse::<wire::HelloRequest>(&payload) else {
                    return self.reply(tag, -i64::from(libc::EINVAL), &[], None);
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
            Op::Cancel => {
                if let Some(t) = self
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&(hdr.arg as u32))
                {
                    d.cancel(inst, t);
                }
                return;
            }
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
                let Some(req) = parse::<wire::CreateServiceRequest>(&payload) else {
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
            Op::QueueMessage => match decode_message(&payload) {
                Err(e) => (-i64::from(e), Vec::new()),
                Ok((handle, parts)) => {
                    let slices: Vec<&[u8]> = parts.iter().map(|r| &payload[r.clone()]).collect();
                    match d.queue_message(inst, handle, &slices, Blocking::No) {
                        Err(DriverError::WouldBlock) => {
                            return self.spawn(tag, move |c, t| {
                                let slices: Vec<&[u8]> =
                                    parts.iter().map(|r| &payload[r.clone()]).collect();
                                unit(c.driver.queue_message(
                                    &c.inst,
                                    handle,
                                    &slices,
                                    Blocking::Yes(t),
                                ))
                            });
                        }
                        r => unit(r),
                    }
                }
            },
            Op::QueueBulkTransmit | Op::QueueBulkReceive => {
                let Some(req) = parse::<wire::BulkRequest>(&payload) else {
                    return self.reply_r(tag, inval);
                };
                let Ok(mode) = BulkMode::try_from(req.mode) else {
                    return self.reply_r(tag, (-i64::from(libc::EIO), Vec::new()));
                };
                let fd = if mode == BulkMode::Waiting {
                    None
                } else {
                    if req.size > MAX_BULK || fds.len() != 1 {
                        return self.reply_r(tag, inval);
                    }
                    let fd = fds.remove(0);
                    if let Err(e) = check_memfd(&fd, req.size) {
                        return self.reply_r(tag, (-i64::from(e), Vec::new()));
                    }
                    Some(fd)
                };
                let transmit = op == Op::QueueBulkTransmit;
                let data = match (&fd, transmit) {
                    (Some(fd), true) => {
                        let mut data = vec![0u8; req.size as usize];
                        if sys::pread_exact(fd.as_fd(), &mut data, 0).is_err() {
                            return self.reply_r(tag, (-i64::from(libc::EFAULT), Vec::new()));
                        }
                        data
                    }
                    _ => Vec::new(),
                };
                let run = move |c: &Connection, blocking: Blocking<'_>| {
                    let r = if transmit {
                        c.driver.bulk_transmit(
                            &c.inst,
                            req.handle,
                            data,
                            req.userdata,
                            mode,
                            req.thread,
                            blocking,
                        )
                    } else {
                        let sink = fd.map(|fd| Box::new(MemfdSink(fd)) as Box<dyn BulkSink>);
                        c.driver.bulk_receive(
                            &c.inst,
                            req.handle,
                            req.size,
                            sink,
                            req.userdata,
                            mode,
                            req.thread,
                            blocking,
                        )
                    };
                    match r {
                        Err(DriverError::Errno(crate::driver::BULK_INTERRUPTED)) => {
                            let resp = wire::BulkResponse {
                                mode: BulkMode::Waiting as u32,
                                _pad: 0,
                            };
                            (-i64::from(libc::EINTR), resp.as_bytes().to_vec())
                        }
                        r => unit(r),
                    }
                };
                if matches!(mode, BulkMode::Blocking | BulkMode::Waiting) {
                    return self.spawn(tag, move |c, t| run(c, Blocking::Yes(t)));
                }
                run(&self, Blocking::No)
            }
            Op::AwaitCompletion => {
                let Some(req) = parse::<wire::AwaitRequest>(&payload) else {
                    return self.reply_r(tag, inval);
                };
                match d.await_completion(
                    inst,
                    req.count,
                    req.msgbufsize,
                    req.msgbufcount,
                    budget(),
                    Blocking::No,
                ) {
                    Err(DriverError::WouldBlock) => {
                        return self.spawn(tag, move |c, t| {
                            encode_await(c.driver.await_completion(
                                &c.inst,
                                req.count,
                                req.msgbufsize,
                                req.msgbufcount,
                                budget(),
                                Blocking::Yes(t),
                            ))
                        });
                    }
                    r => encode_await(r),
                }
            }
            Op::DequeueMessage => {
                let Some(req) = parse::<wire::DequeueRequest>(&payload) else {
                    return self.reply_r(tag, inval);
                };
                let discard = req.null_buf != 0;
                match d.dequeue_message(inst, req.handle, req.bufsize, discard, Blocking::No) {
                    Err(DriverError::WouldBlock) if req.blocking != 0 => {
                        return self.spawn(tag, move |c, t| {
                            encode_dequeue(c.driver.dequeue_message(
                                &c.inst,
                                req.handle,
                                req.bufsize,
                                discard,
                                Blocking::Yes(t),
                            ))
                        });
                    }
                    r => encode_dequeue(r),
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
                let Some(req) = parse::<wire::SetOptionRequest>(&payload) else {
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

    fn reply_r(&self, tag: u32, (result, payload): Reply) {
        self.reply(tag, result, &payload, None);
    }
}

/// Message bytes one AWAIT_COMPLETION response may carry.
fn budget() -> usize {
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

fn encode_await(r: crate::driver::Result<crate::driver::AwaitOut>) -> Reply {
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

fn encode_dequeue(r: crate::driver::Result<(u32, Option<Vec<u8>>)>) -> Reply {
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
