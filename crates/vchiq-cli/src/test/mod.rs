//! `vchiq test` / `vchiq_test`: the Raspberry Pi's VCHIQ test tool, on the Rust client
//! library.
//!
//! The command line, the modes and the lines printed are those of the real `vchiq_test`
//! (spec §5), so that figures from a Pi can be placed beside ours:
//!
//! ```text
//! vchiq_test [options] <mode> [iters]
//! ```
//!
//! | mode | module | what it checks |
//! |---|---|---|
//! | `-f` | [`functional`] | the whole functional test of spec §5.4: local API rules, FUNC version and listener rules, the scripted message/bulk exchange (every callback, in order), the state after shutdown, and 5,184 FUN2 bulk round trips with guard bytes |
//! | `-p` | [`ping`] | message and bulk round-trip times on `echo`, first through the VCHI-style (queue) API, then through the VCHIQ (callback) API |
//! | `-c N` | [`ctrl`] | `iters` messages of N bytes, each echoed back and verified |
//! | `-b K` | [`ctrl`] | bulk echo of K KiB blocks with 2 transmits (and 2 receives) outstanding |
//! | `-i` | [`misc`] | a BLOCKING transmit that nothing consumes, interrupted after a delay |
//! | `-t` | [`misc`] | timer check (no VCHIQ) |
//! | `-r` | [`misc`] | `/dev/vc-cma` reservation: not available here |
//!
//! # Pass or fail
//!
//! The exit status is 0 when the test returned SUCCESS and 255 otherwise (as the real
//! tool's `-1`); usage errors also exit 255. A failed check prints, on stderr, a line in
//! the real tool's `"<line>: <expr> != <value>"` style, naming the Rust source line, the
//! call or value checked, the expected value and what was obtained instead.
//!
//! Unlike the real tool, nothing here waits forever: every wait for the VideoCore gives
//! up after [`WAIT_TIMEOUT`] without progress, and every library call that may block is
//! watched by a watchdog that ends the process (status 255) with a message naming the
//! call if it has not returned after the same time.

mod ctrl;
mod functional;
mod misc;
mod ping;

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use vchiq::FourCc;

/// Options of `vchiq test`: the real vchiq_test's own options, parsed by [`parse`].
#[derive(Args, Debug)]
pub struct TestArgs {
    /// vchiq_test options: -f N, -p, -b KB, -c BYTES, -s XXXX, ...
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// How long a wait for the VideoCore (or a blocking library call) may go without
/// progress before the test fails. The real tool would hang instead.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// vchiq_test.h: `VCHIQ_TEST_VER`, the version every test client uses (3/3).
pub const VCHIQ_TEST_VER: i16 = 3;

/// vchiq_test.h: the message kinds, the first int32 of a control message.
pub mod msg {
    /// No reply.
    pub const ONEWAY: i32 = 1;
    /// A zero-length reply (not a sync point).
    pub const ASYNC: i32 = 2;
    /// A 1-byte reply (the sync point).
    pub const SYNC: i32 = 3;
    /// A `test_params` block.
    pub const CONFIG: i32 = 4;
    /// The message comes back unchanged.
    pub const ECHO: i32 = 5;
}

/// vchiq_test.h: `NUM_BULK_BUFS`, the transmits (and receives) kept outstanding by `-b`.
pub const NUM_BULK_BUFS: usize = 2;

/// vchiq_test.h: `struct test_params` (10 x int32 = 40 bytes), sent as `MSG_CONFIG`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestParams {
    /// Message kind ([`msg::CONFIG`] when sent as a configuration).
    pub magic: i32,
    /// Bulk block size in bytes (message size for `-c`).
    pub blocksize: i32,
    /// Iterations.
    pub iters: i32,
    /// Verify data (0 with `-q`).
    pub verify: i32,
    /// The server echoes bulk data back (0 with `-e`).
    pub echo: i32,
    /// Alignment modulus of the bulk buffers (32, or 4096 with `-A`).
    pub align_size: i32,
    /// Client buffer alignment.
    pub client_align: i32,
    /// Server buffer alignment.
    pub server_align: i32,
    /// `-m`: client message quota (0 = default).
    pub client_message_quota: i32,
    /// `-M`: server message quota (0 = default).
    pub server_message_quota: i32,
}

impl Default for TestParams {
    /// The real tool's `g_params`: {CONFIG, 64, 100, 1, 1, 1, 0, 0, 0, 0}.
    fn default() -> Self {
        TestParams {
            magic: msg::CONFIG,
            blocksize: 64,
            iters: 100,
            verify: 1,
            echo: 1,
            align_size: 1,
            client_align: 0,
            server_align: 0,
            client_message_quota: 0,
            server_message_quota: 0,
        }
    }
}

impl TestParams {
    /// Size of the wire form.
    pub const SIZE: usize = 40;

    /// The 40-byte little-endian wire form.
    pub fn to_bytes(self) -> [u8; Self::SIZE] {
        let words = [
            self.magic,
            self.blocksize,
            self.iters,
            self.verify,
            self.echo,
            self.align_size,
            self.client_align,
            self.server_align,
            self.client_message_quota,
            self.server_message_quota,
        ];
        let mut out = [0u8; Self::SIZE];
        for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// Which test to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `-f`.
    Functional,
    /// `-p`.
    Ping,
    /// `-c N`.
    Ctrl,
    /// `-b K`.
    Bulk,
    /// `-i`.
    Signal,
}

/// Everything the command line set.
#[derive(Clone, Debug)]
pub struct Options {
    /// The test.
    pub mode: Mode,
    /// `g_params`.
    pub params: TestParams,
    /// `-s`: service name for `-b`, `-c`, `-p` and `-i` (4 characters).
    pub servname: String,
    /// `-e` clears it: the server echoes bulk data.
    pub want_echo: bool,
    /// `-v`.
    pub verbose: bool,
    /// `-S`: first func-data iteration (-1 = run parts 1-4 too).
    pub func_data_start: i32,
    /// `-E`: last func-data iteration.
    pub func_data_end: i32,
    /// `-K`: kill the process after this many milliseconds.
    pub kill_after_ms: Option<i32>,
}

impl Options {
    /// The service fourcc of `-s`.
    pub fn fourcc(&self) -> FourCc {
        let b = self.servname.as_bytes();
        FourCc::new(&[b[0], b[1], b[2], b[3]])
    }
}

/// What parsing decided.
#[derive(Debug)]
pub enum Parsed {
    /// Run a test.
    Run(Options),
    /// Exit at once with this status (usage, `-t`, `-r`).
    Exit(u8),
}

/// Exit status of a failed test or a usage error (the real tool's `-1`).
pub const FAILURE: u8 = 255;

/// `vchiq test`: parses the options, runs the test, maps SUCCESS to 0 and ERROR to 255.
pub fn run(a: TestArgs) -> Result<ExitCode> {
    let opts = match parse(&a.args) {
        Parsed::Run(o) => o,
        Parsed::Exit(code) => return Ok(ExitCode::from(code)),
    };
    VERBOSE.store(opts.verbose, Ordering::Relaxed);
    if let Some(ms) = opts.kill_after_ms {
        misc::setup_auto_kill(ms);
    }
    let status = match opts.mode {
        Mode::Functional => functional::run(&opts),
        Mode::Ping => ping::run(&opts),
        Mode::Ctrl => ctrl::ctrl_test(&opts),
        Mode::Bulk => ctrl::bulk_test(&opts),
        Mode::Signal => misc::signal_test(&opts),
    };
    let _ = std::io::stdout().flush();
    Ok(if status.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILURE)
    })
}

/// C `atoi`: optional blanks and sign, then digits; anything else gives 0.
pub fn atoi(s: &str) -> i32 {
    let s = s.trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for c in digits.bytes().take_while(u8::is_ascii_digit) {
        v = (v * 10 + i64::from(c - b'0')).min(i64::from(u32::MAX));
    }
    let v = if neg { -v } else { v };
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// Parses the real tool's command line: options (whole words, not bundled) while the next
/// word starts with `-`, then an optional iteration count. Exactly one mode is required.
///
/// `-t` and `-r` act during parsing, as in the real tool. Usage errors print the usage
/// text and exit 255 (the real `usage()` exits 1; the project's contract is 255).
pub fn parse(args: &[String]) -> Parsed {
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .skip_while(|a| *a == "--")
        .collect();
    let mut o = Options {
        mode: Mode::Functional,
        params: TestParams::default(),
        servname: "echo".into(),
        want_echo: true,
        verbose: false,
        func_data_start: -1,
        func_data_end: i32::MAX,
        kill_after_ms: None,
    };
    let mut modes = Vec::new();
    let mut n = 0;
    // The value of an option, or usage if it is missing.
    macro_rules! value {
        () => {{
            match args.get(n) {
                Some(v) => {
                    n += 1;
                    *v
                }
                None => return usage(),
            }
        }};
    }
    while n < args.len() && args[n].starts_with('-') {
        let arg = args[n];
        n += 1;
        match arg {
            "-s" => {
                o.servname = value!().to_string();
                if o.servname.len() != 4 {
                    return usage();
                }
            }
            "-a" | "-A" => {
                o.params.align_size = if arg == "-A" { 4096 } else { 32 };
                o.params.client_align = atoi(value!());
                o.params.server_align = atoi(value!());
            }
            "-b" => {
                modes.push(Mode::Bulk);
                o.params.blocksize = atoi(value!());
            }
            "-c" => {
                modes.push(Mode::Ctrl);
                o.params.blocksize = atoi(value!());
            }
            "-e" => o.want_echo = false,
            "-f" => modes.push(Mode::Functional),
            "-h" => return usage(),
            "-i" => modes.push(Mode::Signal),
            "-m" => o.params.client_message_quota = atoi(value!()),
            "-M" => o.params.server_message_quota = atoi(value!()),
            "-p" => {
                modes.push(Mode::Ping);
                o.params.iters = 1000;
            }
            "-q" => o.params.verify = 0,
            "-r" => {
                if n + 1 < args.len() {
                    return Parsed::Exit(misc::reserve_test(atoi(args[n]), atoi(args[n + 1])));
                }
                println!("not enough arguments (-r reserve delay)");
                return Parsed::Exit(FAILURE);
            }
            "-K" => match args.get(n) {
                Some(v) => {
                    n += 1;
                    o.kill_after_ms = Some(atoi(v));
                }
                None => {
                    println!("not enough arguments (-K timeout)");
                    return Parsed::Exit(FAILURE);
                }
            },
            "-t" => {
                // The real check loops forever; here a following number bounds it.
                let lines = args
                    .get(n)
                    .map_or(misc::TIMER_LINES, |v| atoi(v).max(1) as u32);
                misc::check_timer(lines);
                return Parsed::Exit(0);
            }
            "-v" => o.verbose = true,
            "-S" => o.func_data_start = atoi(value!()),
            "-E" => o.func_data_end = atoi(value!()),
            _ => {
                println!("* unknown option '{arg}'");
                return usage();
            }
        }
    }
    if modes.len() != 1 {
        return usage();
    }
    o.mode = modes[0];
    if n < args.len() {
        o.params.iters = atoi(args[n]);
        if n + 1 != args.len() {
            return usage();
        }
    }
    Parsed::Run(o)
}

/// Prints the real tool's usage text and exits 255.
fn usage() -> Parsed {
    const TEXT: &str = "\
Usage: vchiq_test [<options>] <mode> <iters>
  where <options> is any of:
    -a <c> <s>  set the client and server bulk alignment (modulo 32)
    -A <c> <s>  set the client and server bulk alignment (modulo 4096)
    -e          disable echoing in the main bulk transfer mode
    -k <n>      skip the first <n> func data tests
    -m <n>      set the client message quota to <n>
    -M <n>      set the server message quota to <n>
    -q          disable data verification
    -s ????     service (any 4 characters)
    -v          enable more verbose output
    -r <b> <s>  reserve <b> bytes for <s> seconds
    -K <t>      send a SIGKILL after <t> ms
  and <mode> is one of:
    -c <size>   control test (size in bytes)
    -b <size>   bulk test (size in kilobytes)
    -f          functional test
    -p          ping test
    -t          check the timer
  and <iters> is the number of test iterations";
    println!("{TEXT}");
    Parsed::Exit(FAILURE)
}

// ---------------------------------------------------------------------------------------
// Logging, in the style of the real tool's vcos log category "vchiq_test" (stderr).

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Whether `-v` was given.
pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// `vcos_log_error`: always shown, on stderr.
pub fn log_error(args: fmt::Arguments<'_>) {
    let _ = std::io::stdout().flush();
    eprintln!("vchiq_test: {args}");
}

/// `vcos_log_info`: shown at the default level, on stderr.
pub fn log_info(args: fmt::Arguments<'_>) {
    let _ = std::io::stdout().flush();
    eprintln!("vchiq_test: {args}");
}

/// `vcos_log_trace`: shown with `-v`, on stderr.
pub fn log_trace(args: fmt::Arguments<'_>) {
    if verbose() {
        eprintln!("vchiq_test: {args}");
    }
}

/// C's `%f` of a float (`-nan` and `inf` as glibc prints them).
pub fn c_float(v: f32) -> String {
    if v.is_nan() {
        "-nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{v:.6}")
    }
}

/// Microseconds per iteration, as the real tool computes it: `(float)elapsed / iters`.
pub fn per_iter_us(elapsed: Duration, iters: i32) -> String {
    c_float(elapsed.as_micros() as f32 / iters as f32)
}

// ---------------------------------------------------------------------------------------
// Outcomes and checks.

/// A test step failed; what failed has already been printed. The real `VCHIQ_ERROR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failed;

/// The result of a test or a step: `Ok` is `VCHIQ_SUCCESS`.
pub type Status<T = ()> = std::result::Result<T, Failed>;

/// How a library call turned out, for the failure lines: `VCHIQ_SUCCESS` or
/// `VCHIQ_ERROR` with the library's explanation.
pub fn outcome<T, E: fmt::Display>(r: &std::result::Result<T, E>) -> String {
    match r {
        Ok(_) => "VCHIQ_SUCCESS".into(),
        Err(e) => format!("VCHIQ_ERROR: {e}"),
    }
}

/// `EXPECT(call, VCHIQ_SUCCESS)`: evaluates a library call under the watchdog; on success
/// gives its value, otherwise prints `"<line>: <call> != VCHIQ_SUCCESS (got ...)"` and
/// returns [`Failed`] from the enclosing function.
macro_rules! expect_ok {
    ($e:expr) => {{
        let r = {
            let _g = $crate::test::Guard::arm(stringify!($e));
            $e
        };
        match r {
            Ok(v) => {
                $crate::test::log_trace(format_args!(
                    "{}: {} == VCHIQ_SUCCESS",
                    line!(),
                    stringify!($e)
                ));
                v
            }
            Err(e) => {
                $crate::test::log_error(format_args!(
                    "{}: {} != VCHIQ_SUCCESS (got VCHIQ_ERROR: {})",
                    line!(),
                    stringify!($e),
                    e
                ));
                return Err($crate::test::Failed);
            }
        }
    }};
}

/// `EXPECT(call, VCHIQ_ERROR)`: the call must fail; otherwise prints
/// `"<line>: <call> != VCHIQ_ERROR (got VCHIQ_SUCCESS)"` and returns [`Failed`].
macro_rules! expect_err {
    ($e:expr) => {{
        let r = {
            let _g = $crate::test::Guard::arm(stringify!($e));
            $e
        };
        match r {
            Err(e) => {
                $crate::test::log_trace(format_args!(
                    "{}: {} == VCHIQ_ERROR ({})",
                    line!(),
                    stringify!($e),
                    e
                ));
            }
            Ok(_) => {
                $crate::test::log_error(format_args!(
                    "{}: {} != VCHIQ_ERROR (got VCHIQ_SUCCESS)",
                    line!(),
                    stringify!($e)
                ));
                return Err($crate::test::Failed);
            }
        }
    }};
}

/// `EXPECT(value, expected)` for plain values: prints
/// `"<line>: <expr> != <expected> (got <actual>)"` and returns [`Failed`] on mismatch.
macro_rules! expect_eq {
    ($e:expr, $v:expr) => {{
        let actual = $e;
        let expected = $v;
        if actual != expected {
            $crate::test::log_error(format_args!(
                "{}: {} != {} (got {:?})",
                line!(),
                stringify!($e),
                stringify!($v),
                actual
            ));
            return Err($crate::test::Failed);
        }
        $crate::test::log_trace(format_args!(
            "{}: {} == {}",
            line!(),
            stringify!($e),
            stringify!($v)
        ));
    }};
}

pub(crate) use {expect_eq, expect_err, expect_ok};

// ---------------------------------------------------------------------------------------
// Events and the watchdog.

/// `VCOS_EVENT_T`: a binary event. Signalling a signalled event does nothing; a wait
/// consumes the signal.
#[derive(Debug, Default)]
pub struct Signal {
    set: Mutex<bool>,
    cv: Condvar,
}

impl Signal {
    /// `vcos_event_signal`.
    pub fn signal(&self) {
        *self.set.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.cv.notify_all();
    }

    /// `vcos_event_wait` with a limit: `true` if the event was signalled in time.
    pub fn wait_for(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        while !*set {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            set = self
                .cv
                .wait_timeout(set, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *set = false;
        true
    }

    /// Waits up to [`WAIT_TIMEOUT`]; on timeout prints `"* timed out ... waiting for <what>"`
    /// and fails.
    pub fn wait(&self, what: &str) -> Status {
        if self.wait_for(WAIT_TIMEOUT) {
            Ok(())
        } else {
            log_error(format_args!(
                "* timed out after {} s waiting for {what}",
                WAIT_TIMEOUT.as_secs()
            ));
            Err(Failed)
        }
    }

    /// Waits for a signal that may take long to come (a whole bulk run): fails only when
    /// `progress()` has not changed for [`WAIT_TIMEOUT`].
    pub fn wait_progress(&self, what: &str, progress: impl Fn() -> i64) -> Status {
        let mut last = progress();
        loop {
            if self.wait_for(WAIT_TIMEOUT) {
                return Ok(());
            }
            let now = progress();
            if now == last {
                log_error(format_args!(
                    "* timed out: no progress for {} s waiting for {what}",
                    WAIT_TIMEOUT.as_secs()
                ));
                return Err(Failed);
            }
            last = now;
        }
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (the test state is
/// counters and flags).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The calls currently watched, by id: what they are and when they started.
#[derive(Default)]
struct Watched {
    calls: HashMap<u64, (&'static str, Instant)>,
}

static WATCHED: OnceLock<Mutex<Watched>> = OnceLock::new();
static NEXT_GUARD: AtomicU64 = AtomicU64::new(1);

fn watched() -> &'static Mutex<Watched> {
    WATCHED.get_or_init(|| {
        // The watchdog polls: arming and disarming are then just a map insert and remove.
        let _ = std::thread::Builder::new()
            .name("vchiq-test-watchdog".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(Duration::from_millis(250));
                    let late = {
                        let w = lock(watched());
                        w.calls
                            .values()
                            .find(|(_, t)| t.elapsed() > WAIT_TIMEOUT)
                            .map(|(what, _)| *what)
                    };
                    if let Some(what) = late {
                        log_error(format_args!(
                            "* no answer after {} s: {what} is still blocked; giving up",
                            WAIT_TIMEOUT.as_secs()
                        ));
                        std::process::exit(i32::from(FAILURE));
                    }
                }
            });
        Mutex::new(Watched::default())
    })
}

/// A library call in progress, watched by the watchdog until dropped.
#[must_use]
pub struct Guard(u64);

impl Guard {
    /// Starts watching the call `what`.
    pub fn arm(what: &'static str) -> Guard {
        let id = NEXT_GUARD.fetch_add(1, Ordering::Relaxed);
        lock(watched()).calls.insert(id, (what, Instant::now()));
        Guard(id)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        lock(watched()).calls.remove(&self.0);
    }
}

/// Runs `f` under the watchdog.
pub fn guarded<T>(what: &'static str, f: impl FnOnce() -> T) -> T {
    let _g = Guard::arm(what);
    f()
}

/// The bytes of a reply as the C tool would print them with `%s` (up to the first NUL).
pub fn c_string(data: &[u8]) -> String {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
}

/// Connects to the daemon (`vchiq_initialise` + `vchiq_connect`), printing the real
/// tool's message on failure.
pub fn initialise() -> Status<vchiq::Instance> {
    match guarded("vchiq_initialise", vchiq::Instance::connect) {
        Ok(i) => Ok(i),
        Err(e) => {
            println!("* failed to open vchiq instance");
            log_error(format_args!("{e}"));
            Err(Failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_like_the_real_tool() {
        let Parsed::Run(o) = parse(&args("-f 2")) else {
            panic!()
        };
        assert_eq!((o.mode, o.params.iters), (Mode::Functional, 2));
        let Parsed::Run(o) = parse(&args("-p")) else {
            panic!()
        };
        assert_eq!((o.mode, o.params.iters), (Mode::Ping, 1000));
        let Parsed::Run(o) = parse(&args("-s fun2 -q -e -m 5 -M 6 -A 1 2 -b 16 20")) else {
            panic!()
        };
        assert_eq!(
            (o.mode, o.params.blocksize, o.params.iters),
            (Mode::Bulk, 16, 20)
        );
        assert_eq!(
            (o.params.verify, o.want_echo, o.servname.as_str()),
            (0, false, "fun2")
        );
        assert_eq!(
            (o.params.client_message_quota, o.params.server_message_quota),
            (5, 6)
        );
        assert_eq!(
            (
                o.params.align_size,
                o.params.client_align,
                o.params.server_align
            ),
            (4096, 1, 2)
        );
        assert!(matches!(parse(&args("-x -f")), Parsed::Exit(255)));
        assert!(matches!(parse(&args("-f -p")), Parsed::Exit(255)));
        assert!(matches!(parse(&args("2")), Parsed::Exit(255)));
        assert!(matches!(parse(&args("-f 2 3")), Parsed::Exit(255)));
        assert!(matches!(parse(&args("-s abc -f")), Parsed::Exit(255)));
        assert!(matches!(parse(&args("-c")), Parsed::Exit(255)));
    }

    #[test]
    fn atoi_and_params() {
        assert_eq!(
            (atoi("12x"), atoi("-3"), atoi("x"), atoi(" 7")),
            (12, -3, 0, 7)
        );
        let b = TestParams::default().to_bytes();
        assert_eq!(&b[..8], &[4, 0, 0, 0, 64, 0, 0, 0]);
        assert_eq!(c_float(f32::NAN), "-nan");
        assert_eq!(c_float(1.5), "1.500000");
    }
}
