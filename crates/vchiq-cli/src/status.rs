//! `vchiq status`: the daemon's instances, services and counters, as text, as JSON
//! (`--json`) or as a live view (`--watch`).
//!
//! The daemon answers STATUS with a text dump (the same text `read()` on `/dev/vchiq`
//! returns). `--json` parses that dump into [`Report`], a stable schema for scripts:
//! fields are only ever added, and `schema` changes if one is renamed or removed. A line
//! the parser does not know is kept in `unparsed` instead of being dropped, so a newer
//! daemon never makes the output lie.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;

use crate::daemon::socket_path;
use crate::tools::{connect, uses_device};

/// Options of `vchiq status`.
#[derive(Args, Debug)]
#[command(after_long_help = "\
Examples:
  vchiq status                      the daemon's state, as text
  vchiq status --json | jq .link    one JSON document for scripts
  vchiq status --watch -n 0.5       redraw twice a second until Ctrl-C
  vchiq status --self               the identity the driver attests for this process

With --watch and --json, one JSON document is printed per line per interval.")]
pub struct StatusArgs {
    /// Socket path (default: $VCHIQ_SOCKET or the standard path).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Print, for this process, the PID it sees for itself and the client id the driver
    /// attests, one `key: value` per line.
    #[arg(long = "self")]
    self_: bool,
    /// Print machine-readable JSON (schema 1) instead of text.
    #[arg(long)]
    json: bool,
    /// Redraw the view every --interval seconds until interrupted (Ctrl-C, SIGTERM). The
    /// screen is cleared between views only when stdout is a terminal; a daemon that goes
    /// away is shown as an error and retried.
    #[arg(long, short = 'w', conflicts_with = "self_")]
    watch: bool,
    /// Seconds between two views with --watch.
    #[arg(long, short = 'n', default_value_t = 1.0, value_name = "SECS",
          value_parser = parse_interval, requires = "watch")]
    interval: f64,
}

/// `--interval`: a positive number of seconds, at least 0.05 and at most a day.
fn parse_interval(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if !(0.05..=86_400.0).contains(&v) {
        return Err("must be between 0.05 and 86400 seconds".into());
    }
    Ok(v)
}

/// Version of the `--json` schema.
pub const SCHEMA: u32 = 1;

/// `vchiq status --json`: the daemon's state.
#[derive(Serialize, Debug, Default, PartialEq)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: u32,
    /// Where the state came from: `socket` or `device`.
    pub source: &'static str,
    /// The socket or device path.
    pub path: String,
    /// The link between driver and VideoCore.
    pub link: Link,
    /// Why the VideoCore is lost, when it is (`null` otherwise).
    pub videocore_lost: Option<String>,
    /// The number of instances the daemon reports in its header line.
    pub instance_count: u64,
    /// One entry per client connection.
    pub instances: Vec<InstanceInfo>,
    /// Lines of the dump this version does not understand.
    pub unparsed: Vec<String>,
}

/// The link's state and counters.
#[derive(Serialize, Debug, Default, PartialEq)]
pub struct Link {
    /// `Connected`, `Disconnected`, ...
    pub state: String,
    pub messages_sent: u64,
    pub bytes_sent: u64,
    pub messages_received: u64,
    pub bytes_received: u64,
    pub bulks_done: u64,
    pub bulks_aborted: u64,
    pub slots_recycled: u64,
    pub quota_stalls: u64,
    pub protocol_errors: u64,
}

/// One client connection (instance) of the driver.
#[derive(Serialize, Debug, Default, PartialEq)]
pub struct InstanceInfo {
    /// The driver's instance number.
    pub instance: u64,
    /// The attested client id (the client's PID in the daemon's PID namespace).
    pub client_id: u64,
    /// The client's command name (`null` when unknown).
    pub comm: Option<String>,
    pub uid: u64,
    pub gid: u64,
    /// Inode of the client's PID namespace.
    pub pid_namespace: u64,
    /// The client's cgroup (`null` when unknown).
    pub cgroup: Option<String>,
    /// How the identity is pinned (`SO_PEERPIDFD`, ...).
    pub pinned_by: String,
    /// Whether the instance sent CONNECT.
    pub connected: bool,
    /// Completions waiting to be delivered.
    pub completions_pending: u64,
    /// The completion queue's size.
    pub completions_max: u64,
    /// Completions delivered so far.
    pub completions_delivered: u64,
    /// Bytes of VideoCore messages queued for the client (`null` from an older daemon).
    pub queued_bytes: Option<u64>,
    /// How many of them are still claimed in the link's slots.
    pub queued_claimed: Option<u64>,
    /// The number of services the daemon reports for the instance.
    pub service_count: u64,
    pub services: Vec<ServiceInfo>,
}

/// One service of an instance.
#[derive(Serialize, Debug, Default, PartialEq)]
pub struct ServiceInfo {
    /// The service handle.
    pub handle: u64,
    /// The four-character code, e.g. `GCMD`.
    pub fourcc: String,
    /// `client` or `server`.
    pub role: String,
    /// `OPEN`, `OPENING`, `CLOSING`, ...
    pub phase: String,
    /// Opened through the VCHI-style (queue) API.
    pub vchi: bool,
    pub client_id: u64,
    pub messages_in: u64,
    pub bytes_in: u64,
    pub messages_out: u64,
    pub bytes_out: u64,
    /// Messages waiting in the service's queue.
    pub queued: u64,
    /// The queue's size.
    pub queue_max: u64,
    /// The use count (`use_service` minus `release_service`).
    pub uses: u64,
}

/// Cuts `prefix` off `s`, then the text up to `end`: returns (that text, the rest).
fn field<'a>(s: &'a str, prefix: &str, end: &str) -> Option<(&'a str, &'a str)> {
    let s = s.strip_prefix(prefix)?;
    let i = s.find(end)?;
    Some((&s[..i], &s[i + end.len()..]))
}

/// A number field followed by `end`.
fn num<'a>(s: &'a str, prefix: &str, end: &str) -> Option<(u64, &'a str)> {
    let (v, rest) = field(s, prefix, end)?;
    Some((v.trim().parse().ok()?, rest))
}

/// The last number field of a line.
fn last_num(s: &str, prefix: &str) -> Option<u64> {
    s.strip_prefix(prefix)?.trim().parse().ok()
}

/// `vchiqd: link Connected, 2 instance(s)`.
fn parse_header(line: &str) -> Option<(String, u64)> {
    let (state, rest) = field(line, "vchiqd: link ", ", ")?;
    let (n, _) = rest.split_once(' ')?;
    Some((state.to_owned(), n.parse().ok()?))
}

/// `  link: sent 3 msgs (20 B), received 3 msgs (16 B), bulks 0 done / 0 aborted, ...`.
fn parse_link(line: &str, state: String) -> Option<Link> {
    let s = line.trim_start();
    let (messages_sent, s) = num(s, "link: sent ", " msgs (")?;
    let (bytes_sent, s) = num(s, "", " B), ")?;
    let (messages_received, s) = num(s, "received ", " msgs (")?;
    let (bytes_received, s) = num(s, "", " B), ")?;
    let (bulks_done, s) = num(s, "bulks ", " done / ")?;
    let (bulks_aborted, s) = num(s, "", " aborted, ")?;
    let (slots_recycled, s) = num(s, "slots recycled ", ", ")?;
    let (quota_stalls, s) = num(s, "quota stalls ", ", ")?;
    let protocol_errors = last_num(s, "protocol errors ")?;
    Some(Link {
        state,
        messages_sent,
        bytes_sent,
        messages_received,
        bytes_received,
        bulks_done,
        bulks_aborted,
        slots_recycled,
        quota_stalls,
        protocol_errors,
    })
}

/// `Instance 2: client_id 20309 (vchiq), uid 0, gid 0, pid_ns 4026531836, cgroup 0::/,
/// pinned by SO_PEERPIDFD, connected, completions 0/128 delivered 0, queued 0 B (0 claimed),
/// services 1` (the `queued` field is absent from older daemons).
///
/// The command name and the cgroup are free text (either may hold `, ` or `)`), so they
/// are cut at the field that follows them, searched from the right.
fn parse_instance(line: &str) -> Option<InstanceInfo> {
    let (instance, s) = num(line, "Instance ", ": ")?;
    let (client_id, s) = num(s, "client_id ", " (")?;
    let i = s.rfind("), uid ")?;
    let comm = &s[..i];
    let s = &s[i + "), ".len()..];
    let (uid, s) = num(s, "uid ", ", ")?;
    let (gid, s) = num(s, "gid ", ", ")?;
    let (pid_namespace, s) = num(s, "pid_ns ", ", ")?;
    let s = s.strip_prefix("cgroup ")?;
    let i = s.rfind(", pinned by ")?;
    let cgroup = &s[..i];
    let s = &s[i + ", pinned by ".len()..];
    let (pinned_by, s) = s.split_once(", ")?;
    let (connected, s) = if let Some(s) = s.strip_prefix("not connected, ") {
        (false, s)
    } else {
        (true, s.strip_prefix("connected, ")?)
    };
    let (completions_pending, s) = num(s, "completions ", "/")?;
    let (completions_max, s) = num(s, "", " delivered ")?;
    let (completions_delivered, s) = num(s, "", ", ")?;
    let (queued_bytes, queued_claimed, s) = match num(s, "queued ", " B (") {
        Some((bytes, rest)) => {
            let (claimed, rest) = num(rest, "", " claimed), ")?;
            (Some(bytes), Some(claimed), rest)
        }
        None => (None, None, s),
    };
    let service_count = last_num(s, "services ")?;
    let unknown = |v: &str| (v != "?").then(|| v.to_owned());
    Some(InstanceInfo {
        instance,
        client_id,
        comm: unknown(comm),
        uid,
        gid,
        pid_namespace,
        cgroup: unknown(cgroup),
        pinned_by: pinned_by.to_owned(),
        connected,
        completions_pending,
        completions_max,
        completions_delivered,
        queued_bytes,
        queued_claimed,
        service_count,
        services: Vec::new(),
    })
}

/// `  Service 0x1802: VCDB client OPEN vchi, client_id 20309, msgs in 1 (4 B) out 1 (8 B),
/// queued 0/128, uses 1`.
fn parse_service(line: &str) -> Option<ServiceInfo> {
    let (handle, s) = field(line.trim_start(), "Service 0x", ": ")?;
    let handle = u64::from_str_radix(handle, 16).ok()?;
    let (head, s) = s.split_once(", ")?;
    let mut words = head.split(' ');
    let fourcc = words.next()?.to_owned();
    let role = words.next()?.to_owned();
    let phase = words.next()?.to_owned();
    let vchi = match words.next() {
        None => false,
        Some("vchi") => true,
        Some(_) => return None,
    };
    let (client_id, s) = num(s, "client_id ", ", ")?;
    let (messages_in, s) = num(s, "msgs in ", " (")?;
    let (bytes_in, s) = num(s, "", " B) ")?;
    let (messages_out, s) = num(s, "out ", " (")?;
    let (bytes_out, s) = num(s, "", " B), ")?;
    let (queued, s) = num(s, "queued ", "/")?;
    let (queue_max, s) = num(s, "", ", ")?;
    let uses = last_num(s, "uses ")?;
    Some(ServiceInfo {
        handle,
        fourcc,
        role,
        phase,
        vchi,
        client_id,
        messages_in,
        bytes_in,
        messages_out,
        bytes_out,
        queued,
        queue_max,
        uses,
    })
}

/// Parses the daemon's status dump. Never fails: what it cannot read goes to `unparsed`.
pub fn parse(text: &str, source: &'static str, path: &Path) -> Report {
    let mut r = Report {
        schema: SCHEMA,
        source,
        path: path.display().to_string(),
        ..Report::default()
    };
    let mut state = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some((s, n)) = parse_header(line) {
            r.link.state = s.clone();
            r.instance_count = n;
            state = Some(s);
        } else if let Some(link) = line
            .trim_start()
            .starts_with("link: ")
            .then(|| parse_link(line, state.clone().unwrap_or_default()))
            .flatten()
        {
            r.link = link;
        } else if let Some(why) = line.trim_start().strip_prefix("VideoCore LOST: ") {
            r.videocore_lost = Some(why.to_owned());
        } else if let Some(inst) = parse_instance(line) {
            r.instances.push(inst);
        } else if let Some(svc) = parse_service(line).filter(|_| !r.instances.is_empty()) {
            if let Some(inst) = r.instances.last_mut() {
                inst.services.push(svc);
            }
        } else {
            r.unparsed.push(line.to_owned());
        }
    }
    r
}

/// Where the state is read from, as `--socket`/`$VCHIQ_SOCKET`/`/dev/vchiq` decide.
struct Source {
    device: bool,
    path: PathBuf,
}

impl Source {
    fn new(socket: Option<PathBuf>) -> Source {
        if uses_device(&socket) {
            Source {
                device: true,
                path: vchiq::Instance::DEVICE_PATH.into(),
            }
        } else {
            Source {
                device: false,
                path: socket_path(socket),
            }
        }
    }

    /// The state dump.
    fn fetch(&self) -> Result<String> {
        if self.device {
            // The device's state dump (`read()` on /dev/vchiq).
            Ok(connect(None)?.status()?)
        } else {
            // Only HELLO and STATUS: this works even when the VideoCore is lost.
            vchiq::daemon_status(&self.path).map_err(|e| anyhow::anyhow!("{e}"))
        }
    }

    fn name(&self) -> &'static str {
        if self.device { "device" } else { "socket" }
    }
}

/// Renders one view: the dump as text, or the parsed report as one line of JSON.
fn render(src: &Source, text: &str, json: bool) -> Result<String> {
    if json {
        let report = parse(text, src.name(), &src.path);
        Ok(serde_json::to_string(&report)? + "\n")
    } else {
        Ok(text.to_owned())
    }
}

pub fn status(a: StatusArgs) -> Result<ExitCode> {
    if a.self_ {
        return status_self(a.socket, a.json);
    }
    let src = Source::new(a.socket);
    if a.watch {
        return watch(&src, a.json, a.interval);
    }
    let text = src.fetch()?;
    let out = if a.json {
        let report = parse(&text, src.name(), &src.path);
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        text
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// ANSI: cursor home, then erase the whole screen.
const CLEAR: &str = "\x1b[H\x1b[2J";
/// ANSI: hide and show the cursor.
const HIDE_CURSOR: &str = "\x1b[?25l";
const SHOW_CURSOR: &str = "\x1b[?25h";

/// `--watch`: one view per interval until a signal ends the process.
fn watch(src: &Source, json: bool, secs: f64) -> Result<ExitCode> {
    let interval = Duration::from_secs_f64(secs);
    let tty = std::io::stdout().is_terminal();
    if tty && !json {
        print!("{HIDE_CURSOR}");
        // Not through `print!`: the stdout lock may be held by the blocked main thread.
        crate::signals::on_termination(|| {
            let _ = rustix::io::write(std::io::stdout(), SHOW_CURSOR.as_bytes());
        });
    }
    loop {
        let body = match src.fetch().and_then(|t| render(src, &t, json)) {
            Ok(body) => body,
            Err(e) if json => {
                // One line per view for scripts, errors included.
                serde_json::json!({"schema": SCHEMA, "error": format!("{e:#}")}).to_string() + "\n"
            }
            Err(e) => format!("vchiq status: {e:#}\n(retrying every {secs} s)\n"),
        };
        let mut out = std::io::stdout().lock();
        let written = if tty && !json {
            write!(
                out,
                "{CLEAR}vchiq status --watch: {} every {secs} s, {} (Ctrl-C to stop)\n\n{body}",
                src.path.display(),
                time_of_day()
            )
        } else if json {
            write!(out, "{body}")
        } else {
            // Not a terminal: views one after the other, separated by a blank line.
            writeln!(out, "{body}")
        };
        match written.and_then(|()| out.flush()) {
            Ok(()) => {}
            // The reader went away (`| head`): that ends the view.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            Err(e) => bail!("writing the view: {e}"),
        }
        drop(out);
        std::thread::sleep(interval);
    }
}

/// The wall-clock time of day as `HH:MM:SS` (UTC), for the live view's title.
fn time_of_day() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC",
        day / 3600,
        (day / 60) % 60,
        day % 60
    )
}

/// `--self`: the identity the driver attests for this process.
fn status_self(socket: Option<PathBuf>, json: bool) -> Result<ExitCode> {
    let inst = connect(socket)?;
    let hello = inst.hello();
    let ns = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if json {
        let v = serde_json::json!({
            "schema": SCHEMA,
            "pid": std::process::id(),
            "client_id": hello.client_id,
            "pid_namespace": ns,
            "pid_namespace_inode_seen_by_daemon": hello.pid_namespace,
            "uid": hello.uid,
            "instance": hello.instance,
            "socket": inst.socket_path().display().to_string(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("pid: {}", std::process::id());
    println!("client_id: {}", hello.client_id);
    println!("pid_namespace: {ns}");
    println!(
        "pid_namespace_inode_seen_by_daemon: {}",
        hello.pid_namespace
    );
    println!("uid: {}", hello.uid);
    println!("instance: {}", hello.instance);
    println!("socket: {}", inst.socket_path().display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "\
vchiqd: link Connected, 2 instance(s)
  link: sent 3 msgs (20 B), received 4 msgs (16 B), bulks 5 done / 6 aborted, slots recycled 7, quota stalls 8, protocol errors 9
  VideoCore LOST: no answer for 5 s
Instance 2: client_id 20309 (a), uid 1 (b), uid 1000, gid 44, pid_ns 4026531836, cgroup 0::/x, pinned by y, pinned by SO_PEERPIDFD, connected, completions 1/128 delivered 3, queued 4096 B (2 claimed), services 2
  Service 0x1802: VCDB client OPEN vchi, client_id 20309, msgs in 1 (4 B) out 2 (8 B), queued 0/128, uses 1
  Service 0x2803: GCMD server OPENING, client_id 20309, msgs in 0 (0 B) out 0 (0 B), queued 3/128, uses 0
Instance 3: client_id 20316 (?), uid 0, gid 0, pid_ns 4026532000, cgroup ?, pinned by SO_PEERCRED, not connected, completions 0/128 delivered 0, services 0
something new
";

    #[test]
    fn the_dump_is_parsed_field_by_field() {
        let r = parse(DUMP, "socket", Path::new("/s"));
        assert_eq!(r.schema, SCHEMA);
        assert_eq!(r.link.state, "Connected");
        assert_eq!(r.instance_count, 2);
        assert_eq!(
            (
                r.link.messages_sent,
                r.link.bytes_sent,
                r.link.messages_received
            ),
            (3, 20, 4)
        );
        assert_eq!(
            (
                r.link.bulks_done,
                r.link.bulks_aborted,
                r.link.slots_recycled
            ),
            (5, 6, 7)
        );
        assert_eq!((r.link.quota_stalls, r.link.protocol_errors), (8, 9));
        assert_eq!(r.videocore_lost.as_deref(), Some("no answer for 5 s"));
        assert_eq!(r.instances.len(), 2);
        let a = &r.instances[0];
        // Free-text fields keep their separators.
        assert_eq!(a.comm.as_deref(), Some("a), uid 1 (b"));
        assert_eq!(a.cgroup.as_deref(), Some("0::/x, pinned by y"));
        assert_eq!(
            (a.instance, a.client_id, a.uid, a.gid),
            (2, 20309, 1000, 44)
        );
        assert_eq!(a.pinned_by, "SO_PEERPIDFD");
        assert!(a.connected);
        assert_eq!(
            (
                a.completions_pending,
                a.completions_max,
                a.completions_delivered
            ),
            (1, 128, 3)
        );
        assert_eq!((a.queued_bytes, a.queued_claimed), (Some(4096), Some(2)));
        assert_eq!(a.services.len(), 2);
        let s = &a.services[0];
        assert_eq!(
            (
                s.handle,
                s.fourcc.as_str(),
                s.role.as_str(),
                s.phase.as_str(),
                s.vchi
            ),
            (0x1802, "VCDB", "client", "OPEN", true)
        );
        assert_eq!(
            (s.messages_in, s.bytes_in, s.messages_out, s.bytes_out),
            (1, 4, 2, 8)
        );
        assert_eq!((s.queued, s.queue_max, s.uses), (0, 128, 1));
        let s = &a.services[1];
        assert_eq!(
            (s.role.as_str(), s.phase.as_str(), s.vchi),
            ("server", "OPENING", false)
        );
        assert_eq!(s.queued, 3);
        let b = &r.instances[1];
        assert_eq!((b.comm.as_deref(), b.cgroup.as_deref()), (None, None));
        assert!(!b.connected);
        assert_eq!(b.pid_namespace, 4026532000);
        assert_eq!(r.unparsed, vec!["something new".to_owned()]);
    }

    #[test]
    fn a_malformed_line_is_kept_not_guessed() {
        let r = parse(
            "Instance x: client_id 1\n  Service 0x1: GCMD client OPEN\n",
            "socket",
            Path::new("/s"),
        );
        assert!(r.instances.is_empty());
        assert_eq!(r.unparsed.len(), 2);
    }

    #[test]
    fn interval_bounds() {
        assert_eq!(parse_interval("0.5"), Ok(0.5));
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("-1").is_err());
        assert!(parse_interval("x").is_err());
    }
}
