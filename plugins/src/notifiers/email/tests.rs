//! Tests of the `email` notifier: settings checked at build, and delivery
//! through real SMTP servers on loopback (see `smtp_servers.rs`), read back
//! from the Maildir they deliver into.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use kalshi_alerts_core::notifier::find_notifier;
use kalshi_alerts_core::{Condition, Market};
use rust_decimal::Decimal;
use serde_json::json;

use super::smtp_servers::{
    free_port, PlainServer, SecureServers, BUSY_RECIPIENT, LOGIN, PASSWORD, REJECTED_RECIPIENT,
};
use super::*;

/// A price alert on `ticker` now at `value`, fired at 2026-01-12 22:08:10 UTC.
pub(super) fn alert(ticker: &str, value: &str) -> FiredAlert {
    let mut fired = alert_of("price_above", ticker, 0, value);
    fired.threshold = Decimal::from_str("0.6").unwrap();
    fired
}

/// An alert of any condition type.
pub(super) fn alert_of(kind: &str, ticker: &str, threshold: i64, value: &str) -> FiredAlert {
    let condition: Condition = serde_json::from_value(json!({
        "id": "c1", "condition_type": kind, "ticker": ticker,
        "threshold": threshold, "label": "BTC over 60", "created_at": ""
    }))
    .unwrap();
    let market = Market {
        ticker: ticker.into(),
        title: "Will Bitcoin close above $100k?".into(),
        status: "active".into(),
        event_ticker: String::new(),
        yes_bid: Some(Decimal::from_str("0.64").unwrap()),
        yes_ask: Some(Decimal::from_str("0.67").unwrap()),
        volume: Some(Decimal::from(1234)),
    };
    let at = kalshi_alerts_core::condition::parse_timestamp("2026-01-12T22:08:10Z").unwrap();
    FiredAlert::new(&condition, &market, Decimal::from_str(value).unwrap(), at)
}

fn instantiate(settings: serde_json::Value) -> Result<Box<dyn Notifier>, SettingsError> {
    let plugin = find_notifier(NAME).expect("email is registered");
    plugin.instantiate(settings.as_object().expect("an object"))
}

fn settings_error_of(settings: serde_json::Value) -> SettingsError {
    match instantiate(settings) {
        Ok(_) => panic!("settings were accepted"),
        Err(e) => e,
    }
}

/// Plain SMTP to `port` on loopback, to one recipient.
fn plain_settings(port: u16) -> serde_json::Value {
    json!({
        "host": "127.0.0.1", "port": port, "tls": "none",
        "from": "Kalshi alerts <alerts@example.com>", "to": "me@example.com",
    })
}

/// Authenticated TLS (`mode`) to `port`, trusting the servers' certificate.
fn secure_settings(servers: &SecureServers, mode: &str, password: &str) -> serde_json::Value {
    let port = match mode {
        "implicit" => servers.implicit,
        _ => servers.starttls,
    };
    json!({
        "host": "127.0.0.1", "port": port, "tls": mode,
        "username": LOGIN, "password": password,
        "ca_file": servers.cert_path().to_str().unwrap(),
        "from": "alerts@example.com", "to": ["me@example.com", "you@example.com"],
    })
}

/// Bounds every call to a server, so that a broken one fails the test
/// instead of hanging it.
async fn within<T>(call: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("the call finished within 20 s")
}

#[test]
fn registers_with_the_documented_settings() {
    let plugin = find_notifier(NAME).expect("email is registered");
    let names: Vec<&str> = plugin.settings().iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "host",
            "port",
            "tls",
            "username",
            "password",
            "from",
            "to",
            "ca_file",
            "tls_verify",
            "market_url",
            "digest"
        ]
    );
    let secrets: Vec<&str> = plugin
        .settings()
        .iter()
        .filter(|s| s.secret)
        .map(|s| s.name)
        .collect();
    assert_eq!(secrets, ["password"]);
}

#[test]
fn plain_smtp_to_a_remote_host_is_refused_at_build() {
    for host in [
        "smtp.example.com",
        "192.0.2.1",
        "::2",
        "localhost.example.com",
    ] {
        let err = settings_error_of(json!({
            "host": host, "tls": "none", "from": "a@example.com", "to": "b@example.com"
        }));
        assert_eq!(err.key, "tls", "{host}");
        assert!(
            err.problem.contains("only to 127.0.0.1, ::1 or localhost"),
            "{err}"
        );
    }
}

#[test]
fn plain_smtp_to_loopback_hosts_is_allowed() {
    for host in [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "[::1]",
        "localhost",
        "LOCALHOST",
    ] {
        let built = instantiate(json!({
            "host": host, "tls": "none", "from": "a@example.com", "to": "b@example.com"
        }));
        assert!(built.is_ok(), "{host}: {:?}", built.err());
    }
}

#[test]
fn bad_addresses_name_the_key_and_the_value() {
    let err = settings_error_of(json!({
        "host": "smtp.example.com", "from": "not an address", "to": "b@example.com"
    }));
    assert_eq!(err.key, "from");
    assert!(err.problem.contains("\"not an address\""), "{err}");
    assert!(err.problem.contains("expected an email address"), "{err}");

    let err = settings_error_of(json!({
        "host": "smtp.example.com", "from": "a@example.com",
        "to": ["b@example.com", "c@@example"]
    }));
    assert_eq!(err.key, "to");
    assert!(err.problem.contains("\"c@@example\""), "{err}");
}

#[test]
fn username_and_password_go_together_and_the_password_is_never_shown() {
    let err = settings_error_of(json!({
        "host": "smtp.example.com", "from": "a@example.com", "to": "b@example.com",
        "username": "me"
    }));
    assert_eq!(err.key, "password");

    let err = settings_error_of(json!({
        "host": "smtp.example.com", "from": "a@example.com", "to": "b@example.com",
        "password": "hunter2-secret"
    }));
    assert_eq!(err.key, "username");
    assert!(!err.to_string().contains("hunter2-secret"), "{err}");
}

#[test]
fn port_defaults_to_the_standard_port_of_the_tls_mode() {
    let none = Settings::new();
    assert_eq!(port(&none, "starttls").unwrap(), 587);
    assert_eq!(port(&none, "implicit").unwrap(), 465);
    assert_eq!(port(&none, "none").unwrap(), 25);
    let given = json!({"port": 2525}).as_object().unwrap().clone();
    assert_eq!(port(&given, "implicit").unwrap(), 2525);

    for bad in [0, 65536, -1] {
        let err = settings_error_of(json!({
            "host": "smtp.example.com", "port": bad, "from": "a@example.com", "to": "b@example.com"
        }));
        assert_eq!(err.key, "port");
        assert!(
            err.problem.contains("expected a port from 1 to 65535"),
            "{err}"
        );
    }
}

#[test]
fn unreadable_or_non_pem_ca_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err = settings_error_of(json!({
        "host": "smtp.example.com", "from": "a@example.com", "to": "b@example.com",
        "ca_file": missing.to_str().unwrap()
    }));
    assert_eq!(err.key, "ca_file");
    assert!(err.problem.contains("cannot read"), "{err}");

    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let err = settings_error_of(json!({
        "host": "smtp.example.com", "from": "a@example.com", "to": "b@example.com",
        "ca_file": junk.to_str().unwrap()
    }));
    assert_eq!(err.key, "ca_file");
    assert!(err.problem.contains("expected PEM certificates"), "{err}");

    let err = settings_error_of(json!({
        "host": "127.0.0.1", "tls": "none", "from": "a@example.com", "to": "b@example.com",
        "ca_file": junk.to_str().unwrap()
    }));
    assert_eq!(err.key, "ca_file");
}

#[test]
fn digest_setting_decides_batching() {
    let single = instantiate(plain_settings(25)).unwrap();
    assert!(!single.batches());
    let mut settings = plain_settings(25);
    settings["digest"] = json!(true);
    assert!(instantiate(settings).unwrap().batches());
}

#[tokio::test]
async fn plain_delivery_arrives_with_headers_and_a_readable_body() {
    let server = PlainServer::start();
    let notifier = instantiate(plain_settings(server.port)).unwrap();
    let fired = alert("KXBTC-25DEC31-T100000", "0.655");

    within(notifier.notify(&fired)).await.unwrap();

    let mails = server.wait_for_mail(1);
    assert_eq!(mails.len(), 1, "{}", server.log());
    let mail = &mails[0];
    assert_eq!(
        mail.header("From"),
        Some("\"Kalshi alerts\" <alerts@example.com>")
    );
    assert_eq!(mail.header("To"), Some("me@example.com"));
    assert_eq!(
        mail.header("Subject"),
        Some("Kalshi alert: KXBTC-25DEC31-T100000 price > 0.6 (now 0.655)")
    );
    assert_eq!(
        mail.header("Message-ID"),
        Some(format!("<{}@kalshi-alerts>", fired.id).as_str())
    );
    for expected in [
        "Title:     Will Bitcoin close above $100k?",
        "Value:     0.655",
        "Threshold: 0.60",
        "Fired at:  2026-01-12 22:08:10 UTC",
        "https://kalshi.com/markets/kxbtc-25dec31-t100000",
    ] {
        assert!(
            mail.body.contains(expected),
            "{expected:?} not in:\n{}",
            mail.raw
        );
    }
}

#[tokio::test]
async fn a_retried_alert_carries_the_same_message_id() {
    let server = PlainServer::start();
    let notifier = instantiate(plain_settings(server.port)).unwrap();
    let fired = alert("T", "0.7");

    within(notifier.notify(&fired)).await.unwrap();
    within(notifier.notify(&fired)).await.unwrap();

    let mails = server.wait_for_mail(2);
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[0].header("Message-ID"), mails[1].header("Message-ID"));
}

#[tokio::test]
async fn digest_of_two_alerts_is_one_message() {
    let server = PlainServer::start();
    let mut settings = plain_settings(server.port);
    settings["digest"] = json!(true);
    let notifier = instantiate(settings).unwrap();
    let alerts = [alert("AAA", "0.7"), alert("BBB", "0.8")];

    within(notifier.notify_batch(&alerts)).await.unwrap();

    let mails = server.wait_for_mail(1);
    // Give a stray second message time to show up before counting.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        super::smtp_servers::read_maildir(&server.maildir()).len(),
        1
    );
    let mail = &mails[0];
    assert_eq!(
        mail.header("Subject"),
        Some("Kalshi: 2 alerts fired (AAA, BBB)")
    );
    assert_eq!(
        mail.header("Message-ID"),
        Some(compose::digest_message_id(&alerts).as_str())
    );
    assert!(
        mail.body.contains("AAA price > 0.6 (now 0.70)"),
        "{}",
        mail.raw
    );
    assert!(
        mail.body.contains("BBB price > 0.6 (now 0.80)"),
        "{}",
        mail.raw
    );
}

#[tokio::test]
async fn without_digest_a_batch_is_one_message_per_alert() {
    let server = PlainServer::start();
    let notifier = instantiate(plain_settings(server.port)).unwrap();
    let alerts = [alert("AAA", "0.7"), alert("BBB", "0.8")];

    within(notifier.notify_batch(&alerts)).await.unwrap();

    let mails = server.wait_for_mail(2);
    let mut ids: Vec<_> = mails.iter().map(|m| m.header("Message-ID")).collect();
    ids.sort();
    let mut expected: Vec<_> = alerts.iter().map(compose::message_id).collect();
    expected.sort();
    assert_eq!(
        ids,
        expected
            .iter()
            .map(|s| Some(s.as_str()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn starttls_with_the_right_password_delivers_to_every_recipient() {
    let servers = SecureServers::start();
    let notifier = instantiate(secure_settings(&servers, "starttls", PASSWORD)).unwrap();

    within(notifier.check()).await.unwrap();
    within(notifier.notify(&alert("T", "0.7"))).await.unwrap();

    let mails = servers.wait_for_mail(1);
    assert_eq!(mails.len(), 1, "{}", servers.log());
    assert_eq!(
        mails[0].header("To"),
        Some("me@example.com, you@example.com")
    );
    assert_eq!(
        mails[0].header("X-RcptTo"),
        Some("me@example.com, you@example.com")
    );
}

#[tokio::test]
async fn implicit_tls_with_the_right_password_delivers() {
    let servers = SecureServers::start();
    let notifier = instantiate(secure_settings(&servers, "implicit", PASSWORD)).unwrap();

    within(notifier.check()).await.unwrap();
    within(notifier.notify(&alert("T", "0.7"))).await.unwrap();

    assert_eq!(servers.wait_for_mail(1).len(), 1, "{}", servers.log());
}

#[tokio::test]
async fn wrong_password_is_permanent_and_never_shown() {
    let servers = SecureServers::start();
    let wrong = "wrong-password-do-not-print";
    for mode in ["starttls", "implicit"] {
        let notifier = instantiate(secure_settings(&servers, mode, wrong)).unwrap();

        let sent = within(notifier.notify(&alert("T", "0.7")))
            .await
            .unwrap_err();
        assert_eq!(sent.kind, FailureKind::Permanent, "{mode}: {sent}");
        assert!(sent.message.contains("535"), "{mode}: {sent}");
        assert!(!sent.message.contains(wrong), "{mode}: {sent}");
        assert!(!format!("{sent:?}").contains(wrong));

        let checked = within(notifier.check()).await.unwrap_err();
        assert_eq!(checked.kind, FailureKind::Permanent, "{mode}: {checked}");
        assert!(!checked.message.contains(wrong), "{mode}: {checked}");
    }
    assert!(servers.read_nothing());
}

#[tokio::test]
async fn untrusted_certificate_is_a_permanent_failure() {
    let servers = SecureServers::start();
    for mode in ["starttls", "implicit"] {
        let mut settings = secure_settings(&servers, mode, PASSWORD);
        settings.as_object_mut().unwrap().remove("ca_file");
        let notifier = instantiate(settings).unwrap();

        let err = within(notifier.check()).await.unwrap_err();
        assert_eq!(err.kind, FailureKind::Permanent, "{mode}: {err}");
        assert!(err.message.contains("TLS failed"), "{mode}: {err}");
        assert!(err.message.contains("certificate"), "{mode}: {err}");
        assert!(!err.message.contains(PASSWORD), "{mode}: {err}");
    }
}

#[tokio::test]
async fn self_signed_ca_certificate_is_refused_with_a_hint() {
    let servers = SecureServers::start_with_ca_certificate();
    let notifier = instantiate(secure_settings(&servers, "starttls", PASSWORD)).unwrap();

    let err = within(notifier.check()).await.unwrap_err();
    assert_eq!(err.kind, FailureKind::Permanent, "{err}");
    assert!(err.message.contains("basicConstraints CA:FALSE"), "{err}");
}

#[tokio::test]
async fn tls_verify_false_accepts_any_certificate_and_says_so() {
    // A certificate marked as a CA, which no check would accept.
    let servers = SecureServers::start_with_ca_certificate();
    for mode in ["starttls", "implicit"] {
        let mut settings = secure_settings(&servers, mode, PASSWORD);
        settings.as_object_mut().unwrap().remove("ca_file");
        settings["tls_verify"] = json!(false);
        let notifier = instantiate(settings).unwrap();

        within(notifier.check()).await.unwrap();
        within(notifier.notify(&alert("T", "0.7"))).await.unwrap();
        assert_eq!(notifier.warnings(), [crate::notifiers::tls::UNCHECKED]);
    }
    assert_eq!(servers.wait_for_mail(2).len(), 2, "{}", servers.log());
}

#[test]
fn tls_verify_false_is_refused_with_plain_smtp_or_a_ca_file() {
    let err = settings_error_of(json!({
        "host": "127.0.0.1", "tls": "none", "from": "a@example.com", "to": "b@example.com",
        "tls_verify": false
    }));
    assert_eq!(err.key, "tls_verify");
    assert!(err.problem.contains("with tls = \"none\""), "{err}");

    let err = settings_error_of(json!({
        "host": "smtp.example.com", "from": "a@example.com", "to": "b@example.com",
        "tls_verify": false, "ca_file": "/nonexistent/ca.pem"
    }));
    assert_eq!(err.key, "tls_verify");
    assert!(err.problem.contains("contradicts ca_file"), "{err}");

    let checked = instantiate(json!({
        "host": "smtp.example.com", "from": "a@example.com", "to": "b@example.com"
    }))
    .unwrap();
    assert!(checked.warnings().is_empty());
}

#[tokio::test]
async fn tls_to_a_server_without_tls_is_a_permanent_failure() {
    let servers = SecureServers::start();
    for mode in ["starttls", "implicit"] {
        let mut settings = secure_settings(&servers, mode, PASSWORD);
        settings["port"] = json!(servers.plain);
        let notifier = instantiate(settings).unwrap();

        let err = within(notifier.notify(&alert("T", "0.7")))
            .await
            .unwrap_err();
        assert_eq!(err.kind, FailureKind::Permanent, "{mode}: {err}");
    }
    assert!(servers.read_nothing());
}

#[tokio::test]
async fn rejected_recipient_is_permanent_and_a_busy_one_retryable() {
    let servers = SecureServers::start();
    let mut settings = plain_settings(servers.plain);

    settings["to"] = json!(REJECTED_RECIPIENT);
    let notifier = instantiate(settings.clone()).unwrap();
    let err = within(notifier.notify(&alert("T", "0.7")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Permanent, "{err}");
    assert!(err.message.contains("550"), "{err}");

    settings["to"] = json!(BUSY_RECIPIENT);
    let notifier = instantiate(settings).unwrap();
    let err = within(notifier.notify(&alert("T", "0.7")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Retryable, "{err}");
    assert!(err.message.contains("451"), "{err}");

    assert!(servers.read_nothing());
}

#[tokio::test]
async fn refused_connection_is_retryable() {
    let port = free_port();
    let notifier = instantiate(plain_settings(port)).unwrap();

    let sent = within(notifier.notify(&alert("T", "0.7")))
        .await
        .unwrap_err();
    assert_eq!(sent.kind, FailureKind::Retryable, "{sent}");
    assert!(
        sent.message.contains(&format!("127.0.0.1:{port}")),
        "{sent}"
    );
    assert!(sent.message.contains("connection failed"), "{sent}");

    let checked = within(notifier.check()).await.unwrap_err();
    assert_eq!(checked.kind, FailureKind::Retryable, "{checked}");
}

#[tokio::test]
async fn check_sends_nothing() {
    let server = PlainServer::start();
    let notifier = instantiate(plain_settings(server.port)).unwrap();

    within(notifier.check()).await.unwrap();

    std::thread::sleep(Duration::from_millis(200));
    assert!(super::smtp_servers::read_maildir(&server.maildir()).is_empty());
}

impl SecureServers {
    /// Whether nothing was delivered.
    fn read_nothing(&self) -> bool {
        super::smtp_servers::read_maildir(&self.maildir()).is_empty()
    }
}

#[test]
fn the_login_as_auth_sends_it_is_among_the_forms_masked() {
    let forms = login_forms("bob", "Hunter2!pw");
    // AUTH PLAIN of \0bob\0Hunter2!pw, as a server once echoed it back.
    assert!(
        forms.contains(&"AGJvYgBIdW50ZXIyIXB3".to_string()),
        "{forms:?}"
    );
    // AUTH LOGIN sends the password on its own.
    assert!(forms.contains(&"SHVudGVyMiFwdw==".to_string()), "{forms:?}");
    let echoed = format!("454 4.7.0 temporary failure ({})", forms[0]);
    let masked = forms
        .iter()
        .fold(echoed, |text, form| text.replace(form.as_str(), "****"));
    assert_eq!(masked, "454 4.7.0 temporary failure (****)");
}
