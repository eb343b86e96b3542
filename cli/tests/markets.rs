//! `kalshi markets show` / `search` and the ticker check of `alerts add`,
//! through the real binary against the loopback server: the fields shown
//! (sub-penny quotes kept exact), the conditions watching a market, JSON
//! shapes, scopes, close matches for a typo, an unreachable API, and the
//! progress line only on a terminal.

mod common;

use common::{record, stderr_of, stdout_of, Sandbox};
use kalshi_test_server::{fixtures, Fault, Scenario, TestServer};
use predicates::prelude::*;
use serde_json::{json, Value};

fn server() -> TestServer {
    // The legacy recording plus a current-generation market quoted in
    // sub-pennies.
    let mut markets = fixtures::legacy_markets();
    let mut current = fixtures::to_current(&fixtures::transitional_markets()[0]);
    fixtures::set_yes_quote(&mut current, "0.4550", "0.4561");
    markets.push(current);
    TestServer::start(Scenario::new(markets))
}

fn current_ticker() -> String {
    fixtures::transitional_markets()[0]["ticker"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn show_prints_the_market_and_the_conditions_watching_it() {
    let server = server();
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([
        record("watching-1", "price_above", "EUCLIMATE-2030", 0.5),
        record("other", "price_above", "USCLIMATE-2030", 0.5),
    ]));
    let output = sandbox
        .kalshi_at(&server.base_url())
        .args(["markets", "show", "euclimate-2030"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let text = stdout_of(&output);
    for expected in [
        "EUCLIMATE-2030",
        "status:        active",
        "event:         EUCLIMATE",
        "yes bid / ask: 0.35 / 0.44",
        "midpoint:      0.395",
        "last price:    0.35",
        "volume:        39",
        "open interest: 1",
        "closes:        2032-12-31T15:00:00Z",
        "watched by:    watching",
    ] {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }
    assert!(!text.contains("USCLIMATE"), "{text}");

    let output = sandbox
        .kalshi_at(&server.base_url())
        .args(["markets", "show", &current_ticker(), "--json"])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shown["yes_bid"], "0.4550");
    assert_eq!(shown["yes_ask"], "0.4561");
    assert_eq!(shown["midpoint"], "0.45555", "exact, not rounded to a cent");
    assert_eq!(shown["watched_by"], json!([]));
    for key in [
        "ticker",
        "title",
        "status",
        "event_ticker",
        "last_price",
        "volume",
        "open_interest",
        "close_time",
    ] {
        assert!(shown.get(key).is_some(), "no {key} in {shown:#}");
    }
}

#[test]
fn an_unknown_ticker_is_refused_with_close_matches() {
    let server = server();
    let sandbox = Sandbox::new();
    sandbox
        .kalshi_at(&server.base_url())
        .args(["markets", "show", "EUCLIMATE-2031"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(format!(
            "no market EUCLIMATE-2031 on http://{}; did you mean EUCLIMATE-2030?",
            server.address()
        )));
}

#[test]
fn search_matches_tickers_and_titles_within_a_scope() {
    let server = server();
    let sandbox = Sandbox::new();
    let search = |args: &[&str]| {
        let output = sandbox
            .kalshi_at(&server.base_url())
            .args(["markets", "search"])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr_of(&output));
        stdout_of(&output)
    };
    let table = search(&["climate"]);
    let tickers: Vec<&str> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        tickers,
        [
            "EUCLIMATE-2030",
            "INDIACLIMATE-30",
            "USCLIMATE-2025",
            "USCLIMATE-2030"
        ]
    );
    assert!(table.starts_with("TICKER"), "{table}");
    assert!(table.contains("0.35  0.44  0.395  39"), "{table}");

    let scoped = search(&["", "--event", "usclimate", "--json"]);
    let scoped: Vec<Value> = serde_json::from_str(&scoped).unwrap();
    let tickers: Vec<&str> = scoped
        .iter()
        .map(|m| m["ticker"].as_str().unwrap())
        .collect();
    assert_eq!(tickers, ["USCLIMATE-2025", "USCLIMATE-2030"]);
    let asked = server.requests();
    assert!(
        asked
            .iter()
            .any(|r| r.param("event_ticker") == Some("USCLIMATE")),
        "the scope goes to the API as a filter"
    );

    assert_eq!(search(&["climate", "--limit", "2"]).lines().count(), 3);
    assert!(search(&["no-such-thing-anywhere"]).contains("No open market matches"));
    sandbox
        .kalshi_at(&server.base_url())
        .args(["markets", "search", "x", "--limit", "0"])
        .assert()
        .code(2);
}

#[test]
fn search_refuses_a_malformed_page_naming_it_and_the_reason() {
    let search = |scenario: Scenario| {
        let server = TestServer::start(scenario);
        let output = Sandbox::new()
            .kalshi_at(&server.base_url())
            .args(["markets", "search", "climate"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{}", stdout_of(&output));
        (server.base_url(), stderr_of(&output))
    };

    let (url, said) = search(
        Scenario::new(fixtures::legacy_markets()).fault_on_request(0, Fault::Page("{}".into())),
    );
    assert!(
        said.contains(&format!(
            "error: cannot search markets: page 1 of GET {url}/markets?status=open&limit=1000 \
             is malformed: no \"markets\" array"
        )),
        "{said}"
    );

    let first = json!({"markets": fixtures::legacy_markets()[..3], "cursor": "next"});
    let (url, said) = search(
        Scenario::new(fixtures::legacy_markets())
            .fault_on_request(0, Fault::Page(first.to_string()))
            .fault_on_request(1, Fault::Page(r#"{"markets": [], "cursor": ["x"]}"#.into())),
    );
    assert!(
        said.contains(&format!(
            "error: cannot search markets: page 2 of GET \
             {url}/markets?status=open&limit=1000&cursor=next is malformed: \"cursor\" is not a \
             string"
        )),
        "{said}"
    );
}

#[test]
fn add_looks_the_ticker_up_and_shows_the_price() {
    let server = server();
    let sandbox = Sandbox::new();
    sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "add", "price", "EUCLIMATE-2030", "--above", "0.5"])
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "Now: bid 0.35 / ask 0.44, mid 0.395 (active)",
        ));
    let before = std::fs::read(sandbox.alerts_path()).unwrap();

    sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "add", "price", "EUCLIMATE-2003", "--above", "0.5"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains(format!(
            "no market EUCLIMATE-2003 on http://{};",
            server.address()
        )))
        .stderr(predicates::str::contains("did you mean EUCLIMATE-2030?"));
    assert_eq!(std::fs::read(sandbox.alerts_path()).unwrap(), before);

    // The API unreachable: refused, saying how to add offline; --no-check adds.
    let output = sandbox
        .kalshi()
        .args(["alerts", "add", "price", "OFFLINE-1", "--above", "0.5"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output).contains("add it without the lookup with --no-check"),
        "{}",
        stderr_of(&output)
    );
    // Nothing answers at the base URL: that is named first.
    assert!(
        stderr_of(&output).contains(
            "Connection refused (os error 111); check KALSHI_API_BASE_URL (http://127.0.0.1:9), \
             or unset it to use the --env host; or add it without the lookup with --no-check"
        ),
        "{}",
        stderr_of(&output)
    );
    assert_eq!(std::fs::read(sandbox.alerts_path()).unwrap(), before);
    // A base URL that is not one: the same order of advice.
    sandbox
        .kalshi_at("not a url")
        .args(["alerts", "add", "price", "OFFLINE-1", "--above", "0.5"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "error: KALSHI_API_BASE_URL: \"not a url\" is not a URL",
        ))
        .stderr(predicates::str::contains(
            "; fix KALSHI_API_BASE_URL, or unset it to use the --env host; or add it without \
             the lookup with --no-check",
        ));
    assert_eq!(std::fs::read(sandbox.alerts_path()).unwrap(), before);
    sandbox
        .kalshi()
        .args([
            "alerts",
            "add",
            "price",
            "OFFLINE-1",
            "--above",
            "0.5",
            "--no-check",
        ])
        .assert()
        .success()
        .stdout(predicates::str::contains("Now:").not());
    assert_eq!(sandbox.conditions().len(), 2);
}

#[cfg(unix)]
#[test]
fn a_scan_shows_progress_on_a_terminal_and_none_when_piped() {
    let server = server();
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", "EUCLIMATE-2030", 0.3)]));
    let url = server.base_url();
    let env = [
        ("KALSHI_API_BASE_URL", url.as_str()),
        ("KALSHI_LOG", "warn"),
    ];
    let run_on_terminal = |args: &[&str]| sandbox.on_a_terminal(args, &env);
    let shown = run_on_terminal(&["markets", "search", "climate"]);
    assert!(shown.contains("searching: "), "{shown}");
    assert!(shown.contains("market(s) read"), "{shown}");
    let shown = run_on_terminal(&[
        "alerts",
        "monitor",
        "--once",
        "--notifier",
        "log",
        "--scan",
        "full",
    ]);
    assert!(shown.contains("scanning: "), "{shown}");
    assert!(shown.contains("1 page(s), 233 market(s) read"), "{shown}");

    let piped = sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "monitor", "--once", "--notifier", "log"])
        .output()
        .unwrap();
    assert!(
        !stderr_of(&piped).contains("market(s) read"),
        "{}",
        stderr_of(&piped)
    );
    let piped = sandbox
        .kalshi_at(&server.base_url())
        .args(["markets", "search", "climate"])
        .output()
        .unwrap();
    assert!(
        !stderr_of(&piped).contains("searching"),
        "{}",
        stderr_of(&piped)
    );
}

/// `markets show ''` would ask for `/markets/` and then list a whole series.
#[test]
fn show_refuses_what_cannot_be_a_ticker_before_asking_the_api() {
    let sandbox = Sandbox::new();
    for (ticker, problem) in [
        ("", "it has no letter or digit"),
        ("A B", "it has characters other"),
    ] {
        sandbox
            .kalshi()
            .args(["markets", "show", ticker])
            .assert()
            .code(1)
            .stderr(predicate::str::contains(format!(
                "ticker {ticker:?} is not a Kalshi ticker: {problem}"
            )))
            .stderr(predicate::str::contains("connection refused").not());
    }
}

/// A person is waiting: a 429 asking for a day's pause is waited out for a
/// few seconds at most, then the lookup gives up saying why. (The timeout
/// only stops a hung test; before the cap the lookup waited two minutes.)
#[test]
fn a_lookup_does_not_wait_out_a_long_retry_after() {
    let sandbox = Sandbox::new();
    let too_many = Fault::Status {
        code: 429,
        retry_after: Some("100000".into()),
    };
    let scenario = Scenario::new(fixtures::legacy_markets())
        .fault_on_request(0, too_many.clone())
        .fault_on_request(1, too_many);
    let server = TestServer::start(scenario);
    sandbox
        .kalshi_at(&server.base_url())
        .args(["markets", "show", &current_ticker()])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "refused with HTTP 429 after 2 attempt(s)",
        ));
    assert_eq!(server.requests().len(), 2);
}

/// A listing that goes on past the pages a search reads: no match among
/// those is not "no match", and the person is told how to search the rest.
#[test]
fn a_search_cut_short_by_its_page_limit_says_so() {
    let mut scenario = Scenario::new(fixtures::legacy_markets());
    for page in 0..100 {
        let body = json!({
            "cursor": format!("next-{page}"),
            "markets": [{"ticker": format!("FILL-{page}"), "event_ticker": "FILL",
                         "title": "Filler", "status": "active"}]
        });
        scenario = scenario.fault_on_request(page, Fault::Page(body.to_string()));
    }
    let server = TestServer::start(scenario);
    let output = Sandbox::new()
        .kalshi_at(&server.base_url())
        .args(["markets", "search", "nomatch"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(
        stdout_of(&output).trim(),
        "No match for \"nomatch\" among the open markets read."
    );
    assert!(
        stderr_of(&output).contains("stopped after 100 pages")
            && stderr_of(&output).contains("--event or --series"),
        "{}",
        stderr_of(&output)
    );
    assert_eq!(server.requests().len(), 100);
}

/// `alerts add --event` counts what the monitor will watch: markets of
/// another event, sent by a server that ignores the filter, are not counted.
#[test]
fn add_counts_only_the_markets_of_the_scope_whatever_the_server_sends() {
    let markets = fixtures::legacy_markets();
    let event = markets
        .iter()
        .find(|m| m["status"] == "active" && m["event_ticker"] == "USCLIMATE")
        .map(|m| m["event_ticker"].as_str().unwrap().to_string())
        .expect("the recording has the USCLIMATE event");
    let open_of_event = markets
        .iter()
        .filter(|m| m["status"] == "active" && m["event_ticker"] == event.as_str())
        .count();
    // Every listing answered with the whole page, unfiltered.
    let page = json!({"cursor": "", "markets": markets});
    let scenario =
        Scenario::new(markets.clone()).fault_on_request(0, Fault::Page(page.to_string()));
    let server = TestServer::start(scenario);
    let sandbox = Sandbox::new();
    sandbox
        .kalshi_at(&server.base_url())
        .args([
            "alerts", "add", "price", "--event", &event, "--above", "0.9",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "Watches {open_of_event} open market"
        )));
}

/// When alerts.json cannot be read, `markets show` still shows the market,
/// but never says "no condition": a warning on stderr names the file and
/// the reason, the "watched by" line says it could not be read, and
/// `--json` gives `"watched_by": null`.
#[test]
fn show_says_when_the_conditions_cannot_be_read() {
    let server = server();
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.data_dir()).unwrap();
    let broken = "{\"conditions\": [,]}";
    for (prepare, reason) in [
        (
            Box::new(|path: &std::path::Path| std::fs::write(path, broken).unwrap())
                as Box<dyn Fn(&std::path::Path)>,
            "is not valid JSON (line 1, column 17)",
        ),
        (
            Box::new(|path: &std::path::Path| std::fs::create_dir(path).unwrap()),
            "is not a regular file",
        ),
    ] {
        let path = sandbox.alerts_path();
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir(&path);
        prepare(&path);

        let output = sandbox
            .kalshi_at(&server.base_url())
            .args(["markets", "show", "EUCLIMATE-2030"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        let (stdout, stderr) = (stdout_of(&output), stderr_of(&output));
        assert!(
            stderr.contains(&format!(
                "warning: cannot tell which conditions watch EUCLIMATE-2030: alerts file {}",
                path.display()
            )),
            "{stderr}"
        );
        assert!(stderr.contains(reason), "{reason} not in: {stderr}");
        assert!(
            stdout.contains(&format!(
                "  watched by:    unknown: {} could not be read (see the warning)",
                path.display()
            )),
            "{stdout}"
        );
        assert!(!stdout.contains("no condition"), "{stdout}");

        let output = sandbox
            .kalshi_at(&server.base_url())
            .args(["markets", "show", "EUCLIMATE-2030", "--json"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        let shown: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
        assert_eq!(shown["watched_by"], Value::Null, "{shown:#}");
        assert!(
            stderr_of(&output).contains(reason),
            "{}",
            stderr_of(&output)
        );
    }
}

/// A title with a right-to-left override (or a control character) from the
/// server is shown with `?` in its place, in `show` and in `search`.
#[test]
fn a_bidirectional_override_in_a_title_is_not_shown_raw() {
    let mut markets = fixtures::legacy_markets();
    let market = markets
        .iter_mut()
        .find(|m| m["ticker"] == "EUCLIMATE-2030")
        .unwrap();
    market["title"] = json!("Climate \u{202E}0302 \u{1b}[2Jbill");
    let server = TestServer::start(Scenario::new(markets));
    let sandbox = Sandbox::new();
    for args in [
        &["markets", "show", "EUCLIMATE-2030"][..],
        &["markets", "search", "Climate"][..],
    ] {
        let output = sandbox
            .kalshi_at(&server.base_url())
            .args(args)
            .output()
            .unwrap();
        let stdout = stdout_of(&output);
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        assert!(stdout.contains("Climate ?0302 ?[2Jbill"), "{stdout}");
        assert!(!stdout.contains(['\u{202E}', '\u{1b}']), "{stdout}");
    }
}
