//! `vchiq daemon` and the hidden `vchiq videocore` (the VideoCore as a separate process).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use vchiqd::{Daemon, DaemonOptions, VideoCoreMode, VideoCoreOptions};
use videocore::DisplayOutput;

/// Options of `vchiq daemon`.
#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// Log more (repeat for more detail); also honours RUST_LOG.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Socket path [default: $VCHIQ_SOCKET, /run/vchiq/vchiq.sock as root, else $XDG_RUNTIME_DIR/vchiq/vchiq.sock].
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Where the VideoCore runs: `embedded` (threads of the daemon), `process` (this
    /// program as a child process: a VideoCore crash becomes EIO for clients), or the path
    /// of a program that accepts `videocore` arguments.
    #[arg(long, default_value = "embedded")]
    videocore: String,
    /// Display output: `none`, or `png:DIR[:EVERY]` to keep a PNG of every EVERY-th frame.
    #[arg(long, default_value = "none")]
    display: String,
    /// Display size, WIDTHxHEIGHT (at most 2048x2048, as EGL on the Pi).
    #[arg(long, default_value = "1920x1080", value_parser = parse_size)]
    display_size: (u32, u32),
    /// Socket permission bits (octal).
    #[arg(long, default_value = "660", value_parser = parse_mode)]
    socket_mode: u32,
    /// Socket group [default: video, when it exists].
    #[arg(long)]
    socket_group: Option<String>,
    /// Also serve the ioctl ABI as a FUSE file node at this path (e.g. /dev/vchiq, or a
    /// file to bind-mount into containers); unmounted when the daemon stops.
    #[arg(long)]
    dev_node: Option<PathBuf>,
    /// Permission bits of the file node (octal).
    #[arg(long, default_value = "660", value_parser = parse_mode)]
    dev_node_mode: u32,
    /// Clients connected at once; more are refused with a reason the client shows
    /// ("the client limit (N) is reached"). Each client costs the daemon two descriptors.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    max_clients: u32,
    /// Instances (connections and opens of the file node) one user (uid) may hold at
    /// once; more are refused with the reason, and an open() of the node fails with EMFILE.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    max_instances_per_uid: u32,
    /// Services one client may hold at once; CREATE_SERVICE past it fails with EMFILE.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    max_services_per_client: u32,
    /// Bytes of VideoCore messages queued for one client and not yet read; while it holds
    /// more, its QUEUE_MESSAGE fails with ENOBUFS.
    #[arg(long, default_value_t = 16 << 20, value_parser = clap::value_parser!(u32).range(4096..))]
    max_queued_bytes_per_client: u32,
    /// Completions without a message (service opened or closed, bulk done or aborted)
    /// queued for one client that does not await them; while it holds this many, its
    /// CREATE_SERVICE and CALLBACK bulks fail with ENOBUFS (nothing queued is dropped).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(16..))]
    max_queued_completions_per_client: u32,
    /// FUSE requests of one opener of the file node (--dev-node) waiting at once (on a
    /// worker thread or parked); past it the ioctl fails with EAGAIN.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    max_node_requests_per_client: u32,
    /// `echo` test servers (one connection each; 8 as on a Pi). Raise it to run more
    /// concurrent `vchiq test` or benchmark clients.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=4096))]
    echo_listeners: u16,
}

/// Options of the hidden `vchiq videocore`.
#[derive(Args, Debug)]
pub struct VideoCoreArgs {
    /// The link's shared memory (a memfd inherited from vchiqd).
    #[arg(long)]
    shm_fd: i32,
    /// The eventfd that wakes the VideoCore.
    #[arg(long)]
    vc_bell_fd: i32,
    /// The eventfd that wakes the driver.
    #[arg(long)]
    arm_bell_fd: i32,
    /// Display size.
    #[arg(long, default_value = "1920x1080", value_parser = parse_size)]
    display_size: (u32, u32),
    /// Display output.
    #[arg(long, default_value = "none")]
    display: String,
    /// `echo` test servers.
    #[arg(long, default_value_t = 8)]
    echo_listeners: u16,
}

/// Parses `WIDTHxHEIGHT`.
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("'{s}' is not WIDTHxHEIGHT"))?;
    let w: u32 = w.parse().map_err(|_| format!("bad width in '{s}'"))?;
    let h: u32 = h.parse().map_err(|_| format!("bad height in '{s}'"))?;
    if !(1..=2048).contains(&w) || !(1..=2048).contains(&h) {
        return Err(format!(
            "display size {w}x{h} is outside 1x1..2048x2048 (EGL on the Pi rejects larger windows)"
        ));
    }
    Ok((w, h))
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8).map_err(|_| format!("'{s}' is not an octal mode"))
}

fn vc_options(size: (u32, u32), display: &str, echo_listeners: u16) -> Result<VideoCoreOptions> {
    let output: DisplayOutput = display.parse().map_err(anyhow::Error::msg)?;
    Ok(VideoCoreOptions {
        display_width: size.0,
        display_height: size.1,
        display_output: (output != DisplayOutput::None).then_some(output),
        echo_listeners: usize::from(echo_listeners),
    })
}

/// The socket path every command uses: `--socket`, else `$VCHIQ_SOCKET`, else the default.
pub fn socket_path(explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(|| vchiq_abi::wire::default_socket_path(vchiqd::sys::geteuid()))
}

pub fn run(a: DaemonArgs) -> Result<ExitCode> {
    let mut opts = DaemonOptions::new(socket_path(a.socket));
    opts.videocore = a
        .videocore
        .parse::<VideoCoreMode>()
        .map_err(anyhow::Error::msg)?;
    opts.vc = vc_options(a.display_size, &a.display, a.echo_listeners)?;
    opts.socket_mode = a.socket_mode;
    opts.max_clients = a.max_clients as usize;
    opts.limits = vchiqd::limits::Limits {
        instances_per_uid: a.max_instances_per_uid as usize,
        services_per_instance: a.max_services_per_client as usize,
        queued_bytes_per_instance: a.max_queued_bytes_per_client as usize,
        completions_per_instance: a.max_queued_completions_per_client as usize,
        node_requests_per_opener: a.max_node_requests_per_client as usize,
    };
    if let Some(g) = a.socket_group {
        opts.socket_group = Some(g);
    }
    // Block SIGINT/SIGTERM before any thread starts, so only the signalfd sees them.
    let signals = vchiqd::sys::block_termination_signals().context("installing signal handling")?;
    let daemon = Daemon::start(&opts).context("starting vchiqd")?;
    let node = match &a.dev_node {
        Some(path) => {
            let mut nopts = vchiqd::fuse::NodeOptions::new(path.clone());
            nopts.mode = a.dev_node_mode;
            nopts.daemon_socket = Some(std::path::absolute(daemon.socket_path())?);
            if let Some(g) = &opts.socket_group {
                nopts.group = Some(g.clone());
            }
            let node = vchiqd::fuse::FuseNode::start(daemon.driver().clone(), &nopts)
                .with_context(|| format!("serving the file node {}", path.display()))?;
            eprintln!("vchiqd: file node {} (FUSE)", node.path().display());
            Some(node)
        }
        None => None,
    };
    eprintln!(
        "vchiqd: listening on {} (VideoCore: {}, display {}x{}); stop with Ctrl-C or SIGTERM",
        daemon.socket_path().display(),
        a.videocore,
        opts.vc.display_width,
        opts.vc.display_height
    );
    let result = daemon.run(Some(signals)).context("vchiqd");
    if let Some(node) = node {
        node.stop();
    }
    result?;
    eprintln!("vchiqd: stopped");
    Ok(ExitCode::SUCCESS)
}

pub fn run_videocore(a: VideoCoreArgs) -> Result<ExitCode> {
    let fds = vchiqd::link::InheritedLink {
        shm: a.shm_fd,
        vc_bell: a.vc_bell_fd,
        arm_bell: a.arm_bell_fd,
    };
    let options = vc_options(a.display_size, &a.display, a.echo_listeners)?;
    vchiqd::link::run_videocore_process(fds, options).context("vchiq videocore")?;
    Ok(ExitCode::SUCCESS)
}
