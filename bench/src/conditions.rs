//! The conditions a benchmark watches its markets with, as the records of `alerts.json`.
//!
//! Conditions are spread evenly over the market set (one market each while there are fewer
//! conditions than markets, several a market beyond), and their kinds take turns. One
//! condition in twenty of the kinds that compare a quote with a level gets a level its market
//! is past, so a first scan fires about one condition in thirty; the rest are set where their
//! market is not. Crossing and move conditions sit between a market's two quotes, so they fire
//! on every scan of a moving market and never on a still one.

use serde_json::{json, Value};

use crate::markets::{MarketSet, Quote, CENT, MOVE};

/// The kinds, in the order conditions take them.
const KINDS: [&str; 6] = [
    "price_above",
    "price_below",
    "spread_above",
    "volume_above",
    "price_crosses",
    "edge_detected",
];

/// One condition in this many (of the level kinds) is set to fire on the first scan.
const FIRING_EVERY: usize = 20;

/// The market condition `number` of `count` watches.
pub fn market_of(number: usize, count: usize, markets: usize) -> usize {
    if count <= markets {
        number * (markets / count)
    } else {
        number % markets
    }
}

/// The whole `alerts.json` of `count` conditions over `set`, each on the market `offset` past
/// the one [`market_of`] picks.
pub fn alerts_file(set: &MarketSet, count: usize, offset: usize) -> Value {
    let conditions: Vec<Value> = (0..count)
        .map(|number| {
            let market = (market_of(number, count, set.len()) + offset) % set.len();
            condition(set, number, market)
        })
        .collect();
    json!({ "conditions": conditions })
}

fn condition(set: &MarketSet, number: usize, market: usize) -> Value {
    let kind = KINDS[number % KINDS.len()];
    let fires = number.is_multiple_of(FIRING_EVERY);
    let ticker = set.ticker(market);
    let threshold = threshold(kind, fires, set.quote(market), set.volume(market));
    json!({
        "id": format!("00000000-0000-4000-8000-{number:012}"),
        "condition_type": kind,
        "ticker": ticker,
        "threshold": threshold,
        "label": format!("bench {kind} {ticker}"),
        "created_at": "2026-01-12T00:00:00.000000+00:00",
    })
}

/// The condition's level: past its market's quote when it `fires`, well away otherwise.
fn threshold(kind: &str, fires: bool, quote: Option<Quote>, volume: u64) -> f64 {
    let probability = |units: i64| units as f64 / 10_000.0;
    let Some(quote) = quote else {
        // Nothing fires on an unquoted market but a volume condition.
        return match kind {
            "volume_above" if fires => volume as f64 / 2.0,
            "volume_above" => 1e9,
            "spread_above" => 50.0,
            "edge_detected" => 0.03,
            _ => 0.5,
        };
    };
    let mid_twice = quote.mid_twice();
    match (kind, fires) {
        ("price_above", true) => probability((mid_twice / 2) - CENT),
        ("price_above", false) => 0.99,
        ("price_below", true) => probability((mid_twice / 2) + CENT),
        ("price_below", false) => 0.01,
        ("spread_above", true) => (quote.ask - quote.bid) as f64 / CENT as f64 - 0.5,
        ("spread_above", false) => 50.0,
        ("volume_above", true) => volume as f64 / 2.0,
        ("volume_above", false) => 1e9,
        ("price_crosses", _) => probability((mid_twice + MOVE) / 2),
        _ => probability(MOVE * 3 / 4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_spread_over_distinct_markets_until_there_are_more_of_them() {
        assert_eq!(market_of(3, 100, 20_000), 600);
        assert_eq!(market_of(1_500, 10_000, 1_000), 500);
    }

    #[test]
    fn a_firing_price_level_sits_below_the_midpoint() {
        let quote = Quote {
            bid: 4500,
            ask: 4700,
        };
        assert_eq!(threshold("price_above", true, Some(quote), 0), 0.45);
        assert_eq!(threshold("price_crosses", false, Some(quote), 0), 0.48);
        assert_eq!(threshold("spread_above", true, Some(quote), 0), 1.5);
    }

    #[test]
    fn the_file_holds_one_record_per_condition() {
        let set = MarketSet::new(200);
        let file = alerts_file(&set, 30, 0);
        let conditions = file["conditions"].as_array().unwrap();
        assert_eq!(conditions.len(), 30);
        assert_eq!(conditions[4]["condition_type"], "price_crosses");
    }
}
