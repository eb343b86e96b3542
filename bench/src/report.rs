//! Figures over several runs and the tables they are printed in.

use std::fmt::Write as _;

/// Minimum, median and maximum of some runs' figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    /// `None` when there are no figures.
    pub fn of(figures: &[f64]) -> Option<Spread> {
        let mut sorted = figures.to_vec();
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        let median = match sorted.len() {
            0 => return None,
            n if n % 2 == 1 => sorted[middle],
            _ => (sorted[middle - 1] + sorted[middle]) / 2.0,
        };
        Some(Spread {
            min: sorted[0],
            median,
            max: sorted[sorted.len() - 1],
        })
    }

    /// `min / median / max` with `decimals` fraction digits.
    pub fn show(&self, decimals: usize) -> String {
        format!(
            "{:.d$} / {:.d$} / {:.d$}",
            self.min,
            self.median,
            self.max,
            d = decimals
        )
    }
}

/// Whether a row meets its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// The row could not be measured (its notes say why): printed as `not measured`, never as a
    /// missed target, which is a measured figure past its target.
    Unmeasured,
    /// The row has no target of its own (it is there to explain the others).
    None,
}

impl Verdict {
    pub fn from(met: bool) -> Verdict {
        if met {
            Verdict::Met
        } else {
            Verdict::Missed
        }
    }

    fn word(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "MISSED",
            Verdict::Unmeasured => "not measured",
            Verdict::None => "",
        }
    }
}

/// One row of the main table.
#[derive(Debug, Clone)]
pub struct Row {
    pub work: String,
    /// `--rate` of the monitor, when it made requests.
    pub rate: Option<u32>,
    pub runs: usize,
    /// What was timed, in milliseconds.
    pub wall_ms: Option<Spread>,
    /// Peak resident memory, MiB.
    pub rss_mib: Option<Spread>,
    /// The curl bound over the same pages, in milliseconds.
    pub curl_ms: Option<Spread>,
    /// Other figures, `name value` each.
    pub notes: Vec<String>,
    pub target: String,
    pub verdict: Verdict,
}

impl Row {
    pub fn new(work: impl Into<String>, target: impl Into<String>) -> Row {
        Row {
            work: work.into(),
            rate: None,
            runs: 0,
            wall_ms: None,
            rss_mib: None,
            curl_ms: None,
            notes: Vec::new(),
            target: target.into(),
            verdict: Verdict::None,
        }
    }

    /// The median time over the median curl time, when both were measured.
    pub fn curl_ratio(&self) -> Option<f64> {
        Some(self.wall_ms?.median / self.curl_ms?.median)
    }
}

/// The rows as a Markdown table, each row's extra figures in its last column.
pub fn rows_table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "| work | rate | runs | wall ms (min / median / max) | peak RSS MiB (min / median / max) \
         | curl ms (min / median / max) | / curl | target | verdict | other figures |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for row in rows {
        let rate = row.rate.map_or(String::new(), |r| r.to_string());
        let wall = row.wall_ms.map_or(String::new(), |s| s.show(1));
        let rss = row.rss_mib.map_or(String::new(), |s| s.show(1));
        let curl = row.curl_ms.map_or(String::new(), |s| s.show(1));
        let ratio = row
            .curl_ratio()
            .map_or(String::new(), |r| format!("{r:.2}"));
        let _ = writeln!(
            out,
            "| {} | {rate} | {} | {wall} | {rss} | {curl} | {ratio} | {} | {} | {} |",
            row.work,
            row.runs,
            row.target,
            row.verdict.word(),
            row.notes.join("; ")
        );
    }
    out
}

/// One cell of the markets by conditions table.
#[derive(Debug, Clone)]
pub struct Cell {
    pub markets: usize,
    pub conditions: usize,
    pub full_wall_ms: Option<Spread>,
    pub full_rss_mib: Option<Spread>,
    pub scan_ms: Option<Spread>,
    pub evaluate_us: Option<Spread>,
    /// The cycle past its scan and evaluation (state commit, delivery).
    pub rest_ms: Option<Spread>,
    pub auto_wall_ms: Option<Spread>,
    pub auto_requests: u64,
    /// Both scans were measured (a failed one shows `-`).
    pub measured: bool,
}

/// The cells as a Markdown table: one line per cell, medians with their range.
pub fn matrix_table(cells: &[Cell]) -> String {
    let mut out = String::new();
    out.push_str(
        "| markets | conditions | full: wall ms | full: peak RSS MiB | full: scan_ms \
         | full: evaluate_us | full: rest of the cycle ms | auto: wall ms | auto: requests |\n",
    );
    out.push_str("|---:|---:|---|---|---|---|---|---|---:|\n");
    let show = |s: Option<Spread>, d: usize| s.map_or("-".to_string(), |s| s.show(d));
    for cell in cells {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            thousands(cell.markets),
            thousands(cell.conditions),
            show(cell.full_wall_ms, 1),
            show(cell.full_rss_mib, 1),
            show(cell.scan_ms, 0),
            show(cell.evaluate_us, 0),
            show(cell.rest_ms, 0),
            show(cell.auto_wall_ms, 1),
            cell.auto_requests
        );
    }
    out
}

/// `20000` as `20,000`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let spread = Spread::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((spread.min, spread.median, spread.max), (1.0, 2.5, 4.0));
        assert_eq!(Spread::of(&[]), None);
    }

    #[test]
    fn large_counts_are_grouped_by_thousands() {
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(10), "10");
    }
}
