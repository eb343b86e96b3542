//! The HTTP side of the test server: Kalshi's `/trade-api/v2/markets` endpoints served from a
//! [`Scenario`], with every request recorded and faults injected before normal handling.
//!
//! Paging follows Kalshi: a client repeats its filters with the `cursor` of the previous page
//! until the returned cursor is empty. The cursor names the frame it was cut from, so a scan
//! that pages through sees one consistent frame even if another scan starts meanwhile. Two
//! more kinds of cursor exist only to carry a fault on: the one of
//! [`Fault::RepeatingCursor`] and those of [`Fault::EmptyPages`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{stream, StreamExt};
use serde_json::{json, Value};

use crate::scenario::{Fault, Scenario};

/// Page size when the request has no `limit`.
const DEFAULT_LIMIT: usize = 100;
/// Largest page size Kalshi accepts.
const MAX_LIMIT: usize = 1000;

/// What [`Fault::MalformedBody`] sends: a page cut off in the middle of a market.
const TRUNCATED_PAGE: &str =
    r#"{"markets":[{"ticker":"KXTRUNCATED-26JAN15-T1","status":"active","yes_bid_dollars":"0.45"#;

/// What [`Fault::NotJson`] sends with a 200: the page a proxy shows while the API is away.
const MAINTENANCE_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Down for maintenance</title>\
    </head><body><h1>We'll be back soon</h1></body></html>\n";

/// The cursor of [`Fault::RepeatingCursor`]: it leads back to the page that carried it.
const LOOP_CURSOR: &str = "loop";

/// How long [`Fault::ResetMidBody`] waits after the first half of the page before it drops the
/// connection, so that the half is sent rather than discarded with the connection.
const RESET_PAUSE: Duration = Duration::from_millis(100);

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `"GET"`.
    pub method: String,
    /// Path without the query, e.g. `"/trade-api/v2/markets"`.
    pub path: String,
    /// Raw query string without the `?`, `""` when there is none.
    pub query: String,
    /// The query decoded into `(name, value)` pairs, in order, repeats kept.
    pub params: Vec<(String, String)>,
    /// When the server received it.
    pub received: std::time::Instant,
    /// The client's end of the connection it came on: requests with the
    /// same one shared a connection.
    pub peer: Option<std::net::SocketAddr>,
}

impl RecordedRequest {
    /// The first value of query parameter `name`, if the request had it.
    pub fn param(&self, name: &str) -> Option<&str> {
        first_value(&self.params, name)
    }

    fn of(request: &Request) -> Self {
        let uri = request.uri();
        RecordedRequest {
            method: request.method().to_string(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or_default().to_owned(),
            params: query_pairs(uri).unwrap_or_default(),
            received: std::time::Instant::now(),
            peer: request
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0),
        }
    }
}

/// The scenario being served plus everything observed so far.
pub(crate) struct ServerState {
    faults: BTreeMap<usize, Fault>,
    live: Mutex<Live>,
}

/// What changes while the server runs.
struct Live {
    /// The scenario's frames, and any a test added since.
    frames: Vec<Vec<Value>>,
    requests: Vec<RecordedRequest>,
    scans_started: usize,
    /// While set, every request is answered with this fault.
    outage: Option<Fault>,
}

impl Live {
    /// The frame of the latest scan; frame 0 before any scan.
    fn current_frame(&self) -> usize {
        self.frame_of_scan(self.scans_started)
    }

    fn frame_of_scan(&self, scans_started: usize) -> usize {
        scans_started.saturating_sub(1).min(self.frames.len() - 1)
    }
}

impl ServerState {
    pub(crate) fn new(scenario: Scenario) -> Self {
        ServerState {
            faults: scenario.faults,
            live: Mutex::new(Live {
                frames: scenario.frames,
                requests: Vec::new(),
                scans_started: 0,
                outage: None,
            }),
        }
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.live().requests.clone()
    }

    pub(crate) fn scans_started(&self) -> usize {
        self.live().scans_started
    }

    /// Serves `markets` from the next scan on: they become the last frame, replacing the
    /// scripted frames no scan has reached yet.
    pub(crate) fn set_markets(&self, markets: Vec<Value>) {
        let mut live = self.live();
        // Frames no scan has reached yet are dropped; before the first scan, that is all.
        let served = match live.scans_started {
            0 => 0,
            _ => live.current_frame() + 1,
        };
        live.frames.truncate(served);
        live.frames.push(markets);
    }

    pub(crate) fn set_outage(&self, fault: Option<Fault>) {
        self.live().outage = fault;
    }

    /// Locks what changes. A handler that panicked while holding it cannot have left it half
    /// written (each update is a single push, increment or assignment), so poisoning is
    /// ignored.
    fn live(&self) -> MutexGuard<'_, Live> {
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records `request` and returns the fault to answer it with, if any: the outage's while
    /// one lasts, else the one scripted for its index.
    fn record(&self, request: RecordedRequest) -> Option<Fault> {
        let mut live = self.live();
        live.requests.push(request);
        let index = live.requests.len() - 1;
        live.outage
            .clone()
            .or_else(|| self.faults.get(&index).cloned())
    }

    fn frame_count(&self) -> usize {
        self.live().frames.len()
    }

    /// Counts a new scan and returns the frame it is served from.
    fn start_scan(&self) -> usize {
        let mut live = self.live();
        live.scans_started += 1;
        live.frame_of_scan(live.scans_started)
    }

    /// Cuts a page out of `frame`, or out of the latest scan's frame when it is `None`.
    fn page(
        &self,
        frame: Option<usize>,
        filter: &MarketFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Value, ApiError> {
        let live = self.live();
        let frame = frame.unwrap_or_else(|| live.current_frame());
        page(&live.frames[frame], filter, frame, offset, limit)
    }

    /// The market with this ticker in the latest scan's frame.
    fn market(&self, ticker: &str) -> Option<Value> {
        let live = self.live();
        live.frames[live.current_frame()]
            .iter()
            .find(|market| market["ticker"] == ticker)
            .cloned()
    }
}

/// Builds the router for all paths, with recording and faults in front of every route.
pub(crate) fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route(
            "/trade-api/v2/markets",
            get(list_markets).fallback(method_not_allowed),
        )
        .route(
            "/trade-api/v2/markets/{ticker}",
            get(get_market).fallback(method_not_allowed),
        )
        .fallback(no_route)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_and_fault,
        ))
        .with_state(state)
}

/// Records the request, then either answers with a fault (the outage's, or the one scripted
/// for its index) or hands it on to the route.
async fn record_and_fault(
    State(state): State<Arc<ServerState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(fault) = state.record(RecordedRequest::of(&request)) else {
        return next.run(request).await;
    };
    match fault {
        Fault::Delay(pause) => {
            tokio::time::sleep(pause).await;
            next.run(request).await
        }
        Fault::Status { code, retry_after } => status_fault(code, retry_after.as_deref()),
        Fault::RetryAfterDate { code, wait } => {
            let date = httpdate::fmt_http_date(SystemTime::now() + wait);
            status_fault(code, Some(&date))
        }
        Fault::MalformedBody => body_with_status_ok("application/json", TRUNCATED_PAGE),
        Fault::NotJson => body_with_status_ok("text/html; charset=utf-8", MAINTENANCE_PAGE),
        Fault::ResetMidBody => match unscanned_page(&state, request.uri()) {
            Ok(page) => cut_off(page.to_string()),
            Err(error) => error.into_response(),
        },
        Fault::RepeatingCursor => looping_page(&state, request.uri()).into_response(),
        Fault::EmptyPages(count) => Json(empty_page(count - 1)).into_response(),
        Fault::Page(body) => {
            (StatusCode::OK, [(CONTENT_TYPE, "application/json")], body).into_response()
        }
    }
}

/// `GET /markets`: one page of the frame's markets that pass the filters.
async fn list_markets(
    State(state): State<Arc<ServerState>>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let params = query_pairs(&uri)?;
    let query = MarketsQuery::parse(&params, state.frame_count())?;
    // Only a valid first-page request starts a scan, so a rejected or faulted request that the
    // client retries does not skip a frame.
    let (frame, offset) = match query.start {
        Start::At(cursor) => (cursor.frame, cursor.offset),
        Start::Loop => return looping_page(&state, &uri),
        Start::Empty(left) if left > 0 => return Ok(Json(empty_page(left - 1))),
        Start::First | Start::Empty(_) => (state.start_scan(), 0),
    };
    state
        .page(Some(frame), &query.filter, offset, query.limit)
        .map(Json)
}

/// `GET /markets/{ticker}`: one market of the latest scan's frame.
async fn get_market(
    State(state): State<Arc<ServerState>>,
    ticker: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(ticker) = ticker
        .map_err(|rejection| ApiError::bad_request("invalid_ticker", rejection.body_text()))?;
    state
        .market(&ticker)
        .map(|market| Json(json!({ "market": market })))
        .ok_or_else(|| ApiError::not_found(format!("market {ticker} not found")))
}

/// The page a `GET /markets` request asks for, cut from the latest scan's frame (or from its
/// cursor's frame) without starting a scan: what a faulted request would have received.
fn unscanned_page(state: &ServerState, uri: &Uri) -> Result<Value, ApiError> {
    let params = query_pairs(uri)?;
    let query = MarketsQuery::parse(&params, state.frame_count())?;
    let (frame, offset) = match query.start {
        Start::At(cursor) => (Some(cursor.frame), cursor.offset),
        _ => (None, 0),
    };
    state.page(frame, &query.filter, offset, query.limit)
}

/// [`Fault::RepeatingCursor`]'s page: the first page of the latest scan's frame, whose cursor
/// leads back to itself.
fn looping_page(state: &ServerState, uri: &Uri) -> Result<Json<Value>, ApiError> {
    let params = query_pairs(uri)?;
    let query = MarketsQuery::parse(&params, state.frame_count())?;
    let mut page = state.page(None, &query.filter, 0, query.limit)?;
    page["cursor"] = json!(LOOP_CURSOR);
    Ok(Json(page))
}

/// A page with no markets whose cursor leads to `left` more such pages, then to a real first
/// page.
fn empty_page(left: usize) -> Value {
    json!({ "markets": [], "cursor": empty_cursor(left) })
}

fn body_with_status_ok(content_type: &'static str, body: &'static str) -> Response {
    (StatusCode::OK, [(CONTENT_TYPE, content_type)], body).into_response()
}

/// A 200 that announces all of `body` but sends its first half only, then drops the
/// connection: the server ends the body with an error, on which the connection is closed.
fn cut_off(body: String) -> Response {
    let length = body.len();
    let half = Bytes::from(body).slice(..length / 2);
    let dropped = async {
        tokio::time::sleep(RESET_PAUSE).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected fault: connection dropped mid-body",
        ))
    };
    let stream = stream::once(async { Ok(half) }).chain(stream::once(dropped));
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, "application/json".to_owned()),
            (CONTENT_LENGTH, length.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

async fn method_not_allowed() -> Response {
    let error = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "only GET is supported",
    );
    ([(ALLOW, "GET,HEAD")], error).into_response()
}

fn status_fault(code: u16, retry_after: Option<&str>) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = status.canonical_reason().unwrap_or("injected fault");
    let error_code = reason.to_ascii_lowercase().replace([' ', '-'], "_");
    let message = format!("injected fault: {code} {reason}");
    let mut response = ApiError::new(status, error_code, message).into_response();
    if let Some(value) = retry_after.and_then(|value| HeaderValue::from_str(value).ok()) {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

/// Cuts the page of at most `limit` markets from `start` out of the markets of `frame` that
/// pass `filter`.
fn page(
    markets: &[Value],
    filter: &MarketFilter,
    frame: usize,
    start: usize,
    limit: usize,
) -> Result<Value, ApiError> {
    let matching: Vec<&Value> = markets.iter().filter(|m| filter.matches(m)).collect();
    if start > matching.len() {
        return Err(ApiError::bad_request(
            "invalid_cursor",
            "cursor is past the last market",
        ));
    }
    let end = matching.len().min(start + limit);
    let cursor = if end < matching.len() {
        Cursor { frame, offset: end }.encode()
    } else {
        String::new()
    };
    Ok(json!({ "markets": &matching[start..end], "cursor": cursor }))
}

/// The validated query of a `GET /markets` request.
struct MarketsQuery {
    limit: usize,
    start: Start,
    filter: MarketFilter,
}

/// Where the page a request asks for starts, by its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// No cursor: the first page of a new scan.
    First,
    /// A page of a scan under way.
    At(Cursor),
    /// [`Fault::RepeatingCursor`]'s cursor.
    Loop,
    /// A cursor of [`Fault::EmptyPages`]: this many empty pages are left before the first page.
    Empty(usize),
}

impl MarketsQuery {
    fn parse(params: &[(String, String)], frame_count: usize) -> Result<Self, ApiError> {
        let start = match first_value(params, "cursor").filter(|text| !text.is_empty()) {
            None => Start::First,
            Some(LOOP_CURSOR) => Start::Loop,
            Some(text) => match text.strip_prefix(EMPTY_CURSOR_PREFIX).map(parse_index) {
                Some(Some(left)) => Start::Empty(left),
                _ => Start::At(Cursor::decode(text, frame_count)?),
            },
        };
        Ok(MarketsQuery {
            limit: parse_limit(first_value(params, "limit"))?,
            start,
            filter: MarketFilter::parse(params)?,
        })
    }
}

/// How the cursors of [`Fault::EmptyPages`] begin; the number of empty pages left follows.
const EMPTY_CURSOR_PREFIX: &str = "empty";

fn empty_cursor(left: usize) -> String {
    format!("{EMPTY_CURSOR_PREFIX}{left}")
}

fn parse_limit(text: Option<&str>) -> Result<usize, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_LIMIT);
    };
    text.parse::<usize>()
        .ok()
        .filter(|limit| (1..=MAX_LIMIT).contains(limit))
        .ok_or_else(|| {
            let message = format!("limit must be an integer from 1 to {MAX_LIMIT}, got {text:?}");
            ApiError::bad_request("invalid_limit", message)
        })
}

/// Position of the next page: which frame, and how many matching markets came before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    frame: usize,
    offset: usize,
}

impl Cursor {
    fn encode(self) -> String {
        format!("f{}o{}", self.frame, self.offset)
    }

    fn decode(text: &str, frame_count: usize) -> Result<Self, ApiError> {
        let (frame, offset) = text
            .strip_prefix('f')
            .and_then(|rest| rest.split_once('o'))
            .ok_or_else(|| invalid_cursor(text))?;
        let cursor = Cursor {
            frame: parse_index(frame).ok_or_else(|| invalid_cursor(text))?,
            offset: parse_index(offset).ok_or_else(|| invalid_cursor(text))?,
        };
        if cursor.frame >= frame_count {
            return Err(invalid_cursor(text));
        }
        Ok(cursor)
    }
}

fn invalid_cursor(text: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_cursor",
        format!("cursor {text:?} was not issued by this server"),
    )
}

/// Parses plain ASCII digits (`usize::from_str` would also take a leading `+`).
fn parse_index(text: &str) -> Option<usize> {
    let digits = !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten()
}

/// Which markets a `GET /markets` request asks for; `None` means "no restriction".
struct MarketFilter {
    statuses: Option<Vec<&'static str>>,
    tickers: Option<Vec<String>>,
    event_tickers: Option<Vec<String>>,
    series_tickers: Option<Vec<String>>,
    mve: Option<MveFilter>,
}

/// Kalshi's `mve_filter`: keep only, or leave out, multivariate combo markets.
#[derive(Clone, Copy)]
enum MveFilter {
    Only,
    Exclude,
}

impl MarketFilter {
    fn parse(params: &[(String, String)]) -> Result<Self, ApiError> {
        Ok(MarketFilter {
            statuses: parse_statuses(params)?,
            tickers: list_param(params, "tickers"),
            event_tickers: list_param(params, "event_ticker"),
            series_tickers: list_param(params, "series_ticker"),
            mve: parse_mve_filter(first_value(params, "mve_filter"))?,
        })
    }

    fn matches(&self, market: &Value) -> bool {
        let text = |name: &str| market.get(name).and_then(Value::as_str).unwrap_or_default();
        let ticker = text("ticker");
        // A market's series is its event's: the event ticker up to its
        // first `-` (the market's own ticker when it names no event).
        let event = Some(text("event_ticker")).filter(|e| !e.is_empty());
        let named = event.unwrap_or(ticker);
        let series = named.split_once('-').map_or(named, |(series, _)| series);
        let is_combo = !text("mve_collection_ticker").is_empty();
        allows(&self.statuses, text("status"))
            && allows(&self.tickers, ticker)
            && allows(&self.event_tickers, text("event_ticker"))
            && allows(&self.series_tickers, series)
            && match self.mve {
                None => true,
                Some(MveFilter::Only) => is_combo,
                Some(MveFilter::Exclude) => !is_combo,
            }
    }
}

fn allows<T: AsRef<str>>(allowed: &Option<Vec<T>>, value: &str) -> bool {
    allowed
        .as_ref()
        .is_none_or(|allowed| allowed.iter().any(|item| item.as_ref() == value))
}

/// Maps the request's `status` values to the `status` values markets show in responses.
fn parse_statuses(params: &[(String, String)]) -> Result<Option<Vec<&'static str>>, ApiError> {
    let Some(requested) = list_param(params, "status") else {
        return Ok(None);
    };
    let mut statuses = Vec::new();
    for status in &requested {
        let shown = response_statuses(status).ok_or_else(|| {
            let message =
                format!("status {status:?} is not one of unopened, open, paused, closed, settled");
            ApiError::bad_request("invalid_status", message)
        })?;
        statuses.extend_from_slice(shown);
    }
    Ok(Some(statuses))
}

fn response_statuses(requested: &str) -> Option<&'static [&'static str]> {
    match requested {
        "unopened" => Some(&["initialized"]),
        "open" => Some(&["active", "open"]),
        "paused" => Some(&["inactive"]),
        "closed" => Some(&["closed"]),
        "settled" => Some(&["settled", "determined", "finalized", "amended"]),
        _ => None,
    }
}

fn parse_mve_filter(text: Option<&str>) -> Result<Option<MveFilter>, ApiError> {
    match text {
        None | Some("") => Ok(None),
        Some("only") => Ok(Some(MveFilter::Only)),
        Some("exclude") => Ok(Some(MveFilter::Exclude)),
        Some(other) => {
            let message = format!("mve_filter {other:?} is not one of only, exclude");
            Err(ApiError::bad_request("invalid_mve_filter", message))
        }
    }
}

/// All comma-separated items of every occurrence of parameter `name`; `None` when there are
/// none, so an empty `tickers=` does not filter everything out.
fn list_param(params: &[(String, String)], name: &str) -> Option<Vec<String>> {
    let items: Vec<String> = params
        .iter()
        .filter(|(key, _)| key == name)
        .flat_map(|(_, value)| value.split(','))
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect();
    (!items.is_empty()).then_some(items)
}

fn first_value<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, ApiError> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))
}

/// An error answered as Kalshi does: `{"error":{"code":"...","message":"..."}}`.
struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    fn bad_request(code: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let cursor = Cursor {
            frame: 2,
            offset: 1000,
        };
        assert_eq!(cursor.encode(), "f2o1000");
        assert_eq!(Cursor::decode("f2o1000", 3).ok(), Some(cursor));
        for garbage in [
            "f3o0",
            "x",
            "f1",
            "fo1",
            "f1o",
            "f+1o2",
            "f1o2x",
            "CgwIyeGVywYQ0Lvs",
        ] {
            assert!(Cursor::decode(garbage, 3).is_err(), "{garbage}");
        }
    }

    #[test]
    fn request_statuses_map_to_response_statuses() {
        let params = vec![("status".to_owned(), "open,settled".to_owned())];
        let statuses = parse_statuses(&params).ok().flatten().unwrap();
        let expected = [
            "active",
            "open",
            "settled",
            "determined",
            "finalized",
            "amended",
        ];
        assert_eq!(statuses, expected);
        let active = vec![("status".to_owned(), "active".to_owned())];
        assert!(
            parse_statuses(&active).is_err(),
            "response values are not request values"
        );
    }

    #[test]
    fn series_filter_matches_the_event_ticker_prefix() {
        let params = vec![("series_ticker".to_owned(), "EUCLIMATE".to_owned())];
        let filter = MarketFilter::parse(&params).ok().unwrap();
        assert!(filter.matches(&json!({ "ticker": "EUCLIMATE-2030" })));
        assert!(!filter.matches(&json!({ "ticker": "EUCLIMATEX-2030" })));
        let params = vec![("series_ticker".to_owned(), "OSCARPIC".to_owned())];
        let filter = MarketFilter::parse(&params).ok().unwrap();
        assert!(filter.matches(&json!({ "ticker": "OSCAR", "event_ticker": "OSCARPIC-24" })));
    }
}
