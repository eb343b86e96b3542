//! The third party's own `kalshi`, built on the CLI library with the
//! `shout` plugin compiled in: its registry lists `shout` beside the
//! built-in kinds, and an instance of it delivers like any other.

use std::path::Path;
use std::process::{Command, Output};

/// `kalshi-with-shout` with a fresh data dir and no network.
fn run(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kalshi-with-shout"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KALSHI_DATA_DIR", data_dir)
        .env("KALSHI_API_BASE_URL", "http://127.0.0.1:9/trade-api/v2")
        .env("KALSHI_LOG", "warn")
        .output()
        .expect("kalshi-with-shout runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_linked_plugin_is_listed_configured_and_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();

    let listed = run(&data, &["notifiers", "list"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let stdout = text(&listed.stdout);
    assert!(
        stdout.contains("  shout      writes each alert as an upper-case line to a text file\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("      path             the text file to append the upper-case lines to (path, required)"),
        "{stdout}"
    );
    // The built-in kinds are all still there.
    for kind in ["console", "file", "log", "webhook"] {
        assert!(stdout.contains(&format!("  {kind} ")), "{kind}: {stdout}");
    }

    std::fs::write(
        data.join("notifiers.toml"),
        "[[notifier]]\nname = \"loud\"\nkind = \"shout\"\npath = \"shouts.txt\"\n",
    )
    .unwrap();
    let tested = run(&data, &["notifiers", "test", "loud"]);
    assert!(tested.status.success(), "{}", text(&tested.stderr));
    assert_eq!(
        text(&tested.stdout),
        "Sent a sample alert through loud (shout).\n"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("shouts.txt")).unwrap(),
        "KXSAMPLE-TEST PRICE > 0.6 (NOW 0.62): SAMPLE ALERT FROM `KALSHI NOTIFIERS TEST`\n"
    );

    // Every other command is the ordinary kalshi.
    let listed = run(&data, &["alerts", "list"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
}
