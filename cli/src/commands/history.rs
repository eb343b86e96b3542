//! `kalshi alerts history` and `rearm`: what fired and where it went, from
//! the state database; and forgetting that a condition fired.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use kalshi_alerts_core::display::printable;
use kalshi_alerts_core::state::{DeliveryStatus, HistoryEntry};
use kalshi_alerts_core::store::LookupError;
use kalshi_alerts_core::StateStore;

use super::Context;
use crate::error::{CliError, CliResult};
use crate::output::say;

pub fn history(context: &Context, since: Option<&str>, json: bool) -> CliResult<ExitCode> {
    let since = since.map(parse_since).transpose()?;
    let entries = match open(context)? {
        Some(state) => state
            .history(since)
            .map_err(|e| CliError::invalid(e.to_string()))?,
        None => Vec::new(),
    };
    if json {
        let text = serde_json::to_string_pretty(&entries).expect("history serialises");
        say!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        match since {
            Some(at) => say!(
                "No alerts fired since {}.",
                at.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            None => say!("No alerts fired yet."),
        }
        return Ok(ExitCode::SUCCESS);
    }
    for entry in &entries {
        show(entry);
    }
    Ok(ExitCode::SUCCESS)
}

/// `--since 2h` (a span back from now) or an RFC 3339 time.
fn parse_since(text: &str) -> CliResult<DateTime<Utc>> {
    let now = Utc::now();
    if let Ok(span) = humantime::parse_duration(text.trim()) {
        let span = chrono::Duration::from_std(span)
            .map_err(|_| CliError::invalid(format!("--since {text:?} is too far back")))?;
        return now
            .checked_sub_signed(span)
            .ok_or_else(|| CliError::invalid(format!("--since {text:?} is too far back")));
    }
    kalshi_alerts_core::condition::parse_timestamp(text.trim()).map_err(|_| {
        CliError::invalid(format!(
            "--since {text:?} is neither a duration (30m, 2h, 7d) nor an RFC 3339 time"
        ))
    })
}

fn show(entry: &HistoryEntry) {
    let alert = &entry.alert;
    say!(
        "{}  {}  {}",
        alert.triggered_at.format("%Y-%m-%d %H:%M:%S UTC"),
        printable(&alert.summary()),
        printable(&alert.label)
    );
    say!(
        "    alert {}  condition {}",
        alert.id,
        printable(&alert.condition_id.chars().take(8).collect::<String>())
    );
    for d in &entry.deliveries {
        let status = match d.status {
            DeliveryStatus::Pending => match d.next_attempt_at {
                Some(at) => format!("pending, next try {}", at.format("%Y-%m-%d %H:%M:%S UTC")),
                None => "pending".to_string(),
            },
            DeliveryStatus::Delivered => "delivered".to_string(),
            DeliveryStatus::Failed => "failed".to_string(),
            DeliveryStatus::GaveUp => "gave up".to_string(),
        };
        let error = d
            .last_error
            .as_deref()
            .map(|e| format!("; last error: {}", printable(e)))
            .unwrap_or_default();
        say!(
            "    -> {}: {status} ({} attempt(s){error})",
            printable(&d.instance),
            d.attempts
        );
    }
}

pub fn rearm(context: &Context, id_prefix: &str) -> CliResult<ExitCode> {
    let file = context.store().load()?;
    let index = file.find(id_prefix).map_err(|e| match e {
        LookupError::NotFound(_) => CliError::usage(e.to_string()),
        LookupError::Ambiguous { .. } | LookupError::Shared { .. } => {
            CliError::invalid(e.to_string())
        }
    })?;
    let condition = &file.conditions[index];
    let short = printable(&condition.id.chars().take(8).collect::<String>()).into_owned();
    let label = printable(&condition.display_label()).into_owned();
    // Without a database, no monitor ran here: nothing ever fired.
    let had_state = match open(context)? {
        Some(state) => state
            .rearm(&condition.id)
            .map_err(|e| CliError::invalid(e.to_string()))?,
        None => false,
    };
    if had_state {
        say!("Alert rearmed: {label} ({short}); it fires again at the next check that meets it.");
    } else {
        say!("Alert {label} ({short}) has not fired here yet; nothing to rearm.");
    }
    super::hint_if_monitor_runs(context);
    Ok(ExitCode::SUCCESS)
}

/// The state database, if a monitor ever ran in this data dir.
pub fn open(context: &Context) -> CliResult<Option<StateStore>> {
    StateStore::open_existing(&context.data_dir).map_err(|e| CliError::invalid(e.to_string()))
}
