//! `kalshi alerts status` and `kalshi alerts stop`: the monitor of a data dir,
//! found through its lock file whether it runs as a daemon or in a terminal.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use kalshi_alerts_core::lock::MonitorLock;

use super::Context;
use crate::error::{CliError, CliResult};
use crate::output::say;

/// LSB's "program is not running" status code.
const NOT_RUNNING: u8 = 3;

pub fn status(context: &Context) -> CliResult<ExitCode> {
    match holder(context)? {
        Some(pid) => {
            say!("Alert monitor is running (PID: {pid})");
            say!("Data dir: {}", context.data_dir.display());
            say!("Daemon log: {}", context.log_path().display());
            Ok(ExitCode::SUCCESS)
        }
        None => {
            say!(
                "Alert monitor is not running for {}",
                context.data_dir.display()
            );
            Ok(ExitCode::from(NOT_RUNNING))
        }
    }
}

pub fn stop(context: &Context, timeout: u64) -> CliResult<ExitCode> {
    let Some(pid) = holder(context)? else {
        say!(
            "Alert monitor is not running for {}",
            context.data_dir.display()
        );
        return Ok(ExitCode::SUCCESS);
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
    Err(CliError::invalid(format!(
        "the alert monitor (PID: {pid}) did not stop within {timeout}s; `kill -9 {pid}` forces it"
    )))
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
