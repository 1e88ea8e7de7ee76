//! Requests kept as data until the state they wait for changes.
//!
//! A front end parks a request that would wait (AWAIT_COMPLETION with nothing queued, a
//! blocking DEQUEUE_MESSAGE) instead of blocking a thread on it. Whoever changes the
//! instance calls [`Parking::kick`] through the instance's waker, on its own thread; the
//! parked requests are tried again there and the ready ones answered at once. A kick never
//! blocks: if another thread (or this one, re-entered from an attempt) holds the list, the
//! holder sees the kick when it lets go and tries once more, so no change is missed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The parked requests of one instance.
pub struct Parking<T> {
    list: Mutex<Vec<T>>,
    dirty: AtomicBool,
}

impl<T> Default for Parking<T> {
    fn default() -> Self {
        Parking {
            list: Mutex::new(Vec::new()),
            dirty: AtomicBool::new(false),
        }
    }
}

impl<T> Parking<T> {
    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tries `item` once; if `attempt` says it must wait, runs `on_park` and keeps it.
    /// Returns the answer when there is one now.
    pub fn park<R>(
        &self,
        mut item: T,
        attempt: &mut dyn FnMut(&mut T) -> Option<R>,
        on_park: impl FnOnce(&T),
        answer: &mut dyn FnMut(T, R),
    ) -> Option<R> {
        {
            let mut list = self.lock();
            if let Some(r) = attempt(&mut item) {
                return Some(r);
            }
            on_park(&item);
            list.push(item);
        }
        // A kick that came while the list was held is served now.
        self.drain(attempt, answer);
        None
    }

    /// The state changed: try every parked request again; `answer` gets the ready ones
    /// (after the list is let go).
    pub fn kick<R>(
        &self,
        attempt: &mut dyn FnMut(&mut T) -> Option<R>,
        answer: &mut dyn FnMut(T, R),
    ) {
        self.dirty.store(true, Ordering::Release);
        self.drain(attempt, answer);
    }

    fn drain<R>(&self, attempt: &mut dyn FnMut(&mut T) -> Option<R>, answer: &mut dyn FnMut(T, R)) {
        while self.dirty.load(Ordering::Acquire) {
            let Ok(mut list) = self.list.try_lock() else {
                return; // the holder drains when it lets go
            };
            self.dirty.store(false, Ordering::Release);
            let mut ready = Vec::new();
            let mut i = 0;
            while i < list.len() {
                match attempt(&mut list[i]) {
                    None => i += 1,
                    Some(r) => ready.push((list.remove(i), r)),
                }
            }
            drop(list);
            for (item, r) in ready {
                answer(item, r);
            }
        }
    }

    /// Takes out the first parked request that `which` picks (an interrupt, a cancel).
    pub fn take(&self, which: impl Fn(&T) -> bool) -> Option<T> {
        let mut list = self.lock();
        let i = list.iter().position(which)?;
        Some(list.remove(i))
    }

    /// Drops every parked request (the client is gone).
    pub fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn parked_requests_are_answered_on_the_kick_that_makes_them_ready() {
        let p = Parking::<u32>::default();
        let ready = AtomicU32::new(0);
        let mut answered = Vec::new();
        let mut attempt = |t: &mut u32| (*t <= ready.load(Ordering::Relaxed)).then_some(*t * 10);
        assert_eq!(p.park(0, &mut attempt, |_| {}, &mut |_, _| {}), Some(0));
        assert_eq!(p.park(2, &mut attempt, |_| {}, &mut |_, _| {}), None);
        assert_eq!(p.park(1, &mut attempt, |_| {}, &mut |_, _| {}), None);
        ready.store(1, Ordering::Relaxed);
        p.kick(&mut attempt, &mut |t, r| answered.push((t, r)));
        assert_eq!(answered, [(1, 10)]);
        ready.store(5, Ordering::Relaxed);
        p.kick(&mut attempt, &mut |t, r| answered.push((t, r)));
        assert_eq!(answered, [(1, 10), (2, 20)]);
        assert_eq!(p.take(|_| true), None);
    }

    #[test]
    fn a_kick_during_an_attempt_is_not_lost() {
        // The attempt itself changes the state and kicks (as a driver call that notifies
        // the instance does); the re-entered kick finds the list held and the holder
        // retries.
        let p = std::sync::Arc::new(Parking::<u32>::default());
        let state = AtomicU32::new(0);
        let p2 = p.clone();
        let mut attempt = |t: &mut u32| {
            if state.fetch_add(1, Ordering::Relaxed) == 0 {
                p2.kick(&mut |_: &mut u32| None::<u32>, &mut |_, _| {});
            }
            (state.load(Ordering::Relaxed) > 1).then_some(*t)
        };
        let mut got = Vec::new();
        assert_eq!(
            p.park(7, &mut attempt, |_| {}, &mut |t, _| got.push(t)),
            None
        );
        assert_eq!(got, [7], "the holder retried after the re-entered kick");
        assert_eq!(p.take(|_| true), None);
    }
}
