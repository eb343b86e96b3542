//! The `kalshi` binary under test, run in a data directory of its own against the loopback
//! server only.
//!
//! Every command gets `KALSHI_API_BASE_URL` set to the server, `KALSHI_LOG=info` (the cycle
//! line carries `scan_ms` and `evaluate_us`), a configuration home with nothing in it, and none
//! of the caller's other `KALSHI_*` settings, so nothing a user configured can send a request
//! elsewhere or change what is measured.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::interrupt;
use crate::measure::Probe;

/// Where one command's output goes, in its data directory.
pub const STDOUT: &str = "bench.stdout";
pub const STDERR: &str = "bench.stderr";
/// The daemon's log, in its data directory.
pub const DAEMON_LOG: &str = "alert_monitor.log";

#[derive(Clone)]
pub struct Kalshi {
    binary: PathBuf,
    /// An empty `XDG_CONFIG_HOME`.
    config_home: PathBuf,
}

impl Kalshi {
    pub fn new(binary: PathBuf, work: &Path) -> io::Result<Kalshi> {
        let config_home = work.join("config-home");
        std::fs::create_dir_all(&config_home)?;
        Ok(Kalshi {
            binary,
            config_home,
        })
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// `kalshi --data-dir DIR ARGS...` against `base_url`, its output to files in `dir`, to be
    /// run under the measuring helper.
    pub fn command(&self, dir: &Path, base_url: &str, args: &[&str]) -> io::Result<Probe> {
        let _writing = interrupt::hold();
        let mut probe = Probe::new(&self.binary)?;
        self.configure(probe.command(), dir, base_url, args)?;
        Ok(probe)
    }

    /// Sets up `command`, which runs this binary, as `kalshi --data-dir DIR ARGS...` against
    /// `base_url`, its output to files in `dir`.
    pub fn configure<'a>(
        &self,
        command: &'a mut Command,
        dir: &Path,
        base_url: &str,
        args: &[&str],
    ) -> io::Result<&'a mut Command> {
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KALSHI_") {
                command.env_remove(name);
            }
        }
        command
            .env_remove("RUST_LOG")
            .env("KALSHI_API_BASE_URL", base_url)
            .env("KALSHI_LOG", "info")
            .env("XDG_CONFIG_HOME", &self.config_home)
            .env("NO_COLOR", "1")
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(File::create(dir.join(STDOUT))?)
            .stderr(File::create(dir.join(STDERR))?);
        Ok(command)
    }
}

/// A data directory holding `alerts.json` with the given conditions.
pub fn data_dir(work: &Path, name: &str, alerts: &Value) -> io::Result<PathBuf> {
    let _writing = interrupt::hold();
    let dir = work.join(name);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("alerts.json"), serde_json::to_vec(alerts)?)?;
    Ok(dir)
}

/// What the monitor's `cycle complete` log line says about one cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cycle {
    pub number: u64,
    pub markets: u64,
    pub scan_ms: u64,
    pub evaluate_us: u64,
    pub fired: u64,
    /// The whole cycle: scan, evaluation, the state commit and delivery.
    pub took_ms: u64,
}

/// The peak resident memory the monitor reports of itself when it stops
/// (`peak_rss_kib`, its `VmHWM`), in KiB.
pub fn peak_rss_in(text: &str) -> Option<u64> {
    text.lines()
        .rev()
        .find(|line| line.contains("monitor stopped"))
        .map(|line| field(line, "peak_rss_kib"))
        .filter(|kib| *kib > 0)
}

/// The cycles logged in `text`, in order.
pub fn cycles_in(text: &str) -> Vec<Cycle> {
    text.lines()
        .filter(|line| line.contains("cycle complete"))
        .map(|line| Cycle {
            number: field(line, "cycle"),
            markets: field(line, "markets"),
            scan_ms: field(line, "scan_ms"),
            evaluate_us: field(line, "evaluate_us"),
            fired: field(line, "fired"),
            took_ms: field(line, "took_ms"),
        })
        .collect()
}

/// The number logged as ` name=N` in `line`, 0 when there is none.
fn field(line: &str, name: &str) -> u64 {
    let key = format!(" {name}=");
    line.find(&key)
        .map(|at| &line[at + key.len()..])
        .and_then(|rest| {
            let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
            digits.parse().ok()
        })
        .unwrap_or(0)
}

/// The last cycle logged in the output file `name` of `dir`, if any.
pub fn last_cycle(dir: &Path, name: &str) -> Option<Cycle> {
    let text = std::fs::read_to_string(dir.join(name)).ok()?;
    cycles_in(&text).pop()
}

/// The daemon's PID, from what `monitor --daemon` printed.
pub fn daemon_pid(dir: &Path) -> Option<u32> {
    let said = std::fs::read_to_string(dir.join(STDOUT)).ok()?;
    let after = said.split("(PID: ").nth(1)?;
    after.split(')').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cycle_line_is_read_field_by_field() {
        let line = "2026-01-12T00:00:00Z  INFO kalshi_alerts_core::monitor: cycle complete \
                    cycle=3 pages=20 markets=20000 scan_ms=180 evaluate_us=412 fired=2 \
                    delivered=2 failed=0 retrying=0 took_ms=190";
        let cycles = cycles_in(&format!("noise\n{line}\n"));
        assert_eq!(
            cycles,
            [Cycle {
                number: 3,
                markets: 20000,
                scan_ms: 180,
                evaluate_us: 412,
                fired: 2,
                took_ms: 190
            }]
        );
    }
}
