//! One module per command; [`Context`] carries what they share.

pub mod add;
pub mod control;
pub mod list;
pub mod monitor;
pub mod remove;
pub mod trim_log;

use std::path::PathBuf;

use kalshi_alerts_core::{AlertStore, Environment};

use crate::args::Cli;
use crate::error::{CliError, CliResult};

/// The global options, resolved.
pub struct Context {
    pub environment: Environment,
    /// Absolute, so a daemon started from here finds the same directory.
    pub data_dir: PathBuf,
}

impl Context {
    pub fn new(cli: &Cli) -> CliResult<Context> {
        let environment = cli.environment.parse().map_err(CliError::usage)?;
        let data_dir = std::path::absolute(&cli.data_dir)
            .map_err(|e| CliError::invalid(format!("data dir {}: {e}", cli.data_dir.display())))?;
        Ok(Context {
            environment,
            data_dir,
        })
    }

    pub fn store(&self) -> AlertStore {
        AlertStore::in_dir(&self.data_dir)
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("alert_monitor.log")
    }
}
