//! The Kalshi market client: `GET /markets`, page by page.
//!
//! Requests are paced to stay under the basic read limit on their own. A
//! 429, a 5xx, a timeout or a dropped connection is retried with exponential
//! backoff and jitter, honouring `Retry-After`; other refusals end the scan.
//! A server whose cursors never end the scan (one repeats, or empty pages
//! keep coming) is left with a warning, keeping the markets read so far.
//! The server's TLS certificate is always checked against the built-in web
//! roots; there is deliberately no setting to turn that off, and a refused
//! certificate ends the scan without retries.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::Rng;
use reqwest::StatusCode;
use serde_json::Value;

use super::page::{PageEvent, PageReader};
use super::{MarketSource, Scan, SourceError, Watchlist, LOGGED_VALUE};
use crate::market::{Market, MarketDetail, MarketError};

/// Which Kalshi exchange to talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Environment {
    #[default]
    Prod,
    Demo,
}

impl Environment {
    /// The public API's base URL of this environment.
    pub fn base_url(self) -> &'static str {
        match self {
            Environment::Prod => "https://api.elections.kalshi.com/trade-api/v2",
            Environment::Demo => "https://demo-api.kalshi.co/trade-api/v2",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Prod => "prod",
            Environment::Demo => "demo",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Environment {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "prod" | "production" => Ok(Environment::Prod),
            "demo" => Ok(Environment::Demo),
            other => Err(format!(
                "unknown environment {other:?}; expected prod or demo"
            )),
        }
    }
}

/// When and how often a failed request is tried again.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// The backoff before the second attempt; it doubles after each.
    pub base_delay: Duration,
    /// No backoff is longer than this.
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is cut to it, whether it came as
    /// seconds or as a date.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The jittered backoff after `failures` failed attempts: a random
    /// duration in the upper half of the exponential step, so clients that
    /// failed together do not retry together.
    pub fn backoff(&self, failures: u32) -> Duration {
        let step = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
            .min(self.max_delay);
        let half = step / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    /// The wait after `failures` failed attempts, the last of which asked
    /// for `retry_after`: that, cut to `max_retry_after`, but never less
    /// than the backoff. A `Retry-After` of 0, or a date already past (the
    /// server's clock is behind ours), must not turn a storm of 429s into a
    /// burst of retries.
    pub fn wait(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.backoff(failures);
        match retry_after {
            Some(asked) => asked.min(self.max_retry_after).max(backoff),
            None => backoff,
        }
    }
}

/// Checks a base URL given by the user: an absolute http(s) URL with a
/// host, and nothing a request path cannot be appended to. Credentials are
/// refused: the public market API needs none, and a URL is logged.
pub fn check_base_url(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    // Messages quote the URL without any login, even one too broken to parse.
    let shown = without_login(trimmed);
    if trimmed.is_empty() {
        return Err("is set but empty; unset it to use the --env host".into());
    }
    let url = reqwest::Url::parse(trimmed).map_err(|e| format!("{shown:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{shown:?} is not an http(s) URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{shown:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; the market API needs none".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{shown:?} must not have a query or fragment; give the API's base path"
        ));
    }
    Ok(trimmed.trim_end_matches('/').to_string())
}

/// `text` with anything that may hold a secret replaced by `****`: a login
/// (`user:password@`) before the host, and a query or fragment (`?token=`).
fn without_login(text: &str) -> String {
    let start = text.find("://").map_or(0, |i| i + 3);
    let authority_end = text[start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| start + i);
    let mut shown = match text[start..authority_end].rfind('@') {
        Some(at) => format!("{}****{}", &text[..start], &text[start + at..]),
        None => text.to_string(),
    };
    if let Some(cut) = shown.find(['?', '#']) {
        shown.replace_range(cut + 1.., "****");
    }
    shown
}

/// How the client talks to the API.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// e.g. `https://api.elections.kalshi.com/trade-api/v2`, no trailing slash.
    pub base_url: String,
    /// Stop after this many pages and report the scan as truncated.
    pub max_pages: Option<usize>,
    /// Markets per page, 1..=1000.
    pub page_limit: u32,
    /// One request's time limit, connection included.
    pub timeout: Duration,
    /// At most this many requests per second, retries included.
    pub requests_per_second: u32,
    pub retry: RetryPolicy,
    /// Whether a scan asks for the watched markets only, or reads them all.
    pub scan: ScanMode,
    /// Leave multivariate combo markets out of a full scan
    /// (`mve_filter=exclude`).
    pub skip_combos: bool,
    /// The most pages one listing is followed for (see
    /// [`MAX_LISTING_PAGES`]).
    pub max_listing_pages: usize,
}

/// The most pages one listing of a scan is followed for: at 1,000 markets
/// a page, ten times the open markets Kalshi lists today. A server whose
/// cursor keeps naming new pages would otherwise hold the cycle for ever
/// (at the default rate this many pages take 50 s); the scan stops there
/// with a warning and uses what it read.
pub const MAX_LISTING_PAGES: usize = 1000;

/// How a scan reads the markets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanMode {
    /// Only the watched markets, named in the `tickers` filter, in batches
    /// of [`TICKERS_PER_REQUEST`]: a cycle's cost follows what is watched,
    /// not the size of the exchange.
    #[default]
    Auto,
    /// Every open market, page after page, as the Python tool does.
    Full,
}

/// Tickers named in one request of a targeted scan. A ticker is at most
/// a few dozen characters, so 100 of them (with the commas, encoded) keep
/// the request line near 4 KiB, well under the 8 KiB many servers and
/// proxies allow; and 100 markets fit in one page, so a batch is one
/// request. 100 watched markets cost one request, 1,000 cost ten.
pub const TICKERS_PER_REQUEST: usize = 100;

impl ClientConfig {
    pub fn new(base_url: impl Into<String>) -> ClientConfig {
        ClientConfig {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            max_pages: None,
            page_limit: 1000,
            timeout: Duration::from_secs(30),
            requests_per_second: 20,
            retry: RetryPolicy::default(),
            scan: ScanMode::Auto,
            skip_combos: false,
            max_listing_pages: MAX_LISTING_PAGES,
        }
    }
}

/// Reads open markets from Kalshi's public REST API.
pub struct KalshiClient {
    http: reqwest::Client,
    config: ClientConfig,
    next_request: Instant,
    progress: Option<ScanProgress>,
}

/// Told after each page of a scan how many pages and markets were read,
/// and once more with `true` when the scan ends: for a progress line.
pub type ScanProgress = Box<dyn FnMut(usize, usize, bool) + Send + Sync>;

/// One failed attempt, and whether another could succeed.
struct AttemptError {
    retryable: bool,
    retry_after: Option<Duration>,
    failure: Failure,
}

/// What went wrong with one request, before the attempts are counted.
enum Failure {
    Transport(String),
    Status { status: u16, body: String },
    Malformed(String),
}

impl Failure {
    fn describe(&self) -> String {
        match self {
            Failure::Transport(reason) => reason.clone(),
            Failure::Status { status, body } => format!("HTTP {status}: {body}"),
            Failure::Malformed(reason) => reason.clone(),
        }
    }

    fn into_error(self, url: &str, page: usize, attempts: u32) -> SourceError {
        let url = url.to_string();
        match self {
            Failure::Transport(reason) => SourceError::Unreachable {
                url,
                attempts,
                reason,
            },
            Failure::Status { status, body } => SourceError::Refused {
                url,
                status,
                attempts,
                body,
            },
            Failure::Malformed(reason) => SourceError::Malformed { url, page, reason },
        }
    }
}

impl KalshiClient {
    pub fn new(config: ClientConfig) -> Result<KalshiClient, SourceError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("kalshi-alerts/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::Other(format!("cannot build HTTP client: {e}")))?;
        Ok(KalshiClient {
            http,
            config,
            next_request: Instant::now(),
            progress: None,
        })
    }

    /// How scans read the markets: the watched ones, or all.
    pub fn set_scan(&mut self, mode: ScanMode, skip_combos: bool) {
        self.config.scan = mode;
        self.config.skip_combos = skip_combos;
    }

    /// At most `per_second` requests a second, retries included (at least 1).
    pub fn set_rate(&mut self, per_second: u32) {
        self.config.requests_per_second = per_second.max(1);
    }

    /// Reports the progress of every scan to `progress`.
    pub fn report_progress(&mut self, progress: ScanProgress) {
        self.progress = Some(progress);
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Fetches one page of open markets narrowed by `filters` (query
    /// parameters such as `event_ticker`) as JSON, retrying what can
    /// succeed later.
    async fn page_of(
        &mut self,
        filters: &[(&str, &str)],
        cursor: Option<&str>,
        number: usize,
    ) -> Result<Value, SourceError> {
        let url = self.listing_url(filters, cursor);
        self.get(&url, number).await
    }

    /// One market by its ticker, whatever its status; `None` when the API
    /// knows no such market.
    pub async fn market(&mut self, ticker: &str) -> Result<Option<MarketDetail>, SourceError> {
        let url = format!(
            "{}/markets/{}",
            self.config.base_url,
            crate::percent::encode(ticker)
        );
        let body = match self.get(&url, 1).await {
            Ok(body) => body,
            Err(SourceError::Refused { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let record = body.get("market").ok_or_else(|| SourceError::Malformed {
            url: url.clone(),
            page: 1,
            reason: "no \"market\" object".into(),
        })?;
        MarketDetail::from_json(record)
            .map(Some)
            .map_err(|e| SourceError::Malformed {
                url,
                page: 1,
                reason: e.to_string(),
            })
    }

    /// Open markets narrowed by `filters` (`event_ticker`, `series_ticker`)
    /// for which `keep` holds, page after page until `limit` are found or
    /// the listing (or `max_pages`) ends; and whether the listing goes on
    /// past the pages read, with a cursor not followed or one sent twice
    /// (a loop). A market sent twice is kept once. `progress` hears of each
    /// page.
    ///
    /// A page without a `markets` array, or whose `cursor` is neither a
    /// string nor `null`, is refused as a scan refuses it: what it holds
    /// cannot be told from an empty listing.
    pub async fn find_markets(
        &mut self,
        filters: &[(&str, &str)],
        limit: usize,
        mut keep: impl FnMut(&MarketDetail) -> bool,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<(Vec<MarketDetail>, bool), SourceError> {
        use super::page::PageError;

        let mut found = Vec::new();
        // A market a broken listing sends twice is found once.
        let mut tickers = HashSet::new();
        let mut cursor: Option<String> = None;
        let mut seen = HashSet::new();
        // A cursor sent again means the listing loops: what was found is
        // all that can be read, and there may be more.
        let mut looped = false;
        let (mut pages, mut read) = (0, 0);
        loop {
            if self.config.max_pages.is_some_and(|max| pages >= max) {
                break;
            }
            let page = self.page_of(filters, cursor.as_deref(), pages + 1).await?;
            pages += 1;
            let malformed = |reason: PageError| SourceError::Malformed {
                url: self.listing_url(filters, cursor.as_deref()),
                page: pages,
                reason: reason.to_string(),
            };
            let records = page
                .get("markets")
                .and_then(Value::as_array)
                .ok_or_else(|| malformed(PageError::NoMarkets))?;
            let next = match page.get("cursor") {
                None | Some(Value::Null) => None,
                Some(Value::String(next)) => Some(next.as_str()),
                Some(_) => return Err(malformed(PageError::CursorNotText)),
            };
            for record in records {
                read += 1;
                if let Ok(market) = MarketDetail::from_json(record) {
                    if keep(&market) && tickers.insert(market.market.ticker.clone()) {
                        found.push(market);
                    }
                }
            }
            progress(pages, read);
            cursor = match next.filter(|next| !next.is_empty()) {
                Some(next) if !seen.insert(next.to_string()) => {
                    looped = true;
                    None
                }
                next => next.map(String::from),
            };
            if found.len() >= limit {
                found.truncate(limit);
                break;
            }
            if cursor.is_none() {
                break;
            }
        }
        Ok((found, cursor.is_some() || looped))
    }

    /// GETs `url` as JSON, retrying what can succeed later.
    async fn get(&mut self, url: &str, number: usize) -> Result<Value, SourceError> {
        let url = url.to_string();
        let mut failures = 0;
        loop {
            self.pace().await;
            match self.attempt(&url, number).await {
                Ok(page) => return Ok(page),
                Err(failed) => {
                    failures += 1;
                    if !failed.retryable || failures >= self.config.retry.max_attempts {
                        return Err(failed.failure.into_error(&url, number, failures));
                    }
                    let wait = self.config.retry.wait(failures, failed.retry_after);
                    tracing::warn!(
                        %url, attempt = failures, wait_ms = wait.as_millis() as u64,
                        error = %failed.failure.describe(), "request failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn attempt(&self, url: &str, number: usize) -> Result<Value, AttemptError> {
        tracing::debug!(%url, page = number, "GET");
        let response = self.http.get(url).send().await.map_err(unreachable)?;
        let response = self.accepted(response).await?;
        let (body, complete) = read_limited(response, PAGE_LIMIT)
            .await
            .map_err(unreachable)?;
        if !complete {
            return Err(too_large());
        }
        serde_json::from_slice(&body).map_err(|e| malformed(format!("not valid JSON ({e})")))
    }

    /// The response if the request was answered with a success, else why
    /// not and whether trying again could help.
    async fn accepted(
        &self,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, AttemptError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = parse_retry_after(response.headers());
        let body = read_limited(response, ERROR_BODY_LIMIT)
            .await
            .map(|(bytes, _)| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
        Err(AttemptError {
            retryable,
            retry_after,
            failure: Failure::Status {
                status: status.as_u16(),
                body: snippet(&body),
            },
        })
    }

    /// Waits for this request's slot so that requests never exceed the
    /// configured rate, however fast pages come back.
    async fn pace(&mut self) {
        tokio::time::sleep_until(self.reserve_slot().into()).await;
    }

    /// Takes the next request slot and returns when it begins.
    ///
    /// The pacing is a token bucket, the model of Kalshi's own limit: it
    /// holds one second's worth of requests (`requests_per_second`) and
    /// refills at that rate. A scan of a few pages goes out at once; a
    /// longer one settles to the rate. Kept as the time at which the bucket
    /// would be empty (`next_request`): a request may go when that time is
    /// less than a full bucket ahead of now, and moves it one gap later.
    fn reserve_slot(&mut self) -> Instant {
        let per_second = self.config.requests_per_second.max(1);
        let gap = Duration::from_secs(1) / per_second;
        let burst = gap * (per_second - 1);
        let now = Instant::now();
        let empty_at = self.next_request.max(now);
        let slot = empty_at.checked_sub(burst).map_or(now, |at| at.max(now));
        self.next_request = empty_at + gap;
        slot
    }

    /// Sends the request for `url` in its slot, in the background.
    fn request_ahead(&mut self, url: String) -> Prefetch {
        let slot = self.reserve_slot();
        let request = self.http.get(&url);
        let sent = url.clone();
        let response = tokio::spawn(async move {
            tokio::time::sleep_until(slot.into()).await;
            tracing::debug!(url = %sent, "GET (ahead)");
            request.send().await
        });
        Prefetch { url, response }
    }
}

/// A request for the next page, made while the current one is read.
/// Dropping it abandons the request.
struct Prefetch {
    url: String,
    response: tokio::task::JoinHandle<Result<reqwest::Response, reqwest::Error>>,
}

impl Prefetch {
    async fn response(mut self) -> Result<reqwest::Response, AttemptError> {
        match (&mut self.response).await {
            Ok(response) => response.map_err(unreachable),
            // Only dropping this aborts the task; a panic in it is taken
            // as a failed attempt, and the page is asked for again.
            Err(e) => Err(AttemptError {
                retryable: true,
                retry_after: None,
                failure: Failure::Transport(format!("the request made ahead was lost: {e}")),
            }),
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.response.abort();
    }
}

/// When a listing's next page may be asked for before the current one is
/// read to the end.
struct EarlyRequest<'a> {
    /// The listing's filters, for the next page's URL.
    filters: &'a [(&'a str, &'a str)],
    allowed: bool,
    /// Cursors seen in this listing: a repeated one is never followed.
    seen: &'a HashSet<String>,
}

impl EarlyRequest<'_> {
    fn allows(&self, cursor: &str) -> bool {
        self.allowed && cursor.len() <= MAX_CURSOR_BYTES && !self.seen.contains(cursor)
    }
}

/// One page of a listing, read: the watched markets on it, and its cursor.
#[derive(Default)]
struct PageRead {
    markets: Vec<Market>,
    /// Records on the page, watched or not.
    read: usize,
    /// Records that could not be read.
    skipped: usize,
    /// The tickers of those, where they could be read: listed, so open.
    unreadable: Vec<String>,
    /// The next page's cursor; `None` on the last page.
    cursor: Option<String>,
}

impl PageRead {
    /// Takes in what the page reader found.
    fn take(&mut self, event: PageEvent<'_>, watched: &Watchlist) {
        let failed = match event {
            PageEvent::Cursor(cursor) => {
                self.cursor = cursor;
                return;
            }
            PageEvent::Record(record) => {
                match Market::from_record(&record, |ticker, event| watched.wants(ticker, event)) {
                    Ok(market) => {
                        self.read += 1;
                        self.markets.extend(market);
                        return;
                    }
                    Err(e) => e,
                }
            }
            PageEvent::Unreadable(reason) => MarketError {
                ticker: "<unknown>".into(),
                reason,
            },
        };
        self.read += 1;
        self.skipped += 1;
        if !failed.ticker.is_empty() && failed.ticker != "<unknown>" {
            self.unreadable.push(failed.ticker.clone());
        }
        tracing::warn!(
            ticker = %crate::display::for_log(&failed.ticker, LOGGED_VALUE),
            reason = %crate::display::for_log(&failed.reason, LOGGED_VALUE),
            "skipped malformed market"
        );
    }
}

fn unreachable(e: reqwest::Error) -> AttemptError {
    let tls_refused = crate::tls::refusal(&e).is_some();
    let mut reason = describe_transport_error(&e);
    if tls_refused {
        reason.push_str(" (the market API's TLS certificate is always checked)");
    }
    AttemptError {
        retryable: !tls_refused,
        retry_after: None,
        failure: Failure::Transport(reason),
    }
}

fn malformed(reason: String) -> AttemptError {
    AttemptError {
        retryable: false,
        retry_after: None,
        failure: Failure::Malformed(reason),
    }
}

fn too_large() -> AttemptError {
    malformed(format!(
        "the page is larger than {} MiB; no real page is",
        PAGE_LIMIT / (1024 * 1024)
    ))
}

#[async_trait]
impl MarketSource for KalshiClient {
    async fn scan(&mut self, watched: &Watchlist) -> Result<Scan, SourceError> {
        let result = self.scan_pages(watched).await;
        if let Some(progress) = self.progress.as_mut() {
            let (pages, markets) = result
                .as_ref()
                .map_or((0, 0), |scan| (scan.pages, scan.markets_read));
            progress(pages, markets, true);
        }
        result
    }

    fn describe(&self) -> String {
        self.config.base_url.clone()
    }
}

impl KalshiClient {
    async fn scan_pages(&mut self, watched: &Watchlist) -> Result<Scan, SourceError> {
        let mut scan = Scan::default();
        match self.config.scan {
            ScanMode::Full => {
                let filters: &[(&str, &str)] = if self.config.skip_combos {
                    &[("mve_filter", "exclude")]
                } else {
                    &[]
                };
                // With combos left out, a combo market counts as not
                // listed: a condition on one is never checked then.
                scan.complete = self.read_listing(filters, watched, &mut scan).await?;
            }
            ScanMode::Auto => {
                // One listing the API refuses (a scope or a ticker it
                // rejects) costs only the conditions it serves: the others
                // are still checked. Only when it refuses every listing,
                // which says more of the API or the URL than of one
                // condition, does the scan fail.
                let listings = targeted_listings(watched);
                let mut refused = Vec::new();
                // Whether every batch of tickers was read to its end; an
                // event or series listing that was not is named instead.
                let mut every_batch = true;
                for (name, value) in &listings {
                    let read_to_end = match self
                        .read_listing(&[(name, value.as_str())], watched, &mut scan)
                        .await
                    {
                        Ok(read_to_end) => read_to_end,
                        Err(e @ SourceError::Refused { status, .. })
                            if (400..500).contains(&status) && !matches!(status, 408 | 429) =>
                        {
                            refused.push(e);
                            false
                        }
                        Err(e) => return Err(e),
                    };
                    if !read_to_end {
                        match *name {
                            "event_ticker" => _ = scan.unread_events.insert(value.clone()),
                            "series_ticker" => _ = scan.unread_series.insert(value.clone()),
                            _ => every_batch = false,
                        }
                    }
                    if scan.truncated {
                        break;
                    }
                }
                if !refused.is_empty() && refused.len() == listings.len() {
                    return Err(refused.swap_remove(0));
                }
                scan.complete = every_batch && !scan.truncated;
                for e in &refused {
                    tracing::warn!(
                        error = %crate::display::for_log(&e.to_string(), LOGGED_VALUE),
                        "listing refused; the conditions it serves are not checked this cycle"
                    );
                }
            }
        }
        Ok(scan)
    }

    /// Reads every page of the listing narrowed by `filters` into `scan`;
    /// `true` when it was read to its end, so that a market it did not send
    /// is not open. A batch of tickers (a `tickers` filter) ends once it has sent every
    /// one of them, whatever its cursor says; and once it has sent that many
    /// markets without them (a server that ignores the filter), but then
    /// not read to its end.
    ///
    /// Each page is read as it streams in (see [`super::page`]); as soon
    /// as its cursor is read, the next page is requested, so that it
    /// downloads while this one is read. A page that fails is tried again
    /// whole and counts only once it is read to the end.
    async fn read_listing(
        &mut self,
        filters: &[(&str, &str)],
        watched: &Watchlist,
        scan: &mut Scan,
    ) -> Result<bool, SourceError> {
        let mut cursor: Option<String> = None;
        let mut seen_cursors = HashSet::new();
        let mut empty_in_a_row = 0;
        let mut ahead: Option<Prefetch> = None;
        let (mut pages, mut sent) = (0, 0);
        // The tickers a batch asks for; none for any other listing.
        let wanted: HashSet<&str> = filters
            .iter()
            .filter(|(name, _)| *name == "tickers")
            .flat_map(|(_, value)| value.split(','))
            .collect();
        let batch = !wanted.is_empty();
        let mut found: HashSet<String> = HashSet::new();

        loop {
            if self.config.max_pages.is_some_and(|max| scan.pages >= max) {
                scan.truncated = true;
                return Ok(false);
            }
            let number = scan.pages + 1;
            let url = self.listing_url(filters, cursor.as_deref());
            // The next page is asked for early only if it will be read
            // whatever this page holds: not past --max-pages, not past the
            // run of empty pages that ends a scan, not a cursor seen before.
            let early = EarlyRequest {
                filters,
                allowed: self.config.max_pages.is_none_or(|max| number < max)
                    && empty_in_a_row + 1 < MAX_EMPTY_PAGES_IN_A_ROW
                    && pages + 1 < self.config.max_listing_pages
                    && !batch,
                seen: &seen_cursors,
            };
            let page = self
                .read_page(&url, number, watched, &mut ahead, &early)
                .await?;
            empty_in_a_row = if page.read == 0 {
                empty_in_a_row + 1
            } else {
                0
            };
            scan.pages += 1;
            pages += 1;
            sent += page.read;
            scan.markets_read += page.read;
            scan.skipped += page.skipped;
            scan.unreadable.extend(page.unreadable);
            if batch {
                found.extend(
                    page.markets
                        .iter()
                        .filter(|m| wanted.contains(m.ticker.as_str()))
                        .map(|m| m.ticker.clone()),
                );
            }
            scan.markets
                .extend(page.markets.into_iter().map(|m| (m.ticker.clone(), m)));
            if let Some(progress) = self.progress.as_mut() {
                progress(scan.pages, scan.markets_read, false);
            }

            let Some(next) = page.cursor else {
                return Ok(true);
            };
            if batch && found.len() >= wanted.len() {
                // Every ticker asked for came: a page more could only
                // repeat them.
                return Ok(true);
            }
            if batch && sent >= wanted.len() {
                tracing::warn!(url = %self.config.base_url, page = number, markets = sent,
                    "a listing of tickers sent as many markets as were asked for, but not \
                     those; the scan stops it there");
                return Ok(false);
            }
            let endless = endless(&mut seen_cursors, next.clone(), empty_in_a_row).or_else(|| {
                (pages >= self.config.max_listing_pages).then(|| {
                    format!(
                        "the API has sent {pages} pages of this listing and names another, \
                         more than any real listing has"
                    )
                })
            });
            if let Some(reason) = endless {
                tracing::warn!(
                    url = %self.config.base_url, page = number, markets = scan.markets_read,
                    "{reason}; the scan stops here and uses the {} market(s) read",
                    scan.markets_read
                );
                return Ok(false);
            }
            cursor = Some(next);
        }
    }

    /// `GET /markets` of open markets narrowed by `filters`, from `cursor`.
    fn listing_url(&self, filters: &[(&str, &str)], cursor: Option<&str>) -> String {
        let mut url = format!(
            "{}/markets?status=open&limit={}",
            self.config.base_url, self.config.page_limit
        );
        for (name, value) in filters {
            url.push_str(&format!("&{name}={}", crate::percent::encode(value)));
        }
        if let Some(cursor) = cursor {
            url.push_str("&cursor=");
            url.push_str(&crate::percent::encode(cursor));
        }
        url
    }

    /// Reads page `number` at `url`, retrying what can succeed later. Uses
    /// the request in `ahead` if it was made for this page, and leaves the
    /// request for the next page there when `early` allows it.
    async fn read_page(
        &mut self,
        url: &str,
        number: usize,
        watched: &Watchlist,
        ahead: &mut Option<Prefetch>,
        early: &EarlyRequest<'_>,
    ) -> Result<PageRead, SourceError> {
        let mut failures = 0;
        loop {
            // The request made ahead is kept while this page is retried:
            // it is for the next one.
            let made_ahead = ahead.take_if(|prefetch| prefetch.url == url);
            let response = match made_ahead {
                Some(prefetch) => prefetch.response().await,
                None => {
                    self.pace().await;
                    tracing::debug!(%url, page = number, "GET");
                    self.http.get(url).send().await.map_err(unreachable)
                }
            };
            match self.read_response(response, watched, ahead, early).await {
                Ok(page) => return Ok(page),
                Err(failed) => {
                    failures += 1;
                    if !failed.retryable || failures >= self.config.retry.max_attempts {
                        return Err(failed.failure.into_error(url, number, failures));
                    }
                    let wait = self.config.retry.wait(failures, failed.retry_after);
                    tracing::warn!(
                        %url, attempt = failures, wait_ms = wait.as_millis() as u64,
                        error = %failed.failure.describe(), "request failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Reads one response to a listing request as it streams in.
    async fn read_response(
        &mut self,
        response: Result<reqwest::Response, AttemptError>,
        watched: &Watchlist,
        ahead: &mut Option<Prefetch>,
        early: &EarlyRequest<'_>,
    ) -> Result<PageRead, AttemptError> {
        let mut response = self.accepted(response?).await?;
        let mut page = PageRead::default();
        let mut reader = PageReader::new();
        let mut received = 0;
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            received += chunk.len();
            if received > PAGE_LIMIT {
                return Err(too_large());
            }
            reader
                .feed(&chunk, &mut |event| page.take(event, watched))
                .map_err(|e| malformed(e.to_string()))?;
            if let Some(next) = page.cursor.as_deref() {
                if ahead.is_none() && early.allows(next) {
                    let url = self.listing_url(early.filters, Some(next));
                    *ahead = Some(self.request_ahead(url));
                }
            }
        }
        reader
            .finish(&mut |event| page.take(event, watched))
            .map_err(|e| malformed(e.to_string()))?;
        Ok(page)
    }
}

/// The listings a targeted scan reads, as one query filter each: the
/// watched tickers in batches of [`TICKERS_PER_REQUEST`], then one listing
/// per watched event and per watched series.
fn targeted_listings(watched: &Watchlist) -> Vec<(&'static str, String)> {
    let tickers: Vec<&str> = watched.tickers.iter().map(String::as_str).collect();
    let batches = tickers
        .chunks(TICKERS_PER_REQUEST)
        .map(|batch| ("tickers", batch.join(",")));
    let events = watched.events.iter().map(|e| ("event_ticker", e.clone()));
    let series = watched.series.iter().map(|s| ("series_ticker", s.clone()));
    batches.chain(events).chain(series).collect()
}

/// The longest cursor followed. Kalshi's are a few dozen characters; every
/// cursor of a listing is kept to tell a loop, so a server sending huge
/// ones would otherwise cost memory page after page.
const MAX_CURSOR_BYTES: usize = 4096;

/// How many empty pages in a row that still carry a cursor are followed.
///
/// An empty page with a cursor is legal: a server may cut a page where
/// none of its markets passed the filters, and the next page has some. A
/// server that keeps sending them would hold the cycle for ever, though,
/// so a run of this many ends the scan.
const MAX_EMPTY_PAGES_IN_A_ROW: usize = 10;

/// Why following `next` would never end the scan, if it would not: the
/// cursor was met before in this scan (no real scan revisits a page), or
/// too many empty pages came in a row. Records `next` as seen.
fn endless(seen: &mut HashSet<String>, next: String, empty_in_a_row: usize) -> Option<String> {
    if next.len() > MAX_CURSOR_BYTES {
        return Some(format!(
            "the API sent a cursor of {} bytes, longer than any real one ({MAX_CURSOR_BYTES} at most)",
            next.len()
        ));
    }
    if !seen.insert(next) {
        return Some("the API repeated a cursor of this scan, which would page for ever".into());
    }
    (empty_in_a_row >= MAX_EMPTY_PAGES_IN_A_ROW).then(|| {
        format!(
            "the API sent {empty_in_a_row} empty pages in a row that still had a cursor, \
             and might never stop"
        )
    })
}

/// The most a page may weigh. A real page of 1,000 markets is under 3 MiB;
/// a server sending more is broken or hostile, and holding it would cost
/// memory the monitor must not spend.
const PAGE_LIMIT: usize = 64 * 1024 * 1024;

/// How much of a refusal's body is read, for the error message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Reads at most `limit` bytes of the body; `false` when there was more.
async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}

/// `Retry-After` as seconds or as an HTTP date, in any of the three forms
/// HTTP allows (`Sun, 06 Nov 1994 08:49:37 GMT`, the obsolete RFC 850 form
/// and C's asctime form); a date already past is no wait. The caller caps
/// it.
fn parse_retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn describe_transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_string();
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

fn snippet(body: &str) -> String {
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &flat[..cut]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_have_the_documented_urls() {
        assert_eq!(
            "prod".parse::<Environment>().unwrap().base_url(),
            "https://api.elections.kalshi.com/trade-api/v2"
        );
        assert_eq!(
            "DEMO".parse::<Environment>().unwrap().base_url(),
            "https://demo-api.kalshi.co/trade-api/v2"
        );
        assert!("staging".parse::<Environment>().is_err());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy::default();
        for failures in 1..10 {
            let wait = policy.backoff(failures);
            let step = (policy.base_delay * 2u32.pow(failures - 1)).min(policy.max_delay);
            assert!(wait >= step / 2 && wait <= step, "{failures}: {wait:?}");
        }
    }

    fn retry_after(value: &str) -> Option<Duration> {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", value.parse().unwrap());
        parse_retry_after(&headers)
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(" 0 "), Some(Duration::ZERO));
        for past in [
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
        ] {
            assert_eq!(retry_after(past), Some(Duration::ZERO), "{past}");
        }
        let ahead = std::time::SystemTime::now() + Duration::from_secs(3600);
        let wait = retry_after(&httpdate::fmt_http_date(ahead)).unwrap();
        assert!(
            wait > Duration::from_secs(3590) && wait <= Duration::from_secs(3600),
            "{wait:?}"
        );
        for garbage in ["soon", "-1", "1.5", "Wed, 21 Oct 2015"] {
            assert_eq!(retry_after(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn a_retry_after_is_capped_and_never_shorter_than_the_backoff() {
        let policy = RetryPolicy::default();
        let cap = policy.max_retry_after;
        let an_hour = Duration::from_secs(3600);
        assert_eq!(policy.wait(1, Some(an_hour)), cap);
        let date = httpdate::fmt_http_date(std::time::SystemTime::now() + an_hour);
        assert_eq!(policy.wait(1, retry_after(&date)), cap);
        assert_eq!(
            policy.wait(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        for failures in 1..6 {
            let floor = policy.wait(failures, Some(Duration::ZERO));
            let step = (policy.base_delay * 2u32.pow(failures - 1)).min(policy.max_delay);
            assert!(floor >= step / 2 && floor <= step, "{failures}: {floor:?}");
        }
    }

    #[test]
    fn a_targeted_scan_batches_tickers_and_reads_each_scope_once() {
        let mut watched = Watchlist::of_tickers((0..250).map(|i| format!("T-{i:03}")));
        watched.events.insert("EV-1".into());
        watched.series.insert("SER".into());
        let listings = targeted_listings(&watched);
        let names: Vec<&str> = listings.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [
                "tickers",
                "tickers",
                "tickers",
                "event_ticker",
                "series_ticker"
            ]
        );
        let sizes: Vec<usize> = listings[..3]
            .iter()
            .map(|(_, value)| value.split(',').count())
            .collect();
        assert_eq!(sizes, [100, 100, 50]);
        assert_eq!(listings[3].1, "EV-1");
        assert_eq!(listings[4].1, "SER");
        assert!(targeted_listings(&Watchlist::default()).is_empty());
    }

    #[test]
    fn base_urls_are_checked() {
        assert_eq!(
            check_base_url(" http://127.0.0.1:8080/trade-api/v2/ ").unwrap(),
            "http://127.0.0.1:8080/trade-api/v2"
        );
        for bad in [
            "",
            "  ",
            "http://",
            "ftp://x/y",
            "http://u:pw@h/v2",
            "http://h/v2?token=1",
            "h/v2",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad:?} was accepted");
        }
        for leaky in [
            "http://u:S3CRET@h/v2",
            "ftp://:S3CRET@h",
            "http://:S3CRET@",
            "http://u:S3CRET@h:99999/v2",
            "http://u:S3CRET@exa mple/",
            "u:S3CRET@h",
            "http://127.0.0.1:9/v2?token=S3CRET",
            "http://127.0.0.1:9/v2#S3CRET",
            "http://127.0.0.1:99999/v2?token=S3CRET",
        ] {
            let err = check_base_url(leaky).unwrap_err();
            assert!(!err.contains("S3CRET"), "{leaky}: {err}");
        }
    }
}

#[cfg(test)]
mod server_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use kalshi_test_server::{fixtures, Fault, Scenario, TestServer};

    use super::*;

    /// A client that reads every page: these tests are about paging.
    fn client(server: &TestServer, page_limit: u32) -> KalshiClient {
        let mut config = ClientConfig::new(server.base_url());
        config.page_limit = page_limit;
        config.scan = ScanMode::Full;
        KalshiClient::new(config).unwrap()
    }

    /// A targeted scan whose event listing the API refuses still reads the
    /// ticker batch; one whose every listing is refused fails.
    #[tokio::test]
    async fn a_refused_listing_costs_only_its_own_conditions() {
        let markets = fixtures::legacy_markets();
        let ticker = markets[0]["ticker"].as_str().unwrap().to_string();
        let mut watched = Watchlist::of_tickers([ticker.clone()]);
        watched.events.insert("GONE-1".into());
        let refused = Fault::Status {
            code: 400,
            retry_after: None,
        };
        let targeted = |server: &TestServer| {
            let mut config = ClientConfig::new(server.base_url());
            config.scan = ScanMode::Auto;
            KalshiClient::new(config).unwrap()
        };

        // Request 0 is the batch of tickers, request 1 the event's listing.
        let server =
            TestServer::start(Scenario::new(markets.clone()).fault_on_request(1, refused.clone()));
        let scan = targeted(&server).scan(&watched).await.unwrap();
        assert_eq!(scan.markets.keys().collect::<Vec<_>>(), [&ticker]);
        assert_eq!(server.requests().len(), 2);

        let server = TestServer::start(
            Scenario::new(markets)
                .fault_on_request(0, refused.clone())
                .fault_on_request(1, refused),
        );
        let err = targeted(&server).scan(&watched).await.unwrap_err();
        assert!(
            matches!(err, SourceError::Refused { status: 400, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn pages_are_paced_under_the_read_limit() {
        let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
        let mut client = client(&server, 40);

        client.set_rate(2);

        let started = Instant::now();
        let scan = client.scan(&Watchlist::default()).await.unwrap();
        let took = started.elapsed();

        // 232 open markets at 40 a page: 6 requests at 2 a second. A full
        // bucket lets the first two go at once; each later one waits for
        // its half second, however fast the server answers.
        assert_eq!(scan.pages, 6);
        assert_eq!(scan.markets_read, 232);
        assert!(
            took >= Duration::from_millis(2000),
            "6 requests in {took:?}"
        );
        let sent: Vec<Duration> = server
            .requests()
            .iter()
            .map(|request| request.received.duration_since(started))
            .collect();
        assert!(sent[1] < Duration::from_millis(400), "the burst: {sent:?}");
    }

    #[tokio::test]
    async fn a_scan_keeps_its_connections_open_for_the_next_pages() {
        let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
        let mut client = client(&server, 20);
        client.set_rate(1000);
        for _ in 0..2 {
            let scan = client.scan(&Watchlist::default()).await.unwrap();
            assert_eq!(scan.pages, 12);
        }
        let peers: HashSet<_> = server.requests().iter().map(|r| r.peer).collect();
        assert!(!peers.contains(&None), "the server saw every peer");
        // A page is read while the next one downloads: two connections at
        // most, kept from page to page and from scan to scan.
        assert!(
            peers.len() <= 2,
            "24 requests on {} connections",
            peers.len()
        );
    }

    #[tokio::test]
    async fn a_page_retried_keeps_the_request_made_ahead_for_the_next() {
        // Page 2 is cut off after its cursor, once the request for page 3
        // has gone out; it is asked for again, and page 3's request stands.
        let scenario =
            Scenario::new(fixtures::legacy_markets()).fault_on_request(1, Fault::ResetMidBody);
        let server = TestServer::start(scenario);
        let mut config = ClientConfig::new(server.base_url());
        config.page_limit = 40;
        config.scan = ScanMode::Full;
        config.retry.base_delay = Duration::from_millis(1);
        let mut client = KalshiClient::new(config).unwrap();
        let scan = client.scan(&Watchlist::default()).await.unwrap();
        assert_eq!((scan.pages, scan.markets_read), (6, 232));
        let requests = server.requests();
        let mut cursors: Vec<Option<&str>> = requests.iter().map(|r| r.param("cursor")).collect();
        let asked = cursors.len();
        cursors.sort();
        cursors.dedup();
        assert_eq!(
            (asked, cursors.len()),
            (7, 6),
            "six pages, one of them twice: {requests:?}"
        );
    }

    #[test]
    fn the_bucket_holds_one_second_of_requests_and_refills_at_the_rate() {
        let mut client = KalshiClient::new(ClientConfig::new("http://127.0.0.1:9")).unwrap();
        client.set_rate(20);
        let start = Instant::now();
        let slots: Vec<Duration> = (0..25)
            .map(|_| client.reserve_slot().saturating_duration_since(start))
            .collect();
        let gap = Duration::from_millis(50);
        for (i, slot) in slots.iter().enumerate() {
            let earliest = gap * (i.saturating_sub(19) as u32);
            assert!(
                *slot >= earliest && *slot < earliest + Duration::from_millis(20),
                "request {i} at {slot:?}, expected about {earliest:?}"
            );
        }
    }

    /// Answers every request with the same page, whose cursor never changes.
    fn endless_cursor_server() -> String {
        use std::io::{Read, Write};

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let body = r#"{"markets": [], "cursor": "same"}"#;
            for stream in listener.incoming().take(10) {
                let Ok(mut stream) = stream else { break };
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes());
            }
        });
        format!("http://{address}/trade-api/v2")
    }

    /// Answers one request with a page of one market, gzip-compressed if
    /// the request accepts it; hands back the request's head.
    fn gzip_server() -> (String, std::sync::mpsc::Receiver<String>) {
        use std::io::{Read, Write};

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (heads, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut request = [0u8; 4096];
            let read = stream.read(&mut request).unwrap_or(0);
            let head = String::from_utf8_lossy(&request[..read]).to_ascii_lowercase();
            let page = r#"{"cursor": "", "markets": [{"ticker": "ZIP-1",
                "yes_bid_dollars": "0.4100", "yes_ask_dollars": "0.4300"}]}"#;
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), Default::default());
            encoder.write_all(page.as_bytes()).unwrap();
            let body = encoder.finish().unwrap();
            let encoding = if head.contains("accept-encoding: gzip") {
                "content-encoding: gzip\r\n"
            } else {
                ""
            };
            let _ = heads.send(head);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{encoding}\
                 content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
            let _ = stream.write_all(&body);
        });
        (format!("http://{address}/trade-api/v2"), received)
    }

    #[tokio::test]
    async fn pages_are_asked_for_compressed_and_read_unpacked() {
        let (url, heads) = gzip_server();
        let mut config = ClientConfig::new(url);
        config.scan = ScanMode::Full;
        let mut client = KalshiClient::new(config).unwrap();
        let scan = client
            .scan(&Watchlist::of_tickers(["ZIP-1"]))
            .await
            .unwrap();
        assert!(heads.recv().unwrap().contains("accept-encoding: gzip"));
        let market = &scan.markets["ZIP-1"];
        assert_eq!(market.yes_bid, Some("0.41".parse().unwrap()));
    }

    #[tokio::test]
    async fn a_repeating_cursor_ends_the_scan_with_the_pages_read() {
        let mut config = ClientConfig::new(endless_cursor_server());
        config.scan = ScanMode::Full;
        let mut client = KalshiClient::new(config).unwrap();
        let scan = client.scan(&Watchlist::default()).await.unwrap();
        assert_eq!(
            scan.pages, 2,
            "the page that repeated its cursor is read, then no more"
        );
    }

    #[tokio::test]
    async fn a_looping_cursor_keeps_the_markets_read_before_it_repeats() {
        let scenario =
            Scenario::new(fixtures::legacy_markets()).fault_on_request(0, Fault::RepeatingCursor);
        let server = TestServer::start(scenario);
        let mut client = client(&server, 1000);
        let watched = Watchlist::of_tickers(["EUCLIMATE-2030"]);
        let scan = client.scan(&watched).await.unwrap();
        assert_eq!(scan.pages, 2);
        assert!(scan.markets.contains_key("EUCLIMATE-2030"));
        assert_eq!(server.requests().len(), 2);
    }

    /// `alerts add --event` counts a scope with this: a listing that loops
    /// must neither count a market twice nor claim to be complete.
    #[tokio::test]
    async fn a_lookup_over_a_looping_cursor_counts_each_market_once_and_says_there_may_be_more() {
        let markets = fixtures::legacy_markets();
        let scenario = Scenario::new(markets.clone()).fault_on_request(0, Fault::RepeatingCursor);
        let server = TestServer::start(scenario);
        let (found, more) = client(&server, 1000)
            .find_markets(&[], usize::MAX, |_| true, |_, _| {})
            .await
            .unwrap();
        let open = markets.iter().filter(|m| m["status"] == "active").count();
        assert_eq!(server.requests().len(), 2);
        assert_eq!(found.len(), open);
        assert!(more);
    }

    /// Answers every request with a page of one market and a cursor never
    /// sent before; counts the requests.
    fn fresh_cursor_server() -> (String, Arc<AtomicUsize>) {
        use std::io::{Read, Write};

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&count);
        std::thread::spawn(move || {
            for stream in listener.incoming().take(200) {
                let Ok(mut stream) = stream else { break };
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let number = counted.fetch_add(1, Ordering::SeqCst) + 1;
                let body = format!(
                    r#"{{"markets": [{{"ticker": "NEW-{number}", "event_ticker": "NEW",
                        "yes_bid_dollars": "0.4100", "yes_ask_dollars": "0.4300"}}],
                        "cursor": "c{number}"}}"#
                );
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes());
            }
        });
        (format!("http://{address}/trade-api/v2"), count)
    }

    /// A cursor that names a new page for ever: a batch of tickers ends
    /// once it has sent every ticker asked for (complete) or as many other
    /// markets (not complete: the server ignored the filter), any other
    /// listing after `max_listing_pages`: an event's is named unread, a
    /// full listing leaves the scan incomplete.
    #[tokio::test]
    async fn a_cursor_that_never_ends_is_followed_only_so_far() {
        let (url, requests) = fresh_cursor_server();
        let mut config = ClientConfig::new(url.clone());
        config.max_listing_pages = 7;
        let mut client = KalshiClient::new(config).unwrap();
        let scan = client
            .scan(&Watchlist::of_tickers(["NEW-1"]))
            .await
            .unwrap();
        assert_eq!(requests.load(Ordering::SeqCst), 1);
        assert!(scan.complete && scan.markets.contains_key("NEW-1"));
        let scan = client
            .scan(&Watchlist::of_tickers(["OTHER-1"]))
            .await
            .unwrap();
        assert_eq!(requests.load(Ordering::SeqCst), 2);
        assert!(!scan.complete);

        let mut watched = Watchlist::default();
        watched.events.insert("NEW".into());
        let scan = client.scan(&watched).await.unwrap();
        assert_eq!(requests.load(Ordering::SeqCst), 2 + 7);
        assert_eq!(scan.markets.len(), 7);
        assert!(scan.complete && scan.unread_events.contains("NEW"));

        let mut config = ClientConfig::new(url);
        config.max_listing_pages = 4;
        config.scan = ScanMode::Full;
        let scan = KalshiClient::new(config)
            .unwrap()
            .scan(&watched)
            .await
            .unwrap();
        assert_eq!(requests.load(Ordering::SeqCst), 2 + 7 + 4);
        assert_eq!(scan.pages, 4);
        assert!(!scan.complete);
    }

    #[tokio::test]
    async fn a_full_listing_read_to_its_end_is_complete_combos_left_out_or_not() {
        let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
        let scan = client(&server, 100)
            .scan(&Watchlist::default())
            .await
            .unwrap();
        assert!(scan.pages > 1 && scan.complete);
        let mut skipping = client(&server, 100);
        skipping.set_scan(ScanMode::Full, true);
        assert!(skipping.scan(&Watchlist::default()).await.unwrap().complete);
        let mut limited = ClientConfig::new(server.base_url());
        limited.page_limit = 100;
        limited.scan = ScanMode::Full;
        limited.max_pages = Some(1);
        let scan = KalshiClient::new(limited)
            .unwrap()
            .scan(&Watchlist::default())
            .await
            .unwrap();
        assert!(scan.truncated && !scan.complete);
    }

    #[tokio::test]
    async fn empty_pages_with_a_cursor_are_followed_but_not_for_ever() {
        let few =
            Scenario::new(fixtures::legacy_markets()).fault_on_request(0, Fault::EmptyPages(3));
        let server = TestServer::start(few);
        let scan = client(&server, 1000)
            .scan(&Watchlist::default())
            .await
            .unwrap();
        assert_eq!((scan.pages, scan.markets_read), (4, 232));

        let endless = Scenario::new(fixtures::legacy_markets())
            .fault_on_request(0, Fault::EmptyPages(usize::MAX));
        let server = TestServer::start(endless);
        let scan = client(&server, 1000)
            .scan(&Watchlist::default())
            .await
            .unwrap();
        assert_eq!(
            (scan.pages, scan.markets_read),
            (MAX_EMPTY_PAGES_IN_A_ROW, 0)
        );
        assert_eq!(server.requests().len(), MAX_EMPTY_PAGES_IN_A_ROW);
    }
}
