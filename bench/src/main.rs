//! `kalshi-bench`: times the `kalshi` binary against a loopback market server shaped like the
//! current Kalshi payload, with `curl` over the same pages as the bound, and prints each figure
//! as minimum, median and maximum over several runs beside the target it serves.
//!
//! It is a program, not a test, so `cargo test --workspace` never runs it (its unit tests do
//! run there). `scripts/bench` builds and runs it; docs/benchmarks.md records what it found.

mod conditions;
mod interrupt;
mod kalshi;
mod markets;
mod measure;
mod report;
mod rows;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

use markets::MarketSet;
use report::{Cell, Row, Spread, Verdict};
use rows::{
    rss_spread, wall_spread, Bench, ScanPlan, ScanRuns, DEFAULT_RATE, IDLE_INTERVAL, IDLE_SETTLE,
    UNPACED,
};
use server::{MarketServer, ServeOptions};

/// Times `kalshi` scans, listing and daemon against a loopback server of synthetic current-
/// generation markets, with curl over the same pages as the bound. Exits 0 when it could
/// measure every row asked for (whether or not the targets are met), 2 when it could not or
/// its arguments are refused; the table is printed either way. A SIGINT or SIGTERM stops the
/// daemons it started, removes its temporary work dir and exits 130 or 143.
#[derive(Debug, Parser)]
#[command(name = "kalshi-bench")]
struct Options {
    /// Timed runs of each row (after one untimed run), 1 to 100 [default: 10, 3 with --quick].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: Option<u32>,

    /// Three runs a row, one a cell, a 10 s idle wait: under a minute once built (the full
    /// run, ten runs a row and five a cell, takes two or three).
    #[arg(long)]
    quick: bool,

    /// Seconds the idle daemon is watched, 1 to 3540 (its next cycle is an hour after its
    /// first) [default: 30, 10 with --quick].
    #[arg(long, value_name = "SEC", value_parser = idle_seconds)]
    idle: Option<u64>,

    /// Cycles the daemon runs back to back while its memory is sampled, at least 10; memory is
    /// flat when its trend over the second half rises less than 384 KiB.
    #[arg(long, default_value_t = 1000, value_name = "N", value_parser = cycle_count)]
    cycles: u64,

    /// Also prepare gzipped pages, served to a client that asks for them, and time curl
    /// asking for gzip as a second bound.
    #[arg(long)]
    gzip: bool,

    /// Only these rows, comma-separated: start, full, rate20, skip, auto, list, daemon, idle,
    /// cycles, eval, full100k, matrix [default: all].
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "ROWS",
        value_parser = clap::builder::PossibleValuesParser::new(ROWS),
        hide_possible_values = true
    )]
    only: Option<Vec<String>>,

    /// Only serve this many markets on a loopback port, print its base URL and wait until
    /// standard input closes (Ctrl-D; exit status 0) or a SIGINT or SIGTERM comes (130, 143):
    /// for timing or profiling the client by hand. At least 1, and no more than fit in this
    /// machine's memory (about 3 KiB a market).
    #[arg(
        long,
        value_name = "MARKETS",
        value_parser = market_count,
        conflicts_with_all = ["only", "quick", "runs"]
    )]
    serve: Option<usize>,

    /// The kalshi binary [default: the one beside this program].
    #[arg(long, value_name = "PATH")]
    kalshi: Option<PathBuf>,

    /// The curl program.
    #[arg(long, default_value = "curl", value_name = "PATH")]
    curl: PathBuf,

    /// Work in this directory and keep it [default: a temporary one, removed at the end].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl Options {
    fn runs(&self) -> usize {
        self.runs.unwrap_or(if self.quick { 3 } else { 10 }) as usize
    }

    /// Runs of each cell of the markets by conditions table.
    fn cell_runs(&self) -> usize {
        if self.quick {
            1
        } else {
            self.runs().min(5)
        }
    }

    /// The idle watch; `--idle` is at least 1 s.
    fn idle(&self) -> Duration {
        Duration::from_secs(self.idle.unwrap_or(if self.quick { 10 } else { 30 }))
    }

    fn wants(&self, row: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|rows| rows.iter().any(|r| r == row))
    }
}

/// The rows `--only` names, in the order they are measured.
const ROWS: [&str; 12] = [
    "start", "full", "rate20", "skip", "auto", "list", "daemon", "idle", "cycles", "eval",
    "full100k", "matrix",
];

/// The longest `--idle`: a minute short of the idle daemon's interval, so that its settling,
/// its first cycle and the watch all end before its second cycle starts.
const MAX_IDLE: u64 = IDLE_INTERVAL - 60;

/// The fewest `--cycles`: the cycles row judges memory by its trend over the second half of
/// the cycles, which takes a few cycles there.
const MIN_CYCLES: u64 = 10;

/// Resident memory the market server holds per market served, in KiB, rounded up from what
/// `--serve 100000` holds (247 MB, 253 MB with `--gzip`).
const SERVED_KIB_PER_MARKET: u64 = 3;

/// `--idle`: seconds that measure something and end before the daemon's next cycle.
fn idle_seconds(text: &str) -> Result<u64, String> {
    let seconds: u64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number of seconds"))?;
    match seconds {
        0 => Err(format!(
            "watching the daemon for 0 s measures nothing; give 1 to {MAX_IDLE}"
        )),
        s if s > MAX_IDLE => Err(format!(
            "the idle daemon's second cycle starts {IDLE_INTERVAL} s after its first, and the \
             watch starts {} s after the first ends; give at most {MAX_IDLE}",
            IDLE_SETTLE.as_secs()
        )),
        s => Ok(s),
    }
}

/// `--cycles`: enough cycles for the row to judge.
fn cycle_count(text: &str) -> Result<u64, String> {
    let cycles: u64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number"))?;
    if cycles < MIN_CYCLES {
        return Err(format!(
            "memory is judged by its trend over the second half of the cycles; give at \
             least {MIN_CYCLES}"
        ));
    }
    Ok(cycles)
}

/// `--serve`: a count of markets that fits in this machine's memory.
fn market_count(text: &str) -> Result<usize, String> {
    let markets: usize = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number of markets"))?;
    servable(markets, measure::machine_memory_kib())?;
    Ok(markets)
}

/// Whether `markets` can be served on a machine of `memory_kib` (unknown: no ceiling).
fn servable(markets: usize, memory_kib: Option<u64>) -> Result<(), String> {
    if markets == 0 {
        return Err("0 markets serve nothing; give at least 1".into());
    }
    let Some(memory_kib) = memory_kib else {
        return Ok(());
    };
    let needed_kib = (markets as u64).saturating_mul(SERVED_KIB_PER_MARKET);
    if needed_kib > memory_kib {
        let gib = |kib: u64| kib as f64 / 1024.0 / 1024.0;
        return Err(format!(
            "serving {markets} markets takes about {:.1} GiB, more than this machine's {:.1} \
             GiB; give at most {}",
            gib(needed_kib),
            gib(memory_kib),
            memory_kib / SERVED_KIB_PER_MARKET
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|first| first == measure::HELPER) {
        // The harness that started the helper blocks SIGINT and SIGTERM; what it measures
        // must not inherit that.
        if let Err(e) = interrupt::unblock() {
            eprintln!("kalshi-bench: cannot unblock SIGINT and SIGTERM: {e}");
            return ExitCode::from(2);
        }
        return measure::helper(&args[1..]);
    }
    // Before any thread starts, so that only the signal thread takes SIGINT and SIGTERM.
    if let Err(e) = interrupt::block() {
        eprintln!("kalshi-bench: cannot block SIGINT and SIGTERM: {e}");
        return ExitCode::from(2);
    }
    let options = Options::parse();
    match bench(&options) {
        Ok(status) => ExitCode::from(status),
        Err(message) => {
            eprintln!("kalshi-bench: {message}");
            ExitCode::from(2)
        }
    }
}

/// Measures the rows asked for and prints them; the exit status is [`exit_status`]'s.
fn bench(options: &Options) -> Result<u8, String> {
    if let Some(markets) = options.serve {
        return serve_only(markets, options.gzip);
    }
    // A signal stops the daemons started, removes the temporary work dir and exits 130 or 143.
    interrupt::on_signal(|signal| interrupt::stop_and_exit(signal))
        .map_err(|e| format!("cannot wait for signals: {e}"))?;
    let started = Instant::now();
    let kalshi = match &options.kalshi {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find this program: {e}"))?
            .with_file_name("kalshi"),
    };
    if !kalshi.is_file() {
        return Err(format!(
            "no kalshi binary at {}; build it (scripts/bench does) or pass --kalshi",
            kalshi.display()
        ));
    }
    let mut record = interrupt::hold();
    let temporary = match &options.dir {
        Some(_) => None,
        None => Some(tempfile::tempdir().map_err(|e| format!("cannot make a work dir: {e}"))?),
    };
    record.temporary = temporary.as_ref().map(|temp| temp.path().to_path_buf());
    let work = match (&options.dir, &temporary) {
        (Some(dir), _) => dir.clone(),
        (None, Some(temp)) => temp.path().to_path_buf(),
        (None, None) => unreachable!("one of the two is set"),
    };
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let kalshi = kalshi::Kalshi::new(kalshi, &work).map_err(|e| e.to_string())?;
    record.kalshi = Some(kalshi.clone());
    drop(record);
    let bench = Bench {
        kalshi,
        curl: options.curl.clone(),
        work,
    };

    let load_before = load_average();
    let mut results = Results::default();
    measure_20k(&bench, options, &mut results)?;
    for markets in [100_000, 1_000, 10_000] {
        measure_size(&bench, options, markets, &mut results)?;
    }
    results.cells.sort_by_key(|c| (c.markets, c.conditions));

    println!("{}", machine(options, load_before, started.elapsed()));
    println!("{}", report::rows_table(&results.rows));
    if !results.cells.is_empty() {
        println!(
            "Full and auto scans by markets served and conditions watched (min / median / max):\n"
        );
        println!("{}", report::matrix_table(&results.cells));
    }
    let missing = unmeasured(&results.rows, &results.cells);
    if missing > 0 {
        eprintln!("kalshi-bench: {missing} of the rows and cells asked for could not be measured");
    }
    Ok(exit_status(&results.rows, &results.cells))
}

/// How many rows and matrix cells could not be measured.
fn unmeasured(rows: &[Row], cells: &[Cell]) -> usize {
    let rows = rows
        .iter()
        .filter(|row| row.verdict == Verdict::Unmeasured)
        .count();
    rows + cells.iter().filter(|cell| !cell.measured).count()
}

/// 0 when every row and cell was measured, whether or not it met its target; 2 when any
/// could not be.
fn exit_status(rows: &[Row], cells: &[Cell]) -> u8 {
    if unmeasured(rows, cells) == 0 {
        0
    } else {
        2
    }
}

#[derive(Default)]
struct Results {
    rows: Vec<Row>,
    cells: Vec<Cell>,
    full_20k: Option<FullScan20k>,
}

/// What the 100,000-market row is judged against.
#[derive(Debug, Clone, Copy)]
struct FullScan20k {
    /// Median wall time.
    wall_ms: f64,
    /// Largest peak RSS.
    rss_mib: f64,
    /// Median wall time over the median curl bound.
    curl_ratio: f64,
}

impl Results {
    fn add(&mut self, row: Row) {
        eprintln!(
            "kalshi-bench: {}: {}{}",
            row.work,
            row.wall_ms
                .map_or(String::new(), |s| format!("{:.1} ms median; ", s.median)),
            row.notes.join("; ")
        );
        self.rows.push(row);
    }
}

/// The rows measured against 20,000 markets.
fn measure_20k(bench: &Bench, options: &Options, results: &mut Results) -> Result<(), String> {
    const MARKETS: usize = 20_000;
    let rows_here = [
        "start", "full", "rate20", "skip", "auto", "list", "daemon", "idle", "cycles", "eval",
    ];
    if !rows_here.iter().any(|row| options.wants(row)) {
        return Ok(());
    }
    let set = MarketSet::new(MARKETS);
    let moving = rows::moving_markets(MARKETS);
    let serve = ServeOptions {
        moving,
        gzip: options.gzip,
    };
    let server = serve_set(&set, &serve)?;
    let runs = options.runs();

    if options.wants("start") {
        let mut row = Row::new("process start: `kalshi --version`", "(explains the others)");
        outcome(
            &mut row,
            bench
                .process_start(&server, runs)
                .map(|done| (wall_spread(&done), rss_spread(&done), done.len())),
        );
        results.add(row);
    }
    if options.wants("full") {
        let row = full_scan_row(bench, &server, &set, options, runs, UNPACED, false);
        results.full_20k = match (row.wall_ms, row.rss_mib, row.curl_ratio()) {
            (Some(wall), Some(rss), Some(curl_ratio)) => Some(FullScan20k {
                wall_ms: wall.median,
                rss_mib: rss.max,
                curl_ratio,
            }),
            _ => None,
        };
        results.add(row);
    }
    if options.wants("rate20") {
        let row = full_scan_row(
            bench,
            &server,
            &set,
            options,
            runs.min(3),
            DEFAULT_RATE,
            false,
        );
        results.add(row);
    }
    if options.wants("skip") {
        let row = full_scan_row(bench, &server, &set, options, runs, UNPACED, true);
        results.add(row);
    }
    if options.wants("auto") {
        results.add(auto_row(bench, &server, &set, runs));
    }
    if options.wants("list") {
        let mut row = Row::new("`alerts list`, 1,000 conditions", "≤ 10 ms");
        let done = bench.list(&server, &set, 1000, runs);
        if let Ok(done) = &done {
            row.verdict = Verdict::from(wall_spread(done).is_some_and(|s| s.median <= 10.0));
        }
        outcome(
            &mut row,
            done.map(|d| (wall_spread(&d), rss_spread(&d), d.len())),
        );
        results.add(row);
    }
    if options.wants("daemon") {
        results.add(daemon_row(bench, &server, &set, runs));
    }
    if options.wants("idle") {
        results.add(idle_row(bench, &server, &set, options.idle()));
    }
    if options.wants("cycles") {
        results.add(cycles_row(bench, &server, &set, options.cycles));
    }
    if options.wants("eval") {
        results.add(evaluation_row(bench, &server, &set, runs));
    }
    Ok(())
}

/// The full scan of 100,000 markets and the cells of the markets by conditions table.
fn measure_size(
    bench: &Bench,
    options: &Options,
    markets: usize,
    results: &mut Results,
) -> Result<(), String> {
    let full_100k = markets == 100_000 && options.wants("full100k");
    if !full_100k && !options.wants("matrix") {
        return Ok(());
    }
    let set = MarketSet::new(markets);
    // The same answers as the 20,000-market rows get, so that the two full
    // scans compare like with like.
    let serve = ServeOptions {
        moving: Vec::new(),
        gzip: options.gzip,
    };
    let server = serve_set(&set, &serve)?;
    if full_100k {
        let mut row = full_scan_row(
            bench,
            &server,
            &set,
            options,
            options.runs(),
            UNPACED,
            false,
        );
        judge_100k(&mut row, results.full_20k);
        results.add(row);
    }
    if options.wants("matrix") {
        for conditions in [10, 1_000, 10_000] {
            let cell = matrix_cell(bench, &server, &set, conditions, options.cell_runs());
            eprintln!(
                "kalshi-bench: {markets} markets x {conditions} conditions: full {:.1} ms, auto {:.1} ms",
                cell.full_wall_ms.map_or(f64::NAN, |s| s.median),
                cell.auto_wall_ms.map_or(f64::NAN, |s| s.median)
            );
            results.cells.push(cell);
        }
    }
    Ok(())
}

/// Serves until standard input closes (exit status 0) or a SIGINT or SIGTERM comes (130, 143).
fn serve_only(markets: usize, gzip: bool) -> Result<u8, String> {
    let set = MarketSet::new(markets);
    let serve = ServeOptions {
        moving: rows::moving_markets(markets),
        gzip,
    };
    let server = serve_set(&set, &serve)?;
    println!("KALSHI_API_BASE_URL={}", server.base_url());
    println!(
        "full scan: {} pages; Ctrl-D (or Ctrl-C) stops",
        server.full_scan_urls(false).len()
    );
    let (ended, end) = std::sync::mpsc::channel();
    let closed = ended.clone();
    interrupt::on_signal(move |signal| {
        let _ = ended.send(Some(signal));
    })
    .map_err(|e| format!("cannot wait for signals: {e}"))?;
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            let _ = closed.send(None);
        })
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    let signal = end.recv().ok().flatten();
    eprintln!("kalshi-bench: requests answered: {:?}", server.requests());
    drop(server);
    Ok(signal.map_or(0, interrupt::exit_status))
}

fn serve_set(set: &MarketSet, serve: &ServeOptions) -> Result<MarketServer, String> {
    let started = Instant::now();
    let server = MarketServer::start(set, serve)
        .map_err(|e| format!("cannot start the market server: {e}"))?;
    eprintln!(
        "kalshi-bench: serving {} markets ({:.1} MB in pages of {}{}) after {:.1} s of preparation",
        report::thousands(set.len()),
        server.full_listing_bytes() as f64 / 1e6,
        server::PAGE,
        server.gzipped_bytes().map_or(String::new(), |b| format!(
            ", {:.1} MB gzipped",
            b as f64 / 1e6
        )),
        started.elapsed().as_secs_f64()
    );
    Ok(server)
}

/// Fills a row's time and memory from measured runs, or marks it failed.
fn outcome(row: &mut Row, measured: Result<(Option<Spread>, Option<Spread>, usize), String>) {
    match measured {
        Ok((wall, rss, runs)) => {
            row.wall_ms = wall;
            row.rss_mib = rss;
            row.runs = runs;
        }
        Err(message) => fail(row, &message),
    }
}

fn fail(row: &mut Row, message: &str) {
    row.verdict = Verdict::Unmeasured;
    row.notes.push(format!("could not measure: {message}"));
}

fn full_scan_row(
    bench: &Bench,
    server: &MarketServer,
    set: &MarketSet,
    options: &Options,
    runs: usize,
    rate: u32,
    skip_combos: bool,
) -> Row {
    let markets = report::thousands(set.len());
    let paced = rate == DEFAULT_RATE;
    let (work, target) = match (set.len(), paced) {
        _ if skip_combos => (
            format!("full scan, {markets} markets, --skip-combos (a third are combos)"),
            "(informative)".to_string(),
        ),
        (_, true) => (
            format!("full scan, {markets} markets, default pacing"),
            "(the pacing floor)".to_string(),
        ),
        (20_000, false) => (
            format!("full scan, {markets} markets, 100 conditions"),
            "≤ 250 ms, ≤ 4 × curl, ≤ 50 MiB".to_string(),
        ),
        (_, false) => (
            format!("full scan, {markets} markets, 100 conditions"),
            "RSS within 10 % of 20,000; time linear".to_string(),
        ),
    };
    let mut row = Row::new(work, target);
    row.rate = Some(rate);
    let name = format!(
        "full-{}-{rate}{}",
        set.len(),
        if skip_combos { "-skip" } else { "" }
    );
    let plan = ScanPlan {
        skip_combos,
        rate,
        curl: !paced,
        curl_gzip: !paced && !skip_combos && options.gzip,
        ..ScanPlan::unpaced(name, 100, true, runs)
    };
    match bench.scan(server, set, &plan) {
        Ok(measured) => {
            fill_scan_row(&mut row, &measured);
            if !skip_combos {
                let megabytes = server.full_listing_bytes() as f64 / 1e6;
                row.notes.push(format!("{megabytes:.1} MB of pages"));
            }
            if set.len() == 20_000 && !paced && !skip_combos {
                row.verdict = Verdict::from(
                    row.wall_ms.is_some_and(|s| s.median <= 250.0)
                        && row.curl_ratio().is_some_and(|r| r <= 4.0)
                        && row.rss_mib.is_some_and(|s| s.max <= 50.0),
                );
            }
        }
        Err(message) => fail(&mut row, &message),
    }
    row
}

fn fill_scan_row(row: &mut Row, measured: &ScanRuns) {
    row.runs = measured.wall_ms.len();
    row.wall_ms = Spread::of(&measured.wall_ms);
    row.rss_mib = Spread::of(&measured.rss_mib);
    row.curl_ms = Spread::of(&measured.curl_ms);
    if let Some(cpu) = Spread::of(&measured.cpu_ms) {
        row.notes.push(format!("CPU ms {}", cpu.show(0)));
        if let Some(curl) = Spread::of(&measured.curl_cpu_ms) {
            row.notes.push(format!(
                "curl CPU ms {} (CPU / curl CPU {:.1})",
                curl.show(0),
                cpu.median / curl.median
            ));
        }
    }
    if let Some(scan) = Spread::of(&measured.scan_ms) {
        row.notes.push(format!("scan_ms {}", scan.show(0)));
    }
    if let Some(evaluate) = Spread::of(&measured.evaluate_us) {
        row.notes.push(format!("evaluate_us {}", evaluate.show(0)));
    }
    if let Some(rest) = Spread::of(&measured.rest_ms) {
        row.notes
            .push(format!("rest of the cycle ms {}", rest.show(0)));
    }
    if let Some(requests) = measured.requests.first() {
        row.notes.push(format!("{requests} requests"));
    }
    if let (Some(gzip), Some(wall)) = (Spread::of(&measured.curl_gzip_ms), row.wall_ms) {
        row.notes.push(format!(
            "curl --compressed ms {} (/ curl gzip {:.2}); {} of the client's responses gzipped",
            gzip.show(1),
            wall.median / gzip.median,
            measured.gzipped
        ));
        // A client served gzip is bound by curl fetching the same gzipped
        // pages, inflating included.
        if measured.gzipped > 0 {
            if let Some(plain) = row.curl_ms {
                row.notes
                    .push(format!("curl without gzip ms {}", plain.show(1)));
            }
            row.curl_ms = Some(gzip);
        }
    }
}

fn judge_100k(row: &mut Row, full_20k: Option<FullScan20k>) {
    let (Some(small), Some(wall), Some(rss), Some(ratio)) =
        (full_20k, row.wall_ms, row.rss_mib, row.curl_ratio())
    else {
        return;
    };
    let time_ratio = wall.median / small.wall_ms;
    let rss_ratio = rss.max / small.rss_mib;
    // Against the curl bound of the same moments, a machine that got busier between the two
    // rows cancels out: a scan whose cost is linear in the markets keeps its ratio to curl.
    let growth = ratio / small.curl_ratio;
    row.notes.push(format!(
        "× {time_ratio:.2} the time (5 × the markets), × {growth:.2} the ratio to curl and \
         × {rss_ratio:.2} the peak RSS of 20,000 markets"
    ));
    // Linear: five times the markets in at most five times the time, give or
    // take a quarter for the noise of a shared machine.
    row.verdict = Verdict::from(rss_ratio <= 1.10 && time_ratio <= 5.0 * 1.25);
}

fn auto_row(bench: &Bench, server: &MarketServer, set: &MarketSet, runs: usize) -> Row {
    let mut row = Row::new(
        "auto scan, 100 conditions on 100 tickers (20,000 markets served)",
        "≤ 2 requests, ≤ 30 ms",
    );
    row.rate = Some(UNPACED);
    let plan = ScanPlan::unpaced("auto-100".into(), 100, false, runs);
    match bench.scan(server, set, &plan) {
        Ok(measured) => {
            row.runs = measured.wall_ms.len();
            row.wall_ms = Spread::of(&measured.wall_ms);
            row.rss_mib = Spread::of(&measured.rss_mib);
            let most = measured.requests.iter().copied().max().unwrap_or(0);
            row.notes.push(format!("requests per run: at most {most}"));
            if let Some(scan) = Spread::of(&measured.scan_ms) {
                row.notes.push(format!("scan_ms {}", scan.show(0)));
            }
            row.verdict = Verdict::from(most <= 2 && row.wall_ms.is_some_and(|s| s.median <= 30.0));
        }
        Err(message) => fail(&mut row, &message),
    }
    row
}

fn daemon_row(bench: &Bench, server: &MarketServer, set: &MarketSet, runs: usize) -> Row {
    let mut row = Row::new(
        "`monitor --daemon` returns, daemon alive and holding the lock",
        "≤ 100 ms",
    );
    row.rate = Some(UNPACED);
    match bench.daemon_start(server, set, runs) {
        Ok((starts, stops)) => {
            row.runs = starts.len();
            row.wall_ms = wall_spread(&starts);
            row.rss_mib = rss_spread(&starts);
            if let Some(stop) = wall_spread(&stops) {
                row.notes.push(format!("`alerts stop` ms {}", stop.show(1)));
            }
            row.verdict = Verdict::from(row.wall_ms.is_some_and(|s| s.median <= 100.0));
        }
        Err(message) => fail(&mut row, &message),
    }
    row
}

fn idle_row(bench: &Bench, server: &MarketServer, set: &MarketSet, idle: Duration) -> Row {
    let mut row = Row::new(
        format!(
            "daemon between cycles (interval {IDLE_INTERVAL} s), watched {} s",
            idle.as_secs()
        ),
        "no CPU use, no polling",
    );
    row.rate = Some(UNPACED);
    match bench.daemon_idle(server, set, idle) {
        Ok(idle) => {
            row.runs = 1;
            let per_minute = idle.wakeups as f64 * 60.0 / idle.seconds;
            row.notes.push(format!("CPU {:.0} ms", idle.cpu_ms));
            row.notes.push(format!(
                "{} wake-ups ({per_minute:.1} a minute)",
                idle.wakeups
            ));
            row.notes.push(format!(
                "RSS {:.1} -> {:.1} MiB",
                idle.rss_before_kib as f64 / 1024.0,
                idle.rss_after_kib as f64 / 1024.0
            ));
            // /proc counts CPU in ticks of 10 ms; a wake-up a minute is a timer, not a loop.
            row.verdict = Verdict::from(idle.cpu_ms <= 10.0 && per_minute <= 1.0);
        }
        Err(message) => fail(&mut row, &message),
    }
    row
}

fn cycles_row(bench: &Bench, server: &MarketServer, set: &MarketSet, cycles: u64) -> Row {
    let mut row = Row::new(
        format!("daemon RSS over {cycles} cycles (interval 0, auto scan, moving quotes)"),
        "RSS flat",
    );
    row.rate = Some(UNPACED);
    let started = Instant::now();
    match bench.daemon_cycles(server, set, cycles) {
        // Nothing to judge: every checkpoint would read 0.0 MiB, and "flat".
        Ok(samples) if samples.is_empty() => fail(
            &mut row,
            "the daemon ran its cycles before its memory could be sampled",
        ),
        Ok(samples) => {
            row.runs = 1;
            let at = |cycle: u64| {
                samples
                    .iter()
                    .find(|(number, _)| *number >= cycle)
                    .or(samples.last())
                    .map_or(0.0, |(_, kib)| *kib as f64 / 1024.0)
            };
            let checkpoints: Vec<String> = std::iter::once(1)
                .chain((1..=10).map(|tenth| cycles * tenth / 10))
                .map(|cycle| format!("{cycle}: {:.1}", at(cycle)))
                .collect();
            row.notes.push(format!(
                "RSS MiB by cycle {}; {:.1} s for the cycles",
                checkpoints.join(", "),
                started.elapsed().as_secs_f64()
            ));
            match second_half_rise_kib(&samples, cycles) {
                Some(rise) => {
                    row.notes.push(format!(
                        "RSS rise over cycles {} to {cycles}, by the least-squares line through \
                         their samples: {rise:+.0} KiB (flat: under {FLAT_RISE_KIB:.0} KiB)",
                        cycles / 2
                    ));
                    row.verdict = Verdict::from(rise < FLAT_RISE_KIB);
                }
                None => fail(
                    &mut row,
                    "fewer than two memory samples in the second half of the cycles",
                ),
            }
        }
        Err(message) => fail(&mut row, &message),
    }
    row
}

/// The most the cycles row's memory may rise over the second half of its cycles and still be
/// flat, in KiB. What a leak of L KiB a cycle adds there is L × cycles / 2: 500 KiB for 1 KiB a
/// cycle over 1,000 cycles. Runs without a leak, under load or not, measured −425 to +289 KiB:
/// the allocator moves RSS up and down by up to a MiB between samples, and in a run slowed by
/// other work memory may still be settling. More `--cycles` tell a leak apart more surely.
const FLAT_RISE_KIB: f64 = 384.0;

/// How far resident memory rose over the second half of the cycles, in KiB: the rise of the
/// least-squares line through the samples of cycle `cycles / 2` on, across that half. A line
/// through every sample, not the difference of two, so that one sample of allocator jitter at
/// either end decides nothing; the second half, so that start-up growth is left out. `None`
/// with fewer than two samples, or all of one cycle, there.
fn second_half_rise_kib(samples: &[(u64, u64)], cycles: u64) -> Option<f64> {
    let middle = cycles / 2;
    let half: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(cycle, _)| *cycle >= middle)
        .map(|&(cycle, kib)| (cycle as f64, kib as f64))
        .collect();
    let n = half.len() as f64;
    let mean_cycle = half.iter().map(|(c, _)| c).sum::<f64>() / n;
    let mean_kib = half.iter().map(|(_, k)| k).sum::<f64>() / n;
    let spread: f64 = half.iter().map(|(c, _)| (c - mean_cycle).powi(2)).sum();
    if half.len() < 2 || spread == 0.0 {
        return None;
    }
    let covariance: f64 = half
        .iter()
        .map(|(c, k)| (c - mean_cycle) * (k - mean_kib))
        .sum();
    Some(covariance / spread * (cycles - middle) as f64)
}

fn evaluation_row(bench: &Bench, server: &MarketServer, set: &MarketSet, runs: usize) -> Row {
    let mut row = Row::new(
        "evaluation of 10,000 conditions over 20,000 markets (full scan)",
        "evaluate_us ≤ 5,000",
    );
    row.rate = Some(UNPACED);
    let plan = ScanPlan::unpaced("eval-10000".into(), 10_000, true, runs);
    match bench.scan(server, set, &plan) {
        Ok(measured) => {
            fill_scan_row(&mut row, &measured);
            row.verdict = Verdict::from(
                Spread::of(&measured.evaluate_us).is_some_and(|s| s.median <= 5000.0),
            );
        }
        Err(message) => fail(&mut row, &message),
    }
    row
}

fn matrix_cell(
    bench: &Bench,
    server: &MarketServer,
    set: &MarketSet,
    conditions: usize,
    runs: usize,
) -> Cell {
    let mut cell = Cell {
        markets: set.len(),
        conditions,
        full_wall_ms: None,
        full_rss_mib: None,
        scan_ms: None,
        evaluate_us: None,
        rest_ms: None,
        auto_wall_ms: None,
        auto_requests: 0,
        measured: true,
    };
    let mut plan = ScanPlan::unpaced(
        format!("cell-{}-{conditions}-full", set.len()),
        conditions,
        true,
        runs,
    );
    match bench.scan(server, set, &plan) {
        Ok(full) => {
            cell.full_wall_ms = Spread::of(&full.wall_ms);
            cell.full_rss_mib = Spread::of(&full.rss_mib);
            cell.scan_ms = Spread::of(&full.scan_ms);
            cell.evaluate_us = Spread::of(&full.evaluate_us);
            cell.rest_ms = Spread::of(&full.rest_ms);
        }
        Err(message) => {
            cell.measured = false;
            eprintln!("kalshi-bench: {}: {message}", plan.name);
        }
    }
    plan.name = format!("cell-{}-{conditions}-auto", set.len());
    plan.full = false;
    match bench.scan(server, set, &plan) {
        Ok(auto) => {
            cell.auto_wall_ms = Spread::of(&auto.wall_ms);
            cell.auto_requests = auto.requests.iter().copied().max().unwrap_or(0);
        }
        Err(message) => {
            cell.measured = false;
            eprintln!("kalshi-bench: {}: {message}", plan.name);
        }
    }
    cell
}

/// What the figures were measured on.
fn machine(options: &Options, load_before: String, took: Duration) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = measure::machine_memory_kib().map_or(0.0, |kib| kib as f64 / 1024.0 / 1024.0);
    let rustc = interrupt::unblocked(&mut std::process::Command::new("rustc"))
        .arg("--version")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_else(|| "rustc not found".into());
    format!(
        "# kalshi-bench\n\n\
         machine: {cores} cores, {memory:.1} GiB; {rustc}; release build\n\
         load average (1, 5, 15 min) before: {load_before}; after: {}\n\
         runs per row: {} (matrix cells: {}), each after one untimed run; {:.0} s in all\n",
        load_average(),
        options.runs(),
        options.cell_runs(),
        took.as_secs_f64()
    )
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Options::try_parse_from(std::iter::once("kalshi-bench").chain(args.iter().copied()))
    }

    /// The option a refusal names, and that it is a usage error (exit 2).
    fn refused(args: &[&str]) -> String {
        let error = parse(args).expect_err("refused");
        assert_eq!(error.exit_code(), 2, "{error}");
        error.to_string()
    }

    #[test]
    fn counts_that_measure_nothing_are_refused_naming_their_option() {
        assert!(refused(&["--serve", "0"]).contains("--serve"));
        assert!(refused(&["--runs", "0"]).contains("--runs"));
        assert!(refused(&["--cycles", "0"]).contains("--cycles"));
        assert!(refused(&["--cycles", "9"]).contains("--cycles"));
        assert!(refused(&["--idle", "0"]).contains("--idle"));
        assert!(refused(&["--idle=-1"]).contains("--idle"));
        assert!(refused(&["--idle", &(MAX_IDLE + 1).to_string()]).contains("--idle"));
    }

    #[test]
    fn the_help_of_each_count_gives_its_range() {
        use clap::CommandFactory;
        let command = Options::command();
        let help = |id: &str| {
            let arg = command.get_arguments().find(|a| a.get_id() == id);
            arg.and_then(|a| a.get_help()).unwrap().to_string()
        };
        assert!(help("runs").contains("1 to 100"), "{}", help("runs"));
        assert!(help("idle").contains(&format!("1 to {MAX_IDLE}")));
        assert!(help("cycles").contains(&format!("at least {MIN_CYCLES}")));
        assert!(parse(&["--runs", "100"]).is_ok());
        assert!(refused(&["--runs", "101"]).contains("--runs"));
    }

    #[test]
    fn counts_that_measure_something_are_taken() {
        let options = parse(&["--idle", "1", "--cycles", "10", "--runs", "1"]).unwrap();
        assert_eq!(options.idle(), Duration::from_secs(1));
        assert_eq!(options.cycles, 10);
        assert_eq!(options.runs(), 1);
        let options = parse(&["--idle", &MAX_IDLE.to_string()]).unwrap();
        assert_eq!(options.idle(), Duration::from_secs(MAX_IDLE));
        assert_eq!(parse(&["--serve", "1"]).unwrap().serve, Some(1));
        assert_eq!(parse(&[]).unwrap().idle(), Duration::from_secs(30));
    }

    #[test]
    fn only_takes_the_row_names_and_nothing_else() {
        let options = parse(&["--only", "full,auto"]).unwrap();
        assert!(options.wants("full") && options.wants("auto") && !options.wants("start"));
        let every = ROWS.join(",");
        let options = parse(&["--only", &every]).unwrap();
        assert!(ROWS.iter().all(|row| options.wants(row)));
        for bad in ["bogus", "FULL", "", ",", "full,", "full,,auto", " full"] {
            let message = refused(&["--only", bad]);
            assert!(message.contains("--only"), "{bad:?}: {message}");
        }
        let message = refused(&["--only", "bogus"]);
        assert!(ROWS.iter().all(|row| message.contains(row)), "{message}");
    }

    fn row(verdict: Verdict) -> Row {
        let mut row = Row::new("work", "target");
        row.verdict = verdict;
        row
    }

    fn cell(measured: bool) -> Cell {
        Cell {
            markets: 1_000,
            conditions: 10,
            full_wall_ms: None,
            full_rss_mib: None,
            scan_ms: None,
            evaluate_us: None,
            rest_ms: None,
            auto_wall_ms: None,
            auto_requests: 0,
            measured,
        }
    }

    #[test]
    fn every_row_measured_exits_0_whether_or_not_its_target_is_met() {
        let rows = [row(Verdict::Met), row(Verdict::Missed), row(Verdict::None)];
        assert_eq!(exit_status(&rows, &[cell(true)]), 0);
        assert_eq!(exit_status(&rows, &[]), 0);
        assert_eq!(exit_status(&[], &[]), 0);
    }

    #[test]
    fn a_row_or_cell_not_measured_exits_2() {
        let mut failed = row(Verdict::Met);
        fail(&mut failed, "curl failed");
        assert_eq!(failed.verdict, Verdict::Unmeasured);
        let rows = [row(Verdict::Met), failed];
        assert_eq!(unmeasured(&rows, &[]), 1);
        assert_eq!(exit_status(&rows, &[]), 2);
        assert_eq!(
            exit_status(&[row(Verdict::Met)], &[cell(true), cell(false)]),
            2
        );
        let mut listed = row(Verdict::None);
        outcome(&mut listed, Err("no kalshi".into()));
        assert_eq!(exit_status(&[listed], &[]), 2);
    }

    #[test]
    fn an_unmeasured_row_prints_as_not_measured_and_a_measured_miss_as_missed() {
        let mut failed = row(Verdict::None);
        fail(&mut failed, "curl failed");
        let table = report::rows_table(&[failed, row(Verdict::Missed)]);
        assert!(
            table.contains("| not measured | could not measure: curl failed |"),
            "{table}"
        );
        assert_eq!(table.matches("MISSED").count(), 1, "{table}");
    }

    /// Samples every cycle from 1 to `cycles`: `kib(cycle)`.
    fn series(cycles: u64, kib: impl Fn(u64) -> f64) -> Vec<(u64, u64)> {
        (1..=cycles).map(|c| (c, kib(c).round() as u64)).collect()
    }

    /// Allocator jitter as the cycles row sees it: RSS stepping between 12.8 and 13.8 MiB,
    /// after growing from 11 MiB over the first 100 cycles.
    fn jitter(cycle: u64) -> f64 {
        const STEPS: [f64; 5] = [12.9, 13.8, 13.6, 13.5, 12.8];
        if cycle < 100 {
            return 11.0 * 1024.0 + cycle as f64 * 20.0;
        }
        STEPS[(cycle as usize / 37) % STEPS.len()] * 1024.0
    }

    #[test]
    fn memory_stepping_up_and_down_is_flat_and_a_kib_a_cycle_is_not() {
        for cycles in [1000, 2000] {
            let flat = second_half_rise_kib(&series(cycles, jitter), cycles).unwrap();
            assert!(flat.abs() < FLAT_RISE_KIB, "{cycles}: {flat}");
            let leak = |c: u64| jitter(c) + c as f64;
            let leaking = second_half_rise_kib(&series(cycles, leak), cycles).unwrap();
            assert!(leaking >= FLAT_RISE_KIB, "{cycles}: {leaking}");
        }
        // The old rule let 1 MiB through over 900 cycles; this is 900 KiB.
        let steady = |c: u64| 13.0 * 1024.0 + c as f64;
        let rise = second_half_rise_kib(&series(1000, steady), 1000).unwrap();
        assert!((rise - 500.0).abs() < 1.0, "{rise}");
        // Start-up growth in the first half is left out.
        let settled = |c: u64| {
            if c < 400 {
                11.0 * 1024.0 + c as f64 * 8.0
            } else {
                14_000.0
            }
        };
        let rise = second_half_rise_kib(&series(1000, settled), 1000).unwrap();
        assert!(rise.abs() < 1.0, "{rise}");
    }

    #[test]
    fn the_trend_needs_two_cycles_sampled_in_the_second_half() {
        assert_eq!(second_half_rise_kib(&[], 1000), None);
        assert_eq!(second_half_rise_kib(&[(10, 1), (600, 2)], 1000), None);
        assert_eq!(second_half_rise_kib(&[(700, 1), (700, 2)], 1000), None);
        let two = second_half_rise_kib(&[(500, 1000), (1000, 1100)], 1000).unwrap();
        assert!((two - 100.0).abs() < 1e-9, "{two}");
        assert!(second_half_rise_kib(&series(10, jitter), 10).is_some());
    }

    #[test]
    fn the_longest_idle_watch_ends_well_before_the_next_cycle() {
        assert!(MAX_IDLE + IDLE_SETTLE.as_secs() + 30 < IDLE_INTERVAL);
    }

    #[test]
    fn a_market_count_must_fit_in_memory() {
        let gib = 1024 * 1024;
        assert!(servable(0, Some(16 * gib)).is_err());
        assert!(servable(0, None).is_err());
        assert!(servable(1, Some(16 * gib)).is_ok());
        assert!(servable(100_000, Some(gib)).is_ok());
        assert!(servable(1_000_000, Some(gib)).is_err());
        assert!(servable(usize::MAX, Some(16 * gib)).is_err());
        let message = servable(10_000_000, Some(gib)).unwrap_err();
        assert!(message.contains("give at most 349525"), "{message}");
    }
}
