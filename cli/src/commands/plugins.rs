//! Run-time plugins: loading them for the commands that use the notifier
//! registry, and `kalshi plugins list`.

use std::process::ExitCode;

use kalshi_alerts_core::abi::ABI_VERSION;
use kalshi_alerts_core::plugin_host::{self, PluginSources, PLUGIN_PATH_ENV};
use serde_json::json;

use super::Context;
use crate::error::CliResult;
use crate::output::say;

/// Where this run's plugins come from: `KALSHI_PLUGIN_PATH`, else the
/// notifiers file's `plugin_dir`, else `plugins/` in the data dir; plus the
/// libraries the notifiers file's instances name.
pub fn sources(context: &Context) -> PluginSources {
    PluginSources::resolve(
        &context.data_dir,
        &context.notifiers_path,
        std::env::var_os(PLUGIN_PATH_ENV),
    )
}

/// Loads this run's plugins into the registry. A file that is refused is
/// logged with the reason and left out; the notifiers file fails later
/// only if an instance needs it.
pub fn load(context: &Context) {
    sources(context).load();
}

pub fn list(_context: &Context, as_json: bool) -> CliResult<ExitCode> {
    let record = plugin_host::record();
    if as_json {
        // Paths need not be UTF-8; JSON strings must be.
        let shown = |path: &std::path::Path| path.to_string_lossy().into_owned();
        let listing = json!({
            "host_abi_version": ABI_VERSION,
            "directories": record.directories.iter().map(|d| shown(d)).collect::<Vec<_>>(),
            "loaded": record.loaded.iter().map(|p| json!({
                "path": shown(&p.path),
                "abi_version": p.abi_version,
                "notifiers": p.kinds,
            })).collect::<Vec<_>>(),
            "refused": record.refused.iter().map(|r| json!({
                "path": shown(&r.path),
                "reason": r.reason,
            })).collect::<Vec<_>>(),
        });
        say!("{listing:#}");
        return Ok(ExitCode::SUCCESS);
    }

    let dirs: Vec<String> = record
        .directories
        .iter()
        .map(|d| match d.is_dir() {
            true => d.display().to_string(),
            false => format!("{} (does not exist)", d.display()),
        })
        .collect();
    say!(
        "Plugin directories: {} (this program speaks plugin ABI {ABI_VERSION})",
        if dirs.is_empty() {
            "none".to_string()
        } else {
            dirs.join(", ")
        }
    );
    say!("");
    if record.loaded.is_empty() {
        say!("No plugin loaded.");
    } else {
        say!("Loaded:");
        for plugin in &record.loaded {
            say!("  {}", plugin.path.display());
            say!(
                "      ABI {}, notifiers: {}",
                plugin.abi_version,
                plugin.kinds.join(", ")
            );
        }
    }
    if !record.refused.is_empty() {
        say!("");
        say!("Refused:");
        for refusal in &record.refused {
            say!("  {}", refusal.path.display());
            say!("      {}", refusal.reason);
        }
    }
    Ok(ExitCode::SUCCESS)
}
