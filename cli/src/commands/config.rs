//! `kalshi config show`: each setting's value and where it came from.

use std::process::ExitCode;

use serde_json::json;

use super::Context;
use crate::config::{user_file, Source, Sources};
use crate::error::CliResult;
use crate::output::say;

/// The interval `alerts monitor` uses when nothing sets it.
const DEFAULT_INTERVAL: u64 = 60;

pub fn show(context: &Context, sources: &Sources, json: bool) -> CliResult<ExitCode> {
    let notifiers_source = match (&sources.notifiers, context.notifiers_explicit) {
        (Source::Default, _) => "default (in the data dir)".to_string(),
        (source, _) => source.to_string(),
    };
    let interval = sources.file_interval.unwrap_or(DEFAULT_INTERVAL);
    let rows = [
        (
            "env",
            context.environment.to_string(),
            sources.env.to_string(),
        ),
        (
            "data_dir",
            context.data_dir.display().to_string(),
            sources.data_dir.to_string(),
        ),
        (
            "notifiers",
            context.notifiers_path.display().to_string(),
            notifiers_source,
        ),
        (
            "interval",
            interval.to_string(),
            sources.interval.to_string(),
        ),
    ];
    let user = user_file();
    if json {
        let mut settings = serde_json::Map::new();
        for (key, value, source) in &rows {
            settings.insert(key.to_string(), json!({ "value": value, "source": source }));
        }
        let shown = json!({
            "settings": settings,
            "files_read": sources.files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "user_file": user.as_ref().map(|p| p.display().to_string()),
            "data_dir_file": context.data_dir.join(crate::config::FILE_NAME).display().to_string(),
        });
        say!("{shown:#}");
        return Ok(ExitCode::SUCCESS);
    }
    let width = rows
        .iter()
        .map(|(_, v, _)| v.chars().count())
        .max()
        .unwrap_or(0);
    for (key, value, source) in &rows {
        say!("{key:<9}  {value:<width$}  {source}");
    }
    say!("");
    let state = |path: &std::path::Path| {
        if sources.files.iter().any(|p| p == path) {
            "read"
        } else {
            "absent"
        }
    };
    let local = context.data_dir.join(crate::config::FILE_NAME);
    say!("Config files, the first wins:");
    say!("  {} ({})", local.display(), state(&local));
    match &user {
        Some(path) => say!("  {} ({})", path.display(), state(path)),
        None => say!("  (no user config file: neither XDG_CONFIG_HOME nor HOME is set)"),
    }
    Ok(ExitCode::SUCCESS)
}
