//! Shared harness for the end-to-end tests: a real `vchiq daemon` on a private socket.

#![allow(dead_code)]

pub mod cprog;
pub mod hello;
pub mod raw;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `vchiq` binary under test.
pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_vchiq")
}

/// A new directory `vchiq-TAG-PID-NANOS` under the temporary directory (the caller
/// removes it).
pub fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "vchiq-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A daemon process that is killed on drop.
pub struct TestDaemon {
    pub child: Child,
    pub dir: PathBuf,
    pub socket: PathBuf,
}

impl TestDaemon {
    /// Starts `vchiq daemon` with extra arguments and waits for its socket.
    pub fn start(extra: &[&str]) -> TestDaemon {
        let dir = scratch_dir("test");
        let socket = dir.join("vchiq.sock");
        let child = Command::new(exe())
            .arg("daemon")
            .arg("--socket")
            .arg(&socket)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vchiq daemon");
        let d = TestDaemon { child, dir, socket };
        let t0 = Instant::now();
        while !d.socket.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "daemon did not create its socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    /// A `vchiq` command aimed at this daemon.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(exe());
        c.args(args).env("VCHIQ_SOCKET", &self.socket);
        c
    }

    /// Runs a `vchiq` command with a time limit; returns (status code, stdout, stderr).
    pub fn run(&self, args: &[&str], limit: Duration) -> (Option<i32>, String, String) {
        run_with_limit(self.cmd(args), limit)
    }

    /// Stops the daemon with SIGTERM and returns its exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        unsafe_free_kill(self.child.id(), 15);
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "daemon did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends a signal to one process.
pub fn unsafe_free_kill(pid: u32, sig: i32) {
    assert!(pid > 1, "refusing to signal pid {pid}");
    vchiqd::sys::signal(pid, sig);
}

/// Sends SIGKILL to a process group (a child spawned with `process_group(0)`).
pub fn kill_group(child: &mut std::process::Child) {
    let pid = child.id();
    assert!(pid > 1, "refusing to signal group {pid}");
    vchiqd::sys::kill_process_group(pid, 9);
    let _ = child.wait();
}

/// Runs a command, killing it after `limit`.
pub fn run_with_limit(mut cmd: Command, limit: Duration) -> (Option<i32>, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn");
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let to = std::thread::spawn(move || std::io::read_to_string(out).unwrap_or_default());
    let te = std::thread::spawn(move || std::io::read_to_string(err).unwrap_or_default());
    let t0 = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (code, to.join().unwrap(), te.join().unwrap())
}

/// Reads `key: value` lines from a child's stdout until `n` keys were seen.
pub fn read_keys(reader: &mut impl BufRead, n: usize) -> std::collections::HashMap<String, String> {
    let mut map = std::collections::HashMap::new();
    let mut line = String::new();
    while map.len() < n {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(": ") {
            map.insert(k.to_owned(), v.to_owned());
        }
    }
    map
}

/// Whether PID namespaces can be created here (as root, or through a user namespace).
pub fn namespaces_available() -> bool {
    let out = Command::new(exe())
        .args(["nsexec", "--", exe(), "ns-pid"])
        .output();
    if matches!(&out, Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == "1") {
        return true;
    }
    let out = Command::new(exe())
        .args(["nsexec", "--user", "--", exe(), "ns-pid"])
        .output();
    matches!(&out, Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == "1")
}

/// The nsexec arguments that work here (with `--user` when not root).
pub fn nsexec_prefix() -> Vec<String> {
    let out = Command::new(exe())
        .args(["nsexec", "--", exe(), "ns-pid"])
        .output();
    if matches!(&out, Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == "1") {
        vec!["nsexec".into(), "--".into(), exe().into()]
    } else {
        vec!["nsexec".into(), "--user".into(), "--".into(), exe().into()]
    }
}

/// The host PIDs of a process's children.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// A line reader over a child's stdout.
pub fn lines(child: &mut Child) -> BufReader<std::process::ChildStdout> {
    BufReader::new(child.stdout.take().expect("piped stdout"))
}

/// A daemon serving a file node on a private path; unmounted by the daemon on drop.
pub struct NodeDaemon {
    pub daemon: TestDaemon,
    pub node: PathBuf,
}

impl NodeDaemon {
    pub fn start() -> Option<NodeDaemon> {
        if !Path::new("/dev/fuse").exists() {
            cprog::skip("/dev/fuse does not exist");
            return None;
        }
        let dir = scratch_dir("node");
        let node = dir.join("vchiq");
        let mut daemon = TestDaemon::start(&["--dev-node", node.to_str().unwrap()]);
        let t0 = Instant::now();
        loop {
            if is_mount_point(&node) {
                break;
            }
            if let Some(status) = daemon.child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = daemon.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                cprog::skip(&format!(
                    "the daemon could not serve a file node ({status}): {err}"
                ));
                let _ = std::fs::remove_dir_all(&dir);
                return None;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the file node did not appear"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(NodeDaemon { daemon, node })
    }
}

impl Drop for NodeDaemon {
    fn drop(&mut self) {
        // SIGTERM: the daemon unmounts its node and removes the file it created.
        let _ = self.daemon.stop();
        if is_mount_point(&self.node) {
            let _ = Command::new("umount").arg("-l").arg(&self.node).status();
        }
        if let Some(dir) = self.node.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub fn is_mount_point(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = path.to_string_lossy();
    mounts.lines().any(|l| l.split(' ').nth(4) == Some(&*p))
}

/// Spawns a C test program's `block` test (in its own process group) and waits for it to
/// say it is blocked in the driver.
pub fn spawn_blocked(mut cmd: Command) -> Child {
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut r = lines(&mut child);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("blocked"), "{line}");
    child
}
