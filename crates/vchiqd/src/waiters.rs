//! The daemon's pool of waiter threads.
//!
//! The common waits (AWAIT_COMPLETION, blocking DEQUEUE_MESSAGE) are parked state in the
//! event loop, not threads ([`crate::server`]). The requests that wait in several phases
//! (CONNECT, opening a service, CLOSE/REMOVE handshakes, a bulk the link has no room for)
//! run here, on a thread shared by every connection. Idle waiters are
//! kept and reused; a new one is started only when all are busy, up to [`MAX_WAITERS`].

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    idle: usize,
    threads: usize,
    closed: bool,
}

/// The pool.
#[derive(Default)]
pub struct Waiters {
    state: Mutex<State>,
    cv: Condvar,
}

/// Waiters beyond this are refused (EAGAIN): clients cannot make the daemon start threads
/// without bound. Each connection may hold at most
/// [`crate::server::MAX_POOLED_PER_CONNECTION`] of them.
pub const MAX_WAITERS: usize = 256;

const STACK: usize = 256 * 1024;

impl Waiters {
    /// An empty pool.
    pub fn new() -> Arc<Self> {
        Arc::new(Waiters::default())
    }

    /// Runs `job` on an idle waiter, or a new one. Returns false when the pool is closed
    /// or full (the caller answers EAGAIN).
    pub fn submit(self: &Arc<Self>, job: Job) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.closed {
            return false;
        }
        if st.idle <= st.jobs.len() {
            if st.threads >= MAX_WAITERS {
                return false;
            }
            let pool = self.clone();
            let spawned = std::thread::Builder::new()
                .name("vchiqd-wait".into())
                .stack_size(STACK)
                .spawn(move || pool.work());
            if spawned.is_err() {
                return false;
            }
            st.threads += 1;
        }
        st.jobs.push_back(job);
        drop(st);
        self.cv.notify_one();
        true
    }

    fn work(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(job) = st.jobs.pop_front() {
                drop(st);
                job();
                st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                continue;
            }
            if st.closed {
                st.threads -= 1;
                return;
            }
            st.idle += 1;
            st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
            st.idle -= 1;
        }
    }

    /// Lets every waiter finish its job and exit.
    pub fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn jobs_run_and_waiters_are_reused() {
        let pool = Waiters::new();
        let (tx, rx) = mpsc::channel();
        for i in 0..20 {
            let tx = tx.clone();
            assert!(pool.submit(Box::new(move || tx.send(i).unwrap())));
            assert_eq!(rx.recv().unwrap(), i);
            // The job has run, but its waiter may not be idle yet: wait until it is, so
            // that the next job finds it (however loaded the machine).
            while pool.state.lock().unwrap().idle == 0 {
                std::thread::yield_now();
            }
        }
        // Sequential jobs reuse the one waiter.
        assert_eq!(pool.state.lock().unwrap().threads, 1);
        pool.close();
        assert!(!pool.submit(Box::new(|| {})));
    }

    #[test]
    fn concurrent_waits_get_their_own_threads() {
        let pool = Waiters::new();
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let (tx, rx) = mpsc::channel();
        for _ in 0..3 {
            let (gate, tx) = (gate.clone(), tx.clone());
            assert!(pool.submit(Box::new(move || {
                let mut open = gate.0.lock().unwrap();
                while !*open {
                    open = gate.1.wait(open).unwrap();
                }
                tx.send(()).unwrap();
            })));
        }
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        for _ in 0..3 {
            rx.recv().unwrap();
        }
        pool.close();
    }
}
