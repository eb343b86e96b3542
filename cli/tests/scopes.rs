//! Event and series conditions through the real binary against the
//! loopback Kalshi server: `alerts add --event/--series` and the lookup
//! before it, how `alerts list` shows them, and a monitor that checks each
//! market of a scope on its own, asks the API for the watched scopes only,
//! and fires as a full scan of the same data does.

mod common;

use std::collections::BTreeSet;

use common::{fired_records, record, stderr_of, stdout_of, Sandbox};
use kalshi_alerts_core::source::TICKERS_PER_REQUEST;
use kalshi_test_server::{fixtures, Fault, RecordedRequest, Scenario, TestServer};
use predicates::prelude::*;
use serde_json::{json, Value};

/// A condition record on an event or a series, as `alerts add` stores it.
fn scoped(id: &str, kind: &str, scope: &str, ticker: &str, threshold: f64) -> Value {
    let mut condition = record(id, kind, ticker, threshold);
    condition["scope"] = json!(scope);
    condition
}

/// `markets` with each `(ticker, bid, ask)` quoted anew.
fn quoted(mut markets: Vec<Value>, quotes: &[(&str, &str, &str)]) -> Vec<Value> {
    for (ticker, bid, ask) in quotes {
        let market = markets
            .iter_mut()
            .find(|m| m["ticker"] == *ticker)
            .unwrap_or_else(|| panic!("{ticker} is not in the fixture"));
        fixtures::set_yes_quote(market, bid, ask);
    }
    markets
}

/// A copy of the market `ticker` of `markets`, renamed `renamed` and given
/// the event `event`.
fn lookalike(markets: &[Value], ticker: &str, renamed: &str, event: &str) -> Value {
    let mut market = markets
        .iter()
        .find(|m| m["ticker"] == ticker)
        .expect("ticker in fixture")
        .clone();
    market["ticker"] = json!(renamed);
    market["event_ticker"] = json!(event);
    market
}

/// Serves `cycles[i]` to every listing request of monitor cycle `i`. The
/// server starts a frame at each request without a cursor, and a targeted
/// scan sends one per batch of tickers, event and series.
fn scripted(cycles: &[Vec<Value>], requests_per_cycle: usize) -> Scenario {
    let mut frames = cycles
        .iter()
        .flat_map(|markets| std::iter::repeat_n(markets.clone(), requests_per_cycle));
    let first = frames.next().expect("at least one cycle");
    frames.fold(Scenario::new(first), Scenario::then)
}

/// `alerts monitor` for `cycles` cycles, no pause, the alerts also written
/// to `fired.jsonl`.
fn monitor(sandbox: &Sandbox, server: &TestServer, cycles: usize, scan: &str) -> Run {
    let out = sandbox.path("fired.jsonl");
    let output = sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "monitor", "--interval", "0", "--scan", scan])
        .args(["--cycles", &cycles.to_string()])
        .args(["--output-file", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    Run {
        stdout: stdout_of(&output),
        fired_per_cycle: fired_per_cycle(&stderr_of(&output)),
        alerts: fired_records(&out).iter().map(Alert::of).collect(),
    }
}

/// What a monitor run did.
struct Run {
    stdout: String,
    /// The `fired=` count of each cycle's log line, in order.
    fired_per_cycle: Vec<u64>,
    /// Every alert of the output file, sorted (deliveries run concurrently,
    /// so the file's order is not the firing order).
    alerts: BTreeSet<Alert>,
}

/// One fired alert: which condition, on which market, at which value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Alert {
    condition: String,
    market: String,
    value: String,
}

impl Alert {
    fn of(record: &Value) -> Alert {
        assert_eq!(record["ticker"], record["market_data"]["ticker"]);
        Alert {
            condition: record["condition_id"].as_str().unwrap().into(),
            market: record["ticker"].as_str().unwrap().into(),
            value: record["current_value"].to_string(),
        }
    }

    fn new(condition: &str, market: &str, value: &str) -> Alert {
        Alert {
            condition: condition.into(),
            market: market.into(),
            value: value.into(),
        }
    }
}

fn fired_per_cycle(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|line| line.contains("cycle complete"))
        .map(|line| {
            let field = line
                .split_whitespace()
                .find_map(|word| word.strip_prefix("fired="))
                .unwrap_or_else(|| panic!("no fired= in {line:?}"));
            field.parse().unwrap()
        })
        .collect()
}

/// The filters of a listing request: which of `tickers`, `event_ticker`
/// and `series_ticker` it names.
fn filters_of(request: &RecordedRequest) -> Vec<&'static str> {
    ["tickers", "event_ticker", "series_ticker"]
        .into_iter()
        .filter(|name| request.param(name).is_some())
        .collect()
}

/// The recorded EVSHARE-30JAN event: four open markets, midpoints 0.97
/// (-10), 0.875 (-20), 0.69 (-30) and 0.30 (-50). MOON-25DEC31 is of
/// another event.
fn evshare_cycles() -> Vec<Vec<Value>> {
    let base = fixtures::legacy_markets();
    let both_up = quoted(
        base.clone(),
        &[
            ("EVSHARE-30JAN-10", "0.98", "1.00"),
            ("EVSHARE-30JAN-30", "0.99", "1.00"),
            ("MOON-25DEC31", "0.99", "1.00"),
        ],
    );
    let ten_down = quoted(both_up.clone(), &[("EVSHARE-30JAN-10", "0.95", "0.99")]);
    let ten_up = quoted(ten_down.clone(), &[("EVSHARE-30JAN-10", "0.98", "1.00")]);
    vec![base, both_up.clone(), both_up, ten_down, ten_up]
}

#[test]
fn an_event_condition_fires_once_per_market_of_the_event_that_meets_it() {
    for scan in ["auto", "full"] {
        let sandbox = Sandbox::new();
        sandbox.write_alerts(json!([scoped(
            "ev",
            "price_above",
            "event",
            "EVSHARE-30JAN",
            0.98
        )]));
        let server = TestServer::start(scripted(&evshare_cycles(), 1));

        let run = monitor(&sandbox, &server, 5, scan);

        // Two markets rise at the second cycle and still hold at the third;
        // one of them falls at the fourth and rises again at the fifth.
        assert_eq!(run.fired_per_cycle, [0, 2, 0, 0, 1], "--scan {scan}");
        let expected = BTreeSet::from([
            Alert::new("ev", "EVSHARE-30JAN-10", "0.99"),
            Alert::new("ev", "EVSHARE-30JAN-30", "0.995"),
        ]);
        assert_eq!(run.alerts, expected, "--scan {scan}");
        let tens = fired_records(&sandbox.path("fired.jsonl"))
            .iter()
            .filter(|r| r["ticker"] == "EVSHARE-30JAN-10")
            .count();
        assert_eq!(tens, 2, "--scan {scan}: -10 fires again after it fell");
        assert!(
            run.stdout.contains("ALERT EVSHARE-30JAN-10"),
            "{}",
            run.stdout
        );
        assert!(!run.stdout.contains("MOON"), "{}", run.stdout);

        if scan == "auto" {
            let requests = server.requests();
            assert_eq!(requests.len(), 5, "{requests:?}");
            for request in &requests {
                assert_eq!(filters_of(request), ["event_ticker"], "{request:?}");
                assert_eq!(request.param("event_ticker"), Some("EVSHARE-30JAN"));
                assert_eq!(request.param("status"), Some("open"));
            }
        }

        // History names each market that fired, and the list shows the
        // scope and the state summed over its markets.
        let history = sandbox
            .kalshi()
            .args(["alerts", "history"])
            .output()
            .unwrap();
        let history = stdout_of(&history);
        assert_eq!(history.matches("EVSHARE-30JAN-10 price > 0.98").count(), 2);
        assert_eq!(history.matches("EVSHARE-30JAN-30 price > 0.98").count(), 1);
        sandbox
            .kalshi()
            .args(["alerts", "list"])
            .assert()
            .success()
            .stdout(predicate::str::contains("event:EVSHARE-30JAN"))
            .stdout(predicate::str::contains("holds on 2, fired "));
    }
}

#[test]
fn a_restart_does_not_fire_again_on_the_markets_of_a_scope_that_still_hold() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([scoped(
        "ev",
        "price_above",
        "event",
        "evshare-30jan",
        0.98
    )]));
    let risen = evshare_cycles().swap_remove(1);
    let server = TestServer::start(Scenario::new(risen));

    assert_eq!(monitor(&sandbox, &server, 1, "auto").fired_per_cycle, [2]);
    let again = monitor(&sandbox, &server, 1, "auto");
    assert_eq!(again.fired_per_cycle, [0]);

    // Rearmed, it fires on both markets again.
    sandbox
        .kalshi()
        .args(["alerts", "rearm", "ev"])
        .assert()
        .success();
    assert_eq!(monitor(&sandbox, &server, 1, "auto").fired_per_cycle, [2]);
}

#[test]
fn a_series_condition_fires_per_market_of_the_series_and_of_no_other() {
    let base = fixtures::legacy_markets();
    // A market whose ticker starts like the series' but is of another one.
    let mut base_with_lookalike = base.clone();
    base_with_lookalike.push(lookalike(
        &base,
        "TIKTOKBAN-26JUN30",
        "TIKTOKBANS-26JUN30",
        "TIKTOKBANS-26JUN30",
    ));
    // TIKTOKBAN's three events, one market each, at 0.40, 0.30 and 0.21;
    // two rise above 0.5, and so do markets of other series.
    let risen = quoted(
        base_with_lookalike.clone(),
        &[
            ("TIKTOKBAN-26JUN30", "0.60", "0.62"),
            ("TIKTOKBAN-25APR30", "0.70", "0.72"),
            ("TESLACEOCHANGE-26", "0.80", "0.82"),
            ("TIKTOKBANS-26JUN30", "0.90", "0.92"),
        ],
    );
    let cycles = [base_with_lookalike, risen.clone(), risen];

    for scan in ["auto", "full"] {
        let sandbox = Sandbox::new();
        sandbox.write_alerts(json!([scoped(
            "tik",
            "price_above",
            "series",
            "TIKTOKBAN",
            0.5
        )]));
        let server = TestServer::start(scripted(&cycles, 1));

        let run = monitor(&sandbox, &server, 3, scan);

        assert_eq!(run.fired_per_cycle, [0, 2, 0], "--scan {scan}");
        assert_eq!(
            run.alerts,
            BTreeSet::from([
                Alert::new("tik", "TIKTOKBAN-25APR30", "0.71"),
                Alert::new("tik", "TIKTOKBAN-26JUN30", "0.61"),
            ]),
            "--scan {scan}"
        );
        if scan == "auto" {
            for request in server.requests() {
                assert_eq!(filters_of(&request), ["series_ticker"], "{request:?}");
                assert_eq!(request.param("series_ticker"), Some("TIKTOKBAN"));
            }
        }
        sandbox
            .kalshi()
            .args(["alerts", "list"])
            .assert()
            .success()
            .stdout(predicate::str::contains("series:TIKTOKBAN"));
    }
}

#[test]
fn an_auto_scan_sends_a_batch_of_tickers_per_hundred_and_one_listing_per_scope() {
    let markets = fixtures::legacy_markets();
    let tickers: Vec<&str> = markets
        .iter()
        .map(|m| m["ticker"].as_str().unwrap())
        .filter(|t| !t.starts_with("EVSHARE") && !t.starts_with("TIKTOKBAN"))
        .take(150)
        .collect();
    let mut conditions: Vec<Value> = tickers
        .iter()
        .enumerate()
        .map(|(i, ticker)| record(&format!("m{i}"), "price_above", ticker, 0.99))
        .collect();
    conditions.push(scoped("ev", "price_above", "event", "EVSHARE-30JAN", 0.99));
    conditions.push(scoped("tik", "price_above", "series", "TIKTOKBAN", 0.99));
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!(conditions));
    let server = TestServer::start(Scenario::new(markets.clone()));

    monitor(&sandbox, &server, 2, "auto");

    let batches = tickers.len().div_ceil(TICKERS_PER_REQUEST);
    assert_eq!(batches, 2);
    let per_cycle = batches + 2;
    let requests = server.requests();
    assert_eq!(requests.len(), 2 * per_cycle, "{requests:?}");
    for cycle in requests.chunks(per_cycle) {
        let mut asked = BTreeSet::new();
        for request in &cycle[..batches] {
            assert_eq!(filters_of(request), ["tickers"], "{request:?}");
            let batch: Vec<&str> = request.param("tickers").unwrap().split(',').collect();
            assert!(batch.len() <= TICKERS_PER_REQUEST, "{}", batch.len());
            asked.extend(batch);
        }
        assert_eq!(asked, tickers.iter().copied().collect::<BTreeSet<_>>());
        assert_eq!(filters_of(&cycle[batches]), ["event_ticker"]);
        assert_eq!(cycle[batches].param("event_ticker"), Some("EVSHARE-30JAN"));
        assert_eq!(filters_of(&cycle[batches + 1]), ["series_ticker"]);
        assert_eq!(cycle[batches + 1].param("series_ticker"), Some("TIKTOKBAN"));
        for request in cycle {
            assert_eq!(request.path, "/trade-api/v2/markets");
            assert_eq!(request.param("status"), Some("open"));
            assert_eq!(request.param("cursor"), None);
        }
    }
}

#[test]
fn a_targeted_scan_fires_what_a_full_scan_fires_on_the_same_data() {
    let conditions = json!([
        record("m-eu", "price_above", "EUCLIMATE-2030", 0.39),
        record("m-us", "price_below", "USCLIMATE-2025", 0.2),
        record("m-moon", "price_crosses", "MOON-26DEC31", 0.5),
        record("m-gta", "volume_above", "GTA6-25JUN30", 400.0),
        scoped("e-ev", "price_above", "event", "EVSHARE-30JAN", 0.98),
        scoped("e-gta", "spread_above", "event", "GTA6", 5.0),
        scoped("e-fed", "edge_detected", "event", "FEDHIKE", 0.05),
        scoped("s-tik", "price_above", "series", "TIKTOKBAN", 0.5),
        scoped("s-cap", "volume_above", "series", "CAPGAIN", 50.0),
        scoped("s-tesla", "price_crosses", "series", "TESLACEOCHANGE", 0.2),
    ]);
    let base = fixtures::legacy_markets();
    let mut second = quoted(
        base.clone(),
        &[
            ("EVSHARE-30JAN-10", "0.98", "1.00"),
            ("EVSHARE-30JAN-30", "0.99", "1.00"),
            ("TIKTOKBAN-26JUN30", "0.60", "0.62"),
            ("TIKTOKBAN-25APR30", "0.70", "0.72"),
            ("FEDHIKE-25DEC31", "0.22", "0.28"),
            ("TESLACEOCHANGE-25", "0.20", "0.24"),
        ],
    );
    let gta = second
        .iter_mut()
        .find(|m| m["ticker"] == "GTA6-25JUN30")
        .unwrap();
    fixtures::set_volume(gta, "500");
    let third = quoted(
        second.clone(),
        &[
            ("MOON-26DEC31", "0.55", "0.57"),
            ("GTA6-25JUN30", "0.05", "0.15"),
            ("TESLACEOCHANGE-26", "0.15", "0.19"),
        ],
    );
    let cycles = [base, second, third.clone(), third];

    let run = |scan: &str, requests_per_cycle: usize| {
        let sandbox = Sandbox::new();
        sandbox.write_alerts(conditions.clone());
        let server = TestServer::start(scripted(&cycles, requests_per_cycle));
        let run = monitor(&sandbox, &server, cycles.len(), scan);
        assert_eq!(server.requests().len(), cycles.len() * requests_per_cycle);
        run
    };
    // Four tickers in one batch, three events, three series.
    let targeted = run("auto", 1 + 3 + 3);
    let full = run("full", 1);

    assert_eq!(targeted.fired_per_cycle, full.fired_per_cycle);
    assert_eq!(targeted.alerts, full.alerts);
    assert_eq!(targeted.fired_per_cycle, [4, 7, 3, 0]);
    let expected = [
        ("m-eu", "EUCLIMATE-2030", "0.395"),
        ("m-us", "USCLIMATE-2025", "0.14"),
        ("e-gta", "GTA6-25DEC31", "7"),
        ("s-cap", "CAPGAIN-2-25DEC31", "58"),
        ("e-ev", "EVSHARE-30JAN-10", "0.99"),
        ("e-ev", "EVSHARE-30JAN-30", "0.995"),
        ("s-tik", "TIKTOKBAN-25APR30", "0.71"),
        ("s-tik", "TIKTOKBAN-26JUN30", "0.61"),
        ("e-fed", "FEDHIKE-25DEC31", "0.1"),
        ("m-gta", "GTA6-25JUN30", "500"),
        ("s-tesla", "TESLACEOCHANGE-25", "0.22"),
        ("m-moon", "MOON-26DEC31", "0.56"),
        ("e-gta", "GTA6-25JUN30", "10"),
        ("s-tesla", "TESLACEOCHANGE-26", "0.17"),
    ];
    let expected: BTreeSet<Alert> = expected
        .iter()
        .map(|(condition, market, value)| Alert::new(condition, market, value))
        .collect();
    assert_eq!(targeted.alerts, expected);
}

fn lookup_server() -> TestServer {
    TestServer::start(Scenario::new(fixtures::legacy_markets()))
}

#[test]
fn add_event_and_series_count_their_open_markets_with_one_request_each() {
    let server = lookup_server();
    let sandbox = Sandbox::new();
    sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "add", "price", "--event", "evshare-30jan"])
        .args(["--above", "0.9"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "Alert added: event EVSHARE-30JAN price > 0.9\n",
        ))
        .stdout(predicate::str::contains(
            "Watches 4 open markets of event EVSHARE-30JAN, each on its own\n",
        ));
    sandbox
        .kalshi_at(&server.base_url())
        .args([
            "alerts",
            "add",
            "move",
            "--series",
            "TIKTOKBAN",
            "--by",
            "5c",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "Alert added: series TIKTOKBAN move >= 0.05\n",
        ))
        .stdout(predicate::str::contains(
            "Watches 3 open markets of series TIKTOKBAN",
        ));

    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].param("event_ticker"), Some("EVSHARE-30JAN"));
    assert_eq!(requests[1].param("series_ticker"), Some("TIKTOKBAN"));
    for request in &requests {
        assert_eq!(request.param("status"), Some("open"));
    }

    let stored = sandbox.conditions();
    assert_eq!(stored[0]["ticker"], "EVSHARE-30JAN");
    assert_eq!(stored[0]["scope"], "event");
    assert_eq!(stored[1]["ticker"], "TIKTOKBAN");
    assert_eq!(stored[1]["scope"], "series");
    assert_eq!(stored[1]["condition_type"], "edge_detected");
}

#[test]
fn every_kind_takes_an_event_or_a_series() {
    let sandbox = Sandbox::new();
    for kind in [
        &["price", "--above", "0.5"][..],
        &["crosses", "--level", "0.5"],
        &["spread", "--above", "3"],
        &["volume", "--above", "100"],
        &["move", "--by", "0.1"],
    ] {
        for scope in ["--event", "--series"] {
            let mut args = kind.to_vec();
            args.extend([scope, "KXHIGHNY"]);
            sandbox.add(&args);
        }
    }
    let stored = sandbox.conditions();
    assert_eq!(stored.len(), 10);
    for pair in stored.chunks(2) {
        assert_eq!(pair[0]["scope"], "event");
        assert_eq!(pair[1]["scope"], "series");
    }
}

/// `alerts add ARGS` is refused with exit `code` and `message`, and leaves
/// alerts.json byte for byte as it was.
fn assert_refused(sandbox: &Sandbox, base_url: &str, args: &[&str], code: i32, message: &str) {
    let before = std::fs::read(sandbox.alerts_path()).unwrap();
    let output = sandbox
        .kalshi_at(base_url)
        .args(["alerts", "add"])
        .args(args)
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(stderr.contains(message), "{args:?}: {stderr}");
    assert_eq!(std::fs::read(sandbox.alerts_path()).unwrap(), before);
}

#[test]
fn add_refuses_two_scopes_none_or_a_scope_without_open_markets() {
    let server = lookup_server();
    let url = server.base_url();
    let sandbox = Sandbox::new();
    sandbox.add(&["price", "KEEP", "--above", "0.5"]);

    let price = ["price", "--above", "0.5"];
    let with = |extra: &[&'static str]| [&price[..], extra].concat();
    assert_refused(
        &sandbox,
        &url,
        &with(&["EUCLIMATE-2030", "--event", "EVSHARE-30JAN"]),
        2,
        "'[TICKER]' cannot be used with '--event <EVENT_TICKER>'",
    );
    assert_refused(
        &sandbox,
        &url,
        &with(&["--event", "EVSHARE-30JAN", "--series", "TIKTOKBAN"]),
        2,
        "cannot be used with",
    );
    assert_refused(
        &sandbox,
        &url,
        &price,
        2,
        "<TICKER|--event <EVENT_TICKER>|--series <SERIES_TICKER>>",
    );
    assert_refused(
        &sandbox,
        &url,
        &with(&["--series", "TIKTOKBAN-25DEC31"]),
        1,
        "give --series TIKTOKBAN, for one event of it --event TIKTOKBAN-25DEC31",
    );
    // None of these reached the API.
    assert!(server.requests().is_empty(), "{:?}", server.requests());

    for (scope, ticker) in [("--event", "EVSHARE-99JAN"), ("--series", "NOSUCHSERIES")] {
        let name = scope.trim_start_matches('-');
        assert_refused(
            &sandbox,
            &url,
            &with(&[scope, ticker]),
            1,
            &format!(
                "no open market in {name} {ticker} on {}; find the {name} with \
                 `kalshi markets search`, or add it anyway with --no-check",
                url.trim_end_matches("/trade-api/v2")
            ),
        );
    }
    // An event whose markets are all settled has none open.
    assert_refused(
        &sandbox,
        &url,
        &with(&["--event", "OSCARPIC-24"]),
        1,
        "no open market in event OSCARPIC-24",
    );
    // The API unreachable: the same advice as for one market.
    assert_refused(
        &sandbox,
        common::NO_SERVER,
        &with(&["--event", "EVSHARE-30JAN"]),
        1,
        "; check KALSHI_API_BASE_URL (http://127.0.0.1:9), or unset it to use the --env host; \
         or add it without the lookup with --no-check",
    );
    assert_eq!(sandbox.conditions().len(), 1);
}

/// A page of `markets` whose cursor is `cursor`, served in place of the
/// answer to one request.
fn page_of(markets: &[Value], cursor: &str) -> Fault {
    Fault::Page(json!({ "markets": markets, "cursor": cursor }).to_string())
}

/// The markets of the event `event` in the legacy recording.
fn markets_of_event(event: &str) -> Vec<Value> {
    fixtures::legacy_markets()
        .into_iter()
        .filter(|m| m["event_ticker"] == event && m["status"] == "active")
        .collect()
}

#[test]
fn add_follows_the_cursor_past_empty_first_pages_of_a_scope() {
    let scenario =
        Scenario::new(fixtures::legacy_markets()).fault_on_request(0, Fault::EmptyPages(2));
    let server = TestServer::start(scenario);
    let sandbox = Sandbox::new();
    sandbox
        .kalshi_at(&server.base_url())
        .args([
            "alerts",
            "add",
            "price",
            "--event",
            "EVSHARE-30JAN",
            "--above",
            "0.9",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "Watches 4 open markets of event EVSHARE-30JAN, each on its own\n",
        ));
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    for request in &requests {
        assert_eq!(request.param("event_ticker"), Some("EVSHARE-30JAN"));
    }

    // Three empty pages that still lead on: a few pages are read, not all.
    let scenario =
        Scenario::new(fixtures::legacy_markets()).fault_on_request(0, Fault::EmptyPages(3));
    let server = TestServer::start(scenario);
    assert_refused(
        &sandbox,
        &server.base_url(),
        &["price", "--series", "TIKTOKBAN", "--above", "0.5"],
        1,
        &format!(
            "no open market on the first 3 pages of series TIKTOKBAN on http://{}, and the \
             listing goes on; add it anyway with --no-check",
            server.address()
        ),
    );
    assert_eq!(server.requests().len(), 3);
    assert_eq!(sandbox.conditions().len(), 1);
}

#[test]
fn add_says_at_least_while_the_listing_of_a_scope_goes_on() {
    let markets = markets_of_event("EVSHARE-30JAN");
    assert_eq!(markets.len(), 4);
    let add = |scenario: Scenario| {
        let server = TestServer::start(scenario);
        let sandbox = Sandbox::new();
        let output = sandbox
            .kalshi_at(&server.base_url())
            .args([
                "alerts",
                "add",
                "price",
                "--event",
                "EVSHARE-30JAN",
                "--above",
                "0.9",
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr_of(&output));
        let cursors: Vec<Option<String>> = server
            .requests()
            .iter()
            .map(|r| r.param("cursor").map(String::from))
            .collect();
        (stdout_of(&output), cursors)
    };

    // Pages shorter than asked for, each with a cursor: the count is a floor.
    let (said, cursors) = add(Scenario::new(Vec::new())
        .fault_on_request(0, page_of(&markets[..2], "b"))
        .fault_on_request(1, page_of(&markets[2..3], "c"))
        .fault_on_request(2, page_of(&markets[3..], "d")));
    assert!(
        said.contains("Watches at least 4 open markets of event EVSHARE-30JAN, each on its own\n"),
        "{said}"
    );
    assert_eq!(cursors, [None, Some("b".into()), Some("c".into())]);

    // A listing that ends within the pages read is counted exactly.
    let (said, cursors) = add(Scenario::new(Vec::new())
        .fault_on_request(0, page_of(&markets[..2], "b"))
        .fault_on_request(1, page_of(&markets[2..], "")));
    assert!(
        said.contains("Watches 4 open markets of event EVSHARE-30JAN, each on its own\n"),
        "{said}"
    );
    assert_eq!(cursors, [None, Some("b".into())]);
}

#[test]
fn add_refuses_a_malformed_listing_naming_the_page_and_the_reason() {
    let market = markets_of_event("EVSHARE-30JAN").remove(0);
    let sandbox = Sandbox::new();
    sandbox.add(&["price", "KEEP", "--above", "0.5"]);
    for (page, reason) in [
        (json!({"markets": {}}), r#"no "markets" array"#),
        (json!({"cursor": ""}), r#"no "markets" array"#),
        (json!({"markets": null}), r#"no "markets" array"#),
        (
            json!({"markets": [market], "cursor": 5}),
            r#""cursor" is not a string"#,
        ),
    ] {
        let scenario = Scenario::new(fixtures::legacy_markets())
            .fault_on_request(0, Fault::Page(page.to_string()));
        let server = TestServer::start(scenario);
        let url = server.base_url();
        assert_refused(
            &sandbox,
            &url,
            &["price", "--event", "EVSHARE-30JAN", "--above", "0.5"],
            1,
            &format!(
                "cannot look up event EVSHARE-30JAN: page 1 of GET \
                 {url}/markets?status=open&limit=1000&event_ticker=EVSHARE-30JAN is malformed: \
                 {reason}; add it without the lookup with --no-check"
            ),
        );
    }
    assert_eq!(sandbox.conditions().len(), 1);
}

#[test]
fn list_json_writes_the_scope_only_for_events_and_series() {
    let sandbox = Sandbox::new();
    sandbox.add(&["price", "EUCLIMATE-2030", "--above", "0.5"]);
    sandbox.add(&["price", "--event", "EVSHARE-30JAN", "--above", "0.5"]);
    sandbox.add(&["price", "--series", "TIKTOKBAN", "--above", "0.5"]);
    let output = sandbox
        .kalshi()
        .args(["alerts", "list", "--json"])
        .output()
        .unwrap();
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed[0].get("scope").is_none(), "{}", listed[0]);
    assert_eq!(listed[1]["scope"], "event");
    assert_eq!(listed[2]["scope"], "series");
    assert_eq!(listed.as_slice(), sandbox.conditions().as_slice());

    let table = sandbox.kalshi().args(["alerts", "list"]).output().unwrap();
    let table = stdout_of(&table);
    let rows: Vec<&str> = table.lines().collect();
    assert!(rows[1].contains(" EUCLIMATE-2030 "), "{table}");
    assert!(rows[2].contains(" event:EVSHARE-30JAN "), "{table}");
    assert!(rows[3].contains(" series:TIKTOKBAN "), "{table}");
}

#[test]
fn markets_show_lists_the_event_and_series_conditions_that_cover_the_market() {
    let server = lookup_server();
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([
        scoped("on-event", "price_above", "event", "EVSHARE-30JAN", 0.9),
        scoped("on-series", "price_below", "series", "EVSHARE", 0.1),
        scoped("elsewhere", "price_above", "event", "MOON", 0.9),
        record("on-market", "spread_above", "EVSHARE-30JAN-10", 3.0),
    ]));
    let output = sandbox
        .kalshi_at(&server.base_url())
        .args(["markets", "show", "EVSHARE-30JAN-10", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let shown: Value = serde_json::from_slice(&output.stdout).unwrap();
    let ids: Vec<&str> = shown["watched_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["on-event", "on-series", "on-market"]);
}
