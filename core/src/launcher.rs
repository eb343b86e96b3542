//! The launcher plugin interface: how a monitor run is started.
//!
//! The CLI builds a [`MonitorJob`] (the monitor ready to run here, plus the
//! arguments that would run the same monitor in another process) and hands
//! it to the launcher the user selected by name. A foreground launcher runs
//! it; a daemon launcher starts a detached copy of the program instead.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::monitor::RunReport;
use crate::notifier::SettingSpec;

/// Everything a launcher needs to run one monitor.
pub struct MonitorJob {
    /// The data directory, absolute.
    pub data_dir: PathBuf,
    /// `prod` or `demo`, for a child process's `KALSHI_ENVIRONMENT`.
    pub environment: String,
    /// Arguments after the program name that run this same monitor in the
    /// foreground of another process.
    pub foreground_args: Vec<OsString>,
    run: Box<dyn FnOnce() -> Result<RunReport, LaunchError> + Send>,
}

impl MonitorJob {
    pub fn new(
        data_dir: PathBuf,
        environment: String,
        foreground_args: Vec<OsString>,
        run: impl FnOnce() -> Result<RunReport, LaunchError> + Send + 'static,
    ) -> MonitorJob {
        MonitorJob {
            data_dir,
            environment,
            foreground_args,
            run: Box::new(run),
        }
    }

    /// Runs the monitor in this process until it stops.
    pub fn run_here(self) -> Result<RunReport, LaunchError> {
        (self.run)()
    }

    /// The log file a background monitor writes to.
    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("alert_monitor.log")
    }
}

/// What a launcher did.
#[derive(Debug)]
pub enum LaunchOutcome {
    /// The monitor ran here and has stopped.
    Finished(RunReport),
    /// A background monitor is running as process `pid`, logging to `log_path`.
    Detached { pid: u32, log_path: PathBuf },
}

/// Why a launch failed; the message is shown to the user as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LaunchError {
    pub message: String,
}

impl LaunchError {
    pub fn new(message: impl Into<String>) -> LaunchError {
        LaunchError {
            message: message.into(),
        }
    }
}

/// A way of running the monitor.
pub trait Launcher: Send + Sync {
    fn launch(&self, job: MonitorJob) -> Result<LaunchOutcome, LaunchError>;
}

/// A registered launcher.
pub struct LauncherPlugin {
    pub name: &'static str,
    pub description: &'static str,
    /// The settings it accepts; the built-in launchers take none.
    pub settings: &'static [SettingSpec],
    pub build: fn() -> Box<dyn Launcher>,
}

inventory::collect!(LauncherPlugin);

/// Every launcher linked into this program, sorted by name.
pub fn launcher_plugins() -> Vec<&'static LauncherPlugin> {
    let mut all: Vec<_> = inventory::iter::<LauncherPlugin>.into_iter().collect();
    all.sort_by_key(|p| p.name);
    all
}

/// The launcher registered under `name`.
pub fn find_launcher(name: &str) -> Option<&'static LauncherPlugin> {
    inventory::iter::<LauncherPlugin>
        .into_iter()
        .find(|p| p.name == name)
}
