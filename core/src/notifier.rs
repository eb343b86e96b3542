//! The notifier plugin interface and its registry.
//!
//! A notifier kind registers a [`NotifierPlugin`] with `inventory::submit!`:
//! its name, a one-line description, a description of each setting, and a
//! constructor. Listing, validation and docs all read that one description;
//! the core never names a concrete notifier.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::alert::FiredAlert;

/// Something that delivers fired alerts somewhere.
///
/// The caller owns retries and timeouts: each method makes one attempt and
/// says, through [`NotifyError::kind`], whether another could succeed.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Delivers one alert.
    async fn notify(&self, alert: &FiredAlert) -> Result<(), NotifyError>;

    /// Whether several alerts of one cycle should arrive as one delivery
    /// (an email digest, say). When true the monitor calls
    /// [`Notifier::notify_batch`] once per cycle instead of `notify` per alert.
    fn batches(&self) -> bool {
        false
    }

    /// Delivers the alerts of one cycle as one message. The default sends
    /// them one by one, for notifiers that never batch.
    async fn notify_batch(&self, alerts: &[FiredAlert]) -> Result<(), NotifyError> {
        for alert in alerts {
            self.notify(alert).await?;
        }
        Ok(())
    }

    /// Checks that delivery can work at all (a bus to talk to, a server
    /// that answers) without sending anything. Run by `notifiers check`
    /// and before a monitor starts; the default has nothing to check.
    async fn check(&self) -> Result<(), NotifyError> {
        Ok(())
    }

    /// What this instance's settings weaken, one sentence each: TLS
    /// certificates that are not checked, say. Whoever builds the instance
    /// to deliver logs them with its name, and `notifiers check` and
    /// `notifiers list` show them beside it. The default has none, and so
    /// has every instance of a kind loaded at run time: the plugin C ABI
    /// has no call for them.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Whether a failed delivery is worth trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A timeout, a refused connection, a 5xx or 429: may succeed later.
    Retryable,
    /// A bad address, a 4xx, a full disk: will fail the same way again.
    Permanent,
}

/// A failed delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NotifyError {
    pub kind: FailureKind,
    pub message: String,
    /// How long the receiver asked us to wait (an HTTP `Retry-After`);
    /// the dispatcher waits at least this long before the next attempt.
    pub retry_after: Option<Duration>,
}

impl NotifyError {
    pub fn retryable(message: impl Into<String>) -> NotifyError {
        NotifyError {
            kind: FailureKind::Retryable,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> NotifyError {
        NotifyError {
            kind: FailureKind::Permanent,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same failure, with the wait the receiver asked for.
    pub fn with_retry_after(mut self, wait: Duration) -> NotifyError {
        self.retry_after = Some(wait);
        self
    }
}

/// The type a setting's value must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    String,
    Path,
    Url,
    Bool,
    Integer,
    /// One string or a list of strings (`to = ["a@x", "b@x"]`).
    StringList,
    /// A table of string values (`headers = { X-Team = "ops" }`).
    Table,
    /// One of a fixed set of strings.
    Choice(&'static [&'static str]),
}

impl fmt::Display for SettingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SettingKind::String => "string",
            SettingKind::Path => "path",
            SettingKind::Url => "URL",
            SettingKind::Bool => "boolean",
            SettingKind::Integer => "integer",
            SettingKind::StringList => "string or list of strings",
            SettingKind::Table => "table of strings",
            SettingKind::Choice(options) => return write!(f, "one of {}", options.join(", ")),
        })
    }
}

/// One setting a notifier kind accepts.
#[derive(Debug, Clone, Copy)]
pub struct SettingSpec {
    pub name: &'static str,
    pub kind: SettingKind,
    /// The value used when the setting is absent; `None` with `required`
    /// false means "off".
    pub default: Option<&'static str>,
    pub required: bool,
    /// Masked (`****`) wherever settings are shown.
    pub secret: bool,
    pub help: &'static str,
}

/// A notifier instance's settings, as given in configuration.
pub type Settings = Map<String, Value>;

/// Why settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("notifier {notifier}: setting {key}: {problem}")]
pub struct SettingsError {
    pub notifier: String,
    pub key: String,
    pub problem: String,
}

/// A notifier kind compiled into the program, registered with
/// `inventory::submit!`.
pub struct NotifierPlugin {
    pub name: &'static str,
    pub description: &'static str,
    pub settings: &'static [SettingSpec],
    /// Builds an instance from settings already checked by [`validate_settings`].
    pub build: fn(&Settings) -> Result<Box<dyn Notifier>, SettingsError>,
}

inventory::collect!(NotifierPlugin);

/// A kind of notifier, wherever it comes from: compiled in
/// ([`NotifierPlugin`]) or loaded from a shared library at run time.
/// Listing, validation and building go through this one interface.
pub trait NotifierKind: Send + Sync {
    fn name(&self) -> &str;
    fn description(&self) -> &str;
    fn settings(&self) -> &[SettingSpec];
    /// Builds an instance from settings already checked by [`validate_settings`].
    fn build(&self, settings: &Settings) -> Result<Box<dyn Notifier>, SettingsError>;
    /// Where the kind comes from: `built in`, or the path of its library.
    fn origin(&self) -> String {
        "built in".to_string()
    }
}

impl NotifierKind for NotifierPlugin {
    fn name(&self) -> &str {
        self.name
    }

    fn description(&self) -> &str {
        self.description
    }

    fn settings(&self) -> &[SettingSpec] {
        self.settings
    }

    fn build(&self, settings: &Settings) -> Result<Box<dyn Notifier>, SettingsError> {
        (self.build)(settings)
    }
}

impl fmt::Debug for dyn NotifierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifierKind")
            .field("name", &self.name())
            .finish()
    }
}

/// Kinds loaded at run time, added by the plugin host. They live as long
/// as the program: a loaded library is never unloaded.
static LOADED: std::sync::RwLock<Vec<&'static dyn NotifierKind>> =
    std::sync::RwLock::new(Vec::new());

/// Adds a kind loaded at run time to the registry. Refuses a name that is
/// already taken, returning where the other one comes from.
pub fn register_loaded(kind: &'static dyn NotifierKind) -> Result<(), String> {
    if let Some(existing) = find_notifier(kind.name()) {
        return Err(existing.origin());
    }
    LOADED
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(kind);
    Ok(())
}

/// Every notifier kind of this program, compiled in or loaded, by name.
pub fn notifier_kinds() -> Vec<&'static dyn NotifierKind> {
    let mut all: Vec<&'static dyn NotifierKind> = inventory::iter::<NotifierPlugin>
        .into_iter()
        .map(|p| p as &'static dyn NotifierKind)
        .collect();
    all.extend(
        LOADED
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .copied(),
    );
    all.sort_by(|a, b| a.name().cmp(b.name()));
    all
}

/// The notifier kind registered under `name`.
pub fn find_notifier(name: &str) -> Option<&'static dyn NotifierKind> {
    notifier_kinds().into_iter().find(|k| k.name() == name)
}

impl dyn NotifierKind {
    /// Checks `settings` against this kind's description, fills in the
    /// defaults of absent settings, then builds.
    pub fn instantiate(&self, settings: &Settings) -> Result<Box<dyn Notifier>, SettingsError> {
        validate_settings(self, settings)?;
        self.build(&self.with_defaults(settings))
    }

    /// `settings` with every absent setting that has a default filled in,
    /// typed as its description says.
    pub fn with_defaults(&self, settings: &Settings) -> Settings {
        let mut full = settings.clone();
        for spec in self.settings() {
            let Some(default) = spec.default else {
                continue;
            };
            if full.get(spec.name).is_some_and(|v| !v.is_null()) {
                continue;
            }
            let value = match spec.kind {
                SettingKind::Bool => Value::Bool(default == "true"),
                SettingKind::Integer => default.parse::<i64>().map_or(Value::Null, Value::from),
                _ => Value::String(default.to_string()),
            };
            full.insert(spec.name.to_string(), value);
        }
        full
    }
}

/// Refuses unknown keys, missing required settings and values of the
/// wrong type, naming the key and what was expected.
pub fn validate_settings(
    plugin: &dyn NotifierKind,
    settings: &Settings,
) -> Result<(), SettingsError> {
    let fail = |key: &str, problem: String| SettingsError {
        notifier: plugin.name().to_string(),
        key: key.to_string(),
        problem,
    };

    for key in settings.keys() {
        if !plugin.settings().iter().any(|s| s.name == key) {
            let known: Vec<_> = plugin.settings().iter().map(|s| s.name).collect();
            let expected = if known.is_empty() {
                "this notifier takes no settings".to_string()
            } else {
                format!("expected one of: {}", known.join(", "))
            };
            return Err(fail(key, format!("unknown setting; {expected}")));
        }
    }

    for spec in plugin.settings() {
        match settings.get(spec.name) {
            None | Some(Value::Null) if spec.required => {
                return Err(fail(spec.name, format!("missing; {}", spec.help)))
            }
            None | Some(Value::Null) => {}
            Some(value) => check_kind(spec, value).map_err(|p| fail(spec.name, p))?,
        }
    }
    Ok(())
}

fn check_kind(spec: &SettingSpec, value: &Value) -> Result<(), String> {
    let non_empty = |v: &Value| v.as_str().is_some_and(|s| !s.trim().is_empty());
    let ok = match spec.kind {
        SettingKind::String | SettingKind::Path => non_empty(value),
        SettingKind::Url => value.as_str().is_some_and(is_http_url),
        SettingKind::Bool => value.is_boolean(),
        SettingKind::Integer => value.is_i64() || value.is_u64(),
        SettingKind::StringList => match value {
            Value::Array(items) => !items.is_empty() && items.iter().all(non_empty),
            other => non_empty(other),
        },
        SettingKind::Table => value
            .as_object()
            .is_some_and(|table| table.values().all(Value::is_string)),
        SettingKind::Choice(options) => value.as_str().is_some_and(|s| options.contains(&s)),
    };
    if ok {
        return Ok(());
    }
    let shown = if spec.secret {
        "****".to_string()
    } else {
        value.to_string()
    };
    let article = match spec.kind {
        SettingKind::Choice(_) | SettingKind::Table | SettingKind::Bool => "",
        _ => "a non-empty ",
    };
    Err(format!("expected {article}{}, got {shown}", spec.kind))
}

/// An absolute `http://` or `https://` URL with a host.
pub fn is_http_url(text: &str) -> bool {
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !host.contains(char::is_whitespace)
    })
}

/// Reads a [`SettingKind::StringList`] value as a list.
pub fn string_list(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Value::String(one) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// How long one delivery may take, unless an instance says otherwise,
/// before it counts as a retryable failure.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

    #[async_trait]
    impl Notifier for Nothing {
        async fn notify(&self, _: &FiredAlert) -> Result<(), NotifyError> {
            Ok(())
        }
    }

    const SETTINGS: &[SettingSpec] = &[
        SettingSpec {
            name: "path",
            kind: SettingKind::Path,
            default: None,
            required: true,
            secret: false,
            help: "where to write",
        },
        SettingSpec {
            name: "token",
            kind: SettingKind::String,
            default: None,
            required: false,
            secret: true,
            help: "a secret",
        },
        SettingSpec {
            name: "retries",
            kind: SettingKind::Integer,
            default: Some("3"),
            required: false,
            secret: false,
            help: "how often",
        },
    ];

    fn plugin() -> NotifierPlugin {
        NotifierPlugin {
            name: "probe",
            description: "test",
            settings: SETTINGS,
            build: |_| Ok(Box::new(Nothing)),
        }
    }

    fn settings(json: Value) -> Settings {
        json.as_object().unwrap().clone()
    }

    #[test]
    fn valid_settings_build() {
        let s = settings(serde_json::json!({"path": "out.jsonl"}));
        assert!((&plugin() as &dyn NotifierKind).instantiate(&s).is_ok());
    }

    #[test]
    fn unknown_missing_and_mistyped_settings_name_the_key() {
        let unknown = validate_settings(
            &plugin(),
            &settings(serde_json::json!({"path": "x", "colour": 1})),
        );
        assert_eq!(unknown.unwrap_err().key, "colour");

        let missing = validate_settings(&plugin(), &Settings::new()).unwrap_err();
        assert_eq!(missing.key, "path");
        assert!(missing.to_string().contains("missing"));

        let wrong = validate_settings(&plugin(), &settings(serde_json::json!({"path": 5})));
        assert!(wrong
            .unwrap_err()
            .to_string()
            .contains("expected a non-empty path, got 5"));
    }

    #[test]
    fn absent_settings_take_their_typed_defaults() {
        let given = settings(serde_json::json!({"path": "x"}));
        let full = (&plugin() as &dyn NotifierKind).with_defaults(&given);
        assert_eq!(full["retries"], serde_json::json!(3));
        assert!(!full.contains_key("token"));
        let set = (&plugin() as &dyn NotifierKind)
            .with_defaults(&settings(serde_json::json!({"path": "x", "retries": 9})));
        assert_eq!(set["retries"], serde_json::json!(9));
    }

    #[test]
    fn mistyped_secret_is_masked_in_the_error() {
        let err = validate_settings(
            &plugin(),
            &settings(serde_json::json!({"path": "x", "token": 12345})),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("12345"));
        assert!(err.to_string().contains("****"));
    }
}
