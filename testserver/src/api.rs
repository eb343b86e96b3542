//! The HTTP side of the test server: Kalshi's `/trade-api/v2/markets` endpoints served from a
//! [`Scenario`], with every request recorded and faults injected before normal handling.
//!
//! Paging follows Kalshi: a client repeats its filters with the `cursor` of the previous page
//! until the returned cursor is empty. The cursor names the frame it was cut from, so a scan
//! that pages through sees one consistent frame even if another scan starts meanwhile.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query, Request, State};
use axum::http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::scenario::{Fault, Scenario};

/// Page size when the request has no `limit`.
const DEFAULT_LIMIT: usize = 100;
/// Largest page size Kalshi accepts.
const MAX_LIMIT: usize = 1000;

/// What [`Fault::MalformedBody`] sends: a page cut off in the middle of a market.
const TRUNCATED_PAGE: &str =
    r#"{"markets":[{"ticker":"KXTRUNCATED-26JAN15-T1","status":"active","yes_bid_dollars":"0.45"#;

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
        }
    }
}

/// The scenario being served plus everything observed so far.
pub(crate) struct ServerState {
    frames: Vec<Vec<Value>>,
    faults: BTreeMap<usize, Fault>,
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    requests: Vec<RecordedRequest>,
    scans_started: usize,
}

impl ServerState {
    pub(crate) fn new(scenario: Scenario) -> Self {
        ServerState {
            frames: scenario.frames,
            faults: scenario.faults,
            log: Mutex::default(),
        }
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.log().requests.clone()
    }

    pub(crate) fn scans_started(&self) -> usize {
        self.log().scans_started
    }

    /// Locks the log. A handler that panicked while holding it cannot have left it half
    /// written (each update is a single push or increment), so poisoning is ignored.
    fn log(&self) -> MutexGuard<'_, Log> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends `request` to the log and returns its 0-based index.
    fn record(&self, request: RecordedRequest) -> usize {
        let mut log = self.log();
        log.requests.push(request);
        log.requests.len() - 1
    }

    /// Counts a new scan and returns the frame it is served from.
    fn start_scan(&self) -> usize {
        let mut log = self.log();
        log.scans_started += 1;
        self.frame_of_scan(log.scans_started)
    }

    /// The frame of the latest scan; frame 0 before any scan.
    fn current_frame(&self) -> usize {
        self.frame_of_scan(self.log().scans_started)
    }

    fn frame_of_scan(&self, scans_started: usize) -> usize {
        scans_started.saturating_sub(1).min(self.frames.len() - 1)
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

/// Records the request, then either answers with the fault scripted for its index or hands it
/// on to the route.
async fn record_and_fault(
    State(state): State<Arc<ServerState>>,
    request: Request,
    next: Next,
) -> Response {
    let index = state.record(RecordedRequest::of(&request));
    match state.faults.get(&index).cloned() {
        None => next.run(request).await,
        Some(Fault::Delay(pause)) => {
            tokio::time::sleep(pause).await;
            next.run(request).await
        }
        Some(Fault::Status { code, retry_after }) => status_fault(code, retry_after.as_deref()),
        Some(Fault::MalformedBody) => (
            StatusCode::OK,
            [(CONTENT_TYPE, "application/json")],
            TRUNCATED_PAGE,
        )
            .into_response(),
    }
}

/// `GET /markets`: one page of the frame's markets that pass the filters.
async fn list_markets(
    State(state): State<Arc<ServerState>>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let params = query_pairs(&uri)?;
    let query = MarketsQuery::parse(&params, state.frames.len())?;
    // Only a valid first-page request starts a scan, so a rejected or faulted request that the
    // client retries does not skip a frame.
    let frame = match query.cursor {
        Some(cursor) => cursor.frame,
        None => state.start_scan(),
    };
    page(&state.frames[frame], &query, frame).map(Json)
}

/// `GET /markets/{ticker}`: one market of the latest scan's frame.
async fn get_market(
    State(state): State<Arc<ServerState>>,
    ticker: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(ticker) = ticker
        .map_err(|rejection| ApiError::bad_request("invalid_ticker", rejection.body_text()))?;
    state.frames[state.current_frame()]
        .iter()
        .find(|market| market["ticker"] == ticker.as_str())
        .map(|market| Json(json!({ "market": market })))
        .ok_or_else(|| ApiError::not_found(format!("market {ticker} not found")))
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

/// Cuts one page out of the markets of `frame` that pass the query's filters.
fn page(markets: &[Value], query: &MarketsQuery, frame: usize) -> Result<Value, ApiError> {
    let matching: Vec<&Value> = markets.iter().filter(|m| query.filter.matches(m)).collect();
    let start = query.cursor.map_or(0, |cursor| cursor.offset);
    if start > matching.len() {
        return Err(ApiError::bad_request(
            "invalid_cursor",
            "cursor is past the last market",
        ));
    }
    let end = matching.len().min(start + query.limit);
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
    cursor: Option<Cursor>,
    filter: MarketFilter,
}

impl MarketsQuery {
    fn parse(params: &[(String, String)], frame_count: usize) -> Result<Self, ApiError> {
        let cursor = match first_value(params, "cursor").filter(|text| !text.is_empty()) {
            Some(text) => Some(Cursor::decode(text, frame_count)?),
            None => None,
        };
        Ok(MarketsQuery {
            limit: parse_limit(first_value(params, "limit"))?,
            cursor,
            filter: MarketFilter::parse(params)?,
        })
    }
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
        let series = ticker.split_once('-').map_or(ticker, |(series, _)| series);
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
    fn series_filter_matches_the_ticker_prefix() {
        let params = vec![("series_ticker".to_owned(), "EUCLIMATE".to_owned())];
        let filter = MarketFilter::parse(&params).ok().unwrap();
        assert!(filter.matches(&json!({ "ticker": "EUCLIMATE-2030" })));
        assert!(!filter.matches(&json!({ "ticker": "EUCLIMATEX-2030" })));
    }
}
