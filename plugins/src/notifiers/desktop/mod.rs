//! The `desktop` notifier (being built).

pub const NAME: &str = "desktop";
