//! `kalshi alerts monitor`: validate, build the monitor, hand it to a launcher.
//!
//! Everything that can be refused is refused here, before a launcher runs:
//! no conditions, an unknown notifier or launcher, a bad notifiers file, a
//! route to a notifier that does not exist, a notifier that cannot deliver.
//! A daemon therefore never starts only to die of a mistake in its options.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kalshi_alerts_core::display;
use kalshi_alerts_core::launcher::{find_launcher, launcher_plugins};
use kalshi_alerts_core::lock::MonitorLock;
use kalshi_alerts_core::monitor::Reloaded;
use kalshi_alerts_core::{
    check_base_url, AlertStore, ClientConfig, Condition, FailureKind, KalshiClient, LaunchError,
    LaunchOutcome, MarketSource, Monitor, MonitorJob, ReplaySource, RunOptions, RunReport,
    ScanMode, Scope, StateStore, StopReason,
};

use super::add::{threshold_problem, ticker_problem};
use super::instances::{
    check_routes, describe_failure, load_file, load_notifiers, log_warnings, routes_of, run_checks,
    Setup,
};
use super::Context;
use crate::args::{MonitorArgs, ScanKind, SourceKind};
use crate::error::{CliError, CliResult};
use crate::output::say;

/// Set by the daemon launcher in the environment of its background copy.
const DAEMON_CHILD: &str = "KALSHI_DAEMON_CHILD";

/// Set by the daemon launcher to the log that the copy's standard error,
/// until now a pipe the launcher reads, is to go to once it holds the lock.
const DAEMON_LOG: &str = kalshi_alerts_plugins::launchers::daemon::DAEMON_LOG;

const NO_ALERTS: &str = "No alerts configured. Use 'kalshi alerts add' to create some.";

pub fn run(context: &Context, args: MonitorArgs) -> CliResult<ExitCode> {
    check_scan(&args)?;
    let conditions = context.store().load()?.conditions;
    if conditions.is_empty() {
        say!("{NO_ALERTS}");
        return Ok(ExitCode::SUCCESS);
    }
    check_conditions(&conditions)?;

    let launcher_name = match (&args.launcher, args.daemon) {
        (Some(name), _) => name.clone(),
        (None, true) => "daemon".to_string(),
        (None, false) => "foreground".to_string(),
    };
    let launcher = find_launcher(&launcher_name).ok_or_else(|| {
        let known: Vec<_> = launcher_plugins().iter().map(|p| p.name).collect();
        CliError::invalid(format!(
            "unknown launcher {launcher_name:?}; registered launchers: {}",
            known.join(", ")
        ))
    })?;
    let setup = prepare_notifiers(context, &args, &conditions)?;

    let job = MonitorJob::new(
        context.data_dir.clone(),
        context.environment.to_string(),
        foreground_args(context, &args),
        {
            let data_dir = context.data_dir.clone();
            let source = build_source(context, &args)?;
            let args = args.clone();
            let scope = context.environment.to_string();
            let notifiers = (context.notifiers_path.clone(), context.notifiers_explicit);
            move || {
                run_here(
                    &data_dir, source, conditions, &setup, &args, &scope, notifiers,
                )
            }
        },
    );

    match (launcher.build)()
        .launch(job)
        .map_err(|e| CliError::invalid(e.message))?
    {
        LaunchOutcome::Detached { pid, log_path } => {
            say!("Alert monitor started in background (PID: {pid})");
            say!("Logs: {}", log_path.display());
            Ok(ExitCode::SUCCESS)
        }
        LaunchOutcome::Finished(report) => finish(&report),
    }
}

/// `--skip-combos` narrows a full scan only: a targeted scan names its
/// markets and never reads a combo it was not asked for. Taken silently, it
/// would let the user believe combos are left out of a scan that ignores
/// it. Clap cannot say "requires --scan full" of an option with a default,
/// so the check is here, as a usage error like the parser's.
fn check_scan(args: &MonitorArgs) -> CliResult {
    if args.skip_combos && args.scan != ScanKind::Full {
        return Err(CliError::usage(format!(
            "--skip-combos applies only to --scan full, and the scan is {}; add --scan full, \
             or leave --skip-combos out",
            args.scan.as_str()
        )));
    }
    Ok(())
}

/// What `alerts add` would refuse, found in a file written by hand or by
/// another tool, is refused here too, naming the condition:
/// - an unreadable expiry, which would make a condition silently eternal;
/// - an id that is empty or shared: the monitor keeps each condition's
///   state under its id, so two conditions under one id would overwrite
///   each other's and fire again at every check;
/// - a ticker that cannot be Kalshi's (empty, say, which a targeted scan
///   would send as an empty filter and the API read as none), or a series
///   with a '-', which no market's series can match;
/// - a threshold out of its kind's range, or one at which the condition
///   could never fire or would fire at every check (a move of 0).
fn check_conditions(conditions: &[Condition]) -> CliResult {
    let mut ids: HashMap<&str, usize> = HashMap::with_capacity(conditions.len());
    for (number, condition) in conditions.iter().enumerate().map(|(i, c)| (i + 1, c)) {
        let refuse = |problem: String| {
            Err(CliError::invalid(format!(
                "alert condition {number} in alerts.json ({}) {problem}; fix alerts.json or \
                 remove the condition",
                if condition.id.is_empty() {
                    "no id".to_string()
                } else {
                    format!("id {:?}", display::clipped(&condition.id, 40))
                }
            )))
        };
        if let Err(e) = condition.expiry() {
            return refuse(format!("has an unreadable expires_at: {e}"));
        }
        if condition.id.trim().is_empty() {
            return refuse("has an empty id".to_string());
        }
        if display::printable(&condition.id) != condition.id.as_str() {
            // It would reach terminals and logs in every alert it fires.
            return refuse(
                "has control or text-direction characters in its id (shown as '?')".to_string(),
            );
        }
        if let Some(first) = ids.insert(condition.id.as_str(), number) {
            return refuse(format!(
                "has the id of condition {first}: each condition needs its own"
            ));
        }
        if let Some(problem) = ticker_problem(&condition.ticker) {
            return refuse(format!(
                "has ticker {:?}, which is not a Kalshi ticker: {problem}",
                display::clipped(&condition.ticker, 40)
            ));
        }
        if condition.scope == Scope::Series && condition.ticker.contains('-') {
            return refuse(format!(
                "watches series {:?}, and a series ticker has no '-'",
                display::clipped(&condition.ticker, 40)
            ));
        }
        if let Some(problem) = threshold_problem(&condition.condition_type, condition.threshold) {
            return refuse(format!(
                "has {} threshold {}, which `alerts add` refuses: {problem}",
                condition.condition_type,
                condition.threshold.normalize()
            ));
        }
    }
    Ok(())
}

/// The notifier setup of this run, validated: the file's instances, the
/// kinds `--notifier` adds (console and log when there is no file), the
/// `file` notifier of `--output-file`; every condition's route must name one
/// of them, and every instance's own check must not fail for good.
fn prepare_notifiers(
    context: &Context,
    args: &MonitorArgs,
    conditions: &[Condition],
) -> CliResult<Setup> {
    let file = load_file(context)?;
    let kinds = match (&args.notifiers, &file) {
        (Some(kinds), _) => kinds
            .iter()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect(),
        (None, None) => vec!["console".to_string(), "log".to_string()],
        (None, Some(_)) => Vec::new(),
    };
    let setup = Setup {
        file,
        kinds,
        output_file: args.output_file.clone(),
    };
    let built = setup.build()?;
    log_warnings(&built);
    check_routes(conditions, &routes_of(&built))?;

    // A daemon's background copy skips the checks: its launcher ran them a
    // moment ago, and a slow check would outlast the launcher's wait.
    if std::env::var_os(DAEMON_CHILD).is_some() {
        return Ok(setup);
    }
    for (name, outcome) in run_checks(built) {
        match outcome {
            Ok(()) => {}
            Err(e) if e.kind == FailureKind::Permanent => {
                return Err(CliError::invalid(format!(
                    "notifier {name} cannot deliver: {}",
                    describe_failure(&e)
                )))
            }
            Err(e) => {
                tracing::warn!(notifier = %name, reason = %e.message, "notifier check failed; starting anyway, deliveries will be retried")
            }
        }
    }
    Ok(setup)
}

fn build_source(context: &Context, args: &MonitorArgs) -> CliResult<Box<dyn MarketSource>> {
    if args.source == SourceKind::Replay {
        return Ok(Box::new(ReplaySource::bundled()));
    }
    let mut client = api_client(
        context,
        args.max_pages.map(|n| n as usize),
        Duration::from_secs(args.timeout),
        None,
    )?;
    client.set_rate(args.rate);
    client.set_scan(
        match args.scan {
            ScanKind::Auto => ScanMode::Auto,
            ScanKind::Full => ScanMode::Full,
        },
        args.skip_combos,
    );
    // A progress line on a terminal; a daemon has none, and piped output
    // gets nothing of it.
    if std::env::var_os(DAEMON_CHILD).is_none()
        && args.launcher.as_deref() != Some("daemon")
        && !args.daemon
    {
        let mut line: Option<crate::progress::Progress> = None;
        client.report_progress(Box::new(move |pages, markets, done| {
            if done {
                line = None;
                return;
            }
            line.get_or_insert_with(|| crate::progress::Progress::start("scanning"))
                .update(pages, markets);
        }));
    }
    Ok(Box::new(client))
}

/// The longest `Retry-After` a command a person waits for honours before
/// its last attempt; the monitor honours up to two minutes.
const LOOKUP_RETRY_AFTER: Duration = Duration::from_secs(5);

/// A client of the market API: `KALSHI_API_BASE_URL` if set (checked),
/// else the host of `--env`.
/// `attempts` replaces the number of attempts per request (a command a
/// person waits for gives up sooner than the monitor, and waits at most
/// [`LOOKUP_RETRY_AFTER`] between them).
pub fn api_client(
    context: &Context,
    max_pages: Option<usize>,
    timeout: Duration,
    attempts: Option<u32>,
) -> CliResult<KalshiClient> {
    let base_url = match std::env::var("KALSHI_API_BASE_URL") {
        Ok(text) => check_base_url(&text)
            .map_err(|e| CliError::invalid(format!("KALSHI_API_BASE_URL: {e}")))?,
        Err(std::env::VarError::NotPresent) => context.environment.base_url().to_string(),
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(CliError::invalid("KALSHI_API_BASE_URL is not valid UTF-8"))
        }
    };
    let mut config = ClientConfig::new(base_url);
    config.max_pages = max_pages;
    config.timeout = timeout;
    if let Some(attempts) = attempts {
        config.retry.max_attempts = attempts;
        // A server asking for a long pause is not waited out either.
        config.retry.max_retry_after = LOOKUP_RETRY_AFTER;
    }
    KalshiClient::new(config).map_err(|e| CliError::invalid(e.to_string()))
}

/// The arguments that run this same monitor in the foreground elsewhere:
/// what a daemon launcher starts. Paths are made absolute on the way.
fn foreground_args(context: &Context, args: &MonitorArgs) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec![
        "--env".into(),
        context.environment.to_string().into(),
        "--data-dir".into(),
        context.data_dir.clone().into(),
        "alerts".into(),
        "monitor".into(),
        "--launcher".into(),
        "foreground".into(),
        "--interval".into(),
        args.interval.to_string().into(),
        "--source".into(),
        args.source.as_str().into(),
        "--timeout".into(),
        args.timeout.to_string().into(),
        "--scan".into(),
        args.scan.as_str().into(),
        "--rate".into(),
        args.rate.to_string().into(),
    ];
    if args.skip_combos {
        out.push("--skip-combos".into());
    }
    // Only a file that is in use is passed on: naming a missing one is an error.
    if context.notifiers_explicit || context.notifiers_path.exists() {
        out.splice(
            4..4,
            ["--notifiers".into(), context.notifiers_path.clone().into()],
        );
    }
    if let Some(kinds) = &args.notifiers {
        out.extend(["--notifier".into(), kinds.join(",").into()]);
    }
    out.extend(context.log_flags.iter().map(OsString::from));
    if args.once {
        out.push("--once".into());
    }
    if let Some(cycles) = args.cycles {
        out.extend(["--cycles".into(), cycles.to_string().into()]);
    }
    if let Some(pages) = args.max_pages {
        out.extend(["--max-pages".into(), pages.to_string().into()]);
    }
    if let Some(path) = &args.output_file {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        out.extend(["--output-file".into(), path.into()]);
    }
    out
}

/// Runs the monitor in this process: takes the lock, opens the state
/// database, then cycles until a signal, the cycle limit or the end of a
/// replay.
fn run_here(
    data_dir: &Path,
    source: Box<dyn MarketSource>,
    conditions: Vec<Condition>,
    setup: &Setup,
    args: &MonitorArgs,
    scope: &str,
    notifiers: (PathBuf, bool),
) -> Result<RunReport, LaunchError> {
    // A replay is a rehearsal over recorded data: it keeps its state in
    // memory and leaves the data dir's history alone.
    let state = match args.source {
        SourceKind::Replay => StateStore::in_memory(),
        // The error says what to do when SQLite tells a full disk from a
        // damaged file.
        SourceKind::Api => {
            StateStore::open(data_dir).map_err(|e| LaunchError::new(e.to_string()))?
        }
    };
    if state.is_read_only() {
        return Err(LaunchError::new(format!(
            "state database {}: cannot be written (read-only or immutable); the monitor would \
             forget what fired and fire it again on every run",
            state.label()
        )));
    }
    // Taken once the database is open: a daemon's launcher returns when it
    // sees the lock, and the monitor must be able to run by then.
    let mut lock = MonitorLock::acquire(data_dir).map_err(|e| LaunchError::new(e.to_string()))?;
    stderr_to_daemon_log()?;
    let built = setup.build().map_err(|e| LaunchError::new(e.message))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| LaunchError::new(format!("cannot start the async runtime: {e}")))?;

    let max_cycles = if args.once { Some(1) } else { args.cycles };
    let options = RunOptions {
        interval: Duration::from_secs(args.interval),
        max_cycles,
    };
    let count = conditions.len();
    let names: Vec<_> = built.iter().map(|n| n.name.clone()).collect();
    let routes = routes_of(&built);
    let describe = source.describe();
    let database = state.label().to_string();
    let mut monitor = Monitor::new(source, conditions.clone(), built);
    monitor
        .use_state(state, scope)
        .map_err(|e| LaunchError::new(e.to_string()))?;
    monitor.write_status_to(data_dir.join(kalshi_alerts_core::monitor::STATUS_FILE));
    let reload_now = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(tokio::sync::Notify::new());
    monitor.reload_with(reloader(
        data_dir,
        Watched {
            conditions,
            routes,
            setup: setup.clone(),
            notifiers_path: notifiers.0,
            notifiers_explicit: notifiers.1,
        },
        reload_now.clone(),
    ));
    monitor.wake_on(wake.clone());

    match max_cycles {
        Some(1) => say!("Monitoring {count} alert(s) (single check)"),
        Some(n) => say!(
            "Monitoring {count} alert(s) ({n} checks, every {}s)",
            args.interval
        ),
        None => {
            say!(
                "Monitoring {count} alert(s) (checking every {}s)",
                args.interval
            );
            say!("Press Ctrl+C to stop");
        }
    }
    tracing::info!(
        pid = std::process::id(), source = %describe, conditions = count,
        notifiers = %names.join(","), state = %database, "monitor started"
    );

    let report = runtime.block_on(async {
        // In a terminal, SIGHUP keeps its usual meaning: the terminal went
        // away, so the monitor stops. A daemon, or a monitor run by a
        // supervisor (systemd, launchd: standard input is not a terminal),
        // has none; for it a SIGHUP is a request to reload.
        let no_terminal = !std::io::IsTerminal::is_terminal(&std::io::stdin());
        if std::env::var_os(DAEMON_CHILD).is_some() || no_terminal {
            watch_hangup(reload_now, wake);
        }
        // The lock lives here, not in the stop future, so that it is held
        // until the run, and any delivery it drains, is over.
        let stop = async {
            tokio::select! {
                () = stop_signal() => {}
                () = guard_lock(&mut lock, data_dir) => {}
            }
        };
        monitor.run(&options, stop).await
    });
    tracing::info!(
        cycles = report.cycles,
        fired = report.alerts_fired,
        stop = ?report.stop,
        peak_rss_kib = peak_memory_kib(),
        "monitor stopped"
    );
    // A notifier blocked in a system call (a FIFO nobody reads, a hung
    // network file system) must not keep the process alive for long.
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(report)
}

/// What a running monitor watches for edits, and the set in use.
struct Watched {
    conditions: Vec<Condition>,
    routes: Vec<(String, bool)>,
    setup: Setup,
    notifiers_path: PathBuf,
    notifiers_explicit: bool,
}

/// Reads alerts.json and the notifiers file again when either changed (or
/// when a SIGHUP asked), so that edits apply from the next cycle on. A set
/// that cannot be used (bad JSON or TOML, an unreadable expiry, a route to
/// an instance that is not there, a notifier that cannot be built) is
/// refused with the reason, and the last good set stays in use.
fn reloader(
    data_dir: &Path,
    mut watched: Watched,
    asked: Arc<AtomicBool>,
) -> kalshi_alerts_core::monitor::Reload {
    let store = AlertStore::in_dir(data_dir);
    let stamp = |path: &Path| {
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.modified().ok(), m.len()))
    };
    let mut seen_alerts = stamp(store.path());
    let mut seen_notifiers = stamp(&watched.notifiers_path);
    Box::new(move || {
        let asked = asked.swap(false, Ordering::SeqCst);
        let alerts_now = stamp(store.path());
        let notifiers_now = stamp(&watched.notifiers_path);
        let alerts_changed = asked || alerts_now != seen_alerts;
        let notifiers_changed = asked || notifiers_now != seen_notifiers;
        if !alerts_changed && !notifiers_changed {
            return None;
        }
        seen_alerts = alerts_now;
        seen_notifiers = notifiers_now;

        let conditions = if alerts_changed {
            match read_conditions(&store) {
                Ok(conditions) => conditions,
                Err(e) => return Some(Err(e)),
            }
        } else {
            watched.conditions.clone()
        };
        if let Err(e) = check_conditions(&conditions) {
            return Some(Err(e.message));
        }
        let mut notifiers = None;
        let mut routes = watched.routes.clone();
        if notifiers_changed {
            let file = match load_notifiers(&watched.notifiers_path, watched.notifiers_explicit) {
                Ok(file) => file,
                Err(e) => return Some(Err(e.message)),
            };
            let setup = Setup {
                file,
                ..watched.setup.clone()
            };
            let built = match setup.build() {
                Ok(built) => built,
                Err(e) => return Some(Err(e.message)),
            };
            routes = routes_of(&built);
            watched.setup = setup;
            notifiers = Some(built);
        }
        if let Err(e) = check_routes(&conditions, &routes) {
            return Some(Err(e.message));
        }
        watched.routes = routes;
        watched.conditions = conditions.clone();
        // Rebuilt instances go into service now: say again what they weaken.
        if let Some(built) = &notifiers {
            log_warnings(built);
        }
        Some(Ok(Reloaded {
            conditions: alerts_changed.then_some(conditions),
            notifiers,
        }))
    })
}

/// The conditions of alerts.json, read again for a running monitor.
///
/// A missing or empty file is refused like an invalid one, not read as "no
/// conditions" (which is what it means to `alerts add`): a file deleted by
/// mistake, or caught empty while an editor rewrites it in place, would
/// otherwise stop every alert, and conditions that fire once would fire
/// again when it is back. To stop every alert, stop the monitor or remove
/// the conditions.
fn read_conditions(store: &AlertStore) -> Result<Vec<Condition>, String> {
    let path = store.path().display();
    match std::fs::metadata(store.path()) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "alerts file {path} does not exist (deleted or moved away?); put it back, \
                 or stop the monitor to stop its alerts"
            ))
        }
        Ok(metadata) if metadata.is_file() && metadata.len() == 0 => {
            return Err(format!(
                "alerts file {path} is empty (still being written?); an empty list of \
                 conditions is {{\"conditions\": []}}"
            ))
        }
        _ => {}
    }
    store
        .load()
        .map(|file| file.conditions)
        .map_err(|e| e.to_string())
}

/// A daemon's copy that holds the monitor lock moves its standard error
/// from the launcher's pipe to the log: the launcher sees the pipe close,
/// knows the start is over and returns, and nothing written later is lost.
/// A log that cannot be opened ends the start, through the pipe still.
fn stderr_to_daemon_log() -> Result<(), LaunchError> {
    #[cfg(unix)]
    if let Some(log) = std::env::var_os(DAEMON_LOG) {
        use std::os::fd::AsRawFd;

        let log = Path::new(&log);
        let fail = |e: std::io::Error| {
            LaunchError::new(format!(
                "cannot send standard error to the log {}: {e}",
                log.display()
            ))
        };
        let file = kalshi_alerts_core::private::new_file_options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(fail)?;
        // SAFETY: dup2(2) makes descriptor 2 a copy of the log's; both are
        // open, and descriptor 2 is replaced in one step.
        if unsafe { libc::dup2(file.as_raw_fd(), 2) } == -1 {
            return Err(fail(std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// On SIGHUP: reload the conditions at once, whether or not the file
/// looks changed. (A daemon ignores SIGHUP from the terminal that started
/// it; it has none, so a SIGHUP can only be a request.)
fn watch_hangup(asked: Arc<AtomicBool>, wake: Arc<tokio::sync::Notify>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(mut hangups) => {
                tokio::spawn(async move {
                    while hangups.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading the conditions now");
                        asked.store(true, Ordering::SeqCst);
                        wake.notify_one();
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGHUP; edits still apply by the next cycle")
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (asked, wake);
    }
}

/// Keeps the monitor lock true for as long as the monitor runs. If the lock
/// file disappears (the data dir was deleted under a daemon), it is taken
/// again, so `status` and a second start still see this monitor; if another
/// monitor took it meanwhile, this one stops rather than run twice.
///
/// The file is watched (inotify on Linux, through the `notify` crate), so
/// the check runs when something happens to it and a monitor between cycles
/// wakes for nothing. Where no watch can be set up (the system's limit of
/// watches is reached), it checks every [`LOCK_CHECK`] instead.
async fn guard_lock(lock: &mut MonitorLock, data_dir: &Path) {
    let (touched, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = lock_watcher(touched).and_then(|watcher| watching(watcher, lock.path()));
    loop {
        match watcher {
            Some(_) => {
                if changes.recv().await.is_none() {
                    std::future::pending::<()>().await;
                }
                // Let a removal under way (`rm -rf` of the data dir) end
                // before the lock is taken again, or it would find the
                // directory refilled under it.
                tokio::time::sleep(LOCK_SETTLE).await;
                while changes.try_recv().is_ok() {}
            }
            None => tokio::time::sleep(LOCK_CHECK).await,
        }
        if lock.is_current() {
            continue;
        }
        match MonitorLock::acquire(data_dir) {
            Ok(again) => {
                tracing::warn!(path = %again.path().display(), "monitor lock file was removed; taken again");
                *lock = again;
                watcher = watcher.and_then(|watcher| watching(watcher, lock.path()));
            }
            Err(e) => {
                tracing::error!(error = %e, "monitor lock lost to another monitor; stopping");
                return;
            }
        }
    }
}

/// A watcher that tells `touched` of every event on what it watches; `None`
/// (with a warning) when the system cannot give one.
fn lock_watcher(
    touched: tokio::sync::mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    let handler = move |_: notify::Result<notify::Event>| {
        let _ = touched.send(());
    };
    match notify::recommended_watcher(handler) {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the monitor lock file; checking it every 5 s");
            None
        }
    }
}

/// `watcher`, now also watching the lock file at `path` (its removal shows
/// as a change of its link count, even while this process holds it open);
/// `None` (with a warning) when it cannot.
fn watching(
    mut watcher: notify::RecommendedWatcher,
    path: &Path,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;

    match watcher.watch(path, notify::RecursiveMode::NonRecursive) {
        Ok(()) => Some(watcher),
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(),
                "cannot watch the monitor lock file; checking it every 5 s");
            None
        }
    }
}

/// How long after a change to its lock file the monitor looks at it.
const LOCK_SETTLE: Duration = Duration::from_secs(1);

/// How often the monitor checks that its lock file is still there when the
/// file cannot be watched.
const LOCK_CHECK: Duration = Duration::from_secs(5);

/// The most memory the process has held resident, in KiB (`VmHWM` of
/// /proc/self/status; Linux only). Unlike `getrusage`, it counts this
/// program only, not what the process held before it started this program.
fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Completes on Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the monitor");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn finish(report: &RunReport) -> CliResult<ExitCode> {
    let summary = format!(
        "{} cycle(s), {} alert(s) fired",
        report.cycles, report.alerts_fired
    );
    match report.stop {
        StopReason::Signal => say!("Alert monitor stopped: {summary}."),
        StopReason::ReplayFinished => say!("Replay finished: {summary}."),
        StopReason::CycleLimit => say!("Check complete: {summary}."),
    }
    if report.stop == StopReason::CycleLimit && report.failed_cycles == report.cycles {
        let last = report.last_error.as_deref().unwrap_or("unknown error");
        return Err(CliError::invalid(format!(
            "every check failed; last error: {last}"
        )));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path) -> Result<usize, String> {
        read_conditions(&AlertStore::in_dir(dir)).map(|conditions| conditions.len())
    }

    #[test]
    fn a_missing_empty_or_invalid_file_is_refused_and_a_good_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.json");

        let missing = read(dir.path()).unwrap_err();
        assert!(missing.contains("does not exist"), "{missing}");
        assert!(missing.contains(&path.display().to_string()), "{missing}");

        std::fs::write(&path, "").unwrap();
        assert!(read(dir.path()).unwrap_err().contains("is empty"));

        std::fs::write(&path, "{\n  \"conditions\": [\n").unwrap();
        let invalid = read(dir.path()).unwrap_err();
        assert!(
            invalid.contains("is not valid JSON (line 3, column 0)"),
            "{invalid}"
        );

        std::fs::write(&path, r#"{"conditions": []}"#).unwrap();
        assert_eq!(read(dir.path()), Ok(0));
    }
}
