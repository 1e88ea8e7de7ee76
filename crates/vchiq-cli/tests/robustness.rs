//! Bad input, dead clients and a stopping daemon: never a crash, never a hang, and other
//! clients are unaffected.

mod common;

use std::io::{BufRead, IoSlice};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::raw::*;
use common::*;
use vchiq_abi::wire::{self, Op};
use vchiqd::sys;
use zerocopy::IntoBytes;

fn healthy(d: &TestDaemon) {
    let (code, out, err) = d.run(&["gencmd", "measure_temp"], Duration::from_secs(20));
    assert_eq!(code, Some(0), "gencmd after abuse failed: {out} {err}");
    assert!(out.starts_with("temp="), "{out}");
}

/// Starts `vchiq probe-bulk` (4 MiB fun2 round trips in a loop) and waits until it is
/// transferring; returns the process and its client id.
fn start_probe_bulk(d: &TestDaemon) -> (std::process::Child, u32) {
    let mut probe = d
        .cmd(&["probe-bulk"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = lines(&mut probe);
    let keys = read_keys(&mut out, 1);
    let id: u32 = keys["client_id"].parse().unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    (probe, id)
}

/// Waits for a child to exit, failing the test if it takes longer than `limit`.
fn wait_exit(
    child: &mut std::process::Child,
    limit: Duration,
    what: &str,
) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(t0.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const EINVAL: i64 = -(libc::EINVAL as i64);

#[test]
fn malformed_frames_close_only_that_connection() {
    let d = TestDaemon::start(&[]);
    // A well-behaved client with an open service, kept through all of this.
    let good = connect(&d);
    let echo = open_echo(&good);

    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..40 {
        let s = connect(&d);
        let len = (seed % 200) as usize;
        let mut junk = vec![0u8; len];
        for b in junk.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
        if round % 3 == 0 && len >= 4 {
            // A valid magic with garbage after it.
            junk[..4].copy_from_slice(&wire::REQUEST_MAGIC.to_le_bytes());
        }
        let _ = sys::send_with_fds(s.as_fd(), &[IoSlice::new(&junk)], &[]);
        drop(s);
    }
    // A truncated header, an oversized frame, and a frame with an unknown op.
    let s = connect(&d);
    let _ = sys::send_with_fds(s.as_fd(), &[IoSlice::new(&[1, 2, 3])], &[]);
    assert!(
        response(&s, 0).is_none(),
        "a short frame must close the connection"
    );
    let s = connect(&d);
    let big = vec![0u8; wire::MAX_REQUEST + 100];
    let _ = send(&s, req(9, Op::Status, 0), &big, &[]);
    assert!(
        response(&s, 9).is_none(),
        "an oversized frame must close the connection"
    );
    let s = connect(&d);
    let mut h = req(5, Op::Connect, 0);
    h.op = 0x7777;
    send(&s, h, &[], &[]).unwrap();
    assert_eq!(response(&s, 5).map(|r| r.0), Some(-(libc::ENOTTY as i64)));

    // The good client still works.
    let mut msg = 5u32.to_le_bytes().to_vec();
    msg.extend_from_slice(b"still here");
    let mut payload = wire::QueueMessageRequest {
        handle: echo,
        count: 1,
    }
    .as_bytes()
    .to_vec();
    payload.extend_from_slice(&(msg.len() as u32).to_le_bytes());
    payload.extend_from_slice(&msg);
    assert_eq!(call(&good, 20, Op::QueueMessage, 0, &payload), Some(0));
    let deq = wire::DequeueRequest {
        handle: echo,
        blocking: 1,
        bufsize: 4096,
        null_buf: 0,
    };
    send(&good, req(21, Op::DequeueMessage, 0), deq.as_bytes(), &[]).unwrap();
    let (n, data) = response(&good, 21).expect("echo reply");
    assert_eq!(n as usize, msg.len());
    assert_eq!(data, msg);
    healthy(&d);
}

#[test]
fn bad_handles_and_bad_bulk_buffers_get_errors() {
    let d = TestDaemon::start(&[]);
    let a = connect(&d);
    let b = connect(&d);
    let ha = open_echo(&a);
    let _hb = open_echo(&b);
    // Invalid handles.
    for op in [
        Op::RemoveService,
        Op::CloseService,
        Op::UseService,
        Op::ReleaseService,
        Op::CloseDelivered,
    ] {
        assert_eq!(call(&b, 30, op, 0xdead_beef, &[]), Some(EINVAL), "{op:?}");
    }
    assert_eq!(call(&b, 31, Op::GetClientId, 0xdead_beef, &[]), Some(0));
    // Another instance's handle is not ours: EINVAL, and no id leaks.
    assert_eq!(
        call(&b, 32, Op::UseService, u64::from(ha), &[]),
        Some(EINVAL)
    );
    assert_eq!(call(&b, 33, Op::GetClientId, u64::from(ha), &[]), Some(0));
    assert_eq!(
        call(&b, 34, Op::RemoveService, u64::from(ha), &[]),
        Some(EINVAL)
    );
    // A config larger than the struct.
    assert_eq!(call(&b, 35, Op::GetConfig, 21, &[]), Some(EINVAL));
    // A release below zero.
    assert!(call(&a, 36, Op::ReleaseService, u64::from(ha), &[]).is_some());
    // Bulk: a memfd too small, one not sealed, and none at all.
    let bulk = |size: u32| wire::BulkRequest {
        handle: ha,
        size,
        userdata: 1,
        mode: 2,
        thread: 1,
    };
    let small = sys::sealed_memfd(&[0; 16], 16, libc::F_SEAL_SHRINK).unwrap();
    send(
        &a,
        req(40, Op::QueueBulkTransmit, 0),
        bulk(4096).as_bytes(),
        &[&small],
    )
    .unwrap();
    assert_eq!(response(&a, 40).map(|r| r.0), Some(EINVAL));
    let unsealed = sys::sealed_memfd(&[0; 4096], 4096, 0).unwrap();
    send(
        &a,
        req(41, Op::QueueBulkTransmit, 0),
        bulk(4096).as_bytes(),
        &[&unsealed],
    )
    .unwrap();
    assert_eq!(response(&a, 41).map(|r| r.0), Some(EINVAL));
    send(
        &a,
        req(42, Op::QueueBulkReceive, 0),
        bulk(4096).as_bytes(),
        &[],
    )
    .unwrap();
    assert_eq!(response(&a, 42).map(|r| r.0), Some(EINVAL));
    // One instance cannot take more than its share of the bulk arena: receives that the
    // VideoCore never answers (echo does not transmit) stay outstanding; past 16 MiB, ENOMEM.
    let big = |size: u32| wire::BulkRequest {
        handle: ha,
        size,
        userdata: 2,
        mode: 2,
        thread: 1,
    };
    let eight_mib = sys::sealed_memfd(&[], 8 << 20, libc::F_SEAL_SHRINK).unwrap();
    for (tag, expect) in [(50, 0), (51, 0), (52, -(libc::ENOMEM as i64))] {
        send(
            &a,
            req(tag, Op::QueueBulkReceive, 0),
            big(8 << 20).as_bytes(),
            &[&eight_mib],
        )
        .unwrap();
        assert_eq!(
            response(&a, tag).map(|r| r.0),
            Some(expect),
            "receive {tag}"
        );
    }
    let too_big = sys::sealed_memfd(&[], 17 << 20, libc::F_SEAL_SHRINK).unwrap();
    send(
        &a,
        req(53, Op::QueueBulkReceive, 0),
        big(17 << 20).as_bytes(),
        &[&too_big],
    )
    .unwrap();
    assert_eq!(
        response(&a, 53).map(|r| r.0),
        Some(EINVAL),
        "a bulk over 16 MiB"
    );
    // Too many elements.
    let mut payload = wire::QueueMessageRequest {
        handle: ha,
        count: 9,
    }
    .as_bytes()
    .to_vec();
    payload.extend_from_slice(&[0u8; 36]);
    assert_eq!(call(&a, 43, Op::QueueMessage, 0, &payload), Some(EINVAL));
    // A message over 4088 bytes is refused with EIO.
    let mut payload = wire::QueueMessageRequest {
        handle: ha,
        count: 2,
    }
    .as_bytes()
    .to_vec();
    payload.extend_from_slice(&3000u32.to_le_bytes());
    payload.extend_from_slice(&2000u32.to_le_bytes());
    payload.extend_from_slice(&vec![1u8; 5000]);
    assert_eq!(
        call(&a, 44, Op::QueueMessage, 0, &payload),
        Some(-(libc::EIO as i64))
    );
    healthy(&d);
}

#[test]
fn a_client_killed_mid_bulk_leaves_no_service_open() {
    let d = TestDaemon::start(&[]);
    let (mut probe, victim) = start_probe_bulk(&d);
    std::thread::sleep(Duration::from_millis(300)); // in the middle of 4 MiB bulks
    probe.kill().unwrap();
    probe.wait().unwrap();
    // Within a few seconds the VideoCore has closed everything the victim had open.
    let t0 = Instant::now();
    loop {
        let (code, services, _) = d.run(&["log"], Duration::from_secs(20));
        assert_eq!(code, Some(0));
        let closed = services.contains(&format!("FUN2 closed (client {victim})"))
            || services.contains(&format!("fun2 closed (client {victim})"));
        if closed {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "fun2 of client {victim} still open:\n{services}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, status, _) = d.run(&["status"], Duration::from_secs(20));
    assert!(
        !status.contains(&format!("client_id {victim} ")),
        "instance still listed:\n{status}"
    );
    // Others go on, including a new bulk user.
    healthy(&d);
    let (mut again, _) = start_probe_bulk(&d);
    again.kill().unwrap();
    again.wait().unwrap();
}

#[test]
fn stopping_the_daemon_gives_clients_a_clear_error() {
    let mut d = TestDaemon::start(&[]);
    let (mut probe, _) = start_probe_bulk(&d);
    assert_eq!(d.stop(), Some(0), "vchiqd must exit cleanly on SIGTERM");
    let status = wait_exit(
        &mut probe,
        Duration::from_secs(10),
        "a client hung after the daemon stopped",
    );
    assert!(!status.success());
    let err = std::io::read_to_string(probe.stderr.take().unwrap()).unwrap();
    assert!(
        err.contains("vchiqd"),
        "the error should name the daemon: {err}"
    );
    // A new client gets the "not running" advice.
    let (code, _, err) = run_with_limit(
        {
            let mut c = Command::new(exe());
            c.args(["gencmd", "measure_temp"])
                .env("VCHIQ_SOCKET", d.socket());
            c
        },
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(255));
    assert!(
        err.contains("vchiqd is not running") && err.contains("vchiq daemon"),
        "{err}"
    );
}

#[test]
fn a_videocore_crash_is_a_contained_gpu_hang() {
    let d = TestDaemon::start(&["--videocore", "process"]);
    let (code, out, err) = d.run(&["gencmd", "measure_temp"], Duration::from_secs(20));
    assert_eq!(code, Some(0), "{out} {err}");
    // A client in the middle of bulk transfers when the VideoCore dies.
    let (mut probe, _) = start_probe_bulk(&d);
    // Kill the VideoCore process (the daemon's child).
    let kids = children_of(d.child.id());
    assert_eq!(kids.len(), 1, "one VideoCore child expected: {kids:?}");
    unsafe_free_kill(kids[0], 9);
    // The connected client gets an error, not a hang.
    let status = wait_exit(
        &mut probe,
        Duration::from_secs(10),
        "a connected client hung after a VideoCore crash",
    );
    assert!(!status.success());
    // The daemon is still there and answers, with an error.
    let (code, _, err) = d.run(&["gencmd", "measure_temp"], Duration::from_secs(20));
    assert_ne!(code, Some(0));
    assert!(code.is_some(), "client hung after a VideoCore crash");
    assert!(!err.is_empty());
    let (code, status, _) = d.run(&["status"], Duration::from_secs(20));
    assert_eq!(code, Some(0));
    assert!(status.contains("VideoCore LOST"), "{status}");
}

#[test]
fn a_client_that_stops_reading_does_not_stall_the_others() {
    let d = TestDaemon::start(&[]);
    // A floods `echo` and never takes a reply: its replies stay claimed, the VideoCore's
    // quota for that service fills, and its further replies must wait without blocking
    // the VideoCore for everyone else.
    let a = connect(&d);
    let echo = open_echo(&a);
    let mut msg = 5u32.to_le_bytes().to_vec();
    msg.resize(1000, 0x5a);
    let mut payload = wire::QueueMessageRequest {
        handle: echo,
        count: 1,
    }
    .as_bytes()
    .to_vec();
    payload.extend_from_slice(&(msg.len() as u32).to_le_bytes());
    payload.extend_from_slice(&msg);
    for tag in 100..400 {
        assert_eq!(call(&a, tag, Op::QueueMessage, 0, &payload), Some(0));
    }
    // B is served normally meanwhile.
    for _ in 0..3 {
        healthy(&d);
    }
    // A's replies were kept, in order: it can still read them all.
    let deq = wire::DequeueRequest {
        handle: echo,
        blocking: 1,
        bufsize: 4096,
        null_buf: 0,
    };
    for tag in 1000..1300 {
        send(&a, req(tag, Op::DequeueMessage, 0), deq.as_bytes(), &[]).unwrap();
        let (n, data) = response(&a, tag).expect("echo reply");
        assert_eq!(n as usize, msg.len());
        assert_eq!(data, msg);
    }
}

#[test]
fn a_client_that_never_sends_its_bulks_does_not_stall_the_others() {
    let d = TestDaemon::start(&[]);
    // Six dispmanx BulkWrite commands (27 | NO_REPLY) announce bulks that never come: the
    // VideoCore must refuse the ones over the per-service limit, not wait for room.
    let a = connect(&d);
    let disp = open_vchi(&a, vchiq_abi::fourcc::FourCc::DISP, 1);
    for tag in 100..106u32 {
        let words = [0x8000_001bu32, 0x10, 0, 4096, 0];
        let body: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut payload = wire::QueueMessageRequest {
            handle: disp,
            count: 1,
        }
        .as_bytes()
        .to_vec();
        payload.extend_from_slice(&(body.len() as u32).to_le_bytes());
        payload.extend_from_slice(&body);
        assert_eq!(call(&a, tag, Op::QueueMessage, 0, &payload), Some(0));
    }
    healthy(&d);
    let (code, out, _) = d.run(&["log"], Duration::from_secs(20));
    assert_eq!(code, Some(0));
    assert!(out.contains("bulk write refused"), "{out}");
}

#[test]
fn a_client_past_the_limit_is_told_why() {
    let d = TestDaemon::start(&["--max-clients", "2"]);
    let hello = wire::HelloRequest {
        version: wire::PROTOCOL_VERSION,
        flags: 0,
    };
    let a = connect(&d);
    assert_eq!(call(&a, 1, Op::Hello, 0, hello.as_bytes()), Some(0));
    let b = connect(&d);
    assert_eq!(call(&b, 1, Op::Hello, 0, hello.as_bytes()), Some(0));
    // The third is refused with the reason, not with a bare close.
    let (code, out, err) = d.run(&["gencmd", "measure_temp"], Duration::from_secs(20));
    assert_ne!(code, Some(0), "{out}");
    assert!(
        err.contains("refused") && err.contains("client limit (2)"),
        "the error names the real cause: {err}"
    );
    assert!(!err.contains("VideoCore lost"), "{err}");
    // Room again once a client leaves.
    drop(a);
    let t0 = Instant::now();
    loop {
        let (code, out, err) = d.run(&["gencmd", "measure_temp"], Duration::from_secs(20));
        if code == Some(0) {
            assert!(out.starts_with("temp="), "{out}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "still refused: {err}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(b);
}

/// CREATE_SERVICE of a listening service (no VideoCore round trip) on a connected client.
fn create_server(sock: &std::os::fd::OwnedFd, tag: u32, fourcc: &[u8; 4]) -> i64 {
    let create = wire::CreateServiceRequest {
        fourcc: u32::from_be_bytes(*fourcc),
        version: 1,
        version_min: 1,
        is_open: 0,
        is_vchi: 0,
        userdata: 0,
    };
    call(sock, tag, Op::CreateService, 0, create.as_bytes()).expect("a reply")
}

#[test]
fn a_client_past_its_service_limit_gets_emfile_and_the_others_are_unaffected() {
    let d = TestDaemon::start(&["--max-services-per-client", "3"]);
    let a = connect(&d);
    let first = open_echo(&a);
    let mut handles = vec![first];
    for (i, fourcc) in [b"lim0", b"lim1"].iter().enumerate() {
        let h = create_server(&a, 10 + i as u32, fourcc);
        assert!(h > 0, "service {i} within the limit: {h}");
        handles.push(h as u32);
    }
    // The fourth: EMFILE for that request only; the connection goes on.
    assert_eq!(create_server(&a, 20, b"lim2"), -i64::from(libc::EMFILE));
    assert_eq!(
        call(&a, 21, Op::GetClientId, u64::from(first), &[]).map(|r| r > 0),
        Some(true)
    );
    // Another client opens services as usual.
    let b = connect(&d);
    let hb = open_echo(&b);
    assert!(create_server(&b, 30, b"limb") > 0);
    drop(b);
    let _ = hb;
    // Room again once one is removed.
    assert_eq!(
        call(&a, 22, Op::RemoveService, u64::from(handles[2]), &[]),
        Some(0)
    );
    assert!(create_server(&a, 23, b"lim2") > 0);
    // The log names the client and the limit.
    drop(a);
    let mut d = d;
    d.stop();
    let mut log = String::new();
    if let Some(mut e) = d.child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut log);
    }
    assert!(
        log.contains("--max-services-per-client 3") && log.contains("client_id"),
        "{log}"
    );
}

#[test]
fn a_user_past_its_instance_limit_is_refused_with_the_reason_and_other_users_are_not() {
    if vchiqd::sys::geteuid() != 0 {
        return common::cprog::skip("running a client as another uid needs root");
    }
    let d = TestDaemon::start(&["--max-instances-per-uid", "2", "--socket-mode", "666"]);
    let hello = wire::HelloRequest {
        version: wire::PROTOCOL_VERSION,
        flags: 0,
    };
    let a = connect(&d);
    assert_eq!(call(&a, 1, Op::Hello, 0, hello.as_bytes()), Some(0));
    let b = connect(&d);
    assert_eq!(call(&b, 1, Op::Hello, 0, hello.as_bytes()), Some(0));
    // A third instance of uid 0: refused, and the client says why.
    let (code, out, err) = d.run(&["gencmd", "measure_temp"], Duration::from_secs(20));
    assert_ne!(code, Some(0), "{out}");
    assert!(
        err.contains("refused") && err.contains("--max-instances-per-uid"),
        "the error names the limit: {err}"
    );
    // Another user is served meanwhile.
    let mut c = d.cmd(&["gencmd", "measure_temp"]);
    std::os::unix::process::CommandExt::uid(&mut c, 65534);
    std::os::unix::process::CommandExt::gid(&mut c, 65534);
    let (code, out, err) = run_with_limit(c, Duration::from_secs(20));
    assert_eq!(
        code,
        Some(0),
        "uid 65534 is not limited by uid 0's instances: {out}{err}"
    );
    assert!(out.starts_with("temp="), "{out}");
    drop(a);
    let t0 = Instant::now();
    loop {
        let (code, _, err) = d.run(&["gencmd", "measure_temp"], Duration::from_secs(20));
        if code == Some(0) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "still refused: {err}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(b);
}

#[test]
fn a_client_that_never_awaits_its_completions_gets_enobufs_and_loses_none() {
    // A fresh echo listener for every open (a closed one goes back to listening later).
    let d = TestDaemon::start(&[
        "--max-queued-completions-per-client",
        "16",
        "--echo-listeners",
        "40",
    ]);
    let a = connect(&d);
    // No LIB_VERSION: without CLOSE_DELIVERED a close does not wait for the client to
    // have seen the SERVICE_CLOSED completion.
    let hello = wire::HelloRequest {
        version: wire::PROTOCOL_VERSION,
        flags: 0,
    };
    assert_eq!(call(&a, 1, Op::Hello, 0, hello.as_bytes()), Some(0));
    assert_eq!(call(&a, 2, Op::Connect, 0, &[]), Some(0));
    let create = wire::CreateServiceRequest {
        fourcc: vchiq_abi::fourcc::FourCc::ECHO.as_u32(),
        version: 3,
        version_min: 3,
        is_open: 1,
        is_vchi: 1,
        userdata: 0x77,
    };
    let first = call(&a, 3, Op::CreateService, 0, create.as_bytes()).expect("a reply");
    assert!(first > 0, "{first}");
    let first = first as u32;
    // Each open and close queues a SERVICE_CLOSED completion that is never awaited.
    assert_eq!(
        call(&a, 10, Op::CloseService, u64::from(first), &[]),
        Some(0)
    );
    let mut tag = 11;
    let mut closed = 1;
    let refused = loop {
        let h = call(&a, tag, Op::CreateService, 0, create.as_bytes()).expect("a reply");
        tag += 1;
        if h < 0 {
            break h;
        }
        assert_eq!(call(&a, tag, Op::CloseService, h as u64, &[]), Some(0));
        tag += 1;
        closed += 1;
        assert!(closed <= 16, "more completions queued than the limit");
    };
    assert_eq!(refused, -i64::from(libc::ENOBUFS));
    assert_eq!(closed, 16, "refused exactly at the limit");
    // A CALLBACK bulk is refused too; the connection goes on.
    let bulk = wire::BulkRequest {
        handle: first,
        size: 4,
        userdata: 1,
        mode: vchiq_abi::enums::BulkMode::Callback as u32,
        thread: 0,
    };
    let mut payload = bulk.as_bytes().to_vec();
    payload.extend_from_slice(b"abcd");
    let mut hdr = req(tag, Op::QueueBulkTransmit, 0);
    hdr.flags = wire::REQUEST_INLINE;
    send(&a, hdr, &payload, &[]).unwrap();
    assert_eq!(
        response(&a, tag).map(|r| r.0),
        Some(-i64::from(libc::ENOBUFS))
    );
    tag += 1;
    // Another client is served meanwhile.
    let b = connect(&d);
    assert!(open_echo(&b) > 0);
    healthy(&d);
    // Nothing was dropped: every completion arrives, in order, and then A may go on.
    let awaited = wire::AwaitRequest {
        count: 64,
        msgbufsize: 4096,
        msgbufcount: 8,
        _pad: 0,
    };
    send(
        &a,
        req(tag, Op::AwaitCompletion, 0),
        awaited.as_bytes(),
        &[],
    )
    .unwrap();
    let (n, records) = response(&a, tag).expect("await reply");
    tag += 1;
    assert_eq!(n, 16, "all 16 completions delivered");
    let reasons: Vec<u32> = records[size_of::<wire::AwaitResponse>()..]
        .chunks_exact(size_of::<wire::CompletionRecord>())
        .map(|r| u32::from_le_bytes(r[..4].try_into().unwrap()))
        .collect();
    assert_eq!(
        reasons,
        vec![vchiq_abi::enums::Reason::ServiceClosed as u32; 16]
    );
    let h = call(&a, tag, Op::CreateService, 0, create.as_bytes()).expect("a reply");
    assert!(h > 0, "CREATE_SERVICE accepted again once drained: {h}");
    drop(a);
    drop(b);
    let mut d = d;
    d.stop();
    let mut log = String::new();
    if let Some(mut e) = d.child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut log);
    }
    let warnings = log
        .lines()
        .filter(|l| l.contains("--max-queued-completions-per-client 16"))
        .collect::<Vec<_>>();
    assert_eq!(warnings.len(), 1, "one warning per episode: {log}");
    assert!(warnings[0].contains("client_id"), "{log}");
}
