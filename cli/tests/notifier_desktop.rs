//! The `desktop` notifier against a real D-Bus session bus and a real
//! notification daemon (dunst on a virtual X display), and against the ways
//! a desktop can be missing: no bus, a bus with no notification service, a
//! service the bus cannot start.
//!
//! Every test starts its own bus, display and daemon and stops them when it
//! ends, also when it panics (each process sits in a guard that stops it on
//! drop). What the daemon received is read off the bus with `dbus-monitor`,
//! which sees the `Notify` call's arguments exactly as they were sent.
//! A program the tests need that is not installed fails the test, naming
//! the Debian package to install; nothing is skipped.
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{record, stderr_of, Sandbox};
use kalshi_alerts_core::notifier::find_notifier;
use kalshi_alerts_core::{
    Condition, FailureKind, FiredAlert, Market, NamedNotifier, Notifier, NotifyError,
};
use kalshi_test_server::{fixtures, Scenario, TestServer};
use predicates::prelude::*;
use rust_decimal::Decimal;

const NOTIFICATIONS: &str = "org.freedesktop.Notifications";

/// The longest any start-up or read-back wait may take. Every one of them
/// is done in well under a second here; the margin is for a loaded machine.
const WAIT: Duration = Duration::from_secs(10);

/// How long a failure that needs no one to answer may take: a missing
/// socket, a name nobody owns. Generous against a loaded machine, far below
/// the bus's 25 s reply timeout that a hang would show.
const QUICK: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------
// The harness: programs, processes and their guards.
// ---------------------------------------------------------------------------

/// The path of `program`, or a failure naming the Debian package that has it.
fn require(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{program} is not installed (not on PATH); the desktop notifier tests need it: \
                 apt-get install {package}"
            )
        })
}

/// Polls `done` until it holds, failing the test after [`WAIT`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "gave up after {WAIT:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Everything a child writes to a pipe, collected by a thread as it comes,
/// so that no wait ever blocks on a read.
#[derive(Clone, Default)]
struct Captured {
    text: Arc<Mutex<String>>,
    /// Set once the pipe is closed and everything in it was read.
    ended: Arc<AtomicBool>,
}

impl Captured {
    fn follow(pipe: impl Read + Send + 'static) -> Captured {
        let captured = Captured::default();
        let sink = captured.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                sink.text.lock().unwrap().push_str(&line);
                line.clear();
            }
            sink.ended.store(true, Ordering::SeqCst);
        });
        captured
    }

    fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }
}

fn signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) with a pid this test started and a plain signal.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// A child process that is stopped when the guard is dropped: SIGTERM so
/// that Xvfb removes its lock file, then SIGKILL if it lingers.
struct Guarded {
    name: &'static str,
    child: Child,
}

impl Guarded {
    fn spawn(name: &'static str, command: &mut Command) -> Guarded {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Guarded { name, child }
    }

    /// Fails the test, with what it said, if the process has already ended.
    fn assert_running(&mut self, stderr: &Captured) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited early ({status}): {}",
                self.name,
                stderr.text().trim()
            );
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        signal(self.child.id() as i32, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes this test process the one that inherits orphaned descendants, so
/// that a `dbus-daemon --fork` can be waited for (and so reaped) after it
/// is stopped, instead of lingering as a zombie of init.
fn adopt_orphans() {
    // SAFETY: prctl(2) with PR_SET_CHILD_SUBREAPER takes one integer.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// A D-Bus session bus of the test's own.
struct Bus {
    address: String,
    pid: i32,
    /// Its configuration file and HOME; removed after the daemon stops.
    dir: tempfile::TempDir,
}

/// Which services a [`Bus`] can start on demand.
enum Activation {
    /// The system's session configuration: every installed `.service` file,
    /// dunst's for `org.freedesktop.Notifications` among them.
    Standard,
    /// None: a name nobody owns stays unowned.
    None,
    /// A notification "service" that starts and never takes the name, so
    /// that a call to it waits for the bus's activation timeout (25 s).
    Hanging,
}

impl Bus {
    fn start(activation: Activation) -> Bus {
        let daemon = require("dbus-daemon", "dbus");
        adopt_orphans();
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(daemon);
        match activation {
            Activation::Standard => {
                command.arg("--session");
            }
            Activation::None | Activation::Hanging => {
                let services = dir.path().join("services");
                std::fs::create_dir_all(&services).unwrap();
                if let Activation::Hanging = activation {
                    std::fs::write(
                        services.join("hang.service"),
                        hanging_service(&dir.path().join("hanging.pid")),
                    )
                    .unwrap();
                }
                let config = dir.path().join("bus.conf");
                std::fs::write(&config, bus_config(dir.path(), &services)).unwrap();
                command.arg(format!("--config-file={}", config.display()));
            }
        }
        // A clean environment: the bus hands its own to the services it
        // starts, and a DISPLAY leaking in from the test's would let dunst
        // start where a test wants it not to.
        command
            .args(["--fork", "--print-address=1", "--print-pid=1"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("share"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // With --fork the process started here prints and exits; the daemon
        // it forked lets go of the pipe too.
        let mut parent = Guarded::spawn("dbus-daemon", &mut command);
        let out = Captured::follow(parent.child.stdout.take().unwrap());
        let err = Captured::follow(parent.child.stderr.take().unwrap());
        wait_until("dbus-daemon to print its address and pid", || {
            out.text().lines().count() >= 2 || out.ended() && err.ended()
        });
        let text = out.text();
        let mut lines = text.lines();
        let (Some(address), Some(pid)) = (lines.next(), lines.next()) else {
            panic!(
                "dbus-daemon did not start: {}{}",
                text.trim(),
                err.text().trim()
            );
        };
        let bus = Bus {
            address: address.trim().to_string(),
            pid: pid.trim().parse().expect("dbus-daemon prints its pid"),
            dir,
        };
        drop(parent);
        bus
    }

    /// Whether `name` has an owner now. Asking starts nothing.
    fn has_owner(&self, name: &str) -> bool {
        let output = Command::new(require("dbus-send", "dbus"))
            .args([
                &format!("--bus={}", self.address),
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                &format!("string:{name}"),
            ])
            .output()
            .expect("dbus-send runs");
        assert!(
            output.status.success(),
            "NameHasOwner failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).contains("boolean true")
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        // The hanging service outlives the bus that started it.
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("hanging.pid")) {
            if let Ok(pid) = pid.trim().parse() {
                signal(pid, libc::SIGKILL);
            }
        }
        signal(self.pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let mut status = 0;
            // SAFETY: waitpid(2) on the daemon this process adopted.
            let reaped = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if reaped != 0 || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        signal(self.pid, libc::SIGKILL);
    }
}

/// A session bus configuration whose only service directory is `services`.
fn bus_config(dir: &Path, services: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{}</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
        dir.display(),
        services.display()
    )
}

/// A service file for the notification name whose program writes its pid
/// (so that the test can stop it) and sleeps instead of taking the name.
fn hanging_service(pid_file: &Path) -> String {
    format!(
        "[D-BUS Service]\nName={NOTIFICATIONS}\nExec=/bin/sh -c 'echo $$ > {}; exec sleep 60'\n",
        pid_file.display()
    )
}

/// A desktop: a session bus, a virtual X display and dunst owning the
/// notification name. Fields drop in order: dunst, then the display, then
/// the bus.
struct Desktop {
    _dunst: Guarded,
    _xvfb: Guarded,
    bus: Bus,
}

impl Desktop {
    fn start() -> Desktop {
        let xvfb_program = require("Xvfb", "xvfb");
        let dunst_program = require("dunst", "dunst");
        let bus = Bus::start(Activation::Standard);

        // -displayfd 1: Xvfb picks a free display and writes its number to
        // the pipe once it accepts clients, so there is no file to go stale.
        let mut xvfb = Guarded::spawn(
            "Xvfb",
            Command::new(xvfb_program)
                .args(["-displayfd", "1", "-screen", "0", "1024x768x24"])
                .args(["-nolisten", "tcp"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let number = Captured::follow(xvfb.child.stdout.take().unwrap());
        let xvfb_err = Captured::follow(xvfb.child.stderr.take().unwrap());
        wait_until("Xvfb to report its display", || {
            xvfb.assert_running(&xvfb_err);
            number.text().ends_with('\n')
        });
        let display = format!(":{}", number.text().trim());

        let mut dunst = Guarded::spawn(
            "dunst",
            Command::new(dunst_program)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", bus.dir.path())
                .env("XDG_CONFIG_HOME", bus.dir.path().join("config"))
                .env("DISPLAY", &display)
                .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let dunst_err = Captured::follow(dunst.child.stderr.take().unwrap());
        // NameHasOwner, not a call to the name: a call would make the bus
        // start a second dunst of its own.
        wait_until("dunst to own org.freedesktop.Notifications", || {
            dunst.assert_running(&dunst_err);
            bus.has_owner(NOTIFICATIONS)
        });

        Desktop {
            _dunst: dunst,
            _xvfb: xvfb,
            bus,
        }
    }
}

/// One `Notify` call as it crossed the bus.
#[derive(Debug, Clone, PartialEq)]
struct Notify {
    app_name: String,
    icon: String,
    summary: String,
    body: String,
    /// The hints dictionary as dbus-monitor prints it.
    hints: String,
    expire_timeout: i32,
}

/// `dbus-monitor` watching a bus for `Notify` calls.
struct Watch {
    output: Captured,
    _monitor: Guarded,
}

impl Watch {
    /// Starts watching; returns once the monitor is in place, so that a
    /// call made afterwards is seen.
    fn start(bus: &Bus) -> Watch {
        let mut monitor = Guarded::spawn(
            "dbus-monitor",
            Command::new(require("dbus-monitor", "dbus"))
                .args(["--address", &bus.address])
                .arg(format!("interface='{NOTIFICATIONS}',member='Notify'"))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let output = Captured::follow(monitor.child.stdout.take().unwrap());
        let errors = Captured::follow(monitor.child.stderr.take().unwrap());
        // Becoming a monitor costs the connection its bus name; the
        // NameLost signal it prints says the match rule is installed.
        wait_until("dbus-monitor to become a monitor", || {
            monitor.assert_running(&errors);
            output.text().contains("member=NameLost")
        });
        Watch {
            output,
            _monitor: monitor,
        }
    }

    /// The `Notify` calls seen so far.
    fn calls(&self) -> Vec<Notify> {
        parse_notify_calls(&self.output.text())
    }

    /// Waits until at least `count` calls were seen.
    fn wait_for(&self, count: usize) -> Vec<Notify> {
        wait_until(&format!("{count} Notify call(s) on the bus"), || {
            self.calls().len() >= count
        });
        self.calls()
    }
}

/// Reads `Notify` calls out of dbus-monitor's text.
///
/// dbus-monitor prints a message as a header line and then one argument
/// per line indented by three spaces; a string's own line breaks are
/// printed as they are, so a continuation line belongs to the argument
/// before it, as do the deeper-indented lines and closing brackets of an
/// array. A new message starts with a header line. A line still being
/// written is left for the next look.
fn parse_notify_calls(text: &str) -> Vec<Notify> {
    let text = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
    let is_header = |line: &str| {
        ["method call ", "method return ", "signal ", "error "]
            .iter()
            .any(|start| line.starts_with(start))
    };
    let mut calls = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if !(line.starts_with("method call ") && line.ends_with("member=Notify")) {
            continue;
        }
        let mut args: Vec<String> = Vec::new();
        while let Some(next) = lines.peek() {
            if is_header(next) {
                break;
            }
            let next = lines.next().unwrap();
            let starts_argument = next.len() > 3
                && next.starts_with("   ")
                && !next[3..].starts_with(|c: char| c.is_whitespace() || c == ']' || c == ')');
            match args.last_mut() {
                Some(last) if !starts_argument => {
                    last.push('\n');
                    last.push_str(next);
                }
                _ => args.push(next[3.min(next.len())..].to_string()),
            }
        }
        // A message cut short (still being printed) is taken next time.
        if args.len() < 8 {
            continue;
        }
        let string = |arg: &str| {
            arg.strip_prefix("string \"")
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or_else(|| panic!("not a string argument: {arg}"))
                .to_string()
        };
        calls.push(Notify {
            app_name: string(&args[0]),
            icon: string(&args[2]),
            summary: string(&args[3]),
            body: string(&args[4]),
            hints: args[6].clone(),
            expire_timeout: args[7]
                .strip_prefix("int32 ")
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or_else(|| panic!("not an int32 argument: {}", args[7])),
        });
    }
    calls
}

// ---------------------------------------------------------------------------
// The notifier, called in this process.
// ---------------------------------------------------------------------------

/// The bus address is process-wide and notify-rust reads it from the
/// environment on every call, so tests that call the notifier in this
/// process take turns.
static SESSION_ENV: Mutex<()> = Mutex::new(());

/// Runs `body` on a runtime with the session bus address set to `address`
/// (unset for `None`) and `XDG_RUNTIME_DIR` at `runtime_dir`.
fn with_session<T>(
    address: Option<&str>,
    runtime_dir: &Path,
    body: impl std::future::Future<Output = T>,
) -> T {
    let _turn = SESSION_ENV.lock().unwrap_or_else(|e| e.into_inner());
    match address {
        Some(address) => std::env::set_var("DBUS_SESSION_BUS_ADDRESS", address),
        None => std::env::remove_var("DBUS_SESSION_BUS_ADDRESS"),
    }
    std::env::set_var("XDG_RUNTIME_DIR", runtime_dir);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(body);
    std::env::remove_var("DBUS_SESSION_BUS_ADDRESS");
    result
}

fn desktop_notifier(settings: serde_json::Value) -> Box<dyn Notifier> {
    kalshi_alerts_plugins::link();
    match find_notifier("desktop")
        .expect("the desktop notifier is registered")
        .instantiate(settings.as_object().unwrap())
    {
        Ok(notifier) => notifier,
        Err(e) => panic!("settings refused: {e}"),
    }
}

fn sample_alert() -> FiredAlert {
    let condition: Condition = serde_json::from_value(serde_json::json!({
        "id": "c-desktop", "condition_type": "price_above", "ticker": "INXD-26JAN12-B6000",
        "threshold": 0.6, "label": "index over 60", "created_at": ""
    }))
    .unwrap();
    let market = Market {
        ticker: "INXD-26JAN12-B6000".into(),
        title: "S&P 500 above 6000 on Jan 12?".into(),
        status: "active".into(),
        event_ticker: String::new(),
        yes_bid: Some(Decimal::new(64, 2)),
        yes_ask: Some(Decimal::new(67, 2)),
        volume: Some(Decimal::from(1200)),
    };
    let at = kalshi_alerts_core::condition::parse_timestamp("2026-01-12T22:08:10Z").unwrap();
    FiredAlert::new(&condition, &market, Decimal::new(655, 3), at)
}

/// Runs `call` and says how long it took.
async fn timed<T>(call: impl std::future::Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let result = call.await;
    (result, start.elapsed())
}

fn assert_permanent(result: Result<(), NotifyError>, expected: &[&str]) -> String {
    let error = result.expect_err("should have failed");
    assert_eq!(error.kind, FailureKind::Permanent, "{}", error.message);
    for part in expected {
        assert!(
            error.message.contains(part),
            "{part:?} not in: {}",
            error.message
        );
    }
    error.message
}

#[test]
fn delivers_the_summary_and_body_to_the_notification_daemon() {
    let desktop = Desktop::start();
    let watch = Watch::start(&desktop.bus);
    let runtime_dir = tempfile::tempdir().unwrap();
    let notifier = desktop_notifier(serde_json::json!({
        "app_name": "markets", "urgency": "critical", "expire_ms": 4000,
        "icon": "dialog-information"
    }));

    with_session(Some(&desktop.bus.address), runtime_dir.path(), async {
        notifier
            .check()
            .await
            .expect("check passes with dunst running");
        notifier.notify(&sample_alert()).await.expect("delivered");
    });

    let calls = watch.wait_for(1);
    assert_eq!(
        calls.len(),
        1,
        "check sent nothing, notify sent one: {calls:?}"
    );
    let call = &calls[0];
    assert_eq!(call.summary, "INXD-26JAN12-B6000: price > 0.6");
    assert_eq!(
        call.body,
        "S&amp;P 500 above 6000 on Jan 12?\n\
         label: index over 60\n\
         now 0.655 vs threshold 0.60\n\
         2026-01-12 22:08:10 UTC"
    );
    assert_eq!(call.app_name, "markets");
    assert_eq!(call.icon, "dialog-information");
    assert_eq!(call.expire_timeout, 4000);
    // Critical is urgency byte 2 in the hints.
    assert!(
        call.hints.contains("\"urgency\"") && call.hints.contains("byte 2"),
        "{}",
        call.hints
    );
}

#[test]
fn defaults_are_the_app_name_normal_urgency_and_ten_seconds() {
    let desktop = Desktop::start();
    let watch = Watch::start(&desktop.bus);
    let runtime_dir = tempfile::tempdir().unwrap();
    let notifier = desktop_notifier(serde_json::json!({}));

    with_session(Some(&desktop.bus.address), runtime_dir.path(), async {
        notifier.notify(&sample_alert()).await.expect("delivered");
    });

    let call = &watch.wait_for(1)[0];
    assert_eq!(call.app_name, "kalshi-alerts");
    assert_eq!(call.icon, "");
    assert_eq!(call.expire_timeout, 10000);
    assert!(call.hints.contains("byte 1"), "{}", call.hints);
}

#[test]
fn a_missing_bus_socket_fails_at_once_for_good_saying_what_to_set() {
    require("dbus-daemon", "dbus");
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("unix:path={}", dir.path().join("no-bus").display());
    let notifier = desktop_notifier(serde_json::json!({}));

    let ((checked, delivered), took) = with_session(Some(&missing), dir.path(), async {
        timed(async {
            (
                notifier.check().await,
                notifier.notify(&sample_alert()).await,
            )
        })
        .await
    });

    assert!(took < QUICK, "took {took:?}");
    for result in [checked, delivered] {
        assert_permanent(
            result,
            &["no D-Bus session bus", "no-bus", "DBUS_SESSION_BUS_ADDRESS"],
        );
    }
}

#[test]
fn an_unset_bus_address_with_no_default_bus_fails_at_once_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let notifier = desktop_notifier(serde_json::json!({}));

    let (checked, took) = with_session(None, dir.path(), timed(notifier.check()));

    assert!(took < QUICK, "took {took:?}");
    assert_permanent(
        checked,
        &["no D-Bus session bus", "DBUS_SESSION_BUS_ADDRESS is unset"],
    );
}

#[test]
fn a_bus_with_no_notification_service_fails_quickly_saying_to_start_a_daemon() {
    let bus = Bus::start(Activation::None);
    let runtime_dir = tempfile::tempdir().unwrap();
    let notifier = desktop_notifier(serde_json::json!({}));

    let ((checked, delivered), took) =
        with_session(Some(&bus.address), runtime_dir.path(), async {
            timed(async {
                (
                    notifier.check().await,
                    notifier.notify(&sample_alert()).await,
                )
            })
            .await
        });

    assert!(took < QUICK, "took {took:?}");
    for result in [checked, delivered] {
        assert_permanent(
            result,
            &["no notification service", "start a notification daemon"],
        );
    }
}

#[test]
fn a_notification_service_the_bus_cannot_start_is_a_clear_permanent_error() {
    // The standard session bus knows how to start dunst, but without a
    // display dunst exits at once.
    require("dunst", "dunst");
    let bus = Bus::start(Activation::Standard);
    let runtime_dir = tempfile::tempdir().unwrap();
    let notifier = desktop_notifier(serde_json::json!({}));

    let ((checked, delivered), took) =
        with_session(Some(&bus.address), runtime_dir.path(), async {
            timed(async {
                (
                    notifier.check().await,
                    notifier.notify(&sample_alert()).await,
                )
            })
            .await
        });

    assert!(took < WAIT, "took {took:?}");
    for result in [checked, delivered] {
        assert_permanent(
            result,
            &["could not start the notification service", "DISPLAY"],
        );
    }
    assert!(!bus.has_owner(NOTIFICATIONS));
}

#[test]
fn a_service_that_never_answers_is_cut_off_by_the_timeout_without_holding_up_the_runtime() {
    let bus = Bus::start(Activation::Hanging);
    let runtime_dir = tempfile::tempdir().unwrap();
    let mut instance = NamedNotifier::new("desk", desktop_notifier(serde_json::json!({})));
    instance.timeout = Duration::from_millis(500);

    // The time includes dropping the runtime: a blocking call left behind
    // on its pool would hold that up until the bus gave up (25 s).
    let start = Instant::now();
    let (delivered, checked) = with_session(Some(&bus.address), runtime_dir.path(), async {
        let delivered = instance.attempt(&[sample_alert()]).await;
        let checked = tokio::time::timeout(instance.timeout, instance.notifier.check()).await;
        (delivered, checked)
    });
    let took = start.elapsed();

    let error = delivered.expect_err("nothing answers");
    assert_eq!(error.kind, FailureKind::Retryable, "{}", error.message);
    assert!(error.message.contains("timed out"), "{}", error.message);
    assert!(
        checked.is_err(),
        "check should still be waiting: {checked:?}"
    );
    assert!(took < QUICK, "took {took:?}");
    assert!(
        bus.dir.path().join("hanging.pid").exists(),
        "the bus never tried to start the service"
    );
}

#[test]
fn the_monitor_parser_keeps_multi_line_bodies_and_skips_other_messages() {
    let text = "signal time=1 sender=org.freedesktop.DBus -> destination=:1.2 serial=2 \
                path=/org/freedesktop/DBus; interface=org.freedesktop.DBus; member=NameLost\n   \
                string \":1.2\"\n\
                method call time=2 sender=:1.3 -> destination=org.freedesktop.Notifications \
                serial=9 path=/org/freedesktop/Notifications; \
                interface=org.freedesktop.Notifications; member=Notify\n   \
                string \"app\"\n   uint32 0\n   string \"\"\n   string \"sum \"q\"\"\n   \
                string \"line one\n  two \"x\"\"\n   array [\n   ]\n   array [\n      \
                dict entry(\n         string \"urgency\"\n         variant             \
                byte 1\n      )\n   ]\n   int32 -1\n";
    let calls = parse_notify_calls(text);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].summary, "sum \"q\"");
    assert_eq!(calls[0].body, "line one\n  two \"x\"");
    assert_eq!(calls[0].expire_timeout, -1);
    assert!(calls[0].hints.contains("byte 1"));
}

// ---------------------------------------------------------------------------
// The real `kalshi` binary.
// ---------------------------------------------------------------------------

/// A notifiers file with one desktop instance named `desk`.
fn write_desktop_notifiers(sandbox: &Sandbox, extra: &str) {
    std::fs::create_dir_all(sandbox.data_dir()).unwrap();
    std::fs::write(
        sandbox.data_dir().join("notifiers.toml"),
        format!("[[notifier]]\nname = \"desk\"\nkind = \"desktop\"\n{extra}"),
    )
    .unwrap();
}

/// `kalshi` reading markets from `base_url`, on the session bus at
/// `address`, with a runtime dir of its own so that no real desktop's
/// default bus is found.
fn kalshi_on_bus(sandbox: &Sandbox, base_url: &str, address: &str) -> assert_cmd::Command {
    let mut command = sandbox.kalshi_at(base_url);
    command
        .env("DBUS_SESSION_BUS_ADDRESS", address)
        .env("XDG_RUNTIME_DIR", sandbox.dir.path());
    command
}

#[test]
fn cli_notifiers_test_shows_the_sample_alert_on_the_desktop() {
    let desktop = Desktop::start();
    let watch = Watch::start(&desktop.bus);
    let sandbox = Sandbox::new();
    write_desktop_notifiers(&sandbox, "urgency = \"low\"\nexpire_ms = 0\n");

    kalshi_on_bus(&sandbox, common::NO_SERVER, &desktop.bus.address)
        .args(["notifiers", "check"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ok      desk (desktop, default)"));
    kalshi_on_bus(&sandbox, common::NO_SERVER, &desktop.bus.address)
        .args(["notifiers", "test", "desk"])
        .assert()
        .success()
        .stdout("Sent a sample alert through desk (desktop).\n");

    let calls = watch.wait_for(1);
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!(call.summary, "KXSAMPLE-TEST: price > 0.6");
    assert!(
        call.body.starts_with(
            "Sample market: this is a test of your notifier\n\
             label: sample alert from `kalshi notifiers test`\n\
             now 0.62 vs threshold 0.60\n"
        ),
        "{}",
        call.body
    );
    assert!(call.body.ends_with(" UTC"), "{}", call.body);
    assert_eq!(call.app_name, "kalshi-alerts");
    assert_eq!(call.expire_timeout, 0, "0 keeps the popup until dismissed");
    assert!(call.hints.contains("byte 0"), "low urgency: {}", call.hints);
}

#[test]
fn cli_notifiers_check_without_a_bus_fails_quickly_and_exits_one() {
    require("dbus-daemon", "dbus");
    let sandbox = Sandbox::new();
    write_desktop_notifiers(&sandbox, "");
    let missing = format!("unix:path={}", sandbox.path("no-bus").display());

    let start = Instant::now();
    let output = kalshi_on_bus(&sandbox, common::NO_SERVER, &missing)
        .args(["notifiers", "check"])
        .output()
        .unwrap();
    let took = start.elapsed();

    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "FAILED  desk (desktop): no D-Bus session bus at {missing}"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("set DBUS_SESSION_BUS_ADDRESS"), "{stdout}");
    assert!(stdout.contains("(permanent"), "{stdout}");
    assert!(
        stderr_of(&output).contains("1 of 1 notifier(s)"),
        "{}",
        stderr_of(&output)
    );
    // A process start and one failed connect; a hang would take 25 s.
    assert!(took < QUICK + Duration::from_secs(2), "took {took:?}");

    kalshi_on_bus(&sandbox, common::NO_SERVER, &missing)
        .args(["notifiers", "test", "desk"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no D-Bus session bus"))
        .stderr(predicate::str::contains("permanent"));
}

#[test]
fn cli_monitor_once_shows_a_fired_alert_on_the_desktop() {
    let desktop = Desktop::start();
    let watch = Watch::start(&desktop.bus);
    let sandbox = Sandbox::new();
    write_desktop_notifiers(&sandbox, "");
    sandbox.write_alerts(serde_json::json!([record(
        "desk-1",
        "price_above",
        "EUCLIMATE-2030",
        0.39
    )]));
    // The recorded market has no title; give it one that needs escaping.
    let mut markets = fixtures::legacy_markets();
    let market = markets
        .iter_mut()
        .find(|m| m["ticker"] == "EUCLIMATE-2030")
        .expect("ticker in fixture");
    market["title"] = "EU climate target <2030> met & verified?".into();
    let server = TestServer::start(Scenario::new(markets));

    let output = kalshi_on_bus(&sandbox, &server.base_url(), &desktop.bus.address)
        .args(["alerts", "monitor", "--once"])
        .output()
        .unwrap();

    assert!(output.status.success(), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("fired=1 delivered=1 failed=0"), "{stderr}");
    let calls = watch.wait_for(1);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].summary, "EUCLIMATE-2030: price > 0.39");
    let lines: Vec<&str> = calls[0].body.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "EU climate target &lt;2030&gt; met &amp; verified?",
            "label: price_above EUCLIMATE-2030",
            "now 0.395 vs threshold 0.39",
        ]
    );
    assert!(lines[3].ends_with(" UTC"), "{}", calls[0].body);
}
