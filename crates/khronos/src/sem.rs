//! Process-local named counting semaphores, the client's half of KHAN.
//!
//! The VideoCore names a semaphore by `(pid_lo, pid_hi, name)`; the real client keeps them as
//! vcos named semaphores (`"KhanSemaphore%08x%08x%08x"`), reference counted and destroyed when
//! the last user lets go. Here the table holds weak references: a semaphore lives while a
//! surface (or an in-flight KHAN message) holds it.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

/// `(pid_lo, pid_hi, name)`.
pub(crate) type SemName = (u32, u32, u32);

/// A counting semaphore.
#[derive(Debug)]
pub(crate) struct Semaphore {
    count: Mutex<u32>,
    cond: Condvar,
}

impl Semaphore {
    fn new(initial: u32) -> Semaphore {
        Semaphore {
            count: Mutex::new(initial),
            cond: Condvar::new(),
        }
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, u32> {
        // The count is a plain integer: a panic elsewhere cannot leave it inconsistent.
        self.count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn post(&self) {
        let mut c = self.guard();
        *c = c.saturating_add(1);
        self.cond.notify_one();
    }

    pub(crate) fn wait(&self) {
        let mut c = self.guard();
        while *c == 0 {
            c = self
                .cond
                .wait(c)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *c -= 1;
    }

    /// Acquire within `timeout`; `false` if the count stayed 0.
    pub(crate) fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut c = self.guard();
        while *c == 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            c = self
                .cond
                .wait_timeout(c, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        *c -= 1;
        true
    }

    pub(crate) fn count(&self) -> u32 {
        *self.guard()
    }
}

/// The process's named semaphores.
#[derive(Default)]
pub(crate) struct SemTable {
    map: Mutex<HashMap<SemName, Weak<Semaphore>>>,
}

impl SemTable {
    fn guard(&self) -> std::sync::MutexGuard<'_, HashMap<SemName, Weak<Semaphore>>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Open the semaphore `name`, creating it with `initial` if it does not exist.
    pub(crate) fn open(&self, name: SemName, initial: u32) -> Arc<Semaphore> {
        let mut map = self.guard();
        if let Some(sem) = map.get(&name).and_then(Weak::upgrade) {
            return sem;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let sem = Arc::new(Semaphore::new(initial));
        map.insert(name, Arc::downgrade(&sem));
        sem
    }

    /// The count of `name`, if it exists.
    pub(crate) fn count(&self, name: SemName) -> Option<u32> {
        self.guard()
            .get(&name)
            .and_then(Weak::upgrade)
            .map(|s| s.count())
    }
}
