//! Setting up the ARM/VideoCore boundary: the shared memory, the doorbells and the
//! VideoCore itself, embedded (threads of the daemon) or as a separate process.
//!
//! Either way the daemon talks to the VideoCore only through the slot protocol in a memfd.
//! With a separate process a VideoCore crash is a contained "GPU hang": the daemon notices
//! the child's exit, marks the link dead, and clients get EIO instead of a dead daemon.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use vchiq_link::doorbell::EventFd;
use vchiq_link::shm::SharedMemory;
use vchiq_link::{Link, LinkConfig};
use videocore::{VideoCore, VideoCoreOptions};

use crate::sys;

/// The driver's side of the link.
pub type DriverLink = Link<Arc<SharedMemory>, Arc<EventFd>>;

/// Where the VideoCore runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VideoCoreMode {
    /// Threads of the daemon.
    Embedded,
    /// A separate process: this program (`vchiq videocore ...`) or another executable that
    /// accepts the same arguments.
    Process(PathBuf),
}

impl std::str::FromStr for VideoCoreMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "embedded" => Ok(VideoCoreMode::Embedded),
            "process" => std::env::current_exe()
                .map(VideoCoreMode::Process)
                .map_err(|e| format!("cannot find this program to run the VideoCore: {e}")),
            "" => {
                Err("empty --videocore value: use 'embedded', 'process' or a program path".into())
            }
            path => Ok(VideoCoreMode::Process(PathBuf::from(path))),
        }
    }
}

/// A running VideoCore, whichever way it runs.
pub enum VideoCoreRunner {
    /// In-process.
    Embedded(VideoCore),
    /// A child process.
    Process(Child),
}

/// Why the link could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Creating the shared memory or doorbells failed.
    #[error("creating the VCHIQ shared memory failed: {0}")]
    Link(#[from] vchiq_link::Error),
    /// The VideoCore did not start.
    #[error("starting the VideoCore failed: {0}")]
    VideoCore(String),
    /// A system call failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Creates the link and starts the VideoCore. Returns the driver's side and the runner.
pub fn bring_up(
    mode: &VideoCoreMode,
    options: &VideoCoreOptions,
) -> Result<(DriverLink, VideoCoreRunner), SetupError> {
    let config = LinkConfig::default();
    let mem = Arc::new(SharedMemory::create("vchiq-slots", config.memory_size())?);
    let arm_bell = Arc::new(EventFd::new()?);
    let vc_bell = Arc::new(EventFd::new()?);
    // The ARM (slave) initialises slot zero first, as the kernel does before telling the
    // firmware where it is.
    let link = Link::slave(mem.clone(), config, arm_bell.clone(), vc_bell.clone())?;
    let runner = match mode {
        VideoCoreMode::Embedded => {
            let master = Link::master(mem, vc_bell, arm_bell)?;
            // One process: bulks move straight between the client's memfd and the
            // VideoCore's buffers (vchiq_link::region), not through the arena.
            let regions = Arc::new(vchiq_link::region::BulkRegions::default());
            link.share_bulk_regions(regions.clone());
            master.share_bulk_regions(regions);
            VideoCoreRunner::Embedded(
                VideoCore::start(master, options.clone())
                    .map_err(|e| SetupError::VideoCore(e.to_string()))?,
            )
        }
        VideoCoreMode::Process(program) => {
            let fds = [mem.fd(), vc_bell.fd(), arm_bell.fd()];
            for fd in fds {
                sys::clear_cloexec(fd)?;
            }
            let mut cmd = Command::new(program);
            cmd.arg("videocore")
                .arg("--shm-fd")
                .arg(fds[0].as_raw_fd().to_string())
                .arg("--vc-bell-fd")
                .arg(fds[1].as_raw_fd().to_string())
                .arg("--arm-bell-fd")
                .arg(fds[2].as_raw_fd().to_string())
                .arg("--display-size")
                .arg(format!(
                    "{}x{}",
                    options.display_width, options.display_height
                ));
            if let Some(out) = &options.display_output {
                cmd.arg("--display").arg(out.to_string());
            }
            cmd.arg("--echo-listeners")
                .arg(options.echo_listeners.to_string());
            let child = cmd
                .spawn()
                .map_err(|e| SetupError::VideoCore(format!("{}: {e}", program.display())))?;
            VideoCoreRunner::Process(child)
        }
    };
    link.wait_remote_initialised(Duration::from_secs(10))
        .map_err(|e| {
            SetupError::VideoCore(format!(
                "the VideoCore did not initialise its half of the link: {e}"
            ))
        })?;
    Ok((link, runner))
}

/// The descriptors a VideoCore process inherits from the daemon that started it (the
/// `--shm-fd`, `--vc-bell-fd` and `--arm-bell-fd` arguments [`bring_up`] passes).
#[derive(Clone, Copy, Debug)]
pub struct InheritedLink {
    /// The link's shared memory (a memfd).
    pub shm: i32,
    /// The eventfd that wakes the VideoCore.
    pub vc_bell: i32,
    /// The eventfd that wakes the driver.
    pub arm_bell: i32,
}

/// The VideoCore process's life: takes over the inherited link, validates slot zero,
/// runs the VideoCore until SIGINT/SIGTERM (or the daemon's death, which kills it), then
/// stops it. The counterpart of [`VideoCoreMode::Process`] in [`bring_up`].
///
/// # Errors
/// A descriptor that is not open (not started by vchiqd), a slot zero that does not
/// validate, or a VideoCore that does not start.
pub fn run_videocore_process(
    fds: InheritedLink,
    options: VideoCoreOptions,
) -> Result<(), SetupError> {
    // A VideoCore without its ARM has nothing to do.
    sys::die_with_parent();
    let signals = sys::block_termination_signals()?;
    let take = |fd: i32| -> Result<std::os::fd::OwnedFd, SetupError> {
        if fd < 3 || !sys::fd_is_open(fd) {
            return Err(SetupError::VideoCore(format!(
                "descriptor {fd} is not open: vchiq videocore must be started by vchiqd"
            )));
        }
        Ok(sys::own_fd(fd))
    };
    let mem = Arc::new(SharedMemory::from_fd(take(fds.shm)?)?);
    let vc_bell = Arc::new(EventFd::from_fd(take(fds.vc_bell)?)?);
    let arm_bell = Arc::new(EventFd::from_fd(take(fds.arm_bell)?)?);
    let link = Link::master(mem, vc_bell, arm_bell)?;
    let vc = VideoCore::start(link, options).map_err(|e| SetupError::VideoCore(e.to_string()))?;
    let _ = sys::poll_readable(&[std::os::fd::AsFd::as_fd(&signals)], -1);
    vc.stop();
    Ok(())
}
