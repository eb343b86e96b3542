//! The README's quick start works as written: `cargo install --path cli`
//! installs a working `kalshi`, and each `kalshi` command of the quick
//! start, run with that installed binary in a fresh directory, does what
//! the README says (the live ones against a loopback server that speaks
//! Kalshi's API; the replay ones with no network at all).
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{stderr_of, stdout_of, Sandbox, NO_SERVER};
use kalshi_test_server::{fixtures, Scenario, TestServer};

const BUILD_LIMIT: Duration = Duration::from_secs(15 * 60);

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The commands between the quick-start markers, one per line.
fn quick_start() -> Vec<String> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let start = readme
        .find("<!-- quick-start")
        .expect("the quick-start marker");
    let end = readme
        .find("<!-- /quick-start -->")
        .expect("its end marker");
    readme[start..end]
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("kalshi ") || line.starts_with("cargo "))
        .map(String::from)
        .collect()
}

/// Runs the README's install line into `root`, sharing the plugin tests'
/// build directory (and its lock) so the dependencies build once.
fn install(line: &str, root: &Path) -> PathBuf {
    assert_eq!(
        line, "cargo install --path cli",
        "the README's install line changed"
    );
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let out = target.join("plugin-build");
    std::fs::create_dir_all(&out).unwrap();
    let lock = std::fs::File::create(target.join("plugin-build.lock")).unwrap();
    lock.lock().unwrap();
    let log_path = root.with_extension("log");
    let log = std::fs::File::create(&log_path).unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let started = Instant::now();
    // As written, plus: a debug build (the tests need no optimised one),
    // offline and locked (CI's network), into a root of the test's own.
    let mut child = Command::new(cargo)
        .args(line.split_whitespace().skip(1))
        .args(["--debug", "--offline", "--locked", "--root"])
        .arg(root)
        .arg("--target-dir")
        .arg(&out)
        .current_dir(workspace())
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .env("CARGO_INCREMENTAL", "0")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BUILD_LIMIT {
            let _ = child.kill();
            panic!(
                "cargo install took over {BUILD_LIMIT:?}; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(status.success(), "cargo install failed:\n{log}");
    eprintln!("installed in {:.1}s", started.elapsed().as_secs_f64());
    root.join("bin").join("kalshi")
}

#[test]
fn the_quick_start_installs_kalshi_and_fires_a_first_alert_replayed_then_live() {
    let commands = quick_start();
    assert_eq!(commands.len(), 6, "{commands:#?}");
    let sandbox = Sandbox::new();
    let installed = install(&commands[0], &sandbox.path("root"));
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
    let home = sandbox.path("home");
    std::fs::create_dir_all(&home).unwrap();

    let mut outputs = Vec::new();
    for (i, line) in commands.iter().enumerate().skip(1) {
        // The first three need no network: aim them at nothing.
        let api = if i <= 2 {
            NO_SERVER.to_string()
        } else {
            server.base_url()
        };
        let output = Command::new(&installed)
            .args(line.split_whitespace().skip(1))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("KALSHI_API_BASE_URL", api)
            .env("KALSHI_LOG", "warn")
            .current_dir(&home)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "`{line}` failed:\n{}{}",
            stdout_of(&output),
            stderr_of(&output)
        );
        outputs.push(stdout_of(&output));
    }
    assert!(
        outputs[0].contains("Alert added: AITURING price > 0.6"),
        "{}",
        outputs[0]
    );
    assert!(outputs[1].contains("ALERT AITURING"), "{}", outputs[1]);
    assert!(
        outputs[1].contains("Replay finished: 100 cycle(s), 1 alert(s) fired."),
        "{}",
        outputs[1]
    );
    assert!(outputs[2].contains("EUCLIMATE-2030"), "{}", outputs[2]);
    assert!(
        outputs[3].contains("Now: bid 0.35 / ask 0.44, mid 0.395 (active)"),
        "{}",
        outputs[3]
    );
    assert!(
        outputs[4].contains("ALERT EUCLIMATE-2030"),
        "{}",
        outputs[4]
    );
    assert!(
        outputs[4].contains("Check complete: 1 cycle(s)"),
        "{}",
        outputs[4]
    );
    // Everything went to ./data of where the commands ran.
    assert!(home.join("data/alerts.json").exists());
    assert!(home.join("data/state.sqlite3").exists());
}
