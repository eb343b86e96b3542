//! `kalshi alerts add`: validate one condition and store it. A condition
//! watches one market, or every market of an event or a series; the lookup
//! before storing checks that the market, or some market of the scope, is
//! listed.

use std::process::ExitCode;

use chrono::{SecondsFormat, Utc};
use kalshi_alerts_core::condition::{describe, parse_expiry, RepeatPolicy};
use kalshi_alerts_core::display::printable;
use kalshi_alerts_core::market::MarketDetail;
use kalshi_alerts_core::price::{
    check_decimals, parse_non_negative, parse_probability, Price, MAX_AMOUNT, PRICE_DECIMALS,
};
use kalshi_alerts_core::{Condition, ConditionType, Scope};

use super::instances::load_file;
use super::Context;
use crate::args::{AddArgs, ConditionKind};
use crate::error::{CliError, CliResult};
use crate::output::say;

pub fn run(context: &Context, args: AddArgs) -> CliResult<ExitCode> {
    let mut condition = build(&args)?;
    condition.notify = routes(context, &args.notify)?;
    // The ticker is looked up last: every mistake in the arguments, or in
    // the alerts file, is reported first, with no network needed.
    context.store().load()?;
    let found = if args.no_check {
        None
    } else {
        Some(look_up(context, &condition)?)
    };
    let store = context.store();
    store.update(|file| {
        file.conditions.push(condition.clone());
        Ok::<_, CliError>(())
    })??;

    say!("Alert added: {}", printable(&condition.label));
    say!("ID: {}", &condition.id[..8]);
    match &found {
        Some(Found::Market(market)) => say!(
            "Now: {} ({})",
            super::markets::quote_line(market),
            printable(&market.market.status)
        ),
        Some(Found::Scope(open)) => say!(
            "Watches {}{} open market{} of {} {}, each on its own",
            if open.more { "at least " } else { "" },
            open.count,
            if open.count == 1 { "" } else { "s" },
            condition.scope,
            condition.ticker
        ),
        None => {}
    }
    if let Some(expires) = &condition.expires_at {
        say!("Expires: {expires}");
    }
    if let Some(names) = &condition.notify {
        say!("Notify: {}", printable(&names.join(", ")));
    }
    if let Some(policy) = condition.repeat {
        say!("Repeat: {policy}");
    }
    super::hint_if_monitor_runs(context);
    Ok(ExitCode::SUCCESS)
}

/// Turns the arguments into a condition, or says precisely what is wrong.
pub fn build(args: &AddArgs) -> CliResult<Condition> {
    let (scope, given) = watched(args)?;
    let ticker = check_ticker(given, scope)?;
    let (condition_type, threshold) = threshold_of(args)?;
    let now = Utc::now();
    let expires_at = args
        .expires
        .as_deref()
        .map(|text| parse_expiry(text, now).map_err(CliError::invalid))
        .transpose()?
        .map(|at| at.to_rfc3339_opts(SecondsFormat::Secs, false));
    let label = match &args.label {
        Some(label) if label.trim().is_empty() => {
            return Err(CliError::invalid(
                "--label is empty; leave it out for a default label",
            ))
        }
        Some(label) => label.clone(),
        None => default_label(scope, &ticker, &condition_type, threshold),
    };

    Ok(Condition {
        id: uuid::Uuid::new_v4().to_string(),
        condition_type,
        ticker,
        scope,
        threshold,
        label,
        created_at: now.to_rfc3339_opts(SecondsFormat::Micros, false),
        expires_at,
        notify: None,
        repeat: args
            .repeat
            .as_deref()
            .map(|text| {
                RepeatPolicy::parse(text).map_err(|e| CliError::invalid(format!("--repeat: {e}")))
            })
            .transpose()?,
        extra: Default::default(),
    })
}

/// What the condition watches, as typed: the market's ticker, or the
/// event's or series' (the parser lets through exactly one of them).
fn watched(args: &AddArgs) -> CliResult<(Scope, &str)> {
    match (&args.ticker, &args.event, &args.series) {
        (Some(ticker), None, None) => Ok((Scope::Market, ticker)),
        (None, Some(event), None) => Ok((Scope::Event, event)),
        (None, None, Some(series)) => Ok((Scope::Series, series)),
        _ => Err(CliError::invalid(
            "give one of TICKER, --event EVENT_TICKER or --series SERIES_TICKER",
        )),
    }
}

/// `AITURING price > 0.6`, `event KXHIGHNY-25DEC04 price > 0.9`.
fn default_label(scope: Scope, ticker: &str, kind: &ConditionType, threshold: Price) -> String {
    let condition = describe(kind, threshold);
    match scope {
        Scope::Market => format!("{ticker} {condition}"),
        Scope::Event | Scope::Series => format!("{scope} {ticker} {condition}"),
    }
}

/// What the lookup before adding found.
enum Found {
    Market(Box<MarketDetail>),
    /// The open markets of the event or series.
    Scope(super::markets::OpenCount),
}

/// Looks up what `condition` watches: its market, or the open markets of
/// its event or series.
fn look_up(context: &Context, condition: &Condition) -> CliResult<Found> {
    match condition.scope {
        Scope::Market => {
            check_market(context, &condition.ticker).map(|m| Found::Market(Box::new(m)))
        }
        scope => check_scope(context, scope, &condition.ticker).map(Found::Scope),
    }
}

/// How many open markets the event or series `ticker` lists, from the
/// first pages of its listing. None is refused, as a likely typo; a scope
/// whose markets are not open yet is added with --no-check.
fn check_scope(
    context: &Context,
    scope: Scope,
    ticker: &str,
) -> CliResult<super::markets::OpenCount> {
    match super::markets::open_markets_of(context, scope, ticker) {
        Ok(open) if open.count > 0 => Ok(open),
        Ok(open) if open.more => Err(CliError::invalid(format!(
            "no open market on the first {} pages of {scope} {ticker} on {}, and the \
             listing goes on; add it anyway with --no-check",
            super::markets::SCOPE_PAGES,
            context.api_name()
        ))),
        Ok(_) => Err(CliError::invalid(format!(
            "no open market in {scope} {ticker} on {}; find the {scope} with \
             `kalshi markets search`, or add it anyway with --no-check",
            context.api_name()
        ))),
        Err(e) => Err(without_lookup(context, e)),
    }
}

/// The market `ticker` names, looked up on Kalshi; an unknown ticker is an
/// error that suggests close matches, and an unreachable API one that says
/// how to add without the check.
fn check_market(context: &Context, ticker: &str) -> CliResult<MarketDetail> {
    match super::markets::lookup(context, ticker) {
        Ok(Some(market)) => Ok(market),
        Ok(None) => {
            let mut message = format!(
                "no market {ticker} on {}; check the ticker with `kalshi markets search`",
                context.api_name()
            );
            let near = super::markets::close_matches(context, ticker);
            if !near.is_empty() {
                message.push_str(&format!("; did you mean {}?", near.join(", ")));
            }
            Err(CliError::invalid(message))
        }
        Err(e) => Err(without_lookup(context, e)),
    }
}

/// A lookup that failed, with what to do: when the base URL is the likely
/// cause (it is not a URL, or nothing answers at it: a refused connection,
/// a name that does not resolve), fix `KALSHI_API_BASE_URL` first; either
/// way, add without the lookup.
fn without_lookup(context: &Context, e: CliError) -> CliError {
    const NO_CHECK: &str = "add it without the lookup with --no-check";
    let custom = std::env::var_os("KALSHI_API_BASE_URL").is_some();
    let unanswered = ["tcp connect error", "dns error"]
        .iter()
        .any(|cause| e.message.contains(cause));
    let hint = if e.message.starts_with("KALSHI_API_BASE_URL") {
        format!("fix KALSHI_API_BASE_URL, or unset it to use the --env host; or {NO_CHECK}")
    } else if custom && unanswered {
        format!(
            "check KALSHI_API_BASE_URL ({}), or unset it to use the --env host; or {NO_CHECK}",
            context.api_name()
        )
    } else {
        NO_CHECK.to_string()
    };
    CliError::invalid(format!("{}; {hint}", e.message))
}

/// The instances named by `--notify`, each checked against the notifiers
/// file; `None` when the option is absent (the defaults receive the alerts).
fn routes(context: &Context, names: &[String]) -> CliResult<Option<Vec<String>>> {
    let mut wanted: Vec<String> = Vec::new();
    for name in names.iter().map(|n| n.trim()) {
        if name.is_empty() {
            return Err(CliError::invalid("--notify: empty notifier name"));
        }
        if !wanted.iter().any(|w| w == name) {
            wanted.push(name.to_string());
        }
    }
    if wanted.is_empty() {
        return Ok(None);
    }
    let file = load_file(context)?.ok_or_else(|| {
        CliError::invalid(format!(
            "--notify names notifiers of the notifiers file, and there is none at {}",
            context.notifiers_path.display()
        ))
    })?;
    for name in &wanted {
        if file.find(name).is_none() {
            let known: Vec<&str> = file.instances.iter().map(|i| i.name.as_str()).collect();
            return Err(CliError::invalid(format!(
                "--notify: no notifier named {name:?} in {}; configured: {}",
                file.path.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
    }
    Ok(Some(wanted))
}

/// Tickers are upper-case letters, digits, `.`, `_`, `-` and `/` (recorded
/// tickers such as `GTEMP-24-1.02/23` have one), with at least
/// one letter or digit, and a `-` only between parts: Kalshi joins a
/// series, an event's date and a market's strike with it. Lower case is
/// taken as a typo of upper case rather than refused.
///
/// A series ticker has no `-`: Kalshi builds event tickers from it by
/// appending one, and the monitor tells a market's series by cutting its
/// event's ticker there (`market::series_of_market`), so a series named
/// with a `-` would never match a market.
fn check_ticker(text: &str, scope: Scope) -> CliResult<String> {
    let ticker = text.trim().to_ascii_uppercase();
    let what = match scope {
        Scope::Market => "ticker",
        Scope::Event => "--event",
        Scope::Series => "--series",
    };
    if let Some(problem) = ticker_problem(&ticker) {
        return Err(CliError::invalid(format!(
            "{what} {text:?} is not a Kalshi ticker: {problem}"
        )));
    }
    if let (Scope::Series, Some((series, _))) = (scope, ticker.split_once('-')) {
        let mut message = format!("--series {text:?} is not a series ticker, which has no '-'");
        // The part before the '-' names the series only if it is a ticker.
        if ticker_problem(series).is_none() {
            message.push_str(&format!(
                "; for the series give --series {series}, for one event of it --event {ticker}"
            ));
        }
        return Err(CliError::invalid(message));
    }
    Ok(ticker)
}

/// The longest ticker taken: Kalshi's are under 100 characters, and a
/// condition's ticker goes into a request's URL.
const MAX_TICKER_LEN: usize = 200;

/// Why `ticker` (trimmed, upper case) cannot be a Kalshi ticker, if it
/// cannot.
pub(crate) fn ticker_problem(ticker: &str) -> Option<&'static str> {
    if ticker.len() > MAX_TICKER_LEN {
        return Some("it is longer than 200 characters");
    }
    if !ticker
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
    {
        return Some("it has characters other than letters, digits, '.', '_', '-' and '/'");
    }
    if !ticker.chars().any(|c| c.is_ascii_alphanumeric()) {
        return Some("it has no letter or digit");
    }
    if ticker.starts_with('-') {
        return Some("it begins with '-'");
    }
    if ticker.ends_with('-') {
        return Some("it ends with '-'");
    }
    None
}

/// The one threshold option each kind takes, and the stored type.
fn threshold_of(args: &AddArgs) -> CliResult<(ConditionType, Price)> {
    let given = [
        ("--above", args.above.as_deref()),
        ("--below", args.below.as_deref()),
        ("--level", args.level.as_deref()),
        ("--by", args.by.as_deref()),
    ];
    let (allowed, usage): (&[&str], &str) = match args.kind {
        ConditionKind::Price => (
            &["--above", "--below"],
            "price takes --above P or --below P",
        ),
        ConditionKind::Crosses => (&["--level"], "crosses takes --level P"),
        ConditionKind::Spread => (&["--above"], "spread takes --above CENTS"),
        ConditionKind::Volume => (&["--above"], "volume takes --above CONTRACTS"),
        ConditionKind::Move => (&["--by"], "move takes --by P"),
    };
    let kind_name = format!("{:?}", args.kind).to_lowercase();

    for (flag, value) in given {
        if value.is_some() && !allowed.contains(&flag) {
            return Err(CliError::invalid(format!(
                "{flag} does not apply to {kind_name} conditions; {usage}"
            )));
        }
    }
    let present: Vec<(&str, &str)> = given
        .iter()
        .filter_map(|(flag, value)| value.map(|v| (*flag, v)))
        .collect();
    let (flag, text) = match present.as_slice() {
        [one] => *one,
        [] => return Err(CliError::invalid(format!("missing threshold; {usage}"))),
        _ => {
            return Err(CliError::invalid(format!(
                "give only one threshold; {usage}"
            )))
        }
    };

    let invalid = |e: String| CliError::invalid(format!("{flag}: {e}"));
    let probability = |text: &str| {
        let p = parse_probability(text).map_err(|e| invalid(e.to_string()))?;
        check_decimals(p, PRICE_DECIMALS, "prices").map_err(invalid)
    };
    let amount = |text: &str, places: u32, what: &str| {
        let a = parse_non_negative(text).map_err(|e| invalid(e.to_string()))?;
        check_decimals(a, places, what).map_err(invalid)
    };
    let (kind, threshold) = match (args.kind, flag) {
        (ConditionKind::Price, "--above") => (ConditionType::PriceAbove, probability(text)?),
        (ConditionKind::Price, _) => (ConditionType::PriceBelow, probability(text)?),
        (ConditionKind::Crosses, _) => (ConditionType::PriceCrosses, probability(text)?),
        (ConditionKind::Spread, _) => (
            ConditionType::SpreadAbove,
            amount(
                text.strip_suffix('c').unwrap_or(text),
                2,
                "spreads in cents",
            )?,
        ),
        (ConditionKind::Volume, _) => (
            ConditionType::VolumeAbove,
            amount(text, 2, "volumes in contracts")?,
        ),
        (ConditionKind::Move, _) => (ConditionType::EdgeDetected, probability(text)?),
    };
    match threshold_problem(&kind, threshold) {
        Some(problem) => Err(invalid(problem)),
        None => Ok((kind, threshold)),
    }
}

/// Why a condition of `kind` cannot have `threshold`, if it cannot: out of
/// its range, or a value at which it could never fire, or would fire at
/// every check. `add` refuses these after reading the number as typed, and
/// `monitor` refuses them in a file edited by hand. (Decimal places are
/// checked only as typed: a float another tool wrote may have many.)
pub(crate) fn threshold_problem(kind: &ConditionType, threshold: Price) -> Option<String> {
    let threshold = threshold.normalize();
    if kind.threshold_is_probability() {
        if threshold.is_sign_negative() && !threshold.is_zero() {
            return Some(format!("{threshold} is negative; prices are 0 to 1"));
        }
        if threshold > Price::ONE {
            return Some(format!(
                "{threshold} is above 1, and a midpoint is a probability from 0 to 1"
            ));
        }
    }
    match kind {
        ConditionType::PriceAbove if threshold == Price::ONE => {
            Some("a midpoint is never above 1, so this could never fire".to_string())
        }
        ConditionType::PriceBelow if threshold.is_zero() => {
            Some("a midpoint is never below 0, so this could never fire".to_string())
        }
        ConditionType::PriceCrosses if threshold.is_zero() || threshold == Price::ONE => Some(
            format!("a quoted midpoint never reaches {threshold}, so this could never fire"),
        ),
        ConditionType::EdgeDetected if threshold.is_zero() => {
            Some("a move of 0 would fire on every check".to_string())
        }
        ConditionType::EdgeDetected if threshold >= Price::ONE => Some(
            "a quoted midpoint moves by less than 1 between checks, so this could never fire"
                .to_string(),
        ),
        ConditionType::SpreadAbove | ConditionType::VolumeAbove
            if threshold.is_sign_negative() && !threshold.is_zero() =>
        {
            Some(format!("{threshold} is negative"))
        }
        ConditionType::SpreadAbove if threshold >= Price::ONE_HUNDRED => Some(format!(
            "a spread of {threshold} cents or more can never be exceeded; spreads are 0 to 100 \
             cents"
        )),
        ConditionType::VolumeAbove if threshold > Price::from(MAX_AMOUNT) => {
            Some(format!("{threshold} is larger than {MAX_AMOUNT}"))
        }
        _ => None,
    }
}
