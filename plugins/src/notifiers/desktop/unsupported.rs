//! Platforms notify-rust is not built for: every delivery and every check
//! fails for good, naming the platform and where it works.

use kalshi_alerts_core::NotifyError;

use super::Popup;

fn unsupported() -> NotifyError {
    NotifyError::permanent(format!(
        "desktop notifications are not supported on {}; they work on Linux, FreeBSD, \
         macOS and Windows",
        std::env::consts::OS
    ))
}

pub async fn show(_: Popup) -> Result<(), NotifyError> {
    Err(unsupported())
}

pub async fn check() -> Result<(), NotifyError> {
    Err(unsupported())
}
