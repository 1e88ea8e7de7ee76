//! [`Instance`]: one connection to the driver, its service table and its threads.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{JoinHandle, ThreadId};

use vchiq_abi::common::Config;
use vchiq_abi::defs::{
    VCHIQ_MAX_INSTANCE_SERVICES, VCHIQ_VERSION, VCHIQ_VERSION_LIB_VERSION, VCHIQ_VERSION_MIN,
};
use vchiq_abi::wire::{
    self, CreateServiceRequest, HelloRequest, HelloResponse, Op, PROTOCOL_VERSION,
};
use zerocopy::{FromBytes, IntoBytes};

use crate::completion::{self, PumpState};
use crate::error::{Error, Result};
use crate::native::NativeTransport;
use crate::service::{Handler, Phase, Service, ServiceInner, ServiceParams, SvcState};
use crate::sys;
use crate::transport::{Request, Response, SocketTransport, Transport};

/// What the daemon attested about this connection in HELLO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloInfo {
    /// The instance's client id: this process's PID as the kernel reported it to the
    /// daemon (its global TGID). The library never sends a PID of its own.
    pub client_id: u32,
    /// The daemon's instance number (as `vchiq status` shows it).
    pub instance: u32,
    /// The uid the kernel reported.
    pub uid: u32,
    /// Inode of this process's PID namespace as the daemon read it (0 if unknown).
    pub pid_namespace: u64,
    /// The daemon's socket protocol version.
    pub protocol_version: u32,
}

/// The state shared by an instance's clones, its services and its completion thread.
pub(crate) struct Core {
    pub transport: Box<dyn Transport>,
    pub hello: HelloInfo,
    pub path: PathBuf,
    /// The transport is ioctls on a device file (not vchiqd's socket).
    pub device: bool,
    /// The client id learnt from GET_CLIENT_ID on a device whose HELLO could not know it.
    client_id: AtomicU32,
    /// LIB_VERSION(8) was accepted: CLOSE/REMOVE wait for CLOSE_DELIVERED.
    pub close_delivered: bool,
    /// Live services by the userdata given at CREATE_SERVICE.
    services: Mutex<HashMap<u64, Arc<ServiceInner>>>,
    next_userdata: AtomicU64,
    /// The completion thread's queue of received, undispatched records and its message
    /// buffers; only that thread touches it, the mutex just makes that checkable.
    pub pump: Mutex<PumpState>,
    completion: Mutex<Option<JoinHandle<()>>>,
    pub completion_thread: OnceLock<ThreadId>,
    shut: AtomicBool,
    /// Bulk buffers whose address a native driver may still hold; freed with the core,
    /// i.e. after `transport` (declared first, so dropped first) has closed the device.
    retired: Mutex<Vec<Box<[u8]>>>,
    /// Memfds of finished BLOCKING bulks, kept for the next ones: their pages stay
    /// allocated, so a transfer does not pay for fresh ones (at most
    /// [`MEMFD_CACHE_BYTES`] in all).
    memfds: Mutex<Vec<(std::fs::File, usize)>>,
}

/// Bytes of bulk memfds an instance keeps for reuse.
const MEMFD_CACHE_BYTES: usize = 32 << 20;

impl Core {
    /// A cached bulk memfd of at least `len` bytes, if one is free.
    pub fn take_memfd(&self, len: usize) -> Option<std::fs::File> {
        let mut c = self.memfds.lock().unwrap_or_else(PoisonError::into_inner);
        // The smallest that fits.
        let i = c
            .iter()
            .enumerate()
            .filter(|(_, (_, size))| *size >= len)
            .min_by_key(|(_, (_, size))| *size)
            .map(|(i, _)| i)?;
        Some(c.swap_remove(i).0)
    }

    /// Gives back a memfd the driver is done with (a BLOCKING bulk that returned).
    pub fn keep_memfd(&self, file: std::fs::File, size: usize) {
        let mut c = self.memfds.lock().unwrap_or_else(PoisonError::into_inner);
        let held: usize = c.iter().map(|(_, s)| s).sum();
        if held + size <= MEMFD_CACHE_BYTES {
            c.push((file, size));
        }
    }

    /// Keeps `bufs` until the device is closed (see `retired`).
    pub fn retire(&self, bufs: Vec<Box<[u8]>>) {
        self.retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(bufs);
    }

    pub fn table(&self) -> MutexGuard<'_, HashMap<u64, Arc<ServiceInner>>> {
        // Only inserts and removes happen under this lock.
        self.services.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn lock_pump(&self) -> MutexGuard<'_, PumpState> {
        self.pump.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The service a completion names.
    pub fn lookup(&self, userdata: u64) -> Option<Arc<ServiceInner>> {
        self.table().get(&userdata).cloned()
    }

    /// Whether the caller runs on this instance's completion thread (inside a callback).
    pub fn on_completion_thread(&self) -> bool {
        self.completion_thread.get() == Some(&std::thread::current().id())
    }

    /// A QUEUE_MESSAGE: posted where the transport streams messages (the daemon socket),
    /// else a [`Core::call`].
    pub fn post(&self, req: &Request<'_>) -> Result<()> {
        if self.transport.post(req)? {
            return Ok(());
        }
        self.call(req).map(drop)
    }

    /// A request whose failure is an error, re-issued on `EINTR` as libvchiq_arm's RETRY
    /// macro does.
    pub fn call(&self, req: &Request<'_>) -> Result<Response> {
        loop {
            let resp = self.transport.call(req)?;
            if resp.result == -i64::from(libc::EINTR) {
                continue;
            }
            resp.check(req.op)?;
            return Ok(resp);
        }
    }

    /// CLOSE_SERVICE or REMOVE_SERVICE of `svc`. On the completion thread this cannot just
    /// wait: the driver holds the call until CLOSE_DELIVERED, which only this thread sends;
    /// see [`completion::close_from_callback`].
    pub fn close_or_remove(&self, svc: &Arc<ServiceInner>, op: Op, handle: u32) -> Result<()> {
        if self.close_delivered && self.on_completion_thread() {
            let resp = completion::close_from_callback(self, svc, op, handle)?;
            resp.check(op)?;
            Ok(())
        } else {
            self.call(&Request::value(op, u64::from(handle)))?;
            Ok(())
        }
    }

    /// Drops a closed client or removed service from the table: its handle is stale.
    pub fn forget(&self, svc: &Arc<ServiceInner>) {
        self.table().remove(&svc.userdata);
        svc.invalidate();
        svc.end_events();
    }

    fn create(
        self: &Arc<Self>,
        params: ServiceParams,
        handler: Handler,
        is_open: bool,
    ) -> Result<Service> {
        let is_vchi = matches!(handler, Handler::Queue);
        let userdata = self.next_userdata.fetch_add(1, Ordering::Relaxed);
        let inner = Arc::new(ServiceInner {
            core: Arc::clone(self),
            fourcc: params.fourcc,
            userdata,
            is_open,
            handler,
            state: Mutex::new(SvcState {
                handle: 0,
                phase: Phase::Creating,
                events: Default::default(),
                rx_bulks: Default::default(),
                next_rx_id: 0,
                kept: Default::default(),
                ended: false,
                fetched: Default::default(),
            }),
            cv: Condvar::new(),
            rx_order: Mutex::new(()),
            dequeue_order: Mutex::new(()),
        });
        {
            // In the table before CREATE_SERVICE is sent: its first completions (OPENED, a
            // message right after OPENACK) may overtake the response.
            let mut table = self.table();
            if table.len() >= VCHIQ_MAX_INSTANCE_SERVICES {
                return Err(Error::TooManyServices {
                    max: VCHIQ_MAX_INSTANCE_SERVICES,
                });
            }
            table.insert(userdata, Arc::clone(&inner));
        }
        let req = CreateServiceRequest {
            fourcc: params.fourcc.0,
            version: params.version,
            version_min: params.version_min,
            is_open: u32::from(is_open),
            is_vchi: u32::from(is_vchi),
            userdata,
        };
        let created = self
            .call(&Request::with(Op::CreateService, &[req.as_bytes()]))
            .and_then(|resp| match u32::try_from(resp.result) {
                Ok(h) if h != 0 => Ok(h),
                _ => Err(Error::Protocol(format!(
                    "CREATE_SERVICE returned handle {}",
                    resp.result
                ))),
            });
        match created {
            Ok(handle) => {
                inner.set_created(Some(handle));
                Ok(Service { inner })
            }
            Err(e) => {
                self.table().remove(&userdata);
                inner.set_created(None);
                Err(e)
            }
        }
    }

    /// libvchiq_arm's last `vchiq_shutdown`: REMOVE every service, SHUTDOWN, join the
    /// completion thread, close the connection. Idempotent.
    fn shutdown(&self) -> Result<()> {
        if self.shut.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // In creation order, as libvchiq_arm walks its table.
        let mut services: Vec<Arc<ServiceInner>> = self.table().values().cloned().collect();
        services.sort_by_key(|s| s.userdata);
        for svc in &services {
            let handle = svc.lock().handle;
            match self.close_or_remove(svc, Op::RemoveService, handle) {
                Err(Error::Closed) => break,
                _ => self.forget(svc),
            }
        }
        let result = match self.call(&Request::value(Op::Shutdown, 0)) {
            Ok(_) | Err(Error::Closed) => Ok(()),
            Err(e) => Err(e),
        };
        // SHUTDOWN makes the pending AWAIT_COMPLETION return 0, so the thread ends. On the
        // completion thread itself (the last Instance dropped in a callback) it cannot be
        // joined; it ends when the callback returns.
        let thread = self
            .completion
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
        self.transport.close();
        let rest: Vec<Arc<ServiceInner>> = self.table().drain().map(|(_, s)| s).collect();
        for svc in services.iter().chain(&rest) {
            svc.invalidate();
            svc.end_events();
        }
        result
    }
}

/// One connection to the driver: libvchiq_arm's `VCHIQ_INSTANCE_T`.
///
/// Cheap to clone; the last clone to be dropped shuts the instance down (best effort).
#[derive(Clone)]
pub struct Instance {
    handle: Arc<InstanceHandle>,
}

/// Shuts the instance down when the last [`Instance`] clone goes.
struct InstanceHandle {
    core: Arc<Core>,
}

impl Drop for InstanceHandle {
    fn drop(&mut self) {
        let _ = self.core.shutdown();
    }
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("socket", &self.core().path)
            .field("hello", &self.core().hello)
            .finish()
    }
}

impl Instance {
    /// Connects to the driver the way a program on a Raspberry Pi would, or to vchiqd:
    ///
    /// - with `$VCHIQ_SOCKET` set (non-empty), to vchiqd's socket there;
    /// - else, when [`DEVICE_PATH`](Self::DEVICE_PATH) (`/dev/vchiq`) exists, through the
    ///   native transport ([`open_device`](Self::open_device)): the kernel driver, or a
    ///   node served by `vchiq daemon --dev-node`;
    /// - else to vchiqd's socket at the default path for this user
    ///   ([`vchiq_abi::wire::default_socket_path`]); see [`connect_to`](Self::connect_to).
    pub fn connect() -> Result<Instance> {
        let socket_set = std::env::var_os(wire::SOCKET_ENV).is_some_and(|p| !p.is_empty());
        if !socket_set && Path::new(Self::DEVICE_PATH).exists() {
            return Instance::open_device(Self::DEVICE_PATH);
        }
        Instance::connect_to(wire::default_socket_path(sys::geteuid()))
    }

    /// The device file [`connect`](Self::connect) uses when it exists.
    pub const DEVICE_PATH: &str = "/dev/vchiq";

    /// Opens the VCHIQ device file at `path` (the kernel's `/dev/vchiq`, or a node served
    /// by `vchiq daemon --dev-node PATH`) and sets the instance up over ioctls, as
    /// libvchiq_arm does: GET_CONFIG, LIB_VERSION(8), CONNECT, then the completion thread.
    /// Bulk data is passed to the driver by address, never copied through a memfd.
    ///
    /// [`client_id`](Self::client_id) is `getpid()` in the initial PID namespace; in
    /// another one it is unknown (0) until a service exists, then GET_CLIENT_ID of it.
    ///
    /// # Errors
    /// [`Error::DeviceNotFound`], [`Error::PermissionDenied`] or [`Error::DeviceOpen`]
    /// when the file cannot be opened; [`Error::IncompatibleDriver`] when the versions do
    /// not fit; `Ioctl` errors from CONNECT.
    pub fn open_device(path: impl AsRef<Path>) -> Result<Instance> {
        let path = path.as_ref().to_path_buf();
        let transport = Box::new(NativeTransport::open(&path)?);
        Instance::from_transport(transport, path.clone(), true).map_err(|e| match e {
            // Not a VCHIQ device at all (a regular file, /dev/null, ...).
            Error::Ioctl {
                errno: libc::ENOTTY,
                ..
            } => Error::DeviceOpen {
                path,
                source: std::io::Error::from_raw_os_error(libc::ENOTTY),
            },
            e => e,
        })
    }

    /// Connects to vchiqd at `path` and sets the instance up as libvchiq_arm does: HELLO,
    /// GET_CONFIG (refusing an incompatible driver), LIB_VERSION(8) when the driver has
    /// close-delivered, CONNECT; then starts the completion thread.
    ///
    /// # Errors
    /// [`Error::DaemonNotRunning`], [`Error::PermissionDenied`] and [`Error::Connect`] when
    /// the socket cannot be reached; [`Error::IncompatibleDaemon`] or
    /// [`Error::IncompatibleDriver`] when the versions do not fit.
    pub fn connect_to(path: impl AsRef<Path>) -> Result<Instance> {
        let path = path.as_ref().to_path_buf();
        let sock =
            sys::connect_seqpacket(&path).map_err(|e| Error::from_connect(path.clone(), e))?;
        Instance::from_socket(sock, path)
    }

    /// Sets up an instance over an already connected `SOCK_SEQPACKET` socket (for
    /// in-process daemons and socket activation). `path` is only reported.
    pub fn from_socket(sock: OwnedFd, path: impl Into<PathBuf>) -> Result<Instance> {
        let transport = Box::new(SocketTransport::new(sock)?);
        Instance::from_transport(transport, path.into(), false)
    }

    fn from_transport(
        transport: Box<dyn Transport>,
        path: PathBuf,
        device: bool,
    ) -> Result<Instance> {
        let result = handshake(&*transport);
        let (hello, close_delivered) = match result {
            Ok(v) => v,
            Err(e) => {
                transport.close();
                return Err(e);
            }
        };
        let core = Arc::new(Core {
            transport,
            hello,
            client_id: AtomicU32::new(hello.client_id),
            path,
            device,
            close_delivered,
            services: Mutex::new(HashMap::new()),
            next_userdata: AtomicU64::new(1),
            pump: Mutex::new(PumpState::default()),
            completion: Mutex::new(None),
            completion_thread: OnceLock::new(),
            shut: AtomicBool::new(false),
            retired: Mutex::new(Vec::new()),
            memfds: Mutex::new(Vec::new()),
        });
        let thread = {
            let core = Arc::clone(&core);
            std::thread::Builder::new()
                .name("vchiq-completion".into())
                .spawn(move || completion::run(&core))
        };
        match thread {
            Ok(t) => {
                let _ = core.completion_thread.set(t.thread().id());
                *core
                    .completion
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(t);
            }
            Err(e) => {
                core.transport.close();
                return Err(Error::Io(e));
            }
        }
        Ok(Instance {
            handle: Arc::new(InstanceHandle { core }),
        })
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.handle.core
    }

    /// The instance's client id, as the daemon attests it (the kernel-reported PID).
    ///
    /// On a device ([`open_device`](Self::open_device)) outside the initial PID namespace
    /// the driver's view cannot be known before a service exists: this is 0 until then,
    /// and afterwards GET_CLIENT_ID of the oldest live service (asked once).
    pub fn client_id(&self) -> u32 {
        let core = self.core();
        let known = core.client_id.load(Ordering::Relaxed);
        if known != 0 || !core.device {
            return known;
        }
        let mut services: Vec<Arc<ServiceInner>> = core.table().values().cloned().collect();
        services.sort_by_key(|s| s.userdata);
        for svc in services {
            let handle = svc.lock().handle;
            if handle == 0 {
                continue;
            }
            let id = core
                .transport
                .call(&Request::value(Op::GetClientId, u64::from(handle)))
                .ok()
                .and_then(|r| u32::try_from(r.result).ok())
                .unwrap_or(0);
            if id != 0 {
                core.client_id.store(id, Ordering::Relaxed);
                return id;
            }
        }
        0
    }

    /// Everything HELLO reported (with [`client_id`](Self::client_id) as known now). On a
    /// device HELLO is answered by the library itself: `instance` is 0 and
    /// `protocol_version` is the one this library speaks.
    pub fn hello(&self) -> HelloInfo {
        HelloInfo {
            client_id: self.client_id(),
            ..self.core().hello
        }
    }

    /// Whether this instance talks to a device file (ioctls) rather than vchiqd's socket.
    pub fn is_device(&self) -> bool {
        self.core().device
    }

    /// The socket (or, for [`open_device`](Self::open_device), the device file) this
    /// instance is connected to.
    pub fn socket_path(&self) -> &Path {
        &self.core().path
    }

    /// Opens a client service (CREATE_SERVICE with `is_open = 1`): the VideoCore must have
    /// a server for the fourcc that accepts the version. The driver sends this instance's
    /// attested client id in OPEN.
    ///
    /// # Errors
    /// `Ioctl` EIO when the VideoCore refuses (no such service, version mismatch).
    pub fn open_service(&self, params: ServiceParams, handler: Handler) -> Result<Service> {
        self.core().create(params, handler, true)
    }

    /// Adds a server (CREATE_SERVICE with `is_open = 0`); [`Event::Opened`](crate::Event)
    /// reports a remote client connecting.
    ///
    /// # Errors
    /// `Ioctl` EEXIST when another instance serves the fourcc.
    pub fn add_service(&self, params: ServiceParams, handler: Handler) -> Result<Service> {
        self.core().create(params, handler, false)
    }

    /// GET_CONFIG: the driver's limits and versions.
    pub fn config(&self) -> Result<Config> {
        get_config(&*self.core().transport)
    }

    /// The driver's state dump (what `read()` on `/dev/vchiq` returns).
    pub fn status(&self) -> Result<String> {
        let resp = self.core().call(&Request::value(Op::Status, 0))?;
        Ok(String::from_utf8_lossy(&resp.payload).into_owned())
    }

    /// Removes every service, SHUTDOWN, joins the completion thread and closes the
    /// connection, whatever other clones exist. Dropping the last clone does the same,
    /// ignoring errors.
    pub fn shutdown(self) -> Result<()> {
        self.core().shutdown()
    }
}

/// The daemon's state dump (`vchiq status`), without setting up an instance: only HELLO
/// and STATUS, so that it works even when the VideoCore is lost and CONNECT would fail.
///
/// # Errors
/// As [`Instance::connect_to`] for reaching the socket; [`Error::Closed`] or
/// [`Error::Protocol`] when the daemon does not answer.
pub fn daemon_status(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref().to_path_buf();
    let sock = sys::connect_seqpacket(&path).map_err(|e| Error::from_connect(path.clone(), e))?;
    let transport = SocketTransport::new(sock)?;
    let hello = HelloRequest {
        version: PROTOCOL_VERSION,
        flags: 0,
    };
    let result = transport
        .call(&Request::with(Op::Hello, &[hello.as_bytes()]))
        .and_then(|r| r.check(Op::Hello))
        .and_then(|_| transport.call(&Request::value(Op::Status, 0)));
    transport.close();
    let resp = result?;
    resp.check(Op::Status)?;
    Ok(String::from_utf8_lossy(&resp.payload).into_owned())
}

/// HELLO, GET_CONFIG, LIB_VERSION, CONNECT. Returns the attested identity and whether
/// close-delivered is on.
fn handshake(t: &dyn Transport) -> Result<(HelloInfo, bool)> {
    let hello = HelloRequest {
        version: PROTOCOL_VERSION,
        flags: 0,
    };
    let resp = t.call(&Request::with(Op::Hello, &[hello.as_bytes()]))?;
    let theirs = HelloResponse::read_from_prefix(&resp.payload)
        .ok()
        .map(|(h, _)| h);
    if resp.result == -i64::from(libc::EPROTO) {
        let theirs = theirs.map_or(0, |h| h.version);
        return Err(Error::IncompatibleDaemon {
            ours: PROTOCOL_VERSION,
            theirs,
        });
    }
    resp.check(Op::Hello)?;
    let h = theirs.ok_or_else(|| {
        Error::Protocol(format!("HELLO response of {} bytes", resp.payload.len()))
    })?;
    if h.version != PROTOCOL_VERSION {
        return Err(Error::IncompatibleDaemon {
            ours: PROTOCOL_VERSION,
            theirs: h.version,
        });
    }
    let hello = HelloInfo {
        client_id: h.client_id,
        instance: h.instance,
        uid: h.uid,
        pid_namespace: h.pid_namespace,
        protocol_version: h.version,
    };

    let config = get_config(t)?;
    if config.version < VCHIQ_VERSION_MIN as i16 || config.version_min > VCHIQ_VERSION as i16 {
        return Err(Error::IncompatibleDriver {
            version: config.version,
            version_min: config.version_min,
        });
    }
    let close_delivered = config.version >= VCHIQ_VERSION_LIB_VERSION as i16;
    if close_delivered {
        t.call(&Request::value(Op::LibVersion, u64::from(VCHIQ_VERSION)))?
            .check(Op::LibVersion)?;
    }
    t.call(&Request::value(Op::Connect, 0))?
        .check(Op::Connect)?;
    Ok((hello, close_delivered))
}

/// GET_CONFIG with `config_size` 20.
fn get_config(t: &dyn Transport) -> Result<Config> {
    let size = size_of::<Config>();
    let resp = t.call(&Request::value(Op::GetConfig, size as u64))?;
    resp.check(Op::GetConfig)?;
    Config::read_from_prefix(&resp.payload)
        .map(|(c, _)| c)
        .map_err(|_| {
            Error::Protocol(format!(
                "GET_CONFIG returned {} of {size} bytes",
                resp.payload.len()
            ))
        })
}
