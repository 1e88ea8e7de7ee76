//! The socket front end: one event loop over every connection.
//!
//! One thread waits in `epoll` on the listening socket, the stop and signal descriptors
//! and every client socket (level-triggered, a typed token per descriptor). When a client
//! is readable the loop drains its queued requests (up to [`READ_BUDGET`] before it turns
//! to the others) and serves each one on the spot:
//!
//! - a request that can be answered now is answered now, from the loop;
//! - AWAIT_COMPLETION and a blocking DEQUEUE_MESSAGE that find nothing, and a BLOCKING bulk
//!   once queued (the driver's saved waiter, retried as WAITING), are **parked**:
//!   kept as data in the connection, and retried by whichever thread changes the
//!   instance's state (the instance's waker, usually the link's handler thread when the
//!   VideoCore's message arrives), which writes the reply itself. A completion therefore
//!   reaches the client with no hand-off to another daemon thread;
//! - a QUEUE_MESSAGE that finds the quota or the slots exhausted stalls its connection:
//!   it is retried when the link recycles slots (the link's space waker, on its handler
//!   thread) and nothing after it is read meanwhile, so messages keep their order;
//! - requests that wait in several phases (CONNECT, opening a service, CLOSE/REMOVE with
//!   their handshakes, a bulk the link has no room for) run on a
//!   small daemon-wide pool of waiter threads ([`crate::waiters`]), at most
//!   [`connection::MAX_POOLED_PER_CONNECTION`] per connection.
//!
//! An idle client costs its socket, its instance and a few hundred bytes: no thread.
//! CANCEL (a signal interrupting the client's ioctl) answers a parked request with EINTR
//! at once and interrupts a pooled one. A malformed frame ends that connection only.

mod connection;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod requests;

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::event::epoll;
use vchiq_abi::wire;

pub use connection::{MAX_POOLED_PER_CONNECTION, OUTBOX_LIMIT};
pub use requests::{FrameError, MAX_BULK};

use crate::driver::Driver;
use crate::identity::{self, ClientIdentity, IdentityError};
use crate::sys;
use crate::waiters::Waiters;
use connection::{Connection, Stalls};

/// Tells a client why it is refused ([`wire::REFUSED_TAG`]) before its socket is closed.
/// Never waits: a client that cannot take one frame just sees the close.
fn refuse(sock: &OwnedFd, errno: i32, reason: &str) {
    let hdr = wire::ResponseHeader {
        magic: wire::RESPONSE_MAGIC,
        tag: wire::REFUSED_TAG,
        result: -i64::from(errno),
    };
    let parts = [
        std::io::IoSlice::new(zerocopy::IntoBytes::as_bytes(&hdr)),
        std::io::IoSlice::new(reason.as_bytes()),
    ];
    let _ = sys::try_send_packet(sock.as_fd(), &parts);
    // Closing with unread requests would reset the connection, and the client would get
    // ECONNRESET instead of the reason: take what it already sent first.
    let mut scratch = [0u8; 64];
    for _ in 0..4 {
        match sys::try_recv_with_fds(sock.as_fd(), &mut scratch) {
            Ok(Some((n, _))) if n > 0 => {}
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {} // a longer frame
            _ => break,
        }
    }
}

/// Requests read from one client before the loop turns to the others.
pub const READ_BUDGET: usize = 64;

const LISTENER: u64 = 0;
const STOP: u64 = 1;
const SIGNALS: u64 = 2;
const FIRST_CLIENT: u64 = 3;

/// How a drain of one connection's requests ended.
enum Drained {
    /// Nothing more queued.
    Empty,
    /// [`READ_BUDGET`] requests served; more may be queued.
    Budget,
    /// The outbox is over its limit: reading waits for the client to read.
    Backlogged,
    /// End of file, a read error or a malformed frame: the connection ends.
    Ended,
}

/// The event loop of the socket front end.
///
/// Posted messages ([`vchiq_abi::wire::REQUEST_POSTED`]) are answered only on failure, so
/// a client streams them without a round trip each.
pub struct EventLoop {
    driver: Arc<Driver>,
    epoll: Arc<OwnedFd>,
    clients: HashMap<u64, Arc<Connection>>,
    pool: Arc<Waiters>,
    stalls: Arc<Stalls>,
    next_token: u64,
    max_clients: usize,
    buf: Vec<u8>,
}

impl EventLoop {
    /// A loop for `driver` that accepts at most `max_clients` connections at once.
    pub fn new(driver: Arc<Driver>, max_clients: usize) -> io::Result<EventLoop> {
        let stalls = Arc::new(Stalls::default());
        let s = stalls.clone();
        driver
            .link()
            .set_space_waker(Box::new(move || s.retry_all()));
        Ok(EventLoop {
            driver,
            epoll: Arc::new(epoll::create(epoll::CreateFlags::CLOEXEC)?),
            clients: HashMap::new(),
            pool: Waiters::new(),
            stalls,
            next_token: FIRST_CLIENT,
            max_clients,
            buf: vec![0u8; wire::MAX_REQUEST],
        })
    }

    /// Serves until `stop` or `signals` becomes readable; then ends every connection.
    pub fn run(
        &mut self,
        listener: BorrowedFd<'_>,
        stop: BorrowedFd<'_>,
        signals: Option<BorrowedFd<'_>>,
    ) -> io::Result<()> {
        rustix::io::ioctl_fionbio(listener, true)?;
        let ep = self.epoll.clone();
        let flags = epoll::EventFlags::IN;
        epoll::add(&*ep, listener, epoll::EventData::new_u64(LISTENER), flags)?;
        epoll::add(&*ep, stop, epoll::EventData::new_u64(STOP), flags)?;
        if let Some(s) = signals {
            epoll::add(&*ep, s, epoll::EventData::new_u64(SIGNALS), flags)?;
        }
        let mut events: Vec<epoll::Event> = Vec::with_capacity(256);
        loop {
            events.clear();
            match epoll::wait(&*ep, rustix::buffer::spare_capacity(&mut events), None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            for ev in &events {
                let (token, flags) = (ev.data.u64(), ev.flags);
                match token {
                    LISTENER => self.accept(listener),
                    STOP | SIGNALS => {
                        self.end_all();
                        return Ok(());
                    }
                    t => self.serve(t, flags),
                }
            }
        }
    }

    /// Number of connected clients.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Accepts what is queued on the listener (a batch, then back to the others).
    fn accept(&mut self, listener: BorrowedFd<'_>) {
        for _ in 0..READ_BUDGET {
            let accepted_at = identity::now_ticks();
            let sock = match rustix::net::accept_with(
                listener,
                rustix::net::SocketFlags::CLOEXEC | rustix::net::SocketFlags::NONBLOCK,
            ) {
                Ok(s) => s,
                Err(rustix::io::Errno::AGAIN) => return,
                Err(rustix::io::Errno::INTR | rustix::io::Errno::CONNABORTED) => continue,
                Err(e) => {
                    // EMFILE and the like: the connection stays queued; say why, once a batch.
                    tracing::warn!("accept: {e}");
                    return;
                }
            };
            if self.clients.len() >= self.max_clients {
                tracing::warn!(
                    "client limit ({}) reached: refusing a connection",
                    self.max_clients
                );
                refuse(
                    &sock,
                    libc::EUSERS,
                    &format!(
                        "the client limit ({}) is reached; retry later, or raise it with 'vchiq daemon --max-clients'",
                        self.max_clients
                    ),
                );
                continue;
            }
            let identity = match ClientIdentity::of_peer(sock.as_fd(), accepted_at) {
                Ok(id) => id,
                Err(
                    e @ (IdentityError::InvisiblePeer
                    | IdentityError::PeerGone(_)
                    | IdentityError::Sys(_)),
                ) => {
                    tracing::warn!("refusing a client: {e}");
                    refuse(&sock, libc::EPERM, &format!("its identity: {e}"));
                    continue;
                }
            };
            let uid = identity.uid;
            let inst = match self.driver.open_instance(identity) {
                Ok(i) => i,
                Err(e) => {
                    let errno = e.errno();
                    let why = if errno == crate::limits::Limits::ERRNO {
                        format!(
                            "uid {uid} holds as many instances as it may ({}); close some, or raise it with 'vchiq daemon --max-instances-per-uid'",
                            self.driver.limits().instances_per_uid
                        )
                    } else {
                        format!("cannot open an instance: {e:?}")
                    };
                    tracing::warn!("refusing a client: {why}");
                    refuse(&sock, errno, &why);
                    continue;
                }
            };
            let token = self.next_token;
            self.next_token += 1;
            match Connection::start(
                self.driver.clone(),
                inst.clone(),
                sock,
                self.epoll.clone(),
                token,
                self.stalls.clone(),
            ) {
                Ok(conn) => {
                    self.clients.insert(token, conn);
                }
                Err(e) => {
                    tracing::warn!("refusing a client: epoll: {e}");
                    self.driver.release_instance(&inst);
                }
            }
        }
    }

    /// Serves one client's readiness: flushes replies, then drains its requests.
    fn serve(&mut self, token: u64, flags: epoll::EventFlags) {
        let Some(conn) = self.clients.get(&token).cloned() else {
            return;
        };
        if flags.contains(epoll::EventFlags::OUT) {
            conn.flush();
        }
        let hangup = flags.intersects(epoll::EventFlags::HUP | epoll::EventFlags::ERR);
        match self.drain_requests(&conn) {
            // Level-triggered: a client with requests left is served again after the
            // others; one whose outbox is full is read again once it drains.
            Drained::Budget => return,
            Drained::Empty | Drained::Backlogged if !hangup => return,
            // A hung-up client cannot read the replies it has queued.
            Drained::Empty | Drained::Backlogged | Drained::Ended => {}
        }
        self.end(token);
    }

    /// Reads and serves the requests queued on one connection, up to [`READ_BUDGET`].
    fn drain_requests(&mut self, conn: &Arc<Connection>) -> Drained {
        for _ in 0..READ_BUDGET {
            if conn.backlogged() {
                return Drained::Backlogged;
            }
            match sys::try_recv_with_fds(conn.sock.as_fd(), &mut self.buf) {
                Ok(None) => return Drained::Empty,
                Ok(Some((0, fds))) if fds.is_empty() => return Drained::Ended,
                Ok(Some((n, fds))) => {
                    if let Err(e) = requests::handle(conn, &self.pool, &self.buf[..n], fds) {
                        tracing::warn!(client_id = conn.client_id(), "{e}: closing the connection");
                        return Drained::Ended;
                    }
                }
                Err(e) => {
                    tracing::debug!(client_id = conn.client_id(), "connection read: {e}");
                    return Drained::Ended;
                }
            }
        }
        Drained::Budget
    }

    fn end(&mut self, token: u64) {
        if let Some(conn) = self.clients.remove(&token) {
            conn.end();
        }
    }

    fn end_all(&mut self) {
        tracing::info!("vchiqd stopping: closing {} client(s)", self.clients.len());
        for (_, conn) in self.clients.drain() {
            conn.end();
        }
        self.pool.close();
    }
}
