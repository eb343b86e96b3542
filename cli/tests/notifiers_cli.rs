//! The notifiers file through the real binary: `notifiers list|check|test`,
//! `alerts add --notify`, and routing in the monitor, using the built-in
//! setting-less kinds and the `file` kind so no outside server is needed.

mod common;

use common::{fired_ids, record, stderr_of, Sandbox};
use kalshi_test_server::{fixtures, Scenario, TestServer};
use predicates::prelude::*;
use serde_json::json;

fn write_notifiers(sandbox: &Sandbox, text: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(sandbox.data_dir()).unwrap();
    let path = sandbox.data_dir().join("notifiers.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn two_files(sandbox: &Sandbox) -> (std::path::PathBuf, std::path::PathBuf) {
    let team = sandbox.path("team.jsonl");
    let me = sandbox.path("me.jsonl");
    write_notifiers(
        sandbox,
        &format!(
            r#"
[[notifier]]
name = "team"
kind = "file"
path = "{}"

[[notifier]]
name = "me"
kind = "file"
default = false
timeout = 5
path = "{}"
"#,
            team.display(),
            me.display()
        ),
    );
    (team, me)
}

#[test]
fn list_shows_every_kind_and_the_configured_instances() {
    let sandbox = Sandbox::new();
    let output = sandbox
        .kalshi()
        .args(["notifiers", "list"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    for kind in ["console", "file", "log"] {
        assert!(
            stdout.contains(&format!("  {kind} ")),
            "{kind} missing:\n{stdout}"
        );
    }
    assert!(stdout.contains("No notifiers file at"), "{stdout}");

    two_files(&sandbox);
    let output = sandbox
        .kalshi()
        .args(["notifiers", "list", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let listing: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let file_kind = listing["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "file")
        .unwrap();
    assert_eq!(file_kind["settings"][0]["name"], "path");
    assert_eq!(file_kind["settings"][0]["required"], true);
    assert_eq!(listing["instances"][1]["name"], "me");
    assert_eq!(listing["instances"][1]["default"], false);
    assert_eq!(listing["instances"][1]["timeout_secs"], 5.0);
}

#[test]
fn check_reports_ready_instances_and_the_default_route() {
    let sandbox = Sandbox::new();
    two_files(&sandbox);
    sandbox
        .kalshi()
        .args(["notifiers", "check"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ok      team (file, default)"))
        .stdout(predicate::str::contains("ok      me (file, on request)"))
        .stdout(predicate::str::contains("without --notify go to: team"));
}

#[test]
fn check_reports_each_kind_of_bad_configuration_and_exits_one() {
    let sandbox = Sandbox::new();
    let cases = [
        ("[[notifier]]\nname = \"a\"\nkind = \"file\"\npath = \"x\"\ncolour = 1\n", "notifier \"a\": key colour: unknown setting; expected one of: path"),
        ("[[notifier]]\nname = \"a\"\nkind = \"file\"\n", "notifier \"a\": key path: missing"),
        ("[[notifier]]\nname = \"a\"\nkind = \"pager\"\n", "notifier \"a\": key kind: unknown notifier kind \"pager\""),
        ("[[notifier]]\nname = \"a\"\nkind = \"log\"\n[[notifier]]\nname = \"a\"\nkind = \"console\"\n", "notifier \"a\": key name: another notifier already has this name"),
        ("[[notifier]]\nname = \"a\"\nkind = \"file\"\npath = { env = \"KALSHI_TEST_UNSET_PATH\" }\n", "key path: environment variable KALSHI_TEST_UNSET_PATH is not set"),
        ("[[notifier]]\nkind = \"log\"\n", "notifier #1: key name: missing"),
        ("[[notifier]\nname = \"a\"\n", "is not valid TOML (line 1"),
        ("[[notifier]]\nname = \"a\"\nkind = \"log\"\ndefault = \"yes\"\n", "key default: expected true or false"),
    ];
    for (text, expected) in cases {
        let path = write_notifiers(&sandbox, text);
        sandbox
            .kalshi()
            .args(["notifiers", "check"])
            .assert()
            .code(1)
            .stderr(predicate::str::contains(format!(
                "notifiers file {}",
                path.display()
            )))
            .stderr(predicate::str::contains(expected));
    }
}

#[test]
fn test_sends_a_sample_alert_through_one_instance() {
    let sandbox = Sandbox::new();
    let (team, me) = two_files(&sandbox);
    sandbox
        .kalshi()
        .args(["notifiers", "test", "me"])
        .assert()
        .success()
        .stdout("Sent a sample alert through me (file).\n");
    assert_eq!(fired_ids(&me), ["00000000-0000-4000-8000-000000000000"]);
    assert!(!team.exists());

    sandbox
        .kalshi()
        .args(["notifiers", "test", "nobody"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no notifier named \"nobody\""))
        .stderr(predicate::str::contains("configured: team, me"));
}

#[test]
fn test_reports_a_permanent_failure_and_exits_one() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path("a-directory");
    std::fs::create_dir_all(&dir).unwrap();
    write_notifiers(
        &sandbox,
        &format!(
            "[[notifier]]\nname = \"broken\"\nkind = \"file\"\npath = \"{}\"\n",
            dir.display()
        ),
    );
    sandbox
        .kalshi()
        .args(["notifiers", "test", "broken"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "sending a sample alert through broken (file) failed",
        ))
        .stderr(predicate::str::contains("permanent"));
}

#[test]
fn add_notify_routes_a_condition_and_the_monitor_follows_the_route() {
    let sandbox = Sandbox::new();
    let (team, me) = two_files(&sandbox);
    sandbox.add(&["price", "EUCLIMATE-2030", "--above", "0.3"]);
    sandbox.add(&[
        "spread",
        "EUCLIMATE-2030",
        "--above",
        "5",
        "--notify",
        "me,team",
    ]);
    sandbox.add(&[
        "volume",
        "CHINAUSGDP-30",
        "--above",
        "1000",
        "--notify",
        "me",
    ]);
    let stored = sandbox.conditions();
    assert!(stored[0].get("notify").is_none());
    assert_eq!(stored[1]["notify"], json!(["me", "team"]));

    sandbox
        .kalshi()
        .args(["alerts", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("NOTIFY"))
        .stdout(predicate::str::contains("me,team"));

    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
    let output = sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "monitor", "--once"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let ids = |path| {
        let mut ids = fired_ids(path);
        ids.sort();
        ids
    };
    let mut team_expected = vec![
        stored[0]["id"].as_str().unwrap(),
        stored[1]["id"].as_str().unwrap(),
    ];
    team_expected.sort();
    let mut me_expected = vec![
        stored[1]["id"].as_str().unwrap(),
        stored[2]["id"].as_str().unwrap(),
    ];
    me_expected.sort();
    assert_eq!(ids(&team), team_expected);
    assert_eq!(ids(&me), me_expected);
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("fired=3 delivered=4 failed=0 retrying=0"),
        "{stderr}"
    );
}

#[test]
fn add_notify_refuses_unknown_names_and_leaves_the_file_alone() {
    let sandbox = Sandbox::new();
    sandbox
        .kalshi()
        .args([
            "alerts", "add", "price", "T", "--above", "0.5", "--notify", "me",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "--notify names notifiers of the notifiers file",
        ));
    two_files(&sandbox);
    sandbox
        .kalshi()
        .args([
            "alerts", "add", "price", "T", "--above", "0.5", "--notify", "me,pager",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no notifier named \"pager\""));
    assert!(!sandbox.alerts_path().exists());
}

#[test]
fn monitor_refuses_a_route_to_a_missing_notifier() {
    let sandbox = Sandbox::new();
    two_files(&sandbox);
    let mut routed = record("routed", "price_above", "EUCLIMATE-2030", 0.3);
    routed["notify"] = json!(["pager"]);
    sandbox.write_alerts(json!([routed]));
    sandbox
        .kalshi()
        .args(["alerts", "monitor", "--once"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "condition routed sends its alerts to notifier \"pager\", which is not configured",
        ));
}

#[test]
fn a_named_notifiers_file_must_exist() {
    let sandbox = Sandbox::new();
    sandbox
        .kalshi()
        .args(["--notifiers", "nowhere.toml", "notifiers", "check"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nowhere.toml does not exist"));
}

#[test]
fn alerts_that_would_reach_no_one_are_refused_at_start() {
    let sandbox = Sandbox::new();
    write_notifiers(
        &sandbox,
        &format!(
            "[[notifier]]\nname = \"quiet\"\nkind = \"file\"\ndefault = false\npath = \"{}\"\n",
            sandbox.path("q.jsonl").display()
        ),
    );
    sandbox.write_alerts(json!([record(
        "plain",
        "price_above",
        "EUCLIMATE-2030",
        0.3
    )]));
    sandbox
        .kalshi()
        .args(["alerts", "monitor", "--once"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "condition plain names no notifier and no notifier is a default one",
        ));

    let mut empty = record("empty", "price_above", "EUCLIMATE-2030", 0.3);
    empty["notify"] = json!([]);
    sandbox.write_alerts(json!([empty]));
    sandbox
        .kalshi()
        .args(["alerts", "monitor", "--once"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("empty list of notifiers"));
}

#[test]
fn a_flag_never_replaces_a_configured_instance() {
    let sandbox = Sandbox::new();
    write_notifiers(
        &sandbox,
        "[[notifier]]\nname = \"console\"\nkind = \"log\"\n",
    );
    sandbox.write_alerts(json!([record("c", "price_above", "EUCLIMATE-2030", 0.3)]));
    sandbox
        .kalshi()
        .args(["alerts", "monitor", "--once", "--notifier", "console"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "--notifier console adds a notifier named \"console\"",
        ));
}

#[test]
fn env_values_are_typed_and_never_shown_in_problems() {
    let sandbox = Sandbox::new();
    write_notifiers(
        &sandbox,
        "[[notifier]]\nname = \"a\"\nkind = \"file\"\npath = { env = \"KALSHI_TEST_SECRET_PATH\" }\ntimeout = 0.5\n",
    );
    sandbox
        .kalshi()
        .env("KALSHI_TEST_SECRET_PATH", "/tmp/hunter2-secret-path")
        .args(["notifiers", "check"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "key timeout: expected seconds between 1 and 600",
        ))
        .stderr(predicate::str::contains("hunter2").not());

    write_notifiers(
        &sandbox,
        "[[notifier]]\nname = \"bad name\"\nkind = \"log\"\n",
    );
    sandbox
        .kalshi()
        .args(["notifiers", "check"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "key name: expected a name of letters, digits",
        ));

    write_notifiers(&sandbox, "");
    sandbox
        .kalshi()
        .args(["notifiers", "check"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("configures no notifier"));
}

#[cfg(unix)]
#[test]
fn files_created_in_the_data_dir_are_private_and_an_open_notifiers_file_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;

    let sandbox = Sandbox::new();
    sandbox.add(&["price", "T", "--above", "0.5"]);
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sandbox.data_dir()), 0o700);
    assert_eq!(mode(&sandbox.alerts_path()), 0o600);

    let path = write_notifiers(&sandbox, "[[notifier]]\nname = \"a\"\nkind = \"log\"\n");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    sandbox
        .kalshi()
        .args(["notifiers", "check"])
        .assert()
        .success()
        .stderr(predicate::str::contains("readable by other users"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    sandbox
        .kalshi()
        .args(["notifiers", "check"])
        .assert()
        .success()
        .stderr(predicate::str::contains("readable by other users").not());
}
