//! The native transport: ioctls on a `/dev/vchiq` file, the kernel driver's on a
//! Raspberry Pi or vchiqd's FUSE file node (`vchiq daemon --dev-node PATH`).
//!
//! It is the mirror image of `vchiq-preload`: where the shim turns ioctls into requests
//! of the socket protocol, this turns the library's requests (in the `vchiq_abi::wire`
//! format) into ioctls, with argument structs laid out for this process
//! ([`vchiq_abi::Layout::NATIVE`]) whose pointers point at its own buffers, and builds
//! wire-format responses from the results. The library above it cannot tell the two
//! transports apart, except that bulk data is passed by address ([`Request::bulk`]) and
//! never through a memfd.
//!
//! # Threads
//!
//! - [`Transport::call`] issues the ioctl on the calling thread; a blocking ioctl
//!   (AWAIT_COMPLETION, a blocking DEQUEUE_MESSAGE, a BLOCKING bulk, CLOSE/REMOVE waiting
//!   for CLOSE_DELIVERED) blocks just that thread, as in libvchiq_arm. The completion
//!   thread's AWAIT_COMPLETION ends when SHUTDOWN makes the driver return 0.
//! - [`Transport::submit`] (used only where the library must wait for two requests at
//!   once: a CLOSE from inside a callback) runs the ioctl on a short-lived worker thread;
//!   [`Transport::cancel`] interrupts that worker with a signal, so the driver returns
//!   `EINTR`, exactly what a signal does to a C caller.
//!
//! # EINTR
//!
//! A stray signal interrupting a synchronous call is retried here, so the library sees
//! `-EINTR` only where the socket transport would show it: for a BLOCKING bulk (with
//! `mode = WAITING` written back, which the library re-issues as libvchiq_arm does), for
//! GET_CLIENT_ID (which libvchiq_arm does not retry either), and for a cancelled
//! submission.
//!
//! # What has no ioctl
//!
//! - HELLO is answered locally. `client_id` is what the driver will record (the
//!   opener's thread-group id as the kernel sees it): `getpid()` when this process is
//!   in the initial PID namespace, else unknown (0) until a service exists, when
//!   [`Instance::client_id`](crate::Instance::client_id) asks GET_CLIENT_ID of it.
//!   `pid_namespace` is the inode of `/proc/self/ns/pid`, `uid` the effective uid,
//!   `instance` 0 (the driver does not number instances).
//! - STATUS is a `read()` of the device: the driver's state dump.
//! - DUMP_PHYS_MEM answers `-ENOTTY` without an ioctl, as current drivers do.
//!
//! # Limits
//!
//! Closing the transport does not end ioctls blocked on other threads (the kernel keeps
//! the file open while they run); the library removes its services first, which ends
//! them.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use vchiq_abi::args::{CompletionDataArgs, CreateServiceArgs, SetServiceOptionArgs};
use vchiq_abi::common::Header;
use vchiq_abi::defs::{HEADER_SIZE, MAX_ELEMENTS};
use vchiq_abi::enums::BulkMode;
use vchiq_abi::fourcc::FourCc;

use vchiq_abi::wire::{
    AwaitRequest, AwaitResponse, BulkRequest, BulkResponse, CompletionRecord, CreateServiceRequest,
    DequeueRequest, HelloResponse, NO_MESSAGE, Op, PROTOCOL_VERSION, QueueMessageRequest,
    SetOptionRequest,
};
use zerocopy::{FromBytes, IntoBytes};

use crate::error::{Error, Result};
use crate::transport::{Reply, Request, Response, Transport};

mod raw;

/// `PROC_PID_INIT_INO`: the inode of the initial PID namespace, fixed by the kernel.
const INIT_PID_NS_INO: u64 = 0xEFFF_FFFC;

/// The largest `msgbufs` array or completion batch accepted from the library.
const MAX_BATCH: u32 = 128;

/// A request running on a worker thread (from [`Transport::submit`]).
struct Worker {
    thread: JoinHandle<()>,
    done: Arc<AtomicBool>,
    cancelled: Arc<AtomicBool>,
}

struct State {
    /// `None` once closed: later requests fail with [`Error::Closed`]. Calls in flight
    /// hold their own `Arc`, so the descriptor is closed when the last of them ends.
    file: Option<Arc<File>>,
    next_tag: u32,
    workers: HashMap<u32, Worker>,
}

/// Requests as ioctls on an open `/dev/vchiq`.
pub(crate) struct NativeTransport {
    state: Mutex<State>,
    /// The device file (for dumps through a fresh descriptor).
    path: PathBuf,
    /// The state dump has been read through the instance's own descriptor once.
    dumped: AtomicBool,
}

impl NativeTransport {
    /// Opens `path` with `O_RDWR | O_CLOEXEC`, as libvchiq_arm opens `/dev/vchiq` (plus
    /// close-on-exec).
    pub fn open(path: &Path) -> Result<NativeTransport> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| Error::from_open(path.to_path_buf(), e))?;
        Ok(NativeTransport {
            state: Mutex::new(State {
                file: Some(Arc::new(file)),
                next_tag: 1,
                workers: HashMap::new(),
            }),
            path: path.to_path_buf(),
            dumped: AtomicBool::new(false),
        })
    }

    /// The state dump: `read()` of the device from offset 0 to EOF. `pread` where the
    /// file allows it (the kernel driver); vchiqd's node is not positionable, and there
    /// plain `read()` is used: on the instance's own descriptor the first time (its
    /// position is still 0), later through a fresh read-only descriptor of the same file
    /// (which the driver counts as another instance while it is open).
    fn read_dump(&self, file: &File) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let mut text = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match file.read_at(&mut chunk, text.len() as u64) {
                Ok(0) => return Ok(text),
                Ok(n) => text.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ESPIPE) && text.is_empty() => break,
                Err(e) => return Err(e),
            }
        }
        if self.dumped.swap(true, Ordering::AcqRel) {
            let fresh = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(&self.path)?;
            (&fresh).read_to_end(&mut text)?;
        } else {
            let mut own = file;
            own.read_to_end(&mut text)?;
        }
        Ok(text)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The critical sections only swap an Option and edit a map.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn file(&self) -> Result<Arc<File>> {
        self.lock().file.clone().ok_or(Error::Closed)
    }

    /// Joins the workers that have finished.
    fn reap(&self) {
        let finished: Vec<Worker> = {
            let mut s = self.lock();
            let tags: Vec<u32> = s
                .workers
                .iter()
                .filter(|(_, w)| w.done.load(Ordering::Acquire))
                .map(|(t, _)| *t)
                .collect();
            tags.iter().filter_map(|t| s.workers.remove(t)).collect()
        };
        for w in finished {
            let _ = w.thread.join();
        }
    }
}

/// What an ioctl gave: its result (`-errno` on failure) and the wire payload.
fn response(result: std::result::Result<i32, i32>, payload: Vec<u8>) -> Response {
    Response {
        result: match result {
            Ok(r) => i64::from(r),
            Err(e) => -i64::from(e),
        },
        payload,
    }
}

fn bad(op: Op, what: &str) -> Error {
    Error::Protocol(format!("{}: {what}", op.name()))
}

/// The request's payload pieces, concatenated.
fn payload(req: &Request<'_>) -> Vec<u8> {
    req.payload.concat()
}

fn decode<T: FromBytes>(req: &Request<'_>) -> Result<(T, Vec<u8>)> {
    let bytes = payload(req);
    let (v, rest) = T::read_from_prefix(&bytes).map_err(|_| bad(req.op, "short request"))?;
    let rest = rest.to_vec();
    Ok((v, rest))
}

/// Whether an `EINTR` of `req` is handed to the library (true) or retried here: a
/// BLOCKING (or WAITING) bulk, whose retry must be WAITING, and GET_CLIENT_ID, which
/// libvchiq_arm does not retry. An interrupted CALLBACK/NOCALLBACK bulk queued nothing.
fn passes_eintr(req: &Request<'_>) -> bool {
    match req.op {
        Op::GetClientId => true,
        Op::QueueBulkTransmit | Op::QueueBulkReceive => decode::<BulkRequest>(req)
            .map(|(r, _)| r.mode == BulkMode::Blocking.raw() || r.mode == BulkMode::Waiting.raw())
            .unwrap_or(true),
        _ => false,
    }
}

/// Runs one request as (at most) one ioctl on `fd`; `interruptible` says whether an
/// `EINTR` ends it (a cancelled submission) or is retried.
fn execute(file: &File, req: &Request<'_>, cancelled: Option<&AtomicBool>) -> Result<Response> {
    loop {
        let resp = execute_once(file, req)?;
        let eintr = resp.result == -i64::from(libc::EINTR);
        if !eintr || passes_eintr(req) || cancelled.is_some_and(|c| c.load(Ordering::Acquire)) {
            return Ok(resp);
        }
        // A stray signal: libvchiq_arm's RETRY.
    }
}

fn execute_once(file: &File, req: &Request<'_>) -> Result<Response> {
    let fd: BorrowedFd<'_> = file.as_fd();
    let op = req.op;
    Ok(match op {
        Op::Hello => response(Ok(0), hello().as_bytes().to_vec()),
        Op::Status => return Err(bad(op, "answered by NativeTransport::call")),
        Op::Cancel => return Err(bad(op, "not a request on this transport")),
        Op::DumpPhysMem => response(Err(libc::ENOTTY), Vec::new()),
        Op::CreateService => {
            let (r, _) = decode::<CreateServiceRequest>(req)?;
            let mut args = CreateServiceArgs {
                fourcc: FourCc(r.fourcc),
                callback: 0,
                userdata: r.userdata,
                version: r.version,
                version_min: r.version_min,
                is_open: r.is_open != 0,
                is_vchi: r.is_vchi != 0,
                handle: 0,
            };
            // The wire result of CREATE_SERVICE is the handle (all 32 bits of it).
            match raw::create_service(fd, &mut args) {
                Ok(_) => Response {
                    result: i64::from(args.handle),
                    payload: Vec::new(),
                },
                Err(e) => response(Err(e), Vec::new()),
            }
        }
        Op::QueueMessage => {
            let (head, rest) = decode::<QueueMessageRequest>(req)?;
            let count = head.count as usize;
            if count > MAX_ELEMENTS || rest.len() < 4 * count {
                return Ok(response(Err(libc::EINVAL), Vec::new()));
            }
            let (sizes, mut data) = rest.split_at(4 * count);
            let mut parts: Vec<&[u8]> = Vec::with_capacity(count);
            for s in sizes.chunks_exact(4) {
                let len = u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize;
                if data.len() < len {
                    return Err(bad(op, "element sizes exceed the data"));
                }
                let (part, tail) = data.split_at(len);
                parts.push(part);
                data = tail;
            }
            response(raw::queue_message(fd, head.handle, &parts), Vec::new())
        }
        Op::QueueBulkTransmit | Op::QueueBulkReceive => {
            let (r, _) = decode::<BulkRequest>(req)?;
            let Some(mem) = req.bulk else {
                return Err(bad(op, "the native transport needs the bulk's address"));
            };
            if mem.len != r.size as usize {
                return Err(bad(op, "bulk size and buffer differ"));
            }
            let mut mode = r.mode;
            let result = raw::bulk(
                fd,
                op == Op::QueueBulkTransmit,
                r.handle,
                mem,
                r.userdata,
                &mut mode,
            );
            let back = BulkResponse { mode, _pad: 0 };
            response(result, back.as_bytes().to_vec())
        }
        Op::AwaitCompletion => {
            let (r, _) = decode::<AwaitRequest>(req)?;
            if r.count > MAX_BATCH || r.msgbufcount > MAX_BATCH || r.msgbufsize > 1 << 20 {
                return Ok(response(Err(libc::EINVAL), Vec::new()));
            }
            await_completion(fd, &r)
        }
        Op::DequeueMessage => {
            let (r, _) = decode::<DequeueRequest>(req)?;
            if r.null_buf != 0 {
                response(
                    raw::dequeue(fd, r.handle, r.blocking != 0, None),
                    Vec::new(),
                )
            } else {
                let mut buf = vec![0u8; r.bufsize.min(1 << 20) as usize];
                let result = raw::dequeue(fd, r.handle, r.blocking != 0, Some(&mut buf));
                if let Ok(n) = result {
                    buf.truncate(usize::try_from(n).unwrap_or(0));
                } else {
                    buf.clear();
                }
                response(result, buf)
            }
        }
        Op::GetConfig => {
            // The driver refuses more than 20 bytes with EINVAL; pass bigger sizes on only
            // within reason, so that it can say so.
            let size = usize::try_from(req.arg).unwrap_or(usize::MAX).min(4096);
            let mut out = vec![0u8; size];
            let result = raw::get_config(fd, &mut out);
            if result.is_err() {
                out.clear();
            }
            response(result, out)
        }
        Op::SetServiceOption => {
            let (r, _) = decode::<SetOptionRequest>(req)?;
            let args = SetServiceOptionArgs {
                handle: r.handle,
                option: r.option,
                value: r.value,
            };
            response(raw::set_option(fd, &args), Vec::new())
        }
        // The by-value ioctls (CONNECT, REMOVE_SERVICE, ...): the op is the ioctl, the
        // argument passes through.
        _ => match op.ioctl().filter(|i| i.takes_value()) {
            Some(ioctl) => response(raw::value(fd, ioctl, req.arg), Vec::new()),
            None => return Err(bad(op, "not an ioctl this transport knows")),
        },
    })
}

/// The locally answered HELLO (see the module docs).
fn hello() -> HelloResponse {
    let pid_namespace = std::fs::metadata("/proc/self/ns/pid")
        .map(|m| m.ino())
        .unwrap_or(0);
    let id = if pid_namespace == INIT_PID_NS_INO {
        std::process::id()
    } else {
        0
    };
    HelloResponse {
        version: PROTOCOL_VERSION,
        client_id: id,
        instance: 0,
        uid: crate::sys::geteuid(),
        pid_namespace,
    }
}

/// AWAIT_COMPLETION with the library's counts, into buffers of this transport; the wire
/// response carries the records and the message bytes (header + data) they point at.
fn await_completion(fd: BorrowedFd<'_>, r: &AwaitRequest) -> Response {
    let msgbufsize = r.msgbufsize as usize;
    let mut msgbufs: Vec<Vec<u8>> = (0..r.msgbufcount).map(|_| vec![0u8; msgbufsize]).collect();
    let mut records: Vec<CompletionDataArgs> = Vec::new();
    let mut left = r.msgbufcount;
    let result = raw::await_completion(
        fd,
        &mut records,
        r.count as usize,
        &mut msgbufs,
        msgbufsize,
        &mut left,
    );
    match result {
        Ok(n) if n > 0 => {}
        other => return response(other, Vec::new()),
    }
    let mut out = AwaitResponse {
        msgbufcount: left,
        _pad: 0,
    }
    .as_bytes()
    .to_vec();
    let mut messages = Vec::new();
    for rec in &records {
        let mut msg_size = NO_MESSAGE;
        if rec.header != 0 {
            // The header points at one of our buffers (taken from the end).
            let buf = msgbufs.iter().find(|b| b.as_ptr() as u64 == rec.header);
            match buf.and_then(|b| Header::read_from_prefix(b).ok().map(|(h, _)| (b, h))) {
                Some((b, h)) if HEADER_SIZE + h.size as usize <= b.len() => {
                    let len = HEADER_SIZE + h.size as usize;
                    messages.extend_from_slice(&b[..len]);
                    msg_size = len as u32;
                }
                // A header outside our buffers (or overflowing one) would be a driver bug.
                _ => return response(Err(libc::EFAULT), Vec::new()),
            }
        }
        let wire = CompletionRecord {
            reason: rec.reason,
            msg_size,
            service_userdata: rec.service_userdata,
            bulk_userdata: rec.bulk_userdata,
        };
        out.extend_from_slice(wire.as_bytes());
    }
    out.extend_from_slice(&messages);
    response(Ok(records.len() as i32), out)
}

impl Transport for NativeTransport {
    fn direct_bulk(&self) -> bool {
        true
    }

    fn call(&self, req: &Request<'_>) -> Result<Response> {
        let file = self.file()?;
        if req.op == Op::Status {
            return Ok(match self.read_dump(&file) {
                Ok(text) => response(Ok(0), text),
                Err(e) => response(Err(e.raw_os_error().unwrap_or(libc::EIO)), Vec::new()),
            });
        }
        execute(&file, req, None)
    }

    fn submit(&self, req: &Request<'_>, reply_to: Sender<Reply>) -> Result<u32> {
        self.reap();
        if req.bulk.is_some() || req.fd.is_some() {
            // Only plain requests are ever submitted; their bytes can move to a worker.
            return Err(bad(req.op, "submit with bulk memory"));
        }
        let file = self.file()?;
        let op = req.op;
        let arg = req.arg;
        let bytes = payload(req);
        let done = Arc::new(AtomicBool::new(false));
        let cancelled = Arc::new(AtomicBool::new(false));
        let mut s = self.lock();
        let mut tag = s.next_tag;
        while tag == 0 || s.workers.contains_key(&tag) {
            tag = tag.wrapping_add(1);
        }
        s.next_tag = tag.wrapping_add(1);
        let thread = {
            let done = Arc::clone(&done);
            let cancelled = Arc::clone(&cancelled);
            std::thread::Builder::new()
                .name("vchiq-ioctl".into())
                .spawn(move || {
                    let pieces = [bytes.as_slice()];
                    let req = Request {
                        op,
                        arg,
                        payload: &pieces,
                        fd: None,
                        bulk: None,
                        flags: 0,
                    };
                    let reply = if cancelled.load(Ordering::Acquire) {
                        Ok(response(Err(libc::EINTR), Vec::new()))
                    } else {
                        execute(&file, &req, Some(&cancelled))
                    };
                    drop(file);
                    done.store(true, Ordering::Release);
                    let _ = reply_to.send((tag, reply));
                })?
        };
        s.workers.insert(
            tag,
            Worker {
                thread,
                done,
                cancelled,
            },
        );
        Ok(tag)
    }

    fn cancel(&self, tag: u32) {
        let Some(worker) = self.lock().workers.remove(&tag) else {
            return;
        };
        worker.cancelled.store(true, Ordering::Release);
        // The signal may land before the worker enters the ioctl: repeat until it is out.
        while !worker.done.load(Ordering::Acquire) {
            raw::interrupt(&worker.thread);
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = worker.thread.join();
    }

    fn close(&self) {
        let (file, workers) = {
            let mut s = self.lock();
            (s.file.take(), std::mem::take(&mut s.workers))
        };
        drop(file);
        // Finished workers are joined; one still blocked in an ioctl is left to end on its
        // own (its reply goes to a receiver that may be gone).
        for (_, w) in workers {
            if w.done.load(Ordering::Acquire) {
                let _ = w.thread.join();
            }
        }
    }
}

impl Drop for NativeTransport {
    fn drop(&mut self) {
        self.close();
    }
}
