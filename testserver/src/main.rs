//! `kalshi-test-server`: serves the recorded Kalshi markets on a loopback port for manual
//! testing of `kalshi-alerts`, until killed.
//!
//! ```text
//! kalshi-test-server [--port N] [--generation legacy|transitional|current|all]
//! ```

use std::io::Write;
use std::process::ExitCode;

use kalshi_test_server::{fixtures, Scenario, TestServer};
use serde_json::Value;

const USAGE: &str = "\
usage: kalshi-test-server [--port N] [--generation legacy|transitional|current|all]

Serves Kalshi's GET /trade-api/v2/markets from recorded data on 127.0.0.1.

  --port N          port to listen on (default 0: any free port)
  --generation G    which recorded markets to serve (default all):
                      legacy        the 291 demo markets (integer cents)
                      transitional  the 5 production markets (cents and dollar strings)
                      current       all 296 markets converted to the current generation
                                    (dollar strings and *_fp sizes only)
                      all           legacy + transitional + the 5 transitional markets
                                    converted to current, with ticker suffix -CUR
  -h, --help        print this help";

/// Which recorded markets to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Generation {
    Legacy,
    Transitional,
    Current,
    All,
}

#[derive(Debug, PartialEq, Eq)]
struct Options {
    port: u16,
    generation: Generation,
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("kalshi-test-server: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let scenario = Scenario::new(markets_for(options.generation));
    let server = match TestServer::start_on_port(scenario, options.port) {
        Ok(server) => server,
        Err(error) => {
            eprintln!(
                "kalshi-test-server: cannot listen on port {}: {error}",
                options.port
            );
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", server.base_url());
    // A script waiting for this line may be reading through a pipe, where stdout is buffered.
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}

/// Parses the arguments; `Ok(None)` means help was asked for.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        port: 0,
        generation: Generation::All,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline_value) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let mut value = || inline_value.clone().or_else(|| args.next());
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--port" => options.port = parse_port(value())?,
            "--generation" => options.generation = parse_generation(value())?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(options))
}

fn parse_port(value: Option<String>) -> Result<u16, String> {
    let value = value.ok_or("--port needs a value")?;
    value
        .parse()
        .map_err(|_| format!("--port {value:?} is not a port number (0-65535)"))
}

fn parse_generation(value: Option<String>) -> Result<Generation, String> {
    match value.as_deref() {
        Some("legacy") => Ok(Generation::Legacy),
        Some("transitional") => Ok(Generation::Transitional),
        Some("current") => Ok(Generation::Current),
        Some("all") => Ok(Generation::All),
        Some(other) => Err(format!(
            "--generation {other:?} is not one of legacy, transitional, current, all"
        )),
        None => Err("--generation needs a value".into()),
    }
}

/// The market list served for `generation`; tickers are unique within it.
fn markets_for(generation: Generation) -> Vec<Value> {
    let legacy = fixtures::legacy_markets();
    let transitional = fixtures::transitional_markets();
    match generation {
        Generation::Legacy => legacy,
        Generation::Transitional => transitional,
        Generation::Current => legacy
            .iter()
            .chain(&transitional)
            .map(fixtures::to_current)
            .collect(),
        Generation::All => {
            let current: Vec<Value> = transitional.iter().map(current_copy).collect();
            legacy
                .into_iter()
                .chain(transitional)
                .chain(current)
                .collect()
        }
    }
}

/// A current-generation copy of a transitional market under a distinct ticker, so it can be
/// served next to the original.
fn current_copy(market: &Value) -> Value {
    let mut copy = fixtures::to_current(market);
    let ticker = market["ticker"].as_str().unwrap_or_default();
    copy["ticker"] = format!("{ticker}-CUR").into();
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_port_and_generation_in_both_spellings() {
        let expected = Options {
            port: 8080,
            generation: Generation::Legacy,
        };
        let parsed = parse_args(args("--port 8080 --generation legacy"));
        assert_eq!(parsed, Ok(Some(expected)));
        let inline = parse_args(args("--port=8080 --generation=legacy"))
            .unwrap()
            .unwrap();
        assert_eq!((inline.port, inline.generation), (8080, Generation::Legacy));
        let defaults = parse_args(args("")).unwrap().unwrap();
        assert_eq!((defaults.port, defaults.generation), (0, Generation::All));
        assert_eq!(parse_args(args("--help")), Ok(None));
    }

    #[test]
    fn rejects_bad_arguments() {
        for bad in [
            "--port",
            "--port 70000",
            "--port x",
            "--generation new",
            "--verbose",
        ] {
            assert!(parse_args(args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_generation_serves_unique_tickers() {
        let sizes = [
            (Generation::Legacy, 291),
            (Generation::Transitional, 5),
            (Generation::Current, 296),
            (Generation::All, 301),
        ];
        for (generation, size) in sizes {
            let markets = markets_for(generation);
            let tickers: HashSet<&str> = markets
                .iter()
                .filter_map(|market| market["ticker"].as_str())
                .collect();
            assert_eq!(
                (markets.len(), tickers.len()),
                (size, size),
                "{generation:?}"
            );
        }
    }

    #[test]
    fn all_adds_current_copies_with_a_cur_suffix() {
        let markets = markets_for(Generation::All);
        let copy = &markets[296];
        assert!(copy["ticker"].as_str().unwrap().ends_with("-CUR"));
        assert_eq!(fixtures::generation(copy), fixtures::Generation::Current);
    }
}
