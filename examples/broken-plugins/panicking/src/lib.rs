//! `panicking`: a deliberately broken notifier plugin. Its instances are
//! created fine, and every delivery panics. The SDK's glue catches the
//! panic at the C boundary and reports a permanent failure carrying the
//! panic's message; the tests check that the host logs it and keeps
//! running, and that other notifiers still deliver.

#![forbid(unsafe_code)]

use kalshi_alerts_sdk::{async_trait, FiredAlert, Notifier, NotifyError, Settings, SettingsError};

struct Panics;

#[async_trait]
impl Notifier for Panics {
    async fn notify(&self, alert: &FiredAlert) -> Result<(), NotifyError> {
        panic!("deliberate panic while delivering {}", alert.ticker);
    }
}

fn build(_: &Settings) -> Result<Box<dyn Notifier>, SettingsError> {
    Ok(Box::new(Panics))
}

kalshi_alerts_sdk::export_plugin! {
    name: "panicking",
    description: "panics on every alert (a broken plugin for tests)",
    settings: &[],
    build: build,
}
