//! Alert conditions and their evaluation against a market.
//!
//! The record shape is the one the Python `kalshi_research` tool writes to
//! `alerts.json`; fields this product does not know are kept as they are so
//! that a file survives a round trip through either tool.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::market::Market;
use crate::price::{decimal_from_json_number, decimal_to_json_number, parse_decimal};

/// What a condition watches. Unknown stored types are kept, not rejected.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConditionType {
    PriceAbove,
    PriceBelow,
    PriceCrosses,
    SpreadAbove,
    VolumeAbove,
    /// The midpoint moved by at least the threshold since the previous check.
    EdgeDetected,
    /// A type another tool wrote (the Python tool's `sentiment_shift`, say).
    Unsupported(String),
}

impl ConditionType {
    /// The spelling stored in `alerts.json`.
    pub fn as_str(&self) -> &str {
        match self {
            ConditionType::PriceAbove => "price_above",
            ConditionType::PriceBelow => "price_below",
            ConditionType::PriceCrosses => "price_crosses",
            ConditionType::SpreadAbove => "spread_above",
            ConditionType::VolumeAbove => "volume_above",
            ConditionType::EdgeDetected => "edge_detected",
            ConditionType::Unsupported(other) => other,
        }
    }

    pub fn parse(text: &str) -> ConditionType {
        match text {
            "price_above" => ConditionType::PriceAbove,
            "price_below" => ConditionType::PriceBelow,
            "price_crosses" => ConditionType::PriceCrosses,
            "spread_above" => ConditionType::SpreadAbove,
            "volume_above" => ConditionType::VolumeAbove,
            "edge_detected" => ConditionType::EdgeDetected,
            other => ConditionType::Unsupported(other.to_string()),
        }
    }

    /// Whether the threshold is a probability in [0, 1].
    pub fn threshold_is_probability(&self) -> bool {
        matches!(
            self,
            ConditionType::PriceAbove
                | ConditionType::PriceBelow
                | ConditionType::PriceCrosses
                | ConditionType::EdgeDetected
        )
    }

    /// Whether evaluation needs the previous check's market as well.
    pub fn needs_previous(&self) -> bool {
        matches!(
            self,
            ConditionType::PriceCrosses | ConditionType::EdgeDetected
        )
    }
}

impl fmt::Display for ConditionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ConditionType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ConditionType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(ConditionType::parse(&text))
    }
}

/// What a condition watches: one market, or every market of an event or a
/// series, each checked on its own.
///
/// Stored as `"scope": "event"` or `"series"` beside the record's `ticker`,
/// which then holds the event's or the series' ticker; absent means one
/// market, so the Python tool's records read unchanged. (That tool ignores
/// the field and watches the event ticker as if it were a market's, which
/// no market has: it never fires such a condition, rather than firing it
/// wrongly.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    #[default]
    Market,
    Event,
    Series,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Market => "market",
            Scope::Event => "event",
            Scope::Series => "series",
        }
    }

    pub fn is_market(&self) -> bool {
        *self == Scope::Market
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored alert condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// A UUID; commands accept any unique prefix of it.
    pub id: String,
    pub condition_type: ConditionType,
    /// The market's ticker; the event's or the series' when `scope` says so.
    pub ticker: String,
    /// Whether `ticker` names a market (the default), an event or a series.
    #[serde(
        default,
        skip_serializing_if = "Scope::is_market",
        deserialize_with = "scope_or_null"
    )]
    pub scope: Scope,
    /// A probability for price types, cents for spread, contracts for volume.
    #[serde(with = "threshold_number")]
    pub threshold: Decimal,
    /// Empty when the record has none (or `null`); not written back then.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub label: String,
    /// When it was added, as written (Python writes `isoformat()`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_at: String,
    /// When it stops being checked, as written; absent means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// The notifier instances this condition's alerts go to, instead of
    /// the default ones. Absent in files written by the Python tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Vec<String>>,
    /// How often it fires while it holds; absent means [`RepeatPolicy::Rearm`].
    /// Absent in files written by the Python tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<RepeatPolicy>,
    /// Fields written by other versions or tools, kept on rewrite.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// When a condition that holds fires again.
///
/// The Python tool fires a condition once per run of its monitor and
/// forgets that on exit, so a restart fires everything that still holds.
/// These policies are kept in the state database instead, so a restart
/// changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RepeatPolicy {
    /// Fires when the condition becomes true, and again only after it has
    /// been seen false (the default).
    #[default]
    Rearm,
    /// Fires once; then it is spent until `kalshi alerts rearm ID`.
    Once,
    /// Fires while true, at most once per this span.
    Cooldown(std::time::Duration),
}

impl RepeatPolicy {
    /// Reads `rearm`, `once` or `cooldown:DURATION` (`cooldown:30m`,
    /// `cooldown:1h 30m`; at least a second).
    pub fn parse(text: &str) -> Result<RepeatPolicy, String> {
        let text = text.trim();
        match text {
            "rearm" => return Ok(RepeatPolicy::Rearm),
            "once" => return Ok(RepeatPolicy::Once),
            _ => {}
        }
        let Some(span) = text.strip_prefix("cooldown:") else {
            return Err(format!(
                "repeat policy {text:?} is not one of rearm, once, cooldown:DURATION"
            ));
        };
        let span = humantime::parse_duration(span.trim()).map_err(|e| {
            format!("repeat policy {text:?}: the cooldown is not a duration (30m, 2h, 1d): {e}")
        })?;
        if span < std::time::Duration::from_secs(1) {
            return Err(format!(
                "repeat policy {text:?}: a cooldown is at least a second"
            ));
        }
        if chrono::Duration::from_std(span).is_err() {
            return Err(format!("repeat policy {text:?}: the cooldown is too long"));
        }
        Ok(RepeatPolicy::Cooldown(span))
    }

    /// Whether a condition in `state` that holds now (`met`) fires.
    pub fn fires(&self, met: bool, state: &ConditionState, now: DateTime<Utc>) -> bool {
        if !met {
            return false;
        }
        match self {
            RepeatPolicy::Rearm => !state.is_true,
            RepeatPolicy::Once => !state.spent,
            RepeatPolicy::Cooldown(span) => state.last_fired_at.is_none_or(|at| {
                let span = chrono::Duration::from_std(*span).unwrap_or(chrono::Duration::MAX);
                now.signed_duration_since(at) >= span
            }),
        }
    }
}

impl fmt::Display for RepeatPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepeatPolicy::Rearm => f.write_str("rearm"),
            RepeatPolicy::Once => f.write_str("once"),
            RepeatPolicy::Cooldown(span) => {
                write!(f, "cooldown:{}", humantime::format_duration(*span))
            }
        }
    }
}

impl Serialize for RepeatPolicy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RepeatPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        RepeatPolicy::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// What the monitor remembers of one condition between checks and runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConditionState {
    /// The value measured at the last check that could measure it.
    pub last_value: Option<Decimal>,
    /// Whether it held at that check.
    pub is_true: bool,
    pub last_fired_at: Option<DateTime<Utc>>,
    /// A `once` condition that fired and has not been rearmed.
    pub spent: bool,
}

impl ConditionState {
    /// The state after a check that measured `value` (`None`: the market
    /// lacked what the condition needs, and nothing is learnt) and whether
    /// the condition `met` it and `fired`.
    pub fn after_check(
        &self,
        policy: RepeatPolicy,
        value: Option<Decimal>,
        met: bool,
        fired: bool,
        now: DateTime<Utc>,
    ) -> ConditionState {
        let Some(value) = value else {
            return self.clone();
        };
        ConditionState {
            last_value: Some(value),
            is_true: met,
            last_fired_at: if fired { Some(now) } else { self.last_fired_at },
            spent: self.spent || (fired && policy == RepeatPolicy::Once),
        }
    }
}

/// The outcome of checking one condition against one market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evaluation {
    /// The condition is met; `value` is the measured quantity compared
    /// against the threshold (midpoint, spread in cents, volume, or move).
    Fired { value: Decimal },
    /// The market was read and the condition is not met.
    NotMet,
    /// The market lacks what the condition needs (no quote, no volume, no
    /// previous check yet).
    NoData,
}

impl Condition {
    /// The expiry as a UTC time, if set. A value that cannot be read is an
    /// error, so that a typo does not silently make a condition eternal.
    pub fn expiry(&self) -> Result<Option<DateTime<Utc>>, String> {
        self.expires_at.as_deref().map(parse_timestamp).transpose()
    }

    /// Whether the condition has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        matches!(self.expiry(), Ok(Some(at)) if at <= now)
    }

    /// The firing policy, the default when the record names none.
    pub fn repeat_policy(&self) -> RepeatPolicy {
        self.repeat.unwrap_or_default()
    }

    /// What identifies the condition's meaning: its type, what it watches
    /// and its threshold. State kept for an id whose fingerprint changed
    /// (the record was edited) is dropped, so an edit starts afresh.
    pub fn fingerprint(&self) -> String {
        let watched = self.ticker.trim().to_ascii_uppercase();
        let watched = match self.scope {
            Scope::Market => watched,
            scope => format!("{scope}:{watched}"),
        };
        format!(
            "{}|{watched}|{}",
            self.condition_type,
            self.threshold.normalize()
        )
    }

    /// The quantity the condition compares against its threshold, whether
    /// or not it is met: the midpoint, the spread in cents, the volume, or
    /// the move since the previous check. `None` when the market lacks it.
    pub fn measure(&self, current: &Market, previous: Option<&Market>) -> Option<Decimal> {
        match &self.condition_type {
            ConditionType::PriceAbove | ConditionType::PriceBelow | ConditionType::PriceCrosses => {
                current.midpoint()
            }
            ConditionType::SpreadAbove => current.quote().map(|q| q.spread_cents()),
            ConditionType::VolumeAbove => current.volume,
            ConditionType::EdgeDetected => {
                let before = previous.and_then(Market::midpoint)?;
                Some((current.midpoint()? - before).abs())
            }
            ConditionType::Unsupported(_) => None,
        }
    }

    /// Checks the condition against the market now and, for crossing and
    /// move conditions, the same market at the previous check.
    pub fn evaluate(&self, current: &Market, previous: Option<&Market>) -> Evaluation {
        self.check(current, previous).0
    }

    /// [`Condition::evaluate`] and [`Condition::measure`] at once, each
    /// quantity worked out once.
    pub fn check(
        &self,
        current: &Market,
        previous: Option<&Market>,
    ) -> (Evaluation, Option<Decimal>) {
        let threshold = self.threshold;
        let judged = |value: Option<Decimal>, met: &dyn Fn(Decimal) -> bool| match value {
            Some(value) if met(value) => (Evaluation::Fired { value }, Some(value)),
            Some(value) => (Evaluation::NotMet, Some(value)),
            None => (Evaluation::NoData, None),
        };
        match &self.condition_type {
            ConditionType::PriceAbove => judged(current.midpoint(), &|mid| mid > threshold),
            ConditionType::PriceBelow => judged(current.midpoint(), &|mid| mid < threshold),
            ConditionType::SpreadAbove => {
                judged(current.quote().map(|q| q.spread_cents()), &|spread| {
                    spread > threshold
                })
            }
            ConditionType::VolumeAbove => judged(current.volume, &|volume| volume > threshold),
            ConditionType::PriceCrosses => {
                let now = current.midpoint();
                match previous.and_then(Market::midpoint) {
                    Some(before) => judged(now, &|now| {
                        let upward = before < threshold && now >= threshold;
                        let downward = before > threshold && now <= threshold;
                        upward || downward
                    }),
                    // Nothing to cross from; the level is still measured.
                    None => (Evaluation::NoData, now),
                }
            }
            ConditionType::EdgeDetected => {
                let before = previous.and_then(Market::midpoint);
                let moved = before
                    .zip(current.midpoint())
                    .map(|(before, now)| (now - before).abs());
                judged(moved, &|moved| moved >= threshold)
            }
            ConditionType::Unsupported(_) => (Evaluation::NoData, None),
        }
    }

    /// A short human reading of the condition: `price > 0.6`, `spread > 5c`.
    pub fn describe(&self) -> String {
        describe(&self.condition_type, self.threshold)
    }

    /// The label, or a description of the condition when it has none:
    /// `KXBTC-25DEC31 price > 0.6`, or for a scope `event KXBTC-25DEC31
    /// price > 0.6`.
    pub fn display_label(&self) -> String {
        if !self.label.trim().is_empty() {
            return self.label.clone();
        }
        match self.scope {
            Scope::Market => format!("{} {}", self.ticker, self.describe()),
            scope => format!("{scope} {} {}", self.ticker, self.describe()),
        }
    }
}

/// The key of what the state database knows of `condition` on the market
/// `ticker`: the condition's id for a market condition; for an event or
/// series condition, which keeps a state per market of its scope, the id
/// and the market's ticker joined by `@`.
pub fn state_key(condition: &Condition, ticker: &str) -> String {
    match condition.scope {
        Scope::Market => condition.id.clone(),
        Scope::Event | Scope::Series => format!("{}@{ticker}", condition.id),
    }
}

/// Whether `key` (of [`state_key`]) is one of `condition_id`'s.
pub fn is_state_key_of(key: &str, condition_id: &str) -> bool {
    key.strip_prefix(condition_id)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('@'))
}

/// Reads a condition type and threshold as a person would say them.
pub fn describe(kind: &ConditionType, threshold: Decimal) -> String {
    let t = threshold.normalize();
    match kind {
        ConditionType::PriceAbove => format!("price > {t}"),
        ConditionType::PriceBelow => format!("price < {t}"),
        ConditionType::PriceCrosses => format!("price crosses {t}"),
        ConditionType::SpreadAbove => format!("spread > {t}c"),
        ConditionType::VolumeAbove => format!("volume > {t}"),
        ConditionType::EdgeDetected => format!("move >= {t}"),
        ConditionType::Unsupported(other) => format!("{other} {t}"),
    }
}

/// Reads an RFC 3339 time, or a naive ISO time taken as UTC (Python's
/// `datetime.isoformat()` of a naive value has no offset).
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|naive| naive.and_utc())
        .map_err(|_| format!("{text:?} is not an RFC 3339 time"))
}

/// Reads an expiry given on the command line: a duration from `now` such as
/// `2h`, `30m` or `1d 12h`, or an RFC 3339 time (without an offset: UTC, as
/// in stored records).
pub fn parse_expiry(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(span) = humantime::parse_duration(text.trim()) {
        let span = chrono::Duration::from_std(span)
            .map_err(|_| format!("expiry {text:?} is too far away"))?;
        if span < chrono::Duration::seconds(1) {
            return Err(format!(
                "expiry {text:?} is under a second; expiries are kept to the second"
            ));
        }
        // alerts.json holds RFC 3339 times, whose years have four digits.
        return now
            .checked_add_signed(span)
            .filter(|at| at.year() <= 9999)
            .ok_or_else(|| {
                format!(
                    "expiry {text:?} is too far away: the last year alerts.json can hold is 9999"
                )
            });
    }
    let at = parse_timestamp(text.trim()).map_err(|_| {
        format!("expiry {text:?} is neither a duration (2h, 30m, 1d) nor an RFC 3339 time")
    })?;
    if at <= now {
        return Err(format!("expiry {text:?} is in the past"));
    }
    Ok(at)
}

/// `null` is read as an empty string (Python writes `None` as `null`).
fn null_as_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_default())
}

/// Thresholds are JSON numbers (Python floats); strings are accepted too.
/// A scope, with `null` read as absent (one market), as another tool may
/// write an unset field.
fn scope_or_null<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Scope, D::Error> {
    // Read as text first: serde_json's own message for an enum given a
    // number is a bare "expected value".
    match Option::<String>::deserialize(deserializer)?.as_deref() {
        None | Some("market") => Ok(Scope::Market),
        Some("event") => Ok(Scope::Event),
        Some("series") => Ok(Scope::Series),
        Some(other) => Err(serde::de::Error::custom(format!(
            "unknown scope {other:?}, expected \"market\", \"event\" or \"series\""
        ))),
    }
}

mod threshold_number {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        decimal_to_json_number(*value).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        use serde::de::Error;

        match Value::deserialize(deserializer)? {
            Value::Number(n) => decimal_from_json_number(&n)
                .ok_or_else(|| D::Error::custom(format!("threshold {n} is out of range"))),
            // Past 28 decimal places a threshold is rounded, not refused:
            // it is a plain number, only finer than a Decimal holds.
            Value::String(s) => parse_decimal(&s)
                .or_else(|e| {
                    s.trim()
                        .parse::<Decimal>()
                        .ok()
                        .filter(|_| {
                            s.trim()
                                .chars()
                                .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+'))
                        })
                        .ok_or(e)
                })
                .map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "threshold must be a number, got {other}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::from_str_exact(text).unwrap()
    }

    fn condition(kind: &str, threshold: &str) -> Condition {
        serde_json::from_value(json!({
            "id": "7d1f1f7e-0000-4000-8000-000000000000",
            "condition_type": kind,
            "ticker": "T",
            "threshold": d(threshold).to_string().parse::<f64>().unwrap(),
            "label": "",
            "created_at": "2026-01-12T22:08:10.446961+00:00"
        }))
        .unwrap()
    }

    fn quoted(bid: &str, ask: &str) -> Market {
        Market {
            ticker: "T".into(),
            title: String::new(),
            status: "active".into(),
            event_ticker: String::new(),
            yes_bid: Some(d(bid)),
            yes_ask: Some(d(ask)),
            volume: Some(d("100")),
        }
    }

    fn unquoted() -> Market {
        Market {
            yes_bid: None,
            yes_ask: None,
            volume: None,
            ..quoted("0", "0")
        }
    }

    #[test]
    fn a_null_scope_is_one_market_and_a_wrong_one_is_named() {
        let with_scope = |scope: Value| {
            let mut record = serde_json::to_value(condition("price_above", "0.5")).unwrap();
            record["scope"] = scope;
            serde_json::from_value::<Condition>(record).map(|c| c.scope)
        };
        assert_eq!(with_scope(Value::Null).unwrap(), Scope::Market);
        assert_eq!(with_scope(json!("series")).unwrap(), Scope::Series);
        let wrong = with_scope(json!(5)).unwrap_err().to_string();
        assert!(wrong.contains("integer `5`, expected a string"), "{wrong}");
        let wrong = with_scope(json!("Event")).unwrap_err().to_string();
        assert!(wrong.contains("unknown scope \"Event\""), "{wrong}");
    }

    #[test]
    fn a_condition_without_a_label_is_named_by_what_it_watches() {
        let mut c = condition("price_above", "0.6");
        assert_eq!(c.display_label(), "T price > 0.6");
        c.scope = Scope::Event;
        assert_eq!(c.display_label(), "event T price > 0.6");
        c.label = "mine".into();
        assert_eq!(c.display_label(), "mine");
    }

    #[test]
    fn price_above_is_strict_at_the_threshold() {
        let c = condition("price_above", "0.5");
        assert_eq!(
            c.evaluate(&quoted("0.49", "0.51"), None),
            Evaluation::NotMet
        );
        assert_eq!(
            c.evaluate(&quoted("0.50", "0.51"), None),
            Evaluation::Fired { value: d("0.505") }
        );
    }

    #[test]
    fn price_below_is_strict_at_the_threshold() {
        let c = condition("price_below", "0.5");
        assert_eq!(
            c.evaluate(&quoted("0.49", "0.51"), None),
            Evaluation::NotMet
        );
        assert_eq!(
            c.evaluate(&quoted("0.49", "0.50"), None),
            Evaluation::Fired { value: d("0.495") }
        );
    }

    #[test]
    fn sub_penny_midpoints_compare_exactly() {
        let c = condition("price_above", "0.455");
        assert_eq!(
            c.evaluate(&quoted("0.4540", "0.4560"), None),
            Evaluation::NotMet
        );
        assert_eq!(
            c.evaluate(&quoted("0.4550", "0.4560"), None),
            Evaluation::Fired { value: d("0.4555") }
        );
    }

    #[test]
    fn missing_quote_never_fires() {
        for kind in ["price_above", "price_below", "spread_above", "volume_above"] {
            let c = condition(kind, "0");
            assert_eq!(c.evaluate(&unquoted(), None), Evaluation::NoData, "{kind}");
        }
        let below = condition("price_below", "0.5");
        let placeholder = quoted("0", "1");
        assert_eq!(below.evaluate(&placeholder, None), Evaluation::NoData);
    }

    #[test]
    fn spread_is_in_cents_and_strict() {
        let c = condition("spread_above", "5");
        assert_eq!(
            c.evaluate(&quoted("0.40", "0.45"), None),
            Evaluation::NotMet
        );
        assert_eq!(
            c.evaluate(&quoted("0.40", "0.455"), None),
            Evaluation::Fired { value: d("5.5") }
        );
    }

    #[test]
    fn volume_above_is_strict() {
        let c = condition("volume_above", "100");
        assert_eq!(c.evaluate(&quoted("0.1", "0.2"), None), Evaluation::NotMet);
        let busy = Market {
            volume: Some(d("100.01")),
            ..quoted("0.1", "0.2")
        };
        assert_eq!(
            c.evaluate(&busy, None),
            Evaluation::Fired { value: d("100.01") }
        );
    }

    #[test]
    fn crossing_needs_a_previous_check_and_fires_both_ways() {
        let c = condition("price_crosses", "0.5");
        let low = quoted("0.40", "0.44");
        let at = quoted("0.49", "0.51");
        let high = quoted("0.55", "0.57");

        assert_eq!(c.evaluate(&at, None), Evaluation::NoData);
        assert_eq!(
            c.evaluate(&at, Some(&low)),
            Evaluation::Fired { value: d("0.5") }
        );
        assert_eq!(
            c.evaluate(&at, Some(&high)),
            Evaluation::Fired { value: d("0.5") }
        );
        assert_eq!(c.evaluate(&high, Some(&at)), Evaluation::NotMet);
        assert_eq!(c.evaluate(&low, Some(&low)), Evaluation::NotMet);
        assert_eq!(c.evaluate(&low, Some(&unquoted())), Evaluation::NoData);
    }

    #[test]
    fn move_fires_at_exactly_the_threshold() {
        let c = condition("edge_detected", "0.05");
        let before = quoted("0.40", "0.42");
        assert_eq!(
            c.evaluate(&quoted("0.45", "0.47"), Some(&before)),
            Evaluation::Fired { value: d("0.05") }
        );
        assert_eq!(
            c.evaluate(&quoted("0.35", "0.37"), Some(&before)),
            Evaluation::Fired { value: d("0.05") }
        );
        assert_eq!(
            c.evaluate(&quoted("0.44", "0.46"), Some(&before)),
            Evaluation::NotMet
        );
    }

    #[test]
    fn unsupported_types_are_kept_and_never_fire() {
        let c = condition("sentiment_shift", "0.2");
        assert_eq!(
            c.condition_type,
            ConditionType::Unsupported("sentiment_shift".into())
        );
        assert_eq!(c.evaluate(&quoted("0.4", "0.6"), None), Evaluation::NoData);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["condition_type"], "sentiment_shift");
    }

    #[test]
    fn python_records_round_trip_with_unknown_fields() {
        let text = r#"{"id":"a","condition_type":"price_above","ticker":"T","threshold":0.6,
            "label":"price T > 0.6","created_at":"2026-01-12T22:08:10.446961+00:00",
            "note":"kept"}"#;
        let c: Condition = serde_json::from_str(text).unwrap();
        assert_eq!(c.threshold, d("0.6"));
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["threshold"], json!(0.6));
        assert_eq!(back["note"], "kept");
        assert!(back.get("expires_at").is_none());
    }

    #[test]
    fn expiry_accepts_durations_and_times() {
        let now = parse_timestamp("2026-12-04T12:00:00Z").unwrap();
        assert_eq!(
            parse_expiry("2h", now).unwrap(),
            parse_timestamp("2026-12-04T14:00:00Z").unwrap()
        );
        assert_eq!(
            parse_expiry("2027-01-01T00:00:00+01:00", now).unwrap(),
            parse_timestamp("2026-12-31T23:00:00Z").unwrap()
        );
        assert!(parse_expiry("2020-01-01T00:00:00Z", now).is_err());
        assert!(parse_expiry("soon", now).is_err());
        assert!(parse_expiry("0s", now).is_err());
        assert!(parse_expiry("500ms", now).is_err());
        // Past the year 9999 an expiry could be written but not read back.
        let far = parse_expiry("10000y", now).unwrap_err();
        assert!(far.contains("too far away"), "{far}");
        let last = parse_expiry("7900y", now).unwrap();
        assert_eq!(parse_timestamp(&last.to_rfc3339()).unwrap(), last);
        assert_eq!(
            parse_expiry("2026-12-05T00:00:00", now).unwrap(),
            parse_timestamp("2026-12-05T00:00:00Z").unwrap()
        );
    }

    #[test]
    fn a_threshold_string_finer_than_28_places_is_rounded_and_a_word_refused() {
        let read = |threshold: &str| {
            serde_json::from_value::<Condition>(json!({
                "id": "x", "condition_type": "price_above", "ticker": "T",
                "threshold": threshold,
            }))
        };
        let fine = read("0.12345678901234567890123456789012").unwrap();
        assert_eq!(fine.threshold, d("0.1234567890123456789012345679"));
        assert_eq!(read(" 0.25 ").unwrap().threshold, d("0.25"));
        for bad in ["1_000", "1e5", "lots", ""] {
            assert!(read(bad).is_err(), "{bad:?} was read");
        }
    }

    #[test]
    fn naive_python_timestamps_are_utc() {
        let at = parse_timestamp("2026-01-12T22:08:10.446961").unwrap();
        assert_eq!(at, parse_timestamp("2026-01-12T22:08:10.446961Z").unwrap());
    }
}
