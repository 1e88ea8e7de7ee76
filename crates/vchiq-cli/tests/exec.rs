//! `vchiq exec` picks the path that works for each program (issues #11 and #14): the file
//! node or the shim built for the program's architecture, i386 natively and armhf/arm64
//! under qemu-user, with `--node`/`--preload` meaning what they say.
//!
//! The programs are the project's own C client (`tests/c/vchiq_ioctl.c`) built for each
//! architecture; the shims come from `scripts/build-shims`. Anything missing is skipped
//! with its reason, or fails under CI, where `.ci/run` installs it all.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::cprog::{Build, c_program, c_program_of, shim, skip};
use common::*;

/// The C tests each architecture runs through `exec`, with what each proves.
const SUITE: &[(&str, &str)] = &[
    ("echo", "messages, the completion thread's AWAIT_COMPLETION"),
    (
        "vchi",
        "a VCHI service: DEQUEUE_MESSAGE, EWOULDBLOCK, EMSGSIZE",
    ),
    ("bulk", "bulk transmit and receive, CALLBACK and BLOCKING"),
    (
        "signal",
        "a signal during a BLOCKING bulk: EINTR, WAITING, retry",
    ),
    ("clientid", "GET_CLIENT_ID"),
    ("dupfork", "dup and fork share the instance"),
    (
        "badptr",
        "bad pointers give EFAULT/EINVAL, the daemon keeps serving",
    ),
];

/// `vchiq exec ARGS...` aimed at `socket`.
fn exec_cmd(socket: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(exe());
    c.arg("exec")
        .args(args)
        .env("VCHIQ_SOCKET", socket)
        .env_remove("VCHIQ_PRELOAD");
    c
}

fn run_exec(socket: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    // qemu-user runs the ARM programs some 10-50 times slower than native.
    run_with_limit(exec_cmd(socket, args), Duration::from_secs(180))
}

/// The `key: value` line of `exec --explain` (or of a C test's output).
fn field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .unwrap_or_default()
        .to_owned()
}

/// Runs the suite through `exec`, asserting each test passes and `exec` chose `route`.
fn run_suite(socket: &Path, bin: &Path, tuple: &str, label: &str) {
    let b = bin.to_str().unwrap();
    let (code, out, err) = run_exec(socket, &["--explain", "--", b]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(field(&out, "route:"), "shim", "{out}");
    assert!(field(&out, "shim:").contains(tuple), "{out}");
    for (test, proves) in SUITE {
        let (code, out, err) = run_exec(socket, &["--", b, test]);
        assert_eq!(
            code,
            Some(0),
            "{label} {test} through exec\nstdout:\n{out}\nstderr:\n{err}"
        );
        assert!(out.contains(&format!("PASS {test}")), "{out}");
        eprintln!("{label} {test}: ok ({proves})");
    }
}

/// Everything an ARM test needs: the program, its shim and qemu-user.
fn arm_ready(build: Build, tuple: &str, qemu: &str) -> Option<PathBuf> {
    arm_program_ready("vchiq_ioctl", build, tuple, qemu)
}

/// [`arm_ready`] for `tests/c/NAME.c`.
fn arm_program_ready(name: &str, build: Build, tuple: &str, qemu: &str) -> Option<PathBuf> {
    let bin = c_program_of(name, build)?;
    shim(tuple)?;
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {qemu}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        skip(&format!(
            "{qemu} is not installed (apt-get install qemu-user)"
        ));
        return None;
    }
    Some(bin)
}

#[test]
fn a_32bit_program_runs_through_the_i386_shim_against_a_daemon_without_a_node() {
    let Some(bin) = c_program(Build::I386) else {
        return;
    };
    if shim("i386-linux-gnu").is_none() {
        return;
    }
    let d = TestDaemon::start(&[]);
    run_suite(d.socket(), &bin, "i386-linux-gnu", "i386");
}

#[test]
fn a_32bit_program_runs_through_the_daemons_own_node() {
    let Some(bin) = c_program(Build::I386) else {
        return;
    };
    let Some(nd) = NodeDaemon::start() else {
        return;
    };
    let b = bin.to_str().unwrap();
    let sock = nd.daemon.socket();
    let (code, out, err) = run_exec(sock, &["--explain", "--", b]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(field(&out, "route:"), "file node", "{out}");
    assert!(
        field(&out, "file node:").contains(nd.node.to_str().unwrap()),
        "exec binds the node of the daemon on its socket, not another one: {out}"
    );
    for test in ["echo", "bulk", "signal"] {
        let (code, out, err) = run_exec(sock, &["--node", "--", b, test]);
        assert_eq!(code, Some(0), "{test}: {out}{err}");
        assert!(
            out.contains(&format!("PASS {test} (/dev/vchiq, 32-bit)")),
            "{out}"
        );
    }
}

#[test]
fn node_fails_where_no_node_can_be_had_and_runs_nothing() {
    let d = TestDaemon::start(&[]);
    let marker = d.dir.join("ran");
    let script = format!("touch {}", marker.display());
    let (code, out, err) = run_exec(d.socket(), &["--node", "--", "sh", "-c", &script]);
    assert_ne!(code, Some(0), "{out}{err}");
    assert!(
        err.contains("--node") && err.contains("serves no file node"),
        "{err}"
    );
    assert!(
        !marker.exists(),
        "the program must not run when --node cannot be honoured"
    );
    // An ARM program cannot use a node at all: qemu-user keeps the ioctls to itself.
    if let Some(bin) = c_program(Build::Armhf) {
        let (code, _, err) = run_exec(d.socket(), &["--node", "--", bin.to_str().unwrap(), "echo"]);
        assert_ne!(code, Some(0));
        assert!(err.contains("qemu-user"), "{err}");
    }
}

#[test]
fn a_static_program_is_refused_on_the_shim_path_with_the_reason() {
    let Some(bin) = c_program(Build::I386Static) else {
        return;
    };
    let b = bin.to_str().unwrap();
    let d = TestDaemon::start(&[]);
    let (code, _, err) = run_exec(d.socket(), &["--preload", "--", b, "echo"]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("statically linked") && err.contains("LD_PRELOAD"),
        "{err}"
    );
    // No node either (the daemon serves none): both reasons, before anything runs.
    let (code, _, err) = run_exec(d.socket(), &["--", b, "echo"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("file node:") && err.contains("shim:"), "{err}");
    assert!(
        !err.contains("FAIL"),
        "the program must not have run: {err}"
    );
}

#[test]
fn preload_uses_the_shim_even_where_a_node_exists_and_checks_vchiq_preload() {
    let Some(bin) = c_program(Build::I386) else {
        return;
    };
    let Some(lib64) = shim("x86_64-linux-gnu") else {
        return;
    };
    if shim("i386-linux-gnu").is_none() {
        return;
    }
    let Some(nd) = NodeDaemon::start() else {
        return;
    };
    let b = bin.to_str().unwrap();
    let sock = nd.daemon.socket();
    let (code, out, err) = run_exec(sock, &["--preload", "--explain", "--", b]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(field(&out, "route:"), "shim", "{out}");
    let (code, out, err) = run_exec(sock, &["--preload", "--", b, "bulk"]);
    assert_eq!(code, Some(0), "{out}{err}");
    // A VCHIQ_PRELOAD of the wrong architecture is named, not handed to the loader.
    let mut c = exec_cmd(sock, &["--preload", "--", b, "echo"]);
    c.env("VCHIQ_PRELOAD", &lib64);
    let (code, _, err) = run_with_limit(c, Duration::from_secs(60));
    assert_ne!(code, Some(0));
    assert!(err.contains("not a shim for this i386 program"), "{err}");
}

#[test]
fn armhf_programs_run_under_qemu_user_through_the_arm_shim() {
    let Some(bin) = arm_ready(Build::Armhf, "arm-linux-gnueabihf", "qemu-arm") else {
        return;
    };
    let d = TestDaemon::start(&[]);
    run_suite(d.socket(), &bin, "arm-linux-gnueabihf", "armhf");
}

#[test]
fn arm64_programs_run_under_qemu_user_through_the_arm64_shim() {
    let Some(bin) = arm_ready(Build::Arm64, "aarch64-linux-gnu", "qemu-aarch64") else {
        return;
    };
    let d = TestDaemon::start(&[]);
    run_suite(d.socket(), &bin, "aarch64-linux-gnu", "arm64");
}

/// The emulated process is a real host process: the daemon attests its host PID, whatever
/// PID the program sees in its namespace.
#[test]
fn an_arm_client_in_a_pid_namespace_gets_its_host_pid() {
    let Some(bin) = arm_ready(Build::Armhf, "arm-linux-gnueabihf", "qemu-arm") else {
        return;
    };
    if !namespaces_available() {
        skip("PID namespaces are not available here");
        return;
    }
    let d = TestDaemon::start(&[]);
    let prefix = nsexec_prefix();
    let mut c = Command::new(exe());
    c.args(&prefix)
        .args(["exec", "--"])
        .arg(&bin)
        .arg("clientid")
        .env("VCHIQ_SOCKET", d.socket())
        .env_remove("VCHIQ_PRELOAD");
    let (code, out, err) = run_with_limit(c, Duration::from_secs(120));
    assert_eq!(code, Some(0), "{out}{err}");
    let pid = field(&out, "pid:");
    let client = field(&out, "client_id:");
    assert_eq!(client, field(&out, "proc_pid:"), "{out}");
    assert_ne!(
        pid, client,
        "the namespace PID is not what the daemon reports: {out}"
    );
    assert!(
        pid.parse::<u32>().unwrap() < 10,
        "inside a fresh namespace: {out}"
    );
}

/// The number of instances `vchiq status` reports (its own included).
fn instances(socket: &Path) -> usize {
    let out = Command::new(exe())
        .arg("status")
        .env("VCHIQ_SOCKET", socket)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .next()
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected status output: {text}"))
}

#[test]
fn a_killed_arm_client_leaves_nothing_behind() {
    let Some(bin) = arm_ready(Build::Arm64, "aarch64-linux-gnu", "qemu-aarch64") else {
        return;
    };
    let d = TestDaemon::start(&[]);
    for _ in 0..2 {
        let mut child = spawn_blocked(exec_cmd(
            d.socket(),
            &["--", bin.to_str().unwrap(), "block"],
        ));
        assert_eq!(instances(d.socket()), 2, "the blocked client and status");
        // SIGKILL the emulated program (and exec): no chance to clean up.
        kill_group(&mut child);
        let t0 = Instant::now();
        while instances(d.socket()) != 1 {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the killed ARM client's instance is still there"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let (code, out, err) = run_exec(d.socket(), &["--", bin.to_str().unwrap(), "echo"]);
    assert_eq!(code, Some(0), "the daemon still serves: {out}{err}");
}

/// `exec` passes SIGTERM on to the program and reports the program's own status, also as
/// PID 1 of a PID namespace (where an unhandled SIGTERM would be dropped).
#[test]
fn exec_forwards_sigterm_to_the_program_and_reports_its_status() {
    let d = TestDaemon::start(&[]);
    let script = "trap 'exit 3' TERM; echo ready; while :; do sleep 0.05; done";
    let as_pid1 = namespaces_available();
    if !as_pid1 {
        skip("PID namespaces are not available here (testing exec outside one)");
    }
    let mut c = Command::new(exe());
    if as_pid1 {
        let prefix = nsexec_prefix();
        c.args(&prefix);
    }
    c.args(["exec", "--preload", "--", "sh", "-c", script])
        .env("VCHIQ_SOCKET", d.socket())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut r = lines(&mut child);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut r, &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    // The exec process: the nsexec child's PID-1 process, or the child itself.
    let exec_pid = if as_pid1 {
        let t0 = Instant::now();
        loop {
            if let Some(&p) = children_of(child.id()).first() {
                break p;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "no PID 1 under nsexec"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    } else {
        child.id()
    };
    unsafe_free_kill(exec_pid, 15);
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "exec did not pass SIGTERM on"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        status.code(),
        Some(3),
        "the program's own exit status: {status:?}"
    );
}

/// An ARM GLES client (`tests/c/khrn_triangle.c`: the Khronos RPC over the ioctls, with
/// the project's own minimal definitions) renders frames under qemu-user: every swap is
/// posted back on KHAN, and the display shows its last frame, an orange triangle on the
/// clear colour it reports.
fn arm_gles_client_renders(build: Build, tuple: &str, qemu: &str) {
    let Some(bin) = arm_program_ready("khrn_triangle", build, tuple, qemu) else {
        return;
    };
    let d = TestDaemon::start(&["--display-size", "640x480"]);
    let mut child = exec_cmd(d.socket(), &["--", bin.to_str().unwrap(), "30", "hold"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = lines(&mut child);
    let mut report = String::new();
    loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut out, &mut line).unwrap() == 0 {
            panic!("the client ended before rendering: {report}");
        }
        report += &line;
        if line.starts_with("PASS") {
            break;
        }
    }
    assert_eq!(field(&report, "frames:"), "30", "{report}");
    assert_eq!(
        field(&report, "posts:"),
        "30",
        "one KHAN post per swap: {report}"
    );
    assert_eq!(field(&report, "display:"), "640x480", "{report}");
    let clear: Vec<u8> = field(&report, "clear:")
        .split(' ')
        .map(|v| v.parse().unwrap())
        .collect();
    // The display while the client holds its element.
    let png_path = d.dir.join("display.png");
    let (code, o, e) = d.run(
        &["snapshot", png_path.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(0), "{o}{e}");
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.line_size / info.width as usize;
    let at = |x: u32, y: u32| {
        let i = y as usize * info.line_size + x as usize * channels;
        [buf[i], buf[i + 1], buf[i + 2]]
    };
    let near = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 2);
    assert!(
        near(at(8, 8), [clear[0], clear[1], clear[2]]),
        "corner {:?}, clear {clear:?}",
        at(8, 8)
    );
    // The triangle spans x -0.5..0.5, y -0.5..0.5 in clip space: its middle is orange.
    assert!(
        near(at(320, 280), [255, 128, 0]),
        "triangle {:?}",
        at(320, 280)
    );
    assert!(
        near(at(100, 240), [clear[0], clear[1], clear[2]]),
        "beside it {:?}",
        at(100, 240)
    );
}

#[test]
fn an_armhf_gles_client_renders_frames_under_qemu() {
    arm_gles_client_renders(Build::Armhf, "arm-linux-gnueabihf", "qemu-arm");
}

#[test]
fn an_arm64_gles_client_renders_frames_under_qemu() {
    arm_gles_client_renders(Build::Arm64, "aarch64-linux-gnu", "qemu-aarch64");
}
