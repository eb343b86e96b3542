//! The monitor loop: scan, evaluate, commit, deliver, wait, until told to stop.
//!
//! One cycle scans the market source for the watched tickers, checks every
//! live condition against what it remembers of it, commits the new state
//! and the fired alerts to the state database in one transaction, and only
//! then hands the alerts to the notifiers (the outbox, see
//! [`crate::dispatch`]). Whether a condition that holds fires is its
//! [`RepeatPolicy`]'s call, on the state kept in the database: a restarted
//! monitor does not fire again what fired and still holds.
//!
//! A failed scan is logged and the next cycle runs; only a stop signal, a
//! cycle limit or the end of a replay ends a run. A stop signal is obeyed
//! at once, in the middle of a scan or a delivery pass: what a cycle
//! decided is committed before any delivery starts, and deliveries cut
//! short stay in the outbox for the next run.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::alert::FiredAlert;
use crate::condition::{
    is_state_key_of, state_key, Condition, ConditionState, ConditionType, Evaluation, Scope,
};
use crate::dispatch::{DeliveryRetry, DispatchReport, Dispatcher, NamedNotifier};
use crate::market::Market;
use crate::source::{MarketSource, Scan, SourceError, Watchlist};
use crate::state::{CycleCommit, StateStore, StoredCondition};

/// How long a run that ends on its own (a cycle limit, the end of a replay)
/// goes on retrying deliveries that failed. A stop signal does not wait:
/// what is left stays in the outbox.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Fired alerts are kept in the history this long, once delivered.
pub const HISTORY_KEPT: Duration = Duration::from_secs(90 * 24 * 3600);

/// How long a cycle waits for its delivery pass before it moves on: the
/// pass goes on in the background, so a receiver that hangs delays neither
/// the next scan nor the other instances by more than this.
pub const PASS_WAIT: Duration = Duration::from_secs(2);

/// What one cycle did.
#[derive(Debug, Clone)]
pub struct CycleReport {
    pub pages: usize,
    pub markets_read: usize,
    pub truncated: bool,
    pub exhausted: bool,
    /// Alerts fired this cycle, in condition order.
    pub fired: Vec<FiredAlert>,
    /// How long checking the conditions against the scan took.
    pub evaluation: Duration,
    /// How the delivery pass after the commit went (this cycle's alerts and
    /// any earlier ones that were due).
    pub dispatch: DispatchReport,
}

/// The longest interval between cycles: a year. Longer ones would overflow
/// the clock's arithmetic, and no watch needs them.
pub const MAX_INTERVAL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// How a run is paced and when it ends on its own.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// From the start of one cycle to the start of the next: cycles keep a
    /// fixed schedule however long each takes. A cycle that overruns it is
    /// followed at once by one cycle, never by a burst of missed ones.
    /// At most [`MAX_INTERVAL`]; a longer one is taken as that.
    pub interval: Duration,
    /// Stop after this many cycles (`--once` is 1).
    pub max_cycles: Option<u64>,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    CycleLimit,
    Signal,
    ReplayFinished,
}

/// What a whole run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub cycles: u64,
    pub failed_cycles: u64,
    pub alerts_fired: u64,
    pub stop: StopReason,
    /// The last scan's error when the last cycle failed.
    pub last_error: Option<String>,
}

/// The status file's name inside the data directory.
pub const STATUS_FILE: &str = "alert_monitor.status.json";

/// What a running monitor says about itself, rewritten after every cycle
/// to the status file (`alert_monitor.status.json` in the data dir) for
/// `kalshi alerts status` to read.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MonitorStatus {
    pub pid: u32,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub source: String,
    pub interval_secs: f64,
    pub cycles: u64,
    pub alerts_fired: u64,
    pub last_cycle: Option<CycleStatus>,
    pub next_cycle_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Instances whose last delivery failed, with the reason.
    pub failing_notifiers: std::collections::BTreeMap<String, String>,
    /// Deliveries waiting in the outbox for a retry.
    #[serde(default)]
    pub pending_deliveries: u64,
}

/// One cycle, as the status file records it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CycleStatus {
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub took_ms: u64,
    pub pages: usize,
    pub markets: usize,
    pub fired: usize,
    pub delivered: usize,
    pub failed: usize,
    pub retrying: usize,
    /// Why the scan failed, when it did.
    pub error: Option<String>,
}

/// A new set of conditions, notifier instances, or both, from a reload.
pub struct Reloaded {
    pub conditions: Option<Vec<Condition>>,
    pub notifiers: Option<Vec<NamedNotifier>>,
}

/// Asked before each cycle: `None` when nothing changed, the new set when
/// something did, or why the new set cannot be used (the old one stays).
pub type Reload = Box<dyn FnMut() -> Option<Result<Reloaded, String>> + Send>;

/// The monitor: conditions, a market source, notifiers and a state store.
pub struct Monitor {
    source: Box<dyn MarketSource>,
    conditions: Vec<Condition>,
    /// What evaluation needs of each condition, in the same order.
    prepared: Vec<Prepared>,
    dispatcher: Dispatcher,
    state: Arc<StateStore>,
    /// Whose markets these are in the state database (the environment).
    scope: String,
    /// The last quoted state of each watched market.
    previous: HashMap<String, Market, FastHash>,
    /// Write every quoted market at the next commit, not only those that
    /// changed: the last commit failed, or the database is new.
    rewrite_quotes: bool,
    /// What is known of each condition, by id: the database's copy, kept
    /// here so that a database that cannot be written (a full disk) does
    /// not make conditions fire again every cycle.
    known: HashMap<String, StoredCondition, FastHash>,
    /// Conditions whose state must be written at the next commit even if
    /// unchanged this cycle (rearmed, or not saved last time).
    unsaved: HashSet<String>,
    /// Conditions already warned about (unsupported or expired), by id.
    warned: HashSet<String>,
    /// Conditions warned about because a complete scan found none of their
    /// markets, until one is listed again.
    unlisted: HashSet<String>,
    /// State keys and market tickers forgotten (see
    /// [`Monitor::forget_gone`]) but not yet deleted from the database.
    forget_keys: Vec<String>,
    forget_tickers: Vec<String>,
    /// The set of conditions changed (or was just loaded): look for the
    /// state of conditions no longer in it after the next complete scan.
    sweep: bool,
    /// Where to write the status after each cycle, if anywhere.
    status_file: Option<std::path::PathBuf>,
    /// Asked before each cycle for new conditions or notifiers.
    reload: Option<Reload>,
    /// Cuts the pause between cycles short (a reload request).
    wake: Option<Arc<tokio::sync::Notify>>,
    /// When fired alerts older than [`HISTORY_KEPT`] were last cleared.
    last_forget: Option<tokio::time::Instant>,
    /// Alerts fired while the database could not be written, with their
    /// targets and how their one attempt went: written to the outbox by the
    /// next commit that succeeds.
    backlog: Vec<(FiredAlert, Vec<String>)>,
    backlog_outcomes: Vec<(String, String, crate::state::AttemptOutcome)>,
}

/// Completes when `wake` is notified; never when there is none.
async fn woken(wake: Option<Arc<tokio::sync::Notify>>) {
    match wake {
        Some(wake) => wake.notified().await,
        None => std::future::pending().await,
    }
}

/// Completes at `at`, or never.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The hasher of the monitor's maps keyed by ticker or condition id, which
/// every check looks up: foldhash, several times faster than the standard
/// SipHash on such short keys, and still seeded per process.
type FastHash = foldhash::fast::RandomState;

/// What evaluating a condition needs of it that stays the same from cycle
/// to cycle, worked out once when the conditions are set rather than for
/// every check.
struct Prepared {
    fingerprint: String,
    /// When it expires; `None` also when the stored time cannot be read (it
    /// is then never taken as expired, as [`Condition::is_expired`] does).
    expires: Option<chrono::DateTime<Utc>>,
    /// The known state under its id is this condition's, with this
    /// fingerprint: set once seen so, which spares comparing fingerprints at
    /// every check. Only a market condition whose id no other condition
    /// shares keeps one state under one key and can set it.
    confirmed: bool,
    confirmable: bool,
}

impl Prepared {
    fn of(conditions: &[Condition]) -> Vec<Prepared> {
        let mut ids: HashMap<&str, usize> = HashMap::new();
        for condition in conditions {
            *ids.entry(condition.id.as_str()).or_default() += 1;
        }
        conditions
            .iter()
            .map(|c| Prepared {
                fingerprint: c.fingerprint(),
                expires: c.expiry().ok().flatten(),
                confirmed: false,
                confirmable: c.scope.is_market() && ids[c.id.as_str()] == 1,
            })
            .collect()
    }
}

/// Kalshi's tickers are upper case; a file written by another tool may hold
/// one as typed, which would otherwise never match.
fn normalised(conditions: Vec<Condition>) -> Vec<Condition> {
    conditions
        .into_iter()
        .map(|mut c| {
            c.ticker = c.ticker.trim().to_ascii_uppercase();
            c
        })
        .collect()
}

type Shutdown<'a> = Pin<&'a mut (dyn Future<Output = ()> + Send + 'a)>;

impl Monitor {
    /// A monitor whose state lives in memory, for this run only. Call
    /// [`Monitor::use_state`] to keep it in a database instead.
    pub fn new(
        source: Box<dyn MarketSource>,
        conditions: Vec<Condition>,
        notifiers: Vec<NamedNotifier>,
    ) -> Monitor {
        let conditions = normalised(conditions);
        Monitor {
            source,
            prepared: Prepared::of(&conditions),
            conditions,
            dispatcher: Dispatcher::new(notifiers, DeliveryRetry::default()),
            state: Arc::new(StateStore::in_memory()),
            scope: "default".into(),
            previous: HashMap::default(),
            rewrite_quotes: false,
            known: HashMap::default(),
            unsaved: HashSet::new(),
            warned: HashSet::new(),
            unlisted: HashSet::new(),
            forget_keys: Vec::new(),
            forget_tickers: Vec::new(),
            sweep: true,
            status_file: None,
            reload: None,
            wake: None,
            last_forget: None,
            backlog: Vec::new(),
            backlog_outcomes: Vec::new(),
        }
    }

    /// Keeps the monitor's state and outbox in `state`, continuing from
    /// what it holds: conditions that fired and still hold do not fire
    /// again, the markets' last quotes count as the previous check, and
    /// deliveries left pending are made (those a run cut short, at once).
    /// Call it only while holding the data dir's monitor lock. `scope` names the exchange (prod,
    /// demo) whose quotes these are.
    pub fn use_state(
        &mut self,
        state: StateStore,
        scope: &str,
    ) -> Result<(), crate::state::StateError> {
        self.known = state.conditions()?.into_iter().collect();
        for prepared in &mut self.prepared {
            prepared.confirmed = false;
        }
        self.previous = state.markets(scope)?.into_iter().collect();
        self.sweep = true;
        // A monitor that died mid-delivery left its deliveries leased.
        let released = state.release_leases()?;
        if released > 0 {
            tracing::info!(
                deliveries = released,
                "deliveries cut short by the last run are due again"
            );
        }
        self.state = Arc::new(state);
        self.scope = scope.to_string();
        Ok(())
    }

    /// The state store in use.
    pub fn state(&self) -> &StateStore {
        &self.state
    }

    /// Asks `reload` before every cycle whether the conditions or the
    /// notifiers changed, so that edits apply from the next cycle on.
    pub fn reload_with(&mut self, reload: Reload) {
        self.reload = Some(reload);
    }

    /// Lets `wake` cut the pause between cycles short: the next cycle (and
    /// its reload) starts at once.
    pub fn wake_on(&mut self, wake: Arc<tokio::sync::Notify>) {
        self.wake = Some(wake);
    }

    fn apply_reload(&mut self) {
        let Some(reload) = self.reload.as_mut() else {
            return;
        };
        match reload() {
            None => {}
            Some(Ok(reloaded)) => {
                if let Some(notifiers) = reloaded.notifiers {
                    let names: Vec<_> = notifiers.iter().map(|n| n.name.clone()).collect();
                    tracing::info!(notifiers = %names.join(","), "notifiers reloaded");
                    self.dispatcher.set_instances(notifiers);
                }
                if let Some(conditions) = reloaded.conditions {
                    let conditions = normalised(conditions);
                    tracing::info!(conditions = conditions.len(), "conditions reloaded");
                    self.prepared = Prepared::of(&conditions);
                    self.conditions = conditions;
                    self.sweep = true;
                }
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "not reloaded; the last good set stays in use");
            }
        }
    }

    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// Rewrites `path` with a [`MonitorStatus`] after every cycle of a run.
    pub fn write_status_to(&mut self, path: std::path::PathBuf) {
        self.status_file = Some(path);
    }

    /// Replaces the rules for spacing out retries.
    pub fn set_delivery_retry(&mut self, retry: DeliveryRetry) {
        self.dispatcher.set_retry(retry);
    }

    /// Goes on delivering what is pending in the outbox, as each falls
    /// due, for at most `limit`. A run does this itself when it ends on its
    /// own; a program that calls [`Monitor::run_cycle`] directly calls it
    /// before exiting. What is still pending then stays in the outbox.
    pub async fn drain(&mut self, limit: Duration) {
        let never = std::pin::pin!(std::future::pending::<()>());
        self.drain_until(limit, never).await;
    }

    async fn drain_until(&mut self, limit: Duration, mut shutdown: Shutdown<'_>) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let next = self.next_retry();
            if next.is_none() && !self.dispatcher.passes_running() {
                break;
            }
            let at = next.unwrap_or(deadline).min(deadline);
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            let running = self.dispatcher.passes_running();
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                _ = tokio::time::sleep_until(at) => {
                    if next.is_some_and(|n| n <= tokio::time::Instant::now()) {
                        self.dispatcher.start_pass(&self.state);
                    }
                }
                _ = self.dispatcher.wait_passes(Duration::MAX), if running => {}
            }
        }
        self.dispatcher.abort_passes();
        self.log_left_pending();
    }

    fn log_left_pending(&self) {
        if let Ok(pending) = self.state.pending() {
            let left: u64 = pending.values().map(|(n, _)| n).sum();
            if left > 0 {
                tracing::warn!(
                    deliveries = left,
                    database = %self.state.label(),
                    "deliveries still pending at stop; the next run makes them"
                );
            }
        }
    }

    /// What the live conditions watch: markets, events and series. Expired
    /// conditions and types this tool does not evaluate cost no request.
    pub fn watched(&self) -> Watchlist {
        let now = Utc::now();
        let mut watched = Watchlist::default();
        let live = self.conditions.iter().filter(|c| {
            !matches!(c.condition_type, ConditionType::Unsupported(_)) && !c.is_expired(now)
        });
        for condition in live {
            let set = match condition.scope {
                Scope::Market => &mut watched.tickers,
                Scope::Event => &mut watched.events,
                Scope::Series => &mut watched.series,
            };
            set.insert(condition.ticker.clone());
        }
        watched
    }

    /// Runs one cycle: scan, evaluate, commit, deliver.
    pub async fn run_cycle(&mut self) -> Result<CycleReport, SourceError> {
        self.before_cycle();
        let scan = self.source.scan(&self.watched()).await?;
        let never = std::pin::pin!(std::future::pending::<()>());
        let (cycle, _) = self.evaluate_and_dispatch(scan, never).await;
        Ok(cycle)
    }

    /// Runs cycles until `shutdown` completes, the cycle limit is reached,
    /// or a replay runs out. A stop signal is obeyed at once: a scan or a
    /// delivery pass under way is abandoned (what the cycle decided is
    /// already committed; cut-short deliveries stay in the outbox).
    pub async fn run(
        &mut self,
        options: &RunOptions,
        shutdown: impl Future<Output = ()> + Send,
    ) -> RunReport {
        let mut shutdown = std::pin::pin!(shutdown);
        let report = self.run_cycles(options, shutdown.as_mut()).await;
        if report.stop == StopReason::Signal {
            self.dispatcher.abort_passes();
            self.log_left_pending();
        } else {
            self.drain_until(DRAIN_LIMIT, shutdown).await;
        }
        report
    }

    /// Work done before each cycle: reloads, rearm requests, housekeeping.
    fn before_cycle(&mut self) {
        self.apply_reload();
        self.replace_lost_database();
        match self.state.take_rearm_requests() {
            Ok(ids) => {
                for id in ids {
                    // An event or series condition has a state per market.
                    let mut rearmed = false;
                    for (key, known) in &mut self.known {
                        if is_state_key_of(key, &id) {
                            known.state = ConditionState::default();
                            self.unsaved.insert(key.clone());
                            rearmed = true;
                        }
                    }
                    if rearmed {
                        tracing::info!(id = %id, "condition rearmed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read rearm requests; will try again"),
        }
        let names = self.dispatcher.instance_names();
        let cutoff = Utc::now()
            - chrono::Duration::from_std(crate::dispatch::MAX_DELIVERY_AGE).unwrap_or_default();
        match self.state.give_up_orphans(&names, cutoff) {
            Ok(orphans) => {
                for (alert, instance) in orphans {
                    tracing::error!(notifier = %instance, alerts = %alert, failure = "gave up",
                        reason = "no such notifier instance any more", "alert not delivered");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot clear deliveries to removed notifiers"),
        }
        let due = self
            .last_forget
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(24 * 3600));
        if due {
            self.last_forget = Some(tokio::time::Instant::now());
            let cutoff = Utc::now() - chrono::Duration::from_std(HISTORY_KEPT).unwrap_or_default();
            match self.state.forget_before(cutoff) {
                Ok(0) => {}
                Ok(n) => tracing::info!(alerts = n, "old alerts cleared from the history"),
                Err(e) => tracing::warn!(error = %e, "cannot clear old alerts from the history"),
            }
        }
    }

    async fn run_cycles(&mut self, options: &RunOptions, mut shutdown: Shutdown<'_>) -> RunReport {
        let interval = options.interval.min(MAX_INTERVAL);
        let mut status = MonitorStatus {
            pid: std::process::id(),
            started_at: chrono::Utc::now(),
            source: self.source.describe(),
            interval_secs: interval.as_secs_f64(),
            cycles: 0,
            alerts_fired: 0,
            last_cycle: None,
            next_cycle_at: None,
            failing_notifiers: Default::default(),
            pending_deliveries: 0,
        };
        let mut report = RunReport {
            cycles: 0,
            failed_cycles: 0,
            alerts_fired: 0,
            stop: StopReason::CycleLimit,
            last_error: None,
        };

        loop {
            let started = tokio::time::Instant::now();
            let started_at = chrono::Utc::now();
            self.before_cycle();
            let watched = self.watched();
            let scanned = tokio::select! {
                biased;
                _ = &mut shutdown => {
                    report.stop = StopReason::Signal;
                    return report;
                }
                scanned = self.source.scan(&watched) => scanned,
            };
            let scan_took = started.elapsed();
            report.cycles += 1;

            let mut last = CycleStatus {
                started_at,
                took_ms: 0,
                pages: 0,
                markets: 0,
                fired: 0,
                delivered: 0,
                failed: 0,
                retrying: 0,
                error: None,
            };
            let mut exhausted = false;
            let mut stopped = false;
            match scanned {
                Ok(scan) => {
                    let (cycle, cut_short) =
                        self.evaluate_and_dispatch(scan, shutdown.as_mut()).await;
                    stopped = cut_short;
                    report.alerts_fired += cycle.fired.len() as u64;
                    report.last_error = None;
                    log_cycle(report.cycles, &cycle, scan_took, started.elapsed());
                    exhausted = cycle.exhausted;
                    last.pages = cycle.pages;
                    last.markets = cycle.markets_read;
                    last.fired = cycle.fired.len();
                    last.delivered = cycle.dispatch.delivered;
                    last.failed = cycle.dispatch.failed;
                    last.retrying = cycle.dispatch.retrying;
                }
                Err(e) => {
                    report.failed_cycles += 1;
                    tracing::error!(cycle = report.cycles, error = %e, "market scan failed; the next cycle will try again");
                    report.last_error = Some(e.to_string());
                    last.error = Some(e.to_string());
                }
            }
            last.took_ms = started.elapsed().as_millis() as u64;
            let more =
                !stopped && !exhausted && options.max_cycles.is_none_or(|max| report.cycles < max);
            status.cycles = report.cycles;
            status.alerts_fired = report.alerts_fired;
            status.last_cycle = Some(last);
            status.next_cycle_at = more.then(|| {
                let wait = interval.saturating_sub(started.elapsed());
                chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()
            });
            self.fill_delivery_status(&mut status);
            self.save_status(&status);
            if stopped {
                report.stop = StopReason::Signal;
                return report;
            }
            if exhausted {
                report.stop = StopReason::ReplayFinished;
                return report;
            }
            if options.max_cycles.is_some_and(|max| report.cycles >= max) {
                report.stop = StopReason::CycleLimit;
                return report;
            }
            let next = started + interval;
            if tokio::time::Instant::now() > next && !interval.is_zero() {
                tracing::warn!(
                    interval_s = interval.as_secs_f64(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "cycle took longer than the interval; the next one starts now"
                );
            }
            // Between cycles, retries fall due; each is made on time.
            loop {
                let retry_at = self.next_retry();
                tokio::select! {
                    biased;
                    _ = &mut shutdown => {
                        report.stop = StopReason::Signal;
                        return report;
                    }
                    _ = tokio::time::sleep_until(next) => break,
                    _ = woken(self.wake.clone()) => {
                        tracing::info!("woken early: the next cycle starts now");
                        break;
                    }
                    _ = until(retry_at) => {
                        // A pass of its own: a receiver that hangs holds
                        // up nothing here.
                        self.dispatcher.start_pass(&self.state);
                        self.fill_delivery_status(&mut status);
                        self.save_status(&status);
                    }
                }
            }
        }
    }

    /// When the next delivery pass should start, on the monitor's clock.
    fn next_retry(&self) -> Option<tokio::time::Instant> {
        let next = self.dispatcher.next_pass(&self.state)?;
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        Some(tokio::time::Instant::now() + wait)
    }

    fn fill_delivery_status(&self, status: &mut MonitorStatus) {
        let mut failing = self.dispatcher.failing();
        status.pending_deliveries = 0;
        if let Ok(pending) = self.state.pending() {
            for (instance, (count, error)) in pending {
                status.pending_deliveries += count;
                if let Some(error) = error {
                    failing.insert(instance, format!("{count} pending; last error: {error}"));
                }
            }
        }
        status.failing_notifiers = failing;
    }

    /// Rewrites the status file; a failure is logged, never fatal.
    fn save_status(&self, status: &MonitorStatus) {
        let Some(path) = &self.status_file else {
            return;
        };
        let text = serde_json::to_vec_pretty(status).expect("a status serialises");
        if let Err(e) = crate::store::write_atomically(path, &text) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the status file");
        }
    }

    /// Evaluates the scan, commits, and delivers. The second value says
    /// whether `shutdown` cut the delivery pass short.
    async fn evaluate_and_dispatch(
        &mut self,
        scan: Scan,
        shutdown: Shutdown<'_>,
    ) -> (CycleReport, bool) {
        let now = Utc::now();
        let evaluating = std::time::Instant::now();
        let (fired, changes) = self.evaluate(&scan, now);
        let evaluation = evaluating.elapsed();
        self.forget_gone(&scan, now);
        let routes = self.routes(&fired);
        let routed: Vec<(FiredAlert, Vec<String>)> = fired
            .iter()
            .map(|alert| {
                let route = routes.get(alert.condition_id.as_str()).copied().flatten();
                (
                    alert.clone(),
                    self.dispatcher.targets(route.map(Vec::as_slice)),
                )
            })
            .collect();
        // A quote is written when it changed; the database holds the same
        // as `previous` for the others.
        let quoted: Vec<&Market> = scan
            .markets
            .values()
            .filter(|m| {
                m.midpoint().is_some()
                    && (self.rewrite_quotes
                        || !self
                            .previous
                            .get(&m.ticker)
                            .is_some_and(|before| before.same_stored_fields(m)))
            })
            .collect();
        let commit = CycleCommit {
            scope: &self.scope,
            conditions: changes
                .iter()
                .map(|id| {
                    let known = &self.known[id.as_str()];
                    (id.as_str(), known.fingerprint.clone(), known.state.clone())
                })
                .collect(),
            markets: quoted,
            fired: self
                .backlog
                .iter()
                .chain(&routed)
                .map(|(a, t)| (a, t.clone()))
                .collect(),
            forget_conditions: self.forget_keys.iter().map(String::as_str).collect(),
            forget_markets: self.forget_tickers.iter().map(String::as_str).collect(),
        };
        let committed = self.state.commit_cycle(&commit);
        drop(commit);
        let mut cut_short = false;
        let dispatch = match committed {
            Ok(()) => {
                self.unsaved.clear();
                self.forget_keys.clear();
                self.forget_tickers.clear();
                self.rewrite_quotes = false;
                self.write_backlog_outcomes();
                let mut shutdown = shutdown;
                self.dispatcher.start_pass(&self.state);
                tokio::select! {
                    biased;
                    _ = &mut shutdown => {
                        cut_short = true;
                        DispatchReport::default()
                    }
                    report = self.dispatcher.wait_passes(PASS_WAIT) => report,
                }
            }
            Err(e) => {
                // Keep what this cycle learnt for the next commit.
                self.unsaved.extend(changes);
                self.rewrite_quotes = true;
                tracing::error!(error = %e, fired = fired.len(),
                    "cannot save this cycle's state; its alerts are delivered once now, and \
                     written to the outbox (and retried if need be) once the database can be written");
                let (report, outcomes) = self.dispatcher.deliver_unrecorded(&routed).await;
                self.backlog.extend(routed);
                self.backlog_outcomes.extend(outcomes);
                report
            }
        };
        for (ticker, market) in scan.markets {
            if market.midpoint().is_some() {
                self.previous.insert(ticker, market);
            }
        }
        if scan.truncated {
            tracing::warn!(
                pages = scan.pages,
                markets = scan.markets_read,
                "scan truncated by --max-pages after {} page(s) and {} market(s); \
                 watched markets beyond them were not checked",
                scan.pages,
                scan.markets_read
            );
        }
        let report = CycleReport {
            pages: scan.pages,
            markets_read: scan.markets_read,
            truncated: scan.truncated,
            exhausted: scan.exhausted,
            fired,
            evaluation,
            dispatch,
        };
        (report, cut_short)
    }

    /// After a commit that wrote the backlog's alerts: records how their
    /// attempts went, so that a delivered one is not made again and a
    /// failed one is retried from the outbox.
    fn write_backlog_outcomes(&mut self) {
        if self.backlog.is_empty() {
            return;
        }
        tracing::info!(
            alerts = self.backlog.len(),
            "alerts fired while the state database could not be written are now in it"
        );
        self.backlog.clear();
        for (alert, instance, outcome) in std::mem::take(&mut self.backlog_outcomes) {
            if let Err(e) = self.state.record(&alert, &instance, &outcome) {
                tracing::warn!(error = %e, alert = %alert, notifier = %instance, "cannot record a delivery's outcome");
            }
        }
    }

    /// If the database's file is gone (its data dir was deleted under the
    /// monitor: SQLite would go on writing to the unlinked file), starts a
    /// new one there and writes all that is known into it at the next
    /// commit.
    fn replace_lost_database(&mut self) {
        if !self.state.file_is_gone() {
            return;
        }
        match self.state.reopen() {
            Ok(fresh) => {
                tracing::warn!(database = %fresh.label(),
                    "the state database was removed while in use; started a new one \
                     (deliveries pending in the old one are lost)");
                self.state = Arc::new(fresh);
                self.unsaved.extend(self.known.keys().cloned());
                self.rewrite_quotes = true;
            }
            Err(e) => tracing::error!(error = %e, "cannot start a new state database"),
        }
    }

    /// After a scan that read every listing to its end (so that a watched
    /// market it did not find is not open): forgets the state an event or
    /// series condition kept for markets that are gone, and the last quotes
    /// of markets nothing keeps a state for any more; after the set of
    /// conditions changed, also the state of conditions no longer in it.
    /// The database forgets them at the next commit. Without this, a
    /// series whose markets open and close would grow the state without
    /// end. A market that comes back starts afresh, as a new one would.
    ///
    /// Nothing is forgotten of a market the scan could not tell is gone:
    /// one listed with a record that could not be read, one of an event or
    /// series whose listing was refused or cut short, or one of a condition
    /// that is expired (its scope is no longer asked for) or not evaluated.
    fn forget_gone(&mut self, scan: &Scan, now: chrono::DateTime<Utc>) {
        let scoped = self.conditions.iter().any(|c| !c.scope.is_market());
        if !scan.complete || !(scoped || self.sweep) {
            return;
        }
        // Each condition by id, with its expiry as worked out once.
        let live: HashMap<&str, (&Condition, &Prepared)> = self
            .conditions
            .iter()
            .zip(&self.prepared)
            .map(|(c, p)| (c.id.as_str(), (c, p)))
            .collect();
        let scope_of = |id: &str| live.get(id).copied().filter(|(c, _)| !c.scope.is_market());
        let listed =
            |ticker: &str| scan.markets.contains_key(ticker) || scan.unreadable.contains(ticker);
        let sweep = self.sweep;
        let gone = |key: &str| {
            if live.get(key).is_some_and(|(c, _)| c.scope.is_market()) {
                return false;
            }
            let scoped = key
                .rsplit_once('@')
                .and_then(|(id, ticker)| Some((scope_of(id)?, ticker)));
            match scoped {
                Some(((condition, prepared), ticker)) => {
                    let asked = prepared.expires.is_none_or(|at| at > now)
                        && !matches!(condition.condition_type, ConditionType::Unsupported(_))
                        && !scan_could_not_tell(scan, condition);
                    asked && !listed(ticker)
                }
                None => sweep && !live.contains_key(key),
            }
        };
        let keys: Vec<String> = self.known.keys().filter(|k| gone(k)).cloned().collect();
        for key in &keys {
            self.known.remove(key);
            self.unsaved.remove(key);
        }
        // A quote is kept while a condition names its market or keeps a
        // state for it.
        let mut in_use: HashSet<&str> = self
            .conditions
            .iter()
            .filter(|c| c.scope.is_market())
            .map(|c| c.ticker.as_str())
            .collect();
        in_use.extend(self.known.keys().filter_map(|key| {
            key.rsplit_once('@')
                .filter(|(id, _)| scope_of(id).is_some())
                .map(|(_, ticker)| ticker)
        }));
        let tickers: Vec<String> = self
            .previous
            .keys()
            .filter(|t| !listed(t) && !in_use.contains(t.as_str()))
            .cloned()
            .collect();
        for ticker in &tickers {
            self.previous.remove(ticker);
        }
        if !keys.is_empty() || !tickers.is_empty() {
            tracing::info!(
                states = keys.len(),
                quotes = tickers.len(),
                "forgot what was kept of markets no longer open or no longer watched"
            );
        }
        self.forget_keys.extend(keys);
        self.forget_tickers.extend(tickers);
        self.sweep = false;
    }

    /// The instances each fired condition's alerts go to, by condition id;
    /// `None` means the defaults.
    fn routes(&self, fired: &[FiredAlert]) -> HashMap<&str, Option<&Vec<String>>> {
        if fired.is_empty() {
            return HashMap::new();
        }
        self.conditions
            .iter()
            .map(|c| (c.id.as_str(), c.notify.as_ref()))
            .collect()
    }

    /// Checks every live condition against the scan and what is known of
    /// it: a market condition against its market, an event or series
    /// condition against each of the scope's markets on its own. Returns the
    /// alerts that fire and the state keys (see [`state_key`]) whose state
    /// must be written (changed now, or not saved before).
    ///
    /// Markets are found by ticker, and scopes through an index built once
    /// per cycle, so the cost grows with markets plus conditions, not with
    /// their product.
    fn evaluate(
        &mut self,
        scan: &Scan,
        now: chrono::DateTime<Utc>,
    ) -> (Vec<FiredAlert>, Vec<String>) {
        let mut fired = Vec::new();
        let mut changed: Vec<String> = Vec::new();
        let scopes = ScopeIndex::of(scan, &self.conditions);

        for (condition, prepared) in self.conditions.iter().zip(&mut self.prepared) {
            if let ConditionType::Unsupported(kind) = &condition.condition_type {
                if self.warned.insert(condition.id.clone()) {
                    tracing::warn!(id = %condition.id, kind = %kind, "condition type is not evaluated by this tool; skipped");
                }
                continue;
            }
            if prepared.expires.is_some_and(|at| at <= now) {
                if self.warned.insert(condition.id.clone()) {
                    tracing::info!(id = %condition.id, ticker = %condition.ticker, "condition expired; no longer checked");
                }
                continue;
            }
            let single = match condition.scope {
                Scope::Market => scan.markets.get(&condition.ticker),
                Scope::Event | Scope::Series => None,
            };
            let markets = match condition.scope {
                Scope::Market => single.as_slice(),
                Scope::Event | Scope::Series => scopes.members(condition),
            };
            if markets.is_empty() {
                // Said once while it lasts, and only when the scan read every
                // listing: then the market is not open, or not asked for.
                if scan.complete
                    && !scan_could_not_tell(scan, condition)
                    && self.unlisted.insert(condition.id.clone())
                {
                    tracing::warn!(id = %crate::display::for_log(&condition.id, LOGGED_ID),
                        ticker = %condition.ticker,
                        scope = %condition.scope,
                        "no open market found for this condition (closed, settled, mistyped, \
                         or a combo --skip-combos leaves out); it is checked again every cycle");
                } else {
                    tracing::debug!(ticker = %condition.ticker, scope = %condition.scope,
                        "watched market not listed this cycle");
                }
            } else if !self.unlisted.is_empty() && self.unlisted.remove(&condition.id) {
                tracing::info!(id = %condition.id, ticker = %condition.ticker,
                    "the condition's market is listed again");
            }
            let needs_previous = condition.condition_type.needs_previous();
            for &market in markets {
                // A market condition's state is kept under its id, which
                // needs no new string; a scope's under one per market.
                let scoped_key =
                    (!condition.scope.is_market()).then(|| state_key(condition, &market.ticker));
                let key = scoped_key.as_deref().unwrap_or(&condition.id);
                let known = self.known.get_mut(key);
                let same = known.as_ref().is_some_and(|known| {
                    prepared.confirmed || known.fingerprint == prepared.fingerprint
                });
                let unsaved = !self.unsaved.is_empty() && self.unsaved.contains(key);
                let check = Check {
                    condition,
                    market,
                    previous: needs_previous
                        .then(|| self.previous.get(&market.ticker))
                        .flatten(),
                    known: known.as_deref().filter(|_| same),
                    unsaved,
                };
                let (alert, after, write) = check.run(now);
                fired.extend(alert);
                if write {
                    changed.push(key.to_string());
                }
                prepared.confirmed = prepared.confirmable;
                match known {
                    Some(known) if same => {
                        known.state = after;
                    }
                    Some(known) => {
                        *known = StoredCondition {
                            fingerprint: prepared.fingerprint.clone(),
                            state: after,
                        };
                    }
                    None => {
                        self.known.insert(
                            key.to_string(),
                            StoredCondition {
                                fingerprint: prepared.fingerprint.clone(),
                                state: after,
                            },
                        );
                    }
                }
            }
        }
        // Rearmed or unsaved conditions not checked this cycle are written too.
        let written: HashSet<&String> = changed.iter().collect();
        let mut left: Vec<String> = self
            .unsaved
            .iter()
            .filter(|key| self.known.contains_key(*key) && !written.contains(key))
            .cloned()
            .collect();
        changed.append(&mut left);
        (fired, changed)
    }
}

/// One condition checked against one market.
struct Check<'a> {
    condition: &'a Condition,
    market: &'a Market,
    /// The same market at the previous check, when it was quoted.
    previous: Option<&'a Market>,
    /// What the database knows of this condition on this market, if it
    /// knows it with the condition's current fingerprint.
    known: Option<&'a StoredCondition>,
    /// Its state must be written even if unchanged.
    unsaved: bool,
}

impl Check<'_> {
    /// The alert, if it fires; the state after the check; and whether that
    /// state must be written.
    fn run(&self, now: chrono::DateTime<Utc>) -> (Option<FiredAlert>, ConditionState, bool) {
        let (condition, market, previous) = (self.condition, self.market, self.previous);
        let fresh = self.known.is_none();
        let before = match self.known {
            Some(known) => known.state.clone(),
            // Never seen, or edited since: start afresh.
            None => ConditionState::default(),
        };
        let (evaluation, measured) = condition.check(market, previous);
        let met = matches!(evaluation, Evaluation::Fired { .. });
        let policy = condition.repeat_policy();
        // A crossing or a move is an event between two checks, not a
        // lasting state: each one is new, even right after another.
        let basis = if condition.condition_type.needs_previous() {
            ConditionState {
                is_true: false,
                ..before.clone()
            }
        } else {
            before.clone()
        };
        let fires = policy.fires(met, &basis, now);
        let value = match evaluation {
            Evaluation::Fired { value } => Some(value),
            Evaluation::NotMet => measured,
            Evaluation::NoData => None,
        };
        let alert = match (fires, &evaluation) {
            (true, Evaluation::Fired { value }) => {
                Some(FiredAlert::new(condition, market, *value, now))
            }
            _ => None,
        };
        let after = before.after_check(policy, value, met, fires, now);
        let write = fresh || after != before || self.unsaved;
        (alert, after, write)
    }
}

/// Whether `scan`, complete as it may be, could not tell which markets of
/// `condition` are open: its market's record could not be read, or its
/// event's or series' listing was refused or cut short.
fn scan_could_not_tell(scan: &Scan, condition: &Condition) -> bool {
    match condition.scope {
        Scope::Market => scan.unreadable.contains(&condition.ticker),
        Scope::Event => scan.unread_events.contains(&condition.ticker),
        Scope::Series => scan.unread_series.contains(&condition.ticker),
    }
}

/// How much of a condition id a log line quotes: ids written by this tool
/// and the Python one are UUIDs, a hand-edited one may be anything.
const LOGGED_ID: usize = 100;

/// The markets of one scan by event and by series, for the scopes the
/// conditions watch only.
struct ScopeIndex<'a> {
    events: HashMap<&'a str, Vec<&'a Market>>,
    series: HashMap<&'a str, Vec<&'a Market>>,
}

impl<'a> ScopeIndex<'a> {
    fn of(scan: &'a Scan, conditions: &'a [Condition]) -> ScopeIndex<'a> {
        let mut index = ScopeIndex {
            events: HashMap::new(),
            series: HashMap::new(),
        };
        for condition in conditions {
            match condition.scope {
                Scope::Market => {}
                Scope::Event => {
                    index.events.entry(&condition.ticker).or_default();
                }
                Scope::Series => {
                    index.series.entry(&condition.ticker).or_default();
                }
            }
        }
        if index.events.is_empty() && index.series.is_empty() {
            return index;
        }
        for market in scan.markets.values() {
            if let Some(members) = index.events.get_mut(market.event_ticker.as_str()) {
                members.push(market);
            }
            if let Some(members) = index.series.get_mut(market.series_ticker()) {
                members.push(market);
            }
        }
        // Alerts of one scope come in ticker order, whatever the scan's.
        for members in index.events.values_mut().chain(index.series.values_mut()) {
            members.sort_by(|a, b| a.ticker.cmp(&b.ticker));
        }
        index
    }

    /// The markets of the event or series `condition` watches that this
    /// cycle listed; none for a market condition.
    fn members(&self, condition: &Condition) -> &[&'a Market] {
        let members = match condition.scope {
            Scope::Market => None,
            Scope::Event => self.events.get(condition.ticker.as_str()),
            Scope::Series => self.series.get(condition.ticker.as_str()),
        };
        members.map_or(&[], Vec::as_slice)
    }
}

fn log_cycle(number: u64, cycle: &CycleReport, scan: Duration, took: Duration) {
    tracing::info!(
        cycle = number,
        pages = cycle.pages,
        markets = cycle.markets_read,
        fired = cycle.fired.len(),
        delivered = cycle.dispatch.delivered,
        failed = cycle.dispatch.failed,
        retrying = cycle.dispatch.retrying,
        scan_ms = scan.as_millis() as u64,
        evaluate_us = cycle.evaluation.as_micros() as u64,
        took_ms = took.as_millis() as u64,
        "cycle complete"
    );
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use serde_json::json;

    use super::*;
    use crate::notifier::{Notifier, NotifyError};

    /// Serves scripted frames of market records, one per scan.
    struct Frames(Vec<Vec<serde_json::Value>>, usize);

    #[async_trait]
    impl MarketSource for Frames {
        async fn scan(&mut self, watched: &Watchlist) -> Result<Scan, SourceError> {
            let index = self.1.min(self.0.len() - 1);
            self.1 += 1;
            let mut scan = Scan::default();
            scan.absorb_page(&self.0[index], watched);
            Ok(scan)
        }

        fn describe(&self) -> String {
            "frames".into()
        }
    }

    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<FiredAlert>>>);

    #[async_trait]
    impl Notifier for Collect {
        async fn notify(&self, alert: &FiredAlert) -> Result<(), NotifyError> {
            self.0.lock().unwrap().push(alert.clone());
            Ok(())
        }
    }

    fn condition(id: &str, kind: &str, threshold: f64) -> Condition {
        serde_json::from_value(json!({
            "id": id, "condition_type": kind, "ticker": "T", "threshold": threshold,
            "label": "", "created_at": ""
        }))
        .unwrap()
    }

    fn market(bid: i64, ask: i64) -> serde_json::Value {
        json!({"ticker": "T", "status": "active", "yes_bid": bid, "yes_ask": ask, "volume": 5})
    }

    #[tokio::test]
    async fn crossing_fires_on_the_second_cycle_and_only_once() {
        let sink = Collect::default();
        let frames = Frames(
            vec![
                vec![market(40, 44)],
                vec![market(50, 54)],
                vec![market(50, 54)],
            ],
            0,
        );
        let mut monitor = Monitor::new(
            Box::new(frames),
            vec![
                condition("c1", "price_crosses", 0.5),
                condition("c2", "edge_detected", 0.1),
            ],
            vec![NamedNotifier::new("collect", Box::new(sink.clone()))],
        );

        assert!(monitor.run_cycle().await.unwrap().fired.is_empty());
        let second = monitor.run_cycle().await.unwrap();
        let kinds: Vec<_> = second
            .fired
            .iter()
            .map(|a| a.condition_id.as_str())
            .collect();
        assert_eq!(kinds, ["c1", "c2"]);
        assert!(monitor.run_cycle().await.unwrap().fired.is_empty());
        assert_eq!(sink.0.lock().unwrap().len(), 2);
    }

    fn scoped(id: &str, scope: Scope, ticker: &str, threshold: f64) -> Condition {
        let mut c = condition(id, "price_above", threshold);
        c.scope = scope;
        c.ticker = ticker.into();
        c
    }

    fn listed(ticker: &str, event: &str, bid: i64, ask: i64) -> serde_json::Value {
        json!({"ticker": ticker, "event_ticker": event, "status": "active",
               "yes_bid": bid, "yes_ask": ask})
    }

    fn tickers(alerts: &[FiredAlert]) -> Vec<&str> {
        alerts.iter().map(|a| a.ticker.as_str()).collect()
    }

    #[tokio::test]
    async fn an_event_condition_fires_per_market_of_the_event_with_a_state_each() {
        let frame = |a: i64, b: i64| {
            vec![
                listed("EV-26-B", "EV-26", b, b + 2),
                listed("EV-26-A", "EV-26", a, a + 2),
                listed("OTHER-26-A", "OTHER-26", 95, 97),
            ]
        };
        let frames = Frames(vec![frame(91, 50), frame(91, 50), frame(91, 92)], 0);
        let c = scoped("ev", Scope::Event, "EV-26", 0.9);
        let mut monitor = Monitor::new(Box::new(frames), vec![c], vec![]);
        assert_eq!(
            monitor.watched().events.iter().collect::<Vec<_>>(),
            ["EV-26"]
        );

        let first = monitor.run_cycle().await.unwrap();
        assert_eq!(tickers(&first.fired), ["EV-26-A"]);
        assert_eq!(first.fired[0].condition_id, "ev");
        assert_eq!(first.fired[0].market_data.ticker, "EV-26-A");
        // A still holds: no second alert. B now rises: its own first alert.
        assert!(monitor.run_cycle().await.unwrap().fired.is_empty());
        assert_eq!(
            tickers(&monitor.run_cycle().await.unwrap().fired),
            ["EV-26-B"]
        );
    }

    #[tokio::test]
    async fn a_series_condition_covers_every_event_of_the_series() {
        let frame = vec![
            listed("SER-1-A", "SER-1", 91, 93),
            listed("SER-2-A", "SER-2", 95, 97),
            listed("SERX-1-A", "SERX-1", 95, 97),
            listed("SER-2-B", "SER-2", 10, 12),
        ];
        let c = scoped("s", Scope::Series, "SER", 0.9);
        let mut monitor = Monitor::new(Box::new(Frames(vec![frame], 0)), vec![c], vec![]);
        let cycle = monitor.run_cycle().await.unwrap();
        assert_eq!(tickers(&cycle.fired), ["SER-1-A", "SER-2-A"]);
    }

    #[tokio::test]
    async fn rearming_a_scoped_condition_rearms_it_on_every_market() {
        let frame = vec![listed("EV-A", "EV", 91, 93), listed("EV-B", "EV", 95, 97)];
        let frames = Frames(vec![frame], 0);
        let mut c = scoped("ev", Scope::Event, "EV", 0.9);
        c.repeat = Some(crate::condition::RepeatPolicy::Once);
        let mut monitor = Monitor::new(Box::new(frames), vec![c], vec![]);
        assert_eq!(monitor.run_cycle().await.unwrap().fired.len(), 2);
        assert!(monitor.run_cycle().await.unwrap().fired.is_empty());
        assert!(monitor.state().rearm("ev").unwrap());
        assert_eq!(monitor.run_cycle().await.unwrap().fired.len(), 2);
    }

    /// A source whose every scan `script` makes, given the cycle's number.
    struct Scripted<F>(F, usize);

    #[async_trait]
    impl<F: FnMut(usize, &Watchlist) -> Scan + Send> MarketSource for Scripted<F> {
        async fn scan(&mut self, watched: &Watchlist) -> Result<Scan, SourceError> {
            self.1 += 1;
            Ok((self.0)(self.1, watched))
        }

        fn describe(&self) -> String {
            "scripted".into()
        }
    }

    /// A reload that hands the monitor `conditions` once.
    fn reload_once(conditions: Vec<Condition>) -> Reload {
        let mut conditions = Some(conditions);
        Box::new(move || {
            conditions.take().map(|conditions| {
                Ok(Reloaded {
                    conditions: Some(conditions),
                    notifiers: None,
                })
            })
        })
    }

    fn sorted<V>(map: HashMap<String, V>) -> Vec<String> {
        let mut keys: Vec<String> = map.into_keys().collect();
        keys.sort();
        keys
    }

    /// A daemon watching a series whose markets come and go must not keep
    /// every market it ever saw: what it kept of a gone market is dropped
    /// after a scan that read every listing, in memory and in the
    /// database, and so is the state of a condition taken out of the set.
    #[tokio::test]
    async fn what_was_kept_of_gone_markets_and_removed_conditions_is_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        // A series whose markets open and close: each scan lists two new
        // markets of the series `ROT` (the last two gone) beside the market
        // `T`, and says whether it read every listing to its end as told.
        let complete = Arc::new(Mutex::new(true));
        let told = Arc::clone(&complete);
        let source = Scripted(
            move |cycle: usize, watched: &Watchlist| {
                let event = format!("ROT-{cycle}");
                let frame = vec![
                    listed(&format!("{event}-A"), &event, 40, 42),
                    listed(&format!("{event}-B"), &event, 40, 42),
                    market(40, 42),
                ];
                let mut scan = Scan::default();
                scan.absorb_page(&frame, watched);
                scan.complete = *told.lock().unwrap();
                scan
            },
            0,
        );
        let crossing = |id: &str| {
            let mut c = scoped(id, Scope::Series, "ROT", 0.5);
            c.condition_type = ConditionType::PriceCrosses;
            c
        };
        let conditions = vec![crossing("rot"), condition("t", "price_below", 0.1)];
        let mut monitor = Monitor::new(Box::new(source), conditions, vec![]);
        monitor
            .use_state(StateStore::open(dir.path()).unwrap(), "prod")
            .unwrap();
        for _ in 0..30 {
            monitor.run_cycle().await.unwrap();
        }
        let stored = || StateStore::open(dir.path()).unwrap();
        assert_eq!(
            sorted(stored().conditions().unwrap()),
            ["rot@ROT-30-A", "rot@ROT-30-B", "t"]
        );
        assert_eq!(
            sorted(stored().markets("prod").unwrap()),
            ["ROT-30-A", "ROT-30-B", "T"]
        );
        assert_eq!(monitor.known.len(), 3);
        assert_eq!(monitor.previous.len(), 3);

        // A scan cut short proves nothing gone: all is kept.
        *complete.lock().unwrap() = false;
        monitor.run_cycle().await.unwrap();
        assert_eq!(stored().conditions().unwrap().len(), 5);
        assert_eq!(stored().markets("prod").unwrap().len(), 5);

        // The series condition taken out: its states go, and the quotes of
        // the series' markets, which nothing watches any more.
        *complete.lock().unwrap() = true;
        monitor.reload_with(reload_once(vec![condition("t", "price_below", 0.1)]));
        monitor.run_cycle().await.unwrap();
        assert_eq!(sorted(stored().conditions().unwrap()), ["t"]);
        assert_eq!(sorted(stored().markets("prod").unwrap()), ["T"]);
    }

    /// What the scan could not tell is gone is kept: a market listed with a
    /// record that could not be read, the markets of a scope whose listing
    /// was refused, and those of an expired condition (no longer asked for)
    /// — so that a `once` condition does not fire again when they are read
    /// again.
    #[tokio::test]
    async fn nothing_is_forgotten_of_a_market_the_scan_could_not_tell_is_gone() {
        let script = |cycle: usize, watched: &Watchlist| {
            let mut scan = Scan::default();
            let mut frame = vec![listed("EVB-1", "EVB", 95, 97)];
            if watched.events.contains("EVA") {
                frame.push(listed("EVA-1", "EVA", 95, 97));
            }
            match cycle {
                // EVA-1's record cannot be read.
                2 => frame.retain(|m| m["ticker"] != "EVA-1"),
                // EVA's listing is refused.
                3 => {
                    frame.retain(|m| m["ticker"] != "EVA-1");
                    scan.unread_events.insert("EVA".into());
                }
                _ => {}
            }
            scan.absorb_page(&frame, watched);
            if cycle == 2 {
                scan.unreadable.insert("EVA-1".into());
            }
            scan.complete = true;
            scan
        };
        let once = |id: &str, event: &str| {
            let mut c = scoped(id, Scope::Event, event, 0.9);
            c.repeat = Some(crate::condition::RepeatPolicy::Once);
            c
        };
        let mut expiring = once("b", "EVB");
        let mut monitor = Monitor::new(
            Box::new(Scripted(script, 0)),
            vec![once("a", "EVA"), expiring.clone()],
            vec![],
        );
        assert_eq!(monitor.run_cycle().await.unwrap().fired.len(), 2);
        for _ in 2..=3 {
            assert!(monitor.run_cycle().await.unwrap().fired.is_empty());
            assert_eq!(monitor.known.len(), 2, "{:?}", monitor.known.keys());
        }
        // EVB's condition expires: its scope is no longer asked for, and
        // its state stays.
        expiring.expires_at = Some("2000-01-01T00:00:00Z".into());
        monitor.reload_with(reload_once(vec![once("a", "EVA"), expiring.clone()]));
        assert!(monitor.run_cycle().await.unwrap().fired.is_empty());
        assert_eq!(monitor.known.len(), 2, "{:?}", monitor.known.keys());
    }

    fn frames(prices: &[(i64, i64)]) -> Frames {
        Frames(prices.iter().map(|&(b, a)| vec![market(b, a)]).collect(), 0)
    }

    fn with_repeat(mut c: Condition, policy: &str) -> Condition {
        c.repeat = Some(crate::condition::RepeatPolicy::parse(policy).unwrap());
        c
    }

    /// Fires per cycle of `prices` for one condition.
    async fn firings(c: Condition, prices: &[(i64, i64)]) -> Vec<usize> {
        let mut monitor = Monitor::new(Box::new(frames(prices)), vec![c], vec![]);
        let mut out = Vec::new();
        for _ in prices {
            out.push(monitor.run_cycle().await.unwrap().fired.len());
        }
        out
    }

    #[tokio::test]
    async fn rearm_fires_again_only_after_the_condition_was_seen_false() {
        let prices = [(60, 62), (60, 62), (30, 32), (60, 62), (60, 62)];
        let c = condition("c", "price_above", 0.5);
        assert_eq!(firings(c.clone(), &prices).await, [1, 0, 0, 1, 0]);
        assert_eq!(
            firings(with_repeat(c, "rearm"), &prices).await,
            [1, 0, 0, 1, 0]
        );
    }

    #[tokio::test]
    async fn once_fires_once_until_rearmed() {
        let prices = [(60, 62), (30, 32), (60, 62)];
        let c = with_repeat(condition("c", "price_above", 0.5), "once");
        assert_eq!(firings(c.clone(), &prices).await, [1, 0, 0]);

        let mut monitor = Monitor::new(Box::new(frames(&[(60, 62)])), vec![c], vec![]);
        assert_eq!(monitor.run_cycle().await.unwrap().fired.len(), 1);
        assert_eq!(monitor.run_cycle().await.unwrap().fired.len(), 0);
        assert!(monitor.state().rearm("c").unwrap());
        assert_eq!(monitor.run_cycle().await.unwrap().fired.len(), 1);
        assert_eq!(monitor.run_cycle().await.unwrap().fired.len(), 0);
    }

    #[tokio::test]
    async fn cooldown_fires_while_true_at_most_once_per_span() {
        let c = with_repeat(condition("c", "price_above", 0.5), "cooldown:1s");
        let mut monitor = Monitor::new(Box::new(frames(&[(60, 62)])), vec![c], vec![]);
        assert_eq!(monitor.run_cycle().await.unwrap().fired.len(), 1);
        assert_eq!(monitor.run_cycle().await.unwrap().fired.len(), 0);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(monitor.run_cycle().await.unwrap().fired.len(), 1);
    }

    #[tokio::test]
    async fn a_restart_continues_from_the_stored_state() {
        let dir = tempfile::tempdir().unwrap();
        let conditions = vec![
            condition("above", "price_above", 0.5),
            condition("cross", "price_crosses", 0.5),
        ];
        let run = |prices: Vec<(i64, i64)>| {
            let conditions = conditions.clone();
            let dir = dir.path().to_path_buf();
            async move {
                let sink = Collect::default();
                let mut monitor = Monitor::new(
                    Box::new(frames(&prices)),
                    conditions,
                    vec![NamedNotifier::new("collect", Box::new(sink.clone()))],
                );
                monitor
                    .use_state(StateStore::open(&dir).unwrap(), "prod")
                    .unwrap();
                for _ in &prices {
                    monitor.run_cycle().await.unwrap();
                }
                let mut fired: Vec<String> = sink
                    .0
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|a| a.condition_id.clone())
                    .collect();
                fired.sort();
                fired
            }
        };
        // Above 0.5: fires; the crossing needs a previous check.
        assert_eq!(run(vec![(60, 62)]).await, ["above"]);
        // Still above after a restart: nothing fires again.
        assert_eq!(run(vec![(60, 62)]).await, Vec::<String>::new());
        // Below while "down", then a restart sees the crossing from the
        // stored quote at once.
        assert_eq!(run(vec![(30, 32)]).await, ["cross"]);
        assert_eq!(run(vec![(60, 62)]).await, ["above", "cross"]);
    }

    #[tokio::test]
    async fn an_edited_threshold_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let run = |threshold: f64| {
            let dir = dir.path().to_path_buf();
            async move {
                let mut monitor = Monitor::new(
                    Box::new(frames(&[(60, 62)])),
                    vec![condition("c", "price_above", threshold)],
                    vec![],
                );
                monitor
                    .use_state(StateStore::open(&dir).unwrap(), "prod")
                    .unwrap();
                monitor.run_cycle().await.unwrap().fired.len()
            }
        };
        assert_eq!(run(0.5).await, 1);
        assert_eq!(run(0.5).await, 0);
        assert_eq!(run(0.55).await, 1);
    }

    /// Fails every delivery, retryably.
    struct Down;

    #[async_trait]
    impl Notifier for Down {
        async fn notify(&self, _: &FiredAlert) -> Result<(), NotifyError> {
            Err(NotifyError::retryable("receiver down"))
        }
    }

    #[tokio::test]
    async fn an_undelivered_alert_is_delivered_by_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let c = vec![condition("c", "price_above", 0.5)];
        let mut first = Monitor::new(
            Box::new(frames(&[(60, 62)])),
            c.clone(),
            vec![NamedNotifier::new("hook", Box::new(Down))],
        );
        first
            .use_state(StateStore::open(dir.path()).unwrap(), "prod")
            .unwrap();
        let cycle = first.run_cycle().await.unwrap();
        assert_eq!((cycle.fired.len(), cycle.dispatch.retrying), (1, 1));
        drop(first);

        let sink = Collect::default();
        let mut second = Monitor::new(
            Box::new(frames(&[(60, 62)])),
            c,
            vec![NamedNotifier::new("hook", Box::new(sink.clone()))],
        );
        second
            .use_state(StateStore::open(dir.path()).unwrap(), "prod")
            .unwrap();
        second.set_delivery_retry(DeliveryRetry {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
            max_retry_after: Duration::from_millis(1),
        });
        second.drain(Duration::from_secs(5)).await;
        let cycle = second.run_cycle().await.unwrap();
        assert!(cycle.fired.is_empty(), "fired again after a restart");
        let delivered = sink.0.lock().unwrap();
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].id, cycle_id(dir.path()));
    }

    /// Fails its first delivery, retryably, then delivers.
    #[derive(Clone, Default)]
    struct FailsOnce(Arc<Mutex<Vec<FiredAlert>>>, Arc<Mutex<u32>>);

    #[async_trait]
    impl Notifier for FailsOnce {
        async fn notify(&self, alert: &FiredAlert) -> Result<(), NotifyError> {
            let mut calls = self.1.lock().unwrap();
            *calls += 1;
            if *calls == 1 {
                return Err(NotifyError::retryable("not yet"));
            }
            self.0.lock().unwrap().push(alert.clone());
            Ok(())
        }
    }

    #[tokio::test]
    async fn alerts_fired_while_the_database_refuses_writes_reach_it_later() {
        let sink = FailsOnce::default();
        let mut monitor = Monitor::new(
            Box::new(frames(&[(60, 62)])),
            vec![condition("c", "price_above", 0.5)],
            vec![NamedNotifier::new("hook", Box::new(sink.clone()))],
        );
        monitor.set_delivery_retry(DeliveryRetry {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
            max_retry_after: Duration::from_millis(1),
        });
        monitor.state().refuse_writes(true);
        let cycle = monitor.run_cycle().await.unwrap();
        assert_eq!((cycle.fired.len(), cycle.dispatch.retrying), (1, 1));
        // Still true, and known in memory: not fired again while the disk is full.
        assert!(monitor.run_cycle().await.unwrap().fired.is_empty());

        monitor.state().refuse_writes(false);
        assert!(monitor.run_cycle().await.unwrap().fired.is_empty());
        let history = monitor.state().history(None).unwrap();
        assert_eq!(history.len(), 1, "the alert is in the history");
        monitor.drain(Duration::from_secs(5)).await;
        let history = monitor.state().history(None).unwrap();
        let delivery = &history[0].deliveries[0];
        assert_eq!(
            (delivery.status, delivery.attempts),
            (crate::state::DeliveryStatus::Delivered, 2)
        );
        assert_eq!(sink.0.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn quotes_are_written_when_they_change_and_after_a_failed_commit() {
        let mut monitor = Monitor::new(
            Box::new(frames(&[(60, 62), (60, 62), (60, 62), (70, 72)])),
            vec![condition("c", "price_above", 0.5)],
            Vec::new(),
        );
        let stored = |monitor: &Monitor| {
            let markets = monitor.state().markets("default").unwrap();
            markets.values().map(|m| m.yes_bid).collect::<Vec<_>>()
        };
        // The first quote cannot be written; the same quote next cycle,
        // unchanged since the last check, is written all the same.
        monitor.state().refuse_writes(true);
        monitor.run_cycle().await.unwrap();
        monitor.state().refuse_writes(false);
        assert!(stored(&monitor).is_empty());
        monitor.run_cycle().await.unwrap();
        assert_eq!(stored(&monitor), [Some("0.60".parse().unwrap())]);
        monitor.run_cycle().await.unwrap();
        monitor.run_cycle().await.unwrap();
        assert_eq!(stored(&monitor), [Some("0.70".parse().unwrap())]);
    }

    /// Never answers.
    struct Hangs;

    #[async_trait]
    impl Notifier for Hangs {
        async fn notify(&self, _: &FiredAlert) -> Result<(), NotifyError> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_receiver_that_hangs_holds_up_neither_the_cycle_nor_the_others() {
        let sink = Collect::default();
        let mut hangs = NamedNotifier::new("hangs", Box::new(Hangs));
        hangs.timeout = Duration::from_secs(600);
        let mut monitor = Monitor::new(
            Box::new(frames(&[(40, 44), (60, 62), (40, 44), (60, 62)])),
            vec![condition("c", "price_crosses", 0.5)],
            vec![hangs, NamedNotifier::new("sink", Box::new(sink.clone()))],
        );
        let started = std::time::Instant::now();
        for _ in 0..4 {
            monitor.run_cycle().await.unwrap();
        }
        // Three crossings, each checked and delivered to the other instance,
        // in a few times the cycle's wait for its pass, not 600 s.
        assert_eq!(sink.0.lock().unwrap().len(), 3);
        assert!(started.elapsed() < PASS_WAIT * 4 + Duration::from_secs(5));
        monitor.dispatcher.abort_passes();
    }

    fn cycle_id(dir: &std::path::Path) -> String {
        let history = StateStore::open(dir).unwrap().history(None).unwrap();
        assert_eq!(history.len(), 1);
        history[0].alert.id.clone()
    }

    #[tokio::test]
    async fn run_stops_at_the_cycle_limit_and_on_signal() {
        let frames = Frames(vec![vec![market(40, 44)]], 0);
        let mut monitor = Monitor::new(
            Box::new(frames),
            vec![condition("c", "price_above", 0.1)],
            vec![],
        );
        let options = RunOptions {
            interval: Duration::ZERO,
            max_cycles: Some(3),
        };
        let report = monitor.run(&options, std::future::pending()).await;
        assert_eq!(
            (report.cycles, report.alerts_fired, report.stop),
            (3, 1, StopReason::CycleLimit)
        );

        let forever = RunOptions {
            interval: Duration::from_secs(3600),
            max_cycles: None,
        };
        let report = monitor
            .run(&forever, tokio::time::sleep(Duration::from_millis(50)))
            .await;
        assert_eq!(report.stop, StopReason::Signal);
    }

    /// Takes `took` per scan and records when each scan started.
    struct Slow {
        took: Duration,
        starts: Arc<Mutex<Vec<tokio::time::Instant>>>,
    }

    #[async_trait]
    impl MarketSource for Slow {
        async fn scan(&mut self, _: &Watchlist) -> Result<Scan, SourceError> {
            self.starts
                .lock()
                .unwrap()
                .push(tokio::time::Instant::now());
            tokio::time::sleep(self.took).await;
            Ok(Scan::default())
        }

        fn describe(&self) -> String {
            "slow".into()
        }
    }

    fn gaps(starts: &[tokio::time::Instant]) -> Vec<Duration> {
        starts.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// The gaps between the scan starts of a run of `cycles` cycles, each
    /// taking `took`, every `interval`.
    async fn start_gaps(took: u64, interval: u64, cycles: u64) -> Vec<Duration> {
        let starts = Arc::new(Mutex::new(Vec::new()));
        let source = Slow {
            took: Duration::from_millis(took),
            starts: starts.clone(),
        };
        let conditions = vec![condition("c", "price_above", 0.1)];
        let mut monitor = Monitor::new(Box::new(source), conditions, vec![]);
        let options = RunOptions {
            interval: Duration::from_millis(interval),
            max_cycles: Some(cycles),
        };
        monitor.run(&options, std::future::pending()).await;
        let starts = starts.lock().unwrap();
        gaps(&starts)
    }

    #[tokio::test(start_paused = true)]
    async fn cycles_keep_a_fixed_schedule_from_start_to_start() {
        assert_eq!(
            start_gaps(30, 100, 4).await,
            [Duration::from_millis(100); 3]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_overrun_is_followed_by_one_cycle_not_a_burst() {
        // Each cycle starts when the previous one ends: no catching up.
        assert_eq!(
            start_gaps(250, 100, 3).await,
            [Duration::from_millis(250); 2]
        );
    }
}
