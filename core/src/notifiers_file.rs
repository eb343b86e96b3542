//! The notifiers file: named notifier instances and their settings.
//!
//! `notifiers.toml` lists `[[notifier]]` tables, each with a `name`, a
//! `kind` (a registered notifier), whether it receives alerts by `default`,
//! an optional `timeout` in seconds, an optional `max_delivery_age` (how
//! long a failing delivery is retried, `"24h"` by default), and the kind's
//! own settings. Loading
//! validates everything and reports every problem with the file, the
//! instance and the key; only a file without problems builds notifiers.
//!
//! A setting can be read from the environment (`password = { env =
//! "SMTP_PASSWORD" }`). A setting its kind marks secret must be given that
//! way unless the file says `allow_plaintext_secrets = true`; either way its
//! value is masked wherever an instance is shown.
//!
//! Kinds can come from plugin libraries loaded at run time (see
//! [`crate::plugin_host`]): a top-level `plugin_dir = "dir"` says where the
//! plugin directory is, and an instance's `plugin = "path"` names the
//! library its kind comes from, loading it if need be. Both paths are
//! relative to the file. An instance whose library was refused fails with
//! the file's path and the reason.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::dispatch::NamedNotifier;
use crate::notifier::{find_notifier, notifier_kinds, validate_settings, NotifierKind, Settings};
use crate::secret::MASK;

/// The file's name inside the data directory.
pub const FILE_NAME: &str = "notifiers.toml";

/// One problem in the notifiers file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// The instance's name, or its position when it has none.
    pub instance: Option<String>,
    pub key: Option<String>,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "notifiers file {}", self.file.display())?;
        if let Some(instance) = &self.instance {
            write!(f, ": notifier {instance}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key {key}")?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// A notifier instance as configured, secrets resolved.
#[derive(Debug, Clone)]
pub struct Instance {
    pub name: String,
    pub kind: &'static dyn NotifierKind,
    pub default: bool,
    pub timeout: Duration,
    /// How long a failing delivery is retried (`max_delivery_age`).
    pub max_age: Duration,
    /// The kind's settings, with values read from the environment and
    /// defaults filled in.
    pub settings: Settings,
    /// The values of secret settings, to mask.
    pub secrets: Vec<String>,
}

impl Instance {
    /// The settings as they may be shown: secret values masked.
    pub fn shown_settings(&self) -> Settings {
        let mut shown = Settings::new();
        for (key, value) in &self.settings {
            let secret = self
                .kind
                .settings()
                .iter()
                .any(|s| s.name == key && s.secret);
            let value = if secret {
                Value::String(MASK.to_string())
            } else {
                value.clone()
            };
            shown.insert(key.clone(), value);
        }
        shown
    }

    /// Builds the notifier. The kind's own checks (an address, a URL) may
    /// still refuse the settings here.
    pub fn build(&self, file: &Path) -> Result<NamedNotifier, ConfigError> {
        let notifier = self.kind.build(&self.settings).map_err(|e| ConfigError {
            file: file.to_path_buf(),
            instance: Some(quoted(&self.name)),
            key: Some(e.key),
            problem: crate::secret::mask(&e.problem, &self.secrets),
        })?;
        Ok(NamedNotifier {
            name: self.name.clone(),
            notifier,
            default: self.default,
            timeout: self.timeout,
            secrets: self.secrets.clone(),
            max_age: self.max_age,
        })
    }
}

/// The loaded, validated notifiers file.
#[derive(Debug, Clone)]
pub struct NotifiersFile {
    pub path: PathBuf,
    pub instances: Vec<Instance>,
    /// The plugin directory the file names (`plugin_dir`), resolved
    /// against the file's directory.
    pub plugin_dir: Option<PathBuf>,
}

/// The plugin libraries a notifiers file refers to, read without
/// validating anything else: what must be loaded before the file itself can
/// be validated, since its instances may use the kinds they provide.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginReferences {
    /// `plugin_dir`, resolved against the file's directory.
    pub plugin_dir: Option<PathBuf>,
    /// Each instance's `plugin`, resolved against the file's directory, in
    /// file order.
    pub plugins: Vec<PathBuf>,
}

/// Reads the plugin references of the notifiers file at `path`. A missing
/// or broken file refers to nothing; [`NotifiersFile::load`] reports its
/// problems.
pub fn plugin_references(path: &Path) -> PluginReferences {
    let Ok(text) = std::fs::read_to_string(path) else {
        return PluginReferences::default();
    };
    let Ok(table) = text.parse::<toml::Table>() else {
        return PluginReferences::default();
    };
    let file_dir = path.parent().unwrap_or(Path::new("."));
    let plugin_dir = table
        .get("plugin_dir")
        .and_then(toml::Value::as_str)
        .filter(|d| !d.trim().is_empty())
        .map(|d| file_dir.join(d));
    let plugins = table
        .get("notifier")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.get("plugin")?.as_str())
        .filter(|p| !p.trim().is_empty())
        .map(|p| file_dir.join(p))
        .collect();
    PluginReferences {
        plugin_dir,
        plugins,
    }
}

impl NotifiersFile {
    /// Reads and validates `path`, taking `{ env = "NAME" }` values from
    /// `env`. `Ok(None)` when the file does not exist. Every problem found
    /// is returned, not just the first.
    pub fn load(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<NotifiersFile>, Vec<ConfigError>> {
        let fail = |problem: String| {
            vec![ConfigError {
                file: path.to_path_buf(),
                instance: None,
                key: None,
                problem,
            }]
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(fail(format!("cannot be read: {e}"))),
        };
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| fail(describe_toml_error(&text, &e)))?;
        parse(path, table, env).map(Some)
    }

    /// Builds every instance; the first refusal is returned.
    pub fn build(&self) -> Result<Vec<NamedNotifier>, ConfigError> {
        self.instances.iter().map(|i| i.build(&self.path)).collect()
    }

    pub fn find(&self, name: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.name == name)
    }
}

fn parse(
    path: &Path,
    mut table: toml::Table,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<NotifiersFile, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let error = |instance: Option<String>, key: Option<&str>, problem: String| ConfigError {
        file: path.to_path_buf(),
        instance,
        key: key.map(str::to_string),
        problem,
    };

    let allow_plaintext = match table.remove("allow_plaintext_secrets") {
        None => false,
        Some(toml::Value::Boolean(b)) => b,
        Some(other) => {
            errors.push(error(
                None,
                Some("allow_plaintext_secrets"),
                format!("expected true or false, got {other}"),
            ));
            false
        }
    };
    let file_dir = path.parent().unwrap_or(Path::new("."));
    let plugin_dir = match table.remove("plugin_dir") {
        None => None,
        Some(toml::Value::String(dir)) if !dir.trim().is_empty() => Some(file_dir.join(dir)),
        Some(other) => {
            errors.push(error(
                None,
                Some("plugin_dir"),
                format!("expected the path of a directory, got {other}"),
            ));
            None
        }
    };
    let entries = match table.remove("notifier") {
        None => Vec::new(),
        Some(toml::Value::Array(entries)) => entries,
        Some(_) => {
            errors.push(error(
                None,
                Some("notifier"),
                "expected [[notifier]] tables".into(),
            ));
            Vec::new()
        }
    };
    for key in table.keys() {
        errors.push(error(
            None,
            Some(key),
            "unknown top-level key; expected [[notifier]] tables, allow_plaintext_secrets \
             and plugin_dir"
                .into(),
        ));
    }

    let mut instances = Vec::new();
    let mut names = HashSet::new();
    for (position, entry) in entries.into_iter().enumerate() {
        let toml::Value::Table(entry) = entry else {
            errors.push(error(
                Some(format!("#{}", position + 1)),
                None,
                "expected a table".into(),
            ));
            continue;
        };
        if let Some(name) = entry.get("name").and_then(toml::Value::as_str) {
            if !names.insert(name.to_string()) {
                errors.push(error(
                    Some(quoted(name)),
                    Some("name"),
                    "another notifier already has this name; names must be unique".into(),
                ));
            }
        }
        match parse_instance(entry, position, allow_plaintext, env, file_dir) {
            Ok(instance) => instances.push(instance),
            Err(found) => errors.extend(
                found
                    .into_iter()
                    .map(|(instance, key, problem)| error(Some(instance), key.as_deref(), problem)),
            ),
        }
    }

    if errors.is_empty() {
        Ok(NotifiersFile {
            path: path.to_path_buf(),
            instances,
            plugin_dir,
        })
    } else {
        Err(errors)
    }
}

type Problems = Vec<(String, Option<String>, String)>;

fn parse_instance(
    mut entry: toml::Table,
    position: usize,
    allow_plaintext: bool,
    env: &dyn Fn(&str) -> Option<String>,
    file_dir: &Path,
) -> Result<Instance, Problems> {
    let mut problems: Problems = Vec::new();
    let name = match entry.remove("name") {
        Some(toml::Value::String(name)) if is_instance_name(&name) => name,
        Some(_) => {
            problems.push((
                format!("#{}", position + 1),
                Some("name".into()),
                "expected a name of letters, digits, '.', '_' and '-' (at most 64)".into(),
            ));
            format!("#{}", position + 1)
        }
        None => {
            problems.push((
                format!("#{}", position + 1),
                Some("name".into()),
                "missing; every notifier needs a unique name".into(),
            ));
            format!("#{}", position + 1)
        }
    };
    let label = if problems.is_empty() {
        quoted(&name)
    } else {
        name.clone()
    };
    let mut problem =
        |key: &str, text: String| problems.push((label.clone(), Some(key.to_string()), text));

    let kinds = || {
        notifier_kinds()
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    // The library an instance names is loaded before its kind is looked up.
    let mut plugin_refused = false;
    let plugin = match entry.remove("plugin") {
        None => None,
        Some(toml::Value::String(text)) if !text.trim().is_empty() => {
            match crate::plugin_host::load_file(&file_dir.join(text)) {
                Ok(loaded) => Some(loaded),
                Err(refusal) => {
                    plugin_refused = true;
                    problem(
                        "plugin",
                        format!(
                            "plugin {} cannot be used: {}",
                            refusal.path.display(),
                            refusal.reason
                        ),
                    );
                    None
                }
            }
        }
        Some(other) => {
            plugin_refused = true;
            problem(
                "plugin",
                format!("expected the path of a plugin library, got {other}"),
            );
            None
        }
    };
    let kind = match entry.remove("kind") {
        Some(toml::Value::String(_)) if plugin_refused => None,
        Some(toml::Value::String(kind)) => match find_notifier(&kind) {
            Some(found) => match &plugin {
                Some(loaded) if !loaded.kinds.contains(&kind) => {
                    problem(
                        "kind",
                        format!(
                            "plugin {} provides the notifier kind(s) {}, not {kind:?}",
                            loaded.path.display(),
                            loaded.kinds.join(", ")
                        ),
                    );
                    None
                }
                _ => Some(found),
            },
            None => {
                problem(
                    "kind",
                    format!(
                        "unknown notifier kind {kind:?}; registered kinds: {}{}",
                        kinds(),
                        refused_plugins()
                    ),
                );
                None
            }
        },
        Some(other) => {
            problem("kind", format!("expected a string, got {other}"));
            None
        }
        None => {
            problem("kind", format!("missing; one of: {}", kinds()));
            None
        }
    };
    let default = match entry.remove("default") {
        None => true,
        Some(toml::Value::Boolean(b)) => b,
        Some(other) => {
            problem("default", format!("expected true or false, got {other}"));
            true
        }
    };
    let timeout = match entry.remove("timeout") {
        None => crate::notifier::DELIVERY_TIMEOUT,
        Some(toml::Value::Integer(secs)) if (1..=600).contains(&secs) => {
            Duration::from_secs(secs as u64)
        }
        Some(toml::Value::Float(secs)) if (1.0..=600.0).contains(&secs) => {
            Duration::from_secs_f64(secs)
        }
        Some(other) => {
            problem(
                "timeout",
                format!("expected seconds between 1 and 600, got {other}"),
            );
            crate::notifier::DELIVERY_TIMEOUT
        }
    };
    let max_age = match entry.remove("max_delivery_age") {
        None => crate::dispatch::MAX_DELIVERY_AGE,
        Some(toml::Value::String(text)) => match humantime::parse_duration(text.trim()) {
            Ok(span)
                if span >= Duration::from_secs(1) && chrono::Duration::from_std(span).is_ok() =>
            {
                span
            }
            Ok(span) if span >= Duration::from_secs(1) => {
                problem(
                    "max_delivery_age",
                    format!("{text:?} is too long; a year or two is plenty"),
                );
                crate::dispatch::MAX_DELIVERY_AGE
            }
            Ok(_) => {
                problem(
                    "max_delivery_age",
                    format!("{text:?} is under a second; deliveries are retried for at least one"),
                );
                crate::dispatch::MAX_DELIVERY_AGE
            }
            Err(e) => {
                problem(
                    "max_delivery_age",
                    format!("expected a duration (30m, 24h, 7d), got {text:?}: {e}"),
                );
                crate::dispatch::MAX_DELIVERY_AGE
            }
        },
        Some(other) => {
            problem(
                "max_delivery_age",
                format!("expected a duration as a string (\"24h\"), got {other}"),
            );
            crate::dispatch::MAX_DELIVERY_AGE
        }
    };

    let Some(kind) = kind else {
        return Err(problems);
    };
    let mut settings = Settings::new();
    let mut secrets = Vec::new();
    // Values read from the environment are not shown in problems either:
    // a variable may hold a secret even when the key it fills is not one.
    let mut from_env = Vec::new();
    let mut refused_keys = Vec::new();
    for (key, value) in entry {
        let spec = kind.settings().iter().find(|s| s.name == key);
        let secret = spec.is_some_and(|s| s.secret);
        let kind_of = spec.map(|s| s.kind);
        match resolve_value(&value, secret, allow_plaintext, env, kind_of) {
            Ok(resolved) => {
                if secret {
                    collect_secrets(&resolved, &mut secrets);
                }
                if is_env_reference(&value) {
                    collect_secrets(&resolved, &mut from_env);
                }
                settings.insert(key, resolved);
            }
            Err(text) => {
                problem(&key, text);
                refused_keys.push(key);
            }
        }
    }
    // A key refused above is not "missing" as well.
    if let Err(e) = validate_settings(kind, &settings) {
        if !refused_keys.contains(&e.key) {
            from_env.extend(secrets.iter().cloned());
            problem(&e.key, crate::secret::mask(&e.problem, &from_env));
        }
    }
    resolve_relative_paths(kind, &mut settings, file_dir);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Instance {
        name,
        kind,
        default,
        timeout,
        max_age,
        settings: kind.with_defaults(&settings),
        secrets,
    })
}

/// The plugins refused so far, for an unknown kind that one of them may
/// have provided.
fn refused_plugins() -> String {
    let refused = crate::plugin_host::refusals();
    if refused.is_empty() {
        return String::new();
    }
    let each: Vec<String> = refused
        .iter()
        .map(|r| format!("{}: {}", r.path.display(), r.reason))
        .collect();
    format!("; plugins refused: {}", each.join("; "))
}

/// A relative path setting is relative to the notifiers file, not to
/// wherever the monitor happens to be started (a daemon, a service).
fn resolve_relative_paths(kind: &dyn NotifierKind, settings: &mut Settings, file_dir: &Path) {
    for spec in kind
        .settings()
        .iter()
        .filter(|s| s.kind == crate::notifier::SettingKind::Path)
    {
        if let Some(Value::String(text)) = settings.get_mut(spec.name) {
            let path = Path::new(text.as_str());
            if path.is_relative() {
                *text = file_dir.join(path).to_string_lossy().into_owned();
            }
        }
    }
}

/// Reads one setting's value: `{ env = "NAME" }` from the environment,
/// anything else as written (a secret only when plain text is allowed).
fn resolve_value(
    value: &toml::Value,
    secret: bool,
    allow_plaintext: bool,
    env: &dyn Fn(&str) -> Option<String>,
    kind: Option<crate::notifier::SettingKind>,
) -> Result<Value, String> {
    if let toml::Value::Table(table) = value {
        if let Some(variable) = table.get("env") {
            let Some(variable) = variable.as_str().filter(|v| !v.is_empty()) else {
                return Err("{ env = ... } must name an environment variable".into());
            };
            if table.len() > 1 {
                return Err("{ env = ... } takes no other keys".into());
            }
            return match env(variable) {
                Some(found) if !found.is_empty() => typed_from_env(variable, found, kind),
                _ => Err(format!("environment variable {variable} is not set")),
            };
        }
    }
    if secret && !allow_plaintext {
        return Err(
            "is secret and must not be written in the file; give it as { env = \"VARIABLE\" } \
             (or set allow_plaintext_secrets = true at the top of the file)"
                .into(),
        );
    }
    serde_json::to_value(value).map_err(|e| format!("cannot be read: {e}"))
}

/// An environment variable's text as the setting's type: a number for an
/// integer setting, true or false for a boolean one.
fn typed_from_env(
    variable: &str,
    text: String,
    kind: Option<crate::notifier::SettingKind>,
) -> Result<Value, String> {
    use crate::notifier::SettingKind;

    match kind {
        Some(SettingKind::Integer) => {
            text.trim().parse::<i64>().map(Value::from).map_err(|_| {
                format!("environment variable {variable} does not hold a whole number")
            })
        }
        Some(SettingKind::Bool) => match text.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!(
                "environment variable {variable} holds neither true nor false"
            )),
        },
        _ => Ok(Value::String(text)),
    }
}

fn is_env_reference(value: &toml::Value) -> bool {
    matches!(value, toml::Value::Table(t) if t.contains_key("env"))
}

/// Instance names are used on the command line (`--notify a,b`) and in
/// logs, so they are plain words.
fn is_instance_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn collect_secrets(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::String(s) => into.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_secrets(v, into)),
        Value::Object(map) => map.values().for_each(|v| collect_secrets(v, into)),
        _ => {}
    }
}

fn quoted(name: &str) -> String {
    format!("{name:?}")
}

/// toml's message with the line and column where the file went wrong.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let reason = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("is not valid TOML (line {line}, column {column}): {reason}")
        }
        None => format!("is not valid TOML: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::alert::FiredAlert;
    use crate::notifier::{
        Notifier, NotifierPlugin, NotifyError, SettingKind, SettingSpec, SettingsError,
    };

    struct Probe;

    #[async_trait]
    impl Notifier for Probe {
        async fn notify(&self, _: &FiredAlert) -> Result<(), NotifyError> {
            Ok(())
        }
    }

    const PROBE_SETTINGS: &[SettingSpec] = &[
        SettingSpec {
            name: "host",
            kind: SettingKind::String,
            default: None,
            required: true,
            secret: false,
            help: "where to send",
        },
        SettingSpec {
            name: "password",
            kind: SettingKind::String,
            default: None,
            required: false,
            secret: true,
            help: "the login password",
        },
        SettingSpec {
            name: "port",
            kind: SettingKind::Integer,
            default: Some("25"),
            required: false,
            secret: false,
            help: "the port",
        },
        SettingSpec {
            name: "ca_file",
            kind: SettingKind::Path,
            default: None,
            required: false,
            secret: false,
            help: "a certificate",
        },
    ];

    fn build_probe(settings: &Settings) -> Result<Box<dyn Notifier>, SettingsError> {
        if settings["host"] == "bad host" {
            return Err(SettingsError {
                notifier: "probe".into(),
                key: "host".into(),
                problem: "expected a host name, got \"bad host\"".into(),
            });
        }
        Ok(Box::new(Probe))
    }

    inventory::submit! {
        NotifierPlugin {
            name: "probe",
            description: "a notifier for these tests",
            settings: PROBE_SETTINGS,
            build: build_probe,
        }
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "PROBE_PASSWORD" => Some("hunter2-secret".into()),
            _ => None,
        }
    }

    fn load(text: &str) -> Result<Option<NotifiersFile>, Vec<ConfigError>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, text).unwrap();
        NotifiersFile::load(&path, &env)
    }

    fn problems(text: &str) -> Vec<String> {
        load(text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_missing_file_is_no_configuration() {
        let dir = tempfile::tempdir().unwrap();
        assert!(NotifiersFile::load(&dir.path().join("nope.toml"), &env)
            .unwrap()
            .is_none());
    }

    #[test]
    fn instances_load_with_env_secrets_and_defaults() {
        let file = load(
            r#"
            [[notifier]]
            name = "mine"
            kind = "probe"
            host = "127.0.0.1"
            password = { env = "PROBE_PASSWORD" }

            [[notifier]]
            name = "quiet"
            kind = "probe"
            default = false
            timeout = 3
            host = "localhost"
            "#,
        )
        .unwrap()
        .unwrap();
        let mine = file.find("mine").unwrap();
        assert!(mine.default);
        assert_eq!(mine.timeout, crate::notifier::DELIVERY_TIMEOUT);
        assert_eq!(mine.settings["password"], "hunter2-secret");
        assert_eq!(mine.settings["port"], 25);
        assert_eq!(mine.secrets, ["hunter2-secret"]);
        assert_eq!(mine.shown_settings()["password"], "****");
        let quiet = file.find("quiet").unwrap();
        assert!(!quiet.default);
        assert_eq!(quiet.timeout, Duration::from_secs(3));
        assert_eq!(file.build().unwrap().len(), 2);
    }

    #[test]
    fn every_problem_names_file_instance_and_key() {
        let found = problems(
            r#"
            colour = "blue"
            [[notifier]]
            name = "a"
            kind = "probe"
            host = "h"
            shape = "round"

            [[notifier]]
            name = "b"
            kind = "carrier-pigeon"

            [[notifier]]
            name = "c"
            kind = "probe"

            [[notifier]]
            name = "d"
            kind = "probe"
            host = "h"
            password = { env = "UNSET_VARIABLE" }

            [[notifier]]
            name = "a"
            kind = "probe"
            host = "h"
            timeout = -1
            "#,
        );
        let expect = [
            "key colour: unknown top-level key",
            "notifier \"a\": key shape: unknown setting; expected one of: host, password, port, ca_file",
            "notifier \"b\": key kind: unknown notifier kind \"carrier-pigeon\"",
            "notifier \"c\": key host: missing",
            "notifier \"d\": key password: environment variable UNSET_VARIABLE is not set",
            "notifier \"a\": key timeout: expected seconds between 1 and 600",
        ];
        for text in expect {
            assert!(
                found.iter().any(|p| p.contains(text)),
                "{text:?} not in {found:#?}"
            );
        }
        assert!(
            found.iter().all(|p| p.starts_with("notifiers file ")),
            "{found:#?}"
        );
        assert!(
            found.iter().any(|p| p.contains("names must be unique")),
            "{found:#?}"
        );
    }

    #[test]
    fn a_secret_in_clear_is_refused_unless_allowed_and_never_shown() {
        let text = r#"
            [[notifier]]
            name = "mine"
            kind = "probe"
            host = "h"
            password = "plain-hunter2"
            "#;
        let found = problems(text).join("\n");
        assert!(found.contains("key password: is secret"), "{found}");
        assert!(!found.contains("plain-hunter2"), "{found}");

        let allowed = format!("allow_plaintext_secrets = true\n{text}");
        let file = load(&allowed).unwrap().unwrap();
        assert_eq!(file.instances[0].shown_settings()["password"], "****");
        assert_eq!(file.instances[0].secrets, ["plain-hunter2"]);
    }

    #[test]
    fn a_refusal_at_build_names_the_key() {
        let file = load(
            r#"
            [[notifier]]
            name = "mine"
            kind = "probe"
            host = "bad host"
            "#,
        )
        .unwrap()
        .unwrap();
        let err = file.build().err().unwrap().to_string();
        assert!(
            err.contains("notifier \"mine\": key host: expected a host name"),
            "{err}"
        );
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(
            &path,
            "[[notifier]]\nname = \"a\"\nkind = \"probe\"\nhost = \"h\"\nca_file = \"certs/ca.pem\"\n\
             [[notifier]]\nname = \"b\"\nkind = \"probe\"\nhost = \"h\"\nca_file = \"/abs/ca.pem\"\n",
        )
        .unwrap();
        let file = NotifiersFile::load(&path, &env).unwrap().unwrap();
        let expected = dir.path().join("certs/ca.pem");
        assert_eq!(
            file.instances[0].settings["ca_file"],
            expected.to_str().unwrap()
        );
        assert_eq!(file.instances[1].settings["ca_file"], "/abs/ca.pem");
    }

    #[test]
    fn bad_toml_reports_the_position() {
        let found = problems("[[notifier]]\nname = \"x\"\nkind = probe\n");
        assert!(
            found[0].contains("is not valid TOML (line 3, column 8)"),
            "{found:?}"
        );
    }

    #[test]
    fn plugin_keys_are_read_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let text = "plugin_dir = \"plugins\"\n[[notifier]]\nname = \"a\"\nkind = \"probe\"\nhost = \"h\"\n";
        std::fs::write(&path, text).unwrap();
        let file = NotifiersFile::load(&path, &env).unwrap().unwrap();
        assert_eq!(file.plugin_dir, Some(dir.path().join("plugins")));

        std::fs::write(
            &path,
            "plugin_dir = \"../more-plugins\"\n[[notifier]]\nname = \"a\"\nkind = \"x\"\nplugin = \"lib/x.so\"\n\
             [[notifier]]\nname = \"b\"\nkind = \"y\"\nplugin = \"/opt/y.so\"\n",
        )
        .unwrap();
        assert_eq!(
            plugin_references(&path),
            PluginReferences {
                plugin_dir: Some(dir.path().join("../more-plugins")),
                plugins: vec![dir.path().join("lib/x.so"), PathBuf::from("/opt/y.so")],
            }
        );
        assert_eq!(
            plugin_references(&dir.path().join("missing.toml")),
            PluginReferences::default()
        );
    }

    #[test]
    fn a_plugin_that_cannot_be_used_is_a_problem_of_its_instance() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone.so");
        let found = problems(&format!(
            "plugin_dir = 5\n[[notifier]]\nname = \"a\"\nkind = \"csv\"\nplugin = \"{}\"\n\
             [[notifier]]\nname = \"b\"\nkind = \"probe\"\nhost = \"h\"\nplugin = 7\n",
            missing.display()
        ));
        let expect = [
            "key plugin_dir: expected the path of a directory, got 5".to_string(),
            format!(
                "notifier \"a\": key plugin: plugin {} cannot be used: the file does not exist",
                missing.display()
            ),
            "notifier \"b\": key plugin: expected the path of a plugin library, got 7".to_string(),
        ];
        for text in &expect {
            assert!(
                found.iter().any(|p| p.contains(text.as_str())),
                "{text:?} not in {found:#?}"
            );
        }
        // The kind of an instance whose plugin failed is not also reported unknown.
        assert!(
            !found.iter().any(|p| p.contains("unknown notifier kind")),
            "{found:#?}"
        );
    }
}
