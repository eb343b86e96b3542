//! The words of a desktop notification: what a fired alert looks like in a
//! popup.
//!
//! The summary is the line a notification daemon shows in bold and keeps
//! when it shortens a popup, so it names the market and the condition that
//! fired. The body adds the market's title, the measured value against the
//! threshold and the time in UTC, one item per line.

use kalshi_alerts_core::condition::describe;
use kalshi_alerts_core::price::format_price;
use kalshi_alerts_core::{ConditionType, FiredAlert};

/// `KXBTC-25DEC31-T100000: price > 0.6`.
pub fn summary(alert: &FiredAlert) -> String {
    format!(
        "{}: {}",
        alert.ticker,
        describe(&alert.condition_type, alert.threshold)
    )
}

/// The title, the label (when it says more than the title), the value
/// against the threshold, and the time, with markup characters escaped.
///
/// The notification spec lets daemons read the body as a small HTML
/// subset, and most do; a market title such as "S&P 500 above 6000?" would
/// otherwise be taken for a broken entity and dropped or shown mangled.
pub fn body(alert: &FiredAlert) -> String {
    let mut lines = Vec::new();
    let title = alert.market_data.title.trim();
    if !title.is_empty() {
        lines.push(title.to_string());
    }
    let label = alert.label.trim();
    if !label.is_empty() && label != title {
        lines.push(format!("label: {label}"));
    }
    lines.push(format!(
        "now {} vs threshold {}",
        amount(&alert.condition_type, alert.current_value),
        amount(&alert.condition_type, alert.threshold)
    ));
    lines.push(
        alert
            .triggered_at
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
    );
    escape_markup(&lines.join("\n"))
}

/// A value in the unit of its condition: a price with two decimals at
/// least, a spread in cents, a volume as a plain number.
fn amount(kind: &ConditionType, value: kalshi_alerts_core::price::Price) -> String {
    match kind {
        ConditionType::SpreadAbove => format!("{}c", value.normalize()),
        kind if kind.threshold_is_probability() => format_price(value),
        _ => value.normalize().to_string(),
    }
}

/// Escapes the three characters the notification body markup gives a
/// meaning to.
fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use kalshi_alerts_core::{Condition, Market};
    use rust_decimal::Decimal;

    use super::*;

    fn alert(kind: &str, threshold: f64, value: Decimal, title: &str, label: &str) -> FiredAlert {
        let condition: Condition = serde_json::from_value(serde_json::json!({
            "id": "c1", "condition_type": kind, "ticker": "INXD-26JAN12-B6000",
            "threshold": threshold, "label": label, "created_at": ""
        }))
        .unwrap();
        let market = Market {
            ticker: "INXD-26JAN12-B6000".into(),
            title: title.into(),
            status: "active".into(),
            event_ticker: String::new(),
            yes_bid: Some(Decimal::new(64, 2)),
            yes_ask: Some(Decimal::new(67, 2)),
            volume: Some(Decimal::from(1200)),
        };
        let at = kalshi_alerts_core::condition::parse_timestamp("2026-01-12T22:08:10Z").unwrap();
        FiredAlert::new(&condition, &market, value, at)
    }

    #[test]
    fn summary_names_the_ticker_and_the_condition() {
        let a = alert("price_above", 0.6, Decimal::new(655, 3), "t", "");
        assert_eq!(summary(&a), "INXD-26JAN12-B6000: price > 0.6");
    }

    #[test]
    fn body_has_title_value_against_threshold_and_utc_time() {
        let a = alert(
            "price_above",
            0.6,
            Decimal::new(655, 3),
            "S&P 500 <close> above 6000?",
            "index over 60",
        );
        assert_eq!(
            body(&a),
            "S&amp;P 500 &lt;close&gt; above 6000?\n\
             label: index over 60\n\
             now 0.655 vs threshold 0.60\n\
             2026-01-12 22:08:10 UTC"
        );
    }

    #[test]
    fn spreads_are_in_cents_and_volumes_plain() {
        let spread = alert("spread_above", 5.0, Decimal::from(7), "t", "t");
        assert!(body(&spread).contains("now 7c vs threshold 5c"));
        let volume = alert("volume_above", 1000.0, Decimal::from(1200), "", "");
        assert_eq!(
            body(&volume),
            "now 1200 vs threshold 1000\n2026-01-12 22:08:10 UTC"
        );
    }
}
