//! The ping test (`-p`, spec §5.5): message and bulk round-trip times on the `-s`
//! service (`echo`).
//!
//! It runs twice over the sizes {0, 1024, 2048, 4088} and the 21 (async, oneway)
//! variants of the real tool, the large variants with `iters` / 10, / 20 or / 50:
//!
//! 1. through the **VCHI** API: the service is opened with [`Handler::Queue`]
//!    (`is_vchi = 1`), replies are taken with [`Service::dequeue`] into the real tool's
//!    100-byte buffer, and a helper thread plays `vchi_clnt_callback` (it drains the
//!    queue on MESSAGE_AVAILABLE unless the main thread is in its synchronous
//!    queue + blocking-dequeue loop);
//! 2. through the **VCHIQ** API: the service is reopened with `clnt_callback`.
//!
//! For every size and variant: a `MSG_CONFIG` with `blocksize = 0` (quota set-up) and its
//! 1-byte reply, then SET_SERVICE_OPTION(MESSAGE_QUOTA, `-m`); `iters` rounds of `async`
//! ASYNC and `oneway` ONEWAY messages of `max(size, 4)` bytes, interleaved, then one SYNC
//! and a wait for its 1-byte reply (ASYNC replies are zero-length, ONEWAY has none);
//! leftovers are reported as "Unexpected message". With no async and no oneway, CALLBACK
//! bulk transmits of `size` (or 8) bytes, one at a time; with no oneway, `async`
//! NOCALLBACK transmits plus one BLOCKING transmit per round. Each part is preceded by the
//! `MSG_CONFIG` the `echo` server needs to queue its receives.
//!
//! Only timings are printed (`ping (size 1024, 2 async, 0 oneway) -> 93.500000us`, ...);
//! the test passes when every wait returned. The pauses of the real tool between the
//! parts (10 to 60 ms) are kept, so the figures are comparable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vchiq::{BulkMode, Error, Event, Handler, Service, ServiceOption, ServiceParams};

use super::ctrl::{Clnt, open_clnt};
use super::{
    Failed, Options, Signal, Status, TestParams, VCHIQ_TEST_VER, c_string, guarded, initialise,
    lock, log_error, log_trace, msg, per_iter_us,
};

/// vchiq_if.h: `VCHIQ_MAX_MSG_SIZE`.
const MAX_MSG_SIZE: usize = 4088;

/// The sizes of the real tool.
const SIZES: [usize; 4] = [0, 1024, 2048, MAX_MSG_SIZE];

/// (async, oneway, divisor of iters): the real tool's 21 variants per size.
const VARIANTS: [(usize, usize, i32); 21] = [
    (0, 0, 1),
    (0, 0, 1),
    (1, 0, 1),
    (2, 0, 1),
    (10, 0, 1),
    (0, 1, 1),
    (0, 2, 1),
    (0, 10, 1),
    (10, 10, 1),
    (100, 0, 10),
    (0, 100, 10),
    (100, 100, 10),
    (200, 0, 10),
    (0, 200, 10),
    (200, 200, 10),
    (400, 0, 20),
    (0, 400, 20),
    (400, 400, 20),
    (1000, 0, 50),
    (0, 1000, 50),
    (1000, 1000, 50),
];

/// The size of the real tool's VCHI reply buffer (`pong_buf`).
const PONG_BUF: usize = 100;

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Writes the message kind into the first word of the ping buffer.
fn set_magic(buf: &mut [u8], magic: i32) {
    buf[..4].copy_from_slice(&magic.to_le_bytes());
}

/// The ping buffer: `size + 40` bytes that start with the `test_params` block.
fn ping_buf(size: usize, params: &TestParams) -> Vec<u8> {
    let mut buf = vec![0u8; size + TestParams::SIZE];
    buf[..TestParams::SIZE].copy_from_slice(&params.to_bytes());
    buf
}

/// The `MSG_CONFIG` that sets up a bulk part: `blocksize = size` (or 8), no verify, no
/// echo.
fn bulk_config(o: &Options, size: usize, iters: i32) -> TestParams {
    let mut p = o.params;
    p.magic = msg::CONFIG;
    p.blocksize = if size == 0 { 8 } else { size as i32 };
    p.iters = iters;
    p.verify = 0;
    p.echo = 0;
    p
}

/// What `vchi_clnt_callback` shares with the main thread.
#[derive(Debug, Default)]
struct VchiState {
    /// The main thread dequeues replies itself (`g_sync_mode`).
    sync_mode: bool,
    /// -1: a bulk transmit completion is a sync point.
    bulk_tx_received: i32,
}

#[derive(Debug, Default)]
struct Vchi {
    state: Mutex<VchiState>,
    server_reply: Signal,
    stop: AtomicBool,
}

/// Plays `vchi_clnt_callback` for a queue service: waits for its events and acts on them
/// until told to stop or the service goes away.
fn vchi_pump(svc: Service, v: Arc<Vchi>) {
    loop {
        match svc.wait_event(Some(Duration::from_millis(100))) {
            Ok(Event::MessageAvailable) => {
                let s = lock(&v.state);
                if s.sync_mode {
                    continue;
                }
                loop {
                    match svc.dequeue(false) {
                        Ok(data) => {
                            if data.len() > PONG_BUF {
                                log_error(format_args!(
                                    "* reply of {} bytes does not fit the {PONG_BUF}-byte buffer",
                                    data.len()
                                ));
                            }
                            if data.len() > 1 {
                                log_error(format_args!("* server error: {}", c_string(&data)));
                            }
                            if !data.is_empty() {
                                // Responses of length 0 are not sync points.
                                v.server_reply.signal();
                            }
                        }
                        Err(Error::WouldBlock) => break,
                        Err(e) => {
                            log_error(format_args!("vchi_msg_dequeue: {e}"));
                            break;
                        }
                    }
                }
            }
            Ok(Event::BulkTransmitDone { userdata }) => {
                log_trace(format_args!("  BULK_TRANSMIT_DONE({userdata})"));
                if lock(&v.state).bulk_tx_received < 0 {
                    v.server_reply.signal();
                }
            }
            Ok(Event::BulkTransmitAborted { userdata }) => {
                log_error(format_args!("  BULK_TRANSMIT_ABORTED({userdata})"));
            }
            Ok(other) => log_trace(format_args!("vchi callback: {other:?}")),
            Err(Error::Timeout) => {
                if v.stop.load(Ordering::Relaxed) {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// Sends one message, failing the test with the library's reason if it is refused.
fn send(svc: &Service, data: &[u8]) -> Status {
    guarded("vchiq_queue_message", || svc.queue_message(data)).map_err(|e| {
        log_error(format_args!("* failed to send a message: {e}"));
        Failed
    })
}

fn transmit(svc: &Service, data: &[u8], mode: BulkMode) -> Status {
    guarded("vchiq_bulk_transmit", || svc.bulk_transmit(data, mode, 0)).map_err(|e| {
        log_error(format_args!("* bulk transmit ({mode}) failed: {e}"));
        Failed
    })
}

fn set_quota(svc: &Service, quota: i32) {
    if let Err(e) = guarded("vchiq_set_service_option", || {
        svc.set_option(ServiceOption::MessageQuota, quota)
    }) {
        log_error(format_args!(
            "vchiq_set_service_option(MESSAGE_QUOTA, {quota}): {e}"
        ));
    }
}

/// `do_vchi_ping_test`: one size and variant through the VCHI (queue) API.
fn vchi_ping(
    svc: &Service,
    v: &Vchi,
    o: &Options,
    size: usize,
    asyn: usize,
    oneway: usize,
    iters: i32,
) -> Status {
    // Set up the quotas for messages.
    let mut params = o.params;
    params.magic = msg::CONFIG;
    params.blocksize = 0;
    send(svc, &params.to_bytes())?;
    v.server_reply.wait("the reply to the quota MSG_CONFIG")?;
    set_quota(svc, params.client_message_quota);

    let msg_size = size.max(4);
    let mut buf = ping_buf(size, &params);
    lock(&v.state).bulk_tx_received = -1;

    if asyn == 0 && oneway == 0 {
        set_magic(&mut buf, msg::SYNC);
        lock(&v.state).sync_mode = true;
        let start = Instant::now();
        for _ in 0..iters {
            send(svc, &buf[..msg_size])?;
            let reply = guarded("vchi_msg_dequeue(BLOCK_UNTIL_OP_COMPLETE)", || {
                svc.dequeue(true)
            });
            match reply {
                Ok(d) if d.len() <= PONG_BUF => {}
                Ok(d) => log_error(format_args!(
                    "* reply of {} bytes does not fit the {PONG_BUF}-byte buffer",
                    d.len()
                )),
                Err(e) => {
                    log_error(format_args!("vchi_msg_dequeue: {e}"));
                    return Err(Failed);
                }
            }
        }
        println!(
            "vchi ping (size {size}) -> {}us",
            per_iter_us(start.elapsed(), iters)
        );
        sleep_ms(10);
        lock(&v.state).sync_mode = false;
    }

    while let Ok(d) = guarded("vchi_msg_dequeue(NONE)", || svc.dequeue(false)) {
        println!("* Unexpected message found in queue - size {}", d.len());
    }

    let start = Instant::now();
    for _ in 0..iters {
        for j in 0..asyn.max(oneway) {
            if j < asyn {
                set_magic(&mut buf, msg::ASYNC);
                send(svc, &buf[..msg_size])?;
            }
            if j < oneway {
                set_magic(&mut buf, msg::ONEWAY);
                send(svc, &buf[..msg_size])?;
            }
        }
        set_magic(&mut buf, msg::SYNC);
        send(svc, &buf[..msg_size])?;
        v.server_reply.wait("the reply to MSG_SYNC")?;
    }
    println!(
        "vchi ping (size {size}, {asyn} async, {oneway} oneway) -> {}us",
        per_iter_us(start.elapsed(), iters)
    );
    sleep_ms(20);

    if asyn == 0 && oneway == 0 {
        let p = bulk_config(o, size, iters);
        send(svc, &p.to_bytes())?;
        v.server_reply.wait("the reply to the bulk MSG_CONFIG")?;
        sleep_ms(30);
        let block = p.blocksize as usize;
        let start = Instant::now();
        for _ in 0..iters {
            transmit(svc, &buf[..block], BulkMode::Callback)?;
            v.server_reply.wait("BULK_TRANSMIT_DONE")?;
        }
        println!(
            "vchi bulk (size {size}, async) -> {}us",
            per_iter_us(start.elapsed(), iters)
        );
        sleep_ms(40);
    }

    if oneway == 0 {
        let p = bulk_config(o, size, iters * (asyn as i32 + 1));
        send(svc, &p.to_bytes())?;
        v.server_reply.wait("the reply to the bulk MSG_CONFIG")?;
        sleep_ms(50);
        let block = p.blocksize as usize;
        let start = Instant::now();
        for _ in 0..iters {
            for _ in 0..asyn {
                // VCHI_FLAGS_NONE
                transmit(svc, &buf[..block], BulkMode::NoCallback)?;
            }
            // VCHI_FLAGS_BLOCK_UNTIL_DATA_READ
            transmit(svc, &buf[..block], BulkMode::Blocking)?;
        }
        println!(
            "vchi bulk (size {size}, {asyn} async) -> {}us",
            per_iter_us(start.elapsed(), iters)
        );
        sleep_ms(60);
    }
    lock(&v.state).bulk_tx_received = 0;
    Ok(())
}

/// `do_ping_test`: one size and variant through the VCHIQ (callback) API.
fn vchiq_ping(
    svc: &Service,
    c: &Clnt,
    o: &Options,
    size: usize,
    asyn: usize,
    oneway: usize,
    iters: i32,
) -> Status {
    let mut params = o.params;
    params.magic = msg::CONFIG;
    params.blocksize = 0;
    send(svc, &params.to_bytes())?;
    c.server_reply.wait("the reply to the quota MSG_CONFIG")?;
    set_quota(svc, params.client_message_quota);

    let msg_size = size.max(4);
    let mut buf = ping_buf(size, &params);
    lock(&c.state).bulk_tx_received = -1;

    let start = Instant::now();
    for _ in 0..iters {
        for j in 0..asyn.max(oneway) {
            if j < asyn {
                set_magic(&mut buf, msg::ASYNC);
                send(svc, &buf[..msg_size])?;
            }
            if j < oneway {
                set_magic(&mut buf, msg::ONEWAY);
                send(svc, &buf[..msg_size])?;
            }
        }
        set_magic(&mut buf, msg::SYNC);
        send(svc, &buf[..msg_size])?;
        c.server_reply.wait("the reply to MSG_SYNC")?;
    }
    println!(
        "ping (size {size}, {asyn} async, {oneway} oneway) -> {}us",
        per_iter_us(start.elapsed(), iters)
    );
    sleep_ms(20);

    if asyn == 0 && oneway == 0 {
        let p = bulk_config(o, size, iters);
        send(svc, &p.to_bytes())?;
        c.server_reply.wait("the reply to the bulk MSG_CONFIG")?;
        sleep_ms(30);
        let block = p.blocksize as usize;
        let start = Instant::now();
        for _ in 0..iters {
            transmit(svc, &buf[..block], BulkMode::Callback)?;
            c.server_reply.wait("BULK_TRANSMIT_DONE")?;
        }
        println!(
            "bulk (size {size}, async) -> {}us",
            per_iter_us(start.elapsed(), iters)
        );
        sleep_ms(40);
    }

    if oneway == 0 {
        let p = bulk_config(o, size, iters * (asyn as i32 + 1));
        send(svc, &p.to_bytes())?;
        c.server_reply.wait("the reply to the bulk MSG_CONFIG")?;
        sleep_ms(50);
        let block = p.blocksize as usize;
        let start = Instant::now();
        for _ in 0..iters {
            for _ in 0..asyn {
                transmit(svc, &buf[..block], BulkMode::NoCallback)?;
            }
            transmit(svc, &buf[..block], BulkMode::Blocking)?;
        }
        println!(
            "bulk (size {size}, {asyn} async) -> {}us",
            per_iter_us(start.elapsed(), iters)
        );
        sleep_ms(60);
    }
    lock(&c.state).bulk_tx_received = 0;
    Ok(())
}

/// Stops the VCHI helper thread when the VCHI half ends, however it ends.
struct Pump {
    v: Arc<Vchi>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.v.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `-p`: the ping test.
pub fn run(o: &Options) -> Status {
    let iters = o.params.iters;
    println!(
        "Ping test - service:{}, iters:{}, version {}",
        o.servname, iters, VCHIQ_TEST_VER
    );
    let instance = initialise()?;
    let params = ServiceParams::new(o.fourcc(), VCHIQ_TEST_VER, VCHIQ_TEST_VER);

    // Part 1: VCHI (vchi_service_open, is_vchi = 1).
    let vchi = match guarded("vchi_service_open", || {
        instance.open_service(params, Handler::Queue)
    }) {
        Ok(s) => s,
        Err(e) => {
            println!("* failed to open service - already in use?");
            log_error(format_args!("{e}"));
            return Err(Failed);
        }
    };
    {
        let v = Arc::new(Vchi::default());
        let thread = {
            let (svc, v) = (vchi.clone(), Arc::clone(&v));
            std::thread::Builder::new()
                .name("vchi-callback".into())
                .spawn(move || vchi_pump(svc, v))
        };
        let _pump = Pump {
            v: Arc::clone(&v),
            thread: thread.ok(),
        };
        for size in SIZES {
            for (asyn, oneway, div) in VARIANTS {
                vchi_ping(&vchi, &v, o, size, asyn, oneway, iters / div)?;
            }
        }
    }
    if let Err(e) = guarded("vchi_service_close", || vchi.close()) {
        log_error(format_args!("vchi_service_close: {e}"));
    }

    // Part 2: VCHIQ (vchiq_open_service with clnt_callback).
    let clnt = Clnt::new(o.params, vec![Vec::new(); super::NUM_BULK_BUFS]);
    let svc = open_clnt(&instance, o, &clnt)?;
    for size in SIZES {
        for (asyn, oneway, div) in VARIANTS {
            vchiq_ping(&svc, &clnt, o, size, asyn, oneway, iters / div)?;
        }
    }
    if let Err(e) = guarded("vchiq_close_service", || svc.close()) {
        log_error(format_args!("vchiq_close_service: {e}"));
    }
    Ok(())
}
