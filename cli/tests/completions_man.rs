//! `kalshi completions` and `kalshi man`, through the real binary: each
//! shell's script names the commands, bash accepts its script, and the
//! manual pages render with every command.

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
