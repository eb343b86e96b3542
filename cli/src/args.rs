//! The command line, as clap reads it. `--help` text lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Watch Kalshi prediction markets and get told when your conditions are met.
#[derive(Debug, Parser)]
#[command(name = "kalshi", version, propagate_version = true)]
#[command(
    after_help = "Environment: KALSHI_ENVIRONMENT (prod|demo), KALSHI_API_BASE_URL \
    (overrides both API hosts), KALSHI_DATA_DIR, KALSHI_LOG or RUST_LOG (log filter, e.g. \
    debug or kalshi_alerts_core=trace; overrides -v/-q), NO_COLOR (no colour in auto mode), \
    KALSHI_PLUGIN_PATH (plugin directories, separated like PATH)."
)]
pub struct Cli {
    /// Which Kalshi exchange to read: prod or demo.
    #[arg(long = "env", global = true, env = "KALSHI_ENVIRONMENT", default_value = "prod",
          value_parser = ["prod", "demo"])]
    pub environment: String,

    /// Where alerts.json, the daemon's log and its lock live.
    #[arg(long, global = true, env = "KALSHI_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// More log detail: -v debug, -vv trace (KALSHI_LOG or RUST_LOG, if set, decide instead).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less log detail: -q warnings and errors only, -qq errors only.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,

    /// When to colour the log: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        value_name = "WHEN"
    )]
    pub color: ColorChoice,

    /// The notifier instances file [default: notifiers.toml in the data dir].
    #[arg(
        long = "notifiers",
        global = true,
        env = "KALSHI_NOTIFIERS",
        value_name = "FILE"
    )]
    pub notifiers_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// When to use colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl Cli {
    /// The log filter the flags ask for: `info` by default.
    pub fn log_level(&self) -> &'static str {
        match (self.verbose, self.quiet) {
            (0, 0) => "info",
            (1, _) => "debug",
            (v, _) if v >= 2 => "trace",
            (_, 1) => "warn",
            _ => "error",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add, list and remove alert conditions; run the monitor.
    #[command(subcommand)]
    Alerts(AlertsCommand),

    /// Find a market and see its price before alerting on it.
    #[command(subcommand)]
    Markets(MarketsCommand),

    /// List, check and test the notifiers that deliver alerts.
    #[command(subcommand)]
    Notifiers(NotifiersCommand),

    /// The notifier plugins loaded at run time from shared libraries.
    #[command(subcommand)]
    Plugins(PluginsCommand),

    /// Where the settings come from: flags, environment, kalshi.toml files, defaults.
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Print a shell completion script: `kalshi completions bash > ~/.local/share/bash-completion/completions/kalshi`.
    #[command(after_help = "Install:\n  \
        bash:        kalshi completions bash > ~/.local/share/bash-completion/completions/kalshi\n  \
        zsh:         kalshi completions zsh > ~/.zfunc/_kalshi   (with fpath+=~/.zfunc before compinit)\n  \
        fish:        kalshi completions fish > ~/.config/fish/completions/kalshi.fish\n  \
        powershell:  kalshi completions powershell >> $PROFILE")]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print the manual page (roff), or write one page per command into a directory.
    #[command(after_help = "Read it:  kalshi man | man -l -\n\
        Install:  kalshi man --out-dir ~/.local/share/man/man1")]
    Man {
        /// Write kalshi.1 and a page per subcommand (kalshi-alerts-add.1, ...) into DIR.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MarketsCommand {
    /// One market: title, status, YES bid / ask / midpoint (exact), last price, volume, open
    /// interest, close time, and the stored conditions that watch it.
    Show {
        /// The market's ticker, e.g. KXBTC-25DEC31-T100000.
        ticker: String,

        /// Print as JSON (prices as exact decimal strings).
        #[arg(long)]
        json: bool,
    },

    /// Open markets whose ticker or title contains TEXT (any case), as a table.
    #[command(after_help = "Examples:\n  \
        kalshi markets search bitcoin\n  \
        kalshi markets search '' --event KXBTC-25DEC31 --limit 50\n  \
        kalshi markets search rain --series KXRAINNYC")]
    Search {
        /// Text to look for in tickers and titles; '' lists every market of the scope.
        text: String,

        /// Only markets of this event (an event ticker).
        #[arg(long, value_name = "EVENT_TICKER")]
        event: Option<String>,

        /// Only markets of this series (a series ticker).
        #[arg(long, value_name = "SERIES_TICKER")]
        series: Option<String>,

        /// Show at most N markets.
        #[arg(long, default_value_t = 20, value_name = "N",
              value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,

        /// Print as JSON (prices as exact decimal strings).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Each setting's value and where it came from: the command line, an environment
    /// variable, kalshi.toml in the data dir, the user's kalshi.toml, or the default.
    #[command(
        after_help = "Files, in order of precedence after flags and environment:\n  \
        DATA_DIR/kalshi.toml\n  \
        $XDG_CONFIG_HOME/kalshi/kalshi.toml (else ~/.config/kalshi/kalshi.toml)\n\n\
        Keys: env = \"prod\"|\"demo\", data_dir = \"PATH\" (user's file only), \
        notifiers = \"PATH\", interval = SECONDS. Relative paths are relative to the file."
    )]
    Show {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Each plugin loaded (path, ABI version, notifier kinds), then each file refused and why.
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotifiersCommand {
    /// The registered notifier kinds and their settings, then the configured instances.
    List {
        /// Print as JSON (secret values masked).
        #[arg(long)]
        json: bool,
    },

    /// Validate the notifiers file, build every instance and check it can deliver.
    Check,

    /// Send one sample alert through one configured instance.
    Test {
        /// The instance's name in the notifiers file.
        name: String,
    },

    /// Print the notifier reference of docs/notifiers.md, generated from the registry.
    #[command(hide = true)]
    Docs,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Add an alert condition on one market, or on every market of an event or a series.
    #[command(after_help = "Examples:\n  \
        kalshi alerts add price KXBTC-25DEC31-T100000 --above 0.60\n  \
        kalshi alerts add price INXU-24JUL15 --below 40c --expires 2h\n  \
        kalshi alerts add crosses AITURING --level 50%\n  \
        kalshi alerts add spread EUCLIMATE-2030 --above 5\n  \
        kalshi alerts add volume CHINAUSGDP-30 --above 1000\n  \
        kalshi alerts add move HIGHNY-24JUL14-T95 --by 0.10 --label 'NY heat'\n  \
        kalshi alerts add price --event KXHIGHNY-25DEC04 --above 0.90\n  \
        kalshi alerts add move --series KXBTC --by 5c\n\n\
        Prices are probabilities: 0.60, 60c and 60% are the same. An --event or --series \
        condition checks each open market of its scope on its own, and its alerts name the \
        market.")]
    #[command(
        override_usage = "kalshi alerts add <KIND> <TICKER | --event EVENT_TICKER | \
        --series SERIES_TICKER> [OPTIONS]"
    )]
    Add(AddArgs),

    /// List alert conditions.
    List {
        /// Print the stored records as JSON.
        #[arg(long)]
        json: bool,
    },

    /// Remove one alert condition by its id or any unique prefix of it.
    Remove {
        /// The condition's id, or a unique prefix (as shown by `alerts list`).
        id_prefix: String,
    },

    /// Remove every condition whose expiry has passed.
    Prune,

    /// Forget that a condition fired: a spent `--repeat once` condition fires again, a
    /// cooldown starts afresh, a `rearm` one fires at its next check that meets it.
    Rearm {
        /// The condition's id, or a unique prefix (as shown by `alerts list`).
        id_prefix: String,
    },

    /// The alerts that fired, with their values and where each delivery stands (delivered,
    /// pending with its next try, failed, gave up), from the state database.
    History {
        /// Only alerts fired within this span back from now (30m, 2h, 7d) or since an
        /// RFC 3339 time.
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,

        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },

    /// Check the markets and fire alerts, in the foreground or as a daemon.
    Monitor(MonitorArgs),

    /// Shrink the daemon's log, keeping its most recent part (dry run unless --apply).
    TrimLog(TrimLogArgs),

    /// Say whether a monitor (daemon or foreground) runs for this data dir, and how its
    /// cycles go (exit 3 if none runs).
    Status {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },

    /// Stop the monitor running for this data dir (SIGTERM, then wait for it to exit).
    Stop {
        /// Seconds to wait for it to exit (it stops within about a second; deliveries under way
        /// stay in the outbox for the next run).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
        timeout: u64,
    },
}

/// The kind of condition, as typed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConditionKind {
    /// YES midpoint above (--above P) or below (--below P) a probability.
    Price,
    /// Midpoint crosses --level P between two checks, either direction.
    Crosses,
    /// YES ask minus bid, in cents, above --above C.
    Spread,
    /// Traded volume above --above N contracts.
    Volume,
    /// Midpoint moved by at least --by P since the previous check.
    Move,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("watched").args(["ticker", "event", "series"])
    .required(true).multiple(false))]
pub struct AddArgs {
    /// What to watch.
    #[arg(value_enum)]
    pub kind: ConditionKind,

    /// The market's ticker, e.g. KXBTC-25DEC31-T100000 (or --event or --series instead).
    pub ticker: Option<String>,

    /// Watch every market of this event instead of one market.
    #[arg(long, value_name = "EVENT_TICKER")]
    pub event: Option<String>,

    /// Watch every market of this series instead of one market.
    #[arg(long, value_name = "SERIES_TICKER")]
    pub series: Option<String>,

    /// Threshold to exceed: a probability for price, cents for spread, contracts for volume.
    #[arg(long, value_name = "VALUE", allow_hyphen_values = true)]
    pub above: Option<String>,

    /// Probability to fall below (price only).
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    pub below: Option<String>,

    /// Probability level to watch for a crossing (crosses only).
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    pub level: Option<String>,

    /// Smallest midpoint move, as a probability, that fires (move only).
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    pub by: Option<String>,

    /// A name for the condition; defaults to a description of it.
    #[arg(long)]
    pub label: Option<String>,

    /// Stop checking after a duration (2h, 30m, 1d) or at an RFC 3339 time.
    #[arg(long, value_name = "WHEN")]
    pub expires: Option<String>,

    /// Send this condition's alerts to these notifier instances (from the notifiers file)
    /// instead of the default ones.
    #[arg(long, value_name = "NAME[,NAME]", value_delimiter = ',')]
    pub notify: Vec<String>,

    /// When it fires again while it holds: rearm (default: once each time it becomes true,
    /// again only after it was seen false), once (then spent until `alerts rearm ID`), or
    /// cooldown:DURATION (while true, at most once per DURATION, e.g. cooldown:30m).
    #[arg(long, value_name = "POLICY")]
    pub repeat: Option<String>,

    /// Do not look the ticker up on Kalshi first (offline use, or a market not listed yet);
    /// for --event or --series, do not check that it has open markets.
    #[arg(long)]
    pub no_check: bool,
}

/// How a scan reads the markets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScanKind {
    /// Only the markets the conditions watch.
    Auto,
    /// Every open market.
    Full,
}

impl ScanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanKind::Auto => "auto",
            ScanKind::Full => "full",
        }
    }
}

/// Where the monitor reads markets from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// Kalshi's public REST API (KALSHI_API_BASE_URL or --env picks the host).
    Api,
    /// The recorded market data bundled with this program: no network needed.
    Replay,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Api => "api",
            SourceKind::Replay => "replay",
        }
    }
}

/// The longest `--interval`, in seconds: the core's limit.
pub const MAX_INTERVAL_SECS: u64 = kalshi_alerts_core::monitor::MAX_INTERVAL.as_secs();

#[derive(Debug, Clone, Args)]
pub struct MonitorArgs {
    /// Seconds from the start of one check to the start of the next (a fixed schedule; a
    /// check that overruns it is followed at once by one check, not a burst). At most
    /// 31536000 (a year).
    #[arg(long, short = 'i', default_value_t = 60, value_name = "SEC",
          value_parser = clap::value_parser!(u64).range(0..=MAX_INTERVAL_SECS))]
    pub interval: u64,

    /// Run one check, then exit.
    #[arg(long, conflicts_with = "cycles")]
    pub once: bool,

    /// Run this many checks, then exit.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub cycles: Option<u64>,

    /// Read at most N pages of markets per check (the scan is then truncated, with a warning).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pages: Option<u64>,

    /// Run in the background; logs go to alert_monitor.log in the data dir.
    #[arg(long, conflicts_with = "launcher")]
    pub daemon: bool,

    /// Also append each fired alert as a JSON line to this file.
    #[arg(long, value_name = "PATH")]
    pub output_file: Option<PathBuf>,

    /// How to run the monitor: a registered launcher (foreground, daemon).
    #[arg(long, value_name = "NAME")]
    pub launcher: Option<String>,

    /// Also deliver every alert through these setting-less notifier kinds (console, log),
    /// comma-separated or repeated. Without a notifiers file the default is console,log.
    #[arg(long = "notifier", value_name = "KIND", value_delimiter = ',')]
    pub notifiers: Option<Vec<String>>,

    /// Where markets come from.
    #[arg(long, value_enum, default_value = "api")]
    pub source: SourceKind,

    /// auto: ask the API for the watched markets only (the `tickers` filter, 100 a request,
    /// and one listing per watched event or series); full: read every open market, page
    /// after page, as the Python tool does.
    #[arg(long, value_enum, default_value = "auto", value_name = "MODE")]
    pub scan: ScanKind,

    /// Leave out multivariate combo markets (`mve_filter=exclude`); only with --scan full,
    /// refused otherwise.
    #[arg(long)]
    pub skip_combos: bool,

    /// Seconds one API request may take before it is retried.
    #[arg(long, default_value_t = 30, value_name = "SEC",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,

    /// At most N API requests per second, retries included. Kalshi's basic tier allows 20;
    /// raise it only if your account's tier allows more.
    #[arg(long, default_value_t = 20, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rate: u32,
}

#[derive(Debug, Args)]
pub struct TrimLogArgs {
    /// The log to trim [default: alert_monitor.log in the data dir].
    #[arg(long, value_name = "PATH")]
    pub log: Option<PathBuf>,

    /// Trim only when the log is larger than this many MiB.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub max_mb: u64,

    /// Keep this many MiB from the end, cut at a line boundary.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub keep_mb: u64,

    /// Trim for real; without it, only say what would happen.
    #[arg(long)]
    pub apply: bool,
}
