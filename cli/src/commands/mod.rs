//! One module per command; [`Context`] carries what they share.

pub mod add;
pub mod config;
pub mod control;
pub mod history;
pub mod instances;
pub mod list;
pub mod manual;
pub mod markets;
pub mod monitor;
pub mod notifiers;
pub mod plugins;
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
    /// The notifiers file, absolute.
    pub notifiers_path: PathBuf,
    /// Whether the user named the notifiers file (then it must exist).
    pub notifiers_explicit: bool,
    /// `-v`/`-q` as given, for a daemon's background copy.
    pub log_flags: Vec<String>,
}

impl Context {
    pub fn new(cli: &Cli) -> CliResult<Context> {
        let environment = cli.environment.parse().map_err(CliError::usage)?;
        let data_dir = std::path::absolute(&cli.data_dir)
            .map_err(|e| CliError::invalid(format!("data dir {}: {e}", cli.data_dir.display())))?;
        let notifiers_path = match &cli.notifiers_file {
            Some(path) => std::path::absolute(path).map_err(|e| {
                CliError::invalid(format!("notifiers file {}: {e}", path.display()))
            })?,
            None => data_dir.join(kalshi_alerts_core::notifiers_file::FILE_NAME),
        };
        Ok(Context {
            environment,
            data_dir,
            notifiers_path,
            notifiers_explicit: cli.notifiers_file.is_some(),
            log_flags: std::iter::repeat_n("-v".to_string(), cli.verbose.into())
                .chain(std::iter::repeat_n("-q".to_string(), cli.quiet.into()))
                .collect(),
        })
    }

    pub fn store(&self) -> AlertStore {
        AlertStore::in_dir(&self.data_dir)
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("alert_monitor.log")
    }

    /// The market API as messages name it: `Kalshi (prod)` for the host of
    /// `--env`, or the scheme, host and port of `KALSHI_API_BASE_URL` when
    /// that is set (a test server, a proxy): "no market X on Kalshi (prod)"
    /// would be false then. A URL that does not pass the check is never
    /// used, so it is never named.
    pub fn api_name(&self) -> String {
        let custom = std::env::var("KALSHI_API_BASE_URL")
            .ok()
            .and_then(|text| kalshi_alerts_core::check_base_url(&text).ok());
        match custom {
            // Checked: an http(s) URL with a host and no login, query or
            // fragment; what follows the authority is the API's path.
            Some(url) => {
                let start = url.find("://").map_or(0, |i| i + 3);
                let end = url[start..].find('/').map_or(url.len(), |i| start + i);
                url[..end].to_string()
            }
            None => format!("Kalshi ({})", self.environment),
        }
    }
}

/// A running monitor reads the conditions at start; say so after a change.
pub fn hint_if_monitor_runs(context: &Context) {
    if let Ok(Some(holder)) = kalshi_alerts_core::lock::MonitorLock::holder(&context.data_dir) {
        crate::output::say!(
            "Note: a monitor is running for this data dir ({holder}); it applies this change \
             by its next cycle (a daemon at once on SIGHUP: `kill -HUP PID`)."
        );
    }
}
