//! `vchiq bench` with small sizes: each benchmark runs, checks itself and prints its
//! figures beside their baselines. No timing is asserted.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{exe, run_with_limit};

/// Runs `vchiq bench ARGS`, asserts success and returns stdout.
fn bench(args: &[&str]) -> String {
    let mut cmd = Command::new(exe());
    cmd.arg("bench").args(args);
    let (code, out, err) = run_with_limit(cmd, Duration::from_secs(240));
    assert_eq!(
        code,
        Some(0),
        "vchiq bench {args:?} failed\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    out
}

/// The figure line `NAME: VALUE UNIT (baseline: VALUE UNIT, ratio: R)` for `name`.
fn figure_line<'a>(out: &'a str, name: &str, unit: &str) -> &'a str {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no figure line for {name:?}\n{out}"));
    assert!(
        line.contains(&format!(" {unit} (baseline: ")) && line.contains(", ratio: "),
        "not a figure line in {unit}: {line}"
    );
    line
}

#[test]
fn concurrent_loses_and_reorders_nothing() {
    let out = bench(&["concurrent", "--clients", "4", "--messages", "300"]);
    figure_line(&out, "concurrent 4 clients x 300 messages", "msg/s");
    assert!(out.contains("concurrent: 0 lost, 0 reordered"), "{out}");
}

#[test]
fn pipeline_counts_every_reply() {
    let out = bench(&["pipeline", "--iters", "2", "--count", "200"]);
    figure_line(&out, "pipeline 200 async", "us/msg");
    figure_line(&out, "pipeline 200 oneway", "us/msg");
}

#[test]
fn clients_are_all_served_without_a_thread_each() {
    let out = bench(&["clients", "--count", "50"]);
    figure_line(&out, "clients memory per idle client (50 connected)", "KiB");
    figure_line(&out, "clients daemon threads (50 connected)", "threads");
    assert!(out.contains("clients: all 50 served"), "{out}");
    assert!(out.contains("clients: no thread per client: "), "{out}");
}

#[test]
fn ping_runs_unpinned_and_pinned() {
    let out = bench(&["ping", "--iters", "50"]);
    for size in [64, 1024, 4088] {
        figure_line(&out, &format!("ping {size}B round trip (unpinned)"), "us");
        figure_line(
            &out,
            &format!("ping {size}B round trip (pinned, 1 CPU)"),
            "us",
        );
    }
}

#[test]
fn bulk_says_when_a_size_exceeds_max_bulk() {
    let out = bench(&["bulk", "--iters", "2"]);
    figure_line(&out, "bulk 64KiB round trip", "MB/s");
    figure_line(&out, "bulk 1MiB round trip", "MB/s");
    let max = vchiq_abi::wire::MAX_BULK >> 20;
    if max < 16 {
        assert!(out.contains("exceeds the protocol's MAX_BULK"), "{out}");
        figure_line(&out, &format!("bulk {max}MiB round trip"), "MB/s");
    } else {
        figure_line(&out, "bulk 16MiB round trip", "MB/s");
    }
}

#[test]
fn every_subcommand_explains_its_baseline() {
    for sub in [
        "ping",
        "pipeline",
        "bulk",
        "clients",
        "concurrent",
        "render",
        "all",
    ] {
        let out = bench(&[sub, "--help"]);
        let lower = out.to_lowercase();
        assert!(lower.contains("baseline"), "{sub} --help: {out}");
        if sub != "all" {
            assert!(lower.contains("ratio"), "{sub} --help: {out}");
        }
    }
}
