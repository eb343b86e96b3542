//! The daemon launcher and the monitor's lifecycle through the real binary:
//! start, the lock and its refusals, the log, SIGHUP, SIGTERM, `status`,
//! `stop`, and `trim-log`.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{
    alive, eventually, record, signal, started_pid, stderr_of, stdout_of, DaemonGuard, Sandbox,
};
use kalshi_test_server::{fixtures, Scenario, TestServer};
use predicates::prelude::*;
use serde_json::json;

fn sandbox_with_condition() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", "EUCLIMATE-2030", 0.3)]));
    sandbox
}

/// Starts a daemon and returns its PID from the launcher's message.
fn start_daemon(sandbox: &Sandbox, server: &TestServer) -> (i32, DaemonGuard) {
    start_daemon_every(sandbox, server, "1")
}

/// [`start_daemon`] with a check every `interval` seconds.
fn start_daemon_every(
    sandbox: &Sandbox,
    server: &TestServer,
    interval: &str,
) -> (i32, DaemonGuard) {
    let output = sandbox
        .kalshi_at(&server.base_url())
        .args([
            "alerts",
            "monitor",
            "--daemon",
            "--interval",
            interval,
            "--scan",
            "full",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let stdout = stdout_of(&output);
    let pid = started_pid(&stdout);
    let log = sandbox.data_dir().join("alert_monitor.log");
    assert!(
        stdout.contains(&format!("Logs: {}", log.display())),
        "{stdout}"
    );
    (pid, DaemonGuard(pid))
}

fn log_text(sandbox: &Sandbox) -> String {
    std::fs::read_to_string(sandbox.data_dir().join("alert_monitor.log")).unwrap_or_default()
}

fn status_code(sandbox: &Sandbox) -> Option<i32> {
    sandbox
        .kalshi()
        .args(["alerts", "status"])
        .output()
        .unwrap()
        .status
        .code()
}

#[test]
fn daemon_starts_logs_refuses_a_second_and_stops_on_sigterm() {
    let sandbox = sandbox_with_condition();
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
    let (pid, _guard) = start_daemon(&sandbox, &server);

    assert!(alive(pid));
    let lock = std::fs::read_to_string(sandbox.data_dir().join("alert_monitor.pid")).unwrap();
    assert_eq!(lock.trim(), pid.to_string());
    eventually(
        "the first cycle in the log",
        Duration::from_secs(20),
        || log_text(&sandbox).contains("cycle complete"),
    );
    let log = log_text(&sandbox);
    assert!(log.contains("monitor started"), "{log}");
    assert!(log.contains("ALERT EUCLIMATE-2030"), "{log}");
    assert!(
        !log.contains("Press Ctrl+C") || log.contains("checking every 1s"),
        "{log}"
    );

    sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "monitor", "--daemon"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "an alert monitor is already running for {} (PID: {pid})",
            sandbox.data_dir().display()
        )));
    sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "monitor", "--once"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!("(PID: {pid})")));

    sandbox
        .kalshi()
        .args(["alerts", "status"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("running (PID: {pid})")));

    signal(pid, libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(pid), "SIGHUP killed the daemon");
    assert_eq!(status_code(&sandbox), Some(0));

    signal(pid, libc::SIGTERM);
    eventually(
        "the daemon to release its lock",
        Duration::from_secs(20),
        || status_code(&sandbox) == Some(3),
    );
    eventually("the stop line in the log", Duration::from_secs(5), || {
        log_text(&sandbox).contains("Alert monitor stopped:")
    });
    assert!(log_text(&sandbox).contains("monitor stopped"));
}

#[test]
fn stop_command_stops_the_daemon() {
    let sandbox = sandbox_with_condition();
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
    let (pid, _guard) = start_daemon(&sandbox, &server);

    sandbox
        .kalshi()
        .args(["alerts", "stop"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "Alert monitor stopped (PID: {pid})"
        )));
    sandbox
        .kalshi()
        .args(["alerts", "status"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("not running"));
    sandbox
        .kalshi()
        .args(["alerts", "stop"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("not running"));
}

#[test]
fn stop_says_so_when_the_monitor_outlives_the_wait() {
    let sandbox = sandbox_with_condition();
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
    let (pid, _guard) = start_daemon(&sandbox, &server);

    // A stopped process cannot act on SIGTERM until it is continued.
    signal(pid, libc::SIGSTOP);
    sandbox
        .kalshi()
        .args(["alerts", "stop", "--timeout", "1"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains(format!(
            "the alert monitor (PID: {pid}) did not stop within 1s; `kill -9 {pid}` forces it"
        )));
    signal(pid, libc::SIGCONT);
    eventually(
        "the pending SIGTERM to stop it",
        Duration::from_secs(20),
        || status_code(&sandbox) == Some(3),
    );
}

#[test]
fn daemon_survives_a_network_fault_and_keeps_cycling() {
    let sandbox = sandbox_with_condition();
    // No server at all: every cycle fails, and the daemon must not die of it.
    let output = sandbox
        .kalshi()
        .args([
            "alerts",
            "monitor",
            "--daemon",
            "--interval",
            "1",
            "--timeout",
            "1",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let pid = started_pid(&stdout_of(&output));
    let _guard = DaemonGuard(pid);

    eventually("a failed cycle in the log", Duration::from_secs(60), || {
        log_text(&sandbox).contains("market scan failed")
    });
    assert!(alive(pid));
    assert_eq!(status_code(&sandbox), Some(0));
    sandbox.kalshi().args(["alerts", "stop"]).assert().success();
}

#[test]
fn foreground_monitor_stops_cleanly_on_sigterm() {
    let sandbox = sandbox_with_condition();
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
    let mut child: Child = Command::new(assert_cmd::cargo::cargo_bin("kalshi"))
        .args(["alerts", "monitor", "--interval", "3600"])
        .env("KALSHI_DATA_DIR", sandbox.data_dir())
        .env("KALSHI_API_BASE_URL", server.base_url())
        .env("KALSHI_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _guard = DaemonGuard(child.id() as i32);

    // Reading stops at the first cycle and the pipe is closed: later log
    // lines meet a closed stderr, which must not crash the monitor.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    for line in stderr.lines() {
        if line.unwrap().contains("cycle complete") {
            break;
        }
    }
    signal(child.id() as i32, libc::SIGTERM);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "exit {:?}", output.status);
    let stdout = stdout_of(&output);
    assert!(stdout.contains("Press Ctrl+C to stop"), "{stdout}");
    assert!(stdout.contains("ALERT EUCLIMATE-2030"), "{stdout}");
    assert!(
        stdout.contains("Alert monitor stopped: 1 cycle(s), 1 alert(s) fired."),
        "{stdout}"
    );
    assert_eq!(status_code(&sandbox), Some(3));
}

#[test]
fn trim_log_keeps_whole_recent_lines_and_refuses_while_the_daemon_runs() {
    let sandbox = sandbox_with_condition();
    std::fs::create_dir_all(sandbox.data_dir()).unwrap();
    let log = sandbox.data_dir().join("alert_monitor.log");
    let line = "2026-12-04T00:00:00Z INFO a line of an old log that fills the disk slowly\n";
    let original = line.repeat(3 * 1024 * 1024 / line.len());
    std::fs::write(&log, &original).unwrap();

    sandbox
        .kalshi()
        .args(["alerts", "trim-log", "--max-mb", "2", "--keep-mb", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("dry run; pass --apply"));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), original);

    sandbox
        .kalshi()
        .args([
            "alerts",
            "trim-log",
            "--max-mb",
            "2",
            "--keep-mb",
            "1",
            "--apply",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("Trimmed"));
    let trimmed = std::fs::read_to_string(&log).unwrap();
    assert!(trimmed.len() <= 1024 * 1024 && trimmed.len() > 1024 * 1024 - line.len());
    assert!(
        trimmed.starts_with("2026-12-04T00:00:00Z INFO"),
        "cut mid-line"
    );
    assert!(original.ends_with(&trimmed));

    sandbox
        .kalshi()
        .args(["alerts", "trim-log", "--max-mb", "17592186044416"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--max-mb 17592186044416 is too large",
        ));

    sandbox
        .kalshi()
        .args(["alerts", "trim-log", "--keep-mb", "3", "--max-mb", "2"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--keep-mb (3) must not exceed --max-mb (2)",
        ));

    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
    std::fs::write(&log, &original).unwrap();
    let (pid, _guard) = start_daemon(&sandbox, &server);
    sandbox
        .kalshi()
        .args([
            "alerts",
            "trim-log",
            "--max-mb",
            "1",
            "--keep-mb",
            "0",
            "--apply",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "the alert monitor (PID: {pid}) is writing to"
        )));
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .starts_with(&original));
    sandbox.kalshi().args(["alerts", "stop"]).assert().success();
}

#[test]
fn daemon_with_bad_options_starts_nothing() {
    let sandbox = sandbox_with_condition();
    sandbox
        .kalshi()
        .args(["alerts", "monitor", "--daemon", "--notifier", "nope"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("unknown notifier \"nope\""));
    assert!(!sandbox.data_dir().join("alert_monitor.log").exists());
    assert_eq!(status_code(&sandbox), Some(3));
}

#[test]
fn a_daemon_that_dies_at_start_is_reported_with_the_log() {
    let sandbox = sandbox_with_condition();
    // A directory where the lock file belongs: the launcher's check sees no
    // running monitor, but the background copy cannot take the lock and exits.
    std::fs::create_dir_all(sandbox.data_dir().join("alert_monitor.pid")).unwrap();
    let log = sandbox.data_dir().join("alert_monitor.log");

    sandbox
        .kalshi()
        .args(["alerts", "monitor", "--daemon"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "the background monitor exited at start",
        ))
        .stderr(predicate::str::contains(format!("see {}", log.display())));
    assert!(
        log_text(&sandbox).contains("monitor lock"),
        "{}",
        log_text(&sandbox)
    );
}

/// The log cannot take a line (a full disk; here /dev/full): a copy that
/// dies at start is still reported with what it said, read from its
/// standard error during the start.
#[cfg(target_os = "linux")]
#[test]
fn a_daemon_that_dies_at_start_with_an_unwritable_log_says_why() {
    let sandbox = sandbox_with_condition();
    std::fs::create_dir_all(sandbox.data_dir().join("alert_monitor.pid")).unwrap();
    let log = sandbox.data_dir().join("alert_monitor.log");
    std::os::unix::fs::symlink("/dev/full", &log).unwrap();

    let output = sandbox
        .kalshi()
        .args(["alerts", "monitor", "--daemon"])
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: the background monitor exited at start (exit status: 1): "),
        "{stderr}"
    );
    assert!(stderr.contains("monitor lock"), "{stderr}");
    assert!(
        stderr.contains(&format!("; see {}", log.display())),
        "{stderr}"
    );
}

#[test]
fn a_daemon_whose_data_dir_is_deleted_takes_its_lock_again() {
    let sandbox = sandbox_with_condition();
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
    let (pid, _guard) = start_daemon(&sandbox, &server);

    std::fs::remove_dir_all(sandbox.data_dir()).unwrap();
    eventually(
        "the daemon to take its lock again",
        Duration::from_secs(20),
        || status_code(&sandbox) == Some(0),
    );
    // And to start a new state database where the old one was (its log
    // went with the directory, so the file is the evidence).
    eventually("a new state database", Duration::from_secs(20), || {
        sandbox.data_dir().join("state.sqlite3").exists()
    });

    sandbox.write_alerts(json!([record("c", "price_above", "EUCLIMATE-2030", 0.3)]));
    sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "monitor", "--daemon"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!("(PID: {pid})")));
    signal(pid, libc::SIGTERM);
    eventually("the daemon to stop", Duration::from_secs(20), || {
        status_code(&sandbox) == Some(3)
    });
}

/// What `alerts status` quotes of the status file (a cycle's error, which
/// may hold a server's text) is shown with control characters and
/// bidirectional overrides replaced.
#[test]
fn status_shows_a_cycle_error_sanitized() {
    let sandbox = sandbox_with_condition();
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
    // No cycle, so no rewrite of the status file, for an hour.
    let (_pid, _guard) = start_daemon_every(&sandbox, &server, "3600");
    let path = sandbox.data_dir().join("alert_monitor.status.json");
    let read = || -> Option<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(&path).ok()?).ok()
    };
    eventually(
        "a cycle in the status file",
        Duration::from_secs(20),
        || read().is_some_and(|s| s["last_cycle"].is_object()),
    );
    let mut status = read().unwrap();
    status["last_cycle"]["error"] = json!("HTTP 400: \u{1b}]0;pwned\u{7}\u{202E}kcatta");
    std::fs::write(&path, status.to_string()).unwrap();

    let output = sandbox
        .kalshi()
        .args(["alerts", "status"])
        .output()
        .unwrap();
    let stdout = stdout_of(&output);
    assert!(stdout.contains("HTTP 400: ?]0;pwned??kcatta"), "{stdout}");
    assert!(
        !stdout.contains(['\u{1b}', '\u{7}', '\u{202E}']),
        "{stdout:?}"
    );
    sandbox.kalshi().args(["alerts", "stop"]).assert().success();
}

#[test]
fn status_reports_cycles_of_a_live_daemon_and_a_killed_one_as_such() {
    let sandbox = sandbox_with_condition();
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
    let (pid, _guard) = start_daemon(&sandbox, &server);

    let status_json = || {
        let output = sandbox
            .kalshi()
            .args(["alerts", "status", "--json"])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    eventually("a cycle in the status", Duration::from_secs(20), || {
        status_json()["status"]["cycles"].as_u64().unwrap_or(0) >= 1
    });
    let status = status_json();
    assert_eq!(status["running"], true);
    assert_eq!(status["pid"], pid);
    assert_eq!(status["status"]["last_cycle"]["markets"], 232);
    assert!(status["status"]["next_cycle_at"].is_string(), "{status}");
    sandbox
        .kalshi()
        .args(["alerts", "status"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Last cycle: "))
        .stdout(predicate::str::contains("232 market(s) read"));

    signal(pid, libc::SIGKILL);
    eventually(
        "the killed daemon's lock to go",
        Duration::from_secs(20),
        || status_code(&sandbox) == Some(3),
    );
    let status = status_json();
    assert_eq!(status["running"], false);
    assert_eq!(status["stale_pid"], pid);
    sandbox
        .kalshi()
        .args(["alerts", "status"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains(format!(
            "The last monitor (PID: {pid}) ended without shutting down cleanly"
        )));
}

#[test]
fn a_daemon_applies_edits_by_the_next_cycle_and_at_once_on_sighup() {
    let sandbox = sandbox_with_condition();
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
    let out = sandbox.path("fired.jsonl");
    let output = sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "monitor", "--daemon", "--interval", "3600"])
        .args(["--output-file", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let pid = started_pid(&stdout_of(&output));
    let _guard = DaemonGuard(pid);
    eventually("the first alert", Duration::from_secs(20), || {
        common::fired_ids(&out) == ["c"]
    });

    // An invalid edit is refused and the last good set stays.
    std::fs::write(sandbox.alerts_path(), "{ not json").unwrap();
    signal(pid, libc::SIGHUP);
    eventually("the refusal in the log", Duration::from_secs(20), || {
        log_text(&sandbox).contains("not reloaded; the last good set stays in use")
    });
    assert!(
        log_text(&sandbox).contains("is not valid JSON (line 1"),
        "{}",
        log_text(&sandbox)
    );

    // So is a file whose conditions share an id: they would fire at every
    // check, overwriting each other's state.
    sandbox.write_alerts(json!([
        record("c", "price_above", "EUCLIMATE-2030", 0.3),
        record("c", "volume_above", "CHINAUSGDP-30", 1000.0),
    ]));
    signal(pid, libc::SIGHUP);
    eventually("the shared id refused", Duration::from_secs(20), || {
        log_text(&sandbox).contains("(id \"c\") has the id of condition 1")
    });
    assert_eq!(common::fired_ids(&out), ["c"]);

    // So is a threshold `alerts add` refuses: a move of 0 would fire on
    // every market at every check.
    sandbox.write_alerts(json!([
        record("c", "price_above", "EUCLIMATE-2030", 0.3),
        record("zero", "edge_detected", "CHINAUSGDP-30", 0.0),
    ]));
    signal(pid, libc::SIGHUP);
    eventually("the move of 0 refused", Duration::from_secs(20), || {
        log_text(&sandbox).contains(
            "(id \"zero\") has edge_detected threshold 0, which `alerts add` refuses: a move \
             of 0 would fire on every check",
        )
    });
    assert_eq!(common::fired_ids(&out), ["c"]);

    // A good edit applies at once on SIGHUP, though the interval is an hour.
    sandbox.write_alerts(json!([
        record("c", "price_above", "EUCLIMATE-2030", 0.3),
        record("added", "volume_above", "CHINAUSGDP-30", 1000.0),
    ]));
    signal(pid, libc::SIGHUP);
    eventually(
        "the added condition to fire",
        Duration::from_secs(20),
        || common::fired_ids(&out).contains(&"added".to_string()),
    );
    assert_eq!(
        common::fired_ids(&out)
            .iter()
            .filter(|id| *id == "c")
            .count(),
        1
    );
    assert!(alive(pid));
    sandbox.kalshi().args(["alerts", "stop"]).assert().success();
}
