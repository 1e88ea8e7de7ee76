//! Error types of the client and of its transport.

use crate::Channel;

/// What a [`RpcTransport`](crate::RpcTransport) reports when it cannot move a message.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The VCHIQ service is closed.
    #[error(
        "the {0:?} service is closed; the VideoCore (vchiqd) went away — restart the program once it is back"
    )]
    Closed(Channel),
    /// An I/O error from the device node or the daemon socket.
    #[error("VCHIQ transport I/O failed: {0}; check that vchiqd is running and reachable")]
    Io(#[from] std::io::Error),
}

/// Errors of EGL/GL calls.
///
/// EGL-level failures carry the EGL error they correspond to in their name
/// (`BadConfig` ↔ `EGL_BAD_CONFIG`, …). GL-level misuse is not an `Error`: as in GL, it sets
/// the context's error flag, which [`Gl::get_error`](crate::gles::Gl::get_error) returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An attribute list named an unknown attribute (`EGL_BAD_ATTRIBUTE`).
    #[error(
        "unknown or invalid EGL attribute 0x{attribute:04x}; remove it from the attribute list"
    )]
    BadAttribute {
        /// The attribute.
        attribute: i32,
    },
    /// The config does not exist or does not support the request (`EGL_BAD_CONFIG`).
    #[error("EGL config {config} is not usable for this request; pick one from choose_config")]
    BadConfig {
        /// The config id.
        config: u32,
    },
    /// The context handle is unknown or already destroyed (`EGL_BAD_CONTEXT`).
    #[error("EGL context {handle} does not exist (destroyed?); create a new context")]
    BadContext {
        /// The client handle.
        handle: u32,
    },
    /// The arguments do not fit together (`EGL_BAD_MATCH`).
    #[error("EGL arguments do not match: {0}")]
    BadMatch(&'static str),
    /// The native window is unusable (`EGL_BAD_NATIVE_WINDOW`).
    #[error(
        "native window {width}x{height} (element {element}) is unusable: width and height must be 1..=2048 and the element non-zero"
    )]
    BadNativeWindow {
        /// The dispmanx element.
        element: u32,
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
    },
    /// The surface handle is unknown or already destroyed (`EGL_BAD_SURFACE`).
    #[error("EGL surface {handle} does not exist (destroyed?); create a new window surface")]
    BadSurface {
        /// The client handle.
        handle: u32,
    },
    /// A single command is larger than the merge buffer can ever hold.
    #[error(
        "command 0x{id:04x} needs {bytes} bytes, more than a KHRN message holds; split the data"
    )]
    CommandTooLarge {
        /// The command id.
        id: u32,
        /// Its encoded size.
        bytes: usize,
    },
    /// A scene's `glGetError` check after a call found an error (the demos stop there, as
    /// the Pi's demos assert).
    #[error("{call} set GL error 0x{code:04x}; the VideoCore refused the call")]
    Gl {
        /// The call (or group of calls) checked.
        call: &'static str,
        /// The GL error enum.
        code: u32,
    },
    /// The display was used before `initialize` or after `terminate` (`EGL_NOT_INITIALIZED`).
    #[error("the EGL display is not initialized; call Display::initialize first")]
    NotInitialized,
    /// The VideoCore answered with a reply of the wrong shape: client and server disagree
    /// about the protocol, and the connection cannot be trusted any more.
    #[error(
        "bad reply to command 0x{command:04x}: expected {expected}, got {got} bytes; the server does not speak this protocol — restart the VideoCore and the client"
    )]
    Reply {
        /// The command id.
        command: u32,
        /// What was expected.
        expected: &'static str,
        /// The size received.
        got: usize,
    },
    /// The VideoCore refused to create an object (it returned id 0) (`EGL_BAD_ALLOC`).
    #[error(
        "the VideoCore refused command 0x{command:04x} (returned 0): out of resources on the VideoCore"
    )]
    ServerRefused {
        /// The command id.
        command: u32,
    },
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// Result of client operations.
pub type Result<T> = std::result::Result<T, Error>;
