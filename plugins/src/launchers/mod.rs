//! Built-in launchers, one folder each.

pub mod daemon;
pub mod foreground;

/// The names the built-in launchers register under.
pub const NAMES: &[&str] = &[daemon::NAME, foreground::NAME];
