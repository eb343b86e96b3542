//! Runs the embedding example, `embed_replay`, and checks what it prints:
//! each alert as it fires, then the run's summary.

use std::process::Command;

#[test]
fn the_embedded_monitor_prints_each_alert_and_the_summary() {
    let output = Command::new(env!("CARGO_BIN_EXE_embed_replay"))
        .env("KALSHI_LOG", "warn")
        .output()
        .expect("embed_replay runs");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");

    // Each alert line starts with the time it fired, HH:MM:SS.
    let mut alerts: Vec<&str> = lines[..3]
        .iter()
        .map(|line| {
            let (time, alert) = line.split_once("  ").expect("time, two spaces, alert");
            assert!(
                time.len() == 8 && time.split(':').all(|p| p.parse::<u8>().is_ok()),
                "{line}"
            );
            alert
        })
        .collect();
    alerts.sort();
    assert_eq!(
        alerts,
        [
            "AITURING price > 0.6 (now 0.665)",
            "HIGHAUS-24JUL13-T90 price crosses 0.4 (now 0.285)",
            "HIGHNY-24JUL13-B86.5 move >= 0.2 (now 0.345)",
        ]
    );
    assert_eq!(lines[3], "100 cycles, 3 alerts, stopped by ReplayFinished");
}
