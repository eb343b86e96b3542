//! How each row of the benchmark is measured.
//!
//! Every timed command runs once untimed first, in the same data directory: that run fills the
//! state database and fires what holds on a first look, so the timed runs measure the steady
//! cycle of a monitor that has run before, and the binary and data are in the page cache.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::conditions::{alerts_file, market_of};
use crate::interrupt;
use crate::kalshi::{self, Cycle, Kalshi};
use crate::markets::MarketSet;
use crate::measure::{self, Finished, Probe};
use crate::report::Spread;
use crate::server::MarketServer;

/// The monitor's `--rate` wherever the target is the client's own speed: the most it takes.
pub const UNPACED: u32 = 10_000;
/// The monitor's default `--rate`.
pub const DEFAULT_RATE: u32 = 20;

pub type Outcome<T> = Result<T, String>;

/// What the benchmark runs things with.
pub struct Bench {
    pub kalshi: Kalshi,
    pub curl: PathBuf,
    pub work: PathBuf,
}

/// One scan measured over several runs.
#[derive(Debug, Default)]
pub struct ScanRuns {
    pub wall_ms: Vec<f64>,
    /// User plus system CPU time of the client.
    pub cpu_ms: Vec<f64>,
    pub rss_mib: Vec<f64>,
    pub scan_ms: Vec<f64>,
    pub evaluate_us: Vec<f64>,
    /// The cycle's time past its scan and evaluation: committing its state, delivering.
    pub rest_ms: Vec<f64>,
    pub requests: Vec<u64>,
    /// The curl bound of each run, when asked for.
    pub curl_ms: Vec<f64>,
    /// The CPU time curl took for it.
    pub curl_cpu_ms: Vec<f64>,
    /// The same, curl asking for gzip.
    pub curl_gzip_ms: Vec<f64>,
    /// Responses the server sent the client gzipped.
    pub gzipped: u64,
    /// Fired alerts in the timed runs.
    pub fired: u64,
}

/// How a scan row runs.
#[derive(Debug, Clone)]
pub struct ScanPlan {
    pub name: String,
    pub conditions: usize,
    pub full: bool,
    /// `--skip-combos`, with a full scan.
    pub skip_combos: bool,
    pub rate: u32,
    pub runs: usize,
    pub curl: bool,
    pub curl_gzip: bool,
}

impl ScanPlan {
    /// `runs` scans of `conditions` conditions, full or targeted, at [`UNPACED`], with no curl
    /// bound and no combos left out: what most rows measure.
    pub fn unpaced(name: String, conditions: usize, full: bool, runs: usize) -> ScanPlan {
        ScanPlan {
            name,
            conditions,
            full,
            skip_combos: false,
            rate: UNPACED,
            runs,
            curl: false,
            curl_gzip: false,
        }
    }
}

impl Bench {
    /// A data directory named `name` with `conditions` conditions over `set`, starting at
    /// market `first`.
    pub fn data_dir(&self, name: &str, set: &MarketSet, conditions: usize) -> Outcome<PathBuf> {
        kalshi::data_dir(&self.work, name, &alerts_file(set, conditions, 0))
            .map_err(|e| format!("cannot write the data dir {name}: {e}"))
    }

    /// Runs `kalshi ARGS` in `dir` and measures it; a failure is an error with its output.
    pub fn kalshi(&self, dir: &Path, server: &str, args: &[&str]) -> Outcome<Finished> {
        let probe = self
            .kalshi
            .command(dir, server, args)
            .map_err(|e| format!("cannot set up kalshi in {}: {e}", dir.display()))?;
        let finished = probe
            .run()
            .map_err(|e| format!("cannot run {}: {e}", self.kalshi.binary().display()))?;
        if !finished.succeeded() {
            return Err(format!(
                "`kalshi {}` failed ({:?}): {}",
                args.join(" "),
                finished.code,
                tail(&dir.join(kalshi::STDERR))
            ));
        }
        Ok(finished)
    }

    /// `kalshi --version`: what starting the process costs.
    pub fn process_start(&self, server: &MarketServer, runs: usize) -> Outcome<Vec<Finished>> {
        let dir = self.work.join("start");
        let writing = interrupt::hold();
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        drop(writing);
        let base = server.base_url();
        self.kalshi(&dir, &base, &["--version"])?;
        (0..runs)
            .map(|_| self.kalshi(&dir, &base, &["--version"]))
            .collect()
    }

    /// A scan by `monitor --once`, timed over the runs, with the curl bound of each run.
    pub fn scan(
        &self,
        server: &MarketServer,
        set: &MarketSet,
        plan: &ScanPlan,
    ) -> Outcome<ScanRuns> {
        let dir = self.data_dir(&plan.name, set, plan.conditions)?;
        let rate = plan.rate.to_string();
        let mode = if plan.full { "full" } else { "auto" };
        let mut args = vec![
            "alerts", "monitor", "--once", "--scan", mode, "--rate", &rate,
        ];
        if plan.skip_combos {
            args.push("--skip-combos");
        }
        let base = server.base_url();
        self.kalshi(&dir, &base, &args)?;

        let mut runs = ScanRuns::default();
        let urls = server.full_scan_urls(plan.skip_combos);
        for _ in 0..plan.runs {
            if plan.curl {
                let curl = self.curl(&urls, false)?;
                runs.curl_ms.push(millis(curl.wall));
                runs.curl_cpu_ms.push(millis(curl.cpu));
            }
            if plan.curl_gzip {
                runs.curl_gzip_ms.push(millis(self.curl(&urls, true)?.wall));
            }
            let before = server.requests();
            let finished = self.kalshi(&dir, &base, &args)?;
            let after = server.requests();
            runs.wall_ms.push(millis(finished.wall));
            runs.cpu_ms.push(millis(finished.cpu));
            runs.requests.push(after.total() - before.total());
            runs.gzipped += after.gzipped - before.gzipped;
            let stderr = std::fs::read_to_string(dir.join(kalshi::STDERR)).unwrap_or_default();
            // The monitor's own figure where it gives one: wait4's counts
            // what the process held before exec too, which here varies
            // with the harness's size by a few MiB.
            let peak_kib = kalshi::peak_rss_in(&stderr).unwrap_or(finished.peak_rss_kib);
            runs.rss_mib.push(peak_kib as f64 / 1024.0);
            let cycle = kalshi::cycles_in(&stderr)
                .pop()
                .ok_or_else(|| format!("{}: no cycle line in the log", plan.name))?;
            runs.scan_ms.push(cycle.scan_ms as f64);
            runs.evaluate_us.push(cycle.evaluate_us as f64);
            let rest = cycle.took_ms as f64 - cycle.scan_ms as f64 - cycle.evaluate_us as f64 / 1e3;
            runs.rest_ms.push(rest.max(0.0));
            runs.fired += cycle.fired;
        }
        Ok(runs)
    }

    /// Fetches `urls` in order with one curl process, over one connection, to nowhere.
    fn curl(&self, urls: &[String], gzip: bool) -> Outcome<Finished> {
        let mut probe = Probe::new(&self.curl).map_err(|e| format!("cannot set up curl: {e}"))?;
        let command = probe.command();
        command.args(["-s", "--fail"]);
        if gzip {
            command.arg("--compressed");
        }
        command
            .args(urls)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let finished = probe.run().map_err(|e| format!("cannot run curl: {e}"))?;
        if !finished.succeeded() {
            return Err(format!("curl failed ({:?})", finished.code));
        }
        Ok(finished)
    }

    /// `alerts list` over `conditions` conditions.
    pub fn list(
        &self,
        server: &MarketServer,
        set: &MarketSet,
        conditions: usize,
        runs: usize,
    ) -> Outcome<Vec<Finished>> {
        let dir = self.data_dir("list", set, conditions)?;
        let base = server.base_url();
        self.kalshi(&dir, &base, &["alerts", "list"])?;
        (0..runs)
            .map(|_| self.kalshi(&dir, &base, &["alerts", "list"]))
            .collect()
    }

    /// Starts a daemon in `dir`; its PID once `monitor --daemon` has returned, and that return.
    fn start_daemon(&self, dir: &Path, base: &str, extra: &[&str]) -> Outcome<(u32, Finished)> {
        let rate = UNPACED.to_string();
        let mut args = vec![
            "alerts", "monitor", "--daemon", "--scan", "auto", "--rate", &rate,
        ];
        args.extend_from_slice(extra);
        // Recorded before the launch, so that a signal during it still stops the daemon.
        interrupt::hold().daemon_launching(dir, base);
        let started = self.kalshi(dir, base, &args)?;
        let pid = kalshi::daemon_pid(dir).ok_or_else(|| {
            format!(
                "`monitor --daemon` printed no PID: {}",
                tail(&dir.join(kalshi::STDOUT))
            )
        })?;
        interrupt::hold().daemon_launched(dir, pid);
        Ok((pid, started))
    }

    /// Stops the daemon of `dir` with `alerts stop`; how long that took.
    fn stop_daemon(&self, dir: &Path, base: &str, pid: u32) -> Outcome<Finished> {
        let stopped = self.kalshi(dir, base, &["alerts", "stop"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while measure::alive(pid) && Instant::now() < deadline {
            sleep(Duration::from_millis(10));
        }
        if measure::alive(pid) {
            // The daemon this benchmark started, by its PID.
            // SAFETY: kill(2) with a PID and a signal number has no memory effects.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            interrupt::daemon_ended(dir);
            return Err(format!("the daemon {pid} did not stop; it was killed"));
        }
        interrupt::daemon_ended(dir);
        stopped
    }

    /// `monitor --daemon` until it returns, then `alerts stop`, over the runs.
    pub fn daemon_start(
        &self,
        server: &MarketServer,
        set: &MarketSet,
        runs: usize,
    ) -> Outcome<(Vec<Finished>, Vec<Finished>)> {
        let dir = self.data_dir("daemon", set, 100)?;
        let base = server.base_url();
        let long = ["--interval", "3600"];
        let (pid, _) = self.start_daemon(&dir, &base, &long)?;
        self.stop_daemon(&dir, &base, pid)?;
        let (mut starts, mut stops) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (pid, started) = self.start_daemon(&dir, &base, &long)?;
            starts.push(started);
            stops.push(self.stop_daemon(&dir, &base, pid)?);
        }
        Ok((starts, stops))
    }

    /// A daemon with an hour's interval after its first cycle: the CPU time and the wake-ups
    /// it spends over `idle`.
    pub fn daemon_idle(
        &self,
        server: &MarketServer,
        set: &MarketSet,
        idle: Duration,
    ) -> Outcome<Idle> {
        let dir = self.data_dir("idle", set, 100)?;
        let base = server.base_url();
        let interval = IDLE_INTERVAL.to_string();
        let (pid, _) = self.start_daemon(&dir, &base, &["--interval", &interval])?;
        let measured = self.watch_idle(&dir, pid, idle);
        let stopped = self.stop_daemon(&dir, &base, pid);
        let idle = measured?;
        stopped?;
        Ok(idle)
    }

    fn watch_idle(&self, dir: &Path, pid: u32, idle: Duration) -> Outcome<Idle> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while kalshi::last_cycle(dir, kalshi::DAEMON_LOG).is_none() {
            if Instant::now() > deadline || !measure::alive(pid) {
                return Err(format!(
                    "the daemon logged no cycle: {}",
                    tail(&dir.join(kalshi::DAEMON_LOG))
                ));
            }
            sleep(Duration::from_millis(20));
        }
        // Deliveries of the first cycle's alerts run in the background, and the runtime's
        // blocking threads linger 10 s after their last task: only then is the daemon idle.
        sleep(IDLE_SETTLE);
        let read = |what: &str, value: std::io::Result<u64>| {
            value.map_err(|e| format!("cannot read the daemon's {what}: {e}"))
        };
        let cpu = |pid| measure::cpu_time(pid).map(|d| d.as_micros() as u64);
        let (cpu_before, switches_before, rss_before) = (
            read("CPU time", cpu(pid))?,
            read("context switches", measure::context_switches(pid))?,
            read("memory", measure::resident_kib(pid))?,
        );
        sleep(idle);
        Ok(Idle {
            seconds: idle.as_secs_f64(),
            cpu_ms: (read("CPU time", cpu(pid))? - cpu_before) as f64 / 1000.0,
            wakeups: read("context switches", measure::context_switches(pid))? - switches_before,
            rss_before_kib: rss_before,
            rss_after_kib: read("memory", measure::resident_kib(pid))?,
        })
    }

    /// A daemon running `cycles` cycles back to back over markets that move on every other
    /// scan: its resident memory as the cycles go by.
    pub fn daemon_cycles(
        &self,
        server: &MarketServer,
        set: &MarketSet,
        cycles: u64,
    ) -> Outcome<Vec<(u64, u64)>> {
        let dir = self.work.join("cycles");
        let alerts = alerts_file(set, 100, MOVING_OFFSET);
        kalshi::data_dir(&self.work, "cycles", &alerts).map_err(|e| e.to_string())?;
        let base = server.base_url();
        let count = cycles.to_string();
        let started = Instant::now();
        let (pid, _) = self.start_daemon(&dir, &base, &["--interval", "0", "--cycles", &count])?;
        let mut log = LogTail::open(&dir.join(kalshi::DAEMON_LOG));
        let mut samples = Vec::new();
        let mut last = 0;
        while measure::alive(pid) {
            if started.elapsed() > Duration::from_secs(600) {
                let _ = self.stop_daemon(&dir, &base, pid);
                return Err(format!("{cycles} cycles took over 10 minutes; stopped"));
            }
            if let Some(cycle) = log.as_mut().and_then(LogTail::last_cycle) {
                if cycle.number > last {
                    last = cycle.number;
                    if let Ok(rss) = measure::resident_kib(pid) {
                        samples.push((cycle.number, rss));
                    }
                }
            } else if log.is_none() {
                log = LogTail::open(&dir.join(kalshi::DAEMON_LOG));
            }
            sleep(Duration::from_millis(5));
        }
        interrupt::daemon_ended(&dir);
        if last + 1 < cycles {
            return Err(format!(
                "the daemon stopped after cycle {last} of {cycles}: {}",
                tail(&dir.join(kalshi::DAEMON_LOG))
            ));
        }
        Ok(samples)
    }
}

/// How far from the markets the other rows watch the cycles row's conditions sit: its markets
/// move, and the others' must not.
const MOVING_OFFSET: usize = 1;

/// The markets that move between scans: those of every seventh of the cycles row's 100
/// conditions, which covers every kind. About five alerts fire a cycle, a busy market's pace.
pub fn moving_markets(markets: usize) -> Vec<usize> {
    (0..100)
        .step_by(7)
        .map(|n| (market_of(n, 100, markets) + MOVING_OFFSET) % markets)
        .collect()
}

/// How long after its first cycle a daemon counts as idle.
pub const IDLE_SETTLE: Duration = Duration::from_secs(12);

/// The idle daemon's `--interval`, in seconds: its second cycle must fall after the watch.
pub const IDLE_INTERVAL: u64 = 3600;

/// What an idle daemon spent.
#[derive(Debug, Clone, Copy)]
pub struct Idle {
    pub seconds: f64,
    pub cpu_ms: f64,
    pub wakeups: u64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
}

/// Reads a growing log from where it was left off, for the latest cycle line.
struct LogTail {
    file: std::fs::File,
    partial: String,
}

impl LogTail {
    fn open(path: &Path) -> Option<LogTail> {
        let mut file = std::fs::File::open(path).ok()?;
        file.seek(SeekFrom::Start(0)).ok()?;
        Some(LogTail {
            file,
            partial: String::new(),
        })
    }

    /// The last complete cycle line added since the last call.
    fn last_cycle(&mut self) -> Option<Cycle> {
        let mut added = Vec::new();
        self.file.read_to_end(&mut added).ok()?;
        self.partial.push_str(&String::from_utf8_lossy(&added));
        let complete = self.partial.rfind('\n')?;
        let lines: String = self.partial.drain(..=complete).collect();
        kalshi::cycles_in(&lines).pop()
    }
}

pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Spread of the wall times of some runs, in milliseconds.
pub fn wall_spread(runs: &[Finished]) -> Option<Spread> {
    Spread::of(&runs.iter().map(|f| millis(f.wall)).collect::<Vec<_>>())
}

/// Spread of the peak memory of some runs, in MiB.
pub fn rss_spread(runs: &[Finished]) -> Option<Spread> {
    let mib: Vec<f64> = runs
        .iter()
        .map(|f| f.peak_rss_kib as f64 / 1024.0)
        .collect();
    Spread::of(&mib)
}

/// The last lines of a file, for an error message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}
