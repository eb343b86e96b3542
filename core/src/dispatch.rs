//! Dispatch: fired alerts to notifier instances, concurrently, with retries.
//!
//! Each alert goes to the instances its condition names, or else to every
//! default instance. Every delivery runs as its own task with its own
//! timeout, so a slow or failing instance never holds up the others. A
//! cycle waits only for first attempts; retries of retryable failures go on
//! in the background with backoff, and [`Dispatcher::drain`] waits for them
//! when the monitor stops. Each delivery's outcome is logged once.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::alert::FiredAlert;
use crate::notifier::{FailureKind, Notifier, NotifyError, DELIVERY_TIMEOUT};
use crate::secret::mask;

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

/// How retryable failures are retried.
#[derive(Debug, Clone)]
pub struct DeliveryRetry {
    /// Attempts per delivery, the first included.
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles after each.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A receiver's `Retry-After` longer than this is cut to it.
    pub max_retry_after: Duration,
}

impl Default for DeliveryRetry {
    fn default() -> Self {
        DeliveryRetry {
            max_attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl DeliveryRetry {
    fn backoff(&self, failures: u32) -> Duration {
        let step = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
            .min(self.max_delay);
        let half = step / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }
}

/// How the first attempts of one cycle's deliveries went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchReport {
    /// Deliveries that succeeded at the first attempt.
    pub delivered: usize,
    /// Deliveries that failed for good at the first attempt.
    pub failed: usize,
    /// Deliveries whose first attempt failed in a way that may pass; they
    /// are being retried in the background.
    pub retrying: usize,
}

enum FirstOutcome {
    Delivered,
    Failed,
    Retrying,
}

/// Hands alerts to instances and keeps track of retries under way.
pub struct Dispatcher {
    instances: Vec<Arc<NamedNotifier>>,
    retry: DeliveryRetry,
    pending: JoinSet<()>,
    failing: Failing,
}

/// Instances whose last delivery failed for good, with the reason; an
/// instance leaves it when a delivery through it succeeds.
type Failing = Arc<std::sync::Mutex<std::collections::BTreeMap<String, String>>>;

impl Dispatcher {
    pub fn new(instances: Vec<NamedNotifier>, retry: DeliveryRetry) -> Dispatcher {
        Dispatcher {
            instances: instances.into_iter().map(Arc::new).collect(),
            retry,
            pending: JoinSet::new(),
            failing: Failing::default(),
        }
    }

    /// Instances whose last delivery failed for good, and why.
    pub fn failing(&self) -> std::collections::BTreeMap<String, String> {
        self.failing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn set_retry(&mut self, retry: DeliveryRetry) {
        self.retry = retry;
    }

    pub fn instance_names(&self) -> Vec<String> {
        self.instances.iter().map(|i| i.name.clone()).collect()
    }

    /// Delivers one cycle's alerts, each to the instances named with it
    /// (`None`: the default instances). Returns once every delivery has
    /// made its first attempt.
    pub async fn dispatch(
        &mut self,
        routed: &[(FiredAlert, Option<Vec<String>>)],
    ) -> DispatchReport {
        let mut firsts = Vec::new();
        for instance in &self.instances {
            let alerts: Vec<FiredAlert> = routed
                .iter()
                .filter(|(_, route)| match route {
                    Some(names) => names.iter().any(|n| n == &instance.name),
                    None => instance.default,
                })
                .map(|(alert, _)| alert.clone())
                .collect();
            if alerts.is_empty() {
                continue;
            }
            let deliveries: Vec<Vec<FiredAlert>> = if instance.notifier.batches() {
                vec![alerts]
            } else {
                alerts.into_iter().map(|a| vec![a]).collect()
            };
            for delivery in deliveries {
                let (tell, first) = oneshot::channel();
                let instance = Arc::clone(instance);
                let retry = self.retry.clone();
                let failing = Arc::clone(&self.failing);
                self.pending
                    .spawn(deliver(instance, delivery, retry, tell, failing));
                firsts.push(first);
            }
        }

        let mut report = DispatchReport::default();
        for first in firsts {
            match first.await {
                Ok(FirstOutcome::Delivered) => report.delivered += 1,
                Ok(FirstOutcome::Retrying) => report.retrying += 1,
                Ok(FirstOutcome::Failed) | Err(_) => report.failed += 1,
            }
        }
        while self.pending.try_join_next().is_some() {}
        report
    }

    /// Waits for retries under way, at most `limit`; what is still
    /// retrying then is abandoned, with an error logged for each.
    pub async fn drain(&mut self, limit: Duration) {
        if self.pending.is_empty() {
            return;
        }
        tracing::info!(
            deliveries = self.pending.len(),
            "waiting for deliveries being retried"
        );
        let waited = tokio::time::timeout(limit, async {
            while self.pending.join_next().await.is_some() {}
        })
        .await;
        if waited.is_err() {
            tracing::error!(
                deliveries = self.pending.len(),
                "deliveries still retrying at stop were abandoned"
            );
            self.pending.abort_all();
        }
    }
}

async fn deliver(
    instance: Arc<NamedNotifier>,
    alerts: Vec<FiredAlert>,
    retry: DeliveryRetry,
    tell: oneshot::Sender<FirstOutcome>,
    failing: Failing,
) {
    let mark = |reason: Option<String>| {
        let mut failing = failing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match reason {
            Some(reason) => failing.insert(instance.name.clone(), reason),
            None => failing.remove(&instance.name),
        };
    };
    let ids: Vec<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
    let ids = ids.join(",");
    let mut tell = Some(tell);
    let mut attempt = 1;
    loop {
        let error = match instance.attempt(&alerts).await {
            Ok(()) => {
                report_first(&mut tell, FirstOutcome::Delivered);
                mark(None);
                tracing::info!(notifier = %instance.name, alerts = %ids, attempts = attempt, "alert delivered");
                return;
            }
            Err(e) => e,
        };
        let retryable = error.kind == FailureKind::Retryable;
        if !retryable || attempt >= retry.max_attempts {
            report_first(&mut tell, FirstOutcome::Failed);
            mark(Some(error.message.clone()));
            let kind = if retryable { "gave up" } else { "permanent" };
            tracing::error!(
                notifier = %instance.name, alerts = %ids, attempts = attempt, failure = kind,
                reason = %error.message, "alert not delivered"
            );
            return;
        }
        report_first(&mut tell, FirstOutcome::Retrying);
        let asked = error.retry_after.map(|d| d.min(retry.max_retry_after));
        let wait = retry.backoff(attempt).max(asked.unwrap_or_default());
        tracing::debug!(
            notifier = %instance.name, alerts = %ids, attempt, wait_ms = wait.as_millis() as u64,
            reason = %error.message, "delivery failed; will retry"
        );
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

fn report_first(tell: &mut Option<oneshot::Sender<FirstOutcome>>, outcome: FirstOutcome) {
    if let Some(tell) = tell.take() {
        let _ = tell.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::condition::Condition;
    use crate::market::Market;

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
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_millis(300),
        }
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
        dispatcher.dispatch(&[(alert("c"), None)]).await;
        dispatcher.drain(Duration::from_secs(5)).await;
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 2);
        // The backoff alone is at most 10 ms here; only Retry-After explains 200.
        assert!(calls[1] - calls[0] >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn retryable_failures_are_retried_in_the_background_and_delivered_once() {
        let (instance, calls, _) = flaky("hook", 1, FailureKind::Retryable, false);
        let mut dispatcher = Dispatcher::new(vec![instance], fast_retry());
        let report = dispatcher.dispatch(&[(alert("c"), None)]).await;
        assert_eq!(
            report,
            DispatchReport {
                delivered: 0,
                failed: 0,
                retrying: 1
            }
        );
        dispatcher.drain(Duration::from_secs(5)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let (instance, calls, _) = flaky("hook", 10, FailureKind::Permanent, false);
        let mut dispatcher = Dispatcher::new(vec![instance], fast_retry());
        let report = dispatcher.dispatch(&[(alert("c"), None)]).await;
        assert_eq!(report.failed, 1);
        dispatcher.drain(Duration::from_secs(5)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_slow_instance_does_not_hold_up_another() {
        let (fast, calls, _) = flaky("fast", 0, FailureKind::Permanent, false);
        let mut slow = NamedNotifier::new("slow", Box::new(Slow));
        slow.timeout = Duration::from_millis(200);
        let mut dispatcher = Dispatcher::new(
            vec![slow, fast],
            DeliveryRetry {
                max_attempts: 1,
                ..fast_retry()
            },
        );
        let report = dispatcher.dispatch(&[(alert("c"), None)]).await;
        assert_eq!(
            report,
            DispatchReport {
                delivered: 1,
                failed: 1,
                retrying: 0
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
        dispatcher
            .dispatch(&[
                (alert("to-b"), Some(vec!["b".into()])),
                (alert("default"), None),
            ])
            .await;
        assert_eq!(a_calls.load(Ordering::SeqCst), 1);
        assert_eq!(b_calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn batching_instances_get_one_delivery_per_cycle() {
        let (digest, calls, seen) = flaky("mail", 0, FailureKind::Permanent, true);
        let mut dispatcher = Dispatcher::new(vec![digest], fast_retry());
        let report = dispatcher
            .dispatch(&[(alert("a"), None), (alert("b"), None)])
            .await;
        assert_eq!(report.delivered, 1);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(*seen.lock().unwrap(), [2]);
    }

    #[tokio::test]
    async fn failure_messages_are_masked() {
        let (mut instance, _, _) = flaky("mail", 1, FailureKind::Permanent, false);
        instance.secrets = vec!["s3cret".into()];
        let err = instance.attempt(&[alert("c")]).await.unwrap_err();
        assert_eq!(err.message, "nope, password=****");
    }
}
