//! The failures a soak injects, drawn from a seed: which requests to the market server fail and
//! how, and how the webhook receiver answers each delivery.
//!
//! Each kind of failure is one row of a table with a weight, so a new kind (the test server
//! gains faults over time) is one more row.

use std::collections::BTreeMap;
use std::time::Duration;

use kalshi_test_server::Fault;
use rand::rngs::StdRng;
use rand::Rng;

use crate::receiver::Reply;

/// What the market server does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ApiFault {
    /// 429 with `Retry-After: 1`.
    TooManyRequests,
    /// 500, 502 or 503 without `Retry-After`.
    ServerError,
    /// Served late, within the client's timeout.
    Slow,
    /// Served later than the client's timeout, so it gives up and retries.
    TimedOut,
    /// A 200 whose body is cut off mid-market: the scan fails at once.
    Malformed,
    /// One of a run of 503s long enough to exhaust the client's retries: the scan fails.
    Outage,
}

impl ApiFault {
    /// The single faults and their weights; outages are drawn apart, as runs.
    const MIX: [(ApiFault, u32); 5] = [
        (ApiFault::TooManyRequests, 25),
        (ApiFault::ServerError, 35),
        (ApiFault::Slow, 15),
        (ApiFault::TimedOut, 10),
        (ApiFault::Malformed, 15),
    ];

    pub fn name(self) -> &'static str {
        match self {
            ApiFault::TooManyRequests => "429 Retry-After 1",
            ApiFault::ServerError => "500/502/503",
            ApiFault::Slow => "slow (0.5-2 s)",
            ApiFault::TimedOut => "slower than the timeout",
            ApiFault::Malformed => "malformed JSON",
            ApiFault::Outage => "outage (6 x 503)",
        }
    }

    /// The test server's fault for this kind; `timeout` is the client's request timeout.
    fn to_fault(self, rng: &mut StdRng, timeout: Duration) -> Fault {
        let status = |code| Fault::Status {
            code,
            retry_after: None,
        };
        match self {
            ApiFault::TooManyRequests => Fault::Status {
                code: 429,
                retry_after: Some("1".into()),
            },
            ApiFault::ServerError => status([500, 502, 503][rng.random_range(0..3)]),
            ApiFault::Slow => Fault::Delay(Duration::from_millis(rng.random_range(500..=2000))),
            ApiFault::TimedOut => Fault::Delay(timeout + Duration::from_secs(1)),
            ApiFault::Malformed => Fault::MalformedBody,
            ApiFault::Outage => status(503),
        }
    }
}

/// How many requests in a row an outage answers with 503: more than the client's five
/// attempts per page, so that one scan fails for good.
const OUTAGE_LENGTH: usize = 6;

/// The faults for the first `requests` requests to the market server: each request is
/// faulted with probability `rate`, and about one in `outage_every` starts an outage.
pub struct ApiPlan {
    pub faults: BTreeMap<usize, (ApiFault, Fault)>,
}

impl ApiPlan {
    pub fn draw(
        rng: &mut StdRng,
        requests: usize,
        rate: f64,
        outage_every: usize,
        timeout: Duration,
    ) -> ApiPlan {
        let mut faults = BTreeMap::new();
        let mut index = 0;
        while index < requests {
            if outage_every > 0 && rng.random_range(0..outage_every) == 0 {
                for offset in 0..OUTAGE_LENGTH {
                    let fault = ApiFault::Outage.to_fault(rng, timeout);
                    faults.insert(index + offset, (ApiFault::Outage, fault));
                }
                index += OUTAGE_LENGTH;
                continue;
            }
            if rng.random_bool(rate) {
                let kind = pick(rng, &ApiFault::MIX);
                faults.insert(index, (kind, kind.to_fault(rng, timeout)));
            }
            index += 1;
        }
        ApiPlan { faults }
    }

    /// How many of the first `served` requests were faulted, by kind.
    pub fn served(&self, served: usize) -> BTreeMap<ApiFault, usize> {
        let mut counts = BTreeMap::new();
        for (kind, _) in self.faults.range(..served).map(|(_, fault)| fault) {
            *counts.entry(*kind).or_default() += 1;
        }
        counts
    }
}

/// How the webhook receiver answers one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HookReply {
    Ok,
    /// 503 without `Retry-After`.
    Busy,
    /// 503 with `Retry-After: 1`.
    BusyRetryAfter,
    /// 500.
    ServerError,
    /// 429 with `Retry-After: 2`.
    TooManyRequests,
    /// 200, but later than the instance's timeout: the receiver has the alert, the daemon sees
    /// a timeout and delivers it again.
    LateOk,
    /// 200 after a second, within the timeout.
    SlowOk,
}

impl HookReply {
    const FAILURES: [(HookReply, u32); 6] = [
        (HookReply::Busy, 30),
        (HookReply::BusyRetryAfter, 15),
        (HookReply::ServerError, 15),
        (HookReply::TooManyRequests, 10),
        (HookReply::LateOk, 15),
        (HookReply::SlowOk, 15),
    ];

    pub fn name(self) -> &'static str {
        match self {
            HookReply::Ok => "200",
            HookReply::Busy => "503",
            HookReply::BusyRetryAfter => "503 Retry-After 1",
            HookReply::ServerError => "500",
            HookReply::TooManyRequests => "429 Retry-After 2",
            HookReply::LateOk => "200 after the timeout",
            HookReply::SlowOk => "200 after 1 s",
        }
    }

    /// The receiver's reply; `timeout` is the webhook instance's timeout.
    pub fn to_reply(self, timeout: Duration) -> Reply {
        match self {
            HookReply::Ok => Reply::status(200).body("ok"),
            HookReply::Busy => Reply::status(503).body("busy"),
            HookReply::BusyRetryAfter => Reply::status(503).header("Retry-After", "1").body("busy"),
            HookReply::ServerError => Reply::status(500).body("broken"),
            HookReply::TooManyRequests => Reply::status(429)
                .header("Retry-After", "2")
                .body("slow down"),
            HookReply::LateOk => Reply::status(200)
                .body("ok")
                .after(timeout + Duration::from_secs(1)),
            HookReply::SlowOk => Reply::status(200).body("ok").after(Duration::from_secs(1)),
        }
    }
}

/// The receiver's replies in order of arrival: each one fails or is slow with probability
/// `rate`.
pub fn hook_replies(rng: &mut StdRng, count: usize, rate: f64) -> Vec<HookReply> {
    (0..count)
        .map(|_| {
            if rng.random_bool(rate) {
                pick(rng, &HookReply::FAILURES)
            } else {
                HookReply::Ok
            }
        })
        .collect()
}

/// One item of a weighted table.
fn pick<T: Copy>(rng: &mut StdRng, table: &[(T, u32)]) -> T {
    let total: u32 = table.iter().map(|(_, weight)| weight).sum();
    let mut ticket = rng.random_range(0..total);
    for (item, weight) in table {
        if ticket < *weight {
            return *item;
        }
        ticket -= weight;
    }
    unreachable!("the ticket is below the total weight")
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(3);

    #[test]
    fn a_seed_draws_the_same_plan_every_time() {
        let draw = || {
            let plan = ApiPlan::draw(&mut StdRng::seed_from_u64(7), 2000, 0.15, 200, TIMEOUT);
            plan.faults.into_iter().collect::<Vec<_>>()
        };
        assert_eq!(draw(), draw());
    }

    #[test]
    fn the_fault_rate_is_about_the_one_asked_for() {
        let plan = ApiPlan::draw(&mut StdRng::seed_from_u64(1), 10_000, 0.2, 0, TIMEOUT);
        let share = plan.faults.len() as f64 / 10_000.0;
        assert!((0.18..0.22).contains(&share), "{share}");
        assert!(!plan.served(10_000).contains_key(&ApiFault::Outage));
    }

    #[test]
    fn an_outage_is_a_run_longer_than_the_clients_attempts() {
        let plan = ApiPlan::draw(&mut StdRng::seed_from_u64(3), 5000, 0.0, 100, TIMEOUT);
        let outages = plan.served(5000)[&ApiFault::Outage];
        assert!(outages >= OUTAGE_LENGTH && outages.is_multiple_of(OUTAGE_LENGTH));
        let first = *plan.faults.keys().next().unwrap();
        assert!((first..first + OUTAGE_LENGTH).all(|i| plan.faults.contains_key(&i)));
    }

    #[test]
    fn a_late_reply_comes_after_the_timeout() {
        assert!(HookReply::LateOk.to_reply(TIMEOUT).delay > TIMEOUT);
        assert!(HookReply::SlowOk.to_reply(TIMEOUT).delay < TIMEOUT);
        let replies = hook_replies(&mut StdRng::seed_from_u64(5), 1000, 0.0);
        assert!(replies.iter().all(|reply| *reply == HookReply::Ok));
    }

    #[test]
    fn the_receiver_fails_about_as_often_as_asked() {
        let replies = hook_replies(&mut StdRng::seed_from_u64(7 ^ 0x400C), 10_000, 0.3);
        let failed = replies.iter().filter(|r| **r != HookReply::Ok).count();
        assert!((2800..3200).contains(&failed), "{failed}");
    }
}
