//! The alert store: `alerts.json` in the data directory.
//!
//! Every change is a locked read-modify-write: an advisory lock on a sidecar
//! file serialises writers (two `alerts add` at once both land), and the new
//! content goes to a temporary file that is synced and renamed over the old
//! one, so a crash leaves either the old file or the new one, never half.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::condition::Condition;

/// The whole content of `alerts.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertsFile {
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Top-level keys written by other tools, kept on rewrite.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Why the store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "alerts file {path} is not valid JSON (line {line}, column {column}): {reason}; \
         fix or move it, it was left unchanged"
    )]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error(
        "alerts file {path} does not hold alert conditions (line {line}, column {column}): \
         {reason}; fix or move it, it was left unchanged"
    )]
    Shape {
        path: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("alerts file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Why an id prefix did not pick exactly one condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("no alert condition has an id starting with {0:?}")]
    NotFound(String),
    #[error("id prefix {prefix:?} matches {} conditions ({}); give more characters",
        .matches.len(), shown_matches(.matches))]
    Ambiguous {
        prefix: String,
        matches: Vec<String>,
    },
    /// A file edited by hand can give two conditions one id.
    #[error("{count} conditions have the id {id:?}; give each its own id in alerts.json")]
    Shared { id: String, count: usize },
}

/// The first few ambiguous ids: enough to choose, short enough to read.
fn shown_matches(ids: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = ids
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > SHOWN {
        text.push_str(&format!(", and {} more", ids.len() - SHOWN));
    }
    text
}

impl AlertsFile {
    /// The index of the one condition whose id starts with `prefix`, in
    /// any letter case (UUIDs are printed lower case, typed either way).
    pub fn find(&self, prefix: &str) -> Result<usize, LookupError> {
        let prefix = prefix.trim();
        if prefix.is_empty() {
            return Err(LookupError::NotFound(prefix.to_string()));
        }
        let exact: Vec<usize> = self
            .conditions
            .iter()
            .enumerate()
            .filter(|(_, c)| c.id == prefix)
            .map(|(i, _)| i)
            .collect();
        match exact.as_slice() {
            [] => {}
            [one] => return Ok(*one),
            many => {
                return Err(LookupError::Shared {
                    id: prefix.to_string(),
                    count: many.len(),
                })
            }
        }
        let lower = prefix.to_lowercase();
        let matches: Vec<usize> = self
            .conditions
            .iter()
            .enumerate()
            .filter(|(_, c)| c.id.to_lowercase().starts_with(&lower))
            .map(|(i, _)| i)
            .collect();
        match matches.as_slice() {
            [] => Err(LookupError::NotFound(prefix.to_string())),
            [one] => Ok(*one),
            many => Err(LookupError::Ambiguous {
                prefix: prefix.to_string(),
                matches: many
                    .iter()
                    .map(|&i| self.conditions[i].id.clone())
                    .collect(),
            }),
        }
    }
}

/// The largest alerts.json read: 100,000 conditions take about 40 MB.
const MAX_FILE_BYTES: u64 = 256 << 20;

/// How long a change waits for another writer's lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// `alerts.json` in one data directory.
#[derive(Debug, Clone)]
pub struct AlertStore {
    path: PathBuf,
}

impl AlertStore {
    /// The store of `data_dir` (the file need not exist yet).
    pub fn in_dir(data_dir: &Path) -> AlertStore {
        AlertStore {
            path: data_dir.join("alerts.json"),
        }
    }

    /// A store at an explicit path.
    pub fn at(path: PathBuf) -> AlertStore {
        AlertStore { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file; a missing file is an empty store.
    pub fn load(&self) -> Result<AlertsFile, StoreError> {
        // Reading a FIFO would wait for a writer, and a device such as
        // /dev/zero never ends: only a regular file of a sane size is read.
        match fs::metadata(&self.path) {
            Ok(meta) if !meta.is_file() => {
                return Err(self.io_error(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "is not a regular file (a directory, a FIFO or a device?); it was not read",
                )))
            }
            Ok(meta) if meta.len() > MAX_FILE_BYTES => {
                return Err(self.io_error(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "is {} bytes, over the {} MiB a file of conditions may hold; it was \
                         not read",
                        meta.len(),
                        MAX_FILE_BYTES >> 20
                    ),
                )))
            }
            _ => {}
        }
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(AlertsFile::default()),
            Err(e) => return Err(self.io_error(e)),
        };
        // A byte-order mark, as some Windows editors write, is not JSON.
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        if text.trim().is_empty() {
            return Ok(AlertsFile::default());
        }
        serde_json::from_str(text).map_err(|e| self.parse_error(e))
    }

    /// Loads, applies `change`, and writes the result back atomically, all
    /// under the store's lock. When `change` fails nothing is written.
    pub fn update<T, E>(
        &self,
        change: impl FnOnce(&mut AlertsFile) -> Result<T, E>,
    ) -> Result<Result<T, E>, StoreError> {
        let _lock = self.lock()?;
        let mut file = self.load()?;
        let outcome = change(&mut file);
        if outcome.is_ok() {
            self.write(&file)?;
        }
        Ok(outcome)
    }

    /// Takes the store's lock, waiting at most [`LOCK_WAIT`] for another
    /// writer, which holds it only for a read and a write.
    fn lock(&self) -> Result<File, StoreError> {
        let dir = self.dir();
        crate::private::create_dir(dir).map_err(|e| self.io_error(e))?;
        let lock_path = dir.join(".alerts.lock");
        let lock = crate::private::new_file_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                self.io_error(io::Error::new(
                    e.kind(),
                    format!("cannot open its lock file {}: {e}", lock_path.display()),
                ))
            })?;
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match lock.try_lock() {
                Ok(()) => return Ok(lock),
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(self.io_error(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!(
                            "another kalshi process has held {} for {}s; try again",
                            lock_path.display(),
                            LOCK_WAIT.as_secs()
                        ),
                    )))
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(self.io_error(e)),
            }
        }
    }

    /// Writes the file where it really is (through a symbolic link), with
    /// the permissions it had, refusing one the user made read-only.
    fn write(&self, content: &AlertsFile) -> Result<(), StoreError> {
        let mut text = serde_json::to_string_pretty(content).expect("alerts serialise to JSON");
        text.push('\n');
        let target = link_target(&self.path).map_err(|e| self.io_error(e))?;
        let permissions = fs::metadata(&target).ok().map(|m| m.permissions());
        if permissions.as_ref().is_some_and(|p| p.readonly()) {
            return Err(self.io_error(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the file is read-only; make it writable to change it",
            )));
        }
        write_atomically(&target, text.as_bytes())
            .and_then(|()| match permissions {
                Some(p) => fs::set_permissions(&target, p),
                None => Ok(()),
            })
            .map_err(|e| {
                let e = explained(e);
                if target == self.path {
                    return self.io_error(e);
                }
                // Through a link, say where the write went.
                self.io_error(io::Error::new(
                    e.kind(),
                    format!(
                        "{e} (writing {}, where the symbolic link leads)",
                        target.display()
                    ),
                ))
            })
    }

    fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        }
    }

    fn io_error(&self, source: io::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn parse_error(&self, e: serde_json::Error) -> StoreError {
        let (path, line, column, reason) =
            (self.path.clone(), e.line(), e.column(), strip_position(&e));
        match e.classify() {
            serde_json::error::Category::Data => StoreError::Shape {
                path,
                line,
                column,
                reason,
            },
            _ => StoreError::Syntax {
                path,
                line,
                column,
                reason,
            },
        }
    }
}

/// serde_json appends " at line L column C"; the message says it already.
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

/// Where a write to `path` must go: `path` itself, or, when it is a
/// symbolic link, the file the link leads to (through any chain of links,
/// a relative one read from the link's own directory), whether or not that
/// file exists yet. Replacing the link itself would cut it.
fn link_target(path: &Path) -> io::Result<PathBuf> {
    /// As many links as Linux follows in one path.
    const MAX_LINKS: usize = 40;
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = fs::read_link(&current)?;
                current = match current.parent() {
                    Some(dir) => dir.join(link),
                    None => link,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("more than {MAX_LINKS} symbolic links in a chain; it was not written"),
    ))
}

/// `e` with what to do when the cause is not plain from it: a file over a
/// size limit (`ulimit -f`) gives EFBIG, which the process survives because
/// it ignores SIGXFSZ.
fn explained(e: io::Error) -> io::Error {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::EFBIG) {
        return io::Error::new(
            e.kind(),
            format!(
                "{e}: the new content is over a file-size limit (`ulimit -f`, or the file \
                 system's); it was left unchanged"
            ),
        );
    }
    e
}

/// The temporary file [`write_atomically`] writes `name` through, in the
/// process `pid`: `.NAME.PID.tmp`.
fn temp_name(name: &str, pid: u32) -> String {
    format!(".{name}.{pid}.tmp")
}

/// Removes the temporary files that writers of `name` in `dir` left when
/// they were killed between creating one and renaming it: files named as
/// [`temp_name`] names them, of a process that is gone. Nothing else is
/// touched: not another name's, not a live process's (it may be writing),
/// not one whose process cannot be told (only "no such process" counts as
/// gone; a process of another user is alive). A writer in another PID
/// namespace sharing the directory may look gone; the writers of a file
/// hold its lock (alerts.json's, the monitor's for its status file), so
/// none of them is writing while this one is. Any failure is ignored:
/// cleaning is never a reason to fail a write.
fn remove_stale_temps(dir: &Path, name: &str) {
    #[cfg(unix)]
    {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        let own = std::process::id();
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            let Some(pid) = file_name
                .strip_prefix('.')
                .and_then(|rest| rest.strip_prefix(name))
                .and_then(|rest| rest.strip_prefix('.'))
                .and_then(|rest| rest.strip_suffix(".tmp"))
                .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|digits| digits.parse::<u32>().ok())
            else {
                continue;
            };
            // The exact spelling only (no leading zeros), never our own.
            if pid == own || temp_name(name, pid) != file_name || !process_is_gone(pid) {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (dir, name);
}

/// Whether no process `pid` exists (as this process sees them).
#[cfg(unix)]
fn process_is_gone(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // Signal 0 checks only; EPERM means a process of another user.
    // SAFETY: kill with signal 0 sends nothing.
    let result = unsafe { libc::kill(pid, 0) };
    result != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Replaces `path` with `bytes`: temp file beside it, fsync, rename, fsync
/// dir. The temp file is removed when the write fails; one left by a
/// writer that was killed is removed by the next write of the same file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let name = name.to_string_lossy();
    remove_stale_temps(&dir, &name);
    let temp = dir.join(temp_name(&name, std::process::id()));

    let result = (|| {
        let mut file = crate::private::new_file_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(|e| {
                // The file is replaced through a new one beside it: what
                // is refused is the directory, which the bare error hides.
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot create a file in {} to replace it with: {e}",
                        dir.display()
                    ),
                )
            })?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        if let Ok(dir) = File::open(&dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: &str) -> Condition {
        serde_json::from_value(serde_json::json!({
            "id": id, "condition_type": "price_above", "ticker": "T",
            "threshold": 0.5, "label": "", "created_at": ""
        }))
        .unwrap()
    }

    #[test]
    fn missing_file_is_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = AlertStore::in_dir(dir.path());
        assert!(store.load().unwrap().conditions.is_empty());
    }

    #[test]
    fn update_writes_and_keeps_unknown_top_level_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.json");
        fs::write(&path, r#"{"conditions": [], "version": 3}"#).unwrap();
        let store = AlertStore::in_dir(dir.path());

        store
            .update(|f| {
                f.conditions.push(sample("abc"));
                Ok::<_, ()>(())
            })
            .unwrap()
            .unwrap();

        let back: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back["version"], 3);
        assert_eq!(back["conditions"][0]["id"], "abc");
    }

    #[test]
    fn failed_change_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = AlertStore::in_dir(dir.path());
        let outcome = store
            .update(|f| {
                f.conditions.push(sample("abc"));
                Err::<(), _>("refused")
            })
            .unwrap();
        assert_eq!(outcome, Err("refused"));
        assert!(!store.path().exists());
    }

    #[test]
    fn invalid_json_names_path_and_position_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.json");
        let broken = "{\n  \"conditions\": [\n    {,\n";
        fs::write(&path, broken).unwrap();
        let store = AlertStore::in_dir(dir.path());

        let err = store.update(|_| Ok::<_, ()>(())).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("alerts.json is not valid JSON (line 3, column 6)"),
            "{text}"
        );
        assert!(text.ends_with("it was left unchanged"), "{text}");
        assert_eq!(fs::read_to_string(&path).unwrap(), broken);
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("alerts.json"),
            "\u{feff}{\"conditions\": []}",
        )
        .unwrap();
        assert!(AlertStore::in_dir(dir.path()).load().is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn a_rewrite_keeps_permissions_and_follows_a_symlink() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        fs::write(&real, "{\"conditions\": []}").unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("alerts.json")).unwrap();

        let store = AlertStore::in_dir(dir.path());
        store
            .update(|f| {
                f.conditions.push(sample("x"));
                Ok::<_, ()>(())
            })
            .unwrap()
            .unwrap();
        assert!(fs::symlink_metadata(dir.path().join("alerts.json"))
            .unwrap()
            .is_symlink());
        assert_eq!(
            fs::metadata(&real).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(store.load().unwrap().conditions.len(), 1);
    }

    #[test]
    fn prefix_lookup_distinguishes_missing_and_ambiguous() {
        let file = AlertsFile {
            conditions: vec![sample("abc1"), sample("abc2"), sample("def")],
            extra: Map::new(),
        };
        assert_eq!(file.find("d"), Ok(2));
        assert_eq!(file.find("DE"), Ok(2));
        assert_eq!(file.find("abc2"), Ok(1));
        assert!(matches!(
            file.find("abc"),
            Err(LookupError::Ambiguous { .. })
        ));
        assert_eq!(file.find("zz"), Err(LookupError::NotFound("zz".into())));
        assert_eq!(file.find(""), Err(LookupError::NotFound("".into())));
    }

    #[test]
    fn an_id_two_conditions_share_picks_neither() {
        let file = AlertsFile {
            conditions: vec![sample("same"), sample("other"), sample("same")],
            extra: Map::new(),
        };
        assert_eq!(
            file.find("same"),
            Err(LookupError::Shared {
                id: "same".into(),
                count: 2
            })
        );
        assert_eq!(file.find("oth"), Ok(1));
    }

    #[cfg(unix)]
    #[test]
    fn only_a_regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = AlertStore::in_dir(dir.path());
        // A device that never ends, behind a symbolic link.
        std::os::unix::fs::symlink("/dev/zero", store.path()).unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("is not a regular file"), "{err}");
        let err = store
            .update(|file| {
                file.conditions.push(sample("x"));
                Ok::<_, StoreError>(())
            })
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a regular file"), "{err}");
        fs::remove_file(store.path()).unwrap();
        fs::create_dir(store.path()).unwrap();
        assert!(store.load().is_err());
    }

    #[test]
    fn concurrent_updates_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let store = AlertStore::in_dir(dir.path());
                std::thread::spawn(move || {
                    store
                        .update(|f| {
                            f.conditions.push(sample(&format!("id{i}")));
                            Ok::<_, ()>(())
                        })
                        .unwrap()
                        .unwrap()
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let file = AlertStore::in_dir(dir.path()).load().unwrap();
        assert_eq!(file.conditions.len(), 8);
    }
}
