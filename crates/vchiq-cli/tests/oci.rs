//! The container images (`packaging/oci/Containerfile`, `scripts/build-images`, issue #13)
//! under podman: a daemon container and client containers, each client its own PID 1,
//! sharing nothing but the daemon's socket directory.
//!
//! The images are built from the project's Debian package on a base that debootstrap makes
//! from the machine's Debian mirror (these machines reach no image registry). The daemon
//! container runs with `--pid=host`, as the driver role must: it identifies a client by
//! the PID the kernel reports on the socket, and a client outside its PID namespace would
//! be reported as PID 0 (the daemon refuses such a client and says why).
//!
//! Needs root, podman, debootstrap and the Debian mirror; whatever is missing makes the
//! tests skip with the reason (and fail under CI). Containers are removed on drop.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::cprog::{skip, workspace_root};
use common::hello::{frames, khan_posts, value};
use common::*;

/// Image names: `vchiq-test-daemon`, `vchiq-test-client` (and `-base:bookworm`).
const PREFIX: &str = "vchiq-test";
/// Frames of each of the two concurrent clients (enough that they overlap).
const FRAMES: usize = 600;

/// The podman settings of these tests, as a containers.conf (`CONTAINERS_CONF`).
///
/// Podman gives a root container RLIMIT_NOFILE 1048576 and RLIMIT_NPROC of its own by
/// default; where the caller may not raise its limits (no CAP_SYS_RESOURCE, as in the
/// project's sandboxes) runc then fails with "error setting rlimit type 7: operation not
/// permitted". Limits at or under the current hard ones work everywhere.
fn containers_conf() -> &'static Path {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .maximum
            .unwrap_or(1 << 20);
        let dir = scratch_dir("oci-conf");
        let path = dir.join("containers.conf");
        std::fs::write(
            &path,
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=1024:{hard}\", \"nproc=4096:4096\"]\n"
            ),
        )
        .unwrap();
        path
    })
}

fn podman() -> Command {
    let mut c = Command::new("podman");
    c.env("CONTAINERS_CONF", containers_conf())
        .stdin(Stdio::null());
    c
}

fn output(cmd: &mut Command, what: &str) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Builds the images once per run; `Err` says why they cannot be.
fn images() -> Result<(), String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT.get_or_init(build_images).clone()
}

fn build_images() -> Result<(), String> {
    if rustix::process::geteuid().as_raw() != 0 {
        return Err("podman containers need root here".into());
    }
    for (tool, package) in [("podman", "podman"), ("debootstrap", "debootstrap")] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Err(format!(
                "{tool} is not installed (Debian: apt-get install {package})"
            ));
        }
    }
    eprintln!("building the images {PREFIX}-daemon and {PREFIX}-client (once per run)...");
    let t0 = Instant::now();
    let out = output(
        Command::new(workspace_root().join("scripts/build-images"))
            .args(["--debootstrap", "--tag", PREFIX])
            .env("CONTAINERS_CONF", containers_conf())
            .current_dir(workspace_root())
            .stdin(Stdio::null()),
        "scripts/build-images",
    );
    if !out.status.success() {
        return Err(format!("scripts/build-images failed:\n{}", text(&out)));
    }
    eprintln!("images built in {:.0} s", t0.elapsed().as_secs_f64());
    Ok(())
}

/// A container started with `podman run -d`, removed (with its volume-less state) on drop.
struct Container {
    name: String,
    /// Where podman wrote the container process's host PID (`--pidfile`).
    pidfile: PathBuf,
}

impl Container {
    /// `podman run -d --name NAME RUN_ARGS IMAGE ARGS`.
    fn run(tag: &str, run_args: &[&str], image: &str, args: &[&str]) -> Container {
        let name = format!("{PREFIX}-{tag}-{}", std::process::id());
        let pidfile = std::env::temp_dir().join(format!("{name}.pid"));
        let _ = std::fs::remove_file(&pidfile);
        let _ = podman().args(["rm", "-f", &name]).output();
        let c = Container { name, pidfile };
        let out = output(
            podman()
                .args(["run", "-d", "--network", "none", "--name", &c.name])
                .arg("--pidfile")
                .arg(&c.pidfile)
                .args(run_args)
                .arg(image)
                .args(args),
            "podman run",
        );
        assert!(out.status.success(), "podman run {image}: {}", text(&out));
        c
    }

    /// The container process's host PID (written by the runtime when it started).
    fn host_pid(&self) -> u32 {
        let t0 = Instant::now();
        loop {
            if let Some(pid) = std::fs::read_to_string(&self.pidfile)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                return pid;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "{}: no pidfile",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the container to exit; its exit code.
    fn wait(&self) -> i32 {
        let out = output(podman().args(["wait", &self.name]), "podman wait");
        assert!(out.status.success(), "podman wait: {}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("podman wait printed {}", text(&out)))
    }

    fn state(&self) -> String {
        let out = output(
            podman().args(["inspect", "-f", "{{.State.Status}}", &self.name]),
            "podman inspect",
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// What the container printed (stdout, then stderr), as lines.
    fn logs(&self) -> Vec<String> {
        let out = output(podman().args(["logs", &self.name]), "podman logs");
        text(&out).lines().map(str::to_owned).collect()
    }

    /// `podman stop -t 30`: SIGTERM, then SIGKILL after 30 s. Returns the exit code.
    fn stop(&self) -> i32 {
        let out = output(
            podman().args(["stop", "-t", "30", &self.name]),
            "podman stop",
        );
        assert!(out.status.success(), "podman stop: {}", text(&out));
        self.wait()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", "-t", "0", &self.name]).output();
        let _ = std::fs::remove_file(&self.pidfile);
    }
}

/// The daemon container serving a socket directory of the host's.
struct DaemonContainer {
    dir: PathBuf,
    c: Container,
}

impl DaemonContainer {
    fn start(tag: &str) -> DaemonContainer {
        let dir = scratch_dir(&format!("oci-{tag}"));
        let volume = format!("{}:/run/vchiq", dir.display());
        let c = Container::run(
            &format!("{tag}-daemon"),
            &["--pid", "host", "-v", &volume],
            &format!("{PREFIX}-daemon"),
            &["--display-size", "640x480"],
        );
        let sock = dir.join("vchiq.sock");
        let t0 = Instant::now();
        while !sock.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the daemon container made no socket: {:?}",
                c.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        DaemonContainer { dir, c }
    }

    fn volume(&self) -> String {
        format!("{}:/run/vchiq", self.dir.display())
    }

    /// `vchiq ARGS` on the host against the daemon container's socket.
    fn host_tool(&self, args: &[&str]) -> String {
        let out = output(
            Command::new(exe())
                .args(args)
                .env("VCHIQ_SOCKET", self.dir.join("vchiq.sock")),
            "vchiq",
        );
        assert!(out.status.success(), "vchiq {args:?}: {}", text(&out));
        text(&out)
    }
}

impl Drop for DaemonContainer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_daemon_container_serves_two_pid_1_client_containers_by_their_host_pids() {
    const T: &str = "a_daemon_container_serves_two_pid_1_client_containers_by_their_host_pids";
    if let Err(why) = images() {
        return skip(&format!("{T}: {why}"));
    }
    let d = DaemonContainer::start("pair");
    let volume = d.volume();
    let client = format!("{PREFIX}-client");
    let n = FRAMES.to_string();
    let hello = |region: &'static str| {
        [
            "vchiq",
            "hello-triangle",
            "--progress",
            "--frames",
            n.as_str(),
            "--region",
            region,
        ]
    };
    let a = Container::run("a", &["-v", &volume], &client, &hello("left"));
    let b = Container::run("b", &["-v", &volume], &client, &hello("right"));
    // A tool in a third container while they render: the image's vcgencmd link.
    let temp = output(
        podman()
            .args(["run", "--rm", "--network", "none", "-v", &volume])
            .arg(&client)
            .args(["vcgencmd", "measure_temp"]),
        "podman run vcgencmd",
    );
    assert!(
        temp.status.success() && text(&temp).starts_with("temp="),
        "vcgencmd in a container: {}",
        text(&temp)
    );
    let (pa, pb) = (a.host_pid(), b.host_pid());
    assert_ne!(pa, pb);
    assert_eq!(a.wait(), 0, "client A: {:?}", a.logs());
    assert_eq!(b.wait(), 0, "client B: {:?}", b.logs());
    for (who, c, pid) in [("A", &a, pa), ("B", &b, pb)] {
        let lines = c.logs();
        assert_eq!(
            value(&lines, "pid"),
            Some("1"),
            "client {who} is PID 1 in its container: {lines:?}"
        );
        assert_eq!(
            value(&lines, "client_id"),
            Some(pid.to_string().as_str()),
            "client {who}: the client id is the container process's host PID: {lines:?}"
        );
        assert_eq!(value(&lines, "pid_source"), Some("GET_CLIENT_ID"));
        assert_eq!(frames(&lines), FRAMES, "client {who}: {lines:?}");
        assert_eq!(khan_posts(&lines), Some(FRAMES), "client {who}: {lines:?}");
    }
    // The VideoCore found every KHAN handle: no post went astray.
    let log = d.host_tool(&["log"]);
    assert!(!log.contains("No KHAN handle"), "{log}");
    // The daemon container stops in order on SIGTERM (podman stop) and removes its socket.
    assert_eq!(d.c.stop(), 0, "vchiqd's exit: {:?}", d.c.logs());
    assert!(!d.dir.join("vchiq.sock").exists(), "the socket is left");
}

#[test]
fn podman_stop_ends_a_stalled_legacy_pid_client_at_once() {
    const T: &str = "podman_stop_ends_a_stalled_legacy_pid_client_at_once";
    if let Err(why) = images() {
        return skip(&format!("{T}: {why}"));
    }
    let d = DaemonContainer::start("legacy");
    let volume = d.volume();
    let c = Container::run(
        "legacy",
        &["-v", &volume],
        &format!("{PREFIX}-client"),
        &[
            "vchiq",
            "hello-triangle",
            "--progress",
            "--frames",
            "30",
            "--legacy-pid",
        ],
    );
    let pid = c.host_pid();
    // The 2016 bug, reproduced on purpose: the client names PID 1 in its make-current
    // records, the VideoCore has no KHAN handle for it, the 4th swap blocks for ever.
    let t0 = Instant::now();
    while !d
        .host_tool(&["log"])
        .contains("No KHAN handle found for pid 1")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the legacy client did not stall: {:?}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(c.state(), "running", "it stalls, it does not finish");
    // SIGTERM reaches the stalled PID 1 (its own handler): exit 128 + 15, not the SIGKILL
    // (137) that podman sends when the grace period runs out.
    assert_eq!(c.stop(), 128 + libc::SIGTERM, "{:?}", c.logs());
    let lines = c.logs();
    assert_eq!(value(&lines, "pid"), Some("1"), "{lines:?}");
    assert_eq!(
        value(&lines, "client_id"),
        Some(pid.to_string().as_str()),
        "{lines:?}"
    );
    assert_eq!(frames(&lines), 3, "three swaps, then the stall: {lines:?}");
}
