//! What one client, and one user, may make the daemon hold.
//!
//! Each limit has a default that a real Pi workload never meets (a Pi program opens a few
//! services: hello_triangle opens ten; a desktop session's processes a few dozen
//! instances) and fails only the request that exceeds it, with an errno the client library
//! turns into a clear message and a log line that names the client and the limit. No
//! limit ever fails another client's request.

/// The per-client and per-user limits (`vchiq daemon --max-*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Instances (socket connections and opens of the file node) one uid may hold at once.
    /// Past it, a connection is refused with its reason and an `open()` of the node fails
    /// with `EMFILE`.
    pub instances_per_uid: usize,
    /// Services one instance may hold at once; CREATE_SERVICE past it fails with `EMFILE`.
    pub services_per_instance: usize,
    /// Bytes of messages from the VideoCore queued for one instance and not yet awaited or
    /// dequeued. While it holds more, its QUEUE_MESSAGE fails with `ENOBUFS`.
    pub queued_bytes_per_instance: usize,
    /// Completions that carry no message (service opened or closed, bulk done or aborted,
    /// a VCHI message available) queued for one instance and not yet awaited. While it
    /// holds this many, requests that would queue more (CREATE_SERVICE, a CALLBACK bulk)
    /// fail with `ENOBUFS`; nothing queued is dropped (see [`crate::driver`]).
    pub completions_per_instance: usize,
    /// FUSE requests of one opener of the file node in flight at once (waiting on a
    /// worker or parked); past it the request fails with `EAGAIN`.
    pub node_requests_per_opener: usize,
}

impl Limits {
    /// The errno of a request refused by a limit.
    pub const ERRNO: i32 = libc::EMFILE;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            instances_per_uid: 1024,
            services_per_instance: 256,
            queued_bytes_per_instance: 16 << 20,
            completions_per_instance: 4096,
            node_requests_per_opener: 64,
        }
    }
}
