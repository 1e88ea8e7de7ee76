//! `vchiq test` / `vchiq_test`: the real tool's options and output lines.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

/// Options of `vchiq test`: the real vchiq_test's own (getopt-style) options.
#[derive(Args, Debug)]
pub struct TestArgs {
    /// vchiq_test options: -f N, -p, -b KB, -c BYTES, -s XXXX, ...
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

pub fn run(_a: TestArgs) -> Result<ExitCode> {
    anyhow::bail!("vchiq test is not implemented yet")
}
