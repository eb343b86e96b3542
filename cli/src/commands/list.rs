//! `kalshi alerts list`: the stored conditions as a table or as JSON.

use std::collections::HashMap;
use std::process::ExitCode;

use chrono::Utc;
use kalshi_alerts_core::display::printable;
use kalshi_alerts_core::state::StoredCondition;
use kalshi_alerts_core::Condition;

use super::Context;
use crate::error::CliResult;
use crate::output::say;

pub fn run(context: &Context, json: bool) -> CliResult<ExitCode> {
    let file = context.store().load()?;
    if json {
        let text = serde_json::to_string_pretty(&file.conditions).expect("conditions serialise");
        say!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    if file.conditions.is_empty() {
        say!("No active alerts.");
        return Ok(ExitCode::SUCCESS);
    }
    // The state is shown when a monitor ever ran here; a database that
    // cannot be read costs the column, not the listing.
    let states = match super::history::open(context) {
        Ok(Some(state)) => state.conditions().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the monitor's state; STATE left blank");
            HashMap::new()
        }),
        Ok(None) => HashMap::new(),
        Err(e) => {
            tracing::warn!(error = %e.message, "cannot read the monitor's state; STATE left blank");
            HashMap::new()
        }
    };
    crate::output::text(&table(&file.conditions, &states));
    Ok(ExitCode::SUCCESS)
}

/// A plain-text table, columns padded to their widest cell.
fn table(conditions: &[Condition], states: &HashMap<String, StoredCondition>) -> String {
    let header = [
        "ID",
        "TYPE",
        "TICKER",
        "THRESHOLD",
        "LABEL",
        "EXPIRES",
        "NOTIFY",
        "REPEAT",
        "STATE",
    ]
    .map(String::from);
    let now = Utc::now();
    let rows: Vec<[String; 9]> = conditions
        .iter()
        .map(|c| {
            [
                c.id.chars().take(8).collect(),
                c.condition_type.to_string(),
                printable(&c.ticker).into_owned(),
                c.threshold.normalize().to_string(),
                printable(&c.label).into_owned(),
                expiry_cell(c, now),
                c.notify
                    .as_ref()
                    .map_or("default".to_string(), |n| n.join(",")),
                c.repeat_policy().to_string(),
                state_cell(c, states, now),
            ]
        })
        .collect();

    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
    // The label (4) gives way first, then the ticker (2); the rest is kept.
    crate::table::render(&header, &rows, crate::table::terminal_width(), &[4, 2])
}

/// What the monitor knows of the condition: expired, spent, when it last
/// fired, whether it holds.
fn state_cell(
    condition: &Condition,
    states: &HashMap<String, StoredCondition>,
    now: chrono::DateTime<Utc>,
) -> String {
    if condition.is_expired(now) {
        return "expired".into();
    }
    let stored = states
        .get(&condition.id)
        .filter(|s| s.fingerprint == condition.fingerprint());
    let Some(stored) = stored else {
        return "-".into();
    };
    let state = &stored.state;
    let fired = state
        .last_fired_at
        .map(|at| format!("fired {}", at.format("%Y-%m-%d %H:%M")));
    match (state.spent, fired, state.is_true) {
        (true, _, _) => "spent (alerts rearm)".into(),
        (false, Some(fired), true) => format!("holds, {fired}"),
        (false, Some(fired), false) => fired,
        (false, None, true) => "holds".into(),
        (false, None, false) => "armed".into(),
    }
}

fn expiry_cell(condition: &Condition, now: chrono::DateTime<Utc>) -> String {
    match (condition.expires_at.as_deref(), condition.expiry()) {
        (None, _) => "-".into(),
        (Some(raw), Err(_)) => format!("{raw} (unreadable)"),
        (Some(raw), Ok(_)) if condition.is_expired(now) => format!("{raw} (expired)"),
        (Some(raw), Ok(_)) => raw.to_string(),
    }
}
