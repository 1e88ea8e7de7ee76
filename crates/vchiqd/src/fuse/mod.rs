//! The `/dev/vchiq` file node: a FUSE file system with one regular file whose ioctls
//! behave as the Linux vchiq driver's.
//!
//! # Why a FUSE file
//!
//! Unmodified Raspberry Pi programs (dynamic, static, 32-bit) only `open("/dev/vchiq")`,
//! `ioctl()` and `close()` it. This machine class has `/dev/fuse` but no CUSE, and the
//! kernel's *restricted* FUSE ioctl mode is enough: for a regular file it passes the raw
//! `arg`, copies `_IOC_SIZE(cmd)` bytes of the caller's struct in (for `_IOC_WRITE`) and
//! out (for `_IOC_READ`, on success only), and returns the reply's `result` as the ioctl's
//! return value. Everything the structs point at (message elements, bulk data, completion
//! arrays, message buffers, the config) is reached with `process_vm_readv`/`writev` on the
//! requesting thread, whose host TID every FUSE request carries. Every such access is
//! checked: a bad pointer is `EFAULT` for that caller, never a daemon crash.
//!
//! # Model
//!
//! ```text
//!  open()  ──▶ OPEN     a new driver instance; client id = the opener's TGID (the request
//!                       carries a TID; /proc/<tid>/status maps it), pinned by a pidfd
//!  ioctl() ──▶ IOCTL    decoded by layout (FUSE_IOCTL_32BIT = ILP32 numbers and structs),
//!                       answered inline, or from a worker thread when it must wait
//!  signal  ──▶ INTERRUPT the waiting request's CancelToken is cancelled: the driver returns
//!                       EINTR (a BLOCKING bulk keeps its waiter and writes mode = WAITING
//!                       into the caller's struct first) and the worker replies at once
//!  read()  ──▶ READ     the driver's state dump
//!  close() ──▶ FLUSH    no-op (one per close); RELEASE at the last close ends the instance
//! ```
//!
//! `dup` and `fork` share the open file, hence the `fh`, hence the instance, exactly as
//! they share the kernel's `file->private_data`.
//!
//! The protocol loop is written here rather than taken from a crate: the `fuser` crate
//! hides the ioctl `arg` and answers `FUSE_INTERRUPT` with ENOSYS (which makes blocked
//! callers unkillable). One thread reads `/dev/fuse`; replies are written by whichever
//! thread finishes a request (a reply is one `writev`, which the kernel takes whole).
//!
//! # Deployment
//!
//! The file system is mounted on a private directory (`fd=N,rootmode=40000,
//! user_id=…,group_id=…,allow_other,default_permissions`) and its one file is bind-mounted
//! onto the node path (an empty file is created there first if nothing exists). The file
//! is mode 0660, group `video` when that group exists, as on a Pi; the kernel checks
//! those bits (`default_permissions`). The daemon must run in the initial PID namespace (or
//! one containing every client's): otherwise requests carry pid 0 and are refused.
//!
//! # Limits
//!
//! - `stat()` reports a regular file, not a character device. libvchiq_arm never looks.
//! - If the daemon dies, open files fail with `ENOTCONN`/`ECONNABORTED` and the mount stays
//!   until unmounted; a restarted daemon detaches a dead node at its path first.
//! - Kernels with a FUSE request timeout (`fs.fuse.max_request_timeout`) abort the whole
//!   connection when a blocking AWAIT_COMPLETION outlives it; the daemon warns at start.

mod abi;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod ioctl;
pub mod sys;

use std::collections::HashMap;
use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use zerocopy::{FromBytes, IntoBytes};

use crate::driver::{CancelToken, Driver, Instance};
use crate::identity::{ClientIdentity, PinMethod};
use crate::parking::Parking;
use abi::{InHeader, OutHeader, opcode};

/// Inode of the one file.
const FILE_ID: u64 = 2;
/// Name of the one file in the FUSE root.
const FILE_NAME: &[u8] = b"vchiq";
/// Largest WRITE the kernel may send (the node accepts none; this sizes the read buffer).
const MAX_WRITE: u32 = 64 * 1024;
/// The request buffer: a header, the largest argument, and room to spare.
const BUF_SIZE: usize = MAX_WRITE as usize + 4096;
/// How long an interrupted request may take to notice its cancellation before the node
/// answers `EINTR` for it (only waits that are not cancellable, CONNECT and the OPEN of a
/// client service, ever take that long).
const INTERRUPT_GRACE: Duration = Duration::from_millis(200);
/// Stack of worker threads (they only wait and copy).
const THREAD_STACK: usize = 256 * 1024;
/// How long an idle worker thread waits for another deferred request before it exits.
const WORKER_IDLE: Duration = Duration::from_secs(10);

/// A deferred request's work.
type Job = Box<dyn FnOnce(&Arc<Session>) + Send>;

/// Idle worker threads and the jobs handed to them.
#[derive(Default)]
struct Pool {
    /// Workers waiting for a job (each job pushed takes one).
    idle: usize,
    /// Jobs not yet picked up.
    jobs: std::collections::VecDeque<Job>,
}

/// The mount source of a node that names its daemon: `vchiqd:` and the socket path.
pub const MOUNT_SOURCE_PREFIX: &str = "vchiqd:";

/// How the node is configured.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Where the node appears (e.g. `/dev/vchiq`).
    pub path: PathBuf,
    /// Permission bits of the file (default 0o660).
    pub mode: u32,
    /// Group of the file (default `video` when it exists, else the daemon's group).
    pub group: Option<String>,
    /// The socket of the daemon serving the node, recorded as the mount's source
    /// (`vchiqd:PATH`) so that `vchiq exec` can tell which daemon a node belongs to.
    pub daemon_socket: Option<PathBuf>,
}

impl NodeOptions {
    /// Defaults for a node path.
    pub fn new(path: PathBuf) -> Self {
        NodeOptions {
            path,
            mode: 0o660,
            group: Some("video".into()),
            daemon_socket: None,
        }
    }
}

/// Why the node could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// `/dev/fuse` could not be opened.
    #[error(
        "cannot open /dev/fuse: {0} (is the fuse module loaded, and is the daemon allowed to use it?)"
    )]
    DevFuse(std::io::Error),
    /// mount(2) of the FUSE file system failed.
    #[error(
        "cannot mount the FUSE file system on {dir}: {source} (FUSE mounts need root or a user namespace)"
    )]
    Mount {
        /// The private mount directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The node could not be bound onto its path.
    #[error("cannot bind the file node onto {path}: {source}")]
    Bind {
        /// The node path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another system call failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A mounted file node. Unmounts on [`FuseNode::stop`] or drop.
pub struct FuseNode {
    session: Arc<Session>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
    mount_dir: PathBuf,
    created_file: bool,
    bound: bool,
}

impl FuseNode {
    /// Mounts the node at `opts.path` and starts serving it with `driver`.
    pub fn start(driver: Arc<Driver>, opts: &NodeOptions) -> Result<FuseNode, NodeError> {
        let path = opts.path.clone();
        // A node left by a dead daemon answers ENOTCONN: detach it first.
        if sys::stat_errno(&path) == Some(libc::ENOTCONN) {
            tracing::warn!(
                "{}: detaching the dead file node of an earlier daemon",
                path.display()
            );
            let _ = sys::unmount_detach(&path);
        }
        warn_request_timeout();
        let dev = sys::open_dev_fuse().map_err(NodeError::DevFuse)?;
        let mount_dir = private_dir()?;
        let (uid, egid) = sys::euid_egid();
        let gid = opts
            .group
            .as_deref()
            .and_then(crate::sys::group_id)
            .unwrap_or(egid);
        let data = format!(
            "fd={},rootmode=40000,user_id={uid},group_id={egid},allow_other,default_permissions",
            std::os::fd::AsRawFd::as_raw_fd(&dev)
        );
        let fs_source = match &opts.daemon_socket {
            Some(sock) => format!("{MOUNT_SOURCE_PREFIX}{}", sock.display()),
            None => "vchiqd".to_owned(),
        };
        if let Err(source) = sys::mount(
            &fs_source,
            &mount_dir,
            Some("fuse.vchiqd"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some(&data),
        )
        .or_else(|_| {
            sys::mount(
                &fs_source,
                &mount_dir,
                Some("fuse"),
                libc::MS_NOSUID | libc::MS_NODEV,
                Some(&data),
            )
        }) {
            let _ = std::fs::remove_dir(&mount_dir);
            return Err(NodeError::Mount {
                dir: mount_dir,
                source,
            });
        }
        let session = Arc::new(Session {
            driver,
            dev,
            file_mode: abi::S_IFREG | (opts.mode & 0o7777),
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
        let s = session.clone();
        let thread = std::thread::Builder::new()
            .name("vchiqd-fuse".into())
            .spawn(move || s.run())?;
        let mut node = FuseNode {
            session,
            thread: Some(thread),
            path: path.clone(),
            mount_dir,
            created_file: false,
            bound: false,
        };
        if std::fs::symlink_metadata(&path).is_err() {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|source| NodeError::Bind {
                    path: path.clone(),
                    source,
                })?;
            node.created_file = true;
        }
        sys::bind_mount(&node.mount_dir.join("vchiq"), &path, false).map_err(|source| {
            NodeError::Bind {
                path: path.clone(),
                source,
            }
        })?;
        node.bound = true;
        tracing::info!(
            "file node {} served (mode {:o}, gid {gid})",
            path.display(),
            opts.mode
        );
        Ok(node)
    }

    /// The node path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unmounts the node, ends every instance opened through it and stops the loop.
    pub fn stop(mut self) {
        self.teardown();
    }

    fn teardown(&mut self) {
        if self.bound {
            if let Err(e) = sys::unmount_detach(&self.path) {
                tracing::warn!("unmounting {}: {e}", self.path.display());
            }
            self.bound = false;
        }
        if self.created_file {
            let _ = std::fs::remove_file(&self.path);
            self.created_file = false;
        }
        if self.thread.is_some() {
            self.session.stopped.store(true, Ordering::Release);
            if let Err(e) = sys::unmount_detach(&self.mount_dir) {
                tracing::warn!("unmounting {}: {e}", self.mount_dir.display());
            }
            let _ = std::fs::remove_dir(&self.mount_dir);
            // The reader sees ENODEV once the connection is gone; a lazy unmount with
            // files still open keeps it alive, so do not wait for ever.
            if let Some(t) = self.thread.take() {
                let t0 = Instant::now();
                while !t.is_finished() && t0.elapsed() < Duration::from_secs(2) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if t.is_finished() {
                    let _ = t.join();
                }
            }
            self.session.release_all();
        }
    }
}

impl Drop for FuseNode {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// A private, empty directory to mount the FUSE file system on.
fn private_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "vchiqd-fuse-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    // /run/vchiq as root; the temporary directory otherwise, or when /run is not writable
    // (an unprivileged daemon that is root only in a user namespace).
    let run = PathBuf::from("/run/vchiq");
    if sys::euid_egid().0 == 0 && std::fs::create_dir_all(&run).is_ok() {
        let dir = run.join(&name);
        if std::fs::DirBuilder::new().mode(0o700).create(&dir).is_ok() {
            return Ok(dir);
        }
    }
    let dir = std::env::temp_dir().join(name);
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

fn warn_request_timeout() {
    for knob in ["max_request_timeout", "default_request_timeout"] {
        let v = std::fs::read_to_string(format!("/proc/sys/fs/fuse/{knob}")).unwrap_or_default();
        if v.trim().parse::<u64>().is_ok_and(|t| t > 0) {
            tracing::warn!(
                "fs.fuse.{knob} = {}: the kernel aborts the file node when a blocking ioctl outlives it; set it to 0",
                v.trim()
            );
        }
    }
}

/// One open file (shared by dup and fork).
pub(crate) struct OpenFile {
    inst: Arc<Instance>,
    /// The dump text served by READ, taken at offset 0 so that a reader sees one snapshot.
    dump: Mutex<Vec<u8>>,
    /// AWAIT_COMPLETION and blocking DEQUEUE_MESSAGE requests that found nothing: kept as
    /// data and retried by the thread that changes the instance (its waker), which then
    /// writes the caller's memory and the reply itself. No thread waits for them.
    parked: Parking<ParkedIoctl>,
    /// Requests of this file waiting (deferred or parked): [`Pending`] entries.
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// The in-flight limit was hit and logged (one line per episode).
    in_flight_warned: AtomicBool,
}

/// Tries a parked ioctl again: `None` while it would still wait.
pub(crate) type Retry = Box<dyn FnMut(&Session) -> Option<IoctlReply> + Send>;

/// Undoes what parking did, for a parked ioctl that leaves unanswered (an interrupt).
pub(crate) type Undo = Box<dyn FnOnce(&Session) + Send>;

/// A parked ioctl: its FUSE request and how to try it again.
pub(crate) struct ParkedIoctl {
    unique: u64,
    retry: Retry,
    on_drop: Option<Undo>,
}

impl OpenFile {
    /// The instance changed: retry the parked requests on this thread (never blocks).
    fn kick(&self, s: &Session) {
        self.parked.kick(&mut |p| (p.retry)(s), &mut |p, reply| {
            s.finish(p.unique, &reply);
        });
    }
}

/// A request answered later.
struct Pending {
    token: Arc<CancelToken>,
    inst: Arc<Instance>,
    _flight: InFlight,
}

/// One request counted in its file's [`OpenFile::in_flight`] while it is pending.
struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

impl InFlight {
    fn new(file: &OpenFile) -> InFlight {
        file.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(file.in_flight.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A reply to an ioctl: `Ok((result, out bytes))` or an errno.
pub(crate) type IoctlReply = Result<(i32, Vec<u8>), i32>;

/// The connection to the kernel and everything the node keeps per open file.
pub(crate) struct Session {
    driver: Arc<Driver>,
    dev: OwnedFd,
    file_mode: u32,
    uid: u32,
    gid: u32,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_fh: AtomicU64,
    pending: Mutex<HashMap<u64, Pending>>,
    pending_cv: Condvar,
    pool: Mutex<Pool>,
    pool_cv: Condvar,
    stopped: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Session {
    fn run(self: Arc<Self>) {
        let mut buf = vec![0u8; BUF_SIZE];
        loop {
            match sys::read(self.dev.as_fd(), &mut buf) {
                Ok(n) => self.dispatch(&buf[..n]),
                Err(e) => match e.raw_os_error() {
                    // A request interrupted before it was read, or a signal.
                    Some(libc::ENOENT | libc::EINTR | libc::EAGAIN) => {}
                    Some(libc::ENODEV) => break,
                    _ => {
                        if !self.stopped.load(Ordering::Acquire) {
                            tracing::error!("reading /dev/fuse: {e}: the file node stops");
                        }
                        break;
                    }
                },
            }
        }
        tracing::info!("file node connection ended");
        self.release_all();
    }

    /// Ends every instance still open through the node (the mount is gone).
    fn release_all(&self) {
        for (_, p) in lock(&self.pending).drain() {
            self.driver.cancel(&p.inst, &p.token);
        }
        let files: Vec<_> = lock(&self.files).drain().map(|(_, f)| f).collect();
        for f in files {
            self.driver.release_instance(&f.inst);
        }
    }

    fn send(&self, unique: u64, error: i32, payload: &[&[u8]]) {
        let len = size_of::<OutHeader>() + payload.iter().map(|p| p.len()).sum::<usize>();
        let hdr = OutHeader {
            len: len as u32,
            error: -error,
            unique,
        };
        let mut parts = Vec::with_capacity(1 + payload.len());
        parts.push(IoSlice::new(hdr.as_bytes()));
        parts.extend(
            payload
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| IoSlice::new(p)),
        );
        if let Err(e) = sys::writev(self.dev.as_fd(), &parts) {
            // ENOENT: the request was aborted (its caller died); nothing to answer.
            if e.raw_os_error() != Some(libc::ENOENT) {
                tracing::debug!("FUSE reply to {unique}: {e}");
            }
        }
    }

    fn reply_err(&self, unique: u64, errno: i32) {
        self.send(unique, errno, &[]);
    }

    fn reply<T: IntoBytes + zerocopy::Immutable>(&self, unique: u64, v: &T) {
        self.send(unique, 0, &[v.as_bytes()]);
    }

    /// Sends an ioctl's reply.
    fn reply_ioctl(&self, unique: u64, r: &IoctlReply) {
        match r {
            Ok((result, out)) => {
                let o = abi::IoctlOut {
                    result: *result,
                    ..Default::default()
                };
                self.send(unique, 0, &[o.as_bytes(), out]);
            }
            Err(errno) => self.reply_err(unique, *errno),
        }
    }

    /// Answers a deferred request unless an interrupt already did; returns whether this
    /// call sent the reply.
    fn finish(&self, unique: u64, r: &IoctlReply) -> bool {
        let mine = lock(&self.pending).remove(&unique).is_some();
        self.pending_cv.notify_all();
        if mine {
            self.reply_ioctl(unique, r);
        }
        mine
    }

    /// Answers `retry` now if it can, else parks it in `file` until the instance changes.
    /// `on_drop` undoes what parking did if the request leaves unanswered.
    pub(crate) fn park(
        &self,
        file: &Arc<OpenFile>,
        unique: u64,
        retry: Retry,
        on_park: impl FnOnce(&Session),
        on_drop: Option<Undo>,
    ) -> Option<IoctlReply> {
        let item = ParkedIoctl {
            unique,
            retry,
            on_drop,
        };
        file.parked.park(
            item,
            &mut |p| (p.retry)(self),
            |_| {
                on_park(self);
                lock(&self.pending).insert(
                    unique,
                    Pending {
                        token: CancelToken::new(),
                        inst: file.inst.clone(),
                        _flight: InFlight::new(file),
                    },
                );
            },
            &mut |p, reply| {
                self.finish(p.unique, &reply);
            },
        )
    }

    /// Takes a parked request out of its file (an interrupt): true if it was parked.
    fn unpark(&self, unique: u64) -> bool {
        let files: Vec<_> = lock(&self.files).values().cloned().collect();
        for f in files {
            if let Some(p) = f.parked.take(|p| p.unique == unique) {
                if let Some(undo) = p.on_drop {
                    undo(self);
                }
                return true;
            }
        }
        false
    }

    /// Runs `f` on a worker thread; `f` answers with [`Session::finish`].
    fn defer(
        self: &Arc<Self>,
        unique: u64,
        file: &Arc<OpenFile>,
        f: impl FnOnce(&Arc<Session>, &CancelToken) + Send + 'static,
    ) {
        let token = CancelToken::new();
        lock(&self.pending).insert(
            unique,
            Pending {
                token: token.clone(),
                inst: file.inst.clone(),
                _flight: InFlight::new(file),
            },
        );
        let job: Job = Box::new(move |s: &Arc<Session>| f(s, &token));
        let mut pool = lock(&self.pool);
        if pool.idle > 0 {
            pool.idle -= 1;
            pool.jobs.push_back(job);
            drop(pool);
            self.pool_cv.notify_one();
            return;
        }
        drop(pool);
        // No idle worker: start one, which then stays for later requests.
        let s = self.clone();
        let spawned = std::thread::Builder::new()
            .name("vchiqd-fuse-wait".into())
            .stack_size(THREAD_STACK)
            .spawn(move || s.worker(job));
        if spawned.is_err() {
            self.finish(unique, &Err(libc::EAGAIN));
        }
    }

    /// A worker: runs `job`, then waits for more; exits after [`WORKER_IDLE`] without work.
    fn worker(self: Arc<Self>, mut job: Job) {
        loop {
            job(&self);
            let mut pool = lock(&self.pool);
            pool.idle += 1;
            let deadline = Instant::now() + WORKER_IDLE;
            loop {
                if let Some(j) = pool.jobs.pop_front() {
                    job = j;
                    break;
                }
                let now = Instant::now();
                if now >= deadline || self.stopped.load(Ordering::Acquire) {
                    // Leave unless a job was promised to an idle worker meanwhile.
                    if pool.jobs.is_empty() {
                        pool.idle -= 1;
                        return;
                    }
                    continue;
                }
                pool = self
                    .pool_cv
                    .wait_timeout(pool, deadline - now)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
    }

    fn dispatch(self: &Arc<Self>, req: &[u8]) {
        let Ok((hdr, _)) = InHeader::read_from_prefix(req) else {
            tracing::warn!("short FUSE request ({} bytes) ignored", req.len());
            return;
        };
        let end = (hdr.len as usize).min(req.len());
        let body = req.get(size_of::<InHeader>()..end).unwrap_or(&[]);
        tracing::trace!(
            unique = hdr.unique,
            pid = hdr.pid,
            "FUSE {}",
            abi::opcode_name(hdr.opcode)
        );
        match hdr.opcode {
            opcode::INIT => self.init(&hdr, body),
            opcode::LOOKUP => self.lookup(&hdr, body),
            opcode::GETATTR => match self.attr(hdr.nodeid) {
                Some(attr) => self.reply(
                    hdr.unique,
                    &abi::AttrOut {
                        attr_valid: 3600,
                        attr,
                        ..Default::default()
                    },
                ),
                None => self.reply_err(hdr.unique, libc::ENOENT),
            },
            opcode::OPEN => self.open(&hdr),
            opcode::READ => self.read(&hdr, body),
            opcode::FLUSH => self.reply_err(hdr.unique, 0),
            opcode::RELEASE => self.release(&hdr, body),
            opcode::IOCTL => ioctl::handle(self, &hdr, body),
            opcode::INTERRUPT => {
                if let Ok((i, _)) = abi::InterruptIn::read_from_prefix(body) {
                    self.interrupt(i.unique);
                }
            }
            opcode::STATFS => self.reply(
                hdr.unique,
                &abi::StatfsOut {
                    bsize: 4096,
                    frsize: 4096,
                    namelen: 255,
                    files: 2,
                    ..Default::default()
                },
            ),
            opcode::FORGET | opcode::BATCH_FORGET => {} // no reply
            opcode::DESTROY => self.reply_err(hdr.unique, 0),
            _ => self.reply_err(hdr.unique, libc::ENOSYS),
        }
    }

    fn init(&self, hdr: &InHeader, body: &[u8]) {
        let Ok((i, _)) = abi::InitIn::read_from_prefix(body) else {
            return self.reply_err(hdr.unique, libc::EINVAL);
        };
        if i.major < abi::KERNEL_VERSION {
            tracing::error!("FUSE protocol {}.{} is too old", i.major, i.minor);
            return self.reply_err(hdr.unique, libc::EPROTO);
        }
        let minor = if i.major > abi::KERNEL_VERSION {
            0
        } else {
            i.minor.min(abi::KERNEL_MINOR)
        };
        let out = abi::InitOut {
            major: abi::KERNEL_VERSION,
            minor,
            max_readahead: i.max_readahead,
            flags: 0,
            max_background: 64,
            congestion_threshold: 48,
            max_write: MAX_WRITE,
            time_gran: 1,
            ..Default::default()
        };
        tracing::debug!(
            "FUSE INIT: kernel {}.{}, answering 7.{minor}",
            i.major,
            i.minor
        );
        self.reply(hdr.unique, &out);
    }

    fn attr(&self, nodeid: u64) -> Option<abi::Attr> {
        let (mode, nlink) = match nodeid {
            abi::ROOT_ID => (abi::S_IFDIR | 0o755, 2),
            FILE_ID => (self.file_mode, 1),
            _ => return None,
        };
        let gid = if nodeid == FILE_ID {
            self.gid
        } else {
            sys::euid_egid().1
        };
        Some(abi::Attr {
            ino: nodeid,
            mode,
            nlink,
            uid: self.uid,
            gid,
            blksize: 4096,
            ..Default::default()
        })
    }

    fn lookup(&self, hdr: &InHeader, body: &[u8]) {
        let name = body.split(|&b| b == 0).next().unwrap_or(&[]);
        if hdr.nodeid != abi::ROOT_ID || name != FILE_NAME {
            return self.reply_err(hdr.unique, libc::ENOENT);
        }
        let Some(attr) = self.attr(FILE_ID) else {
            return self.reply_err(hdr.unique, libc::ENOENT);
        };
        self.reply(
            hdr.unique,
            &abi::EntryOut {
                nodeid: FILE_ID,
                entry_valid: 3600,
                attr_valid: 3600,
                attr,
                ..Default::default()
            },
        );
    }

    fn open(self: &Arc<Self>, hdr: &InHeader) {
        if hdr.nodeid != FILE_ID {
            return self.reply_err(hdr.unique, libc::EISDIR);
        }
        let identity = match identify(hdr) {
            Ok(id) => id,
            Err(errno) => return self.reply_err(hdr.unique, errno),
        };
        let inst = match self.driver.open_instance(identity) {
            Ok(i) => i,
            Err(e) => return self.reply_err(hdr.unique, ioctl::errno_of(e)),
        };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let file = Arc::new(OpenFile {
            inst,
            dump: Mutex::new(Vec::new()),
            parked: Parking::default(),
            in_flight: Arc::default(),
            in_flight_warned: AtomicBool::new(false),
        });
        // Weak: the session and the file own the instance, not the other way round.
        let (ws, wf) = (Arc::downgrade(self), Arc::downgrade(&file));
        file.inst.set_waker(Box::new(move || {
            if let (Some(s), Some(f)) = (ws.upgrade(), wf.upgrade()) {
                f.kick(&s);
            }
        }));
        lock(&self.files).insert(fh, file);
        self.reply(
            hdr.unique,
            &abi::OpenOut {
                fh,
                open_flags: abi::FOPEN_DIRECT_IO | abi::FOPEN_NONSEEKABLE,
                backing_id: 0,
            },
        );
    }

    fn file(&self, fh: u64) -> Option<Arc<OpenFile>> {
        lock(&self.files).get(&fh).cloned()
    }

    fn read(&self, hdr: &InHeader, body: &[u8]) {
        let Ok((r, _)) = abi::ReadIn::read_from_prefix(body) else {
            return self.reply_err(hdr.unique, libc::EINVAL);
        };
        let Some(f) = self.file(r.fh) else {
            return self.reply_err(hdr.unique, libc::EBADF);
        };
        let mut dump = lock(&f.dump);
        if r.offset == 0 || dump.is_empty() {
            *dump = self.driver.dump().into_bytes();
        }
        let start = usize::try_from(r.offset)
            .unwrap_or(usize::MAX)
            .min(dump.len());
        let end = start.saturating_add(r.size as usize).min(dump.len());
        self.send(hdr.unique, 0, &[&dump[start..end]]);
    }

    fn release(&self, hdr: &InHeader, body: &[u8]) {
        let Ok((r, _)) = abi::ReleaseIn::read_from_prefix(body) else {
            return self.reply_err(hdr.unique, libc::EINVAL);
        };
        let f = lock(&self.files).remove(&r.fh);
        self.reply_err(hdr.unique, 0);
        if let Some(f) = f {
            for p in lock(&self.pending).values() {
                if Arc::ptr_eq(&p.inst, &f.inst) {
                    self.driver.cancel(&p.inst, &p.token);
                }
            }
            self.driver.release_instance(&f.inst);
        }
    }

    /// FUSE_INTERRUPT: cancel the request's wait; the worker answers (EINTR, or its
    /// result if it won the race). A wait that cannot be cancelled is answered with EINTR
    /// after [`INTERRUPT_GRACE`] by a watchdog.
    fn interrupt(self: &Arc<Self>, target: u64) {
        if self.unpark(target) {
            // Parked, not on a thread: answered here and now.
            self.finish(target, &Err(libc::EINTR));
            return;
        }
        let Some((token, inst)) = lock(&self.pending)
            .get(&target)
            .map(|p| (p.token.clone(), p.inst.clone()))
        else {
            return; // already answered
        };
        self.driver.cancel(&inst, &token);
        let s = self.clone();
        let _ = std::thread::Builder::new()
            .name("vchiqd-fuse-intr".into())
            .stack_size(THREAD_STACK)
            .spawn(move || {
                let deadline = Instant::now() + INTERRUPT_GRACE;
                let mut g = lock(&s.pending);
                while g.contains_key(&target) {
                    let now = Instant::now();
                    if now >= deadline {
                        g.remove(&target);
                        drop(g);
                        tracing::debug!(
                            "request {target} did not notice its interrupt: answering EINTR"
                        );
                        s.reply_err(target, libc::EINTR);
                        return;
                    }
                    g = s
                        .pending_cv
                        .wait_timeout(g, deadline - now)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
            });
    }
}

/// The opener's identity: its TGID (the request carries the calling thread's TID), pinned
/// with a pidfd.
fn identify(hdr: &InHeader) -> Result<ClientIdentity, i32> {
    if hdr.pid == 0 {
        tracing::warn!(
            "refusing an open from a process outside the daemon's PID namespace; run vchiqd in the initial PID namespace"
        );
        return Err(libc::EPERM);
    }
    let tgid = tgid_of(hdr.pid).ok_or(libc::ESRCH)?;
    let pidfd = crate::sys::pidfd_open(tgid as i32).map_err(|_| libc::ESRCH)?;
    Ok(ClientIdentity::describe(
        tgid,
        hdr.uid,
        hdr.gid,
        Some(pidfd),
        PinMethod::PidfdOpen,
    ))
}

/// The thread group of a thread, from `/proc/<tid>/status`.
pub(crate) fn tgid_of(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_maps_to_its_process() {
        let pid = std::process::id();
        assert_eq!(tgid_of(pid), Some(pid));
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            tx.send(crate::sys::gettid()).unwrap();
            let _ = done_rx.recv();
        });
        let tid = rx.recv().unwrap() as u32;
        assert_ne!(tid, pid);
        assert_eq!(tgid_of(tid), Some(pid));
        done_tx.send(()).unwrap();
        t.join().unwrap();
        assert_eq!(tgid_of(0), None);
    }

    /// One FUSE request from this thread, as the kernel would write it.
    fn request(opcode: u32, unique: u64, nodeid: u64, body: &[u8]) -> Vec<u8> {
        let hdr = InHeader {
            len: (size_of::<InHeader>() + body.len()) as u32,
            opcode,
            unique,
            nodeid,
            pid: crate::sys::gettid() as u32,
            ..Default::default()
        };
        let mut r = hdr.as_bytes().to_vec();
        r.extend_from_slice(body);
        r
    }

    fn ioctl(fh: u64, unique: u64, cmd: vchiq_abi::Ioctl, data: &[u8]) -> Vec<u8> {
        let io = abi::IoctlIn {
            fh,
            flags: 0,
            cmd: cmd.number(vchiq_abi::Layout::Lp64),
            arg: 0,
            in_size: data.len() as u32,
            out_size: data.len() as u32,
        };
        let mut body = io.as_bytes().to_vec();
        body.extend_from_slice(data);
        request(opcode::IOCTL, unique, FILE_ID, &body)
    }

    /// Waits for the reply to `unique` (other replies are kept in `seen`).
    fn reply_to(
        node: &mut fuzzing::Node,
        seen: &mut Vec<fuzzing::Reply>,
        unique: u64,
    ) -> fuzzing::Reply {
        let t0 = Instant::now();
        loop {
            seen.extend(node.replies().unwrap());
            if let Some(i) = seen.iter().position(|r| r.unique == unique) {
                return seen.remove(i);
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "no reply to {unique}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn an_opener_past_its_request_limit_gets_eagain_and_the_others_are_served() {
        let limits = crate::limits::Limits {
            node_requests_per_opener: 4,
            ..Default::default()
        };
        let harness = crate::server::fuzzing::Harness::new(limits).unwrap();
        let driver = harness.driver().clone();
        let mut node = fuzzing::Node::new(driver.clone()).unwrap();
        let mut seen = Vec::new();
        let open = |node: &mut fuzzing::Node, seen: &mut Vec<fuzzing::Reply>, unique| {
            node.request(&request(opcode::OPEN, unique, FILE_ID, &[0u8; 8]));
            let r: fuzzing::Reply = reply_to(node, seen, unique);
            assert_eq!(r.error, 0);
            let fh = u64::from_le_bytes(r.payload[..8].try_into().unwrap());
            node.request(&ioctl(fh, unique + 1, vchiq_abi::Ioctl::Connect, &[]));
            assert_eq!(reply_to(node, seen, unique + 1).error, 0);
            fh
        };
        let a = open(&mut node, &mut seen, 1);
        let b = open(&mut node, &mut seen, 3);
        // Completion arrays in this process's memory (never written: nothing completes).
        let records = vec![0u8; 4 * 32];
        let wait = vchiq_abi::args::AwaitCompletionArgs {
            count: 4,
            buf: records.as_ptr() as u64,
            msgbufsize: 0,
            msgbufcount: 0,
            msgbufs: 0,
        }
        .encode(vchiq_abi::Layout::Lp64);
        // Four AWAIT_COMPLETIONs of A wait (parked): its limit.
        for u in 10..14 {
            node.request(&ioctl(a, u, vchiq_abi::Ioctl::AwaitCompletion, &wait));
        }
        assert_eq!(node.pending(), 4);
        // The fifth fails at once with EAGAIN, and is not held.
        node.request(&ioctl(a, 14, vchiq_abi::Ioctl::AwaitCompletion, &wait));
        assert_eq!(reply_to(&mut node, &mut seen, 14).error, -libc::EAGAIN);
        assert_eq!(node.pending(), 4);
        // B is not limited by A's requests.
        node.request(&ioctl(b, 20, vchiq_abi::Ioctl::AwaitCompletion, &wait));
        assert_eq!(node.pending(), 5);
        assert!(seen.iter().all(|r| r.unique != 20), "B's request waits");
        // Once one of A's is answered (interrupted), A may wait again.
        let interrupt = abi::InterruptIn { unique: 10 };
        node.request(&request(
            opcode::INTERRUPT,
            15,
            FILE_ID,
            interrupt.as_bytes(),
        ));
        assert_eq!(reply_to(&mut node, &mut seen, 10).error, -libc::EINTR);
        node.request(&ioctl(a, 16, vchiq_abi::Ioctl::AwaitCompletion, &wait));
        assert_eq!(node.pending(), 5);
        assert!(
            seen.iter().all(|r| r.unique != 16),
            "A's request waits again"
        );
        node.end();
        assert_eq!(driver.instance_count(), 0);
        drop(records);
    }

    #[test]
    fn requests_from_invisible_processes_are_refused() {
        let hdr = InHeader {
            pid: 0,
            ..Default::default()
        };
        assert_eq!(identify(&hdr).err(), Some(libc::EPERM));
        let hdr = InHeader {
            pid: std::process::id(),
            ..Default::default()
        };
        let id = identify(&hdr).unwrap();
        assert_eq!(id.client_id, std::process::id());
        assert!(id.alive());
    }
}
