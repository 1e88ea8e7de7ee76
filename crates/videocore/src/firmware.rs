//! The firmware: the service registry that ties the link to the service engines.
//!
//! The VideoCore is the *master* side of the link. At start it registers listeners for
//! every service it offers and connects. The services run on the link's handler thread,
//! the one that drained the slots, in link order: a message costs no hand-off to a
//! worker. No service ever waits on a client (replies that do not fit wait in a
//! per-connection outbox that the `vc-outbox` thread flushes; bulks past the per-service
//! limit are refused), so that thread is never held by one client. A connection's client
//! id is the one the driver attested in OPEN; the firmware records it for every
//! connection and uses it to route KHAN notifications.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use vchiq_abi::fourcc::FourCc;
use vchiq_link::doorbell::EventFd;
use vchiq_link::shm::SharedMemory;
use vchiq_link::{Link, ServiceEvent, ServiceHandle, ServiceHandler, ServiceParams};

use crate::dispmanx::Dispmanx;
use crate::gencmd::{BoardInfo, GenCmd};
use crate::khrn::{Channel, KhrnHost, KhrnServer};
use crate::testsvc::{EchoState, Fun2State, FuncState};
use crate::tvservice::TvService;
use crate::vclog::VcLog;

/// The VideoCore's side of the link.
pub type VcLink = Link<Arc<SharedMemory>, Arc<EventFd>>;

/// The fourcc of the debug service (`vchiq log`, `vchiq snapshot`, diagnostics): the
/// software VideoCore's stand-in for what `vcdbg` reads from VideoCore memory.
pub const VCDB: FourCc = FourCc::new(b"VCDB");

/// Where composed frames go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisplayOutput {
    /// Nowhere (the framebuffer is still kept for snapshots).
    None,
    /// A PNG of every `every`-th presented frame in `dir` (`frame-000001.png`, ...).
    Png {
        /// Directory.
        dir: PathBuf,
        /// Keep one frame in this many.
        every: u32,
    },
}

impl fmt::Display for DisplayOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisplayOutput::None => write!(f, "none"),
            DisplayOutput::Png { dir, every: 1 } => write!(f, "png:{}", dir.display()),
            DisplayOutput::Png { dir, every } => write!(f, "png:{}:{every}", dir.display()),
        }
    }
}

impl FromStr for DisplayOutput {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "none" {
            return Ok(DisplayOutput::None);
        }
        let Some(rest) = s.strip_prefix("png:") else {
            return Err(format!(
                "unknown display output '{s}': use 'none' or 'png:DIR[:EVERY]'"
            ));
        };
        let (dir, every) = match rest.rsplit_once(':') {
            Some((d, n)) if n.parse::<u32>().is_ok() => (d, n.parse::<u32>().unwrap_or(1)),
            _ => (rest, 1),
        };
        if dir.is_empty() || every == 0 {
            return Err(format!(
                "bad display output '{s}': expected png:DIR or png:DIR:EVERY with EVERY >= 1"
            ));
        }
        Ok(DisplayOutput::Png {
            dir: dir.into(),
            every,
        })
    }
}

/// VideoCore options.
#[derive(Clone, Debug)]
pub struct VideoCoreOptions {
    /// Display width (default 1920).
    pub display_width: u32,
    /// Display height (default 1080).
    pub display_height: u32,
    /// Where composed frames go (None = [`DisplayOutput::None`]).
    pub display_output: Option<DisplayOutput>,
    /// `echo` servers, one connection each (default 8, as the Broadcom test server;
    /// benchmarks and soak tests with many concurrent clients raise it).
    pub echo_listeners: usize,
}

impl Default for VideoCoreOptions {
    fn default() -> Self {
        VideoCoreOptions {
            display_width: 1920,
            display_height: 1080,
            display_output: None,
            echo_listeners: 8,
        }
    }
}

/// Why the VideoCore could not start.
#[derive(Debug, thiserror::Error)]
pub enum VideoCoreError {
    /// A link operation failed.
    #[error("link: {0}")]
    Link(#[from] vchiq_link::Error),
    /// A thread could not be started.
    #[error("cannot start a VideoCore thread: {0}")]
    Thread(#[from] std::io::Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Gcmd,
    Disp,
    Updh,
    Tvsv,
    Tvnt,
    Cecs,
    Cecn,
    Khan,
    Khrn,
    Khhn,
    Echo,
    Func,
    Fun2,
    Vcdb,
}

impl Kind {
    const ALL: [Kind; 14] = [
        Kind::Gcmd,
        Kind::Disp,
        Kind::Updh,
        Kind::Tvsv,
        Kind::Tvnt,
        Kind::Cecs,
        Kind::Cecn,
        Kind::Khan,
        Kind::Khrn,
        Kind::Khhn,
        Kind::Echo,
        Kind::Func,
        Kind::Fun2,
        Kind::Vcdb,
    ];

    fn params(self) -> ServiceParams {
        let (fourcc, version, version_min) = match self {
            Kind::Gcmd => (FourCc::GCMD, 1, 1),
            Kind::Disp => (FourCc::DISP, 1, 1),
            Kind::Updh => (FourCc::UPDH, 1, 1),
            Kind::Tvsv => (FourCc::TVSV, 1, 1),
            Kind::Tvnt => (FourCc::TVNT, 1, 1),
            Kind::Cecs => (FourCc::CECS, 1, 1),
            Kind::Cecn => (FourCc::CECN, 1, 1),
            Kind::Khan => (FourCc::KHAN, 1, 1),
            Kind::Khrn => (FourCc::KHRN, 1, 1),
            Kind::Khhn => (FourCc::KHHN, 1, 1),
            Kind::Echo => (FourCc::ECHO, 3, 3),
            // FUNC accepts exactly peer version 3 of 0..=4 (vchiq_test -f, spec §5.3).
            Kind::Func => (FourCc::FUNC, 3, 2),
            Kind::Fun2 => (FourCc::FUN2, 3, 3),
            Kind::Vcdb => (VCDB, 1, 1),
        };
        ServiceParams {
            fourcc,
            version,
            version_min,
        }
    }

    /// Fixed listener counts; `None` = a pool that always keeps one listener free.
    fn fixed_listeners(self, options: &VideoCoreOptions) -> Option<usize> {
        match self {
            Kind::Echo => Some(options.echo_listeners.max(1)),
            Kind::Func => Some(2),
            _ => None,
        }
    }
}

/// A connection to one of the VideoCore's services.
#[derive(Clone, Debug)]
pub struct Connection {
    /// The service's fourcc.
    pub fourcc: FourCc,
    /// The client id the driver attested in OPEN.
    pub client_id: u32,
    /// The link handle.
    pub handle: ServiceHandle,
}

struct Dispatch {
    kind: Kind,
    /// Weak: the link owns its handlers and the firmware owns the link.
    fw: std::sync::Weak<Firmware>,
}

impl ServiceHandler for Dispatch {
    /// Runs the service on the thread that drained the link: no hand-off, no second
    /// wake-up. Services never wait (replies that do not fit go to the outbox, bulks past
    /// the limit are refused), so this thread is never held by a client.
    fn event(&self, service: ServiceHandle, event: ServiceEvent) {
        // After the firmware stopped the event is dropped (and a message in it released).
        if let Some(fw) = self.fw.upgrade() {
            if !fw.stopping.load(std::sync::atomic::Ordering::Acquire) {
                fw.on_event(self.kind, service, event);
            }
        }
    }
}

/// Mutable firmware state shared by the services.
struct State {
    conns: HashMap<ServiceHandle, Connection>,
    khan: HashMap<u32, ServiceHandle>,
    updh: HashMap<u32, ServiceHandle>,
    khrn: HashMap<u32, KhrnServer>,
    disp_pending_bulk: HashMap<u64, crate::dispmanx::BulkTarget>,
    frames: u64,
    echo: HashMap<ServiceHandle, EchoState>,
    func: HashMap<ServiceHandle, FuncState>,
    fun2: HashMap<ServiceHandle, Fun2State>,
    khan_posts: u64,
    khan_dropped: u64,
}

/// The firmware's shared core.
pub struct Firmware {
    link: VcLink,
    log: VcLog,
    options: VideoCoreOptions,
    display: Mutex<Dispmanx>,
    gencmd: Mutex<GenCmd>,
    tv: Mutex<TvService>,
    state: Mutex<State>,
    outbox: Mutex<HashMap<ServiceHandle, std::collections::VecDeque<Vec<u8>>>>,
    outbox_cv: std::sync::Condvar,
    stopping: std::sync::atomic::AtomicBool,
}

/// Messages that may wait for one connection before further ones are dropped.
const OUTBOX_LIMIT: usize = 4096;

/// A running software VideoCore.
pub struct VideoCore {
    fw: Arc<Firmware>,
    workers: Vec<JoinHandle<()>>,
    connector: Option<JoinHandle<()>>,
}

impl VideoCore {
    /// Registers every service on the (already initialised) master side of the link,
    /// starts the outbox flusher and connects in the background.
    pub fn start(link: VcLink, options: VideoCoreOptions) -> Result<VideoCore, VideoCoreError> {
        let log = VcLog::new();
        log.log("vchiq_core: vchiq_init_state: software VideoCore, is_master = 1");
        let (w, h) = (options.display_width, options.display_height);
        let board = BoardInfo {
            display: (w, h),
            ..BoardInfo::default()
        };
        let fw = Arc::new(Firmware {
            link,
            gencmd: Mutex::new(GenCmd::new(board, log.clone())),
            tv: Mutex::new(TvService::new(w, h)),
            display: Mutex::new(Dispmanx::new(w, h)),
            log,
            options,
            state: Mutex::new(State {
                conns: HashMap::new(),
                khan: HashMap::new(),
                updh: HashMap::new(),
                khrn: HashMap::new(),
                disp_pending_bulk: HashMap::new(),
                frames: 0,
                echo: HashMap::new(),
                func: HashMap::new(),
                fun2: HashMap::new(),
                khan_posts: 0,
                khan_dropped: 0,
            }),
            outbox: Mutex::new(HashMap::new()),
            outbox_cv: std::sync::Condvar::new(),
            stopping: std::sync::atomic::AtomicBool::new(false),
        });
        fw.log.log(format!("dispmanx: display 0 is {w}x{h}"));
        for kind in Kind::ALL {
            for _ in 0..kind.fixed_listeners(&fw.options).unwrap_or(1) {
                fw.add_listener(kind)?;
            }
        }
        let flush_fw = fw.clone();
        let flusher = std::thread::Builder::new()
            .name("vc-outbox".into())
            .spawn(move || flush_fw.flush_outboxes())?;
        let conn_fw = fw.clone();
        let connector = std::thread::Builder::new()
            .name("vc-connect".into())
            .spawn(move || {
                match conn_fw.link.connect() {
                    Ok(()) => conn_fw.log.log("vchiq: connected to the ARM"),
                    Err(e) => conn_fw.log.log(format!("vchiq: connect failed: {e}")),
                };
            })?;
        Ok(VideoCore {
            fw,
            workers: vec![flusher],
            connector: Some(connector),
        })
    }

    /// The VideoCore log.
    pub fn log(&self) -> &VcLog {
        &self.fw.log
    }

    /// The open connections, with their attested client ids.
    pub fn connections(&self) -> Vec<Connection> {
        self.fw.connections()
    }

    /// A function that composes the display now, usable after the VideoCore has moved
    /// into another thread (the demo snapshots the display at the end).
    pub fn snapshotter(&self) -> impl Fn() -> vc_gles::Image + Send + Sync + 'static {
        let fw = self.fw.clone();
        move || fw.lock_display().compose().clone()
    }

    /// The display framebuffer, composed now from the current elements.
    pub fn framebuffer(&self) -> vc_gles::Image {
        self.fw.lock_display().compose().clone()
    }

    /// Stops the services and the flusher (the link itself is shut down by its owner).
    pub fn stop(mut self) {
        self.fw.link.shutdown();
        self.fw
            .stopping
            .store(true, std::sync::atomic::Ordering::Release);
        self.fw.outbox_cv.notify_all();
        if let Some(c) = self.connector.take() {
            let _ = c.join();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Firmware {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_display(&self) -> MutexGuard<'_, Dispmanx> {
        self.display.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add_listener(self: &Arc<Self>, kind: Kind) -> Result<ServiceHandle, vchiq_link::Error> {
        let dispatch = Arc::new(Dispatch {
            kind,
            fw: Arc::downgrade(self),
        });
        // Fixed sets (vchiq_test's echo x8, func x2) are plain servers that auto-close back
        // to LISTENING; every other service is a pool that serves any number of clients.
        match kind.fixed_listeners(&self.options) {
            Some(_) => self.link.add_service(kind.params(), dispatch),
            None => self.link.add_service_pool(kind.params(), dispatch),
        }
    }

    fn connections(&self) -> Vec<Connection> {
        let mut v: Vec<Connection> = self.lock().conns.values().cloned().collect();
        v.sort_by_key(|c| (c.client_id, c.handle.0));
        v
    }

    /// Queues a message to a client without ever blocking the link thread that runs the services: a client
    /// that stops reading (its quota is full) must not stall the VideoCore for the others.
    /// Messages that do not fit now wait in that connection's outbox, in order, and the
    /// flusher sends them as the client releases its messages.
    fn send(&self, h: ServiceHandle, data: &[u8]) {
        let mut ob = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = ob.get_mut(&h) {
            if q.len() >= OUTBOX_LIMIT {
                drop(ob);
                self.log
                    .log(format!("vchiq: client not reading {h:?}: message dropped"));
                return;
            }
            q.push_back(data.to_vec());
            return;
        }
        match self.link.queue_message(h, &[data], false) {
            Ok(()) => {}
            Err(vchiq_link::Error::WouldBlock) => {
                ob.entry(h).or_default().push_back(data.to_vec());
                self.outbox_cv.notify_one();
            }
            Err(e) => tracing::debug!("VideoCore reply on {h:?} dropped: {e}"),
        }
    }

    /// Queues a bulk receive unless the service already has the most outstanding: a client
    /// that never sends its side of a bulk must not stall the firmware (the link would
    /// wait for a free entry), so the request is refused instead.
    pub(crate) fn bulk_receive(
        &self,
        h: ServiceHandle,
        size: u32,
        userdata: u64,
    ) -> Result<(), vchiq_link::Error> {
        self.bulk_room(h, false)?;
        self.link.queue_bulk_receive(h, size, userdata)
    }

    /// Queues a bulk transmit unless the service already has the most outstanding (see
    /// [`Firmware::bulk_receive`]).
    pub(crate) fn bulk_transmit(
        &self,
        h: ServiceHandle,
        data: Vec<u8>,
        userdata: u64,
    ) -> Result<(), vchiq_link::Error> {
        self.bulk_room(h, true)?;
        self.link.queue_bulk_transmit(h, data, userdata)
    }

    fn bulk_room(&self, h: ServiceHandle, transmit: bool) -> Result<(), vchiq_link::Error> {
        let pending = self.link.service_info(h).map_or(0, |i| {
            if transmit {
                i.bulk_tx_pending
            } else {
                i.bulk_rx_pending
            }
        });
        if pending >= vchiq_abi::defs::NUM_SERVICE_BULKS {
            return Err(vchiq_link::Error::WouldBlock);
        }
        Ok(())
    }

    /// Sends what waits in the outboxes, until the firmware stops.
    fn flush_outboxes(&self) {
        let mut ob = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        while !self.stopping.load(std::sync::atomic::Ordering::Acquire) {
            ob.retain(|h, q| {
                while let Some(m) = q.front() {
                    match self.link.queue_message(*h, &[m], false) {
                        Ok(()) => {
                            q.pop_front();
                        }
                        Err(vchiq_link::Error::WouldBlock) => return true,
                        // The service is gone: nothing more can be delivered.
                        Err(_) => return false,
                    }
                }
                false
            });
            // A short poll while something waits (slots come back as the client reads);
            // otherwise sleep until `send` queues something.
            let wait = if ob.is_empty() {
                std::time::Duration::from_secs(1)
            } else {
                std::time::Duration::from_millis(1)
            };
            ob = self
                .outbox_cv
                .wait_timeout(ob, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn on_event(&self, kind: Kind, h: ServiceHandle, event: ServiceEvent) {
        match event {
            ServiceEvent::Opened { client_id, .. } => self.on_opened(kind, h, client_id),
            ServiceEvent::Closed => self.on_closed(kind, h),
            ServiceEvent::Message(m) => {
                let data = m.into_data();
                self.on_message(kind, h, &data);
            }
            ServiceEvent::BulkReceiveDone { userdata, data } => {
                self.on_bulk(kind, h, userdata, Some(data), true)
            }
            ServiceEvent::BulkTransmitDone { userdata } => {
                self.on_bulk(kind, h, userdata, None, true)
            }
            ServiceEvent::BulkReceiveAborted { userdata } => {
                self.on_bulk_aborted(kind, h, userdata, false)
            }
            ServiceEvent::BulkTransmitAborted { userdata } => {
                self.on_bulk_aborted(kind, h, userdata, true)
            }
        }
    }

    fn on_opened(&self, kind: Kind, h: ServiceHandle, client_id: u32) {
        let fourcc = kind.params().fourcc;
        // The debug service is the log's reader: logging its own traffic would drown it.
        if kind != Kind::Vcdb {
            self.log
                .log(format!("vchiq: {fourcc} opened by client {client_id}"));
        }
        {
            let mut st = self.lock();
            st.conns.insert(
                h,
                Connection {
                    fourcc,
                    client_id,
                    handle: h,
                },
            );
            match kind {
                Kind::Khan => {
                    // The KHAN handle of a process is registered under the id the driver
                    // attested, which is what a correct client puts in make-current.
                    st.khan.insert(client_id, h);
                }
                Kind::Updh => {
                    st.updh.insert(client_id, h);
                }
                Kind::Echo => {
                    st.echo.insert(h, EchoState::default());
                }
                Kind::Func => {
                    if client_id == 0 {
                        self.log.log("func: OPEN carried client_id 0");
                    }
                    st.func.insert(h, FuncState::default());
                }
                Kind::Fun2 => {
                    st.fun2.insert(h, Fun2State);
                }
                Kind::Khrn | Kind::Khhn => {
                    st.khrn
                        .entry(client_id)
                        .or_insert_with(|| KhrnServer::new(client_id));
                }
                _ => {}
            }
        }
    }

    fn on_closed(&self, kind: Kind, h: ServiceHandle) {
        let conn = {
            let mut st = self.lock();
            let conn = st.conns.remove(&h);
            st.echo.remove(&h);
            st.func.remove(&h);
            st.fun2.remove(&h);
            if let Some(c) = &conn {
                let id = c.client_id;
                if st.khan.get(&id) == Some(&h) {
                    st.khan.remove(&id);
                }
                if st.updh.get(&id) == Some(&h) {
                    st.updh.remove(&id);
                }
                if matches!(kind, Kind::Khrn | Kind::Khhn) {
                    let still = st.conns.values().any(|c| {
                        c.client_id == id && matches!(c.fourcc, FourCc::KHRN | FourCc::KHHN)
                    });
                    if !still {
                        st.khrn.remove(&id);
                    }
                }
            }
            conn
        };
        if let Some(c) = conn.filter(|_| kind != Kind::Vcdb) {
            self.log.log(format!(
                "vchiq: {} closed (client {})",
                c.fourcc, c.client_id
            ));
        }
    }

    fn client_of(&self, h: ServiceHandle) -> u32 {
        self.lock().conns.get(&h).map_or(0, |c| c.client_id)
    }

    fn on_message(&self, kind: Kind, h: ServiceHandle, data: &[u8]) {
        match kind {
            Kind::Gcmd => {
                let reply = self
                    .gencmd
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .handle(data);
                self.send(h, &reply);
            }
            Kind::Tvsv => {
                let reply = self
                    .tv
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .handle(data);
                if let Some(r) = reply {
                    self.send(h, &r);
                }
            }
            Kind::Cecs => {
                if let Some(r) = crate::tvservice::cec_handle(data) {
                    self.send(h, &r);
                }
            }
            Kind::Disp => self.on_disp(h, data),
            Kind::Khrn | Kind::Khhn => self.on_khrn(kind, h, KhrnInput::Message(data)),
            Kind::Echo => crate::testsvc::echo_message(self, h, data),
            Kind::Func => crate::testsvc::func_message(self, h, data),
            Kind::Fun2 => crate::testsvc::fun2_message(self, h, data),
            Kind::Vcdb => self.on_vcdb(h, data),
            Kind::Updh | Kind::Tvnt | Kind::Cecn | Kind::Khan => {
                self.log.log(format!(
                    "vchiq: unexpected message on {} ignored",
                    kind.params().fourcc
                ));
            }
        }
    }

    fn on_bulk(
        &self,
        kind: Kind,
        h: ServiceHandle,
        userdata: u64,
        data: Option<Vec<u8>>,
        _ok: bool,
    ) {
        match kind {
            Kind::Echo => crate::testsvc::echo_bulk_done(self, h, userdata, data),
            Kind::Func => crate::testsvc::func_bulk_done(self, h, userdata, data),
            Kind::Fun2 => crate::testsvc::fun2_bulk_done(self, h, userdata, data),
            Kind::Khrn | Kind::Khhn => {
                if let Some(d) = data {
                    self.on_khrn(kind, h, KhrnInput::Bulk(d));
                }
            }
            Kind::Disp => {
                if let Some(d) = data {
                    let target = self.lock().disp_pending_bulk.remove(&userdata);
                    if let Some(t) = target {
                        self.lock_display().bulk_data(t, &d);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_bulk_aborted(&self, kind: Kind, h: ServiceHandle, userdata: u64, transmit: bool) {
        if kind == Kind::Func {
            crate::testsvc::func_bulk_aborted(self, h, userdata, transmit);
        } else {
            self.log.log(format!(
                "vchiq: bulk {userdata} on {} aborted",
                kind.params().fourcc
            ));
        }
    }

    fn on_disp(&self, h: ServiceHandle, data: &[u8]) {
        let out = self.lock_display().handle(data);
        if let Some(r) = &out.reply {
            self.send(h, r);
        }
        if let Some(u) = &out.updh {
            let client = self.client_of(h);
            let updh = self.lock().updh.get(&client).copied();
            if let Some(uh) = updh {
                self.send(uh, u);
            }
        }
        if let Some((len, target)) = out.bulk_in {
            let token = u64::from(h.0) << 32 | u64::from(len);
            self.lock().disp_pending_bulk.insert(token, target);
            if let Err(e) = self.bulk_receive(h, len, token) {
                self.log.log(format!("dispmanx: bulk write refused: {e}"));
            }
        }
        if let Some(d) = out.bulk_out {
            if let Err(e) = self.bulk_transmit(h, d, 0) {
                self.log.log(format!("dispmanx: bulk read refused: {e}"));
            }
        }
        if out.presented {
            self.frame_presented();
        }
    }

    fn frame_presented(&self) {
        let frame = {
            let mut st = self.lock();
            st.frames += 1;
            st.frames
        };
        if let Some(DisplayOutput::Png { dir, every }) = &self.options.display_output {
            if frame % u64::from(*every) == 0 {
                let mut disp = self.lock_display();
                let img = disp.compose().clone();
                drop(disp);
                let path = dir.join(format!("frame-{frame:06}.png"));
                if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| img.write_png(&path)) {
                    self.log
                        .log(format!("display: cannot write {}: {e}", path.display()));
                }
            }
        }
    }

    fn on_khrn(&self, kind: Kind, h: ServiceHandle, input: KhrnInput<'_>) {
        let client_id = self.client_of(h);
        let channel = if kind == Kind::Khhn {
            Channel::Khhn
        } else {
            Channel::Khrn
        };
        // Take the client's server out of the map while it runs so that the host can use
        // the state lock.
        let Some(mut server) = self.lock().khrn.remove(&client_id) else {
            return;
        };
        let mut host = Host {
            fw: self,
            client_id,
            presented: false,
        };
        let result = match input {
            KhrnInput::Message(d) => server.handle_message(channel, d, &mut host),
            KhrnInput::Bulk(d) => server.bulk_payload(channel, d, &mut host),
        };
        if let Err(e) = result {
            self.log.log(format!("khrn: client {client_id}: {e}"));
        }
        let presented = host.presented;
        self.lock().khrn.insert(client_id, server);
        if presented {
            self.frame_presented();
        }
    }

    fn on_vcdb(&self, h: ServiceHandle, data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        let mut words = text.trim_end_matches('\0').split_whitespace();
        match words.next() {
            Some("log") => {
                let log = self.log.render();
                for chunk in log.as_bytes().chunks(4000) {
                    self.send(h, chunk);
                }
                self.send(h, &[]);
            }
            Some("clientid") => {
                let id = self.client_of(h);
                self.send(h, &id.to_le_bytes());
            }
            Some("services") => {
                let mut out = String::new();
                for c in self.connections() {
                    out.push_str(&format!("{} {} {}\n", c.fourcc, c.client_id, c.handle.0));
                }
                for chunk in out.as_bytes().chunks(4000) {
                    self.send(h, chunk);
                }
                self.send(h, &[]);
            }
            Some("stats") => {
                let st = self.lock();
                let out = format!(
                    "frames={} khan_posts={} khan_dropped={}\n",
                    st.frames, st.khan_posts, st.khan_dropped
                );
                drop(st);
                self.send(h, out.as_bytes());
            }
            Some(what @ ("snapshot" | "element")) => {
                let png = if what == "snapshot" {
                    let mut disp = self.lock_display();
                    Some(disp.compose().encode_png())
                } else {
                    let element = words
                        .next()
                        .and_then(|w| w.parse::<u32>().ok())
                        .unwrap_or(0);
                    let client = self.client_of(h);
                    self.element_png(client, element)
                };
                match png {
                    Some(png) => {
                        self.send(h, &(png.len() as u32).to_le_bytes());
                        if let Err(e) = self.bulk_transmit(h, png, 0) {
                            self.log.log(format!("vcdb: snapshot transfer failed: {e}"));
                        }
                    }
                    None => self.send(h, &0u32.to_le_bytes()),
                }
            }
            _ => self.send(
                h,
                b"error: unknown request (log, clientid, services, stats, snapshot, element N)",
            ),
        }
    }

    fn element_png(&self, client: u32, element: u32) -> Option<Vec<u8>> {
        let st = self.lock();
        let server = st.khrn.get(&client)?;
        server.window_image(element).map(|img| img.encode_png())
    }
}

enum KhrnInput<'a> {
    Message(&'a [u8]),
    Bulk(Vec<u8>),
}

/// The KHRN server's view of the firmware for one client.
struct Host<'a> {
    fw: &'a Firmware,
    client_id: u32,
    presented: bool,
}

impl Host<'_> {
    fn service(&self, channel: Channel) -> Option<ServiceHandle> {
        let fourcc = match channel {
            Channel::Khrn => FourCc::KHRN,
            Channel::Khhn => FourCc::KHHN,
        };
        self.fw
            .lock()
            .conns
            .values()
            .find(|c| c.client_id == self.client_id && c.fourcc == fourcc)
            .map(|c| c.handle)
    }
}

impl KhrnHost for Host<'_> {
    fn reply(&mut self, channel: Channel, data: &[u8]) {
        if let Some(h) = self.service(channel) {
            self.fw.send(h, data);
        }
    }

    fn bulk_to_client(&mut self, channel: Channel, data: Vec<u8>) {
        if let Some(h) = self.service(channel) {
            if let Err(e) = self.fw.bulk_transmit(h, data, 0) {
                self.fw.log.log(format!(
                    "khrn: bulk to client {} failed: {e}",
                    self.client_id
                ));
            }
        }
    }

    fn expect_bulk_from_client(&mut self, channel: Channel, len: u32) {
        if let Some(h) = self.service(channel) {
            if let Err(e) = self.fw.bulk_receive(h, len, u64::from(len)) {
                self.fw.log.log(format!(
                    "khrn: bulk from client {} failed: {e}",
                    self.client_id
                ));
            }
        }
    }

    fn post_khan(&mut self, pid: u64, command: u32, sem: u32) {
        let fw = self.fw;
        let mut st = fw.lock();
        let target = u32::try_from(pid)
            .ok()
            .and_then(|p| st.khan.get(&p).copied());
        match target {
            None => {
                st.khan_dropped += 1;
                drop(st);
                fw.log
                    .log(format!("*** No KHAN handle found for pid {pid}"));
            }
            // Beyond the real firmware: a post only ever goes to the KHAN service of the
            // client the command came from, so no client can wake or stall another one by
            // writing someone else's pid into make-current.
            Some(_) if pid != u64::from(self.client_id) => {
                st.khan_dropped += 1;
                drop(st);
                fw.log.log(format!(
                    "khan: post for pid {pid} refused: the command came from client {}",
                    self.client_id
                ));
            }
            Some(h) => {
                st.khan_posts += 1;
                drop(st);
                let msg = [command, pid as u32, (pid >> 32) as u32, sem];
                let bytes: Vec<u8> = msg.iter().flat_map(|w| w.to_le_bytes()).collect();
                fw.send(h, &bytes);
            }
        }
    }

    fn present(&mut self, window: u32, image: &vc_gles::Image) {
        let mut disp = self.fw.lock_display();
        if !disp.set_element_image(window, image) {
            drop(disp);
            self.fw
                .log
                .log(format!("khrn: swap for unknown dispmanx element {window}"));
            return;
        }
        self.presented = true;
    }

    fn display_size(&self) -> (u32, u32) {
        (
            self.fw.options.display_width,
            self.fw.options.display_height,
        )
    }

    fn log(&mut self, text: &str) {
        self.fw.log.log(text);
    }
}

impl Firmware {
    /// Queues a message on a connection (test services).
    pub(crate) fn reply(&self, h: ServiceHandle, data: &[u8]) {
        self.send(h, data);
    }

    /// The link (test services queue bulks on it).
    pub(crate) fn link(&self) -> &VcLink {
        &self.link
    }

    /// The log.
    pub(crate) fn vclog(&self) -> &VcLog {
        &self.log
    }

    /// Runs `f` on the echo state of a connection.
    pub(crate) fn with_echo<R>(
        &self,
        h: ServiceHandle,
        f: impl FnOnce(&mut EchoState) -> R,
    ) -> Option<R> {
        self.lock().echo.get_mut(&h).map(f)
    }

    /// Runs `f` on the func state of a connection.
    pub(crate) fn with_func<R>(
        &self,
        h: ServiceHandle,
        f: impl FnOnce(&mut FuncState) -> R,
    ) -> Option<R> {
        self.lock().func.get_mut(&h).map(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_output_parses() {
        assert_eq!("none".parse::<DisplayOutput>(), Ok(DisplayOutput::None));
        assert_eq!(
            "png:/tmp/x".parse::<DisplayOutput>(),
            Ok(DisplayOutput::Png {
                dir: "/tmp/x".into(),
                every: 1
            })
        );
        assert_eq!(
            "png:/tmp/x:30".parse::<DisplayOutput>(),
            Ok(DisplayOutput::Png {
                dir: "/tmp/x".into(),
                every: 30
            })
        );
        assert!("png:".parse::<DisplayOutput>().is_err());
        assert!("png:/x:0".parse::<DisplayOutput>().is_err());
        assert!("x11".parse::<DisplayOutput>().is_err());
        let o = DisplayOutput::Png {
            dir: "/d".into(),
            every: 5,
        };
        assert_eq!(o.to_string().parse::<DisplayOutput>(), Ok(o));
    }
}
