//! What an alert email says: subject, plain-text body and Message-ID.
//!
//! Everything here is a pure function of the alerts, so a retry of the
//! same delivery produces the same message, and the text can be checked
//! without a mail server. The text is written to be read on a phone: the
//! subject alone says what fired, the body says it again with the numbers
//! and ends with a link to the market.

use kalshi_alerts_core::price::{format_price, Price};
use kalshi_alerts_core::{ConditionType, FiredAlert};

/// The right-hand side of every Message-ID this notifier writes.
const ID_DOMAIN: &str = "kalshi-alerts";

/// How many tickers a digest subject names before it says "+N more".
const SUBJECT_TICKERS: usize = 3;

/// The subject of a message about one alert.
pub(super) fn subject(alert: &FiredAlert) -> String {
    format!("Kalshi alert: {}", alert.summary())
}

/// The body of a message about one alert.
pub(super) fn body(alert: &FiredAlert, market_url: &str) -> String {
    let mut text = block(alert, market_url);
    text.push_str(&footer(&[alert]));
    text
}

/// The subject of a digest: how many alerts, and of which markets.
pub(super) fn digest_subject(alerts: &[FiredAlert]) -> String {
    let mut tickers: Vec<&str> = Vec::new();
    for alert in alerts {
        if !tickers.contains(&alert.ticker.as_str()) {
            tickers.push(&alert.ticker);
        }
    }
    let mut named = tickers
        .iter()
        .take(SUBJECT_TICKERS)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if tickers.len() > SUBJECT_TICKERS {
        named.push_str(&format!(", +{} more", tickers.len() - SUBJECT_TICKERS));
    }
    format!("Kalshi: {} alerts fired ({named})", alerts.len())
}

/// The body of a digest: every alert of the cycle, numbered, in order.
pub(super) fn digest_body(alerts: &[FiredAlert], market_url: &str) -> String {
    let mut text = format!("{} alerts fired in one check.\n", alerts.len());
    for (n, alert) in alerts.iter().enumerate() {
        text.push_str(&format!("\n--- {} of {} ---\n", n + 1, alerts.len()));
        text.push_str(&block(alert, market_url));
    }
    let all: Vec<&FiredAlert> = alerts.iter().collect();
    text.push_str(&footer(&all));
    text
}

/// The Message-ID of a message about one alert: the alert's id, which is
/// fixed when it fires, so every attempt at delivering it carries the same.
pub(super) fn message_id(alert: &FiredAlert) -> String {
    format!("<{}@{ID_DOMAIN}>", alert.id)
}

/// The Message-ID of a digest, derived from the ids of all its alerts
/// (in any order), so a retried digest carries the same one.
pub(super) fn digest_message_id(alerts: &[FiredAlert]) -> String {
    let mut ids: Vec<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
    ids.sort_unstable();
    let namespace = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, ID_DOMAIN.as_bytes());
    let digest = uuid::Uuid::new_v5(&namespace, ids.join("\n").as_bytes());
    format!("<digest-{digest}@{ID_DOMAIN}>")
}

/// `template` with `{ticker}` replaced by the lower-cased ticker, which is
/// how Kalshi's market pages are addressed.
pub(super) fn market_link(template: &str, ticker: &str) -> String {
    template.replace("{ticker}", &ticker.to_lowercase())
}

/// One alert as a few short lines: what fired, the numbers, the link.
fn block(alert: &FiredAlert, market_url: &str) -> String {
    let kind = &alert.condition_type;
    let market = &alert.market_data;
    let mut lines = vec![
        alert.summary(),
        String::new(),
        format!("Market:    {}", alert.ticker),
    ];
    if !market.title.trim().is_empty() {
        lines.push(format!("Title:     {}", market.title.trim()));
    }
    if !alert.label.trim().is_empty() {
        lines.push(format!("Label:     {}", alert.label.trim()));
    }
    lines.push(format!("Value:     {}", shown(kind, alert.current_value)));
    lines.push(format!("Threshold: {}", shown(kind, alert.threshold)));
    lines.push(format!(
        "Fired at:  {}",
        alert.triggered_at.format("%Y-%m-%d %H:%M:%S UTC")
    ));
    if market.yes_bid.is_some() || market.yes_ask.is_some() {
        let quote = |p: Option<Price>| p.map_or_else(|| "-".to_string(), format_price);
        lines.push(format!(
            "Yes bid/ask: {} / {}",
            quote(market.yes_bid),
            quote(market.yes_ask)
        ));
    }
    if let Some(volume) = market.volume {
        lines.push(format!("Volume:    {}", volume.normalize()));
    }
    lines.push(String::new());
    lines.push(market_link(market_url, &alert.ticker));
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// Where the message came from, and the alert ids a reader can quote when
/// comparing with the monitor's log.
fn footer(alerts: &[&FiredAlert]) -> String {
    let ids: Vec<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
    format!(
        "\n-- \nSent by kalshi-alerts. Alert id: {}\n",
        ids.join(", ")
    )
}

/// A value or threshold in the unit of its condition: prices as
/// probabilities with cent precision, spreads in cents, the rest as is.
fn shown(kind: &ConditionType, value: Price) -> String {
    match kind {
        ConditionType::SpreadAbove => format!("{}c", value.normalize()),
        kind if kind.threshold_is_probability() => format_price(value),
        _ => value.normalize().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{alert, alert_of};
    use super::*;

    const URL: &str = "https://kalshi.com/markets/{ticker}";

    #[test]
    fn subject_says_what_fired() {
        let a = alert("KXBTC-25DEC31-T100000", "0.655");
        assert_eq!(
            subject(&a),
            "Kalshi alert: KXBTC-25DEC31-T100000 price > 0.6 (now 0.655)"
        );
    }

    #[test]
    fn body_carries_title_value_threshold_utc_time_and_link() {
        let a = alert("KXBTC-25DEC31-T100000", "0.655");
        let text = body(&a, URL);
        for expected in [
            "KXBTC-25DEC31-T100000 price > 0.6 (now 0.655)",
            "Market:    KXBTC-25DEC31-T100000",
            "Title:     Will Bitcoin close above $100k?",
            "Label:     BTC over 60",
            "Value:     0.655",
            "Threshold: 0.60",
            "Fired at:  2026-01-12 22:08:10 UTC",
            "Yes bid/ask: 0.64 / 0.67",
            "Volume:    1234",
            "https://kalshi.com/markets/kxbtc-25dec31-t100000",
            &a.id,
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
    }

    #[test]
    fn spread_and_volume_values_keep_their_units() {
        let spread = alert_of("spread_above", "T", 5, "7");
        let text = body(&spread, URL);
        assert!(text.contains("Value:     7c"), "{text}");
        assert!(text.contains("Threshold: 5c"), "{text}");

        let volume = alert_of("volume_above", "T", 1000, "1500");
        let text = body(&volume, URL);
        assert!(text.contains("Value:     1500\n"), "{text}");
        assert!(text.contains("Threshold: 1000\n"), "{text}");
    }

    #[test]
    fn market_link_lower_cases_the_ticker_wherever_the_template_puts_it() {
        assert_eq!(
            market_link("https://example.com/m?t={ticker}&x=1", "ABC-1"),
            "https://example.com/m?t=abc-1&x=1"
        );
        assert_eq!(
            market_link("https://example.com/", "ABC"),
            "https://example.com/"
        );
    }

    #[test]
    fn message_id_is_the_alert_id_and_stable() {
        let a = alert("T", "0.7");
        assert_eq!(message_id(&a), format!("<{}@kalshi-alerts>", a.id));
        assert_eq!(message_id(&a), message_id(&a.clone()));
    }

    #[test]
    fn digest_id_depends_on_the_alerts_not_their_order() {
        let (a, b, c) = (alert("A", "0.7"), alert("B", "0.8"), alert("C", "0.9"));
        let ab = digest_message_id(&[a.clone(), b.clone()]);
        assert_eq!(ab, digest_message_id(&[b.clone(), a.clone()]));
        assert_ne!(ab, digest_message_id(&[a.clone(), c.clone()]));
        assert!(
            ab.starts_with("<digest-") && ab.ends_with("@kalshi-alerts>"),
            "{ab}"
        );
    }

    #[test]
    fn digest_subject_counts_alerts_and_names_a_few_markets() {
        let two = [alert("A", "0.7"), alert("B", "0.8")];
        assert_eq!(digest_subject(&two), "Kalshi: 2 alerts fired (A, B)");

        let many: Vec<_> = ["A", "B", "A", "C", "D", "E"]
            .iter()
            .map(|t| alert(t, "0.7"))
            .collect();
        assert_eq!(
            digest_subject(&many),
            "Kalshi: 6 alerts fired (A, B, C, +2 more)"
        );
    }

    #[test]
    fn digest_body_lists_every_alert() {
        let two = [alert("AAA", "0.7"), alert("BBB", "0.8")];
        let text = digest_body(&two, URL);
        assert!(text.starts_with("2 alerts fired in one check."), "{text}");
        assert!(
            text.contains("--- 1 of 2 ---\nAAA price > 0.6 (now 0.70)"),
            "{text}"
        );
        assert!(
            text.contains("--- 2 of 2 ---\nBBB price > 0.6 (now 0.80)"),
            "{text}"
        );
        assert!(text.contains("https://kalshi.com/markets/aaa"), "{text}");
        assert!(text.contains("https://kalshi.com/markets/bbb"), "{text}");
    }
}
