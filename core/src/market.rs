//! The market model: one Kalshi market as the monitor sees it.
//!
//! Reads all three generations of the `/markets` payload (integer cents,
//! cents plus dollar strings, dollar strings only) into one shape. A missing
//! price is "no quote", never zero, and unknown fields are ignored.

use std::borrow::Cow;

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::price::{cents_to_dollars, parse_decimal, Price};
use crate::source::MarketRecord;

/// One market's identity, YES quote and traded volume.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Market {
    pub ticker: String,
    pub title: String,
    /// The status as the API reported it (`active`, `open`, `closed`, ...).
    pub status: String,
    /// The event the market belongs to; empty when the record names none.
    pub event_ticker: String,
    /// Best YES bid in dollars; `None` when the payload has no bid field.
    pub yes_bid: Option<Price>,
    /// Best YES ask in dollars; `None` when the payload has no ask field.
    pub yes_ask: Option<Price>,
    /// Contracts traded; fractional in the current payload generation.
    pub volume: Option<Decimal>,
}

/// A two-sided YES quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    pub bid: Price,
    pub ask: Price,
}

impl Quote {
    /// (bid + ask) / 2: the market's implied probability.
    pub fn midpoint(&self) -> Price {
        (self.bid + self.ask) / Decimal::TWO
    }

    /// Ask minus bid, in cents.
    pub fn spread_cents(&self) -> Decimal {
        (self.ask - self.bid) * Decimal::ONE_HUNDRED
    }
}

/// Why one market record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("market {ticker}: {reason}")]
pub struct MarketError {
    /// The ticker, or `<unknown>` when the record has none.
    pub ticker: String,
    pub reason: String,
}

impl Market {
    /// Reads one market object of any payload generation.
    pub fn from_json(value: &Value) -> Result<Market, MarketError> {
        let fields = value.as_object().ok_or_else(|| MarketError {
            ticker: "<unknown>".into(),
            reason: "record is not a JSON object".into(),
        })?;
        let ticker = match fields.get("ticker") {
            Some(Value::String(t)) if !t.trim().is_empty() => t.clone(),
            _ => {
                return Err(MarketError {
                    ticker: "<unknown>".into(),
                    reason: "record has no ticker".into(),
                })
            }
        };
        let fail = |reason: String| MarketError {
            ticker: ticker.clone(),
            reason,
        };

        Ok(Market {
            title: text_field(fields, "title"),
            status: text_field(fields, "status"),
            event_ticker: text_field(fields, "event_ticker"),
            yes_bid: price_field(fields, "yes_bid").map_err(fail)?,
            yes_ask: price_field(fields, "yes_ask").map_err(fail)?,
            volume: size_field(fields, "volume").map_err(fail)?,
            ticker: ticker.clone(),
        })
    }

    /// The two-sided YES quote, or `None` when the market is not quoted.
    ///
    /// Kalshi shows an unquoted market as bid 0 / ask 0 or as the placeholder
    /// bid 0 / ask 1.00; both mean "no quote", and a midpoint of 0 or 0.50
    /// computed from them would fire price conditions on nothing.
    pub fn quote(&self) -> Option<Quote> {
        let (bid, ask) = (self.yes_bid?, self.yes_ask?);
        let placeholder = bid.is_zero() && (ask.is_zero() || ask == Decimal::ONE);
        if placeholder || ask < bid {
            return None;
        }
        Some(Quote { bid, ask })
    }

    /// Whether `other` holds what the state database keeps of a market
    /// (ticker, title, status, quote, volume) unchanged.
    pub fn same_stored_fields(&self, other: &Market) -> bool {
        self.ticker == other.ticker
            && self.yes_bid == other.yes_bid
            && self.yes_ask == other.yes_ask
            && self.volume == other.volume
            && self.status == other.status
            && self.title == other.title
    }

    /// The YES midpoint probability, when the market is quoted.
    pub fn midpoint(&self) -> Option<Price> {
        self.quote().map(|q| q.midpoint())
    }

    /// The series the market belongs to: see [`series_of_market`].
    pub fn series_ticker(&self) -> &str {
        series_of_market(&self.ticker, &self.event_ticker)
    }
}

/// The series of a market or event ticker: the part before the first `-`.
///
/// Kalshi builds an event's ticker from its series' (`KXHIGHNY` ->
/// `KXHIGHNY-24JUL14`) and a market's from its event's (`KXHIGHNY-24JUL14-T95`),
/// and market records carry no series field, so this is how a full scan tells
/// which markets a series scope covers. A ticker without a `-` is its own series.
pub fn series_of(ticker: &str) -> &str {
    ticker.split_once('-').map_or(ticker, |(series, _)| series)
}

/// The series of the market `ticker` of the event `event_ticker` (empty
/// when unknown): the event's series. A market's own ticker does not
/// always start with it (the demo exchange's `OSCAR` is a market of event
/// `OSCARPIC-24`, series `OSCARPIC`), so it is the fallback only.
pub fn series_of_market<'a>(ticker: &'a str, event_ticker: &'a str) -> &'a str {
    if event_ticker.is_empty() {
        series_of(ticker)
    } else {
        series_of(event_ticker)
    }
}

/// A market as `kalshi markets show` presents it: the quote the monitor
/// uses, and what a trader looks at before setting an alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MarketDetail {
    #[serde(flatten)]
    pub market: Market,
    /// The YES midpoint, when quoted.
    pub midpoint: Option<Price>,
    pub last_price: Option<Price>,
    pub open_interest: Option<Decimal>,
    /// As the API wrote it (RFC 3339); empty when absent.
    pub close_time: String,
}

impl MarketDetail {
    /// Reads one market object of any payload generation, with its extras.
    pub fn from_json(value: &Value) -> Result<MarketDetail, MarketError> {
        let market = Market::from_json(value)?;
        let fields = value.as_object().expect("Market::from_json checked it");
        let fail = |reason: String| MarketError {
            ticker: market.ticker.clone(),
            reason,
        };
        Ok(MarketDetail {
            midpoint: market.midpoint().map(|m| m.normalize()),
            last_price: price_field(fields, "last_price").map_err(fail)?,
            open_interest: size_field(fields, "open_interest").map_err(fail)?,
            close_time: text_field(fields, "close_time"),
            market,
        })
    }
}

fn text_field(fields: &Map<String, Value>, name: &str) -> String {
    match fields.get(name) {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// Reads `NAME_dollars` (a decimal string) or else `NAME` (integer cents).
fn price_field(fields: &Map<String, Value>, name: &str) -> Result<Option<Price>, String> {
    let dollars = fields.get(&format!("{name}_dollars"));
    price_of(name, dollars, fields.get(name))
}

/// A price from its `NAME_dollars` value, or else its `NAME` value in cents.
fn price_of(
    name: &str,
    dollars: Option<&Value>,
    cents: Option<&Value>,
) -> Result<Option<Price>, String> {
    match dollars {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => {
            let price = parse_decimal(text).map_err(|e| format!("{name}_dollars: {e}"))?;
            return check_price_range(&format!("{name}_dollars"), price).map(Some);
        }
        Some(other) => return Err(format!("{name}_dollars: expected a string, got {other}")),
    }

    match cents {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let cents = n
                .as_i64()
                .ok_or_else(|| format!("{name}: expected whole cents, got {n}"))?;
            check_price_range(name, cents_to_dollars(cents)).map(Some)
        }
        Some(other) => Err(format!("{name}: expected whole cents, got {other}")),
    }
}

fn check_price_range(key: &str, price: Price) -> Result<Price, String> {
    if price < Decimal::ZERO || price > Decimal::ONE {
        return Err(format!("{key}: price {price} is outside 0..=1 dollars"));
    }
    Ok(price)
}

/// Reads `NAME_fp` (a decimal string) or else `NAME` (an integer count).
fn size_field(fields: &Map<String, Value>, name: &str) -> Result<Option<Decimal>, String> {
    size_of(name, fields.get(&format!("{name}_fp")), fields.get(name))
}

/// A size from its `NAME_fp` value, or else its `NAME` value as a count.
fn size_of(
    name: &str,
    fp: Option<&Value>,
    count: Option<&Value>,
) -> Result<Option<Decimal>, String> {
    match fp {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => {
            return parse_decimal(text)
                .map(Some)
                .map_err(|e| format!("{name}_fp: {e}"))
        }
        Some(other) => return Err(format!("{name}_fp: expected a string, got {other}")),
    }

    match count {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(|count| Some(Decimal::from(count)))
            .ok_or_else(|| format!("{name}: expected a whole count, got {n}")),
        Some(other) => Err(format!("{name}: expected a whole count, got {other}")),
    }
}

impl Market {
    /// Reads a market from the fields a page reader borrowed, when `wanted`
    /// holds for its ticker and event ticker: a record no condition looks at
    /// is read no further than those two. `Ok(None)` when not wanted.
    pub(crate) fn from_record(
        record: &MarketRecord<'_>,
        wanted: impl Fn(&str, &str) -> bool,
    ) -> Result<Option<Market>, MarketError> {
        let ticker = match record.ticker.map(text_of) {
            Some(Some(ticker)) if !ticker.trim().is_empty() => ticker,
            _ => {
                return Err(MarketError {
                    ticker: "<unknown>".into(),
                    reason: "record has no ticker".into(),
                })
            }
        };
        let event_ticker = record.event_ticker.and_then(text_of).unwrap_or_default();
        if !wanted(&ticker, &event_ticker) {
            return Ok(None);
        }
        let fail = |reason: String| MarketError {
            ticker: ticker.to_string(),
            reason,
        };
        let value =
            |raw: Option<&RawValue>| raw.and_then(|raw| serde_json::from_str(raw.get()).ok());
        let (bid_dollars, bid) = (value(record.yes_bid_dollars), value(record.yes_bid));
        let (ask_dollars, ask) = (value(record.yes_ask_dollars), value(record.yes_ask));
        let (volume_fp, volume) = (value(record.volume_fp), value(record.volume));
        Ok(Some(Market {
            title: record
                .title
                .and_then(text_of)
                .unwrap_or_default()
                .into_owned(),
            status: record
                .status
                .and_then(text_of)
                .unwrap_or_default()
                .into_owned(),
            yes_bid: price_of("yes_bid", bid_dollars.as_ref(), bid.as_ref()).map_err(fail)?,
            yes_ask: price_of("yes_ask", ask_dollars.as_ref(), ask.as_ref()).map_err(fail)?,
            volume: size_of("volume", volume_fp.as_ref(), volume.as_ref()).map_err(fail)?,
            event_ticker: event_ticker.into_owned(),
            ticker: ticker.into_owned(),
        }))
    }
}

/// A JSON string's text, borrowed when it has no escapes; `None` when the
/// value is not a string (a text field of another type reads as absent).
fn text_of(raw: &RawValue) -> Option<Cow<'_, str>> {
    if let Ok(text) = serde_json::from_str::<&str>(raw.get()) {
        return Some(Cow::Borrowed(text));
    }
    serde_json::from_str::<String>(raw.get())
        .ok()
        .map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::from_str_exact(text).unwrap()
    }

    #[test]
    fn legacy_cents_are_read_as_dollars() {
        let m = Market::from_json(&json!({
            "ticker": "EUCLIMATE-2030", "title": "", "status": "active",
            "yes_bid": 35, "yes_ask": 44, "volume": 39
        }))
        .unwrap();
        assert_eq!(m.yes_bid, Some(d("0.35")));
        assert_eq!(m.yes_ask, Some(d("0.44")));
        assert_eq!(m.volume, Some(d("39")));
        assert_eq!(m.midpoint(), Some(d("0.395")));
        assert_eq!(m.quote().unwrap().spread_cents(), d("9"));
    }

    #[test]
    fn dollar_strings_win_over_cents_and_keep_sub_penny() {
        let m = Market::from_json(&json!({
            "ticker": "T", "yes_bid": 45, "yes_bid_dollars": "0.4550",
            "yes_ask": 46, "yes_ask_dollars": "0.4600", "volume": 10
        }))
        .unwrap();
        assert_eq!(m.yes_bid, Some(d("0.455")));
        assert_eq!(m.midpoint(), Some(d("0.4575")));
        assert_eq!(m.quote().unwrap().spread_cents(), d("0.5"));
    }

    #[test]
    fn current_generation_reads_fixed_point_sizes() {
        let m = Market::from_json(&json!({
            "ticker": "T", "yes_bid_dollars": "0.1000", "yes_ask_dollars": "0.1200",
            "volume_fp": "5400.50", "brand_new_field": {"x": 1}
        }))
        .unwrap();
        assert_eq!(m.volume, Some(d("5400.5")));
    }

    #[test]
    fn missing_prices_are_no_quote_not_zero() {
        let m = Market::from_json(&json!({"ticker": "T", "yes_ask_dollars": "0.5000"})).unwrap();
        assert_eq!(m.yes_bid, None);
        assert_eq!(m.quote(), None);
        assert_eq!(m.midpoint(), None);
        assert_eq!(m.volume, None);
    }

    #[test]
    fn placeholder_quotes_are_no_quote() {
        for (bid, ask) in [(0, 0), (0, 100)] {
            let m =
                Market::from_json(&json!({"ticker": "T", "yes_bid": bid, "yes_ask": ask})).unwrap();
            assert_eq!(m.quote(), None, "{bid}/{ask} was taken as a quote");
        }
        let thin = Market::from_json(&json!({"ticker": "T", "yes_bid": 0, "yes_ask": 3})).unwrap();
        assert_eq!(thin.midpoint(), Some(d("0.015")));
    }

    #[test]
    fn malformed_records_name_the_ticker() {
        let err =
            Market::from_json(&json!({"ticker": "BAD-1", "yes_bid_dollars": "zero"})).unwrap_err();
        assert_eq!(err.ticker, "BAD-1");
        assert!(err.to_string().contains("yes_bid_dollars"), "{err}");

        let err = Market::from_json(&json!({"ticker": "BAD-2", "yes_ask": 250})).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");

        let err = Market::from_json(&json!({"title": "no ticker"})).unwrap_err();
        assert_eq!(err.ticker, "<unknown>");
    }
}
