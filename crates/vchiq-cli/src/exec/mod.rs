//! `vchiq exec -- PROGRAM ARGS...`: run an unmodified Pi program against vchiqd.
//!
//! `exec` first reads the program's ELF header (class, machine, dynamic loader) and works
//! out which of two paths can reach the daemon for it:
//!
//! 1. **The file node** (no change to the program's process at all; static programs work):
//!    a helper process (`vchiq exec-inner`, hidden) enters a private mount namespace and
//!    puts a node at `/dev/vchiq` there: the running daemon's own node, or that of a
//!    private daemon started inside the namespace ([`node`]). Needs `/dev/fuse` and a
//!    program the kernel runs itself: qemu-user does not pass the VCHIQ ioctls through.
//! 2. **The preload shim** built for the program's architecture ([`arch`]):
//!    `LD_PRELOAD=libvchiq_preload.so` and `VCHIQ_SOCKET`. An ARM program on an x86 host
//!    runs under qemu-user with the ARM shim injected inside the emulated process (`-E`),
//!    so its open/ioctl/mmap/close become daemon requests as on a Pi. The emulated process
//!    is a real host process: the daemon still attests its identity from the socket.
//!
//! Without `--node`/`--preload` the node is preferred and the shim is the fallback. When
//! neither path can work, `exec` says why before starting anything.
//!
//! A private daemon's socket lives in a temporary directory; the daemon is stopped when the
//! program ends. The exit status is the program's (128 + N if it died of signal N).

pub mod arch;
pub mod elf;
mod node;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::Args;

use arch::Arch;
pub use node::{ExecInnerArgs, run_inner};
use node::{PrivateDaemon, SETUP_FAILED, TempDir, daemon_answers, exit_code};

/// Options of `vchiq exec`.
#[derive(Args, Debug)]
#[command(after_help = "\
Paths: the file node needs /dev/fuse and a program this kernel runs itself (x86-64 and i386 \
here); the shim needs a dynamically linked program and the shim built for its architecture \
(scripts/build-shims builds x86-64, i386, armhf and arm64). ARM programs run under qemu-user \
(Debian's qemu-user) with the ARM shim inside; their libraries come from --sysroot, \
$QEMU_LD_PREFIX, the multiarch libraries of this system (libc6:armhf, libc6:arm64) or Debian's \
cross sysroot /usr/<tuple>. `vchiq exec --explain -- PROGRAM` shows the choice and why.")]
pub struct ExecArgs {
    /// Use the LD_PRELOAD shim even where the file node could be used (fails for a static
    /// program, which never reads LD_PRELOAD).
    #[arg(long, conflicts_with = "node")]
    preload: bool,
    /// Use the file node or fail (no fallback to the shim).
    #[arg(long)]
    node: bool,
    /// Print which path would be taken for the program and why, without running it.
    #[arg(long)]
    explain: bool,
    /// Root of the program's libraries when it runs under qemu-user (qemu's -L).
    #[arg(long, value_name = "DIR")]
    sysroot: Option<PathBuf>,
    /// The program and its arguments.
    #[arg(trailing_var_arg = true, required = true)]
    command: Vec<String>,
}

/// What `exec` learned about the program.
struct Program {
    path: PathBuf,
    arch: Arch,
    /// "32-bit i386 (EM 3), dynamic loader /lib/ld-linux.so.2", or why it is assumed.
    describe: String,
    /// The dynamic loader (`PT_INTERP`); `None` for a static program.
    interp: Option<String>,
    /// Not ELF (a script): run as given, as a host program.
    script: bool,
}

impl Program {
    fn inspect(name: &str) -> Result<Program> {
        let Some(path) = arch::resolve_program(name) else {
            bail!("{name}: no such program on PATH");
        };
        match elf::read(&path) {
            Ok(info) => {
                let Some(arch) = info.arch else {
                    bail!(
                        "{} is a {} program: vchiq exec has no shim for it (it serves x86-64, \
                         i386, armhf and arm64 programs)",
                        path.display(),
                        info.describe
                    );
                };
                let describe = match &info.interp {
                    Some(i) => format!("{}, dynamic loader {i}", info.describe),
                    None => format!("{}, statically linked", info.describe),
                };
                Ok(Program {
                    path,
                    arch,
                    describe,
                    interp: info.interp,
                    script: false,
                })
            }
            Err(elf::ElfError::NotElf) => Ok(Program {
                describe: "not ELF (a script?): run as a host program".into(),
                path,
                arch: Arch::host(),
                interp: None,
                script: true,
            }),
            Err(e) => bail!("{}: {e}", path.display()),
        }
    }

    /// Whether LD_PRELOAD can reach it (a script's interpreter is assumed dynamic).
    fn dynamic(&self) -> bool {
        self.script || self.interp.is_some()
    }
}

/// How the file node would be provided.
#[derive(Debug)]
enum NodeRoute {
    /// The running daemon's node, bound at /dev/vchiq in the namespace.
    Bind(PathBuf),
    /// A private daemon serving a node inside the namespace.
    Private,
}

/// How the shim would be injected.
#[derive(Debug)]
struct ShimRoute {
    shim: PathBuf,
    /// qemu-user and the library root, for a program this kernel does not run itself.
    qemu: Option<(PathBuf, PathBuf)>,
}

/// Everything `exec` decided, before anything runs.
struct Plan {
    program: Program,
    socket: PathBuf,
    running: bool,
    node: Result<NodeRoute, String>,
    shim: Result<ShimRoute, String>,
}

fn fuse_usable() -> bool {
    // Without access to /dev/fuse (mode 0600 on some systems) no namespace helps.
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_ok()
}

impl Plan {
    fn make(a: &ExecArgs) -> Result<Plan> {
        let program = Program::inspect(&a.command[0])?;
        let socket = crate::daemon::socket_path(None);
        let running = daemon_answers(&socket);
        let node = Self::node_route(&program, &socket, running);
        let shim = Self::shim_route(&program, a.sysroot.as_deref());
        Ok(Plan {
            program,
            socket,
            running,
            node,
            shim,
        })
    }

    fn node_route(p: &Program, socket: &Path, running: bool) -> Result<NodeRoute, String> {
        if !p.arch.runs_natively() {
            return Err(format!(
                "the program is {} and runs under qemu-user here, which answers the VCHIQ \
                 ioctls itself instead of passing them to a file node",
                p.arch
            ));
        }
        if !fuse_usable() {
            return Err(
                "it needs /dev/fuse, which this system does not have or does not \
                        let this user open"
                    .into(),
            );
        }
        if !running {
            return Ok(NodeRoute::Private);
        }
        match node::node_of(socket) {
            Some(n) => Ok(NodeRoute::Bind(n)),
            None => Err(format!(
                "the daemon on {} serves no file node here (start it with `vchiq daemon \
                 --dev-node PATH`, or stop it to let exec start a private one)",
                socket.display()
            )),
        }
    }

    fn shim_route(p: &Program, sysroot: Option<&Path>) -> Result<ShimRoute, String> {
        if !p.dynamic() {
            return Err(format!(
                "{} is statically linked: it has no dynamic loader, so LD_PRELOAD cannot \
                 reach it (the file node can)",
                p.path.display()
            ));
        }
        let shim = find_shim(p.arch)?;
        if p.arch.runs_natively() {
            return Ok(ShimRoute { shim, qemu: None });
        }
        let Some(qemu) = p.arch.find_qemu() else {
            return Err(format!(
                "a {} program needs qemu-user on this {} machine: install it (Debian: \
                 apt-get install qemu-user)",
                p.arch,
                Arch::host()
            ));
        };
        let root = library_root(p, sysroot)?;
        Ok(ShimRoute {
            shim,
            qemu: Some((qemu, root)),
        })
    }

    fn explain(&self) -> String {
        let mut s = format!(
            "program: {} ({})\nsocket: {} ({})\n",
            self.program.path.display(),
            self.program.describe,
            self.socket.display(),
            if self.running {
                "a daemon answers"
            } else {
                "no daemon: exec starts a private one"
            }
        );
        match &self.node {
            Ok(NodeRoute::Bind(n)) => {
                s += &format!("file node: yes, the daemon's node {}\n", n.display())
            }
            Ok(NodeRoute::Private) => s += "file node: yes, a private daemon's\n",
            Err(e) => s += &format!("file node: no: {e}\n"),
        }
        match &self.shim {
            Ok(r) => {
                s += &format!("shim: yes, {}", r.shim.display());
                if let Some((q, root)) = &r.qemu {
                    s += &format!(" under {} -L {}", q.display(), root.display());
                }
                s += "\n";
            }
            Err(e) => s += &format!("shim: no: {e}\n"),
        }
        let found: Vec<String> = Arch::ALL
            .iter()
            .map(|&arch| match find_shim(arch) {
                Ok(p) => format!("  {arch}: {}", p.display()),
                Err(_) => format!("  {arch}: not found"),
            })
            .collect();
        s += &format!("shims:\n{}\n", found.join("\n"));
        s
    }
}

/// The shim for `arch`: `$VCHIQ_PRELOAD` (checked to be of that architecture), else the
/// first of the table's candidates that is.
pub fn find_shim(arch: Arch) -> Result<PathBuf, String> {
    let is_for = |p: &Path| elf::read(p).is_ok_and(|i| i.arch == Some(arch));
    if let Some(p) = std::env::var_os("VCHIQ_PRELOAD").map(PathBuf::from) {
        if !p.is_file() {
            return Err(format!("VCHIQ_PRELOAD={} does not exist", p.display()));
        }
        if !is_for(&p) {
            let what = elf::read(&p).map_or_else(|e| e.to_string(), |i| i.describe);
            return Err(format!(
                "VCHIQ_PRELOAD={} is {what}, not a shim for this {arch} program (unset it to \
                 let exec pick the shim by architecture)",
                p.display()
            ));
        }
        return Ok(p);
    }
    let exe = std::env::current_exe().map_err(|e| format!("locating vchiq: {e}"))?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let candidates = arch.shim_candidates(dir);
    if let Some(p) = candidates.iter().find(|p| is_for(p)) {
        return Ok(p.clone());
    }
    Err(format!(
        "no {arch} build of {} (looked in {}): build it with `scripts/build-shims` in the \
         source tree, or set VCHIQ_PRELOAD",
        arch::SHIM_NAME,
        candidates
            .iter()
            .filter_map(|p| p.parent().map(|d| d.display().to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Where an emulated program's libraries are: `--sysroot`, `$QEMU_LD_PREFIX`, this system
/// (multiarch `libc6:<arch>`, or an ARM container's own root), or Debian's cross sysroot.
/// The choice must hold the program's dynamic loader: a loader from one root with a libc
/// from another crashes.
fn library_root(p: &Program, sysroot: Option<&Path>) -> Result<PathBuf, String> {
    let interp = p.interp.as_deref().unwrap_or("");
    let has_loader = |root: &Path| root.join(interp.trim_start_matches('/')).exists();
    let explicit = sysroot
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("QEMU_LD_PREFIX").map(PathBuf::from));
    if let Some(root) = explicit {
        if !has_loader(&root) {
            return Err(format!(
                "the library root {} has no {interp} (the program's dynamic loader)",
                root.display()
            ));
        }
        return Ok(root);
    }
    let cross = p.arch.cross_sysroot();
    [PathBuf::from("/"), cross]
        .into_iter()
        .find(|r| has_loader(r))
        .ok_or_else(|| {
            format!(
                "the program's dynamic loader {interp} is not installed: install the {a} \
                 C library (dpkg --add-architecture {a}; apt-get install libc6:{a}) or pass \
                 --sysroot DIR (the root of an {a} system)",
                a = p.arch
            )
        })
}

/// The path `exec` takes, decided once for `--explain` and for the run.
enum Route<'p> {
    /// The file node, and the shim to fall back to if the namespace cannot be set up
    /// (none with `--node`, or when the shim cannot work either).
    Node(&'p NodeRoute, Option<&'p ShimRoute>),
    Shim(&'p ShimRoute),
}

impl Plan {
    /// The route the options and the two possibilities give, or why there is none.
    fn route(&self, a: &ExecArgs) -> Result<Route<'_>, String> {
        let name = &a.command[0];
        if a.node {
            return self
                .node
                .as_ref()
                .map(|n| Route::Node(n, None))
                .map_err(|e| format!("--node: the file node cannot be used for {name}: {e}"));
        }
        if a.preload {
            return self
                .shim
                .as_ref()
                .map(Route::Shim)
                .map_err(|e| format!("--preload: the shim cannot be used for {name}: {e}"));
        }
        match (&self.node, &self.shim) {
            (Ok(n), shim) => Ok(Route::Node(n, shim.as_ref().ok())),
            (Err(_), Ok(s)) => Ok(Route::Shim(s)),
            (Err(n), Err(s)) => Err(format!(
                "no way to reach the daemon for {name} ({}):\n  file node: {n}\n  shim: {s}",
                self.program.describe
            )),
        }
    }
}

/// `vchiq exec`.
pub fn run(a: ExecArgs) -> Result<ExitCode> {
    let plan = Plan::make(&a)?;
    let route = plan.route(&a);
    if a.explain {
        print!("{}", plan.explain());
        return Ok(match route {
            Ok(Route::Node(..)) => {
                println!("route: file node");
                ExitCode::SUCCESS
            }
            Ok(Route::Shim(_)) => {
                println!("route: shim");
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!(
                    "route: none ({})",
                    e.lines().next().unwrap_or_default().trim_end_matches(':')
                );
                ExitCode::FAILURE
            }
        });
    }
    match route.map_err(anyhow::Error::msg)? {
        Route::Shim(s) => run_shim(&a, &plan, s),
        Route::Node(n, fallback) => {
            if let Some(code) = run_node(&a, &plan, n)? {
                return Ok(code);
            }
            match fallback {
                Some(s) => {
                    eprintln!("vchiq exec: falling back to the LD_PRELOAD shim");
                    run_shim(&a, &plan, s)
                }
                None if a.node => {
                    bail!("--node: the file node cannot be used here (see the message above)")
                }
                None => bail!(
                    "the file node cannot be used here (see above), and the shim cannot \
                     either: {}",
                    plan.shim.as_ref().err().map_or("", String::as_str)
                ),
            }
        }
    }
}

/// The node path; `None` when the namespace could not be set up (nothing was run).
fn run_node(a: &ExecArgs, plan: &Plan, route: &NodeRoute) -> Result<Option<ExitCode>> {
    let scratch = TempDir::new("exec")?;
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("exec-inner");
    if vchiqd::sys::geteuid() != 0 {
        cmd.arg("--user");
    }
    match route {
        NodeRoute::Bind(node) => {
            cmd.arg("--bind-node")
                .arg(node)
                .arg("--socket")
                .arg(&plan.socket);
        }
        NodeRoute::Private => {
            cmd.arg("--socket").arg(scratch.0.join("vchiq.sock"));
        }
    }
    cmd.arg("--").args(&a.command);
    let mut child = cmd.spawn().context("starting vchiq exec-inner")?;
    crate::signals::forward_to(child.id());
    let status = child.wait()?;
    if status.code() == Some(i32::from(SETUP_FAILED)) {
        return Ok(None);
    }
    Ok(Some(exit_code(status)))
}

/// The shim path: the running daemon's socket, or a private daemon's.
fn run_shim(a: &ExecArgs, plan: &Plan, route: &ShimRoute) -> Result<ExitCode> {
    let scratch = TempDir::new("exec")?;
    let (socket, daemon) = if plan.running {
        (plan.socket.clone(), None)
    } else {
        let sock = scratch.0.join("vchiq-preload.sock");
        let d = PrivateDaemon::start(&sock, None, &scratch.0.join("daemon.log"))?;
        (sock, Some(d))
    };
    let preload = match std::env::var("LD_PRELOAD") {
        Ok(old) if !old.is_empty() => format!("{}:{old}", route.shim.display()),
        _ => route.shim.display().to_string(),
    };
    let mut cmd = match &route.qemu {
        None => {
            let mut c = Command::new(&a.command[0]);
            c.env("LD_PRELOAD", &preload)
                .env(vchiq_abi::wire::SOCKET_ENV, &socket);
            c
        }
        Some((qemu, root)) => {
            // The variables go to the emulated program only (-E): qemu itself is a host
            // program, and the host loader would try to preload an ARM library into it.
            let mut c = Command::new(qemu);
            c.env_remove("LD_PRELOAD")
                .arg("-L")
                .arg(root)
                .arg("-0")
                .arg(&a.command[0])
                .arg("-E")
                .arg(format!("LD_PRELOAD={preload}"))
                .arg("-E")
                .arg(format!(
                    "{}={}",
                    vchiq_abi::wire::SOCKET_ENV,
                    socket.display()
                ))
                .arg(&plan.program.path);
            c
        }
    };
    tracing::info!(
        "vchiq exec: {} ({}) through {}",
        plan.program.path.display(),
        plan.program.describe,
        route.shim.display()
    );
    let mut child = cmd
        .args(&a.command[1..])
        .spawn()
        .with_context(|| format!("running {}", a.command[0]))?;
    crate::signals::forward_to(child.id());
    let status = child.wait()?;
    drop(daemon);
    Ok(exit_code(status))
}
