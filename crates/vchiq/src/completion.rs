//! The completion thread (libvchiq_arm's "VCHIQ completion", spec §4.4).
//!
//! One thread per instance loops on AWAIT_COMPLETION (`count` 8, `msgbufsize` 4096,
//! `msgbufcount` = the buffers it holds, topped up to 8 before every call, as
//! libvchiq_arm does on a `/dev/vchiq` device; over the daemon socket, where every
//! AWAIT is a round trip between processes, 64 of each, so that one wake-up of this
//! thread carries a whole burst of completions; the driver
//! takes buffers from the end and writes the count back), then dispatches each record:
//! Callback services get their callback called on this thread, Queue services get the
//! event queued. After dispatching SERVICE_CLOSED it sends CLOSE_DELIVERED, because the
//! driver holds CLOSE_SERVICE/REMOVE_SERVICE until it does.
//!
//! Received records go into a backlog first and are dispatched from there one at a time,
//! so a callback that calls `close()`/`remove()` can keep the driver's completions
//! flowing: [`close_from_callback`] issues the CLOSE, runs AWAIT_COMPLETION itself until
//! the CLOSE answers (cancelling its last AWAIT then), sends CLOSE_DELIVERED for the
//! service's SERVICE_CLOSED as soon as that is received ("delivered first"), and leaves
//! every record in the backlog, so callbacks still run one at a time and in driver order.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::channel;

use vchiq_abi::common::Header;
use vchiq_abi::defs::{HEADER_SIZE, MSGBUF_SIZE};
use vchiq_abi::enums::Reason;
use vchiq_abi::wire::{AwaitRequest, AwaitResponse, CompletionRecord, NO_MESSAGE, Op};
use zerocopy::{FromBytes, IntoBytes};

use crate::error::{Error, Result};
use crate::instance::Core;
use crate::service::{Event, Handler, Service, ServiceInner};
use crate::transport::{Request, Response};

/// `completions[8]` of libvchiq_arm's completion thread (a device's AWAIT).
const AWAIT_COUNT: u32 = 8;
/// Records per AWAIT over the daemon socket (and message buffers offered).
const SOCKET_AWAIT_COUNT: u32 = 64;

/// Records one AWAIT asks for (and message buffers kept offered) on this transport.
fn await_depth(core: &Core) -> u32 {
    if core.transport.batches() {
        SOCKET_AWAIT_COUNT
    } else {
        AWAIT_COUNT
    }
}

/// One received completion, waiting to be dispatched.
pub(crate) struct Record {
    service: Arc<ServiceInner>,
    reason: Reason,
    bulk_userdata: u64,
    /// The message buffer: header (8 bytes) + data.
    message: Option<Vec<u8>>,
    /// CLOSE_DELIVERED was already sent for this SERVICE_CLOSED (by `close_from_callback`).
    delivered: bool,
}

/// The completion thread's working state.
#[derive(Default)]
pub(crate) struct PumpState {
    backlog: VecDeque<Record>,
    /// Free message buffers offered to the driver; consumed from the end.
    msgbufs: Vec<Vec<u8>>,
    /// How many buffers the AWAIT in flight offered.
    offered: u32,
    /// The SERVICE_CLOSED being dispatched right now, and whether CLOSE_DELIVERED for it
    /// was already sent (the callback closed the service itself).
    current_closed: Option<(Arc<ServiceInner>, bool)>,
    /// No more AWAIT_COMPLETION: SHUTDOWN (result 0) or a failure.
    ended: bool,
    /// Ended by a failure, not by SHUTDOWN: the connection is closed so nothing hangs.
    broken: bool,
}

/// The thread's body.
pub(crate) fn run(core: &Arc<Core>) {
    let _ = core.completion_thread.set(std::thread::current().id());
    loop {
        loop {
            let next = core.lock_pump().backlog.pop_front();
            match next {
                Some(rec) => dispatch(core, rec),
                None => break,
            }
        }
        if core.lock_pump().ended {
            break;
        }
        let req = await_request(core);
        let reply = core
            .transport
            .call(&Request::with(Op::AwaitCompletion, &[req.as_bytes()]));
        absorb(core, reply);
    }
    let broken = {
        let mut p = core.lock_pump();
        p.msgbufs.clear();
        p.broken
    };
    if broken {
        // Without this thread CLOSE/REMOVE would wait forever for CLOSE_DELIVERED: fail
        // everything instead.
        core.transport.close();
    }
    let services: Vec<Arc<ServiceInner>> = core.table().values().cloned().collect();
    for svc in services {
        svc.end_events();
    }
}

/// Tops the message buffers up and builds the AWAIT_COMPLETION request.
fn await_request(core: &Core) -> AwaitRequest {
    let depth = await_depth(core);
    let mut p = core.lock_pump();
    // Buffers get their memory when a message is copied in.
    while p.msgbufs.len() < depth as usize {
        p.msgbufs.push(Vec::new());
    }
    p.offered = p.msgbufs.len() as u32;
    AwaitRequest {
        count: depth,
        msgbufsize: MSGBUF_SIZE as u32,
        msgbufcount: p.offered,
        _pad: 0,
    }
}

/// Takes in an AWAIT_COMPLETION reply: records go to the backlog; the end (0, an error,
/// a broken reply) sets `ended`. `-EINTR` (a cancelled AWAIT) and `-EAGAIN` change nothing.
fn absorb(core: &Core, reply: Result<Response>) {
    let outcome = match reply {
        Ok(resp) if resp.result == -i64::from(libc::EINTR) => return,
        // vchiqd could not start a waiter for a blocking request: try again.
        Ok(resp) if resp.result == -i64::from(libc::EAGAIN) => {
            std::thread::yield_now();
            return;
        }
        Ok(resp) if resp.result == 0 => Ok(false),
        Ok(resp) if resp.result < 0 => Err(()),
        Ok(resp) => parse(core, resp.result, &resp.payload)
            .map(|()| true)
            .map_err(|_| ()),
        Err(_) => Err(()),
    };
    let mut p = core.lock_pump();
    match outcome {
        Ok(true) => {}
        Ok(false) => p.ended = true,
        Err(()) => {
            p.ended = true;
            p.broken = true;
        }
    }
}

/// Decodes `n` records and their messages, checking the buffer accounting.
fn parse(core: &Core, n: i64, payload: &[u8]) -> Result<()> {
    let bad = |what: String| Error::Protocol(format!("AWAIT_COMPLETION: {what}"));
    let n = usize::try_from(n)
        .ok()
        .filter(|&n| n <= await_depth(core) as usize)
        .ok_or_else(|| bad(format!("{n} records")))?;
    let (head, mut rest) =
        AwaitResponse::read_from_prefix(payload).map_err(|_| bad("short reply".into()))?;
    let mut raw = Vec::with_capacity(n);
    for _ in 0..n {
        let (rec, tail) =
            CompletionRecord::read_from_prefix(rest).map_err(|_| bad("short record".into()))?;
        raw.push(rec);
        rest = tail;
    }
    let mut p = core.lock_pump();
    let with_message = raw.iter().filter(|r| r.msg_size != NO_MESSAGE).count();
    if head.msgbufcount > p.offered || (p.offered - head.msgbufcount) as usize != with_message {
        return Err(bad(format!(
            "{with_message} messages but msgbufcount went from {} to {}",
            p.offered, head.msgbufcount
        )));
    }
    let mut records = Vec::with_capacity(n);
    for rec in raw {
        let reason = Reason::try_from(rec.reason).map_err(|e| bad(e.to_string()))?;
        let message = if rec.msg_size == NO_MESSAGE {
            None
        } else {
            let size = rec.msg_size as usize;
            if !(HEADER_SIZE..=MSGBUF_SIZE).contains(&size) || rest.len() < size {
                return Err(bad(format!("message of {size} bytes")));
            }
            let (bytes, tail) = rest.split_at(size);
            rest = tail;
            let header = Header::read_from_prefix(bytes)
                .map_err(|_| bad("short header".into()))?
                .0;
            if header.size as usize != size - HEADER_SIZE {
                return Err(bad(format!(
                    "header says {} bytes, record {size}",
                    header.size
                )));
            }
            // The driver fills buffers from the end of msgbufs[].
            let mut buf = p.msgbufs.pop().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(bytes);
            Some(buf)
        };
        // A record for a service this library no longer knows (or never did) cannot be
        // dispatched; it is dropped, as libvchiq_arm would crash on it.
        if let Some(service) = core.lookup(rec.service_userdata) {
            records.push(Record {
                service,
                reason,
                bulk_userdata: rec.bulk_userdata,
                message,
                delivered: false,
            });
        }
    }
    if !rest.is_empty() {
        return Err(bad(format!("{} stray bytes", rest.len())));
    }
    p.backlog.extend(records);
    Ok(())
}

/// Delivers one record: callback or event queue, then CLOSE_DELIVERED for SERVICE_CLOSED.
fn dispatch(core: &Core, rec: Record) {
    let svc = rec.service;
    let Some(handle) = svc.wait_created() else {
        return;
    };
    let closed = rec.reason == Reason::ServiceClosed;
    if closed {
        core.lock_pump().current_closed = Some((Arc::clone(&svc), rec.delivered));
    }
    let event = match rec.reason {
        Reason::ServiceOpened => Event::Opened,
        Reason::ServiceClosed => Event::Closed,
        Reason::MessageAvailable => match rec.message {
            Some(mut buf) => {
                buf.drain(..HEADER_SIZE);
                Event::Message(buf)
            }
            None => Event::MessageAvailable,
        },
        Reason::BulkTransmitDone => {
            svc.release_tx(rec.bulk_userdata);
            Event::BulkTransmitDone {
                userdata: rec.bulk_userdata,
            }
        }
        Reason::BulkTransmitAborted => {
            svc.release_tx(rec.bulk_userdata);
            Event::BulkTransmitAborted {
                userdata: rec.bulk_userdata,
            }
        }
        Reason::BulkReceiveDone => {
            let data = svc
                .take_rx_bulk(rec.bulk_userdata)
                .map(|b| b.into_data())
                .unwrap_or_default();
            Event::BulkReceiveDone {
                userdata: rec.bulk_userdata,
                data,
            }
        }
        Reason::BulkReceiveAborted => {
            drop(svc.take_rx_bulk(rec.bulk_userdata));
            Event::BulkReceiveAborted {
                userdata: rec.bulk_userdata,
            }
        }
    };
    match &svc.handler {
        Handler::Callback(f) => {
            let service = Service {
                inner: Arc::clone(&svc),
            };
            // A panicking callback must not kill this thread: every later close would
            // then wait forever for CLOSE_DELIVERED. The panic hook has reported it.
            let _ = catch_unwind(AssertUnwindSafe(|| f(&service, event)));
        }
        Handler::Queue => svc.push_event(event),
    }
    if closed {
        let delivered = core
            .lock_pump()
            .current_closed
            .take()
            .is_some_and(|(_, d)| d);
        if core.close_delivered && !delivered {
            close_delivered(core, handle);
        }
    }
}

fn close_delivered(core: &Core, handle: u32) {
    // -EINVAL means the driver no longer holds the service; nothing waits then.
    let _ = core
        .transport
        .call(&Request::value(Op::CloseDelivered, u64::from(handle)));
}

/// Sends CLOSE_DELIVERED now for every received but undelivered SERVICE_CLOSED of `svc`.
fn deliver_early(core: &Core, svc: &Arc<ServiceInner>, handle: u32) {
    let mut count = 0;
    {
        let mut p = core.lock_pump();
        for r in p.backlog.iter_mut() {
            if Arc::ptr_eq(&r.service, svc) && r.reason == Reason::ServiceClosed && !r.delivered {
                r.delivered = true;
                count += 1;
            }
        }
        if let Some((s, delivered)) = &mut p.current_closed {
            if Arc::ptr_eq(s, svc) && !*delivered {
                *delivered = true;
                count += 1;
            }
        }
    }
    for _ in 0..count {
        close_delivered(core, handle);
    }
}

/// CLOSE_SERVICE/REMOVE_SERVICE issued from a callback, i.e. on the completion thread.
///
/// The driver answers only after CLOSE_DELIVERED, which needs the SERVICE_CLOSED record,
/// which needs an AWAIT_COMPLETION: so this runs AWAITs itself while the CLOSE is
/// pending, sends CLOSE_DELIVERED as soon as the record is in, and cancels its last AWAIT
/// (Op::Cancel, answered with `-EINTR` or with records, which are kept) once the CLOSE
/// has answered. Records stay in the backlog for the main loop.
pub(crate) fn close_from_callback(
    core: &Core,
    svc: &Arc<ServiceInner>,
    op: Op,
    handle: u32,
) -> Result<Response> {
    deliver_early(core, svc, handle);
    let (tx, rx) = channel();
    let mut close_tag = core
        .transport
        .submit(&Request::value(op, u64::from(handle)), tx.clone())?;
    let mut close_reply: Option<Result<Response>> = None;
    let mut await_tag: Option<u32> = None;
    loop {
        if close_reply.is_some() && await_tag.is_none() {
            break;
        }
        if close_reply.is_none() && await_tag.is_none() && !core.lock_pump().ended {
            let req = await_request(core);
            match core.transport.submit(
                &Request::with(Op::AwaitCompletion, &[req.as_bytes()]),
                tx.clone(),
            ) {
                Ok(tag) => await_tag = Some(tag),
                Err(_) => {
                    let mut p = core.lock_pump();
                    p.ended = true;
                    p.broken = true;
                }
            }
        }
        // Every submitted request gets exactly one reply (Err(Closed) if the daemon goes).
        let Ok((tag, reply)) = rx.recv() else {
            return Err(Error::Closed);
        };
        if tag == close_tag {
            let interrupted = matches!(&reply, Ok(r) if r.result == -i64::from(libc::EINTR));
            if interrupted {
                // Re-issuing an interrupted CLOSE/REMOVE resumes only its wait (spec §3.5).
                if let Ok(tag) = core
                    .transport
                    .submit(&Request::value(op, u64::from(handle)), tx.clone())
                {
                    close_tag = tag;
                    continue;
                }
            }
            close_reply = Some(reply);
            if let Some(t) = await_tag {
                core.transport.cancel(t);
            }
        } else if Some(tag) == await_tag {
            await_tag = None;
            absorb(core, reply);
            deliver_early(core, svc, handle);
        }
    }
    close_reply.unwrap_or(Err(Error::Closed))
}
