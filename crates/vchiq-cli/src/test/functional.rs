//! The functional test (`-f`, spec §5.4): `iters` iterations of five parts.
//!
//! 1. **Local API rules** (no VideoCore traffic): GET_CONFIG accepts sizes 19 and 20 and
//!    refuses 21, `max_msg_size` is 4088; two FUNC servers with `func_clnt_callback` are
//!    accepted and a third with another callback is refused; AUTOCLOSE 0/1 are accepted
//!    and option 42 refused; a removed service cannot be removed again, nor used for
//!    messages, options or bulks; shutdown succeeds.
//! 2. **FUNC open rules**: on a new instance, opening before connect fails; after it,
//!    versions 0, 1 and 4 are refused by the VideoCore and 3 accepted (connection A,
//!    userdata 1); `'none'` has no listener; exactly two FUNC listeners exist (B, userdata
//!    2, then a third open fails); removing B frees its listener again.
//! 3. **The scripted exchange**: a 26-byte 4-element message on A, a 2048-byte transmit
//!    on B (0x2001), a 1024-byte transmit on A (0x1001); then every callback is checked in
//!    order, non-bulk and bulk separately: CLOSED(2); MESSAGE(1, the 26 bytes);
//!    MESSAGE(1, 0 bytes), which queues receive 0x1004; CLOSED(1) after removing A;
//!    CLOSED(2) at shutdown. And TRANSMIT_DONE(0x1001), which queues a 2048-byte receive
//!    0x1002; RECEIVE_ABORTED(0x1002, the VideoCore's deliberate 1024-byte mismatch), which
//!    queues 0x1003; RECEIVE_DONE(0x1003); RECEIVE_ABORTED(0x1004) when A closes;
//!    TRANSMIT_ABORTED(0x2001) when B closes. Any extra, missing or reordered callback
//!    fails.
//! 4. **After shutdown**: open, add and connect on the shut-down instance all fail.
//! 5. **Bulk data** on FUN2: 5,184 round trips (sizes 1..63 at every client/server
//!    alignment in {0, 16, 8, 4, 2, 1} and at page-straddling offsets 4096 - {32, ..., 1};
//!    sizes 64..8192 at alignments {0, 1, 31} x server {0, 1, 31} + 0..8). Each sends
//!    `[datalen, server_align, align, iteration]`, queues a receive and a transmit of the
//!    pattern `i % 32 == 0 ? i >> 5 : i` (last byte 0), and checks the 32-byte guard areas
//!    around the receive buffer and the exact pattern. `-S`/`-E` limit the iterations run
//!    (and `-S` skips parts 1-4).
//!
//! # What the Rust library cannot express, and how it is done here
//!
//! These rules belong to libvchiq_arm (or need an ioctl argument the Rust API does not
//! take); [`Lib`] plays them in this file, documented at each method:
//!
//! - [`Instance::connect`] does `vchiq_initialise` **and** `vchiq_connect`. The test keeps
//!   its own "connected" flag: `open_service` before [`Lib::connect`] fails as the driver
//!   would (`-ENOTCONN`), and the part-1 servers are LISTENING rather than HIDDEN (which
//!   the VideoCore cannot see: it never opens an ARM `func`).
//! - [`Instance::config`] always asks for 20 bytes: sizes 19 (copied short) and 21
//!   (`-EINVAL`) are applied locally to the 20-byte answer.
//! - "A second server with the same fourcc and a different callback is refused" is a
//!   libvchiq_arm rule that the Rust library does not keep (closures cannot be compared):
//!   [`Lib::add_service`] keeps it by callback kind.
//! - [`ServiceOption`] cannot hold the invalid option 42: [`Lib::set_option`] refuses it
//!   as the driver does (`-EIO`).
//! - `vchiq_connect` on a shut-down instance: the Rust API has no connect on an existing
//!   instance, so [`Lib::connect`] refuses it after [`Lib::shutdown`]. `open_service` and
//!   `add_service` on the shut-down instance do reach the library.
//! - The real test's "invalid buffer" receive (a NULL pointer) has no Rust equivalent; a
//!   receive on the removed handle is checked instead.
//! - Bulk buffers: the library receives into a memfd and hands the bytes over in
//!   [`Event::BulkReceiveDone`]. Part 5 copies them into a guarded buffer at the chosen
//!   alignment, so a receive that delivers a byte too many or too few is caught by the
//!   guard and pattern checks exactly as in the real test.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use vchiq::{BulkMode, Event, FourCc, Handler, Instance, Service, ServiceOption, ServiceParams};
use vchiq_abi::common::Config;

use super::ctrl::Clnt;
use super::{
    Failed, Options, Signal, Status, TestParams, VCHIQ_TEST_VER, expect_eq, expect_err, expect_ok,
    lock, log_error, log_trace,
};

/// vchiq_test.h: `FUNC_FOURCC`.
const FUNC: FourCc = FourCc::new(b"func");
/// vchiq_test.h: `FUN2_FOURCC`.
const FUN2: FourCc = FourCc::new(b"fun2");
/// A fourcc nobody serves.
const NONE: FourCc = FourCc::new(b"none");
/// vchiq_test.h: `SERVICE1_DATA_SIZE`.
const SERVICE1_DATA_SIZE: usize = 1024;
/// vchiq_test.h: `SERVICE2_DATA_SIZE`.
const SERVICE2_DATA_SIZE: usize = 2048;
/// vchiq_test.h: `FUN2_MAX_DATA_SIZE`.
const FUN2_MAX_DATA_SIZE: i32 = 16384;
/// The page size the alignments are relative to.
const PAGE_SIZE: i32 = 4096;
/// Guard bytes before the receive buffer.
const PROLOGUE_SIZE: usize = 32;
/// Guard bytes after the receive buffer.
const EPILOGUE_SIZE: usize = 32;
/// `sizeof(VCHIQ_CONFIG_T)`.
const CONFIG_SIZE: usize = size_of::<Config>();
/// vchiq_if.h: `VCHIQ_MAX_MSG_SIZE`.
const MAX_MSG_SIZE: i32 = 4088;
/// The 26 bytes of the scripted message.
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz";

/// The C callback a service was created with; libvchiq_arm compares these when a second
/// server with the same fourcc is added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Callback {
    /// `func_clnt_callback`.
    Func,
    /// `clnt_callback`.
    Clnt,
    /// `fun2_clnt_callback`.
    Fun2,
}

/// Why a [`Lib`] call failed.
#[derive(Debug)]
enum LibError {
    /// The library refused.
    Vchiq(vchiq::Error),
    /// Emulated libvchiq_arm rule: a live service has this fourcc with another callback.
    CallbackMismatch(FourCc),
    /// Emulated driver rule: `open_service` before `connect` (`-ENOTCONN`).
    NotConnected,
    /// Emulated: `connect` on a shut-down instance.
    NotInitialised,
    /// Emulated driver rule: GET_CONFIG with `config_size > 20` (`-EINVAL`).
    ConfigSize(usize),
    /// Emulated driver rule: an unknown service option (`-EIO`).
    InvalidOption(u32),
}

impl fmt::Display for LibError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LibError::Vchiq(e) => write!(f, "{e}"),
            LibError::CallbackMismatch(fcc) => {
                write!(
                    f,
                    "a live service '{fcc}' has a different callback (libvchiq_arm rule, emulated)"
                )
            }
            LibError::NotConnected => f.write_str("instance not connected (ENOTCONN, emulated)"),
            LibError::NotInitialised => f.write_str("instance was shut down (emulated)"),
            LibError::ConfigSize(n) => {
                write!(f, "config size {n} > {CONFIG_SIZE} (EINVAL, emulated)")
            }
            LibError::InvalidOption(o) => {
                write!(f, "service option {o} does not exist (EIO, emulated)")
            }
        }
    }
}

impl From<vchiq::Error> for LibError {
    fn from(e: vchiq::Error) -> Self {
        LibError::Vchiq(e)
    }
}

/// Where a [`Lib`] instance is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// `vchiq_initialise` done, `vchiq_connect` not yet (as far as the test is concerned).
    Initialised,
    /// Connected.
    Connected,
    /// `vchiq_shutdown` done.
    Shut,
}

/// libvchiq_arm's instance as the functional test drives it: the Rust [`Instance`] plus
/// the rules the Rust library leaves to its caller (see the module docs).
struct Lib {
    instance: Instance,
    phase: Phase,
    /// Live services and their callbacks, for the same-fourcc rule.
    services: Vec<(FourCc, Callback, Service)>,
    shared: Arc<FuncShared>,
    clnt: Arc<Clnt>,
}

impl Lib {
    /// `vchiq_initialise`.
    fn initialise(shared: &Arc<FuncShared>) -> Result<Lib, LibError> {
        Ok(Lib {
            instance: Instance::connect()?,
            phase: Phase::Initialised,
            services: Vec::new(),
            shared: Arc::clone(shared),
            clnt: Clnt::new(
                TestParams::default(),
                vec![Vec::new(); super::NUM_BULK_BUFS],
            ),
        })
    }

    /// `vchiq_connect`: already done by [`Instance::connect`]; records it. Refused after
    /// shutdown.
    fn connect(&mut self) -> Result<(), LibError> {
        match self.phase {
            Phase::Shut => Err(LibError::NotInitialised),
            _ => {
                self.phase = Phase::Connected;
                Ok(())
            }
        }
    }

    /// `vchiq_get_config(size)`: the driver copies `size <= 20` bytes and refuses more.
    fn get_config(&self, size: usize) -> Result<Config, LibError> {
        if size > CONFIG_SIZE {
            return Err(LibError::ConfigSize(size));
        }
        Ok(self.instance.config()?)
    }

    fn handler(&self, cb: Callback, userdata: i32) -> Handler {
        match cb {
            Callback::Func => {
                let f = Arc::clone(&self.shared);
                Handler::callback(move |svc, ev| func_clnt_callback(&f, userdata, svc, ev))
            }
            Callback::Clnt => self.clnt.handler(),
            Callback::Fun2 => {
                let f = Arc::clone(&self.shared);
                Handler::callback(move |_svc, ev| fun2_clnt_callback(&f, ev))
            }
        }
    }

    /// `vchiq_add_service`, refusing a fourcc that a live service of this instance uses
    /// with another callback (libvchiq_arm's rule).
    fn add_service(
        &mut self,
        fourcc: FourCc,
        cb: Callback,
        userdata: i32,
    ) -> Result<Service, LibError> {
        if self.phase != Phase::Shut
            && self
                .services
                .iter()
                .any(|(f, c, _)| *f == fourcc && *c != cb)
        {
            return Err(LibError::CallbackMismatch(fourcc));
        }
        let params = ServiceParams::new(fourcc, VCHIQ_TEST_VER, VCHIQ_TEST_VER);
        let svc = self
            .instance
            .add_service(params, self.handler(cb, userdata))?;
        self.services.push((fourcc, cb, svc.clone()));
        Ok(svc)
    }

    /// `vchiq_open_service`; before `connect` it fails as the driver would.
    fn open_service(
        &mut self,
        fourcc: FourCc,
        cb: Callback,
        userdata: i32,
        version: i16,
        version_min: i16,
    ) -> Result<Service, LibError> {
        if self.phase == Phase::Initialised {
            return Err(LibError::NotConnected);
        }
        let params = ServiceParams::new(fourcc, version, version_min);
        let svc = self
            .instance
            .open_service(params, self.handler(cb, userdata))?;
        self.services.push((fourcc, cb, svc.clone()));
        Ok(svc)
    }

    /// `vchiq_set_service_option` with a raw option number.
    fn set_option(&self, svc: &Service, option: u32, value: i32) -> Result<(), LibError> {
        let opt = ServiceOption::from_raw(option).ok_or(LibError::InvalidOption(option))?;
        Ok(svc.set_option(opt, value)?)
    }

    /// `vchiq_remove_service`.
    fn remove(&mut self, svc: &Service) -> Result<(), LibError> {
        svc.remove()?;
        self.services.retain(|(_, _, s)| !s.same_as(svc));
        Ok(())
    }

    /// `vchiq_shutdown`. The instance stays in `self` so that later calls reach the
    /// library and are refused by it.
    fn shutdown(&mut self) -> Result<(), LibError> {
        if self.phase == Phase::Shut {
            return Err(LibError::NotInitialised);
        }
        self.phase = Phase::Shut;
        self.services.clear();
        Ok(self.instance.clone().shutdown()?)
    }
}

/// What the callbacks share with the main thread.
#[derive(Debug, Default)]
struct FuncShared {
    /// (non-bulk callbacks, bulk callbacks) seen so far.
    counts: Mutex<(u32, u32)>,
    /// `func_error`.
    func_error: AtomicBool,
    /// `fun2_error`.
    fun2_error: AtomicBool,
    /// `func_test_sync`.
    sync: Signal,
    /// The data of the last FUN2 receive.
    fun2_data: Mutex<Option<Vec<u8>>>,
}

/// The real reason names, for the failure lines.
fn reason(ev: &Event) -> &'static str {
    match ev {
        Event::Opened => "VCHIQ_SERVICE_OPENED",
        Event::Closed => "VCHIQ_SERVICE_CLOSED",
        Event::Message(_) | Event::MessageAvailable => "VCHIQ_MESSAGE_AVAILABLE",
        Event::BulkTransmitDone { .. } => "VCHIQ_BULK_TRANSMIT_DONE",
        Event::BulkReceiveDone { .. } => "VCHIQ_BULK_RECEIVE_DONE",
        Event::BulkTransmitAborted { .. } => "VCHIQ_BULK_TRANSMIT_ABORTED",
        Event::BulkReceiveAborted { .. } => "VCHIQ_BULK_RECEIVE_ABORTED",
    }
}

fn bulk_userdata(ev: &Event) -> Option<u64> {
    match ev {
        Event::BulkTransmitDone { userdata }
        | Event::BulkReceiveDone { userdata, .. }
        | Event::BulkTransmitAborted { userdata }
        | Event::BulkReceiveAborted { userdata } => Some(*userdata),
        _ => None,
    }
}

/// `START_CALLBACK` / `START_BULK_CALLBACK`: the reason, the service userdata and (for
/// bulks) the bulk userdata must be the expected ones.
macro_rules! start_callback {
    ($ev:expr, $reason:literal, $ud:expr, $want_ud:expr $(, $want_bulk:expr)?) => {{
        let got = reason($ev);
        if got != $reason {
            log_error(format_args!("{}: expected callback reason {}, got {}", line!(), $reason, got));
            return Err(Failed);
        }
        if $ud != $want_ud {
            log_error(format_args!("{}: expected userdata {}, got {}", line!(), $want_ud, $ud));
            return Err(Failed);
        }
        $(
            let bu = bulk_userdata($ev).unwrap_or(0);
            if bu != $want_bulk {
                log_error(format_args!("{}: expected bulk_userdata {:#x}, got {:#x}", line!(), $want_bulk, bu));
                return Err(Failed);
            }
        )?
        log_trace(format_args!("{}: {}, {}", line!(), $reason, $want_ud));
    }};
}

/// `func_clnt_callback`: checks each callback against the script of part 3.
fn func_clnt_callback(f: &FuncShared, userdata: i32, svc: &Service, ev: Event) {
    if func_step(f, userdata, svc, &ev).is_err() {
        *lock(&f.counts) = (0, 0);
        f.func_error.store(true, Ordering::SeqCst);
        f.sync.signal();
    }
}

fn func_step(f: &FuncShared, ud: i32, svc: &Service, ev: &Event) -> Status {
    let is_bulk = bulk_userdata(ev).is_some();
    let n = {
        let mut c = lock(&f.counts);
        if is_bulk {
            c.1 += 1;
            c.1
        } else {
            c.0 += 1;
            c.0
        }
    };
    if !is_bulk {
        match n {
            1 => start_callback!(ev, "VCHIQ_SERVICE_CLOSED", ud, 2),
            2 => {
                start_callback!(ev, "VCHIQ_MESSAGE_AVAILABLE", ud, 1);
                let data = match ev {
                    Event::Message(d) => d.as_slice(),
                    _ => &[],
                };
                expect_eq!(data.len(), 26);
                expect_eq!(data, ALPHABET);
            }
            3 => {
                start_callback!(ev, "VCHIQ_MESSAGE_AVAILABLE", ud, 1);
                let len = match ev {
                    Event::Message(d) => d.len(),
                    _ => usize::MAX,
                };
                expect_eq!(len, 0);
                expect_ok!(svc.bulk_receive(SERVICE2_DATA_SIZE, BulkMode::Callback, 0x1004));
                f.sync.signal();
            }
            4 => {
                start_callback!(ev, "VCHIQ_SERVICE_CLOSED", ud, 1);
                f.sync.signal();
            }
            5 => {
                start_callback!(ev, "VCHIQ_SERVICE_CLOSED", ud, 2);
                f.sync.signal();
                *lock(&f.counts) = (0, 0);
            }
            _ => {
                log_error(format_args!(
                    "{}: unexpected callback #{n}: {} for userdata {ud}",
                    line!(),
                    reason(ev)
                ));
                return Err(Failed);
            }
        }
    } else {
        match n {
            1 => {
                start_callback!(ev, "VCHIQ_BULK_TRANSMIT_DONE", ud, 1, 0x1001);
                expect_ok!(svc.bulk_receive(SERVICE2_DATA_SIZE, BulkMode::Callback, 0x1002));
            }
            2 => {
                start_callback!(ev, "VCHIQ_BULK_RECEIVE_ABORTED", ud, 1, 0x1002);
                expect_ok!(svc.bulk_receive(SERVICE2_DATA_SIZE, BulkMode::Callback, 0x1003));
            }
            3 => {
                start_callback!(ev, "VCHIQ_BULK_RECEIVE_DONE", ud, 1, 0x1003);
                // The real test does not check the contents (the 1024 bytes sent, twice).
                if let Event::BulkReceiveDone { data, .. } = ev {
                    let sent = service1_data();
                    let twice = data.len() == 2 * SERVICE1_DATA_SIZE
                        && data.chunks(SERVICE1_DATA_SIZE).all(|c| c == sent);
                    log_trace(format_args!(
                        "0x1003: {} bytes, the 1024 sent twice: {twice}",
                        data.len()
                    ));
                }
            }
            4 => start_callback!(ev, "VCHIQ_BULK_RECEIVE_ABORTED", ud, 1, 0x1004),
            5 => start_callback!(ev, "VCHIQ_BULK_TRANSMIT_ABORTED", ud, 2, 0x2001),
            _ => {
                log_error(format_args!(
                    "{}: unexpected bulk callback #{n}: {} for userdata {ud}, bulk userdata {:#x}",
                    line!(),
                    reason(ev),
                    bulk_userdata(ev).unwrap_or(0)
                ));
                return Err(Failed);
            }
        }
    }
    Ok(())
}

/// `fun2_clnt_callback`: a receive completion wakes the main thread; anything but
/// OPENED, CLOSED and the two DONEs is an error.
fn fun2_clnt_callback(f: &FuncShared, ev: Event) {
    match ev {
        Event::Opened | Event::Closed | Event::BulkTransmitDone { .. } => {}
        Event::BulkReceiveDone { data, .. } => {
            *lock(&f.fun2_data) = Some(data);
            f.sync.signal();
        }
        other => {
            log_error(format_args!("fun2: unexpected callback {}", reason(&other)));
            f.fun2_error.store(true, Ordering::SeqCst);
            f.sync.signal();
        }
    }
}

/// `clnt_service1_data`: byte i = i.
fn service1_data() -> Vec<u8> {
    (0..SERVICE1_DATA_SIZE).map(|i| i as u8).collect()
}

/// `-f`: the functional test, `iters` times.
pub fn run(o: &Options) -> Status {
    println!("Functional test - iters:{}", o.params.iters);
    for i in 0..o.params.iters {
        println!("======== iteration {} ========", i + 1);
        do_functional_test(o)?;
    }
    Ok(())
}

fn do_functional_test(o: &Options) -> Status {
    let shared = Arc::new(FuncShared::default());
    if o.func_data_start == -1 {
        api_tests(&shared)?;
    }
    bulk_tests(o, &shared)
}

/// Parts 1 to 4.
fn api_tests(shared: &Arc<FuncShared>) -> Status {
    const AUTOCLOSE: u32 = ServiceOption::AutoClose.raw();

    // Part 1: local API checks.
    let mut lib = expect_ok!(Lib::initialise(shared));
    expect_ok!(lib.get_config(CONFIG_SIZE - 1)); // too small, but allowed
    expect_err!(lib.get_config(CONFIG_SIZE + 1)); // too large
    let config = expect_ok!(lib.get_config(CONFIG_SIZE));
    expect_eq!(config.max_msg_size, MAX_MSG_SIZE);

    let s1 = expect_ok!(lib.add_service(FUNC, Callback::Func, 1));
    let s2 = expect_ok!(lib.add_service(FUNC, Callback::Func, 2));
    expect_err!(lib.add_service(FUNC, Callback::Clnt, 3)); // callback doesn't match

    expect_ok!(lib.set_option(&s1, AUTOCLOSE, 0));
    expect_ok!(lib.set_option(&s1, AUTOCLOSE, 1));
    expect_err!(lib.set_option(&s1, 42, 1)); // invalid option
    expect_ok!(lib.remove(&s1));
    expect_err!(lib.remove(&s1)); // already removed
    expect_ok!(lib.remove(&s2));
    expect_err!(s1.queue_message(&[])); // service not valid
    expect_err!(lib.set_option(&s1, AUTOCLOSE, 0)); // service not valid

    let _s3 = expect_ok!(lib.add_service(FUNC, Callback::Clnt, 3));
    expect_err!(s1.queue_message(&[])); // service not open
    expect_err!(s1.bulk_transmit(&service1_data(), BulkMode::Callback, 1)); // service not open
    expect_err!(s2.bulk_receive(SERVICE2_DATA_SIZE, BulkMode::Callback, 2)); // service not open
    expect_err!(s1.bulk_receive(SERVICE1_DATA_SIZE, BulkMode::Callback, 1)); // stale handle
    expect_ok!(lib.shutdown());

    // Part 2: FUNC open, version and listener checks.
    let mut lib = expect_ok!(Lib::initialise(shared));
    expect_err!(lib.open_service(FUNC, Callback::Func, 1, 0, 0)); // not connected
    expect_ok!(lib.connect());
    expect_err!(lib.open_service(FUNC, Callback::Func, 1, 0, 0)); // wrong version number
    expect_err!(lib.open_service(FUNC, Callback::Func, 1, 1, 1)); // still the wrong version
    expect_err!(lib.open_service(
        FUNC,
        Callback::Func,
        1,
        VCHIQ_TEST_VER + 1,
        VCHIQ_TEST_VER + 1
    ));
    let a = expect_ok!(lib.open_service(FUNC, Callback::Func, 1, VCHIQ_TEST_VER, VCHIQ_TEST_VER));

    expect_err!(lib.open_service(NONE, Callback::Func, 2, VCHIQ_TEST_VER, VCHIQ_TEST_VER)); // no listener
    let b = expect_ok!(lib.open_service(FUNC, Callback::Func, 2, VCHIQ_TEST_VER, VCHIQ_TEST_VER));
    expect_err!(lib.open_service(FUNC, Callback::Func, 3, VCHIQ_TEST_VER, VCHIQ_TEST_VER)); // no more listeners
    expect_ok!(lib.remove(&b));
    let b = expect_ok!(lib.open_service(FUNC, Callback::Func, 2, VCHIQ_TEST_VER, VCHIQ_TEST_VER));

    // Part 3: the scripted exchange.
    expect_ok!(a.queue_message_vectored(&[b"a", b"bcdef", b"ghijklmnopq", b"rstuvwxyz"]));
    expect_ok!(b.bulk_transmit(&[0u8; SERVICE2_DATA_SIZE], BulkMode::Callback, 0x2001));
    expect_ok!(a.bulk_transmit(&service1_data(), BulkMode::Callback, 0x1001));

    shared
        .sync
        .wait("the zero-length message on FUNC A (callback #3)")?;
    expect_eq!(shared.func_error.load(Ordering::SeqCst), false);
    expect_ok!(lib.remove(&a));
    shared
        .sync
        .wait("SERVICE_CLOSED for FUNC A (callback #4)")?;

    expect_ok!(lib.shutdown());
    shared
        .sync
        .wait("SERVICE_CLOSED for FUNC B (callback #5)")?;
    expect_eq!(shared.func_error.load(Ordering::SeqCst), false);

    // Part 4: the shut-down instance refuses everything.
    expect_err!(lib.open_service(FUNC, Callback::Func, 0, VCHIQ_TEST_VER, VCHIQ_TEST_VER));
    expect_err!(lib.add_service(FUNC, Callback::Func, 0));
    expect_err!(lib.connect());
    Ok(())
}

/// Part 5: the FUN2 bulk data tests.
fn bulk_tests(o: &Options, shared: &Arc<FuncShared>) -> Status {
    let mut lib = expect_ok!(Lib::initialise(shared));
    expect_ok!(lib.connect());
    let mut iter = 0;
    let svc = expect_ok!(lib.open_service(FUN2, Callback::Fun2, 0, VCHIQ_TEST_VER, VCHIQ_TEST_VER));

    if o.func_data_end >= o.func_data_start {
        let mut t = DataTest {
            svc: &svc,
            shared,
            o,
            iter: &mut iter,
        };
        for size in 1..64 {
            for srvr_align in [32, 16, 8, 4, 2, 1] {
                for align in [32, 16, 8, 4, 2, 1] {
                    t.run(size, align & 31, srvr_align & 31)?;
                    t.run(size, PAGE_SIZE - align, srvr_align & 31)?;
                }
            }
        }
        let mut size = 64;
        while size < FUN2_MAX_DATA_SIZE {
            for srvr_align in [0, 1, 31] {
                for align in [0, 1, 31] {
                    for k in 0..=8 {
                        t.run(size, align, srvr_align + k)?;
                    }
                }
            }
            size <<= 1;
        }
    }
    expect_ok!(lib.shutdown());
    Ok(())
}

/// `func_data_test`'s context.
struct DataTest<'a> {
    svc: &'a Service,
    shared: &'a FuncShared,
    o: &'a Options,
    iter: &'a mut i32,
}

impl DataTest<'_> {
    /// One case; on failure also names the case, as the real `EXPECT` line does.
    fn run(&mut self, datalen: i32, align: i32, server_align: i32) -> Status {
        let r = self.func_data_test(datalen, align, server_align);
        if r.is_err() {
            log_error(format_args!(
                "{}: func_data_test(service, {datalen}, {align}, {server_align}) != VCHIQ_SUCCESS",
                *self.iter
            ));
        }
        r
    }

    fn func_data_test(&mut self, datalen: i32, align: i32, server_align: i32) -> Status {
        if datalen >= FUN2_MAX_DATA_SIZE {
            return Err(Failed);
        }
        let iter = *self.iter;
        if iter < self.o.func_data_start || iter > self.o.func_data_end {
            *self.iter += 1;
            return Ok(());
        }
        let svc = self.svc;
        let request: Vec<u8> = [datalen, server_align, align, iter]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        expect_ok!(svc.queue_message(&request));

        // The receive buffer, page-aligned at index 0: `data` sits at `align` within a
        // page, with 32 guard bytes of 0xff before and after, the nearest of each 0xfe.
        let len = datalen as usize;
        let mut databuf =
            vec![
                0xffu8;
                PAGE_SIZE as usize + PROLOGUE_SIZE + FUN2_MAX_DATA_SIZE as usize + EPILOGUE_SIZE
            ];
        let mut start = align - PROLOGUE_SIZE as i32;
        if start < 0 {
            start += PAGE_SIZE;
        }
        let data = start as usize + PROLOGUE_SIZE;
        databuf[data - 1] = 0xfe;
        databuf[data + len] = 0xfe;
        *lock(&self.shared.fun2_data) = None;
        expect_ok!(svc.bulk_receive(len, BulkMode::Callback, 0));

        let mut data2: Vec<u8> = (0..len)
            .map(|i| {
                if i & 0x1f == 0 {
                    (i >> 5) as u8
                } else {
                    i as u8
                }
            })
            .collect();
        if let Some(last) = data2.last_mut() {
            *last = 0;
        }
        expect_ok!(svc.bulk_transmit(&data2, BulkMode::Callback, 0));
        self.shared.sync.wait("BULK_RECEIVE_DONE on fun2")?;
        expect_eq!(self.shared.fun2_error.load(Ordering::SeqCst), false);

        // Land the received bytes in the guarded buffer: a wrong length shows as a
        // corrupted guard or pattern.
        let received = lock(&self.shared.fun2_data).take().unwrap_or_default();
        let end = (data + received.len()).min(databuf.len());
        databuf[data..end].copy_from_slice(&received[..end - data]);

        let mut success = true;
        let prologue = &databuf[data - PROLOGUE_SIZE..data];
        let want_pro = |i: usize| if i == PROLOGUE_SIZE - 1 { 0xfe } else { 0xff };
        if let Some(i) = (0..PROLOGUE_SIZE).find(|&i| prologue[i] != want_pro(i)) {
            log_error(format_args!(
                "{iter}: Prologue corrupted at {i:x} (datalen {datalen:x}, align {align:x}, server_align {server_align:x}) -> {:02x}",
                prologue[i]
            ));
            success = false;
        }
        let epilogue = &databuf[data + len..data + len + EPILOGUE_SIZE];
        let want_epi = |i: usize| if i == 0 { 0xfe } else { 0xff };
        if let Some(i) = (0..EPILOGUE_SIZE).find(|&i| epilogue[i] != want_epi(i)) {
            log_error(format_args!(
                "{iter}: Epilogue corrupted at {i:x} (datalen {datalen:x}, align {align:x}, server_align {server_align:x}) -> {:02x}",
                epilogue[i]
            ));
            success = false;
        }
        if success {
            let got = &databuf[data..data + len];
            let report = |i: usize, diffs: usize| {
                log_error(format_args!(
                    "{iter}: Data corrupted at {:x}-{:x} (datalen {datalen:x}, align {align:x}, server_align {server_align:x}) -> {:02x}",
                    i - diffs,
                    i - 1,
                    got[i - 1]
                ));
            };
            let mut diffs = 0usize;
            for i in 0..len {
                if got[i] != data2[i] {
                    diffs += 1;
                } else if diffs > 0 {
                    report(i, diffs);
                    success = false;
                    diffs = 0;
                }
            }
            if diffs > 0 {
                report(len, diffs);
                success = false;
            }
        }
        if !success {
            return Err(Failed);
        }
        *self.iter += 1;
        Ok(())
    }
}
