//! `kalshi alerts remove` and `prune`: delete one condition by id prefix, or
//! every expired one.

use std::process::ExitCode;

use kalshi_alerts_core::display::printable;
use kalshi_alerts_core::store::LookupError;

use super::Context;
use crate::error::{CliError, CliResult};
use crate::output::say;

pub fn run(context: &Context, id_prefix: &str) -> CliResult<ExitCode> {
    let store = context.store();
    if !store.path().exists() {
        return Err(CliError::usage(format!(
            "no alert condition has an id starting with {id_prefix:?}: there is no alerts file at {}",
            store.path().display()
        )));
    }
    let removed = store.update(|file| {
        let index = file.find(id_prefix).map_err(|e| match e {
            LookupError::NotFound(_) => CliError::usage(e.to_string()),
            LookupError::Ambiguous { .. } | LookupError::Shared { .. } => {
                CliError::invalid(e.to_string())
            }
        })?;
        Ok::<_, CliError>(file.conditions.remove(index))
    })??;

    say!(
        "Alert removed: {} ({})",
        printable(&removed.display_label()),
        printable(&removed.id.chars().take(8).collect::<String>())
    );
    super::hint_if_monitor_runs(context);
    Ok(ExitCode::SUCCESS)
}

/// Removes the conditions whose expiry has passed; the others, and any
/// whose expiry cannot be read, stay.
pub fn prune(context: &Context) -> CliResult<ExitCode> {
    let store = context.store();
    if !store.path().exists() {
        say!("No expired conditions.");
        return Ok(ExitCode::SUCCESS);
    }
    let now = chrono::Utc::now();
    let removed = store.update(|file| {
        let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut file.conditions)
            .into_iter()
            .partition(|c| c.is_expired(now));
        file.conditions = kept;
        Ok::<_, CliError>(expired)
    })??;

    if removed.is_empty() {
        say!("No expired conditions.");
        return Ok(ExitCode::SUCCESS);
    }
    say!("Removed {} expired condition(s):", removed.len());
    for condition in &removed {
        say!(
            "  {} {}",
            printable(&condition.id.chars().take(8).collect::<String>()),
            printable(&condition.display_label())
        );
    }
    super::hint_if_monitor_runs(context);
    Ok(ExitCode::SUCCESS)
}
