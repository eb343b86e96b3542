//! Built-in notifiers, one folder each.

pub mod console;
pub mod file;
pub mod log;

/// The names the built-in notifiers register under.
pub const NAMES: &[&str] = &[console::NAME, file::NAME, log::NAME];
