//! `kalshi alerts status` and `kalshi alerts stop`: the monitor of a data dir,
//! found through its lock file whether it runs as a daemon or in a terminal.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use kalshi_alerts_core::display::printable;
use kalshi_alerts_core::lock::MonitorLock;
use kalshi_alerts_core::monitor::{MonitorStatus, STATUS_FILE};

use super::Context;
use crate::error::{CliError, CliResult};
use crate::output::say;

/// LSB's "program is not running" status code.
const NOT_RUNNING: u8 = 3;
/// `stop`'s exit code when the monitor outlived the wait.
const STILL_RUNNING: u8 = 4;

pub fn status(context: &Context, as_json: bool) -> CliResult<ExitCode> {
    let running = holder(context)?;
    // The PID of a monitor that ended without clearing it (killed with -9,
    // a crash): the lock died with it, so this is not "running".
    let stale = match running {
        Some(_) => None,
        None => MonitorLock::recorded_pid(&context.data_dir),
    };
    let status: Option<MonitorStatus> = running.and_then(|pid| {
        let text = std::fs::read(context.data_dir.join(STATUS_FILE)).ok()?;
        serde_json::from_slice::<MonitorStatus>(&text)
            .ok()
            .filter(|s| s.pid == pid)
    });

    if as_json {
        let report = serde_json::json!({
            "running": running.is_some(),
            "pid": running,
            "stale_pid": stale,
            "data_dir": context.data_dir.to_string_lossy(),
            "log": context.log_path().to_string_lossy(),
            "status": status,
        });
        say!("{report:#}");
    } else {
        match running {
            Some(pid) => {
                say!("Alert monitor is running (PID: {pid})");
                if let Some(status) = &status {
                    describe(status);
                }
            }
            None => say!(
                "Alert monitor is not running for {}",
                context.data_dir.display()
            ),
        }
        if let Some(pid) = stale {
            say!("The last monitor (PID: {pid}) ended without shutting down cleanly (killed or crashed); its lock was released with it.");
        }
        say!("Data dir: {}", context.data_dir.display());
        say!("Daemon log: {}", context.log_path().display());
    }
    Ok(match running {
        Some(_) => ExitCode::SUCCESS,
        None => ExitCode::from(NOT_RUNNING),
    })
}

fn describe(status: &MonitorStatus) {
    let when = |at: &chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    say!(
        "Started: {} ({}, every {}s)",
        when(&status.started_at),
        printable(&status.source),
        status.interval_secs
    );
    say!(
        "Cycles: {}, alerts fired: {}",
        status.cycles,
        status.alerts_fired
    );
    if let Some(last) = &status.last_cycle {
        match &last.error {
            Some(error) => say!("Last cycle: {} failed after {} ms: {}", when(&last.started_at), last.took_ms, printable(error)),
            None => say!(
                "Last cycle: {}, {} ms, {} market(s) read, {} fired, {} delivered, {} failed, {} retrying",
                when(&last.started_at), last.took_ms, last.markets, last.fired, last.delivered, last.failed, last.retrying
            ),
        }
    }
    if let Some(next) = &status.next_cycle_at {
        say!("Next cycle: {}", when(next));
    }
    if status.pending_deliveries > 0 {
        say!(
            "Deliveries pending: {} (see `kalshi alerts history`)",
            status.pending_deliveries
        );
    }
    for (name, reason) in &status.failing_notifiers {
        say!(
            "Failing notifier: {}: {}",
            printable(name),
            printable(reason)
        );
    }
}

pub fn stop(context: &Context, timeout: u64) -> CliResult<ExitCode> {
    let Some(pid) = holder(context)? else {
        say!(
            "Alert monitor is not running for {}",
            context.data_dir.display()
        );
        return Ok(ExitCode::from(NOT_RUNNING));
    };
    terminate(pid)?;

    let deadline = Instant::now() + Duration::from_secs(timeout);
    while Instant::now() < deadline {
        if holder(context)?.is_none() {
            say!("Alert monitor stopped (PID: {pid})");
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(CliError {
        code: STILL_RUNNING,
        message: format!(
            "the alert monitor (PID: {pid}) did not stop within {timeout}s; `kill -9 {pid}` forces it"
        ),
    })
}

/// The PID of the monitor holding the lock, waiting briefly for one that
/// has locked but not yet written its PID.
fn holder(context: &Context) -> CliResult<Option<u32>> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let found = MonitorLock::holder(&context.data_dir).map_err(|e| {
            CliError::invalid(format!(
                "cannot read the monitor lock in {}: {e}",
                context.data_dir.display()
            ))
        })?;
        match found {
            None => return Ok(None),
            Some(h) if h.pid.is_some() => return Ok(h.pid),
            Some(_) if Instant::now() >= deadline => {
                return Err(CliError::invalid(
                    "a monitor holds the lock but has not written its PID",
                ))
            }
            Some(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[cfg(unix)]
fn terminate(pid: u32) -> CliResult {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| CliError::invalid(format!("PID {pid} is out of range")))?;
    // SAFETY: kill(2) with a positive PID and SIGTERM has no memory effects.
    if unsafe { libc::kill(pid, libc::SIGTERM) } == -1 {
        let e = std::io::Error::last_os_error();
        return Err(CliError::invalid(format!("cannot signal PID {pid}: {e}")));
    }
    Ok(())
}

#[cfg(not(unix))]
fn terminate(pid: u32) -> CliResult {
    Err(CliError::invalid(format!(
        "stopping a monitor is only supported on Unix here; end process {pid} with Task Manager"
    )))
}
