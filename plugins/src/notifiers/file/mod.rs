//! The `file` notifier: appends each alert as one JSON line.
//!
//! Each record is written, newline included, with a single `write` on a
//! file opened for appending, and the file is synced so that an alert
//! reported as delivered survives a crash. Appends to one file take turns
//! (see [`turn_of`]): deliveries run as concurrent tasks.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use kalshi_alerts_core::notifier::SettingsError;
use kalshi_alerts_core::{
    async_trait, FiredAlert, Notifier, NotifierPlugin, NotifyError, SettingKind, SettingSpec,
    Settings,
};

pub const NAME: &str = "file";

struct FileNotifier {
    path: PathBuf,
    /// Held while appending to `path`.
    turn: Arc<Mutex<()>>,
}

/// The lock of the file at `path`, shared by every instance that appends
/// to it.
///
/// An append reads the file's last byte, writes, and on a failed write cuts
/// the file back to where it was: each step is right only if no other
/// append changes the file meanwhile. Without turns, an append that reads
/// the last byte of a record still being written takes that line for one
/// a crash left unfinished, and ends it with a newline of its own, which
/// leaves an empty line once the record is in.
///
/// Files are told apart by their path made absolute, as written: two
/// spellings of one file through a symbolic link, or another process
/// appending to it, do not take turns with these appends.
fn turn_of(path: &Path) -> Arc<Mutex<()>> {
    static TURNS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    let key = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    TURNS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(key)
        .or_default()
        .clone()
}

/// Appends one line, in its turn. A write that fails half-way (a full
/// disk) is cut back off, and a line left unfinished by an earlier crash is
/// ended first, so every line of the file stays one whole JSON record.
fn append(path: &Path, turn: &Mutex<()>, line: &[u8]) -> io::Result<()> {
    let _turn = turn.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let before = file.metadata()?.len();
    let mut record = Vec::with_capacity(line.len() + 1);
    if before > 0 && !ends_with_newline(&mut file, before)? {
        record.push(b'\n');
    }
    record.extend_from_slice(line);

    let written = file.write_all(&record).and_then(|()| file.sync_data());
    if written.is_err() {
        let _ = file.set_len(before);
    }
    written
}

fn ends_with_newline(file: &mut fs::File, len: u64) -> io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};

    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

#[async_trait]
impl Notifier for FileNotifier {
    async fn notify(&self, alert: &FiredAlert) -> Result<(), NotifyError> {
        let mut line = serde_json::to_vec(alert).expect("alerts serialise to JSON");
        line.push(b'\n');
        let path = self.path.clone();
        let target = path.clone();
        let turn = self.turn.clone();
        let written = tokio::task::spawn_blocking(move || append(&target, &turn, &line))
            .await
            .map_err(|e| NotifyError::retryable(format!("writer task failed: {e}")))?;
        written
            .map_err(|e| super::write_failure(format!("cannot append to {}", path.display()), &e))
    }
}

const SETTINGS: &[SettingSpec] = &[SettingSpec {
    name: "path",
    kind: SettingKind::Path,
    default: None,
    required: true,
    secret: false,
    help: "the JSON-lines file to append alerts to (created with its directory)",
}];

fn build(settings: &Settings) -> Result<Box<dyn Notifier>, SettingsError> {
    let path = settings
        .get("path")
        .and_then(|v| v.as_str())
        .map(PathBuf::from)
        .ok_or_else(|| SettingsError {
            notifier: NAME.into(),
            key: "path".into(),
            problem: "missing".into(),
        })?;
    let turn = turn_of(&path);
    Ok(Box::new(FileNotifier { path, turn }))
}

kalshi_alerts_core::inventory::submit! {
    NotifierPlugin {
        name: NAME,
        description: "appends each alert as one JSON line to a file",
        settings: SETTINGS,
        build,
    }
}

#[cfg(test)]
mod tests {
    use kalshi_alerts_core::{Condition, Market};

    use super::*;

    fn alert() -> FiredAlert {
        let condition: Condition = serde_json::from_value(serde_json::json!({
            "id": "c1", "condition_type": "volume_above", "ticker": "T",
            "threshold": 10, "label": "busy", "created_at": ""
        }))
        .unwrap();
        let market = Market {
            ticker: "T".into(),
            title: "t".into(),
            status: "active".into(),
            event_ticker: String::new(),
            yes_bid: None,
            yes_ask: None,
            volume: Some(20.into()),
        };
        FiredAlert::new(&condition, &market, 20.into(), chrono::Utc::now())
    }

    #[tokio::test]
    async fn appends_one_json_line_per_alert() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/alerts.jsonl");
        let settings = serde_json::json!({"path": path.to_str().unwrap()});
        let plugin = kalshi_alerts_core::notifier::find_notifier(NAME).unwrap();
        let notifier = plugin.instantiate(settings.as_object().unwrap()).unwrap();

        notifier.notify(&alert()).await.unwrap();
        notifier.notify(&alert()).await.unwrap();

        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["label"], "busy");
        assert_eq!(lines[0]["current_value"], 20);
    }

    #[tokio::test]
    async fn an_unfinished_line_is_ended_before_the_next_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        fs::write(&path, b"{\"partial\": tru").unwrap();
        let settings = serde_json::json!({"path": path.to_str().unwrap()});
        let notifier = build(settings.as_object().unwrap()).unwrap();
        notifier.notify(&alert()).await.unwrap();

        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            serde_json::from_str::<serde_json::Value>(lines[1]).is_ok(),
            "{text}"
        );
    }

    /// Deliveries run as concurrent tasks, through one instance or two of
    /// the same file: however they interleave, each alert is one whole
    /// line, written once, and no line is empty.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_deliveries_write_each_alert_once_on_a_line_of_its_own() {
        const ALERTS: usize = 600;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let settings = serde_json::json!({"path": path.to_str().unwrap()});
        let instance =
            || -> Arc<dyn Notifier> { build(settings.as_object().unwrap()).unwrap().into() };
        let instances = [instance(), instance()];

        let deliveries: Vec<_> = (0..ALERTS)
            .map(|n| {
                // Most through the first instance, some through the second.
                let notifier = instances[usize::from(n % 5 == 0)].clone();
                // Records of a few KiB span page boundaries, as records with
                // long titles do.
                let mut alert = alert();
                alert.label = format!("{n} {}", "x".repeat(n % 7 * 1000));
                tokio::spawn(async move { notifier.notify(&alert).await })
            })
            .collect();
        for delivery in deliveries {
            delivery.await.unwrap().unwrap();
        }

        let text = fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'));
        let lines: Vec<&str> = text.lines().collect();
        let empty = lines.iter().filter(|l| l.is_empty()).count();
        assert_eq!(empty, 0, "{empty} empty lines");
        let mut labels: Vec<usize> = lines
            .iter()
            .map(|l| {
                let record: serde_json::Value = serde_json::from_str(l).unwrap();
                let label = record["label"].as_str().unwrap();
                label.split(' ').next().unwrap().parse().unwrap()
            })
            .collect();
        labels.sort_unstable();
        assert_eq!(labels, (0..ALERTS).collect::<Vec<_>>());
    }

    /// /dev/full answers every write with ENOSPC, as a full disk does.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_full_disk_is_retried_since_space_may_come_back() {
        let settings = serde_json::json!({"path": "/dev/full"});
        let notifier = build(settings.as_object().unwrap()).unwrap();
        let err = notifier.notify(&alert()).await.unwrap_err();
        assert_eq!(
            err.kind,
            kalshi_alerts_core::FailureKind::Retryable,
            "{}",
            err.message
        );
        assert!(
            err.message.contains("No space left on device"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn unwritable_path_is_a_permanent_failure() {
        let dir = tempfile::tempdir().unwrap();
        let settings = serde_json::json!({"path": dir.path().to_str().unwrap()});
        let notifier = build(settings.as_object().unwrap()).unwrap();
        let err = notifier.notify(&alert()).await.unwrap_err();
        assert_eq!(err.kind, kalshi_alerts_core::FailureKind::Permanent);
        assert!(err.message.contains("cannot append to"), "{}", err.message);
    }
}
