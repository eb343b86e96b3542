//! The `daemon` launcher: starts a detached background copy of the monitor.
//!
//! The copy is this same program with the same monitor options, run by the
//! `foreground` launcher in a new session, its input from `/dev/null` and
//! its output appended to `alert_monitor.log` in the data directory. The
//! launcher reports success only once the copy is alive and holds the
//! monitor lock, so a copy that dies at start is reported, not hidden.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kalshi_alerts_core::lock::MonitorLock;
use kalshi_alerts_core::{LaunchError, LaunchOutcome, Launcher, LauncherPlugin, MonitorJob};

pub const NAME: &str = "daemon";

/// How long the copy may take to take the lock before it counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(15);

struct Daemon;

impl Launcher for Daemon {
    fn launch(&self, job: MonitorJob) -> Result<LaunchOutcome, LaunchError> {
        refuse_if_running(&job.data_dir)?;

        let log_path = job.log_path();
        let mut child = spawn(&job, &log_path)?;
        wait_until_started(&mut child, &job.data_dir, &log_path)?;
        Ok(LaunchOutcome::Detached {
            pid: child.id(),
            log_path,
        })
    }
}

fn refuse_if_running(data_dir: &Path) -> Result<(), LaunchError> {
    match MonitorLock::holder(data_dir) {
        Ok(None) => Ok(()),
        Ok(Some(holder)) => Err(LaunchError::new(format!(
            "an alert monitor is already running for {} ({holder}); \
             stop it with `kalshi alerts stop` before starting another",
            data_dir.display()
        ))),
        Err(e) => Err(LaunchError::new(format!(
            "cannot read the monitor lock in {}: {e}",
            data_dir.display()
        ))),
    }
}

fn spawn(job: &MonitorJob, log_path: &Path) -> Result<Child, LaunchError> {
    let fail = |what: &str, e: std::io::Error| LaunchError::new(format!("{what}: {e}"));
    kalshi_alerts_core::private::create_dir(&job.data_dir)
        .map_err(|e| fail(&format!("cannot create {}", job.data_dir.display()), e))?;
    let log = kalshi_alerts_core::private::new_file_options()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|e| fail(&format!("cannot open log {}", log_path.display()), e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| fail("cannot share the log file", e))?;
    let exe = std::env::current_exe().map_err(|e| fail("cannot find this program", e))?;

    let mut command = Command::new(exe);
    command
        .args(&job.foreground_args)
        .env("KALSHI_ENVIRONMENT", &job.environment)
        // The copy skips what was validated here (notifier checks).
        .env("KALSHI_DAEMON_CHILD", "1")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    detach(&mut command);
    command
        .spawn()
        .map_err(|e| fail("cannot start the background monitor", e))
}

/// New session, so the copy has no controlling terminal and the terminal
/// closing sends it nothing; SIGHUP ignored as well, for good measure.
#[cfg(unix)]
fn detach(command: &mut Command) {
    use std::os::unix::process::CommandExt;

    // SAFETY: between fork and exec only async-signal-safe calls are made:
    // setsid(2) and signal(2) qualify.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            mark_inherited_descriptors_cloexec();
            Ok(())
        });
    }
}

/// Descriptors this process inherited without close-on-exec (a caller's
/// pipes, say) would otherwise live as long as the daemon. They are marked
/// close-on-exec rather than closed, so the standard library's own pipe that
/// reports a failed exec keeps working.
#[cfg(target_os = "linux")]
fn mark_inherited_descriptors_cloexec() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range(2) only changes descriptor flags; it is a plain
    // system call and async-signal-safe. Failure (an old kernel) is ignored.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        );
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
fn mark_inherited_descriptors_cloexec() {}

#[cfg(windows)]
fn detach(command: &mut Command) {
    use std::os::windows::process::CommandExt;

    const DETACHED_PROCESS: u32 = 0x0000_0008;
    const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
    command.creation_flags(DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP);
}

fn wait_until_started(child: &mut Child, data_dir: &Path, log: &Path) -> Result<(), LaunchError> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match child.try_wait() {
            // A short run (`--once`) may take and release the lock between
            // two polls; finishing cleanly is a successful start.
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                // Two daemons started at once: the other one won the lock.
                if let Ok(Some(holder)) = MonitorLock::holder(data_dir) {
                    return Err(LaunchError::new(format!(
                        "an alert monitor is already running for {} ({holder}); \
                         stop it with `kalshi alerts stop` before starting another",
                        data_dir.display()
                    )));
                }
                return Err(LaunchError::new(format!(
                    "the background monitor exited at start ({status}); see {}",
                    log.display()
                )));
            }
            Ok(None) => {}
            Err(e) => {
                return Err(LaunchError::new(format!(
                    "cannot watch the background monitor: {e}"
                )))
            }
        }
        if MonitorLock::recorded_pid(data_dir) == Some(child.id()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LaunchError::new(format!(
                "the background monitor did not start within {}s and was stopped; see {}",
                START_TIMEOUT.as_secs(),
                log.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

kalshi_alerts_core::inventory::submit! {
    LauncherPlugin {
        name: NAME,
        description: "starts a detached background monitor that logs to alert_monitor.log in the data dir",
        settings: &[],
        build: || Box::new(Daemon),
    }
}
