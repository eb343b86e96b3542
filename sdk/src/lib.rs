//! The kalshi-alerts plugin SDK: everything a third party needs to add a
//! notifier, in one crate.
//!
//! A notifier is an ordinary Rust type implementing [`Notifier`], described
//! by a name, a one-line description, its settings ([`SettingSpec`]) and a
//! `build` function that makes it from validated [`Settings`]. The same
//! description makes either kind of plugin:
//!
//! - **compiled in**: [`register_notifier!`] adds the kind to the registry
//!   of any binary that links the crate (for example one built on the
//!   `kalshi-alerts-cli` library, whose `main` is the `kalshi` command);
//! - **loaded at run time**: [`export_plugin!`] in a `cdylib` crate
//!   generates the C ABI entry point ([`abi`]) that the `kalshi` binary
//!   loads from its plugin directory. The glue catches panics, runs the
//!   async notifier on a runtime of its own, and owns every `unsafe`, so a
//!   plugin author writes none.
//!
//! See `docs/plugins.md` in the repository for a walk-through.
//!
//! ```
//! use kalshi_alerts_sdk::{
//!     async_trait, FiredAlert, Notifier, NotifyError, SettingKind, SettingSpec, Settings,
//!     SettingsError,
//! };
//!
//! struct Shout;
//!
//! #[async_trait]
//! impl Notifier for Shout {
//!     async fn notify(&self, alert: &FiredAlert) -> Result<(), NotifyError> {
//!         println!("{}", alert.summary().to_uppercase());
//!         Ok(())
//!     }
//! }
//!
//! fn build(_: &Settings) -> Result<Box<dyn Notifier>, SettingsError> {
//!     Ok(Box::new(Shout))
//! }
//!
//! kalshi_alerts_sdk::register_notifier! {
//!     name: "shout-doc",
//!     description: "prints each alert in capitals",
//!     settings: &[],
//!     build: build,
//! }
//!
//! assert!(kalshi_alerts_sdk::find_notifier("shout-doc").is_some());
//! ```

#[doc(hidden)]
pub mod glue;
pub mod testing;

/// Times in alerts are `chrono` values.
pub use chrono;
pub use kalshi_alerts_core::abi;
pub use kalshi_alerts_core::launcher::{find_launcher, launcher_plugins};
pub use kalshi_alerts_core::notifier::{
    find_notifier, notifier_kinds, string_list, NotifierKind, SettingsError,
};
pub use kalshi_alerts_core::{
    async_trait, inventory, ConditionType, FailureKind, FiredAlert, LaunchError, LaunchOutcome,
    Launcher, LauncherPlugin, MarketData, MonitorJob, Notifier, NotifierPlugin, NotifyError,
    SettingKind, SettingSpec, Settings,
};
/// Prices, thresholds and volumes in alerts are exact decimals.
pub use rust_decimal::Decimal;
/// Settings are JSON values; re-exported so a plugin reads them with the
/// same version.
pub use serde_json;

/// A notifier kind described once, for [`export_plugin!`] (and the
/// [`testing`] harness): the same four things a [`NotifierPlugin`] holds.
pub trait ExportedNotifier: 'static {
    /// The kind's name, as written in `kind = "..."`; no spaces.
    const NAME: &'static str;
    /// One line saying what it does.
    const DESCRIPTION: &'static str;
    /// Every setting it accepts.
    const SETTINGS: &'static [SettingSpec];
    /// Makes an instance from settings already checked against
    /// [`ExportedNotifier::SETTINGS`], defaults filled in.
    fn build(settings: &Settings) -> Result<Box<dyn Notifier>, SettingsError>;
}

/// Registers a notifier kind compiled into the program. The fields are
/// those of [`NotifierPlugin`]:
///
/// ```ignore
/// kalshi_alerts_sdk::register_notifier! {
///     name: "shout",
///     description: "writes each alert in capitals to a file",
///     settings: SETTINGS,
///     build: build,
/// }
/// ```
///
/// A binary shows the kind once it links the crate. Linkers drop a library
/// no symbol of which is used, so a plugin crate should offer a function
/// (say `pub fn link() {}`) that the binary calls from `main`.
#[macro_export]
macro_rules! register_notifier {
    ($($field:ident : $value:expr),+ $(,)?) => {
        $crate::inventory::submit! {
            $crate::NotifierPlugin { $($field: $value),+ }
        }
    };
}

/// Exports a notifier kind from a `cdylib` through the plugin C ABI.
///
/// Either with the fields of [`register_notifier!`]:
///
/// ```ignore
/// kalshi_alerts_sdk::export_plugin! {
///     name: "csv",
///     description: "appends each alert as a row of a CSV file",
///     settings: SETTINGS,
///     build: build,
/// }
/// ```
///
/// or with a type implementing [`ExportedNotifier`]:
/// `kalshi_alerts_sdk::export_plugin!(Csv);`. Use it once per library: it
/// defines the library's entry function, `kalshi_alerts_plugin_entry`.
#[macro_export]
macro_rules! export_plugin {
    (name: $name:expr, description: $description:expr, settings: $settings:expr, build: $build:expr $(,)?) => {
        #[doc(hidden)]
        pub struct __KalshiAlertsExportedNotifier;

        impl $crate::ExportedNotifier for __KalshiAlertsExportedNotifier {
            const NAME: &'static str = $name;
            const DESCRIPTION: &'static str = $description;
            const SETTINGS: &'static [$crate::SettingSpec] = $settings;

            fn build(
                settings: &$crate::Settings,
            ) -> ::std::result::Result<::std::boxed::Box<dyn $crate::Notifier>, $crate::SettingsError>
            {
                ($build)(settings)
            }
        }

        $crate::export_plugin!(__KalshiAlertsExportedNotifier);
    };
    ($definition:ty) => {
        /// The plugin's entry point, generated by `export_plugin!`.
        #[unsafe(no_mangle)]
        pub extern "C" fn kalshi_alerts_plugin_entry() -> *const $crate::abi::PluginTableV1 {
            static TABLE: $crate::glue::TableSlot = $crate::glue::TableSlot::new();
            TABLE.get::<$definition>()
        }
    };
}
