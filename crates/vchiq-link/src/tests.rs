//! Link-level tests: both sides in one process over `HeapMemory` and `LocalDoorbell`, plus the
//! raw `mock` peer for wire-order and hostile-peer checks.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::abi::defs::{SLOT_SIZE, msgid};
use crate::abi::msg::MsgType;
use crate::doorbell::LocalDoorbell;
use crate::layout::{
    BulkPayload, MASTER_STATE_OFF, OpenPayload, SLAVE_STATE_OFF, SLOT_QUEUE_OFF, TX_POS_OFF,
};
use crate::mock::MockPeer;
use crate::*;
use zerocopy::IntoBytes;

pub(crate) type TestLink = Link<Arc<HeapMemory>, Arc<LocalDoorbell>>;

/// Long enough never to fire on a healthy run; only there so that a bug fails instead of hanging.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

pub(crate) fn small_config() -> LinkConfig {
    LinkConfig {
        data_slots_per_side: 31,
        bulk_arena_size: 1 << 20,
    }
}

pub(crate) struct Pair {
    pub slave: TestLink,
    pub master: TestLink,
    pub mem: Arc<HeapMemory>,
}

#[track_caller]
pub(crate) fn pair_at(config: LinkConfig, start: u32) -> Pair {
    let mem = Arc::new(HeapMemory::new(config.memory_size()));
    let bs = Arc::new(LocalDoorbell::new());
    let bm = Arc::new(LocalDoorbell::new());
    let slave = Link::slave_at(mem.clone(), config, bs.clone(), bm.clone(), start).unwrap();
    let master = Link::master(mem.clone(), bm, bs).unwrap();
    slave.wait_remote_initialised(PATIENCE).unwrap();
    let m2 = master.clone();
    let t = std::thread::spawn(move || m2.connect());
    slave.connect().unwrap();
    t.join().unwrap().unwrap();
    assert_eq!(slave.connection_state(), ConnState::Connected);
    assert_eq!(master.connection_state(), ConnState::Connected);
    Pair { slave, master, mem }
}

pub(crate) fn pair() -> Pair {
    pair_at(small_config(), 0)
}

pub(crate) type Events = Receiver<(ServiceHandle, ServiceEvent)>;

pub(crate) fn recorder() -> (Arc<dyn ServiceHandler>, Events) {
    let (tx, rx): (Sender<(ServiceHandle, ServiceEvent)>, _) = channel();
    let tx = Mutex::new(tx);
    let h = move |s: ServiceHandle, e: ServiceEvent| {
        let _ = tx.lock().unwrap().send((s, e));
    };
    (Arc::new(h), rx)
}

#[track_caller]
pub(crate) fn next(rx: &Events) -> ServiceEvent {
    rx.recv_timeout(PATIENCE).expect("event").1
}

fn params(fourcc: &[u8; 4], version: u16, version_min: u16) -> ServiceParams {
    ServiceParams {
        fourcc: FourCc::new(fourcc),
        version,
        version_min,
    }
}

fn message(e: ServiceEvent) -> Message {
    match e {
        ServiceEvent::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Opens `fourcc` from the slave to a server on the master; returns (client, server) handles
/// and their event streams.
fn open(p: &Pair, fourcc: &[u8; 4]) -> (ServiceHandle, Events, ServiceHandle, Events) {
    let (sh, srx) = recorder();
    let server = p.master.add_service(params(fourcc, 3, 2), sh).unwrap();
    let (ch, crx) = recorder();
    let client = p
        .slave
        .open_service(params(fourcc, 3, 3), 4242, ch)
        .unwrap();
    match next(&srx) {
        ServiceEvent::Opened {
            client_id,
            peer_version,
        } => assert_eq!((client_id, peer_version), (4242, 3)),
        other => panic!("{other:?}"),
    }
    (client, crx, server, srx)
}

fn wait_until(mut f: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !f() {
        assert!(t0.elapsed() < PATIENCE, "condition never became true");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn messages_both_ways_and_close() {
    let p = pair();
    let (client, crx, server, srx) = open(&p, b"echo");
    let ci = p.slave.service_info(client).unwrap();
    assert_eq!(
        (ci.state, ci.remoteport, ci.peer_version, ci.client_id),
        (SrvState::Open, Some(server.port()), 3, 4242)
    );
    assert_eq!(client.0 & !0xFFF, 4096);
    let si = p.master.service_info(server).unwrap();
    assert_eq!(
        (si.state, si.client_id, si.is_server),
        (SrvState::Open, 4242, true)
    );

    p.slave
        .queue_message(client, &[b"hel", b"lo"], true)
        .unwrap();
    p.slave.queue_message(client, &[], true).unwrap();
    let m = message(next(&srx));
    assert_eq!((m.data(), m.service()), (&b"hello"[..], server));
    assert_eq!(m.into_data(), b"hello");
    assert!(message(next(&srx)).data().is_empty());
    p.master
        .queue_message(server, &[&[7u8; 4088]], false)
        .unwrap();
    assert_eq!(message(next(&crx)).data(), &[7u8; 4088][..]);

    assert!(matches!(
        p.slave.queue_message(client, &[&[0u8; 4089]], true),
        Err(Error::MessageTooLarge { size: 4089 })
    ));
    p.slave.close_service(client).unwrap();
    assert!(matches!(next(&crx), ServiceEvent::Closed));
    assert!(matches!(next(&srx), ServiceEvent::Closed));
    // The client is freed; the auto-close server listens again with its client id cleared.
    assert!(p.slave.service_info(client).is_none());
    wait_until(|| p.master.service_info(server).unwrap().state == SrvState::Listening);
    assert_eq!(p.master.service_info(server).unwrap().client_id, 0);
    assert!(matches!(
        p.master.queue_message(server, &[b"x"], false),
        Err(Error::NotOpen { .. })
    ));
    assert!(matches!(
        p.master.close_service(server),
        Err(Error::InvalidState { .. })
    ));
    // It can be opened again.
    let (ch, _crx2) = recorder();
    let c2 = p.slave.open_service(params(b"echo", 3, 3), 7, ch).unwrap();
    assert_ne!(c2, client);
    assert!(matches!(
        next(&srx),
        ServiceEvent::Opened { client_id: 7, .. }
    ));
    let st = p.slave.stats();
    assert!(st.messages_sent >= 5 && st.protocol_errors == 0, "{st:?}");
    p.slave.shutdown();
    p.master.shutdown();
}

#[test]
fn open_rejections() {
    let p = pair();
    let (sh, _srx) = recorder();
    p.master.add_service(params(b"func", 3, 3), sh).unwrap();
    let fourcc = FourCc::new(b"func");
    // Client too old for the server (open.version < server.version_min).
    let (ch, _) = recorder();
    let e = p
        .slave
        .open_service(params(b"func", 2, 2), 1, ch.clone())
        .unwrap_err();
    assert!(
        matches!(e, Error::OpenRejected { fourcc: f } if f == fourcc),
        "{e}"
    );
    // Server too old for the client (server.version < open.version_min).
    let e = p
        .slave
        .open_service(params(b"func", 5, 4), 1, ch.clone())
        .unwrap_err();
    assert!(matches!(e, Error::OpenRejected { .. }));
    // Unknown fourcc.
    let e = p
        .slave
        .open_service(params(b"nope", 3, 3), 1, ch.clone())
        .unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    // Compatible ranges on both sides are accepted, in the other direction too.
    let (sh2, _) = recorder();
    p.slave.add_service(params(b"KEEP", 1, 1), sh2).unwrap();
    p.master
        .open_service(params(b"KEEP", 1, 1), 0, ch.clone())
        .unwrap();
    let e = p
        .master
        .open_service(params(b"KEEP", 2, 2), 0, ch)
        .unwrap_err();
    assert!(matches!(e, Error::OpenRejected { .. }));
    // Rejected clients do not leak ports.
    assert_eq!(p.slave.services().len(), 1);
}

#[test]
fn two_listeners_one_fourcc_and_auto_close_off() {
    let p = pair();
    let (h1, rx1) = recorder();
    let (h2, rx2) = recorder();
    let s1 = p.master.add_service(params(b"fun2", 3, 2), h1).unwrap();
    let s2 = p.master.add_service(params(b"fun2", 3, 2), h2).unwrap();
    assert!(s1.port() < s2.port());
    p.master
        .set_service_option(s1, ServiceOption::AutoClose, 0)
        .unwrap();
    let (ch, crx) = recorder();
    let c1 = p
        .slave
        .open_service(params(b"fun2", 3, 3), 1, ch.clone())
        .unwrap();
    assert!(matches!(
        next(&rx1),
        ServiceEvent::Opened { client_id: 1, .. }
    ));
    let c2 = p
        .slave
        .open_service(params(b"fun2", 3, 3), 2, ch.clone())
        .unwrap();
    assert!(matches!(
        next(&rx2),
        ServiceEvent::Opened { client_id: 2, .. }
    ));
    // Both busy: a third is rejected.
    assert!(
        p.slave
            .open_service(params(b"fun2", 3, 3), 3, ch.clone())
            .is_err()
    );
    // The server closes; without auto_close it waits in CLOSEWAIT.
    p.master.close_service(s1).unwrap();
    assert!(matches!(next(&rx1), ServiceEvent::Closed));
    assert!(matches!(next(&crx), ServiceEvent::Closed));
    assert_eq!(
        p.master.service_info(s1).unwrap().state,
        SrvState::CloseWait
    );
    assert!(p.slave.service_info(c1).is_none());
    assert!(
        p.slave
            .open_service(params(b"fun2", 3, 3), 4, ch.clone())
            .is_err()
    );
    p.master.close_service(s1).unwrap();
    assert_eq!(
        p.master.service_info(s1).unwrap().state,
        SrvState::Listening
    );
    p.slave
        .open_service(params(b"fun2", 3, 3), 5, ch.clone())
        .unwrap();
    assert!(matches!(
        next(&rx1),
        ServiceEvent::Opened { client_id: 5, .. }
    ));
    // remove_service on an open server: closes, then frees the port; the fourcc is not re-listened.
    p.master.remove_service(s2).unwrap();
    assert!(matches!(next(&rx2), ServiceEvent::Closed));
    assert!(matches!(next(&crx), ServiceEvent::Closed));
    wait_until(|| p.master.service_info(s2).is_none());
    assert!(p.slave.service_info(c2).is_none());
    assert!(p.slave.open_service(params(b"fun2", 3, 3), 6, ch).is_err());
    assert!(matches!(
        p.master
            .set_service_option(s1, ServiceOption::Synchronous, 1),
        Err(Error::Unsupported(_))
    ));
}

#[test]
fn held_messages_block_the_sender_until_released() {
    let p = pair();
    let held: Arc<Mutex<Vec<Message>>> = Arc::default();
    let h2 = held.clone();
    let handler = move |_s: ServiceHandle, e: ServiceEvent| {
        if let ServiceEvent::Message(m) = e {
            h2.lock().unwrap().push(m);
        }
    };
    let server = p
        .master
        .add_service(params(b"hold", 1, 1), Arc::new(handler))
        .unwrap();
    let (ch, _crx) = recorder();
    let client = p.slave.open_service(params(b"hold", 1, 1), 1, ch).unwrap();
    // Full-slot messages: the slot quota (15) stops the sender.
    let mut sent = 0;
    loop {
        match p.slave.queue_message(client, &[&[1u8; 4088]], false) {
            Ok(()) => sent += 1,
            Err(Error::WouldBlock) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(sent <= 64, "quota never reached");
    }
    assert_eq!(sent, 15);
    let info = p.slave.service_info(client).unwrap();
    assert_eq!((info.slot_use_count, info.slot_quota), (15, 15));
    wait_until(|| held.lock().unwrap().len() == 15);
    // A blocking sender waits...
    let s2 = p.slave.clone();
    let t = std::thread::spawn(move || s2.queue_message(client, &[b"after"], true));
    std::thread::sleep(Duration::from_millis(50));
    assert!(!t.is_finished(), "sender did not block");
    // ...until the receiver releases.
    held.lock().unwrap().clear();
    t.join().unwrap().unwrap();
    wait_until(|| held.lock().unwrap().len() == 1);
    assert_eq!(held.lock().unwrap()[0].data(), b"after");
    held.lock().unwrap().clear();
    // Only the slot still being filled is not back yet.
    wait_until(|| p.slave.service_info(client).unwrap().slot_use_count <= 1);

    // The message quota works the same way with small messages.
    assert!(matches!(
        p.slave
            .set_service_option(client, ServiceOption::MessageQuota, 65535),
        Err(Error::InvalidOption { .. })
    ));
    p.slave
        .set_service_option(client, ServiceOption::MessageQuota, 4)
        .unwrap();
    // Messages in slots not yet recycled still count.
    let used = p.slave.service_info(client).unwrap().message_use_count;
    for _ in used..4 {
        p.slave.queue_message(client, &[b"m"], false).unwrap();
    }
    assert!(matches!(
        p.slave.queue_message(client, &[b"m"], false),
        Err(Error::WouldBlock)
    ));
    wait_until(|| held.lock().unwrap().len() == (4 - used) as usize);
    // Closing wakes a blocked sender with an error.
    let s3 = p.slave.clone();
    let t = std::thread::spawn(move || s3.queue_message(client, &[b"m"], true));
    std::thread::sleep(Duration::from_millis(20));
    p.master.close_service(server).unwrap();
    assert!(t.join().unwrap().is_err());
    drop(held.lock().unwrap().drain(..));
    assert_eq!(p.master.stats().protocol_errors, 0);
}

#[test]
fn bulk_fifo_both_directions_and_mismatch() {
    let p = pair();
    let (client, crx, server, srx) = open(&p, b"bulk");
    // Slave transmits first, master receives later.
    for (i, n) in [1000usize, 0, 70_000].into_iter().enumerate() {
        p.slave
            .queue_bulk_transmit(client, vec![i as u8 + 1; n], i as u64)
            .unwrap();
    }
    for (i, n) in [1000u32, 0, 70_000].into_iter().enumerate() {
        p.master
            .queue_bulk_receive(server, n, 10 + i as u64)
            .unwrap();
    }
    for i in 0..3u64 {
        match next(&srx) {
            ServiceEvent::BulkReceiveDone { userdata, data } => {
                assert_eq!(userdata, 10 + i);
                assert!(data.iter().all(|&b| b == i as u8 + 1));
                assert_eq!(data.len(), [1000, 0, 70_000][i as usize]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(next(&crx), ServiceEvent::BulkTransmitDone { userdata } if userdata == i));
    }
    // Master transmits first, slave receives later.
    let payload: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    p.master
        .queue_bulk_transmit(server, payload.clone(), 77)
        .unwrap();
    p.slave.queue_bulk_receive(client, 5000, 88).unwrap();
    assert!(matches!(
        next(&srx),
        ServiceEvent::BulkTransmitDone { userdata: 77 }
    ));
    match next(&crx) {
        ServiceEvent::BulkReceiveDone { userdata: 88, data } => assert_eq!(data, payload),
        other => panic!("{other:?}"),
    }
    // Size mismatch (1024 against 2048) aborts both sides.
    p.slave
        .queue_bulk_transmit(client, vec![0; 1024], 5)
        .unwrap();
    p.master.queue_bulk_receive(server, 2048, 6).unwrap();
    assert!(matches!(
        next(&srx),
        ServiceEvent::BulkReceiveAborted { userdata: 6 }
    ));
    assert!(matches!(
        next(&crx),
        ServiceEvent::BulkTransmitAborted { userdata: 5 }
    ));
    // Outstanding slave bulks are aborted when the master closes.
    p.slave.queue_bulk_receive(client, 10, 1).unwrap();
    p.slave.queue_bulk_transmit(client, vec![1; 10], 2).unwrap();
    p.master
        .queue_bulk_transmit(server, vec![1; 10], 3)
        .unwrap();
    // The master's transmit pairs with the slave's receive; the slave's transmit is left.
    assert!(matches!(
        next(&srx),
        ServiceEvent::BulkTransmitDone { userdata: 3 }
    ));
    assert!(matches!(
        next(&crx),
        ServiceEvent::BulkReceiveDone { userdata: 1, .. }
    ));
    p.master.close_service(server).unwrap();
    assert!(matches!(
        next(&crx),
        ServiceEvent::BulkTransmitAborted { userdata: 2 }
    ));
    assert!(matches!(next(&crx), ServiceEvent::Closed));
    assert!(matches!(next(&srx), ServiceEvent::Closed));
    let s = p.slave.stats();
    assert_eq!(
        (s.bulks_done, s.bulks_aborted, s.protocol_errors),
        (5, 2, 0),
        "{s:?}"
    );
}

#[test]
fn region_bulks_move_through_the_callers_memory() {
    let p = pair();
    // Without a shared table, region bulks are refused (the arena path stays).
    let (client, crx, server, srx) = open(&p, b"bulk");
    let region: region::Region = Arc::new(HeapMemory::new(8192));
    assert!(matches!(
        p.slave
            .try_queue_bulk_region(client, true, region.clone(), 100, 1),
        Err(Error::InvalidConfig { .. })
    ));
    let regions = Arc::new(region::BulkRegions::default());
    p.slave.share_bulk_regions(regions.clone());
    p.master.share_bulk_regions(regions.clone());
    // Transmit: the master's receive gets the region's bytes; the arena is not used.
    let sent: Vec<u8> = (0..5000u32).map(|i| (i * 13 % 251) as u8).collect();
    region.write(0, &sent).unwrap();
    assert!(
        p.slave
            .try_queue_bulk_region(client, true, region.clone(), 5000, 7)
            .unwrap()
    );
    p.master.queue_bulk_receive(server, 5000, 8).unwrap();
    match next(&srx) {
        ServiceEvent::BulkReceiveDone { userdata: 8, data } => assert_eq!(data, sent),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        next(&crx),
        ServiceEvent::BulkTransmitDone { userdata: 7 }
    ));
    // Receive: the master's transmit lands in the region; the event carries no copy.
    let back: Vec<u8> = (0..3000u32).map(|i| (i % 7) as u8 + 1).collect();
    let target: region::Region = Arc::new(HeapMemory::new(4096));
    assert!(
        p.slave
            .try_queue_bulk_region(client, false, target.clone(), 3000, 9)
            .unwrap()
    );
    p.master
        .queue_bulk_transmit(server, back.clone(), 10)
        .unwrap();
    match next(&crx) {
        ServiceEvent::BulkReceiveDone { userdata: 9, data } => assert!(data.is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(target.read_vec(0, 3000).unwrap(), back);
    assert!(matches!(
        next(&srx),
        ServiceEvent::BulkTransmitDone { userdata: 10 }
    ));
    // A region smaller than the bulk is refused; finished regions are forgotten.
    assert!(matches!(
        p.slave
            .try_queue_bulk_region(client, true, target, 5000, 11),
        Err(Error::BulkTooLarge { .. })
    ));
    assert!(regions.is_empty(), "{regions:?}");
    // A region bulk outstanding when the service closes is aborted and forgotten.
    assert!(
        p.slave
            .try_queue_bulk_region(client, true, region, 100, 12)
            .unwrap()
    );
    p.master.close_service(server).unwrap();
    assert!(matches!(
        next(&crx),
        ServiceEvent::BulkTransmitAborted { userdata: 12 }
    ));
    assert!(regions.is_empty(), "{regions:?}");
    assert_eq!(p.slave.stats().protocol_errors, 0);
}

#[test]
fn fifth_bulk_blocks_until_one_completes() {
    let p = pair();
    let (client, crx, server, _srx) = open(&p, b"bulk");
    for i in 0..4 {
        p.slave.queue_bulk_transmit(client, vec![1; 8], i).unwrap();
    }
    assert_eq!(p.slave.service_info(client).unwrap().bulk_tx_pending, 4);
    let s2 = p.slave.clone();
    let t = std::thread::spawn(move || s2.queue_bulk_transmit(client, vec![1; 8], 4));
    std::thread::sleep(Duration::from_millis(30));
    assert!(!t.is_finished());
    p.master.queue_bulk_receive(server, 8, 0).unwrap();
    t.join().unwrap().unwrap();
    assert!(matches!(
        next(&crx),
        ServiceEvent::BulkTransmitDone { userdata: 0 }
    ));
    // A shutdown wakes a blocked bulk with an error.
    let s3 = p.slave.clone();
    let t = std::thread::spawn(move || s3.queue_bulk_transmit(client, vec![1; 8], 5));
    std::thread::sleep(Duration::from_millis(20));
    p.slave.shutdown();
    assert!(matches!(t.join().unwrap(), Err(Error::Shutdown)));
}

#[test]
fn master_sends_bulk_done_before_close() {
    let config = small_config();
    let mem = Arc::new(HeapMemory::new(config.memory_size()));
    let bs = Arc::new(LocalDoorbell::new());
    let bm = Arc::new(LocalDoorbell::new());
    let mut mock = MockPeer::slave(mem.clone(), config, bm.clone()).unwrap();
    let master: TestLink = Link::master(mem.clone(), bm, bs).unwrap();
    let (sh, srx) = recorder();
    let server = master.add_service(params(b"bulk", 1, 1), sh).unwrap();
    mock.send(MsgType::Connect.raw(), 0, 0, &[]).unwrap();
    let m2 = master.clone();
    std::thread::spawn(move || m2.connect())
        .join()
        .unwrap()
        .unwrap();
    let open = OpenPayload {
        fourcc: FourCc::new(b"bulk").as_u32(),
        client_id: 9,
        version: 1,
        version_min: 1,
    };
    mock.send(MsgType::Open.raw(), 5, 0, open.as_bytes())
        .unwrap();
    assert!(matches!(
        next(&srx),
        ServiceEvent::Opened { client_id: 9, .. }
    ));
    let arena = config.arena_offset() as u32;
    mock.send(
        MsgType::BulkTx.raw(),
        5,
        server.port(),
        BulkPayload {
            data: arena,
            size: 16,
        }
        .as_bytes(),
    )
    .unwrap();
    mock.send(
        MsgType::BulkRx.raw(),
        5,
        server.port(),
        BulkPayload {
            data: arena + 64,
            size: 16,
        }
        .as_bytes(),
    )
    .unwrap();
    // The slave's BULK_TX pairs with this receive; its BULK_RX stays outstanding, and so does
    // a second master receive (which has no slave counterpart: aborted locally, no message).
    master.queue_bulk_receive(server, 16, 1).unwrap();
    assert!(matches!(
        next(&srx),
        ServiceEvent::BulkReceiveDone { userdata: 1, .. }
    ));
    master.queue_bulk_receive(server, 16, 2).unwrap();
    master.close_service(server).unwrap();
    assert!(matches!(
        next(&srx),
        ServiceEvent::BulkReceiveAborted { userdata: 2 }
    ));
    let mut seen = Vec::new();
    wait_until(|| {
        seen.extend(mock.receive().unwrap());
        seen.iter().any(|m| m.ty() == MsgType::Close.raw())
    });
    let types: Vec<u32> = seen
        .iter()
        .map(|m| m.ty())
        .filter(|&t| t != MsgType::Connect.raw())
        .collect();
    // OPENACK, BULK_TX_DONE(16) for the paired transmit, then BULK_RX_DONE(-1) before CLOSE.
    assert_eq!(types, [3, 9, 8, 4], "{seen:?}");
    let done = seen.iter().find(|m| m.ty() == 8).unwrap();
    assert_eq!(done.payload, (-1i32).to_le_bytes());
    let close = seen.iter().find(|m| m.ty() == 4).unwrap();
    assert_eq!((close.src(), close.dst()), (server.port(), 5));
    // The slave's answering CLOSE completes the close.
    mock.send(MsgType::Close.raw(), 5, server.port(), &[])
        .unwrap();
    assert!(matches!(next(&srx), ServiceEvent::Closed));
    assert_eq!(
        master.service_info(server).unwrap().state,
        SrvState::Listening
    );
    assert_eq!(master.stats().protocol_errors, 0);
    master.shutdown();
}

#[test]
fn wire_format_padding_and_wrap() {
    // Start both streams 2 slots before the 2^32 wrap.
    let start = 0u32.wrapping_sub(2 * SLOT_SIZE as u32);
    let p = pair_at(small_config(), start);
    let (client, _crx, _server, srx) = open(&p, b"wrap");
    // CONNECT (8) + OPEN (8+12 -> 24) were sent by the slave before.
    let before = p.slave.tx_pos();
    assert_eq!(before, start.wrapping_add(8 + 24));
    p.slave
        .queue_message(client, &[&[9u8; 4000]], true)
        .unwrap(); // fits: stride 4008
    p.slave.queue_message(client, &[&[8u8; 200]], true).unwrap(); // does not fit: padding first
    let after = p.slave.tx_pos();
    assert_eq!(after, start.wrapping_add(4096 + 208));
    // The padding header: msgid 0, size = remaining - 8.
    let slot0 = p
        .mem
        .load_u32(
            SLAVE_STATE_OFF + SLOT_QUEUE_OFF + 4 * 62,
            std::sync::atomic::Ordering::Relaxed,
        )
        .unwrap();
    let pad_off = slot0 as usize * SLOT_SIZE + 32 + 4008;
    let mut h = [0u8; 8];
    p.mem.read(pad_off, &mut h).unwrap();
    assert_eq!(h[..4], 0u32.to_le_bytes());
    assert_eq!(
        u32::from_le_bytes(h[4..].try_into().unwrap()) as usize,
        SLOT_SIZE - 32 - 4008 - 8
    );
    for _ in 0..2 {
        let _ = message(next(&srx));
    }
    // Now cross 2^32 and keep going over many slot wraps.
    let mut total = 0u64;
    for i in 0..300u32 {
        let n = (i * 37 % 4089) as usize;
        p.slave
            .queue_message(client, &[&vec![i as u8; n]], true)
            .unwrap();
        let m = message(next(&srx));
        assert_eq!(m.data().len(), n);
        assert!(m.data().iter().all(|&b| b == i as u8));
        total += n as u64;
    }
    assert!(p.slave.tx_pos() < start, "tx_pos did not wrap");
    assert!(total > 64 * 4096);
    let tx = p
        .mem
        .load_u32(
            SLAVE_STATE_OFF + TX_POS_OFF,
            std::sync::atomic::Ordering::Acquire,
        )
        .unwrap();
    assert_eq!(tx, p.slave.tx_pos());
    assert_eq!(p.master.stats().protocol_errors, 0);
    assert!(p.master.stats().slots_recycled > 64);
}

#[test]
fn slot_zero_validation_names_the_field() {
    let config = small_config();
    let mem = Arc::new(HeapMemory::new(config.memory_size()));
    let b = || Arc::new(LocalDoorbell::new());
    let slave: TestLink = Link::slave(mem.clone(), config, b(), b()).unwrap();
    let check = |off: usize, v: u32, want: &str| {
        let old = mem
            .load_u32(off, std::sync::atomic::Ordering::Relaxed)
            .unwrap();
        mem.store_u32(off, v, std::sync::atomic::Ordering::Relaxed)
            .unwrap();
        let e = Link::<_, Arc<LocalDoorbell>>::master(mem.clone(), b(), b()).unwrap_err();
        assert!(e.to_string().contains(want), "{e} should mention {want}");
        mem.store_u32(off, old, std::sync::atomic::Ordering::Relaxed)
            .unwrap();
    };
    check(
        0,
        0x1234,
        &format!("magic is 4660, but this side requires = {}", 0x5643_4849),
    );
    check(
        4,
        2 | (2 << 16),
        "version is 2, but this side requires >= 3",
    );
    check(
        4,
        8 | (9 << 16),
        "version_min is 9, but this side requires <= 8",
    );
    check(8, 1000, "slot_zero_size is 1000");
    check(12, 8192, "slot_size is 8192");
    check(16, 64, "max_slots is 64");
    check(20, 32, "max_slots_per_side is 32");
    check(MASTER_STATE_OFF + 8, 200, "master.slot_last");
    check(SLAVE_STATE_OFF + 4, 3, "slave.slot_");
    check(24, 4096, "bulk arena");
    let too_small: Result<TestLink> =
        Link::slave(Arc::new(HeapMemory::new(4096)), config, b(), b());
    assert!(matches!(too_small, Err(Error::MemoryTooSmall { .. })));
    let bad = LinkConfig {
        data_slots_per_side: 1,
        ..config
    };
    assert!(matches!(
        Link::slave(mem.clone(), bad, b(), b()),
        Err(Error::InvalidConfig { .. })
    ));
    drop(slave);
}

#[test]
fn open_service_fails_instead_of_hanging() {
    let p = pair();
    let (sh, _) = recorder();
    // No answer will come if the master stops.
    p.master.shutdown();
    let s2 = p.slave.clone();
    let t = std::thread::spawn(move || s2.open_service(params(b"gone", 1, 1), 0, sh));
    std::thread::sleep(Duration::from_millis(20));
    p.slave.shutdown();
    assert!(matches!(t.join().unwrap(), Err(Error::Shutdown)));
    assert!(matches!(p.slave.connect(), Err(Error::Shutdown)));
}

#[test]
fn not_connected_and_bad_handles() {
    let config = small_config();
    let mem = Arc::new(HeapMemory::new(config.memory_size()));
    let b = || Arc::new(LocalDoorbell::new());
    let slave: TestLink = Link::slave(mem, config, b(), b()).unwrap();
    assert_eq!(slave.connection_state(), ConnState::Disconnected);
    let (h, _) = recorder();
    assert!(matches!(
        slave.open_service(params(b"x   ", 1, 1), 0, h.clone()),
        Err(Error::NotConnected)
    ));
    assert!(matches!(
        slave.wait_remote_initialised(Duration::from_millis(5)),
        Err(Error::Timeout { .. })
    ));
    let s = slave.add_service(params(b"srv ", 1, 1), h).unwrap();
    assert!(matches!(
        slave.close_service(ServiceHandle(s.0 + 4096)),
        Err(Error::BadHandle(_))
    ));
    slave.remove_service(s).unwrap();
    assert!(matches!(slave.remove_service(s), Err(Error::BadHandle(_))));
    assert!(slave.services().is_empty());
}

// ---------------------------------------------------------------- hostile peer

/// An honest slave against a mock master that can write anything.
fn hostile() -> (TestLink, MockPeer<Arc<HeapMemory>>, Events, ServiceHandle) {
    let config = small_config();
    let mem = Arc::new(HeapMemory::new(config.memory_size()));
    let bs = Arc::new(LocalDoorbell::new());
    let bm = Arc::new(LocalDoorbell::new());
    let slave: TestLink = Link::slave(mem.clone(), config, bs.clone(), bm).unwrap();
    let mut mock = MockPeer::master(mem, bs).unwrap();
    slave.wait_remote_initialised(PATIENCE).unwrap();
    mock.send(MsgType::Connect.raw(), 0, 0, &[]).unwrap();
    slave.connect().unwrap();
    let (h, rx) = recorder();
    let server = slave.add_service(params(b"hstl", 1, 1), h).unwrap();
    let open = OpenPayload {
        fourcc: FourCc::new(b"hstl").as_u32(),
        client_id: 1,
        version: 1,
        version_min: 1,
    };
    mock.send(MsgType::Open.raw(), 3, 0, open.as_bytes())
        .unwrap();
    assert!(matches!(next(&rx), ServiceEvent::Opened { .. }));
    (slave, mock, rx, server)
}

fn assert_breaks(slave: &TestLink, want: &str) {
    wait_until(|| slave.broken().is_some());
    let why = slave.broken().unwrap();
    assert!(
        why.contains(want),
        "broken because {why:?}, expected {want:?}"
    );
    assert!(matches!(
        slave.queue_message(ServiceHandle(0), &[], true),
        Err(Error::LinkBroken(_))
    ));
    slave.shutdown();
}

#[test]
fn hostile_tx_pos_backwards_and_far_ahead() {
    let (slave, mut mock, _rx, _) = hostile();
    let pos = mock.tx_pos();
    mock.set_tx_pos(pos.wrapping_sub(8)).unwrap();
    assert_breaks(&slave, "tx_pos jumped");
    let (slave, mut mock, _rx, _) = hostile();
    mock.set_tx_pos(mock.tx_pos() + 40 * 4096).unwrap();
    assert_breaks(&slave, "tx_pos jumped");
    let (slave, mut mock, _rx, _) = hostile();
    mock.set_tx_pos(mock.tx_pos() + 3).unwrap();
    assert_breaks(&slave, "not 8-byte aligned");
}

#[test]
fn hostile_headers() {
    // Size past the end of the slot.
    let (slave, mut mock, _rx, server) = hostile();
    mock.write_message(msgid(5, 3, server.port()), &[0; 16])
        .unwrap();
    let off = (mock.tx_pos() as usize - 24) % SLOT_SIZE;
    let slot = mock
        .mem()
        .load_u32(
            MASTER_STATE_OFF + SLOT_QUEUE_OFF,
            std::sync::atomic::Ordering::Relaxed,
        )
        .unwrap();
    mock.store(slot as usize * SLOT_SIZE + off + 4, 0xFFFF_FF00)
        .unwrap();
    mock.publish().unwrap();
    assert_breaks(&slave, "bytes fit in the slot");
    // Unknown types, bad payloads, unknown ports and claimed-looking msgids are skipped.
    let (slave, mut mock, rx, server) = hostile();
    mock.send(0x3F, 3, server.port(), b"junk").unwrap();
    mock.send(0x45, 3, server.port(), b"claimed?").unwrap();
    mock.send(MsgType::BulkRxDone.raw(), 3, server.port(), &[1])
        .unwrap();
    mock.send(MsgType::Data.raw(), 3, 999, b"nobody").unwrap();
    mock.send(MsgType::Data.raw(), 4, server.port(), b"wrong src")
        .unwrap();
    mock.send(
        MsgType::BulkTxDone.raw(),
        3,
        server.port(),
        &0i32.to_le_bytes(),
    )
    .unwrap();
    mock.send(MsgType::Close.raw(), 77, 12, &[]).unwrap();
    mock.send(MsgType::Open.raw(), 8, 0, &[1, 2]).unwrap();
    mock.send(MsgType::Data.raw(), 3, server.port(), b"fine")
        .unwrap();
    assert_eq!(message(next(&rx)).data(), b"fine");
    assert!(slave.broken().is_none());
    assert!(slave.stats().protocol_errors >= 7, "{:?}", slave.stats());
    // The short OPEN was answered with a rejecting CLOSE(0 -> 8).
    let got = mock.receive().unwrap();
    assert!(
        got.iter()
            .any(|m| m.ty() == 4 && m.src() == 0 && m.dst() == 8),
        "{got:?}"
    );
    slave.shutdown();
}

#[test]
fn hostile_slot_queue_and_recycles() {
    // A slot_queue entry outside the master's slots.
    let (slave, mut mock, _rx, _) = hostile();
    let pos = mock.tx_pos();
    mock.set_tx_pos(pos.next_multiple_of(4096)).unwrap_or(());
    let entry = (pos.div_ceil(4096) % 64) as usize;
    mock.store(MASTER_STATE_OFF + SLOT_QUEUE_OFF + 4 * entry, 100)
        .unwrap();
    mock.send(MsgType::Data.raw(), 3, 0, b"x").unwrap();
    assert_breaks(&slave, "outside its data slots");
    // Recycling slots the slave never used.
    let (slave, mock, _rx, _) = hostile();
    mock.store(SLAVE_STATE_OFF + SLOT_QUEUE_RECYCLE_OFF_TEST, 31 + 5)
        .unwrap();
    mock.signal(crate::layout::RECYCLE_OFF).unwrap();
    assert_breaks(&slave, "recycled");
    // A bogus recycled slot index after real traffic.
    let (slave, mock, _rx, server) = hostile();
    for _ in 0..3 {
        slave.queue_message(server, &[&[0; 4088]], true).unwrap();
    }
    mock.store(SLAVE_STATE_OFF + SLOT_QUEUE_OFF + 4 * 31, 7)
        .unwrap();
    mock.store(SLAVE_STATE_OFF + SLOT_QUEUE_RECYCLE_OFF_TEST, 32)
        .unwrap();
    mock.signal(crate::layout::RECYCLE_OFF).unwrap();
    assert_breaks(&slave, "recycled slot 7");
}

const SLOT_QUEUE_RECYCLE_OFF_TEST: usize = crate::layout::SLOT_QUEUE_RECYCLE_OFF;

#[test]
fn hostile_random_scribbles_never_panic() {
    // A seeded xorshift: scribble random words over the master's slots and shared state.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..40 {
        let (slave, mut mock, _rx, server) = hostile();
        for _ in 0..(rnd() % 6) {
            let len = (rnd() % 64) as usize;
            let _ = mock.send(
                MsgType::Data.raw(),
                3,
                server.port(),
                &vec![round as u8; len],
            );
        }
        for _ in 0..(1 + rnd() % 20) {
            let region = rnd() % 3;
            let off = match region {
                0 => MASTER_STATE_OFF + (rnd() as usize % 372) / 4 * 4,
                1 => 2 * SLOT_SIZE + (rnd() as usize % (31 * SLOT_SIZE)) / 4 * 4,
                _ => SLAVE_STATE_OFF + 44, // the slave's slot_queue_recycle
            };
            let v = match rnd() % 4 {
                0 => rnd() as u32,
                1 => (rnd() % 16) as u32,
                2 => mock.tx_pos().wrapping_add((rnd() % 9000) as u32),
                _ => 0x0500_0000 | (rnd() as u32 & 0xFF_FFFF),
            };
            let _ = mock.store(off, v);
        }
        let _ = mock.signal(crate::layout::TRIGGER_OFF);
        let _ = mock.signal(crate::layout::RECYCLE_OFF);
        // Whatever happened, the honest side still answers and shuts down.
        let _ = slave.queue_message(server, &[b"still here"], false);
        let _ = slave.stats();
        slave.shutdown();
        assert!(matches!(
            slave.queue_message(server, &[], true),
            Err(Error::Shutdown)
        ));
    }
}

// ---------------------------------------------------------------- property test

mod prop {
    use super::*;
    use proptest::prelude::*;

    fn pattern(seq: usize, len: usize) -> Vec<u8> {
        (0..len).map(|i| (seq.wrapping_mul(31) + i) as u8).collect()
    }

    fn run(msgs: Vec<(bool, usize, usize)>, start: u32) {
        let p = pair_at(small_config(), start);
        let names = [b"pr0a", b"pr1a", b"pr2a"];
        let mut clients = Vec::new();
        let mut servers = Vec::new();
        let (sh, srx) = recorder();
        let (ch, crx) = recorder();
        for n in names {
            servers.push(p.master.add_service(params(n, 1, 1), sh.clone()).unwrap());
        }
        for n in names {
            clients.push(
                p.slave
                    .open_service(params(n, 1, 1), 0, ch.clone())
                    .unwrap(),
            );
        }
        for _ in names {
            assert!(matches!(next(&srx), ServiceEvent::Opened { .. }));
        }
        // Two sender threads (one per direction), the main thread receives and releases.
        let up: Vec<(usize, usize, usize)> = msgs
            .iter()
            .enumerate()
            .filter(|m| m.1.0)
            .map(|(i, &(_, s, l))| (i, s, l))
            .collect();
        let down: Vec<(usize, usize, usize)> = msgs
            .iter()
            .enumerate()
            .filter(|m| !m.1.0)
            .map(|(i, &(_, s, l))| (i, s, l))
            .collect();
        let (sl, ms) = (p.slave.clone(), p.master.clone());
        let (cl, sv) = (clients.clone(), servers.clone());
        let up2 = up.clone();
        let t1 = std::thread::spawn(move || {
            for (i, s, l) in up2 {
                sl.queue_message(cl[s], &[&pattern(i, l)], true).unwrap();
            }
        });
        let down2 = down.clone();
        let t2 = std::thread::spawn(move || {
            for (i, s, l) in down2 {
                ms.queue_message(sv[s], &[&pattern(i, l)], true).unwrap();
            }
        });
        for (rx, expected, handles) in [(&srx, &up, &servers), (&crx, &down, &clients)] {
            let mut per_service: Vec<VecDeque<(usize, usize)>> = vec![VecDeque::new(); 3];
            for &(i, s, l) in expected.iter() {
                per_service[s].push_back((i, l));
            }
            for _ in 0..expected.len() {
                let (h, e) = rx.recv_timeout(PATIENCE).expect("message");
                let s = handles.iter().position(|&x| x == h).expect("known service");
                let m = message(e);
                let (i, l) = per_service[s].pop_front().expect("expected message");
                assert_eq!(m.data(), &pattern(i, l)[..], "message {i} on service {s}");
            }
        }
        t1.join().unwrap();
        t2.join().unwrap();
        if std::env::var_os("VCHIQ_PROP_VERBOSE").is_some() {
            eprintln!("{} messages, slave {:?}", msgs.len(), p.slave.stats());
        }
        assert_eq!(
            p.slave.stats().protocol_errors + p.master.stats().protocol_errors,
            0
        );
        p.slave.shutdown();
        p.master.shutdown();
    }

    use std::collections::VecDeque;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

        #[test]
        fn random_messages_cross_intact_and_in_order(
            msgs in proptest::collection::vec((any::<bool>(), 0usize..3, prop_oneof![0usize..=64, 0usize..=4088, 4000usize..=4088]), 50..400),
            start_slot in prop_oneof![Just(0u32), (0u32..(1 << 20))],
        ) {
            run(msgs, start_slot.wrapping_mul(4096));
        }
    }
}

#[test]
fn a_pool_server_accepts_concurrent_opens_and_frees_closed_connections() {
    let p = pair();
    let (sh, srx) = recorder();
    p.master
        .add_service_pool(params(b"GCMD", 1, 1), sh)
        .unwrap();
    let listening = |link: &TestLink| {
        link.services()
            .iter()
            .filter(|s| s.state == SrvState::Listening)
            .count()
    };
    // Three clients open at once from three threads.
    let opened: Vec<ServiceHandle> = std::thread::scope(|scope| {
        let joins: Vec<_> = (0..3u32)
            .map(|i| {
                let slave = &p.slave;
                scope.spawn(move || {
                    let (ch, _crx) = recorder();
                    slave
                        .open_service(params(b"GCMD", 1, 1), 100 + i, ch)
                        .unwrap()
                })
            })
            .collect();
        joins.into_iter().map(|j| j.join().unwrap()).collect()
    });
    let mut ids: Vec<u32> = (0..3)
        .map(|_| match next(&srx) {
            ServiceEvent::Opened { client_id, .. } => client_id,
            other => panic!("{other:?}"),
        })
        .collect();
    ids.sort();
    assert_eq!(ids, vec![100, 101, 102]);
    // One listener is always free.
    assert_eq!(listening(&p.master), 1);
    // A closed connection's server is freed; the free listener stays.
    p.slave.remove_service(opened[0]).unwrap();
    assert!(matches!(next(&srx), ServiceEvent::Closed));
    wait_until(|| p.master.services().len() == 3);
    assert_eq!(listening(&p.master), 1);
}
