//! `kalshi.toml` files and `kalshi config show`, through the real binary:
//! flags over environment over the data dir's file over the user's file
//! over defaults, the monitor taking its interval from a file, and bad
//! files refused with the file and the key.

mod common;

use common::{record, stderr_of, stdout_of, Sandbox};
use kalshi_test_server::{fixtures, Scenario, TestServer};
use serde_json::{json, Value};
#[cfg(unix)]
use std::process::Output;

fn write(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `config show --json` with the user's config dir in the sandbox.
fn show(sandbox: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut command = sandbox.kalshi();
    command
        .env_remove("KALSHI_DATA_DIR")
        .env("XDG_CONFIG_HOME", sandbox.path("xdg"));
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command
        .args(args)
        .args(["config", "show", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn each_value_comes_from_the_first_place_that_sets_it() {
    let sandbox = Sandbox::new();
    let user = sandbox.path("xdg/kalshi/kalshi.toml");
    write(
        &user,
        "data_dir = \"../../mydata\"\nenv = \"demo\"\nnotifiers = \"n.toml\"\ninterval = 99\n",
    );
    let shown = show(&sandbox, &[], &[]);
    let settings = &shown["settings"];
    let from_user = format!("file {}", user.display());
    assert_eq!(
        settings["env"],
        json!({"value": "demo", "source": from_user})
    );
    assert_eq!(settings["interval"]["value"], "99");
    assert_eq!(settings["data_dir"]["source"], from_user);
    assert!(settings["notifiers"]["value"]
        .as_str()
        .unwrap()
        .ends_with("kalshi/n.toml"));

    // The data dir's file wins over the user's.
    let data_dir = std::path::PathBuf::from(settings["data_dir"]["value"].as_str().unwrap());
    let local = data_dir.join("kalshi.toml");
    write(&local, "interval = 15\n");
    let shown = show(&sandbox, &[], &[]);
    assert_eq!(
        shown["settings"]["interval"],
        json!({"value": "15", "source": format!("file {}", local.display())})
    );
    assert_eq!(shown["settings"]["env"]["value"], "demo");

    // The environment wins over the files, and a flag over the environment.
    let shown = show(&sandbox, &[], &[("KALSHI_ENVIRONMENT", "prod")]);
    assert_eq!(
        shown["settings"]["env"],
        json!({"value": "prod", "source": "environment (KALSHI_ENVIRONMENT)"})
    );
    let shown = show(
        &sandbox,
        &["--env", "demo"],
        &[("KALSHI_ENVIRONMENT", "prod")],
    );
    assert_eq!(shown["settings"]["env"]["source"], "command line (--env)");

    // `~/` is the home directory.
    write(&user, "data_dir = \"~/kalshi-data\"\n");
    let shown = show(
        &sandbox,
        &[],
        &[("HOME", sandbox.path("home").to_str().unwrap())],
    );
    assert_eq!(
        shown["settings"]["data_dir"]["value"],
        sandbox.path("home/kalshi-data").display().to_string()
    );

    // Without files, the defaults.
    let bare = Sandbox::new();
    let shown = show(&bare, &[], &[]);
    for key in ["env", "data_dir", "interval"] {
        assert_eq!(shown["settings"][key]["source"], "default", "{key}");
    }
    assert_eq!(shown["settings"]["env"]["value"], "prod");
    assert_eq!(shown["settings"]["interval"]["value"], "60");
    let text = stdout_of(
        &bare
            .kalshi()
            .env("XDG_CONFIG_HOME", bare.path("xdg"))
            .args(["config", "show"])
            .output()
            .unwrap(),
    );
    assert!(text.contains("Config files, the first wins:"), "{text}");
    assert!(text.contains("(absent)"), "{text}");
}

#[test]
fn the_monitor_takes_its_interval_from_the_data_dirs_file() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("c", "price_above", "EUCLIMATE-2030", 0.3)]));
    write(&sandbox.data_dir().join("kalshi.toml"), "interval = 1\n");
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
    let output = sandbox
        .kalshi_at(&server.base_url())
        .args(["alerts", "monitor", "--cycles", "2", "--notifier", "log"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(
        stdout_of(&output).contains("(2 checks, every 1s)"),
        "{}",
        stdout_of(&output)
    );
}

#[test]
fn a_bad_file_is_refused_naming_the_file_and_the_key() {
    let sandbox = Sandbox::new();
    let local = sandbox.data_dir().join("kalshi.toml");
    for (text, problem) in [
        (
            "colour = true\n",
            "key colour: unknown; the keys are env, data_dir, notifiers and interval",
        ),
        (
            "env = \"staging\"\n",
            "key env: expected \"prod\" or \"demo\", got \"staging\"",
        ),
        (
            "interval = -5\n",
            "key interval: expected whole seconds from 0 to 31536000 (a year), got -5",
        ),
        (
            "interval = 9223372036854775807\n",
            "key interval: expected whole seconds from 0 to 31536000 (a year), got 9223372036854775807",
        ),
        (
            "data_dir = \"elsewhere\"\n",
            "key data_dir: the data dir's own file cannot move the data dir",
        ),
        ("env = \n", "not valid TOML"),
    ] {
        write(&local, text);
        let output = sandbox.kalshi().args(["alerts", "list"]).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{text}");
        let stderr = stderr_of(&output);
        assert!(
            stderr.contains(&format!("config file {}", local.display())),
            "{stderr}"
        );
        assert!(stderr.contains(problem), "{text}: {stderr}");
    }
}

/// `kalshi ARGS` on the data dir `data_dir`, with no other settings, run
/// as this user, or as nobody when this user is root (whom file
/// permissions do not stop); `None` where root cannot drop them.
#[cfg(unix)]
fn run_without_privileges(args: &[&str], data_dir: &std::path::Path) -> Option<Output> {
    let output = kalshi_without_privileges()?
        .args(args)
        .env_clear()
        .env("KALSHI_DATA_DIR", data_dir)
        .env("KALSHI_API_BASE_URL", common::NO_SERVER)
        .current_dir("/")
        .output()
        .unwrap();
    if stderr_of(&output).contains("setpriv:") {
        eprintln!(
            "skipped: setpriv cannot drop privileges here: {}",
            stderr_of(&output)
        );
        return None;
    }
    Some(output)
}

#[cfg(unix)]
fn kalshi_without_privileges() -> Option<std::process::Command> {
    let kalshi = assert_cmd::cargo::cargo_bin("kalshi");
    if unsafe { libc::geteuid() } != 0 {
        return Some(std::process::Command::new(&kalshi));
    }
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let mut cmd = std::process::Command::new(setpriv);
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&kalshi);
    Some(cmd)
}

/// A data dir this user may not look inside (`chmod 000`) is named as such,
/// not as a config file that cannot be read (there is none). As root, the
/// command runs as nobody (setpriv); the test is skipped where it cannot
/// drop privileges.
#[cfg(unix)]
#[test]
fn an_unreadable_data_dir_is_named_as_the_problem() {
    use std::os::unix::fs::PermissionsExt;

    let sandbox = Sandbox::new();
    if kalshi_without_privileges().is_none() {
        eprintln!("skipped: running as root and no setpriv to drop privileges");
        return;
    }
    // Others may pass through the sandbox to the data dir, not into it.
    std::fs::set_permissions(sandbox.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(sandbox.data_dir()).unwrap();
    std::fs::set_permissions(sandbox.data_dir(), std::fs::Permissions::from_mode(0o000)).unwrap();

    for args in [&["alerts", "list"][..], &["config", "show"][..]] {
        let Some(output) = run_without_privileges(args, &sandbox.data_dir()) else {
            return;
        };
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert_eq!(
            stderr,
            format!(
                "error: data dir {}: cannot look inside: Permission denied (os error 13); give \
                 yourself access to it (chmod u+rwx), or choose another with --data-dir or \
                 KALSHI_DATA_DIR\n",
                sandbox.data_dir().display()
            )
        );
        assert!(!stderr.contains("kalshi.toml"), "{stderr}");
    }
    std::fs::set_permissions(sandbox.data_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A data dir this user may read but not write: `alerts add` names the
/// file it could not create there (the lock beside alerts.json, or the new
/// copy that replaces it), not alerts.json alone, and changes nothing.
#[cfg(unix)]
#[test]
fn a_data_dir_that_cannot_be_written_is_named_by_add() {
    use std::os::unix::fs::PermissionsExt;

    let sandbox = Sandbox::new();
    if kalshi_without_privileges().is_none() {
        eprintln!("skipped: running as root and no setpriv to drop privileges");
        return;
    }
    std::fs::set_permissions(sandbox.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    sandbox.write_alerts(serde_json::json!([]));
    let alerts = sandbox.alerts_path();
    std::fs::set_permissions(&alerts, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = std::fs::read(&alerts).unwrap();
    std::fs::set_permissions(sandbox.data_dir(), std::fs::Permissions::from_mode(0o555)).unwrap();

    let output = run_without_privileges(
        &[
            "alerts",
            "add",
            "--no-check",
            "price",
            "X-1",
            "--above",
            "0.5",
        ],
        &sandbox.data_dir(),
    );
    std::fs::set_permissions(sandbox.data_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let Some(output) = output else {
        return;
    };
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let data_dir = sandbox.data_dir().display().to_string();
    assert!(
        stderr.contains(&format!(
            "cannot open its lock file {data_dir}/.alerts.lock"
        )) || stderr.contains(&format!("cannot create a file in {data_dir}")),
        "{stderr}"
    );
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert_eq!(std::fs::read(&alerts).unwrap(), before);
}
