//! Market sources: where a monitor cycle gets its markets.
//!
//! [`KalshiClient`] reads Kalshi's public REST API; [`ReplaySource`] replays
//! the recorded data bundled with the program, so the monitor runs with no
//! network. A scan keeps only the markets the conditions watch, so memory
//! stays flat however many markets the exchange lists.

mod kalshi;
mod page;
mod replay;

use std::collections::{BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use serde_json::Value;

use crate::market::{series_of_market, Market};

pub use kalshi::{
    check_base_url, ClientConfig, Environment, KalshiClient, RetryPolicy, ScanMode, ScanProgress,
    TICKERS_PER_REQUEST,
};
pub(crate) use page::MarketRecord;
pub use replay::ReplaySource;

/// How much of a server's value a log line quotes.
const LOGGED_VALUE: usize = 300;

/// What a scan must find: markets named by ticker, and every market of some
/// events and series. Tickers are upper case, as Kalshi writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watchlist {
    pub tickers: BTreeSet<String>,
    /// Event tickers, each standing for all the event's markets.
    pub events: BTreeSet<String>,
    /// Series tickers, each standing for all the series' markets.
    pub series: BTreeSet<String>,
}

impl Watchlist {
    /// A watchlist of these market tickers only.
    pub fn of_tickers<I, T>(tickers: I) -> Watchlist
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Watchlist {
            tickers: tickers.into_iter().map(Into::into).collect(),
            ..Watchlist::default()
        }
    }

    /// Whether nothing at all is watched.
    pub fn is_empty(&self) -> bool {
        self.tickers.is_empty() && self.events.is_empty() && self.series.is_empty()
    }

    /// Whether the market with this ticker, of this event (empty when the
    /// record names none), is watched: by its ticker, its event or its series.
    pub fn wants(&self, ticker: &str, event_ticker: &str) -> bool {
        self.tickers.contains(ticker)
            || (!event_ticker.is_empty() && self.events.contains(event_ticker))
            || (!self.series.is_empty()
                && self.series.contains(series_of_market(ticker, event_ticker)))
    }
}

/// What one cycle's scan found.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// The watched markets that were listed, by ticker: those the
    /// watchlist names, and those of its events and series.
    pub markets: HashMap<String, Market, foldhash::fast::RandomState>,
    /// Pages read.
    pub pages: usize,
    /// Market records read, watched or not.
    pub markets_read: usize,
    /// Records skipped because they could not be read.
    pub skipped: usize,
    /// The scan stopped at the page limit before the last page.
    pub truncated: bool,
    /// Every listing was read to its end, none refused and none cut short,
    /// but the event and series listings named in `unread_events` and
    /// `unread_series`: a watched market not in `markets` (nor in
    /// `unreadable`, nor of an unread scope) is not open now. Only then does
    /// the monitor forget what it kept of markets that are gone.
    pub complete: bool,
    /// Event and series listings refused or cut short in a targeted scan.
    pub unread_events: BTreeSet<String>,
    pub unread_series: BTreeSet<String>,
    /// Tickers of listed records that could not be read: open, but
    /// unknown this cycle.
    pub unreadable: HashSet<String>,
    /// A replay has served its last frame; later scans repeat it.
    pub exhausted: bool,
}

impl Scan {
    /// Reads one page's market records into the scan, skipping (with a
    /// warning naming the ticker) any record that cannot be read.
    pub fn absorb_page(&mut self, records: &[Value], watched: &Watchlist) {
        self.pages += 1;
        for record in records {
            self.markets_read += 1;
            match Market::from_json(record) {
                Ok(market) if watched.wants(&market.ticker, &market.event_ticker) => {
                    self.markets.insert(market.ticker.clone(), market);
                }
                Ok(_) => {}
                Err(e) => {
                    self.skipped += 1;
                    self.unreadable.insert(e.ticker.clone());
                    tracing::warn!(
                        ticker = %crate::display::for_log(&e.ticker, LOGGED_VALUE),
                        reason = %crate::display::for_log(&e.reason, LOGGED_VALUE),
                        "skipped malformed market"
                    );
                }
            }
        }
    }
}

/// Why a scan failed. The monitor logs it and tries again next cycle.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("GET {url} failed after {attempts} attempt(s): {reason}")]
    Unreachable {
        url: String,
        attempts: u32,
        reason: String,
    },
    #[error("GET {url} was refused with HTTP {status} after {attempts} attempt(s): {body}")]
    Refused {
        url: String,
        status: u16,
        attempts: u32,
        body: String,
    },
    #[error("page {page} of GET {url} is malformed: {reason}")]
    Malformed {
        url: String,
        page: usize,
        reason: String,
    },
    #[error("{0}")]
    Other(String),
}

/// Somewhere markets come from.
#[async_trait]
pub trait MarketSource: Send {
    /// Scans the markets once, keeping those `watched` wants.
    async fn scan(&mut self, watched: &Watchlist) -> Result<Scan, SourceError>;

    /// A short description for logs: the base URL, or "recorded data".
    fn describe(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_covers_the_markets_of_its_events_whatever_their_own_tickers() {
        let watched = Watchlist {
            series: ["OSCARPIC".to_string()].into(),
            ..Watchlist::default()
        };
        assert!(watched.wants("OSCAR", "OSCARPIC-24"));
        assert!(watched.wants("OSCARPIC-24-X", "OSCARPIC-24"));
        // A record that names no event falls back on its own ticker.
        assert!(watched.wants("OSCARPIC-24-Y", ""));
        assert!(!watched.wants("OSCARPICS-24-X", "OSCARPICS-24"));
        assert!(!watched.wants("OSCARPIC-24-Z", "OTHER-24"));
    }
}
