//! The file-node path of `vchiq exec`: a private mount namespace with the node at
//! `/dev/vchiq` (the running daemon's node bound there, or a private daemon's), entered
//! by the hidden `vchiq exec-inner`; and the private daemons both paths may start.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use vchiqd::fuse::sys as fsys;

/// Exit code of `exec-inner` when it could not set the namespace up (nothing was run).
pub const SETUP_FAILED: u8 = 125;

/// Options of the hidden `vchiq exec-inner`.
#[derive(Args, Debug)]
pub struct ExecInnerArgs {
    /// Also create a user namespace (unprivileged callers).
    #[arg(long)]
    user: bool,
    /// Bind this existing node at /dev/vchiq (else start a private daemon serving it).
    #[arg(long)]
    bind_node: Option<PathBuf>,
    /// Socket of the private daemon.
    #[arg(long)]
    socket: PathBuf,
    /// The program and its arguments.
    #[arg(trailing_var_arg = true, required = true)]
    command: Vec<String>,
}

pub fn exit_code(status: ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c.clamp(0, 255) as u8),
        (None, Some(sig)) => ExitCode::from((128 + sig).clamp(0, 255) as u8),
        _ => ExitCode::FAILURE,
    }
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Result<TempDir> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("vchiq-{tag}-{}-{}", std::process::id(), nanos()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A daemon started for one program; stopped (SIGTERM, then SIGKILL) on drop.
pub struct PrivateDaemon {
    child: Child,
}

impl PrivateDaemon {
    /// Starts `vchiq daemon` and waits for its socket (and node). Errors carry its stderr.
    pub fn start(socket: &Path, node: Option<&Path>, log: &Path) -> Result<PrivateDaemon> {
        let exe = std::env::current_exe().context("locating the vchiq executable")?;
        // A socket file left by an earlier attempt would look ready at once.
        let _ = std::fs::remove_file(socket);
        let mut cmd = Command::new(exe);
        cmd.arg("daemon").arg("--socket").arg(socket);
        if let Some(n) = node {
            cmd.arg("--dev-node").arg(n);
        }
        let logf = std::fs::File::create(log)?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf)
            .process_group(0);
        let child = cmd.spawn().context("starting a private vchiq daemon")?;
        let mut d = PrivateDaemon { child };
        let t0 = Instant::now();
        loop {
            let ready = socket.exists() && node.is_none_or(is_node_mounted);
            if ready {
                return Ok(d);
            }
            if let Some(status) = d.child.try_wait()? {
                let err = std::fs::read_to_string(log).unwrap_or_default();
                bail!("the private daemon exited ({status}): {}", err.trim());
            }
            if t0.elapsed() > Duration::from_secs(20) {
                bail!("the private daemon did not come up within 20 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        vchiqd::sys::terminate(self.child.id());
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True if `path` is the mount point of a vchiqd file node.
fn is_node_mounted(path: &Path) -> bool {
    node_mounts().iter().any(|m| m.point == path)
}

/// A vchiqd file node visible in this mount namespace.
#[derive(Debug)]
pub struct NodeMount {
    pub point: PathBuf,
    /// The socket of the daemon serving it, when the daemon recorded it (mount source
    /// `vchiqd:PATH`).
    pub daemon_socket: Option<PathBuf>,
}

/// The vchiqd file nodes mounted here (`fuse.vchiqd` mounts of a regular file).
pub fn node_mounts() -> Vec<NodeMount> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let point = PathBuf::from(unescape(pre.split(' ').nth(4)?));
            let mut f = post.split(' ');
            (f.next()? == "fuse.vchiqd").then_some(())?;
            let source = unescape(f.next().unwrap_or_default());
            let daemon_socket = source
                .strip_prefix(vchiqd::fuse::MOUNT_SOURCE_PREFIX)
                .map(PathBuf::from);
            Some(NodeMount {
                point,
                daemon_socket,
            })
        })
        .filter(|m| m.point.is_file())
        .collect()
}

/// The node served by the daemon listening on `socket`, if it serves one here.
pub fn node_of(socket: &Path) -> Option<PathBuf> {
    let want = std::path::absolute(socket).ok()?;
    node_mounts()
        .into_iter()
        .find(|m| m.daemon_socket.as_deref() == Some(&want))
        .map(|m| m.point)
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// True if a daemon listens on `socket` (a `SOCK_SEQPACKET` listener refuses a stream
/// connect with `EPROTOTYPE`, which still proves it is there).
pub fn daemon_answers(socket: &Path) -> bool {
    match std::os::unix::net::UnixStream::connect(socket) {
        Ok(_) => true,
        Err(e) => e.raw_os_error() == Some(libc::EPROTOTYPE),
    }
}

/// `vchiq exec-inner`: namespace set-up, then the program. Exits [`SETUP_FAILED`] with a
/// message when the node cannot be provided (the caller then falls back to the shim).
pub fn run_inner(a: ExecInnerArgs) -> Result<ExitCode> {
    let setup = || -> Result<Option<PrivateDaemon>> {
        fsys::enter_private_mount_namespace(a.user)
            .context("creating a private mount namespace")?;
        let dev_node = Path::new("/dev/vchiq");
        let scratch =
            std::env::temp_dir().join(format!("vchiq-exec-dev-{}-{}", std::process::id(), nanos()));
        if std::fs::symlink_metadata(dev_node).is_err() {
            private_dev(&scratch).context("giving the namespace a /dev with a vchiq entry")?;
        }
        match &a.bind_node {
            Some(node) => {
                fsys::bind_mount(node, dev_node, false)
                    .with_context(|| format!("binding {} at /dev/vchiq", node.display()))?;
                Ok(None)
            }
            None => {
                let log =
                    std::env::temp_dir().join(format!("vchiq-exec-{}.log", std::process::id()));
                let d = PrivateDaemon::start(&a.socket, Some(dev_node), &log);
                let _ = std::fs::remove_file(&log);
                Ok(Some(d?))
            }
        }
    };
    let daemon = match setup() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("vchiq exec: the file node cannot be used: {e:#}");
            return Ok(ExitCode::from(SETUP_FAILED));
        }
    };
    let status = Command::new(&a.command[0])
        .args(&a.command[1..])
        .env(vchiq_abi::wire::SOCKET_ENV, &a.socket)
        .spawn()
        .and_then(|mut child| {
            crate::signals::forward_to(child.id());
            child.wait()
        })
        .with_context(|| format!("running {}", a.command[0]));
    drop(daemon);
    let status = status?;
    // A program that itself exits 125 must not be mistaken for a set-up failure.
    if status.code() == Some(i32::from(SETUP_FAILED)) {
        return Ok(ExitCode::from(SETUP_FAILED + 1));
    }
    Ok(exit_code(status))
}

/// Replaces `/dev` (in this mount namespace only) by a tmpfs holding the host's entries,
/// bind-mounted back, and an empty `vchiq` file to mount the node on.
fn private_dev(stage: &Path) -> Result<()> {
    std::fs::create_dir_all(stage)?;
    fsys::mount(
        "tmpfs",
        stage,
        Some("tmpfs"),
        libc::MS_NOSUID,
        Some("mode=755"),
    )
    .context("mounting a tmpfs")?;
    for entry in std::fs::read_dir("/dev")?.flatten() {
        let src = entry.path();
        let dst = stage.join(entry.file_name());
        let ty = entry.file_type()?;
        let r = if ty.is_symlink() {
            std::fs::read_link(&src).and_then(|t| std::os::unix::fs::symlink(t, &dst))
        } else if ty.is_dir() {
            std::fs::create_dir(&dst).and_then(|()| fsys::bind_mount(&src, &dst, true))
        } else {
            std::fs::File::create(&dst)
                .map(drop)
                .and_then(|()| fsys::bind_mount(&src, &dst, false))
        };
        if let Err(e) = r {
            tracing::debug!("private /dev: {}: {e}", src.display());
        }
    }
    std::fs::File::create(stage.join("vchiq"))?;
    fsys::move_mount(stage, Path::new("/dev")).context("moving the private /dev into place")?;
    let _ = std::fs::remove_dir(stage);
    Ok(())
}
