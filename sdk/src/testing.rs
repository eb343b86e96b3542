//! Helpers for a plugin's own tests.
//!
//! [`Harness`] drives an [`ExportedNotifier`] through the same C ABI table
//! and the same host code the `kalshi` binary uses for a loaded library,
//! only without loading one: settings go in as JSON, alerts go through
//! `notify` on a thread of the host's, panics come back as failures. A
//! plugin that passes its tests here behaves the same once loaded.

use kalshi_alerts_core::notifier::NotifierKind;
use kalshi_alerts_core::notifier::SettingsError;
use kalshi_alerts_core::{FiredAlert, Notifier, NotifyError};

use crate::ExportedNotifier;

/// An instance of `D` as the host sees it.
pub struct Harness {
    kind: &'static dyn NotifierKind,
    notifier: Box<dyn Notifier>,
    runtime: tokio::runtime::Runtime,
}

impl Harness {
    /// The kind `D` exports, as the host reads it from the table.
    pub fn kind<D: ExportedNotifier>() -> &'static dyn NotifierKind {
        let table = Box::leak(Box::new(crate::glue::build_table::<D>()));
        // SAFETY: the table was built by the SDK's own glue, whose views are
        // leaked or constant strings and whose functions follow the ABI.
        unsafe { kalshi_alerts_core::plugin_host::kind_from_table(table, "in-process test") }
            .unwrap_or_else(|e| panic!("the table of {} is refused: {e}", D::NAME))
    }

    /// Creates an instance of `D` through the table, from settings given
    /// as a JSON object, checked and completed as the host does.
    pub fn new<D: ExportedNotifier>(settings: serde_json::Value) -> Result<Harness, SettingsError> {
        let kind = Harness::kind::<D>();
        let settings = match settings {
            serde_json::Value::Object(map) => map,
            serde_json::Value::Null => Default::default(),
            other => panic!("settings must be a JSON object, not {other}"),
        };
        let notifier = kind.instantiate(&settings)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime starts");
        Ok(Harness {
            kind,
            notifier,
            runtime,
        })
    }

    /// The kind, as `kalshi notifiers list` would show it.
    pub fn notifier_kind(&self) -> &'static dyn NotifierKind {
        self.kind
    }

    /// Delivers one alert through the table's `notify`, as the host does.
    pub fn notify(&self, alert: &FiredAlert) -> Result<(), NotifyError> {
        self.runtime.block_on(self.notifier.notify(alert))
    }
}

/// An alert on a made-up market, like the one `kalshi notifiers test`
/// sends: a price condition at 0.6 met at 0.62.
pub fn sample_alert() -> FiredAlert {
    FiredAlert::sample("sample alert")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kalshi_alerts_core::{async_trait, FailureKind, SettingKind, SettingSpec, Settings};

    use super::*;

    /// Fails as its `mode` setting says.
    struct Moody(String);

    #[async_trait]
    impl Notifier for Moody {
        async fn notify(&self, alert: &FiredAlert) -> Result<(), NotifyError> {
            match self.0.as_str() {
                "fine" => Ok(()),
                "busy" => Err(
                    NotifyError::retryable(format!("busy with {}", alert.ticker))
                        .with_retry_after(Duration::from_millis(1500)),
                ),
                "broken" => Err(NotifyError::permanent("broken for good")),
                "hang" => {
                    std::thread::sleep(Duration::from_secs(2));
                    Ok(())
                }
                _ => panic!("moody about {}", alert.ticker),
            }
        }
    }

    struct MoodyKind;

    impl ExportedNotifier for MoodyKind {
        const NAME: &'static str = "moody";
        const DESCRIPTION: &'static str = "fails on demand";
        const SETTINGS: &'static [SettingSpec] = &[SettingSpec {
            name: "mode",
            kind: SettingKind::Choice(&[
                "fine",
                "busy",
                "broken",
                "hang",
                "panic",
                "panic-at-build",
            ]),
            default: Some("fine"),
            required: false,
            secret: false,
            help: "how to fail",
        }];

        fn build(settings: &Settings) -> Result<Box<dyn Notifier>, SettingsError> {
            let mode = settings["mode"].as_str().unwrap_or_default().to_string();
            if mode == "panic-at-build" {
                panic!("no instance today");
            }
            Ok(Box::new(Moody(mode)))
        }
    }

    fn moody(mode: &str) -> Harness {
        Harness::new::<MoodyKind>(serde_json::json!({ "mode": mode })).unwrap()
    }

    #[test]
    fn outcomes_cross_the_abi_with_their_kind_message_and_wait() {
        assert!(Harness::new::<MoodyKind>(serde_json::Value::Null)
            .unwrap()
            .notify(&sample_alert())
            .is_ok());

        let busy = moody("busy").notify(&sample_alert()).unwrap_err();
        assert_eq!(busy.kind, FailureKind::Retryable);
        assert_eq!(busy.message, "busy with KXSAMPLE-TEST");
        assert_eq!(busy.retry_after, Some(Duration::from_millis(1500)));

        let broken = moody("broken").notify(&sample_alert()).unwrap_err();
        assert_eq!(broken.kind, FailureKind::Permanent);
        assert_eq!(broken.message, "broken for good");
    }

    #[test]
    fn a_panic_becomes_a_permanent_failure_and_the_instance_lives_on() {
        let harness = moody("panic");
        for _ in 0..2 {
            let err = harness.notify(&sample_alert()).unwrap_err();
            assert_eq!(err.kind, FailureKind::Permanent);
            assert_eq!(
                err.message,
                "the moody plugin panicked: panic in notify: moody about KXSAMPLE-TEST"
            );
        }
    }

    #[test]
    fn a_panic_while_building_is_a_refusal_with_the_message() {
        let err = Harness::new::<MoodyKind>(serde_json::json!({"mode": "panic-at-build"}))
            .err()
            .unwrap();
        assert!(
            err.problem
                .contains("the plugin panicked while creating the notifier: panic in create: no instance today"),
            "{err}"
        );
    }

    #[test]
    fn a_hung_call_does_not_hold_up_the_caller_past_its_timeout() {
        let harness = moody("hang");
        let started = std::time::Instant::now();
        let alert = sample_alert();
        let outcome = harness.runtime.block_on(async {
            let call = harness.notifier.notify(&alert);
            tokio::time::timeout(Duration::from_millis(100), call).await
        });
        assert!(outcome.is_err(), "the call should have timed out");
        assert!(started.elapsed() < Duration::from_secs(1));
        // The call's thread keeps the instance alive; dropping it here
        // neither waits for the call nor destroys the instance under it.
        drop(harness);
    }

    #[test]
    fn concurrent_deliveries_on_one_instance_all_complete() {
        let harness = moody("fine");
        let kind = harness.notifier_kind();
        assert_eq!(kind.name(), "moody");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let notifier = std::sync::Arc::new(harness.notifier);
        runtime.block_on(async {
            let calls: Vec<_> = (0..16)
                .map(|_| {
                    let notifier = std::sync::Arc::clone(&notifier);
                    tokio::spawn(async move { notifier.notify(&sample_alert()).await })
                })
                .collect();
            for call in calls {
                call.await.unwrap().unwrap();
            }
        });
    }
}
