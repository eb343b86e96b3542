//! The built-in plugins of kalshi-alerts.
//!
//! Each notifier and launcher lives in its own folder and registers itself
//! with `inventory::submit!`; nothing here is called by name. Linking this
//! crate into a program is what makes the plugins appear in its registries.

pub mod launchers;
pub mod notifiers;

/// Keeps this crate's registrations in a binary that names nothing else
/// from it. A linker may drop an rlib no symbol of which is used; calling
/// this once from `main` is a cheap guarantee that it does not.
#[inline(never)]
pub fn link() {
    std::hint::black_box(notifiers::NAMES);
    std::hint::black_box(launchers::NAMES);
}
