//! Recorded Kalshi market data and helpers that derive scripted data sets from it.
//!
//! The recordings in `data/recorded/kalshi/` are compiled in with `include_str!`, so tests find
//! them from any working directory. They are never modified; every helper here works on copies.
//!
//! Kalshi's market payload exists in three generations (see the recordings' README): *legacy*
//! (integer cents), *transitional* (cents and `*_dollars` strings) and *current* (only
//! `*_dollars` prices and `*_fp` sizes). The helpers keep a market in its own generation so that
//! a scripted quote change does not silently change which fields a client has to read.

use serde_json::{Map, Value};

use crate::decimal::{format_scaled, parse_scaled};

const LEGACY_PAGE: &str = include_str!("../../data/recorded/kalshi/demo-2024-07-markets.json");
const TRANSITIONAL_PAGE: &str =
    include_str!("../../data/recorded/kalshi/prod-2026-01-markets-page.json");
const SINGLE_MARKET: &str =
    include_str!("../../data/recorded/kalshi/prod-2026-01-market-single.json");
const HISTORY: &str = include_str!("../../data/recorded/kalshi/demo-2024-07-history.json");

/// Price fields that legacy and transitional markets carry as integer cents. Each has a
/// `<name>_dollars` counterpart in the transitional and current generations.
const CENT_PRICE_FIELDS: [&str; 10] = [
    "yes_bid",
    "yes_ask",
    "no_bid",
    "no_ask",
    "last_price",
    "previous_price",
    "previous_yes_bid",
    "previous_yes_ask",
    "liquidity",
    "notional_value",
];

/// Size fields that older generations carry as integer contracts and the current generation as
/// `<name>_fp` strings with two decimals.
const INTEGER_SIZE_FIELDS: [&str; 3] = ["volume", "volume_24h", "open_interest"];

/// Prices are dollars with four decimals (a tenth of a cent is a valid tick).
const PRICE_SCALE: u32 = 4;
/// Sizes are contracts with two decimals.
const SIZE_SCALE: u32 = 2;
/// One dollar in price units.
const ONE_DOLLAR: i64 = 10_000;
/// One cent in price units.
const ONE_CENT: i64 = 100;
/// One contract in size units.
const ONE_CONTRACT: i64 = 100;

/// Which generation of the market payload a market object is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// Integer-cent prices and integer sizes only.
    Legacy,
    /// Integer cents and `*_dollars` strings side by side.
    Transitional,
    /// `*_dollars` prices and `*_fp` sizes; no integer cents.
    Current,
}

/// The 291 markets of the demo exchange recording (legacy generation).
pub fn legacy_markets() -> Vec<Value> {
    markets_of(LEGACY_PAGE, "demo-2024-07-markets.json")
}

/// The 5 production markets of the recorded page (transitional generation).
pub fn transitional_markets() -> Vec<Value> {
    markets_of(TRANSITIONAL_PAGE, "prod-2026-01-markets-page.json")
}

/// The `market` object of the recorded `GET /markets/{ticker}` response (transitional).
pub fn single_market() -> Value {
    let mut response = parse_recording(SINGLE_MARKET, "prod-2026-01-market-single.json");
    response["market"].take()
}

/// The recorded quote history: ticker -> list of points with `yes_bid`, `yes_ask`, `no_bid`,
/// `no_ask`, `volume`, `open_interest`, `ts` and `yes_price` (all integers, prices in cents).
/// Its tickers do not appear in [`legacy_markets`]; use [`market_from_history_point`].
pub fn history() -> Map<String, Value> {
    match parse_recording(HISTORY, "demo-2024-07-history.json") {
        Value::Object(by_ticker) => by_ticker,
        other => panic!("demo-2024-07-history.json is not an object: {other}"),
    }
}

/// Tells which payload generation `market` is in, from the fields it carries.
pub fn generation(market: &Value) -> Generation {
    let fields = market_object(market);
    let has_cents = CENT_PRICE_FIELDS
        .iter()
        .any(|name| fields.contains_key(*name));
    let has_dollars = fields.keys().any(|name| name.ends_with("_dollars"));
    match (has_cents, has_dollars) {
        (true, false) => Generation::Legacy,
        (true, true) => Generation::Transitional,
        (false, _) => Generation::Current,
    }
}

/// Converts a legacy or transitional market to the current generation.
///
/// Integer-cent price fields are dropped; their `<name>_dollars` strings are kept when present
/// and otherwise computed exactly from the cents (35 -> `"0.3500"`). Integer `volume`,
/// `volume_24h` and `open_interest` are replaced by `volume_fp`, `volume_24h_fp` and
/// `open_interest_fp` strings (`5400` -> `"5400.00"`). Other fields are copied unchanged.
///
/// # Panics
/// If `market` is not a JSON object.
pub fn to_current(market: &Value) -> Value {
    let mut fields = market_object(market).clone();
    for name in CENT_PRICE_FIELDS {
        replace_integer(&mut fields, name, "_dollars", |cents| {
            format_scaled(cents * ONE_CENT, PRICE_SCALE)
        });
    }
    for name in INTEGER_SIZE_FIELDS {
        replace_integer(&mut fields, name, "_fp", |contracts| {
            format_scaled(contracts * ONE_CONTRACT, SIZE_SCALE)
        });
    }
    Value::Object(fields)
}

/// Sets a market's YES quote, keeping the market in its generation.
///
/// `bid` and `ask` are exact dollar decimals such as `"0.45"` or `"0.4550"`. Markets with dollar
/// fields (transitional, current) get `yes_bid_dollars` / `yes_ask_dollars` with four decimals;
/// markets with cent fields (legacy, transitional) get integer `yes_bid` / `yes_ask`, or lose
/// that field when the price is not a whole cent, as a real transitional market would not show
/// a sub-penny price in cents. The NO side is kept consistent the same way:
/// `no_bid = 1 - ask` and `no_ask = 1 - bid`.
///
/// A legacy market given a sub-penny price therefore ends up with no YES/NO quote field at all,
/// which is how to test that a client does not read a missing price as zero.
///
/// # Panics
/// If `market` is not an object, or `bid` / `ask` is not a decimal between 0 and 1 with at
/// most four significant fraction digits.
pub fn set_yes_quote(market: &mut Value, bid: &str, ask: &str) {
    let bid_units = parse_price(bid);
    let ask_units = parse_price(ask);
    let generation = generation(market);
    let fields = market_object_mut(market);
    write_price(fields, generation, "yes_bid", bid_units);
    write_price(fields, generation, "yes_ask", ask_units);
    write_price(fields, generation, "no_bid", ONE_DOLLAR - ask_units);
    write_price(fields, generation, "no_ask", ONE_DOLLAR - bid_units);
}

/// Sets a market's traded volume, keeping the market in its generation.
///
/// `volume` is a decimal number of contracts such as `"1234"` or `"12.50"`. Legacy and
/// transitional markets get the integer `volume` (dropped when the volume is fractional, which
/// they cannot express); current markets, and any market that already has `volume_fp`, get
/// `volume_fp` with two decimals.
///
/// # Panics
/// If `market` is not an object or `volume` is not a non-negative decimal with at most two
/// significant fraction digits.
pub fn set_volume(market: &mut Value, volume: &str) {
    let units = parse_scaled(volume, SIZE_SCALE)
        .filter(|units| *units >= 0)
        .unwrap_or_else(|| panic!("volume {volume:?} is not a non-negative decimal"));
    let generation = generation(market);
    let fields = market_object_mut(market);
    if generation == Generation::Current || fields.contains_key("volume_fp") {
        fields.insert("volume_fp".into(), format_scaled(units, SIZE_SCALE).into());
    }
    if generation != Generation::Current {
        write_whole(fields, "volume", units, ONE_CONTRACT);
    }
}

/// Builds a legacy-generation market for a history ticker from one of its history points.
///
/// The market has the ticker, an `event_ticker` (the ticker up to its last `-`, Kalshi's naming
/// scheme), title `"<ticker> (replayed)"`, status `active`, the point's YES/NO bid and ask,
/// `volume` and `open_interest`, and `last_price` taken from the point's `yes_price`. Fields
/// missing from the point are left out rather than invented.
pub fn market_from_history_point(ticker: &str, point: &Value) -> Value {
    let event_ticker = ticker.rsplit_once('-').map_or(ticker, |(event, _)| event);
    let mut market = Map::new();
    market.insert("ticker".into(), ticker.into());
    market.insert("event_ticker".into(), event_ticker.into());
    market.insert("title".into(), format!("{ticker} (replayed)").into());
    market.insert("status".into(), "active".into());
    for name in [
        "yes_bid",
        "yes_ask",
        "no_bid",
        "no_ask",
        "volume",
        "open_interest",
    ] {
        if let Some(value) = point.get(name) {
            market.insert(name.into(), value.clone());
        }
    }
    if let Some(yes_price) = point.get("yes_price") {
        market.insert("last_price".into(), yes_price.clone());
    }
    Value::Object(market)
}

fn markets_of(page: &str, file: &str) -> Vec<Value> {
    match parse_recording(page, file)["markets"].take() {
        Value::Array(markets) => markets,
        other => panic!("{file} has no markets array: {other}"),
    }
}

fn parse_recording(text: &str, file: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("{file} is not valid JSON: {error}"))
}

fn market_object(market: &Value) -> &Map<String, Value> {
    market.as_object().expect("a market must be a JSON object")
}

fn market_object_mut(market: &mut Value) -> &mut Map<String, Value> {
    market
        .as_object_mut()
        .expect("a market must be a JSON object")
}

/// Removes the field `name` and, if it held an integer and `<name><suffix>` is not already
/// there, stores the integer converted by `render` under that name.
fn replace_integer(
    fields: &mut Map<String, Value>,
    name: &str,
    suffix: &str,
    render: impl Fn(i64) -> String,
) {
    let Some(old) = fields.remove(name) else {
        return;
    };
    let new_name = format!("{name}{suffix}");
    if let Some(integer) = old.as_i64() {
        fields
            .entry(new_name)
            .or_insert_with(|| render(integer).into());
    }
}

fn parse_price(price: &str) -> i64 {
    parse_scaled(price, PRICE_SCALE)
        .filter(|units| (0..=ONE_DOLLAR).contains(units))
        .unwrap_or_else(|| panic!("price {price:?} is not an exact decimal from 0 to 1"))
}

fn write_price(fields: &mut Map<String, Value>, generation: Generation, name: &str, units: i64) {
    if generation != Generation::Legacy {
        let text = format_scaled(units, PRICE_SCALE);
        fields.insert(format!("{name}_dollars"), text.into());
    }
    if generation != Generation::Current {
        write_whole(fields, name, units, ONE_CENT);
    }
}

/// Stores `units / per_whole` as an integer field, or removes the field when `units` is not a
/// whole multiple: an integer field cannot hold the value, and a rounded one would be a lie.
fn write_whole(fields: &mut Map<String, Value>, name: &str, units: i64, per_whole: i64) {
    if units % per_whole == 0 {
        fields.insert(name.into(), (units / per_whole).into());
    } else {
        fields.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn legacy_market(ticker: &str) -> Value {
        legacy_markets()
            .into_iter()
            .find(|market| market["ticker"] == ticker)
            .expect("ticker is in the legacy recording")
    }

    #[test]
    fn recordings_load_with_their_documented_sizes() {
        assert_eq!(legacy_markets().len(), 291);
        assert_eq!(transitional_markets().len(), 5);
        assert_eq!(
            single_market()["ticker"],
            transitional_markets()[0]["ticker"]
        );
        let history = history();
        assert_eq!(history.len(), 100);
        let tickers: Vec<Value> = legacy_markets()
            .into_iter()
            .map(|mut m| m["ticker"].take())
            .collect();
        assert!(history
            .keys()
            .all(|ticker| !tickers.contains(&json!(ticker))));
    }

    #[test]
    fn generations_are_recognised() {
        assert_eq!(generation(&legacy_markets()[0]), Generation::Legacy);
        assert_eq!(
            generation(&transitional_markets()[0]),
            Generation::Transitional
        );
        assert_eq!(
            generation(&to_current(&legacy_markets()[0])),
            Generation::Current
        );
    }

    #[test]
    fn to_current_turns_legacy_cents_into_exact_dollar_strings() {
        let current = to_current(&legacy_market("EUCLIMATE-2030"));
        assert_eq!(current["yes_bid_dollars"], "0.3500");
        assert_eq!(current["yes_ask_dollars"], "0.4400");
        assert_eq!(current["no_bid_dollars"], "0.5600");
        assert_eq!(current["no_ask_dollars"], "0.6500");
        assert_eq!(current["last_price_dollars"], "0.3500");
        assert_eq!(current["liquidity_dollars"], "1226.5000");
        assert_eq!(current["volume_fp"], "39.00");
        assert_eq!(current["volume_24h_fp"], "0.00");
        assert_eq!(current["open_interest_fp"], "1.00");
        assert_eq!(current["ticker"], "EUCLIMATE-2030");
    }

    #[test]
    fn to_current_leaves_no_integer_price_or_size_fields() {
        let all = legacy_markets().into_iter().chain(transitional_markets());
        for market in all {
            let current = to_current(&market);
            for name in CENT_PRICE_FIELDS.iter().chain(&INTEGER_SIZE_FIELDS) {
                assert!(
                    current.get(*name).is_none(),
                    "{name} left in {}",
                    current["ticker"]
                );
            }
            for name in ["yes_bid", "yes_ask", "no_bid", "no_ask", "last_price"] {
                let dollars = &current[format!("{name}_dollars")];
                assert!(
                    dollars.is_string(),
                    "{name}_dollars in {}",
                    current["ticker"]
                );
            }
            assert!(current["volume_fp"]
                .as_str()
                .is_some_and(|fp| fp.ends_with(".00")));
        }
    }

    #[test]
    fn to_current_keeps_transitional_dollar_strings_and_handles_negative_cents() {
        let mut market = transitional_markets()[0].clone();
        market["yes_bid"] = json!(29);
        market["yes_bid_dollars"] = json!("0.2950");
        market["liquidity"] = json!(-5);
        market.as_object_mut().unwrap().remove("liquidity_dollars");
        let current = to_current(&market);
        assert_eq!(current["yes_bid_dollars"], "0.2950");
        assert_eq!(current["liquidity_dollars"], "-0.0500");
        assert_eq!(current["notional_value_dollars"], "1.0000");
        assert_eq!(current["price_ranges"], market["price_ranges"]);
    }

    #[test]
    fn set_yes_quote_on_legacy_market_writes_cents() {
        let mut market = legacy_market("EUCLIMATE-2030");
        set_yes_quote(&mut market, "0.41", "0.47");
        assert_eq!(
            (
                &market["yes_bid"],
                &market["yes_ask"],
                &market["no_bid"],
                &market["no_ask"]
            ),
            (&json!(41), &json!(47), &json!(53), &json!(59))
        );
        assert!(market.get("yes_bid_dollars").is_none());
        assert_eq!(generation(&market), Generation::Legacy);
    }

    #[test]
    fn set_yes_quote_sub_penny_on_legacy_market_drops_the_cent_fields() {
        let mut market = legacy_market("EUCLIMATE-2030");
        set_yes_quote(&mut market, "0.4550", "0.4700");
        assert!(market.get("yes_bid").is_none());
        assert!(market.get("no_ask").is_none());
        assert_eq!(
            (&market["yes_ask"], &market["no_bid"]),
            (&json!(47), &json!(53))
        );
        assert_eq!(generation(&market), Generation::Legacy);
    }

    #[test]
    fn set_yes_quote_on_transitional_market_writes_both_representations() {
        let mut market = transitional_markets()[0].clone();
        set_yes_quote(&mut market, "0.4550", "0.47");
        assert!(
            market.get("yes_bid").is_none(),
            "0.4550 is not a whole cent"
        );
        assert_eq!(market["yes_bid_dollars"], "0.4550");
        assert_eq!(
            (&market["yes_ask"], &market["yes_ask_dollars"]),
            (&json!(47), &json!("0.4700"))
        );
        assert_eq!(
            (&market["no_bid"], &market["no_bid_dollars"]),
            (&json!(53), &json!("0.5300"))
        );
        assert!(market.get("no_ask").is_none());
        assert_eq!(market["no_ask_dollars"], "0.5450");
    }

    #[test]
    fn set_yes_quote_on_current_market_writes_dollars_only() {
        let mut market = to_current(&transitional_markets()[1]);
        set_yes_quote(&mut market, "0.4550", "0.4560");
        assert_eq!(market["yes_bid_dollars"], "0.4550");
        assert_eq!(market["yes_ask_dollars"], "0.4560");
        assert_eq!(market["no_bid_dollars"], "0.5440");
        assert_eq!(market["no_ask_dollars"], "0.5450");
        assert_eq!(generation(&market), Generation::Current);
    }

    #[test]
    fn set_yes_quote_can_restore_whole_cents_after_a_sub_penny_quote() {
        let mut market = transitional_markets()[0].clone();
        set_yes_quote(&mut market, "0.4550", "0.4650");
        set_yes_quote(&mut market, "0.45", "0.46");
        assert_eq!(
            (&market["yes_bid"], &market["no_ask"]),
            (&json!(45), &json!(55))
        );
    }

    #[test]
    #[should_panic(expected = "not an exact decimal")]
    fn set_yes_quote_rejects_prices_above_one_dollar() {
        set_yes_quote(&mut legacy_markets()[0], "0.5", "1.01");
    }

    #[test]
    fn set_volume_follows_the_generation() {
        let mut legacy = legacy_market("EUCLIMATE-2030");
        set_volume(&mut legacy, "1234");
        assert_eq!(legacy["volume"], 1234);
        assert!(legacy.get("volume_fp").is_none());
        set_volume(&mut legacy, "12.50");
        assert!(
            legacy.get("volume").is_none(),
            "a legacy market cannot show 12.5 contracts"
        );

        let mut current = to_current(&legacy_market("EUCLIMATE-2030"));
        set_volume(&mut current, "12.5");
        assert_eq!(current["volume_fp"], "12.50");
        assert!(current.get("volume").is_none());
    }

    #[test]
    fn market_from_history_point_builds_a_legacy_market() {
        let history = history();
        let (ticker, points) = history.iter().next().unwrap();
        let point = &points[0];
        let market = market_from_history_point(ticker, point);
        assert_eq!(market["ticker"], json!(ticker));
        assert_eq!(market["title"], format!("{ticker} (replayed)"));
        assert_eq!(market["status"], "active");
        assert_eq!(market["last_price"], point["yes_price"]);
        for name in [
            "yes_bid",
            "yes_ask",
            "no_bid",
            "no_ask",
            "volume",
            "open_interest",
        ] {
            assert_eq!(market[name], point[name], "{name}");
        }
        assert_eq!(generation(&market), Generation::Legacy);
        let event = market_from_history_point("APRPOTUS-24JUL19-T40.8", point);
        assert_eq!(event["event_ticker"], "APRPOTUS-24JUL19");
    }
}
