//! Dispatch: fired alerts to notifier instances, through the outbox.
//!
//! Every fired alert is in the state database before any notifier sees it,
//! with one pending delivery per target instance (see [`crate::state`]).
//! A delivery pass takes the deliveries that are due and attempts them all
//! at once, each within its instance's timeout, so a slow or failing
//! instance never holds up the others; each outcome is written back as it
//! comes in. A retryable failure is tried again later, with backoff (or
//! after the receiver's `Retry-After`), across cycles and restarts, until
//! it succeeds or the alert is older than the instance's
//! `max_delivery_age`; a permanent failure is final at once. Each final
//! outcome is logged once.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::alert::FiredAlert;
use crate::notifier::{FailureKind, Notifier, NotifyError, DELIVERY_TIMEOUT};
use crate::secret::mask;
use crate::state::{AttemptOutcome, DueDelivery, StateStore};

/// How long a delivery is retried by default before it is given up.
pub const MAX_DELIVERY_AGE: Duration = Duration::from_secs(24 * 3600);

/// A notifier instance: a built notifier with its name and delivery rules.
pub struct NamedNotifier {
    pub name: String,
    pub notifier: Box<dyn Notifier>,
    /// Receives the alerts of conditions that name no instance.
    pub default: bool,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Resolved secret values, masked in everything logged about it.
    pub secrets: Vec<String>,
    /// A delivery still failing when its alert is this old is given up.
    pub max_age: Duration,
}

impl NamedNotifier {
    /// A default instance with the default timeout and no secrets.
    pub fn new(name: impl Into<String>, notifier: Box<dyn Notifier>) -> NamedNotifier {
        NamedNotifier {
            name: name.into(),
            notifier,
            default: true,
            timeout: DELIVERY_TIMEOUT,
            secrets: Vec::new(),
            max_age: MAX_DELIVERY_AGE,
        }
    }

    /// Makes one attempt at delivering `alerts`, within the timeout.
    pub async fn attempt(&self, alerts: &[FiredAlert]) -> Result<(), NotifyError> {
        let call = async {
            match alerts {
                [one] => self.notifier.notify(one).await,
                many => self.notifier.notify_batch(many).await,
            }
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(NotifyError {
                // A receiver's reply may carry terminal escapes or newlines.
                message: crate::display::printable(&mask(&e.message, &self.secrets)).into_owned(),
                ..e
            }),
            Err(_) => Err(NotifyError::retryable(format!(
                "timed out after {}s",
                self.timeout.as_secs_f64()
            ))),
        }
    }
}

/// How retryable failures are spaced out.
#[derive(Debug, Clone)]
pub struct DeliveryRetry {
    /// The wait after the first failure; it doubles after each.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A receiver's `Retry-After` longer than this is cut to it.
    pub max_retry_after: Duration,
}

impl Default for DeliveryRetry {
    fn default() -> Self {
        DeliveryRetry {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

impl DeliveryRetry {
    /// The wait after the `failures`-th failure: doubling, capped, with
    /// jitter so that many deliveries failing together spread out.
    fn backoff(&self, failures: u32) -> Duration {
        let step = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(31)))
            .min(self.max_delay);
        let half = step / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }
}

/// How one delivery pass went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchReport {
    pub delivered: usize,
    /// Deliveries that failed for good (permanently, or given up).
    pub failed: usize,
    /// Deliveries that failed in a way that may pass; they stay in the
    /// outbox and are tried again later.
    pub retrying: usize,
}

/// The most deliveries one pass takes on; the rest wait for the next.
const PASS_LIMIT: usize = 500;

/// Attempts in flight at once per instance, so that a backlog after an
/// outage does not open hundreds of connections to one receiver.
const PER_INSTANCE: usize = 4;

/// Hands alerts to instances and records how it went.
///
/// A delivery pass runs as a task of its own: the monitor starts one after
/// each commit and whenever a retry falls due, and waits for it only
/// briefly, so a receiver that hangs delays neither the next scan nor the
/// other instances. Each delivery a pass takes is leased first (its next
/// attempt put after the pass's time limit, in the database), so that no
/// other pass takes it meanwhile, and a monitor that dies mid-attempt makes
/// it again once the lease runs out.
pub struct Dispatcher {
    instances: Vec<Arc<NamedNotifier>>,
    retry: DeliveryRetry,
    failing: Failing,
    /// Outcomes that could not be written (the database refused): kept
    /// here, kept out of later passes, and written as soon as it can be.
    unrecorded: Unrecorded,
    /// After a pass that could take nothing (the database refused, or only
    /// deliveries waiting to be recorded were due), none before this.
    quiet_until: Option<chrono::DateTime<Utc>>,
    passes: JoinSet<DispatchReport>,
}

/// Instances whose last delivery failed, with the reason; an instance
/// leaves it when a delivery through it succeeds.
type Failing = Arc<std::sync::Mutex<std::collections::BTreeMap<String, String>>>;

type Unrecorded =
    Arc<std::sync::Mutex<std::collections::HashMap<(String, String), AttemptOutcome>>>;

/// How long the monitor leaves the outbox alone after a pass that could
/// take nothing: no tight loop on a database that refuses writes.
const QUIET: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// One attempt: deliveries to one instance made by one call.
struct Job {
    instance: Arc<NamedNotifier>,
    deliveries: Vec<DueDelivery>,
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Dispatcher {
    pub fn new(instances: Vec<NamedNotifier>, retry: DeliveryRetry) -> Dispatcher {
        Dispatcher {
            instances: instances.into_iter().map(Arc::new).collect(),
            retry,
            failing: Failing::default(),
            unrecorded: Unrecorded::default(),
            quiet_until: None,
            passes: JoinSet::new(),
        }
    }

    /// Instances whose last delivery failed, and why.
    pub fn failing(&self) -> std::collections::BTreeMap<String, String> {
        lock(&self.failing).clone()
    }

    pub fn set_retry(&mut self, retry: DeliveryRetry) {
        self.retry = retry;
    }

    /// Replaces the instances (the notifiers file changed). Deliveries
    /// pending for an instance that is gone wait for it to come back, and
    /// are given up when they grow too old.
    pub fn set_instances(&mut self, instances: Vec<NamedNotifier>) {
        self.instances = instances.into_iter().map(Arc::new).collect();
        let names = self.instance_names();
        lock(&self.failing).retain(|name, _| names.contains(name));
    }

    pub fn instance_names(&self) -> Vec<String> {
        self.instances.iter().map(|i| i.name.clone()).collect()
    }

    /// The instances an alert goes to: those its condition names, or else
    /// every default instance.
    pub fn targets(&self, route: Option<&[String]>) -> Vec<String> {
        match route {
            Some(names) => names.to_vec(),
            None => self
                .instances
                .iter()
                .filter(|i| i.default)
                .map(|i| i.name.clone())
                .collect(),
        }
    }

    /// How long a pass may hold a delivery: the longest attempt, and a
    /// margin for writing the outcome.
    fn lease(&self) -> Duration {
        let longest = self.instances.iter().map(|i| i.timeout).max();
        longest.unwrap_or(DELIVERY_TIMEOUT) + Duration::from_secs(5)
    }

    /// Writes the outcomes kept in memory, as far as the database lets.
    fn flush_unrecorded(&self, state: &StateStore) {
        let mut unrecorded = lock(&self.unrecorded);
        unrecorded
            .retain(|(alert, instance), outcome| state.record(alert, instance, outcome).is_err());
    }

    /// Starts a pass over the deliveries due now, as a task of its own.
    /// Returns how many deliveries it took.
    pub fn start_pass(&mut self, state: &Arc<StateStore>) -> usize {
        while self.passes.try_join_next().is_some() {}
        self.flush_unrecorded(state);
        let names = self.instance_names();
        let skip: Vec<(String, String)> = lock(&self.unrecorded).keys().cloned().collect();
        let now = Utc::now();
        let lease =
            now + chrono::Duration::from_std(self.lease()).unwrap_or(chrono::TimeDelta::MAX);
        let due = match state.take_due(&names, &skip, now, PASS_LIMIT, lease) {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "cannot take deliveries from the outbox; trying again in a second");
                self.quiet_until = Some(now + QUIET);
                return 0;
            }
        };
        self.quiet_until = due.is_empty().then_some(now + QUIET);
        let count = due.len();
        if count == 0 {
            return 0;
        }
        let jobs = self.jobs(due);
        let state = Arc::clone(state);
        let retry = self.retry.clone();
        let failing = Arc::clone(&self.failing);
        let unrecorded = Arc::clone(&self.unrecorded);
        self.passes.spawn(async move {
            let mut report = DispatchReport::default();
            let mut tasks = attempt_all(jobs);
            while let Some(done) = tasks.join_next().await {
                let Ok((job, result)) = done else { continue };
                let outcome = settle(&job, result, &retry, &failing);
                for delivery in &job.deliveries {
                    let key = (delivery.alert.id.clone(), job.instance.name.clone());
                    if let Err(e) = state.record(&key.0, &key.1, &outcome) {
                        tracing::error!(error = %e, notifier = %key.1, alert = %key.0,
                            "cannot record a delivery's outcome; kept until the database can be written");
                        lock(&unrecorded).insert(key, outcome.clone());
                    }
                }
                report.add(&outcome, job.deliveries.len());
            }
            report
        });
        count
    }

    /// Whether a pass is still under way.
    pub fn passes_running(&self) -> bool {
        !self.passes.is_empty()
    }

    /// Waits for the passes under way, at most `limit`, and adds up the
    /// reports of those that finished. The others go on.
    pub async fn wait_passes(&mut self, limit: Duration) -> DispatchReport {
        let mut report = DispatchReport::default();
        let _ = tokio::time::timeout(limit, async {
            while let Some(done) = self.passes.join_next().await {
                if let Ok(pass) = done {
                    report.delivered += pass.delivered;
                    report.failed += pass.failed;
                    report.retrying += pass.retrying;
                }
            }
        })
        .await;
        report
    }

    /// Abandons the passes under way: their deliveries stay leased in the
    /// outbox and are made again when the lease runs out.
    pub fn abort_passes(&mut self) {
        self.passes.abort_all();
    }

    /// When a pass should next start: the next delivery due, but not while
    /// the outbox is being left alone after a pass that could take nothing.
    pub fn next_pass(&self, state: &StateStore) -> Option<chrono::DateTime<Utc>> {
        let next = state.next_due(&self.instance_names()).ok()??;
        Some(match self.quiet_until {
            Some(quiet) => next.max(quiet),
            None => next,
        })
    }

    /// Attempts every delivery due now and waits for them all: one pass,
    /// awaited. Dropping the future abandons the attempts under way.
    pub async fn deliver_due(&mut self, state: &Arc<StateStore>) -> DispatchReport {
        self.wait_passes(Duration::MAX).await;
        self.start_pass(state);
        self.wait_passes(Duration::MAX).await
    }

    /// Delivers alerts the outbox could not take (the state database
    /// cannot be written): one attempt each, now. Returns how it went, and
    /// each delivery's outcome, for the monitor to write to the outbox once
    /// the database can be written again (so that what failed is retried
    /// then, and the history is whole).
    pub async fn deliver_unrecorded(
        &mut self,
        routed: &[(FiredAlert, Vec<String>)],
    ) -> (DispatchReport, Vec<(String, String, AttemptOutcome)>) {
        let due: Vec<DueDelivery> = routed
            .iter()
            .flat_map(|(alert, targets)| {
                targets.iter().map(|instance| DueDelivery {
                    alert: alert.clone(),
                    instance: instance.clone(),
                    attempts: 0,
                    fired_at: alert.triggered_at,
                })
            })
            .collect();
        let mut report = DispatchReport::default();
        let mut outcomes = Vec::new();
        let mut tasks = attempt_all(self.jobs(due));
        while let Some(done) = tasks.join_next().await {
            let Ok((job, result)) = done else { continue };
            let outcome = settle(&job, result, &self.retry, &self.failing);
            report.add(&outcome, job.deliveries.len());
            for delivery in &job.deliveries {
                outcomes.push((
                    delivery.alert.id.clone(),
                    job.instance.name.clone(),
                    outcome.clone(),
                ));
            }
        }
        (report, outcomes)
    }

    /// Groups due deliveries into attempts: one per delivery, or one per
    /// instance for a notifier that batches.
    fn jobs(&self, due: Vec<DueDelivery>) -> Vec<Job> {
        let mut jobs: Vec<Job> = Vec::new();
        for delivery in due {
            let Some(instance) = self.instances.iter().find(|i| i.name == delivery.instance) else {
                continue;
            };
            let batches = instance.notifier.batches();
            match jobs
                .iter_mut()
                .find(|job| batches && job.instance.name == instance.name)
            {
                Some(job) => job.deliveries.push(delivery),
                None => jobs.push(Job {
                    instance: Arc::clone(instance),
                    deliveries: vec![delivery],
                }),
            }
        }
        jobs
    }
}

impl DispatchReport {
    fn add(&mut self, outcome: &AttemptOutcome, count: usize) {
        match outcome {
            AttemptOutcome::Delivered => self.delivered += count,
            AttemptOutcome::Retry { .. } => self.retrying += count,
            AttemptOutcome::Failed(_) | AttemptOutcome::GaveUp(_) => self.failed += count,
        }
    }
}

/// Starts every attempt, at most [`PER_INSTANCE`] at once per instance.
fn attempt_all(jobs: Vec<Job>) -> JoinSet<(Job, Result<(), NotifyError>)> {
    let mut gates: std::collections::HashMap<String, Arc<Semaphore>> = Default::default();
    let mut tasks = JoinSet::new();
    for job in jobs {
        let gate = gates
            .entry(job.instance.name.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(PER_INSTANCE)))
            .clone();
        tasks.spawn(async move {
            let _turn = gate.acquire_owned().await;
            let alerts: Vec<FiredAlert> = job.deliveries.iter().map(|d| d.alert.clone()).collect();
            let result = job.instance.attempt(&alerts).await;
            (job, result)
        });
    }
    tasks
}

/// Turns an attempt's result into the deliveries' next step, logs it and
/// keeps the failing list.
fn settle(
    job: &Job,
    result: Result<(), NotifyError>,
    retry: &DeliveryRetry,
    failing: &Failing,
) -> AttemptOutcome {
    let name = &job.instance.name;
    let mut failing = lock(failing);
    let error = match result {
        Ok(()) => {
            failing.remove(name);
            log_delivered(job);
            return AttemptOutcome::Delivered;
        }
        Err(error) => error,
    };
    failing.insert(name.clone(), error.message.clone());
    let attempts = job.deliveries.iter().map(|d| d.attempts).max().unwrap_or(0) + 1;
    let oldest = job
        .deliveries
        .iter()
        .map(|d| d.fired_at)
        .min()
        .unwrap_or_else(Utc::now);
    let now = Utc::now();
    let age = now
        .signed_duration_since(oldest)
        .to_std()
        .unwrap_or_default();
    if error.kind == FailureKind::Permanent {
        tracing::error!(
            notifier = %name, alerts = %ids(job), attempts, failure = "permanent",
            reason = %error.message, "alert not delivered"
        );
        return AttemptOutcome::Failed(error.message);
    }
    if age >= job.instance.max_age {
        tracing::error!(
            notifier = %name, alerts = %ids(job), attempts, failure = "gave up",
            max_delivery_age = %humantime::format_duration(job.instance.max_age),
            reason = %error.message, "alert not delivered"
        );
        return AttemptOutcome::GaveUp(error.message);
    }
    let asked = error.retry_after.map(|d| d.min(retry.max_retry_after));
    let wait = retry.backoff(attempts).max(asked.unwrap_or_default());
    let at = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
    if attempts == 1 {
        tracing::warn!(
            notifier = %name, alerts = %ids(job), reason = %error.message,
            retry_in_ms = wait.as_millis() as u64, "delivery failed; will retry"
        );
    } else {
        tracing::debug!(
            notifier = %name, alerts = %ids(job), attempts, reason = %error.message,
            retry_in_ms = wait.as_millis() as u64, "delivery failed again; will retry"
        );
    }
    AttemptOutcome::Retry {
        error: error.message,
        at,
    }
}

fn ids(job: &Job) -> String {
    let ids: Vec<&str> = job.deliveries.iter().map(|d| d.alert.id.as_str()).collect();
    ids.join(",")
}

fn log_delivered(job: &Job) {
    let attempts = job.deliveries.iter().map(|d| d.attempts).max().unwrap_or(0) + 1;
    tracing::info!(notifier = %job.instance.name, alerts = %ids(job), attempts, "alert delivered");
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::condition::Condition;
    use crate::market::Market;
    use crate::state::{CycleCommit, DeliveryStatus};

    /// Fails its first `failures` attempts with `kind`, then succeeds.
    struct Flaky {
        failures: u32,
        kind: FailureKind,
        calls: Arc<AtomicU32>,
        batch: bool,
        seen: Arc<Mutex<Vec<usize>>>,
    }

    #[async_trait]
    impl Notifier for Flaky {
        async fn notify(&self, alert: &FiredAlert) -> Result<(), NotifyError> {
            self.notify_batch(std::slice::from_ref(alert)).await
        }

        fn batches(&self) -> bool {
            self.batch
        }

        async fn notify_batch(&self, alerts: &[FiredAlert]) -> Result<(), NotifyError> {
            self.seen.lock().unwrap().push(alerts.len());
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            if call < self.failures {
                return Err(NotifyError {
                    kind: self.kind,
                    message: "nope, password=s3cret".into(),
                    retry_after: None,
                });
            }
            Ok(())
        }
    }

    struct Slow;

    #[async_trait]
    impl Notifier for Slow {
        async fn notify(&self, _: &FiredAlert) -> Result<(), NotifyError> {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
    }

    fn alert(condition_id: &str) -> FiredAlert {
        let condition: Condition = serde_json::from_value(serde_json::json!({
            "id": condition_id, "condition_type": "volume_above", "ticker": "T", "threshold": 1
        }))
        .unwrap();
        let market = Market {
            ticker: "T".into(),
            title: String::new(),
            status: "active".into(),
            event_ticker: String::new(),
            yes_bid: None,
            yes_ask: None,
            volume: Some(2.into()),
        };
        FiredAlert::new(&condition, &market, 2.into(), chrono::Utc::now())
    }

    fn flaky(
        name: &str,
        failures: u32,
        kind: FailureKind,
        batch: bool,
    ) -> (NamedNotifier, Arc<AtomicU32>, Arc<Mutex<Vec<usize>>>) {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let notifier = Flaky {
            failures,
            kind,
            calls: calls.clone(),
            batch,
            seen: seen.clone(),
        };
        (NamedNotifier::new(name, Box::new(notifier)), calls, seen)
    }

    fn fast_retry() -> DeliveryRetry {
        DeliveryRetry {
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_millis(300),
        }
    }

    /// Puts `alerts` in a fresh outbox, each for the instances its route
    /// picks, as a monitor's commit does.
    fn outbox(
        dispatcher: &Dispatcher,
        alerts: &[(FiredAlert, Option<Vec<String>>)],
    ) -> Arc<StateStore> {
        let state = StateStore::in_memory();
        let fired = alerts
            .iter()
            .map(|(a, route)| (a, dispatcher.targets(route.as_deref())))
            .collect();
        state
            .commit_cycle(&CycleCommit {
                scope: "test",
                fired,
                ..Default::default()
            })
            .unwrap();
        Arc::new(state)
    }

    /// Runs delivery passes as retries fall due, for at most `limit`.
    async fn deliver_all(dispatcher: &mut Dispatcher, state: &Arc<StateStore>, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            dispatcher.deliver_due(state).await;
            if state
                .next_due(&dispatcher.instance_names())
                .unwrap()
                .is_none()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn statuses(state: &StateStore) -> Vec<(String, DeliveryStatus, u32)> {
        state
            .history(None)
            .unwrap()
            .into_iter()
            .flat_map(|entry| entry.deliveries)
            .map(|d| (d.instance, d.status, d.attempts))
            .collect()
    }

    /// Fails once asking for a wait, then succeeds; records when it was called.
    struct AsksToWait(Arc<Mutex<Vec<std::time::Instant>>>);

    #[async_trait]
    impl Notifier for AsksToWait {
        async fn notify(&self, _: &FiredAlert) -> Result<(), NotifyError> {
            let mut calls = self.0.lock().unwrap();
            calls.push(std::time::Instant::now());
            if calls.len() == 1 {
                return Err(
                    NotifyError::retryable("429").with_retry_after(Duration::from_millis(200))
                );
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_receivers_retry_after_is_waited_for() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let instance = NamedNotifier::new("hook", Box::new(AsksToWait(calls.clone())));
        let mut dispatcher = Dispatcher::new(vec![instance], fast_retry());
        let state = outbox(&dispatcher, &[(alert("c"), None)]);
        deliver_all(&mut dispatcher, &state, Duration::from_secs(5)).await;
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 2);
        // The backoff alone is at most 10 ms here; only Retry-After explains 200.
        assert!(calls[1] - calls[0] >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn retryable_failures_stay_pending_and_are_delivered_once() {
        let (instance, calls, _) = flaky("hook", 1, FailureKind::Retryable, false);
        let mut dispatcher = Dispatcher::new(vec![instance], fast_retry());
        let state = outbox(&dispatcher, &[(alert("c"), None)]);
        let first = dispatcher.deliver_due(&state).await;
        assert_eq!(
            first,
            DispatchReport {
                delivered: 0,
                failed: 0,
                retrying: 1
            }
        );
        assert_eq!(
            statuses(&state),
            [("hook".into(), DeliveryStatus::Pending, 1)]
        );
        deliver_all(&mut dispatcher, &state, Duration::from_secs(5)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(
            statuses(&state),
            [("hook".into(), DeliveryStatus::Delivered, 2)]
        );
        assert!(dispatcher.failing().is_empty());
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let (instance, calls, _) = flaky("hook", 10, FailureKind::Permanent, false);
        let mut dispatcher = Dispatcher::new(vec![instance], fast_retry());
        let state = outbox(&dispatcher, &[(alert("c"), None)]);
        assert_eq!(dispatcher.deliver_due(&state).await.failed, 1);
        deliver_all(&mut dispatcher, &state, Duration::from_millis(200)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            statuses(&state),
            [("hook".into(), DeliveryStatus::Failed, 1)]
        );
        assert_eq!(dispatcher.failing()["hook"], "nope, password=s3cret");
    }

    #[tokio::test]
    async fn a_delivery_older_than_its_max_age_is_given_up() {
        let (mut instance, calls, _) = flaky("hook", 1000, FailureKind::Retryable, false);
        instance.max_age = Duration::from_millis(150);
        let mut dispatcher = Dispatcher::new(vec![instance], fast_retry());
        let state = outbox(&dispatcher, &[(alert("c"), None)]);
        deliver_all(&mut dispatcher, &state, Duration::from_secs(5)).await;
        let attempts = calls.load(Ordering::SeqCst);
        assert!(
            attempts > 2,
            "retried until the age limit, not {attempts} times"
        );
        assert_eq!(
            statuses(&state),
            [("hook".into(), DeliveryStatus::GaveUp, attempts)]
        );
    }

    #[tokio::test]
    async fn a_slow_instance_does_not_hold_up_another() {
        let (fast, calls, _) = flaky("fast", 0, FailureKind::Permanent, false);
        let mut slow = NamedNotifier::new("slow", Box::new(Slow));
        slow.timeout = Duration::from_millis(200);
        let mut dispatcher = Dispatcher::new(vec![slow, fast], fast_retry());
        let state = outbox(&dispatcher, &[(alert("c"), None)]);
        let report = dispatcher.deliver_due(&state).await;
        assert_eq!(
            report,
            DispatchReport {
                delivered: 1,
                failed: 0,
                retrying: 1
            }
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn routes_pick_named_instances_and_defaults_take_the_rest() {
        let (a, a_calls, _) = flaky("a", 0, FailureKind::Permanent, false);
        let (mut b, b_calls, _) = flaky("b", 0, FailureKind::Permanent, false);
        b.default = false;
        let mut dispatcher = Dispatcher::new(vec![a, b], fast_retry());
        let state = outbox(
            &dispatcher,
            &[
                (alert("to-b"), Some(vec!["b".into()])),
                (alert("default"), None),
            ],
        );
        dispatcher.deliver_due(&state).await;
        assert_eq!(a_calls.load(Ordering::SeqCst), 1);
        assert_eq!(b_calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn batching_instances_get_one_delivery_per_pass() {
        let (digest, calls, seen) = flaky("mail", 0, FailureKind::Permanent, true);
        let mut dispatcher = Dispatcher::new(vec![digest], fast_retry());
        let state = outbox(&dispatcher, &[(alert("a"), None), (alert("b"), None)]);
        let report = dispatcher.deliver_due(&state).await;
        assert_eq!(report.delivered, 2);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(*seen.lock().unwrap(), [2]);
    }

    #[tokio::test]
    async fn deliveries_to_a_removed_instance_wait_for_it() {
        let (a, a_calls, _) = flaky("a", 0, FailureKind::Permanent, false);
        let mut dispatcher = Dispatcher::new(vec![a], fast_retry());
        let state = outbox(&dispatcher, &[(alert("c"), None)]);
        dispatcher.set_instances(Vec::new());
        assert_eq!(
            dispatcher.deliver_due(&state).await,
            DispatchReport::default()
        );
        let (again, _, _) = flaky("a", 0, FailureKind::Permanent, false);
        dispatcher.set_instances(vec![again]);
        assert_eq!(dispatcher.deliver_due(&state).await.delivered, 1);
        assert_eq!(a_calls.load(Ordering::SeqCst), 0);
    }

    /// Delivers, then makes the database refuse writes: the outcome cannot
    /// be recorded.
    struct BreaksTheDisk(Arc<StateStore>, Arc<AtomicU32>);

    #[async_trait]
    impl Notifier for BreaksTheDisk {
        async fn notify(&self, _: &FiredAlert) -> Result<(), NotifyError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.refuse_writes(true);
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_outcome_that_cannot_be_recorded_is_kept_not_made_again() {
        let placeholder = NamedNotifier::new("hook", Box::new(Slow));
        let mut dispatcher = Dispatcher::new(vec![placeholder], fast_retry());
        let state = outbox(&dispatcher, &[(alert("c"), None)]);
        let calls = Arc::new(AtomicU32::new(0));
        let breaks = BreaksTheDisk(Arc::clone(&state), Arc::clone(&calls));
        dispatcher.set_instances(vec![NamedNotifier::new("hook", Box::new(breaks))]);

        assert_eq!(dispatcher.deliver_due(&state).await.delivered, 1);
        // The database refuses: later passes take nothing and make nothing
        // again, and the monitor is told to leave the outbox alone a while.
        for _ in 0..50 {
            assert_eq!(dispatcher.start_pass(&state), 0);
        }
        let quiet = dispatcher.next_pass(&state).unwrap();
        assert!(
            quiet > chrono::Utc::now(),
            "no pass due at once: no tight loop"
        );
        // Writable again: the kept outcome is written, nothing is resent.
        state.refuse_writes(false);
        dispatcher.start_pass(&state);
        dispatcher.wait_passes(Duration::from_secs(5)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            statuses(&state),
            [("hook".into(), DeliveryStatus::Delivered, 1)]
        );
    }

    #[tokio::test]
    async fn a_pass_leases_what_it_takes_so_no_other_pass_takes_it() {
        let mut slow = NamedNotifier::new("slow", Box::new(Slow));
        slow.timeout = Duration::from_secs(30);
        let mut dispatcher = Dispatcher::new(vec![slow], fast_retry());
        let state = outbox(&dispatcher, &[(alert("c"), None)]);
        assert_eq!(dispatcher.start_pass(&state), 1);
        assert!(dispatcher.passes_running());
        // While the attempt hangs, the delivery is not due again.
        assert_eq!(dispatcher.start_pass(&state), 0);
        let next = state
            .next_due(&dispatcher.instance_names())
            .unwrap()
            .unwrap();
        assert!(next > chrono::Utc::now() + chrono::Duration::seconds(30));
        dispatcher.abort_passes();
    }

    #[tokio::test]
    async fn failure_messages_are_masked() {
        let (mut instance, _, _) = flaky("mail", 1, FailureKind::Permanent, false);
        instance.secrets = vec!["s3cret".into()];
        let err = instance.attempt(&[alert("c")]).await.unwrap_err();
        assert_eq!(err.message, "nope, password=****");
    }
}
