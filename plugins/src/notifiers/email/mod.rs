//! The `email` notifier (being built).

pub const NAME: &str = "email";
