//! A market source that replays recorded Kalshi data, with no network.
//!
//! Frame 0 is the recorded market listings (291 demo markets in the legacy
//! payload and a production page in the transitional one). The recorded
//! quote history of further demo markets then moves those markets one point
//! per cycle, so crossing and move conditions have something to see.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{MarketSource, Scan, SourceError, Watchlist};

const DEMO_MARKETS: &str = include_str!("../../../data/recorded/kalshi/demo-2024-07-markets.json");
const PROD_PAGE: &str =
    include_str!("../../../data/recorded/kalshi/prod-2026-01-markets-page.json");
const DEMO_HISTORY: &str = include_str!("../../../data/recorded/kalshi/demo-2024-07-history.json");

/// Replays a fixed list of market listings, then a quote history.
pub struct ReplaySource {
    listings: Vec<Value>,
    /// Ticker to its recorded points, oldest first.
    history: BTreeMap<String, Vec<Value>>,
    frames: usize,
    next_frame: usize,
}

impl ReplaySource {
    /// The recorded data bundled with the program.
    pub fn bundled() -> ReplaySource {
        let mut listings = markets_of(DEMO_MARKETS);
        listings.extend(markets_of(PROD_PAGE));
        let history = serde_json::from_str(DEMO_HISTORY).expect("bundled history is JSON");
        ReplaySource::new(listings, history)
    }

    /// Replays `listings` every cycle, with the markets of `history`
    /// (`{ticker: [points]}`, as in the recorded history file) moving one
    /// point per cycle.
    pub fn new(listings: Vec<Value>, history: BTreeMap<String, Vec<Value>>) -> ReplaySource {
        let history: BTreeMap<_, _> = history
            .into_iter()
            .filter(|(_, points)| !points.is_empty())
            .map(|(ticker, mut points)| {
                points.sort_by_key(|p| p.get("ts").and_then(Value::as_i64).unwrap_or(0));
                (ticker, points)
            })
            .collect();
        let frames = history.values().map(Vec::len).max().unwrap_or(1);
        ReplaySource {
            listings,
            history,
            frames,
            next_frame: 0,
        }
    }

    /// How many cycles the replay has before it repeats its last frame.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// The open markets of frame `index`, as `GET /markets?status=open`
    /// would list them.
    fn frame(&self, index: usize) -> Vec<Value> {
        let moving = self.history.iter().map(|(ticker, points)| {
            let point = &points[index.min(points.len() - 1)];
            market_from_point(ticker, point)
        });
        let open = self.listings.iter().filter(|m| is_open(m)).cloned();
        open.chain(moving).collect()
    }
}

#[async_trait]
impl MarketSource for ReplaySource {
    async fn scan(&mut self, watched: &Watchlist) -> Result<Scan, SourceError> {
        let index = self.next_frame.min(self.frames - 1);
        self.next_frame += 1;

        let mut scan = Scan::default();
        scan.absorb_page(&self.frame(index), watched);
        scan.exhausted = index + 1 >= self.frames;
        tracing::debug!(frame = index, of = self.frames, "replayed frame");
        Ok(scan)
    }

    fn describe(&self) -> String {
        format!("recorded data ({} frames)", self.frames)
    }
}

/// The response statuses that the API's `status=open` filter lists.
fn is_open(market: &Value) -> bool {
    matches!(
        market.get("status").and_then(Value::as_str),
        Some("active" | "open")
    )
}

fn markets_of(page: &str) -> Vec<Value> {
    let page: Value = serde_json::from_str(page).expect("bundled page is JSON");
    match page.get("markets") {
        Some(Value::Array(markets)) => markets.clone(),
        _ => Vec::new(),
    }
}

/// A legacy-payload market record for one recorded history point.
fn market_from_point(ticker: &str, point: &Value) -> Value {
    let field = |name: &str| point.get(name).cloned().unwrap_or(Value::Null);
    json!({
        "ticker": ticker,
        "title": format!("{ticker} (replayed)"),
        "status": "active",
        "yes_bid": field("yes_bid"),
        "yes_ask": field("yes_ask"),
        "no_bid": field("no_bid"),
        "no_ask": field("no_ask"),
        "last_price": field("yes_price"),
        "volume": field("volume"),
        "open_interest": field("open_interest"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(tickers: &[&str]) -> Watchlist {
        Watchlist::of_tickers(tickers.iter().copied())
    }

    #[tokio::test]
    async fn bundled_replay_serves_listings_and_moves_history() {
        let mut replay = ReplaySource::bundled();
        assert_eq!(replay.frames(), 100);
        let watched = watch(&["EUCLIMATE-2030", "APRPOTUS-24JUL19-T40.8"]);

        let first = replay.scan(&watched).await.unwrap();
        assert_eq!(first.markets.len(), 2);
        assert!(!first.exhausted);
        let start = first.markets["APRPOTUS-24JUL19-T40.8"].clone();

        let mut moved = false;
        for _ in 1..replay.frames() {
            let scan = replay.scan(&watched).await.unwrap();
            moved |= scan.markets["APRPOTUS-24JUL19-T40.8"] != start;
            if scan.exhausted {
                break;
            }
        }
        assert!(moved, "the replayed history never moved the market");
    }
}
