//! `vchiq doctor`: checks a machine or container for the mistakes users make, and says
//! what to do about each.
//!
//! Every check prints one line: `ok`, `warn` or `FAIL`, what was found and, unless all
//! is well, a fix after `->`. The exit status is 0 when no check failed, 1 otherwise.
//! The checks only look: nothing is created, changed or removed. A check that cannot
//! apply (the daemon, when there is no socket) is left out instead of failing twice.

use std::fmt::Write as _;
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use vchiq::Instance;
use vchiq_abi::wire::{DEFAULT_SOCKET_ROOT, SOCKET_ENV};

/// Options of `vchiq doctor`.
#[derive(Args, Debug)]
#[command(after_long_help = "\
Checks, in order:
  socket path      which socket clients use, and why (VCHIQ_SOCKET, root's default, ...)
  socket           that it exists and is a socket
  socket access    its mode and group, and whether this user may connect
  daemon           that a daemon answers on it, and that the VideoCore is not lost
  video group      that the group the socket is meant for exists
  /dev/vchiq       absent, a kernel character device, or a vchiqd FUSE node that answers
  /dev/fuse        whether file nodes (vchiq exec, daemon --dev-node) can be served
  pid namespace    which PID namespace this is, and what the driver attests
  preload shim     where vchiq exec finds libvchiq_preload.so

Exit status: 0 when nothing FAILed (warnings allowed), 1 otherwise.")]
pub struct DoctorArgs {
    /// Socket path to check (default: $VCHIQ_SOCKET or the standard path).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// The device node to check (tests).
    #[arg(long, hide = true, default_value = Instance::DEVICE_PATH)]
    device: PathBuf,
}

/// A check's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    fn tag(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        }
    }
}

/// One line of the report.
struct Check {
    level: Level,
    name: &'static str,
    detail: String,
    fix: Option<String>,
}

/// The report being built.
#[derive(Default)]
struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn add(&mut self, level: Level, name: &'static str, detail: impl Into<String>) {
        self.checks.push(Check {
            level,
            name,
            detail: detail.into(),
            fix: None,
        });
    }

    fn fix(
        &mut self,
        level: Level,
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.checks.push(Check {
            level,
            name,
            detail: detail.into(),
            fix: Some(fix.into()),
        });
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let _ = write!(out, "{:<4}  {}: {}", c.level.tag(), c.name, c.detail);
            if let Some(f) = &c.fix {
                let _ = write!(out, " -> {f}");
            }
            out.push('\n');
        }
        let count = |l| self.checks.iter().filter(|c| c.level == l).count();
        let _ = writeln!(
            out,
            "{} ok, {} warn, {} FAIL",
            count(Level::Ok),
            count(Level::Warn),
            count(Level::Fail)
        );
        out
    }

    fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.level == Level::Fail)
    }
}

/// Who this process is, for permission checks.
struct Me {
    euid: u32,
    egid: u32,
    groups: Vec<u32>,
}

impl Me {
    fn new() -> Me {
        Me {
            euid: rustix::process::geteuid().as_raw(),
            egid: rustix::process::getegid().as_raw(),
            groups: rustix::process::getgroups()
                .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
                .unwrap_or_default(),
        }
    }

    fn in_group(&self, gid: u32) -> bool {
        self.egid == gid || self.groups.contains(&gid)
    }

    /// Whether the permission bits `mode` grant `bit` (4 read, 2 write) to this process
    /// for a file owned by `uid`:`gid` (root passes, as the kernel lets it).
    fn may(&self, mode: u32, uid: u32, gid: u32, bit: u32) -> bool {
        if self.euid == 0 {
            return true;
        }
        let shift = if self.euid == uid {
            6
        } else if self.in_group(gid) {
            3
        } else {
            0
        };
        (mode >> shift) & bit != 0
    }
}

/// The name of group `gid` in this system's (or container's) `/etc/group`.
fn group_name(gid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == gid).then(|| name.to_owned())
    })
}

/// `name (gid N)`, or `gid N (no name in /etc/group)`.
fn describe_group(gid: u32) -> String {
    match group_name(gid) {
        Some(n) => format!("{n} (gid {gid})"),
        None => format!("gid {gid} (no name in /etc/group here)"),
    }
}

/// What kind of file a mode is, in words.
fn kind(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_file() {
        "a regular file"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "an unknown kind of file"
    }
}

/// How to start a daemon, for fixes.
const START_DAEMON: &str = "start the daemon (`vchiq daemon`, or `systemctl start vchiqd.socket` \
    where the package is installed) or set VCHIQ_SOCKET to the path it listens on \
    (`vchiq daemon --socket PATH`); in a container, bind-mount the socket's directory \
    (e.g. -v /run/vchiq:/run/vchiq)";

pub fn run(a: DoctorArgs) -> Result<ExitCode> {
    let me = Me::new();
    let mut r = Report::default();
    let explicit = a.socket.is_some();
    let socket = crate::daemon::socket_path(a.socket.clone());
    let device_used = crate::tools::uses_device(&a.socket);

    check_socket_path(&mut r, &socket, explicit, device_used, &me);
    let hello = match check_socket_file(&mut r, &socket, device_used) {
        Some(meta) => {
            check_socket_access(&mut r, &socket, &meta, &me);
            check_daemon(&mut r, &socket)
        }
        None => None,
    };
    check_video_group(&mut r, &me);
    check_device(&mut r, &a.device, &me, device_used);
    check_fuse(&mut r);
    check_pid_namespace(&mut r, hello.as_ref());
    check_shim(&mut r);

    print!("{}", r.render());
    Ok(if r.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn check_socket_path(r: &mut Report, socket: &Path, explicit: bool, device: bool, me: &Me) {
    let env = std::env::var_os(SOCKET_ENV).filter(|v| !v.is_empty());
    let why = if explicit {
        "from --socket".to_owned()
    } else if env.is_some() {
        format!("from {SOCKET_ENV}")
    } else if me.euid == 0 {
        "the default for root".to_owned()
    } else if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|v| !v.is_empty()) {
        "the default for users: $XDG_RUNTIME_DIR/vchiq/vchiq.sock".to_owned()
    } else {
        "the default for users without XDG_RUNTIME_DIR".to_owned()
    };
    let mut detail = format!("{} ({why})", socket.display());
    if device {
        detail.push_str(&format!(
            "; the tools use {} first: it exists and {SOCKET_ENV} is not set",
            Instance::DEVICE_PATH
        ));
    }
    if socket.is_relative() {
        r.fix(
            Level::Warn,
            "socket path",
            detail,
            "a relative path depends on the current directory: use an absolute one",
        );
    } else if !explicit
        && env.is_none()
        && me.euid != 0
        && !socket.exists()
        && Path::new(DEFAULT_SOCKET_ROOT).exists()
    {
        // The most common surprise: a root daemon on /run/vchiq, a user client elsewhere.
        r.fix(
            Level::Warn,
            "socket path",
            detail,
            format!(
                "a daemon started by root listens on {DEFAULT_SOCKET_ROOT}: \
                 export {SOCKET_ENV}={DEFAULT_SOCKET_ROOT} if that is the one to use"
            ),
        );
    } else {
        r.add(Level::Ok, "socket path", detail);
    }
}

/// Returns the socket's metadata when it exists and is a socket.
fn check_socket_file(r: &mut Report, socket: &Path, device: bool) -> Option<std::fs::Metadata> {
    match std::fs::metadata(socket) {
        Ok(m) if m.file_type().is_socket() => {
            r.add(
                Level::Ok,
                "socket",
                format!("{} is a socket", socket.display()),
            );
            Some(m)
        }
        Ok(m) => {
            r.fix(
                Level::Fail,
                "socket",
                format!(
                    "{} is {}, not a socket",
                    socket.display(),
                    kind(m.file_type())
                ),
                "remove it and restart the daemon, or point VCHIQ_SOCKET at the daemon's socket",
            );
            None
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let dir = socket.parent().filter(|d| !d.as_os_str().is_empty());
            let detail = match dir {
                Some(d) if !d.exists() => format!(
                    "{} does not exist (nor does its directory {})",
                    socket.display(),
                    d.display()
                ),
                _ => format!("{} does not exist", socket.display()),
            };
            if device {
                r.fix(
                    Level::Warn,
                    "socket",
                    detail + &format!(" (the tools use {} instead)", Instance::DEVICE_PATH),
                    format!("to use a daemon instead, {START_DAEMON}"),
                );
            } else {
                r.fix(Level::Fail, "socket", detail, START_DAEMON);
            }
            None
        }
        Err(e) => {
            r.fix(
                Level::Fail,
                "socket",
                format!("cannot look at {}: {e}", socket.display()),
                "a directory on the way is not searchable for this user: ask for access to \
                 it (group video), or use a socket elsewhere",
            );
            None
        }
    }
}

fn check_socket_access(r: &mut Report, socket: &Path, m: &std::fs::Metadata, me: &Me) {
    let mode = m.mode() & 0o7777;
    let detail = format!(
        "mode {mode:04o}, owner uid {}, group {}",
        m.uid(),
        describe_group(m.gid())
    );
    if !me.may(mode, m.uid(), m.gid(), 0o2) {
        let fix = if !me.in_group(m.gid()) {
            match group_name(m.gid()) {
                Some(g) => format!(
                    "add yourself to group '{g}' (`sudo usermod -aG {g} $USER`, then log in \
                     again); in a container, run with --group-add {}",
                    m.gid()
                ),
                None => format!(
                    "the group has no name here (a container?): run with --group-add {}",
                    m.gid()
                ),
            }
        } else {
            "the group may not write to it: start the daemon with --socket-mode 660".to_owned()
        };
        r.fix(
            Level::Fail,
            "socket access",
            format!("{detail}; this user (uid {}) may not connect", me.euid),
            fix,
        );
    } else if mode & 0o002 != 0 {
        r.fix(
            Level::Warn,
            "socket access",
            format!("{detail}; anyone on this machine may use the VideoCore"),
            "start the daemon with --socket-mode 660 (and --socket-group video)",
        );
    } else {
        let who = if me.euid == 0 {
            "root"
        } else if me.euid == m.uid() {
            "its owner"
        } else {
            "a member of its group"
        };
        r.add(
            Level::Ok,
            "socket access",
            format!(
                "{detail}; this user may connect ({who}) to {}",
                socket.display()
            ),
        );
    }
}

/// What a successful connection told about this process.
struct Attested {
    client_id: u32,
    pid_namespace: u64,
}

fn check_daemon(r: &mut Report, socket: &Path) -> Option<Attested> {
    let text = match vchiq::daemon_status(socket) {
        Ok(t) => t,
        Err(e) => {
            let refused = matches!(&e, vchiq::Error::DaemonNotRunning { source, .. }
                if source.raw_os_error() == Some(libc::ECONNREFUSED));
            let fix = if refused {
                "the socket is stale (its daemon died): start the daemon, which replaces it"
                    .to_owned()
            } else {
                "see the message; `vchiq daemon -v` logs why it refuses".to_owned()
            };
            r.fix(Level::Fail, "daemon", format!("does not answer: {e}"), fix);
            return None;
        }
    };
    let report = crate::status::parse(&text, "socket", socket);
    let summary = format!(
        "answers (link {}, {} other client(s) connected)",
        report.link.state,
        report.instance_count.saturating_sub(1)
    );
    if let Some(why) = &report.videocore_lost {
        r.fix(
            Level::Fail,
            "daemon",
            format!("{summary}, but the VideoCore is LOST: {why}"),
            "restart the daemon (`systemctl restart vchiqd`); clients get EIO until then",
        );
        return None;
    }
    match Instance::connect_to(socket) {
        Ok(inst) => {
            let h = inst.hello();
            r.add(Level::Ok, "daemon", summary);
            Some(Attested {
                client_id: h.client_id,
                pid_namespace: h.pid_namespace,
            })
        }
        Err(e) => {
            r.fix(
                Level::Fail,
                "daemon",
                format!("{summary}, but a client cannot connect: {e}"),
                "see the message; `vchiq daemon -v` logs why it refuses",
            );
            None
        }
    }
}

fn check_video_group(r: &mut Report, me: &Me) {
    match vchiqd::sys::group_id("video") {
        Some(gid) => {
            let member = if me.euid == 0 || me.in_group(gid) {
                "this user is root or a member"
            } else {
                "this user is not a member (needed for a socket or device of group video)"
            };
            r.add(
                Level::Ok,
                "video group",
                format!("exists (gid {gid}); {member}"),
            );
        }
        None => r.fix(
            Level::Warn,
            "video group",
            "no group 'video' here: a daemon leaves its socket in its own group",
            "create it (`groupadd --system video`) and add the users of the VideoCore to it",
        ),
    }
}

/// Mount points of vchiqd file nodes visible here (`fuse.vchiqd` entries of mountinfo);
/// the same rule `vchiq exec` uses.
fn vchiqd_node_mounts() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let point = pre.split(' ').nth(4)?;
            post.starts_with("fuse.vchiqd ")
                .then(|| PathBuf::from(unescape_mount(point)))
        })
        .collect()
}

/// Undoes mountinfo's octal escapes.
fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

fn check_device(r: &mut Report, dev: &Path, me: &Me, used: bool) {
    const NAME: &str = "/dev/vchiq";
    let who = if used {
        "the tools use it"
    } else {
        "the tools use the socket (VCHIQ_SOCKET or --socket is set)"
    };
    let m = match std::fs::metadata(dev) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            r.add(
                Level::Ok,
                NAME,
                format!(
                    "{} is absent: the tools use the socket; unmodified programs that open \
                     /dev/vchiq need `vchiq exec PROGRAM` or a daemon started with \
                     --dev-node /dev/vchiq",
                    dev.display()
                ),
            );
            return;
        }
        Err(e) => {
            r.fix(
                Level::Fail,
                NAME,
                format!("cannot look at {}: {e}", dev.display()),
                "ask for access to its directory",
            );
            return;
        }
    };
    let ft = m.file_type();
    let mode = m.mode() & 0o7777;
    let perms = format!("mode {mode:04o}, group {}", describe_group(m.gid()));
    let denied_fix = || match group_name(m.gid()) {
        Some(g) if !me.in_group(m.gid()) => format!(
            "add yourself to group '{g}' (`sudo usermod -aG {g} $USER`, then log in again); \
             in a container, run with --group-add {}",
            m.gid()
        ),
        _ => format!("in a container, run with --group-add {}", m.gid()),
    };
    if ft.is_char_device() {
        let rdev = m.rdev();
        let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        let detail = format!(
            "{} is a character device {major}:{minor} (a kernel VCHIQ driver: the real \
             firmware, not vchiqd), {perms}; {who}",
            dev.display()
        );
        match std::fs::OpenOptions::new().read(true).write(true).open(dev) {
            Ok(_) => r.add(Level::Ok, NAME, detail),
            Err(e) if matches!(e.kind(), ErrorKind::PermissionDenied) => r.fix(
                Level::Fail,
                NAME,
                format!("{detail}; open: {e}"),
                denied_fix(),
            ),
            Err(e) => r.fix(
                Level::Fail,
                NAME,
                format!("{detail}; open: {e}"),
                "no driver behind the node: load the vchiq kernel module, or remove the node \
                 and use vchiqd (`vchiq daemon --dev-node /dev/vchiq`)",
            ),
        }
        return;
    }
    let mounted = vchiqd_node_mounts().iter().any(|p| p == dev);
    if ft.is_file() && mounted {
        let detail = format!("{} is a vchiqd FUSE node, {perms}; {who}", dev.display());
        match Instance::open_device(dev) {
            Ok(_) => r.add(Level::Ok, NAME, format!("{detail}; it answers")),
            Err(e @ vchiq::Error::PermissionDenied { .. }) => {
                r.fix(Level::Fail, NAME, format!("{detail}; {e}"), denied_fix())
            }
            Err(e) => r.fix(
                Level::Fail,
                NAME,
                format!("{detail}, but it does not answer: {e}"),
                format!(
                    "the daemon serving it is gone or broken: restart it, or \
                     `umount {}`",
                    dev.display()
                ),
            ),
        }
        return;
    }
    let what = if ft.is_file() {
        "a plain file, not a device nor a mounted vchiqd node (left behind by a daemon \
         that stopped, or bind-mounted before the daemon served it)"
            .to_owned()
    } else {
        format!("{}, not a device nor a vchiqd node", kind(ft))
    };
    r.fix(
        Level::Fail,
        NAME,
        format!("{} is {what}", dev.display()),
        format!(
            "programs that open it fail: remove it, then serve a node with `vchiq daemon \
             --dev-node {}` (in a container, bind-mount the node once the daemon serves it)",
            dev.display()
        ),
    );
}

fn check_fuse(r: &mut Report) {
    const NAME: &str = "/dev/fuse";
    let path = Path::new("/dev/fuse");
    let consequence = "`vchiq exec` falls back to the LD_PRELOAD shim (static and setuid \
                       programs are then out of reach) and `vchiq daemon --dev-node` cannot \
                       serve a node";
    match std::fs::metadata(path) {
        Err(_) => r.fix(
            Level::Warn,
            NAME,
            format!("absent: {consequence}"),
            "load the fuse module (`modprobe fuse`); in a container, pass --device /dev/fuse",
        ),
        Ok(m) if !m.file_type().is_char_device() => r.fix(
            Level::Warn,
            NAME,
            format!("is {}, not a device: {consequence}", kind(m.file_type())),
            "in a container, pass the host's device (--device /dev/fuse)",
        ),
        Ok(m) => match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            Ok(_) => r.add(
                Level::Ok,
                NAME,
                format!(
                    "usable (mode {:04o}): `vchiq exec` can serve /dev/vchiq as a file node",
                    m.mode() & 0o7777
                ),
            ),
            Err(e) => r.fix(
                Level::Warn,
                NAME,
                format!(
                    "present but not usable here ({e}, mode {:04o}): {consequence}",
                    m.mode() & 0o7777
                ),
                "most systems use mode 0666 (`chmod 0666 /dev/fuse`); in a container, also \
                 allow the device (--device /dev/fuse, and --cap-add SYS_ADMIN for mounts)",
            ),
        },
    }
}

/// linux/proc_ns.h: `PROC_PID_INIT_INO`, the inode of the initial PID namespace.
const PROC_PID_INIT_INO: u64 = 0xEFFF_FFFC;

/// The inode in a `pid:[N]` namespace link.
fn ns_inode(link: &Path) -> Option<u64> {
    link.to_str()?
        .strip_prefix("pid:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The `NSpid:` line of /proc/self/status: this process's PID in each namespace, from
/// the one /proc belongs to down to its own.
fn nspid() -> Vec<u32> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|v| {
            v.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn check_pid_namespace(r: &mut Report, attested: Option<&Attested>) {
    const NAME: &str = "pid namespace";
    let ours = std::fs::read_link("/proc/self/ns/pid");
    let init = std::fs::read_link("/proc/1/ns/pid");
    let Ok(ours) = ours else {
        r.fix(
            Level::Warn,
            NAME,
            "cannot read /proc/self/ns/pid (no /proc here?)",
            "mount /proc in the container",
        );
        return;
    };
    let pid = std::process::id();
    let ours_ino = ns_inode(&ours);
    let mut detail = if ours_ino == Some(PROC_PID_INIT_INO) {
        format!("{} (the initial PID namespace)", ours.display())
    } else {
        let mut d = format!("{} (a child PID namespace", ours.display());
        let ids = nspid();
        if ids.len() > 1 {
            d.push_str(&format!(
                "; this process is PID {pid} here and {} in /proc's namespace",
                ids[0]
            ));
        } else if pid == 1 {
            d.push_str("; this process is its PID 1");
        }
        d.push(')');
        d
    };
    match init {
        Ok(i) if i == ours => detail.push_str(", the same as PID 1's"),
        Ok(i) => detail.push_str(&format!(
            ", not PID 1's {} (this /proc belongs to another namespace)",
            i.display()
        )),
        Err(e) => detail.push_str(&format!(", PID 1's is not readable here ({e})")),
    }
    detail.push_str(
        ". Identity is attested anyway: the driver takes client ids from the kernel \
         (SO_PEERCRED, pinned by a pidfd), never from the client",
    );
    if let Some(a) = attested {
        detail.push_str(&format!(
            "; it attests client id {} for this process",
            a.client_id
        ));
        if ours_ino.is_some_and(|i| i != a.pid_namespace) {
            detail.push_str(&format!(
                " and sees it in PID namespace {}",
                a.pid_namespace
            ));
        }
    }
    let legacy = std::env::var("VCHIQ_LEGACY_PID").is_ok_and(|v| !v.is_empty() && v != "0");
    if legacy {
        r.fix(
            Level::Warn,
            NAME,
            detail
                + "; but VCHIQ_LEGACY_PID is set: clients put getpid() in their GL \
                      records, which stalls them in a PID namespace (the 2016 bug)",
            "unset VCHIQ_LEGACY_PID",
        );
    } else {
        r.add(Level::Ok, NAME, detail);
    }
}

/// The shims `vchiq exec` would use, one per architecture of its table (the same search:
/// `crate::exec::find_shim`).
fn check_shim(r: &mut Report) {
    use crate::exec::arch::Arch;
    const NAME: &str = "preload shim";
    let needed = "needed by `vchiq exec` when /dev/fuse is not usable, by --preload, and \
                  for ARM programs under qemu-user";
    let host = Arch::host();
    match crate::exec::find_shim(host) {
        Ok(p) => r.add(Level::Ok, NAME, format!("{host}: {}", p.display())),
        Err(e) => r.fix(
            Level::Warn,
            NAME,
            format!("{e}; {needed}"),
            "build the shims (`scripts/build-shims` in the source tree) and keep their \
             shims/ directory next to vchiq, or set VCHIQ_PRELOAD",
        ),
    }
    for arch in Arch::ALL.into_iter().filter(|&a| a != host) {
        let shim = crate::exec::find_shim(arch);
        let qemu = (!arch.runs_natively()).then(|| arch.find_qemu());
        let detail = match (&shim, &qemu) {
            (Ok(p), None) => format!("{arch}: {}", p.display()),
            (Ok(p), Some(Some(q))) => format!("{arch}: {} (under {})", p.display(), q.display()),
            (Ok(p), Some(None)) => {
                format!(
                    "{arch}: {} (but no qemu-user to run {arch} programs)",
                    p.display()
                )
            }
            (Err(_), _) => format!("{arch}: no shim ({arch} programs need the file node)"),
        };
        r.add(Level::Ok, NAME, detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_bits_follow_owner_group_other() {
        let me = Me {
            euid: 1000,
            egid: 1000,
            groups: vec![44],
        };
        assert!(me.may(0o660, 1000, 0, 0o2), "owner");
        assert!(me.may(0o060, 0, 44, 0o2), "group");
        assert!(!me.may(0o606, 0, 44, 0o2), "group bits win over other's");
        assert!(me.may(0o002, 0, 0, 0o2), "other");
        assert!(!me.may(0o660, 0, 0, 0o2), "neither");
        let root = Me {
            euid: 0,
            egid: 0,
            groups: vec![],
        };
        assert!(root.may(0, 5, 5, 0o2));
    }

    #[test]
    fn namespace_links_are_read() {
        assert_eq!(
            ns_inode(Path::new("pid:[4026531836]")),
            Some(PROC_PID_INIT_INO)
        );
        assert_eq!(ns_inode(Path::new("net:[1]")), None);
    }

    #[test]
    fn the_report_ends_with_a_count_and_fails_on_fail() {
        let mut r = Report::default();
        r.add(Level::Ok, "a", "fine");
        r.fix(Level::Warn, "b", "meh", "do x");
        assert!(!r.failed());
        r.fix(Level::Fail, "c", "broken", "do y");
        assert!(r.failed());
        assert_eq!(
            r.render(),
            "ok    a: fine\nwarn  b: meh -> do x\nFAIL  c: broken -> do y\n1 ok, 1 warn, 1 FAIL\n"
        );
    }
}
