//! Tests against a fake daemon: a thread on the other end of a `SOCK_SEQPACKET`
//! socketpair that speaks `vchiq_abi::wire`, scripted per test.

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{Receiver, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::fs::SealFlags;
use vchiq_abi::common::{Config, DRIVER_CONFIG, Header};
use vchiq_abi::enums::{BulkMode, Reason};
use vchiq_abi::fourcc::FourCc;
use vchiq_abi::wire::{
    AwaitRequest, AwaitResponse, BulkRequest, BulkResponse, CompletionRecord, CreateServiceRequest,
    DequeueRequest, HelloRequest, HelloResponse, NO_MESSAGE, Op, PROTOCOL_VERSION,
    QueueMessageRequest, REQUEST_BATCH, REQUEST_INLINE, REQUEST_MAGIC, REQUEST_POSTED,
    RESPONSE_MAGIC, RequestHeader, ResponseHeader,
};
use zerocopy::{FromBytes, IntoBytes};

use crate::{Error, Event, Handler, Instance, Service, ServiceParams, sys};

const CLIENT_ID: u32 = 4242;
const ECHO: FourCc = FourCc::new(b"echo");

/// One request as the fake daemon received it.
struct Req {
    tag: u32,
    op: Op,
    flags: u32,
    arg: u64,
    payload: Vec<u8>,
    fd: Option<OwnedFd>,
}

impl Req {
    fn parse<T: FromBytes>(&self) -> T {
        T::read_from_prefix(&self.payload)
            .expect("payload too short")
            .0
    }
}

/// A completion the fake daemon produces.
struct Completion<'a> {
    reason: Reason,
    service_userdata: u64,
    bulk_userdata: u64,
    message: Option<&'a [u8]>,
}

fn comp(reason: Reason, service_userdata: u64) -> Completion<'static> {
    Completion {
        reason,
        service_userdata,
        bulk_userdata: 0,
        message: None,
    }
}

struct Fake {
    sock: OwnedFd,
    /// Non-AWAIT requests received while looking for an AWAIT.
    stash: VecDeque<Req>,
    /// AWAIT requests not answered yet.
    awaits: VecDeque<Req>,
}

impl Fake {
    fn new(sock: OwnedFd) -> Fake {
        // A bug must fail the test, not hang it.
        rustix::net::sockopt::set_socket_timeout(
            &sock,
            rustix::net::sockopt::Timeout::Recv,
            Some(Duration::from_secs(30)),
        )
        .unwrap();
        Fake {
            sock,
            stash: VecDeque::new(),
            awaits: VecDeque::new(),
        }
    }

    /// The next frame; `None` on EOF.
    fn recv_raw(&mut self) -> Option<Req> {
        let mut buf = vec![0u8; 64 * 1024];
        let got = sys::recv_frame(self.sock.as_fd(), &mut buf)
            .expect("fake daemon: recv failed (timeout?)");
        if got.len == 0 {
            return None;
        }
        let (h, payload) = RequestHeader::read_from_prefix(&buf[..got.len]).unwrap();
        assert_eq!(h.magic, REQUEST_MAGIC);
        let mut fds = got.fds;
        assert!(fds.len() <= 1);
        Some(Req {
            tag: h.tag,
            op: Op::from_u32(h.op).expect("known op"),
            flags: h.flags,
            arg: h.arg,
            payload: payload.to_vec(),
            fd: fds.pop(),
        })
    }

    /// The next non-AWAIT request (AWAITs are kept for `complete`).
    fn next(&mut self) -> Req {
        if let Some(r) = self.stash.pop_front() {
            return r;
        }
        loop {
            let r = self.recv_raw().expect("unexpected EOF");
            if r.op == Op::AwaitCompletion {
                self.awaits.push_back(r);
            } else {
                return r;
            }
        }
    }

    fn expect(&mut self, op: Op) -> Req {
        let r = self.next();
        assert_eq!(r.op, op, "expected {}, got {}", op.name(), r.op.name());
        r
    }

    fn expect_value(&mut self, op: Op, arg: u64) -> Req {
        let r = self.expect(op);
        assert_eq!(r.arg, arg, "{} arg", op.name());
        r
    }

    fn reply(&self, tag: u32, result: i64, payload: &[u8]) {
        let h = ResponseHeader {
            magic: RESPONSE_MAGIC,
            tag,
            result,
        };
        sys::send_frame(self.sock.as_fd(), &[h.as_bytes(), payload], None).unwrap();
    }

    fn ok(&self, r: &Req) {
        self.reply(r.tag, 0, &[]);
    }

    /// The oldest unanswered AWAIT_COMPLETION (waiting for one if needed).
    fn take_await(&mut self) -> Req {
        if let Some(r) = self.awaits.pop_front() {
            return r;
        }
        loop {
            let r = self.recv_raw().expect("unexpected EOF");
            if r.op == Op::AwaitCompletion {
                return r;
            }
            self.stash.push_back(r);
        }
    }

    /// Answers the next AWAIT with `records`; returns what it asked for and the
    /// msgbufcount written back.
    fn complete(&mut self, records: &[Completion<'_>]) -> (AwaitRequest, u32) {
        let r = self.take_await();
        let req: AwaitRequest = r.parse();
        let messages = records.iter().filter(|c| c.message.is_some()).count() as u32;
        let left = req.msgbufcount - messages;
        let mut out = AwaitResponse {
            msgbufcount: left,
            _pad: 0,
        }
        .as_bytes()
        .to_vec();
        for c in records {
            let rec = CompletionRecord {
                reason: c.reason.raw(),
                msg_size: c.message.map_or(NO_MESSAGE, |m| 8 + m.len() as u32),
                service_userdata: c.service_userdata,
                bulk_userdata: c.bulk_userdata,
            };
            out.extend_from_slice(rec.as_bytes());
        }
        for m in records.iter().filter_map(|c| c.message) {
            let h = Header {
                msgid: 0x4000_0000 | (3 << 24) | (5 << 12) | 1,
                size: m.len() as u32,
            };
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(m);
        }
        self.reply(r.tag, records.len() as i64, &out);
        (req, left)
    }

    /// HELLO, GET_CONFIG, LIB_VERSION (if the config has it), CONNECT.
    fn handshake(&mut self, config: Config) {
        let r = self.expect(Op::Hello);
        let hello: HelloRequest = r.parse();
        assert_eq!(hello.version, PROTOCOL_VERSION);
        let resp = HelloResponse {
            version: PROTOCOL_VERSION,
            client_id: CLIENT_ID,
            instance: 7,
            uid: 1000,
            pid_namespace: 0xabc,
        };
        self.reply(r.tag, 0, resp.as_bytes());
        let r = self.expect_value(Op::GetConfig, 20);
        self.reply(r.tag, 0, config.as_bytes());
        if config.version < 3 || config.version_min > 8 {
            return;
        }
        if config.version >= 7 {
            let r = self.expect_value(Op::LibVersion, 8);
            self.ok(&r);
        }
        let r = self.expect(Op::Connect);
        self.ok(&r);
    }

    /// CREATE_SERVICE: checks it and answers `handle`; returns the request.
    fn create(&mut self, is_open: bool, is_vchi: bool, handle: u32) -> CreateServiceRequest {
        let r = self.expect(Op::CreateService);
        let c: CreateServiceRequest = r.parse();
        assert_eq!(
            (c.is_open, c.is_vchi),
            (u32::from(is_open), u32::from(is_vchi))
        );
        assert_ne!(c.userdata, 0);
        self.reply(r.tag, i64::from(handle), &[]);
        c
    }

    /// The orderly end: REMOVE of `handles`, SHUTDOWN, the last AWAIT answered 0, EOF.
    fn finish(mut self, handles: &[u32]) {
        for &h in handles {
            let r = self.expect_value(Op::RemoveService, u64::from(h));
            self.ok(&r);
        }
        let r = self.expect(Op::Shutdown);
        self.ok(&r);
        let a = self.take_await();
        self.reply(a.tag, 0, AwaitResponse::default().as_bytes());
        assert!(self.stash.is_empty() && self.awaits.is_empty());
        assert!(self.recv_raw().is_none(), "expected EOF after shutdown");
    }
}

/// A client socket and a fake daemon thread running `script` on the other end.
fn fake(script: impl FnOnce(Fake) + Send + 'static) -> (OwnedFd, JoinHandle<()>) {
    let (client, server) = sys::seqpacket_pair().unwrap();
    let t = std::thread::Builder::new()
        .name("fake-vchiqd".into())
        .spawn(move || script(Fake::new(server)))
        .unwrap();
    (client, t)
}

fn connect(script: impl FnOnce(Fake) + Send + 'static) -> (Instance, JoinHandle<()>) {
    let (sock, t) = fake(script);
    (
        Instance::from_socket(sock, "/test/vchiq.sock").expect("connect"),
        t,
    )
}

fn join(t: JoinHandle<()>) {
    if let Err(p) = t.join() {
        std::panic::resume_unwind(p);
    }
}

/// A callback that forwards (handle, event) to a channel.
fn recorder() -> (Handler, Receiver<(u32, Event)>) {
    let (tx, rx) = channel();
    let tx = std::sync::Mutex::new(tx);
    (
        Handler::callback(move |svc: &Service, e| {
            tx.lock().unwrap().send((svc.handle(), e)).unwrap()
        }),
        rx,
    )
}

fn echo() -> ServiceParams {
    ServiceParams::new(ECHO, 3, 2)
}

#[test]
fn handshake_then_orderly_shutdown() {
    let (inst, t) = connect(|mut f| {
        f.handshake(DRIVER_CONFIG);
        let (req, _) = {
            // Only check the first AWAIT's arguments; answer it at shutdown.
            let a = f.take_await();
            let req: AwaitRequest = a.parse();
            f.awaits.push_front(a);
            (req, 0)
        };
        // Over the socket: 64 records and buffers per AWAIT (8 on a device).
        assert_eq!((req.count, req.msgbufsize, req.msgbufcount), (64, 4096, 64));
        f.finish(&[]);
    });
    assert_eq!(inst.client_id(), CLIENT_ID);
    let h = inst.hello();
    assert_eq!(
        (h.instance, h.uid, h.pid_namespace, h.protocol_version),
        (7, 1000, 0xabc, PROTOCOL_VERSION)
    );
    assert_eq!(inst.socket_path(), std::path::Path::new("/test/vchiq.sock"));
    inst.shutdown().unwrap();
    join(t);
}

#[test]
fn incompatible_driver_is_refused() {
    for (version, version_min) in [(2, 2), (9, 9)] {
        let config = Config {
            version,
            version_min,
            ..DRIVER_CONFIG
        };
        let (sock, t) = fake(move |mut f| {
            f.handshake(config);
            assert!(f.recv_raw().is_none(), "nothing after GET_CONFIG");
        });
        let err = Instance::from_socket(sock, "/test/vchiq.sock").unwrap_err();
        assert!(
            matches!(err, Error::IncompatibleDriver { version: v, version_min: m } if v == version && m == version_min)
        );
        assert!(
            err.to_string()
                .starts_with("incompatible VCHIQ driver: it reports version"),
            "{err}"
        );
        join(t);
    }
}

#[test]
fn old_driver_gets_no_lib_version() {
    // version 6: no LIB_VERSION, hence no close-delivered (`handshake` expects CONNECT next).
    let config = Config {
        version: 6,
        ..DRIVER_CONFIG
    };
    let (inst, t) = connect(move |mut f| {
        f.handshake(config);
        f.finish(&[]);
    });
    drop(inst); // the last clone shuts down
    join(t);
}

#[test]
fn open_service_and_queue_message_frames() {
    let (inst, t) = connect(|mut f| {
        f.handshake(DRIVER_CONFIG);
        let c = f.create(true, false, 0x1001);
        assert_eq!((c.fourcc, c.version, c.version_min), (ECHO.0, 3, 2));
        let r = f.expect(Op::QueueMessage);
        assert_eq!(r.flags, REQUEST_POSTED, "messages are posted");
        let q: QueueMessageRequest = r.parse();
        assert_eq!((q.handle, q.count), (0x1001, 3));
        let sizes: Vec<u32> = r.payload[8..20]
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(sizes, [2, 0, 3]);
        assert_eq!(&r.payload[20..], b"abcde");
        // A posted success is not answered.
        let r = f.expect(Op::QueueMessage);
        assert_eq!(
            &r.payload[8..],
            &[0, 0, 0, 0][..],
            "an empty message is one element of size 0"
        );
        // A posted failure is: the daemon answers with the handle.
        f.reply(r.tag, -i64::from(libc::EIO), &0x1001u32.to_le_bytes());
        let r = f.expect(Op::UseService);
        f.ok(&r);
        // The message after the failure reports it and is not sent.
        f.finish(&[0x1001]);
    });
    let (handler, _rx) = recorder();
    let svc = inst.open_service(echo(), handler).unwrap();
    assert_eq!((svc.handle(), svc.fourcc()), (0x1001, ECHO));
    // Local checks send nothing (the fake would see an unexpected frame).
    let nine = [&b"x"[..]; 9];
    assert!(matches!(
        svc.queue_message_vectored(&nine),
        Err(Error::TooManyElements { count: 9, max: 8 })
    ));
    assert!(matches!(
        svc.queue_message(&[0; 4089]),
        Err(Error::MessageTooLarge {
            size: 4089,
            max: 4088
        })
    ));
    assert!(matches!(
        svc.dequeue(false),
        Err(Error::WrongHandler { .. })
    ));
    svc.queue_message_vectored(&[b"ab", b"", b"cde"]).unwrap();
    svc.queue_message(b"").unwrap();
    // A round trip after the failed message: its answer has been read by then.
    svc.use_service().unwrap();
    let err = svc.queue_message(b"x").unwrap_err();
    assert!(
        matches!(
            err,
            Error::Ioctl {
                op: "QUEUE_MESSAGE",
                errno: libc::EIO
            }
        ),
        "{err:?}"
    );
    inst.shutdown().unwrap();
    join(t);
}

#[test]
fn completions_reach_callbacks_in_order() {
    let (inst, t) = connect(|mut f| {
        f.handshake(DRIVER_CONFIG);
        let a = f.create(true, false, 0x1001).userdata;
        // A server whose SERVICE_OPENED overtakes the CREATE_SERVICE response.
        let r = f.expect(Op::CreateService);
        let b: CreateServiceRequest = r.parse();
        let (req, left) = f.complete(&[comp(Reason::ServiceOpened, b.userdata)]);
        assert_eq!((req.msgbufcount, left), (64, 64));
        f.reply(r.tag, 0x1002, &[]);
        let (req, left) = f.complete(&[
            Completion {
                message: Some(b"one"),
                ..comp(Reason::MessageAvailable, a)
            },
            Completion {
                message: Some(b""),
                ..comp(Reason::MessageAvailable, b.userdata)
            },
            Completion {
                bulk_userdata: 7,
                ..comp(Reason::BulkTransmitDone, a)
            },
            Completion {
                message: Some(b"three"),
                ..comp(Reason::MessageAvailable, a)
            },
            Completion {
                bulk_userdata: 8,
                ..comp(Reason::BulkTransmitAborted, b.userdata)
            },
        ]);
        assert_eq!((req.msgbufcount, left), (64, 61));
        // The three buffers used are replaced before the next AWAIT.
        let a2 = f.take_await();
        assert_eq!(a2.parse::<AwaitRequest>().msgbufcount, 64);
        f.awaits.push_front(a2);
        f.finish(&[0x1001, 0x1002]);
    });
    // Both services report into one channel: the order across services shows.
    let (tx, rx) = channel::<(u32, Event)>();
    let shared = std::sync::Arc::new(std::sync::Mutex::new(tx));
    let handler = |tx: std::sync::Arc<std::sync::Mutex<std::sync::mpsc::Sender<(u32, Event)>>>| {
        Handler::callback(move |svc: &Service, e| {
            tx.lock().unwrap().send((svc.handle(), e)).unwrap()
        })
    };
    let _a = inst.open_service(echo(), handler(shared.clone())).unwrap();
    let _b = inst
        .add_service(
            ServiceParams::new(FourCc::new(b"srv1"), 1, 1),
            handler(shared),
        )
        .unwrap();
    let events: Vec<_> = rx.iter().take(6).collect();
    assert_eq!(
        events,
        [
            (0x1002, Event::Opened), // the callback saw the handle, although it overtook CREATE's answer
            (0x1001, Event::Message(b"one".to_vec())),
            (0x1002, Event::Message(Vec::new())),
            (0x1001, Event::BulkTransmitDone { userdata: 7 }),
            (0x1001, Event::Message(b"three".to_vec())),
            (0x1002, Event::BulkTransmitAborted { userdata: 8 }),
        ]
    );
    drop(inst);
    join(t);
}

#[test]
fn one_callback_sees_driver_order_across_services() {
    let (tx, rx) = channel::<(&'static str, Event)>();
    let (inst, t) = connect(|mut f| {
        f.handshake(DRIVER_CONFIG);
        let a = f.create(true, false, 0x1001).userdata;
        let b = f.create(true, false, 0x1002).userdata;
        f.complete(&[
            Completion {
                message: Some(b"1"),
                ..comp(Reason::MessageAvailable, b)
            },
            Completion {
                message: Some(b"2"),
                ..comp(Reason::MessageAvailable, a)
            },
            Completion {
                message: Some(b"3"),
                ..comp(Reason::MessageAvailable, b)
            },
        ]);
        f.finish(&[0x1001, 0x1002]);
    });
    let tx_a = std::sync::Mutex::new(tx.clone());
    let tx_b = std::sync::Mutex::new(tx);
    let _a = inst
        .open_service(
            echo(),
            Handler::callback(move |_, e| tx_a.lock().unwrap().send(("a", e)).unwrap()),
        )
        .unwrap();
    let _b = inst
        .open_service(
            echo(),
            Handler::callback(move |_, e| tx_b.lock().unwrap().send(("b", e)).unwrap()),
        )
        .unwrap();
    let got: Vec<_> = rx.iter().take(3).collect();
    assert_eq!(
        got,
        [
            ("b", Event::Message(b"1".to_vec())),
            ("a", Event::Message(b"2".to_vec())),
            ("b", Event::Message(b"3".to_vec()))
        ]
    );
    drop(inst);
    join(t);
}

#[test]
fn queue_service_dequeue_and_events() {
    let (inst, t) = connect(|mut f| {
        f.handshake(DRIVER_CONFIG);
        let q = f.create(true, true, 0x2001).userdata;
        let r = f.expect(Op::DequeueMessage);
        let d: DequeueRequest = r.parse();
        assert_eq!(
            (d.handle, d.blocking, d.bufsize, d.null_buf),
            (0x2001, 0, 4088, 0)
        );
        f.reply(r.tag, -i64::from(libc::EAGAIN), &[]);
        // A blocking dequeue stays pending while another call is answered.
        // (The two callers race: take their requests in either order.)
        let (mut x, mut y) = (f.next(), f.next());
        if x.op != Op::DequeueMessage {
            std::mem::swap(&mut x, &mut y);
        }
        let (blocking, r) = (x, y);
        assert_eq!(
            (blocking.op, blocking.parse::<DequeueRequest>().blocking),
            (Op::DequeueMessage, 1)
        );
        assert_eq!(blocking.flags, REQUEST_BATCH, "dequeues take batches");
        assert_eq!((r.op, r.arg), (Op::GetClientId, 0x2001));
        f.reply(r.tag, i64::from(CLIENT_ID), &[]);
        f.complete(&[
            comp(Reason::MessageAvailable, q),
            comp(Reason::ServiceClosed, q),
        ]);
        let r = f.expect_value(Op::CloseDelivered, 0x2001);
        f.ok(&r);
        // A batch of two: each message is a u32 size and its bytes.
        let mut batch = 7u32.to_le_bytes().to_vec();
        batch.extend_from_slice(b"payload");
        batch.extend_from_slice(&6u32.to_le_bytes());
        batch.extend_from_slice(b"second");
        f.reply(blocking.tag, 2, &batch);
        f.finish(&[0x2001]);
    });
    let svc = inst.open_service(echo(), Handler::Queue).unwrap();
    assert!(matches!(svc.dequeue(false), Err(Error::WouldBlock)));
    let s2 = svc.clone();
    let waiter = std::thread::spawn(move || s2.dequeue(true));
    assert_eq!(svc.client_id().unwrap(), CLIENT_ID);
    assert_eq!(svc.wait_event(None).unwrap(), Event::MessageAvailable);
    assert_eq!(svc.wait_event(None).unwrap(), Event::Closed);
    assert_eq!(waiter.join().unwrap().unwrap(), b"payload");
    // The second message of the batch comes without a request (the fake would see one).
    assert_eq!(svc.dequeue(false).unwrap(), b"second");
    assert!(matches!(
        svc.wait_event(Some(Duration::ZERO)),
        Err(Error::Timeout)
    ));
    inst.shutdown().unwrap();
    // Removed at shutdown: no more events will come.
    assert!(matches!(svc.wait_event(None), Err(Error::Closed)));
    join(t);
}

fn check_memfd(fd: &OwnedFd, len: usize) -> File {
    let seals = sys::seals(fd).unwrap();
    assert!(
        seals.contains(SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL),
        "{seals:?}"
    );
    let file = File::from(fd.try_clone().unwrap());
    assert_eq!(file.metadata().unwrap().len(), len as u64);
    file
}

#[test]
fn bulk_transmit_sends_a_sealed_memfd() {
    let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let expect = data.clone();
    let (inst, t) = connect(move |mut f| {
        f.handshake(DRIVER_CONFIG);
        f.create(true, false, 0x1001);
        let r = f.expect(Op::QueueBulkTransmit);
        let b: BulkRequest = r.parse();
        assert_eq!(
            (b.handle, b.size, b.userdata, b.mode),
            (0x1001, 10_000, 5, BulkMode::Blocking.raw())
        );
        assert_ne!(b.thread, 0);
        let file = check_memfd(r.fd.as_ref().expect("memfd"), 10_000);
        let mut got = vec![0u8; 10_000];
        file.read_exact_at(&mut got, 0).unwrap();
        assert_eq!(got, expect);
        // Interrupted: the daemon writes WAITING back; the library resumes without a memfd.
        f.reply(
            r.tag,
            -i64::from(libc::EINTR),
            BulkResponse {
                mode: BulkMode::Waiting.raw(),
                _pad: 0,
            }
            .as_bytes(),
        );
        let r2 = f.expect(Op::QueueBulkTransmit);
        let b2: BulkRequest = r2.parse();
        assert_eq!(
            (b2.mode, b2.thread, b2.size),
            (BulkMode::Waiting.raw(), b.thread, 10_000)
        );
        assert!(r2.fd.is_none());
        f.ok(&r2);
        // A small NOCALLBACK transmit travels in the request, posted (no answer).
        let r = f.expect(Op::QueueBulkTransmit);
        assert_eq!(r.parse::<BulkRequest>().mode, BulkMode::NoCallback.raw());
        assert!(r.fd.is_none());
        assert_eq!(r.flags, REQUEST_INLINE | REQUEST_POSTED);
        assert_eq!(&r.payload[size_of::<BulkRequest>()..], b"x");
        f.finish(&[0x1001]);
    });
    let (handler, _rx) = recorder();
    let svc = inst.open_service(echo(), handler).unwrap();
    svc.bulk_transmit(&data, BulkMode::Blocking, 5).unwrap();
    svc.bulk_transmit(b"x", BulkMode::NoCallback, 6).unwrap();
    assert!(matches!(
        svc.bulk_transmit(b"x", BulkMode::Waiting, 0),
        Err(Error::InvalidBulkMode)
    ));
    inst.shutdown().unwrap();
    join(t);
}

#[test]
fn bulk_receive_reads_the_memfd() {
    let (inst, t) = connect(|mut f| {
        f.handshake(DRIVER_CONFIG);
        let a = f.create(true, false, 0x1001).userdata;
        // BLOCKING: filled before the answer.
        let r = f.expect(Op::QueueBulkReceive);
        assert_eq!(r.parse::<BulkRequest>().mode, BulkMode::Blocking.raw());
        check_memfd(r.fd.as_ref().unwrap(), 4)
            .write_all_at(b"blk!", 0)
            .unwrap();
        f.ok(&r);
        // CALLBACK: two receives, filled after the answers, completed in order.
        let mut files = Vec::new();
        for ud in [99, 100] {
            let r = f.expect(Op::QueueBulkReceive);
            let b: BulkRequest = r.parse();
            assert_eq!(
                (b.size, b.userdata, b.mode),
                (16, ud, BulkMode::Callback.raw())
            );
            files.push(check_memfd(r.fd.as_ref().unwrap(), 16));
            f.ok(&r);
        }
        files[0].write_all_at(b"0123456789abcdef", 0).unwrap();
        f.complete(&[
            Completion {
                bulk_userdata: 99,
                ..comp(Reason::BulkReceiveDone, a)
            },
            Completion {
                bulk_userdata: 100,
                ..comp(Reason::BulkReceiveAborted, a)
            },
        ]);
        f.finish(&[0x1001]);
    });
    let (handler, rx) = recorder();
    let svc = inst.open_service(echo(), handler).unwrap();
    assert_eq!(
        svc.bulk_receive(4, BulkMode::Blocking, 1)
            .unwrap()
            .as_deref(),
        Some(&b"blk!"[..])
    );
    assert_eq!(svc.bulk_receive(16, BulkMode::Callback, 99).unwrap(), None);
    assert_eq!(svc.bulk_receive(16, BulkMode::Callback, 100).unwrap(), None);
    let events: Vec<_> = rx.iter().take(2).map(|(_, e)| e).collect();
    assert_eq!(
        events,
        [
            Event::BulkReceiveDone {
                userdata: 99,
                data: b"0123456789abcdef".to_vec()
            },
            Event::BulkReceiveAborted { userdata: 100 },
        ]
    );
    assert!(
        svc.inner.lock().rx_bulks.is_empty(),
        "memfds released after completion"
    );
    inst.shutdown().unwrap();
    join(t);
}

#[test]
fn close_waits_for_close_delivered() {
    let (inst, t) = connect(|mut f| {
        f.handshake(DRIVER_CONFIG);
        let a = f.create(true, false, 0x1001).userdata;
        let close = f.expect_value(Op::CloseService, 0x1001);
        f.complete(&[comp(Reason::ServiceClosed, a)]);
        let r = f.expect_value(Op::CloseDelivered, 0x1001);
        f.ok(&r);
        f.ok(&close);
        f.finish(&[]); // a closed client is forgotten: no REMOVE
    });
    let (handler, rx) = recorder();
    let svc = inst.open_service(echo(), handler).unwrap();
    svc.close().unwrap();
    assert_eq!(
        rx.try_recv().unwrap(),
        (0x1001, Event::Closed),
        "delivered before close returned"
    );
    assert!(matches!(
        svc.queue_message(b"x"),
        Err(Error::InvalidService { handle: 0x1001 })
    ));
    inst.shutdown().unwrap();
    join(t);
}

#[test]
fn close_from_inside_a_callback() {
    let (inst, t) = connect(|mut f| {
        f.handshake(DRIVER_CONFIG);
        let a = f.create(true, false, 0x1001).userdata;
        f.complete(&[Completion {
            message: Some(b"bye"),
            ..comp(Reason::MessageAvailable, a)
        }]);
        // The callback closes: CLOSE is held until CLOSE_DELIVERED, which the completion
        // thread sends from its own AWAIT while the callback waits.
        let close = f.expect_value(Op::CloseService, 0x1001);
        f.complete(&[comp(Reason::ServiceClosed, a)]);
        let r = f.expect_value(Op::CloseDelivered, 0x1001);
        f.ok(&r);
        let nested = f.take_await();
        f.ok(&close);
        let cancel = f.expect_value(Op::Cancel, u64::from(nested.tag));
        assert_ne!(cancel.tag, nested.tag);
        f.reply(nested.tag, -i64::from(libc::EINTR), &[]);
        // Closed is dispatched after the callback returns, without a second
        // CLOSE_DELIVERED: the next request is SHUTDOWN.
        f.finish(&[]);
    });
    let (tx, rx) = channel();
    let tx = std::sync::Mutex::new(tx);
    let handler = Handler::callback(move |svc: &Service, e| {
        let closing = matches!(e, Event::Message(_));
        tx.lock().unwrap().send(Ok(e)).unwrap();
        if closing {
            tx.lock()
                .unwrap()
                .send(svc.close().map(|()| Event::Opened))
                .unwrap();
        }
    });
    let _svc = inst.open_service(echo(), handler).unwrap();
    let got: Vec<_> = rx.iter().take(3).map(|r| r.unwrap()).collect();
    // Message, then close() returned Ok (shown as Opened), then the Closed event.
    assert_eq!(
        got,
        [
            Event::Message(b"bye".to_vec()),
            Event::Opened,
            Event::Closed
        ]
    );
    inst.shutdown().unwrap();
    join(t);
}

#[test]
fn daemon_eof_fails_pending_and_later_calls() {
    let (inst, t) = connect(|mut f| {
        f.handshake(DRIVER_CONFIG);
        f.create(true, true, 0x2001);
        f.expect(Op::DequeueMessage);
        // Hang up with the DEQUEUE and the AWAIT pending.
    });
    let svc = inst.open_service(echo(), Handler::Queue).unwrap();
    let err = svc.dequeue(true).unwrap_err();
    assert!(matches!(err, Error::Closed), "{err:?}");
    assert_eq!(
        err.to_string(),
        "vchiqd closed the connection (daemon stopped or VideoCore lost); reconnect once it is back"
    );
    assert!(matches!(svc.queue_message(b"x"), Err(Error::Closed)));
    assert!(matches!(inst.status(), Err(Error::Closed)));
    assert!(matches!(svc.wait_event(None), Err(Error::Closed)));
    join(t);
    drop(inst); // shutdown against a dead daemon does not hang
}

#[test]
fn missing_socket_says_start_the_daemon() {
    let err = Instance::connect_to("/nonexistent-vchiq-dir/vchiq.sock").unwrap_err();
    assert!(matches!(err, Error::DaemonNotRunning { .. }));
    assert_eq!(
        err.to_string(),
        "vchiqd is not running at /nonexistent-vchiq-dir/vchiq.sock (connect: No such file or directory); \
         start it with 'vchiq daemon'"
    );
}

#[test]
fn connect_to_a_listening_socket() {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let dir = std::env::temp_dir().join(format!("vchiq-client-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vchiq.sock");
    let _ = std::fs::remove_file(&path);
    let listener = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    rustix::net::bind(&listener, &SocketAddrUnix::new(&path).unwrap()).unwrap();
    rustix::net::listen(&listener, 1).unwrap();
    let t = std::thread::spawn(move || {
        let mut f = Fake::new(rustix::net::accept(&listener).unwrap());
        f.handshake(DRIVER_CONFIG);
        let r = f.expect(Op::Status);
        f.reply(r.tag, 0, b"Instance 7: pid 4242\n");
        f.finish(&[]);
    });
    let inst = Instance::connect_to(&path).unwrap();
    assert_eq!(inst.socket_path(), path);
    assert_eq!(inst.status().unwrap(), "Instance 7: pid 4242\n");
    inst.shutdown().unwrap();
    join(t);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn last_instance_dropped_inside_a_callback() {
    let (go_tx, go_rx) = channel::<()>();
    let (inst, t) = connect(move |mut f| {
        f.handshake(DRIVER_CONFIG);
        let a = f.create(true, false, 0x1001).userdata;
        go_rx.recv().unwrap(); // the callback holds the last clone now
        f.complete(&[Completion {
            message: Some(b"go"),
            ..comp(Reason::MessageAvailable, a)
        }]);
        // Shutdown runs on the completion thread: REMOVE needs its CLOSE_DELIVERED from
        // the same thread, which pumps completions while it waits.
        let remove = f.expect_value(Op::RemoveService, 0x1001);
        f.complete(&[comp(Reason::ServiceClosed, a)]);
        let r = f.expect_value(Op::CloseDelivered, 0x1001);
        f.ok(&r);
        let nested = f.take_await();
        f.ok(&remove);
        f.expect_value(Op::Cancel, u64::from(nested.tag));
        f.reply(nested.tag, -i64::from(libc::EINTR), &[]);
        let r = f.expect(Op::Shutdown);
        f.ok(&r);
        assert!(f.recv_raw().is_none(), "expected EOF after shutdown");
    });
    let (tx, rx) = channel();
    let tx = std::sync::Mutex::new(tx);
    let keep = std::sync::Arc::new(std::sync::Mutex::new(None::<Instance>));
    let slot = keep.clone();
    let handler = Handler::callback(move |_, e| {
        tx.lock().unwrap().send(e).unwrap();
        drop(slot.lock().unwrap().take()); // the last clone: shuts the instance down here
    });
    let _svc = inst.open_service(echo(), handler).unwrap();
    *keep.lock().unwrap() = Some(inst);
    go_tx.send(()).unwrap();
    let got: Vec<_> = rx.iter().take(2).collect();
    assert_eq!(got, [Event::Message(b"go".to_vec()), Event::Closed]);
    join(t);
}

#[test]
fn open_device_without_a_device_says_what_to_do() {
    let path = std::env::temp_dir().join(format!("vchiq-no-device-{}", std::process::id()));
    let err = Instance::open_device(&path).unwrap_err();
    assert!(
        matches!(err, crate::Error::DeviceNotFound { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(&*path.to_string_lossy()), "{text}");
    assert!(
        text.contains("--dev-node") && text.contains("VCHIQ_SOCKET"),
        "{text}"
    );
}

#[test]
fn open_device_on_a_file_that_is_not_vchiq_is_refused_cleanly() {
    // /dev/null takes no ioctls: GET_CONFIG fails with ENOTTY, reported as the path.
    let err = Instance::open_device("/dev/null").unwrap_err();
    match &err {
        crate::Error::DeviceOpen { path, source } => {
            assert_eq!(path, std::path::Path::new("/dev/null"));
            assert_eq!(source.raw_os_error(), Some(libc::ENOTTY));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("/dev/null"), "{err}");
}
