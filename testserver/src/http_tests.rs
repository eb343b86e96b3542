//! End-to-end tests of the server over real loopback connections, using a tiny blocking
//! HTTP/1.1 client so the tests need no async runtime and no HTTP client crate.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{fixtures, Fault, Scenario, TestServer};

/// A response as the tiny client read it.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn tickers(&self) -> Vec<String> {
        let markets = self.json()["markets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        markets
            .iter()
            .map(|market| market["ticker"].as_str().unwrap().to_owned())
            .collect()
    }

    fn cursor(&self) -> String {
        self.json()["cursor"]
            .as_str()
            .expect("page has a cursor")
            .to_owned()
    }
}

/// Sends `method` for `target` (relative to the API base path, e.g. `/markets?limit=5`).
fn request(server: &TestServer, method: &str, target: &str) -> Reply {
    let mut stream = TcpStream::connect(server.address()).expect("connect to the test server");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let host = server.address();
    let head = format!(
        "{method} /trade-api/v2{target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .expect("read the whole response");
    parse_reply(&String::from_utf8(raw).expect("UTF-8 response"))
}

fn get(server: &TestServer, target: &str) -> Reply {
    request(server, "GET", target)
}

fn parse_reply(raw: &str) -> Reply {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .expect("response has a header block");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    body
}

/// Pages through one scan with `query` (without cursor) and returns every page.
fn scan(server: &TestServer, query: &str) -> Vec<Reply> {
    let mut pages = vec![get(server, &format!("/markets?{query}"))];
    while pages.last().unwrap().status == 200 && !pages.last().unwrap().cursor().is_empty() {
        let cursor = pages.last().unwrap().cursor();
        pages.push(get(server, &format!("/markets?{query}&cursor={cursor}")));
    }
    pages
}

fn legacy_server() -> TestServer {
    TestServer::start(Scenario::new(fixtures::legacy_markets()))
}

fn legacy_tickers() -> Vec<String> {
    let markets = fixtures::legacy_markets();
    markets
        .iter()
        .map(|market| market["ticker"].as_str().unwrap().to_owned())
        .collect()
}

fn count_matching(query: &str) -> usize {
    let server = legacy_server();
    scan(&server, query)
        .iter()
        .map(|page| page.tickers().len())
        .sum()
}

#[test]
fn pages_through_291_markets_in_three_pages_of_100() {
    let server = legacy_server();
    let pages = scan(&server, "limit=100");
    let sizes: Vec<usize> = pages.iter().map(|page| page.tickers().len()).collect();
    assert_eq!(sizes, [100, 100, 91]);
    assert_eq!(pages[0].cursor(), "f0o100");
    assert_eq!(pages[1].cursor(), "f0o200");
    assert_eq!(pages[2].cursor(), "");
    let tickers: Vec<String> = pages.iter().flat_map(Reply::tickers).collect();
    assert_eq!(tickers, legacy_tickers());
    assert_eq!(server.scans_started(), 1);
}

#[test]
fn limit_defaults_to_100_and_goes_up_to_1000() {
    let server = legacy_server();
    assert_eq!(get(&server, "/markets").tickers().len(), 100);
    let all = get(&server, "/markets?limit=1000");
    assert_eq!((all.tickers().len(), all.cursor()), (291, String::new()));
    assert_eq!(get(&server, "/markets?limit=1").tickers().len(), 1);
}

#[test]
fn bad_limit_is_a_400_with_a_json_error_and_starts_no_scan() {
    let server = legacy_server();
    for limit in ["0", "1001", "abc", "", "-1", "1.5"] {
        let reply = get(&server, &format!("/markets?limit={limit}"));
        assert_eq!(reply.status, 400, "limit={limit}");
        assert_eq!(reply.error_code(), "invalid_limit");
        assert!(reply.json()["error"]["message"].is_string());
    }
    assert_eq!(server.scans_started(), 0);
}

#[test]
fn garbage_cursor_is_a_400() {
    let server = TestServer::start(Scenario::new(fixtures::transitional_markets()));
    let recorded = fixtures::transitional_markets();
    assert_eq!(recorded.len(), 5);
    for cursor in ["CgwIyeGVywYQ0Lvs", "f9o0", "f0o9999", "f0o-1"] {
        let reply = get(&server, &format!("/markets?cursor={cursor}"));
        assert_eq!(
            (reply.status, reply.error_code()),
            (400, "invalid_cursor".into())
        );
    }
}

#[test]
fn empty_cursor_starts_a_scan_like_no_cursor() {
    let server = legacy_server();
    assert_eq!(get(&server, "/markets?cursor=&limit=5").tickers().len(), 5);
    assert_eq!(server.scans_started(), 1);
}

#[test]
fn tickers_filter_returns_only_those_markets() {
    let server = legacy_server();
    let wanted = [&legacy_tickers()[7], &legacy_tickers()[3]];
    let reply = get(
        &server,
        &format!("/markets?tickers={},{}", wanted[0], wanted[1]),
    );
    assert_eq!(
        reply.tickers(),
        [wanted[1].clone(), wanted[0].clone()],
        "frame order"
    );
    assert_eq!(reply.cursor(), "");
    assert!(get(&server, "/markets?tickers=NOPE-1").tickers().is_empty());
}

#[test]
fn status_filter_maps_request_values_to_response_values() {
    assert_eq!(count_matching("status=open"), 232);
    assert_eq!(count_matching("status=settled"), 58);
    assert_eq!(count_matching("status=unopened"), 1);
    assert_eq!(count_matching("status=open,unopened"), 233);
    assert_eq!(count_matching("status=open&status=settled"), 290);
    assert_eq!(count_matching("status=closed"), 0);
    assert_eq!(count_matching("status=paused"), 0);
    let server = legacy_server();
    for status in ["active", "finalized", "bogus"] {
        let reply = get(&server, &format!("/markets?status={status}"));
        assert_eq!(
            (reply.status, reply.error_code()),
            (400, "invalid_status".into())
        );
    }
}

#[test]
fn status_filter_pages_within_the_filtered_list() {
    let server = legacy_server();
    let pages = scan(&server, "status=open&limit=100");
    let sizes: Vec<usize> = pages.iter().map(|page| page.tickers().len()).collect();
    assert_eq!(sizes, [100, 100, 32]);
}

#[test]
fn event_and_series_filters_match_the_event_ticker_and_ticker_prefix() {
    let markets = fixtures::legacy_markets();
    let expected = markets
        .iter()
        .filter(|market| market["event_ticker"] == "EUCLIMATE")
        .count();
    assert!(expected > 0);
    assert_eq!(count_matching("event_ticker=EUCLIMATE"), expected);
    assert_eq!(count_matching("series_ticker=EUCLIMATE"), expected);
    assert_eq!(count_matching("event_ticker=EUCLIMAT"), 0);
}

#[test]
fn mve_filter_separates_combo_markets() {
    let markets: Vec<Value> = fixtures::legacy_markets()
        .into_iter()
        .take(3)
        .chain(fixtures::transitional_markets())
        .collect();
    let server = TestServer::start(Scenario::new(markets));
    assert_eq!(get(&server, "/markets?mve_filter=only").tickers().len(), 5);
    assert_eq!(
        get(&server, "/markets?mve_filter=exclude").tickers().len(),
        3
    );
    assert_eq!(get(&server, "/markets?mve_filter=maybe").status, 400);
}

#[test]
fn each_scan_advances_to_the_next_frame_and_then_stays_on_the_last() {
    let frame = |bid: &str| {
        let mut markets = fixtures::legacy_markets();
        fixtures::set_yes_quote(&mut markets[0], bid, "0.90");
        markets
    };
    let server = TestServer::start(Scenario::new(frame("0.10")).then(frame("0.20")));
    let first_bid = |reply: &Reply| reply.json()["markets"][0]["yes_bid"].clone();
    assert_eq!(first_bid(&get(&server, "/markets")), 10);
    assert_eq!(first_bid(&get(&server, "/markets")), 20);
    assert_eq!(first_bid(&get(&server, "/markets")), 20);
    assert_eq!(server.scans_started(), 3);
}

#[test]
fn a_cursor_keeps_its_scan_on_the_frame_it_started_in() {
    let second: Vec<Value> = fixtures::legacy_markets().into_iter().rev().collect();
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()).then(second));
    let first_page = get(&server, "/markets?limit=100");
    let other_scan = get(&server, "/markets?limit=100");
    assert_eq!(other_scan.tickers()[0], legacy_tickers()[290]);
    let continued = get(
        &server,
        &format!("/markets?limit=100&cursor={}", first_page.cursor()),
    );
    assert_eq!(continued.tickers(), legacy_tickers()[100..200]);
    assert_eq!(server.scans_started(), 2);
}

#[test]
fn status_fault_fires_on_exactly_its_request_index() {
    let fault = Fault::Status {
        code: 429,
        retry_after: Some("1".into()),
    };
    let server =
        TestServer::start(Scenario::new(fixtures::legacy_markets()).fault_on_request(1, fault));
    assert_eq!(get(&server, "/markets").status, 200);
    let limited = get(&server, "/markets");
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(limited.error_code(), "too_many_requests");
    assert_eq!(get(&server, "/markets").status, 200);
    assert_eq!(server.requests().len(), 3);
    assert_eq!(
        server.scans_started(),
        2,
        "the faulted request started no scan"
    );
}

#[test]
fn server_error_faults_need_no_retry_after() {
    let scenario = Scenario::new(fixtures::legacy_markets())
        .fault_on_request(
            0,
            Fault::Status {
                code: 503,
                retry_after: None,
            },
        )
        .fault_on_request(
            2,
            Fault::Status {
                code: 500,
                retry_after: None,
            },
        );
    let server = TestServer::start(scenario);
    let unavailable = get(&server, "/markets");
    assert_eq!(
        (unavailable.status, unavailable.header("retry-after")),
        (503, None)
    );
    assert_eq!(unavailable.error_code(), "service_unavailable");
    assert_eq!(get(&server, "/markets").status, 200);
    assert_eq!(get(&server, "/markets/EUCLIMATE-2030").status, 500);
}

#[test]
fn malformed_body_fault_sends_200_with_invalid_json() {
    let scenario =
        Scenario::new(fixtures::legacy_markets()).fault_on_request(0, Fault::MalformedBody);
    let server = TestServer::start(scenario);
    let reply = get(&server, "/markets");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(serde_json::from_str::<Value>(&reply.body).is_err());
    assert_eq!(get(&server, "/markets").tickers().len(), 100);
}

#[test]
fn a_delayed_request_does_not_block_other_requests() {
    let delay = Fault::Delay(Duration::from_secs(2));
    let scenario = Scenario::new(fixtures::legacy_markets()).fault_on_request(0, delay);
    let server = TestServer::start(scenario);
    thread::scope(|scope| {
        let slow = scope.spawn(|| get(&server, "/markets?limit=1"));
        while server.requests().is_empty() {
            thread::sleep(Duration::from_millis(5));
        }
        let started = Instant::now();
        assert_eq!(get(&server, "/markets/EUCLIMATE-2030").status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "blocked by the delayed request"
        );
        let slow = slow.join().unwrap();
        assert_eq!((slow.status, slow.tickers().len()), (200, 1));
    });
    assert_eq!(
        server.scans_started(),
        1,
        "the delayed request was answered normally"
    );
}

#[test]
fn shutdown_does_not_wait_for_a_delayed_request() {
    let delay = Fault::Delay(Duration::from_secs(60));
    let server = TestServer::start(Scenario::new(vec![]).fault_on_request(0, delay));
    let mut stream = TcpStream::connect(server.address()).unwrap();
    stream
        .write_all(b"GET /trade-api/v2/markets HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    while server.requests().is_empty() {
        thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    server.shutdown();
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn single_market_comes_from_the_current_frame() {
    let mut moved = fixtures::legacy_markets();
    fixtures::set_yes_quote(&mut moved[0], "0.50", "0.52");
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()).then(moved));
    let before = get(&server, "/markets/EUCLIMATE-2030");
    assert_eq!(
        before.json()["market"]["yes_bid"],
        35,
        "frame 0 before any scan"
    );
    get(&server, "/markets");
    get(&server, "/markets");
    let after = get(&server, "/markets/EUCLIMATE-2030");
    assert_eq!(after.json()["market"]["yes_bid"], 50);
    let missing = get(&server, "/markets/NOPE-1");
    assert_eq!(
        (missing.status, missing.error_code()),
        (404, "not_found".into())
    );
}

#[test]
fn serves_recorded_transitional_and_current_markets_unchanged() {
    let single = fixtures::single_market();
    let current = fixtures::to_current(&single);
    let mut renamed = current.clone();
    renamed["ticker"] = format!("{}-CUR", single["ticker"].as_str().unwrap()).into();
    let server = TestServer::start(Scenario::new(vec![single.clone(), renamed.clone()]));
    let page = get(&server, "/markets").json();
    assert_eq!(page["markets"][0], single);
    assert_eq!(page["markets"][1], renamed);
    let path = format!("/markets/{}", single["ticker"].as_str().unwrap());
    assert_eq!(
        get(&server, &path).json(),
        serde_json::json!({ "market": single })
    );
}

#[test]
fn other_paths_are_404_and_other_methods_405_with_json_errors() {
    let server = legacy_server();
    let missing = get(&server, "/events");
    assert_eq!(
        (missing.status, missing.error_code()),
        (404, "not_found".into())
    );
    let posted = request(&server, "POST", "/markets");
    assert_eq!(
        (posted.status, posted.error_code()),
        (405, "method_not_allowed".into())
    );
    assert_eq!(
        server.requests().len(),
        2,
        "unrouted requests are recorded too"
    );
}

#[test]
fn every_request_is_recorded_with_its_decoded_query() {
    let scenario =
        Scenario::new(fixtures::legacy_markets()).fault_on_request(1, Fault::MalformedBody);
    let server = TestServer::start(scenario);
    get(&server, "/markets?limit=5&tickers=A%2CB&status=open");
    get(&server, "/markets/EUCLIMATE-2030");
    get(&server, "/nowhere");
    let requests = server.requests();
    let paths: Vec<&str> = requests
        .iter()
        .map(|request| request.path.as_str())
        .collect();
    let expected = [
        "/trade-api/v2/markets",
        "/trade-api/v2/markets/EUCLIMATE-2030",
        "/trade-api/v2/nowhere",
    ];
    assert_eq!(paths, expected);
    let first = &requests[0];
    assert_eq!(first.method, "GET");
    assert_eq!(first.query, "limit=5&tickers=A%2CB&status=open");
    assert_eq!(first.param("tickers"), Some("A,B"));
    assert_eq!(first.params.len(), 3);
    assert_eq!(requests[1].query, "");
    assert!(requests[1].params.is_empty());
}

#[test]
fn base_url_points_at_the_loopback_api() {
    let server = legacy_server();
    let expected = format!("http://127.0.0.1:{}/trade-api/v2", server.address().port());
    assert_eq!(server.base_url(), expected);
}

#[test]
fn start_on_port_reports_a_port_in_use() {
    let server = legacy_server();
    let port = server.address().port();
    let taken = TestServer::start_on_port(Scenario::new(vec![]), port);
    assert!(taken.is_err());
}

#[test]
fn a_delayed_request_abandoned_by_its_client_starts_no_scan() {
    // A client that times out closes its connection and retries; the abandoned request must
    // not later start a scan of its own and make the retry's next scan skip a frame.
    let delay = Fault::Delay(Duration::from_millis(300));
    let scenario = Scenario::new(fixtures::legacy_markets()).fault_on_request(0, delay);
    let server = TestServer::start(scenario);
    let mut stream = TcpStream::connect(server.address()).unwrap();
    stream
        .write_all(b"GET /trade-api/v2/markets HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    while server.requests().is_empty() {
        thread::sleep(Duration::from_millis(5));
    }
    drop(stream);
    thread::sleep(Duration::from_millis(900));
    assert_eq!(server.scans_started(), 0);
}

#[test]
fn not_json_fault_sends_200_with_an_html_page() {
    let scenario = Scenario::new(fixtures::legacy_markets()).fault_on_request(0, Fault::NotJson);
    let server = TestServer::start(scenario);
    let reply = get(&server, "/markets");
    assert_eq!(reply.status, 200);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(reply.body.starts_with("<!DOCTYPE html>"), "{}", reply.body);
    assert_eq!(server.scans_started(), 0);
}

#[test]
fn retry_after_date_fault_sends_an_http_date_ahead_of_the_answer() {
    let fault = Fault::RetryAfterDate {
        code: 429,
        wait: Duration::from_secs(30),
    };
    let scenario = Scenario::new(fixtures::legacy_markets()).fault_on_request(0, fault);
    let server = TestServer::start(scenario);
    let reply = get(&server, "/markets");
    assert_eq!(reply.status, 429);
    let date = reply.header("retry-after").expect("a Retry-After header");
    let at = httpdate::parse_http_date(date).expect("an HTTP date");
    let ahead = at
        .duration_since(std::time::SystemTime::now())
        .expect("a date in the future");
    assert!(ahead > Duration::from_secs(25) && ahead <= Duration::from_secs(30));
}

#[test]
fn reset_mid_body_fault_sends_half_the_announced_page_then_closes() {
    let scenario =
        Scenario::new(fixtures::legacy_markets()).fault_on_request(0, Fault::ResetMidBody);
    let server = TestServer::start(scenario);
    let mut stream = TcpStream::connect(server.address()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(b"GET /trade-api/v2/markets HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Keep-alive was not refused: only the server's drop ends the read.
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let announced: usize = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(str::to_owned)
        })
        .expect("a Content-Length")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(body.len(), announced / 2);
    assert!(body.starts_with('{') && serde_json::from_str::<Value>(body).is_err());
    assert_eq!(server.scans_started(), 0);
}

#[test]
fn repeating_cursor_fault_leads_back_to_the_same_page() {
    let scenario =
        Scenario::new(fixtures::legacy_markets()).fault_on_request(0, Fault::RepeatingCursor);
    let server = TestServer::start(scenario);
    let first = get(&server, "/markets?limit=10");
    assert_eq!(first.tickers(), legacy_tickers()[..10]);
    let again = get(
        &server,
        &format!("/markets?limit=10&cursor={}", first.cursor()),
    );
    assert_eq!(again.tickers(), first.tickers());
    assert_eq!(again.cursor(), first.cursor());
    assert_eq!(server.scans_started(), 0);
}

#[test]
fn empty_pages_fault_leads_through_empty_pages_to_a_real_scan() {
    let scenario =
        Scenario::new(fixtures::legacy_markets()).fault_on_request(0, Fault::EmptyPages(3));
    let server = TestServer::start(scenario);
    let pages = scan(&server, "limit=100");
    let sizes: Vec<usize> = pages.iter().map(|page| page.tickers().len()).collect();
    assert_eq!(sizes, [0, 0, 0, 100, 100, 91]);
    assert!(pages[..3].iter().all(|page| !page.cursor().is_empty()));
    assert_eq!(server.scans_started(), 1);
}

#[test]
fn page_fault_sends_its_text_with_a_200_as_json() {
    let body = r#"{"markets": {}, "cursor": 5}"#;
    let scenario =
        Scenario::new(fixtures::legacy_markets()).fault_on_request(0, Fault::Page(body.into()));
    let server = TestServer::start(scenario);
    let reply = get(&server, "/markets?event_ticker=EVSHARE-30JAN");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.body, body);
    assert_eq!(server.scans_started(), 0);
}

#[test]
fn an_outage_answers_every_request_with_its_fault_until_it_ends() {
    let server = legacy_server();
    server.begin_outage(Fault::Status {
        code: 503,
        retry_after: None,
    });
    assert_eq!(get(&server, "/markets").status, 503);
    assert_eq!(get(&server, "/markets/EUCLIMATE-2030").status, 503);
    server.end_outage();
    assert_eq!(get(&server, "/markets").status, 200);
    assert_eq!(server.scans_started(), 1);
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn a_stopped_server_refuses_connections_and_restarts_on_the_same_port() {
    let mut server = legacy_server();
    let address = server.address();
    assert_eq!(get(&server, "/markets").status, 200);
    server.stop();
    let refused = TcpStream::connect(address).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    server.restart().unwrap();
    assert_eq!(server.address(), address);
    assert_eq!(get(&server, "/markets").status, 200);
    assert_eq!(server.scans_started(), 2, "the scan count carried on");
}

#[test]
fn set_markets_serves_them_from_the_next_scan_on() {
    let moved = |bid: &str| {
        let mut markets = fixtures::legacy_markets();
        fixtures::set_yes_quote(&mut markets[0], bid, "0.90");
        markets
    };
    let first_bid = |reply: &Reply| reply.json()["markets"][0]["yes_bid"].clone();
    let scripted = Scenario::new(moved("0.10")).then(moved("0.20"));
    let server = TestServer::start(scripted.clone());
    server.set_markets(moved("0.30"));
    assert_eq!(first_bid(&get(&server, "/markets")), 30, "before any scan");

    let server = TestServer::start(scripted.then(moved("0.40")));
    assert_eq!(first_bid(&get(&server, "/markets")), 10);
    server.set_markets(moved("0.50"));
    assert_eq!(
        first_bid(&get(&server, "/markets")),
        50,
        "within the script"
    );
    server.set_markets(moved("0.60"));
    assert_eq!(first_bid(&get(&server, "/markets")), 60, "past the script");
    assert_eq!(first_bid(&get(&server, "/markets")), 60);
}
