//! `kalshi-soak`: runs the real `kalshi` daemon for some minutes against a loopback market
//! server and a webhook receiver that both fail at random, kills it with SIGKILL and restarts
//! it, then checks that every fired alert was delivered and that its memory stayed flat.
//!
//! It is a program, not a test, so `cargo test --workspace` never runs it (its unit tests do
//! run there). `scripts/soak` builds and runs it; docs/reliability.md says what it found.

mod checks;
mod daemon;
mod faults;
mod markets;
mod memory;
#[path = "../../plugins/src/notifiers/webhook/receiver.rs"]
mod receiver;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use kalshi_test_server::TestServer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use checks::{ConditionAdded, Evidence, HookRequest, HOOK, LEDGER};
use daemon::{alive, Kalshi, HOOK_URL_VARIABLE};
use faults::{ApiPlan, HookReply};
use memory::{Measure, Sample};
use receiver::{Receiver, Reply};

/// Seconds one API request may take (the monitor's `--timeout`).
const API_TIMEOUT: u64 = 3;
/// Seconds one webhook attempt may take (the instance's `timeout`).
const HOOK_TIMEOUT: u64 = 2;
/// How long a killed daemon stays down before it is started again, so that retries fall due
/// while nothing runs.
const DOWNTIME: Duration = Duration::from_secs(3);

/// Runs the kalshi daemon against loopback servers that fail at random, then checks that every
/// fired alert was delivered and that memory stayed flat. Exits 0 when every check passes, 1
/// when one fails, 2 when the soak itself could not run.
#[derive(Debug, Parser)]
#[command(name = "kalshi-soak")]
struct Options {
    /// How long the run with faults lasts; draining the outbox afterwards takes a little more.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=24 * 60))]
    minutes: u64,

    /// Seed of the quotes, the faults and the restart times [default: from the clock].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// The monitor's --interval, in seconds.
    #[arg(long, default_value_t = 2, value_name = "SEC",
          value_parser = clap::value_parser!(u64).range(1..=60))]
    interval: u64,

    /// How many times to SIGKILL the daemon and start it again, in the first half of the run.
    #[arg(long, default_value_t = 2, value_name = "N")]
    restarts: u32,

    /// Share of API requests that fail or are answered slowly.
    #[arg(long, default_value_t = 0.15, value_name = "P", value_parser = share)]
    api_faults: f64,

    /// About one API request in N begins an outage of six 503s, which fails a whole scan
    /// (0: none).
    #[arg(long, default_value_t = 150, value_name = "N")]
    outage_every: usize,

    /// Share of webhook deliveries the receiver fails or answers slowly.
    #[arg(long, default_value_t = 0.3, value_name = "P", value_parser = share)]
    hook_faults: f64,

    /// Seconds between memory samples.
    #[arg(long, default_value_t = 2, value_name = "SEC",
          value_parser = clap::value_parser!(u64).range(1..=60))]
    sample_every: u64,

    /// How long draining the outbox after the run may take, in seconds (the longest backoff
    /// between two attempts is 5 minutes).
    #[arg(long, default_value_t = 420, value_name = "SEC")]
    drain_limit: u64,

    /// The kalshi binary [default: the one beside this program].
    #[arg(long, value_name = "PATH")]
    kalshi: Option<PathBuf>,

    /// Work in this directory (it must not exist yet) and keep it [default: a temporary one,
    /// kept only when a check fails].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(p) if (0.0..=0.9).contains(&p) => Ok(p),
        _ => Err(format!("{text:?} is not a share between 0 and 0.9")),
    }
}

fn main() -> ExitCode {
    let options = Options::parse();
    match soak(&options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("kalshi-soak: {message}");
            ExitCode::from(2)
        }
    }
}

/// One daemon process of the run.
struct Life {
    pid: u32,
    started: f64,
    ended: Option<f64>,
    how: &'static str,
}

/// The soak in progress: its servers, its daemon, what it has seen.
struct Soak {
    began: Instant,
    kalshi: Kalshi,
    interval: u64,
    lives: Vec<Life>,
    samples: Vec<Sample>,
    failures: Vec<String>,
}

impl Soak {
    fn now(&self) -> f64 {
        self.began.elapsed().as_secs_f64()
    }

    fn pid(&self) -> Option<u32> {
        self.lives
            .last()
            .filter(|life| life.ended.is_none())
            .map(|life| life.pid)
    }

    fn start(&mut self) -> Result<(), String> {
        let pid = self.kalshi.start(self.interval, API_TIMEOUT)?;
        let started = self.now();
        self.lives.push(Life {
            pid,
            started,
            ended: None,
            how: "running",
        });
        println!("[{}] daemon started, PID {pid}", clock(started));
        Ok(())
    }

    fn end(&mut self, how: &'static str) {
        let now = self.now();
        if let Some(life) = self.lives.last_mut().filter(|l| l.ended.is_none()) {
            life.ended = Some(now);
            life.how = how;
            println!("[{}] daemon PID {} {how}", clock(now), life.pid);
        }
    }

    fn kill(&mut self) -> Result<(), String> {
        if let Some(pid) = self.pid() {
            self.kalshi.kill(pid)?;
            self.end("killed (SIGKILL)");
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<(), String> {
        let took = self.kalshi.stop()?;
        self.end("stopped (kalshi alerts stop)");
        println!("    the stop took {:.1} s", took.as_secs_f64());
        Ok(())
    }

    /// Samples the daemon's memory; a daemon that died without being told is a failure, and is
    /// started again so that the run goes on.
    fn sample(&mut self) -> Result<(), String> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        match memory::read(pid).filter(|_| alive(pid)) {
            Some((rss_kib, anon_kib)) => {
                let at = self.now();
                self.samples.push(Sample {
                    at,
                    pid,
                    rss_kib,
                    anon_kib,
                });
                Ok(())
            }
            None => {
                self.end("died on its own");
                self.failures
                    .push(format!("daemon PID {pid} died without being killed"));
                self.start()
            }
        }
    }
}

fn soak(options: &Options) -> Result<bool, String> {
    let seed = options.seed.unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map_or(1, |d| d.as_secs())
    });
    let binary = kalshi_binary(options)?;
    let (work, temporary) = work_dir(options)?;
    println!(
        "kalshi-soak: {} min, seed {seed}, interval {} s, {} restarts, API faults {:.0}% \
         (an outage every ~{} requests), webhook faults {:.0}%\n  kalshi: {}\n  work dir: {}",
        options.minutes,
        options.interval,
        options.restarts,
        options.api_faults * 100.0,
        options.outage_every,
        options.hook_faults * 100.0,
        binary.display(),
        work.display()
    );

    // The script: quotes, API faults, webhook replies and kill times, all from the seed.
    let run_secs = options.minutes * 60;
    let frames = (run_secs / options.interval) as usize;
    let mut scenario = markets::scenario(&mut StdRng::seed_from_u64(seed), frames);
    let api_plan = ApiPlan::draw(
        &mut StdRng::seed_from_u64(seed ^ 0xA91),
        frames * 3 + 600,
        options.api_faults,
        options.outage_every,
        Duration::from_secs(API_TIMEOUT),
    );
    for (index, (_, fault)) in &api_plan.faults {
        scenario = scenario.fault_on_request(*index, fault.clone());
    }
    let replies = faults::hook_replies(
        &mut StdRng::seed_from_u64(seed ^ 0x400C),
        options.minutes as usize * 3000 + 1000,
        options.hook_faults,
    );
    let kills = kill_times(
        &mut StdRng::seed_from_u64(seed ^ 0x5161),
        run_secs as f64,
        options.restarts,
    );

    let server = TestServer::start(scenario);
    let hook_timeout = Duration::from_secs(HOOK_TIMEOUT);
    let receiver = Receiver::start(replies.iter().map(|r| r.to_reply(hook_timeout)));
    let data_dir = work.join("data");
    let ledger_path = work.join("ledger.jsonl");
    write_notifiers(&data_dir, &ledger_path)?;
    let mut soak = Soak {
        began: Instant::now(),
        kalshi: Kalshi {
            binary,
            data_dir,
            api_base_url: server.base_url(),
            hook_url: receiver.url("/alerts"),
        },
        interval: options.interval,
        lives: Vec::new(),
        samples: Vec::new(),
        failures: Vec::new(),
    };
    let mut conditions = Vec::new();
    for plan in markets::conditions(frames) {
        let id = soak.kalshi.add(&plan.add_args)?;
        conditions.push(ConditionAdded {
            id,
            name: plan.add_args.join(" "),
            repeat: plan.repeat,
        });
    }
    println!(
        "  {} conditions on {} frames of quotes",
        conditions.len(),
        frames
    );

    // The run with faults, with kills on schedule.
    soak.start()?;
    let sample_every = Duration::from_secs(options.sample_every);
    let mut next_kill = kills.iter().copied().enumerate().peekable();
    let mut held = Vec::new();
    let mut next_progress = 60.0;
    while soak.now() < run_secs as f64 {
        std::thread::sleep(sample_every);
        soak.sample()?;
        if next_kill.peek().is_some_and(|(_, at)| soak.now() >= *at) {
            let (number, _) = next_kill.next().expect("peeked");
            // Every other kill lands while the receiver holds a delivery it answers late: the
            // daemon dies between sending an alert and learning that it arrived.
            if number % 2 == 0 {
                held.extend(wait_for_held_delivery(
                    &mut soak,
                    &receiver,
                    &replies,
                    sample_every,
                )?);
            }
            soak.kill()?;
            std::thread::sleep(DOWNTIME);
            soak.start()?;
        }
        if soak.now() >= next_progress {
            next_progress += 60.0;
            progress(&soak, &server, &receiver);
        }
    }

    // A graceful stop while the faults go on; then the receiver recovers and a new daemon
    // drains the outbox while the quiet frame is served.
    soak.stop()?;
    let faulty_requests = receiver.requests().len();
    receiver.replace_script([]);
    receiver.answer_rest_with(Reply::status(200).body("ok"));
    println!(
        "[{}] run over; the receiver answers 200 from now on",
        clock(soak.now())
    );
    soak.start()?;
    let drained = drain(&mut soak, &server, frames, options)?;
    soak.stop()?;
    if !drained {
        soak.failures.push(format!(
            "the outbox did not drain within {} s of the run's end",
            options.drain_limit
        ));
    }

    // The evidence and the checks.
    let history = soak.kalshi.history()?;
    let hook: Vec<HookRequest> = receiver
        .requests()
        .iter()
        .map(|request| HookRequest {
            key: request.header("idempotency-key").map(str::to_owned),
            body_id: serde_json::from_slice::<serde_json::Value>(&request.body)
                .ok()
                .and_then(|body| body["id"].as_str().map(str::to_owned)),
            answered: request.answered,
        })
        .collect();
    let ledger = std::fs::read_to_string(&ledger_path).unwrap_or_default();
    let log = std::fs::read_to_string(soak.kalshi.log_path()).unwrap_or_default();
    let verdict = checks::check(&Evidence {
        history: &history,
        hook: &hook,
        ledger: &ledger,
        log: &log,
        conditions: &conditions,
        held: &held,
    });

    let mut report = String::new();
    let _ = writeln!(
        report,
        "\n== kalshi-soak report (seed {seed}, {} min, interval {} s) ==",
        options.minutes, options.interval
    );
    report.push_str(&run_figures(
        &soak,
        &server,
        &api_plan,
        &replies,
        faulty_requests,
    ));
    report.push_str(&verdict.text);
    let (memory_text, memory_failures) = memory_figures(&soak);
    report.push_str(&memory_text);
    let mut failures = soak.failures.clone();
    failures.extend(verdict.failures);
    failures.extend(memory_failures);
    if failures.is_empty() {
        report.push_str("RESULT: pass\n");
    } else {
        let _ = writeln!(report, "RESULT: FAIL ({} checks)", failures.len());
        for failure in &failures {
            let _ = writeln!(report, "  - {failure}");
        }
    }
    print!("{report}");
    write_records(&work, &report, &soak.samples)?;

    let passed = failures.is_empty();
    match temporary {
        Some(dir) if passed => drop(dir),
        Some(dir) => println!("kept for a look: {}", dir.keep().display()),
        None => println!("kept: {}", work.display()),
    }
    Ok(passed)
}

/// Waits until the quiet frame has been scanned twice and nothing is pending in the outbox.
fn drain(
    soak: &mut Soak,
    server: &TestServer,
    frames: usize,
    options: &Options,
) -> Result<bool, String> {
    let deadline = Instant::now() + Duration::from_secs(options.drain_limit);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(options.sample_every));
        soak.sample()?;
        if server.scans_started() < frames + 2 {
            continue;
        }
        let history = soak.kalshi.history()?;
        let pending = history
            .iter()
            .flat_map(|entry| entry["deliveries"].as_array().cloned().unwrap_or_default())
            .filter(|delivery| delivery["status"] == "pending")
            .count();
        if pending == 0 {
            println!("[{}] outbox drained", clock(soak.now()));
            return Ok(true);
        }
    }
    Ok(false)
}

/// How long a kill waits for a delivery that the receiver answers late.
const HELD_WAIT: Duration = Duration::from_secs(120);

/// Waits (up to [`HELD_WAIT`], sampling memory meanwhile) for a delivery to begin that the
/// receiver answers late, and returns its alert id; the caller kills the daemon at once, while
/// the receiver holds the request.
fn wait_for_held_delivery(
    soak: &mut Soak,
    receiver: &Receiver,
    replies: &[HookReply],
    sample_every: Duration,
) -> Result<Option<String>, String> {
    let deadline = Instant::now() + HELD_WAIT;
    let mut sampled = Instant::now();
    let mut seen = receiver.requests().len();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        let requests = receiver.requests();
        // Replies are handed out in the order requests arrive, so request N gets reply N.
        let late = requests.iter().enumerate().skip(seen).find(|(index, _)| {
            matches!(
                replies.get(*index),
                Some(HookReply::LateOk | HookReply::SlowOk)
            )
        });
        if let Some((_, request)) = late {
            let id = request.header("idempotency-key").map(str::to_owned);
            if let Some(id) = &id {
                println!("    killing while the receiver holds a delivery of alert {id}");
            }
            return Ok(id);
        }
        seen = requests.len();
        if sampled.elapsed() >= sample_every {
            sampled = Instant::now();
            soak.sample()?;
        }
    }
    println!(
        "    no late delivery began within {} s; killing anyway",
        HELD_WAIT.as_secs()
    );
    Ok(None)
}

/// When to kill the daemon: spread over the first half of the run, each moved by up to a
/// twentieth of the run either way.
fn kill_times(rng: &mut StdRng, run_secs: f64, restarts: u32) -> Vec<f64> {
    let jitter = run_secs / 20.0;
    (1..=restarts)
        .map(|k| {
            let at = run_secs / 2.0 * f64::from(k) / f64::from(restarts + 1);
            at + rng.random_range(-jitter..=jitter)
        })
        .collect()
}

fn kalshi_binary(options: &Options) -> Result<PathBuf, String> {
    let binary = match &options.kalshi {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find this program's path: {e}"))?
            .with_file_name("kalshi"),
    };
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "no kalshi binary at {}; build it first (cargo build --release -p \
             kalshi-alerts-cli) or give --kalshi PATH",
            binary.display()
        ))
    }
}

/// The work dir, and the temporary directory that owns it when none was given.
fn work_dir(options: &Options) -> Result<(PathBuf, Option<tempfile::TempDir>), String> {
    match &options.dir {
        Some(dir) => {
            if dir.exists() {
                return Err(format!(
                    "{} exists; give a directory that does not, so no old state is reused",
                    dir.display()
                ));
            }
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            Ok((dir.clone(), None))
        }
        None => {
            let dir = tempfile::Builder::new()
                .prefix("kalshi-soak-")
                .tempdir()
                .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
            Ok((dir.path().to_path_buf(), Some(dir)))
        }
    }
}

/// Two instances: the webhook to the flaky receiver, and a file as ground truth.
fn write_notifiers(data_dir: &Path, ledger: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;

    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let text = format!(
        "[[notifier]]\nname = \"{HOOK}\"\nkind = \"webhook\"\n\
         url = {{ env = \"{HOOK_URL_VARIABLE}\" }}\ntimeout = {HOOK_TIMEOUT}\n\n\
         [[notifier]]\nname = \"{LEDGER}\"\nkind = \"file\"\npath = \"{}\"\n",
        ledger.display()
    );
    let path = data_dir.join("notifiers.toml");
    std::fs::write(&path, text)
        .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn progress(soak: &Soak, server: &TestServer, receiver: &Receiver) {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let (rss, anon) = soak
        .samples
        .last()
        .map_or((0.0, 0.0), |s| (mib(s.rss_kib), mib(s.anon_kib)));
    let fired = soak.kalshi.history().map_or(0, |h| h.len());
    println!(
        "[{}] RSS {rss:.1} MiB (anonymous {anon:.1}), {} scans, {fired} alerts fired, {} \
         webhook requests",
        clock(soak.now()),
        server.scans_started(),
        receiver.requests().len()
    );
}

/// What ran: the daemons, the scans and the faults served.
fn run_figures(
    soak: &Soak,
    server: &TestServer,
    api_plan: &ApiPlan,
    replies: &[HookReply],
    faulty_requests: usize,
) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "duration: {:.0} s in all", soak.now());
    let _ = writeln!(text, "daemons:");
    for life in &soak.lives {
        let ended = life.ended.map_or("-".into(), clock);
        let _ = writeln!(
            text,
            "  PID {:>7}  {} .. {}  {}",
            life.pid,
            clock(life.started),
            ended,
            life.how
        );
    }
    let requests = server.requests().len();
    let served = api_plan.served(requests);
    let faulted: usize = served.values().sum();
    let _ = writeln!(
        text,
        "market server: {requests} requests, {} scans served, {faulted} faulted:",
        server.scans_started()
    );
    for (kind, count) in served {
        let _ = writeln!(text, "  {count:>5}  {}", kind.name());
    }
    let mut given = std::collections::BTreeMap::new();
    for reply in &replies[..faulty_requests.min(replies.len())] {
        *given.entry(*reply).or_insert(0) += 1;
    }
    let _ = writeln!(
        text,
        "webhook replies while faulty ({faulty_requests} requests):"
    );
    for (reply, count) in given {
        let _ = writeln!(text, "  {count:>5}  {}", reply.name());
    }
    text
}

/// Memory figures of every daemon, and the verdict on the last one of the run with faults:
/// both `VmRSS` and `RssAnon` must stay flat.
fn memory_figures(soak: &Soak) -> (String, Vec<String>) {
    let mut text = String::from("memory (KiB; min / median / max):\n");
    let of_pid = |pid: u32| -> Vec<Sample> {
        soak.samples
            .iter()
            .filter(|s| s.pid == pid)
            .copied()
            .collect()
    };
    for life in &soak.lives {
        let own = of_pid(life.pid);
        let (Some(rss), Some(anon)) = (
            memory::spread(&own, Measure::Rss),
            memory::spread(&own, Measure::Anon),
        ) else {
            continue;
        };
        let _ = writeln!(
            text,
            "  PID {:>7}: {} samples, VmRSS {} / {} / {}, RssAnon {} / {} / {}",
            life.pid, rss.count, rss.min, rss.median, rss.max, anon.min, anon.median, anon.max
        );
    }
    // The last daemon of the run is the one before the drain's.
    let Some(judged) = soak.lives.len().checked_sub(2).map(|i| soak.lives[i].pid) else {
        return (text, vec!["no daemon ran long enough to judge".into()]);
    };
    let own = of_pid(judged);
    let mut failures = Vec::new();
    for measure in [Measure::Rss, Measure::Anon] {
        let Some(flat) = memory::flatness(&own, measure) else {
            text.push_str("  too few samples after warm-up to judge flatness\n");
            return (text, failures);
        };
        let _ = writeln!(
            text,
            "  PID {judged} {} after warm-up: {} samples over {:.0} s; median of the first \
             quarter {} KiB, of the last quarter {} KiB ({:+} KiB, allowed +{} KiB); slope \
             {:+.1} KiB/min",
            measure.name(),
            flat.samples,
            flat.window_secs,
            flat.early_median,
            flat.late_median,
            flat.growth_kib(),
            flat.allowed_growth,
            flat.slope_kib_per_min
        );
        if !flat.flat {
            failures.push(format!(
                "{} grew {} KiB after warm-up (allowed {} KiB)",
                measure.name(),
                flat.growth_kib(),
                flat.allowed_growth
            ));
        }
    }
    (text, failures)
}

/// `report.txt` and `rss.csv` in the work dir.
fn write_records(work: &Path, report: &str, samples: &[Sample]) -> Result<(), String> {
    let mut csv = String::from("seconds,pid,rss_kib,anon_kib\n");
    for s in samples {
        let _ = writeln!(csv, "{:.1},{},{},{}", s.at, s.pid, s.rss_kib, s.anon_kib);
    }
    std::fs::write(work.join("report.txt"), report)
        .and_then(|()| std::fs::write(work.join("rss.csv"), csv))
        .map_err(|e| format!("cannot write the report in {}: {e}", work.display()))
}

/// `m:ss` since the soak began.
fn clock(secs: f64) -> String {
    let secs = secs as u64;
    format!("{}:{:02}", secs / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_fall_in_the_first_half_in_order() {
        let kills = kill_times(&mut StdRng::seed_from_u64(9), 600.0, 2);
        assert_eq!(kills.len(), 2);
        assert!((70.0..=130.0).contains(&kills[0]), "{kills:?}");
        assert!((170.0..=230.0).contains(&kills[1]), "{kills:?}");
        assert!(kill_times(&mut StdRng::seed_from_u64(9), 600.0, 0).is_empty());
    }

    #[test]
    fn options_refuse_a_share_out_of_range() {
        assert!(Options::try_parse_from(["kalshi-soak", "--api-faults", "0.95"]).is_err());
        let options =
            Options::try_parse_from(["kalshi-soak", "--minutes", "15", "--seed", "4"]).unwrap();
        assert_eq!((options.minutes, options.seed), (15, Some(4)));
    }

    #[test]
    fn the_clock_reads_minutes_and_seconds() {
        assert_eq!(clock(754.9), "12:34");
    }
}
