//! `kalshi alerts add|list|remove` through the real binary: storage,
//! validation, exit codes, and files left intact on bad input.

mod common;

use common::{record, stderr_of, Sandbox};
use predicates::prelude::*;
use serde_json::json;

#[test]
fn add_list_remove_round_trip() {
    let sandbox = Sandbox::new();
    let id = sandbox.add(&[
        "price",
        "KXBTC-25DEC31",
        "--above",
        "0.60",
        "--label",
        "btc up",
    ]);

    let stored = sandbox.conditions();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["condition_type"], "price_above");
    assert_eq!(stored[0]["ticker"], "KXBTC-25DEC31");
    assert_eq!(stored[0]["threshold"], json!(0.6));
    assert_eq!(stored[0]["label"], "btc up");
    assert!(uuid::Uuid::parse_str(&id).is_ok());

    sandbox
        .kalshi()
        .args(["alerts", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains(&id[..8]))
        .stdout(predicate::str::contains("price_above"))
        .stdout(predicate::str::contains("btc up"));

    sandbox
        .kalshi()
        .args(["alerts", "remove", &id[..6]])
        .assert()
        .success()
        .stdout(predicate::str::contains("Alert removed: btc up"));
    assert!(sandbox.conditions().is_empty());

    sandbox
        .kalshi()
        .args(["alerts", "list"])
        .assert()
        .success()
        .stdout("No active alerts.\n");
}

#[test]
fn every_kind_is_stored_with_its_python_type() {
    let sandbox = Sandbox::new();
    let cases: &[(&[&str], &str, serde_json::Value)] = &[
        (&["price", "T", "--above", "60c"], "price_above", json!(0.6)),
        (
            &["price", "T", "--below", "45.5%"],
            "price_below",
            json!(0.455),
        ),
        (
            &["crosses", "T", "--level", "0.5"],
            "price_crosses",
            json!(0.5),
        ),
        (&["spread", "T", "--above", "5"], "spread_above", json!(5)),
        (
            &["volume", "T", "--above", "1000"],
            "volume_above",
            json!(1000),
        ),
        (&["move", "T", "--by", "0.1"], "edge_detected", json!(0.1)),
    ];
    for (args, _, _) in cases {
        sandbox.add(args);
    }
    let stored = sandbox.conditions();
    for ((_, kind, threshold), record) in cases.iter().zip(&stored) {
        assert_eq!(record["condition_type"], *kind);
        assert_eq!(record["threshold"], *threshold, "{kind}");
    }
}

#[test]
fn list_json_prints_the_stored_records() {
    let sandbox = Sandbox::new();
    sandbox.add(&["volume", "T", "--above", "10", "--expires", "2h"]);
    let output = sandbox
        .kalshi()
        .args(["alerts", "list", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed[0]["condition_type"], "volume_above");
    assert!(listed[0]["expires_at"]
        .as_str()
        .unwrap()
        .ends_with("+00:00"));
}

/// Bad input: exit 1, a message naming the input, alerts.json unchanged.
fn assert_refused(sandbox: &Sandbox, args: &[&str], message: &str) {
    let before = std::fs::read(sandbox.alerts_path()).ok();
    let mut full = vec!["alerts", "add"];
    full.extend_from_slice(args);
    sandbox
        .kalshi()
        .args(&full)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(message));
    assert_eq!(
        std::fs::read(sandbox.alerts_path()).ok(),
        before,
        "{args:?} changed the file"
    );
}

#[test]
fn invalid_conditions_are_refused_and_leave_the_file_alone() {
    let sandbox = Sandbox::new();
    sandbox.add(&["price", "KEEP", "--above", "0.5"]);

    assert_refused(
        &sandbox,
        &["price", "T", "--above", "60"],
        "did you mean 0.60?",
    );
    assert_refused(
        &sandbox,
        &["price", "T", "--above", "150c"],
        "outside 0..=1",
    );
    assert_refused(&sandbox, &["price", "T", "--above", "-0.2"], "negative");
    assert_refused(
        &sandbox,
        &["price", "T", "--above", "lots"],
        "\"lots\" is not a decimal",
    );
    assert_refused(
        &sandbox,
        &["price", "T"],
        "missing threshold; price takes --above P or --below P",
    );
    assert_refused(
        &sandbox,
        &["price", "T", "--above", "0.6", "--below", "0.4"],
        "give only one threshold",
    );
    assert_refused(
        &sandbox,
        &["spread", "T", "--below", "3"],
        "--below does not apply to spread conditions",
    );
    assert_refused(
        &sandbox,
        &["volume", "T", "--level", "3"],
        "--level does not apply to volume conditions",
    );
    assert_refused(
        &sandbox,
        &["crosses", "T", "--above", "0.5"],
        "--above does not apply to crosses",
    );
    assert_refused(
        &sandbox,
        &["move", "T", "--above", "0.5"],
        "--above does not apply to move",
    );
    assert_refused(
        &sandbox,
        &["move", "T", "--by", "0"],
        "would fire on every check",
    );
    assert_refused(
        &sandbox,
        &["spread", "T", "--above", "100"],
        "spreads are 0 to 100 cents",
    );
    assert_refused(&sandbox, &["volume", "T", "--above", "-5"], "negative");
    assert_refused(
        &sandbox,
        &["price", "T", "--above", "0.5", "--expires", "soon"],
        "expiry \"soon\"",
    );
    // Past the year 9999 an expiry could be written but never read back.
    assert_refused(
        &sandbox,
        &["price", "T", "--above", "0.5", "--expires", "10000y"],
        "is too far away: the last year alerts.json can hold is 9999",
    );
    let long = "L".repeat(201);
    assert_refused(
        &sandbox,
        &["price", &long, "--above", "0.5", "--no-check"],
        "it is longer than 200 characters",
    );
    assert_refused(
        &sandbox,
        &[
            "price",
            "T",
            "--above",
            "0.5",
            "--expires",
            "2020-01-01T00:00:00Z",
        ],
        "in the past",
    );
    assert_refused(
        &sandbox,
        &["price", "BAD TICKER", "--above", "0.5"],
        "is not a Kalshi ticker",
    );
    assert_refused(
        &sandbox,
        &["price", "T", "--above", "0.5", "--label", " "],
        "--label is empty",
    );

    assert_eq!(sandbox.conditions().len(), 1);
}

#[test]
fn tickers_need_a_letter_or_digit_and_no_dash_at_either_end() {
    let sandbox = Sandbox::new();
    sandbox.add(&["price", "KEEP", "--above", "0.5"]);
    let refused = |given: &[&str], message: &str| {
        let mut args = vec!["price", "--above", "0.5", "--no-check"];
        args.extend_from_slice(given);
        assert_refused(&sandbox, &args, message);
    };

    refused(
        &["-"],
        r#"ticker "-" is not a Kalshi ticker: it has no letter or digit"#,
    );
    refused(
        &["--", "-T"],
        r#"ticker "-T" is not a Kalshi ticker: it begins with '-'"#,
    );
    refused(
        &["T-"],
        r#"ticker "T-" is not a Kalshi ticker: it ends with '-'"#,
    );
    refused(
        &["._."],
        r#"ticker "._." is not a Kalshi ticker: it has no letter or digit"#,
    );
    refused(
        &["--event", "-"],
        r#"--event "-" is not a Kalshi ticker: it has no letter or digit"#,
    );
    refused(
        &["--event=-X"],
        r#"--event "-X" is not a Kalshi ticker: it begins with '-'"#,
    );
    refused(
        &["--event", "X-"],
        r#"--event "X-" is not a Kalshi ticker: it ends with '-'"#,
    );
    refused(
        &["--series", "."],
        r#"--series "." is not a Kalshi ticker: it has no letter or digit"#,
    );
    refused(
        &["--series", "-"],
        r#"--series "-" is not a Kalshi ticker: it has no letter or digit"#,
    );
    refused(
        &["--series=--X"],
        r#"--series "--X" is not a Kalshi ticker: it begins with '-'"#,
    );
    // A series with a '-' is pointed at the series and the event it may
    // mean, when the part before the '-' is a ticker at all.
    refused(
        &["--series", "kx-25dec"],
        r#"--series "kx-25dec" is not a series ticker, which has no '-'; for the series give --series KX, for one event of it --event KX-25DEC"#,
    );
    let output = sandbox
        .kalshi()
        .args([
            "alerts", "add", "price", "--above", "0.5", "--series", "_-X",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output)
            .ends_with("error: --series \"_-X\" is not a series ticker, which has no '-'\n"),
        "{}",
        stderr_of(&output)
    );
    // Not refused: a letter or digit anywhere, '-' inside.
    sandbox.add(&["price", "_9", "--above", "0.5"]);
    sandbox.add(&["price", "--event", "A--B", "--above", "0.5"]);
    assert_eq!(sandbox.conditions().len(), 3);
}

#[test]
fn unknown_kind_is_a_usage_error() {
    let sandbox = Sandbox::new();
    sandbox
        .kalshi()
        .args(["alerts", "add", "sentiment", "T", "--above", "0.5"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid value 'sentiment'"));
}

#[test]
fn remove_distinguishes_missing_and_ambiguous_prefixes() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([
        record(
            "aaaa1111-0000-4000-8000-000000000001",
            "price_above",
            "A",
            0.5
        ),
        record(
            "aaaa2222-0000-4000-8000-000000000002",
            "price_below",
            "B",
            0.5
        ),
    ]));
    let before = std::fs::read(sandbox.alerts_path()).unwrap();

    sandbox
        .kalshi()
        .args(["alerts", "remove", "aaaa"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("matches 2 conditions"));
    sandbox
        .kalshi()
        .args(["alerts", "remove", "zzzz"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no alert condition has an id starting with \"zzzz\"",
        ));
    assert_eq!(std::fs::read(sandbox.alerts_path()).unwrap(), before);

    sandbox
        .kalshi()
        .args(["alerts", "remove", "aaaa2"])
        .assert()
        .success();
    assert_eq!(sandbox.conditions().len(), 1);
}

#[test]
fn invalid_json_is_reported_with_position_and_left_untouched() {
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.data_dir()).unwrap();
    let broken = "{\n  \"conditions\": [\n    {\"id\": \"x\",,}\n  ]\n}\n";
    std::fs::write(sandbox.alerts_path(), broken).unwrap();

    for args in [
        vec!["alerts", "list"],
        vec!["alerts", "add", "price", "T", "--above", "0.5"],
        vec!["alerts", "remove", "x"],
        vec!["alerts", "monitor", "--once"],
    ] {
        sandbox
            .kalshi()
            .args(&args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(
                "alerts.json is not valid JSON (line 3, column 16)",
            ))
            .stderr(predicate::str::contains("it was left unchanged"));
    }
    assert_eq!(
        std::fs::read_to_string(sandbox.alerts_path()).unwrap(),
        broken
    );
}

#[test]
fn python_written_file_loads_and_survives_a_rewrite() {
    let sandbox = Sandbox::new();
    let mut sentiment = record(
        "11111111-0000-4000-8000-000000000000",
        "sentiment_shift",
        "S",
        0.2,
    );
    sentiment["note"] = json!("written by kalshi_research");
    sandbox.write_alerts(json!([
        record(
            "22222222-0000-4000-8000-000000000000",
            "price_above",
            "P",
            0.6
        ),
        sentiment,
    ]));

    sandbox
        .kalshi()
        .args(["alerts", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("sentiment_shift"))
        .stdout(predicate::str::contains("22222222"));

    sandbox.add(&["volume", "V", "--above", "5"]);
    let stored = sandbox.conditions();
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[1]["condition_type"], "sentiment_shift");
    assert_eq!(stored[1]["note"], "written by kalshi_research");
    assert_eq!(stored[0]["threshold"], json!(0.6));
}

#[test]
fn concurrent_adds_lose_nothing() {
    let sandbox = Sandbox::new();
    let exe = assert_cmd::cargo::cargo_bin("kalshi");
    let children: Vec<_> = (0..12)
        .map(|i| {
            std::process::Command::new(&exe)
                .args([
                    "alerts",
                    "add",
                    "volume",
                    &format!("T{i}"),
                    "--above",
                    "1",
                    "--no-check",
                ])
                .env("KALSHI_DATA_DIR", sandbox.data_dir())
                .env("KALSHI_API_BASE_URL", common::NO_SERVER)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let mut tickers: Vec<String> = sandbox
        .conditions()
        .iter()
        .map(|c| c["ticker"].as_str().unwrap().to_string())
        .collect();
    tickers.sort();
    let mut expected: Vec<String> = (0..12).map(|i| format!("T{i}")).collect();
    expected.sort();
    assert_eq!(tickers, expected);
}

#[test]
fn lower_case_tickers_are_upper_cased() {
    let sandbox = Sandbox::new();
    sandbox.add(&["price", "kxbtc-25dec31", "--below", "0.2"]);
    assert_eq!(sandbox.conditions()[0]["ticker"], "KXBTC-25DEC31");
}

#[test]
fn tiny_floats_written_by_another_tool_still_load() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record("tiny", "price_above", "T", 1e-30)]));
    sandbox.kalshi().args(["alerts", "list"]).assert().success();
    sandbox.add(&["volume", "V", "--above", "5"]);
    assert_eq!(sandbox.conditions().len(), 2);
}

#[test]
fn control_characters_in_labels_are_not_printed_raw() {
    let sandbox = Sandbox::new();
    let mut forged = record("forged", "price_above", "T", 0.5);
    forged["label"] = json!("real\nALERT FAKE \u{1b}]0;pwned\u{7}");
    sandbox.write_alerts(json!([forged]));
    let output = sandbox.kalshi().args(["alerts", "list"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("real?ALERT FAKE ?]0;pwned?"), "{stdout}");
    assert!(!stdout.contains('\u{1b}'));
}

#[test]
fn prune_removes_only_expired_conditions() {
    let sandbox = Sandbox::new();
    let mut old = record(
        "aaaa0000-0000-4000-8000-000000000001",
        "price_above",
        "OLD",
        0.5,
    );
    old["expires_at"] = json!("2020-01-01T00:00:00+00:00");
    let mut later = record(
        "bbbb0000-0000-4000-8000-000000000002",
        "price_above",
        "LATER",
        0.5,
    );
    later["expires_at"] = json!("2999-01-01T00:00:00+00:00");
    let forever = record(
        "cccc0000-0000-4000-8000-000000000003",
        "price_above",
        "FOREVER",
        0.5,
    );
    sandbox.write_alerts(json!([old, later, forever]));

    sandbox
        .kalshi()
        .args(["alerts", "prune"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Removed 1 expired condition(s):"))
        .stdout(predicate::str::contains("aaaa0000 price_above OLD"));
    let tickers: Vec<_> = sandbox
        .conditions()
        .iter()
        .map(|c| c["ticker"].clone())
        .collect();
    assert_eq!(tickers, [json!("LATER"), json!("FOREVER")]);

    sandbox
        .kalshi()
        .args(["alerts", "prune"])
        .assert()
        .success()
        .stdout("No expired conditions.\n");
}

/// `remove` by an id two hand-edited conditions share removes neither.
#[test]
fn remove_refuses_an_id_that_two_conditions_share() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([
        record("same", "price_above", "SOLO", 0.1),
        record("same", "price_above", "OTHER", 0.1),
    ]));
    let before = std::fs::read(sandbox.alerts_path()).unwrap();
    sandbox
        .kalshi()
        .args(["alerts", "remove", "same"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "2 conditions have the id \"same\"; give each its own id in alerts.json",
        ));
    assert_eq!(std::fs::read(sandbox.alerts_path()).unwrap(), before);
}

/// Recorded Kalshi tickers can hold a '/' (`GTEMP-24-1.02/23`).
#[test]
fn a_ticker_with_a_slash_is_taken() {
    let sandbox = Sandbox::new();
    sandbox.add(&["price", "gtemp-24-1.02/23", "--above", "0.5"]);
    assert_eq!(sandbox.conditions()[0]["ticker"], "GTEMP-24-1.02/23");
}

/// The running `kalshi` command of `sandbox`, as a plain process (for what
/// assert_cmd cannot set: a resource limit).
#[cfg(unix)]
fn plain_kalshi(sandbox: &Sandbox) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("kalshi"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KALSHI_DATA_DIR", sandbox.data_dir())
        .env("KALSHI_API_BASE_URL", common::NO_SERVER)
        .current_dir(sandbox.dir.path());
    cmd
}

/// The temporary files of the alerts file left in the data dir.
fn temp_files(sandbox: &Sandbox) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(sandbox.data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    names.sort();
    names
}

/// Under a file-size limit smaller than the new file (`ulimit -f`), a write
/// raised SIGXFSZ and killed the command silently, leaving its temp file.
/// It is refused like a full disk: a message, exit 1, no temp file, the
/// file as it was.
#[cfg(unix)]
#[test]
fn a_file_size_limit_is_reported_and_leaves_no_temp_file() {
    use std::os::unix::process::CommandExt;

    let sandbox = Sandbox::new();
    let many: Vec<_> = (0..40)
        .map(|i| record(&format!("id-{i}"), "price_above", "SOLO", 0.1))
        .collect();
    sandbox.write_alerts(json!(many));
    let before = std::fs::read(sandbox.alerts_path()).unwrap();
    assert!(before.len() > 4096, "{}", before.len());

    let mut cmd = plain_kalshi(&sandbox);
    cmd.args([
        "alerts",
        "add",
        "--no-check",
        "price",
        "X",
        "--above",
        "0.5",
    ]);
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 4096,
                rlim_max: libc::RLIM_INFINITY,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = cmd.output().unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{:?} {stderr}",
        output.status
    );
    assert!(stderr.starts_with("error: alerts file "), "{stderr}");
    assert!(stderr.contains("File too large"), "{stderr}");
    assert!(stderr.contains("ulimit -f"), "{stderr}");
    assert_eq!(std::fs::read(sandbox.alerts_path()).unwrap(), before);
    assert_eq!(temp_files(&sandbox), Vec::<String>::new());
}

/// A writer killed between creating its temp file and renaming it (kill
/// -9) leaves `.alerts.json.PID.tmp`. The next write removes those of
/// processes that are gone, and nothing else: not a live process's, not a
/// file of another name or spelling.
#[cfg(unix)]
#[test]
fn a_write_removes_the_temp_files_of_dead_writers_only() {
    let sandbox = Sandbox::new();
    sandbox.add(&["price", "FIRST", "--above", "0.5"]);
    let gone = || {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let dead = gone();
    let live = std::process::id();
    let dead_temp = format!(".alerts.json.{dead}.tmp");
    let kept = [
        format!(".alerts.json.{live}.tmp"),
        format!(".alerts.json.0{dead}.tmp"),
        format!(".other.json.{dead}.tmp"),
        format!("alerts.json.{dead}.tmp"),
        format!(".alerts.json.{dead}.tmp.bak"),
        ".alerts.json.x.tmp".to_string(),
    ];
    for name in kept.iter().chain([&dead_temp]) {
        std::fs::write(sandbox.data_dir().join(name), "half").unwrap();
    }
    // A directory of the pattern is not removed either.
    let dir_temp = format!(".alerts.json.{}.tmp", gone());
    std::fs::create_dir(sandbox.data_dir().join(&dir_temp)).unwrap();

    sandbox.add(&["price", "SECOND", "--above", "0.5"]);
    assert_eq!(sandbox.conditions().len(), 2);
    assert!(!sandbox.data_dir().join(&dead_temp).exists());
    for name in &kept {
        assert!(sandbox.data_dir().join(name).exists(), "{name} was removed");
    }
    assert!(sandbox.data_dir().join(&dir_temp).is_dir());
}

/// A symbolic link is followed even when its file does not exist yet: the
/// write lands where it leads (a relative link read from its own
/// directory), and the link stays.
#[cfg(unix)]
#[test]
fn a_dangling_symlink_is_written_through_and_kept() {
    for relative in [true, false] {
        let sandbox = Sandbox::new();
        let target_dir = sandbox.path("tgt");
        std::fs::create_dir_all(sandbox.data_dir()).unwrap();
        std::fs::create_dir(&target_dir).unwrap();
        let target = target_dir.join("alerts.json");
        let link_text = if relative {
            std::path::PathBuf::from("../tgt/alerts.json")
        } else {
            target.clone()
        };
        std::os::unix::fs::symlink(&link_text, sandbox.alerts_path()).unwrap();

        sandbox.add(&["price", "FIRST", "--above", "0.5"]);
        let link = std::fs::symlink_metadata(sandbox.alerts_path()).unwrap();
        assert!(link.file_type().is_symlink(), "the link was replaced");
        assert_eq!(
            std::fs::read_link(sandbox.alerts_path()).unwrap(),
            link_text
        );
        assert!(target.is_file(), "nothing written at the target");

        // Now the link leads to a file: a second write goes there too.
        sandbox.add(&["price", "SECOND", "--above", "0.5"]);
        assert!(std::fs::symlink_metadata(sandbox.alerts_path())
            .unwrap()
            .file_type()
            .is_symlink());
        let text = std::fs::read_to_string(&target).unwrap();
        assert!(text.contains("FIRST") && text.contains("SECOND"), "{text}");
        assert_eq!(temp_files(&sandbox), Vec::<String>::new());
    }
}

/// A label is stored as given, and shown by every command with its control
/// characters and bidirectional overrides replaced by `?`.
#[test]
fn a_label_is_stored_as_given_and_shown_sanitized_everywhere() {
    let sandbox = Sandbox::new();
    let label = "\u{1b}[2Jx\ry\u{202E}z\u{2066}";
    let shown = "?[2Jx?y?z?";
    let output = sandbox
        .kalshi()
        .args(["alerts", "add", "--no-check", "price", "OTHER-3-Z"])
        .args(["--above", "0.1", "--label", label])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let added = common::stdout_of(&output);
    assert!(
        added.contains(&format!("Alert added: {shown}\n")),
        "{added}"
    );
    assert_eq!(sandbox.conditions()[0]["label"], label);
    let id = sandbox.conditions()[0]["id"].as_str().unwrap().to_string();

    for args in [
        &["alerts", "list"][..],
        &["alerts", "rearm", &id][..],
        &["alerts", "remove", &id][..],
    ] {
        let output = sandbox.kalshi().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        let stdout = common::stdout_of(&output);
        assert!(stdout.contains(shown), "{args:?}: {stdout}");
        assert!(
            !stdout.contains(['\u{1b}', '\r', '\u{202E}', '\u{2066}']),
            "{args:?}: {stdout:?}"
        );
    }
}
