//! The checks at the end of a soak, on what the daemon and the receivers recorded: every fired
//! alert delivered to every instance it was meant for, the webhook and the file holding each
//! one at least once, repeat policies kept across restarts, and a log without a panic.
//!
//! Each check adds figures to the report and, when it fails, a line saying why.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// One request the webhook receiver got.
#[derive(Debug, Clone)]
pub struct HookRequest {
    /// The `Idempotency-Key` header.
    pub key: Option<String>,
    /// The `id` of the alert in the body.
    pub body_id: Option<String>,
    /// The status the receiver answered with.
    pub answered: u16,
}

/// A condition as added, by id.
#[derive(Debug, Clone)]
pub struct ConditionAdded {
    pub id: String,
    pub name: String,
    pub repeat: String,
}

/// What the soak collected at the end.
pub struct Evidence<'a> {
    /// `kalshi alerts history --json`.
    pub history: &'a [Value],
    pub hook: &'a [HookRequest],
    /// The `file` instance's output.
    pub ledger: &'a str,
    /// The daemon's log.
    pub log: &'a str,
    pub conditions: &'a [ConditionAdded],
    /// Alerts whose delivery the receiver was holding when the daemon was killed.
    pub held: &'a [String],
}

/// The instance names of the notifiers file the soak writes.
pub const HOOK: &str = "hook";
pub const LEDGER: &str = "ledger";

/// Log errors that a soak causes on purpose: a scan that failed for good.
const EXPECTED_ERRORS: &[&str] = &["market scan failed"];

/// The checks' figures and failures.
#[derive(Debug, Default)]
pub struct Verdict {
    pub text: String,
    pub failures: Vec<String>,
}

impl Verdict {
    fn line(&mut self, text: impl AsRef<str>) {
        self.text.push_str(text.as_ref());
        self.text.push('\n');
    }

    fn fail(&mut self, why: impl Into<String>) {
        self.failures.push(why.into());
    }
}

pub fn check(evidence: &Evidence) -> Verdict {
    let mut verdict = Verdict::default();
    let alerts = alerts_of(evidence.history, &mut verdict);
    fired(&alerts, evidence.conditions, &mut verdict);
    deliveries(&alerts, &mut verdict);
    hook(&alerts, evidence.hook, &mut verdict);
    held(evidence.held, evidence.hook, &mut verdict);
    ledger(&alerts, evidence.ledger, &mut verdict);
    repeats(&alerts, evidence.conditions, &mut verdict);
    log(evidence.log, &mut verdict);
    verdict
}

/// One fired alert as history shows it.
struct Alert {
    id: String,
    condition_id: String,
    triggered_at: DateTime<Utc>,
    /// (instance, status, attempts)
    deliveries: Vec<(String, String, u64)>,
}

impl Alert {
    fn goes_to(&self, instance: &str) -> bool {
        self.deliveries.iter().any(|(name, _, _)| name == instance)
    }
}

fn alerts_of(history: &[Value], verdict: &mut Verdict) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for entry in history {
        let alert = &entry["alert"];
        let text = |value: &Value| value.as_str().map(str::to_owned);
        let parsed = (|| {
            Some(Alert {
                id: text(&alert["id"])?,
                condition_id: text(&alert["condition_id"])?,
                triggered_at: alert["triggered_at"].as_str()?.parse().ok()?,
                deliveries: entry["deliveries"]
                    .as_array()?
                    .iter()
                    .map(|d| {
                        Some((
                            text(&d["instance"])?,
                            text(&d["status"])?,
                            d["attempts"].as_u64()?,
                        ))
                    })
                    .collect::<Option<_>>()?,
            })
        })();
        match parsed {
            Some(alert) => alerts.push(alert),
            None => verdict.fail(format!(
                "history has an entry the soak cannot read: {entry}"
            )),
        }
    }
    alerts
}

fn fired(alerts: &[Alert], conditions: &[ConditionAdded], verdict: &mut Verdict) {
    verdict.line(format!("alerts fired: {}", alerts.len()));
    if alerts.is_empty() {
        verdict.fail("no alert fired: the soak exercised nothing");
    }
    for condition in conditions {
        let count = alerts
            .iter()
            .filter(|a| a.condition_id == condition.id)
            .count();
        verdict.line(format!("  {count:>5}  {}", condition.name));
    }
}

/// One instance's deliveries, as history shows them.
#[derive(Default)]
struct Tally<'a> {
    statuses: BTreeMap<&'a str, usize>,
    attempts: u64,
    most_attempts: u64,
    retried: usize,
}

fn deliveries(alerts: &[Alert], verdict: &mut Verdict) {
    let mut by_instance: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut unfinished = Vec::new();
    for alert in alerts {
        if alert.deliveries.is_empty() {
            verdict.fail(format!("alert {} has no delivery at all", alert.id));
        }
        for (instance, status, attempts) in &alert.deliveries {
            let tally = by_instance.entry(instance).or_default();
            *tally.statuses.entry(status).or_default() += 1;
            tally.attempts += attempts;
            tally.most_attempts = tally.most_attempts.max(*attempts);
            tally.retried += usize::from(*attempts > 1);
            if status != "delivered" {
                unfinished.push(format!("{} -> {instance}: {status}", alert.id));
            }
        }
    }
    verdict.line("deliveries (from history):");
    for (instance, tally) in &by_instance {
        let statuses: Vec<String> = tally
            .statuses
            .iter()
            .map(|(status, n)| format!("{n} {status}"))
            .collect();
        verdict.line(format!(
            "  {instance}: {}; {} attempts, {} needed more than one, at most {}",
            statuses.join(", "),
            tally.attempts,
            tally.retried,
            tally.most_attempts
        ));
    }
    if !unfinished.is_empty() {
        verdict.fail(format!(
            "{} deliveries are not delivered: {}",
            unfinished.len(),
            sample(&unfinished)
        ));
    }
}

fn hook(alerts: &[Alert], requests: &[HookRequest], verdict: &mut Verdict) {
    let known: BTreeSet<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
    let mut answered: BTreeMap<u16, usize> = BTreeMap::new();
    let mut accepted: BTreeMap<&str, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for request in requests {
        *answered.entry(request.answered).or_default() += 1;
        let Some(key) = request.key.as_deref() else {
            problems.push("a request without an Idempotency-Key".to_owned());
            continue;
        };
        if request.body_id.as_deref() != Some(key) {
            problems.push(format!("key {key} with body id {:?}", request.body_id));
        }
        if !known.contains(key) {
            problems.push(format!("key {key} is no alert in history"));
        }
        if (200..300).contains(&request.answered) {
            *accepted.entry(key).or_default() += 1;
        }
    }
    let missing: Vec<&str> = alerts
        .iter()
        .filter(|a| a.goes_to(HOOK) && !accepted.contains_key(a.id.as_str()))
        .map(|a| a.id.as_str())
        .collect();
    let duplicates: usize = accepted.values().map(|n| n - 1).sum();
    let answers: Vec<String> = answered.iter().map(|(s, n)| format!("{n} x {s}")).collect();
    verdict.line(format!(
        "webhook receiver: {} requests ({}); {} alerts accepted, {duplicates} duplicate \
         copies accepted (same Idempotency-Key)",
        requests.len(),
        answers.join(", "),
        accepted.len()
    ));
    if !missing.is_empty() {
        verdict.fail(format!(
            "{} alerts for {HOOK} never reached the receiver with a 2xx: {}",
            missing.len(),
            sample(&missing)
        ));
    }
    if !problems.is_empty() {
        verdict.fail(format!(
            "{} webhook requests are wrong: {}",
            problems.len(),
            sample(&problems)
        ));
    }
}

/// An alert the receiver accepted just as the daemon died was never recorded as delivered,
/// so the next daemon must have sent it again.
fn held(held: &[String], requests: &[HookRequest], verdict: &mut Verdict) {
    for id in held {
        let accepted = requests
            .iter()
            .filter(|r| r.key.as_deref() == Some(id.as_str()) && (200..300).contains(&r.answered))
            .count();
        verdict.line(format!(
            "alert {id}, held by the receiver at a kill: accepted {accepted} times"
        ));
        if accepted < 2 {
            verdict.fail(format!(
                "alert {id} was in flight when the daemon was killed, but was not sent again \
                 after the restart"
            ));
        }
    }
}

fn ledger(alerts: &[Alert], text: &str, verdict: &mut Verdict) {
    let known: BTreeSet<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let id = serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|record| record["id"].as_str().map(str::to_owned));
        match id {
            Some(id) if known.contains(id.as_str()) => *copies.entry(id).or_default() += 1,
            Some(id) => problems.push(format!("line {}: {id} is no alert in history", number + 1)),
            None => problems.push(format!("line {} is not an alert record", number + 1)),
        }
    }
    let missing: Vec<&str> = alerts
        .iter()
        .filter(|a| a.goes_to(LEDGER) && !copies.contains_key(&a.id))
        .map(|a| a.id.as_str())
        .collect();
    let duplicates: usize = copies.values().map(|n| n - 1).sum();
    verdict.line(format!(
        "file instance: {} lines, {} alerts, {duplicates} duplicate lines",
        text.lines().count(),
        copies.len()
    ));
    if !missing.is_empty() {
        verdict.fail(format!(
            "{} alerts for {LEDGER} are not in its file: {}",
            missing.len(),
            sample(&missing)
        ));
    }
    if !problems.is_empty() {
        verdict.fail(format!(
            "the file instance's output has {} bad lines: {}",
            problems.len(),
            sample(&problems)
        ));
    }
}

/// A `once` condition fires once in all, a `rearm` condition that held from some scan on (the
/// volume) once, and a cooldown's firings are a cooldown apart: across restarts too.
fn repeats(alerts: &[Alert], conditions: &[ConditionAdded], verdict: &mut Verdict) {
    for condition in conditions {
        let mut times: Vec<DateTime<Utc>> = alerts
            .iter()
            .filter(|a| a.condition_id == condition.id)
            .map(|a| a.triggered_at)
            .collect();
        times.sort();
        if condition.repeat == "once" && times.len() != 1 {
            verdict.fail(format!(
                "{} (once) fired {} times, not once",
                condition.name,
                times.len()
            ));
        }
        if condition.name.starts_with("volume") && times.len() > 1 {
            verdict.fail(format!(
                "{} fired {} times; the volume only grows, so once is all",
                condition.name,
                times.len()
            ));
        }
        let Some(cooldown) = cooldown_secs(&condition.repeat) else {
            continue;
        };
        let closest = times
            .windows(2)
            .map(|pair| (pair[1] - pair[0]).num_milliseconds())
            .min();
        if let Some(closest) = closest {
            verdict.line(format!(
                "{}: closest firings {:.1} s apart (cooldown {cooldown} s)",
                condition.name,
                closest as f64 / 1000.0
            ));
            if closest < cooldown * 1000 {
                verdict.fail(format!(
                    "{} fired twice within its cooldown ({closest} ms apart)",
                    condition.name
                ));
            }
        }
    }
}

/// `cooldown:15s` -> 15.
fn cooldown_secs(repeat: &str) -> Option<i64> {
    repeat
        .strip_prefix("cooldown:")?
        .strip_suffix('s')?
        .parse()
        .ok()
}

fn log(text: &str, verdict: &mut Verdict) {
    let mut errors: BTreeMap<&str, usize> = BTreeMap::new();
    let mut unexpected = Vec::new();
    let mut panics = Vec::new();
    let mut warnings = 0;
    for line in text.lines() {
        if line.to_ascii_lowercase().contains("panic") {
            panics.push(line);
        }
        if line.contains(" WARN ") {
            warnings += 1;
        }
        if !line.contains(" ERROR ") {
            continue;
        }
        match EXPECTED_ERRORS.iter().find(|known| line.contains(*known)) {
            Some(known) => *errors.entry(known).or_default() += 1,
            None => unexpected.push(line),
        }
    }
    let mut summary = format!(
        "daemon log: {} lines, {warnings} warnings",
        text.lines().count()
    );
    for (message, count) in &errors {
        let _ = write!(summary, ", {count} x \"{message}\"");
    }
    verdict.line(summary);
    if !panics.is_empty() {
        verdict.fail(format!("the daemon log has a panic: {}", sample(&panics)));
    }
    if !unexpected.is_empty() {
        verdict.fail(format!(
            "the daemon log has {} unexpected errors: {}",
            unexpected.len(),
            sample(&unexpected)
        ));
    }
}

/// The first few items, for a failure line.
fn sample<T: AsRef<str>>(items: &[T]) -> String {
    let shown: Vec<&str> = items.iter().take(3).map(AsRef::as_ref).collect();
    let more = items.len().saturating_sub(shown.len());
    if more == 0 {
        shown.join("; ")
    } else {
        format!("{}; and {more} more", shown.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(id: &str, condition: &str, at: &str, statuses: &[(&str, &str)]) -> Value {
        let deliveries: Vec<Value> = statuses
            .iter()
            .map(
                |(instance, status)| json!({"instance": instance, "status": status, "attempts": 2}),
            )
            .collect();
        json!({
            "alert": {"id": id, "condition_id": condition, "triggered_at": at},
            "deliveries": deliveries,
        })
    }

    fn request(key: &str, answered: u16) -> HookRequest {
        HookRequest {
            key: Some(key.into()),
            body_id: Some(key.into()),
            answered,
        }
    }

    fn conditions() -> Vec<ConditionAdded> {
        vec![
            ConditionAdded {
                id: "c".into(),
                name: "crosses AITURING".into(),
                repeat: "cooldown:15s".into(),
            },
            ConditionAdded {
                id: "o".into(),
                name: "price USCLIMATE-2030".into(),
                repeat: "once".into(),
            },
        ]
    }

    fn both(id: &str, condition: &str, at: &str) -> Value {
        entry(
            id,
            condition,
            at,
            &[(HOOK, "delivered"), (LEDGER, "delivered")],
        )
    }

    const LOG: &str = "2026-12-04T18:00:00Z  INFO kalshi: alert delivered\n\
                       2026-12-04T18:00:01Z ERROR kalshi: market scan failed; the next cycle will try again\n";

    #[test]
    fn everything_delivered_passes_and_counts_duplicates() {
        let history = [
            both("a1", "c", "2026-12-04T18:00:00Z"),
            both("a2", "c", "2026-12-04T18:00:20Z"),
            both("a3", "o", "2026-12-04T18:00:00Z"),
        ];
        let hook = [
            request("a1", 503),
            request("a1", 200),
            request("a1", 200),
            request("a2", 200),
            request("a3", 200),
        ];
        let ledger = "{\"id\":\"a1\"}\n{\"id\":\"a2\"}\n{\"id\":\"a3\"}\n{\"id\":\"a3\"}\n";
        let verdict = check(&Evidence {
            history: &history,
            hook: &hook,
            ledger,
            log: LOG,
            conditions: &conditions(),
            held: &["a1".into()],
        });
        assert!(verdict.failures.is_empty(), "{:?}", verdict.failures);
        assert!(
            verdict.text.contains("3 alerts accepted, 1 duplicate"),
            "{}",
            verdict.text
        );
        assert!(verdict.text.contains("4 lines, 3 alerts, 1 duplicate"));
        assert!(verdict.text.contains("1 x \"market scan failed\""));
    }

    #[test]
    fn a_pending_delivery_an_alert_only_refused_and_a_held_alert_not_resent_fail() {
        let history = [
            entry(
                "a1",
                "c",
                "2026-12-04T18:00:00Z",
                &[(HOOK, "pending"), (LEDGER, "delivered")],
            ),
            both("a3", "o", "2026-12-04T18:00:00Z"),
        ];
        let hook = [request("a1", 503), request("a3", 200)];
        let verdict = check(&Evidence {
            history: &history,
            hook: &hook,
            ledger: "{\"id\":\"a1\"}\n{\"id\":\"a3\"}\n",
            log: LOG,
            conditions: &conditions(),
            held: &["a3".into()],
        });
        let failures = verdict.failures.join("\n");
        assert!(
            failures.contains("1 deliveries are not delivered: a1 -> hook: pending"),
            "{failures}"
        );
        assert!(
            failures.contains("never reached the receiver with a 2xx: a1"),
            "{failures}"
        );
        assert!(
            failures.contains("alert a3 was in flight when the daemon was killed"),
            "{failures}"
        );
    }

    #[test]
    fn a_missing_ledger_line_a_broken_cooldown_and_a_second_once_fail() {
        let history = [
            both("a1", "c", "2026-12-04T18:00:00Z"),
            both("a2", "c", "2026-12-04T18:00:10Z"),
            both("a3", "o", "2026-12-04T18:00:00Z"),
            both("a4", "o", "2026-12-04T18:01:00Z"),
        ];
        let hook: Vec<HookRequest> = ["a1", "a2", "a3", "a4"]
            .iter()
            .map(|id| request(id, 200))
            .collect();
        let verdict = check(&Evidence {
            history: &history,
            hook: &hook,
            ledger: "{\"id\":\"a1\"}\n{\"id\":\"a2\"}\n{\"id\":\"a3\"}\nnot json\n",
            log: LOG,
            conditions: &conditions(),
            held: &[],
        });
        let failures = verdict.failures.join("\n");
        assert!(failures.contains("are not in its file: a4"), "{failures}");
        assert!(
            failures.contains("line 4 is not an alert record"),
            "{failures}"
        );
        assert!(
            failures.contains("within its cooldown (10000 ms apart)"),
            "{failures}"
        );
        assert!(failures.contains("fired 2 times, not once"), "{failures}");
    }

    #[test]
    fn a_panic_or_an_unexpected_error_in_the_log_fails() {
        let log = format!(
            "{LOG}thread 'tokio-runtime-worker' panicked at core/src/x.rs:1:1\n\
             2026-12-04T18:00:02Z ERROR kalshi: alert not delivered failure=\"gave up\"\n"
        );
        let mut verdict = Verdict::default();
        super::log(&log, &mut verdict);
        let failures = verdict.failures.join("\n");
        assert!(failures.contains("has a panic"), "{failures}");
        assert!(failures.contains("1 unexpected errors"), "{failures}");
    }

    #[test]
    fn nothing_fired_fails() {
        let verdict = check(&Evidence {
            history: &[],
            hook: &[],
            ledger: "",
            log: "",
            conditions: &[],
            held: &[],
        });
        assert_eq!(
            verdict.failures,
            ["no alert fired: the soak exercised nothing"]
        );
    }
}
