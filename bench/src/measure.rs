//! What a benchmark reads of a process: wall time, peak memory and CPU time of a child, from
//! `wait4(2)` in a small helper process; resident memory, CPU time and wake-ups of a running process, from `/proc`.
//! Linux only, like the figures it produces.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::interrupt;

/// One finished child process.
#[derive(Debug, Clone, Copy)]
pub struct Finished {
    /// From just before it was spawned to its exit.
    pub wall: Duration,
    /// Its own peak resident memory (`ru_maxrss`), in KiB.
    pub peak_rss_kib: u64,
    /// User plus system CPU time.
    pub cpu: Duration,
    /// The exit code, or `None` when a signal ended it.
    pub code: Option<i32>,
}

impl Finished {
    pub fn succeeded(&self) -> bool {
        self.code == Some(0)
    }
}

/// The first argument that makes this program the measuring helper instead of the benchmark.
pub const HELPER: &str = "__measure-child";

/// A command to run under the measuring helper: this program again, which spawns the command,
/// reaps it with `wait4` and writes what that reported to a file.
///
/// The go-between is there for the memory figure. A child spawned straight from the benchmark
/// would report the benchmark's peak as its own: Linux carries the peak of the memory a
/// process leaves at `exec` into the new program's `ru_maxrss`, and a child spawned with
/// `vfork` leaves the parent's. The helper is small, so what it passes on is a floor of a few
/// MiB rather than the hundreds the prepared markets take here.
pub struct Probe {
    command: Command,
    result: PathBuf,
}

impl Probe {
    /// `program` under the helper; arguments, environment and standard streams set on
    /// [`Probe::command`] reach `program`.
    pub fn new(program: impl AsRef<OsStr>) -> io::Result<Probe> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let number = NEXT.fetch_add(1, Ordering::Relaxed);
        let result = std::env::temp_dir().join(format!(
            "kalshi-bench-{}-{number}.measure",
            std::process::id()
        ));
        let mut command = Command::new(std::env::current_exe()?);
        command.arg(HELPER).arg(&result).arg(program);
        Ok(Probe { command, result })
    }

    pub fn command(&mut self) -> &mut Command {
        &mut self.command
    }

    /// Runs the command to its end and measures it. The helper leads a process group of its
    /// own, so that a Ctrl-C on the terminal reaches the harness alone, which lets the command
    /// end (see [`crate::interrupt`]).
    pub fn run(mut self) -> io::Result<Finished> {
        let mut child = {
            let mut started = interrupt::hold();
            let child = self.command.process_group(0).spawn()?;
            started.spawned(child.id(), &self.result);
            child
        };
        let status = child.wait();
        interrupt::finished();
        let status = status?;
        let text = std::fs::read_to_string(&self.result);
        let _ = std::fs::remove_file(&self.result);
        let text = text.map_err(|e| {
            io::Error::other(format!(
                "the measuring helper reported nothing ({status}): {e}"
            ))
        })?;
        parse_report(&text)
    }
}

/// The helper's side: spawns `args[1..]`, reaps it with `wait4` and writes the figures to the
/// file `args[0]`. Exits 0 when it could measure, whatever the child's exit code.
pub fn helper(args: &[OsString]) -> ExitCode {
    let [result, program, rest @ ..] = args else {
        eprintln!("kalshi-bench: {HELPER} needs a result file and a program");
        return ExitCode::from(2);
    };
    let report = match run_here(Command::new(program).args(rest)) {
        Ok(f) => format!(
            "{} {} {} {}",
            f.wall.as_nanos(),
            f.peak_rss_kib,
            f.cpu.as_micros(),
            f.code.unwrap_or(-1)
        ),
        Err(e) => format!("error {e}"),
    };
    match std::fs::write(result, report) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "kalshi-bench: cannot write {}: {e}",
                Path::new(result).display()
            );
            ExitCode::from(2)
        }
    }
}

fn parse_report(text: &str) -> io::Result<Finished> {
    if let Some(reason) = text.strip_prefix("error ") {
        return Err(io::Error::other(reason.to_string()));
    }
    let numbers: Vec<i128> = text
        .split_whitespace()
        .map(|n| {
            n.parse()
                .map_err(|_| io::Error::other(format!("bad report {text:?}")))
        })
        .collect::<io::Result<_>>()?;
    let [wall_ns, rss, cpu_us, code] = numbers[..] else {
        return Err(io::Error::other(format!("bad report {text:?}")));
    };
    Ok(Finished {
        wall: Duration::from_nanos(wall_ns as u64),
        peak_rss_kib: rss as u64,
        cpu: Duration::from_micros(cpu_us as u64),
        code: (code >= 0).then_some(code as i32),
    })
}

/// Runs `command` to its end in this process and measures it with `wait4`.
fn run_here(command: &mut Command) -> io::Result<Finished> {
    let started = Instant::now();
    let child = command.spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live locals of the right types.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    let wall = started.elapsed();
    let cpu = timeval(usage.ru_utime) + timeval(usage.ru_stime);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Ok(Finished {
        wall,
        peak_rss_kib: usage.ru_maxrss as u64,
        cpu,
        code,
    })
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// CPU time a live process has used so far, all its threads, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses; the fields after it are plain.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("unreadable /proc stat"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = |at: usize| -> io::Result<u64> {
        fields
            .get(at)
            .and_then(|field| field.parse().ok())
            .ok_or_else(|| io::Error::other("unreadable /proc stat"))
    };
    let total = ticks(11)? + ticks(12)?;
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_micros(total * 1_000_000 / per_second))
}

/// Resident memory of a live process now (`VmRSS`), in KiB.
pub fn resident_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    field_kib(&status, "VmRSS:").ok_or_else(|| io::Error::other("no VmRSS in /proc status"))
}

/// How many times the threads of a live process have been switched out, voluntarily (they
/// waited) or not: a process that only waits for a timer or a socket adds one per wake-up.
pub fn context_switches(pid: u32) -> io::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let status = match std::fs::read_to_string(task?.path().join("status")) {
            Ok(status) => status,
            // A thread that ended while the directory was read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for name in ["voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"] {
            total += field_kib(&status, name).unwrap_or(0);
        }
    }
    Ok(total)
}

/// Whether a process with this PID exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The first number after `name` in a `/proc` status text.
fn field_kib(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// Total memory of the machine, in KiB.
pub fn machine_memory_kib() -> Option<u64> {
    let info = std::fs::read_to_string(Path::new("/proc/meminfo")).ok()?;
    field_kib(&info, "MemTotal:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_timed_and_its_exit_code_kept() {
        let finished = run_here(Command::new("sh").args(["-c", "exit 3"])).unwrap();
        assert_eq!(finished.code, Some(3));
        assert!(finished.peak_rss_kib > 0);
    }

    #[test]
    fn the_helper_report_reads_back() {
        let finished = parse_report("1500000 2048 700 0").unwrap();
        assert_eq!(finished.wall, Duration::from_micros(1500));
        assert_eq!((finished.peak_rss_kib, finished.code), (2048, Some(0)));
        assert!(parse_report("error no such file").is_err());
    }

    #[test]
    fn this_process_can_be_read_from_proc() {
        let me = std::process::id();
        assert!(resident_kib(me).unwrap() > 0);
        assert!(cpu_time(me).is_ok());
        assert!(context_switches(me).unwrap() > 0);
        assert!(alive(me));
    }
}
