//! `kalshi notifiers list|check|test`: what can deliver alerts, and whether it works.

use std::process::ExitCode;

use kalshi_alerts_core::notifier::{notifier_kinds, NotifierKind, SettingSpec};
use kalshi_alerts_core::notifiers_file::{Instance, NotifiersFile};
use serde_json::{json, Value};

use super::instances::{
    configured_warnings, describe_failure, load_file, log_warnings, run_checks, sample_alert,
    warnings_of,
};
use super::Context;
use crate::error::{CliError, CliResult};
use crate::output::{say, text};

pub fn list(context: &Context, as_json: bool) -> CliResult<ExitCode> {
    let file = load_file(context)?;
    if as_json {
        let listing = json!({
            "kinds": notifier_kinds().iter().map(|p| kind_json(*p)).collect::<Vec<_>>(),
            "file": context.notifiers_path,
            "instances": file.iter().flat_map(|f| f.instances.iter().map(|i| instance_json(i, f))).collect::<Vec<_>>(),
        });
        say!(
            "{}",
            serde_json::to_string_pretty(&listing).expect("listing serialises")
        );
        return Ok(ExitCode::SUCCESS);
    }

    say!("Notifier kinds:");
    for plugin in notifier_kinds() {
        let origin = plugin.origin();
        if origin == "built in" {
            say!(
                "  {:<10} {}",
                plugin.name(),
                kalshi_alerts_core::display::printable(plugin.description())
            );
        } else {
            say!(
                "  {:<10} {} [plugin {origin}]",
                plugin.name(),
                kalshi_alerts_core::display::printable(plugin.description())
            );
        }
        for spec in plugin.settings() {
            say!("      {:<16} {}", spec.name, setting_summary(spec));
        }
    }
    say!("");
    match &file {
        None => {
            say!("No notifiers file at {}.", context.notifiers_path.display());
            say!("Without one, the monitor delivers to console and log.");
        }
        Some(file) if file.instances.is_empty() => {
            say!("{} configures no notifier.", file.path.display());
        }
        Some(file) => {
            say!("Configured in {}:", file.path.display());
            for instance in &file.instances {
                text(&describe_instance(
                    instance,
                    &configured_warnings(instance, file),
                ));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn check(context: &Context) -> CliResult<ExitCode> {
    let Some(file) = load_file(context)? else {
        say!(
            "No notifiers file at {}; the monitor delivers to console and log.",
            context.notifiers_path.display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    if file.instances.is_empty() {
        return Err(CliError::invalid(format!(
            "{} configures no notifier; alerts would reach no one",
            file.path.display()
        )));
    }
    let built = file.build().map_err(|e| CliError::invalid(e.to_string()))?;
    let warnings: Vec<Vec<String>> = built.iter().map(warnings_of).collect();
    let outcomes = run_checks(built);

    let mut failed = 0;
    for ((instance, (_, outcome)), warnings) in file.instances.iter().zip(&outcomes).zip(warnings) {
        let role = if instance.default {
            "default"
        } else {
            "on request"
        };
        match outcome {
            Ok(()) => say!(
                "ok      {} ({}, {role})",
                instance.name,
                instance.kind.name()
            ),
            Err(e) => {
                failed += 1;
                say!(
                    "FAILED  {} ({}): {}",
                    instance.name,
                    instance.kind.name(),
                    describe_failure(e)
                );
            }
        }
        for warning in warnings {
            say!("        warning: {warning}");
        }
    }
    if failed > 0 {
        return Err(CliError::invalid(format!(
            "{failed} of {} notifier(s) in {} cannot deliver",
            outcomes.len(),
            file.path.display()
        )));
    }
    let defaults: Vec<&str> = file
        .instances
        .iter()
        .filter(|i| i.default)
        .map(|i| i.name.as_str())
        .collect();
    say!(
        "{} notifier(s) ready; alerts of conditions without --notify go to: {}",
        outcomes.len(),
        if defaults.is_empty() {
            "nobody".to_string()
        } else {
            defaults.join(", ")
        }
    );
    Ok(ExitCode::SUCCESS)
}

pub fn test(context: &Context, name: &str) -> CliResult<ExitCode> {
    let file = load_file(context)?.ok_or_else(|| {
        CliError::invalid(format!(
            "no notifiers file at {}; configure the notifier {name:?} there first",
            context.notifiers_path.display()
        ))
    })?;
    let instance = file.find(name).ok_or_else(|| {
        let known: Vec<&str> = file.instances.iter().map(|i| i.name.as_str()).collect();
        CliError::usage(format!(
            "no notifier named {name:?} in {}; configured: {}",
            file.path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
    })?;
    let notifier = instance
        .build(&file.path)
        .map_err(|e| CliError::invalid(e.to_string()))?;
    log_warnings(std::slice::from_ref(&notifier));

    let alert = sample_alert();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime starts");
    match runtime.block_on(notifier.attempt(std::slice::from_ref(&alert))) {
        Ok(()) => {
            say!(
                "Sent a sample alert through {name} ({}).",
                instance.kind.name()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(CliError::invalid(format!(
            "sending a sample alert through {name} ({}) failed: {}",
            instance.kind.name(),
            describe_failure(&e)
        ))),
    }
}

/// The settings reference of docs/notifiers.md, from the registry.
pub fn docs() -> CliResult<ExitCode> {
    text(&reference_markdown());
    Ok(ExitCode::SUCCESS)
}

pub fn reference_markdown() -> String {
    let mut out = String::new();
    for plugin in notifier_kinds() {
        out.push_str(&format!(
            "### `{}`\n\n{}.\n\n",
            plugin.name(),
            capitalise(&kalshi_alerts_core::display::printable(
                plugin.description()
            ))
        ));
        if plugin.settings().is_empty() {
            out.push_str("No settings.\n\n");
            continue;
        }
        out.push_str("| setting | type | default | required | secret | meaning |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for spec in plugin.settings() {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} |\n",
                spec.name,
                spec.kind,
                spec.default.map_or("-".to_string(), |d| format!("`{d}`")),
                if spec.required { "yes" } else { "no" },
                if spec.secret { "yes" } else { "no" },
                spec.help.replace('|', "\\|")
            ));
        }
        out.push('\n');
    }
    out
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn setting_summary(spec: &SettingSpec) -> String {
    let mut facts = vec![spec.kind.to_string()];
    if spec.required {
        facts.push("required".into());
    }
    if let Some(default) = spec.default {
        facts.push(format!("default {default}"));
    }
    if spec.secret {
        facts.push("secret".into());
    }
    format!("{} ({})", spec.help, facts.join(", "))
}

fn describe_instance(instance: &Instance, warnings: &[String]) -> String {
    let role = if instance.default {
        "default"
    } else {
        "on request"
    };
    let mut out = format!(
        "  {} ({}, {role}, timeout {}s, retried for {})\n",
        instance.name,
        instance.kind.name(),
        instance.timeout.as_secs_f64(),
        humantime::format_duration(instance.max_age)
    );
    for (key, value) in instance.shown_settings() {
        out.push_str(&format!("      {key} = {value}\n"));
    }
    for warning in warnings {
        out.push_str(&format!("      warning: {warning}\n"));
    }
    out
}

fn kind_json(plugin: &dyn NotifierKind) -> Value {
    json!({
        "name": plugin.name(),
        "description": plugin.description(),
        "origin": plugin.origin(),
        "settings": plugin.settings().iter().map(|s| json!({
            "name": s.name,
            "type": s.kind.to_string(),
            "default": s.default,
            "required": s.required,
            "secret": s.secret,
            "help": s.help,
        })).collect::<Vec<_>>(),
    })
}

fn instance_json(instance: &Instance, file: &NotifiersFile) -> Value {
    json!({
        "name": instance.name,
        "kind": instance.kind.name(),
        "default": instance.default,
        "timeout_secs": instance.timeout.as_secs_f64(),
        "max_delivery_age_secs": instance.max_age.as_secs(),
        "settings": instance.shown_settings(),
        "warnings": configured_warnings(instance, file),
    })
}
