//! The `desktop` notifier: a popup on the desktop of the user running the
//! monitor, through notify-rust.
//!
//! This file holds the settings and what a popup is; `message.rs` writes
//! its words; one platform module shows it: `xdg.rs` on Linux and FreeBSD
//! (over the D-Bus session bus to whatever notification daemon owns
//! `org.freedesktop.Notifications`), `native.rs` on macOS and Windows
//! (notify-rust's native path), `unsupported.rs` elsewhere (notify-rust is
//! not linked there; every delivery fails for good, saying so).

mod message;

#[cfg(any(target_os = "linux", target_os = "freebsd"))]
mod xdg;
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
use xdg as platform;

#[cfg(any(target_os = "macos", target_os = "windows"))]
mod native;
#[cfg(any(target_os = "macos", target_os = "windows"))]
use native as platform;

#[cfg(not(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "macos",
    target_os = "windows"
)))]
mod unsupported;
#[cfg(not(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "macos",
    target_os = "windows"
)))]
use unsupported as platform;

use kalshi_alerts_core::notifier::SettingsError;
use kalshi_alerts_core::{
    async_trait, FiredAlert, Notifier, NotifierPlugin, NotifyError, SettingKind, SettingSpec,
    Settings,
};

pub const NAME: &str = "desktop";

const URGENCIES: &[&str] = &["low", "normal", "critical"];

const SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        name: "app_name",
        kind: SettingKind::String,
        default: Some("kalshi-alerts"),
        required: false,
        secret: false,
        help: "the application name the desktop groups and filters the popups by \
               (ignored on macOS)",
    },
    SettingSpec {
        name: "urgency",
        kind: SettingKind::Choice(URGENCIES),
        default: Some("normal"),
        required: false,
        secret: false,
        help: "how insistent the popup is; critical ones usually stay until dismissed \
               (ignored on macOS)",
    },
    SettingSpec {
        name: "expire_ms",
        kind: SettingKind::Integer,
        default: Some("10000"),
        required: false,
        secret: false,
        help: "milliseconds the popup stays on screen, 0 until dismissed; the notification \
               daemon may override it (Windows only tells short from long, macOS ignores it)",
    },
    SettingSpec {
        name: "icon",
        kind: SettingKind::String,
        default: None,
        required: false,
        secret: false,
        help: "an icon name from the desktop's theme (dialog-information) or an absolute \
               path to an image; none when absent (ignored on macOS)",
    },
];

/// How insistent a popup is, whatever the platform calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Low,
    Normal,
    Critical,
}

/// One popup, ready for a platform to show.
#[derive(Debug, Clone)]
// Platforms read different parts of it; it is built whole everywhere so
// that settings are checked the same way on every platform.
#[cfg_attr(not(any(target_os = "linux", target_os = "freebsd")), allow(dead_code))]
struct Popup {
    app_name: String,
    summary: String,
    body: String,
    icon: Option<String>,
    level: Level,
    /// 0: until dismissed.
    expire_ms: u32,
}

struct DesktopNotifier {
    app_name: String,
    icon: Option<String>,
    level: Level,
    expire_ms: u32,
}

impl DesktopNotifier {
    fn popup(&self, alert: &FiredAlert) -> Popup {
        Popup {
            app_name: self.app_name.clone(),
            summary: message::summary(alert),
            body: message::body(alert),
            icon: self.icon.clone(),
            level: self.level,
            expire_ms: self.expire_ms,
        }
    }
}

#[async_trait]
impl Notifier for DesktopNotifier {
    async fn notify(&self, alert: &FiredAlert) -> Result<(), NotifyError> {
        platform::show(self.popup(alert)).await
    }

    async fn check(&self) -> Result<(), NotifyError> {
        platform::check().await
    }
}

fn build(settings: &Settings) -> Result<Box<dyn Notifier>, SettingsError> {
    Ok(Box::new(parse(settings)?))
}

/// Reads settings already validated against [`SETTINGS`] and filled with
/// their defaults, checking what their kinds cannot say.
fn parse(settings: &Settings) -> Result<DesktopNotifier, SettingsError> {
    let fail = |key: &str, problem: String| SettingsError {
        notifier: NAME.into(),
        key: key.into(),
        problem,
    };
    let text = |key: &str| {
        settings
            .get(key)
            .and_then(|v| v.as_str())
            .map(|s| s.trim().to_string())
    };

    let app_name = text("app_name").unwrap_or_else(|| "kalshi-alerts".into());
    let level = match text("urgency").as_deref() {
        Some("low") => Level::Low,
        Some("critical") => Level::Critical,
        _ => Level::Normal,
    };
    let expire_ms = settings
        .get("expire_ms")
        .and_then(|v| v.as_i64())
        .unwrap_or(10_000);
    // The D-Bus call carries the timeout as a signed 32-bit number, where
    // -1 means "the daemon's default"; that is not offered, so that a
    // typo'd negative number is caught instead of silently meaning it.
    let expire_ms = u32::try_from(expire_ms)
        .ok()
        .filter(|ms| i32::try_from(*ms).is_ok())
        .ok_or_else(|| {
            fail(
                "expire_ms",
                format!(
                    "expected milliseconds from 0 (until dismissed) to {}, got {expire_ms}",
                    i32::MAX
                ),
            )
        })?;
    let icon = text("icon");
    if let Some(path) = icon.as_deref().filter(|i| i.contains('/')) {
        // A name from the icon theme has no slash; a path must be absolute
        // because the daemon, not this process, opens it.
        if !std::path::Path::new(path).is_absolute() {
            return Err(fail(
                "icon",
                format!("expected an icon name or an absolute path, got {path:?}"),
            ));
        }
    }

    Ok(DesktopNotifier {
        app_name,
        icon,
        level,
        expire_ms,
    })
}

kalshi_alerts_core::inventory::submit! {
    NotifierPlugin {
        name: NAME,
        description: "shows each alert as a desktop popup (D-Bus notification daemon on \
                      Linux/BSD, the notification centre on macOS and Windows)",
        settings: SETTINGS,
        build,
    }
}

#[cfg(test)]
mod tests {
    use kalshi_alerts_core::notifier::find_notifier;

    use super::*;

    fn instantiate(json: serde_json::Value) -> Result<Box<dyn Notifier>, SettingsError> {
        find_notifier(NAME)
            .expect("desktop is registered")
            .instantiate(json.as_object().unwrap())
    }

    fn refusal(json: serde_json::Value) -> SettingsError {
        match instantiate(json) {
            Ok(_) => panic!("settings were accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn defaults_build() {
        assert!(instantiate(serde_json::json!({})).is_ok());
        let full = find_notifier(NAME).unwrap().with_defaults(&Settings::new());
        assert_eq!(full["app_name"], "kalshi-alerts");
        assert_eq!(full["urgency"], "normal");
        assert_eq!(full["expire_ms"], 10000);
        assert!(!full.contains_key("icon"));
    }

    #[test]
    fn every_setting_is_read() {
        let settings = serde_json::json!({
            "app_name": "markets", "urgency": "critical", "expire_ms": 2500,
            "icon": "/usr/share/icons/bell.png"
        });
        let notifier = parse(settings.as_object().unwrap()).unwrap();
        let popup = notifier.popup(&sample());
        assert_eq!(popup.app_name, "markets");
        assert_eq!(popup.level, Level::Critical);
        assert_eq!(popup.expire_ms, 2500);
        assert_eq!(popup.icon.as_deref(), Some("/usr/share/icons/bell.png"));
        assert_eq!(popup.summary, "T: volume > 10");
        assert!(
            popup.body.starts_with("t\nnow 20 vs threshold 10\n"),
            "{}",
            popup.body
        );
    }

    #[test]
    fn an_unknown_urgency_is_refused_naming_the_choices() {
        let err = refusal(serde_json::json!({"urgency": "urgent"}));
        assert_eq!(err.key, "urgency");
        assert!(err.problem.contains("low, normal, critical"), "{err}");
    }

    #[test]
    fn a_negative_or_huge_expiry_is_refused() {
        for bad in [-1i64, 1 << 31] {
            let err = refusal(serde_json::json!({ "expire_ms": bad }));
            assert_eq!(err.key, "expire_ms");
            assert!(err.problem.contains(&bad.to_string()), "{err}");
        }
        assert!(instantiate(serde_json::json!({"expire_ms": 0})).is_ok());
    }

    #[test]
    fn a_relative_icon_path_is_refused() {
        let err = refusal(serde_json::json!({"icon": "icons/bell.png"}));
        assert_eq!(err.key, "icon");
        assert!(err.problem.contains("absolute path"), "{err}");
        assert!(instantiate(serde_json::json!({"icon": "dialog-information"})).is_ok());
    }

    fn sample() -> FiredAlert {
        let condition: kalshi_alerts_core::Condition = serde_json::from_value(serde_json::json!({
            "id": "c1", "condition_type": "volume_above", "ticker": "T",
            "threshold": 10, "label": "", "created_at": ""
        }))
        .unwrap();
        let market = kalshi_alerts_core::Market {
            ticker: "T".into(),
            title: "t".into(),
            status: "active".into(),
            event_ticker: String::new(),
            yes_bid: None,
            yes_ask: None,
            volume: Some(20.into()),
        };
        FiredAlert::new(&condition, &market, 20.into(), chrono::Utc::now())
    }
}
