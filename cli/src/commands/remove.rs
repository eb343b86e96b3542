//! `kalshi alerts remove`: delete one condition by id prefix.

use std::process::ExitCode;

use kalshi_alerts_core::store::LookupError;

use super::Context;
use crate::error::{CliError, CliResult};
use crate::output::say;

pub fn run(context: &Context, id_prefix: &str) -> CliResult<ExitCode> {
    let removed = context.store().update(|file| {
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
    Ok(ExitCode::SUCCESS)
}
