//! The markets a soak serves and the conditions it watches them with.
//!
//! The recorded demo markets are served as recorded, except a few watched ones whose quotes
//! (or volume) move one step per scan in a seeded walk chosen so that each condition keeps
//! firing: a midpoint that wanders around a level crosses it, a spread that swings goes over
//! its threshold. After the walk comes one quiet frame, served for the rest of the run, in
//! which nothing new holds, so that the outbox can drain to empty.

use kalshi_test_server::{fixtures, Scenario};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::Value;

/// How many recorded markets each frame serves (the watched ones are among them). Every frame is
/// held in memory for the whole run, so this bounds the soak's own footprint.
const SERVED: usize = 120;

/// How a watched market moves, one step per scan. Prices are whole cents (the recorded markets
/// are legacy ones, which quote in cents).
#[derive(Debug, Clone, Copy)]
enum Motion {
    /// The midpoint wanders around `center`, at most `step` cents a scan, pulled back when it
    /// strays; the spread is 2 cents.
    Wander { center: i64, step: i64 },
    /// The midpoint stays put, but jumps 5 to 8 cents one way or the other in about one scan
    /// in ten.
    Jumpy { center: i64 },
    /// The midpoint stays at `mid`; the spread swings between 2 and 9 cents.
    Swing { mid: i64 },
    /// Nothing moves.
    Still,
}

/// A watched market: how it moves, and the condition set on it.
struct Watched {
    ticker: &'static str,
    /// `kalshi alerts add` arguments: the kind, then what follows the ticker.
    kind: &'static str,
    args: &'static [&'static str],
    motion: Motion,
    /// The midpoint of the quiet frame, where the condition no longer holds; `None` keeps the
    /// last one.
    quiet_mid: Option<i64>,
}

/// The conditions: every kind, each repeat policy, and one routed to the webhook only.
const WATCHED: &[Watched] = &[
    Watched {
        ticker: "AITURING",
        kind: "crosses",
        args: &["--level", "0.5"],
        motion: Motion::Wander {
            center: 50,
            step: 3,
        },
        quiet_mid: Some(45),
    },
    Watched {
        ticker: "EUEXIT-30",
        kind: "crosses",
        args: &["--level", "0.3", "--repeat", "cooldown:15s"],
        motion: Motion::Wander {
            center: 30,
            step: 3,
        },
        quiet_mid: Some(25),
    },
    Watched {
        ticker: "EUCLIMATE-2030",
        kind: "price",
        args: &["--above", "0.6"],
        motion: Motion::Wander {
            center: 60,
            step: 2,
        },
        quiet_mid: Some(55),
    },
    Watched {
        ticker: "INDIACLIMATE-30",
        kind: "price",
        args: &["--below", "0.4", "--notify", "hook"],
        motion: Motion::Wander {
            center: 40,
            step: 2,
        },
        quiet_mid: Some(45),
    },
    Watched {
        ticker: "USCLIMATE-2025",
        kind: "price",
        args: &["--below", "0.2", "--repeat", "cooldown:30s"],
        motion: Motion::Wander {
            center: 12,
            step: 1,
        },
        quiet_mid: Some(25),
    },
    Watched {
        ticker: "NONCOMPETEBAN",
        kind: "spread",
        args: &["--above", "5", "--repeat", "cooldown:20s"],
        motion: Motion::Swing { mid: 54 },
        quiet_mid: Some(54),
    },
    Watched {
        ticker: "EVSHARE-30JAN-50",
        kind: "move",
        args: &["--by", "0.05"],
        motion: Motion::Jumpy { center: 30 },
        quiet_mid: None,
    },
    Watched {
        ticker: "USCLIMATE-2030",
        kind: "price",
        args: &["--above", "0.15", "--repeat", "once"],
        motion: Motion::Still,
        quiet_mid: None,
    },
];

/// The market whose volume grows, by 0 to 4 contracts a scan, and its recorded volume.
const VOLUME_TICKER: &str = "CHINAUSGDP-30";
const VOLUME_START: i64 = 1976;

/// One condition as the soak adds it, with what the checks need to know of it.
#[derive(Debug, Clone)]
pub struct ConditionPlan {
    /// `kalshi alerts add` arguments.
    pub add_args: Vec<String>,
    /// Its `--repeat` policy as written, `rearm` when not given.
    pub repeat: String,
}

/// The conditions, in the order they are added. The volume threshold depends on the walk's
/// length: the volume passes it about a third of the way through.
pub fn conditions(frames: usize) -> Vec<ConditionPlan> {
    let threshold = VOLUME_START + (frames as i64 / 3) * 2;
    let volume = ConditionPlan {
        add_args: ["volume", VOLUME_TICKER, "--above", &threshold.to_string()]
            .map(str::to_owned)
            .to_vec(),
        repeat: "rearm".into(),
    };
    WATCHED
        .iter()
        .map(|watched| {
            let mut add_args = vec![watched.kind.to_owned(), watched.ticker.to_owned()];
            add_args.extend(watched.args.iter().map(|arg| arg.to_string()));
            let repeat = watched
                .args
                .windows(2)
                .find(|pair| pair[0] == "--repeat")
                .map_or("rearm", |pair| pair[1]);
            ConditionPlan {
                add_args,
                repeat: repeat.into(),
            }
        })
        .chain([volume])
        .collect()
}

/// Where a watched market stands: bid and ask in cents, volume in contracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quote {
    bid: i64,
    ask: i64,
}

impl Quote {
    fn around(mid: i64, spread: i64) -> Quote {
        let bid = (mid - spread / 2).clamp(1, 98);
        let ask = (bid + spread).min(99);
        Quote { bid, ask }
    }

    fn mid(self) -> i64 {
        (self.bid + self.ask) / 2
    }
}

/// The walk: `frames` frames in which the watched markets move, then the quiet frame.
pub fn scenario(rng: &mut StdRng, frames: usize) -> Scenario {
    let recorded: Vec<Value> = fixtures::legacy_markets()
        .into_iter()
        .take(SERVED)
        .collect();
    let mut quotes: Vec<Quote> = WATCHED
        .iter()
        .map(|watched| starting_quote(&recorded, watched))
        .collect();
    let mut volume = VOLUME_START;

    let mut all = Vec::with_capacity(frames + 1);
    for _ in 0..frames {
        for (quote, watched) in quotes.iter_mut().zip(WATCHED) {
            *quote = step(rng, *quote, watched.motion);
        }
        volume += rng.random_range(0..=4);
        all.push(frame(&recorded, &quotes, volume));
    }
    let quiet: Vec<Quote> = quotes
        .iter()
        .zip(WATCHED)
        .map(|(quote, watched)| {
            watched
                .quiet_mid
                .map_or(*quote, |mid| Quote::around(mid, 2))
        })
        .collect();
    all.push(frame(&recorded, &quiet, volume));

    let mut frames = all.into_iter();
    let first = frames.next().expect("at least the quiet frame");
    frames.fold(Scenario::new(first), Scenario::then)
}

fn starting_quote(recorded: &[Value], watched: &Watched) -> Quote {
    let cents = |name| {
        recorded
            .iter()
            .find(|market| market["ticker"] == watched.ticker)
            .and_then(|market| market[name].as_i64())
            .unwrap_or_else(|| panic!("{} has no {name} in the recording", watched.ticker))
    };
    match watched.motion {
        Motion::Wander { center, .. } | Motion::Jumpy { center } => Quote::around(center, 2),
        Motion::Swing { mid } => Quote::around(mid, 2),
        Motion::Still => Quote {
            bid: cents("yes_bid"),
            ask: cents("yes_ask"),
        },
    }
}

/// One scan's move of one market.
fn step(rng: &mut StdRng, quote: Quote, motion: Motion) -> Quote {
    match motion {
        Motion::Wander { center, step } => {
            let mid = quote.mid();
            let pull = if (mid - center).abs() > 2 * step {
                (center - mid).signum()
            } else {
                0
            };
            let mid = mid + rng.random_range(-step..=step) + pull;
            Quote::around(mid.clamp(center - 15, center + 15).clamp(2, 98), 2)
        }
        Motion::Jumpy { center } => {
            if !rng.random_bool(0.1) {
                return quote;
            }
            let size = rng.random_range(5..=8);
            let mid = if quote.mid() > center {
                quote.mid() - size
            } else {
                quote.mid() + size
            };
            Quote::around(mid, 2)
        }
        Motion::Swing { mid } => Quote::around(mid, rng.random_range(2..=9)),
        Motion::Still => quote,
    }
}

/// The recorded markets with the watched ones at `quotes` and the volume market at `volume`.
fn frame(recorded: &[Value], quotes: &[Quote], volume: i64) -> Vec<Value> {
    let mut markets = recorded.to_vec();
    for market in &mut markets {
        let ticker = market["ticker"].as_str().unwrap_or_default().to_owned();
        if let Some(at) = WATCHED.iter().position(|w| w.ticker == ticker) {
            let quote = quotes[at];
            fixtures::set_yes_quote(market, &dollars(quote.bid), &dollars(quote.ask));
        } else if ticker == VOLUME_TICKER {
            fixtures::set_volume(market, &volume.to_string());
        }
    }
    markets
}

fn dollars(cents: i64) -> String {
    format!("0.{cents:02}")
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn every_watched_market_is_served_with_a_quote() {
        let recorded: Vec<Value> = fixtures::legacy_markets()
            .into_iter()
            .take(SERVED)
            .collect();
        for watched in WATCHED {
            let quote = starting_quote(&recorded, watched);
            assert!(0 < quote.bid && quote.bid < quote.ask && quote.ask < 100);
        }
        assert!(recorded.iter().any(|m| m["ticker"] == VOLUME_TICKER));
    }

    #[test]
    fn a_wandering_midpoint_crosses_its_level_again_and_again() {
        let mut rng = StdRng::seed_from_u64(11);
        let motion = Motion::Wander {
            center: 50,
            step: 3,
        };
        let mut quote = Quote::around(50, 2);
        let mut crossings = 0;
        for _ in 0..300 {
            let next = step(&mut rng, quote, motion);
            if (quote.mid() < 50) != (next.mid() < 50) {
                crossings += 1;
            }
            assert!((35..=65).contains(&next.mid()), "{next:?}");
            quote = next;
        }
        assert!(crossings > 15, "{crossings} crossings in 300 scans");
    }

    #[test]
    fn conditions_cover_every_kind_and_repeat_policy() {
        let plans = conditions(300);
        let kinds: std::collections::BTreeSet<&str> =
            plans.iter().map(|p| p.add_args[0].as_str()).collect();
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            ["crosses", "move", "price", "spread", "volume"]
        );
        for policy in ["rearm", "once", "cooldown:15s"] {
            assert!(plans.iter().any(|p| p.repeat == policy), "{policy}");
        }
        assert_eq!(plans.last().unwrap().add_args[3], "2176");
    }

    #[test]
    fn the_scenario_has_the_walk_then_the_quiet_frame() {
        let scenario = scenario(&mut StdRng::seed_from_u64(2), 10);
        assert_eq!(scenario.frame_count(), 11);
    }

    #[test]
    fn quotes_are_written_in_whole_cents() {
        assert_eq!(dollars(5), "0.05");
        assert_eq!(dollars(54), "0.54");
        assert_eq!(Quote::around(54, 9), Quote { bid: 50, ask: 59 });
        assert_eq!(Quote::around(1, 2), Quote { bid: 1, ask: 3 });
    }
}
