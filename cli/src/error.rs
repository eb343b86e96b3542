//! The one error type of the CLI: a message and the exit code it earns.
//!
//! Exit codes follow the Python `kalshi_research` tool: 0 success, 1 invalid
//! input or an ambiguous id prefix (files unchanged), 2 usage errors and an
//! id that matches nothing.

use std::fmt;

#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    /// Bad input: the command refused it and changed nothing. Exit 1.
    pub fn invalid(message: impl Into<String>) -> CliError {
        CliError {
            code: 1,
            message: message.into(),
        }
    }

    /// A usage error, or an id that matches nothing. Exit 2.
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError {
            code: 2,
            message: message.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<kalshi_alerts_core::store::StoreError> for CliError {
    fn from(e: kalshi_alerts_core::store::StoreError) -> Self {
        CliError::invalid(e.to_string())
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;
