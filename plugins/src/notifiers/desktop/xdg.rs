//! Delivery over D-Bus to the `org.freedesktop.Notifications` service, the
//! way Linux and BSD desktops show notifications, and what each failure
//! means to someone who has to fix it.
//!
//! notify-rust opens a fresh session bus connection for every call, reading
//! the bus address from `DBUS_SESSION_BUS_ADDRESS` (or, when that is unset,
//! `$XDG_RUNTIME_DIR/bus`), so a notifier holds no connection between
//! alerts and survives a bus that restarts.

use kalshi_alerts_core::NotifyError;
use notify_rust::{Notification, Timeout, Urgency};

use super::{Level, Popup};

/// Sends one notification and waits for the service's answer (its id).
///
/// The call is async all the way down (zbus runs its own reactor), so no
/// runtime worker thread waits on the bus.
pub async fn show(popup: Popup) -> Result<(), NotifyError> {
    let mut notification = Notification::new();
    notification
        .appname(&popup.app_name)
        .summary(&popup.summary)
        .body(&popup.body)
        .timeout(match popup.expire_ms {
            0 => Timeout::Never,
            ms => Timeout::Milliseconds(ms),
        })
        .urgency(match popup.level {
            Level::Low => Urgency::Low,
            Level::Normal => Urgency::Normal,
            Level::Critical => Urgency::Critical,
        });
    if let Some(icon) = &popup.icon {
        notification.icon(icon);
    }
    // The handle only keeps the connection open for action callbacks, of
    // which an alert has none; dropping it leaves the popup on screen.
    notification
        .show_async()
        .await
        .map(drop)
        .map_err(|e| classify(&e.to_string()))
}

/// Asks the notification service who it is: proves that the session bus
/// is reachable and that a service answers on the name, starting one
/// through D-Bus activation if it is installed but not running, just as the
/// first alert would. Sends no notification.
pub async fn check() -> Result<(), NotifyError> {
    // notify-rust offers this query only as a blocking call. It runs on a
    // thread of its own rather than `spawn_blocking`: a service that owns
    // the name but never answers holds the call for the bus's reply timeout
    // (25 s by default), and a runtime waits for its blocking pool when it
    // shuts down, but not for a plain thread. The core's instance timeout
    // bounds how long `check` itself waits.
    let (sender, answer) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("desktop-check".into())
        .spawn(move || {
            let result = notify_rust::get_server_information().map_err(|e| e.to_string());
            // The receiver is gone when the caller timed out; nothing to do.
            let _ = sender.send(result);
        })
        .map_err(|e| NotifyError::retryable(format!("cannot start the desktop check: {e}")))?;
    match answer.await {
        Ok(Ok(info)) => {
            tracing::debug!(
                server = %info.name,
                vendor = %info.vendor,
                version = %info.version,
                "notification service answers"
            );
            Ok(())
        }
        Ok(Err(text)) => Err(classify(&text)),
        Err(_) => Err(NotifyError::retryable(
            "the desktop check ended without an answer",
        )),
    }
}

const START_A_DAEMON: &str = "start a notification daemon in the desktop session \
     (your desktop's own, or dunst, mako, xfce4-notifyd)";

/// Reads a D-Bus failure, as notify-rust and zbus word it, into what went
/// wrong, what to do, and whether trying again could help.
///
/// zbus's error is not reachable as a type through notify-rust, but its
/// text starts with a fixed phrase per stage (connecting, handshake), and
/// a method error with its standard D-Bus error name, which is what this
/// goes by.
pub fn classify(text: &str) -> NotifyError {
    let permanent = NotifyError::permanent;

    if let Some(rest) = text.strip_prefix("failed to connect to `") {
        // "failed to connect to `unix:path=/x`: No such file or directory"
        let (address, why) = rest.split_once("`: ").unwrap_or((rest, ""));
        let default = if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
            " (the default, as DBUS_SESSION_BUS_ADDRESS is unset)"
        } else {
            ""
        };
        return permanent(format!(
            "no D-Bus session bus at {address}{default}: {why}; run inside a desktop \
             session, or set DBUS_SESSION_BUS_ADDRESS to the address of a running session bus"
        ));
    }
    if text.starts_with("address error") {
        return permanent(format!(
            "the D-Bus session bus address is not usable ({text}); set \
             DBUS_SESSION_BUS_ADDRESS to the address of a running session bus, \
             such as unix:path=/run/user/1000/bus"
        ));
    }
    if text.starts_with("D-Bus handshake failed") {
        return permanent(format!(
            "the D-Bus session bus refused this process ({text}); run as the user who \
             owns the desktop session"
        ));
    }

    // A method error: "org.freedesktop.DBus.Error.Name: detail".
    let (name, detail) = text.split_once(": ").unwrap_or((text, ""));
    let Some(short) = name.strip_prefix("org.freedesktop.DBus.Error.") else {
        if text.starts_with("I/O error") {
            // The connection broke mid-call: the bus may be restarting.
            return NotifyError::retryable(format!(
                "the D-Bus session bus connection broke: {text}"
            ));
        }
        // Anything else comes from the service itself rejecting the call
        // (bad arguments, say), which it will do again.
        return permanent(format!(
            "the notification service refused the notification: {text}"
        ));
    };
    match short {
        "ServiceUnknown" | "NameHasNoOwner" => permanent(format!(
            "no notification service on the D-Bus session bus (nothing owns \
             org.freedesktop.Notifications, and the bus knows of none to start); \
             {START_A_DAEMON}"
        )),
        spawn if spawn.starts_with("Spawn.") => permanent(format!(
            "the D-Bus session bus could not start the notification service: {detail}; \
             a notification daemon usually needs a display: {START_A_DAEMON} yourself, \
             or give the bus's activation environment DISPLAY or WAYLAND_DISPLAY \
             (dbus-update-activation-environment)"
        )),
        // A busy, hung or restarting service.
        "NoReply" | "Timeout" | "TimedOut" | "LimitsExceeded" | "NoMemory" | "Disconnected" => {
            NotifyError::retryable(format!(
                "the notification service did not answer ({short}): {detail}"
            ))
        }
        "AccessDenied" => permanent(format!(
            "the D-Bus session bus does not let this process call the notification \
             service: {detail}"
        )),
        _ => permanent(format!(
            "the notification service refused the notification: {text}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use kalshi_alerts_core::FailureKind;

    use super::*;

    #[test]
    fn a_missing_bus_socket_is_permanent_and_says_what_to_set() {
        let e = classify(
            "failed to connect to `unix:path=/tmp/x/bus`: No such file or directory (os error 2)",
        );
        assert_eq!(e.kind, FailureKind::Permanent);
        // Whether "(the default ...)" follows the address depends on this
        // process's environment.
        assert!(
            e.message
                .starts_with("no D-Bus session bus at unix:path=/tmp/x/bus"),
            "{}",
            e.message
        );
        assert!(e.message.contains(": No such file"), "{}", e.message);
        assert!(
            e.message.contains("DBUS_SESSION_BUS_ADDRESS"),
            "{}",
            e.message
        );
    }

    #[test]
    fn no_notification_service_is_permanent_and_says_to_start_a_daemon() {
        let e = classify(
            "org.freedesktop.DBus.Error.ServiceUnknown: The name org.freedesktop.Notifications \
             was not provided by any .service files",
        );
        assert_eq!(e.kind, FailureKind::Permanent);
        assert!(
            e.message.contains("no notification service"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("start a notification daemon"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_failed_activation_is_permanent_and_mentions_the_display() {
        let e = classify(
            "org.freedesktop.DBus.Error.Spawn.ChildExited: Process org.freedesktop.Notifications \
             exited with status 1",
        );
        assert_eq!(e.kind, FailureKind::Permanent);
        assert!(e.message.contains("could not start"), "{}", e.message);
        assert!(e.message.contains("exited with status 1"), "{}", e.message);
        assert!(e.message.contains("DISPLAY"), "{}", e.message);
    }

    #[test]
    fn a_service_that_does_not_answer_is_retryable() {
        let e = classify(
            "org.freedesktop.DBus.Error.NoReply: Did not receive a reply. Possible causes \
             include: the remote application did not send a reply",
        );
        assert_eq!(e.kind, FailureKind::Retryable);
        assert!(
            e.message.contains("did not answer (NoReply)"),
            "{}",
            e.message
        );
        let cut = classify("I/O error: Broken pipe (os error 32)");
        assert_eq!(cut.kind, FailureKind::Retryable);
    }

    #[test]
    fn a_rejected_call_is_permanent() {
        let e = classify("org.freedesktop.DBus.Error.InvalidArgs: bad hint");
        assert_eq!(e.kind, FailureKind::Permanent);
        assert!(e.message.contains("refused"), "{}", e.message);
    }
}
