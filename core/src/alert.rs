//! Fired alerts: what the monitor hands to every notifier.
//!
//! The serialized form is the JSON-lines record of the `file` notifier and
//! the payload third-party notifiers receive, so its field names are stable.

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::condition::{Condition, ConditionType};
use crate::market::Market;
use crate::price::{decimal_from_json_number, decimal_to_json_number, format_price, parse_decimal};

/// One condition met by one market at one check.
///
/// It reads back from its serialized form too (`Deserialize`), so that a
/// notifier on the far side of the plugin ABI gets the same value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiredAlert {
    /// A fresh UUID for this firing.
    pub id: String,
    pub condition_id: String,
    pub condition_type: ConditionType,
    pub ticker: String,
    pub label: String,
    #[serde(serialize_with = "as_number", deserialize_with = "from_number")]
    pub threshold: Decimal,
    /// The measured value compared against the threshold.
    #[serde(serialize_with = "as_number", deserialize_with = "from_number")]
    pub current_value: Decimal,
    #[serde(serialize_with = "as_rfc3339", deserialize_with = "from_rfc3339")]
    pub triggered_at: DateTime<Utc>,
    pub market_data: MarketData,
}

/// The market as it was when the alert fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketData {
    pub ticker: String,
    pub title: String,
    /// YES bid in dollars, `null` when not quoted.
    #[serde(
        serialize_with = "as_optional_number",
        deserialize_with = "from_optional_number",
        default
    )]
    pub yes_bid: Option<Decimal>,
    #[serde(
        serialize_with = "as_optional_number",
        deserialize_with = "from_optional_number",
        default
    )]
    pub yes_ask: Option<Decimal>,
    #[serde(
        serialize_with = "as_optional_number",
        deserialize_with = "from_optional_number",
        default
    )]
    pub volume: Option<Decimal>,
}

impl FiredAlert {
    /// Builds the record for `condition` met by `market` with `value`.
    pub fn new(
        condition: &Condition,
        market: &Market,
        value: Decimal,
        at: DateTime<Utc>,
    ) -> FiredAlert {
        FiredAlert {
            id: uuid::Uuid::new_v4().to_string(),
            condition_id: condition.id.clone(),
            condition_type: condition.condition_type.clone(),
            // The market's: an event or series condition names its scope.
            ticker: market.ticker.clone(),
            label: condition.label.clone(),
            threshold: condition.threshold,
            current_value: value,
            // Kept to the microsecond, as serialized: an alert read back
            // from the outbox is the alert that fired.
            triggered_at: chrono::SubsecRound::trunc_subsecs(at, 6),
            market_data: MarketData {
                ticker: market.ticker.clone(),
                title: market.title.clone(),
                yes_bid: market.yes_bid,
                yes_ask: market.yes_ask,
                volume: market.volume,
            },
        }
    }

    /// An alert on a made-up market (`KXSAMPLE-TEST`, a price condition at
    /// 0.6 met at 0.62), for `kalshi notifiers test` and plugin tests: it
    /// exercises every field and is plainly not a real market.
    pub fn sample(label: &str) -> FiredAlert {
        let condition = Condition {
            id: "00000000-0000-4000-8000-000000000000".into(),
            condition_type: ConditionType::PriceAbove,
            ticker: "KXSAMPLE-TEST".into(),
            scope: Default::default(),
            threshold: Decimal::new(6, 1),
            label: label.into(),
            created_at: String::new(),
            expires_at: None,
            notify: None,
            repeat: None,
            extra: Default::default(),
        };
        let market = Market {
            ticker: "KXSAMPLE-TEST".into(),
            title: "Sample market: this is a test of your notifier".into(),
            status: "active".into(),
            event_ticker: String::new(),
            yes_bid: Some(Decimal::new(61, 2)),
            yes_ask: Some(Decimal::new(63, 2)),
            volume: Some(Decimal::from(1234)),
        };
        FiredAlert::new(&condition, &market, Decimal::new(62, 2), Utc::now())
    }

    /// One line for logs and terminals: `T price > 0.6 (now 0.655)`.
    pub fn summary(&self) -> String {
        let value = match self.condition_type {
            ConditionType::SpreadAbove => format!("{}c", self.current_value.normalize()),
            ref kind if kind.threshold_is_probability() => format_price(self.current_value),
            _ => self.current_value.normalize().to_string(),
        };
        format!(
            "{} {} (now {value})",
            self.ticker,
            crate::condition::describe(&self.condition_type, self.threshold),
        )
    }
}

fn as_number<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    decimal_to_json_number(*value).serialize(serializer)
}

fn as_optional_number<S: Serializer>(
    value: &Option<Decimal>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => as_number(v, serializer),
        None => serializer.serialize_none(),
    }
}

fn as_rfc3339<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, false))
}

/// Reads a number written by [`as_number`]: a JSON number read through its
/// shortest decimal text, or a decimal string.
fn from_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    use serde::de::Error;

    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Number(n) => decimal_from_json_number(&n)
            .ok_or_else(|| D::Error::custom(format!("{n} is out of range"))),
        serde_json::Value::String(s) => parse_decimal(&s).map_err(D::Error::custom),
        other => Err(D::Error::custom(format!("expected a number, got {other}"))),
    }
}

fn from_optional_number<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Decimal>, D::Error> {
    use serde::de::Error;

    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) => decimal_from_json_number(&n)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("{n} is out of range"))),
        serde_json::Value::String(s) => parse_decimal(&s).map(Some).map_err(D::Error::custom),
        other => Err(D::Error::custom(format!(
            "expected a number or null, got {other}"
        ))),
    }
}

fn from_rfc3339<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(deserializer)?;
    crate::condition::parse_timestamp(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_carries_every_documented_field() {
        let condition: Condition = serde_json::from_value(serde_json::json!({
            "id": "c1", "condition_type": "price_above", "ticker": "T",
            "threshold": 0.6, "label": "T over 60", "created_at": ""
        }))
        .unwrap();
        let market = Market {
            ticker: "T".into(),
            title: "Will it?".into(),
            status: "active".into(),
            event_ticker: String::new(),
            yes_bid: Some(Decimal::new(4550, 4)),
            yes_ask: None,
            volume: Some(Decimal::from(12)),
        };
        let at = crate::condition::parse_timestamp("2026-01-12T22:08:10Z").unwrap();
        let alert = FiredAlert::new(&condition, &market, Decimal::new(65, 2), at);
        let json = serde_json::to_value(&alert).unwrap();

        assert_eq!(json["condition_id"], "c1");
        assert_eq!(json["condition_type"], "price_above");
        assert_eq!(json["threshold"], serde_json::json!(0.6));
        assert_eq!(json["current_value"], serde_json::json!(0.65));
        assert_eq!(json["triggered_at"], "2026-01-12T22:08:10.000000+00:00");
        assert_eq!(json["market_data"]["yes_bid"], serde_json::json!(0.455));
        assert!(json["market_data"]["yes_ask"].is_null());
        assert_eq!(json["market_data"]["title"], "Will it?");
        assert!(uuid::Uuid::parse_str(json["id"].as_str().unwrap()).is_ok());

        let back: FiredAlert = serde_json::from_value(json).unwrap();
        assert_eq!(back.threshold.to_string(), "0.6");
        assert_eq!(back.market_data.yes_bid, Some(Decimal::new(455, 3)));
        assert_eq!(back, alert);
    }
}
