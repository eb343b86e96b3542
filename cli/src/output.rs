//! Writing to the terminal without panicking.
//!
//! `println!` panics when stdout is a closed pipe (`kalshi alerts list |
//! head -1`), and so does `eprintln!` for stderr. A closed pipe is a normal
//! end for a reader, not an error of ours, so these writes ignore it.

use std::fmt;
use std::io::Write;

/// Writes one line to stdout; a closed stdout is ignored.
pub fn line(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    let _ = out.flush();
}

/// Writes text to stdout as it is; a closed stdout is ignored.
pub fn text(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Writes one line to stderr; a closed stderr is ignored.
pub fn error_line(args: fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// `println!` that does not panic on a closed stdout.
macro_rules! say {
    ($($arg:tt)*) => { $crate::output::line(format_args!($($arg)*)) };
}
pub(crate) use say;
