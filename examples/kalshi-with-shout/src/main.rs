//! The whole `kalshi` command, plus the `shout` notifier of
//! `examples/shout-plugin` compiled in: a third party's own build of the
//! tool, with no fork. `kalshi-with-shout notifiers list` shows `shout`
//! beside the built-in kinds, and a `[[notifier]]` of kind `shout` in the
//! notifiers file works like any other.

use std::process::ExitCode;

fn main() -> ExitCode {
    shout_plugin::link();
    kalshi_alerts_cli::main()
}
