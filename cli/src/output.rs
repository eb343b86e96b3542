//! Writing to the terminal without panicking.
//!
//! `println!` panics when stdout is a closed pipe (`kalshi alerts list |
//! head -1`), and so does `eprintln!` for stderr. A closed pipe is a normal
//! end for a reader, not an error of ours, so these writes ignore it. Any
//! other failure (a full disk under `> backup.json`) is remembered, and
//! `main` turns it into exit 1: output that was lost must not look saved.

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;

static WRITE_FAILURE: Mutex<Option<String>> = Mutex::new(None);

/// Writes one line to stdout.
pub fn line(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    note(written);
}

/// Writes text to stdout as it is.
pub fn text(text: &str) {
    let mut out = io::stdout().lock();
    note(out.write_all(text.as_bytes()).and_then(|()| out.flush()));
}

fn note(written: io::Result<()>) {
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            let mut failure = WRITE_FAILURE.lock().unwrap_or_else(|p| p.into_inner());
            failure.get_or_insert_with(|| e.to_string());
        }
        _ => {}
    }
}

/// The first failed write to stdout, other than a closed pipe.
pub fn write_failure() -> Option<String> {
    WRITE_FAILURE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
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
