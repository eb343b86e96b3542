//! `csv`: a notifier plugin, loaded at run time, that appends each alert as
//! a row of a CSV file, with a header row when the file is new or empty.
//!
//! Build it with `cargo build -p csv-plugin --release`, copy
//! `target/release/libcsv_plugin.so` (`.dylib` on macOS, `csv_plugin.dll`
//! on Windows) into the plugin directory (`data/plugins/`), and configure
//! an instance:
//!
//! ```toml
//! [[notifier]]
//! name = "sheet"
//! kind = "csv"
//! path = "alerts.csv"
//! ```
//!
//! Fields are quoted as RFC 4180 says: a field holding the delimiter, a
//! double quote, a carriage return or a line feed is put in double quotes,
//! with each double quote inside doubled. Rows end in CRLF.

#![forbid(unsafe_code)]

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kalshi_alerts_sdk::{
    async_trait, ExportedNotifier, FiredAlert, Notifier, NotifyError, SettingKind, SettingSpec,
    Settings, SettingsError,
};

/// The columns, in order.
pub const COLUMNS: &[&str] = &[
    "triggered_at",
    "ticker",
    "condition_type",
    "label",
    "threshold",
    "current_value",
    "yes_bid",
    "yes_ask",
    "volume",
    "title",
    "condition_id",
    "alert_id",
];

struct CsvNotifier {
    path: PathBuf,
    delimiter: char,
    header: bool,
    /// One writer at a time, so two alerts at once never both write the
    /// header of a new file.
    writing: Mutex<()>,
}

/// One field, quoted if it needs to be.
pub fn field(text: &str, delimiter: char) -> String {
    if text.contains([delimiter, '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// One row, CRLF included.
pub fn row<S: AsRef<str>>(fields: &[S], delimiter: char) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| field(f.as_ref(), delimiter))
        .collect();
    let mut line = quoted.join(&delimiter.to_string());
    line.push_str("\r\n");
    line
}

fn number(value: Option<kalshi_alerts_sdk::Decimal>) -> String {
    value.map(|v| v.normalize().to_string()).unwrap_or_default()
}

/// The fields of one alert, in [`COLUMNS`] order.
pub fn alert_fields(alert: &FiredAlert) -> Vec<String> {
    vec![
        alert.triggered_at.to_rfc3339(),
        alert.ticker.clone(),
        alert.condition_type.to_string(),
        alert.label.clone(),
        number(Some(alert.threshold)),
        number(Some(alert.current_value)),
        number(alert.market_data.yes_bid),
        number(alert.market_data.yes_ask),
        number(alert.market_data.volume),
        alert.market_data.title.clone(),
        alert.condition_id.clone(),
        alert.id.clone(),
    ]
}

impl CsvNotifier {
    fn append(&self, alert: &FiredAlert) -> io::Result<()> {
        let _one_at_a_time = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let mut text = String::new();
        if self.header && file.metadata()?.len() == 0 {
            text.push_str(&row(COLUMNS, self.delimiter));
        }
        text.push_str(&row(&alert_fields(alert), self.delimiter));
        // One write, so a reader never sees half a row from us.
        file.write_all(text.as_bytes())?;
        file.sync_data()
    }
}

#[async_trait]
impl Notifier for CsvNotifier {
    async fn notify(&self, alert: &FiredAlert) -> Result<(), NotifyError> {
        // A local file error (permissions, a full disk) repeats until
        // someone acts, so it is permanent.
        self.append(alert).map_err(|e| {
            NotifyError::permanent(format!("cannot append to {}: {e}", self.path.display()))
        })
    }
}

const SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        name: "path",
        kind: SettingKind::Path,
        default: None,
        required: true,
        secret: false,
        help: "the CSV file to append alerts to (created with its directory)",
    },
    SettingSpec {
        name: "delimiter",
        kind: SettingKind::Choice(&["comma", "semicolon", "tab"]),
        default: Some("comma"),
        required: false,
        secret: false,
        help: "what separates fields: comma, semicolon (for spreadsheets that use a decimal comma) or tab",
    },
    SettingSpec {
        name: "header",
        kind: SettingKind::Bool,
        default: Some("true"),
        required: false,
        secret: false,
        help: "write a header row when the file is new or empty",
    },
];

/// The plugin, as the SDK exports it.
pub struct Csv;

impl ExportedNotifier for Csv {
    const NAME: &'static str = "csv";
    const DESCRIPTION: &'static str = "appends each alert as a row of a CSV file";
    const SETTINGS: &'static [SettingSpec] = SETTINGS;

    fn build(settings: &Settings) -> Result<Box<dyn Notifier>, SettingsError> {
        let text = |key: &str| settings.get(key).and_then(|v| v.as_str()).unwrap_or("");
        let path = Path::new(text("path"));
        if path.as_os_str().is_empty() {
            return Err(SettingsError {
                notifier: Self::NAME.into(),
                key: "path".into(),
                problem: "missing".into(),
            });
        }
        let delimiter = match text("delimiter") {
            "semicolon" => ';',
            "tab" => '\t',
            _ => ',',
        };
        let header = settings
            .get("header")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        Ok(Box::new(CsvNotifier {
            path: path.to_path_buf(),
            delimiter,
            header,
            writing: Mutex::new(()),
        }))
    }
}

kalshi_alerts_sdk::export_plugin!(Csv);

#[cfg(test)]
mod tests {
    use kalshi_alerts_sdk::serde_json::json;
    use kalshi_alerts_sdk::testing::{sample_alert, Harness};
    use kalshi_alerts_sdk::FailureKind;

    use super::*;

    #[test]
    fn fields_are_quoted_when_they_must_be() {
        assert_eq!(field("plain", ','), "plain");
        assert_eq!(field("a,b", ','), "\"a,b\"");
        assert_eq!(field("a,b", ';'), "a,b");
        assert_eq!(field("say \"hi\"", ','), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines", ','), "\"two\nlines\"");
        assert_eq!(row(&["a", "b c", ""], ','), "a,b c,\r\n");
    }

    #[test]
    fn alerts_append_rows_under_one_header_through_the_abi() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/alerts.csv");
        let harness = Harness::new::<Csv>(json!({"path": path.to_str().unwrap()})).unwrap();
        let mut alert = sample_alert();
        alert.label = "quote \"this\", please".into();
        harness.notify(&alert).unwrap();
        harness.notify(&alert).unwrap();

        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines.len(), 4, "{text:?}");
        assert_eq!(lines[0], COLUMNS.join(","));
        assert!(lines[1].contains(
            ",KXSAMPLE-TEST,price_above,\"quote \"\"this\"\", please\",0.6,0.62,0.61,0.63,1234,"
        ));
        assert_eq!(lines[3], "");
    }

    #[test]
    fn settings_are_checked_and_described_through_the_abi() {
        let kind = Harness::kind::<Csv>();
        assert_eq!(kind.name(), "csv");
        assert_eq!(kind.settings().len(), 3);
        assert_eq!(
            kind.settings()[1].kind,
            SettingKind::Choice(&["comma", "semicolon", "tab"])
        );
        let err = Harness::new::<Csv>(json!({})).err().unwrap();
        assert_eq!(err.key, "path");
        let err = Harness::new::<Csv>(json!({"path": "x.csv", "delimiter": "pipe"}))
            .err()
            .unwrap();
        assert_eq!(err.key, "delimiter");
    }

    #[test]
    fn a_file_error_is_a_permanent_failure() {
        let dir = tempfile::tempdir().unwrap();
        let harness = Harness::new::<Csv>(json!({"path": dir.path().to_str().unwrap()})).unwrap();
        let err = harness.notify(&sample_alert()).unwrap_err();
        assert_eq!(err.kind, FailureKind::Permanent);
        assert!(err.message.contains("cannot append to"), "{}", err.message);
    }
}
