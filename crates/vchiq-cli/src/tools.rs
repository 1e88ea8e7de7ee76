//! Small client tools: `gencmd` (vcgencmd), `log` (vcdbg log msg), `snapshot`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use vchiq::{Handler, Instance, Service, ServiceParams};
use vchiq_abi::enums::BulkMode;
use vchiq_abi::fourcc::FourCc;

use crate::daemon::socket_path;

/// Options of `vchiq gencmd` / `vcgencmd`.
#[derive(Args, Debug)]
pub struct GencmdArgs {
    /// Socket path (default: $VCHIQ_SOCKET or the standard path).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// The command and its arguments, e.g. `measure_temp` or `get_mem arm`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Options of `vchiq log` / `vcdbg log msg`.
#[derive(Args, Debug)]
pub struct LogArgs {
    /// Socket path (default: $VCHIQ_SOCKET or the standard path).
    #[arg(long)]
    socket: Option<PathBuf>,
}

/// Options of `vchiq snapshot`.
#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// Socket path (default: $VCHIQ_SOCKET or the standard path).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// The PNG file to write.
    file: PathBuf,
}

/// True when a client with no `--socket` would use the `/dev/vchiq` device: the library
/// prefers it when it exists and `VCHIQ_SOCKET` is not set (on a Pi, or with
/// `vchiq daemon --dev-node /dev/vchiq`).
pub fn uses_device(socket: &Option<PathBuf>) -> bool {
    socket.is_none()
        && std::env::var_os(vchiq_abi::wire::SOCKET_ENV).is_none_or(|v| v.is_empty())
        && std::path::Path::new(Instance::DEVICE_PATH).exists()
}

/// Connects to the driver (`--socket`, else `$VCHIQ_SOCKET`, else `/dev/vchiq` when it
/// exists, else the default socket), with the library's error (which says what to do).
pub fn connect(socket: Option<PathBuf>) -> Result<Instance> {
    // The library's message already says what failed, why and what to do, including the
    // OS error: keep it as one line instead of a cause chain that repeats it.
    let result = if uses_device(&socket) {
        Instance::connect()
    } else {
        Instance::connect_to(socket_path(socket))
    };
    result.map_err(|e| anyhow::anyhow!("{e}"))
}

/// Opens a VCHI-style (queue) service.
pub fn open_queue(inst: &Instance, fourcc: FourCc, version: i16) -> Result<Service> {
    inst.open_service(
        ServiceParams {
            fourcc,
            version,
            version_min: version,
        },
        Handler::Queue,
    )
    .with_context(|| format!("opening the VideoCore's {fourcc} service"))
}

/// Sends one GCMD command and returns (text, exit code) as vcgencmd decides them.
pub fn gencmd_request(inst: &Instance, words: &[String]) -> Result<String> {
    let svc = open_queue(inst, FourCc::GCMD, 1)?;
    // vcgencmd joins its arguments with single spaces and appends a trailing space.
    let mut request = String::new();
    for w in words {
        request.push_str(w);
        request.push(' ');
    }
    if request.len() >= 512 {
        bail!(
            "command too long ({} characters; vcgencmd allows 511)",
            request.len()
        );
    }
    let mut bytes = request.into_bytes();
    bytes.push(0);
    svc.use_service()?;
    svc.queue_message(&bytes)?;
    let reply = svc.dequeue(true)?;
    svc.release_service()?;
    let _ = svc.remove();
    if reply.len() < 4 {
        bail!("GCMD reply too short ({} bytes)", reply.len());
    }
    let text = &reply[4..];
    let text = text.split(|&b| b == 0).next().unwrap_or_default();
    Ok(String::from_utf8_lossy(text).into_owned())
}

pub fn gencmd(a: GencmdArgs) -> Result<ExitCode> {
    if a.command.is_empty() || a.command.iter().any(|w| w == "-h" || w == "--help") {
        println!(
            "Usage: vcgencmd COMMAND [ARGS...]\nSends COMMAND to the VideoCore; 'vcgencmd commands' lists them."
        );
        return Ok(ExitCode::SUCCESS);
    }
    let inst = match connect(a.socket) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("vcgencmd: {e:#}");
            return Ok(ExitCode::from(255));
        }
    };
    let text = match gencmd_request(&inst, &a.command) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("vcgencmd: {e:#}");
            return Ok(ExitCode::from(255));
        }
    };
    if text.starts_with("error=") {
        eprintln!("{text}");
        if text.ends_with("error_msg=\"Command not registered\"") {
            eprintln!("Use 'vcgencmd commands' to get a list of commands");
        }
        return Ok(ExitCode::from(254));
    }
    if text.ends_with('\n') {
        print!("{text}")
    } else {
        println!("{text}")
    }
    Ok(ExitCode::SUCCESS)
}

/// Sends a request to the VideoCore's debug service and collects text replies up to the
/// empty message that ends them.
pub fn vcdb_text(inst: &Instance, request: &str) -> Result<String> {
    let svc = open_queue(inst, videocore::VCDB, 1)?;
    svc.queue_message(request.as_bytes())?;
    let mut out = Vec::new();
    loop {
        let chunk = svc.dequeue(true)?;
        if chunk.is_empty() {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    let _ = svc.remove();
    Ok(String::from_utf8_lossy(&out).into_owned())
}

pub fn log(a: LogArgs) -> Result<ExitCode> {
    let inst = connect(a.socket)?;
    let text = vcdb_text(&inst, "log")?;
    if text.is_empty() || text.ends_with('\n') {
        print!("{text}")
    } else {
        println!("{text}")
    }
    Ok(ExitCode::SUCCESS)
}

/// Fetches a PNG from the debug service (`snapshot`, or `element N` for a client's window).
pub fn vcdb_png(inst: &Instance, request: &str) -> Result<Option<Vec<u8>>> {
    let svc = open_queue(inst, videocore::VCDB, 1)?;
    svc.queue_message(request.as_bytes())?;
    let reply = svc.dequeue(true)?;
    let len = reply
        .get(..4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])) as usize;
    let png = if len == 0 {
        None
    } else {
        svc.bulk_receive(len, BulkMode::Blocking, 0)?.map(|mut d| {
            d.truncate(len);
            d
        })
    };
    let _ = svc.remove();
    Ok(png)
}

pub fn snapshot(a: SnapshotArgs) -> Result<ExitCode> {
    let inst = connect(a.socket)?;
    let Some(png) = vcdb_png(&inst, "snapshot")? else {
        bail!("the VideoCore has no framebuffer to snapshot")
    };
    std::fs::write(&a.file, &png).with_context(|| format!("writing {}", a.file.display()))?;
    eprintln!("wrote {} ({} bytes)", a.file.display(), png.len());
    Ok(ExitCode::SUCCESS)
}

/// Options of the hidden `vchiq probe-identity`.
#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// Socket path (default: $VCHIQ_SOCKET or the standard path).
    #[arg(long)]
    socket: Option<PathBuf>,
}

/// Prints `pid`, `client_id` (HELLO), `get_client_id` (the ioctl on an open service) and
/// `vc_client_id` (what the VideoCore received in that service's OPEN), then holds the
/// connection until stdin closes.
pub fn probe_identity(a: ProbeArgs) -> Result<ExitCode> {
    let inst = connect(a.socket)?;
    let svc = open_queue(&inst, videocore::VCDB, 1)?;
    svc.queue_message(b"clientid")?;
    let reply = svc.dequeue(true)?;
    let vc = reply
        .get(..4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    println!("pid: {}", std::process::id());
    println!("client_id: {}", inst.client_id());
    println!("get_client_id: {}", svc.client_id()?);
    println!("vc_client_id: {vc}");
    use std::io::Write;
    std::io::stdout().flush()?;
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
    Ok(ExitCode::SUCCESS)
}

/// Loops 4 MiB bulk round trips on `fun2` until killed or the daemon goes away.
pub fn probe_bulk(a: ProbeArgs) -> Result<ExitCode> {
    let inst = connect(a.socket)?;
    let svc = open_queue(&inst, FourCc::FUN2, 3)?;
    let size = 4usize << 20;
    let data = vec![0x5au8; size];
    println!("client_id: {}", inst.client_id());
    println!("ready");
    use std::io::Write;
    std::io::stdout().flush()?;
    loop {
        let req: Vec<u8> = [size as u32, 0, 0, 0]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        svc.queue_message(&req)?;
        svc.bulk_transmit(&data, BulkMode::Blocking, 1)?;
        svc.bulk_receive(size, BulkMode::Blocking, 2)?;
    }
}
