//! `kalshi alerts list`: the stored conditions as a table or as JSON. An
//! event or series condition shows its scope before its ticker, and its
//! state summed over the markets of the scope.

use std::collections::HashMap;
use std::process::ExitCode;

use chrono::Utc;
use kalshi_alerts_core::state::StoredCondition;
use kalshi_alerts_core::{Condition, ConditionState, Scope};

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
    crate::output::text(&table(&file.conditions, &States::of(&states)));
    Ok(ExitCode::SUCCESS)
}

/// What the state database knows, by condition id: a market condition's
/// one state, or an event or series condition's state on each market of
/// its scope (stored under `ID@TICKER`).
struct States<'a>(HashMap<&'a str, Vec<&'a StoredCondition>>);

impl<'a> States<'a> {
    fn of(stored: &'a HashMap<String, StoredCondition>) -> States<'a> {
        let mut by_id: HashMap<&str, Vec<&StoredCondition>> = HashMap::new();
        for (key, state) in stored {
            // Tickers have no '@'; an id from another tool might.
            let id = key.rsplit_once('@').map_or(key.as_str(), |(id, _)| id);
            by_id.entry(id).or_default().push(state);
        }
        States(by_id)
    }

    /// The states of `condition` as it stands now: one written for an
    /// earlier version of it (another type, ticker or threshold) is stale.
    fn of_condition(&self, condition: &Condition) -> Vec<&ConditionState> {
        let fingerprint = condition.fingerprint();
        self.0
            .get(condition.id.as_str())
            .into_iter()
            .flatten()
            .filter(|s| s.fingerprint == fingerprint)
            .map(|s| &s.state)
            .collect()
    }
}

/// A plain-text table, columns padded to their widest cell.
fn table(conditions: &[Condition], states: &States) -> String {
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
                watched_cell(c),
                c.threshold.normalize().to_string(),
                c.label.clone(),
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

/// The market's ticker, or `event:TICKER` / `series:TICKER`.
fn watched_cell(condition: &Condition) -> String {
    let ticker = &condition.ticker;
    match condition.scope {
        Scope::Market => ticker.clone(),
        scope => format!("{scope}:{ticker}"),
    }
}

/// What the monitor knows of the condition: expired, spent, when it last
/// fired, whether it holds. For an event or series condition: on how many
/// of the scope's markets it is spent or holds, and when it last fired on
/// any of them.
fn state_cell(condition: &Condition, states: &States, now: chrono::DateTime<Utc>) -> String {
    if condition.is_expired(now) {
        return "expired".into();
    }
    let states = states.of_condition(condition);
    if states.is_empty() {
        return "-".into();
    }
    let fired = states
        .iter()
        .filter_map(|s| s.last_fired_at)
        .max()
        .map(|at| format!("fired {}", at.format("%Y-%m-%d %H:%M")));
    let spent = states.iter().filter(|s| s.spent).count();
    let holding = states.iter().filter(|s| s.is_true).count();
    // "on N" only where a scope makes the count mean something.
    let on = |n: usize| match condition.scope {
        Scope::Market => String::new(),
        _ => format!(" on {n}"),
    };
    match (spent, fired, holding) {
        (1.., _, _) => format!("spent{} (alerts rearm)", on(spent)),
        (0, Some(fired), 1..) => format!("holds{}, {fired}", on(holding)),
        (0, Some(fired), 0) => fired,
        (0, None, 1..) => format!("holds{}", on(holding)),
        (0, None, 0) => "armed".into(),
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
