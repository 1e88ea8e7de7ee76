//! The file node's request decoder driven in-process, for the `fuse_requests` fuzz target
//! (feature `fuzzing`; not a stable interface).
//!
//! A [`Node`] is the node's [`Session`] with a socket pair where `/dev/fuse` would be:
//! [`Node::request`] hands one request, as the kernel would write it, to the same
//! dispatcher the reading thread uses, and the other end of the pair reads the replies
//! (each one `writev`, so one packet). No file system is mounted. The ioctl argument
//! walker reaches the requesting thread's memory as it does for a real caller
//! (`process_vm_readv` on the request's pid), so a request that names this process's own
//! thread walks this process's memory.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex};

use zerocopy::FromBytes;

use super::abi::{self, OutHeader};
use super::{Pool, Session, lock};
use crate::driver::Driver;

pub use super::abi::IOCTL_32BIT;
pub use super::abi::{InHeader, IoctlIn, opcode};

/// Inode of the node's one file (what OPEN, READ and IOCTL name).
pub const FILE_NODE: u64 = super::FILE_ID;

/// One reply read from the kernel's end.
#[derive(Debug)]
pub struct Reply {
    /// The request it answers.
    pub unique: u64,
    /// 0 or a negated errno.
    pub error: i32,
    /// What follows the header.
    pub payload: Vec<u8>,
}

/// The node's session over a socket pair.
pub struct Node {
    session: Arc<Session>,
    kernel: OwnedFd,
    buf: Vec<u8>,
}

impl Node {
    /// A node session for `driver` (file mode 0660, this process's uid and gid).
    pub fn new(driver: Arc<Driver>) -> io::Result<Node> {
        let (dev, kernel) = crate::sys::socketpair_seqpacket()?;
        rustix::io::ioctl_fionbio(&kernel, true)?;
        let (uid, gid) = super::sys::euid_egid();
        let session = Arc::new(Session {
            driver,
            dev,
            file_mode: abi::S_IFREG | 0o660,
            uid,
            gid,
            files: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            pending_cv: Condvar::new(),
            pool: Mutex::new(Pool::default()),
            pool_cv: Condvar::new(),
            stopped: AtomicBool::new(false),
        });
        Ok(Node {
            session,
            kernel,
            buf: vec![0u8; super::BUF_SIZE * 2],
        })
    }

    /// Serves one request (header and body) as the reading thread does.
    pub fn request(&self, req: &[u8]) {
        self.session.dispatch(req);
    }

    /// Every reply written so far. A reply whose header does not give its own length is
    /// an error.
    pub fn replies(&mut self) -> io::Result<Vec<Reply>> {
        let mut out = Vec::new();
        loop {
            let n = match crate::sys::try_recv_with_fds(self.kernel.as_fd(), &mut self.buf)? {
                None => return Ok(out),
                Some((n, _)) => n,
            };
            let frame = &self.buf[..n];
            let Ok((h, rest)) = OutHeader::read_from_prefix(frame) else {
                return Err(io::Error::other(format!("short reply ({n} bytes)")));
            };
            if h.len as usize != n {
                return Err(io::Error::other(format!(
                    "reply of {n} bytes says it has {}",
                    h.len
                )));
            }
            out.push(Reply {
                unique: h.unique,
                error: h.error,
                payload: rest.to_vec(),
            });
        }
    }

    /// Open files (instances) of the node.
    pub fn open_files(&self) -> usize {
        lock(&self.session.files).len()
    }

    /// Requests answered later (on a worker, or parked) and not yet answered.
    pub fn pending(&self) -> usize {
        lock(&self.session.pending).len()
    }

    /// The file system is unmounted: every instance still open ends.
    pub fn end(self) {
        self.session
            .stopped
            .store(true, std::sync::atomic::Ordering::Release);
        self.session.release_all();
    }
}
