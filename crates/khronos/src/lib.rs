//! A Rust EGL + OpenGL ES 1.1 client that speaks the VideoCore "Khronos RPC" exactly like the
//! Raspberry Pi userland client (`libbrcmEGL`/`libbrcmGLESv2`), plus the `hello_triangle` scene.
//!
//! # The client model
//!
//! The real client never renders anything itself: every EGL/GL call is encoded as a command for
//! the VideoCore and shipped over three VCHIQ services — **KHRN** (commands and replies),
//! **KHHN** (the same RPC at high priority; only OpenVG uses it, so this crate always uses
//! KHRN) and **KHAN** (asynchronous VC→client notifications). This crate reproduces that wire
//! protocol word for word, so a software VideoCore that serves the real client serves this one
//! too and vice versa.
//!
//! * **Merge buffer.** Calls that need no reply are appended to a 4080-byte buffer
//!   ([`MERGE_BUFFER_SIZE`]) and sent later as *one* VCHIQ message. The buffer is flushed when
//!   a command would not fit, before waiting for any reply, before any bulk payload, and on
//!   `glFlush`, `glFinish`, `eglSwapBuffers` and object destruction. A buffer that holds
//!   nothing but its make-current record is never sent.
//! * **Make-current (MC) records.** Every KHRN message starts with the 36-byte record
//!   `[0x4008, pid_lo, pid_hi, gltype, gl_ctx, gl_draw, gl_read, vg_ctx, vg_surf]`
//!   ([`MC_RECORD_SIZE`]). It is written when the client attaches and again right after every
//!   flush; `eglMakeCurrent` rewrites it in place while it is alone in the buffer ("collapse")
//!   and otherwise appends a new one mid-buffer. The server treats each record as "the
//!   following commands run for this process, context and surfaces".
//! * **Call classes.** A command is its id word plus one `u32` per argument (floats as their
//!   IEEE-754 bits, client pointers truncated to 32 bits). Depending on the class the client
//!   then waits for a 4-byte result (`RES`), sends inline bytes padded to 4 with no length
//!   word (`IN_CTRL`), sends a trailing `len` word and then the payload as its own message
//!   (≤ 2032 bytes) or as a bulk transfer (`IN_BULK`, `0xffffffff` = NULL), or receives
//!   `[len]` followed by a message or bulk transfer (`OUT_BULK`). The ids and classes live in
//!   [`ids`].
//! * **Vertex cache.** Client-memory vertex arrays are uploaded into a per-context cache on the
//!   server (`GLINTCACHEGROW`/`CREATE`/`DATA`) and draws name cache offsets. The client keeps a
//!   mirror of that cache, so unchanged arrays are not sent again: from its second frame on a
//!   whole `hello_triangle` frame is one 968-byte KHRN message.
//!
//! # The process id, and why it comes from `GET_CLIENT_ID`
//!
//! The pid in every MC record tells the VideoCore which KHAN service (and therefore which
//! process) to notify when, for example, a swapped buffer becomes free again. The kernel
//! driver registers each service under the *client id* it attested when `/dev/vchiq` was
//! opened (the caller's global PID). Before userland PR 315 the client wrote `getpid()`
//! instead, which inside a PID namespace is a different number: the VideoCore found "No KHAN
//! handle" for it, never posted the buffer semaphores, and every GPU program froze in its
//! fourth `eglSwapBuffers`. [`PidSource::ClientId`] (the default) asks the transport for the
//! client id (`VCHIQ_IOC_GET_CLIENT_ID`) each time an MC record is written, exactly as the
//! fixed client does once per flush; [`PidSource::LegacyGetpid`] reproduces the 2016 bug.
//! The same pid names the surface semaphores, and incoming KHAN messages are checked against
//! the KHAN service's client id ([`RpcTransport::khan_client_id`]).
//!
//! # Limits
//!
//! * One rendering thread: the merge buffer and the GL client state belong to the [`Client`],
//!   not to a thread. Any thread may deliver KHAN messages.
//! * The vertex-cache mirror is a buddy allocator like the real one; this crate lays cache
//!   entries out like the **32-bit** client (a 40-byte entry header, data at `offset + 40`)
//!   on every host, so its traffic equals the armhf trace byte for byte. The real 64-bit
//!   client would use 48. Overlapping client arrays are uploaded as separate entries (the real
//!   client merges them); both are valid for the server.
//! * Inline padding bytes are zero (the real client sends stale buffer contents).
//! * No OpenVG, no pbuffers/pixmaps, no EGL sync objects. OpenGL ES 2.0 ([`gles2`]) has
//!   shaders, programs, uniforms, generic attributes, buffer and framebuffer objects; its
//!   queries (`glGetShaderiv`, info logs, `glGetActive*`) are not offered yet.

mod cache;
pub mod egl;
mod error;
pub mod gles;
pub mod gles2;
pub mod hello_triangle;
pub mod hello_triangle2;
pub mod ids;
mod rpc;
mod sem;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub use error::{Error, Result, TransportError};
use sem::SemTable;

/// Size of the client's merge buffer: the largest KHRN message it ever sends
/// (`MERGE_BUFFER_SIZE` in `khrn_client_rpc.h`; below the 4088-byte VCHIQ limit).
pub const MERGE_BUFFER_SIZE: usize = 4080;

/// Size of the make-current record that starts every KHRN message: the id and 8 argument
/// words (`CLIENT_MAKE_CURRENT_SIZE`).
pub const MC_RECORD_SIZE: usize = 36;

/// Payloads up to this many bytes travel as ordinary messages, larger ones as VCHIQ bulk
/// transfers (`KHDISPATCH_CTRL_THRESHOLD`).
pub const CTRL_THRESHOLD: usize = 2032;

/// The VCHIQ service a message travels on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// `KHRN`: the normal-priority Khronos RPC service.
    Khrn,
    /// `KHHN`: the high-priority Khronos RPC service (used by OpenVG only).
    Khhn,
}

/// What the client needs from VCHIQ. The `vchiq` client library implements it; tests use a
/// recording mock.
///
/// Replies on a channel arrive in request order; the client always flushes its request before
/// it calls [`recv`](RpcTransport::recv) or [`bulk_recv`](RpcTransport::bulk_recv).
pub trait RpcTransport: Send + Sync + 'static {
    /// Queue one message on KHRN (or KHHN): the whole flushed merge buffer, or a payload.
    ///
    /// # Errors
    /// When the service is gone or the message could not be queued.
    fn send(&self, channel: Channel, data: &[u8]) -> std::result::Result<(), TransportError>;

    /// Block for the next message the VideoCore sent on that channel.
    ///
    /// # Errors
    /// When the service is gone.
    fn recv(&self, channel: Channel) -> std::result::Result<Vec<u8>, TransportError>;

    /// Bulk transmit (client → VC), blocking until done (the real client waits for
    /// `BULK_TRANSMIT_DONE`).
    ///
    /// # Errors
    /// When the transfer was aborted or the service is gone.
    fn bulk_send(&self, channel: Channel, data: &[u8]) -> std::result::Result<(), TransportError>;

    /// Bulk receive of exactly `len` bytes (VC → client), blocking.
    ///
    /// # Errors
    /// When the transfer was aborted or the service is gone.
    fn bulk_recv(
        &self,
        channel: Channel,
        len: usize,
    ) -> std::result::Result<Vec<u8>, TransportError>;

    /// `VCHIQ_IOC_GET_CLIENT_ID` on this channel's service handle: the client id the driver
    /// attested when the process connected.
    ///
    /// # Errors
    /// When the service handle is no longer valid.
    fn client_id(&self, channel: Channel) -> std::result::Result<u32, TransportError>;

    /// `GET_CLIENT_ID` on the **KHAN** service handle, which `khan_callback` compares incoming
    /// notifications against. The default asks the KHRN handle: all services of one VCHIQ
    /// instance share one client id. Override it if the KHAN handle is at hand.
    ///
    /// # Errors
    /// When the service handle is no longer valid.
    fn khan_client_id(&self) -> std::result::Result<u32, TransportError> {
        self.client_id(Channel::Khrn)
    }
}

/// Where the pid in make-current records and semaphore names comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PidSource {
    /// `VCHIQ_IOC_GET_CLIENT_ID`: the id the driver attested (the PR 315 fix; the default).
    #[default]
    ClientId,
    /// `getpid()`: the namespaced pid. Reproduces the 2016 container freeze.
    LegacyGetpid,
    /// A fixed number, as a hostile or confused client might write (tests of the
    /// VideoCore's KHAN routing: a post must never reach another client).
    Forged(u64),
}

impl PidSource {
    /// `LegacyGetpid` if the environment variable `VCHIQ_LEGACY_PID` is `1`, else `ClientId`.
    pub fn from_env() -> PidSource {
        match std::env::var("VCHIQ_LEGACY_PID") {
            Ok(v) if v.trim() == "1" => PidSource::LegacyGetpid,
            _ => PidSource::ClientId,
        }
    }
}

/// Counters of what the client has done (see [`Client::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Control messages sent on KHRN/KHHN (flushed merge buffers and small payloads).
    pub messages: u64,
    /// Bytes in those messages.
    pub bytes: u64,
    /// Bulk transfers in either direction.
    pub bulk: u64,
    /// Bytes moved by bulk transfers.
    pub bulk_bytes: u64,
    /// Reply messages received.
    pub replies: u64,
    /// `GET_CLIENT_ID` queries made for make-current records.
    pub client_id_queries: u64,
    /// KHAN POST messages accepted.
    pub khan_posts: u64,
    /// KHAN WAIT messages accepted.
    pub khan_waits: u64,
    /// KHAN messages dropped (wrong process, wrong size).
    pub khan_dropped: u64,
    /// `eglSwapBuffers` calls sent.
    pub swaps: u64,
}

#[derive(Default)]
pub(crate) struct StatCounters {
    pub(crate) messages: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) bulk: AtomicU64,
    pub(crate) bulk_bytes: AtomicU64,
    pub(crate) replies: AtomicU64,
    pub(crate) client_id_queries: AtomicU64,
    pub(crate) khan_posts: AtomicU64,
    pub(crate) khan_waits: AtomicU64,
    pub(crate) khan_dropped: AtomicU64,
    pub(crate) swaps: AtomicU64,
}

impl StatCounters {
    /// Counters are statistics only; no other memory is published through them.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Process-wide parts that the KHAN path uses without the RPC lock.
pub(crate) struct Shared {
    pub(crate) transport: Arc<dyn RpcTransport>,
    pub(crate) pid_source: PidSource,
    pub(crate) stats: StatCounters,
    pub(crate) sems: SemTable,
    /// The pid written into the most recent make-current record (0 before the first).
    pub(crate) last_pid: AtomicU64,
}

impl Shared {
    /// The pid for make-current records and semaphore names, per the pid source.
    pub(crate) fn current_pid(&self) -> Result<u64> {
        let pid = match self.pid_source {
            PidSource::ClientId => {
                StatCounters::add(&self.stats.client_id_queries, 1);
                sign_extend(self.transport.client_id(Channel::Khrn)?)
            }
            PidSource::LegacyGetpid => u64::from(std::process::id()),
            PidSource::Forged(pid) => pid,
        };
        // Informational copy for `Client::pid`; nothing is ordered against it.
        self.last_pid.store(pid, Ordering::Relaxed);
        Ok(pid)
    }

    /// The pid KHAN messages must carry to be for this process.
    fn khan_pid(&self) -> Result<u64> {
        Ok(match self.pid_source {
            PidSource::ClientId => sign_extend(self.transport.khan_client_id()?),
            PidSource::LegacyGetpid => u64::from(std::process::id()),
            PidSource::Forged(pid) => pid,
        })
    }
}

/// The real client keeps the id in an `int` and widens it to `uint64_t`.
fn sign_extend(id: u32) -> u64 {
    id as i32 as i64 as u64
}

/// The process-wide client: transport, pid source, merge buffer, EGL objects, GL client state
/// (including the vertex-cache mirror) and the KHAN semaphores.
pub struct Client {
    shared: Arc<Shared>,
    state: Mutex<State>,
}

/// Everything behind the RPC lock (the real client's global RPC mutex).
pub(crate) struct State {
    pub(crate) rpc: rpc::Rpc,
    pub(crate) egl: egl::EglState,
}

impl Client {
    /// A client speaking over `transport`. Nothing is sent until the first EGL call that needs
    /// the VideoCore; the make-current record is first written then ("attach").
    pub fn new(transport: Arc<dyn RpcTransport>, pid_source: PidSource) -> Arc<Client> {
        let shared = Arc::new(Shared {
            transport,
            pid_source,
            stats: StatCounters::default(),
            sems: SemTable::default(),
            last_pid: AtomicU64::new(0),
        });
        Arc::new(Client {
            state: Mutex::new(State {
                rpc: rpc::Rpc::new(Arc::clone(&shared)),
                egl: egl::EglState::default(),
            }),
            shared,
        })
    }

    /// The pid source this client was created with.
    pub fn pid_source(&self) -> PidSource {
        self.shared.pid_source
    }

    /// The pid this client puts in make-current records: a fresh `GET_CLIENT_ID` with
    /// [`PidSource::ClientId`], `getpid()` with [`PidSource::LegacyGetpid`]. If the transport
    /// cannot answer, the pid of the last record written (0 if none).
    pub fn pid(&self) -> u64 {
        self.try_pid()
            .unwrap_or_else(|_| self.shared.last_pid.load(Ordering::Relaxed))
    }

    /// Like [`pid`](Client::pid), but reports a transport failure.
    ///
    /// # Errors
    /// [`Error::Transport`] if `GET_CLIENT_ID` failed.
    pub fn try_pid(&self) -> Result<u64> {
        self.shared.current_pid()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ClientStats {
        let s = &self.shared.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientStats {
            messages: get(&s.messages),
            bytes: get(&s.bytes),
            bulk: get(&s.bulk),
            bulk_bytes: get(&s.bulk_bytes),
            replies: get(&s.replies),
            client_id_queries: get(&s.client_id_queries),
            khan_posts: get(&s.khan_posts),
            khan_waits: get(&s.khan_waits),
            khan_dropped: get(&s.khan_dropped),
            swaps: get(&s.swaps),
        }
    }

    /// Deliver one KHAN message (the transport owner calls this from its completion thread).
    ///
    /// This is the real client's `khan_callback`: a message is 16 bytes
    /// `[command, pid_lo, pid_hi, name]`. A message whose pid is not this process's (the KHAN
    /// service's client id, or `getpid()` with [`PidSource::LegacyGetpid`], as before PR 315)
    /// is dropped with the real client's complaint on stderr. Otherwise the process-local
    /// semaphore named `(pid_lo, pid_hi, name)` is opened — created with count 1 if absent —
    /// and released for POST or acquired for WAIT (which blocks the caller while the count is
    /// 0, as the real callback does). DESTROY and the other commands are ignored.
    pub fn khan_message(&self, data: &[u8]) {
        let Some(words) = ids::words::<4>(data) else {
            eprintln!(
                "khan_callback: ignoring a {}-byte message (expected 16)",
                data.len()
            );
            StatCounters::add(&self.shared.stats.khan_dropped, 1);
            return;
        };
        let [command, pid_lo, pid_hi, name] = words;
        let msg_pid = u64::from(pid_lo) | (u64::from(pid_hi) << 32);
        let own = match self.shared.khan_pid() {
            Ok(pid) => pid,
            Err(e) => {
                eprintln!("khan_callback: cannot get the client id ({e}); dropping message");
                StatCounters::add(&self.shared.stats.khan_dropped, 1);
                return;
            }
        };
        if own != msg_pid {
            eprintln!(
                "khan_callback: message for wrong process; pid = {own:X}, msg pid = {msg_pid:X}"
            );
            StatCounters::add(&self.shared.stats.khan_dropped, 1);
            return;
        }
        match command {
            ids::ASYNC_COMMAND_POST => {
                StatCounters::add(&self.shared.stats.khan_posts, 1);
                self.shared.sems.open((pid_lo, pid_hi, name), 1).post();
            }
            ids::ASYNC_COMMAND_WAIT => {
                StatCounters::add(&self.shared.stats.khan_waits, 1);
                self.shared.sems.open((pid_lo, pid_hi, name), 1).wait();
            }
            _ => {}
        }
    }

    /// The current count of the local semaphore `(pid_lo, pid_hi, name)`, if it exists.
    /// Diagnostics and tests: a window surface's semaphore is named by its client handle.
    pub fn semaphore_count(&self, pid_lo: u32, pid_hi: u32, name: u32) -> Option<u32> {
        self.shared.sems.count((pid_lo, pid_hi, name))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves at worst a half-built merge buffer, which the
        // server rejects; keep going rather than poison every later call.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }
}
