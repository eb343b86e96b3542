//! The `console` notifier: a readable block per alert on standard output.

use std::io::Write;

use kalshi_alerts_core::display::printable;
use kalshi_alerts_core::notifier::SettingsError;
use kalshi_alerts_core::price::{format_price, Price};
use kalshi_alerts_core::{
    async_trait, FiredAlert, Notifier, NotifierPlugin, NotifyError, Settings,
};

pub const NAME: &str = "console";

struct ConsoleNotifier;

/// The block printed for one alert.
pub fn render(alert: &FiredAlert) -> String {
    let market = &alert.market_data;
    let price = |p: Option<Price>| p.map_or_else(|| "-".to_string(), format_price);
    // Title and label come from outside (the API, a hand-edited file).
    let mut block = format!("ALERT {}\n", printable(&alert.ticker));
    if !market.title.is_empty() {
        block.push_str(&format!("  {}\n", printable(&market.title)));
    }
    if !alert.label.is_empty() {
        block.push_str(&format!("  label:     {}\n", printable(&alert.label)));
    }
    block.push_str(&format!("  fired:     {}\n", printable(&alert.summary())));
    block.push_str(&format!(
        "  quote:     bid {} / ask {}, volume {}\n",
        price(market.yes_bid),
        price(market.yes_ask),
        market
            .volume
            .map_or_else(|| "-".to_string(), |v| v.normalize().to_string())
    ));
    block.push_str(&format!(
        "  at:        {}\n",
        alert.triggered_at.format("%Y-%m-%d %H:%M:%S UTC")
    ));
    block.push_str(&format!("  condition: {}\n", alert.condition_id));
    block
}

#[async_trait]
impl Notifier for ConsoleNotifier {
    async fn notify(&self, alert: &FiredAlert) -> Result<(), NotifyError> {
        let block = render(alert) + "\n";
        // Writing may block (a pipe nobody reads): never on a runtime worker.
        let written = tokio::task::spawn_blocking(move || {
            let mut out = std::io::stdout().lock();
            out.write_all(block.as_bytes()).and_then(|()| out.flush())
        })
        .await
        .map_err(|e| NotifyError::retryable(format!("writer task failed: {e}")))?;
        written.map_err(|e| super::write_failure("cannot write to standard output".into(), &e))
    }
}

fn build(_: &Settings) -> Result<Box<dyn Notifier>, SettingsError> {
    Ok(Box::new(ConsoleNotifier))
}

kalshi_alerts_core::inventory::submit! {
    NotifierPlugin {
        name: NAME,
        description: "prints a readable block per alert on standard output",
        settings: &[],
        build,
    }
}
