//! `kalshi`: manage alert conditions on Kalshi markets and run the monitor.
//!
//! The whole command line is this library's [`main`], so that a program
//! of a third party can be the `kalshi` command with notifier plugins of
//! its own compiled in: link the plugin crate, then call
//! `kalshi_alerts_cli::main()` from `main`. The `kalshi` binary is exactly
//! that, with the built-in plugins only.
//!
//! `main` parses arguments, sets up logging, loads run-time plugins for the
//! commands that use the notifier registry, runs one command and turns its
//! error, if any, into one message on stderr and an exit code.

mod args;
mod commands;
mod config;
mod error;
mod output;
mod progress;
mod table;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use tracing_subscriber::EnvFilter;

use args::{
    AlertsCommand, Cli, ColorChoice, Command, ConfigCommand, MarketsCommand, NotifiersCommand,
    PluginsCommand,
};
use error::CliResult;

/// The command line's definition, as clap sees it: what `--help`, the
/// completions and the manual pages are made from. The docs are checked
/// against it.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs the `kalshi` command line with the arguments and environment of
/// this process, and returns its exit code. Every notifier and launcher
/// registered in the program (the built-in ones, any linked in, any loaded
/// at run time) is available.
pub fn main() -> ExitCode {
    ignore_file_size_signal();
    kalshi_alerts_plugins::link();
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(cli.log_level(), cli.color);
    let sources = match config::resolve(&mut cli, &matches) {
        Ok(sources) => sources,
        Err(e) => {
            output::error_line(format_args!("error: {}", e.message));
            return ExitCode::from(e.code);
        }
    };

    match run(cli, &sources) {
        Ok(code) => match output::write_failure() {
            Some(reason) => {
                output::error_line(format_args!(
                    "error: cannot write to standard output: {reason}"
                ));
                ExitCode::from(1)
            }
            None => code,
        },
        Err(e) => {
            output::error_line(format_args!("error: {}", e.message));
            ExitCode::from(e.code)
        }
    }
}

fn run(cli: Cli, sources: &config::Sources) -> CliResult<ExitCode> {
    let context = commands::Context::new(&cli)?;
    if uses_the_registry(&cli.command) {
        commands::plugins::load(&context);
    }
    let command = match cli.command {
        Command::Alerts(command) => command,
        Command::Notifiers(command) => {
            return match command {
                NotifiersCommand::List { json } => commands::notifiers::list(&context, json),
                NotifiersCommand::Check => commands::notifiers::check(&context),
                NotifiersCommand::Test { name } => commands::notifiers::test(&context, &name),
                NotifiersCommand::Docs => commands::notifiers::docs(),
            }
        }
        Command::Plugins(PluginsCommand::List { json }) => {
            return commands::plugins::list(&context, json)
        }
        Command::Markets(command) => {
            return match command {
                MarketsCommand::Show { ticker, json } => {
                    commands::markets::show(&context, &ticker, json)
                }
                MarketsCommand::Search {
                    text,
                    event,
                    series,
                    limit,
                    json,
                } => commands::markets::search(
                    &context,
                    &text,
                    event.as_deref(),
                    series.as_deref(),
                    limit as usize,
                    json,
                ),
            }
        }
        Command::Config(ConfigCommand::Show { json }) => {
            return commands::config::show(&context, sources, json)
        }
        Command::Completions { shell } => return commands::manual::completions(shell),
        Command::Man { out_dir } => return commands::manual::man(out_dir.as_deref()),
    };
    match command {
        AlertsCommand::Add(args) => commands::add::run(&context, args),
        AlertsCommand::List { json } => commands::list::run(&context, json),
        AlertsCommand::Remove { id_prefix } => commands::remove::run(&context, &id_prefix),
        AlertsCommand::Prune => commands::remove::prune(&context),
        AlertsCommand::Rearm { id_prefix } => commands::history::rearm(&context, &id_prefix),
        AlertsCommand::History { since, json } => {
            commands::history::history(&context, since.as_deref(), json)
        }
        AlertsCommand::Monitor(args) => commands::monitor::run(&context, args),
        AlertsCommand::TrimLog(args) => commands::trim_log::run(&context, args),
        AlertsCommand::Status { json } => commands::control::status(&context, json),
        AlertsCommand::Stop { timeout } => commands::control::stop(&context, timeout),
    }
}

/// A write past the file-size limit (`ulimit -f`) raises SIGXFSZ, which
/// kills silently, mid-write, leaving a temporary file behind. Ignored, it
/// makes the write fail with EFBIG instead, which is reported and cleaned
/// up like a full disk. Processes this one starts (a daemon's background
/// copy) inherit that.
fn ignore_file_size_signal() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to "ignore" runs no handler
    // code; it is done first, before any thread is started.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Whether a command reads the notifier registry, and so needs the
/// run-time plugins loaded first. The others never run plugin code.
/// (`notifiers docs` documents the built-in kinds only.)
fn uses_the_registry(command: &Command) -> bool {
    match command {
        Command::Alerts(AlertsCommand::Add(args)) => !args.notify.is_empty(),
        Command::Alerts(AlertsCommand::Monitor(_)) => true,
        Command::Alerts(_) => false,
        Command::Notifiers(NotifiersCommand::Docs) => false,
        Command::Notifiers(_) | Command::Plugins(_) => true,
        Command::Config(_)
        | Command::Markets(_)
        | Command::Completions { .. }
        | Command::Man { .. } => false,
    }
}

/// Logs go to stderr, so that stdout carries only what a command prints for
/// its user. The filter is `KALSHI_LOG`, else `RUST_LOG`, else the level
/// the flags ask for (`info` by default). Colour follows `--color`; in auto
/// mode, only on a terminal and never when `NO_COLOR` is set.
fn init_logging(level: &str, color: ColorChoice) {
    let filter = EnvFilter::try_from_env("KALSHI_LOG")
        .or_else(|_| EnvFilter::try_from_env("RUST_LOG"))
        .unwrap_or_else(|_| EnvFilter::new(level));
    let ansi = match color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .log_internal_errors(false)
        .init();
}
