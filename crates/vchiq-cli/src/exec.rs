//! `vchiq exec -- PROGRAM ARGS...`: run an unmodified Pi program against vchiqd.
//!
//! Two delivery paths, tried in this order:
//!
//! 1. **The file node** (no change to the program's process at all; static and 32-bit
//!    programs work): a helper process (`vchiq exec-inner`, hidden) enters a private mount
//!    namespace (and first a user namespace when not root, so that an unprivileged user
//!    may mount FUSE), makes `/dev/vchiq` a mount point there (binding over an existing
//!    one, else giving the namespace a `/dev` of its own in which the host's entries are
//!    bind-mounted back), and puts the node there: the node of the daemon already running
//!    if it serves one, else the node of a private daemon it starts inside that namespace.
//!    Nothing of this is visible outside the namespace, and it all goes when it ends.
//! 2. **The preload shim**, when FUSE cannot be used: `LD_PRELOAD=libvchiq_preload.so`
//!    and `VCHIQ_SOCKET` pointing at the running daemon or a private one.
//!
//! A private daemon's socket lives in a temporary directory; the daemon is stopped when the
//! program ends. The exit status is the program's (128 + N if it died of signal N).

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use vchiqd::fuse::sys as fsys;

/// Exit code of `exec-inner` when it could not set the namespace up (nothing was run).
const SETUP_FAILED: u8 = 125;

/// Options of `vchiq exec`.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Use the LD_PRELOAD shim even where the file node could be used.
    #[arg(long, conflicts_with = "node")]
    preload: bool,
    /// Use the file node or fail (no fallback to the shim).
    #[arg(long)]
    node: bool,
    /// The program and its arguments.
    #[arg(trailing_var_arg = true, required = true)]
    command: Vec<String>,
}

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

fn exit_code(status: ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c.clamp(0, 255) as u8),
        (None, Some(sig)) => ExitCode::from((128 + sig).clamp(0, 255) as u8),
        _ => ExitCode::FAILURE,
    }
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Result<TempDir> {
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
struct PrivateDaemon {
    child: Child,
}

impl PrivateDaemon {
    /// Starts `vchiq daemon` and waits for its socket (and node). Errors carry its stderr.
    fn start(socket: &Path, node: Option<&Path>, log: &Path) -> Result<PrivateDaemon> {
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
    node_mounts().iter().any(|p| p == path)
}

/// Mount points of vchiqd file nodes visible here (`fuse.vchiqd` mounts of a regular file).
fn node_mounts() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let point = pre.split(' ').nth(4)?;
            post.starts_with("fuse.vchiqd ")
                .then(|| PathBuf::from(unescape(point)))
        })
        .filter(|p| p.is_file())
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// True if a daemon listens on `socket` (a `SOCK_SEQPACKET` listener refuses a stream
/// connect with `EPROTOTYPE`, which still proves it is there).
fn daemon_answers(socket: &Path) -> bool {
    match std::os::unix::net::UnixStream::connect(socket) {
        Ok(_) => true,
        Err(e) => e.raw_os_error() == Some(libc::EPROTOTYPE),
    }
}

/// Where the preload shim is: `$VCHIQ_PRELOAD`, next to this executable, or a lib dir.
fn find_shim() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VCHIQ_PRELOAD").map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let name = "libvchiq_preload.so";
    [
        dir.join(name),
        dir.join("../lib/vchiq").join(name),
        dir.join("../lib").join(name),
        PathBuf::from("/usr/lib/vchiq").join(name),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// `vchiq exec`.
pub fn run(a: ExecArgs) -> Result<ExitCode> {
    let socket = crate::daemon::socket_path(None);
    let running = daemon_answers(&socket);
    let scratch = TempDir::new("exec")?;
    let root = vchiqd::sys::geteuid() == 0;

    // Without access to /dev/fuse (mode 0600 on some systems) no namespace helps.
    let fuse_usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_ok();
    if !a.preload && fuse_usable {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.arg("exec-inner");
        if !root {
            cmd.arg("--user");
        }
        if running {
            match node_mounts().into_iter().next() {
                Some(node) => {
                    cmd.arg("--bind-node")
                        .arg(node)
                        .arg("--socket")
                        .arg(&socket);
                }
                None => {
                    // The running daemon serves no node: its socket, through the shim.
                    return run_preload(&a, &socket, None);
                }
            }
        } else {
            cmd.arg("--socket").arg(scratch.0.join("vchiq.sock"));
        }
        cmd.arg("--").args(&a.command);
        let status = cmd.status().context("starting vchiq exec-inner")?;
        if status.code() != Some(i32::from(SETUP_FAILED)) {
            return Ok(exit_code(status));
        }
        if a.node {
            bail!("the file node cannot be used here (see the message above)");
        }
        eprintln!("vchiq exec: falling back to the LD_PRELOAD shim");
    } else if a.node {
        bail!(
            "the file node needs /dev/fuse, which this system does not have or does not let this user open"
        );
    }
    if running {
        return run_preload(&a, &socket, None);
    }
    let sock = scratch.0.join("vchiq-preload.sock");
    let daemon = PrivateDaemon::start(&sock, None, &scratch.0.join("daemon.log"))?;
    run_preload(&a, &sock, Some(daemon))
}

fn run_preload(a: &ExecArgs, socket: &Path, daemon: Option<PrivateDaemon>) -> Result<ExitCode> {
    let Some(shim) = find_shim() else {
        bail!(
            "cannot find libvchiq_preload.so (looked next to {} and in /usr/lib/vchiq; set VCHIQ_PRELOAD): \
             build it with `cargo build -p vchiq-preload`",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    };
    let preload = match std::env::var("LD_PRELOAD") {
        Ok(old) if !old.is_empty() => format!("{}:{old}", shim.display()),
        _ => shim.display().to_string(),
    };
    let status = Command::new(&a.command[0])
        .args(&a.command[1..])
        .env("LD_PRELOAD", preload)
        .env(vchiq_abi::wire::SOCKET_ENV, socket)
        .status()
        .with_context(|| format!("running {}", a.command[0]))?;
    drop(daemon);
    Ok(exit_code(status))
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
        .status()
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
