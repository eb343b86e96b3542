//! A loopback market server fast enough that a benchmark measures the client, not the server.
//!
//! Everything is serialized before the first request: the full listing of open markets as whole
//! pages of 1,000, and every market record as a slice of its page. A request for one of those
//! pages is answered with the prepared bytes (gzipped ahead too, when asked for); a narrowed
//! listing (`tickers`, `event_ticker`, `series_ticker`, `mve_filter`, another `limit`) joins the
//! prepared records, a copy of at most one page. Requests are counted by kind. A method other
//! than GET is refused (405), and so is a query the API would refuse (400): an `mve_filter`
//! other than `exclude` or `only`, a `limit` or `cursor` that cannot be read.
//!
//! A cursor is the position in the listing to go on from, so no request walks what earlier
//! pages covered. Markets listed as moving show their quote moved up on every other scan of a
//! narrowed listing (a scan starts with a request without a cursor); the prepared pages of the
//! full listing never move.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{ACCEPT_ENCODING, ALLOW, CONTENT_ENCODING, CONTENT_TYPE};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Router;
use flate2::write::GzEncoder;
use tokio::sync::oneshot;

use crate::markets::MarketSet;

/// Markets on a prepared page, and the most a request may ask for.
pub const PAGE: usize = 1000;
/// Page size when a request names none, as the API does.
const DEFAULT_LIMIT: usize = 100;
/// The path every endpoint sits under.
const API_PREFIX: &str = "/trade-api/v2";

/// What the server prepares beyond the full listing.
#[derive(Debug, Default, Clone)]
pub struct ServeOptions {
    /// Markets whose quote moves on every other scan of a narrowed listing.
    pub moving: Vec<usize>,
    /// Also prepare the full listing's pages gzipped, for clients that accept it.
    pub gzip: bool,
}

/// How many requests of each kind the server answered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Requests {
    /// Pages of the full listing, sent as prepared.
    pub prepared: u64,
    /// Narrowed listings, joined per request.
    pub narrowed: u64,
    /// `GET /markets/{ticker}`.
    pub single: u64,
    /// Requests for anything else.
    pub other: u64,
    /// Requests that said they accept gzip.
    pub accepting_gzip: u64,
    /// Responses sent gzipped.
    pub gzipped: u64,
}

impl Requests {
    pub fn total(&self) -> u64 {
        self.prepared + self.narrowed + self.single + self.other
    }
}

#[derive(Default)]
struct Counters {
    prepared: AtomicU64,
    narrowed: AtomicU64,
    single: AtomicU64,
    other: AtomicU64,
    accepting_gzip: AtomicU64,
    gzipped: AtomicU64,
    /// Narrowed listings begun (requests without a cursor): decides which quote moving
    /// markets show.
    scans: AtomicU64,
}

fn bump(counter: &AtomicU64) -> u64 {
    counter.fetch_add(1, Ordering::Relaxed)
}

/// The prepared exchange.
struct Exchange {
    pages: Vec<Bytes>,
    gzipped_pages: Option<Vec<Bytes>>,
    /// Each market's record, a slice of its page.
    records: Vec<Bytes>,
    /// Moving markets' records with the moved quote.
    moved: HashMap<usize, Bytes>,
    combo: Vec<bool>,
    by_ticker: HashMap<String, usize>,
    by_event: HashMap<String, Vec<usize>>,
    by_series: HashMap<String, Vec<usize>>,
    counters: Counters,
}

/// A running server on `127.0.0.1`. Dropping it stops the server.
pub struct MarketServer {
    address: SocketAddr,
    exchange: Arc<Exchange>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl MarketServer {
    /// Prepares `set` and serves it on a free loopback port.
    pub fn start(set: &MarketSet, options: &ServeOptions) -> io::Result<MarketServer> {
        let exchange = Arc::new(Exchange::prepare(set, options)?);
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let app = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&exchange));
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("market-server".into())
            .spawn(move || {
                // One thread: the server only copies prepared bytes to sockets, and the
                // client under test gets the rest of the machine.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await
                })
            })?;
        Ok(MarketServer {
            address,
            exchange,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The API base URL, as `KALSHI_API_BASE_URL` takes it.
    pub fn base_url(&self) -> String {
        format!("http://{}{API_PREFIX}", self.address)
    }

    /// The URLs a full scan of open markets reads, in order, spelled as the client spells them;
    /// with `skip_combos`, those of the listing without multivariate combos.
    pub fn full_scan_urls(&self, skip_combos: bool) -> Vec<String> {
        let mut first = format!("{}/markets?status=open&limit={PAGE}", self.base_url());
        if skip_combos {
            first.push_str("&mve_filter=exclude");
        }
        let mut query = ListingQuery {
            limit: PAGE,
            mve: skip_combos.then(|| "exclude".to_string()),
            ..ListingQuery::default()
        };
        let mut urls = vec![first.clone()];
        while let (_, Some(next)) = self.exchange.page_of(&query) {
            urls.push(format!("{first}&cursor={}", cursor(next)));
            query.position = next;
        }
        urls
    }

    /// Bytes of the full listing, all pages.
    pub fn full_listing_bytes(&self) -> usize {
        self.exchange.pages.iter().map(Bytes::len).sum()
    }

    /// Bytes of the full listing gzipped, when prepared.
    pub fn gzipped_bytes(&self) -> Option<usize> {
        let pages = self.exchange.gzipped_pages.as_ref()?;
        Some(pages.iter().map(Bytes::len).sum())
    }

    /// Requests answered so far.
    pub fn requests(&self) -> Requests {
        let c = &self.exchange.counters;
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Requests {
            prepared: read(&c.prepared),
            narrowed: read(&c.narrowed),
            single: read(&c.single),
            other: read(&c.other),
            accepting_gzip: read(&c.accepting_gzip),
            gzipped: read(&c.gzipped),
        }
    }
}

impl Drop for MarketServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Exchange {
    fn prepare(set: &MarketSet, options: &ServeOptions) -> io::Result<Exchange> {
        let count = set.len();
        let mut pages = Vec::with_capacity(count.div_ceil(PAGE));
        let mut records = Vec::with_capacity(count);
        for start in (0..count).step_by(PAGE) {
            let end = (start + PAGE).min(count);
            let next = if end < count {
                cursor(end)
            } else {
                String::new()
            };
            let mut body = Vec::with_capacity((end - start) * 2600);
            write!(body, "{{\"cursor\":\"{next}\",\"markets\":[")?;
            let mut spans = Vec::with_capacity(end - start);
            for index in start..end {
                if index > start {
                    body.push(b',');
                }
                let from = body.len();
                serde_json::to_writer(&mut body, &set.record(index, false))?;
                spans.push(from..body.len());
            }
            body.extend_from_slice(b"]}");
            let page = Bytes::from(body);
            records.extend(spans.into_iter().map(|span| page.slice(span)));
            pages.push(page);
        }

        let gzipped_pages = if options.gzip {
            Some(pages.iter().map(gzip).collect::<io::Result<Vec<_>>>()?)
        } else {
            None
        };
        let mut moved = HashMap::new();
        for &index in options.moving.iter().filter(|&&i| i < count) {
            let record = serde_json::to_vec(&set.record(index, true))?;
            moved.insert(index, Bytes::from(record));
        }

        let mut by_ticker = HashMap::with_capacity(count);
        let mut by_event: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_series: HashMap<String, Vec<usize>> = HashMap::new();
        for index in 0..count {
            by_ticker.insert(set.ticker(index), index);
            by_event.entry(set.event(index)).or_default().push(index);
            by_series.entry(set.series(index)).or_default().push(index);
        }
        Ok(Exchange {
            pages,
            gzipped_pages,
            records,
            moved,
            combo: (0..count).map(|i| set.is_combo(i)).collect(),
            by_ticker,
            by_event,
            by_series,
            counters: Counters::default(),
        })
    }

    fn listing(&self, query: &ListingQuery, accepts_gzip: bool) -> Response {
        if query
            .status
            .as_deref()
            .is_some_and(|status| status != "open")
        {
            bump(&self.counters.narrowed);
            return json(page_body("", std::iter::empty()));
        }
        let whole = query.tickers.is_none()
            && query.event.is_none()
            && query.series.is_none()
            && query.mve.is_none();
        if whole && query.limit == PAGE && query.position.is_multiple_of(PAGE) {
            bump(&self.counters.prepared);
            let number = query.position / PAGE;
            let gzipped = self.gzipped_pages.as_ref().filter(|_| accepts_gzip);
            return match (gzipped, self.pages.get(number)) {
                (Some(gzipped), Some(_)) => {
                    bump(&self.counters.gzipped);
                    let mut response = json(gzipped[number].clone());
                    response
                        .headers_mut()
                        .insert(CONTENT_ENCODING, "gzip".parse().expect("a header value"));
                    response
                }
                (None, Some(page)) => json(page.clone()),
                (_, None) => json(page_body("", std::iter::empty())),
            };
        }

        bump(&self.counters.narrowed);
        let scan = if query.position == 0 {
            bump(&self.counters.scans)
        } else {
            self.counters
                .scans
                .load(Ordering::Relaxed)
                .saturating_sub(1)
        };
        let moved = scan % 2 == 1;
        let (chosen, next) = self.page_of(query);
        let next = next.map_or(String::new(), cursor);
        let records = chosen
            .into_iter()
            .map(|index| match self.moved.get(&index) {
                Some(record) if moved => record,
                _ => &self.records[index],
            });
        json(page_body(&next, records))
    }

    /// The markets on the page `query` asks for, and the position the next page starts at
    /// (none on the last page).
    fn page_of(&self, query: &ListingQuery) -> (Vec<usize>, Option<usize>) {
        let candidates = self.candidates(query);
        let keep = |index: usize| match query.mve.as_deref() {
            Some("exclude") => !self.combo[index],
            Some("only") => self.combo[index],
            _ => true,
        };
        let mut chosen = Vec::with_capacity(query.limit.min(PAGE));
        let mut position = query.position;
        while position < candidates.len() && chosen.len() < query.limit {
            let index = candidates.at(position);
            position += 1;
            if keep(index) {
                chosen.push(index);
            }
        }
        while position < candidates.len() && !keep(candidates.at(position)) {
            position += 1;
        }
        (chosen, (position < candidates.len()).then_some(position))
    }

    /// The markets a narrowed listing walks, in listing order.
    fn candidates(&self, query: &ListingQuery) -> Candidates {
        if let Some(tickers) = &query.tickers {
            let mut found: Vec<usize> = tickers
                .iter()
                .filter_map(|t| self.by_ticker.get(t).copied())
                .collect();
            found.sort_unstable();
            found.dedup();
            return Candidates::Some(found);
        }
        let event = query.event.as_ref().map(|e| self.by_event.get(e));
        let series = query.series.as_ref().map(|s| self.by_series.get(s));
        match (event, series) {
            (None, None) => Candidates::All(self.records.len()),
            (Some(event), None) => Candidates::Some(event.cloned().unwrap_or_default()),
            (None, Some(series)) => Candidates::Some(series.cloned().unwrap_or_default()),
            (Some(event), Some(series)) => {
                let series = series.map(Vec::as_slice).unwrap_or_default();
                let both = event
                    .into_iter()
                    .flatten()
                    .filter(|index| series.binary_search(index).is_ok())
                    .copied()
                    .collect();
                Candidates::Some(both)
            }
        }
    }

    fn single(&self, ticker: &str) -> Response {
        bump(&self.counters.single);
        let Some(&index) = self.by_ticker.get(ticker) else {
            let mut response = json(Bytes::from_static(
                br#"{"error":{"code":"not_found","message":"market not found"}}"#,
            ));
            *response.status_mut() = StatusCode::NOT_FOUND;
            return response;
        };
        let record = &self.records[index];
        let mut body = Vec::with_capacity(record.len() + 12);
        body.extend_from_slice(b"{\"market\":");
        body.extend_from_slice(record);
        body.push(b'}');
        json(Bytes::from(body))
    }
}

/// The markets a listing walks: every one, or a chosen few.
enum Candidates {
    All(usize),
    Some(Vec<usize>),
}

impl Candidates {
    fn len(&self) -> usize {
        match self {
            Candidates::All(count) => *count,
            Candidates::Some(chosen) => chosen.len(),
        }
    }

    fn at(&self, position: usize) -> usize {
        match self {
            Candidates::All(_) => position,
            Candidates::Some(chosen) => chosen[position],
        }
    }
}

/// The parameters of `GET /markets` the server reads.
#[derive(Debug, Default, Clone)]
struct ListingQuery {
    status: Option<String>,
    limit: usize,
    position: usize,
    tickers: Option<Vec<String>>,
    event: Option<String>,
    series: Option<String>,
    mve: Option<String>,
}

impl ListingQuery {
    fn parse(query: &str) -> Result<ListingQuery, String> {
        let mut parsed = ListingQuery {
            limit: DEFAULT_LIMIT,
            ..ListingQuery::default()
        };
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.into_owned();
            match name.as_ref() {
                "status" => parsed.status = Some(value),
                "limit" => {
                    let limit: usize = value.parse().map_err(|_| format!("limit {value:?}"))?;
                    parsed.limit = limit.clamp(1, PAGE);
                }
                "cursor" if value.is_empty() => {}
                "cursor" => parsed.position = position_of(&value)?,
                "tickers" => {
                    let tickers = value.split(',').filter(|t| !t.is_empty());
                    parsed.tickers = Some(tickers.map(str::to_string).collect());
                }
                "event_ticker" => parsed.event = Some(value),
                "series_ticker" => parsed.series = Some(value),
                "mve_filter" if value == "exclude" || value == "only" => parsed.mve = Some(value),
                "mve_filter" => return Err(format!("mve_filter {value:?}: give exclude or only")),
                _ => {}
            }
        }
        Ok(parsed)
    }
}

async fn answer(State(exchange): State<Arc<Exchange>>, request: Request) -> Response {
    // The market API is read-only: anything but GET is refused before any other work.
    if request.method() != Method::GET {
        bump(&exchange.counters.other);
        let mut response = refusal(StatusCode::METHOD_NOT_ALLOWED, "only GET is served");
        response
            .headers_mut()
            .insert(ALLOW, "GET".parse().expect("a header value"));
        return response;
    }
    let accepts_gzip = request
        .headers()
        .get(ACCEPT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("gzip"));
    if accepts_gzip {
        bump(&exchange.counters.accepting_gzip);
    }
    let uri = request.uri();
    let path = uri.path();
    let path = path.strip_prefix(API_PREFIX).unwrap_or(path);
    if path == "/markets" {
        return match ListingQuery::parse(uri.query().unwrap_or("")) {
            Ok(query) => exchange.listing(&query, accepts_gzip),
            Err(reason) => {
                bump(&exchange.counters.other);
                refusal(StatusCode::BAD_REQUEST, &reason)
            }
        };
    }
    if let Some(ticker) = path.strip_prefix("/markets/") {
        return exchange.single(&percent_encoding::percent_decode_str(ticker).decode_utf8_lossy());
    }
    bump(&exchange.counters.other);
    refusal(StatusCode::NOT_FOUND, "no such endpoint")
}

fn json(body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        CONTENT_TYPE,
        "application/json".parse().expect("a header value"),
    );
    response
}

fn refusal(status: StatusCode, reason: &str) -> Response {
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        _ => "bad_request",
    };
    let body = serde_json::json!({ "error": { "code": code, "message": reason } });
    let mut response = json(Bytes::from(body.to_string()));
    *response.status_mut() = status;
    response
}

fn page_body<'a>(cursor: &str, records: impl Iterator<Item = &'a Bytes>) -> Bytes {
    let mut body = format!("{{\"cursor\":\"{cursor}\",\"markets\":[").into_bytes();
    for (n, record) in records.enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(record);
    }
    body.extend_from_slice(b"]}");
    Bytes::from(body)
}

/// The cursor that goes on from `position`; opaque to the client, as Kalshi's are.
fn cursor(position: usize) -> String {
    format!("BENCH{position:09}")
}

fn position_of(cursor: &str) -> Result<usize, String> {
    cursor
        .strip_prefix("BENCH")
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(|| format!("cursor {cursor:?} is not one of this server's"))
}

fn gzip(page: &Bytes) -> io::Result<Bytes> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(page)?;
    Ok(Bytes::from(encoder.finish()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_read_with_its_escapes_and_its_cursor() {
        let query =
            ListingQuery::parse("status=open&limit=1000&tickers=A-1%2CB-2&cursor=BENCH000002000")
                .unwrap();
        assert_eq!(query.limit, 1000);
        assert_eq!(query.position, 2000);
        assert_eq!(query.tickers.unwrap(), ["A-1", "B-2"]);
        assert!(ListingQuery::parse("cursor=elsewhere").is_err());
    }

    #[test]
    fn mve_filter_takes_exclude_or_only_and_refuses_anything_else() {
        let mve = |query: &str| ListingQuery::parse(query).map(|q| q.mve);
        assert_eq!(
            mve("mve_filter=exclude").unwrap().as_deref(),
            Some("exclude")
        );
        assert_eq!(mve("mve_filter=only").unwrap().as_deref(), Some("only"));
        assert_eq!(mve("status=open").unwrap(), None);
        for bad in ["bogus", "", "EXCLUDE", "exclude%20"] {
            let refused = mve(&format!("mve_filter={bad}")).unwrap_err();
            assert!(refused.contains("mve_filter"), "{bad:?}: {refused}");
        }
    }

    /// What the server answers `method path` with: its status and its body as JSON.
    fn ask(method: &str, path: &str) -> (StatusCode, serde_json::Value) {
        let exchange =
            Arc::new(Exchange::prepare(&MarketSet::new(5), &ServeOptions::default()).unwrap());
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let response = runtime.block_on(answer(State(exchange), request));
        let status = response.status();
        (status, serde_json::from_slice(&body_of(response)).unwrap())
    }

    #[test]
    fn only_get_is_served_and_a_bad_listing_query_is_refused() {
        let listing = "/trade-api/v2/markets?status=open";
        let (status, page) = ask("GET", listing);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["markets"].as_array().unwrap().len(), 5);
        for method in ["POST", "PUT", "DELETE", "PATCH", "HEAD"] {
            let (status, error) = ask(method, listing);
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(error["error"]["code"], "method_not_allowed", "{method}");
        }
        let (status, error) = ask("POST", "/trade-api/v2/markets/NOPE");
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{error}");
        let (status, error) = ask("GET", "/trade-api/v2/markets?mve_filter=bogus");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("bogus"),
            "{error}"
        );
        let (status, _) = ask("GET", "/trade-api/v2/markets?mve_filter=only");
        assert_eq!(status, StatusCode::OK);
        let (status, error) = ask("GET", "/trade-api/v2/elsewhere");
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found"))
        );
    }

    #[test]
    fn narrowed_pages_join_prepared_records_and_go_on_past_left_out_ones() {
        let set = MarketSet::new(40);
        let exchange = Exchange::prepare(&set, &ServeOptions::default()).unwrap();
        let query = ListingQuery {
            limit: 5,
            mve: Some("exclude".into()),
            ..ListingQuery::default()
        };
        let mut seen = 0;
        let mut position = 0;
        loop {
            let page = ListingQuery {
                position,
                ..query.clone()
            };
            let body = body_of(exchange.listing(&page, false));
            let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
            for market in page["markets"].as_array().unwrap() {
                assert!(market.get("mve_collection_ticker").is_none());
                seen += 1;
            }
            match page["cursor"].as_str().unwrap() {
                "" => break,
                next => position = position_of(next).unwrap(),
            }
        }
        let plain = (0..40).filter(|&i| !set.is_combo(i)).count();
        assert_eq!(seen, plain);
    }

    fn body_of(response: Response) -> Vec<u8> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap()
                .to_vec()
        })
    }
}
