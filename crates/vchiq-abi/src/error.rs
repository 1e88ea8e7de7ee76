//! Error types of the crate.

use crate::fourcc::FourCcParseError;
use crate::ioctl::Layout;

/// A raw value that names no variant of a protocol enum.
///
/// Returned by every `TryFrom<u32>` / `TryFrom<i32>` of this crate's enums.
/// It carries the enum's name and the rejected value so that a log line
/// says what was wrong without further context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("unknown {ty} value {value}")]
pub struct UnknownValue {
    /// Rust name of the enum that rejected the value, e.g. `"MsgType"`.
    pub ty: &'static str,
    /// The rejected raw value (widened so that `u32` and `i32` both fit).
    pub value: i64,
}

/// Errors of the ABI crate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AbiError {
    /// A string is not a valid four-character code.
    #[error("invalid fourcc: {0}")]
    FourCc(#[from] FourCcParseError),
    /// An argument buffer is shorter than the struct it should hold.
    #[error("{what} ({layout}) needs {need} bytes, got {got}")]
    TooShort {
        /// Name of the struct that was being decoded.
        what: &'static str,
        /// Layout that was asked for.
        layout: Layout,
        /// Size of that struct in that layout.
        need: usize,
        /// Length of the buffer that was given.
        got: usize,
    },
    /// A raw value names no variant of a protocol enum.
    #[error(transparent)]
    UnknownValue(#[from] UnknownValue),
}

/// Result alias of the crate.
pub type Result<T> = core::result::Result<T, AbiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_failed() {
        let e = UnknownValue {
            ty: "MsgType",
            value: 42,
        };
        assert_eq!(e.to_string(), "unknown MsgType value 42");
        assert_eq!(AbiError::from(e).to_string(), "unknown MsgType value 42");
        let e = AbiError::TooShort {
            what: "CreateService",
            layout: Layout::Ilp32,
            need: 28,
            got: 3,
        };
        assert_eq!(e.to_string(), "CreateService (ILP32) needs 28 bytes, got 3");
        let e = AbiError::from(FourCcParseError::Length { chars: 3 });
        assert!(e.to_string().starts_with("invalid fourcc: "), "{e}");
    }
}
