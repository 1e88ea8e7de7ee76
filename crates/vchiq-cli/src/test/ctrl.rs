//! The control (`-c N`) and bulk (`-b K`) tests, and `clnt_callback`, the callback they,
//! the ping test's second half and the signal test share (spec §5.6).
//!
//! - **`-c N`** sends `iters` messages of N bytes (at least 4) that start with
//!   `MSG_ECHO`, without waiting between them. The `echo` server returns each one; the
//!   callback checks every echo against the block it came from (unless `-q`) and the
//!   test ends when all `iters` came back. Any other reply longer than one byte is a
//!   server error and fails the test.
//! - **`-b K`** sends one `MSG_CONFIG` (K x 1024-byte blocks, `iters`, echo unless `-e`,
//!   verify unless `-q`) and needs the empty-string reply; anything else is a fatal
//!   "server error". It then keeps 2 bulk transmits (and, with echo, 2 receives)
//!   outstanding, userdata = sequence number, each completion queueing the next, until
//!   `iters` transmits (and receives) completed. As in the real tool, data mismatches of
//!   echoed blocks are logged but do not fail the test.
//!
//! Both print `Elapsed time: <n>us per iteration`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vchiq::{BulkMode, Event, Handler, Instance, Service, ServiceParams};

use super::{
    Failed, NUM_BULK_BUFS, Options, Signal, Status, TestParams, VCHIQ_TEST_VER, c_string, guarded,
    initialise, lock, log_error, log_info, log_trace, msg,
};

/// The state `clnt_callback` shares with the main thread (the real tool's globals).
#[derive(Debug)]
pub struct ClntState {
    /// `g_params`.
    pub params: TestParams,
    /// The last error string the server sent (`g_server_error`).
    pub server_error: Option<String>,
    /// Echoed control messages received and verified.
    pub ctrl_received: i32,
    /// Bulk transmits queued.
    pub bulk_tx_sent: i32,
    /// Bulk receives queued.
    pub bulk_rx_sent: i32,
    /// Bulk transmits completed; -1 makes a completion a sync point (ping test).
    pub bulk_tx_received: i32,
    /// Bulk receives completed.
    pub bulk_rx_received: i32,
    /// The blocks sent (`bulk_tx_data`).
    pub tx_data: Vec<Vec<u8>>,
}

/// `clnt_callback`'s shared state and the two events it signals.
#[derive(Debug)]
pub struct Clnt {
    /// The counters and buffers.
    pub state: Mutex<ClntState>,
    /// `g_server_reply`: a reply that is a sync point arrived (or an error).
    pub server_reply: Signal,
    /// `g_shutdown`: the whole run completed.
    pub shutdown: Signal,
}

impl Clnt {
    /// State for a run with `params`, sending the blocks `tx_data`.
    pub fn new(params: TestParams, tx_data: Vec<Vec<u8>>) -> Arc<Clnt> {
        Arc::new(Clnt {
            state: Mutex::new(ClntState {
                params,
                server_error: None,
                ctrl_received: 0,
                bulk_tx_sent: 0,
                bulk_rx_sent: 0,
                bulk_tx_received: 0,
                bulk_rx_received: 0,
                tx_data,
            }),
            server_reply: Signal::default(),
            shutdown: Signal::default(),
        })
    }

    /// A [`Handler`] that runs [`clnt_callback`] on this state.
    pub fn handler(self: &Arc<Self>) -> Handler {
        let me = Arc::clone(self);
        Handler::callback(move |svc, ev| clnt_callback(&me, svc, ev))
    }

    /// The server error, if one was reported.
    pub fn server_error(&self) -> Option<String> {
        lock(&self.state).server_error.clone()
    }

    /// A number that grows while the run makes progress.
    pub fn progress(&self) -> i64 {
        let s = lock(&self.state);
        i64::from(s.ctrl_received) + i64::from(s.bulk_tx_received) + i64::from(s.bulk_rx_received)
    }
}

/// The real `mem_check`: prints every differing byte and a summary; `true` if equal.
pub fn mem_check(expected: &[u8], actual: &[u8]) -> bool {
    if expected == actual {
        return true;
    }
    for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
        if e != a {
            println!("{i:08x},{i:x}: {e:02x} <-> {a:02x}");
        }
    }
    if expected.len() != actual.len() {
        println!("length {} <-> {}", expected.len(), actual.len());
    }
    println!("mem_check failed - buffer {:x}, size {}", 0, expected.len());
    false
}

/// `clnt_callback` (VCHIQ mode): interprets replies and keeps the bulk pipeline full.
///
/// - a message of 0 or 1 bytes is OK; size 1 is a sync point, size 0 is not;
/// - a message starting with `MSG_ECHO` is a control echo: verified against the block
///   sent (unless `-q`), counted, and the last one ends the run;
/// - any other message is an error string from the server;
/// - a transmit completion with `bulk_tx_received < 0` is a sync point (ping test);
///   otherwise it queues the next transmit; a receive completion verifies and queues the
///   next receive.
pub fn clnt_callback(c: &Clnt, svc: &Service, ev: Event) {
    let mut s = lock(&c.state);
    match ev {
        Event::Message(data) => {
            if data.len() <= 1 {
                // A 1-byte reply is a sync point; 0 bytes is not.
            } else if data.len() >= 4
                && i32::from_le_bytes([data[0], data[1], data[2], data[3]]) == msg::ECHO
            {
                let block = usize::try_from(s.params.blocksize).unwrap_or(0);
                let sent = &s.tx_data[s.ctrl_received as usize % NUM_BULK_BUFS];
                let got = &data[..data.len().min(block)];
                if s.params.verify != 0 && !mem_check(&sent[..block.min(sent.len())], got) {
                    s.server_error = Some("corrupt data".into());
                } else {
                    s.ctrl_received += 1;
                }
                if s.server_error.is_some() || s.ctrl_received == s.params.iters {
                    c.shutdown.signal();
                }
            } else {
                s.server_error = Some(c_string(&data));
            }
            if !data.is_empty() || s.server_error.is_some() {
                c.server_reply.signal();
            }
        }
        Event::BulkTransmitDone { userdata } => {
            let i = userdata as i32;
            log_trace(format_args!("  BULK_TRANSMIT_DONE({i})"));
            if s.bulk_tx_received < 0 {
                c.server_reply.signal();
            } else {
                if i != s.bulk_tx_received {
                    log_error(format_args!(
                        "BULK_TRANSMIT_DONE({i}) != expected {}",
                        s.bulk_tx_received
                    ));
                }
                s.bulk_tx_received += 1;
                if s.bulk_tx_sent < s.params.iters {
                    let n = s.bulk_tx_sent;
                    let block = s.tx_data[i as usize % NUM_BULK_BUFS].clone();
                    if let Err(e) = svc.bulk_transmit(&block, BulkMode::Callback, n as u64) {
                        log_error(format_args!("* failed to queue bulk transmit {n}: {e}"));
                        s.server_error = Some(format!("bulk transmit failed: {e}"));
                        c.shutdown.signal();
                    }
                    s.bulk_tx_sent += 1;
                }
            }
        }
        Event::BulkReceiveDone { userdata, data } => {
            let i = userdata as i32;
            log_trace(format_args!("  BULK_RECEIVE_DONE({i})"));
            if i != s.bulk_rx_received {
                log_error(format_args!(
                    "BULK_RECEIVE_DONE({i}) != expected {}",
                    s.bulk_rx_received
                ));
            }
            let sent = &s.tx_data[i as usize % NUM_BULK_BUFS];
            if s.params.verify != 0 && !mem_check(sent, &data) {
                log_error(format_args!(
                    "* Data corruption - {i}: {}, {}, {}",
                    0, 0, s.params.blocksize
                ));
            }
            s.bulk_rx_received += 1;
            if s.bulk_rx_sent < s.params.iters {
                let n = s.bulk_rx_sent;
                let len = usize::try_from(s.params.blocksize).unwrap_or(0);
                if let Err(e) = svc.bulk_receive(len, BulkMode::Callback, n as u64) {
                    log_error(format_args!("* failed to queue bulk receive {n}: {e}"));
                    s.server_error = Some(format!("bulk receive failed: {e}"));
                    c.shutdown.signal();
                }
                s.bulk_rx_sent += 1;
            }
        }
        Event::BulkTransmitAborted { userdata } => {
            log_info(format_args!("  BULK_TRANSMIT_ABORTED({userdata})"))
        }
        Event::BulkReceiveAborted { userdata } => {
            log_info(format_args!("  BULK_RECEIVE_ABORTED({userdata})"))
        }
        Event::Opened | Event::Closed | Event::MessageAvailable => {}
    }
    if s.bulk_tx_received == s.params.iters
        && (s.params.echo == 0 || s.bulk_rx_received == s.params.iters)
    {
        c.shutdown.signal();
    }
}

/// Opens the `-s` service with `clnt_callback`, printing the real message on failure.
pub fn open_clnt(instance: &Instance, o: &Options, clnt: &Arc<Clnt>) -> Status<Service> {
    let params = ServiceParams::new(o.fourcc(), VCHIQ_TEST_VER, VCHIQ_TEST_VER);
    match guarded("vchiq_open_service", || {
        instance.open_service(params, clnt.handler())
    }) {
        Ok(s) => Ok(s),
        Err(e) => {
            println!("* failed to open service - already in use?");
            log_error(format_args!("{e}"));
            Err(Failed)
        }
    }
}

/// Removes the service and shuts the instance down (the real tool ignores both results;
/// a failure is logged here).
fn finish(instance: Instance, svc: &Service) {
    if let Err(e) = guarded("vchiq_remove_service", || svc.remove()) {
        log_error(format_args!("vchiq_remove_service: {e}"));
    }
    log_trace(format_args!("vchiq_test: shutting down"));
    if let Err(e) = guarded("vchiq_shutdown", || instance.shutdown()) {
        log_error(format_args!("vchiq_shutdown: {e}"));
    }
}

/// `Elapsed time: <n>us per iteration` (integer microseconds, as the real tool).
fn print_elapsed(elapsed: Duration, iters: i32) {
    let per = if iters > 0 {
        elapsed.as_micros() as u64 / iters as u64
    } else {
        0
    };
    println!("Elapsed time: {per}us per iteration");
}

/// `-c N`: the control (message echo) test.
pub fn ctrl_test(o: &Options) -> Status {
    let mut params = o.params;
    params.blocksize = params.blocksize.max(4);
    let block = params.blocksize as usize;
    let tx_data: Vec<Vec<u8>> = (0..NUM_BULK_BUFS)
        .map(|i| {
            let mut b = vec![0u8; block];
            b[..4].copy_from_slice(&msg::ECHO.to_le_bytes());
            for j in (4..block).step_by(4) {
                let w = (((0x80 | i as u32) << 24) + j as u32).to_le_bytes();
                let n = (block - j).min(4);
                b[j..j + n].copy_from_slice(&w[..n]);
            }
            b
        })
        .collect();
    let instance = initialise()?;
    let clnt = Clnt::new(params, tx_data.clone());
    let svc = open_clnt(&instance, o, &clnt)?;
    println!(
        "Ctrl test - service:{}, block size:{}, iters:{}",
        o.servname, params.blocksize, params.iters
    );
    let start = Instant::now();
    let mut failed = false;
    for i in 0..params.iters.max(0) as usize {
        if let Err(e) = guarded("vchiq_queue_message", || {
            svc.queue_message(&tx_data[i % NUM_BULK_BUFS])
        }) {
            println!("* failed to send a message");
            log_error(format_args!("{e}"));
            failed = true;
            break;
        }
        if let Some(err) = clnt.server_error() {
            println!("* error - {err}");
            failed = true;
            break;
        }
    }
    log_trace(format_args!("Sent all messages"));
    if !failed && params.echo != 0 && params.iters > 0 {
        log_trace(format_args!("vchiq_test: waiting for shutdown"));
        if clnt
            .shutdown
            .wait_progress("the echoed messages", || clnt.progress())
            .is_err()
        {
            failed = true;
        }
    }
    if !failed && let Some(err) = clnt.server_error() {
        println!("* error - {err}");
        failed = true;
    }
    if failed {
        finish(instance, &svc);
        return Err(Failed);
    }
    let elapsed = start.elapsed();
    finish(instance, &svc);
    print_elapsed(elapsed, params.iters);
    Ok(())
}

/// `-b K`: the bulk echo test.
pub fn bulk_test(o: &Options) -> Status {
    let mut params = o.params;
    params.blocksize = params.blocksize.saturating_mul(1024);
    let block = usize::try_from(params.blocksize).unwrap_or(0);
    let tx_data: Vec<Vec<u8>> = (0..NUM_BULK_BUFS)
        .map(|i| {
            let mut b = vec![0u8; block];
            for j in (0..block).step_by(4) {
                let w = (((0x80 | i as u32) << 24) + j as u32).to_le_bytes();
                let n = (block - j).min(4);
                b[j..j + n].copy_from_slice(&w[..n]);
            }
            b
        })
        .collect();
    let instance = initialise()?;
    params.echo = i32::from(o.want_echo);
    let clnt = Clnt::new(params, tx_data.clone());
    let svc = open_clnt(&instance, o, &clnt)?;
    println!(
        "Bulk test - service:{}, block size:{}, iters:{}",
        o.servname, params.blocksize, params.iters
    );

    if let Err(e) = guarded("vchiq_queue_message(CONFIG)", || {
        svc.queue_message(&params.to_bytes())
    }) {
        log_error(format_args!("* failed to send the configuration: {e}"));
        return Err(Failed);
    }
    clnt.server_reply.wait("the server's reply to MSG_CONFIG")?;
    if let Some(err) = clnt.server_error() {
        println!("* server error: {err}");
        return Err(Failed);
    }

    let num_bulk_bufs = (NUM_BULK_BUFS as i32).min(params.iters).max(0);
    let start = Instant::now();
    {
        // Held while queueing, as the real tool holds g_mutex: completions wait until the
        // first bulks are all queued and counted.
        let mut s = lock(&clnt.state);
        for i in 0..num_bulk_bufs {
            let tx = guarded("vchiq_queue_bulk_transmit", || {
                svc.bulk_transmit(&tx_data[i as usize], BulkMode::Callback, i as u64)
            });
            if let Err(e) = tx {
                log_error(format_args!("* failed to queue bulk transmit {i}: {e}"));
                return Err(Failed);
            }
            log_trace(format_args!("vchiq_test: queued bulk tx {i}"));
            s.bulk_tx_sent += 1;
            if params.echo != 0 {
                let rx = guarded("vchiq_queue_bulk_receive", || {
                    svc.bulk_receive(block, BulkMode::Callback, i as u64)
                });
                if let Err(e) = rx {
                    log_error(format_args!("* failed to queue bulk receive {i}: {e}"));
                    return Err(Failed);
                }
                log_trace(format_args!("vchiq_test: queued bulk rx {i}"));
                s.bulk_rx_sent += 1;
            }
        }
    }
    log_trace(format_args!("Sent all messages"));
    log_trace(format_args!("vchiq_test: waiting for shutdown"));
    if params.iters > 0 {
        clnt.shutdown
            .wait_progress("the bulk transfers", || clnt.progress())?;
    }
    let elapsed = start.elapsed();
    if let Some(err) = clnt.server_error() {
        println!("* error - {err}");
        finish(instance, &svc);
        return Err(Failed);
    }
    finish(instance, &svc);
    print_elapsed(elapsed, params.iters);
    Ok(())
}
