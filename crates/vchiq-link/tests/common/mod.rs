//! Shared helpers of the integration tests and benches.
pub mod fdpass;
