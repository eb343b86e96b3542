//! The daemon against an API that fails, and a data dir that goes wrong,
//! while it runs: each fault of "run for weeks without losing an alert"
//! gets its own test, through the real binary, against a loopback server
//! that injects it.
//!
//! Most tests share one story. The market starts at 35/44 (midpoint 0.395),
//! which fires `above` (over 0.3) at the first check. The fault strikes from
//! the second request on, and only once it has cleared does a check see the
//! market at 50/52 (0.51), which fires `cross` (a crossing of 0.45). So
//! `cross` proves that the daemon came through the fault with its state
//! (the previous quote, what already fired) and fired the right alert.
//!
//! Durations are scaled down: `--interval 1`, faults of seconds. The API
//! down "for minutes" is some 25 s of failing cycles here; a soak run
//! against a real outage is what covers real minutes.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{alive, eventually, fired_ids, record, started_pid, stderr_of, stdout_of};
use common::{DaemonGuard, Sandbox};
use kalshi_test_server::{fixtures, Fault, Scenario, TestServer};
use serde_json::{json, Value};

/// Generous: a cycle that meets a fault may spend some 8 s in backoff.
const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `check` until it holds or `limit` passes; whether it held.
fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !check() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// The recorded markets: EUCLIMATE-2030 at 35/44.
fn before() -> Vec<Value> {
    fixtures::legacy_markets()
}

/// EUCLIMATE-2030 moved to 50/52, across 0.45.
fn after() -> Vec<Value> {
    let mut markets = fixtures::legacy_markets();
    let market = markets
        .iter_mut()
        .find(|m| m["ticker"] == "EUCLIMATE-2030")
        .expect("EUCLIMATE-2030 in the recording");
    fixtures::set_yes_quote(market, "0.50", "0.52");
    markets
}

fn conditions() -> Value {
    json!([
        record("above", "price_above", "EUCLIMATE-2030", 0.3),
        record("cross", "price_crosses", "EUCLIMATE-2030", 0.45),
    ])
}

/// `before` for the first scan, `after` for every later one, and `faults`
/// on the requests after the first. A faulted request starts no scan, so
/// the first check to see `after` is the first one past the faults.
fn scenario_with(faults: Vec<Fault>) -> Scenario {
    faults.into_iter().enumerate().fold(
        Scenario::new(before()).then(after()),
        |scenario, (i, fault)| scenario.fault_on_request(i + 1, fault),
    )
}

/// A daemon of one sandbox, with its alerts appended to `fired.jsonl`
/// outside the data dir. Killed when dropped.
struct Daemon<'a> {
    sandbox: &'a Sandbox,
    pid: i32,
    fired: PathBuf,
    _guard: DaemonGuard,
}

impl<'a> Daemon<'a> {
    /// Starts `kalshi alerts monitor --daemon --interval 1` on `base_url`.
    fn start(sandbox: &'a Sandbox, base_url: &str, extra: &[&str]) -> Daemon<'a> {
        let fired = sandbox.path("fired.jsonl");
        let output = sandbox
            .kalshi_at(base_url)
            .args(["alerts", "monitor", "--daemon", "--interval", "1"])
            // Full scans: several of these faults are about paging.
            .args(["--scan", "full"])
            .args(["--output-file", fired.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr_of(&output));
        let pid = started_pid(&stdout_of(&output));
        Daemon {
            sandbox,
            pid,
            fired,
            _guard: DaemonGuard(pid),
        }
    }

    fn fired(&self) -> Vec<String> {
        fired_ids(&self.fired)
    }

    /// Waits until exactly `ids` have fired, in this order: one more would
    /// be an alert fired twice.
    fn wait_for_alerts(&self, ids: &[&str]) {
        eventually(&format!("alerts {ids:?}"), PATIENCE, || {
            self.fired().len() >= ids.len()
        });
        assert_eq!(self.fired(), ids, "{}", self.sandbox.log_text());
    }

    fn log(&self) -> String {
        self.sandbox.log_text()
    }

    /// The log from byte `offset` on.
    fn log_since(&self, offset: usize) -> String {
        self.log().get(offset..).unwrap_or_default().to_string()
    }

    /// Waits for `needle` in the log; a line may follow the alert it tells
    /// of by a moment.
    fn wait_for_log(&self, needle: &str) {
        let found = wait_until(PATIENCE, || self.log().contains(needle));
        assert!(found, "{needle:?} not in the log:\n{}", self.log());
    }

    /// The `wait_ms` of every retry the log records for an answer with
    /// `status`.
    fn retry_waits(&self, status: u16) -> Vec<u64> {
        let error = format!("error=HTTP {status}");
        self.log()
            .lines()
            .filter(|line| line.contains("request failed; retrying") && line.contains(&error))
            .map(|line| {
                let value = line.split("wait_ms=").nth(1).expect("a wait_ms field");
                let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().unwrap()
            })
            .collect()
    }

    /// `alerts status --json` of the sandbox.
    fn status(&self) -> Value {
        let output = self
            .sandbox
            .kalshi()
            .args(["alerts", "status", "--json"])
            .output()
            .unwrap();
        serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
    }

    /// Checks the daemon still runs and is reported running, then stops it.
    fn stop(self) {
        assert!(alive(self.pid), "the daemon died: {}", self.log());
        assert_eq!(self.status()["running"], true);
        self.sandbox
            .kalshi()
            .args(["alerts", "stop"])
            .assert()
            .success();
    }
}

/// The story of the module doc with `faults` after the first request: the
/// daemon fires `above`, comes through the faults, logs each of `expected`
/// on the way, and fires `cross` once they clear. Returns the server, to
/// check what it was asked.
fn comes_through(faults: Vec<Fault>, extra: &[&str], expected: &[&str]) -> TestServer {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(conditions());
    let count = faults.len();
    let server = TestServer::start(scenario_with(faults));
    let daemon = Daemon::start(&sandbox, &server.base_url(), extra);

    daemon.wait_for_alerts(&["above", "cross"]);
    for needle in expected {
        daemon.wait_for_log(needle);
    }
    assert!(
        server.requests().len() > count,
        "the faults were not all met"
    );
    daemon.stop();
    server
}

#[test]
fn a_storm_of_429s_with_retry_after_seconds_is_waited_out() {
    let too_many = Fault::Status {
        code: 429,
        retry_after: Some("1".into()),
    };
    // Seven in a row: the five attempts of one cycle, then two of the next.
    let sandbox = Sandbox::new();
    sandbox.write_alerts(conditions());
    let server = TestServer::start(scenario_with(vec![too_many; 7]));
    let daemon = Daemon::start(&sandbox, &server.base_url(), &[]);

    daemon.wait_for_alerts(&["above", "cross"]);
    assert!(
        daemon.log().contains("market scan failed"),
        "{}",
        daemon.log()
    );
    let waits = daemon.retry_waits(429);
    assert_eq!(waits.len(), 6, "{}", daemon.log());
    assert!(waits.iter().all(|&ms| ms >= 1000), "{waits:?}");
    daemon.stop();
}

#[test]
fn a_storm_of_429s_with_an_http_date_retry_after_is_waited_out() {
    // The date is 3 s ahead when sent, in whole seconds: 2 to 3 s to wait,
    // where the backoff alone would wait under 1 s for the first retries.
    let too_many = Fault::RetryAfterDate {
        code: 429,
        wait: Duration::from_secs(3),
    };
    let sandbox = Sandbox::new();
    sandbox.write_alerts(conditions());
    let server = TestServer::start(scenario_with(vec![too_many; 3]));
    let daemon = Daemon::start(&sandbox, &server.base_url(), &[]);

    daemon.wait_for_alerts(&["above", "cross"]);
    let waits = daemon.retry_waits(429);
    assert_eq!(waits.len(), 3, "{}", daemon.log());
    assert!(waits.iter().all(|&ms| ms >= 1500), "{waits:?}");
    daemon.stop();
}

#[test]
fn a_run_of_500s_is_retried_within_the_cycle() {
    let error = Fault::Status {
        code: 500,
        retry_after: None,
    };
    comes_through(vec![error; 3], &[], &["error=HTTP 500"]);
}

#[test]
fn a_run_of_502s_longer_than_the_attempts_fails_a_cycle_and_the_next_recovers() {
    let bad_gateway = Fault::Status {
        code: 502,
        retry_after: None,
    };
    comes_through(
        vec![bad_gateway; 6],
        &[],
        &["error=HTTP 502", "refused with HTTP 502 after 5 attempt(s)"],
    );
}

#[test]
fn a_503_with_retry_after_is_waited_out() {
    let unavailable = Fault::Status {
        code: 503,
        retry_after: Some("1".into()),
    };
    comes_through(vec![unavailable; 2], &[], &["error=HTTP 503"]);
}

#[test]
fn a_connection_dropped_mid_body_is_retried() {
    comes_through(
        vec![Fault::ResetMidBody; 2],
        &[],
        &["request failed; retrying", "error decoding response body"],
    );
}

#[test]
fn a_response_slower_than_the_timeout_is_abandoned_and_retried() {
    comes_through(
        vec![Fault::Delay(Duration::from_secs(4))],
        &["--timeout", "1"],
        &["error=timed out"],
    );
}

#[test]
fn a_truncated_page_fails_its_cycle_and_the_next_recovers() {
    comes_through(
        vec![Fault::MalformedBody],
        &[],
        &["is malformed: not valid JSON", "market scan failed"],
    );
}

#[test]
fn a_page_that_is_not_json_fails_its_cycle_and_the_next_recovers() {
    comes_through(
        vec![Fault::NotJson],
        &[],
        &["is malformed: not valid JSON", "market scan failed"],
    );
}

#[test]
fn a_cursor_that_loops_stops_the_scan_with_a_warning() {
    let server = comes_through(
        vec![Fault::RepeatingCursor],
        &[],
        &[
            "the API repeated a cursor of this scan",
            "cycle complete cycle=2 pages=2",
        ],
    );
    let looped = server
        .requests()
        .iter()
        .filter(|r| r.param("cursor") == Some("loop"))
        .count();
    assert_eq!(looped, 1, "the loop was followed past its first repeat");
}

#[test]
fn a_few_empty_pages_with_a_cursor_are_followed_to_the_markets() {
    // The markets after the empty pages were read in the same scan, the
    // one that saw the market move.
    let server = comes_through(
        vec![Fault::EmptyPages(3)],
        &[],
        &["cycle complete cycle=2 pages=4 markets=232 fired=1"],
    );
    let followed = server
        .requests()
        .iter()
        .filter(|r| r.param("cursor").is_some_and(|c| c.starts_with("empty")))
        .count();
    assert_eq!(followed, 3, "one request per empty page's cursor");
}

#[test]
fn endless_empty_pages_with_a_cursor_stop_the_scan_with_a_warning() {
    let server = comes_through(
        vec![Fault::EmptyPages(usize::MAX)],
        &[],
        &[
            "the API sent 10 empty pages in a row that still had a cursor",
            "cycle complete cycle=2 pages=10 markets=0 fired=0",
        ],
    );
    let followed = server
        .requests()
        .iter()
        .filter(|r| r.param("cursor").is_some_and(|c| c.starts_with("empty")))
        .count();
    assert_eq!(followed, 9, "ten empty pages are read, then no more");
}

#[test]
fn a_server_stopped_then_restarted_on_the_same_port_is_picked_up_again() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(conditions());
    let mut server = TestServer::start(Scenario::new(before()).then(after()));
    let daemon = Daemon::start(&sandbox, &server.base_url(), &[]);
    daemon.wait_for_alerts(&["above"]);

    let offset = daemon.log().len();
    server.stop();
    eventually("a refused connection in the log", PATIENCE, || {
        daemon.log_since(offset).contains("Connection refused")
    });
    server.restart().expect("the port is free again");

    daemon.wait_for_alerts(&["above", "cross"]);
    daemon.stop();
}

#[test]
fn an_api_down_for_many_cycles_then_back_is_picked_up_without_a_restart() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(conditions());
    let mut server = TestServer::start(Scenario::new(before()).then(after()));
    let daemon = Daemon::start(&sandbox, &server.base_url(), &[]);
    daemon.wait_for_alerts(&["above"]);

    // Down, first answering 503 to every request, then not answering at
    // all: at least 12 s and two failed cycles of each. No scan starts
    // meanwhile, so the move to `after` is first seen once it is back.
    let failed_cycles = |offset: usize| {
        daemon
            .log_since(offset)
            .matches("market scan failed")
            .count()
    };
    let hold = |what: &str| {
        let (offset, since) = (daemon.log().len(), Instant::now());
        eventually(what, PATIENCE, || {
            since.elapsed() >= Duration::from_secs(12) && failed_cycles(offset) >= 2
        });
    };
    server.begin_outage(Fault::Status {
        code: 503,
        retry_after: None,
    });
    hold("cycles failing on 503s");
    assert!(daemon.status()["status"]["last_cycle"]["error"].is_string());
    server.stop();
    hold("cycles failing on a closed port");
    assert!(alive(daemon.pid));
    server.end_outage();
    server.restart().expect("the port is free again");

    daemon.wait_for_alerts(&["above", "cross"]);
    eventually("a good cycle in the status", PATIENCE, || {
        daemon.status()["status"]["last_cycle"]["error"].is_null()
    });
    assert_eq!(daemon.fired(), ["above", "cross"]);
    daemon.stop();
}

/// Runs `edit` on the sandbox's alerts.json while a daemon fires from it,
/// and checks that the daemon refuses it with `refusal` and the file's path
/// in the log, keeps the last good set (`cross` fires when the market
/// moves), and takes a good file again later without firing anything twice.
fn keeps_the_last_good_set(edit: impl FnOnce(&Path), refusal: &str) {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(conditions());
    let server = TestServer::start(Scenario::new(before()));
    let daemon = Daemon::start(&sandbox, &server.base_url(), &[]);
    daemon.wait_for_alerts(&["above"]);

    edit(&sandbox.alerts_path());
    daemon.wait_for_log(refusal);
    let log = daemon.log();
    let line = log.lines().find(|line| line.contains(refusal)).unwrap();
    let path = sandbox.alerts_path().display().to_string();
    assert!(line.contains(&format!("alerts file {path} ")), "{line}");
    assert!(
        line.contains("not reloaded; the last good set stays in use"),
        "{line}"
    );
    server.set_markets(after());
    daemon.wait_for_alerts(&["above", "cross"]);

    let mut good = conditions().as_array().unwrap().clone();
    good.push(record("volume", "volume_above", "CHINAUSGDP-30", 1000.0));
    sandbox.write_alerts(Value::Array(good));
    daemon.wait_for_alerts(&["above", "cross", "volume"]);
    daemon.stop();
}

#[test]
fn alerts_json_replaced_with_invalid_json_keeps_the_last_good_set() {
    keeps_the_last_good_set(
        |path| std::fs::write(path, "{\n  \"conditions\": [\n    {,\n").unwrap(),
        "is not valid JSON (line 3, column 6)",
    );
}

#[test]
fn alerts_json_deleted_keeps_the_last_good_set() {
    keeps_the_last_good_set(
        |path| std::fs::remove_file(path).unwrap(),
        "does not exist (deleted or moved away?)",
    );
}

/// A tmpfs of `size` mounted on a directory, unmounted when dropped (even
/// when the test fails), lazily, so that a process still using it does
/// not keep it.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts it, or says why not: mounting needs root (CAP_SYS_ADMIN).
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;

        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let target = CString::new(dir.as_os_str().as_bytes()).unwrap();
        let options = CString::new(format!("size={size},mode=0700")).unwrap();
        let done = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        if done != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        use std::os::unix::ffi::OsStrExt;

        let target = std::ffi::CString::new(self.0.as_os_str().as_bytes()).unwrap();
        unsafe {
            libc::umount2(target.as_ptr(), libc::MNT_DETACH);
        }
    }
}

/// Writes `filler` until the file system is full, then appends empty lines
/// to `log` until its last block is full too: from then on every write to
/// the disk fails, the daemon's log included.
fn fill(filler: &Path, log: &Path) {
    use std::io::Write;

    let mut file = std::fs::File::create(filler).unwrap();
    let block = vec![0u8; 64 * 1024];
    while write_until_full(&mut file, &block, filler) {}

    let mut log_file = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    // One byte at a time, so that no line is left cut; a block is at most
    // 64 KiB.
    for _ in 0..64 * 1024 {
        if !write_until_full(&mut log_file, b"\n", log) {
            return;
        }
    }
    panic!("{} never filled", log.display());

    fn write_until_full(file: &mut std::fs::File, bytes: &[u8], path: &Path) -> bool {
        match file.write(bytes) {
            Ok(0) => panic!("{}: a write of nothing on a disk not full", path.display()),
            Ok(_) => true,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => false,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
}

/// SQLite's own check of the state database in `dir`.
fn assert_state_database_whole(dir: &Path) {
    use rusqlite::{Connection, OpenFlags};

    let path = dir.join("state.sqlite3");
    let database = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    database.busy_timeout(Duration::from_secs(10)).unwrap();
    let verdict: String = database
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(verdict, "ok", "{}", path.display());
}

/// The data dir's files, with their sizes: what to look at after a fault.
fn data_dir_files(dir: &Path) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, entry.metadata().map(|m| m.len()).unwrap_or(0))
        })
        .collect();
    files.sort();
    files
}

/// A condition that fires at once: CHINAUSGDP-30 trades 1976 contracts.
const ADD_VOLUME: [&str; 7] = [
    "alerts",
    "add",
    "--no-check",
    "volume",
    "CHINAUSGDP-30",
    "--above",
    "1000",
];

/// The data dir on a small tmpfs, filled while the daemon runs: nothing can
/// be written there, its log included. The daemon must live through it,
/// fire what fires (its alert file is elsewhere), leave alerts.json and the
/// status file whole, and carry on once space is freed, with a state
/// database SQLite finds whole.
#[test]
fn a_full_data_dir_loses_no_alert_and_recovers_once_space_is_freed() {
    let sandbox = Sandbox::new();
    let _tmpfs = match Tmpfs::mount(&sandbox.data_dir(), "2m") {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            eprintln!("skipped: cannot mount a tmpfs for the data dir ({why}); run as root");
            return;
        }
    };
    sandbox.write_alerts(conditions());
    let alerts = std::fs::read(sandbox.alerts_path()).unwrap();
    let server = TestServer::start(Scenario::new(before()));
    let daemon = Daemon::start(&sandbox, &server.base_url(), &[]);
    daemon.wait_for_alerts(&["above"]);
    // The alert is delivered during its cycle, the status written at its
    // end: fill the disk only once there is a status to keep.
    let status_file = sandbox.data_dir().join("alert_monitor.status.json");
    eventually("the first status", PATIENCE, || status_file.exists());

    let filler = sandbox.data_dir().join("filler");
    fill(&filler, &sandbox.log_path());
    let full_log = daemon.log().len();
    let full_since = server.scans_started();

    // An alert fires on the full disk: to the file elsewhere, while the
    // console block and the log lines (both in the log) are lost.
    server.set_markets(after());
    daemon.wait_for_alerts(&["above", "cross"]);
    eventually("two more checks on the full disk", PATIENCE, || {
        server.scans_started() >= full_since + 2
    });
    assert!(alive(daemon.pid), "the daemon died of a full disk");
    assert_eq!(daemon.log().len(), full_log, "a line reached the full log");

    // A change to the conditions fails and leaves alerts.json as it was;
    // the status file is a whole, older one.
    let refused = sandbox.kalshi().args(ADD_VOLUME).output().unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", stderr_of(&refused));
    assert!(
        stderr_of(&refused).contains("No space left on device"),
        "{}",
        stderr_of(&refused)
    );
    assert_eq!(std::fs::read(sandbox.alerts_path()).unwrap(), alerts);
    let status: Value = serde_json::from_slice(&std::fs::read(&status_file).unwrap())
        .expect("the status file is still whole JSON");
    let cycles = status["cycles"].as_u64().unwrap();
    assert!(cycles < server.scans_started() as u64, "{status}");
    eprintln!(
        "on the full disk: {:?}",
        data_dir_files(&sandbox.data_dir())
    );

    // Space again: the status file moves on, the log takes lines, a
    // condition added now fires, and the state database is whole.
    std::fs::remove_file(&filler).unwrap();
    eventually("the status file to move on", PATIENCE, || {
        daemon.status()["status"]["cycles"].as_u64() > Some(cycles + 1)
    });
    eventually("a cycle in the log again", PATIENCE, || {
        daemon.log_since(full_log).contains("cycle complete")
    });
    sandbox.kalshi().args(ADD_VOLUME).assert().success();
    eventually("the added condition to fire", PATIENCE, || {
        daemon.fired().len() == 3
    });
    assert_eq!(&daemon.fired()[..2], ["above", "cross"]);
    assert_eq!(sandbox.conditions().len(), 3);
    daemon.stop();
    assert_state_database_whole(&sandbox.data_dir());
    // What fired on the full disk reached the history once space came back,
    // with its delivery recorded as made.
    let history = sandbox
        .kalshi()
        .args(["alerts", "history", "--json"])
        .output()
        .unwrap();
    let history: serde_json::Value = serde_json::from_slice(&history.stdout).unwrap();
    let fired: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["alert"]["condition_id"].as_str().unwrap())
        .collect();
    assert_eq!(fired.len(), 3, "{history:#}");
    for entry in history.as_array().unwrap() {
        for delivery in entry["deliveries"].as_array().unwrap() {
            assert_eq!(delivery["status"], "delivered", "{entry:#}");
        }
    }
}
