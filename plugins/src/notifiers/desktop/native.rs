//! Delivery through notify-rust's native path on macOS (the notification
//! centre) and Windows (a toast).
//!
//! Both calls block, so they run on the blocking pool, away from the
//! runtime's worker threads. Neither platform can be asked whether a popup
//! would show without showing one, so there is nothing to check.

use kalshi_alerts_core::NotifyError;
use notify_rust::{Notification, Timeout};

use super::Popup;

pub async fn show(popup: Popup) -> Result<(), NotifyError> {
    let shown = tokio::task::spawn_blocking(move || {
        let mut notification = Notification::new();
        notification
            .appname(&popup.app_name)
            .summary(&popup.summary)
            .body(&popup.body)
            .timeout(match popup.expire_ms {
                0 => Timeout::Never,
                ms => Timeout::Milliseconds(ms),
            });
        // macOS has neither urgency (notify-rust deprecates it there) nor
        // a settable icon.
        #[cfg(target_os = "windows")]
        {
            use super::Level;
            notification.urgency(match popup.level {
                Level::Low => notify_rust::Urgency::Low,
                Level::Normal => notify_rust::Urgency::Normal,
                Level::Critical => notify_rust::Urgency::Critical,
            });
            if let Some(icon) = &popup.icon {
                notification.icon(icon);
            }
        }
        notification.show().map(drop).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| NotifyError::retryable(format!("the desktop notification task failed: {e}")))?;
    // The native centres fail for reasons a retry does not change (no
    // permission, no application identity); pass on what they said.
    shown.map_err(|e| NotifyError::permanent(format!("cannot show a desktop notification: {e}")))
}

pub async fn check() -> Result<(), NotifyError> {
    Ok(())
}
