//! The `daemon` launcher: starts a detached background copy of the monitor.
//!
//! The copy is this same program with the same monitor options, run by the
//! `foreground` launcher in a new session, its input from `/dev/null` and
//! its output appended to `alert_monitor.log` in the data directory. The
//! launcher reports success only once the copy is alive and holds the
//! monitor lock, so a copy that dies at start is reported, not hidden.
//!
//! Until it holds the lock, the copy's standard error is a pipe that the
//! launcher reads (and appends to the log): a copy that dies at start is
//! reported with what it said, even when the log cannot take it (a full
//! disk). Once it holds the lock, the copy moves its standard error to the
//! log (it is told where by [`DAEMON_LOG`]) and the pipe closes.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kalshi_alerts_core::lock::MonitorLock;
use kalshi_alerts_core::{LaunchError, LaunchOutcome, Launcher, LauncherPlugin, MonitorJob};

pub const NAME: &str = "daemon";

/// How long the copy may take to take the lock before it counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Set in the copy's environment, to the log its standard error is to go
/// to once it holds the monitor lock; until then its standard error is the
/// launcher's pipe.
pub const DAEMON_LOG: &str = "KALSHI_DAEMON_LOG";

/// The most of the copy's start-up output kept to quote (its end).
const KEPT_OUTPUT: usize = 64 * 1024;

struct Daemon;

impl Launcher for Daemon {
    fn launch(&self, job: MonitorJob) -> Result<LaunchOutcome, LaunchError> {
        refuse_if_running(&job.data_dir)?;

        let log_path = job.log_path();
        let (mut child, mut output) = spawn(&job, &log_path)?;
        wait_until_started(&mut child, &mut output, &job.data_dir, &log_path)?;
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

/// What the copy writes to its standard error until it holds the lock,
/// read by a thread of the launcher.
struct StartOutput {
    chunks: mpsc::Receiver<Vec<u8>>,
    /// The end of what was read.
    text: Vec<u8>,
    /// The copy has closed its end: it moved its standard error to the log,
    /// or exited.
    closed: bool,
}

impl StartOutput {
    /// Nothing to read: the copy's standard error is the log from the start.
    fn none() -> StartOutput {
        let (_, chunks) = mpsc::channel();
        StartOutput {
            chunks,
            text: Vec::new(),
            closed: true,
        }
    }

    /// Reads `pipe` on a thread, appending what comes to `log` as well (as
    /// if the copy had written there), until the copy closes it.
    fn read(mut pipe: std::io::PipeReader, mut log: std::fs::File) -> StartOutput {
        use std::io::Write;

        let (sender, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut buffer) {
                // The log may be unwritable (a full disk): it is what this
                // pipe is for, so that is no reason to stop reading.
                let _ = log.write_all(&buffer[..n]);
                if sender.send(buffer[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        StartOutput {
            chunks,
            text: Vec::new(),
            closed: false,
        }
    }

    /// Takes what has been read so far, waiting at most `wait` for more
    /// while the pipe is open.
    fn collect(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        while !self.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => {
                    self.text.extend_from_slice(&chunk);
                    if self.text.len() > KEPT_OUTPUT {
                        self.text.drain(..self.text.len() - KEPT_OUTPUT);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => return,
                Err(mpsc::RecvTimeoutError::Disconnected) => self.closed = true,
            }
        }
    }

    /// The copy's last error line (`error: …`, which ends every failed
    /// run), else its last line, made safe to show; `None` when it said
    /// nothing.
    fn last_word(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.text);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let line = lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("error: "))
            .or_else(|| lines.last().copied())?;
        Some(kalshi_alerts_core::display::for_log(line, 2000))
    }
}

fn spawn(job: &MonitorJob, log_path: &Path) -> Result<(Child, StartOutput), LaunchError> {
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
        .stdout(log);
    // Standard error through a pipe until the copy holds the lock (Unix: the
    // copy moves it to the log with dup2).
    let output = if cfg!(unix) {
        let (reader, writer) =
            std::io::pipe().map_err(|e| fail("cannot make a pipe for the start-up", e))?;
        command.stderr(writer).env(DAEMON_LOG, log_path);
        StartOutput::read(reader, log_err)
    } else {
        command.stderr(log_err);
        StartOutput::none()
    };
    detach(&mut command);
    let child = command
        .spawn()
        .map_err(|e| fail("cannot start the background monitor", e))?;
    // Dropping the command closes this process's end of the pipe's writing
    // side: the pipe closes when the copy closes its own.
    drop(command);
    Ok((child, output))
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

fn wait_until_started(
    child: &mut Child,
    output: &mut StartOutput,
    data_dir: &Path,
    log: &Path,
) -> Result<(), LaunchError> {
    let deadline = Instant::now() + START_TIMEOUT;
    let log_size = || std::fs::metadata(log).map_or(0, |m| m.len());
    let size_at_start = log_size();
    loop {
        match child.try_wait() {
            // A short run (`--once`) may take and release the lock between
            // two polls; finishing cleanly is a successful start.
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                // What it said last, once the pipe has closed (it has, or
                // is about to: the copy is gone).
                output.collect(Duration::from_secs(2));
                // Two daemons started at once: the other one won the lock.
                if let Ok(Some(holder)) = MonitorLock::holder(data_dir) {
                    return Err(LaunchError::new(format!(
                        "an alert monitor is already running for {} ({holder}); \
                         stop it with `kalshi alerts stop` before starting another",
                        data_dir.display()
                    )));
                }
                return Err(LaunchError::new(match output.last_word() {
                    Some(said) => format!(
                        "the background monitor exited at start ({status}): {said}; see {}",
                        log.display()
                    ),
                    None if log_size() <= size_at_start => format!(
                        "the background monitor exited at start ({status}) and said nothing, \
                         and {} has nothing of it either (a full disk, or a log that cannot be \
                         written?); run the same command without --daemon to see why",
                        log.display()
                    ),
                    None => format!(
                        "the background monitor exited at start ({status}); see {}",
                        log.display()
                    ),
                }));
            }
            Ok(None) => {}
            Err(e) => {
                return Err(LaunchError::new(format!(
                    "cannot watch the background monitor: {e}"
                )))
            }
        }
        // Started: it holds the lock, and its standard error has moved to
        // the log (no line of it is lost when this process exits).
        output.collect(Duration::ZERO);
        if output.closed && MonitorLock::recorded_pid(data_dir) == Some(child.id()) {
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
