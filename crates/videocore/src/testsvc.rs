//! The services `vchiq_test` needs: `echo` (x8), `func` (x2) and `fun2` (spec §5).
//!
//! Their behaviour is what the real `vchiq_test` client checks, message by message and
//! bulk by bulk; every rule below cites the part of the test that depends on it.

use vchiq_link::ServiceHandle;

use crate::firmware::Firmware;

/// `MSG_ONEWAY`: no reply.
pub const MSG_ONEWAY: u32 = 1;
/// `MSG_ASYNC`: a zero-length reply.
pub const MSG_ASYNC: u32 = 2;
/// `MSG_SYNC`: a 1-byte reply (the empty string).
pub const MSG_SYNC: u32 = 3;
/// `MSG_CONFIG`: a 40-byte `test_params`.
pub const MSG_CONFIG: u32 = 4;
/// `MSG_ECHO`: the whole message back.
pub const MSG_ECHO: u32 = 5;
/// Size of `struct test_params` (10 x int32).
pub const TEST_PARAMS_SIZE: usize = 40;

/// Per-connection state of an `echo` service.
#[derive(Debug, Default)]
pub struct EchoState {
    bulk_size: u32,
    iters: i32,
    verify: bool,
    echo: bool,
    count: i32,
}

fn word(data: &[u8], i: usize) -> i32 {
    data.get(i * 4..i * 4 + 4)
        .map_or(0, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn error_string(fw: &Firmware, h: ServiceHandle, text: &str) {
    let mut msg = text.as_bytes().to_vec();
    msg.push(0);
    fw.reply(h, &msg);
}

/// A DATA message on `echo`.
pub fn echo_message(fw: &Firmware, h: ServiceHandle, data: &[u8]) {
    if data.len() < 4 {
        return error_string(fw, h, "Message too short");
    }
    match word(data, 0) as u32 {
        MSG_CONFIG => {
            if data.len() != TEST_PARAMS_SIZE {
                return error_string(fw, h, "Bad params size");
            }
            let (blocksize, iters, verify, echo) =
                (word(data, 1), word(data, 2), word(data, 3), word(data, 4));
            let server_quota = word(data, 9);
            if iters > 0 {
                fw.with_echo(h, |s| {
                    *s = EchoState {
                        bulk_size: blocksize.max(0) as u32,
                        iters,
                        verify: verify != 0,
                        echo: echo != 0,
                        count: 0,
                    };
                });
                // A zero-length receive would pair FIFO with the client's next real
                // transmit and abort it (the ping test sends blocksize 0 to set quotas).
                if blocksize > 0 {
                    if let Err(e) = fw.bulk_receive(h, blocksize as u32, 0) {
                        fw.vclog().log(format!("echo: bulk receive failed: {e}"));
                    }
                }
            }
            if server_quota > 0 {
                let _ = fw.link().set_service_option(
                    h,
                    vchiq_abi::enums::ServiceOption::MessageQuota,
                    server_quota,
                );
            }
            fw.reply(h, &[0]);
        }
        MSG_ONEWAY => {}
        MSG_ASYNC => fw.reply(h, &[]),
        MSG_SYNC => fw.reply(h, &[0]),
        MSG_ECHO => fw.reply(h, data),
        _ => error_string(fw, h, "Unexpected message type"),
    }
}

fn echo_next_receive(fw: &Firmware, h: ServiceHandle) {
    let next = fw.with_echo(h, |s| {
        s.count += 1;
        (s.count != s.iters && s.bulk_size > 0).then_some((s.bulk_size, s.count))
    });
    if let Some(Some((size, count))) = next {
        if let Err(e) = fw.bulk_receive(h, size, count as u64) {
            fw.vclog().log(format!("echo: bulk receive failed: {e}"));
        }
    }
}

/// A bulk on `echo` finished.
pub fn echo_bulk_done(fw: &Firmware, h: ServiceHandle, userdata: u64, data: Option<Vec<u8>>) {
    match data {
        // Receive done: echo it back, or count it and go on.
        Some(d) => {
            let echo = fw.with_echo(h, |s| {
                if s.verify {
                    // Data mismatches are only logged by the reference server.
                    let _ = d.len() == s.bulk_size as usize;
                }
                s.echo
            });
            if echo == Some(true) {
                if let Err(e) = fw.bulk_transmit(h, d, userdata) {
                    fw.vclog().log(format!("echo: bulk transmit failed: {e}"));
                }
            } else {
                echo_next_receive(fw, h);
            }
        }
        None => echo_next_receive(fw, h),
    }
}

/// Where a `func` connection is in the scripted exchange of `vchiq_test -f` (spec §5.4).
#[derive(Debug, Default)]
pub struct FuncState {
    received: Vec<u8>,
}

const FUNC_RX_1024: u64 = 1;
const FUNC_TX_1024: u64 = 2;
const FUNC_TX_2048: u64 = 3;
const FUNC_RX_FINAL: u64 = 4;

/// A DATA message on `func`: connection A's 26-byte message is echoed verbatim, then a
/// 1024-byte receive is queued.
pub fn func_message(fw: &Firmware, h: ServiceHandle, data: &[u8]) {
    fw.reply(h, data);
    if let Err(e) = fw.bulk_receive(h, 1024, FUNC_RX_1024) {
        fw.vclog().log(format!("func: bulk receive failed: {e}"));
    }
}

/// A bulk on `func` finished.
pub fn func_bulk_done(fw: &Firmware, h: ServiceHandle, userdata: u64, data: Option<Vec<u8>>) {
    let r = match userdata {
        FUNC_RX_1024 => {
            let d = data.unwrap_or_default();
            fw.with_func(h, |s| s.received = d.clone());
            // Deliberately 1024 against the client's 2048-byte receive: both abort.
            fw.bulk_transmit(h, d, FUNC_TX_1024)
        }
        FUNC_TX_2048 => {
            let r = fw.bulk_receive(h, 1024, FUNC_RX_FINAL);
            fw.reply(h, &[]);
            r
        }
        _ => Ok(()),
    };
    if let Err(e) = r {
        fw.vclog().log(format!("func: bulk failed: {e}"));
    }
}

/// A bulk on `func` was aborted: after the deliberate mismatch, send the data twice.
pub fn func_bulk_aborted(fw: &Firmware, h: ServiceHandle, userdata: u64, transmit: bool) {
    if transmit && userdata == FUNC_TX_1024 {
        let d = fw.with_func(h, |s| s.received.clone()).unwrap_or_default();
        let mut twice = d.clone();
        twice.extend_from_slice(&d);
        twice.resize(2048, 0);
        if let Err(e) = fw.bulk_transmit(h, twice, FUNC_TX_2048) {
            fw.vclog().log(format!("func: bulk transmit failed: {e}"));
        }
    }
}

/// Per-connection state of `fun2` (nothing yet: every request is self-contained).
#[derive(Debug, Default)]
pub struct Fun2State;

/// A DATA message on `fun2`: `[datalen, server_align, align, iteration]`; receive
/// `datalen` bytes, then send them back. `fun2` never sends a message.
pub fn fun2_message(fw: &Firmware, h: ServiceHandle, data: &[u8]) {
    let len = word(data, 0);
    if !(0..=16 * 1024 * 1024).contains(&len) || data.len() < 4 {
        fw.vclog().log(format!(
            "fun2: bad request of {} bytes (datalen {len})",
            data.len()
        ));
        return;
    }
    if let Err(e) = fw.bulk_receive(h, len as u32, len as u64) {
        fw.vclog().log(format!("fun2: bulk receive failed: {e}"));
    }
}

/// A bulk on `fun2` finished: transmit what was received.
pub fn fun2_bulk_done(fw: &Firmware, h: ServiceHandle, userdata: u64, data: Option<Vec<u8>>) {
    if let Some(d) = data {
        if let Err(e) = fw.bulk_transmit(h, d, userdata) {
            fw.vclog().log(format!("fun2: bulk transmit failed: {e}"));
        }
    }
}
