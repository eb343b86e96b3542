//! Embeds the monitor in a program of its own: conditions built in code,
//! the bundled recorded market data as the source, and a notifier that
//! prints each alert as it fires. No files, no CLI, no network: without
//! `Monitor::use_state`, the state and the outbox live in memory.
//!
//! Run with `cargo run -p kalshi-alerts-examples --bin embed_replay`;
//! `examples/tests/embed_replay.rs` runs it and checks what it prints.

use std::time::Duration;

use kalshi_alerts_core::{
    async_trait, Condition, ConditionType, FiredAlert, Monitor, NamedNotifier, Notifier,
    NotifyError, RepeatPolicy, ReplaySource, RunOptions,
};

/// Prints one line per alert.
struct Print;

#[async_trait]
impl Notifier for Print {
    async fn notify(&self, alert: &FiredAlert) -> Result<(), NotifyError> {
        println!(
            "{}  {}",
            alert.triggered_at.format("%H:%M:%S"),
            alert.summary()
        );
        Ok(())
    }
}

/// A condition that fires once: the replayed prices hover around their
/// levels, and under the default policy (`rearm`) each crossing or move
/// would fire again.
fn condition(kind: ConditionType, ticker: &str, threshold: &str) -> Condition {
    Condition {
        id: format!("{ticker}:{kind}"),
        condition_type: kind,
        ticker: ticker.to_string(),
        scope: Default::default(),
        threshold: threshold.parse().expect("a decimal threshold"),
        label: String::new(),
        created_at: String::new(),
        expires_at: None,
        notify: None,
        repeat: Some(RepeatPolicy::Once),
        extra: Default::default(),
    }
}

#[tokio::main]
async fn main() {
    let conditions = vec![
        condition(ConditionType::PriceAbove, "AITURING", "0.6"),
        condition(ConditionType::PriceCrosses, "HIGHAUS-24JUL13-T90", "0.4"),
        condition(ConditionType::EdgeDetected, "HIGHNY-24JUL13-B86.5", "0.2"),
    ];
    let notifiers = vec![NamedNotifier::new("print", Box::new(Print))];
    let mut monitor = Monitor::new(Box::new(ReplaySource::bundled()), conditions, notifiers);

    let options = RunOptions {
        interval: Duration::ZERO,
        max_cycles: None,
    };
    let report = monitor.run(&options, std::future::pending()).await;
    println!(
        "{} cycles, {} alerts, stopped by {:?}",
        report.cycles, report.alerts_fired, report.stop
    );
}
