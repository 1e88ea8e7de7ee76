//! Messages from the VideoCore waiting for their client, counted against the client's
//! budget.
//!
//! A received message stays CLAIMED in its slot until released, and a slot goes back to the
//! VideoCore only when every message in it is released (`vchiq_link::Message`). That is the
//! link's flow control (a service's quota stops the VideoCore sending on it), but a slot
//! holds messages of every client: a client that never awaits its completions, on enough
//! services, would pin slots and, once the VideoCore came round to them, stall the link
//! for everyone. So an instance keeps at most [`MAX_CLAIMS`] messages claimed, whatever
//! its services; the rest are released at once, their payload (already copied out of
//! shared memory) kept. What the client cannot make the daemon hold is bounded in bytes instead:
//! the driver refuses its QUEUE_MESSAGE with `ENOBUFS` while its queued bytes exceed
//! [`crate::limits::Limits::queued_bytes_per_instance`], since replies only come to what
//! it sends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use vchiq_link::Message;

/// Messages one instance may keep claimed in the link's slots.
pub const MAX_CLAIMS: usize = 8;

/// What one instance's queued messages hold.
#[derive(Debug, Default)]
pub struct QueueBudget {
    bytes: AtomicUsize,
    claims: AtomicUsize,
    /// A QUEUE_MESSAGE was refused over the byte limit and logged; cleared by the next
    /// one accepted (one warning per episode, so a client cannot flood the log).
    pub(crate) over_limit_logged: std::sync::atomic::AtomicBool,
}

impl QueueBudget {
    /// Payload bytes queued for the client and not yet delivered.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Messages of the client still claimed in the link's slots.
    pub fn claims(&self) -> usize {
        self.claims.load(Ordering::Relaxed)
    }
}

enum Payload {
    Claimed(Message),
    Released(Vec<u8>),
}

/// A queued message; its bytes and claim are returned to the budget when it goes.
pub struct QueuedMessage {
    payload: Option<Payload>,
    budget: Arc<QueueBudget>,
}

impl QueuedMessage {
    /// Queues `m` for a client with `budget`, keeping its claim while the budget allows.
    pub fn new(m: Message, budget: &Arc<QueueBudget>) -> QueuedMessage {
        budget.bytes.fetch_add(m.data().len(), Ordering::Relaxed);
        // Only the link handler queues messages for an instance, so the check and the
        // increment do not race with each other (releases only lower the count).
        let payload = if budget.claims.load(Ordering::Relaxed) < MAX_CLAIMS {
            budget.claims.fetch_add(1, Ordering::Relaxed);
            Payload::Claimed(m)
        } else {
            Payload::Released(m.into_data())
        };
        QueuedMessage {
            payload: Some(payload),
            budget: budget.clone(),
        }
    }

    /// The payload.
    pub fn data(&self) -> &[u8] {
        match &self.payload {
            Some(Payload::Claimed(m)) => m.data(),
            Some(Payload::Released(d)) => d,
            None => &[],
        }
    }

    /// Releases it and returns the payload.
    pub fn into_data(mut self) -> Vec<u8> {
        let len = self.data().len();
        self.budget.bytes.fetch_sub(len, Ordering::Relaxed);
        match self.payload.take() {
            Some(Payload::Claimed(m)) => {
                self.budget.claims.fetch_sub(1, Ordering::Relaxed);
                m.into_data()
            }
            Some(Payload::Released(d)) => d,
            None => Vec::new(),
        }
    }
}

impl Drop for QueuedMessage {
    fn drop(&mut self) {
        let len = self.data().len();
        match self.payload.take() {
            Some(Payload::Claimed(_)) => {
                self.budget.claims.fetch_sub(1, Ordering::Relaxed);
            }
            Some(Payload::Released(_)) => {}
            None => return,
        }
        self.budget.bytes.fetch_sub(len, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for QueuedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedMessage")
            .field("len", &self.data().len())
            .field(
                "claimed",
                &matches!(self.payload, Some(Payload::Claimed(_))),
            )
            .finish()
    }
}
