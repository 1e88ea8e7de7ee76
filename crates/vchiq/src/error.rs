//! The crate's error type: every variant says what failed, why, and what to do.

use std::io;
use std::path::PathBuf;

use vchiq_abi::defs::{MAX_ELEMENTS, MAX_MSG_SIZE, VCHIQ_VERSION, VCHIQ_VERSION_MIN};

/// Why a call failed. Variants are sorted by name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bulk transfer larger than 4 GiB (the protocol's `size` is 32 bits).
    #[error("bulk transfer of {size} bytes is too large: the limit is {max} bytes; split it")]
    BulkTooLarge {
        /// The size asked for.
        size: usize,
        /// `u32::MAX`.
        max: usize,
    },

    /// The socket exists but the daemon hung up (EOF), or the connection broke. Every
    /// pending and later call on the instance fails with this.
    #[error(
        "vchiqd closed the connection (daemon stopped or VideoCore lost); reconnect once it is back"
    )]
    Closed,

    /// `connect()` to the socket failed for a reason other than a missing daemon or a
    /// permission problem.
    #[error("cannot connect to vchiqd at {} (connect: {}); check VCHIQ_SOCKET", path.display(), os_text(source))]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The `connect()` error.
        source: io::Error,
    },

    /// Nothing listens at the socket path (`ENOENT`, `ECONNREFUSED`, ...).
    #[error("vchiqd is not running at {} (connect: {}); start it with 'vchiq daemon'", path.display(), os_text(source))]
    DaemonNotRunning {
        /// The socket path.
        path: PathBuf,
        /// The `connect()` error.
        source: io::Error,
    },

    /// The VCHIQ device file does not exist (`ENOENT`, `ENODEV`, `ENXIO`).
    #[error(
        "no VCHIQ device at {} (open: {}); load the vchiq kernel driver, serve a node with 'vchiq daemon --dev-node {}', or set VCHIQ_SOCKET to use vchiqd's socket",
        path.display(), os_text(source), path.display()
    )]
    DeviceNotFound {
        /// The device path.
        path: PathBuf,
        /// The `open()` error.
        source: io::Error,
    },

    /// The VCHIQ device file could not be opened (other than for a missing file or a
    /// permission problem), e.g. `ENOTCONN` from a driver whose VideoCore half is down,
    /// or `ENOTTY`-like errors from a path that is not the device.
    #[error(
        "cannot open the VCHIQ device {} (open: {}); check that it is /dev/vchiq of a running driver or a 'vchiq daemon --dev-node' node, or set VCHIQ_SOCKET to use vchiqd's socket",
        path.display(), os_text(source)
    )]
    DeviceOpen {
        /// The device path.
        path: PathBuf,
        /// The `open()` error.
        source: io::Error,
    },

    /// The daemon speaks another version of the socket protocol (`vchiq_abi::wire`).
    #[error(
        "vchiqd speaks socket protocol {theirs}, this library speaks {ours}; use a vchiqd and library from the same release"
    )]
    IncompatibleDaemon {
        /// [`vchiq_abi::wire::PROTOCOL_VERSION`].
        ours: u32,
        /// What the daemon reported (0 if it refused HELLO without saying).
        theirs: u32,
    },

    /// GET_CONFIG reported a driver this library cannot talk to (libvchiq_arm's
    /// "Incompatible VCHIQ library"): it needs `version >= 3` and `version_min <= 8`.
    #[error(
        "incompatible VCHIQ driver: it reports version {version} (oldest library {version_min}), \
         this library is version {lib} (needs a driver >= {lib_min}); update vchiqd or the kernel driver",
        lib = VCHIQ_VERSION,
        lib_min = VCHIQ_VERSION_MIN
    )]
    IncompatibleDriver {
        /// The driver's `config.version`.
        version: i16,
        /// The driver's `config.version_min`.
        version_min: i16,
    },

    /// A bulk transfer asked for mode WAITING, which only the driver uses (to resume an
    /// interrupted BLOCKING transfer).
    #[error("bulk mode WAITING is internal to the driver; use BLOCKING, CALLBACK or NOCALLBACK")]
    InvalidBulkMode,

    /// The service was closed (a client) or removed by this library, so its handle is no
    /// longer valid; the call was refused locally, without asking the daemon.
    #[error(
        "service {handle:#x} is no longer valid (closed or removed by this process); open it again"
    )]
    InvalidService {
        /// The stale driver handle.
        handle: u32,
    },

    /// An I/O error on the connection that is not a hang-up.
    #[error("I/O error talking to vchiqd: {0}")]
    Io(#[from] io::Error),

    /// The driver refused an ioctl with an errno.
    #[error("{op} failed: {} ({}){}", errno_text(*errno), errno_name(*errno), errno_hint(*errno))]
    Ioctl {
        /// The ioctl's name (e.g. `"QUEUE_MESSAGE"`).
        op: &'static str,
        /// The positive errno.
        errno: i32,
    },

    /// A message exceeds the 4088 bytes of one slot (checked locally, as libvchiq_arm
    /// would have the driver refuse it).
    #[error(
        "message of {size} bytes is too large: the limit is {max} bytes; send larger data as a bulk transfer"
    )]
    MessageTooLarge {
        /// The total size asked for.
        size: usize,
        /// [`vchiq_abi::defs::MAX_MSG_SIZE`].
        max: usize,
    },

    /// `connect()` to the socket or `open()` of the device was refused for lack of
    /// permission.
    #[error("permission denied on {}: add yourself to group 'video' or set VCHIQ_SOCKET", path.display())]
    PermissionDenied {
        /// The socket path.
        path: PathBuf,
        /// The `connect()` error.
        source: io::Error,
    },

    /// The daemon sent something that breaks the socket protocol.
    #[error(
        "protocol error talking to vchiqd: {0}; the daemon and library may be from different releases"
    )]
    Protocol(String),

    /// The daemon refused the connection and said why (the client limit, an identity it
    /// could not establish).
    #[error("vchiqd refused the connection: {reason}")]
    Refused {
        /// The daemon's reason, for the user.
        reason: String,
    },

    /// `wait_event` ran out of time with no event.
    #[error("no event arrived within the timeout")]
    Timeout,

    /// A message with more than 8 elements (checked locally, like the real library).
    #[error("message has {count} elements: the limit is {max}; concatenate some of them")]
    TooManyElements {
        /// The element count asked for.
        count: usize,
        /// [`vchiq_abi::defs::MAX_ELEMENTS`].
        max: usize,
    },

    /// The instance already has the 32 services libvchiq_arm allows per instance.
    #[error("this instance already has {max} services; remove one first")]
    TooManyServices {
        /// [`vchiq_abi::defs::VCHIQ_MAX_INSTANCE_SERVICES`].
        max: usize,
    },

    /// A non-blocking DEQUEUE found no message (`EAGAIN`/`EWOULDBLOCK`).
    #[error(
        "no message is waiting; dequeue with blocking = true or wait for Event::MessageAvailable"
    )]
    WouldBlock,

    /// The call is only meaningful for the other kind of [`Handler`](crate::Handler).
    #[error("{op} needs a service created with {needs}")]
    WrongHandler {
        /// The method called.
        op: &'static str,
        /// The handler kind it needs.
        needs: &'static str,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The errno of an [`Error::Ioctl`] (or `EAGAIN` for [`Error::WouldBlock`]), if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Ioctl { errno, .. } => Some(*errno),
            Error::WouldBlock => Some(libc::EAGAIN),
            _ => None,
        }
    }

    /// Maps a `connect()` failure on `path` to the variant that tells the user what to do.
    pub(crate) fn from_connect(path: PathBuf, source: io::Error) -> Error {
        match source.raw_os_error() {
            Some(libc::ENOENT | libc::ECONNREFUSED | libc::ENOTDIR) => {
                Error::DaemonNotRunning { path, source }
            }
            Some(libc::EACCES | libc::EPERM) => Error::PermissionDenied { path, source },
            _ => Error::Connect { path, source },
        }
    }

    /// Maps an `open()` failure of the device `path`.
    pub(crate) fn from_open(path: PathBuf, source: io::Error) -> Error {
        match source.raw_os_error() {
            Some(libc::ENOENT | libc::ENODEV | libc::ENXIO | libc::ENOTDIR) => {
                Error::DeviceNotFound { path, source }
            }
            Some(libc::EACCES | libc::EPERM) => Error::PermissionDenied { path, source },
            _ => Error::DeviceOpen { path, source },
        }
    }

    /// The error for a negative `result` of `op` (`errno = -result`).
    pub(crate) fn from_result(op: &'static str, result: i64) -> Error {
        let errno = i32::try_from(-result).unwrap_or(libc::EIO);
        if errno == libc::EAGAIN {
            Error::WouldBlock
        } else {
            Error::Ioctl { op, errno }
        }
    }
}

/// Checks local message limits (`MAX_ELEMENTS`, `MAX_MSG_SIZE`).
pub(crate) fn check_message(parts: &[&[u8]]) -> Result<usize> {
    if parts.len() > MAX_ELEMENTS {
        return Err(Error::TooManyElements {
            count: parts.len(),
            max: MAX_ELEMENTS,
        });
    }
    let size = parts.iter().map(|p| p.len()).sum();
    if size > MAX_MSG_SIZE {
        return Err(Error::MessageTooLarge {
            size,
            max: MAX_MSG_SIZE,
        });
    }
    Ok(size)
}

/// `strerror` text of an OS error, without std's " (os error N)" suffix.
fn os_text(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if e.raw_os_error().is_some() => s[..i].to_string(),
        _ => s,
    }
}

/// `strerror(errno)`.
fn errno_text(errno: i32) -> String {
    os_text(&io::Error::from_raw_os_error(errno))
}

/// The symbolic name of the errnos the driver returns (spec §3.5).
fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EINVAL => "EINVAL",
        libc::EIO => "EIO",
        libc::EFAULT => "EFAULT",
        libc::ENOTCONN => "ENOTCONN",
        libc::EEXIST => "EEXIST",
        libc::EINTR => "EINTR",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::ESRCH => "ESRCH",
        libc::ENOTTY => "ENOTTY",
        libc::EPROTO => "EPROTO",
        libc::ENOMEM => "ENOMEM",
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::EBADF => "EBADF",
        libc::EMFILE => "EMFILE",
        libc::ENOBUFS => "ENOBUFS",
        _ => return format!("errno {errno}"),
    };
    name.to_string()
}

/// What the user can do about the common errnos.
fn errno_hint(errno: i32) -> &'static str {
    match errno {
        libc::EINVAL => "; the handle or an argument is invalid for this instance",
        libc::EIO => "; the service is not open (closed by the peer?) or the VideoCore refused",
        libc::ENOTCONN => "; the instance or service is not connected",
        libc::EEXIST => "; another instance already serves this fourcc",
        libc::ENOTTY => "; the driver does not support this operation",
        libc::EMFILE => {
            "; a limit of the daemon is reached (services per client, instances per user): \
             close some, or see its log and `vchiq daemon --help` (--max-*)"
        }
        libc::ENOBUFS => {
            "; too many of this client's messages are queued unread in the daemon: await \
             completions (or dequeue) before sending more (`vchiq daemon \
             --max-queued-bytes-per-client`)"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_errors_say_what_to_do() {
        let e = Error::from_connect(
            "/run/vchiq/vchiq.sock".into(),
            io::Error::from_raw_os_error(libc::ENOENT),
        );
        assert_eq!(
            e.to_string(),
            "vchiqd is not running at /run/vchiq/vchiq.sock (connect: No such file or directory); \
             start it with 'vchiq daemon'"
        );
        let e = Error::from_connect(
            "/run/vchiq/vchiq.sock".into(),
            io::Error::from_raw_os_error(libc::EACCES),
        );
        assert!(matches!(e, Error::PermissionDenied { .. }));
        assert_eq!(
            e.to_string(),
            "permission denied on /run/vchiq/vchiq.sock: add yourself to group 'video' or set VCHIQ_SOCKET"
        );
    }

    #[test]
    fn ioctl_errors_name_the_errno() {
        let e = Error::from_result("QUEUE_MESSAGE", -i64::from(libc::EIO));
        assert_eq!(e.errno(), Some(libc::EIO));
        let text = e.to_string();
        assert!(
            text.starts_with("QUEUE_MESSAGE failed: Input/output error (EIO); "),
            "{text}"
        );
        assert!(matches!(
            Error::from_result("DEQUEUE_MESSAGE", -i64::from(libc::EAGAIN)),
            Error::WouldBlock
        ));
    }

    #[test]
    fn local_message_checks() {
        let big = vec![0u8; MAX_MSG_SIZE + 1];
        assert!(matches!(
            check_message(&[&big]),
            Err(Error::MessageTooLarge {
                size: 4089,
                max: 4088
            })
        ));
        let parts = [&b"x"[..]; 9];
        assert!(matches!(
            check_message(&parts),
            Err(Error::TooManyElements { count: 9, max: 8 })
        ));
        assert_eq!(check_message(&[b"ab", b"", b"cde"]).unwrap(), 5);
    }
}
