//! The small modes: the signal test (`-i`), the timer check (`-t`), the vc-cma reserve
//! test (`-r`) and the kill timer (`-K`).
//!
//! - **`-i`** opens the `-s` service and starts a BLOCKING 16-byte bulk transmit that
//!   nothing will consume (no `MSG_CONFIG` was sent, so `echo` has no receive queued).
//!   The real tool relies on the user to interrupt it with a signal, which the driver
//!   answers with `-EINTR` and the library with a WAITING retry. The Rust library hides
//!   that retry (and has no public way to interrupt a call), so here the transmit runs on
//!   its own thread and, after [`SIGNAL_DELAY`], is interrupted by closing the service:
//!   the VideoCore then aborts the outstanding bulk and the transmit must return with an
//!   error. What happened is printed; the test fails if the transmit did not block, or if
//!   it was still blocked after the close.
//! - **`-t`** prints `0`, then `<elapsed us> - sleep 1000` after each 1-second sleep. The
//!   real tool loops forever; here it stops after [`TIMER_LINES`] lines, or the number
//!   given right after `-t`.
//! - **`-r <b> <s>`** would reserve memory through `/dev/vc-cma`, which this
//!   implementation does not have: it says so and exits 255.
//! - **`-K <ms>`** (Android-only in the real tool) kills the process after `ms`.

use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use vchiq::BulkMode;

use super::ctrl::{Clnt, open_clnt};
use super::{
    FAILURE, Failed, Options, Status, VCHIQ_TEST_VER, WAIT_TIMEOUT, guarded, initialise, log_error,
};

/// How long the signal test lets its transmit block before interrupting it.
pub const SIGNAL_DELAY: Duration = Duration::from_secs(2);

/// Lines printed by `-t` unless a count follows it.
pub const TIMER_LINES: u32 = 10;

/// `-i`: the signal test.
pub fn signal_test(o: &Options) -> Status {
    println!(
        "signal test - service:{}, iters:{}, version {}",
        o.servname, o.params.iters, VCHIQ_TEST_VER
    );
    let instance = initialise()?;
    let clnt = Clnt::new(o.params, vec![Vec::new(); super::NUM_BULK_BUFS]);
    let svc = open_clnt(&instance, o, &clnt)?;

    // The real tool sends its `sizes` array {0, 1024, 2048, 4088}: 16 bytes.
    let data: Vec<u8> = [0i32, 1024, 2048, 4088]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let (tx, rx) = channel();
    let sender = svc.clone();
    let started = Instant::now();
    let thread = std::thread::Builder::new()
        .name("blocking-transmit".into())
        .spawn(move || {
            let _ = tx.send(sender.bulk_transmit(&data, BulkMode::Blocking, 0));
        })
        .map_err(|e| {
            log_error(format_args!("cannot start the transmit thread: {e}"));
            Failed
        })?;

    let mut ok = true;
    match rx.recv_timeout(SIGNAL_DELAY) {
        Ok(r) => {
            println!(
                "* blocking bulk transmit of 16 bytes returned after {} ms without being interrupted: {}",
                started.elapsed().as_millis(),
                super::outcome(&r)
            );
            ok = false;
        }
        Err(_) => {
            println!(
                "blocking bulk transmit of 16 bytes still blocked after {} ms; interrupting it by closing the service",
                started.elapsed().as_millis()
            );
        }
    }
    if let Err(e) = guarded("vchiq_close_service", || svc.close()) {
        log_error(format_args!("vchiq_close_service: {e}"));
        ok = false;
    }
    match rx.recv_timeout(WAIT_TIMEOUT) {
        Ok(Ok(())) => {
            println!("blocking bulk transmit completed after the close (the data was consumed)")
        }
        Ok(Err(e)) => println!("blocking bulk transmit ended with an error, as expected: {e}"),
        Err(RecvTimeoutError::Disconnected) => {}
        Err(RecvTimeoutError::Timeout) => {
            println!(
                "* blocking bulk transmit still blocked {} s after the service was closed",
                WAIT_TIMEOUT.as_secs()
            );
            // The process exits with the thread still blocked.
            return Err(Failed);
        }
    }
    let _ = thread.join();
    if ok { Ok(()) } else { Err(Failed) }
}

/// `-t`: prints how long 1-second sleeps really take.
pub fn check_timer(lines: u32) {
    let start = Instant::now();
    let sleep_ms = 1000u64;
    println!("0");
    for _ in 0..lines {
        std::thread::sleep(Duration::from_millis(sleep_ms));
        println!("{} - sleep {sleep_ms}", start.elapsed().as_micros());
    }
}

/// `-r <reserve> <delay>`: `/dev/vc-cma` does not exist here. Returns the exit status.
pub fn reserve_test(reserve: i32, delay: i32) -> u8 {
    println!("* failed to open /dev/vc-cma - rc -1");
    println!(
        "vc-cma (reserve {reserve} bytes for {delay} s) is not available: /dev/vc-cma does not exist in this implementation"
    );
    FAILURE
}

/// `-K <ms>`: kills the process after `ms` milliseconds, as the real tool's
/// `setup_auto_kill` does with SIGALRM.
pub fn setup_auto_kill(ms: i32) {
    if ms <= 0 {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("auto-kill".into())
        .spawn(move || {
            std::thread::sleep(Duration::from_millis(ms as u64));
            println!("Sending signal SIGKILL");
            use std::io::Write;
            let _ = std::io::stdout().flush();
            let pid = std::process::id().to_string();
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status();
            std::process::exit(i32::from(FAILURE));
        });
}
