//! The `foreground` launcher: runs the monitor in this process.

use kalshi_alerts_core::{LaunchError, LaunchOutcome, Launcher, LauncherPlugin, MonitorJob};

pub const NAME: &str = "foreground";

struct Foreground;

impl Launcher for Foreground {
    fn launch(&self, job: MonitorJob) -> Result<LaunchOutcome, LaunchError> {
        job.run_here().map(LaunchOutcome::Finished)
    }
}

kalshi_alerts_core::inventory::submit! {
    LauncherPlugin {
        name: NAME,
        description: "runs the monitor in this terminal until Ctrl-C or SIGTERM",
        settings: &[],
        build: || Box::new(Foreground),
    }
}
