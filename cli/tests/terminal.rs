//! What makes `kalshi` behave like the other tools of a terminal, through
//! the real binary: completion scripts (bash completes from its own),
//! manual pages, `-v`/`-q` with `KALSHI_LOG`/`RUST_LOG` over them, and
//! colour only when asked or on a terminal without `NO_COLOR`.

mod common;

use common::{stdout_of, Sandbox};

#[test]
fn each_shell_gets_a_script_naming_the_commands() {
    let sandbox = Sandbox::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let output = sandbox
            .kalshi()
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(output.status.success(), "{shell}");
        let script = stdout_of(&output);
        for word in [
            "alerts",
            "monitor",
            "history",
            "rearm",
            "--repeat",
            "notifiers",
        ] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
    }
    sandbox
        .kalshi()
        .args(["completions", "tcsh"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("invalid value 'tcsh'"));
}

#[test]
fn bash_reads_its_script_and_completes_a_subcommand() {
    let sandbox = Sandbox::new();
    let script = sandbox.path("kalshi.bash");
    let output = sandbox
        .kalshi()
        .args(["completions", "bash"])
        .output()
        .unwrap();
    std::fs::write(&script, &output.stdout).unwrap();
    // Source it, then ask for the completions of `kalshi alerts re`.
    let probe = format!(
        "source {}; COMP_WORDS=(kalshi alerts re); COMP_CWORD=2; _kalshi kalshi re alerts; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let completed = std::process::Command::new("bash")
        .args(["--norc", "-c", &probe])
        .output()
        .unwrap();
    assert!(completed.status.success(), "{completed:?}");
    let words = String::from_utf8_lossy(&completed.stdout);
    let mut words: Vec<&str> = words.lines().collect();
    words.sort();
    assert_eq!(words, ["rearm", "remove"]);
}

#[test]
fn the_manual_renders_and_a_page_per_command_is_written() {
    let sandbox = Sandbox::new();
    let page = stdout_of(&sandbox.kalshi().arg("man").output().unwrap());
    assert!(page.contains(".TH kalshi 1"), "{page}");
    assert!(page.contains("Watch Kalshi prediction markets"), "{page}");

    let dir = sandbox.path("man1");
    sandbox
        .kalshi()
        .args(["man", "--out-dir", dir.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicates::str::contains("manual page(s) to"));
    for name in [
        "kalshi.1",
        "kalshi-alerts-add.1",
        "kalshi-alerts-history.1",
        "kalshi-notifiers-test.1",
    ] {
        let text =
            std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(text.starts_with(".ie"), "{name}");
    }
    let add = std::fs::read_to_string(dir.join("kalshi-alerts-add.1")).unwrap();
    assert!(add.contains("\\-\\-repeat"), "{add}");
}

/// A `--once` check of one condition over the recorded markets, with `args`
/// before the command and `env` set; returns stderr.
fn check_logs(args: &[&str], env: &[(&str, &str)]) -> String {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(serde_json::json!([common::record(
        "c",
        "price_above",
        "EUCLIMATE-2030",
        0.3
    )]));
    let server = kalshi_test_server::TestServer::start(kalshi_test_server::Scenario::new(
        kalshi_test_server::fixtures::legacy_markets(),
    ));
    let mut command = sandbox.kalshi_at(&server.base_url());
    command.env_remove("KALSHI_LOG");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command
        .args(args)
        .args(["alerts", "monitor", "--once", "--notifier", "log"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    common::stderr_of(&output)
}

#[test]
fn verbosity_flags_set_the_log_level_and_the_environment_overrides_them() {
    let default = check_logs(&[], &[]);
    assert!(default.contains(" INFO "), "{default}");
    assert!(!default.contains("DEBUG"), "{default}");

    let quiet = check_logs(&["-q"], &[]);
    assert!(!quiet.contains(" INFO "), "{quiet}");
    assert!(check_logs(&["-qq"], &[]).is_empty());

    let verbose = check_logs(&["-v"], &[]);
    assert!(verbose.contains("DEBUG"), "{verbose}");
    assert!(!verbose.contains("TRACE"), "{verbose}");

    let overridden = check_logs(&["-q"], &[("RUST_LOG", "debug")]);
    assert!(overridden.contains("DEBUG"), "{overridden}");
    let ours_first = check_logs(&["-v"], &[("KALSHI_LOG", "error"), ("RUST_LOG", "debug")]);
    assert!(ours_first.is_empty(), "{ours_first}");
}

#[test]
fn colour_only_when_asked_or_on_a_terminal_without_no_color() {
    let escape = "\u{1b}[";
    assert!(!check_logs(&[], &[]).contains(escape), "piped: no colour");
    assert!(check_logs(&["--color", "always"], &[]).contains(escape));
    assert!(!check_logs(&["--color", "never"], &[]).contains(escape));
    assert!(!check_logs(&[], &[("NO_COLOR", "1")]).contains(escape));
}

#[cfg(unix)]
#[test]
fn a_table_fits_the_terminal_and_is_never_cut_when_piped() {
    let sandbox = Sandbox::new();
    let label = "A label long enough that no narrow terminal can show all of it at once";
    sandbox
        .kalshi()
        .args([
            "alerts",
            "add",
            "--no-check",
            "price",
            "AITURING",
            "--above",
            "0.6",
            "--label",
            label,
        ])
        .assert()
        .success();

    let shown = sandbox.on_a_terminal(&["alerts", "list"], &[("COLUMNS", "100")]);
    let lines: Vec<&str> = shown.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 2, "{shown}");
    for line in &lines {
        assert!(line.chars().count() <= 100, "{line:?} is wider than 100");
    }
    assert!(lines[1].contains("A label long enough"), "{shown}");
    assert!(lines[1].contains('…'), "{shown}");
    assert!(lines[1].contains("AITURING"), "{shown}");

    let piped = stdout_of(
        &sandbox
            .kalshi()
            .args(["alerts", "list"])
            .env("COLUMNS", "100")
            .output()
            .unwrap(),
    );
    assert!(piped.contains(label), "{piped}");
}

#[cfg(unix)]
#[test]
fn on_a_terminal_logs_are_coloured_unless_no_color_is_set() {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(serde_json::json!([common::record(
        "c",
        "price_above",
        "EUCLIMATE-2030",
        0.3
    )]));
    let server = kalshi_test_server::TestServer::start(kalshi_test_server::Scenario::new(
        kalshi_test_server::fixtures::legacy_markets(),
    ));
    let url = server.base_url();
    let args = ["alerts", "monitor", "--once", "--notifier", "log"];
    let coloured = sandbox.on_a_terminal(&args, &[("KALSHI_API_BASE_URL", &url)]);
    assert!(coloured.contains("cycle complete"), "{coloured}");
    assert!(
        has_colour(&coloured),
        "no colour on a terminal:\n{coloured}"
    );
    let plain = sandbox.on_a_terminal(&args, &[("KALSHI_API_BASE_URL", &url), ("NO_COLOR", "1")]);
    assert!(plain.contains("cycle complete"), "{plain}");
    assert!(!has_colour(&plain), "colour despite NO_COLOR:\n{plain}");
}

/// Whether `text` sets a colour or style (an SGR sequence, `ESC [ ... m`);
/// other control sequences (the progress line erasing itself) are not
/// colour.
fn has_colour(text: &str) -> bool {
    text.split('\u{1b}').skip(1).any(|rest| {
        rest.strip_prefix('[').is_some_and(|rest| {
            let end = rest.find(|c: char| !(c.is_ascii_digit() || c == ';'));
            end.is_some_and(|at| rest[at..].starts_with('m'))
        })
    })
}
