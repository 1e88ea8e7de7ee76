//! The `vchiq` client crate's native transport (ioctls on a `/dev/vchiq` file) against
//! vchiqd's FUSE file node (`vchiq daemon --dev-node PATH`).
//!
//! Every test starts a real daemon serving a node on a private path and skips, with the
//! reason printed, when FUSE cannot be mounted here (no `/dev/fuse`, not root). The node
//! is unmounted and the daemon stopped on drop.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::*;
use vchiq::{BulkMode, Event, FourCc, Handler, Instance, ServiceParams};

/// vchiq_test.h: `MSG_ECHO`.
const MSG_ECHO: i32 = 5;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        .unwrap_or(false)
}

fn params(fourcc: FourCc) -> ServiceParams {
    ServiceParams::new(fourcc, 3, 3)
}

/// An echo request: `MSG_ECHO` then `body`.
fn echo_msg(body: &[u8]) -> Vec<u8> {
    let mut m = MSG_ECHO.to_le_bytes().to_vec();
    m.extend_from_slice(body);
    m
}

/// A `fun2` request: `[len, 0, 0, 0]` as int32.
fn fun2_msg(len: usize) -> Vec<u8> {
    [len as u32, 0, 0, 0]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn recv<T>(rx: &Receiver<T>, what: &str) -> T {
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Runs `f` on a thread and fails the test if it does not finish within `limit`.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} hung (more than {limit:?})"))
}

#[test]
fn native_echo_callback_and_queue() {
    let Some(d) = node_daemon_as_root() else {
        return;
    };
    let inst = Instance::open_device(&d.node).expect("open the node");
    assert!(inst.is_device());
    assert_eq!(inst.socket_path(), d.node);

    // Callback handler: replies arrive on the completion thread.
    let (tx, rx) = channel();
    let echo = inst
        .open_service(
            params(FourCc::new(b"echo")),
            Handler::callback(move |_svc, ev| {
                let _ = tx.send(ev);
            }),
        )
        .expect("open echo (callback)");
    for i in 0..50u32 {
        let msg = echo_msg(&pattern(i as usize * 37 % 4000, i as u8));
        echo.queue_message(&msg).expect("queue");
        match recv(&rx, "an echo") {
            Event::Message(data) => assert_eq!(data, msg, "echo {i}"),
            other => panic!("unexpected event {other:?}"),
        }
    }
    // A vectored message comes back as the concatenation.
    let head = MSG_ECHO.to_le_bytes();
    echo.queue_message_vectored(&[&head, b"two ", b"parts"])
        .expect("queue vectored");
    assert_eq!(
        recv(&rx, "the vectored echo"),
        Event::Message(echo_msg(b"two parts"))
    );

    // A zero-length message is legal; the echo server answers it with an error string.
    echo.queue_message(&[]).expect("queue an empty message");
    match recv(&rx, "the reply to an empty message") {
        Event::Message(data) => assert!(data.len() > 1, "{data:?}"),
        other => panic!("unexpected event {other:?}"),
    }

    // GET_CLIENT_ID is this process's PID (the test runs in the initial PID namespace).
    assert_eq!(echo.client_id().expect("GET_CLIENT_ID"), std::process::id());
    assert_eq!(inst.client_id(), std::process::id());

    // Queue handler: messages wait for DEQUEUE_MESSAGE.
    let q = inst
        .open_service(params(FourCc::new(b"echo")), Handler::Queue)
        .expect("open echo (queue)");
    assert!(matches!(q.dequeue(false), Err(vchiq::Error::WouldBlock)));
    for i in 0..20u8 {
        let msg = echo_msg(&pattern(usize::from(i) * 5, i));
        q.queue_message(&msg).expect("queue");
        assert_eq!(q.dequeue(true).expect("dequeue"), msg);
    }
    // VCHI-style notifications (coalesced by the driver) are all that is left.
    loop {
        match q.wait_event(Some(Duration::from_millis(200))) {
            Ok(Event::MessageAvailable) => {}
            Err(vchiq::Error::Timeout) => break,
            other => panic!("unexpected {other:?}"),
        }
    }

    // The state dump is read() of the device.
    let status = inst.status().expect("status");
    assert!(!status.trim().is_empty(), "empty status");
    assert!(status.contains("echo"), "no echo service in:\n{status}");
    let again = inst.status().expect("status again");
    assert!(again.contains("echo"), "second dump:\n{again}");

    // Close from inside a callback (the completion thread keeps completions flowing
    // while the close waits for CLOSE_DELIVERED; its own AWAIT is cancelled by a signal).
    let (done_tx, done_rx) = channel();
    let closer = inst
        .open_service(
            params(FourCc::new(b"echo")),
            Handler::callback(move |svc, ev| {
                if let Event::Message(_) = ev {
                    let _ = done_tx.send(svc.close().map_err(|e| e.to_string()));
                }
            }),
        )
        .expect("open echo (closer)");
    closer.queue_message(&echo_msg(b"bye")).expect("queue");
    assert_eq!(recv(&done_rx, "close from a callback"), Ok(()));

    let inst2 = inst.clone();
    within(
        Duration::from_secs(10),
        "remove/close/shutdown",
        move || {
            q.remove().expect("remove");
            echo.close().expect("close");
            inst2.shutdown().expect("shutdown");
        },
    );
    drop(inst);
}

#[test]
fn native_fun2_bulk_round_trips() {
    let Some(d) = node_daemon_as_root() else {
        return;
    };
    let inst = Instance::open_device(&d.node).expect("open the node");
    let fun2 = inst
        .open_service(params(FourCc::new(b"fun2")), Handler::Queue)
        .expect("open fun2");
    // BLOCKING: the library passes the caller's buffer to the driver.
    for (i, len) in [1usize, 7, 4096, 65_537, 1 << 20].into_iter().enumerate() {
        let data = pattern(len, i as u8);
        fun2.queue_message(&fun2_msg(len)).expect("request");
        fun2.bulk_transmit(&data, BulkMode::Blocking, 1)
            .expect("transmit");
        let back = fun2
            .bulk_receive(len, BulkMode::Blocking, 2)
            .expect("receive")
            .expect("BLOCKING returns the data");
        assert!(back == data, "fun2 round trip of {len} bytes differs");
    }
    // CALLBACK: the library keeps the buffers until the completions.
    for (i, len) in [3usize, 10_000, 300_000].into_iter().enumerate() {
        let data = pattern(len, 100 + i as u8);
        fun2.queue_message(&fun2_msg(len)).expect("request");
        fun2.bulk_transmit(&data, BulkMode::Callback, 10 + i as u64)
            .expect("transmit");
        assert_eq!(
            fun2.bulk_receive(len, BulkMode::Callback, 20 + i as u64)
                .expect("receive"),
            None
        );
        let mut got_tx = false;
        let mut got_rx = None;
        while !(got_tx && got_rx.is_some()) {
            match fun2
                .wait_event(Some(Duration::from_secs(10)))
                .expect("event")
            {
                Event::BulkTransmitDone { userdata } => {
                    assert_eq!(userdata, 10 + i as u64);
                    got_tx = true;
                }
                Event::BulkReceiveDone { userdata, data } => {
                    assert_eq!(userdata, 20 + i as u64);
                    got_rx = Some(data);
                }
                other => panic!("unexpected event {other:?}"),
            }
        }
        assert!(
            got_rx.unwrap() == data,
            "CALLBACK round trip of {len} bytes differs"
        );
    }
    // NOCALLBACK transmit (the library keeps its copy), BLOCKING receive.
    for len in [5usize, 70_000] {
        let data = pattern(len, 200);
        fun2.queue_message(&fun2_msg(len)).expect("request");
        fun2.bulk_transmit(&data, BulkMode::NoCallback, 0)
            .expect("transmit");
        let back = fun2
            .bulk_receive(len, BulkMode::Blocking, 0)
            .expect("receive")
            .expect("BLOCKING returns the data");
        assert!(back == data, "NOCALLBACK round trip of {len} bytes differs");
    }
    within(Duration::from_secs(10), "close/shutdown", move || {
        fun2.close().expect("close");
        inst.shutdown().expect("shutdown");
    });
}

#[test]
fn native_open_errors_name_the_path() {
    let missing = std::env::temp_dir().join("vchiq-native-no-such-node");
    let err = Instance::open_device(&missing).expect_err("no device there");
    let text = err.to_string();
    assert!(text.contains(&*missing.to_string_lossy()), "{text}");
    assert!(text.contains("--dev-node"), "{text}");
}

/// `Instance::connect()` with `VCHIQ_SOCKET` unset picks `/dev/vchiq` when it exists:
/// this test binary re-runs itself in a private mount namespace where the node is
/// bind-mounted at `/dev/vchiq` (over a private copy of `/dev`, so the host's is not
/// touched).
#[test]
fn native_connect_uses_dev_vchiq_in_a_mount_namespace() {
    let Some(d) = node_daemon_as_root() else {
        return;
    };
    if Path::new("/dev/vchiq").exists() {
        eprintln!("skipped: this machine already has a /dev/vchiq");
        return;
    }
    if Command::new("unshare")
        .args(["-m", "true"])
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        common::cprog::skip("'unshare -m' does not work here");
        return;
    }
    let scratch = d.node.parent().unwrap().join("dev");
    let script = r#"set -e
mkdir -p "$SCRATCH"
mount -t tmpfs -o mode=755 none "$SCRATCH"
for f in null zero urandom random; do touch "$SCRATCH/$f"; mount --bind "/dev/$f" "$SCRATCH/$f"; done
touch "$SCRATCH/vchiq"
mount --bind "$NODE" "$SCRATCH/vchiq"
mount --rbind "$SCRATCH" /dev
exec "$TEST_BIN" --exact native_connect_child --ignored --nocapture --test-threads 1
"#;
    let test_bin = std::env::current_exe().unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("SCRATCH", &scratch)
        .env("NODE", &d.node)
        .env("TEST_BIN", &test_bin)
        .env("VCHIQ_NATIVE_CHILD", "1")
        .env_remove("VCHIQ_SOCKET");
    let (code, out, err) = run_with_limit(cmd, Duration::from_secs(60));
    assert_eq!(
        code,
        Some(0),
        "child failed:\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert!(
        out.contains("1 passed"),
        "the child test did not run:\n{out}\n{err}"
    );
    // The mounts lived in the namespace only.
    assert!(
        !Path::new("/dev/vchiq").exists(),
        "/dev/vchiq leaked to the host"
    );
    eprintln!(
        "note: 'vchiq gencmd' is not run here: the CLI connects with Instance::connect_to \
         (its socket path) and does not consult /dev/vchiq"
    );
}

/// Run only by `native_connect_uses_dev_vchiq_in_a_mount_namespace`, inside the namespace.
#[test]
#[ignore = "run inside a private mount namespace by native_connect_uses_dev_vchiq_in_a_mount_namespace"]
fn native_connect_child() {
    if std::env::var_os("VCHIQ_NATIVE_CHILD").is_none() {
        eprintln!("skipped: only meaningful inside the mount namespace of its parent test");
        return;
    }
    let inst = Instance::connect().expect("Instance::connect through /dev/vchiq");
    assert!(inst.is_device(), "connect() did not pick /dev/vchiq");
    assert_eq!(inst.socket_path(), Path::new("/dev/vchiq"));
    // vcgencmd's request on GCMD: the command, a trailing space and a NUL; the reply is
    // an int32 error code then the text.
    let gcmd = inst
        .open_service(
            ServiceParams::new(FourCc::new(b"GCMD"), 1, 1),
            Handler::Queue,
        )
        .expect("open GCMD");
    gcmd.use_service().expect("use");
    gcmd.queue_message(b"measure_temp \0").expect("send");
    let reply = gcmd.dequeue(true).expect("reply");
    gcmd.release_service().expect("release");
    let text = String::from_utf8_lossy(&reply[4.min(reply.len())..]).to_string();
    assert!(text.contains("temp="), "unexpected gencmd reply {text:?}");
    println!("gencmd through /dev/vchiq: {}", text.trim_end_matches('\0'));
    inst.shutdown().expect("shutdown");
}

/// Prints the echo round trip through the node (native transport) beside the socket's
/// (same daemon); no assertion on the figures.
#[test]
fn native_ping_beside_socket() {
    let Some(d) = node_daemon_as_root() else {
        return;
    };
    let ping = |inst: Instance| {
        let q = inst
            .open_service(params(FourCc::new(b"echo")), Handler::Queue)
            .expect("open echo");
        let msg = echo_msg(b"ping");
        let n = 2000u32;
        let t0 = Instant::now();
        for _ in 0..n {
            q.queue_message(&msg).expect("queue");
            assert_eq!(q.dequeue(true).expect("dequeue"), msg);
        }
        let us = t0.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        inst.shutdown().expect("shutdown");
        us
    };
    let node = ping(Instance::open_device(&d.node).expect("open the node"));
    let sock = ping(Instance::connect_to(d.daemon.socket()).expect("connect the socket"));
    eprintln!("echo round trip, vchiq crate: file node {node:.1} us, socket {sock:.1} us");
}

/// Mounting a FUSE node needs root here; skip (with the reason) otherwise.
fn node_daemon_as_root() -> Option<NodeDaemon> {
    if !is_root() {
        common::cprog::skip("mounting a FUSE node here needs root");
        return None;
    }
    NodeDaemon::start()
}
