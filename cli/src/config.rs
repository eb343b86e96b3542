//! Defaults from configuration files: `kalshi.toml` in the data dir, and
//! `kalshi/kalshi.toml` under `$XDG_CONFIG_HOME` (or `~/.config`).
//!
//! A value comes from, in order of precedence: the command line, its
//! environment variable, the data dir's file, the user's file, the built-in
//! default. `kalshi config show` says which for each.

use std::fmt;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::ArgMatches;

use crate::args::{AlertsCommand, Cli, Command};
use crate::error::{CliError, CliResult};

/// The file's name, in the data dir and in the user's config directory.
pub const FILE_NAME: &str = "kalshi.toml";

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag(&'static str),
    Env(&'static str),
    File(PathBuf),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "command line ({flag})"),
            Source::Env(name) => write!(f, "environment ({name})"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// The settings a configuration file may hold, as read.
#[derive(Debug, Default, Clone)]
struct FileSettings {
    env: Option<String>,
    data_dir: Option<PathBuf>,
    notifiers: Option<PathBuf>,
    interval: Option<u64>,
}

/// Each configurable value's source, after resolution.
#[derive(Debug, Clone)]
pub struct Sources {
    pub env: Source,
    pub data_dir: Source,
    pub notifiers: Source,
    pub interval: Source,
    /// The monitor's interval as the files set it, when they do.
    pub file_interval: Option<u64>,
    /// The files that were read.
    pub files: Vec<PathBuf>,
}

/// The user's configuration file: `$XDG_CONFIG_HOME/kalshi/kalshi.toml`,
/// else `~/.config/kalshi/kalshi.toml`.
pub fn user_file() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(base.join("kalshi").join(FILE_NAME))
}

/// Reads one configuration file; `None` when there is none. Every problem
/// names the file and the key.
fn read(path: &Path, may_set_data_dir: bool) -> CliResult<Option<FileSettings>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // Not even whether the file exists can be told: its directory is
        // what cannot be read (`chmod 000 DATA`), and naming the file, which
        // may not exist, would send the user looking for it.
        Err(e)
            if e.kind() == std::io::ErrorKind::PermissionDenied
                && std::fs::symlink_metadata(path).is_err() =>
        {
            let dir = path.parent().unwrap_or(Path::new("."));
            return Err(CliError::invalid(if may_set_data_dir {
                format!(
                    "directory {} of the user's config file: cannot look inside: {e}; give \
                     yourself access to it (chmod u+rwx)",
                    dir.display()
                )
            } else {
                format!(
                    "data dir {}: cannot look inside: {e}; give yourself access to it (chmod \
                     u+rwx), or choose another with --data-dir or KALSHI_DATA_DIR",
                    dir.display()
                )
            }));
        }
        Err(e) => {
            return Err(CliError::invalid(format!(
                "config file {}: cannot read: {e}",
                path.display()
            )))
        }
    };
    let fail = |key: &str, problem: String| {
        CliError::invalid(format!(
            "config file {}: key {key}: {problem}",
            path.display()
        ))
    };
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        CliError::invalid(format!(
            "config file {}: not valid TOML: {}",
            path.display(),
            e.message()
        ))
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut settings = FileSettings::default();
    for (key, value) in table {
        match (key.as_str(), value) {
            ("env", toml::Value::String(env)) if env == "prod" || env == "demo" => {
                settings.env = Some(env)
            }
            ("env", other) => {
                return Err(fail(
                    "env",
                    format!("expected \"prod\" or \"demo\", got {other}"),
                ))
            }
            ("data_dir", toml::Value::String(_)) if !may_set_data_dir => {
                return Err(fail(
                    "data_dir",
                    "the data dir's own file cannot move the data dir; set it in the user's \
                     config file, KALSHI_DATA_DIR or --data-dir"
                        .into(),
                ))
            }
            ("data_dir", toml::Value::String(p)) if !p.trim().is_empty() => {
                settings.data_dir = Some(resolve_path(dir, &p))
            }
            ("notifiers", toml::Value::String(p)) if !p.trim().is_empty() => {
                settings.notifiers = Some(resolve_path(dir, &p))
            }
            (key @ ("data_dir" | "notifiers"), other) => {
                return Err(fail(key, format!("expected a path, got {other}")))
            }
            ("interval", toml::Value::Integer(secs))
                if (0..=crate::args::MAX_INTERVAL_SECS as i64).contains(&secs) =>
            {
                settings.interval = Some(secs as u64)
            }
            ("interval", other) => {
                return Err(fail(
                    "interval",
                    format!(
                        "expected whole seconds from 0 to {} (a year), got {other}",
                        crate::args::MAX_INTERVAL_SECS
                    ),
                ))
            }
            (key, _) => {
                return Err(fail(
                    key,
                    "unknown; the keys are env, data_dir, notifiers and interval".into(),
                ))
            }
        }
    }
    Ok(Some(settings))
}

/// A path from a file: `~/` is the home directory, a relative path is
/// relative to the file's directory.
fn resolve_path(dir: &Path, text: &str) -> PathBuf {
    if let (Some(rest), Some(home)) = (text.strip_prefix("~/"), std::env::var_os("HOME")) {
        return PathBuf::from(home).join(rest);
    }
    dir.join(text)
}

fn given(matches: &ArgMatches, id: &str) -> bool {
    matches!(
        matches.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

fn source_of(matches: &ArgMatches, id: &str, flag: &'static str, var: &'static str) -> Source {
    match matches.value_source(id) {
        Some(ValueSource::CommandLine) => Source::Flag(flag),
        Some(ValueSource::EnvVariable) => Source::Env(var),
        _ => Source::Default,
    }
}

/// Fills in from the configuration files the values `cli` has only by
/// default, and says where each value came from.
pub fn resolve(cli: &mut Cli, matches: &ArgMatches) -> CliResult<Sources> {
    let mut sources = Sources {
        env: source_of(matches, "environment", "--env", "KALSHI_ENVIRONMENT"),
        data_dir: source_of(matches, "data_dir", "--data-dir", "KALSHI_DATA_DIR"),
        notifiers: source_of(matches, "notifiers_file", "--notifiers", "KALSHI_NOTIFIERS"),
        interval: Source::Default,
        file_interval: None,
        files: Vec::new(),
    };
    let monitor = match matches.subcommand() {
        Some(("alerts", alerts)) => match alerts.subcommand() {
            Some(("monitor", monitor)) => Some(monitor),
            _ => None,
        },
        _ => None,
    };
    if let Some(monitor) = monitor {
        sources.interval = source_of(monitor, "interval", "--interval", "");
    }

    let user = match user_file() {
        Some(path) => read(&path, true)?.map(|settings| (path, settings)),
        None => None,
    };
    if let Some((path, settings)) = &user {
        sources.files.push(path.clone());
        if let (Some(dir), false) = (&settings.data_dir, given(matches, "data_dir")) {
            cli.data_dir = dir.clone();
            sources.data_dir = Source::File(path.clone());
        }
    }
    let local_path = cli.data_dir.join(FILE_NAME);
    let local = read(&local_path, false)?.map(|settings| (local_path.clone(), settings));
    if local.is_some() {
        sources.files.push(local_path);
    }
    // The data dir's file wins over the user's.
    let layers: Vec<&(PathBuf, FileSettings)> = local.iter().chain(user.iter()).collect();
    let pick = |has: fn(&FileSettings) -> bool| {
        layers
            .iter()
            .find(|(_, settings)| has(settings))
            .map(|(path, settings)| (path.clone(), settings.clone()))
    };
    if !given(matches, "environment") {
        if let Some((path, settings)) = pick(|s| s.env.is_some()) {
            cli.environment = settings.env.unwrap_or_default();
            sources.env = Source::File(path);
        }
    }
    if !given(matches, "notifiers_file") {
        if let Some((path, settings)) = pick(|s| s.notifiers.is_some()) {
            cli.notifiers_file = settings.notifiers;
            sources.notifiers = Source::File(path);
        }
    }
    let from_file = pick(|s| s.interval.is_some());
    sources.file_interval = from_file.as_ref().and_then(|(_, s)| s.interval);
    if monitor.is_none() {
        if let Some((path, _)) = &from_file {
            sources.interval = Source::File(path.clone());
        }
    }
    if let (Some(monitor), Command::Alerts(AlertsCommand::Monitor(args))) =
        (monitor, &mut cli.command)
    {
        if !given(monitor, "interval") {
            if let Some((path, settings)) = from_file {
                args.interval = settings.interval.unwrap_or(args.interval);
                sources.interval = Source::File(path);
            }
        }
    }
    Ok(sources)
}
