//! The tools around the clients: signal handling as PID 1, `status --json/--watch`,
//! `doctor`, `man` and `completions`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use common::*;

/// How long a client may take to stop after SIGTERM/SIGINT ("at once", with slack for a
/// loaded machine).
const STOP_LIMIT: Duration = Duration::from_secs(5);

/// Whether a test that needs PID namespaces may go ahead: fails under CI (where they
/// must work), else says why it is skipped.
fn namespaces_or_skip(test: &str) -> bool {
    if namespaces_available() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: PID namespaces cannot be created here, and CI is set"
    );
    eprintln!(
        "skipped {test}: PID namespaces cannot be created here (neither as root nor through a user namespace)"
    );
    false
}

/// A child in its own process group, killed with its group on drop (also when a test
/// fails half-way), with its stdout lines on a channel.
struct Client {
    child: Child,
    lines: Receiver<String>,
}

impl Client {
    fn spawn(mut cmd: Command) -> Client {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().expect("spawn client");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Client { child, lines }
    }

    /// Lines until one satisfies `done` or nothing arrives for `idle`.
    fn read_until(&self, idle: Duration, done: impl Fn(&str) -> bool) -> Vec<String> {
        let mut got = Vec::new();
        loop {
            match self.lines.recv_timeout(idle) {
                Ok(l) => {
                    let stop = done(&l);
                    got.push(l);
                    if stop {
                        return got;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return got,
            }
        }
    }

    /// Waits for the exit up to `limit`; returns the exit code (None: killed by a
    /// signal) and how long it took, or None if it is still running.
    fn wait_for(&mut self, limit: Duration) -> Option<(Option<i32>, Duration)> {
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some((s.code(), t0.elapsed()));
            }
            if t0.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            kill_group(&mut self.child);
        }
    }
}

/// The host PID of the process `nsexec` runs as PID 1 of its namespace.
fn pid_1_of(nsexec: &Child) -> u32 {
    let t0 = Instant::now();
    loop {
        if let [pid] = children_of(nsexec.id())[..] {
            return pid;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "nsexec did not start its child"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `vchiq nsexec ... -- vchiq ARGS` aimed at the daemon.
fn in_pid_namespace(d: &TestDaemon, args: &[&str]) -> Command {
    let mut all = nsexec_prefix();
    all.extend(args.iter().map(|s| s.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    d.cmd(&all)
}

// ---------------------------------------------------------------------------------------
// Signals

#[test]
fn sigterm_stops_a_stalled_client_that_is_pid_1_at_once() {
    if !namespaces_or_skip("sigterm_stops_a_stalled_client_that_is_pid_1_at_once") {
        return;
    }
    let d = TestDaemon::start(&["--display-size", "320x240"]);
    // --legacy-pid inside a PID namespace: the 4th swap blocks forever (the 2016 freeze),
    // with the main thread inside a blocking library call.
    let mut c = Client::spawn(in_pid_namespace(
        &d,
        &[
            "hello-triangle",
            "--legacy-pid",
            "--progress",
            "--frames",
            "1000000",
            "--region",
            "left",
        ],
    ));
    let lines = c.read_until(Duration::from_secs(3), |_| false);
    assert!(
        lines.iter().any(|l| l == "pid: 1"),
        "the client must be PID 1 of its namespace: {lines:?}"
    );
    let frames = lines.iter().filter(|l| l.starts_with("frame ")).count();
    assert_eq!(
        frames, 3,
        "the client must be stalled at its 4th swap: {lines:?}"
    );
    assert!(c.wait_for(Duration::ZERO).is_none(), "stalled, not exited");

    unsafe_free_kill(pid_1_of(&c.child), libc::SIGTERM);
    let (code, took) = c
        .wait_for(STOP_LIMIT)
        .expect("a stalled PID-1 client must stop on SIGTERM");
    // nsexec exits with its child's status: 128 + SIGTERM from the client's handler.
    assert_eq!(code, Some(128 + libc::SIGTERM), "after {took:?}");
}

#[test]
fn sigint_stops_a_running_client_that_is_pid_1() {
    if !namespaces_or_skip("sigint_stops_a_running_client_that_is_pid_1") {
        return;
    }
    let d = TestDaemon::start(&["--display-size", "320x240"]);
    let mut c = Client::spawn(in_pid_namespace(
        &d,
        &[
            "hello-triangle",
            "--progress",
            "--frames",
            "0",
            "--region",
            "left",
        ],
    ));
    let lines = c.read_until(Duration::from_secs(20), |l| l.starts_with("frame 5:"));
    assert!(
        lines.iter().any(|l| l.starts_with("frame 5:")),
        "the client must be rendering: {lines:?}"
    );
    unsafe_free_kill(pid_1_of(&c.child), libc::SIGINT);
    let (code, took) = c
        .wait_for(STOP_LIMIT)
        .expect("a rendering PID-1 client must stop on SIGINT");
    assert_eq!(code, Some(128 + libc::SIGINT), "after {took:?}");
}

#[test]
fn sigterm_stops_a_benchmark_that_is_pid_1() {
    if !namespaces_or_skip("sigterm_stops_a_benchmark_that_is_pid_1") {
        return;
    }
    // `bench` has no signal thread (its pinned runs check every thread's CPU): a handler
    // exits instead. A ping run of a billion round trips would take hours.
    let mut all = nsexec_prefix();
    all.extend(["bench", "ping", "--iters", "1000000000"].map(String::from));
    let mut cmd = Command::new(exe());
    cmd.args(&all);
    let mut c = Client::spawn(cmd);
    let pid = pid_1_of(&c.child);
    // Running: its private daemon's threads are up.
    let t0 = Instant::now();
    while std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count()) < 3 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the benchmark did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(c.wait_for(Duration::ZERO).is_none(), "still running");
    unsafe_free_kill(pid, libc::SIGTERM);
    let (code, took) = c
        .wait_for(STOP_LIMIT)
        .expect("a PID-1 benchmark must stop on SIGTERM");
    assert_eq!(code, Some(128 + libc::SIGTERM), "after {took:?}");
}

#[test]
fn a_client_that_is_not_pid_1_also_exits_with_128_plus_the_signal() {
    let d = TestDaemon::start(&[]);
    let mut c = Client::spawn(d.cmd(&["status", "--watch", "--interval", "0.1"]));
    let lines = c.read_until(Duration::from_secs(20), |l| l.starts_with("Instance "));
    assert!(
        lines.iter().any(|l| l.starts_with("vchiqd: link ")),
        "{lines:?}"
    );
    unsafe_free_kill(c.child.id(), libc::SIGTERM);
    let (code, _) = c.wait_for(STOP_LIMIT).expect("stops on SIGTERM");
    assert_eq!(code, Some(128 + libc::SIGTERM));
}

// ---------------------------------------------------------------------------------------
// vchiq status --json / --watch

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn status_json_describes_instances_and_services() {
    let d = TestDaemon::start(&[]);
    // A client that holds the VideoCore's debug service open (VCHI-style) until stdin closes.
    let mut probe = d
        .cmd(&["probe-identity"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let keys = read_keys(&mut lines(&mut probe), 4);
    let id: u64 = keys["client_id"].parse().unwrap();

    let (code, out, err) = d.run(&["status", "--json"], Duration::from_secs(20));
    drop(probe.stdin.take());
    assert!(probe.wait().unwrap().success());
    assert_eq!(code, Some(0), "{err}");
    let v = json(&out);
    assert_eq!(v["schema"], 1);
    assert_eq!(v["source"], "socket");
    assert_eq!(v["path"], d.socket().display().to_string());
    assert_eq!(v["link"]["state"], "Connected", "{v:#}");
    assert!(v["link"]["messages_sent"].as_u64().unwrap() >= 1, "{v:#}");
    assert_eq!(v["link"]["protocol_errors"], 0);
    assert!(v["videocore_lost"].is_null());
    // Every line of the daemon's dump is understood.
    assert_eq!(v["unparsed"], serde_json::json!([]), "{v:#}");
    let instances = v["instances"].as_array().unwrap();
    assert_eq!(
        v["instance_count"].as_u64().unwrap(),
        instances.len() as u64
    );
    let inst = instances
        .iter()
        .find(|i| i["client_id"] == id)
        .unwrap_or_else(|| panic!("no instance for client {id}: {v:#}"));
    assert_eq!(inst["connected"], true);
    assert_eq!(inst["comm"], "vchiq");
    assert_eq!(
        inst["uid"].as_u64(),
        Some(u64::from(vchiqd::sys::geteuid()))
    );
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    assert_eq!(
        format!("pid:[{}]", inst["pid_namespace"]),
        ns.display().to_string()
    );
    assert_eq!(inst["service_count"], 1);
    let svc = &inst["services"][0];
    assert_eq!(svc["fourcc"], "VCDB");
    assert_eq!(svc["role"], "client");
    assert_eq!(svc["phase"], "OPEN");
    assert_eq!(svc["vchi"], true);
    assert_eq!(svc["client_id"], id);
    assert_eq!(svc["messages_out"], 1, "the probe sent one request: {svc}");
    // The status connection itself is an instance too, not connected.
    let me = instances.iter().find(|i| i["client_id"] != id).unwrap();
    assert_eq!(me["connected"], false);
    assert_eq!(me["services"], serde_json::json!([]));
}

#[test]
fn status_self_json_reports_the_attested_identity() {
    let d = TestDaemon::start(&[]);
    let (code, out, err) = d.run(&["status", "--self", "--json"], Duration::from_secs(20));
    assert_eq!(code, Some(0), "{err}");
    let v = json(&out);
    assert_eq!(v["schema"], 1);
    // Outside a namespace the PID it sees is the one the driver attests.
    assert_eq!(v["pid"], v["client_id"]);
    assert_eq!(v["socket"], d.socket().display().to_string());
}

#[test]
fn status_json_without_a_daemon_fails_with_nothing_on_stdout() {
    let dir = scratch("nodaemon");
    let sock = dir.join("none.sock");
    let mut cmd = Command::new(exe());
    cmd.args(["status", "--json"]).env("VCHIQ_SOCKET", &sock);
    let (code, out, err) = run_with_limit(cmd, Duration::from_secs(20));
    assert_eq!(code, Some(1));
    assert_eq!(out, "");
    assert!(err.contains(&sock.display().to_string()), "{err}");
}

#[test]
fn status_watch_json_prints_one_document_per_interval_without_escapes() {
    let d = TestDaemon::start(&[]);
    let mut c = Client::spawn(d.cmd(&["status", "--watch", "--json", "--interval", "0.1"]));
    let t0 = Instant::now();
    let mut docs = Vec::new();
    while docs.len() < 3 {
        let l = c
            .lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a view per interval");
        assert!(
            !l.contains('\x1b'),
            "no ANSI codes when stdout is a pipe: {l:?}"
        );
        docs.push(json(&l));
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(150),
        "views are paced"
    );
    for v in &docs {
        assert_eq!(v["schema"], 1);
        assert!(v["link"]["state"].as_str().is_some(), "{v}");
        // The watcher's own status connection is always among the instances.
        assert!(!v["instances"].as_array().unwrap().is_empty(), "{v}");
    }
    unsafe_free_kill(c.child.id(), libc::SIGINT);
    let (code, _) = c.wait_for(STOP_LIMIT).expect("stops on SIGINT");
    assert_eq!(code, Some(128 + libc::SIGINT));
}

#[test]
fn status_watch_shows_a_lost_daemon_and_carries_on() {
    let mut d = TestDaemon::start(&[]);
    let mut c = Client::spawn(d.cmd(&["status", "--watch", "--interval", "0.1"]));
    c.read_until(Duration::from_secs(20), |l| l.starts_with("vchiqd: link "));
    d.stop();
    let lines = c.read_until(Duration::from_secs(10), |l| l.starts_with("vchiq status: "));
    assert!(
        lines.iter().any(|l| l.starts_with("vchiq status: ")),
        "the error is shown in the view: {lines:?}"
    );
    assert!(
        c.wait_for(Duration::from_millis(300)).is_none(),
        "keeps watching"
    );
    assert!(lines.iter().all(|l| !l.contains('\x1b')), "{lines:?}");
}

// ---------------------------------------------------------------------------------------
// vchiq doctor

/// A fresh private directory, removed on drop.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(tag: &str) -> Scratch {
    Scratch(scratch_dir(&format!("tools-{tag}")))
}

/// Runs `vchiq doctor` on `socket` and `device`: (exit code, lines).
fn doctor(socket: &Path, device: &Path) -> (Option<i32>, Vec<String>) {
    let mut cmd = Command::new(exe());
    cmd.args(["doctor", "--device"])
        .arg(device)
        .env("VCHIQ_SOCKET", socket);
    let (code, out, err) = run_with_limit(cmd, Duration::from_secs(30));
    assert!(err.is_empty(), "doctor writes its report on stdout: {err}");
    (code, out.lines().map(str::to_owned).collect())
}

/// The line of check `name`.
fn check<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines.iter().map(String::as_str).find(|l| {
        l.split_once("  ")
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(&format!("{name}: ")))
    })
}

#[test]
fn doctor_passes_against_a_running_daemon() {
    let d = TestDaemon::start(&[]);
    let dir = scratch("doc-ok");
    let (code, lines) = doctor(d.socket(), &dir.join("no-device"));
    let all = lines.join("\n");
    assert_eq!(code, Some(0), "{all}");
    assert!(!all.contains("FAIL "), "{all}");
    let sock = d.socket().display().to_string();
    let path = check(&lines, "socket path").expect(&all);
    assert!(path.starts_with("ok ") && path.contains(&sock) && path.contains("VCHIQ_SOCKET"));
    assert!(check(&lines, "socket").expect(&all).starts_with("ok "));
    let access = check(&lines, "socket access").expect(&all);
    assert!(
        access.starts_with("ok ") && access.contains("mode 0660"),
        "{access}"
    );
    let daemon = check(&lines, "daemon").expect(&all);
    assert!(
        daemon.starts_with("ok ") && daemon.contains("answers"),
        "{daemon}"
    );
    // The attested identity: outside a namespace, this very doctor's PID, which the test
    // cannot know; but it is a number, and it is said.
    let ns = check(&lines, "pid namespace").expect(&all);
    assert!(ns.contains("Identity is attested anyway"), "{ns}");
    assert!(ns.contains("attests client id "), "{ns}");
    let dev = check(&lines, "/dev/vchiq").expect(&all);
    assert!(dev.starts_with("ok ") && dev.contains("absent"), "{dev}");
    assert!(check(&lines, "/dev/fuse").is_some(), "{all}");
    assert!(check(&lines, "preload shim").is_some(), "{all}");
    assert!(lines.last().unwrap().ends_with(" 0 FAIL"), "{all}");
}

#[test]
fn doctor_fails_on_a_missing_socket_and_says_what_to_do() {
    let dir = scratch("doc-missing");
    let sock = dir.join("gone/vchiq.sock");
    let (code, lines) = doctor(&sock, &dir.join("no-device"));
    let all = lines.join("\n");
    assert_eq!(code, Some(1), "{all}");
    let line = check(&lines, "socket").expect(&all);
    assert!(line.starts_with("FAIL "), "{line}");
    assert!(line.contains("does not exist"), "{line}");
    assert!(line.contains("-> start the daemon"), "{line}");
    // The checks that need a socket are left out, the others still run.
    assert!(check(&lines, "daemon").is_none(), "{all}");
    assert!(check(&lines, "pid namespace").is_some(), "{all}");
    assert!(lines.last().unwrap().ends_with(" 1 FAIL"), "{all}");
}

#[test]
fn doctor_tells_a_plain_file_and_a_stale_socket_from_a_daemon() {
    let dir = scratch("doc-stale");
    let file = dir.join("file.sock");
    std::fs::write(&file, b"").unwrap();
    let (code, lines) = doctor(&file, &dir.join("no-device"));
    assert_eq!(code, Some(1));
    let line = check(&lines, "socket").unwrap();
    assert!(
        line.starts_with("FAIL ") && line.contains("is a regular file, not a socket"),
        "{line}"
    );

    // A socket file nobody listens on: what a daemon killed with SIGKILL leaves.
    let stale = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let (code, lines) = doctor(&stale, &dir.join("no-device"));
    let all = lines.join("\n");
    assert_eq!(code, Some(1), "{all}");
    assert!(check(&lines, "socket").unwrap().starts_with("ok "), "{all}");
    let daemon = check(&lines, "daemon").expect(&all);
    assert!(
        daemon.starts_with("FAIL ") && daemon.contains("stale"),
        "{daemon}"
    );
}

#[test]
fn doctor_checks_what_the_device_node_is() {
    let dir = scratch("doc-dev");
    let d = TestDaemon::start(&[]);
    // A plain file where the node should be (a bind mount made too early, a leftover).
    let plain = dir.join("vchiq");
    std::fs::write(&plain, b"").unwrap();
    let (code, lines) = doctor(d.socket(), &plain);
    assert_eq!(code, Some(1));
    let line = check(&lines, "/dev/vchiq").unwrap();
    assert!(
        line.starts_with("FAIL ") && line.contains("a plain file") && line.contains("->"),
        "{line}"
    );
    // A character device that is not VCHIQ is still a device: /dev/null opens.
    let (_, lines) = doctor(d.socket(), Path::new("/dev/null"));
    let line = check(&lines, "/dev/vchiq").unwrap();
    assert!(line.contains("character device 1:3"), "{line}");

    // A real vchiqd FUSE node, where FUSE works.
    let Some(n) = NodeDaemon::start() else {
        return;
    };
    let (code, lines) = doctor(n.daemon.socket(), &n.node);
    let all = lines.join("\n");
    let line = check(&lines, "/dev/vchiq").expect(&all);
    assert!(
        line.starts_with("ok ") && line.contains("vchiqd FUSE node") && line.contains("answers"),
        "{all}"
    );
    assert_eq!(code, Some(0), "{all}");
}

// ---------------------------------------------------------------------------------------
// vchiq man / vchiq completions

/// The command names listed under `Commands:` in `vchiq ARGS --help`.
fn visible_commands(args: &[&str]) -> Vec<String> {
    let out = Command::new(exe())
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| {
            // Continuation lines of a description are indented further.
            let name = l.strip_prefix("  ")?;
            (!name.starts_with(' ')).then(|| name.split_whitespace().next().unwrap().to_owned())
        })
        .filter(|n| n != "help")
        .collect()
}

#[test]
fn man_writes_a_page_for_every_visible_command_and_none_for_hidden_ones() {
    let dir = scratch("man");
    let out = Command::new(exe())
        .args(["man", "--dir"])
        .arg(dir.as_os_str())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let page = |name: &str| std::fs::read_to_string(dir.join(format!("{name}.1")));

    let root = page("vchiq").expect("vchiq.1");
    assert!(root.contains(".TH vchiq 1"), "{root}");
    let commands = visible_commands(&[]);
    for c in ["status", "doctor", "man", "completions", "gencmd", "daemon"] {
        assert!(
            commands.iter().any(|x| x == c),
            "{c} in --help: {commands:?}"
        );
    }
    for c in &commands {
        let text = page(&format!("vchiq-{c}")).unwrap_or_else(|e| panic!("vchiq-{c}.1: {e}"));
        assert!(
            text.contains(&format!(".TH vchiq-{c} 1")),
            "vchiq-{c}.1: {text}"
        );
        // roff escapes the hyphens of the names it lists.
        assert!(root.contains(&c.replace('-', "\\-")), "vchiq.1 lists {c}");
    }
    // Nested commands (vchiq bench ping, ...) get pages of their own.
    let bench = visible_commands(&["bench"]);
    assert!(!bench.is_empty());
    for b in &bench {
        assert!(
            page(&format!("vchiq-bench-{b}")).is_ok(),
            "vchiq-bench-{b}.1"
        );
    }
    // Options and help text reach the pages.
    let status = page("vchiq-status").unwrap();
    assert!(
        status.contains("\\-\\-json") && status.contains("\\-\\-watch"),
        "{status}"
    );
    // Hidden commands get none.
    for hidden in [
        "nsexec",
        "ns-pid",
        "exec-inner",
        "videocore",
        "probe-identity",
        "probe-bulk",
    ] {
        assert!(!commands.contains(&hidden.to_owned()), "{hidden} is hidden");
        assert!(
            page(&format!("vchiq-{hidden}")).is_err(),
            "no page for {hidden}"
        );
    }
    // The Raspberry Pi names point at the commands they are.
    assert_eq!(page("vcgencmd").unwrap(), ".so man1/vchiq-gencmd.1\n");
    assert_eq!(page("vcdbg").unwrap(), ".so man1/vchiq-log.1\n");
    assert_eq!(page("vchiq_test").unwrap(), ".so man1/vchiq-test.1\n");
    let count = std::fs::read_dir(&*dir).unwrap().count();
    assert_eq!(
        count,
        1 + commands.len() + bench.len() + 3,
        "no other files"
    );
}

#[test]
fn completions_are_written_for_bash_zsh_and_fish() {
    let script = |shell: &str| {
        let out = Command::new(exe())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let bash = script("bash");
    assert!(!bash.is_empty());
    assert!(bash.contains("complete -F _vchiq"), "{bash}");
    for word in ["doctor", "status", "--json", "--watch", "completions"] {
        assert!(bash.contains(word), "bash completes {word}");
    }
    assert!(script("zsh").contains("#compdef vchiq"));
    assert!(script("fish").contains("complete -c vchiq"));
    let out = Command::new(exe())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn sigterm_stops_the_demo_with_its_clients_and_leaves_no_socket_directory() {
    if !namespaces_or_skip("sigterm_stops_the_demo_with_its_clients_and_leaves_no_socket_directory")
    {
        return;
    }
    let out = scratch_dir("demo-sigterm");
    let mut cmd = Command::new(exe());
    cmd.args(["demo", "--frames", "1000000", "--out"]).arg(&out);
    let mut c = Client::spawn(cmd);
    let lines = c.read_until(Duration::from_secs(60), |l| l.starts_with("isolation: "));
    assert!(
        lines.iter().any(|l| l.starts_with("vchiqd: listening on ")),
        "{lines:?}"
    );
    let run_dir = std::env::temp_dir().join(format!("vchiq-demo-{}", c.child.id()));
    assert!(run_dir.is_dir(), "{} while it runs", run_dir.display());
    // Let the clients start (their processes are the demo's children).
    let t0 = Instant::now();
    while children_of(c.child.id()).len() < 2 && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let clients = children_of(c.child.id());
    assert!(clients.len() >= 2, "the two clients run: {clients:?}");
    unsafe_free_kill(c.child.id(), libc::SIGTERM);
    let (code, _) = c.wait_for(STOP_LIMIT).expect("the demo stops on SIGTERM");
    assert_eq!(code, Some(128 + libc::SIGTERM));
    assert!(
        !run_dir.exists(),
        "{} is left after SIGTERM",
        run_dir.display()
    );
    // Its clients got the signal too.
    let t0 = Instant::now();
    while clients
        .iter()
        .any(|p| Path::new(&format!("/proc/{p}")).exists())
        && t0.elapsed() < STOP_LIMIT
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in clients {
        assert!(
            !Path::new(&format!("/proc/{p}")).exists(),
            "client {p} outlived the demo"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}
