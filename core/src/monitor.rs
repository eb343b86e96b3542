//! The monitor loop: scan, evaluate, dispatch, sleep, until told to stop.
//!
//! One cycle scans the market source for the watched tickers, checks every
//! live condition, and hands each fired alert to every notifier. A condition
//! fires at most once per run. A failed scan is logged and the next cycle
//! runs; only a stop signal, a cycle limit or the end of a replay ends a run.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::alert::FiredAlert;
use crate::condition::{Condition, ConditionType, Evaluation};
use crate::dispatch::{DeliveryRetry, DispatchReport, Dispatcher, NamedNotifier};
use crate::market::Market;
use crate::source::{MarketSource, Scan, SourceError};

/// How long a stopping monitor waits for deliveries still being retried.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// What one cycle did.
#[derive(Debug, Clone)]
pub struct CycleReport {
    pub pages: usize,
    pub markets_read: usize,
    pub truncated: bool,
    pub exhausted: bool,
    /// Alerts fired this cycle, in condition order.
    pub fired: Vec<FiredAlert>,
    /// How the first attempts at delivering them went.
    pub dispatch: DispatchReport,
}

/// How a run is paced and when it ends on its own.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// From the start of one cycle to the start of the next: cycles keep a
    /// fixed schedule however long each takes. A cycle that overruns it is
    /// followed at once by one cycle, never by a burst of missed ones.
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
    /// Instances whose last delivery failed for good, with the reason.
    pub failing_notifiers: std::collections::BTreeMap<String, String>,
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

/// The monitor: conditions, a market source and notifiers.
pub struct Monitor {
    source: Box<dyn MarketSource>,
    conditions: Vec<Condition>,
    dispatcher: Dispatcher,
    /// The last quoted state of each watched market.
    previous: HashMap<String, Market>,
    /// Conditions that fired this run, by id.
    fired: HashSet<String>,
    /// Conditions already warned about (unsupported or expired), by id.
    warned: HashSet<String>,
    /// Where to write the status after each cycle, if anywhere.
    status_file: Option<std::path::PathBuf>,
    /// Asked before each cycle for a new set of conditions.
    reload: Option<ConditionReload>,
    /// Cuts the pause between cycles short (a reload request).
    wake: Option<Arc<tokio::sync::Notify>>,
}

/// Returns `None` when the conditions are unchanged, the new set when they
/// changed, or why the new set cannot be used (the old one stays).
pub type ConditionReload = Box<dyn FnMut() -> Option<Result<Vec<Condition>, String>> + Send>;

/// Completes when `wake` is notified; never when there is none.
async fn woken(wake: Option<Arc<tokio::sync::Notify>>) {
    match wake {
        Some(wake) => wake.notified().await,
        None => std::future::pending().await,
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

impl Monitor {
    pub fn new(
        source: Box<dyn MarketSource>,
        conditions: Vec<Condition>,
        notifiers: Vec<NamedNotifier>,
    ) -> Monitor {
        let conditions = normalised(conditions);
        Monitor {
            source,
            conditions,
            dispatcher: Dispatcher::new(notifiers, DeliveryRetry::default()),
            previous: HashMap::new(),
            fired: HashSet::new(),
            warned: HashSet::new(),
            status_file: None,
            reload: None,
            wake: None,
        }
    }

    /// Asks `reload` before every cycle whether the conditions changed, so
    /// edits apply from the next cycle on. What fired in this run and the
    /// previous quotes are kept for conditions that stay.
    pub fn reload_conditions_with(&mut self, reload: ConditionReload) {
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
            Some(Ok(conditions)) => {
                let conditions = normalised(conditions);
                self.fired
                    .retain(|id| conditions.iter().any(|c| &c.id == id));
                tracing::info!(conditions = conditions.len(), "conditions reloaded");
                self.conditions = conditions;
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "conditions not reloaded; the last good set stays in use");
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

    /// Replaces the rules for retrying failed deliveries.
    pub fn set_delivery_retry(&mut self, retry: DeliveryRetry) {
        self.dispatcher.set_retry(retry);
    }

    /// Waits (at most `limit`) for deliveries still being retried. A run
    /// does this itself when it stops; a program that calls
    /// [`Monitor::run_cycle`] directly calls it before exiting.
    pub async fn drain(&mut self, limit: Duration) {
        self.dispatcher.drain(limit).await;
    }

    /// The tickers any condition watches.
    pub fn watched(&self) -> HashSet<String> {
        self.conditions.iter().map(|c| c.ticker.clone()).collect()
    }

    /// Runs one cycle: scan, evaluate, dispatch.
    pub async fn run_cycle(&mut self) -> Result<CycleReport, SourceError> {
        let scan = self.source.scan(&self.watched()).await?;
        Ok(self.evaluate_and_dispatch(scan).await)
    }

    /// Runs cycles until `shutdown` completes, the cycle limit is reached,
    /// or a replay runs out. A stop signal never interrupts a dispatch: the
    /// alerts of the cycle under way are delivered first.
    pub async fn run(
        &mut self,
        options: &RunOptions,
        shutdown: impl Future<Output = ()>,
    ) -> RunReport {
        let report = self.run_cycles(options, shutdown).await;
        self.dispatcher.drain(DRAIN_LIMIT).await;
        report
    }

    async fn run_cycles(
        &mut self,
        options: &RunOptions,
        shutdown: impl Future<Output = ()>,
    ) -> RunReport {
        tokio::pin!(shutdown);
        let mut status = MonitorStatus {
            pid: std::process::id(),
            started_at: chrono::Utc::now(),
            source: self.source.describe(),
            interval_secs: options.interval.as_secs_f64(),
            cycles: 0,
            alerts_fired: 0,
            last_cycle: None,
            next_cycle_at: None,
            failing_notifiers: Default::default(),
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
            self.apply_reload();
            let watched = self.watched();
            let scanned = tokio::select! {
                biased;
                _ = &mut shutdown => {
                    report.stop = StopReason::Signal;
                    return report;
                }
                scanned = self.source.scan(&watched) => scanned,
            };
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
            match scanned {
                Ok(scan) => {
                    let cycle = self.evaluate_and_dispatch(scan).await;
                    report.alerts_fired += cycle.fired.len() as u64;
                    report.last_error = None;
                    log_cycle(report.cycles, &cycle, started.elapsed());
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
            let more = !exhausted && options.max_cycles.is_none_or(|max| report.cycles < max);
            status.cycles = report.cycles;
            status.alerts_fired = report.alerts_fired;
            status.last_cycle = Some(last);
            status.next_cycle_at = more.then(|| {
                let wait = options.interval.saturating_sub(started.elapsed());
                chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()
            });
            status.failing_notifiers = self.dispatcher.failing();
            self.save_status(&status);
            if exhausted {
                report.stop = StopReason::ReplayFinished;
                return report;
            }

            if options.max_cycles.is_some_and(|max| report.cycles >= max) {
                report.stop = StopReason::CycleLimit;
                return report;
            }
            let next = started + options.interval;
            if tokio::time::Instant::now() > next && !options.interval.is_zero() {
                tracing::warn!(
                    interval_s = options.interval.as_secs_f64(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "cycle took longer than the interval; the next one starts now"
                );
            }
            tokio::select! {
                biased;
                _ = &mut shutdown => {
                    report.stop = StopReason::Signal;
                    return report;
                }
                _ = tokio::time::sleep_until(next) => {}
                _ = woken(self.wake.clone()) => {
                    tracing::info!("woken early: the next cycle starts now");
                }
            }
        }
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

    async fn evaluate_and_dispatch(&mut self, scan: Scan) -> CycleReport {
        let fired = self.evaluate(&scan);
        let routed: Vec<(FiredAlert, Option<Vec<String>>)> = fired
            .iter()
            .map(|alert| (alert.clone(), self.route_of(&alert.condition_id)))
            .collect();
        let dispatch = self.dispatcher.dispatch(&routed).await;
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
        CycleReport {
            pages: scan.pages,
            markets_read: scan.markets_read,
            truncated: scan.truncated,
            exhausted: scan.exhausted,
            fired,
            dispatch,
        }
    }

    /// The instances a condition's alerts go to; `None` means the defaults.
    fn route_of(&self, condition_id: &str) -> Option<Vec<String>> {
        self.conditions
            .iter()
            .find(|c| c.id == condition_id)
            .and_then(|c| c.notify.clone())
    }

    fn evaluate(&mut self, scan: &Scan) -> Vec<FiredAlert> {
        let now = Utc::now();
        let mut fired = Vec::new();

        for condition in &self.conditions {
            if self.fired.contains(&condition.id) {
                continue;
            }
            if let ConditionType::Unsupported(kind) = &condition.condition_type {
                if self.warned.insert(condition.id.clone()) {
                    tracing::warn!(id = %condition.id, kind = %kind, "condition type is not evaluated by this tool; skipped");
                }
                continue;
            }
            if condition.is_expired(now) {
                if self.warned.insert(condition.id.clone()) {
                    tracing::info!(id = %condition.id, ticker = %condition.ticker, "condition expired; no longer checked");
                }
                continue;
            }
            let Some(market) = scan.markets.get(&condition.ticker) else {
                tracing::debug!(ticker = %condition.ticker, "watched market not listed this cycle");
                continue;
            };
            let previous = self.previous.get(&condition.ticker);
            if let Evaluation::Fired { value } = condition.evaluate(market, previous) {
                fired.push(FiredAlert::new(condition, market, value, now));
            }
        }

        for alert in &fired {
            self.fired.insert(alert.condition_id.clone());
        }
        fired
    }
}

fn log_cycle(number: u64, cycle: &CycleReport, took: Duration) {
    tracing::info!(
        cycle = number,
        pages = cycle.pages,
        markets = cycle.markets_read,
        fired = cycle.fired.len(),
        delivered = cycle.dispatch.delivered,
        failed = cycle.dispatch.failed,
        retrying = cycle.dispatch.retrying,
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
        async fn scan(&mut self, watched: &HashSet<String>) -> Result<Scan, SourceError> {
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
                vec![market(40, 44)],
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
        async fn scan(&mut self, _: &HashSet<String>) -> Result<Scan, SourceError> {
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
