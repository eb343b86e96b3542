//! Driving the real `kalshi` binary: adding conditions, starting the monitor as a daemon,
//! killing and stopping it, and reading its history and status.
//!
//! Every command runs with a cleared environment that names the soak's data dir and loopback
//! servers, so nothing can reach the real Kalshi API, and within a time limit, so a hung
//! command ends the soak instead of stalling it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The environment variable the notifiers file reads the webhook URL from.
pub const HOOK_URL_VARIABLE: &str = "SOAK_HOOK_URL";

/// How long any one command may take; `alerts stop` waits up to its own `--timeout` on top.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// The `kalshi` binary aimed at one data dir and the soak's servers.
pub struct Kalshi {
    pub binary: PathBuf,
    pub data_dir: PathBuf,
    pub api_base_url: String,
    pub hook_url: String,
}

/// What a finished command printed.
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    fn ok(self, what: &str) -> Result<Finished, String> {
        match self.code {
            Some(0) => Ok(self),
            code => Err(format!(
                "kalshi {what} failed ({code:?}): {}",
                self.stderr.trim()
            )),
        }
    }
}

impl Kalshi {
    /// Runs `kalshi ARGS` to the end, within [`COMMAND_LIMIT`].
    pub fn run(&self, args: &[&str]) -> Result<Finished, String> {
        let mut child = Command::new(&self.binary)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KALSHI_DATA_DIR", &self.data_dir)
            .env("KALSHI_API_BASE_URL", &self.api_base_url)
            .env("KALSHI_LOG", "info")
            .env(HOOK_URL_VARIABLE, &self.hook_url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        // Read both pipes on their own threads: a history larger than a pipe's buffer would
        // otherwise block the child before it exits.
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_string(&mut text);
                }
                text
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
        let deadline = Instant::now() + COMMAND_LIMIT;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "kalshi {} did not finish within {}s and was killed",
                    args.join(" "),
                    COMMAND_LIMIT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(Finished {
            code: status.code(),
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        })
    }

    /// `kalshi alerts add ARGS`; returns the new condition's id.
    ///
    /// The ticker is not looked up (`--no-check`): the market server fails requests from the
    /// first one on, and a lookup that met a fault would end the soak before it began.
    pub fn add(&self, args: &[String]) -> Result<String, String> {
        let mut full = vec!["alerts", "add", "--no-check"];
        full.extend(args.iter().map(String::as_str));
        self.run(&full)?.ok("alerts add")?;
        let listed = self.run(&["alerts", "list", "--json"])?.ok("alerts list")?;
        let conditions: Value = serde_json::from_str(&listed.stdout)
            .map_err(|e| format!("alerts list --json is not JSON: {e}"))?;
        conditions
            .as_array()
            .and_then(|all| all.last())
            .and_then(|last| last["id"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| "alerts list --json shows no condition after an add".into())
    }

    /// Starts the monitor as a daemon; returns its PID.
    pub fn start(&self, interval: u64, timeout: u64) -> Result<u32, String> {
        let (interval, timeout) = (interval.to_string(), timeout.to_string());
        let started = self
            .run(&[
                "alerts",
                "monitor",
                "--daemon",
                "--interval",
                &interval,
                "--timeout",
                &timeout,
            ])?
            .ok("alerts monitor --daemon")?;
        started
            .stdout
            .split("(PID: ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .and_then(|pid| pid.parse().ok())
            .ok_or_else(|| format!("no PID in {:?}", started.stdout))
    }

    /// Whether a monitor holds the data dir's lock (`alerts status` exits 0, or 3 when none).
    pub fn running(&self) -> Result<bool, String> {
        match self.run(&["alerts", "status"])?.code {
            Some(0) => Ok(true),
            Some(3) => Ok(false),
            code => Err(format!("kalshi alerts status exited with {code:?}")),
        }
    }

    /// Kills the daemon with SIGKILL and waits until its lock is free.
    pub fn kill(&self, pid: u32) -> Result<(), String> {
        // SAFETY: kill(2) with a PID this soak started and a valid signal number.
        let sent = unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        if sent != 0 {
            return Err(format!(
                "cannot kill PID {pid}: {}",
                std::io::Error::last_os_error()
            ));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.running()? {
            if Instant::now() > deadline {
                return Err(format!("PID {pid} still holds the lock 20 s after SIGKILL"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// `kalshi alerts stop`; returns how long it took.
    pub fn stop(&self) -> Result<Duration, String> {
        let began = Instant::now();
        self.run(&["alerts", "stop", "--timeout", "30"])?
            .ok("alerts stop")?;
        Ok(began.elapsed())
    }

    /// `kalshi alerts history --json`.
    pub fn history(&self) -> Result<Vec<Value>, String> {
        let listed = self
            .run(&["alerts", "history", "--json"])?
            .ok("alerts history")?;
        match serde_json::from_str(&listed.stdout) {
            Ok(Value::Array(entries)) => Ok(entries),
            _ => Err("alerts history --json is not a JSON array".into()),
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("alert_monitor.log")
    }
}

/// Whether a process runs (and is no zombie).
pub fn alive(pid: u32) -> bool {
    let stat = Path::new("/proc").join(pid.to_string()).join("stat");
    match std::fs::read_to_string(stat) {
        // The state follows the command name in parentheses, which may itself hold spaces.
        Ok(text) => text
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
