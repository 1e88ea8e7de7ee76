//! Client identity: what the kernel says about a peer, never what the peer says.
//!
//! A client's id is its PID as the daemon sees it (`SO_PEERCRED`; the host PID when the
//! daemon runs in the initial PID namespace), pinned by a pidfd so that a recycled PID is
//! never taken for a live client. On kernels with `SO_PEERPIDFD` the pidfd comes from the
//! socket itself, with no race. Otherwise the daemon opens one with `pidfd_open` right
//! after `accept` and closes the race by checking that the process it pinned started
//! before the connection was accepted and that `SO_PEERCRED` still names the same PID.
//! The PID namespace inode, cgroup, uid/gid and command name are recorded for
//! diagnostics only.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sys;

/// Everything the daemon knows about a client process.
#[derive(Debug)]
pub struct ClientIdentity {
    /// The id sent to the VideoCore in OPEN and returned by GET_CLIENT_ID.
    pub client_id: u32,
    /// uid reported by the kernel.
    pub uid: u32,
    /// gid reported by the kernel.
    pub gid: u32,
    /// Inode of the client's PID namespace (0 if unreadable).
    pub pid_namespace: u64,
    /// First line of `/proc/PID/cgroup` (empty if unreadable).
    pub cgroup: String,
    /// `/proc/PID/comm`.
    pub comm: String,
    /// How the process was pinned.
    pub pinned_by: PinMethod,
    /// The pidfd that pins the process (None only in tests and for in-process clients).
    pub pidfd: Option<OwnedFd>,
}

/// How a client process was pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinMethod {
    /// `SO_PEERPIDFD`: race-free.
    PeerPidfd,
    /// `pidfd_open` after accept, checked against the process start time.
    PidfdOpen,
    /// Not pinned (the process is not visible, or in-process use).
    None,
}

impl PinMethod {
    /// Short name for status output.
    pub fn name(self) -> &'static str {
        match self {
            PinMethod::PeerPidfd => "SO_PEERPIDFD",
            PinMethod::PidfdOpen => "pidfd_open",
            PinMethod::None => "none",
        }
    }
}

/// Why a peer could not be identified.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The kernel reported PID 0: the client lives outside the daemon's PID namespace.
    #[error(
        "the client's PID is not visible from the daemon's PID namespace (SO_PEERCRED gave 0); \
         run vchiqd in the initial PID namespace or one that contains its clients \
         (a daemon container: --pid host)"
    )]
    InvisiblePeer,
    /// The peer exited (or its PID was recycled) before it could be pinned.
    #[error("the client process {0} exited before it could be identified")]
    PeerGone(i32),
    /// A system call failed.
    #[error("reading the client's credentials failed: {0}")]
    Sys(#[from] std::io::Error),
}

impl ClientIdentity {
    /// Identifies the process at the other end of an accepted Unix socket.
    pub fn of_peer(
        sock: BorrowedFd<'_>,
        accepted_at_ticks: Option<u64>,
    ) -> Result<Self, IdentityError> {
        let cred = sys::peer_cred(sock)?;
        if cred.pid <= 0 {
            return Err(IdentityError::InvisiblePeer);
        }
        let (pidfd, pinned_by) = match sys::peer_pidfd(sock)? {
            Some(fd) => (fd, PinMethod::PeerPidfd),
            None => {
                let fd =
                    sys::pidfd_open(cred.pid).map_err(|_| IdentityError::PeerGone(cred.pid))?;
                // Close the race: the pinned process must have started before accept
                // and the socket must still name the same PID.
                let again = sys::peer_cred(sock)?;
                let started = process_start_ticks(cred.pid);
                let recycled = match (started, accepted_at_ticks) {
                    (Some(s), Some(a)) => s > a,
                    _ => false,
                };
                if again.pid != cred.pid || recycled || !sys::pidfd_alive(fd.as_fd()) {
                    return Err(IdentityError::PeerGone(cred.pid));
                }
                (fd, PinMethod::PidfdOpen)
            }
        };
        Ok(Self::describe(
            cred.pid as u32,
            cred.uid,
            cred.gid,
            Some(pidfd),
            pinned_by,
        ))
    }

    /// Builds an identity for a known PID (file-node front end, tests).
    pub fn describe(
        pid: u32,
        uid: u32,
        gid: u32,
        pidfd: Option<OwnedFd>,
        pinned_by: PinMethod,
    ) -> Self {
        let proc_dir = format!("/proc/{pid}");
        let pid_namespace = std::fs::metadata(format!("{proc_dir}/ns/pid"))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap_or(0);
        let cgroup = std::fs::read_to_string(format!("{proc_dir}/cgroup"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned))
            .unwrap_or_default();
        let comm = std::fs::read_to_string(format!("{proc_dir}/comm"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        ClientIdentity {
            client_id: pid,
            uid,
            gid,
            pid_namespace,
            cgroup,
            comm,
            pinned_by,
            pidfd,
        }
    }

    /// True while the pinned process is alive (always true when not pinned).
    pub fn alive(&self) -> bool {
        self.pidfd
            .as_ref()
            .is_none_or(|fd| sys::pidfd_alive(fd.as_fd()))
    }
}

/// Start time of a process in clock ticks since boot (`/proc/PID/stat` field 22).
pub fn process_start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Clock ticks since boot now (for comparing with [`process_start_ticks`]).
pub fn now_ticks() -> Option<u64> {
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    // USER_HZ is 100 on every Linux ABI the project supports; round up so that a
    // process started in this tick still counts as "before".
    Some((secs * 100.0).ceil() as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn peer_of_socketpair_is_this_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        let id = ClientIdentity::of_peer(a.as_fd(), now_ticks()).unwrap();
        assert_eq!(id.client_id, std::process::id());
        assert!(id.alive());
        assert_ne!(id.pinned_by, PinMethod::None);
        assert!(id.pid_namespace != 0);
    }

    #[test]
    fn start_ticks_of_self_is_in_the_past() {
        let me = process_start_ticks(std::process::id() as i32).unwrap();
        assert!(me <= now_ticks().unwrap());
    }
}
