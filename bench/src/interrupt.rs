//! What a SIGINT or SIGTERM leaves behind: nothing the harness started.
//!
//! Both signals are blocked in every thread of the harness ([`block`], before any thread is
//! started) and taken by one thread of their own with `sigwait(2)` ([`on_signal`]). A child
//! inherits the mask, so nothing the harness runs keeps it: the measuring helper unblocks them
//! first thing ([`unblock`]), before it starts the command it measures, and anything else is
//! spawned [`unblocked`]; a daemon started with them blocked would not hear `alerts stop`.
//!
//! In a measuring run that thread calls [`stop_and_exit`]: it lets the command in flight end
//! (each takes a second or less; the measuring helper runs in a process group of its own, so a
//! Ctrl-C on the terminal reaches only the harness), stops each daemon the harness started with
//! `kalshi alerts stop` (killing one that outlives it), removes the temporary work directory
//! (never a `--dir`) and exits 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM.
//!
//! The measuring thread goes on meanwhile, so whatever it starts, or writes in the work
//! directory, it does holding [`hold`], which after a signal never returns: nothing is started
//! or written behind the cleanup's back.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::kalshi::Kalshi;
use crate::measure;

/// What the harness has started that a signal must not leave behind.
#[derive(Default)]
pub struct Started {
    /// The work directory to remove: a temporary one, never one the user gave.
    pub temporary: Option<PathBuf>,
    /// The binary that stops the daemons.
    pub kalshi: Option<Kalshi>,
    /// Daemons started and not yet seen to end, from just before their launch.
    daemons: Vec<Daemon>,
    /// The measuring helper running now (the leader of its process group) and the file it
    /// reports to.
    in_flight: Option<(u32, PathBuf)>,
    /// A signal came: nothing more is started.
    stopping: bool,
}

/// A daemon the harness started: its data directory, and its PID once known.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Daemon {
    dir: PathBuf,
    base_url: String,
    pid: Option<u32>,
}

impl Started {
    const fn new() -> Started {
        Started {
            temporary: None,
            kalshi: None,
            daemons: Vec::new(),
            in_flight: None,
            stopping: false,
        }
    }

    /// A daemon is about to be launched in `dir`, against `base_url`.
    pub fn daemon_launching(&mut self, dir: &Path, base_url: &str) {
        self.daemons.retain(|daemon| daemon.dir != dir);
        self.daemons.push(Daemon {
            dir: dir.to_path_buf(),
            base_url: base_url.to_string(),
            pid: None,
        });
    }

    /// The daemon of `dir` runs as `pid`.
    pub fn daemon_launched(&mut self, dir: &Path, pid: u32) {
        if let Some(daemon) = self.daemons.iter_mut().find(|d| d.dir == dir) {
            daemon.pid = Some(pid);
        }
    }

    /// The measuring helper `pid` runs now, reporting to `result`.
    pub fn spawned(&mut self, pid: u32, result: &Path) {
        self.in_flight = Some((pid, result.to_path_buf()));
    }
}

static STARTED: Mutex<Started> = Mutex::new(Started::new());

fn started() -> MutexGuard<'static, Started> {
    STARTED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The record of what was started, held while starting or writing something; after a signal it
/// never returns (the process is about to exit).
pub fn hold() -> MutexGuard<'static, Started> {
    let started = started();
    if started.stopping {
        drop(started);
        loop {
            std::thread::park();
        }
    }
    started
}

/// The daemon of `dir` has ended.
pub fn daemon_ended(dir: &Path) {
    started().daemons.retain(|daemon| daemon.dir != dir);
}

/// The measuring helper in flight has ended.
pub fn finished() {
    started().in_flight = None;
}

/// The signals the harness takes: SIGINT and SIGTERM.
fn signals() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset reads it; both only write it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Blocks SIGINT and SIGTERM in this thread and in every thread started from it later, so that
/// only [`on_signal`]'s thread takes them. Call it before any thread is started.
pub fn block() -> io::Result<()> {
    mask(libc::SIG_BLOCK)
}

/// Unblocks SIGINT and SIGTERM in this thread: the measuring helper's first step, so that the
/// command it starts inherits the usual mask.
pub fn unblock() -> io::Result<()> {
    mask(libc::SIG_UNBLOCK)
}

/// Blocks or unblocks (`how`) the harness's signals in this thread.
fn mask(how: libc::c_int) -> io::Result<()> {
    let set = signals();
    // SAFETY: the set is initialised; the old mask is not asked for.
    match unsafe { libc::pthread_sigmask(how, &set, std::ptr::null_mut()) } {
        0 => Ok(()),
        error => Err(io::Error::from_raw_os_error(error)),
    }
}

/// `command`, set to start with SIGINT and SIGTERM unblocked whatever the harness blocks.
pub fn unblocked(command: &mut Command) -> &mut Command {
    // SAFETY: between fork and exec only sigprocmask(2) runs, which is async-signal-safe, on a
    // set made before the fork.
    unsafe {
        let set = signals();
        command.pre_exec(move || {
            if libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Starts a thread that waits for SIGINT or SIGTERM (blocked by [`block`]) and then runs `then`
/// with the signal's number.
pub fn on_signal(then: impl FnOnce(i32) + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let set = signals();
            let mut signal = 0;
            // SAFETY: both pointers are to live locals; sigwait only writes the number.
            while unsafe { libc::sigwait(&set, &mut signal) } != 0 {}
            then(signal);
        })?;
    Ok(())
}

/// The exit status of a run ended by `signal`, as a shell reports it.
pub fn exit_status(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(u8::MAX)
}

fn name(signal: i32) -> String {
    match signal {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        other => format!("signal {other}"),
    }
}

/// Stops whatever the harness started, removes its temporary work directory and exits as a
/// run ended by `signal`.
pub fn stop_and_exit(signal: i32) -> ! {
    let left = {
        let mut started = started();
        started.stopping = true;
        Left {
            temporary: started.temporary.clone(),
            kalshi: started.kalshi.clone(),
            daemons: started.daemons.clone(),
            in_flight: started.in_flight.clone(),
        }
    };
    eprintln!(
        "kalshi-bench: {}: stopping what it started ({} daemon(s)){}",
        name(signal),
        left.daemons.len(),
        left.temporary.as_ref().map_or(String::new(), |dir| format!(
            " and removing {}",
            dir.display()
        ))
    );
    for problem in clean_up(&left, IN_FLIGHT_WAIT) {
        eprintln!("kalshi-bench: {problem}");
    }
    std::process::exit(exit_status(signal).into())
}

/// How long the command in flight may take to end by itself before it is killed.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(20);
/// How long a daemon may take to end after `alerts stop` before it is killed.
const DAEMON_WAIT: Duration = Duration::from_secs(10);

/// What is left to clean up when a signal comes.
struct Left {
    temporary: Option<PathBuf>,
    kalshi: Option<Kalshi>,
    daemons: Vec<Daemon>,
    in_flight: Option<(u32, PathBuf)>,
}

/// Ends the command in flight, the daemons and the temporary directory; what could not be done.
fn clean_up(left: &Left, in_flight_wait: Duration) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some((pid, result)) = &left.in_flight {
        if !wait_for_end(*pid, in_flight_wait) {
            // The helper leads a process group of its own: it and the command it runs.
            // SAFETY: kill(2) with a signal number has no memory effects.
            unsafe { libc::kill(-(*pid as libc::pid_t), libc::SIGKILL) };
            wait_for_end(*pid, Duration::from_secs(5));
            problems.push(format!(
                "the command in flight (PID {pid}) did not end; killed"
            ));
        }
        let _ = std::fs::remove_file(result);
    }
    for daemon in &left.daemons {
        if let Some(kalshi) = &left.kalshi {
            // Finds the daemon by its data directory's lock, PID known or not.
            let stopped = kalshi
                .configure(
                    unblocked(&mut Command::new(kalshi.binary())),
                    &daemon.dir,
                    &daemon.base_url,
                    &["alerts", "stop"],
                )
                .and_then(|command| command.stdin(Stdio::null()).status());
            if let Err(e) = stopped {
                problems.push(format!("cannot run `kalshi alerts stop`: {e}"));
            }
        }
        let Some(pid) = daemon.pid else { continue };
        if measure::alive(pid) {
            // SAFETY: as above; the PID is of the daemon this harness started.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
        if !wait_for_end(pid, DAEMON_WAIT) {
            // SAFETY: as above.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            problems.push(format!("the daemon {pid} did not stop; killed"));
        }
    }
    if let Some(dir) = &left.temporary {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            problems.push(format!("cannot remove {}: {e}", dir.display()));
        }
    }
    problems
}

/// Whether the process `pid` ended within `wait`.
fn wait_for_end(pid: u32, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    while measure::alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(10));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_exits_as_a_shell_reports_it() {
        assert_eq!(exit_status(libc::SIGINT), 130);
        assert_eq!(exit_status(libc::SIGTERM), 143);
    }

    /// The signals of `SigBlk` in `/proc/PID/status` that the harness blocks.
    fn blocked_of(status: &str) -> u64 {
        let line = status.lines().find(|l| l.starts_with("SigBlk:")).unwrap();
        let mask = u64::from_str_radix(line["SigBlk:".len()..].trim(), 16).unwrap();
        mask & (1 << (libc::SIGINT - 1) | 1 << (libc::SIGTERM - 1))
    }

    #[test]
    fn what_the_harness_runs_starts_with_the_signals_unblocked() {
        // In a thread of its own, whose mask alone this changes, as the harness's main does.
        std::thread::spawn(|| {
            block().unwrap();
            let me = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            assert_ne!(blocked_of(&me), 0, "blocked here");
            let child = |unblock: bool| {
                let mut command = Command::new("cat");
                command.arg("/proc/self/status");
                if unblock {
                    unblocked(&mut command);
                }
                let output = command.output().unwrap();
                blocked_of(&String::from_utf8(output.stdout).unwrap())
            };
            assert_ne!(child(false), 0, "a child inherits the mask");
            assert_eq!(child(true), 0);
            unblock().unwrap();
            let me = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            assert_eq!(blocked_of(&me), 0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_daemon_is_recorded_from_its_launch_to_its_end() {
        let mut started = Started::new();
        let dir = Path::new("/nowhere/idle");
        started.daemon_launching(dir, "http://127.0.0.1:1/trade-api/v2");
        assert_eq!(started.daemons[0].pid, None);
        started.daemon_launched(dir, 42);
        started.daemon_launching(Path::new("/nowhere/cycles"), "http://127.0.0.1:1");
        assert_eq!(started.daemons.len(), 2);
        assert_eq!(started.daemons[0].pid, Some(42));
        // A second launch in the same directory replaces the first record.
        started.daemon_launching(dir, "http://127.0.0.1:1");
        assert_eq!(started.daemons.len(), 2);
        assert_eq!(started.daemons[1].pid, None);
    }

    /// A process standing in for a daemon: it ignores nothing and runs until killed.
    fn stand_in() -> std::process::Child {
        Command::new("sleep").arg("600").spawn().unwrap()
    }

    #[test]
    fn the_cleanup_ends_the_daemons_and_the_command_in_flight_and_removes_the_temporary_dir() {
        let temporary = tempfile::tempdir().unwrap().keep();
        let data = temporary.join("idle");
        std::fs::create_dir_all(&data).unwrap();
        let mut daemon = stand_in();
        let mut in_flight = Command::new("sleep").arg("0.1").spawn().unwrap();
        let result = temporary.with_extension("measure");
        std::fs::write(&result, "").unwrap();
        let left = Left {
            temporary: Some(temporary.clone()),
            // No kalshi to ask: the daemon is stopped by its PID.
            kalshi: None,
            daemons: vec![Daemon {
                dir: data,
                base_url: "http://127.0.0.1:1/trade-api/v2".into(),
                pid: Some(daemon.id()),
            }],
            in_flight: Some((in_flight.id(), result.clone())),
        };
        assert_eq!(
            clean_up(&left, Duration::from_secs(30)),
            Vec::<String>::new()
        );
        assert!(!measure::alive(daemon.id()));
        assert!(daemon.wait().unwrap().code().is_none(), "ended by a signal");
        assert!(in_flight.wait().unwrap().success(), "ended by itself");
        assert!(!temporary.exists() && !result.exists());
    }

    #[test]
    fn a_directory_the_user_gave_is_kept_and_a_stuck_command_is_killed() {
        let kept = tempfile::tempdir().unwrap();
        let mut stuck = Command::new("sleep")
            .arg("600")
            .process_group(0)
            .spawn()
            .unwrap();
        let left = Left {
            temporary: None,
            kalshi: None,
            daemons: Vec::new(),
            in_flight: Some((stuck.id(), kept.path().join("none.measure"))),
        };
        let problems = clean_up(&left, Duration::from_millis(50));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("killed"), "{problems:?}");
        assert!(stuck.wait().unwrap().code().is_none());
        assert!(kept.path().is_dir());
    }
}
