//! The `kalshi` binary: the command line of [`kalshi_alerts_cli`].
fn main() -> std::process::ExitCode {
    kalshi_alerts_cli::main()
}
