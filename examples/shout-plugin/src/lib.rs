//! `shout`: a notifier compiled into the program. It appends each alert as
//! one upper-case line to a file, as a plain-text pager or a log watcher
//! might want it:
//!
//! ```text
//! KXSAMPLE-TEST PRICE > 0.6 (NOW 0.62): SAMPLE ALERT
//! ```
//!
//! It registers itself with `register_notifier!`; a binary that links this
//! crate (and calls [`link`], so that the linker keeps it) lists `shout` in
//! `kalshi notifiers list` and configures it like a built-in kind. See
//! `examples/kalshi-with-shout`.

#![forbid(unsafe_code)]

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use kalshi_alerts_sdk::{
    async_trait, FiredAlert, Notifier, NotifyError, SettingKind, SettingSpec, Settings,
    SettingsError,
};

pub const NAME: &str = "shout";

struct Shout {
    path: PathBuf,
}

/// The line written for `alert`, newline included.
pub fn line(alert: &FiredAlert) -> String {
    let mut text = alert.summary();
    if !alert.label.is_empty() {
        text = format!("{text}: {}", alert.label);
    }
    format!("{}\n", text.to_uppercase())
}

#[async_trait]
impl Notifier for Shout {
    async fn notify(&self, alert: &FiredAlert) -> Result<(), NotifyError> {
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir)?;
            }
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            file.write_all(line(alert).as_bytes())
        };
        write().map_err(|e| {
            NotifyError::permanent(format!("cannot shout into {}: {e}", self.path.display()))
        })
    }
}

const SETTINGS: &[SettingSpec] = &[SettingSpec {
    name: "path",
    kind: SettingKind::Path,
    default: None,
    required: true,
    secret: false,
    help: "the text file to append the upper-case lines to",
}];

fn build(settings: &Settings) -> Result<Box<dyn Notifier>, SettingsError> {
    let path = settings
        .get("path")
        .and_then(|v| v.as_str())
        .map(PathBuf::from)
        .ok_or_else(|| SettingsError {
            notifier: NAME.into(),
            key: "path".into(),
            problem: "missing".into(),
        })?;
    Ok(Box::new(Shout { path }))
}

kalshi_alerts_sdk::register_notifier! {
    name: NAME,
    description: "writes each alert as an upper-case line to a text file",
    settings: SETTINGS,
    build: build,
}

/// Call once from `main`: it does nothing, but makes the linker keep this
/// crate, and with it the registration above, in a binary that names
/// nothing else from it.
#[inline(never)]
pub fn link() {
    std::hint::black_box(NAME);
}

#[cfg(test)]
mod tests {
    use kalshi_alerts_sdk::testing::sample_alert;

    use super::*;

    #[tokio::test]
    async fn the_registered_kind_shouts_into_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shouts.txt");
        let kind = kalshi_alerts_sdk::find_notifier(NAME).expect("shout is registered");
        let settings = kalshi_alerts_sdk::serde_json::json!({"path": path.to_str().unwrap()});
        let notifier = kind.instantiate(settings.as_object().unwrap()).unwrap();
        notifier.notify(&sample_alert()).await.unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "KXSAMPLE-TEST PRICE > 0.6 (NOW 0.62): SAMPLE ALERT\n"
        );
    }
}
