//! Master and slave in two processes sharing a memfd and two eventfds: messages and bulks both
//! ways. The test binary re-executes itself to run the VideoCore (master) side.

mod common;

use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use common::fdpass::{CHILD_ENV, receive_fds, spawn_with_fds};
use vchiq_link::{
    EventFd, FourCc, Link, LinkConfig, ServiceEvent, ServiceHandle, ServiceHandler, ServiceParams,
    SharedMemory,
};

const PATIENCE: Duration = Duration::from_secs(30);

fn recorder() -> (
    Arc<dyn ServiceHandler>,
    Receiver<(ServiceHandle, ServiceEvent)>,
) {
    let (tx, rx) = channel();
    let tx = std::sync::Mutex::new(tx);
    (
        Arc::new(move |h: ServiceHandle, e: ServiceEvent| drop(tx.lock().unwrap().send((h, e)))),
        rx,
    )
}

fn params() -> ServiceParams {
    ServiceParams {
        fourcc: FourCc::new(b"echo"),
        version: 3,
        version_min: 3,
    }
}

/// The VideoCore side: echoes messages; on "rx:N" receives an N-byte bulk and sends it back
/// reversed; stops on "quit".
fn videocore_child() {
    let mut fds = receive_fds().into_iter();
    let mem = SharedMemory::from_fd(fds.next().expect("memfd")).unwrap();
    let slave_bell = EventFd::from_fd(fds.next().expect("eventfd")).unwrap();
    let master_bell = EventFd::from_fd(fds.next().expect("eventfd")).unwrap();
    let link = Link::master(mem, master_bell, slave_bell).unwrap();
    let (h, rx) = recorder();
    let server = link.add_service(params(), h).unwrap();
    link.connect().unwrap();
    loop {
        let (_, e) = rx.recv_timeout(PATIENCE).expect("child: event");
        match e {
            ServiceEvent::Opened { .. } => {}
            ServiceEvent::Message(m) => {
                let data = m.into_data();
                if data == b"quit" {
                    break;
                } else if let Some(n) = data.strip_prefix(b"rx:") {
                    let n: u32 = std::str::from_utf8(n).unwrap().parse().unwrap();
                    link.queue_bulk_receive(server, n, 1).unwrap();
                } else {
                    link.queue_message(server, &[&data], true).unwrap();
                }
            }
            ServiceEvent::BulkReceiveDone { mut data, .. } => {
                data.reverse();
                link.queue_bulk_transmit(server, data, 2).unwrap();
            }
            ServiceEvent::BulkTransmitDone { .. } => {}
            other => panic!("child: unexpected {other:?}"),
        }
    }
    link.shutdown();
}

#[test]
fn two_processes_exchange_messages_and_bulks() {
    if std::env::var(CHILD_ENV).as_deref() == Ok("videocore") {
        return videocore_child();
    }
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let config = LinkConfig {
        data_slots_per_side: 31,
        bulk_arena_size: 1 << 20,
    };
    let mem = SharedMemory::create("vchiq-two-process", config.memory_size()).unwrap();
    let slave_bell = EventFd::new().unwrap();
    let master_bell = EventFd::new().unwrap();
    // Slot zero must exist before the child maps it and validates it.
    let fds = [
        mem.fd().try_clone_to_owned().unwrap(),
        slave_bell.fd().try_clone_to_owned().unwrap(),
        master_bell.fd().try_clone_to_owned().unwrap(),
    ];
    let link = Link::slave(mem, config, slave_bell, master_bell).unwrap();
    let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
    let mut child = spawn_with_fds(
        "videocore",
        &[
            "--exact",
            "two_processes_exchange_messages_and_bulks",
            "--nocapture",
            "--test-threads=1",
        ],
        &borrowed,
    );
    link.wait_remote_initialised(PATIENCE).unwrap();
    link.connect().unwrap();
    let (h, rx) = recorder();
    let client = link.open_service(params(), std::process::id(), h).unwrap();
    for i in 0..200u32 {
        let body = vec![i as u8; (i as usize * 53) % 4089];
        link.queue_message(client, &[&body], true).unwrap();
        match rx.recv_timeout(PATIENCE).unwrap().1 {
            ServiceEvent::Message(m) => assert_eq!(m.data(), &body[..]),
            other => panic!("{other:?}"),
        }
    }
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    link.queue_message(client, &[b"rx:100000"], true).unwrap();
    link.queue_bulk_transmit(client, data.clone(), 10).unwrap();
    link.queue_bulk_receive(client, 100_000, 11).unwrap();
    let mut got_tx = false;
    let mut got_rx = None;
    while !(got_tx && got_rx.is_some()) {
        match rx.recv_timeout(PATIENCE).unwrap().1 {
            ServiceEvent::BulkTransmitDone { userdata: 10 } => got_tx = true,
            ServiceEvent::BulkReceiveDone { userdata: 11, data } => got_rx = Some(data),
            other => panic!("{other:?}"),
        }
    }
    let mut rev = data;
    rev.reverse();
    assert_eq!(got_rx.unwrap(), rev);
    link.queue_message(client, &[b"quit"], true).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "videocore process failed: {status}");
    assert_eq!(link.stats().protocol_errors, 0);
    link.shutdown();
}
