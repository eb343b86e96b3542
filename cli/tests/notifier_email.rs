//! The `email` notifier through the real `kalshi` binary and real SMTP
//! servers on loopback: `notifiers test` over plain SMTP, STARTTLS and
//! implicit TLS with a password from the environment (which never shows in
//! any output), the server's self-signed certificate refused by default,
//! trusted through `ca_file` and accepted with a warning under
//! `tls_verify = false`, `notifiers check` refusing bad settings with the
//! file, the instance and the key, and a monitor run mailing a real alert.
//!
//! The servers are Debian's aiosmtpd (python3-aiosmtpd, /usr/bin/python3)
//! and a certificate made with openssl; see the harness shared with the
//! plugin's own tests.

mod common;

#[path = "../../plugins/src/notifiers/email/smtp_servers.rs"]
mod smtp_servers;

use std::path::{Path, PathBuf};

use common::{fired_records, record, stderr_of, stdout_of, Sandbox};
use kalshi_test_server::{fixtures, Scenario, TestServer};
use predicates::prelude::*;
use serde_json::json;
use smtp_servers::{Mail, PlainServer, SecureServers, LOGIN, PASSWORD};

const WRONG_PASSWORD: &str = "wrong-password-never-printed";

fn write_notifiers(sandbox: &Sandbox, text: &str) -> PathBuf {
    std::fs::create_dir_all(sandbox.data_dir()).unwrap();
    let path = sandbox.data_dir().join("notifiers.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// An instance `mail` sending plain SMTP to `port` on loopback.
fn plain_instance(port: u16, extra: &str) -> String {
    format!(
        r#"
[[notifier]]
name = "mail"
kind = "email"
host = "127.0.0.1"
port = {port}
tls = "none"
from = "Kalshi alerts <alerts@example.com>"
to = ["me@example.com"]
{extra}
"#
    )
}

/// An instance `mail` logging in over `tls` to `port`, trusting `cert`,
/// with the password read from SMTP_PASSWORD.
fn secure_instance(tls: &str, port: u16, cert: &Path) -> String {
    login_instance(tls, port, &format!("ca_file = \"{}\"", cert.display()))
}

/// An instance `mail` logging in over `tls` to `port` with the password
/// read from SMTP_PASSWORD, its certificates checked as `trust` says.
fn login_instance(tls: &str, port: u16, trust: &str) -> String {
    format!(
        r#"
[[notifier]]
name = "mail"
kind = "email"
host = "127.0.0.1"
port = {port}
tls = "{tls}"
username = "{LOGIN}"
password = {{ env = "SMTP_PASSWORD" }}
{trust}
from = "alerts@example.com"
to = "me@example.com"
"#
    )
}

fn only_mail(mails: &[Mail]) -> &Mail {
    assert_eq!(mails.len(), 1, "expected one message, got {mails:#?}");
    &mails[0]
}

/// Each alert, the sample one included, has a fresh UUID, and its message
/// is `<that UUID@kalshi-alerts>`.
fn assert_alert_message_id(mail: &Mail) {
    let id = mail.header("Message-ID").expect("a Message-ID");
    let uuid = id
        .strip_prefix('<')
        .and_then(|id| id.strip_suffix("@kalshi-alerts>"))
        .unwrap_or_else(|| panic!("{id} is not <alert id@kalshi-alerts>"));
    assert_eq!(uuid.len(), 36, "{id}");
    assert_eq!(uuid.matches('-').count(), 4, "{id}");
}

fn both_outputs(output: &std::process::Output) -> String {
    format!("{}{}", stdout_of(output), stderr_of(output))
}

#[test]
fn test_mails_the_sample_alert_over_plain_smtp() {
    let server = PlainServer::start();
    let sandbox = Sandbox::new();
    write_notifiers(&sandbox, &plain_instance(server.port, ""));

    sandbox
        .kalshi()
        .args(["notifiers", "test", "mail"])
        .assert()
        .success()
        .stdout("Sent a sample alert through mail (email).\n");

    let mails = server.wait_for_mail(1);
    let mail = only_mail(&mails);
    assert_eq!(
        mail.header("From"),
        Some("\"Kalshi alerts\" <alerts@example.com>")
    );
    assert_eq!(mail.header("To"), Some("me@example.com"));
    assert_eq!(
        mail.header("Subject"),
        Some("Kalshi alert: KXSAMPLE-TEST price > 0.6 (now 0.62)")
    );
    assert_alert_message_id(mail);
    for expected in [
        "Title:     Sample market: this is a test of your notifier",
        "Value:     0.62",
        "Threshold: 0.60",
        " UTC",
        "https://kalshi.com/markets/kxsample-test",
    ] {
        assert!(
            mail.body.contains(expected),
            "{expected:?} not in\n{}",
            mail.raw
        );
    }
}

#[test]
fn starttls_with_the_password_from_the_environment_delivers_and_never_shows_it() {
    let servers = SecureServers::start();
    let sandbox = Sandbox::new();
    write_notifiers(
        &sandbox,
        &secure_instance("starttls", servers.starttls, &servers.cert_path()),
    );

    let checked = sandbox
        .kalshi()
        .env("SMTP_PASSWORD", PASSWORD)
        .args(["notifiers", "check"])
        .output()
        .unwrap();
    assert!(checked.status.success(), "{}", both_outputs(&checked));
    assert!(
        stdout_of(&checked).contains("ok      mail (email, default)\n1 notifier(s) ready"),
        "a ca_file brings no warning: {}",
        both_outputs(&checked)
    );

    let listed = sandbox
        .kalshi()
        .env("SMTP_PASSWORD", PASSWORD)
        .args(["notifiers", "list"])
        .output()
        .unwrap();
    let tested = sandbox
        .kalshi()
        .env("SMTP_PASSWORD", PASSWORD)
        .args(["notifiers", "test", "mail"])
        .output()
        .unwrap();
    assert!(tested.status.success(), "{}", both_outputs(&tested));
    assert_eq!(
        stdout_of(&tested),
        "Sent a sample alert through mail (email).\n"
    );
    for output in [&checked, &listed, &tested] {
        assert!(!both_outputs(output).contains(PASSWORD));
    }

    let mails = servers.wait_for_mail(1);
    let mail = only_mail(&mails);
    assert_eq!(mail.header("X-RcptTo"), Some("me@example.com"));
    assert_alert_message_id(mail);
}

#[test]
fn a_wrong_password_fails_for_good_and_is_never_printed() {
    let servers = SecureServers::start();
    let sandbox = Sandbox::new();
    write_notifiers(
        &sandbox,
        &secure_instance("starttls", servers.starttls, &servers.cert_path()),
    );

    let tested = sandbox
        .kalshi()
        .env("SMTP_PASSWORD", WRONG_PASSWORD)
        .env("KALSHI_LOG", "debug")
        .args(["notifiers", "test", "mail"])
        .output()
        .unwrap();
    assert_eq!(tested.status.code(), Some(1), "{}", both_outputs(&tested));
    let stderr = stderr_of(&tested);
    assert!(
        stderr.contains("sending a sample alert through mail (email) failed"),
        "{stderr}"
    );
    assert!(stderr.contains("535"), "{stderr}");
    assert!(stderr.contains("permanent"), "{stderr}");

    let checked = sandbox
        .kalshi()
        .env("SMTP_PASSWORD", WRONG_PASSWORD)
        .env("KALSHI_LOG", "debug")
        .args(["notifiers", "check"])
        .output()
        .unwrap();
    assert_eq!(checked.status.code(), Some(1), "{}", both_outputs(&checked));
    assert!(
        stdout_of(&checked).contains("FAILED  mail (email)"),
        "{}",
        both_outputs(&checked)
    );

    for output in [&tested, &checked] {
        assert!(!both_outputs(output).contains(WRONG_PASSWORD));
    }
    assert!(servers.wait_for_mail(0).is_empty());
}

#[test]
fn implicit_tls_delivers_the_sample_alert() {
    let servers = SecureServers::start();
    let sandbox = Sandbox::new();
    write_notifiers(
        &sandbox,
        &secure_instance("implicit", servers.implicit, &servers.cert_path()),
    );

    let tested = sandbox
        .kalshi()
        .env("SMTP_PASSWORD", PASSWORD)
        .args(["notifiers", "test", "mail"])
        .output()
        .unwrap();
    assert!(tested.status.success(), "{}", both_outputs(&tested));
    assert!(!both_outputs(&tested).contains(PASSWORD));
    only_mail(&servers.wait_for_mail(1));
}

#[test]
fn an_untrusted_server_certificate_fails_check_and_test_for_good_and_sends_nothing() {
    let servers = SecureServers::start();
    for (tls, port) in [
        ("starttls", servers.starttls),
        ("implicit", servers.implicit),
    ] {
        let sandbox = Sandbox::new();
        write_notifiers(&sandbox, &login_instance(tls, port, ""));

        let checked = sandbox
            .kalshi()
            .env("SMTP_PASSWORD", PASSWORD)
            .args(["notifiers", "check"])
            .output()
            .unwrap();
        let tested = sandbox
            .kalshi()
            .env("SMTP_PASSWORD", PASSWORD)
            .args(["notifiers", "test", "mail"])
            .output()
            .unwrap();

        assert_eq!(checked.status.code(), Some(1), "{}", both_outputs(&checked));
        let report = stdout_of(&checked);
        assert!(
            report.contains(&format!(
                "FAILED  mail (email): smtp server 127.0.0.1:{port}: TLS failed: invalid peer \
                 certificate: UnknownIssuer ("
            )),
            "{tls}: {report}"
        );
        assert!(
            report.contains("give that certificate as ca_file"),
            "{report}"
        );
        assert!(report.contains("(permanent: "), "{report}");
        assert_eq!(tested.status.code(), Some(1), "{}", both_outputs(&tested));
        assert!(
            stderr_of(&tested).contains("TLS failed: invalid peer certificate: UnknownIssuer"),
            "{tls}: {}",
            stderr_of(&tested)
        );
        for output in [&checked, &tested] {
            assert!(!both_outputs(output).contains(PASSWORD));
        }
    }
    assert!(servers.wait_for_mail(0).is_empty());
}

#[test]
fn tls_verify_false_delivers_and_every_command_warns_naming_the_instance() {
    // Marked as a CA: no check would take it as the server's certificate.
    let servers = SecureServers::start_with_ca_certificate();
    let sandbox = Sandbox::new();
    write_notifiers(
        &sandbox,
        &login_instance("starttls", servers.starttls, "tls_verify = false"),
    );
    let kalshi = |args: &[&str]| {
        sandbox
            .kalshi()
            .env("SMTP_PASSWORD", PASSWORD)
            .args(args)
            .output()
            .unwrap()
    };

    let checked = kalshi(&["notifiers", "check"]);
    let listed = kalshi(&["notifiers", "list"]);
    let tested = kalshi(&["notifiers", "test", "mail"]);

    assert!(checked.status.success(), "{}", both_outputs(&checked));
    let warning = "warning: TLS certificates are not checked (tls_verify = false)";
    assert!(
        stdout_of(&checked).contains(&format!("ok      mail (email, default)\n        {warning}")),
        "{}",
        stdout_of(&checked)
    );
    assert!(
        stdout_of(&listed).contains(&format!("      {warning}")),
        "{}",
        stdout_of(&listed)
    );
    assert!(tested.status.success(), "{}", both_outputs(&tested));
    let logged: Vec<&str> = std::str::from_utf8(&tested.stderr)
        .unwrap()
        .lines()
        .filter(|l| l.contains("TLS certificates are not checked"))
        .collect();
    assert_eq!(logged.len(), 1, "{}", stderr_of(&tested));
    assert!(logged[0].contains(" WARN "), "{}", logged[0]);
    assert!(logged[0].contains("notifier=mail"), "{}", logged[0]);
    only_mail(&servers.wait_for_mail(1));
    for output in [&checked, &listed, &tested] {
        assert!(!both_outputs(output).contains(PASSWORD));
    }
}

#[test]
fn check_refuses_a_bad_address_naming_file_instance_and_key() {
    let sandbox = Sandbox::new();
    let text = plain_instance(25, "").replace("me@example.com", "me at example dot com");
    let path = write_notifiers(&sandbox, &text);

    sandbox
        .kalshi()
        .args(["notifiers", "check"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "notifiers file {}: notifier \"mail\": key to: expected an email address",
            path.display()
        )))
        .stderr(predicate::str::contains("\"me at example dot com\""));
}

#[test]
fn check_refuses_an_unset_password_variable_naming_file_instance_and_key() {
    let sandbox = Sandbox::new();
    let path = write_notifiers(
        &sandbox,
        &secure_instance("starttls", 587, Path::new("/nonexistent/cert.pem")),
    );

    sandbox
        .kalshi()
        .args(["notifiers", "check"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "notifiers file {}: notifier \"mail\": key password: environment variable \
             SMTP_PASSWORD is not set",
            path.display()
        )));
}

#[test]
fn check_refuses_plain_smtp_to_a_remote_host() {
    let sandbox = Sandbox::new();
    let text = plain_instance(25, "").replace("127.0.0.1", "smtp.example.com");
    let path = write_notifiers(&sandbox, &text);

    sandbox
        .kalshi()
        .args(["notifiers", "check"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "notifiers file {}: notifier \"mail\": key tls:",
            path.display()
        )))
        .stderr(predicate::str::contains(
            "only to 127.0.0.1, ::1 or localhost",
        ));
}

#[test]
fn monitor_once_mails_a_real_alert() {
    let server = PlainServer::start();
    let sandbox = Sandbox::new();
    let fired = sandbox.path("fired.jsonl");
    let also_file = format!(
        "\n[[notifier]]\nname = \"record\"\nkind = \"file\"\npath = \"{}\"\n",
        fired.display()
    );
    write_notifiers(&sandbox, &(plain_instance(server.port, "") + &also_file));
    sandbox.write_alerts(json!([record(
        "eu-price",
        "price_above",
        "EUCLIMATE-2030",
        0.3
    )]));
    let kalshi = TestServer::start(Scenario::new(fixtures::legacy_markets()));

    let output = sandbox
        .kalshi_at(&kalshi.base_url())
        .args(["alerts", "monitor", "--once"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", both_outputs(&output));

    let records = fired_records(&fired);
    assert_eq!(records.len(), 1, "{}", both_outputs(&output));
    let alert_id = records[0]["id"].as_str().unwrap();
    let mails = server.wait_for_mail(1);
    let mail = only_mail(&mails);
    assert_eq!(
        mail.header("Message-ID"),
        Some(format!("<{alert_id}@kalshi-alerts>").as_str())
    );
    let subject = mail.header("Subject").unwrap();
    assert!(
        subject.starts_with("Kalshi alert: EUCLIMATE-2030 price > 0.3 (now "),
        "{subject}"
    );
    assert!(
        mail.body
            .contains("https://kalshi.com/markets/euclimate-2030"),
        "{}",
        mail.raw
    );
    assert!(mail.body.contains("Threshold: 0.30"), "{}", mail.raw);
}

#[test]
fn monitor_with_digest_mails_one_message_per_check() {
    let server = PlainServer::start();
    let sandbox = Sandbox::new();
    write_notifiers(&sandbox, &plain_instance(server.port, "digest = true"));
    sandbox.write_alerts(json!([
        record("eu-price", "price_above", "EUCLIMATE-2030", 0.3),
        record("cn-volume", "volume_above", "CHINAUSGDP-30", 1000.0),
    ]));
    let kalshi = TestServer::start(Scenario::new(fixtures::legacy_markets()));

    let output = sandbox
        .kalshi_at(&kalshi.base_url())
        .args(["alerts", "monitor", "--once"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", both_outputs(&output));
    assert!(
        stderr_of(&output).contains("fired=2 delivered=2 failed=0 retrying=0"),
        "{}",
        stderr_of(&output)
    );

    let mails = server.wait_for_mail(1);
    let mail = only_mail(&mails);
    let subject = mail.header("Subject").unwrap();
    assert!(subject.starts_with("Kalshi: 2 alerts fired ("), "{subject}");
    assert!(subject.contains("EUCLIMATE-2030"), "{subject}");
    assert!(subject.contains("CHINAUSGDP-30"), "{subject}");
    assert!(
        mail.header("Message-ID")
            .is_some_and(|id| id.starts_with("<digest-")),
        "{}",
        mail.raw
    );
}
