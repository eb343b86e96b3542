//! The synthetic exchange a benchmark serves, derived from the recorded production page.
//!
//! The five recorded markets, converted to the current payload generation (dollar strings,
//! fixed-point sizes, no cent integers), are repeated under new tickers. Markets come four to an
//! event and events are spread over a hundred series, named so that the series is the ticker up
//! to its first `-`, as the monitor reads it. One event in three is a multivariate combo, which
//! keeps the recorded `mve_*` fields; the others lose them. That mix averages about 2.3 KB a
//! market, the size of a current-generation record, with the recorded spread of sizes.
//!
//! Every market has its own quote and volume, drawn from its index, so that thresholds can be
//! set just below or above them and conditions fire where the benchmark wants them to.

use kalshi_test_server::fixtures;
use serde_json::{json, Value};

/// Markets per event.
pub const MARKETS_PER_EVENT: usize = 4;
/// Series the events are spread over.
const SERIES: usize = 100;
/// One event in this many is a multivariate combo.
const COMBO_EVERY: usize = 3;
/// How far a moving market's quote jumps, in price units (four cents).
pub const MOVE: i64 = 400;
/// One cent in price units (a price unit is 1/10,000 of a dollar).
pub const CENT: i64 = 100;

/// A market's YES quote in price units, or none (the market shows `0 / 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    pub bid: i64,
    pub ask: i64,
}

impl Quote {
    /// The midpoint, in price units; it may fall on a half unit, so this is twice it.
    pub fn mid_twice(self) -> i64 {
        self.bid + self.ask
    }

    /// The same quote moved up by [`MOVE`].
    pub fn moved(self) -> Quote {
        Quote {
            bid: self.bid + MOVE,
            ask: self.ask + MOVE,
        }
    }
}

/// The markets of one benchmark, described without their records: those are built one at a
/// time by [`MarketSet::record`], so that 100,000 of them never sit in memory as JSON values.
pub struct MarketSet {
    count: usize,
    /// The recorded markets in the current generation, as combos.
    combos: Vec<Value>,
    /// The same without their multivariate fields.
    plain: Vec<Value>,
}

impl MarketSet {
    pub fn new(count: usize) -> MarketSet {
        let combos: Vec<Value> = fixtures::transitional_markets()
            .iter()
            .map(fixtures::to_current)
            .collect();
        let plain = combos
            .iter()
            .map(|market| {
                let mut market = market.clone();
                let fields = market.as_object_mut().expect("a market is an object");
                fields.remove("mve_collection_ticker");
                fields.remove("mve_selected_legs");
                market
            })
            .collect();
        MarketSet {
            count,
            combos,
            plain,
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether market `index` is a multivariate combo.
    pub fn is_combo(&self, index: usize) -> bool {
        event_of(index).is_multiple_of(COMBO_EVERY)
    }

    pub fn series(&self, index: usize) -> String {
        let number = event_of(index) % SERIES;
        if self.is_combo(index) {
            format!("KXMVEBENCH{number:02}")
        } else {
            format!("KXBENCH{number:02}")
        }
    }

    pub fn event(&self, index: usize) -> String {
        format!("{}-E{:06}", self.series(index), event_of(index))
    }

    pub fn ticker(&self, index: usize) -> String {
        format!("{}-M{}", self.event(index), index % MARKETS_PER_EVENT)
    }

    /// Market `index`'s quote; about one market in fifty has none.
    pub fn quote(&self, index: usize) -> Option<Quote> {
        let draw = mix(index as u64);
        if draw.is_multiple_of(50) {
            return None;
        }
        let bid_cents = 1 + (draw >> 8) % 90;
        let spread_cents = 1 + (draw >> 16) % 5;
        // One quote in four sits on a half cent, as deci-cent markets do.
        let half_cent = if (draw >> 24).is_multiple_of(4) {
            CENT / 2
        } else {
            0
        };
        let bid = bid_cents as i64 * CENT + half_cent;
        Some(Quote {
            bid,
            ask: bid + spread_cents as i64 * CENT,
        })
    }

    /// Contracts traded in market `index`.
    pub fn volume(&self, index: usize) -> u64 {
        (mix(index as u64) >> 32) % 100_000
    }

    /// The record of market `index` as the API sends it; with `moved`, its quote is moved up by
    /// [`MOVE`] (a market the benchmark makes move between scans).
    pub fn record(&self, index: usize, moved: bool) -> Value {
        let templates = if self.is_combo(index) {
            &self.combos
        } else {
            &self.plain
        };
        let mut market = templates[index % templates.len()].clone();
        let series = self.series(index);
        market["ticker"] = json!(self.ticker(index));
        market["event_ticker"] = json!(self.event(index));
        market["status"] = json!("active");
        if self.is_combo(index) {
            market["mve_collection_ticker"] = json!(format!("{series}-R"));
        }
        let quote = self.quote(index).map(|q| if moved { q.moved() } else { q });
        let (bid, ask) = quote.map_or((0, 0), |q| (q.bid, q.ask));
        // Unquoted, this is the recorded `0 / 0` with its NO side at `1 / 1`.
        fixtures::set_yes_quote(&mut market, &dollars(bid), &dollars(ask));
        market["last_price_dollars"] = json!(dollars(bid));
        fixtures::set_volume(&mut market, &self.volume(index).to_string());
        market
    }
}

fn event_of(index: usize) -> usize {
    index / MARKETS_PER_EVENT
}

/// Price units as a dollar string with four decimals: 4550 is `"0.4550"`.
pub fn dollars(units: i64) -> String {
    format!("{}.{:04}", units / 10_000, units % 10_000)
}

/// A well-spread 64-bit value from `n` (SplitMix64's finaliser), so that neighbouring markets
/// get unrelated quotes.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_current_generation_with_the_names_the_monitor_reads() {
        let set = MarketSet::new(100);
        let record = set.record(5, false);
        assert_eq!(fixtures::generation(&record), fixtures::Generation::Current);
        let ticker = record["ticker"].as_str().unwrap();
        let event = record["event_ticker"].as_str().unwrap();
        assert!(ticker.starts_with(&format!("{event}-")));
        assert_eq!(ticker.split('-').next().unwrap(), set.series(5));
    }

    #[test]
    fn a_third_are_combos_and_the_average_record_is_near_2_3_kb() {
        let set = MarketSet::new(3000);
        let combos = (0..set.len()).filter(|&i| set.is_combo(i)).count();
        assert!((900..=1100).contains(&combos), "{combos}");
        let bytes: usize = (0..set.len())
            .map(|i| serde_json::to_vec(&set.record(i, false)).unwrap().len())
            .sum();
        let average = bytes / set.len();
        assert!((2100..=2600).contains(&average), "{average}");
    }

    #[test]
    fn quotes_are_inside_a_dollar_and_a_moved_one_too() {
        let set = MarketSet::new(10_000);
        for i in 0..set.len() {
            if let Some(quote) = set.quote(i) {
                assert!(0 < quote.bid && quote.bid < quote.ask);
                assert!(quote.moved().ask < 10_000);
            }
        }
        assert_eq!(dollars(4550), "0.4550");
    }
}
