//! The daemon's resident memory: samples read from `/proc/PID/status`, their summary, and the
//! verdict on whether it stayed flat.
//!
//! Two figures are kept: `VmRSS`, all resident memory, and `RssAnon`, its anonymous part
//! (the heap and thread stacks), where a leak would show. The rest of `VmRSS` is mostly the
//! binary's own code, paged in as code paths run for the first time (a rare fault, a
//! retry after a restart), so it creeps up for a while without anything leaking.
//!
//! Memory is judged on the last daemon of the run only, since a restart starts from nothing.
//! Its first minute (or first third, if it lived less than three) is warm-up: the allocator,
//! SQLite's page cache and the HTTP client's pools fill then. After it, the median of the
//! last quarter of the samples is compared with the median of the first quarter.

use std::path::Path;

/// One reading of a daemon's resident set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds since the soak started.
    pub at: f64,
    pub pid: u32,
    pub rss_kib: u64,
    pub anon_kib: u64,
}

/// Which figure of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Rss,
    Anon,
}

impl Measure {
    pub fn name(self) -> &'static str {
        match self {
            Measure::Rss => "VmRSS",
            Measure::Anon => "RssAnon",
        }
    }

    fn of(self, sample: &Sample) -> u64 {
        match self {
            Measure::Rss => sample.rss_kib,
            Measure::Anon => sample.anon_kib,
        }
    }
}

/// The `VmRSS` and `RssAnon` of a live process, in KiB; `None` once it is gone.
pub fn read(pid: u32) -> Option<(u64, u64)> {
    let status =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((field("VmRSS:")?, field("RssAnon:")?))
}

/// Smallest, median and largest of some samples, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    pub count: usize,
    pub min: u64,
    pub median: u64,
    pub max: u64,
}

pub fn spread(samples: &[Sample], measure: Measure) -> Option<Spread> {
    let mut values: Vec<u64> = samples.iter().map(|s| measure.of(s)).collect();
    values.sort_unstable();
    Some(Spread {
        count: values.len(),
        min: *values.first()?,
        median: median(&values)?,
        max: *values.last()?,
    })
}

fn median(sorted: &[u64]) -> Option<u64> {
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2),
    }
}

/// Memory may grow this much, in percent of the early median, and still count as flat...
pub const TOLERANCE_PERCENT: u64 = 10;
/// ...or this much in KiB, whichever is larger: a few MiB is allocator noise at this size.
pub const TOLERANCE_KIB: u64 = 2048;

/// Warm-up is at most this long.
const WARM_UP_SECS: f64 = 60.0;

/// Whether the last daemon's memory stayed flat, and the figures that say so.
#[derive(Debug, Clone, PartialEq)]
pub struct Flatness {
    /// Seconds of samples judged (after warm-up).
    pub window_secs: f64,
    pub samples: usize,
    pub early_median: u64,
    pub late_median: u64,
    /// Least-squares slope over the window, in KiB per minute.
    pub slope_kib_per_min: f64,
    pub allowed_growth: u64,
    pub flat: bool,
}

impl Flatness {
    pub fn growth_kib(&self) -> i64 {
        self.late_median as i64 - self.early_median as i64
    }
}

/// Judges one figure of the samples of one daemon, in time order. `None` when there are too
/// few samples after warm-up to say (fewer than eight).
pub fn flatness(samples: &[Sample], measure: Measure) -> Option<Flatness> {
    let first = samples.first()?.at;
    let last = samples.last()?.at;
    let warm_up = WARM_UP_SECS.min((last - first) / 3.0);
    let judged: Vec<Sample> = samples
        .iter()
        .filter(|s| s.at >= first + warm_up)
        .copied()
        .collect();
    if judged.len() < 8 {
        return None;
    }
    let quarter = judged.len() / 4;
    let sorted_median = |part: &[Sample]| {
        let mut values: Vec<u64> = part.iter().map(|s| measure.of(s)).collect();
        values.sort_unstable();
        median(&values)
    };
    let early_median = sorted_median(&judged[..quarter])?;
    let late_median = sorted_median(&judged[judged.len() - quarter..])?;
    let allowed_growth = TOLERANCE_KIB.max(early_median * TOLERANCE_PERCENT / 100);
    Some(Flatness {
        window_secs: judged.last()?.at - judged.first()?.at,
        samples: judged.len(),
        early_median,
        late_median,
        slope_kib_per_min: slope(&judged, measure) * 60.0,
        allowed_growth,
        flat: late_median <= early_median + allowed_growth,
    })
}

/// Least-squares slope of the figure over time, in KiB per second.
fn slope(samples: &[Sample], measure: Measure) -> f64 {
    let n = samples.len() as f64;
    let mean_t = samples.iter().map(|s| s.at).sum::<f64>() / n;
    let mean_r = samples.iter().map(|s| measure.of(s) as f64).sum::<f64>() / n;
    let (mut covariance, mut variance) = (0.0, 0.0);
    for s in samples {
        covariance += (s.at - mean_t) * (measure.of(s) as f64 - mean_r);
        variance += (s.at - mean_t).powi(2);
    }
    if variance == 0.0 {
        0.0
    } else {
        covariance / variance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(rss: impl Fn(f64) -> u64, secs: u32) -> Vec<Sample> {
        (0..secs / 2)
            .map(|i| {
                let at = f64::from(i * 2);
                Sample {
                    at,
                    pid: 1,
                    rss_kib: rss(at),
                    anon_kib: rss(at) / 4,
                }
            })
            .collect()
    }

    #[test]
    fn reads_this_process_rss() {
        let (rss, anon) = read(std::process::id()).unwrap();
        assert!(rss > 100 && anon > 0 && anon < rss, "{rss} {anon}");
        assert_eq!(read(u32::MAX), None);
    }

    #[test]
    fn steady_memory_after_warm_up_is_flat() {
        // Grows fast in the first minute, then wobbles.
        let rss = |at: f64| {
            if at < 60.0 {
                10_000 + at as u64 * 100
            } else {
                16_000 + (at as u64 % 7) * 50
            }
        };
        let verdict = flatness(&samples(rss, 600), Measure::Rss).unwrap();
        assert!(verdict.flat, "{verdict:?}");
        assert!(verdict.slope_kib_per_min.abs() < 10.0, "{verdict:?}");
    }

    #[test]
    fn steady_growth_is_not_flat() {
        // 1 MiB a minute: 9 MiB over the window, far above 10% of 16 MiB.
        let growing = samples(|at| 16_000 + (at * 1024.0 / 60.0) as u64, 600);
        let verdict = flatness(&growing, Measure::Rss).unwrap();
        assert!(!verdict.flat, "{verdict:?}");
        assert!(
            (verdict.slope_kib_per_min - 1024.0).abs() < 1.0,
            "{verdict:?}"
        );
        // A quarter of that (the anonymous part here) is 1.7 MiB between the quarters: within
        // the 2 MiB that allocator noise is allowed.
        let anon = flatness(&growing, Measure::Anon).unwrap();
        assert!(anon.flat && anon.growth_kib() > 1600, "{anon:?}");
    }

    #[test]
    fn too_few_samples_give_no_verdict() {
        assert_eq!(flatness(&samples(|_| 1000, 10), Measure::Rss), None);
        assert_eq!(flatness(&[], Measure::Anon), None);
    }

    #[test]
    fn spread_has_min_median_max() {
        let got = spread(&samples(|at| at as u64, 10), Measure::Rss).unwrap();
        assert_eq!((got.count, got.min, got.median, got.max), (5, 0, 4, 8));
        assert_eq!(spread(&[], Measure::Anon), None);
    }
}
