//! How fast a cycle reads markets, and how much memory it holds.
//!
//! Prints figures; asserts nothing. Run with
//! `cargo bench -p kalshi-alerts-core --bench scan`, and record the
//! figures in docs/benchmarks.md.
//!
//! The data is derived from the recorded payloads: the 296 recorded markets
//! are repeated under new tickers, in the current payload generation (dollar
//! strings, fixed-point sizes), to the size of a real full scan.

use std::time::Instant;

use kalshi_alerts_core::{ClientConfig, KalshiClient, MarketSource, Scan, Watchlist};
use kalshi_test_server::{fixtures, Scenario, TestServer};
use serde_json::{json, Value};

fn derived_markets(count: usize) -> Vec<Value> {
    let mut base = fixtures::legacy_markets();
    base.extend(fixtures::transitional_markets());
    (0..count)
        .map(|i| {
            let mut market = fixtures::to_current(&base[i % base.len()]);
            market["ticker"] = json!(format!("BENCH-{i:06}"));
            market["status"] = json!("active");
            market
        })
        .collect()
}

/// Peak resident memory of this process, from /proc (Linux only).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn parse_throughput(markets: &[Value]) {
    let watched = Watchlist::of_tickers(
        (0..markets.len())
            .step_by(1000)
            .map(|i| format!("BENCH-{i:06}")),
    );
    let rounds = 5;
    let started = Instant::now();
    for _ in 0..rounds {
        let mut scan = Scan::default();
        for page in markets.chunks(1000) {
            scan.absorb_page(page, &watched);
        }
        assert_eq!(scan.markets.len(), watched.tickers.len());
    }
    let per_round = started.elapsed() / rounds;
    println!(
        "parse: {} markets in {:.1} ms per scan ({:.0} markets/s), {} watched",
        markets.len(),
        per_round.as_secs_f64() * 1e3,
        markets.len() as f64 / per_round.as_secs_f64(),
        watched.tickers.len()
    );
}

/// The client's share of a page: decoding the JSON body into values.
fn decode_cost(markets: &[Value]) {
    let body = serde_json::to_vec(&json!({ "markets": &markets[..1000], "cursor": "x" })).unwrap();
    let rounds = 20;
    let started = Instant::now();
    for _ in 0..rounds {
        let page: Value = serde_json::from_slice(&body).unwrap();
        assert!(page["markets"].is_array());
    }
    let each = started.elapsed() / rounds;
    println!(
        "decode: one 1000-market page ({} KiB) in {:.1} ms",
        body.len() / 1024,
        each.as_secs_f64() * 1e3
    );
}

async fn full_cycle(markets: Vec<Value>, requests_per_second: u32) {
    let count = markets.len();
    let server = TestServer::start(Scenario::new(markets));
    let mut config = ClientConfig::new(server.base_url());
    config.requests_per_second = requests_per_second;
    let mut client = KalshiClient::new(config).unwrap();
    let watched = Watchlist::of_tickers(["BENCH-000000"]);

    let started = Instant::now();
    let scan = client.scan(&watched).await.unwrap();
    let took = started.elapsed();
    println!(
        "cycle over loopback HTTP: {} markets, {} pages in {:.2} s at <= {} req/s \
         ({:.0} markets/s)",
        count,
        scan.pages,
        took.as_secs_f64(),
        requests_per_second,
        count as f64 / took.as_secs_f64().max(f64::EPSILON)
    );
    server.shutdown();
}

fn main() {
    let count = std::env::var("BENCH_MARKETS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let markets = derived_markets(count);
    println!(
        "peak RSS after building {count} markets as JSON values: {:.0} MiB",
        peak_rss_mib().unwrap_or(f64::NAN)
    );

    parse_throughput(&markets);
    decode_cost(&markets);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(full_cycle(markets.clone(), 20));
    runtime.block_on(full_cycle(markets, 1000));
    println!(
        "peak RSS at the end: {:.0} MiB",
        peak_rss_mib().unwrap_or(f64::NAN)
    );
}
