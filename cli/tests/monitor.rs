//! `kalshi alerts monitor` through the real binary against the loopback
//! Kalshi server serving the recorded fixtures: each condition type firing,
//! the three payload generations, paging, retries and malformed data; and
//! against an HTTPS server whose certificate nothing vouches for.

mod common;
#[path = "../../plugins/src/notifiers/webhook/receiver.rs"]
mod receiver;

use std::time::{Duration, Instant};

use common::{fired_ids, fired_records, record, stderr_of, stdout_of, Sandbox};
use kalshi_test_server::{fixtures, Fault, Scenario, TestServer};
use predicates::prelude::*;
use serde_json::{json, Value};

/// Recorded legacy quotes used below: EUCLIMATE-2030 35/44 (midpoint
/// 0.395, spread 9c, volume 39), USCLIMATE-2025 11/17 (0.14), CHINAUSGDP-30
/// volume 1976.
fn legacy() -> Vec<Value> {
    fixtures::legacy_markets()
}

fn with_quote(mut markets: Vec<Value>, ticker: &str, bid: &str, ask: &str) -> Vec<Value> {
    let market = markets
        .iter_mut()
        .find(|m| m["ticker"] == ticker)
        .expect("ticker in fixture");
    fixtures::set_yes_quote(market, bid, ask);
    markets
}

/// `monitor` with an output file and no pause between cycles.
fn monitor(sandbox: &Sandbox, server: &TestServer, extra: &[&str]) -> std::process::Output {
    let out = sandbox.path("fired.jsonl");
    let mut args = vec![
        "alerts",
        "monitor",
        "--interval",
        "0",
        "--output-file",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    sandbox
        .kalshi_at(&server.base_url())
        .args(&args)
        .output()
        .unwrap()
}

fn fired(sandbox: &Sandbox) -> Vec<String> {
    fired_ids(&sandbox.path("fired.jsonl"))
}

/// Deliveries run concurrently, so the file's order is not the
/// conditions' order; compare as sets.
fn assert_fired(sandbox: &Sandbox, expected: &[&str]) {
    let mut got = fired(sandbox);
    got.sort();
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(got, expected);
}

#[test]
fn no_conditions_prints_the_hint_and_exits_zero_in_every_mode() {
    let sandbox = Sandbox::new();
    for extra in [
        &["--once"][..],
        &[],
        &["--daemon"],
        &["--launcher", "daemon"],
    ] {
        let mut args = vec!["alerts", "monitor"];
        args.extend_from_slice(extra);
        sandbox
            .kalshi()
            .args(&args)
            .assert()
            .success()
            .stdout("No alerts configured. Use 'kalshi alerts add' to create some.\n");
    }
    assert!(!sandbox.data_dir().join("alert_monitor.log").exists());
    assert!(!sandbox.data_dir().join("alert_monitor.pid").exists());
}

#[test]
fn once_fires_price_spread_and_volume_strictly_above_or_below() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([
        record("above-fires", "price_above", "EUCLIMATE-2030", 0.39),
        record("above-equal", "price_above", "EUCLIMATE-2030", 0.395),
        record("below-fires", "price_below", "USCLIMATE-2025", 0.2),
        record("below-equal", "price_below", "USCLIMATE-2025", 0.14),
        record("spread-fires", "spread_above", "EUCLIMATE-2030", 8.0),
        record("spread-equal", "spread_above", "EUCLIMATE-2030", 9.0),
        record("volume-fires", "volume_above", "CHINAUSGDP-30", 1975.0),
        record("volume-equal", "volume_above", "CHINAUSGDP-30", 1976.0),
        record("not-listed", "price_above", "NO-SUCH-MARKET", 0.1),
    ]));
    let server = TestServer::start(Scenario::new(legacy()));

    let output = monitor(&sandbox, &server, &["--once"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_fired(
        &sandbox,
        &["above-fires", "below-fires", "spread-fires", "volume-fires"],
    );

    let stdout = stdout_of(&output);
    assert!(stdout.contains("single check"), "{stdout}");
    assert!(!stdout.contains("Press Ctrl+C"), "{stdout}");
    assert!(stdout.contains("ALERT EUCLIMATE-2030"), "{stdout}");
    assert!(
        stdout.contains("Check complete: 1 cycle(s), 4 alert(s) fired."),
        "{stdout}"
    );
    assert!(
        stderr_of(&output).contains("alert fired"),
        "log notifier wrote nothing"
    );

    let request = &server.requests()[0];
    assert_eq!(request.path, "/trade-api/v2/markets");
    assert_eq!(request.param("status"), Some("open"));
    assert_eq!(request.param("limit"), Some("1000"));
}

#[test]
fn fired_record_carries_every_documented_field() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record(
        "c-1",
        "spread_above",
        "EUCLIMATE-2030",
        5.0
    )]));
    let server = TestServer::start(Scenario::new(legacy()));
    assert!(monitor(&sandbox, &server, &["--once"]).status.success());

    let records = fired_records(&sandbox.path("fired.jsonl"));
    let alert = &records[0];
    assert!(uuid::Uuid::parse_str(alert["id"].as_str().unwrap()).is_ok());
    assert_eq!(alert["condition_id"], "c-1");
    assert_eq!(alert["condition_type"], "spread_above");
    assert_eq!(alert["ticker"], "EUCLIMATE-2030");
    assert_eq!(alert["label"], "spread_above EUCLIMATE-2030");
    assert_eq!(alert["threshold"], json!(5));
    assert_eq!(alert["current_value"], json!(9));
    let at = alert["triggered_at"].as_str().unwrap();
    assert!(at.ends_with("+00:00"), "{at}");
    assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
    assert_eq!(
        alert["market_data"],
        json!({"ticker": "EUCLIMATE-2030", "title": "", "yes_bid": 0.35, "yes_ask": 0.44, "volume": 39})
    );
}

#[test]
fn crossing_and_move_fire_on_the_second_cycle() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([
        record("cross-up", "price_crosses", "EUCLIMATE-2030", 0.45),
        record("cross-missed", "price_crosses", "EUCLIMATE-2030", 0.6),
        record("cross-down", "price_crosses", "USCLIMATE-2025", 0.1),
        record("move-fires", "edge_detected", "EUCLIMATE-2030", 0.115),
        record("move-small", "edge_detected", "EUCLIMATE-2030", 0.2),
    ]));
    let moved = with_quote(legacy(), "EUCLIMATE-2030", "0.50", "0.52");
    let moved = with_quote(moved, "USCLIMATE-2025", "0.04", "0.06");
    let scenario = Scenario::new(legacy()).then(moved);

    let once = TestServer::start(scenario.clone());
    assert!(monitor(&sandbox, &once, &["--once"]).status.success());
    assert!(
        fired(&sandbox).is_empty(),
        "a one-check run has nothing to compare with"
    );

    let twice = TestServer::start(scenario);
    let output = monitor(&sandbox, &twice, &["--cycles", "2"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_fired(&sandbox, &["cross-up", "cross-down", "move-fires"]);
    assert_eq!(twice.scans_started(), 2);
}

#[test]
fn a_condition_fires_once_per_run() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", "EUCLIMATE-2030", 0.3)]));
    let server = TestServer::start(Scenario::new(legacy()));
    let output = monitor(&sandbox, &server, &["--cycles", "3"]);
    assert!(output.status.success());
    assert_fired(&sandbox, &["c"]);
    assert!(stdout_of(&output).contains("3 cycle(s), 1 alert(s) fired"));
}

#[test]
fn all_three_payload_generations_are_read_exactly() {
    let transitional = fixtures::transitional_markets();
    let mut sub_penny = transitional[0].clone();
    fixtures::set_yes_quote(&mut sub_penny, "0.4550", "0.4560");
    let mut current = fixtures::to_current(&transitional[1]);
    fixtures::set_yes_quote(&mut current, "0.7000", "0.7100");
    fixtures::set_volume(&mut current, "12.50");
    let mut unquoted = fixtures::to_current(&transitional[2]);
    unquoted.as_object_mut().unwrap().remove("yes_bid_dollars");
    let mut markets = legacy();
    markets.extend([sub_penny.clone(), current.clone(), unquoted.clone()]);

    let ticker = |m: &Value| m["ticker"].as_str().unwrap().to_string();
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([
        record("legacy", "price_above", "EUCLIMATE-2030", 0.39),
        record("transitional", "price_above", &ticker(&sub_penny), 0.455),
        record(
            "transitional-equal",
            "price_above",
            &ticker(&sub_penny),
            0.4555
        ),
        record("current", "price_above", &ticker(&current), 0.7),
        record("current-volume", "volume_above", &ticker(&current), 12.4),
        record("missing-bid", "price_below", &ticker(&unquoted), 0.99),
    ]));
    let server = TestServer::start(Scenario::new(markets));

    let output = monitor(&sandbox, &server, &["--once"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_fired(
        &sandbox,
        &["legacy", "transitional", "current", "current-volume"],
    );
    let records = fired_records(&sandbox.path("fired.jsonl"));
    let of = |id: &str| {
        records
            .iter()
            .find(|r| r["condition_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(of("transitional")["current_value"], json!(0.4555));
    assert_eq!(of("transitional")["market_data"]["yes_bid"], json!(0.455));
    assert_eq!(of("current")["current_value"], json!(0.705));
    assert_eq!(of("current-volume")["current_value"], json!(12.5));
}

/// 2,500 markets derived from the recording: three pages of 1,000.
fn many_markets() -> Vec<Value> {
    let base = legacy();
    (0..2500)
        .map(|i| {
            let mut market = base[i % base.len()].clone();
            market["ticker"] = json!(format!("DERIVED-{i:04}"));
            market["status"] = json!("active");
            market
        })
        .collect()
}

#[test]
fn pagination_follows_the_cursor_to_the_last_page() {
    let sandbox = Sandbox::new();
    let last_page_ticker = "DERIVED-2400";
    sandbox.write_alerts(json!([record(
        "deep",
        "volume_above",
        last_page_ticker,
        0.0
    )]));
    let markets = many_markets();
    assert!(markets[2400]["volume"].as_i64().unwrap() > 0);
    let server = TestServer::start(Scenario::new(markets));

    let output = monitor(&sandbox, &server, &["--scan", "full", "--once"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_fired(&sandbox, &["deep"]);

    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].param("cursor"), None);
    assert!(requests[1].param("cursor").is_some());
    assert!(requests[2].param("cursor").is_some());
    assert!(stderr_of(&output).contains("pages=3 markets=2500"));
}

#[test]
fn max_pages_truncates_the_scan_and_warns() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([
        record("early", "volume_above", "DERIVED-0000", 0.0),
        record("deep", "volume_above", "DERIVED-2400", 0.0),
    ]));
    let server = TestServer::start(Scenario::new(many_markets()));

    let output = monitor(
        &sandbox,
        &server,
        &["--scan", "full", "--once", "--max-pages", "1"],
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_fired(&sandbox, &["early"]);
    assert_eq!(server.requests().len(), 1);
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("scan truncated by --max-pages after 1 page(s) and 1000 market(s)"),
        "{stderr}"
    );
}

#[test]
fn a_429_is_retried_after_its_retry_after() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", "EUCLIMATE-2030", 0.3)]));
    let scenario = Scenario::new(legacy()).fault_on_request(
        0,
        Fault::Status {
            code: 429,
            retry_after: Some("2".into()),
        },
    );
    let server = TestServer::start(scenario);

    let started = Instant::now();
    let output = monitor(&sandbox, &server, &["--once"]);
    let took = started.elapsed();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_fired(&sandbox, &["c"]);
    assert_eq!(server.requests().len(), 2);
    // Backoff alone would wait at most 0.5 s; only Retry-After explains 2 s.
    assert!(took >= Duration::from_secs(2), "retried after {took:?}");
    assert!(stderr_of(&output).contains("HTTP 429"));
}

#[test]
fn a_500_is_retried_with_backoff() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", "EUCLIMATE-2030", 0.3)]));
    let scenario = Scenario::new(legacy())
        .fault_on_request(
            0,
            Fault::Status {
                code: 500,
                retry_after: None,
            },
        )
        .fault_on_request(
            1,
            Fault::Status {
                code: 503,
                retry_after: None,
            },
        );
    let server = TestServer::start(scenario);

    let output = monitor(&sandbox, &server, &["--once"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_fired(&sandbox, &["c"]);
    assert_eq!(server.requests().len(), 3);
    let stderr = stderr_of(&output);
    assert_eq!(
        stderr.matches("request failed; retrying").count(),
        2,
        "{stderr}"
    );
}

#[test]
fn a_slow_response_times_out_and_is_retried() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", "EUCLIMATE-2030", 0.3)]));
    let scenario =
        Scenario::new(legacy()).fault_on_request(0, Fault::Delay(Duration::from_secs(5)));
    let server = TestServer::start(scenario);

    let output = monitor(&sandbox, &server, &["--once", "--timeout", "1"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_fired(&sandbox, &["c"]);
    assert!(stderr_of(&output).contains("timed out"));
}

#[test]
fn a_malformed_page_fails_the_cycle_and_the_next_cycle_runs() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", "EUCLIMATE-2030", 0.3)]));
    let server =
        TestServer::start(Scenario::new(legacy()).fault_on_request(0, Fault::MalformedBody));

    let output = monitor(&sandbox, &server, &["--cycles", "2"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("page 1 of GET"), "{stderr}");
    assert!(stderr.contains("is malformed: not valid JSON"), "{stderr}");
    assert!(stderr.contains("the next cycle will try again"), "{stderr}");
    assert_fired(&sandbox, &["c"]);
}

#[test]
fn a_single_check_that_fails_exits_one() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", "EUCLIMATE-2030", 0.3)]));
    let server = TestServer::start(Scenario::new(legacy()).fault_on_request(
        0,
        Fault::Status {
            code: 404,
            retry_after: None,
        },
    ));
    let output = monitor(&sandbox, &server, &["--once"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr_of(&output).contains("every check failed; last error: GET"));
    assert_eq!(server.requests().len(), 1, "a 404 must not be retried");
}

#[test]
fn an_api_server_with_a_self_signed_certificate_is_refused_without_retries() {
    let certificate = receiver::SelfSigned::generate();
    let server = receiver::Receiver::start_tls(&certificate, []);
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", "EUCLIMATE-2030", 0.3)]));

    let output = sandbox
        .kalshi_at(&server.url("/trade-api/v2"))
        .args(["alerts", "monitor", "--once"])
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("failed after 1 attempt(s)"), "{stderr}");
    assert!(
        stderr.contains(
            "invalid peer certificate: UnknownIssuer (the market API's TLS certificate is always \
             checked)"
        ),
        "{stderr}"
    );
    assert_eq!(server.connections(), 1, "one handshake, not retried");
    assert!(server.requests().is_empty());
}

#[test]
fn a_malformed_market_is_skipped_with_a_warning_naming_it() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([
        record("good", "price_above", "EUCLIMATE-2030", 0.3),
        record("bad", "price_above", "BROKEN-1", 0.0),
    ]));
    let mut markets = legacy();
    markets.insert(0, json!({"ticker": "BROKEN-1", "status": "active", "yes_bid_dollars": "forty", "yes_ask": 50}));
    let server = TestServer::start(Scenario::new(markets));

    let output = monitor(&sandbox, &server, &["--once"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_fired(&sandbox, &["good"]);
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("skipped malformed market ticker=BROKEN-1"),
        "{stderr}"
    );
}

#[test]
fn unsupported_and_expired_conditions_are_skipped() {
    let sandbox = Sandbox::new();
    let mut expired = record("expired", "price_above", "EUCLIMATE-2030", 0.1);
    expired["expires_at"] = json!("2020-01-01T00:00:00+00:00");
    sandbox.write_alerts(json!([
        record("sentiment", "sentiment_shift", "EUCLIMATE-2030", 0.1),
        expired,
        record("live", "price_above", "EUCLIMATE-2030", 0.1),
    ]));
    let server = TestServer::start(Scenario::new(legacy()));

    let output = monitor(&sandbox, &server, &["--cycles", "2"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_fired(&sandbox, &["live"]);
    let stderr = stderr_of(&output);
    assert_eq!(
        stderr.matches("condition type is not evaluated").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("kind=sentiment_shift"), "{stderr}");
}

/// A condition whose market no scan finds (closed, mistyped, or a combo
/// `--skip-combos` leaves out) is said once, not in every cycle, and only
/// after a scan that read every listing; one whose market is listed is not.
#[test]
fn a_condition_whose_market_is_not_listed_is_warned_about_once() {
    for scan in ["auto", "full"] {
        let sandbox = Sandbox::new();
        sandbox.write_alerts(json!([
            record("gone", "price_above", "GONE-99-X", 0.1),
            record("live", "price_above", "EUCLIMATE-2030", 0.1),
        ]));
        let server = TestServer::start(Scenario::new(legacy()));
        let output = monitor(&sandbox, &server, &["--cycles", "3", "--scan", scan]);
        assert!(output.status.success(), "{}", stderr_of(&output));
        assert_fired(&sandbox, &["live"]);
        let stderr = stderr_of(&output);
        let warned: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("no open market found for this condition"))
            .collect();
        assert_eq!(warned.len(), 1, "{scan}: {stderr}");
        assert!(warned[0].contains("id=gone"), "{}", warned[0]);
    }
}

#[test]
fn unknown_notifier_or_launcher_is_refused_before_anything_runs() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", "EUCLIMATE-2030", 0.3)]));
    let server = TestServer::start(Scenario::new(legacy()));

    sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "monitor", "--once", "--notifier", "console,slack"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "unknown notifier \"slack\"; registered notifiers: console, desktop, email, file, log, webhook",
        ));
    sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "monitor", "--once", "--notifier", "file"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("setting path: missing"))
        .stderr(predicate::str::contains("--output-file"));
    sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "monitor", "--once", "--notifier", ""])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no notifier selected"));
    sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "monitor", "--once", "--launcher", "systemd"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "registered launchers: daemon, foreground",
        ));
    assert!(server.requests().is_empty());
}

#[test]
fn base_url_override_wins_over_the_environment() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", "EUCLIMATE-2030", 0.3)]));
    let server = TestServer::start(Scenario::new(legacy()));
    let output = monitor(&sandbox, &server, &["--once", "--notifier", "log"]);
    assert!(output.status.success());
    let demo = sandbox
        .kalshi_at(&server.base_url())
        .args(["--env", "demo", "alerts", "monitor", "--once"])
        .output()
        .unwrap();
    assert!(demo.status.success(), "{}", stderr_of(&demo));
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn replay_source_fires_with_no_network() {
    let sandbox = Sandbox::new();
    // The crossing hovers around 0.4 in the recording and crosses it again
    // and again; `once` fires it the first time only.
    let mut crossing = record("x", "price_crosses", "HIGHAUS-24JUL13-T90", 0.4);
    crossing["repeat"] = json!("once");
    sandbox.write_alerts(json!([
        record("p", "price_above", "AITURING", 0.6),
        crossing
    ]));
    let out = sandbox.path("fired.jsonl");
    let output = sandbox
        .kalshi()
        .args(["alerts", "monitor", "--source", "replay", "--interval", "0"])
        .args(["--output-file", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let mut ids = fired_ids(&out);
    ids.sort();
    assert_eq!(ids, ["p", "x"]);
    assert!(stdout_of(&output).contains("Replay finished: 100 cycle(s), 2 alert(s) fired."));
    // A replay keeps its state in memory: the data dir gets no database.
    assert!(!sandbox.data_dir().join("state.sqlite3").exists());
}

#[test]
fn a_bad_base_url_is_refused_before_anything_runs() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", "EUCLIMATE-2030", 0.3)]));
    for (url, message) in [
        ("", "is set but empty"),
        ("http://", "is not a URL"),
        (
            "http://user:S3CRET@127.0.0.1:9/trade-api/v2",
            "must not carry credentials",
        ),
        (
            "http://127.0.0.1:9/trade-api/v2?token=S3CRET",
            "must not have a query",
        ),
    ] {
        let output = sandbox
            .kalshi_at(url)
            .args(["alerts", "monitor", "--once"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{url:?}");
        let stderr = stderr_of(&output);
        assert!(stderr.contains(message), "{url:?}: {stderr}");
        assert!(!stderr.contains("S3CRET"), "{stderr}");
    }
}

#[test]
fn a_lower_case_ticker_written_by_the_python_tool_still_matches() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record(
        "lower",
        "price_above",
        "euclimate-2030",
        0.3
    )]));
    let server = TestServer::start(Scenario::new(legacy()));
    let output = monitor(&sandbox, &server, &["--once"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_fired(&sandbox, &["lower"]);
}

#[test]
fn a_hostile_market_title_cannot_forge_console_output() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", "EUCLIMATE-2030", 0.3)]));
    let mut markets = legacy();
    let market = markets
        .iter_mut()
        .find(|m| m["ticker"] == "EUCLIMATE-2030")
        .unwrap();
    market["title"] = json!("Climate\nALERT FAKE-TICKER\u{1b}[2J");
    let server = TestServer::start(Scenario::new(markets));
    let output = monitor(&sandbox, &server, &["--once", "--notifier", "console"]);
    let stdout = stdout_of(&output);
    assert!(
        stdout.contains("  Climate?ALERT FAKE-TICKER?[2J"),
        "{stdout}"
    );
    assert!(!stdout.contains("\nALERT FAKE-TICKER"), "{stdout}");
}

#[test]
fn an_auto_scan_asks_for_the_watched_markets_only_and_fires_as_a_full_one() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([
        record("eu", "price_above", "EUCLIMATE-2030", 0.3),
        record("us", "price_below", "USCLIMATE-2025", 0.2),
        record("us-spread", "spread_above", "USCLIMATE-2025", 1.0),
        record("gone", "price_above", "NOT-LISTED", 0.1),
    ]));
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
    let output = monitor(&sandbox, &server, &["--once"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let auto = fired(&sandbox);
    // One request, naming the three watched tickers, and no paging.
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let mut asked: Vec<&str> = requests[0].param("tickers").unwrap().split(',').collect();
    asked.sort();
    assert_eq!(asked, ["EUCLIMATE-2030", "NOT-LISTED", "USCLIMATE-2025"]);
    assert!(
        stderr_of(&output).contains("pages=1 markets=2"),
        "{}",
        stderr_of(&output)
    );

    // The same data read whole fires the same alerts.
    let full = Sandbox::new();
    std::fs::create_dir_all(full.data_dir()).unwrap();
    std::fs::copy(sandbox.alerts_path(), full.alerts_path()).unwrap();
    let output = monitor(&full, &server, &["--once", "--scan", "full"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let mut auto = auto;
    auto.sort();
    let mut whole = fired(&full);
    whole.sort();
    assert_eq!(auto, whole);
    assert_eq!(auto, ["eu", "us", "us-spread"]);
    assert!(
        stderr_of(&output).contains("markets=232"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn skip_combos_asks_the_api_to_leave_combo_markets_out() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("eu", "price_above", "EUCLIMATE-2030", 0.3)]));
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
    let output = monitor(
        &sandbox,
        &server,
        &["--once", "--scan", "full", "--skip-combos"],
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(server.requests()[0].param("mve_filter"), Some("exclude"));
    assert_eq!(server.requests()[0].param("tickers"), None);
}

#[test]
fn skip_combos_without_scan_full_is_a_usage_error_before_anything_runs() {
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
    for stored in [true, false] {
        let sandbox = Sandbox::new();
        if stored {
            sandbox.write_alerts(json!([record("eu", "price_above", "EUCLIMATE-2030", 0.3)]));
        }
        for scan in [&[][..], &["--scan", "auto"]] {
            let output = sandbox
                .kalshi_at(&server.base_url())
                .args(["alerts", "monitor", "--once", "--skip-combos"])
                .args(scan)
                .output()
                .unwrap();
            assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
            assert_eq!(
                stderr_of(&output),
                "error: --skip-combos applies only to --scan full, and the scan is auto; \
                 add --scan full, or leave --skip-combos out\n"
            );
            assert_eq!(stdout_of(&output), "");
        }
    }
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

/// A file edited by hand can hold what `alerts add` never writes: two
/// conditions under one id (whose state would overwrite each other's, so
/// they fired at every check), an empty ticker (an empty filter, which the
/// API reads as none), a series with a '-'. The monitor refuses each,
/// naming the condition, before it reads any market, and leaves the file.
#[test]
fn a_hand_edited_file_with_a_shared_id_or_a_bad_ticker_is_refused_naming_the_condition() {
    let sandbox = Sandbox::new();
    let good = record("aaa", "price_above", "SOLO", 0.1);
    let mut series = record("ser", "price_above", "KX-SERIES", 0.1);
    series["scope"] = json!("series");
    let mut far = record("far", "price_above", "SOLO", 0.1);
    far["expires_at"] = json!("+12027-02-18T00:10:08+00:00");
    let cases = [
        (
            json!([good.clone(), record("aaa", "price_above", "OTHER", 0.1)]),
            "alert condition 2 in alerts.json (id \"aaa\") has the id of condition 1",
        ),
        (
            json!([good.clone(), record("bbb", "price_above", "", 0.1)]),
            "alert condition 2 in alerts.json (id \"bbb\") has ticker \"\", which is not a Kalshi \
             ticker: it has no letter or digit",
        ),
        (
            json!([record("", "price_above", "SOLO", 0.1)]),
            "alert condition 1 in alerts.json (no id) has an empty id",
        ),
        (
            json!([good.clone(), series]),
            "(id \"ser\") watches series \"KX-SERIES\", and a series ticker has no '-'",
        ),
        (json!([far]), "(id \"far\") has an unreadable expires_at"),
        (
            json!([record("x\u{1b}]0;pwn\u{7}", "price_above", "SOLO", 0.1)]),
            "has control or text-direction characters in its id",
        ),
    ];
    for (conditions, message) in cases {
        sandbox.write_alerts(conditions);
        let before = std::fs::read(sandbox.alerts_path()).unwrap();
        let output = sandbox
            .kalshi()
            .args(["alerts", "monitor", "--once"])
            .output()
            .unwrap();
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(message), "{message} not in: {stderr}");
        assert!(stderr.contains("fix alerts.json"), "{stderr}");
        assert_eq!(std::fs::read(sandbox.alerts_path()).unwrap(), before);
    }
}

/// A threshold that `alerts add` refuses, written into the file by hand, is
/// refused at start too, with the reason `add` gives: a move of 0 fired on
/// every market at every check, and a negative price on everything.
#[test]
fn a_hand_edited_threshold_that_add_refuses_is_refused_at_start() {
    let sandbox = Sandbox::new();
    let cases: [(&str, f64, &[&str], &str); 9] = [
        (
            "edge_detected",
            0.0,
            &["move", "X", "--by", "0"],
            "has edge_detected threshold 0, which `alerts add` refuses: a move of 0 would fire \
             on every check",
        ),
        (
            "edge_detected",
            1.0,
            &["move", "X", "--by", "1"],
            "moves by less than 1 between checks, so this could never fire",
        ),
        (
            "price_above",
            -5.0,
            &["price", "X", "--above", "-5"],
            "has price_above threshold -5, which `alerts add` refuses: -5 is negative",
        ),
        (
            "price_above",
            2.0,
            &["price", "X", "--above", "2"],
            "which `alerts add` refuses: 2 is above 1",
        ),
        (
            "price_above",
            1.0,
            &["price", "X", "--above", "1"],
            "a midpoint is never above 1",
        ),
        (
            "price_below",
            0.0,
            &["price", "X", "--below", "0"],
            "a midpoint is never below 0",
        ),
        (
            "price_crosses",
            1.0,
            &["crosses", "X", "--level", "1"],
            "a quoted midpoint never reaches 1",
        ),
        (
            "spread_above",
            100.0,
            &["spread", "X", "--above", "100"],
            "a spread of 100 cents or more can never be exceeded",
        ),
        (
            "volume_above",
            -1.0,
            &["volume", "X", "--above", "-1"],
            "has volume_above threshold -1, which `alerts add` refuses",
        ),
    ];
    for (kind, threshold, add_args, message) in cases {
        sandbox.write_alerts(json!([
            record("good", "price_above", "SOLO", 0.1),
            record("bad", kind, "SOLO", threshold)
        ]));
        let before = std::fs::read(sandbox.alerts_path()).unwrap();
        let output = sandbox
            .kalshi()
            .args(["alerts", "monitor", "--once"])
            .output()
            .unwrap();
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.starts_with("error: alert condition 2 in alerts.json (id \"bad\") "),
            "{stderr}"
        );
        assert!(stderr.contains(message), "{message} not in: {stderr}");
        assert!(
            stderr
                .trim_end()
                .ends_with("fix alerts.json or remove the condition"),
            "{stderr}"
        );
        assert_eq!(std::fs::read(sandbox.alerts_path()).unwrap(), before);

        // `add` refuses the same threshold.
        let added = sandbox
            .kalshi()
            .args(["alerts", "add", "--no-check"])
            .args(add_args)
            .output()
            .unwrap();
        assert_ne!(added.status.code(), Some(0), "{kind} {threshold} was added");
        assert_eq!(std::fs::read(sandbox.alerts_path()).unwrap(), before);
    }

    // What `add` takes, the monitor takes: a volume of 0, a move of 0.01.
    sandbox.write_alerts(json!([
        record("v", "volume_above", "SOLO", 0.0),
        record("m", "edge_detected", "SOLO", 0.01)
    ]));
    let output = sandbox
        .kalshi()
        .args(["alerts", "monitor", "--once"])
        .output()
        .unwrap();
    assert!(
        !stderr_of(&output).contains("fix alerts.json"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn an_interval_past_a_year_is_a_usage_error() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("aaa", "price_above", "SOLO", 0.1)]));
    for interval in ["31536001", "18446744073709551615"] {
        sandbox
            .kalshi()
            .args(["alerts", "monitor", "--once", "--interval", interval])
            .assert()
            .code(2)
            .stderr(
                predicate::str::contains("--interval")
                    .and(predicate::str::contains("0..=31536000")),
            );
    }
}
