//! Notifier instances as the CLI sets them up: from the notifiers file,
//! plus the setting-less kinds and the `file` notifier that flags add.

use std::path::PathBuf;

use kalshi_alerts_core::notifier::{find_notifier, notifier_kinds};
use kalshi_alerts_core::notifiers_file::{Instance, NotifiersFile};
use kalshi_alerts_core::secret::mask;
use kalshi_alerts_core::{
    Condition, FailureKind, FiredAlert, NamedNotifier, NotifyError, Settings,
};

use super::Context;
use crate::error::{CliError, CliResult};

/// Loads the notifiers file of `context`, if there is one. Every problem in
/// it is reported, one per line.
pub fn load_file(context: &Context) -> CliResult<Option<NotifiersFile>> {
    load_notifiers(&context.notifiers_path, context.notifiers_explicit)
}

/// Loads the notifiers file at `path`; `explicit` when the user named it,
/// so that it must exist.
pub fn load_notifiers(path: &std::path::Path, explicit: bool) -> CliResult<Option<NotifiersFile>> {
    let env = |name: &str| std::env::var(name).ok();
    match NotifiersFile::load(path, &env) {
        Ok(None) if explicit => Err(CliError::invalid(format!(
            "notifiers file {} does not exist",
            path.display()
        ))),
        Ok(found) => {
            if found.is_some() && kalshi_alerts_core::private::readable_by_others(path) {
                tracing::warn!(
                    file = %path.display(),
                    "the notifiers file is readable by other users and may hold secrets; \
                     make it private with chmod 600"
                );
            }
            Ok(found)
        }
        Err(problems) => {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            Err(CliError::invalid(lines.join("\nerror: ")))
        }
    }
}

/// What a monitor delivers to: the file's instances and those flags add.
#[derive(Clone)]
pub struct Setup {
    pub file: Option<NotifiersFile>,
    /// Setting-less kinds to add as instances named after the kind.
    pub kinds: Vec<String>,
    pub output_file: Option<PathBuf>,
}

impl Setup {
    /// The instances, built. Called once to validate before a launcher
    /// runs, and again by the monitor itself.
    pub fn build(&self) -> CliResult<Vec<NamedNotifier>> {
        let mut built = match &self.file {
            Some(file) => file.build().map_err(|e| CliError::invalid(e.to_string()))?,
            None => Vec::new(),
        };
        // A flag never replaces or hides a configured instance.
        let mut add = |name: &str, kind: &str, settings: Settings, flag: &str| {
            if built.iter().any(|n| n.name == name) {
                return Err(CliError::invalid(format!(
                    "{flag} adds a notifier named {name:?}, and the notifiers file already has \
                     one; rename that instance"
                )));
            }
            built.push(adhoc(name, kind, settings)?);
            Ok(())
        };
        for kind in &self.kinds {
            add(kind, kind, Settings::new(), &format!("--notifier {kind}"))?;
        }
        if let Some(path) = &self.output_file {
            let mut settings = Settings::new();
            settings.insert("path".into(), path.to_string_lossy().into_owned().into());
            add(OUTPUT_FILE, "file", settings, "--output-file")?;
        }
        if built.is_empty() {
            return Err(CliError::invalid(
                "no notifier selected; alerts would reach no one (configure the notifiers file, \
                 or pass --notifier console,log)",
            ));
        }
        Ok(built)
    }
}

/// The name of the instance `--output-file` adds.
pub const OUTPUT_FILE: &str = "output-file";

fn adhoc(name: &str, kind: &str, settings: Settings) -> CliResult<NamedNotifier> {
    let plugin = find_notifier(kind).ok_or_else(|| {
        let known: Vec<_> = notifier_kinds().iter().map(|p| p.name()).collect();
        CliError::invalid(format!(
            "unknown notifier {kind:?}; registered notifiers: {}",
            known.join(", ")
        ))
    })?;
    let notifier = plugin.instantiate(&settings).map_err(|e| {
        let hint = match kind {
            "file" => " (use --output-file PATH)".to_string(),
            _ => " (configure it in the notifiers file)".to_string(),
        };
        CliError::invalid(format!("{e}{hint}"))
    })?;
    Ok(NamedNotifier::new(name, notifier))
}

/// Refuses conditions that route to instances that do not exist.
/// The instances a monitor delivers to, as routing sees them: each name,
/// and whether it receives the alerts of conditions that name none.
pub fn routes_of(instances: &[NamedNotifier]) -> Vec<(String, bool)> {
    instances
        .iter()
        .map(|i| (i.name.clone(), i.default))
        .collect()
}

/// Refuses conditions whose alerts would reach no one or name an instance
/// that is not there: at start, and on every reload of the conditions.
pub fn check_routes(conditions: &[Condition], instances: &[(String, bool)]) -> CliResult {
    let has_default = instances.iter().any(|(_, default)| *default);
    for condition in conditions {
        match &condition.notify {
            Some(names) if names.is_empty() => {
                return Err(CliError::invalid(format!(
                    "condition {} sends its alerts to an empty list of notifiers; they would \
                     reach no one (remove \"notify\" to use the defaults)",
                    condition.id
                )))
            }
            None if !has_default => {
                return Err(CliError::invalid(format!(
                    "condition {} names no notifier and no notifier is a default one; its \
                     alerts would reach no one (set default = true on an instance, or add the \
                     condition with --notify)",
                    condition.id
                )))
            }
            _ => {}
        }
        for name in condition.notify.iter().flatten() {
            if !instances.iter().any(|(known, _)| known == name) {
                let known: Vec<_> = instances.iter().map(|(n, _)| n.as_str()).collect();
                return Err(CliError::invalid(format!(
                    "condition {} sends its alerts to notifier {name:?}, which is not configured; \
                     configured notifiers: {}",
                    &condition.id,
                    known.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// What each instance's settings weaken (see `Notifier::warnings`), its
/// secrets masked.
pub fn warnings_of(instance: &NamedNotifier) -> Vec<String> {
    instance
        .notifier
        .warnings()
        .iter()
        .map(|warning| mask(warning, &instance.secrets))
        .collect()
}

/// Logs each instance's warnings with its name. Called once by each command
/// that builds instances to deliver through them, where the monitor's log
/// or the user's terminal gets it.
pub fn log_warnings(instances: &[NamedNotifier]) {
    for instance in instances {
        for warning in warnings_of(instance) {
            tracing::warn!(notifier = %instance.name, "{warning}");
        }
    }
}

/// The warnings of a configured instance, for a listing: built only to ask
/// (nothing is sent), and none when it cannot be built, which
/// `notifiers check` reports.
pub fn configured_warnings(instance: &Instance, file: &NotifiersFile) -> Vec<String> {
    instance
        .build(&file.path)
        .map(|built| warnings_of(&built))
        .unwrap_or_default()
}

/// Runs every instance's own check, each within its timeout, concurrently,
/// and returns the outcomes in the instances' order.
pub fn run_checks(instances: Vec<NamedNotifier>) -> Vec<(String, Result<(), NotifyError>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime starts");
    runtime.block_on(async {
        let tasks: Vec<_> = instances
            .into_iter()
            .map(|instance| tokio::spawn(check_one(instance)))
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.expect("a check task does not panic"));
        }
        outcomes
    })
}

async fn check_one(instance: NamedNotifier) -> (String, Result<(), NotifyError>) {
    let outcome = match tokio::time::timeout(instance.timeout, instance.notifier.check()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(NotifyError {
            message: mask(&e.message, &instance.secrets),
            ..e
        }),
        Err(_) => Err(NotifyError::retryable(format!(
            "check timed out after {}s",
            instance.timeout.as_secs_f64()
        ))),
    };
    (instance.name, outcome)
}

/// Says what a failure means for the person reading it.
pub fn describe_failure(error: &NotifyError) -> String {
    match error.kind {
        FailureKind::Retryable => format!("{} (retryable: may succeed later)", error.message),
        FailureKind::Permanent => format!(
            "{} (permanent: will fail the same way until the configuration or the receiver changes)",
            error.message
        ),
    }
}

/// The alert `notifiers test` sends: plainly a test, on a made-up market.
pub fn sample_alert() -> FiredAlert {
    FiredAlert::sample("sample alert from `kalshi notifiers test`")
}
