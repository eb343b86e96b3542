//! The service files in `examples/service/` start a working monitor: the
//! command line of the systemd unit (`ExecStart`) and of the launchd agent
//! (`ProgramArguments`) is run as the supervisor would run it (no terminal,
//! the home directory filled in), with the real binary; it fires, reloads on
//! the unit's `ExecReload` signal, and stops cleanly on its `KillSignal`.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{eventually, record, Sandbox};
use kalshi_test_server::{fixtures, Scenario, TestServer};
use serde_json::json;

fn service_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/service")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value of `key=` in the unit's text (the first such line).
fn unit_value(unit: &str, key: &str) -> String {
    unit.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
        .to_string()
}

/// Runs `argv` as a supervisor would: the installed binary replaced by the
/// one under test, no terminal, output to a file.
fn supervise(argv: &[String], sandbox: &Sandbox, server: &TestServer, log: &Path) -> Child {
    assert!(argv[0].ends_with("/.cargo/bin/kalshi"), "{}", argv[0]);
    let log = std::fs::File::create(log).unwrap();
    Command::new(assert_cmd::cargo::cargo_bin("kalshi"))
        .args(&argv[1..])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", sandbox.path("home"))
        .env("KALSHI_API_BASE_URL", server.base_url())
        .env("KALSHI_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn write_condition(data_dir: &Path) {
    std::fs::create_dir_all(data_dir).unwrap();
    let text = json!({"conditions": [record("c", "price_above", "EUCLIMATE-2030", 0.3)]});
    std::fs::write(data_dir.join("alerts.json"), text.to_string()).unwrap();
}

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Sends `signal` and waits (bounded) for the child to exit.
fn stop(child: &mut Child, signal: i32, limit: Duration) -> std::process::ExitStatus {
    unsafe { libc::kill(child.id() as i32, signal) };
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running {limit:?} after the stop signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_systemd_unit_runs_reloads_and_stops_the_monitor() {
    let unit = service_file("kalshi-alerts.service");
    let sandbox = Sandbox::new();
    let home = sandbox.path("home");
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
    let exec: Vec<String> = unit_value(&unit, "ExecStart")
        .replace("%h", home.to_str().unwrap())
        .split_whitespace()
        .map(String::from)
        .collect();
    let data_dir: PathBuf = home.join(".local/share/kalshi");
    assert!(exec.contains(&data_dir.display().to_string()), "{exec:?}");
    write_condition(&data_dir);
    assert_eq!(unit_value(&unit, "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(unit_value(&unit, "KillSignal"), "SIGTERM");
    assert_eq!(unit_value(&unit, "Restart"), "on-failure");

    let log = sandbox.path("journal.log");
    let mut child = supervise(&exec, &sandbox, &server, &log);
    eventually("the first alert", Duration::from_secs(30), || {
        text(&log).contains("ALERT EUCLIMATE-2030")
    });
    // ExecReload: SIGHUP reloads; it does not stop the monitor.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    eventually("the reload", Duration::from_secs(20), || {
        text(&log).contains("SIGHUP: reloading")
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP stopped it:\n{}",
        text(&log)
    );
    assert!(!text(&log).contains("\u{1b}["), "no colour in the journal");

    let timeout: u64 = unit_value(&unit, "TimeoutStopSec").parse().unwrap();
    let status = stop(&mut child, libc::SIGTERM, Duration::from_secs(timeout));
    assert!(
        status.success(),
        "{status:?}: a clean stop is not a failure to restart on"
    );
    assert!(
        text(&log).contains("Alert monitor stopped"),
        "{}",
        text(&log)
    );
}

/// The `<string>`s of the plist's `ProgramArguments` array.
fn program_arguments(plist: &str) -> Vec<String> {
    let start = plist
        .find("<key>ProgramArguments</key>")
        .expect("ProgramArguments");
    let array = &plist[start..];
    let array = &array[..array.find("</array>").expect("end of the array")];
    array
        .split("<string>")
        .skip(1)
        .map(|piece| piece.split("</string>").next().unwrap().to_string())
        .collect()
}

#[test]
fn the_launchd_agent_runs_and_stops_the_monitor() {
    let plist = service_file("com.github.kalshi-alerts.monitor.plist");
    let sandbox = Sandbox::new();
    let home = sandbox.path("home");
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
    let argv: Vec<String> = program_arguments(&plist)
        .into_iter()
        .map(|arg| arg.replace("/Users/YOU", home.to_str().unwrap()))
        .collect();
    let data_dir = home.join("Library/Application Support/kalshi");
    assert!(argv.contains(&data_dir.display().to_string()), "{argv:?}");
    write_condition(&data_dir);
    // KeepAlive restarts it only after a failure, as Restart=on-failure.
    assert!(
        plist.contains("<key>SuccessfulExit</key>\n        <false/>"),
        "{plist}"
    );

    let log = sandbox.path("agent.log");
    let mut child = supervise(&argv, &sandbox, &server, &log);
    eventually("the first alert", Duration::from_secs(30), || {
        text(&log).contains("ALERT EUCLIMATE-2030")
    });
    let status = stop(&mut child, libc::SIGTERM, Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
}
