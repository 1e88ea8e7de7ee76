//! Doorbells: how one side wakes the other (spec §2.5).
//!
//! The real hardware has one doorbell per direction; the `armed`/`fired` flags of each
//! [`RemoteEvent`](crate::layout::RemoteEvent) in shared memory say which event rang it. Here a
//! doorbell is anything that can be rung from one thread or process and waited on by another:
//! [`EventFd`] across processes, [`LocalDoorbell`] inside one process.
//!
//! A doorbell behaves like a binary semaphore: rings before a `wait` are not lost, several rings
//! may be merged into one wake-up, and spurious wake-ups are allowed (the link always re-checks
//! the `fired` flags).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};

use crate::{Error, Result};

/// Something the peer rings to wake this side's slot handler.
pub trait Doorbell: Send + Sync + 'static {
    /// Rings the bell (wakes one `wait`, now or later).
    fn ring(&self);
    /// Waits until the bell rings or `timeout` passes (`None` = forever). True if it rang.
    fn wait(&self, timeout: Option<Duration>) -> bool;
}

impl<T: Doorbell> Doorbell for Arc<T> {
    fn ring(&self) {
        (**self).ring();
    }
    fn wait(&self, timeout: Option<Duration>) -> bool {
        (**self).wait(timeout)
    }
}

/// A Linux eventfd used as a doorbell; hand [`EventFd::fd`] to another process.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// A new non-blocking, close-on-exec eventfd.
    ///
    /// # Errors
    /// [`Error::Io`] if `eventfd` fails.
    pub fn new() -> Result<Self> {
        let fd = rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| Error::Io {
                op: "eventfd",
                source: e.into(),
            })?;
        Ok(Self { fd })
    }

    /// Wraps an eventfd received from another process. It is switched to non-blocking mode.
    ///
    /// # Errors
    /// [`Error::Io`] if its flags cannot be changed.
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        let fl = rustix::fs::fcntl_getfl(&fd).map_err(|e| Error::Io {
            op: "fcntl(F_GETFL)",
            source: e.into(),
        })?;
        rustix::fs::fcntl_setfl(&fd, fl | rustix::fs::OFlags::NONBLOCK).map_err(|e| Error::Io {
            op: "fcntl(F_SETFL)",
            source: e.into(),
        })?;
        Ok(Self { fd })
    }

    /// The eventfd, to hand to the peer process.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Consumes a pending ring, if any.
    fn take(&self) -> bool {
        let mut buf = [0u8; 8];
        matches!(rustix::io::read(&self.fd, &mut buf), Ok(8))
    }
}

impl Doorbell for EventFd {
    fn ring(&self) {
        // Fails only if the counter would overflow (2^64 - 2 unconsumed rings): it is rung then.
        let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
    }

    fn wait(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if self.take() {
                return true;
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return false,
                },
                None => None,
            };
            let ts = left.map(|l| Timespec {
                tv_sec: l.as_secs().try_into().unwrap_or(i64::MAX),
                tv_nsec: l.subsec_nanos().into(),
            });
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match rustix::event::poll(&mut fds, ts.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                // Nothing sensible to do with a broken fd but not spin: report "not rung".
                Err(_) => return false,
            }
        }
    }
}

/// An in-process doorbell (a flag and a condition variable) for tests and same-process links.
#[derive(Debug, Default)]
pub struct LocalDoorbell {
    rung: Mutex<bool>,
    cond: Condvar,
}

impl LocalDoorbell {
    /// A doorbell that has not rung.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Doorbell for LocalDoorbell {
    fn ring(&self) {
        let mut r = self
            .rung
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *r = true;
        self.cond.notify_one();
    }

    fn wait(&self, timeout: Option<Duration>) -> bool {
        let mut r = self
            .rung
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let deadline = timeout.map(|t| Instant::now() + t);
        while !*r {
            match deadline {
                None => {
                    r = self
                        .cond
                        .wait(r)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                }
                Some(d) => {
                    let Some(left) = d.checked_duration_since(Instant::now()) else {
                        return false;
                    };
                    r = self
                        .cond
                        .wait_timeout(r, left)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
            }
        }
        *r = false;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(a: Arc<dyn Doorbell>) {
        assert!(!a.wait(Some(Duration::from_millis(1))));
        a.ring();
        a.ring();
        assert!(a.wait(Some(Duration::from_millis(1))));
        let b = a.clone();
        let t = std::thread::spawn(move || b.wait(None));
        std::thread::sleep(Duration::from_millis(5));
        a.ring();
        assert!(t.join().unwrap());
    }

    #[test]
    fn eventfd_doorbell() {
        exercise(Arc::new(EventFd::new().unwrap()));
        let e = EventFd::new().unwrap();
        let other = EventFd::from_fd(e.fd().try_clone_to_owned().unwrap()).unwrap();
        other.ring();
        assert!(e.wait(None));
    }

    #[test]
    fn local_doorbell() {
        exercise(Arc::new(LocalDoorbell::new()));
    }
}
