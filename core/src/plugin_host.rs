//! The plugin host: notifier kinds loaded from shared libraries at run time.
//!
//! A plugin is a shared library that exports [`abi::ENTRY_SYMBOL`] (see
//! [`crate::abi`]). The host loads every library in the plugin directory
//! and every library an instance of the notifiers file names with
//! `plugin = "path"`. Each accepted plugin becomes a [`NotifierKind`],
//! registered with [`register_loaded`], so it is listed, validated and
//! configured like a built-in kind.
//!
//! A file is refused, with the reason recorded and logged, when it is
//! writable by group or others (or its directory is), is not a loadable
//! library, exports no entry function, speaks another ABI version, has a
//! settings description that cannot be read, or provides a kind whose name
//! is taken. The program goes on without it; only an instance that needs
//! it fails to configure, naming the file and the reason.
//!
//! Libraries are never unloaded: their kinds and code are `'static`.
//!
//! A plugin's `notify` runs on a thread of its own for each call, not on
//! the async runtime's workers and not on its blocking pool: a runtime
//! waits for its blocking tasks when it shuts down, and a plugin that hangs
//! must not keep the program from exiting. The dispatcher's timeout and
//! retries apply as to any notifier.

use std::ffi::{c_void, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::abi::{self, status, ErrorReport, OwnedBuffer, PluginTableV1, StrView};
use crate::alert::FiredAlert;
use crate::notifier::{
    register_loaded, Notifier, NotifierKind, NotifyError, SettingKind, SettingSpec, Settings,
    SettingsError,
};

/// The environment variable naming the plugin directories, separated like
/// `PATH`; it overrides `plugin_dir` of the notifiers file.
pub const PLUGIN_PATH_ENV: &str = "KALSHI_PLUGIN_PATH";

/// The plugin directory's name inside the data dir.
pub const DEFAULT_DIR_NAME: &str = "plugins";

/// The file name endings of shared libraries looked at in a plugin
/// directory; other files there are ignored.
pub const LIBRARY_EXTENSIONS: &[&str] = &["so", "dylib", "dll"];

/// A plugin the host loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadedPlugin {
    pub path: PathBuf,
    pub abi_version: u32,
    /// The notifier kinds it provides.
    pub kinds: Vec<String>,
}

/// A file the host would not load, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plugin {} refused: {}", self.path.display(), self.reason)
    }
}

/// Everything the host has done in this process: the directories it
/// searched, what it loaded and what it refused, in the order it met them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostRecord {
    pub directories: Vec<PathBuf>,
    pub loaded: Vec<LoadedPlugin>,
    pub refused: Vec<Refusal>,
}

struct HostState {
    directories: Vec<PathBuf>,
    /// Each file met, by its canonical path, with what became of it.
    outcomes: Vec<(PathBuf, Result<LoadedPlugin, Refusal>)>,
}

static STATE: Mutex<HostState> = Mutex::new(HostState {
    directories: Vec::new(),
    outcomes: Vec::new(),
});

fn state() -> std::sync::MutexGuard<'static, HostState> {
    STATE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the host has loaded and refused so far.
pub fn record() -> HostRecord {
    let state = state();
    let mut record = HostRecord {
        directories: state.directories.clone(),
        ..HostRecord::default()
    };
    for (_, outcome) in &state.outcomes {
        match outcome {
            Ok(loaded) => record.loaded.push(loaded.clone()),
            Err(refusal) => record.refused.push(refusal.clone()),
        }
    }
    record
}

/// The refusals so far: what a configuration that names an unknown kind
/// should be told about.
pub fn refusals() -> Vec<Refusal> {
    record().refused
}

/// Where plugins come from for one program run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginSources {
    /// Directories whose shared libraries are all loaded.
    pub directories: Vec<PathBuf>,
    /// Libraries named by the notifiers file's instances; loaded first, so
    /// that they win over a copy in a directory.
    pub files: Vec<PathBuf>,
}

impl PluginSources {
    /// The sources of a program with this data dir and notifiers file:
    /// the directories of `plugin_path` (the value of
    /// [`PLUGIN_PATH_ENV`]) when it is set and not empty, else the file's
    /// `plugin_dir`, else `<data_dir>/plugins`; and the libraries the
    /// file's instances name.
    pub fn resolve(
        data_dir: &Path,
        notifiers_file: &Path,
        plugin_path: Option<OsString>,
    ) -> PluginSources {
        let references = crate::notifiers_file::plugin_references(notifiers_file);
        let directories = match plugin_path.filter(|p| !p.is_empty()) {
            Some(list) => std::env::split_paths(&list)
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
            None => vec![references
                .plugin_dir
                .unwrap_or_else(|| data_dir.join(DEFAULT_DIR_NAME))],
        };
        PluginSources {
            directories,
            files: references.plugins,
        }
    }

    /// Loads every source: the named files, then each directory.
    pub fn load(&self) {
        for file in &self.files {
            let _ = load_file(file);
        }
        for directory in &self.directories {
            load_dir(directory);
        }
    }
}

/// Loads every shared library in `dir` (those ending in
/// [`LIBRARY_EXTENSIONS`]), in name order. A directory that does not exist
/// holds no plugins.
pub fn load_dir(dir: &Path) -> Vec<Result<LoadedPlugin, Refusal>> {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    {
        let mut state = state();
        if !state.directories.contains(&dir) {
            state.directories.push(dir.clone());
        }
    }
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            let refusal = Refusal {
                path: dir.clone(),
                reason: format!("the plugin directory cannot be read: {e}"),
            };
            remember(dir.clone(), Err(refusal.clone()));
            return vec![Err(refusal)];
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| LIBRARY_EXTENSIONS.contains(&e))
        })
        .filter(|path| !path.is_dir())
        .collect();
    files.sort();
    files.iter().map(|file| load_file(file)).collect()
}

/// Loads one plugin library and registers its kind, or says why not. A
/// file met before (by its canonical path) is not loaded again; its first
/// outcome is returned.
pub fn load_file(path: &Path) -> Result<LoadedPlugin, Refusal> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    // The lock is held while loading, so two threads never load one file twice.
    let mut state = state();
    if let Some((_, outcome)) = state.outcomes.iter().find(|(c, _)| *c == canonical) {
        return outcome.clone();
    }
    let outcome = load_new(&path, &canonical).map_err(|reason| Refusal {
        path: path.clone(),
        reason,
    });
    match &outcome {
        Ok(loaded) => tracing::info!(
            plugin = %loaded.path.display(), abi = loaded.abi_version,
            kinds = %loaded.kinds.join(","), "plugin loaded"
        ),
        Err(refusal) => tracing::warn!(
            plugin = %refusal.path.display(), reason = %refusal.reason, "plugin refused"
        ),
    }
    state.outcomes.push((canonical, outcome.clone()));
    outcome
}

fn remember(canonical: PathBuf, outcome: Result<LoadedPlugin, Refusal>) {
    let mut state = state();
    if !state.outcomes.iter().any(|(c, _)| *c == canonical) {
        if let Err(refusal) = &outcome {
            tracing::warn!(plugin = %refusal.path.display(), reason = %refusal.reason, "plugin refused");
        }
        state.outcomes.push((canonical, outcome));
    }
}

fn load_new(path: &Path, canonical: &Path) -> Result<LoadedPlugin, String> {
    let metadata = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "the file does not exist".to_string(),
        _ => format!("the file cannot be read: {e}"),
    })?;
    if !metadata.is_file() {
        return Err("it is not a file".into());
    }
    check_not_writable_by_others(path, canonical)?;

    // SAFETY: loading a library runs its initialisers, which can do
    // anything; that is what loading a plugin means. The file passed the
    // permission checks above, so only its owner (or root) could have put
    // it there. The library is leaked: it is never unloaded, so every
    // pointer into it stays valid for the life of the process.
    let library: &'static libloading::Library = unsafe { libloading::Library::new(path) }
        .map(|library| &*Box::leak(Box::new(library)))
        .map_err(|e| {
            format!("it is not a plugin: it cannot be loaded as a shared library ({e})")
        })?;
    // SAFETY: the symbol, if present, is declared by the ABI as
    // `extern "C" fn() -> *const PluginTableV1`; a library that exports the
    // name with another type breaks the ABI it claims.
    let entry: abi::EntryFn = unsafe { library.get::<abi::EntryFn>(abi::ENTRY_SYMBOL_NUL) }
        .map(|symbol| *symbol)
        .map_err(|_| {
            format!(
                "it is not a plugin: it exports no {} function",
                abi::ENTRY_SYMBOL
            )
        })?;
    let table = entry();
    if table.is_null() {
        return Err("its entry function returned no plugin table".into());
    }
    // SAFETY: every version of the table starts with the version as a
    // `u32`, and the entry function returned a non-null pointer to a table
    // that lives as long as the library. Only this field is read before it
    // is checked.
    let version = unsafe { table.cast::<u32>().read() };
    if version != abi::ABI_VERSION {
        return Err(format!(
            "it is built for plugin ABI version {version}; this program speaks ABI {}",
            abi::ABI_VERSION
        ));
    }
    // SAFETY: the version says the table is a `PluginTableV1`.
    if let Some(field) = unsafe { missing_function(table) } {
        return Err(format!("its plugin table has no {field} function"));
    }
    // SAFETY: the version says the pointer is to a `PluginTableV1`, which
    // lives as long as the library, that is, forever; its strings too; and
    // its function pointers were just seen not to be null.
    let kind = unsafe { kind_from_table(&*table, &path.display().to_string()) }?;
    let name = kind.name();
    register_loaded(kind).map_err(|other| {
        let other = if other == "built in" {
            "a built-in notifier".to_string()
        } else {
            other
        };
        format!("its notifier kind {name:?} is already provided by {other}; names must be unique")
    })?;
    Ok(LoadedPlugin {
        path: path.to_path_buf(),
        abi_version: version,
        kinds: vec![name.to_string()],
    })
}

/// Reads a version-1 table into a notifier kind (not registered), or says
/// what in it is wrong. `origin` is what [`NotifierKind::origin`] will say:
/// the library's path.
///
/// # Safety
///
/// `table` must follow the ABI: its views point to valid bytes that live
/// forever, and its functions behave as [`crate::abi`] describes.
pub unsafe fn kind_from_table(
    table: &'static PluginTableV1,
    origin: &str,
) -> Result<&'static dyn NotifierKind, String> {
    // SAFETY: the caller promises the table's views follow the ABI.
    let name = unsafe { static_text(table.name, "name") }?;
    // Names are typed on command lines (`--notifier a,b`) and in files, so
    // they are plain words: nothing invisible, nothing that looks like
    // another name.
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() || name.len() > 64 || !plain {
        return Err(format!(
            "its notifier name {:?} is not valid: it must be 1 to 64 of letters, digits, \
             '.', '_' and '-'",
            crate::display::printable(name)
        ));
    }
    // SAFETY: as above.
    let description = unsafe { static_text(table.description, "description") }?;
    // SAFETY: as above.
    let settings_json = unsafe { static_text(table.settings_json, "settings description") }?;
    let settings = parse_settings(settings_json)
        .map_err(|e| format!("its settings description is not valid: {e}"))?;
    Ok(Box::leak(Box::new(LoadedKind {
        name,
        description,
        settings,
        table,
        origin: origin.to_string(),
    })))
}

/// Refuses a file that a user other than this one (or root) could change:
/// such a user could make this program run their code. That covers the
/// file, the directory it is in, and every directory above them: a writable
/// parent lets its writer swap the whole subtree. A root-owned directory
/// with the sticky bit (`/tmp`) is fine: nobody can replace what they do
/// not own in it.
fn check_not_writable_by_others(path: &Path, canonical: &Path) -> Result<(), String> {
    let mut checked: Vec<PathBuf> = vec![canonical.to_path_buf()];
    for file in [path, canonical] {
        for dir in file
            .ancestors()
            .skip(1)
            .filter(|d| !d.as_os_str().is_empty())
        {
            if !checked.iter().any(|p| p == dir) {
                checked.push(dir.to_path_buf());
            }
        }
    }
    for (index, checked_path) in checked.iter().enumerate() {
        if let Some(problem) = untrusted(checked_path) {
            let subject = if index == 0 {
                "the file".to_string()
            } else {
                format!("the directory {}", checked_path.display())
            };
            return Err(format!(
                "{subject} {problem}; only you (or root) may be able to change a plugin \
                 or a directory above it (chown, chmod go-w)"
            ));
        }
    }
    Ok(())
}

/// Why `path` cannot be trusted, when it cannot.
#[cfg(unix)]
fn untrusted(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;

    let meta = std::fs::metadata(path).ok()?;
    let mode = meta.mode() & 0o7777;
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me && meta.uid() != 0 {
        return Some(format!("belongs to another user (uid {})", meta.uid()));
    }
    let sticky_root_dir = meta.is_dir() && mode & 0o1000 != 0 && meta.uid() == 0;
    if mode & 0o022 != 0 && !sticky_root_dir {
        return Some(format!("is writable by group or others (mode {mode:o})"));
    }
    None
}

#[cfg(not(unix))]
fn untrusted(_path: &Path) -> Option<String> {
    None
}

/// # Safety
///
/// `view` must point to bytes that live forever (a table's strings).
unsafe fn static_text(view: StrView, what: &str) -> Result<&'static str, String> {
    // SAFETY: the caller promises the bytes live forever.
    let bytes: &'static [u8] = unsafe { view.as_bytes() };
    std::str::from_utf8(bytes).map_err(|_| format!("its {what} is not UTF-8"))
}

#[derive(Deserialize)]
struct SettingJson {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    choices: Option<Vec<String>>,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    secret: bool,
    #[serde(default)]
    help: String,
}

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// Reads a plugin's settings description (see
/// [`PluginTableV1::settings_json`]) into specs that live forever.
pub fn parse_settings(json: &str) -> Result<&'static [SettingSpec], String> {
    let described: Vec<SettingJson> =
        serde_json::from_str(json).map_err(|e| format!("not a JSON array of settings: {e}"))?;
    let mut specs = Vec::new();
    for setting in described {
        let name = setting.name.trim();
        if name.is_empty() {
            return Err("a setting has no name".into());
        }
        if specs.iter().any(|s: &SettingSpec| s.name == name) {
            return Err(format!("setting {name:?} is described twice"));
        }
        if ["name", "kind", "default", "timeout", "plugin"].contains(&name) {
            return Err(format!(
                "setting {name:?} takes a name the notifiers file reserves"
            ));
        }
        let kind = parse_kind(&setting.kind, setting.choices.as_deref())
            .map_err(|e| format!("setting {name:?}: {e}"))?;
        if let Some(default) = &setting.default {
            let fits = match kind {
                SettingKind::Bool => default == "true" || default == "false",
                SettingKind::Integer => default.parse::<i64>().is_ok(),
                SettingKind::Choice(options) => options.contains(&default.as_str()),
                _ => true,
            };
            if !fits {
                return Err(format!(
                    "setting {name:?}: default {default:?} is not a {kind}"
                ));
            }
        }
        specs.push(SettingSpec {
            name: leak(name.to_string()),
            kind,
            default: setting.default.map(leak),
            required: setting.required,
            secret: setting.secret,
            help: leak(setting.help),
        });
    }
    Ok(Box::leak(specs.into_boxed_slice()))
}

fn parse_kind(text: &str, choices: Option<&[String]>) -> Result<SettingKind, String> {
    let lower = text.trim().to_ascii_lowercase();
    let options: Vec<String> = match (lower.as_str(), choices) {
        ("choice", Some(choices)) => choices.to_vec(),
        ("choice", None) => return Err("type choice needs a \"choices\" list".into()),
        (other, _) if other.starts_with("one of ") => text.trim()["one of ".len()..]
            .split(',')
            .map(|o| o.trim().to_string())
            .collect(),
        ("string", _) => return Ok(SettingKind::String),
        ("path", _) => return Ok(SettingKind::Path),
        ("url", _) => return Ok(SettingKind::Url),
        ("boolean" | "bool", _) => return Ok(SettingKind::Bool),
        ("integer", _) => return Ok(SettingKind::Integer),
        ("string or list of strings" | "string_list", _) => return Ok(SettingKind::StringList),
        ("table of strings" | "table", _) => return Ok(SettingKind::Table),
        _ => return Err(format!("unknown type {text:?}")),
    };
    if options.is_empty() || options.iter().any(|o| o.is_empty()) {
        return Err("a choice needs a list of non-empty values".into());
    }
    let options: Vec<&'static str> = options.into_iter().map(leak).collect();
    Ok(SettingKind::Choice(Box::leak(options.into_boxed_slice())))
}

/// A notifier kind provided by a loaded library.
struct LoadedKind {
    name: &'static str,
    description: &'static str,
    settings: &'static [SettingSpec],
    table: &'static PluginTableV1,
    origin: String,
}

impl NotifierKind for LoadedKind {
    fn name(&self) -> &str {
        self.name
    }

    fn description(&self) -> &str {
        self.description
    }

    fn settings(&self) -> &[SettingSpec] {
        self.settings
    }

    fn origin(&self) -> String {
        self.origin.clone()
    }

    fn build(&self, settings: &Settings) -> Result<Box<dyn Notifier>, SettingsError> {
        let json = serde_json::to_vec(settings).expect("settings serialise to JSON");
        let mut instance: *mut c_void = std::ptr::null_mut();
        let mut error = OwnedBuffer::EMPTY;
        // SAFETY: the table passed the version check; the settings bytes
        // are valid for the call; both out pointers point to locals that
        // outlive it.
        let code =
            unsafe { (self.table.create)(json.as_ptr(), json.len(), &mut instance, &mut error) };
        let report = take_report(self.table, error);
        let fail = |key: Option<String>, problem: String| SettingsError {
            notifier: self.name.to_string(),
            key: key.unwrap_or_else(|| "settings".to_string()),
            problem,
        };
        let message = |report: &Option<ErrorReport>| {
            report
                .as_ref()
                .map(|r| r.message.clone())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "no reason given".to_string())
        };
        match code {
            status::OK => Ok(Box::new(PluginNotifier {
                instance: Arc::new(PluginInstance {
                    table: self.table,
                    pointer: instance,
                    kind: self.name,
                }),
            })),
            status::INVALID_SETTINGS => {
                let text = message(&report);
                Err(fail(report.and_then(|r| r.key), text))
            }
            status::PANIC => Err(fail(
                None,
                format!(
                    "the plugin panicked while creating the notifier: {}",
                    message(&report)
                ),
            )),
            other => Err(fail(
                None,
                format!(
                    "the plugin could not create the notifier (status {other}): {}",
                    message(&report)
                ),
            )),
        }
    }
}

/// The first function of the table that is a null pointer, if any. A null
/// one would crash the host at its first use. The fields are read as plain
/// words, so no invalid function value is ever made.
///
/// # Safety
///
/// `table` points to a readable `PluginTableV1`-sized, aligned block.
unsafe fn missing_function(table: *const PluginTableV1) -> Option<&'static str> {
    [
        ("create", std::mem::offset_of!(PluginTableV1, create)),
        ("notify", std::mem::offset_of!(PluginTableV1, notify)),
        ("destroy", std::mem::offset_of!(PluginTableV1, destroy)),
        (
            "free_buffer",
            std::mem::offset_of!(PluginTableV1, free_buffer),
        ),
    ]
    .into_iter()
    // SAFETY: each offset is inside the table and holds a pointer-sized,
    // aligned word.
    .find(|(_, offset)| unsafe { table.cast::<u8>().add(*offset).cast::<usize>().read() } == 0)
    .map(|(field, _)| field)
}

/// The most characters of a plugin's error message that are kept.
const REPORT_LIMIT: usize = 1000;

/// Reads and frees an error buffer the plugin filled, if it did.
fn take_report(table: &PluginTableV1, buffer: OwnedBuffer) -> Option<ErrorReport> {
    if buffer.is_empty() {
        return None;
    }
    // SAFETY: the plugin filled the buffer with `len` readable bytes and
    // it has not been freed yet.
    let mut report = ErrorReport::parse(unsafe { buffer.as_bytes() });
    // SAFETY: the buffer goes back to the library that made it, once.
    unsafe { (table.free_buffer)(buffer) };
    // A message is for a log line; a plugin may send megabytes.
    if let Some((cut, _)) = report.message.char_indices().nth(REPORT_LIMIT) {
        report.message.truncate(cut);
        report.message.push_str("...");
    }
    Some(report)
}

/// One instance made by a plugin's `create`, destroyed when the last
/// holder (a notifier, or a call still running) lets go of it.
struct PluginInstance {
    table: &'static PluginTableV1,
    pointer: *mut c_void,
    kind: &'static str,
}

// SAFETY: the ABI requires an instance to accept `notify` from several
// threads at once and `destroy` from any thread; the host only ever passes
// the pointer back to the plugin's own functions.
unsafe impl Send for PluginInstance {}
// SAFETY: as above.
unsafe impl Sync for PluginInstance {}

impl PluginInstance {
    fn notify(&self, alert: &[u8]) -> Result<(), NotifyError> {
        let mut error = OwnedBuffer::EMPTY;
        // SAFETY: the instance came from this table's `create` and is not
        // destroyed while `self` lives; the alert bytes are valid for the
        // call; `error` outlives it.
        let code =
            unsafe { (self.table.notify)(self.pointer, alert.as_ptr(), alert.len(), &mut error) };
        let report = take_report(self.table, error);
        let message = report
            .as_ref()
            .map(|r| r.message.clone())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "no reason given".to_string());
        match code {
            status::OK => Ok(()),
            status::RETRYABLE => {
                let mut error = NotifyError::retryable(message);
                if let Some(ms) = report.and_then(|r| r.retry_after_ms) {
                    error = error.with_retry_after(std::time::Duration::from_millis(ms));
                }
                Err(error)
            }
            status::PANIC => Err(NotifyError::permanent(format!(
                "the {} plugin panicked: {message}",
                self.kind
            ))),
            status::PERMANENT | status::INVALID_SETTINGS => Err(NotifyError::permanent(message)),
            other => Err(NotifyError::permanent(format!(
                "the {} plugin returned the unknown status {other}: {message}",
                self.kind
            ))),
        }
    }
}

impl Drop for PluginInstance {
    fn drop(&mut self) {
        // On a thread of its own: a plugin whose `destroy` blocks must not
        // keep the monitor from stopping (or from releasing its lock).
        let table = self.table;
        let pointer = SendPointer(self.pointer);
        let destroy = move || {
            let pointer = pointer;
            // SAFETY: the instance came from this table's `create`; this
            // was its last holder, so no `notify` call on it is running,
            // and nothing uses the pointer after this call.
            unsafe { (table.destroy)(pointer.0) };
        };
        if std::thread::Builder::new()
            .name("plugin-destroy".into())
            .spawn(destroy)
            .is_err()
        {
            tracing::warn!(
                kind = self.kind,
                "cannot start a thread to destroy a plugin instance; it is leaked"
            );
        }
    }
}

/// An instance pointer on its way to the thread that destroys it.
struct SendPointer(*mut c_void);

// SAFETY: the ABI lets `destroy` run on any thread.
unsafe impl Send for SendPointer {}

/// The host side of a plugin's instance: a [`Notifier`] whose every call
/// runs on a thread of its own.
struct PluginNotifier {
    instance: Arc<PluginInstance>,
}

#[async_trait]
impl Notifier for PluginNotifier {
    async fn notify(&self, alert: &FiredAlert) -> Result<(), NotifyError> {
        let json = serde_json::to_vec(alert).expect("alerts serialise to JSON");
        let instance = Arc::clone(&self.instance);
        let (answer, answered) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("plugin-{}", self.instance.kind))
            .spawn(move || {
                // A caller that timed out has gone; the answer is dropped.
                let _ = answer.send(instance.notify(&json));
            })
            .map_err(|e| NotifyError::retryable(format!("cannot start a plugin thread: {e}")))?;
        answered.await.unwrap_or_else(|_| {
            Err(NotifyError::permanent(
                "the plugin call ended without an answer",
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settings_description_reads_every_type_and_spelling() {
        let specs = parse_settings(
            r#"[
            {"name": "path", "type": "path", "required": true, "help": "where"},
            {"name": "token", "type": "string", "secret": true},
            {"name": "url", "type": "URL"},
            {"name": "on", "type": "bool", "default": "true"},
            {"name": "n", "type": "integer", "default": "3"},
            {"name": "to", "type": "string or list of strings"},
            {"name": "headers", "type": "table"},
            {"name": "mode", "type": "choice", "choices": ["a", "b"], "default": "a"},
            {"name": "style", "type": "one of x, y"}
        ]"#,
        )
        .unwrap();
        assert_eq!(specs.len(), 9);
        assert_eq!(specs[0].kind, SettingKind::Path);
        assert!(specs[0].required);
        assert!(specs[1].secret);
        assert_eq!(specs[2].kind, SettingKind::Url);
        assert_eq!(specs[3].kind, SettingKind::Bool);
        assert_eq!(specs[4].default, Some("3"));
        assert_eq!(specs[5].kind, SettingKind::StringList);
        assert_eq!(specs[6].kind, SettingKind::Table);
        assert_eq!(specs[7].kind, SettingKind::Choice(&["a", "b"]));
        assert_eq!(specs[8].kind, SettingKind::Choice(&["x", "y"]));
    }

    #[test]
    fn a_bad_settings_description_says_what_is_wrong() {
        for (json, expect) in [
            ("{}", "not a JSON array"),
            (r#"[{"name": "a", "type": "colour"}]"#, "unknown type"),
            (
                r#"[{"name": "a", "type": "string"}, {"name": "a", "type": "path"}]"#,
                "described twice",
            ),
            (r#"[{"name": "a", "type": "choice"}]"#, "choices"),
            (
                r#"[{"name": "a", "type": "integer", "default": "x"}]"#,
                "is not a integer",
            ),
            (r#"[{"name": "kind", "type": "string"}]"#, "reserves"),
        ] {
            let err = parse_settings(json).unwrap_err();
            assert!(err.contains(expect), "{json}: {err}");
        }
    }

    #[test]
    fn a_file_that_is_not_a_plugin_is_refused_and_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.so");
        std::fs::write(&path, "not a library").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let refusal = load_file(&path).unwrap_err();
        assert!(refusal.reason.contains("it is not a plugin"), "{refusal}");
        assert_eq!(load_file(&path).unwrap_err(), refusal);
        assert!(record().refused.contains(&refusal));

        let missing = load_file(&dir.path().join("gone.so")).unwrap_err();
        assert!(missing.reason.contains("does not exist"), "{missing}");
    }

    #[cfg(unix)]
    #[test]
    fn a_file_or_directory_writable_by_others_is_refused_before_loading() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        std::fs::set_permissions(&plugins, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = plugins.join("open.so");
        std::fs::write(&path, "not a library").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let refusal = load_file(&path).unwrap_err();
        assert!(
            refusal
                .reason
                .contains("the file is writable by group or others (mode 666)"),
            "{refusal}"
        );

        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let path = shared.join("inside.so");
        std::fs::write(&path, "not a library").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let outcomes = load_dir(&shared);
        let refusal = outcomes[0].clone().unwrap_err();
        assert!(
            refusal.reason.contains("the directory")
                && refusal
                    .reason
                    .contains("writable by group or others (mode 777)"),
            "{refusal}"
        );
    }

    #[test]
    fn sources_default_to_the_data_dir_and_the_environment_wins() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("notifiers.toml");
        std::fs::write(
            &file,
            "plugin_dir = \"extra\"\n[[notifier]]\nname = \"a\"\nkind = \"x\"\nplugin = \"lib/x.so\"\n",
        )
        .unwrap();
        let data = dir.path().join("data");
        let none = data.join("missing.toml");
        assert_eq!(
            PluginSources::resolve(&data, &none, None).directories,
            [data.join("plugins")]
        );
        let from_file = PluginSources::resolve(&data, &file, Some(OsString::new()));
        assert_eq!(from_file.directories, [dir.path().join("extra")]);
        assert_eq!(from_file.files, [dir.path().join("lib/x.so")]);
        let joined = std::env::join_paths(["/a", "/b"]).unwrap();
        assert_eq!(
            PluginSources::resolve(&data, &file, Some(joined)).directories,
            [PathBuf::from("/a"), PathBuf::from("/b")]
        );
    }

    #[test]
    fn a_table_with_a_null_function_is_noticed() {
        // A zeroed block the size of a table: every function is null.
        let words = vec![0usize; std::mem::size_of::<PluginTableV1>().div_ceil(8)];
        let table = words.as_ptr().cast::<PluginTableV1>();
        // SAFETY: the block is readable, aligned and large enough.
        assert_eq!(unsafe { missing_function(table) }, Some("create"));
    }

    #[cfg(unix)]
    #[test]
    fn a_plugin_owned_by_another_user_is_refused() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        std::fs::set_permissions(&plugins, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = plugins.join("theirs.so");
        std::fs::write(&path, "not a library").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        // Only root can give a file away; elsewhere there is nothing to test.
        if std::os::unix::fs::chown(&path, Some(65534), None).is_err() {
            return;
        }
        let refusal = load_file(&path).unwrap_err();
        assert!(
            refusal
                .reason
                .contains("belongs to another user (uid 65534)"),
            "{refusal}"
        );
    }
}
