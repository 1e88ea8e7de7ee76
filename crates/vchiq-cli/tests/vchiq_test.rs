//! End to end: `vchiq test` (vchiq_test) against a private daemon and its software
//! VideoCore.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{TestDaemon, exe, run_with_limit};

/// Runs `vchiq test ARGS` against `d` and returns (status, stdout, stderr).
fn vchiq_test(d: &TestDaemon, args: &[&str], limit: Duration) -> (Option<i32>, String, String) {
    let mut all = vec!["test"];
    all.extend_from_slice(args);
    d.run(&all, limit)
}

fn assert_success(what: &str, (code, out, err): &(Option<i32>, String, String)) {
    assert_eq!(
        *code,
        Some(0),
        "{what} failed\n--- stdout\n{out}\n--- stderr\n{err}"
    );
}

#[test]
fn functional_test_passes_twice() {
    let d = TestDaemon::start(&[]);
    let r = vchiq_test(&d, &["-f", "2"], Duration::from_secs(240));
    assert_success("vchiq_test -f 2", &r);
    let out = &r.1;
    assert!(out.contains("Functional test - iters:2"), "{out}");
    assert!(out.contains("======== iteration 1 ========"), "{out}");
    assert!(out.contains("======== iteration 2 ========"), "{out}");
}

#[test]
fn functional_bulk_part_alone_with_start_and_end() {
    // -S skips parts 1-4; -E bounds the FUN2 cases that run.
    let d = TestDaemon::start(&[]);
    let r = vchiq_test(
        &d,
        &["-S", "100", "-E", "300", "-f", "1"],
        Duration::from_secs(120),
    );
    assert_success("vchiq_test -S 100 -E 300 -f 1", &r);
}

#[test]
fn ping_test_passes_and_prints_timings() {
    let d = TestDaemon::start(&[]);
    let r = vchiq_test(&d, &["-p", "10"], Duration::from_secs(240));
    assert_success("vchiq_test -p 10", &r);
    let out = &r.1;
    assert!(
        out.starts_with("Ping test - service:echo, iters:10, version 3\n"),
        "{out}"
    );
    for size in [0, 1024, 2048, 4088] {
        for line in [
            format!("vchi ping (size {size}) -> "),
            format!("vchi ping (size {size}, 10 async, 10 oneway) -> "),
            format!("vchi bulk (size {size}, async) -> "),
            format!("vchi bulk (size {size}, 2 async) -> "),
            format!("ping (size {size}, 0 async, 1 oneway) -> "),
            format!("ping (size {size}, 1000 async, 1000 oneway) -> "),
            format!("bulk (size {size}, async) -> "),
            format!("bulk (size {size}, 100 async) -> "),
        ] {
            assert!(
                out.lines()
                    .any(|l| l.starts_with(&line) && l.ends_with("us")),
                "no line {line:?} in\n{out}"
            );
        }
    }
    // 21 variants x 4 sizes, each with a ping line, twice (VCHI and VCHIQ), plus the
    // VCHI synchronous loop of the 2 variants without async or oneway.
    let pings = out
        .lines()
        .filter(|l| l.starts_with("vchi ping") || l.starts_with("ping"))
        .count();
    assert_eq!(pings, 2 * 21 * 4 + 2 * 4, "{out}");
    assert!(!out.contains("Unexpected message"), "{out}");
}

#[test]
fn ctrl_test_passes() {
    let d = TestDaemon::start(&[]);
    let r = vchiq_test(&d, &["-c", "64", "50"], Duration::from_secs(60));
    assert_success("vchiq_test -c 64 50", &r);
    assert!(
        r.1.contains("Ctrl test - service:echo, block size:64, iters:50\n"),
        "{}",
        r.1
    );
    assert!(
        r.1.contains("Elapsed time: ") && r.1.contains("us per iteration"),
        "{}",
        r.1
    );
}

#[test]
fn bulk_test_passes_with_and_without_echo() {
    let d = TestDaemon::start(&[]);
    let r = vchiq_test(&d, &["-b", "16", "20"], Duration::from_secs(60));
    assert_success("vchiq_test -b 16 20", &r);
    assert!(
        r.1.contains("Bulk test - service:echo, block size:16384, iters:20\n"),
        "{}",
        r.1
    );
    assert!(r.1.contains("us per iteration"), "{}", r.1);
    let r = vchiq_test(&d, &["-e", "-q", "-b", "16", "20"], Duration::from_secs(60));
    assert_success("vchiq_test -e -q -b 16 20", &r);
}

#[test]
fn signal_test_interrupts_the_blocked_transmit() {
    let d = TestDaemon::start(&[]);
    let r = vchiq_test(&d, &["-i"], Duration::from_secs(60));
    assert_success("vchiq_test -i", &r);
    assert!(r.1.contains("still blocked after"), "{}", r.1);
    assert!(r.1.contains("ended with an error, as expected"), "{}", r.1);
}

#[test]
fn unknown_option_prints_usage_and_exits_255() {
    let d = TestDaemon::start(&[]);
    let (code, out, _) = vchiq_test(&d, &["-x", "-f"], Duration::from_secs(20));
    assert_eq!(code, Some(255), "{out}");
    assert!(
        out.starts_with("* unknown option '-x'\nUsage: vchiq_test [<options>] <mode> <iters>\n"),
        "{out}"
    );
    // No mode, two modes, a bad service name: usage too.
    for args in [
        &[][..],
        &["-f", "-p"],
        &["-s", "abc", "-c", "8"],
        &["-f", "1", "2"],
    ] {
        let (code, out, _) = vchiq_test(&d, args, Duration::from_secs(20));
        assert_eq!(code, Some(255), "{args:?}: {out}");
        assert!(out.contains("Usage: vchiq_test"), "{args:?}: {out}");
    }
}

#[test]
fn unserved_service_and_vc_cma_fail_with_255() {
    let d = TestDaemon::start(&[]);
    let (code, out, _) = vchiq_test(&d, &["-s", "nope", "-c", "8", "1"], Duration::from_secs(20));
    assert_eq!(code, Some(255), "{out}");
    assert!(
        out.contains("* failed to open service - already in use?"),
        "{out}"
    );
    let (code, out, _) = vchiq_test(&d, &["-r", "4096", "1"], Duration::from_secs(20));
    assert_eq!(code, Some(255), "{out}");
    assert!(out.contains("/dev/vc-cma"), "{out}");
}

#[test]
fn runs_as_vchiq_test_by_argv0() {
    let d = TestDaemon::start(&[]);
    let link = d.dir.join("vchiq_test");
    std::os::unix::fs::symlink(exe(), &link).expect("symlink vchiq_test");
    let mut cmd = Command::new(&link);
    cmd.args(["-v", "-c", "16", "10"])
        .env("VCHIQ_SOCKET", d.socket());
    let r = run_with_limit(cmd, Duration::from_secs(60));
    assert_success("vchiq_test -v -c 16 10", &r);
    assert!(
        r.1.contains("Ctrl test - service:echo, block size:16, iters:10\n"),
        "{}",
        r.1
    );
    // -v reached vchiq_test (trace lines on stderr), not the front end's own --verbose.
    assert!(r.2.contains("vchiq_test: Sent all messages"), "{}", r.2);
}
