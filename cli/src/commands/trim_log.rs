//! `kalshi alerts trim-log`: keep the daemon's log within bounds.
//!
//! The kept tail is written to a new file that replaces the log atomically.
//! That is only safe while no monitor has the log open for appending, so
//! the command refuses while one runs for the data dir.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::process::ExitCode;

use kalshi_alerts_core::lock::MonitorLock;
use kalshi_alerts_core::store::write_atomically;

use super::Context;
use crate::args::TrimLogArgs;
use crate::error::{CliError, CliResult};
use crate::output::say;

const MIB: u64 = 1024 * 1024;

pub fn run(context: &Context, args: TrimLogArgs) -> CliResult<ExitCode> {
    if args.max_mb == 0 {
        return Err(CliError::usage("--max-mb must be at least 1"));
    }
    if args.keep_mb > args.max_mb {
        return Err(CliError::usage(format!(
            "--keep-mb ({}) must not exceed --max-mb ({})",
            args.keep_mb, args.max_mb
        )));
    }
    let mib = |n: u64, flag: &str| {
        n.checked_mul(MIB)
            .ok_or_else(|| CliError::usage(format!("{flag} {n} is too large; give a size in MiB")))
    };
    let (max_bytes, keep_bytes) = (
        mib(args.max_mb, "--max-mb")?,
        mib(args.keep_mb, "--keep-mb")?,
    );
    let log = args.log.clone().unwrap_or_else(|| context.log_path());
    let size = match std::fs::metadata(&log) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            say!("No log file at {}; nothing to trim.", log.display());
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(CliError::invalid(format!("log {}: {e}", log.display()))),
    };
    if size <= max_bytes {
        say!(
            "Log {} is {} bytes, within --max-mb {}; nothing to trim.",
            log.display(),
            size,
            args.max_mb
        );
        return Ok(ExitCode::SUCCESS);
    }

    let log_dir = log.parent().map(Path::to_path_buf).unwrap_or_default();
    let holder = MonitorLock::holder(&context.data_dir)
        .ok()
        .flatten()
        .or_else(|| MonitorLock::holder(&log_dir).ok().flatten());
    if let Some(holder) = holder {
        return Err(CliError::invalid(format!(
            "the alert monitor ({holder}) is writing to {}; stop it first with \
             `kalshi alerts stop`",
            log.display()
        )));
    }

    let tail = read_tail(&log, size, keep_bytes)
        .map_err(|e| CliError::invalid(format!("cannot read log {}: {e}", log.display())))?;
    if !args.apply {
        say!(
            "Would trim {} from {} to {} bytes, keeping whole lines (dry run; pass --apply to trim).",
            log.display(),
            size,
            tail.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    write_atomically(&log, &tail)
        .map_err(|e| CliError::invalid(format!("cannot rewrite log {}: {e}", log.display())))?;
    say!(
        "Trimmed {} from {} to {} bytes.",
        log.display(),
        size,
        tail.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// The last `keep` bytes of the file, starting after a line break so that
/// no partial line is kept.
fn read_tail(path: &std::path::Path, size: u64, keep: u64) -> io::Result<Vec<u8>> {
    if keep == 0 {
        return Ok(Vec::new());
    }
    if keep >= size {
        return std::fs::read(path);
    }
    // Read one byte before the window: when it is a line break, the window
    // already starts a whole line and nothing needs cutting.
    let start = size - keep - 1;
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::with_capacity(keep as usize + 1);
    file.read_to_end(&mut tail)?;
    let cut = tail
        .iter()
        .position(|&b| b == b'\n')
        .map_or(tail.len(), |i| i + 1);
    tail.drain(..cut);
    Ok(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_starts_at_a_line_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, b"first line\nsecond line\nthird\n").unwrap();
        let size = std::fs::metadata(&path).unwrap().len();

        assert_eq!(read_tail(&path, size, 10).unwrap(), b"third\n");
        assert_eq!(read_tail(&path, size, 17).unwrap(), b"third\n");
        assert_eq!(read_tail(&path, size, 18).unwrap(), b"second line\nthird\n");
        assert_eq!(read_tail(&path, size, 19).unwrap(), b"second line\nthird\n");
        assert_eq!(read_tail(&path, size, 6).unwrap(), b"third\n");
        assert_eq!(read_tail(&path, size, 5).unwrap(), b"");
        assert_eq!(read_tail(&path, size, 1000).unwrap().len() as u64, size);
        assert!(read_tail(&path, size, 0).unwrap().is_empty());
    }
}
