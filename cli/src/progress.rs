//! A progress line for long scans, on standard error, only on a terminal:
//! pages and markets read and the time elapsed, gone once the work is done.
//! Piped output and a daemon's log get nothing of it.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A spinner with a message, or nothing when standard error is not a
/// terminal (or `NO_COLOR`-style plain output is all a caller wants).
pub struct Progress(Option<ProgressBar>);

impl Progress {
    pub fn start(what: &str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix}: {msg} ({elapsed})")
                .expect("a valid template"),
        );
        bar.set_prefix(what.to_string());
        bar.set_message("starting");
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress(Some(bar))
    }

    pub fn update(&self, pages: usize, markets: usize) {
        if let Some(bar) = &self.0 {
            bar.set_message(format!("{pages} page(s), {markets} market(s) read"));
        }
    }

    /// Removes the line.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
