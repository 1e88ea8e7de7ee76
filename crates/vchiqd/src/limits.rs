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
        }
    }
}
