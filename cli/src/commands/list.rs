//! `kalshi alerts list`: the stored conditions as a table or as JSON.

use std::process::ExitCode;

use chrono::Utc;
use kalshi_alerts_core::display::printable;
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
    crate::output::text(&table(&file.conditions));
    Ok(ExitCode::SUCCESS)
}

/// A plain-text table, columns padded to their widest cell.
fn table(conditions: &[Condition]) -> String {
    let header = [
        "ID",
        "TYPE",
        "TICKER",
        "THRESHOLD",
        "LABEL",
        "EXPIRES",
        "NOTIFY",
    ]
    .map(String::from);
    let now = Utc::now();
    let rows: Vec<[String; 7]> = conditions
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
            ]
        })
        .collect();

    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn expiry_cell(condition: &Condition, now: chrono::DateTime<Utc>) -> String {
    match (condition.expires_at.as_deref(), condition.expiry()) {
        (None, _) => "-".into(),
        (Some(raw), Err(_)) => format!("{raw} (unreadable)"),
        (Some(raw), Ok(_)) if condition.is_expired(now) => format!("{raw} (expired)"),
        (Some(raw), Ok(_)) => raw.to_string(),
    }
}
