//! Durable state and the outbox through the real binary: a restart does not
//! fire again, a crossing made while the monitor was down is seen, each
//! `--repeat` policy, `alerts rearm`, `alerts history`, a `kill -9` between
//! firing and delivery, retries until delivered (within a run and across a
//! restart), giving up at `max_delivery_age`, reloading the notifiers file
//! (and the warning a reloaded `tls_verify = false` brings), a stop during
//! a scan, and what a monitor that cannot open its state database says.
#![cfg(unix)]

mod common;
#[path = "../../plugins/src/notifiers/webhook/receiver.rs"]
mod receiver;

use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use common::{
    eventually, fired_ids, record, started_pid, stderr_of, stdout_of, DaemonGuard, Sandbox,
};
use kalshi_test_server::{fixtures, Fault, Scenario, TestServer};
use receiver::{Receiver, Reply, SelfSigned};
use serde_json::{json, Value};

const TICKER: &str = "EUCLIMATE-2030";

/// The recorded markets with EUCLIMATE-2030 quoted at `bid`/`ask`.
fn markets_at(bid: &str, ask: &str) -> Vec<Value> {
    let mut markets = fixtures::legacy_markets();
    let market = markets
        .iter_mut()
        .find(|m| m["ticker"] == TICKER)
        .expect("ticker in fixture");
    fixtures::set_yes_quote(market, bid, ask);
    markets
}

/// One `--once` check against `server`, alerts to `fired.jsonl`.
fn check_once(sandbox: &Sandbox, server: &TestServer) -> std::process::Output {
    let out = sandbox.path("fired.jsonl");
    let output = sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "monitor", "--once", "--notifier", "log"])
        .args(["--output-file", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    output
}

fn history(sandbox: &Sandbox) -> Vec<Value> {
    let output = sandbox
        .kalshi()
        .args(["alerts", "history", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    serde_json::from_slice::<Value>(&output.stdout)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap()
}

fn log_text(sandbox: &Sandbox) -> String {
    std::fs::read_to_string(sandbox.data_dir().join("alert_monitor.log")).unwrap_or_default()
}

#[test]
fn a_restart_does_not_fire_again_and_sees_a_crossing_made_while_down() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([
        record("above", "price_above", TICKER, 0.3),
        record("cross", "price_crosses", TICKER, 0.5),
    ]));
    let out = sandbox.path("fired.jsonl");

    let low = TestServer::start(Scenario::new(markets_at("0.39", "0.40")));
    check_once(&sandbox, &low);
    assert_eq!(fired_ids(&out), ["above"]);
    // A second run sees the same: nothing fires again.
    check_once(&sandbox, &low);
    assert_eq!(fired_ids(&out), ["above"]);

    // While no monitor ran, the price went over 0.5: the next run sees the
    // crossing from the stored quote, at its first check.
    let high = TestServer::start(Scenario::new(markets_at("0.60", "0.62")));
    check_once(&sandbox, &high);
    assert_eq!(fired_ids(&out), ["above", "cross"]);

    let fired = history(&sandbox);
    let ids: Vec<_> = fired
        .iter()
        .map(|e| e["alert"]["condition_id"].clone())
        .collect();
    assert_eq!(ids, [json!("above"), json!("cross")]);
    assert_eq!(fired[1]["alert"]["current_value"], json!(0.61));
    assert_eq!(fired[1]["deliveries"].as_array().unwrap().len(), 2);
    for delivery in fired[1]["deliveries"].as_array().unwrap() {
        assert_eq!(delivery["status"], "delivered", "{delivery}");
        assert_eq!(delivery["attempts"], 1);
    }
    let text = stdout_of(
        &sandbox
            .kalshi()
            .args(["alerts", "history"])
            .output()
            .unwrap(),
    );
    assert!(
        text.contains("EUCLIMATE-2030 price crosses 0.5 (now 0.61)"),
        "{text}"
    );
    assert!(
        text.contains("-> output-file: delivered (1 attempt(s))"),
        "{text}"
    );
    let text = stdout_of(
        &sandbox
            .kalshi()
            .args(["alerts", "history", "--since", "1h"])
            .output()
            .unwrap(),
    );
    assert!(text.contains("price > 0.3"), "{text}");
    sandbox
        .kalshi()
        .args(["alerts", "history", "--since", "yesterday-ish"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("--since \"yesterday-ish\""));
}

#[test]
fn each_repeat_policy_through_the_binary() {
    let sandbox = Sandbox::new();
    let rearm = sandbox.add(&["price", TICKER, "--above", "0.3"]);
    let once = sandbox.add(&["price", TICKER, "--above", "0.3", "--repeat", "once"]);
    let cooldown = sandbox.add(&["price", TICKER, "--above", "0.3", "--repeat", "cooldown:1s"]);
    assert_eq!(sandbox.conditions()[1]["repeat"], "once");
    assert_eq!(sandbox.conditions()[2]["repeat"], "cooldown:1s");
    assert!(sandbox.conditions()[0].get("repeat").is_none());

    let before = std::fs::read(sandbox.alerts_path()).unwrap();
    sandbox
        .kalshi()
        .args([
            "alerts",
            "add",
            "price",
            TICKER,
            "--above",
            "0.3",
            "--repeat",
            "sometimes",
        ])
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "--repeat: repeat policy \"sometimes\" is not one of rearm, once, cooldown:DURATION",
        ));
    assert_eq!(std::fs::read(sandbox.alerts_path()).unwrap(), before);

    // True all along: three checks two seconds apart.
    let server = TestServer::start(Scenario::new(markets_at("0.39", "0.40")));
    let out = sandbox.path("fired.jsonl");
    let output = sandbox
        .kalshi_at(&server.base_url())
        .args([
            "alerts",
            "monitor",
            "--cycles",
            "3",
            "--interval",
            "2",
            "--notifier",
            "log",
        ])
        .args(["--output-file", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let count = |id: &str| fired_ids(&out).iter().filter(|f| *f == id).count();
    assert_eq!((count(&rearm), count(&once), count(&cooldown)), (1, 1, 3));

    let list = stdout_of(&sandbox.kalshi().args(["alerts", "list"]).output().unwrap());
    assert!(list.contains("spent (alerts rearm)"), "{list}");
    assert!(list.contains("cooldown:1s"), "{list}");

    // Spent until rearmed; rearmed, it fires at the next check.
    check_once(&sandbox, &server);
    assert_eq!(count(&once), 1);
    sandbox
        .kalshi()
        .args(["alerts", "rearm", &once[..8]])
        .assert()
        .success()
        .stdout(predicates::str::contains("Alert rearmed"));
    check_once(&sandbox, &server);
    assert_eq!(count(&once), 2);
    assert_eq!(count(&rearm), 1, "rearm still holds: not fired again");
    sandbox
        .kalshi()
        .args(["alerts", "rearm", "ffffffff"])
        .assert()
        .code(2);
}

/// Writes a notifiers file with one webhook instance `hook` at `url`,
/// plus `extra` lines.
fn write_hook(sandbox: &Sandbox, url: &str, extra: &str) {
    std::fs::create_dir_all(sandbox.data_dir()).unwrap();
    let text = format!(
        "allow_plaintext_secrets = true\n[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\n\
         url = \"{url}\"\n{extra}\n"
    );
    let path = sandbox.data_dir().join("notifiers.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

fn start_daemon(sandbox: &Sandbox, server: &TestServer) -> (i32, DaemonGuard) {
    let output = sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "monitor", "--daemon", "--interval", "1"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let pid = started_pid(&stdout_of(&output));
    (pid, DaemonGuard(pid))
}

fn not_running(sandbox: &Sandbox) -> bool {
    sandbox
        .kalshi()
        .args(["alerts", "status"])
        .output()
        .unwrap()
        .status
        .code()
        == Some(3)
}

fn delivery_of(sandbox: &Sandbox) -> Value {
    let fired = history(sandbox);
    assert_eq!(fired.len(), 1, "one alert fired: {fired:?}");
    fired[0]["deliveries"][0].clone()
}

#[test]
fn a_kill_9_between_firing_and_delivery_delivers_after_restart() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", TICKER, 0.3)]));
    // The receiver holds the first request until the daemon is dead.
    let receiver = Receiver::start([Reply::status(200).after(Duration::from_secs(60))]);
    write_hook(&sandbox, &receiver.url("/hook"), "timeout = 120");
    let server = TestServer::start(Scenario::new(markets_at("0.39", "0.40")));

    let (pid, guard) = start_daemon(&sandbox, &server);
    let first = receiver.wait_for(1, Duration::from_secs(20));
    assert_eq!(first.len(), 1, "the daemon fired and began delivering");
    unsafe { libc::kill(pid, libc::SIGKILL) };
    drop(guard);
    eventually(
        "the killed daemon to be seen as stopped",
        Duration::from_secs(20),
        || not_running(&sandbox),
    );
    let delivery = delivery_of(&sandbox);
    assert_eq!(delivery["status"], "pending", "{delivery}");

    let (_pid, _guard) = start_daemon(&sandbox, &server);
    let got = receiver.wait_for(2, Duration::from_secs(20));
    assert_eq!(got.len(), 2, "delivered again after the restart");
    let key = first[0].header("idempotency-key").unwrap();
    assert_eq!(got[1].header("idempotency-key"), Some(key));
    eventually("the delivery recorded", Duration::from_secs(20), || {
        delivery_of(&sandbox)["status"] == "delivered"
    });
    // Still holds, and fired before: not fired again by the new daemon.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(history(&sandbox).len(), 1);
    assert_eq!(receiver.requests().len(), 2);
    sandbox.kalshi().args(["alerts", "stop"]).assert().success();
}

#[test]
fn a_failing_delivery_is_retried_until_delivered_even_across_a_restart() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", TICKER, 0.3)]));
    let receiver = Receiver::start([]);
    receiver.answer_rest_with(Reply::status(503).body("busy"));
    write_hook(&sandbox, &receiver.url("/hook"), "");
    let server = TestServer::start(Scenario::new(markets_at("0.39", "0.40")));

    let (_pid, _guard) = start_daemon(&sandbox, &server);
    // Retried with backoff (about 1 s, then 2 s) while it fails.
    receiver.wait_for(3, Duration::from_secs(30));
    let delivery = delivery_of(&sandbox);
    assert_eq!(delivery["status"], "pending", "{delivery}");
    assert!(delivery["attempts"].as_u64().unwrap() >= 2, "{delivery}");
    assert!(
        delivery["last_error"].as_str().unwrap().contains("503"),
        "{delivery}"
    );
    let status = stdout_of(
        &sandbox
            .kalshi()
            .args(["alerts", "status"])
            .output()
            .unwrap(),
    );
    assert!(status.contains("hook"), "{status}");
    assert!(status.contains("pending"), "{status}");

    sandbox.kalshi().args(["alerts", "stop"]).assert().success();
    let stopped_at = receiver.requests().len();
    receiver.answer_rest_with(Reply::status(200).body("ok"));
    let (_pid, _guard) = start_daemon(&sandbox, &server);
    eventually(
        "the delivery after the restart",
        Duration::from_secs(30),
        || delivery_of(&sandbox)["status"] == "delivered",
    );
    let got = receiver.requests();
    assert_eq!(
        got.len(),
        stopped_at + 1,
        "delivered once after the restart"
    );
    let keys: std::collections::HashSet<_> = got
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 1, "every attempt carries the same key");
    sandbox.kalshi().args(["alerts", "stop"]).assert().success();
}

#[test]
fn a_delivery_is_given_up_at_max_delivery_age_and_logged() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", TICKER, 0.3)]));
    let receiver = Receiver::start([]);
    receiver.answer_rest_with(Reply::status(500).body("down"));
    write_hook(
        &sandbox,
        &receiver.url("/hook"),
        "max_delivery_age = \"3s\"",
    );
    let server = TestServer::start(Scenario::new(markets_at("0.39", "0.40")));

    let (_pid, _guard) = start_daemon(&sandbox, &server);
    eventually("the give-up", Duration::from_secs(30), || {
        history(&sandbox)
            .first()
            .is_some_and(|e| e["deliveries"][0]["status"] == "gave_up")
    });
    let log = log_text(&sandbox);
    let line = log
        .lines()
        .find(|l| l.contains("alert not delivered"))
        .unwrap_or_else(|| panic!("no give-up line in\n{log}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("notifier=hook"), "{line}");
    assert!(line.contains("gave up"), "{line}");
    assert!(line.contains("HTTP 500"), "{line}");
    let requests = receiver.requests().len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        receiver.requests().len(),
        requests,
        "no attempt after giving up"
    );
    sandbox.kalshi().args(["alerts", "stop"]).assert().success();
}

#[test]
fn a_running_daemon_applies_an_edited_notifiers_file() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", TICKER, 0.3)]));
    let first = sandbox.path("first.jsonl");
    let second = sandbox.path("second.jsonl");
    let write_file_notifier = |path: &std::path::Path| {
        std::fs::create_dir_all(sandbox.data_dir()).unwrap();
        let file = sandbox.data_dir().join("notifiers.toml");
        std::fs::write(
            &file,
            format!(
                "[[notifier]]\nname = \"out\"\nkind = \"file\"\npath = \"{}\"\n",
                path.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
    };
    write_file_notifier(&first);
    let server = TestServer::start(Scenario::new(markets_at("0.39", "0.40")));
    let (pid, _guard) = start_daemon(&sandbox, &server);
    eventually("the first alert", Duration::from_secs(20), || {
        fired_ids(&first) == ["c"]
    });

    // A broken edit is refused, naming the file; the old instance stays.
    let file = sandbox.data_dir().join("notifiers.toml");
    std::fs::write(&file, "[[notifier]\nname = ").unwrap();
    unsafe { libc::kill(pid, libc::SIGHUP) };
    eventually("the refusal", Duration::from_secs(20), || {
        log_text(&sandbox).contains("not reloaded; the last good set stays in use")
    });
    assert!(
        log_text(&sandbox).contains("notifiers.toml"),
        "{}",
        log_text(&sandbox)
    );

    // A good edit applies by the next cycle, without a signal.
    write_file_notifier(&second);
    eventually("the reload", Duration::from_secs(20), || {
        log_text(&sandbox).contains("notifiers reloaded")
    });
    sandbox.add(&["volume", "CHINAUSGDP-30", "--above", "1000"]);
    eventually(
        "the new alert in the new file",
        Duration::from_secs(20),
        || fired_ids(&second).len() == 1,
    );
    assert_eq!(
        fired_ids(&first),
        ["c"],
        "nothing more went to the old instance"
    );
    sandbox.kalshi().args(["alerts", "stop"]).assert().success();
}

#[test]
fn a_reload_that_turns_tls_verify_off_is_logged_once_naming_the_instance() {
    let certificate = SelfSigned::generate();
    let receiver = Receiver::start_tls(&certificate, []);
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", TICKER, 0.3)]));
    let url = receiver.url("/hook");
    let trusted = format!("ca_file = \"{}\"", certificate.cert_path().display());
    write_hook(&sandbox, &url, &trusted);
    let server = TestServer::start(Scenario::new(markets_at("0.39", "0.40")));
    let (pid, _guard) = start_daemon(&sandbox, &server);
    eventually("the first delivery", Duration::from_secs(20), || {
        receiver.requests().len() == 1
    });
    let unchecked = "TLS certificates are not checked (tls_verify = false)";
    assert!(!log_text(&sandbox).contains(unchecked));

    write_hook(&sandbox, &url, "tls_verify = false");
    unsafe { libc::kill(pid, libc::SIGHUP) };
    eventually("the reload", Duration::from_secs(20), || {
        log_text(&sandbox).contains("notifiers reloaded")
    });
    sandbox.add(&["volume", "CHINAUSGDP-30", "--above", "1000"]);
    eventually(
        "the delivery after the reload",
        Duration::from_secs(20),
        || receiver.requests().len() == 2,
    );

    let log = log_text(&sandbox);
    let warned: Vec<&str> = log.lines().filter(|l| l.contains(unchecked)).collect();
    assert_eq!(warned.len(), 1, "{log}");
    assert!(warned[0].contains(" WARN "), "{}", warned[0]);
    assert!(warned[0].contains("notifier=hook"), "{}", warned[0]);
    sandbox.kalshi().args(["alerts", "stop"]).assert().success();
}

#[test]
fn sigterm_during_a_scan_stops_within_two_seconds_with_state_committed() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", TICKER, 0.3)]));
    let out = sandbox.path("fired.jsonl");
    // The first scan fires; the second one hangs on its first page.
    let server = TestServer::start(
        Scenario::new(markets_at("0.39", "0.40"))
            .fault_on_request(1, Fault::Delay(Duration::from_secs(60))),
    );
    let binary = assert_cmd::cargo::cargo_bin("kalshi");
    let mut child = StdCommand::new(binary)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KALSHI_DATA_DIR", sandbox.data_dir())
        .env("KALSHI_API_BASE_URL", server.base_url())
        .args([
            "alerts",
            "monitor",
            "--interval",
            "1",
            "--timeout",
            "120",
            "--notifier",
            "log",
        ])
        .args(["--output-file", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually("the hanging scan", Duration::from_secs(20), || {
        server.requests().len() >= 2
    });
    std::thread::sleep(Duration::from_millis(200));
    let signalled = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("still running 10 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(2), "stopped after {took:?}");
    assert_eq!(fired_ids(&out), ["c"]);
    // What the first cycle decided is in the database, and stays decided.
    assert_eq!(history(&sandbox).len(), 1);
    let again = TestServer::start(Scenario::new(markets_at("0.39", "0.40")));
    check_once(&sandbox, &again);
    assert_eq!(fired_ids(&out), ["c"]);
}

/// Takes the immutable attribute off again, whatever the test did.
struct Mutable(std::path::PathBuf);

impl Drop for Mutable {
    fn drop(&mut self) {
        let _ = StdCommand::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn a_state_database_that_cannot_be_written_stops_the_monitor_at_start() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", TICKER, 0.3)]));
    let server = TestServer::start(Scenario::new(markets_at("0.39", "0.40")));
    check_once(&sandbox, &server);
    let database = sandbox.data_dir().join("state.sqlite3");
    // Root may write any file whatever its mode; only an immutable one is
    // refused to root too. Not every file system has the attribute.
    let made = StdCommand::new("chattr").arg("+i").arg(&database).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("chattr +i is not available here; skipped");
        return;
    }
    let _undo = Mutable(database.clone());
    let output = sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "monitor", "--once", "--notifier", "log"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("cannot be written (read-only or immutable)"),
        "{}",
        stderr_of(&output)
    );
    // Reading still works.
    assert_eq!(history(&sandbox).len(), 1);
}

/// Why a monitor refused to start over the state database `prepare` left
/// in the data dir: its stderr, once it exited 1.
fn refusal_at_start(prepare: impl FnOnce(&std::path::Path)) -> String {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", TICKER, 0.3)]));
    prepare(&sandbox.data_dir().join("state.sqlite3"));
    let server = TestServer::start(Scenario::new(markets_at("0.39", "0.40")));
    let output = sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "monitor", "--once", "--notifier", "log"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    assert!(server.requests().is_empty(), "the monitor scanned");
    stderr_of(&output)
}

#[test]
fn a_full_disk_at_start_is_reported_as_such_and_only_a_damaged_file_is_to_be_moved_away() {
    // /dev/full takes no write, as a full disk: SQLite says SQLITE_FULL.
    let full = refusal_at_start(|database| {
        std::os::unix::fs::symlink("/dev/full", database).unwrap();
    });
    assert!(
        full.contains(
            "state.sqlite3: database or disk is full: the disk holding the data directory \
             may be full or unwritable; free space on it and start again, and keep the file, \
             which is likely whole"
        ),
        "{full}"
    );
    assert!(!full.contains("move it away"), "{full}");

    let damaged = refusal_at_start(|database| {
        std::fs::write(
            database,
            "not a database, but long enough to be read as one".repeat(40),
        )
        .unwrap();
    });
    assert!(
        damaged.contains(
            "state.sqlite3: file is not a database: the file is damaged; move it away and the \
             monitor starts afresh without it, forgetting what fired"
        ),
        "{damaged}"
    );
}
