//! `kalshi completions` and `kalshi man`: shell completions and manual
//! pages, generated from the same clap definitions that parse the command
//! line, so they cannot disagree with it.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::args::Cli;
use crate::error::{CliError, CliResult};
use crate::output::say;

pub fn completions(shell: clap_complete::Shell) -> CliResult<ExitCode> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "kalshi", &mut script);
    crate::output::text(&String::from_utf8_lossy(&script));
    Ok(ExitCode::SUCCESS)
}

pub fn man(out_dir: Option<&Path>) -> CliResult<ExitCode> {
    let command = Cli::command();
    let Some(dir) = out_dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(command)
            .render(&mut page)
            .map_err(|e| CliError::invalid(format!("cannot render the manual page: {e}")))?;
        crate::output::text(&String::from_utf8_lossy(&page));
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::invalid(format!("cannot create {}: {e}", dir.display())))?;
    let mut written = 0;
    write_pages(dir, command, "kalshi", &mut written)?;
    say!("Wrote {written} manual page(s) to {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes `name.1` for `command`, then a page for each visible subcommand,
/// named after the path to it (`kalshi-alerts-add.1`).
fn write_pages(dir: &Path, command: clap::Command, name: &str, written: &mut usize) -> CliResult {
    let command = command.name(name.to_string());
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut page)
        .map_err(|e| CliError::invalid(format!("cannot render {name}: {e}")))?;
    std::fs::File::create(&path)
        .and_then(|mut file| file.write_all(&page))
        .map_err(|e| CliError::invalid(format!("cannot write {}: {e}", path.display())))?;
    *written += 1;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub_name = format!("{name}-{}", sub.get_name());
        write_pages(dir, sub.clone(), &sub_name, written)?;
    }
    Ok(())
}
