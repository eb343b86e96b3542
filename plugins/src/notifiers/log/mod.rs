//! The `log` notifier: one structured `tracing` event per fired alert.
//!
//! Where the event ends up is the program's choice of subscriber; the
//! `kalshi` binary writes it to stderr, which the daemon appends to its log.

use kalshi_alerts_core::display::printable;
use kalshi_alerts_core::{
    async_trait, FiredAlert, Notifier, NotifierPlugin, NotifyError, Settings,
};

pub const NAME: &str = "log";

struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    async fn notify(&self, alert: &FiredAlert) -> Result<(), NotifyError> {
        tracing::info!(
            target: "kalshi_alerts::alert",
            ticker = %printable(&alert.ticker),
            condition = %alert.condition_type,
            threshold = %alert.threshold.normalize(),
            value = %alert.current_value.normalize(),
            label = %printable(&alert.label),
            condition_id = %alert.condition_id,
            "alert fired: {}",
            printable(&alert.summary())
        );
        Ok(())
    }
}

fn build(_: &Settings) -> Result<Box<dyn Notifier>, kalshi_alerts_core::notifier::SettingsError> {
    Ok(Box::new(LogNotifier))
}

kalshi_alerts_core::inventory::submit! {
    NotifierPlugin {
        name: NAME,
        description: "writes each alert as a structured log event (stderr, or the daemon's log)",
        settings: &[],
        build,
    }
}
