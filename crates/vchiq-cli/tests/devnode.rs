//! Unmodified C programs against vchiqd: through the `/dev/vchiq` FUSE file node and
//! through the LD_PRELOAD shim (issue #5).
//!
//! The C sources live in `tests/c/` at the workspace root. They are compiled with the
//! system `cc` into a temporary directory, 64-bit, 32-bit (`-m32`) and static; a variant
//! that cannot be built here is skipped with the reason printed (a failure under CI), and
//! so is every node test when FUSE cannot be mounted (no `/dev/fuse`, not root). Each test runs a real
//! `vchiq daemon --dev-node` on private paths; the node is unmounted when it stops.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::cprog::{Build, c_program, shim, skip};
use common::*;

/// The C tests every variant runs, with what each proves.
const C_TESTS: &[(&str, &str)] = &[
    (
        "echo",
        "completion thread in AWAIT_COMPLETION with msgbufs taken from the end",
    ),
    (
        "vchi",
        "VCHI service: header-less MESSAGE_AVAILABLE, DEQUEUE_MESSAGE, EWOULDBLOCK, EMSGSIZE",
    ),
    (
        "bulk",
        "fun2 bulk transmit + receive, CALLBACK and BLOCKING, 1 B to 1 MiB",
    ),
    (
        "signal",
        "SIGUSR1 during a BLOCKING bulk: EINTR, mode = WAITING, the retry completes",
    ),
    (
        "dupfork",
        "dup and fork share the instance; closing the dup keeps it",
    ),
    (
        "badptr",
        "NULL / unmapped / out-of-range pointers give EFAULT or EINVAL; daemon keeps serving",
    ),
];

/// The compiled C programs (None = not buildable here, with the reason printed, or a
/// failure under CI).
struct Programs {
    bin64: Option<PathBuf>,
    bin32: Option<PathBuf>,
    bin_static: Option<PathBuf>,
}

fn programs() -> &'static Programs {
    static P: OnceLock<Programs> = OnceLock::new();
    P.get_or_init(|| Programs {
        bin64: c_program(Build::Native64),
        bin32: c_program(Build::I386),
        bin_static: c_program(Build::Static64),
    })
}

/// Runs a C test program; returns its stdout, failing the test on a non-zero exit.
fn run_c(mut cmd: Command, what: &str) -> String {
    let (code, out, err) = run_with_limit(
        std::mem::replace(&mut cmd, Command::new("true")),
        Duration::from_secs(60),
    );
    assert_eq!(
        code,
        Some(0),
        "{what} failed\nstdout:\n{out}\nstderr:\n{err}"
    );
    out
}

fn c_cmd(bin: &Path, node: &Path, test: &str) -> Command {
    let mut c = Command::new(bin);
    c.arg("-d").arg(node).arg(test);
    c
}

fn run_suite(bin: Option<&PathBuf>, label: &str) {
    let Some(bin) = bin else {
        skip(&format!("no {label} build"));
        return;
    };
    let Some(d) = NodeDaemon::start() else { return };
    for (test, proves) in C_TESTS {
        let out = run_c(
            c_cmd(bin, &d.node, test),
            &format!("{label} {test} through the node"),
        );
        assert!(out.contains("PASS"), "{out}");
        eprintln!("node {label} {test}: ok ({proves})");
    }
}

#[test]
fn node_c_programs_64bit() {
    run_suite(programs().bin64.as_ref(), "64-bit");
}

#[test]
fn node_c_programs_32bit() {
    run_suite(programs().bin32.as_ref(), "32-bit");
}

#[test]
fn node_static_program() {
    let p = programs();
    let Some(bin) = p.bin_static.as_ref() else {
        skip("no static build");
        return;
    };
    let Some(d) = NodeDaemon::start() else { return };
    for test in ["echo", "bulk", "signal"] {
        run_c(
            c_cmd(bin, &d.node, test),
            &format!("static {test} through the node"),
        );
    }
}

#[test]
fn node_file_looks_like_the_pi_device() {
    let Some(d) = NodeDaemon::start() else { return };
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&d.node).unwrap();
    assert!(m.file_type().is_file(), "a FUSE node is a regular file");
    assert_eq!(m.mode() & 0o777, 0o660);
    let video = std::fs::read_to_string("/etc/group")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("video:")
                .and_then(|r| r.split(':').nth(1))
                .and_then(|g| g.parse::<u32>().ok())
        });
    if let Some(gid) = video {
        assert_eq!(m.gid(), gid, "group video");
    }
    // read() returns the state dump.
    let text = std::fs::read_to_string(&d.node).unwrap();
    assert!(text.contains("vchiqd: link"), "{text}");
}

#[test]
fn node_client_id_in_a_pid_namespace_is_the_host_pid() {
    let Some(bin) = programs().bin64.as_ref() else {
        return;
    };
    if !namespaces_available() {
        skip("PID namespaces are not available here");
        return;
    }
    let Some(d) = NodeDaemon::start() else { return };
    let mut cmd = Command::new(exe());
    cmd.args(nsexec_prefix()[..nsexec_prefix().len() - 1].iter())
        .arg(bin)
        .arg("-d")
        .arg(&d.node)
        .arg("clientid");
    let out = run_c(cmd, "clientid in a PID namespace");
    let key = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(key("pid: "), "1", "{out}");
    let id = key("client_id: ");
    assert_eq!(
        id,
        key("proc_pid: "),
        "GET_CLIENT_ID must be the host PID\n{out}"
    );
    assert_ne!(id, "1");
}

#[test]
fn node_client_killed_while_blocked_is_gone_within_a_second() {
    let Some(bin) = programs().bin64.as_ref() else {
        return;
    };
    let Some(d) = NodeDaemon::start() else { return };
    for _ in 0..3 {
        let mut child = spawn_blocked(c_cmd(bin, &d.node, "block"));
        std::thread::sleep(Duration::from_millis(200));
        let t0 = Instant::now();
        child.kill().unwrap();
        child.wait().unwrap();
        let took = t0.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "a SIGKILLed client took {took:?} to go"
        );
    }
    // The daemon still serves.
    if let Some(bin) = programs().bin64.as_ref() {
        run_c(c_cmd(bin, &d.node, "echo"), "echo after the kills");
    }
}

/// The host's preload shim (`scripts/build-shims amd64` when missing).
fn preload_lib() -> Option<PathBuf> {
    shim("x86_64-linux-gnu")
}

/// The shim built for i386 (for `-m32` programs).
fn preload_lib32() -> Option<PathBuf> {
    shim("i386-linux-gnu")
}

fn preload_cmd(d: &TestDaemon, lib: &Path, bin: &Path, test: &str) -> Command {
    // The path does not exist: the shim answers for "/dev/vchiq" whatever the file system says.
    let mut c = Command::new(bin);
    c.arg(test)
        .env("LD_PRELOAD", lib)
        .env("VCHIQ_SOCKET", d.socket());
    c
}

#[test]
fn preload_c_programs_64bit() {
    let Some(bin) = programs().bin64.as_ref() else {
        return;
    };
    let Some(lib) = preload_lib() else { return };
    let d = TestDaemon::start(&[]);
    for (test, proves) in C_TESTS {
        let out = run_c(
            preload_cmd(&d, &lib, bin, test),
            &format!("{test} through the preload shim"),
        );
        assert!(out.contains("PASS"), "{out}");
        eprintln!("preload 64-bit {test}: ok ({proves})");
    }
}

#[test]
fn preload_c_programs_32bit() {
    let Some(bin) = programs().bin32.as_ref() else {
        return;
    };
    let Some(lib) = preload_lib32() else { return };
    let d = TestDaemon::start(&[]);
    for (test, proves) in C_TESTS {
        let out = run_c(
            preload_cmd(&d, &lib, bin, test),
            &format!("32-bit {test} through the shim"),
        );
        assert!(out.contains("PASS"), "{out}");
        eprintln!("preload 32-bit {test}: ok ({proves})");
    }
}

#[test]
fn preload_client_id_in_a_pid_namespace_is_the_host_pid() {
    let Some(bin) = programs().bin64.as_ref() else {
        return;
    };
    let Some(lib) = preload_lib() else { return };
    if !namespaces_available() {
        skip("PID namespaces are not available here");
        return;
    }
    let d = TestDaemon::start(&[]);
    let mut cmd = Command::new(exe());
    let prefix = nsexec_prefix();
    cmd.args(&prefix[..prefix.len() - 1])
        .arg(bin)
        .arg("clientid")
        .env("LD_PRELOAD", &lib)
        .env("VCHIQ_SOCKET", d.socket());
    let out = run_c(cmd, "clientid through the shim in a PID namespace");
    let key = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(key("pid: "), "1", "{out}");
    assert_eq!(key("client_id: "), key("proc_pid: "), "{out}");
}

/// The ping figure through the node beside the socket path's (the same C program through
/// the preload shim), measured in one run. Prints both.
#[test]
fn ping_node_beside_socket() {
    let Some(bin) = programs().bin64.as_ref() else {
        return;
    };
    let Some(d) = NodeDaemon::start() else { return };
    let figure = |out: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix("ping_us: "))
            .unwrap_or("?")
            .to_owned()
    };
    let node = figure(&run_c(
        c_cmd(bin, &d.node, "ping").arg("3000").to_owned_cmd(),
        "ping via the node",
    ));
    let sock = match preload_lib() {
        Some(lib) => figure(&run_c(
            preload_cmd(&d.daemon, &lib, bin, "ping")
                .arg("3000")
                .to_owned_cmd(),
            "ping via the shim",
        )),
        None => "not measured (no shim)".into(),
    };
    eprintln!("echo round trip, C client: file node {node} us, socket (preload shim) {sock} us");
}

trait OwnedCmd {
    fn to_owned_cmd(&mut self) -> Command;
}

impl OwnedCmd for Command {
    fn to_owned_cmd(&mut self) -> Command {
        std::mem::replace(self, Command::new("true"))
    }
}

/// `vchiq exec` with no daemon running: a private daemon, the node at /dev/vchiq in a
/// private mount namespace, the program's exit status, and nothing left on the host.
#[test]
fn exec_runs_unmodified_programs_through_the_node() {
    let p = programs();
    let Some(bin) = p.bin64.as_ref() else { return };
    if NodeDaemon::start().is_none() {
        return; // FUSE is not usable here (reason printed)
    }
    let host_had_node = Path::new("/dev/vchiq").exists();
    let nowhere = std::env::temp_dir().join(format!("vchiq-no-daemon-{}", std::process::id()));
    let run = |args: &[&str]| {
        let mut c = Command::new(exe());
        c.arg("exec")
            .arg("--node")
            .arg("--")
            .args(args)
            .env("VCHIQ_SOCKET", nowhere.join("s.sock"));
        run_with_limit(c, Duration::from_secs(60))
    };
    let b = bin.to_str().unwrap();
    let (code, out, err) = run(&[b, "echo"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("PASS echo (/dev/vchiq, 64-bit)"), "{out}");
    for other in [p.bin32.as_ref(), p.bin_static.as_ref()]
        .into_iter()
        .flatten()
    {
        let (code, out, err) = run(&[other.to_str().unwrap(), "signal"]);
        assert_eq!(code, Some(0), "{out}{err}");
    }
    let (code, _, err) = run(&["sh", "-c", "test -f /dev/vchiq && exit 7"]);
    assert_eq!(code, Some(7), "the program's exit status: {err}");
    assert_eq!(
        Path::new("/dev/vchiq").exists(),
        host_had_node,
        "the host's /dev is untouched"
    );
}

/// `vchiq exec --preload`: the shim path with a private daemon.
#[test]
fn exec_runs_unmodified_programs_through_the_shim() {
    let Some(bin) = programs().bin64.as_ref() else {
        return;
    };
    let Some(lib) = preload_lib() else { return };
    let nowhere = std::env::temp_dir().join(format!("vchiq-no-daemon-p-{}", std::process::id()));
    let mut c = Command::new(exe());
    c.args(["exec", "--preload", "--"])
        .arg(bin)
        .arg("bulk")
        .env("VCHIQ_SOCKET", nowhere.join("s.sock"))
        .env("VCHIQ_PRELOAD", &lib);
    let (code, out, err) = run_with_limit(c, Duration::from_secs(60));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("PASS bulk"), "{out}");
}
