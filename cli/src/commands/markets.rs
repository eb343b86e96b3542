//! `kalshi markets show` and `search`: find the market, and see its price,
//! before alerting on it. Also the ticker check of `alerts add`.

use std::process::ExitCode;
use std::time::Duration;

use kalshi_alerts_core::display::printable;
use kalshi_alerts_core::market::MarketDetail;
use kalshi_alerts_core::price::format_price;
use kalshi_alerts_core::{Condition, KalshiClient, Market, Scope, Watchlist};
use serde_json::json;

use super::Context;
use crate::error::{CliError, CliResult};
use crate::output::say;

/// How long one lookup request may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Attempts per request: a person is waiting.
const LOOKUP_ATTEMPTS: u32 = 2;

/// The most pages a search reads (100,000 markets at 1,000 a page).
const SEARCH_PAGES: usize = 100;

fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::invalid(format!("cannot start the async runtime: {e}")))
}

fn client(context: &Context, max_pages: Option<usize>) -> CliResult<KalshiClient> {
    super::monitor::api_client(context, max_pages, LOOKUP_TIMEOUT, Some(LOOKUP_ATTEMPTS))
}

/// Looks one market up by its ticker: `None` when there is none.
pub fn lookup(context: &Context, ticker: &str) -> CliResult<Option<MarketDetail>> {
    let mut client = client(context, None)?;
    runtime()?
        .block_on(client.market(ticker))
        .map_err(|e| CliError::invalid(format!("cannot look up {ticker}: {e}")))
}

/// The most pages of a scope's listing read to count its open markets.
pub const SCOPE_PAGES: usize = 3;

/// How many open markets an event or a series lists.
pub struct OpenCount {
    pub count: usize,
    /// The listing goes on past the pages read: there may be more.
    pub more: bool,
}

/// The open markets of the event or series `ticker` (`scope` says which),
/// counted from the first [`SCOPE_PAGES`] pages of its listing at most: a
/// page is more than a person needs to know that the scope is right, but
/// the API may send an empty page with a cursor before the markets.
pub fn open_markets_of(context: &Context, scope: Scope, ticker: &str) -> CliResult<OpenCount> {
    let filter = match scope {
        Scope::Market => ("tickers", ticker),
        Scope::Event => ("event_ticker", ticker),
        Scope::Series => ("series_ticker", ticker),
    };
    // Counted as the monitor will see them: a server that ignored the
    // filter would otherwise have other scopes' markets counted.
    let mut scoped = Watchlist::default();
    match scope {
        Scope::Market => scoped.tickers.insert(ticker.to_string()),
        Scope::Event => scoped.events.insert(ticker.to_string()),
        Scope::Series => scoped.series.insert(ticker.to_string()),
    };
    let mut client = client(context, Some(SCOPE_PAGES))?;
    let (found, more) = runtime()?
        .block_on(client.find_markets(
            &[filter],
            usize::MAX,
            |m| scoped.wants(&m.market.ticker, &m.market.event_ticker),
            |_, _| {},
        ))
        .map_err(|e| CliError::invalid(format!("cannot look up {scope} {ticker}: {e}")))?;
    Ok(OpenCount {
        count: found.len(),
        more,
    })
}

/// Tickers close to `ticker` among the markets of its event and series, best
/// first, at most three: a typo's likely meaning.
pub fn close_matches(context: &Context, ticker: &str) -> Vec<String> {
    let Ok(mut client) = client(context, Some(5)) else {
        return Vec::new();
    };
    let Ok(runtime) = runtime() else {
        return Vec::new();
    };
    let event = ticker.rsplit_once('-').map(|(event, _)| event);
    let series = ticker.split_once('-').map_or(ticker, |(series, _)| series);
    let mut candidates: Vec<String> = Vec::new();
    let scopes = event
        .map(|e| ("event_ticker", e))
        .into_iter()
        .chain([("series_ticker", series)]);
    for (name, value) in scopes {
        let found =
            runtime.block_on(client.find_markets(&[(name, value)], 1000, |_| true, |_, _| {}));
        candidates.extend(
            found
                .into_iter()
                .flat_map(|(markets, _)| markets)
                .map(|m| m.market.ticker),
        );
        if !candidates.is_empty() {
            break;
        }
    }
    candidates.sort();
    candidates.dedup();
    let mut ranked: Vec<(usize, String)> = candidates
        .into_iter()
        .map(|c| (distance(&c, ticker), c))
        .filter(|(d, _)| *d <= ticker.len() / 3 + 2)
        .collect();
    ranked.sort();
    ranked.into_iter().take(3).map(|(_, c)| c).collect()
}

/// Edit distance (insertions, deletions, substitutions) between two short
/// strings.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// Whether `condition` watches `market`: by the market's ticker, or by its
/// event's or series'.
fn watches(condition: &Condition, market: &Market) -> bool {
    let scope = match condition.scope {
        Scope::Market => market.ticker.as_str(),
        Scope::Event => market.event_ticker.as_str(),
        Scope::Series => market.series_ticker(),
    };
    !scope.is_empty() && condition.ticker.trim().eq_ignore_ascii_case(scope)
}

/// `bid 0.39 / ask 0.40, mid 0.395`, or that there is no quote.
pub fn quote_line(market: &MarketDetail) -> String {
    match (market.market.quote(), market.midpoint) {
        (Some(quote), Some(mid)) => format!(
            "bid {} / ask {}, mid {}",
            format_price(quote.bid),
            format_price(quote.ask),
            format_price(mid)
        ),
        _ => "no two-sided quote".to_string(),
    }
}

pub fn show(context: &Context, ticker: &str, as_json: bool) -> CliResult<ExitCode> {
    let wanted = ticker.trim().to_ascii_uppercase();
    if let Some(problem) = super::add::ticker_problem(&wanted) {
        return Err(CliError::invalid(format!(
            "ticker {ticker:?} is not a Kalshi ticker: {problem}"
        )));
    }
    let Some(market) = lookup(context, &wanted)? else {
        let mut message = format!("no market {wanted} on {}", context.api_name());
        let near = close_matches(context, &wanted);
        if !near.is_empty() {
            message.push_str(&format!("; did you mean {}?", near.join(", ")));
        }
        return Err(CliError::usage(message));
    };
    // The market is shown even when the conditions cannot be read; which
    // watch it is then unknown, said on stderr and never shown as none.
    let watching: Option<Vec<_>> = match context.store().load() {
        Ok(file) => Some(
            file.conditions
                .into_iter()
                .filter(|c| watches(c, &market.market))
                .collect(),
        ),
        Err(e) => {
            crate::output::error_line(format_args!(
                "warning: cannot tell which conditions watch {}: {e}",
                printable(&market.market.ticker)
            ));
            None
        }
    };
    if as_json {
        let watching = watching.map(|watching| {
            watching
                .iter()
                .map(|c| json!({"id": c.id, "condition": c.describe(), "label": c.label}))
                .collect::<Vec<_>>()
        });
        let mut shown = serde_json::to_value(&market).expect("a market serialises");
        shown["watched_by"] = json!(watching);
        say!("{shown:#}");
        return Ok(ExitCode::SUCCESS);
    }
    let m = &market.market;
    let price = |p: Option<rust_decimal::Decimal>| p.map_or("-".to_string(), format_price);
    let number =
        |n: Option<rust_decimal::Decimal>| n.map_or("-".to_string(), |n| n.normalize().to_string());
    say!("{}  {}", m.ticker, printable(&m.title));
    say!("  status:        {}", printable(&m.status));
    say!(
        "  event:         {}",
        printable(&market.market.event_ticker)
    );
    say!(
        "  yes bid / ask: {} / {}",
        price(m.yes_bid),
        price(m.yes_ask)
    );
    say!("  midpoint:      {}", price(market.midpoint));
    say!("  last price:    {}", price(market.last_price));
    say!("  volume:        {}", number(m.volume));
    say!("  open interest: {}", number(market.open_interest));
    say!(
        "  closes:        {}",
        if market.close_time.is_empty() {
            "-".into()
        } else {
            printable(&market.close_time).into_owned()
        }
    );
    match watching.as_deref() {
        None => say!(
            "  watched by:    unknown: {} could not be read (see the warning)",
            context.store().path().display()
        ),
        Some([]) => say!(
            "  watched by:    no condition (kalshi alerts add ... {})",
            m.ticker
        ),
        Some(watching) => show_watching(watching),
    }
    Ok(ExitCode::SUCCESS)
}

/// The "watched by" lines of the conditions that watch a market.
fn show_watching(watching: &[Condition]) {
    for (i, c) in watching.iter().enumerate() {
        say!(
            "  {}  {} {}",
            if i == 0 {
                "watched by:  "
            } else {
                "             "
            },
            printable(&c.id.chars().take(8).collect::<String>()),
            printable(&c.display_label())
        );
    }
}

pub fn search(
    context: &Context,
    text: &str,
    event: Option<&str>,
    series: Option<&str>,
    limit: usize,
    as_json: bool,
) -> CliResult<ExitCode> {
    let needle = text.trim().to_lowercase();
    let event = event.map(|e| e.trim().to_ascii_uppercase());
    let series = series.map(|s| s.trim().to_ascii_uppercase());
    let mut filters: Vec<(&str, &str)> = Vec::new();
    if let Some(event) = &event {
        filters.push(("event_ticker", event));
    }
    if let Some(series) = &series {
        filters.push(("series_ticker", series));
    }
    let mut client = client(context, Some(SEARCH_PAGES))?;
    let progress = crate::progress::Progress::start("searching");
    progress.update(0, 0);
    let (found, more) = runtime()?
        .block_on(client.find_markets(
            &filters,
            limit,
            |m| {
                needle.is_empty()
                    || m.market.ticker.to_lowercase().contains(&needle)
                    || m.market.title.to_lowercase().contains(&needle)
            },
            |pages, markets| progress.update(pages, markets),
        ))
        .map_err(|e| CliError::invalid(format!("cannot search markets: {e}")))?;
    progress.finish();
    if as_json {
        say!(
            "{:#}",
            serde_json::to_value(&found).expect("markets serialise")
        );
        return Ok(ExitCode::SUCCESS);
    }
    // Fewer than asked for, and the listing went on: the search stopped
    // at its page limit, not at the last market.
    let cut_short = more && found.len() < limit;
    if cut_short {
        crate::output::error_line(format_args!(
            "warning: the search stopped after {SEARCH_PAGES} pages of open markets and the \
             listing goes on; narrow it with --event or --series to search the rest"
        ));
    }
    if found.is_empty() {
        if cut_short {
            say!("No match for {text:?} among the open markets read.");
        } else {
            say!("No open market matches {text:?}.");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let price = |p: Option<rust_decimal::Decimal>| p.map_or("-".to_string(), format_price);
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|m| {
            vec![
                m.market.ticker.clone(),
                price(m.market.yes_bid),
                price(m.market.yes_ask),
                price(m.midpoint),
                m.market
                    .volume
                    .map_or("-".into(), |v| v.normalize().to_string()),
                m.market.title.clone(),
            ]
        })
        .collect();
    crate::output::text(&crate::table::render(
        &["TICKER", "BID", "ASK", "MID", "VOLUME", "TITLE"],
        &rows,
        crate::table::terminal_width(),
        &[5, 0],
    ));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::distance;

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("KXBTC-25", "KXBTC-25"), 0);
        assert_eq!(distance("KXBTC-25", "KXBTC-26"), 1);
        assert_eq!(distance("AITURING", "AITURNG"), 1);
        assert_eq!(distance("", "ABC"), 3);
    }
}
