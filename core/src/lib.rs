//! kalshi-alerts core: the domain of market alerts and the monitor loop.
//!
//! This crate knows markets, conditions, fired alerts, the alert store, the
//! Kalshi market client and the monitor loop. Notifiers and launchers are
//! plugins: it defines their traits and registries, and names none of them.

pub mod abi;
pub mod alert;
pub mod condition;
pub mod dispatch;
pub mod display;
pub mod launcher;
pub mod lock;
pub mod market;
pub mod monitor;
pub mod notifier;
pub mod notifiers_file;
pub mod percent;
pub mod plugin_host;
pub mod price;
pub mod private;
pub mod secret;
pub mod source;
pub mod state;
pub mod store;
pub mod tls;

pub use alert::{FiredAlert, MarketData};
pub use condition::{Condition, ConditionState, ConditionType, Evaluation, RepeatPolicy, Scope};
pub use dispatch::{DeliveryRetry, DispatchReport, NamedNotifier};
pub use launcher::{LaunchError, LaunchOutcome, Launcher, LauncherPlugin, MonitorJob};
pub use market::{Market, Quote};
pub use monitor::{Monitor, RunOptions, RunReport, StopReason};
pub use notifier::{
    FailureKind, Notifier, NotifierPlugin, NotifyError, SettingKind, SettingSpec, Settings,
};
pub use source::{
    check_base_url, ClientConfig, Environment, KalshiClient, MarketSource, ReplaySource, Scan,
    ScanMode, Watchlist,
};
pub use state::StateStore;
pub use store::{AlertStore, AlertsFile};

/// Re-exported so that plugin crates implement [`Notifier`] without a
/// direct dependency.
pub use async_trait::async_trait;
/// Re-exported so that plugin crates register with the same `inventory`.
pub use inventory;
