//! Example programs built on kalshi-alerts.
//!
//! This crate's own binary is `embed_replay` (a monitor embedded in a
//! program). The crates beside it are plugins and programs of a third
//! party: `shout-plugin` and `kalshi-with-shout` (a notifier compiled in),
//! `csv-plugin` (a notifier loaded at run time), and `broken-plugins/`
//! (plugins broken on purpose, for the tests).
