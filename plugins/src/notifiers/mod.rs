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

/// A local write failed: a full disk (or quota) may pass once space is
/// freed, so it is retried; anything else (permissions, a directory in the
/// way, a closed pipe) repeats until someone acts, so it is not.
pub(crate) fn write_failure(
    what: String,
    error: &std::io::Error,
) -> kalshi_alerts_core::NotifyError {
    use kalshi_alerts_core::NotifyError;
    let full = error.kind() == std::io::ErrorKind::StorageFull || {
        #[cfg(unix)]
        {
            matches!(
                error.raw_os_error(),
                Some(libc::ENOSPC) | Some(libc::EDQUOT)
            )
        }
        #[cfg(not(unix))]
        {
            false
        }
    };
    let message = format!("{what}: {error}");
    if full {
        NotifyError::retryable(message)
    } else {
        NotifyError::permanent(message)
    }
}
