//! The event-driven data path, spoken by hand over the daemon's socket: posted messages
//! (answered only on failure, in order through quota stalls), batch dequeues, parked waits
//! and their cancellation, and the flags the daemon refuses.

mod common;

use std::time::Duration;

use common::raw::*;
use common::*;
use vchiq_abi::wire::{self, Op};
use zerocopy::{FromBytes, IntoBytes};

/// `MSG_ECHO` of the echo service: the whole message comes back.
const MSG_ECHO: u32 = 5;

fn posted(tag: u32, op: Op) -> wire::RequestHeader {
    wire::RequestHeader {
        flags: wire::REQUEST_POSTED,
        ..req(tag, op, 0)
    }
}

fn message(handle: u32, body: &[u8]) -> Vec<u8> {
    let mut p = wire::QueueMessageRequest { handle, count: 1 }
        .as_bytes()
        .to_vec();
    p.extend_from_slice(&(body.len() as u32).to_le_bytes());
    p.extend_from_slice(body);
    p
}

fn echo_body(seq: u32) -> Vec<u8> {
    let mut b = MSG_ECHO.to_le_bytes().to_vec();
    b.extend_from_slice(&seq.to_le_bytes());
    // Sizes vary, so that slots fill unevenly and wrap.
    b.extend(std::iter::repeat_n(seq as u8, (seq % 200) as usize));
    b
}

/// A batch DEQUEUE_MESSAGE (blocking): the messages it carried.
fn dequeue_batch(sock: &std::os::fd::OwnedFd, tag: u32, handle: u32) -> Vec<Vec<u8>> {
    let d = wire::DequeueRequest {
        handle,
        blocking: 1,
        bufsize: 4088,
        null_buf: 0,
    };
    let hdr = wire::RequestHeader {
        flags: wire::REQUEST_BATCH,
        ..req(tag, Op::DequeueMessage, 0)
    };
    send(sock, hdr, d.as_bytes(), &[]).expect("send dequeue");
    let (n, payload) = response(sock, tag).expect("dequeue answered");
    assert!(n > 0, "dequeue failed: {n}");
    let mut out = Vec::new();
    let mut rest = &payload[..];
    for _ in 0..n {
        let size = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        out.push(rest[4..4 + size].to_vec());
        rest = &rest[4 + size..];
    }
    assert!(rest.is_empty(), "trailing bytes in a batch");
    out
}

#[test]
fn posted_messages_keep_their_order_through_quota_stalls() {
    let d = TestDaemon::start(&[]);
    let sock = connect(&d);
    let h = open_echo(&sock);
    // Far more than the service's quota and the link's slots hold: the daemon stalls the
    // connection until the VideoCore recycles, and this client's sends block meanwhile,
    // so a reader drains the echoes on the side.
    const N: u32 = 3000;
    let reader = {
        let sock = sock.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut tag = 1000;
            while got.len() < N as usize {
                tag += 1;
                got.extend(dequeue_batch(&sock, tag, h));
            }
            got
        })
    };
    for seq in 0..N {
        send(
            &sock,
            posted(u32::MAX, Op::QueueMessage),
            &message(h, &echo_body(seq)),
            &[],
        )
        .expect("posted send");
    }
    let got = reader.join().expect("reader");
    assert_eq!(got.len(), N as usize);
    for (seq, m) in got.iter().enumerate() {
        assert_eq!(m, &echo_body(seq as u32), "echo {seq} lost or out of order");
    }
    // Fewer batches than messages: dequeues took several at a time (not asserted as a
    // number, which depends on timing).
}

#[test]
fn a_posted_failure_is_answered_with_the_handle() {
    let d = TestDaemon::start(&[]);
    let sock = connect(&d);
    let h = open_echo(&sock);
    // Success: no answer. Failure (an unknown handle): the errno and the handle.
    send(
        &sock,
        posted(77, Op::QueueMessage),
        &message(h, &echo_body(1)),
        &[],
    )
    .unwrap();
    send(
        &sock,
        posted(78, Op::QueueMessage),
        &message(h + 100, &echo_body(2)),
        &[],
    )
    .unwrap();
    let (result, payload) = response(&sock, 78).expect("the failure is answered");
    assert_eq!(result, -i64::from(libc::EINVAL));
    assert_eq!(payload, (h + 100).to_le_bytes());
    // The successful one's echo arrives; its request got no answer of its own (the next
    // answer on the socket is the dequeue's).
    let got = dequeue_batch(&sock, 79, h);
    assert_eq!(got, [echo_body(1)]);
}

#[test]
fn cancel_answers_a_parked_wait_at_once() {
    let d = TestDaemon::start(&[]);
    let sock = connect(&d);
    let h = open_echo(&sock);
    let dq = wire::DequeueRequest {
        handle: h,
        blocking: 1,
        bufsize: 4088,
        null_buf: 0,
    };
    send(&sock, req(50, Op::DequeueMessage, 0), dq.as_bytes(), &[]).unwrap();
    // Parked: nothing comes back until it is cancelled.
    std::thread::sleep(Duration::from_millis(100));
    send(&sock, req(51, Op::Cancel, 50), &[], &[]).unwrap();
    let (result, _) = response(&sock, 50).expect("the parked dequeue is answered");
    assert_eq!(result, -i64::from(libc::EINTR));
    // The connection still serves.
    assert_eq!(
        call(&sock, 52, Op::GetClientId, u64::from(h), &[]).map(|r| r > 0),
        Some(true)
    );
}

#[test]
fn flags_on_other_requests_are_refused() {
    let d = TestDaemon::start(&[]);
    let sock = connect(&d);
    let h = open_echo(&sock);
    for (flags, op) in [
        (wire::REQUEST_POSTED, Op::GetClientId),
        (wire::REQUEST_BATCH, Op::QueueMessage),
        (8, Op::GetClientId),
    ] {
        let hdr = wire::RequestHeader {
            flags,
            ..req(60, op, u64::from(h))
        };
        send(&sock, hdr, &[], &[]).unwrap();
        let (result, _) = response(&sock, 60).expect("answered");
        assert_eq!(
            result,
            -i64::from(libc::EINVAL),
            "flags {flags:#x} on {op:?}"
        );
    }
}

#[test]
fn a_blocking_bulk_is_parked_and_cancel_keeps_its_waiter() {
    let d = TestDaemon::start(&[]);
    let sock = connect(&d);
    let h = open_echo(&sock);
    // echo never transmits unprompted: a BLOCKING (1) receive waits (parked, no thread).
    let bulk = |mode: u32| wire::BulkRequest {
        handle: h,
        size: 4096,
        userdata: 9,
        mode,
        thread: 4242,
    };
    let buf = vchiqd::sys::sealed_memfd(&[], 4096, libc::F_SEAL_SHRINK).unwrap();
    send(
        &sock,
        req(70, Op::QueueBulkReceive, 0),
        bulk(1).as_bytes(),
        &[&buf],
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    send(&sock, req(71, Op::Cancel, 70), &[], &[]).unwrap();
    // Interrupted as the kernel does it: EINTR, and the struct now says WAITING.
    let (result, payload) = response(&sock, 70).expect("the cancelled bulk is answered");
    assert_eq!(result, -i64::from(libc::EINTR));
    let back = wire::BulkResponse::read_from_prefix(&payload).unwrap().0;
    assert_eq!(back.mode, 3, "BulkMode::Waiting");
    // WAITING resumes the same wait (nothing saved for another thread: ESRCH).
    let other = wire::BulkRequest {
        thread: 1,
        ..bulk(3)
    };
    send(
        &sock,
        req(72, Op::QueueBulkReceive, 0),
        other.as_bytes(),
        &[],
    )
    .unwrap();
    assert_eq!(
        response(&sock, 72).map(|r| r.0),
        Some(-i64::from(libc::ESRCH))
    );
    send(
        &sock,
        req(73, Op::QueueBulkReceive, 0),
        bulk(3).as_bytes(),
        &[],
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    send(&sock, req(74, Op::Cancel, 73), &[], &[]).unwrap();
    assert_eq!(
        response(&sock, 73).map(|r| r.0),
        Some(-i64::from(libc::EINTR))
    );
    // The connection still serves.
    assert_eq!(
        call(&sock, 75, Op::GetClientId, u64::from(h), &[]).map(|r| r > 0),
        Some(true)
    );
}

/// The daemon's instance count, from its STATUS dump.
fn instances(sock: &std::os::fd::OwnedFd) -> usize {
    send(sock, req(90, Op::Status, 0), &[], &[]).unwrap();
    let (_, text) = response(sock, 90).expect("status");
    let text = String::from_utf8_lossy(&text).into_owned();
    text.split(" instance(s)")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no instance count in {text}"))
}

#[test]
fn a_client_that_dies_mid_stream_leaves_nothing_behind() {
    let d = TestDaemon::start(&[]);
    let watcher = connect(&d);
    let before = instances(&watcher);
    let sock = connect(&d);
    let h = open_echo(&sock);
    assert_eq!(instances(&watcher), before + 1);
    // Posts far more than the quota and reads nothing: the connection stalls, the replies
    // pile up; then the client vanishes with its socket.
    let writer = {
        let sock = sock.try_clone().unwrap();
        std::thread::spawn(move || {
            for seq in 0..20_000u32 {
                let m = message(h, &echo_body(seq));
                if send(&sock, posted(u32::MAX, Op::QueueMessage), &m, &[]).is_err() {
                    break;
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    vchiqd::sys::shutdown_socket(std::os::fd::AsFd::as_fd(&sock));
    drop(sock);
    writer.join().unwrap();
    // The instance is released, and the daemon serves the others.
    let t0 = std::time::Instant::now();
    while instances(&watcher) != before {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the dead client's instance stayed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, out, err) = d.run(&["gencmd", "measure_temp"], Duration::from_secs(20));
    assert_eq!(code, Some(0), "gencmd after the dead client: {out} {err}");
    let again = connect(&d);
    let h2 = open_echo(&again);
    send(
        &again,
        posted(u32::MAX, Op::QueueMessage),
        &message(h2, &echo_body(5)),
        &[],
    )
    .unwrap();
    assert_eq!(dequeue_batch(&again, 91, h2), [echo_body(5)]);
}

/// The abuser's `queued N B (M claimed)` in `vchiq status`.
fn queued_of(d: &TestDaemon, client_id: i64) -> (u64, u64) {
    let (_, status, _) = d.run(&["status"], Duration::from_secs(20));
    let line = status
        .lines()
        .find(|l| l.contains(&format!("client_id {client_id} ")))
        .unwrap_or_else(|| panic!("no instance of {client_id}: {status}"));
    let q = line.split("queued ").nth(1).expect("queued field");
    let bytes = q.split(' ').next().unwrap().parse().unwrap();
    let claimed = q
        .split('(')
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (bytes, claimed)
}

/// A client that sends and never reads its replies: it may not pin the link's slots (the
/// others keep being served), and past its byte budget its sends fail with ENOBUFS until it
/// reads.
#[test]
fn a_client_that_never_reads_cannot_stall_the_link_or_grow_the_daemon() {
    let d = TestDaemon::start(&["--max-queued-bytes-per-client", "65536"]);
    let sock = connect(&d);
    let h = open_echo(&sock);
    let me = call(&sock, 5, Op::GetClientId, u64::from(h), &[]).unwrap();
    let body = {
        let mut b = MSG_ECHO.to_le_bytes().to_vec();
        b.resize(4000, 0x5a);
        b
    };
    let mut refused = false;
    for i in 0..400u32 {
        let r = call(&sock, 100 + i, Op::QueueMessage, 0, &message(h, &body)).expect("answered");
        if r == -i64::from(libc::ENOBUFS) {
            refused = true;
            break;
        }
        assert_eq!(r, 0, "send {i}");
        if i % 8 == 7 {
            // Let the echoes arrive, so that the budget sees them.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(
        refused,
        "400 × 4000 bytes never read, yet every send was accepted (queued {:?})",
        queued_of(&d, me)
    );
    let (bytes, claimed) = queued_of(&d, me);
    assert!(
        bytes > 65536 && bytes < 65536 + 64 * 4096,
        "queued {bytes} B"
    );
    assert!(claimed <= 8, "{claimed} messages pin link slots");
    // The link still flows for everyone else.
    for _ in 0..20 {
        let (code, out, err) = d.run(&["gencmd", "measure_temp"], Duration::from_secs(20));
        assert_eq!(
            code,
            Some(0),
            "another client while one never reads: {out}{err}"
        );
    }
    // Once it reads, it may send again.
    let mut got = 0;
    loop {
        let dq = wire::DequeueRequest {
            handle: h,
            blocking: 0,
            bufsize: 4088,
            null_buf: 0,
        };
        let hdr = wire::RequestHeader {
            flags: wire::REQUEST_BATCH,
            ..req(9000 + got, Op::DequeueMessage, 0)
        };
        send(&sock, hdr, dq.as_bytes(), &[]).unwrap();
        let (n, _) = response(&sock, 9000 + got).expect("dequeue answered");
        if n <= 0 {
            break;
        }
        got += n as u32;
    }
    assert!(got >= 16, "its echoes were all kept: {got}");
    assert_eq!(queued_of(&d, me), (0, 0));
    assert_eq!(
        call(&sock, 20_000, Op::QueueMessage, 0, &message(h, &body)),
        Some(0)
    );
}
