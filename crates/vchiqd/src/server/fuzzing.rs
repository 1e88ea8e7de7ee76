//! The socket front end driven in-process, for the `socket_session` fuzz target (feature
//! `fuzzing`; not a stable interface).
//!
//! A [`Harness`] is a daemon without its event loop: the driver over an embedded
//! VideoCore, the waiter pool and the stall list. A [`Session`] is one client connection
//! of it over a socket pair: [`Session::request`] hands a frame to the same decoder and
//! dispatcher the event loop uses ([`super::requests::handle`]), and the client's end of
//! the pair reads the replies. What the loop would do between requests (flushing the
//! outbox, not reading a backlogged connection) the caller does with [`Session::flush`]
//! and [`Session::backlogged`]. Ending a session is the loop's end of a connection.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use rustix::event::epoll;
use vchiq_abi::wire::{self, ResponseHeader};
use zerocopy::FromBytes;

use super::connection::{Connection, Stalls};
use super::requests::{self, FrameError};
use crate::driver::{Driver, InstanceCounts};
use crate::identity::{ClientIdentity, PinMethod};
use crate::link::{self, VideoCoreMode, VideoCoreRunner};
use crate::sys;
use crate::waiters::Waiters;

/// A daemon without its event loop.
pub struct Harness {
    driver: Arc<Driver>,
    runner: Option<VideoCoreRunner>,
    pool: Arc<Waiters>,
    stalls: Arc<Stalls>,
    epoll: Arc<OwnedFd>,
}

impl Harness {
    /// Brings up an embedded VideoCore (a small display) and the driver over it.
    pub fn new(limits: crate::limits::Limits) -> Result<Harness, link::SetupError> {
        let vc = videocore::VideoCoreOptions {
            display_width: 64,
            display_height: 64,
            ..Default::default()
        };
        let (link, runner) = link::bring_up(&VideoCoreMode::Embedded, &vc)?;
        let driver = Driver::new(link);
        driver.set_limits(limits);
        let stalls = Arc::new(Stalls::default());
        let s = stalls.clone();
        driver
            .link()
            .set_space_waker(Box::new(move || s.retry_all()));
        let epoll = Arc::new(epoll::create(epoll::CreateFlags::CLOEXEC).map_err(io::Error::from)?);
        Ok(Harness {
            driver,
            runner: Some(runner),
            pool: Waiters::new(),
            stalls,
            epoll,
        })
    }

    /// The driver.
    pub fn driver(&self) -> &Arc<Driver> {
        &self.driver
    }

    /// A new client connection whose identity says `client_id` and `uid` (this process
    /// is every client, so the ids are made up; the driver only compares them).
    pub fn session(&self, client_id: u32, uid: u32) -> io::Result<Session> {
        let identity = ClientIdentity::describe(client_id, uid, uid, None, PinMethod::None);
        let inst = self
            .driver
            .open_instance(identity)
            .map_err(|e| io::Error::from_raw_os_error(e.errno()))?;
        let (daemon_end, client_end) = sys::socketpair_seqpacket()?;
        rustix::io::ioctl_fionbio(&daemon_end, true)?;
        rustix::io::ioctl_fionbio(&client_end, true)?;
        let conn = match Connection::start(
            self.driver.clone(),
            inst.clone(),
            daemon_end,
            self.epoll.clone(),
            u64::from(inst.id),
            self.stalls.clone(),
        ) {
            Ok(c) => c,
            Err(e) => {
                self.driver.release_instance(&inst);
                return Err(e);
            }
        };
        Ok(Session {
            conn,
            pool: self.pool.clone(),
            client: client_end,
            buf: vec![0u8; wire::MAX_FRAME + 4096],
        })
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.pool.close();
        self.driver.link().shutdown();
        if let Some(VideoCoreRunner::Embedded(vc)) = self.runner.take() {
            vc.stop();
        }
    }
}

/// One reply read from the client's end.
#[derive(Debug)]
pub struct Reply {
    /// Its header.
    pub header: ResponseHeader,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// One client connection of a [`Harness`].
pub struct Session {
    conn: Arc<Connection>,
    pool: Arc<Waiters>,
    client: OwnedFd,
    buf: Vec<u8>,
}

impl Session {
    /// The instance's id.
    pub fn instance(&self) -> u32 {
        self.conn.inst.id
    }

    /// The client id the driver attests.
    pub fn client_id(&self) -> u32 {
        self.conn.client_id()
    }

    /// Serves one request frame as the event loop does; an error is what would end the
    /// connection.
    pub fn request(&self, frame: &[u8], fds: Vec<OwnedFd>) -> Result<(), FrameError> {
        requests::handle(&self.conn, &self.pool, frame, fds)
    }

    /// True while the loop would not read this connection's requests (a stalled message
    /// or bulk, or a full outbox).
    pub fn backlogged(&self) -> bool {
        self.conn.backlogged()
    }

    /// Requests of this connection on the waiter pool now.
    pub fn pooled(&self) -> usize {
        self.conn.pooled_count()
    }

    /// Writes queued replies, as the loop does on `EPOLLOUT`.
    pub fn flush(&self) {
        self.conn.flush();
    }

    /// Reads every reply the client's end has now. A frame that is not a response is an
    /// error.
    pub fn replies(&mut self) -> io::Result<Vec<Reply>> {
        let mut out = Vec::new();
        loop {
            self.conn.flush();
            match sys::try_recv_with_fds(self.client.as_fd(), &mut self.buf)? {
                None => return Ok(out),
                Some((n, _fds)) => {
                    let frame = &self.buf[..n];
                    let Ok((header, rest)) = ResponseHeader::read_from_prefix(frame) else {
                        return Err(io::Error::other(format!("short response ({n} bytes)")));
                    };
                    if header.magic != wire::RESPONSE_MAGIC {
                        return Err(io::Error::other("bad response magic"));
                    }
                    out.push(Reply {
                        header,
                        payload: rest.to_vec(),
                    });
                }
            }
        }
    }

    /// What the instance holds now.
    pub fn counts(&self) -> InstanceCounts {
        self.conn.driver.instance_counts(&self.conn.inst)
    }

    /// The client hangs up: the loop's end of the connection.
    pub fn end(self) {
        self.conn.end();
    }
}
