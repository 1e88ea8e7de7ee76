//! `vchiq`: the multi-call front end of the project.
//!
//! Run as `vchiq SUBCOMMAND`, or under the names of the Raspberry Pi tools it replaces:
//! `vcgencmd` (= `vchiq gencmd`), `vcdbg` (= `vchiq log` for `vcdbg log msg`) and
//! `vchiq_test` (= `vchiq test`).

mod bench;
mod daemon;
mod demo;
mod doctor;
mod exec;
mod hello;
mod khronos_link;
mod manual;
mod signals;
mod status;
mod test;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// VCHIQ anywhere: the Raspberry Pi VideoCore host interface, correct inside containers.
#[derive(Parser, Debug)]
#[command(
    name = "vchiq",
    version,
    about = "VCHIQ anywhere: the Raspberry Pi VideoCore host interface, correct inside containers",
    long_about = "VCHIQ anywhere: the Raspberry Pi VideoCore host interface, correct inside containers.\n\n\
        Start the driver daemon with `vchiq daemon`, then use the tools (`vchiq gencmd`, `vchiq log`, \
        `vchiq status`, `vchiq hello-triangle`, `vchiq test`). `vchiq demo` tells the whole story. \
        Clients find the daemon through VCHIQ_SOCKET or the default socket path; `vchiq doctor` \
        checks the set-up and says what to fix.\n\n\
        The client tools stop on SIGTERM and SIGINT with status 128 + the signal number, also \
        as PID 1 of a container or PID namespace.",
    propagate_version = true
)]
struct Cli {
    /// Log more (repeat for more detail); also honours RUST_LOG.
    // Not global: the real tools' own `-v` options (`vchiq test -v`) belong to them.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run vchiqd, the driver daemon, in the foreground (stops on SIGTERM/SIGINT).
    Daemon(daemon::DaemonArgs),
    /// Run the software VideoCore as a process of its own (started by `daemon --videocore process`).
    #[command(hide = true)]
    Videocore(daemon::VideoCoreArgs),
    /// Show the daemon's instances, services and counters (--json, --watch).
    ///
    /// The link's counters first, then one instance per client connection: the client id
    /// the driver attests, the client's PID namespace, cgroup and uid, and its services
    /// with their message counters. `--json` prints the same as a JSON document for
    /// scripts, `--watch` redraws it until interrupted, `--self` shows what the driver
    /// attests for this very process.
    Status(status::StatusArgs),
    /// Check this machine or container for common set-up mistakes and say how to fix them.
    ///
    /// Looks at the socket path and its permissions, the group video, whether a daemon
    /// answers, /dev/vchiq, /dev/fuse, the PID namespace and the preload shim. Prints one
    /// line per check (ok, warn or FAIL, with a fix after `->`) and exits 1 if a check
    /// FAILs. It only looks: nothing is changed.
    Doctor(doctor::DoctorArgs),
    /// Run the VCHIQ functional and performance tests (alias: vchiq_test).
    Test(test::TestArgs),
    /// Send a command to the VideoCore's GCMD service, like vcgencmd (alias: vcgencmd).
    Gencmd(tools::GencmdArgs),
    /// Print the VideoCore message log, like `vcdbg log msg` (alias: vcdbg).
    Log(tools::LogArgs),
    /// Write the current display framebuffer to a PNG file.
    Snapshot(tools::SnapshotArgs),
    /// The spinning textured cube of the Raspberry Pi's hello_triangle, through the whole stack.
    HelloTriangle(hello::HelloArgs),
    /// The Raspberry Pi's hello_triangle2 (OpenGL ES 2.0): a Mandelbrot set drawn by a
    /// fragment shader into a texture through a framebuffer object, then a Julia set over it.
    #[command(name = "hello-triangle2")]
    HelloTriangle2(hello::HelloArgs),
    /// The main job: hello_triangle (GLES 1.1) and hello_triangle2 (GLES 2.0) in two PID namespaces, with container-safe identity.
    Demo(demo::DemoArgs),
    /// Benchmarks, each beside a baseline measured in the same run.
    Bench(bench::BenchArgs),
    /// Run an unmodified program against the daemon: /dev/vchiq as a file node in a private
    /// mount namespace where FUSE can be used, else through the LD_PRELOAD shim built for
    /// its architecture (x86-64, i386; armhf and arm64 under qemu-user).
    Exec(exec::ExecArgs),
    /// Write a manual page per command (vchiq.1, vchiq-COMMAND.1, ...) into a directory.
    ///
    /// The pages are generated from the same definitions as --help.
    Man(manual::ManArgs),
    /// Print a shell completion script (bash, zsh or fish) on stdout.
    ///
    /// Completes commands, options and their values, generated from the same definitions
    /// as --help.
    Completions(manual::CompletionsArgs),
    /// Namespace set-up for `vchiq exec` (runs the program with the node at /dev/vchiq).
    #[command(hide = true)]
    ExecInner(exec::ExecInnerArgs),
    /// Run a command as PID 1 of a new PID namespace (used by the demo and the tests).
    #[command(hide = true)]
    Nsexec(demo::NsExecArgs),
    /// Print this process's PID (namespace probe).
    #[command(hide = true)]
    NsPid,
    /// Print what the driver and the VideoCore know about this process, then wait for
    /// stdin to close (identity tests).
    #[command(hide = true)]
    ProbeIdentity(tools::ProbeArgs),
    /// Loop bulk round trips on `fun2`, printing `ready` first (robustness tests).
    #[command(hide = true)]
    ProbeBulk(tools::ProbeArgs),
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: not in journald, `podman logs` or a CI log.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Rewrites argv for the multi-call names (vcgencmd, vcdbg, vchiq_test).
fn multicall_args() -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let name = args
        .first()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let sub = match name.as_str() {
        "vcgencmd" => Some("gencmd"),
        "vcdbg" => Some("log"),
        "vchiq_test" => Some("test"),
        _ => None,
    };
    if let Some(sub) = sub {
        args[0] = "vchiq".into();
        args.insert(1, sub.into());
        if sub == "log" {
            // `vcdbg log msg` → `vchiq log`.
            if args.get(2).is_some_and(|a| a == "log") {
                args.remove(2);
            }
            if args.get(2).is_some_and(|a| a == "msg") {
                args.remove(2);
            }
        }
        if sub == "test" || sub == "gencmd" {
            // The real tools take their own options: everything after the name is theirs.
            args.insert(2, "--".into());
        }
    }
    args
}

/// How a command stops on SIGTERM/SIGINT (see [`signals`]).
enum Termination {
    /// The kernel's default: the daemon handles the signals in its own loop; `nsexec`
    /// runs other programs; `man` and `completions` do not wait for anything.
    Default,
    /// A client tool: stops at once with status 128 + signal, also as PID 1 of a PID
    /// namespace, after cleaning up (a thread of its own reads the signals).
    Watcher,
    /// A client tool that must not have an extra thread (`bench`): the same exit status
    /// from a signal handler, without the cleanup.
    Handler,
    /// A command that runs a program (`exec`): the signals are passed on to it and its
    /// own exit status is reported.
    Forward,
}

impl Command {
    fn termination(&self) -> Termination {
        match self {
            Command::Status(_)
            | Command::Doctor(_)
            | Command::Test(_)
            | Command::Gencmd(_)
            | Command::Log(_)
            | Command::Snapshot(_)
            | Command::HelloTriangle(_)
            | Command::HelloTriangle2(_)
            | Command::Demo(_)
            | Command::ProbeIdentity(_)
            | Command::ProbeBulk(_) => Termination::Watcher,
            // `bench ping` checks that every thread of the process is on the pinned CPU.
            Command::Bench(_) => Termination::Handler,
            // They wait for the program they run and report its status.
            Command::Exec(_) | Command::ExecInner(_) => Termination::Forward,
            Command::Daemon(_)
            | Command::Videocore(_)
            | Command::Man(_)
            | Command::Completions(_)
            | Command::Nsexec(_)
            | Command::NsPid => Termination::Default,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(multicall_args());
    // First, before any thread exists: the signal mask is inherited by threads created later.
    let handled = match cli.command.termination() {
        Termination::Default => Ok(()),
        Termination::Watcher => signals::exit_on_termination(),
        Termination::Handler => signals::exit_on_termination_in_handler(),
        Termination::Forward => signals::forward_termination(),
    };
    if let Err(e) = handled {
        eprintln!("vchiq: {e:#}");
        return ExitCode::FAILURE;
    }
    let verbose = match &cli.command {
        Command::Daemon(a) => cli.verbose.max(a.verbose),
        _ => cli.verbose,
    };
    init_logging(verbose);
    let result = match cli.command {
        Command::Daemon(a) => daemon::run(a),
        Command::Videocore(a) => daemon::run_videocore(a),
        Command::Status(a) => status::status(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Man(a) => manual::man(a, Cli::command()),
        Command::Completions(a) => manual::completions(a, Cli::command()),
        Command::Test(a) => test::run(a),
        Command::Gencmd(a) => tools::gencmd(a),
        Command::Log(a) => tools::log(a),
        Command::Snapshot(a) => tools::snapshot(a),
        Command::HelloTriangle(a) => hello::run(a, hello::Scene::Cube),
        Command::HelloTriangle2(a) => hello::run(a, hello::Scene::Fractals),
        Command::Demo(a) => demo::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Exec(a) => exec::run(a),
        Command::ExecInner(a) => exec::run_inner(a),
        Command::Nsexec(a) => demo::nsexec(a),
        Command::NsPid => demo::ns_pid(),
        Command::ProbeIdentity(a) => tools::probe_identity(a),
        Command::ProbeBulk(a) => tools::probe_bulk(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vchiq: {e:#}");
            ExitCode::FAILURE
        }
    }
}
