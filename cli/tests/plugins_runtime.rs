//! Notifier plugins loaded at run time, through the real `kalshi` binary:
//! the example plugins are built as shared libraries (`cdylib`), put in a
//! plugin directory, and used by `plugins list`, `notifiers list`,
//! `notifiers test` and `alerts monitor` against the loopback Kalshi server.
//! Each refusal (not a plugin, another ABI version, a file or directory
//! writable by others, a duplicate name) is reported and the run goes on,
//! unless an instance needs the plugin; a panicking plugin does not stop
//! the monitor or the other notifiers.
//!
//! Cargo does not build a `cdylib` that is only a dependency, so the first
//! test to need the libraries runs cargo itself: one `cargo build` of all
//! the plugin crates, in `target/plugin-build` (not the outer build's
//! directory, whose lock the outer `cargo test` may hold), with a lock file
//! so that test binaries never build at once, and a time limit.
#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{fired_records, record, stderr_of, stdout_of, Sandbox};
use kalshi_test_server::{fixtures, Scenario, TestServer};
use serde_json::{json, Value};

/// The plugin crates the tests load, by package name.
const PLUGIN_CRATES: &[&str] = &[
    "csv-plugin",
    "panicking-plugin",
    "wrong-abi-plugin",
    "no-entry-plugin",
];

/// How long building the plugins may take, from cold, on a slow machine.
const BUILD_LIMIT: Duration = Duration::from_secs(900);

/// The file name cargo gives the library of `package` on this platform.
fn library_name(package: &str) -> String {
    format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        package.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    )
}

/// Builds the plugin crates once per test binary and returns the directory
/// holding their libraries.
fn built_plugins() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_plugins)
}

fn build_plugins() -> PathBuf {
    // This test runs as <target>/<profile>/deps/plugins_runtime-HASH.
    let exe = std::env::current_exe().expect("the test's own path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the test runs inside a target directory")
        .to_path_buf();
    let out = target.join("plugin-build");
    std::fs::create_dir_all(&out).expect("plugin build directory");
    let lock = std::fs::File::create(target.join("plugin-build.lock")).expect("lock file");
    lock.lock().expect("the plugin build lock");

    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let log_path = out.join("build.log");
    let log = std::fs::File::create(&log_path).expect("build log");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut command = Command::new(cargo);
    command.args(["build", "--offline"]);
    for package in PLUGIN_CRATES {
        command.args(["-p", package]);
    }
    let started = Instant::now();
    let mut child = command
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", &out)
        // No debug info: the libraries build faster and are a tenth the size.
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        // A build from cold gains nothing from incremental state.
        .env("CARGO_INCREMENTAL", "0")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("build log"))
        .stderr(log)
        .spawn()
        .expect("cargo starts");
    let status = loop {
        if let Some(status) = child.try_wait().expect("cargo runs") {
            break status;
        }
        if started.elapsed() > BUILD_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "building the plugins took over {BUILD_LIMIT:?}; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(status.success(), "building the plugins failed:\n{log}");
    eprintln!(
        "plugins built in {:.1}s (target/plugin-build)",
        started.elapsed().as_secs_f64()
    );
    out.join("debug")
}

/// Copies the library of `package` to `dir/name` with `mode`.
fn install(package: &str, dir: &Path, name: &str, mode: u32) -> PathBuf {
    let from = built_plugins().join(library_name(package));
    let to = dir.join(name);
    std::fs::copy(&from, &to)
        .unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), to.display()));
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
    to
}

/// A directory with `mode`, created with its parents.
fn directory(path: PathBuf, mode: u32) -> PathBuf {
    std::fs::create_dir_all(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// The default plugin directory of the sandbox, `data/plugins`.
fn plugin_dir(sandbox: &Sandbox) -> PathBuf {
    std::fs::create_dir_all(sandbox.data_dir()).unwrap();
    directory(sandbox.data_dir().join("plugins"), 0o755)
}

fn write_notifiers(sandbox: &Sandbox, text: &str) {
    std::fs::create_dir_all(sandbox.data_dir()).unwrap();
    std::fs::write(sandbox.data_dir().join("notifiers.toml"), text).unwrap();
}

/// Reads CSV as RFC 4180 writes it: quoted fields may hold commas, quotes
/// (doubled) and line breaks; rows end in CRLF.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && row.is_empty(),
        "the last row is not ended: {text:?}"
    );
    rows
}

/// The CSV plugin's columns, as its header row names them.
fn column(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
}

/// Two conditions that fire on the recorded legacy markets.
fn two_conditions(sandbox: &Sandbox) {
    sandbox.write_alerts(json!([
        record("up", "price_above", "EUCLIMATE-2030", 0.39),
        record("busy", "volume_above", "CHINAUSGDP-30", 1000.0),
    ]));
}

fn csv_and_file_instances() -> &'static str {
    r#"
[[notifier]]
name = "sheet"
kind = "csv"
path = "alerts.csv"

[[notifier]]
name = "jsonl"
kind = "file"
path = "fired.jsonl"
"#
}

#[test]
fn plugins_list_shows_what_was_loaded_and_what_was_refused_and_why() {
    let sandbox = Sandbox::new();
    let dir = plugin_dir(&sandbox);
    let csv = install("csv-plugin", &dir, &library_name("csv-plugin"), 0o755);
    let wrong = install(
        "wrong-abi-plugin",
        &dir,
        &library_name("wrong-abi-plugin"),
        0o755,
    );
    let no_entry = install(
        "no-entry-plugin",
        &dir,
        &library_name("no-entry-plugin"),
        0o755,
    );
    let text = dir.join("notes.so");
    std::fs::write(&text, "not a library\n").unwrap();
    std::fs::write(dir.join("README.txt"), "ignored: not a library name\n").unwrap();

    let output = sandbox.kalshi().args(["plugins", "list"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let stdout = stdout_of(&output);
    assert!(
        stdout.contains(&format!("Plugin directories: {}", dir.display())),
        "{stdout}"
    );
    assert!(stdout.contains("speaks plugin ABI 1"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "  {}\n      ABI 1, notifiers: csv\n",
            csv.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  {}\n      it is built for plugin ABI version 2; this program speaks ABI 1\n",
            wrong.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  {}\n      it is not a plugin: it exports no kalshi_alerts_plugin_entry function\n",
            no_entry.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  {}\n      it is not a plugin: it cannot be loaded as a shared library",
            text.display()
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("README"), "{stdout}");
    // Each refusal is logged too, naming the file.
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("plugin refused") && stderr.contains(&wrong.display().to_string()),
        "{stderr}"
    );

    let output = sandbox
        .kalshi()
        .args(["plugins", "list", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let listing: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listing["host_abi_version"], 1);
    assert_eq!(listing["directories"], json!([dir]));
    assert_eq!(
        listing["loaded"],
        json!([{"path": csv, "abi_version": 1, "notifiers": ["csv"]}])
    );
    let refused: Vec<(&str, &str)> = listing["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["path"].as_str().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(refused
        .iter()
        .any(|(p, r)| *p == no_entry.to_str().unwrap() && r.contains("exports no")));
    assert!(refused
        .iter()
        .any(|(p, r)| *p == wrong.to_str().unwrap() && r.contains("speaks ABI 1")));
    assert!(refused
        .iter()
        .any(|(p, r)| *p == text.to_str().unwrap() && r.contains("cannot be loaded")));
}

#[test]
fn no_plugin_directory_means_no_plugins_and_no_complaint() {
    let sandbox = Sandbox::new();
    let output = sandbox.kalshi().args(["plugins", "list"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let stdout = stdout_of(&output);
    assert!(stdout.contains("No plugin loaded."), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "Plugin directories: {} (does not exist)",
            sandbox.data_dir().join("plugins").display()
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("Refused"), "{stdout}");
}

#[test]
fn the_csv_kind_is_listed_configured_and_tested_like_a_built_in_one() {
    let sandbox = Sandbox::new();
    let csv = install(
        "csv-plugin",
        &plugin_dir(&sandbox),
        &library_name("csv-plugin"),
        0o755,
    );
    write_notifiers(&sandbox, csv_and_file_instances());

    let output = sandbox
        .kalshi()
        .args(["notifiers", "list"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let stdout = stdout_of(&output);
    assert!(
        stdout.contains(&format!(
            "  csv        appends each alert as a row of a CSV file [plugin {}]",
            csv.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("      delimiter        what separates fields"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  sheet (csv, default, timeout 10s, retried for 1day)"),
        "{stdout}"
    );

    let output = sandbox
        .kalshi()
        .args(["notifiers", "list", "--json"])
        .output()
        .unwrap();
    let listing: Value = serde_json::from_slice(&output.stdout).unwrap();
    let kind = listing["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "csv")
        .expect("csv in the kinds");
    assert_eq!(kind["origin"], csv.to_str().unwrap());
    assert_eq!(kind["settings"][1]["type"], "one of comma, semicolon, tab");
    assert_eq!(kind["settings"][2]["default"], "true");

    sandbox
        .kalshi()
        .args(["notifiers", "check"])
        .assert()
        .success();

    let output = sandbox
        .kalshi()
        .args(["notifiers", "test", "sheet"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(
        stdout_of(&output).contains("Sent a sample alert through sheet (csv)."),
        "{}",
        stdout_of(&output)
    );
    let written = std::fs::read_to_string(sandbox.data_dir().join("alerts.csv")).unwrap();
    let rows = parse_csv(&written);
    assert_eq!(rows.len(), 2, "{written:?}");
    assert_eq!(rows[0][0], "triggered_at");
    assert_eq!(rows[1][column(&rows[0], "ticker")], "KXSAMPLE-TEST");
    assert_eq!(rows[1][column(&rows[0], "current_value")], "0.62");
    assert_eq!(
        rows[1][column(&rows[0], "label")],
        "sample alert from `kalshi notifiers test`"
    );

    // A setting the plugin's description refuses is reported like a built-in one's.
    write_notifiers(
        &sandbox,
        "[[notifier]]\nname = \"sheet\"\nkind = \"csv\"\npath = \"a.csv\"\ndelimiter = \"pipe\"\n",
    );
    let output = sandbox
        .kalshi()
        .args(["notifiers", "check"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output).contains(
            "notifier \"sheet\": key delimiter: expected one of comma, semicolon, tab, got \"pipe\""
        ),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn monitor_once_delivers_through_the_plugin_and_the_built_in_notifier() {
    let sandbox = Sandbox::new();
    install(
        "csv-plugin",
        &plugin_dir(&sandbox),
        &library_name("csv-plugin"),
        0o755,
    );
    write_notifiers(&sandbox, csv_and_file_instances());
    two_conditions(&sandbox);
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));

    let output = sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "monitor", "--once", "--interval", "0"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(
        stdout_of(&output).contains("Check complete: 1 cycle(s), 2 alert(s) fired."),
        "{}",
        stdout_of(&output)
    );

    let records = fired_records(&sandbox.data_dir().join("fired.jsonl"));
    assert_eq!(records.len(), 2);
    let written = std::fs::read_to_string(sandbox.data_dir().join("alerts.csv")).unwrap();
    let rows = parse_csv(&written);
    assert_eq!(rows.len(), 3, "{written:?}");
    let header = &rows[0];
    for row in &rows[1..] {
        assert_eq!(row.len(), header.len(), "{row:?}");
        let id = &row[column(header, "alert_id")];
        let record = records
            .iter()
            .find(|r| r["id"] == id.as_str())
            .unwrap_or_else(|| panic!("alert {id} not in the file notifier's records"));
        assert_eq!(row[column(header, "condition_id")], record["condition_id"]);
        assert_eq!(row[column(header, "ticker")], record["ticker"]);
        assert_eq!(
            row[column(header, "title")],
            record["market_data"]["title"],
            "titles with commas or quotes survive the quoting"
        );
        assert_eq!(
            row[column(header, "threshold")],
            record["threshold"].to_string()
        );
    }
    let mut conditions: Vec<&str> = rows[1..]
        .iter()
        .map(|r| r[column(header, "condition_id")].as_str())
        .collect();
    conditions.sort();
    assert_eq!(conditions, ["busy", "up"]);
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("alert delivered") && stderr.contains("notifier=sheet"),
        "{stderr}"
    );
}

#[test]
fn refused_plugins_are_reported_and_the_run_goes_on_when_no_instance_needs_them() {
    let sandbox = Sandbox::new();
    let dir = plugin_dir(&sandbox);
    install("csv-plugin", &dir, &library_name("csv-plugin"), 0o755);
    let wrong = install("wrong-abi-plugin", &dir, "libwrong.so", 0o755);
    let no_entry = install("no-entry-plugin", &dir, "libnoentry.so", 0o755);
    // The same plugin under another file name: a second kind named csv.
    let again = install("csv-plugin", &dir, "libzz_csv_again.so", 0o755);
    // Writable by others, in a directory of its own that is not.
    let open = install("csv-plugin", &dir, "libopen.so", 0o666);
    write_notifiers(&sandbox, csv_and_file_instances());
    two_conditions(&sandbox);
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));

    let output = sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "monitor", "--once", "--interval", "0"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    for (file, reason) in [
        (
            &wrong,
            "it is built for plugin ABI version 2; this program speaks ABI 1",
        ),
        (
            &no_entry,
            "it is not a plugin: it exports no kalshi_alerts_plugin_entry function",
        ),
        (&again, "its notifier kind \"csv\" is already provided by"),
        (&open, "the file is writable by group or others (mode 666)"),
    ] {
        let line = stderr
            .lines()
            .find(|l| l.contains("plugin refused") && l.contains(&file.display().to_string()))
            .unwrap_or_else(|| panic!("no refusal of {} in:\n{stderr}", file.display()));
        assert!(line.contains(reason), "{line}");
    }
    let rows = parse_csv(&std::fs::read_to_string(sandbox.data_dir().join("alerts.csv")).unwrap());
    assert_eq!(rows.len(), 3);

    let output = sandbox
        .kalshi()
        .args(["plugins", "list", "--json"])
        .output()
        .unwrap();
    let listing: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listing["loaded"].as_array().unwrap().len(), 1);
    assert_eq!(listing["refused"].as_array().unwrap().len(), 4);
}

/// Runs `notifiers check` and returns its error output, asserting it
/// failed with exit 1.
fn check_fails(sandbox: &Sandbox) -> String {
    let output = sandbox
        .kalshi()
        .args(["notifiers", "check"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}\n{}",
        stdout_of(&output),
        stderr_of(&output)
    );
    stderr_of(&output)
}

#[test]
fn an_instance_that_needs_a_refused_plugin_fails_naming_the_file_and_the_reason() {
    let sandbox = Sandbox::new();
    let lib = directory(sandbox.path("lib"), 0o755);
    let wrong = install("wrong-abi-plugin", &lib, "libwrong.so", 0o755);
    let no_entry = install("no-entry-plugin", &lib, "libnoentry.so", 0o755);
    let open = install("csv-plugin", &lib, "libopen.so", 0o664);
    let first = install("csv-plugin", &lib, "libcsv1.so", 0o755);
    let second = install("csv-plugin", &lib, "libcsv2.so", 0o755);
    let instance = |name: &str, kind: &str, plugin: &Path| {
        format!(
            "[[notifier]]\nname = \"{name}\"\nkind = \"{kind}\"\nplugin = \"{}\"\n",
            plugin.display()
        )
    };

    for (plugin, reason) in [
        (
            &wrong,
            "it is built for plugin ABI version 2; this program speaks ABI 1",
        ),
        (
            &no_entry,
            "it is not a plugin: it exports no kalshi_alerts_plugin_entry function",
        ),
        (
            &open,
            "the file is writable by group or others (mode 664); only you (or root) may be able \
             to change a plugin or a directory above it (chown, chmod go-w)",
        ),
    ] {
        write_notifiers(&sandbox, &instance("x", "csv", plugin));
        let stderr = check_fails(&sandbox);
        let expected = format!(
            "notifier \"x\": key plugin: plugin {} cannot be used: {reason}",
            plugin.display()
        );
        assert!(stderr.contains(&expected), "{expected}\nnot in:\n{stderr}");
        assert!(stderr.contains("error: notifiers file "), "{stderr}");
    }

    // Two instances naming two copies of one plugin: the second is a
    // duplicate name.
    let path = |p: &Path| p.display().to_string();
    write_notifiers(
        &sandbox,
        &format!(
            "{}path = \"a.csv\"\n{}path = \"b.csv\"\n",
            instance("one", "csv", &first),
            instance("two", "csv", &second)
        ),
    );
    let stderr = check_fails(&sandbox);
    let expected = format!(
        "notifier \"two\": key plugin: plugin {} cannot be used: its notifier kind \"csv\" is \
         already provided by {}; names must be unique",
        path(&second),
        path(&first)
    );
    assert!(stderr.contains(&expected), "{expected}\nnot in:\n{stderr}");

    // A plugin named relative to the notifiers file, and the wrong kind for it.
    write_notifiers(
        &sandbox,
        "[[notifier]]\nname = \"x\"\nkind = \"file\"\nplugin = \"../lib/libcsv1.so\"\npath = \"a\"\n",
    );
    let stderr = check_fails(&sandbox);
    assert!(
        stderr.contains("key kind: plugin ")
            && stderr.contains("provides the notifier kind(s) csv, not \"file\""),
        "{stderr}"
    );
}

#[test]
fn a_plugin_directory_writable_by_others_is_refused_and_named_when_its_kind_is_needed() {
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.data_dir()).unwrap();
    let shared = directory(sandbox.data_dir().join("plugins"), 0o777);
    let csv = install("csv-plugin", &shared, &library_name("csv-plugin"), 0o755);
    let reason = format!(
        "the directory {} is writable by group or others (mode 777)",
        shared.display()
    );

    // Not needed: reported, and the run goes on.
    write_notifiers(
        &sandbox,
        "[[notifier]]\nname = \"jsonl\"\nkind = \"file\"\npath = \"fired.jsonl\"\n",
    );
    let output = sandbox
        .kalshi()
        .args(["notifiers", "check"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("plugin refused")
            && stderr.contains(&csv.display().to_string())
            && stderr.contains(&reason),
        "{stderr}"
    );

    // Needed: the unknown kind's error names the refused file and why.
    write_notifiers(&sandbox, csv_and_file_instances());
    let stderr = check_fails(&sandbox);
    assert!(
        stderr.contains("notifier \"sheet\": key kind: unknown notifier kind \"csv\"")
            && stderr.contains(&format!("plugins refused: {}: {reason}", csv.display())),
        "{stderr}"
    );

    // KALSHI_PLUGIN_PATH points elsewhere: a directory only its owner can change.
    let safe = directory(sandbox.path("safe-plugins"), 0o755);
    install("csv-plugin", &safe, &library_name("csv-plugin"), 0o755);
    sandbox
        .kalshi()
        .env("KALSHI_PLUGIN_PATH", &safe)
        .args(["notifiers", "check"])
        .assert()
        .success();

    // So does plugin_dir in the notifiers file, relative to it.
    write_notifiers(
        &sandbox,
        &format!(
            "plugin_dir = \"../safe-plugins\"\n{}",
            csv_and_file_instances()
        ),
    );
    let output = sandbox
        .kalshi()
        .args(["plugins", "list", "--json"])
        .output()
        .unwrap();
    let listing: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        listing["directories"],
        json!([sandbox.data_dir().join("../safe-plugins")])
    );
    assert_eq!(listing["loaded"][0]["notifiers"], json!(["csv"]));
    sandbox
        .kalshi()
        .args(["notifiers", "check"])
        .assert()
        .success();
}

#[test]
fn a_panicking_plugin_fails_permanently_and_the_monitor_and_other_notifiers_go_on() {
    let sandbox = Sandbox::new();
    install(
        "panicking-plugin",
        &plugin_dir(&sandbox),
        &library_name("panicking-plugin"),
        0o755,
    );
    write_notifiers(
        &sandbox,
        r#"
[[notifier]]
name = "boom"
kind = "panicking"

[[notifier]]
name = "jsonl"
kind = "file"
path = "fired.jsonl"
"#,
    );
    // One condition fires in the first cycle, the other in the second.
    sandbox.write_alerts(json!([
        record("first", "price_above", "EUCLIMATE-2030", 0.39),
        record("second", "price_above", "USCLIMATE-2025", 0.5),
    ]));
    let mut later = fixtures::legacy_markets();
    let market = later
        .iter_mut()
        .find(|m| m["ticker"] == "USCLIMATE-2025")
        .unwrap();
    fixtures::set_yes_quote(market, "0.60", "0.70");
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()).then(later));

    let output = sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "monitor", "--cycles", "2", "--interval", "0"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(
        stdout_of(&output).contains("Check complete: 2 cycle(s), 2 alert(s) fired."),
        "{}",
        stdout_of(&output)
    );
    let stderr = stderr_of(&output);
    let failures: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("alert not delivered") && l.contains("notifier=boom"))
        .collect();
    assert_eq!(failures.len(), 2, "{stderr}");
    for (line, ticker) in failures.iter().zip(["EUCLIMATE-2030", "USCLIMATE-2025"]) {
        assert!(line.contains("failure=\"permanent\""), "{line}");
        assert!(line.contains("attempts=1"), "{line}");
        assert!(
            line.contains(&format!(
                "the panicking plugin panicked: panic in notify: deliberate panic while delivering {ticker}"
            )),
            "{line}"
        );
    }
    let delivered: Vec<String> = fired_records(&sandbox.data_dir().join("fired.jsonl"))
        .iter()
        .map(|r| r["condition_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(delivered, ["first", "second"]);
}

/// Kills the daemon if the test fails before stopping it.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a PID and a signal number has no memory
        // effects; a daemon already gone makes it fail harmlessly.
        unsafe {
            libc::kill(self.0, libc::SIGKILL);
        }
    }
}

#[test]
fn the_daemon_loads_the_same_plugins() {
    let sandbox = Sandbox::new();
    install(
        "csv-plugin",
        &plugin_dir(&sandbox),
        &library_name("csv-plugin"),
        0o755,
    );
    write_notifiers(&sandbox, csv_and_file_instances());
    two_conditions(&sandbox);
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));

    let output = sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "monitor", "--daemon", "--interval", "1"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let pid: i32 = stdout_of(&output)
        .split("(PID: ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.parse().ok())
        .expect("the daemon's PID");
    let _guard = KillOnDrop(pid);
    let csv = sandbox.data_dir().join("alerts.csv");
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows = std::fs::read_to_string(&csv)
            .map(|t| parse_csv(&t))
            .unwrap_or_default();
        if rows.len() == 3 || Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stopped = sandbox
        .kalshi()
        .args(["alerts", "stop", "--timeout", "20"])
        .output()
        .unwrap();
    assert!(stopped.status.success(), "{}", stderr_of(&stopped));
    assert_eq!(rows.len(), 3, "the daemon wrote {rows:?}");
    let log = std::fs::read_to_string(sandbox.data_dir().join("alert_monitor.log")).unwrap();
    assert!(log.contains("plugin loaded"), "{log}");
}
