//! Shared set-up for the integration tests: a data dir, the real `kalshi`
//! binary aimed at a loopback server, a daemon started from it, and helpers
//! to read what they wrote.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::{json, Value};

/// Nothing listens on the discard port of loopback, so a test that forgets
/// to start a server gets "connection refused", never the real API.
pub const NO_SERVER: &str = "http://127.0.0.1:9/trade-api/v2";

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn alerts_path(&self) -> PathBuf {
        self.data_dir().join("alerts.json")
    }

    /// `kalshi` with this sandbox's data dir and no server.
    pub fn kalshi(&self) -> Command {
        self.kalshi_at(NO_SERVER)
    }

    /// `kalshi` with this sandbox's data dir, reading markets from `base_url`.
    pub fn kalshi_at(&self, base_url: &str) -> Command {
        let mut cmd = Command::cargo_bin("kalshi").expect("kalshi binary");
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KALSHI_DATA_DIR", self.data_dir())
            .env("KALSHI_API_BASE_URL", base_url)
            .env("KALSHI_LOG", "info")
            .current_dir(self.dir.path())
            .timeout(std::time::Duration::from_secs(60));
        cmd
    }

    /// Adds a condition through the CLI and returns its full id.
    pub fn add(&self, args: &[&str]) -> String {
        let mut full = vec!["alerts", "add", "--no-check"];
        full.extend_from_slice(args);
        self.kalshi().args(&full).assert().success();
        let conditions = self.conditions();
        conditions.last().expect("a condition")["id"]
            .as_str()
            .expect("an id")
            .to_string()
    }

    pub fn conditions(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.alerts_path()).expect("alerts.json");
        let file: Value = serde_json::from_str(&text).expect("alerts.json is JSON");
        file["conditions"].as_array().cloned().unwrap_or_default()
    }

    pub fn write_alerts(&self, conditions: Value) {
        std::fs::create_dir_all(self.data_dir()).unwrap();
        let text = serde_json::to_string_pretty(&json!({ "conditions": conditions })).unwrap();
        std::fs::write(self.alerts_path(), text).unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `kalshi` with `args` on a pseudo-terminal (stdin, stdout and
    /// stderr all on it), with this data dir, no server unless `env` names
    /// one, and `env` set; returns everything it printed there.
    #[cfg(unix)]
    pub fn on_a_terminal(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        use std::io::Read;

        let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("kalshi"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KALSHI_DATA_DIR", self.data_dir())
            .env("KALSHI_API_BASE_URL", NO_SERVER)
            .env("TERM", "xterm");
        for (name, value) in env {
            command.env(name, value);
        }
        let mut session = expectrl::Session::spawn(command).expect("a pty session");
        session.set_expect_timeout(Some(std::time::Duration::from_secs(60)));
        let mut out = String::new();
        // The pty reports EIO once the program has exited and its side closed.
        let _ = session.read_to_string(&mut out);
        out.replace("\r\n", "\n")
    }

    /// The daemon's log, `alert_monitor.log` in the data dir.
    pub fn log_path(&self) -> PathBuf {
        self.data_dir().join("alert_monitor.log")
    }

    /// What the daemon's log holds so far; empty when there is none.
    pub fn log_text(&self) -> String {
        std::fs::read(self.log_path())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }
}

/// A condition record as the Python tool writes it.
pub fn record(id: &str, kind: &str, ticker: &str, threshold: f64) -> Value {
    json!({
        "id": id,
        "condition_type": kind,
        "ticker": ticker,
        "threshold": threshold,
        "label": format!("{kind} {ticker}"),
        "created_at": "2026-01-12T22:08:10.446961+00:00"
    })
}

/// The JSON lines of a `--output-file`.
pub fn fired_records(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is JSON"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The condition ids that fired, in file order.
pub fn fired_ids(path: &Path) -> Vec<String> {
    fired_records(path)
        .iter()
        .map(|r| r["condition_id"].as_str().unwrap().to_string())
        .collect()
}

pub fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Kills a daemon if a test fails before stopping it.
#[cfg(unix)]
pub struct DaemonGuard(pub i32);

#[cfg(unix)]
impl Drop for DaemonGuard {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.0, libc::SIGKILL);
        }
    }
}

/// Waits (bounded) until `check` holds.
pub fn eventually(what: &str, limit: std::time::Duration, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The PID in `Alert monitor started in background (PID: N)`.
pub fn started_pid(stdout: &str) -> i32 {
    stdout
        .split("(PID: ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no PID in {stdout:?}"))
}

/// Whether the process still runs. A zombie still answers kill(0); the
/// lock file is the truth, so tests use `status` for "stopped" and this
/// only for "still running".
#[cfg(unix)]
pub fn alive(pid: i32) -> bool {
    unsafe { libc::kill(pid, 0) == 0 }
}

#[cfg(unix)]
pub fn signal(pid: i32, sig: i32) {
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}
