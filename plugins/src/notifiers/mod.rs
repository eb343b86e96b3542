//! Built-in notifiers, one folder each.

pub mod console;
pub mod desktop;
pub mod email;
pub mod file;
pub mod log;
mod tls;
pub mod webhook;

/// The names the built-in notifiers register under.
pub const NAMES: &[&str] = &[
    console::NAME,
    desktop::NAME,
    email::NAME,
    file::NAME,
    log::NAME,
    webhook::NAME,
];
