//! A loopback HTTP server that speaks Kalshi's public `GET /trade-api/v2/markets` endpoint from
//! recorded data, for the integration tests of `kalshi-alerts`.
//!
//! A [`Scenario`] lists *frames*: the full market list served during each scan (a scan begins
//! with a `GET /markets` request without a cursor), so tests can script quote changes between
//! scan cycles. It can also inject a [`Fault`] for a given request. [`TestServer::start`] runs
//! it on `127.0.0.1` in a background thread, so plain `#[test]` functions can use it:
//!
//! ```
//! use kalshi_test_server::{fixtures, Fault, Scenario, TestServer};
//!
//! let mut moved = fixtures::legacy_markets();
//! fixtures::set_yes_quote(&mut moved[0], "0.60", "0.62");
//! let scenario = Scenario::new(fixtures::legacy_markets())
//!     .then(moved)
//!     .fault_on_request(0, Fault::Status { code: 429, retry_after: Some("1".into()) });
//! let server = TestServer::start(scenario);
//! assert!(server.base_url().starts_with("http://127.0.0.1:"));
//! server.shutdown();
//! ```

mod api;
mod decimal;
pub mod fixtures;
mod scenario;
mod server;

#[cfg(test)]
mod http_tests;

pub use api::RecordedRequest;
pub use scenario::{Fault, Scenario};
pub use server::TestServer;
