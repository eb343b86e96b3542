//! What a [`TestServer`](crate::TestServer) serves: frames of market lists, one per scan, and
//! faults injected at given request indices.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// A scripted run of the `/markets` endpoint.
///
/// Frame N is the full market list served during the N-th scan (0-based); a scan is started by
/// each `GET /markets` request without a cursor. After the last frame the server keeps serving
/// the last one.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub(crate) frames: Vec<Vec<Value>>,
    pub(crate) faults: BTreeMap<usize, Fault>,
}

/// A failure injected in place of (or before) the normal answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (e.g. 429, 500, 503), an optional `Retry-After` header value
    /// (e.g. `"1"`) and a small JSON error body.
    Status {
        /// HTTP status code, 100..=999.
        code: u16,
        /// Value of the `Retry-After` header, sent only when present.
        retry_after: Option<String>,
    },
    /// Wait this long before answering normally, to trip client timeouts. Other requests are
    /// served meanwhile.
    Delay(Duration),
    /// Answer 200 with a body that is not valid JSON (a page cut off mid-market).
    MalformedBody,
    /// Answer 200 with an HTML page instead of JSON, as a proxy or maintenance page would.
    NotJson,
    /// Answer with this status and a `Retry-After` HTTP date `wait` after the moment of
    /// answering. The date has whole seconds, so a client sees a wait between `wait` minus one
    /// second and `wait`.
    RetryAfterDate {
        /// HTTP status code, 100..=999.
        code: u16,
        /// How far ahead of the answer the date is.
        wait: Duration,
    },
    /// Send the status line, the headers (with the `Content-Length` of the whole page) and the
    /// first half of the normal page, then drop the connection.
    ResetMidBody,
    /// Answer with the normal first page of the current frame, without starting a scan, but
    /// with a cursor that leads back to the same page: following it gets that page and that
    /// cursor again, for ever.
    RepeatingCursor,
    /// Answer with no markets and a cursor. Following it gets `count - 1` more such empty
    /// pages, then the real first page of a new scan. A huge `count` never ends.
    EmptyPages(usize),
    /// Answer 200 with this text as a JSON body, whatever it holds: a page of the wrong shape
    /// (`{"markets": {}}`), or one whose markets and cursor the test chose.
    Page(String),
}

impl Scenario {
    /// Starts a scenario whose frame 0 (the first scan) serves `markets`.
    pub fn new(markets: Vec<Value>) -> Self {
        Scenario {
            frames: vec![markets],
            faults: BTreeMap::new(),
        }
    }

    /// Adds a further frame: the full market list served during the next scan.
    pub fn then(mut self, markets: Vec<Value>) -> Self {
        self.frames.push(markets);
        self
    }

    /// Injects `fault` for the request with this 0-based index, counting every request the
    /// server receives (any path, faulted or not). A later fault for the same index replaces
    /// the earlier one.
    ///
    /// # Panics
    /// If the fault is not one a server can send: see [`Fault::check`].
    pub fn fault_on_request(mut self, index: usize, fault: Fault) -> Self {
        fault.check();
        self.faults.insert(index, fault);
        self
    }

    /// The number of frames (scans with distinct market lists).
    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }
}

impl Fault {
    /// Panics if the fault cannot be sent: a status code outside 100..=999, a `retry_after`
    /// that is not printable ASCII, or [`Fault::EmptyPages`] of none.
    pub(crate) fn check(&self) {
        match self {
            Fault::Status { code, retry_after } => {
                check_status(*code);
                let printable =
                    |value: &String| value.bytes().all(|byte| (b' '..=b'~').contains(&byte));
                assert!(
                    retry_after.as_ref().is_none_or(printable),
                    "Retry-After {retry_after:?} is not a valid header value"
                );
            }
            Fault::RetryAfterDate { code, .. } => check_status(*code),
            Fault::EmptyPages(count) => assert!(*count > 0, "EmptyPages needs at least one page"),
            _ => {}
        }
    }
}

fn check_status(code: u16) {
    assert!(
        (100..=999).contains(&code),
        "{code} is not an HTTP status code"
    );
}
