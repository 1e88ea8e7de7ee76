//! One connection to vchiqd (one instance), shared by every thread and every duplicate of
//! the descriptor.
//!
//! # Who reads the socket
//!
//! There is no reader thread (a preloaded library should not add threads to its host, and
//! a thread would not survive `fork`). Callers take turns instead (leader/follower): the
//! first waiting caller becomes the *leader* and receives frames; a frame for another
//! caller is parked and that caller's per-thread eventfd is signalled; when the leader's
//! own frame arrives it hands the role to another waiter. Waits are `poll(2)`, which a
//! signal handler always interrupts (even with `SA_RESTART`): the waiter then sends
//! `CANCEL(tag)` once and keeps waiting for the daemon's answer, which is `-EINTR` unless
//! the request completed first; this is how the real driver behaves.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

use vchiq_abi::wire::{
    MAX_FRAME, Op, REQUEST_MAGIC, RESPONSE_MAGIC, RequestHeader, ResponseHeader,
};
use zerocopy::{FromBytes, IntoBytes};

use crate::sys;

/// A response: the ioctl result (or `-errno`) and the payload.
pub struct Frame {
    /// `ResponseHeader::result`.
    pub result: i64,
    /// Everything after the header.
    pub payload: Vec<u8>,
}

#[derive(Default)]
struct State {
    /// A caller is receiving.
    leader: bool,
    /// Frames received for callers that have not collected them.
    arrived: HashMap<u32, Frame>,
    /// Followers: tag → their thread's eventfd.
    waiters: HashMap<u32, RawFd>,
    /// The connection failed (errno for every later call).
    dead: Option<i32>,
    /// The process these fields describe: after `fork` the child finds its parent's pid
    /// here, and forgets the parent's leader and waiters (those threads do not exist in it).
    pid: i32,
}

/// A bulk receive whose data is in a memfd until the completion says it arrived.
pub struct RxBulk {
    /// The memfd the daemon writes.
    pub memfd: RawFd,
    /// The caller's buffer.
    pub addr: u64,
    /// Bytes.
    pub size: u32,
    /// The bulk's userdata.
    pub userdata: u64,
}

/// Instance bookkeeping the shim needs beyond the daemon's answers.
#[derive(Default)]
pub struct Books {
    /// Service handle → the `userdata` given at CREATE_SERVICE.
    pub service_userdata: HashMap<u32, u64>,
    /// CALLBACK receives in flight, per service userdata, in queue order.
    pub rx: HashMap<u64, std::collections::VecDeque<RxBulk>>,
    /// Interrupted BLOCKING receives, per thread, for the WAITING retry.
    pub saved_rx: HashMap<u32, RxBulk>,
    /// The state dump being read, and the position in it.
    pub dump: Vec<u8>,
    /// Read position in `dump`.
    pub dump_pos: usize,
}

/// A connection.
pub struct Conn {
    /// Private close-on-exec duplicate of the socket the application holds.
    fd: RawFd,
    next_tag: AtomicU32,
    st: Mutex<State>,
    /// The receive buffer (used by the leader only).
    rbuf: Mutex<Vec<u8>>,
    /// Shim bookkeeping.
    pub books: Mutex<Books>,
    /// The client id the daemon attested in HELLO.
    pub client_id: u32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

thread_local! {
    /// This thread's wake-up eventfd (created on first need, closed at thread exit).
    static WAKE: ThreadFd = ThreadFd(sys::eventfd().unwrap_or(-1));
}

struct ThreadFd(RawFd);

impl Drop for ThreadFd {
    fn drop(&mut self) {
        if self.0 >= 0 {
            sys::close(self.0);
        }
    }
}

impl Conn {
    /// Wraps a connected socket (`fd` is the application's; the connection keeps a private
    /// duplicate) and says HELLO.
    pub fn new(app_fd: RawFd) -> Result<Conn, i32> {
        let fd = sys::dup_cloexec(app_fd).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        let mut c = Conn {
            fd,
            next_tag: AtomicU32::new(1),
            st: Mutex::new(State {
                pid: sys::getpid(),
                ..State::default()
            }),
            rbuf: Mutex::new(Vec::new()),
            books: Mutex::new(Books::default()),
            client_id: 0,
        };
        let hello = vchiq_abi::wire::HelloRequest {
            version: vchiq_abi::wire::PROTOCOL_VERSION,
            flags: 0,
        };
        let f = c.call(Op::Hello, 0, &[hello.as_bytes()], None)?;
        if f.result < 0 {
            return Err((-f.result) as i32);
        }
        let (resp, _) = vchiq_abi::wire::HelloResponse::read_from_prefix(&f.payload)
            .map_err(|_| libc::EPROTO)?;
        c.client_id = resp.client_id;
        Ok(c)
    }

    /// Sends a request and waits for its response. `Err(errno)` only when the connection
    /// failed; the driver's own errors are in [`Frame::result`].
    pub fn call(
        &self,
        op: Op,
        arg: u64,
        payload: &[&[u8]],
        pass: Option<RawFd>,
    ) -> Result<Frame, i32> {
        if let Some(e) = lock(&self.st).dead {
            return Err(e);
        }
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed).max(1);
        let hdr = RequestHeader {
            magic: REQUEST_MAGIC,
            tag,
            op: op as u32,
            flags: 0,
            arg,
        };
        let mut parts: Vec<&[u8]> = Vec::with_capacity(payload.len() + 1);
        parts.push(hdr.as_bytes());
        parts.extend_from_slice(payload);
        if let Err(e) = sys::send(self.fd, &parts, pass) {
            return Err(self.fail(e.raw_os_error().unwrap_or(libc::EIO)));
        }
        self.wait(tag)
    }

    fn fail(&self, errno: i32) -> i32 {
        let mut st = lock(&self.st);
        // A daemon that went away looks like a driver that is gone.
        let e = if matches!(errno, libc::EPIPE | libc::ECONNRESET) {
            libc::ENOTCONN
        } else {
            errno
        };
        st.dead.get_or_insert(e);
        for (_, w) in st.waiters.drain() {
            sys::eventfd_signal(w);
        }
        e
    }

    fn cancel(&self, tag: u32) {
        let hdr = RequestHeader {
            magic: REQUEST_MAGIC,
            tag: 0,
            op: Op::Cancel as u32,
            flags: 0,
            arg: u64::from(tag),
        };
        let _ = sys::send(self.fd, &[hdr.as_bytes()], None);
    }

    fn wait(&self, tag: u32) -> Result<Frame, i32> {
        // During thread teardown there is no eventfd: such a caller only ever leads.
        let wake = WAKE.try_with(|w| w.0).unwrap_or(-1);
        let mut cancelled = false;
        let pid = sys::getpid();
        loop {
            let mut st = lock(&self.st);
            if st.pid != pid {
                st.pid = pid;
                st.leader = false;
                st.waiters.clear();
            }
            if let Some(f) = st.arrived.remove(&tag) {
                st.waiters.remove(&tag);
                return Ok(f);
            }
            if let Some(e) = st.dead {
                st.waiters.remove(&tag);
                return Err(e);
            }
            if !st.leader || wake < 0 {
                // Lead: receive until our own frame arrives.
                st.leader = true;
                st.waiters.remove(&tag);
                drop(st);
                let r = self.lead(tag, &mut cancelled);
                let mut st = lock(&self.st);
                st.leader = false;
                // Hand the role to any other waiter.
                if let Some(&w) = st.waiters.values().next() {
                    sys::eventfd_signal(w);
                }
                match r {
                    Ok(Some(f)) => return Ok(f),
                    Ok(None) => continue,
                    Err(e) => {
                        drop(st);
                        return Err(self.fail(e));
                    }
                }
            }
            // Follow: sleep until the leader parks our frame or hands over.
            st.waiters.insert(tag, wake);
            drop(st);
            match sys::wait_readable(wake) {
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                    if !cancelled {
                        cancelled = true;
                        self.cancel(tag);
                    }
                }
                _ => sys::eventfd_drain(wake),
            }
        }
    }

    /// Receives frames as the leader; `Ok(Some)` with our own, `Ok(None)` to re-check.
    fn lead(&self, tag: u32, cancelled: &mut bool) -> Result<Option<Frame>, i32> {
        let mut buf = lock(&self.rbuf);
        if buf.len() < MAX_FRAME {
            buf.resize(MAX_FRAME, 0);
        }
        loop {
            match sys::wait_readable(self.fd) {
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                    if !*cancelled {
                        *cancelled = true;
                        self.cancel(tag);
                    }
                    continue;
                }
                Err(e) => return Err(e.raw_os_error().unwrap_or(libc::EIO)),
                Ok(()) => {}
            }
            let n = match sys::recv(self.fd, &mut buf) {
                Ok(0) => return Err(libc::ENOTCONN),
                Ok(n) => n,
                Err(e) => return Err(e.raw_os_error().unwrap_or(libc::EIO)),
            };
            let Ok((hdr, rest)) = ResponseHeader::read_from_prefix(&buf[..n]) else {
                return Err(libc::EPROTO);
            };
            if hdr.magic != RESPONSE_MAGIC {
                return Err(libc::EPROTO);
            }
            let frame = Frame {
                result: hdr.result,
                payload: rest.to_vec(),
            };
            if hdr.tag == tag {
                return Ok(Some(frame));
            }
            let mut st = lock(&self.st);
            if let Some(&w) = st.waiters.get(&hdr.tag) {
                sys::eventfd_signal(w);
            }
            st.arrived.insert(hdr.tag, frame);
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        sys::close(self.fd);
        let books = self.books.get_mut().unwrap_or_else(|p| p.into_inner());
        for q in books.rx.values() {
            for b in q {
                sys::close(b.memfd);
            }
        }
        for b in books.saved_rx.values() {
            sys::close(b.memfd);
        }
    }
}
