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
    /// If a [`Fault::Status`] code is not a valid HTTP status code (100..=999) or its
    /// `retry_after` is not printable ASCII.
    pub fn fault_on_request(mut self, index: usize, fault: Fault) -> Self {
        if let Fault::Status { code, retry_after } = &fault {
            assert!(
                (100..=999).contains(code),
                "{code} is not an HTTP status code"
            );
            let printable =
                |value: &String| value.bytes().all(|byte| (b' '..=b'~').contains(&byte));
            assert!(
                retry_after.as_ref().is_none_or(printable),
                "Retry-After {retry_after:?} is not a valid header value"
            );
        }
        self.faults.insert(index, fault);
        self
    }

    /// The number of frames (scans with distinct market lists).
    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }
}
