//! docs/cli.md cannot drift from the command line: every command clap
//! knows has its section in the docs, every option and argument of it is
//! named there, and every command section of the docs is a real command.

use std::path::Path;

fn doc(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text under `heading` up to the next heading of the same or a higher
/// level.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let start = text
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no section {heading:?}"));
    let body = &text[start + heading.len() + 2..];
    let end = body
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .find(|&i| {
            let hashes = body[i..].chars().take_while(|c| *c == '#').count();
            hashes > 0 && hashes <= level && body[i..].chars().nth(hashes) == Some(' ')
        })
        .unwrap_or(body.len());
    &body[..end]
}

/// Where each command is documented: (file, heading).
fn home_of(path: &str) -> (&'static str, String) {
    match path {
        p if p.starts_with("alerts ") || p.starts_with("markets ") => {
            ("cli.md", format!("## `{p}`"))
        }
        p if p.starts_with("notifiers ") => ("notifiers.md", "## Commands".into()),
        "plugins list" => ("plugins.md", "## Where run-time plugins come from".into()),
        "config show" => ("cli.md", "### Configuration files".into()),
        "completions" | "man" => ("cli.md", "## Completions and manual pages".into()),
        other => panic!("no home in the docs for `kalshi {other}`: add one, and here"),
    }
}

/// Every visible leaf command, as its path of names.
fn leaves(command: &clap::Command, prefix: &str, out: &mut Vec<(String, clap::Command)>) {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let path = format!("{prefix}{}", sub.get_name()).trim().to_string();
        if sub.has_subcommands() {
            leaves(sub, &format!("{path} "), out);
        } else {
            out.push((path, sub.clone()));
        }
    }
}

fn names_of(arg: &clap::Arg) -> Option<String> {
    if arg.is_hide_set() || ["help", "version"].contains(&arg.get_id().as_str()) {
        return None;
    }
    match arg.get_long() {
        Some(long) => Some(format!("--{long}")),
        None => arg
            .get_value_names()
            .and_then(|names| names.first())
            .map(|name| name.to_string()),
    }
}

#[test]
fn every_command_option_and_argument_is_documented() {
    let command = kalshi_alerts_cli::command();
    let mut all = Vec::new();
    leaves(&command, "", &mut all);
    assert!(all.len() > 15, "{} commands", all.len());
    let mut missing = Vec::new();
    for (path, sub) in &all {
        let (file, heading) = home_of(path);
        let text = doc(file);
        let body = section(&text, &heading);
        if !body.contains(path.as_str()) && !heading.contains(path.as_str()) {
            missing.push(format!("{file} {heading}: the command `{path}`"));
        }
        for arg in sub.get_arguments().filter(|a| !a.is_global_set()) {
            if let Some(name) = names_of(arg) {
                if !body.contains(&name) {
                    missing.push(format!("{file} {heading}: `{path}` {name}"));
                }
            }
        }
    }
    let global = doc("cli.md");
    let global = section(&global, "## Global options and environment");
    for arg in command.get_arguments().filter(|a| a.is_global_set()) {
        if let Some(name) = names_of(arg) {
            if !global.contains(&name) {
                missing.push(format!("cli.md global options: {name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not documented:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_command_section_of_the_reference_is_a_real_command() {
    let command = kalshi_alerts_cli::command();
    let mut all = Vec::new();
    leaves(&command, "", &mut all);
    let known: Vec<&str> = all.iter().map(|(p, _)| p.as_str()).collect();
    let text = doc("cli.md");
    for line in text.lines().filter(|l| l.starts_with("## `")) {
        let path = line.trim_start_matches("## `").trim_end_matches('`');
        assert!(
            known.contains(&path),
            "docs/cli.md documents `kalshi {path}`, which does not exist"
        );
    }
}
