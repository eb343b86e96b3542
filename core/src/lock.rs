//! The monitor lock: at most one monitor per data directory.
//!
//! A running monitor holds an exclusive advisory lock on
//! `alert_monitor.pid` and writes its PID into it, so a second monitor, a
//! daemon start or `trim-log` can tell that one runs and which. The lock
//! dies with the process, so a crash leaves no stale lock behind.

use std::fs::{self, File, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "alert_monitor.pid";

/// A held monitor lock; released when dropped or when the process ends.
#[derive(Debug)]
pub struct MonitorLock {
    file: File,
    path: PathBuf,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("an alert monitor is already running for {dir} ({holder}); stop it first")]
    Held { dir: PathBuf, holder: Holder },
    #[error("monitor lock {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Who holds the lock, as far as the lock file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// `None` while the holder has locked but not yet written its PID.
    pub pid: Option<u32>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "PID: {pid}"),
            None => f.write_str("PID not yet written"),
        }
    }
}

impl MonitorLock {
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join(LOCK_FILE)
    }

    /// Takes the lock of `data_dir` and records this process's PID.
    pub fn acquire(data_dir: &Path) -> Result<MonitorLock, LockError> {
        let path = Self::path_in(data_dir);
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        crate::private::create_dir(data_dir).map_err(io_err)?;
        let mut file = crate::private::new_file_options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err)?;

        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    dir: data_dir.to_path_buf(),
                    holder: Holder {
                        pid: read_pid(&mut file),
                    },
                })
            }
            Err(TryLockError::Error(e)) => return Err(io_err(e)),
        }

        file.set_len(0).map_err(io_err)?;
        file.rewind().map_err(io_err)?;
        writeln!(file, "{}", std::process::id()).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        Ok(MonitorLock { file, path })
    }

    /// Who holds the lock of `data_dir`, or `None` when no monitor runs.
    pub fn holder(data_dir: &Path) -> io::Result<Option<Holder>> {
        let path = Self::path_in(data_dir);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(None),
            Err(TryLockError::WouldBlock) => Ok(Some(Holder {
                pid: read_pid(&mut file),
            })),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    /// The PID written in the lock file, whether or not it is held.
    pub fn recorded_pid(data_dir: &Path) -> Option<u32> {
        let mut file = File::open(Self::path_in(data_dir)).ok()?;
        read_pid(&mut file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the lock file at the path is still the one this lock holds.
    /// It is not when someone deleted it (or the whole data directory):
    /// then no other command can see that this monitor runs.
    pub fn is_current(&self) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;

            let (Ok(held), Ok(there)) = (self.file.metadata(), fs::metadata(&self.path)) else {
                return false;
            };
            held.ino() == there.ino() && held.dev() == there.dev()
        }
        #[cfg(not(unix))]
        {
            self.path.exists()
        }
    }
}

impl Drop for MonitorLock {
    fn drop(&mut self) {
        // Clear the PID before the lock goes, so no reader sees a dead one.
        let _ = self.file.set_len(0);
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = MonitorLock::acquire(dir.path()).unwrap();

        let err = MonitorLock::acquire(dir.path()).unwrap_err();
        let me = std::process::id();
        assert!(err.to_string().contains(&format!("PID: {me}")), "{err}");
        assert_eq!(
            MonitorLock::holder(dir.path()).unwrap(),
            Some(Holder { pid: Some(me) })
        );

        drop(held);
        assert_eq!(MonitorLock::holder(dir.path()).unwrap(), None);
        assert!(MonitorLock::acquire(dir.path()).is_ok());
    }

    #[test]
    fn a_deleted_lock_file_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let held = MonitorLock::acquire(dir.path()).unwrap();
        assert!(held.is_current());
        fs::remove_file(held.path()).unwrap();
        assert!(!held.is_current());
    }

    #[test]
    fn no_lock_file_means_no_monitor() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(MonitorLock::holder(dir.path()).unwrap(), None);
    }
}
