//! vchiqd: the driver role of VCHIQ, as a library and a daemon.
//!
//! On a Raspberry Pi the Linux `vchiq` driver sits between user programs and the VideoCore
//! GPU firmware: it owns the ARM side of the shared-memory slot protocol and multiplexes
//! every `open()` of `/dev/vchiq` onto it. vchiqd does the same in user space, on any Linux
//! machine:
//!
//! ```text
//!  clients ──Unix socket──▶ server (one epoll loop over every connection)
//!                              │  decoded requests
//!                              ▼
//!                           driver (instances, services, completions, bulk, identity)
//!                              │  vchiq-link, slave side
//!                              ▼
//!            slot zero + slots + bulk arena in a memfd, eventfd doorbells
//!                              │  vchiq-link, master side
//!                              ▼
//!                           videocore (embedded threads, or a separate process)
//! ```
//!
//! **Identity.** A client's id is what the kernel says about the peer (`SO_PEERCRED`,
//! pinned by a pidfd; see [`identity`]), fixed when it connects. The VideoCore learns it
//! in the OPEN message of every service the client opens, and GET_CLIENT_ID returns the
//! same value. Nothing a client writes into a message can change it.
//!
//! **Failure containment.** A malformed frame closes that connection only; a dead client's
//! services are closed at the VideoCore; a VideoCore that dies (separate-process mode) turns
//! into EIO for every client while the daemon stays up.

pub mod driver;
pub mod fuse;
pub mod identity;
pub mod limits;
pub mod link;
pub mod parking;
mod queued;
pub mod server;
pub mod sys;
pub mod waiters;

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

pub use driver::Driver;
pub use link::{VideoCoreMode, VideoCoreRunner};
pub use videocore::VideoCoreOptions;

/// How the daemon is configured.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// The socket path.
    pub socket: PathBuf,
    /// Permission bits of the socket (default 0o660).
    pub socket_mode: u32,
    /// Group of the socket (default `video` when it exists).
    pub socket_group: Option<String>,
    /// Where the VideoCore runs.
    pub videocore: VideoCoreMode,
    /// VideoCore options (display size and output).
    pub vc: VideoCoreOptions,
    /// Connections beyond this are accepted and closed at once.
    pub max_clients: usize,
    /// Per-client and per-user limits.
    pub limits: limits::Limits,
}

impl DaemonOptions {
    /// Defaults for a socket path.
    pub fn new(socket: PathBuf) -> Self {
        DaemonOptions {
            socket,
            socket_mode: 0o660,
            socket_group: Some("video".into()),
            videocore: VideoCoreMode::Embedded,
            vc: VideoCoreOptions::default(),
            max_clients: 4096,
            limits: limits::Limits::default(),
        }
    }
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Another daemon answers on the socket.
    #[error(
        "another vchiqd is already listening on {0}; stop it or choose another path with --socket"
    )]
    AlreadyRunning(PathBuf),
    /// The socket could not be created.
    #[error("cannot listen on {path}: {source}")]
    Listen {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The link or VideoCore could not be brought up.
    #[error(transparent)]
    Setup(#[from] link::SetupError),
    /// Another system call failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A running daemon: the link, the VideoCore, the driver and the listening socket.
pub struct Daemon {
    driver: Arc<Driver>,
    runner: Option<VideoCoreRunner>,
    monitor: Option<JoinHandle<()>>,
    child_pid: Option<u32>,
    listener: OwnedFd,
    stop: Arc<OwnedFd>,
    path: PathBuf,
    /// False under socket activation: the socket file is then systemd's to keep.
    owns_path: bool,
    max_clients: usize,
}

impl Daemon {
    /// Brings up the link and the VideoCore and starts listening.
    pub fn start(opts: &DaemonOptions) -> Result<Daemon, DaemonError> {
        let mut path = opts.socket.clone();
        // systemd socket activation (packaging/systemd/vchiqd.socket): the listener is fd 3,
        // already bound with the unit's mode and group; the socket file stays systemd's.
        let activated = socket_activation();
        if let Some((_, Some(bound))) = &activated {
            path = bound.clone();
        }
        if activated.is_none() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| DaemonError::Listen {
                    path: path.clone(),
                    source,
                })?;
            }
        }
        if activated.is_none() && path.exists() {
            // A live daemon answers; a stale socket file is replaced.
            if std::os::unix::net::UnixStream::connect(&path).is_ok()
                || connect_seqpacket_probe(&path)
            {
                return Err(DaemonError::AlreadyRunning(path));
            }
            let _ = std::fs::remove_file(&path);
        }
        let (link, runner) = link::bring_up(&opts.videocore, &opts.vc)?;
        let driver = Driver::new(link);
        let owns_path = activated.is_none();
        let listener = if let Some((fd, _)) = activated {
            fd
        } else {
            let listener =
                sys::seqpacket_listen(&path, 128).map_err(|source| DaemonError::Listen {
                    path: path.clone(),
                    source,
                })?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(opts.socket_mode))?;
            if let Some(gid) = opts.socket_group.as_deref().and_then(sys::group_id) {
                if let Err(e) = sys::chgrp(&path, gid) {
                    tracing::warn!(
                        "cannot give {} to group {:?}: {e}",
                        path.display(),
                        opts.socket_group
                    );
                }
            }
            listener
        };
        let (runner, monitor, child_pid) = match runner {
            VideoCoreRunner::Process(mut child) => {
                let pid = child.id();
                let d = driver.clone();
                let monitor = std::thread::Builder::new()
                    .name("vchiqd-vc-monitor".into())
                    .spawn(move || {
                        let status = child.wait();
                        d.set_gpu_hang(format!("VideoCore process {pid} exited ({status:?})"));
                        d.link().shutdown();
                    })?;
                (None, Some(monitor), Some(pid))
            }
            r => (Some(r), None, None),
        };
        tracing::info!(
            "vchiqd listening on {}{}",
            path.display(),
            if owns_path {
                ""
            } else {
                " (socket activation)"
            }
        );
        driver.set_limits(opts.limits);
        Ok(Daemon {
            driver,
            runner,
            monitor,
            child_pid,
            listener,
            stop: Arc::new(sys::eventfd()?),
            path,
            owns_path,
            max_clients: opts.max_clients,
        })
    }

    /// The driver (status, tests).
    pub fn driver(&self) -> &Arc<Driver> {
        &self.driver
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// The embedded VideoCore, if it runs in this process.
    pub fn videocore(&self) -> Option<&videocore::VideoCore> {
        match &self.runner {
            Some(VideoCoreRunner::Embedded(vc)) => Some(vc),
            _ => None,
        }
    }

    /// A handle that stops [`Daemon::run`] from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.stop.clone())
    }

    /// Serves clients until `signals` (a signalfd) or the stopper fires; then closes every
    /// instance and stops the VideoCore.
    pub fn run(mut self, signals: Option<OwnedFd>) -> Result<(), DaemonError> {
        raise_fd_limit();
        let mut event_loop = server::EventLoop::new(self.driver.clone(), self.max_clients)?;
        let r = event_loop.run(
            self.listener.as_fd(),
            self.stop.as_fd(),
            signals.as_ref().map(|s| s.as_fd()),
        );
        self.shutdown_videocore();
        Ok(r?)
    }

    fn shutdown_videocore(&mut self) {
        if self.owns_path {
            let _ = std::fs::remove_file(&self.path);
        }
        self.driver.link().shutdown();
        if let Some(VideoCoreRunner::Embedded(vc)) = self.runner.take() {
            vc.stop();
        }
        if let Some(pid) = self.child_pid.take() {
            sys::terminate(pid);
        }
        if let Some(m) = self.monitor.take() {
            let _ = m.join();
        }
    }
}

/// The listening socket passed by systemd (`sd_listen_fds`: `LISTEN_PID` is this process,
/// `LISTEN_FDS` is 1, the socket is descriptor 3) and the path it is bound to, if any. The
/// descriptor is moved to a close-on-exec one, so a VideoCore child process never holds it.
fn socket_activation() -> Option<(OwnedFd, Option<PathBuf>)> {
    const SD_LISTEN_FDS_START: i32 = 3;
    let pid = std::env::var("LISTEN_PID").ok()?;
    if pid.trim().parse::<u32>().ok()? != std::process::id() {
        return None;
    }
    let count = std::env::var("LISTEN_FDS").unwrap_or_default();
    if count.trim() != "1" || !sys::fd_is_open(SD_LISTEN_FDS_START) {
        tracing::warn!(
            "ignoring socket activation: LISTEN_FDS={count:?} (vchiqd takes exactly one socket)"
        );
        return None;
    }
    let inherited = sys::own_fd(SD_LISTEN_FDS_START);
    let fd = match inherited.try_clone() {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!("ignoring socket activation: cannot duplicate descriptor 3: {e}");
            std::mem::forget(inherited);
            return None;
        }
    };
    drop(inherited);
    let bound = fd
        .try_clone()
        .ok()
        .map(std::os::unix::net::UnixListener::from)
        .and_then(|l| l.local_addr().ok())
        .and_then(|a| a.as_pathname().map(Path::to_owned));
    Some((fd, bound))
}

fn connect_seqpacket_probe(path: &Path) -> bool {
    // A SOCK_SEQPACKET listener refuses SOCK_STREAM connects with EPROTOTYPE: that still
    // proves something is listening there.
    matches!(
        std::os::unix::net::UnixStream::connect(path),
        Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE)
    )
}

/// Raises the soft limit on open descriptors to the hard one: every client holds a socket
/// and a pidfd, and 1,024 would cap the daemon at about 500 clients.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        let raised = rustix::process::Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!("cannot raise the descriptor limit: {e}");
        }
    }
}

/// Stops a running [`Daemon::run`].
#[derive(Clone)]
pub struct Stopper(Arc<OwnedFd>);

impl Stopper {
    /// Asks the daemon to stop.
    pub fn stop(&self) {
        sys::eventfd_signal(self.0.as_fd());
    }
}
