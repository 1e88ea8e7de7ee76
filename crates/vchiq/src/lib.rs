//! Client library for the VideoCore host interface (VCHIQ), spoken to `vchiqd` over its
//! Unix socket or, natively, with ioctls on a `/dev/vchiq` file (the kernel driver's on a
//! Raspberry Pi, or vchiqd's node from `vchiq daemon --dev-node`): instances, services,
//! messages and bulk transfers.
//!
//! # Model
//!
//! This crate mirrors `libvchiq_arm` (spec §4), the library every Raspberry Pi program
//! links, on top of the `/dev/vchiq` ioctl set that [`vchiq_abi::wire`] carries:
//!
//! - An [`Instance`] is one connection to the driver, as one `open("/dev/vchiq")` is.
//!   [`Instance::connect`] does what `vchiq_initialise` + `vchiq_connect` do: HELLO,
//!   GET_CONFIG (refusing a driver older than version 3 or newer than this library
//!   accepts), LIB_VERSION(8) so that close-delivered handling is on, CONNECT.
//! - A [`Service`] is one endpoint, opened as a client ([`Instance::open_service`]) or
//!   added as a server ([`Instance::add_service`]). Its [`Handler`] decides how it hears
//!   from the driver: a callback (VCHIQ style: messages arrive with the event) or a queue
//!   (VCHI style: the driver keeps messages until [`Service::dequeue`]).
//! - Bulk data is copied into a sealed memfd that travels with the request
//!   (`SCM_RIGHTS`); it never goes through the socket. On a device file the driver
//!   reaches the data by address instead, as with libvchiq_arm: BLOCKING transfers use
//!   the caller's buffer, CALLBACK and NOCALLBACK ones a copy the library keeps until the
//!   driver is done with it.
//!
//! # Transports
//!
//! [`Instance::connect`] uses vchiqd's socket when `VCHIQ_SOCKET` is set, else
//! `/dev/vchiq` when it exists ([`Instance::open_device`]: ioctls, each on the calling
//! thread; see the `native` module), else the default socket. [`Instance::connect_to`]
//! and [`Instance::open_device`] choose explicitly. Everything above the transport (the
//! threads, callbacks, close-delivered handling) is the same for both.
//!
//! # Threads
//!
//! Each instance has two threads:
//!
//! - `vchiq-completion`, the single completion thread: it loops on AWAIT_COMPLETION and
//!   calls the callbacks of Callback services **on this thread, one at a time, in driver
//!   order**, exactly like libvchiq_arm's. After delivering SERVICE_CLOSED it sends
//!   CLOSE_DELIVERED, which `close()`/`remove()` wait for; calling those from inside a
//!   callback works too (see [`Service::close`]). A callback that blocks holds up every
//!   service of the instance, as in C.
//! - `vchiq-reader`, which receives every response and routes it to its caller by tag.
//!   Any number of threads may call at once; a blocking call (a blocking dequeue, a
//!   BLOCKING bulk) blocks only its caller.
//!
//! If the daemon goes away, every pending and later call fails with [`Error::Closed`];
//! nothing hangs.
//!
//! # Identity
//!
//! The library never sends a PID. The daemon learns who the client is from the kernel
//! (`SO_PEERCRED`, pinned by a pidfd) and attests it in HELLO ([`Instance::client_id`]);
//! that id is what the VideoCore sees in OPEN and what [`Service::client_id`] returns.
//! Protocols that carry a process id (Khronos) must use it, never `getpid()`, which is
//! wrong inside a PID namespace.
//!
//! # Example
//!
//! ```no_run
//! use vchiq::{Event, Handler, Instance, ServiceParams};
//! use vchiq_abi::FourCc;
//!
//! let instance = Instance::connect()?;
//! let echo = instance.open_service(
//!     ServiceParams::new(FourCc::new(b"echo"), 3, 3),
//!     Handler::callback(|_svc, event| {
//!         if let Event::Message(data) = event {
//!             println!("echoed {} bytes", data.len());
//!         }
//!     }),
//! )?;
//! echo.queue_message(b"hello")?;
//! echo.close()?;
//! instance.shutdown()?;
//! # Ok::<(), vchiq::Error>(())
//! ```
//!
//! # Limits
//!
//! - On a device file outside the initial PID namespace, [`Instance::client_id`] is 0
//!   until a service exists (the driver's view is only readable through GET_CLIENT_ID).
//! - On a device file, the native transport interrupts its own worker threads with a
//!   real-time signal (`SIGRTMAX - 2`, given a no-op handler if it has none); this is only
//!   needed to close a service from inside a callback.
//! - libvchiq_arm's refusal of a second server with the same fourcc and a different
//!   callback is not reproduced (closures cannot be compared); the driver still refuses
//!   servers of another instance.
//! - A handler must not capture its own [`Instance`]: the instance would keep itself alive
//!   and dropping it would not shut it down.

mod completion;
mod error;
mod instance;
mod native;
mod service;
mod sys;
mod transport;

#[cfg(test)]
mod tests;

pub use error::{Error, Result};
pub use instance::{HelloInfo, Instance, daemon_status};
pub use service::{CallbackFn, Event, Handler, Service, ServiceParams};
pub use vchiq_abi::enums::{BulkMode, ServiceOption};
pub use vchiq_abi::fourcc::FourCc;
