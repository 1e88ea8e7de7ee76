//! The info log: errors collected in source order and formatted like the
//! drivers applications were tested against (`ERROR: 0:<line>: '<token>' : <message>`).

use std::fmt::Write;

/// One diagnostic.
#[derive(Clone, Debug)]
pub struct Diag {
    /// Source string number (`#line` may change it).
    pub source: u32,
    /// Line number within the source string.
    pub line: u32,
    /// Offending token, possibly empty.
    pub token: String,
    /// Message text.
    pub message: String,
    /// Warnings do not fail compilation.
    pub warning: bool,
}

/// Errors and warnings of one compile or link.
#[derive(Default, Debug)]
pub struct Diags {
    list: Vec<Diag>,
    errors: usize,
    /// Current source string number, set by `#line`.
    pub source: u32,
}

/// Hostile sources could produce one error per token; the log stays bounded.
const MAX_DIAGS: usize = 100;

impl Diags {
    /// Records an error at `line`.
    pub fn error(&mut self, line: u32, token: &str, message: impl Into<String>) {
        self.errors += 1;
        if self.list.len() < MAX_DIAGS {
            self.list.push(Diag {
                source: self.source,
                line,
                token: token.chars().take(64).collect(),
                message: message.into(),
                warning: false,
            });
        }
    }

    /// Records a warning at `line`.
    pub fn warning(&mut self, line: u32, token: &str, message: impl Into<String>) {
        if self.list.len() < MAX_DIAGS {
            self.list.push(Diag {
                source: self.source,
                line,
                token: token.chars().take(64).collect(),
                message: message.into(),
                warning: true,
            });
        }
    }

    /// Number of errors so far.
    pub fn error_count(&self) -> usize {
        self.errors
    }

    /// The formatted compile log.
    pub fn compile_log(&self) -> String {
        let mut s = String::new();
        for d in &self.list {
            let kind = if d.warning { "WARNING" } else { "ERROR" };
            let _ = writeln!(
                s,
                "{kind}: {}:{}: '{}' : {}",
                d.source, d.line, d.token, d.message
            );
        }
        if self.errors > 0 {
            let _ = writeln!(
                s,
                "ERROR: {} compilation errors.  No code generated.",
                self.errors
            );
        }
        s
    }
}
