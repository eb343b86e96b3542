//! The `webhook` notifier (being built).

pub const NAME: &str = "webhook";
