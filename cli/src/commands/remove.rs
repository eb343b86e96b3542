//! `kalshi alerts remove`: delete one condition by id prefix.

use std::process::ExitCode;

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
            LookupError::Ambiguous { .. } => CliError::invalid(e.to_string()),
        })?;
        Ok::<_, CliError>(file.conditions.remove(index))
    })??;

    say!(
        "Alert removed: {} ({})",
        removed.display_label(),
        removed.id.chars().take(8).collect::<String>()
    );
    super::hint_if_monitor_runs(context);
    Ok(ExitCode::SUCCESS)
}
