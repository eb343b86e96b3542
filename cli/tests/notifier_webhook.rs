//! The `webhook` notifier through the real binary: `notifiers test` in each
//! format, a monitor run whose delivery is retried or refused, the
//! refusals of `notifiers check`, and an HTTPS receiver with a self-signed
//! certificate: refused by default, trusted through `ca_file`, accepted
//! with a warning under `tls_verify = false`. Every request goes to a
//! recording receiver on loopback, and no output may show the URL's secret
//! path.

mod common;
#[path = "../../plugins/src/notifiers/webhook/receiver.rs"]
mod receiver;

use std::path::PathBuf;
use std::process::Output;

use common::{record, stderr_of, stdout_of, Sandbox};
use kalshi_test_server::{fixtures, Scenario, TestServer};
use receiver::{Receiver, Reply, SelfSigned};
use serde_json::json;

/// A path shaped like a Slack webhook's; every part of it is secret.
const HOOK_PATH: &str = "/services/T0SECRET/B0SECRET/xoxSECRETtoken";
const SECRET: &str = "SECRET";

/// The instance `hook`, its URL read from `HOOK_URL`, plus `extra` lines.
fn write_hook(sandbox: &Sandbox, extra: &str) -> PathBuf {
    std::fs::create_dir_all(sandbox.data_dir()).unwrap();
    let path = sandbox.data_dir().join("notifiers.toml");
    let text = format!(
        "[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = {{ env = \"HOOK_URL\" }}\n{extra}\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn kalshi(sandbox: &Sandbox, hook_url: &str, args: &[&str]) -> Output {
    sandbox
        .kalshi()
        .env("HOOK_URL", hook_url)
        .args(args)
        .output()
        .unwrap()
}

fn all_output(output: &Output) -> String {
    format!("{}{}", stdout_of(output), stderr_of(output))
}

fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

#[test]
fn test_sends_the_sample_alert_in_each_format_and_never_shows_the_url() {
    for format in ["generic", "slack", "discord", "ntfy"] {
        let sandbox = Sandbox::new();
        let receiver = Receiver::start([]);
        let url = receiver.url(HOOK_PATH);
        write_hook(&sandbox, &format!("format = \"{format}\""));

        let output = kalshi(&sandbox, &url, &["notifiers", "test", "hook"]);
        assert!(output.status.success(), "{format}: {}", all_output(&output));
        assert_eq!(
            stdout_of(&output),
            "Sent a sample alert through hook (webhook).\n"
        );

        let got = receiver.requests();
        assert_eq!(got.len(), 1, "{format}");
        let request = &got[0];
        assert_eq!(request.method, "POST");
        assert_eq!(request.target, HOOK_PATH);
        let key = request
            .header("idempotency-key")
            .expect("an idempotency key");
        assert_eq!(key.len(), 36, "{format}: a UUID, got {key}");
        match format {
            "generic" => {
                assert_eq!(request.header("content-type"), Some("application/json"));
                let body = request.json();
                assert_eq!(body["id"], key);
                assert_eq!(body["ticker"], "KXSAMPLE-TEST");
                assert_eq!(body["current_value"], json!(0.62));
            }
            "slack" => {
                assert_eq!(request.header("content-type"), Some("application/json"));
                let text = request.json()["text"].as_str().unwrap().to_string();
                assert!(
                    text.contains("*KXSAMPLE-TEST price &gt; 0.6 (now 0.62)*"),
                    "{text}"
                );
                assert!(text.contains("value 0.62 vs threshold 0.60"), "{text}");
            }
            "discord" => {
                assert_eq!(request.header("content-type"), Some("application/json"));
                let body = request.json();
                assert_eq!(body["content"], "**KXSAMPLE-TEST price > 0.6 (now 0.62)**");
                assert_eq!(
                    body["embeds"][0]["title"],
                    "Sample market: this is a test of your notifier"
                );
            }
            _ => {
                assert_eq!(
                    request.header("content-type"),
                    Some("text/plain; charset=utf-8")
                );
                assert_eq!(
                    request.header("title"),
                    Some("KXSAMPLE-TEST price > 0.6 (now 0.62)")
                );
                assert_eq!(request.header("priority"), Some("high"));
                assert_eq!(request.header("tags"), Some("price_above"));
                assert!(request.text().contains("value 0.62 vs threshold 0.60"));
            }
        }

        let mut shown = all_output(&output);
        for args in [
            &["notifiers", "list"][..],
            &["notifiers", "list", "--json"],
            &["notifiers", "check"],
        ] {
            let output = kalshi(&sandbox, &url, args);
            assert!(output.status.success(), "{args:?}: {}", all_output(&output));
            shown.push_str(&all_output(&output));
        }
        assert!(shown.contains("hook"), "{shown}");
        assert!(
            !shown.contains(SECRET),
            "{format}: the URL was shown:\n{shown}"
        );
    }
}

#[test]
fn test_reports_refusals_with_status_and_kind_but_not_the_url() {
    let cases = [
        (
            Reply::status(403).body(&format!("invalid_token for {HOOK_PATH}")),
            "HTTP 403 Forbidden: invalid_token for ****",
            "permanent",
        ),
        (
            Reply::status(503).body("upstream down"),
            "HTTP 503 Service Unavailable: upstream down",
            "retryable",
        ),
    ];
    for (reply, reason, kind) in cases {
        let sandbox = Sandbox::new();
        let receiver = Receiver::start([reply]);
        write_hook(&sandbox, "format = \"slack\"");

        let output = kalshi(
            &sandbox,
            &receiver.url(HOOK_PATH),
            &["notifiers", "test", "hook"],
        );
        assert_eq!(output.status.code(), Some(1), "{}", all_output(&output));
        let stderr = stderr_of(&output);
        assert!(
            stderr
                .contains("sending a sample alert through hook (webhook) failed: webhook slack: "),
            "{stderr}"
        );
        assert!(stderr.contains(reason), "{stderr}");
        assert!(stderr.contains(kind), "{stderr}");
        assert!(!all_output(&output).contains(SECRET), "{stderr}");
        assert_eq!(receiver.requests().len(), 1);
    }
}

/// A monitor run over the recorded markets with one condition that fires
/// (EUCLIMATE-2030's midpoint is 0.395) and the instance `hook`.
fn monitor_once(receiver: &Receiver) -> Output {
    monitor_once_with(receiver, "")
}

/// The same with `extra` lines in the instance.
fn monitor_once_with(receiver: &Receiver, extra: &str) -> Output {
    let sandbox = Sandbox::new();
    sandbox.write_alerts(json!([record(
        "fires",
        "price_above",
        "EUCLIMATE-2030",
        0.39
    )]));
    write_hook(&sandbox, extra);
    let server = TestServer::start(Scenario::new(fixtures::legacy_markets()));
    sandbox
        .kalshi_at(&server.base_url())
        .env("HOOK_URL", receiver.url(HOOK_PATH))
        .args(["alerts", "monitor", "--once"])
        .output()
        .unwrap()
}

#[test]
fn monitor_retries_a_server_error_and_delivers_exactly_once() {
    let receiver = Receiver::start([Reply::status(500).body("try again")]);

    let output = monitor_once(&receiver);

    let shown = all_output(&output);
    assert!(output.status.success(), "{shown}");
    let got = receiver.requests();
    assert_eq!(got.len(), 2, "one failure, one delivery:\n{shown}");
    assert_eq!(got[0].body, got[1].body);
    let key = got[0].header("idempotency-key").unwrap();
    assert_eq!(got[1].header("idempotency-key"), Some(key));
    assert_eq!(got[1].json()["id"], key);
    assert_eq!(got[1].json()["condition_id"], "fires");

    let stderr = stderr_of(&output);
    assert_eq!(lines_with(&stderr, "alert delivered").len(), 1, "{stderr}");
    assert!(
        lines_with(&stderr, "alert not delivered").is_empty(),
        "{stderr}"
    );
    assert!(!shown.contains(SECRET), "{shown}");
}

#[test]
fn monitor_gives_up_on_a_client_error_after_one_request() {
    let receiver = Receiver::start([Reply::status(400).body("invalid_payload")]);

    let output = monitor_once(&receiver);

    let shown = all_output(&output);
    assert_eq!(receiver.requests().len(), 1, "{shown}");
    let stderr = stderr_of(&output);
    let failures = lines_with(&stderr, "alert not delivered");
    assert_eq!(failures.len(), 1, "{stderr}");
    assert!(failures[0].contains("hook"), "{}", failures[0]);
    assert!(failures[0].contains("permanent"), "{}", failures[0]);
    assert!(
        failures[0].contains("webhook generic: HTTP 400 Bad Request: invalid_payload"),
        "{}",
        failures[0]
    );
    assert!(
        lines_with(&stderr, "alert delivered").is_empty(),
        "{stderr}"
    );
    assert!(!shown.contains(SECRET), "{shown}");
}

#[test]
fn check_refuses_bad_settings_naming_file_instance_and_key() {
    let good_url = "http://127.0.0.1:9/hooks/SECRET-1";
    let cases: [(&str, Option<&str>, &str, &str); 6] = [
        (
            "",
            Some("http://[::1/hooks/SECRET-2"),
            "url",
            "expected an absolute http:// or https:// URL",
        ),
        (
            "",
            Some("ftp://example.test/SECRET-3"),
            "url",
            "expected a non-empty URL, got ****",
        ),
        ("", None, "url", "environment variable HOOK_URL is not set"),
        (
            "format = \"teams\"",
            Some(good_url),
            "format",
            "expected one of generic, slack, discord, ntfy, got \"teams\"",
        ),
        (
            "headers = { \"X Team\" = \"ops\" }",
            Some(good_url),
            "headers",
            "\"X Team\" is not an HTTP header name",
        ),
        (
            "ntfy_priority = \"loud\"",
            Some(good_url),
            "ntfy_priority",
            "expected one of min, low, default, high, urgent",
        ),
    ];
    for (extra, url, key, problem) in cases {
        let sandbox = Sandbox::new();
        let path = write_hook(&sandbox, extra);
        let mut command = sandbox.kalshi();
        if let Some(url) = url {
            command.env("HOOK_URL", url);
        }
        let output = command.args(["notifiers", "check"]).output().unwrap();

        assert_eq!(output.status.code(), Some(1), "{}", all_output(&output));
        let stderr = stderr_of(&output);
        let expected = format!(
            "notifiers file {}: notifier \"hook\": key {key}: ",
            path.display()
        );
        assert!(stderr.contains(&expected), "{expected}\nnot in\n{stderr}");
        assert!(stderr.contains(problem), "{problem}\nnot in\n{stderr}");
        assert!(!all_output(&output).contains(SECRET), "{stderr}");
    }
}

#[test]
fn a_url_written_in_the_file_is_refused_unless_plain_secrets_are_allowed() {
    let sandbox = Sandbox::new();
    let receiver = Receiver::start([]);
    let url = receiver.url(HOOK_PATH);
    let path = sandbox.data_dir().join("notifiers.toml");
    std::fs::create_dir_all(sandbox.data_dir()).unwrap();
    let instance = format!("[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{url}\"\n");

    std::fs::write(&path, &instance).unwrap();
    let output = sandbox
        .kalshi()
        .args(["notifiers", "check"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output).contains("notifier \"hook\": key url: is secret"),
        "{}",
        stderr_of(&output)
    );
    assert!(!all_output(&output).contains(SECRET));

    std::fs::write(&path, format!("allow_plaintext_secrets = true\n{instance}")).unwrap();
    let output = sandbox
        .kalshi()
        .args(["notifiers", "test", "hook"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", all_output(&output));
    assert_eq!(receiver.requests().len(), 1);
    let output = sandbox
        .kalshi()
        .args(["notifiers", "list"])
        .output()
        .unwrap();
    assert!(
        !all_output(&output).contains(SECRET),
        "{}",
        all_output(&output)
    );
}

/// What `tls_verify = false` makes every command say about `hook`.
const UNCHECKED: &str = "TLS certificates are not checked (tls_verify = false)";

#[test]
fn a_self_signed_receiver_is_refused_by_default_for_good_and_gets_nothing() {
    let certificate = SelfSigned::generate();
    let receiver = Receiver::start_tls(&certificate, []);
    let sandbox = Sandbox::new();
    write_hook(&sandbox, "");

    let tested = kalshi(
        &sandbox,
        &receiver.url(HOOK_PATH),
        &["notifiers", "test", "hook"],
    );

    assert_eq!(tested.status.code(), Some(1), "{}", all_output(&tested));
    let stderr = stderr_of(&tested);
    assert!(
        stderr.contains(
            "sending a sample alert through hook (webhook) failed: webhook generic: TLS failed: \
             invalid peer certificate: UnknownIssuer (the server's certificate is not signed by \
             an authority this program trusts; for a self-signed server or a private CA, give \
             that certificate as ca_file) (permanent: "
        ),
        "{stderr}"
    );
    assert!(!all_output(&tested).contains(SECRET), "{stderr}");
    assert!(receiver.connections() >= 1, "the handshake was tried");
    assert!(receiver.requests().is_empty());

    // A monitor gives up at once: no retry can pass the same certificate.
    let monitored = monitor_once(&receiver);
    let stderr = stderr_of(&monitored);
    let failures = lines_with(&stderr, "alert not delivered");
    assert_eq!(failures.len(), 1, "{stderr}");
    assert!(failures[0].contains("permanent"), "{}", failures[0]);
    assert!(
        failures[0].contains("TLS failed: invalid peer certificate"),
        "{}",
        failures[0]
    );
    assert_eq!(receiver.connections(), 2, "one attempt each:\n{stderr}");
    assert!(receiver.requests().is_empty());
}

#[test]
fn ca_file_trusts_the_receivers_own_certificate_without_warnings() {
    let certificate = SelfSigned::generate();
    let receiver = Receiver::start_tls(&certificate, []);
    let sandbox = Sandbox::new();
    write_hook(
        &sandbox,
        &format!("ca_file = \"{}\"", certificate.cert_path().display()),
    );
    let url = receiver.url(HOOK_PATH);

    let tested = kalshi(&sandbox, &url, &["notifiers", "test", "hook"]);
    let checked = kalshi(&sandbox, &url, &["notifiers", "check"]);

    assert!(tested.status.success(), "{}", all_output(&tested));
    assert_eq!(receiver.requests().len(), 1);
    assert!(checked.status.success(), "{}", all_output(&checked));
    for output in [&tested, &checked] {
        assert!(
            !stdout_of(output).contains("warning:"),
            "{}",
            all_output(output)
        );
        assert!(
            !all_output(output).contains("not checked"),
            "{}",
            all_output(output)
        );
    }
}

#[test]
fn tls_verify_false_delivers_to_any_certificate_and_every_command_warns_naming_hook() {
    let certificate = SelfSigned::generate_marked_as_ca();
    let receiver = Receiver::start_tls(&certificate, []);
    let sandbox = Sandbox::new();
    write_hook(&sandbox, "tls_verify = false");
    let url = receiver.url(HOOK_PATH);

    let checked = kalshi(&sandbox, &url, &["notifiers", "check"]);
    assert!(checked.status.success(), "{}", all_output(&checked));
    let report = stdout_of(&checked);
    assert!(
        report.contains(&format!(
            "ok      hook (webhook, default)\n        warning: {UNCHECKED}, so any server"
        )),
        "{report}"
    );

    let listed = kalshi(&sandbox, &url, &["notifiers", "list"]);
    let listing = stdout_of(&listed);
    assert!(listing.contains("      tls_verify = false\n"), "{listing}");
    assert!(
        listing.contains(&format!("      warning: {UNCHECKED}")),
        "{listing}"
    );
    let listed = kalshi(&sandbox, &url, &["notifiers", "list", "--json"]);
    let listing: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let warnings = &listing["instances"][0]["warnings"];
    assert!(
        warnings[0].as_str().unwrap().starts_with(UNCHECKED),
        "{warnings}"
    );

    let tested = kalshi(&sandbox, &url, &["notifiers", "test", "hook"]);
    assert!(tested.status.success(), "{}", all_output(&tested));
    assert_eq!(receiver.requests().len(), 1);
    let stderr = stderr_of(&tested);
    let logged = lines_with(&stderr, UNCHECKED);
    assert_eq!(logged.len(), 1, "{stderr}");
    assert!(logged[0].contains(" WARN "), "{}", logged[0]);
    assert!(logged[0].contains("notifier=hook"), "{}", logged[0]);

    let monitored = monitor_once_with(&receiver, "tls_verify = false");
    let stderr = stderr_of(&monitored);
    assert!(monitored.status.success(), "{stderr}");
    assert_eq!(lines_with(&stderr, UNCHECKED).len(), 1, "{stderr}");
    assert_eq!(lines_with(&stderr, "alert delivered").len(), 1, "{stderr}");
    assert_eq!(receiver.requests().len(), 2);

    let shown: String = [&checked, &listed, &tested, &monitored]
        .iter()
        .map(|o| all_output(o))
        .collect();
    assert!(!shown.contains(SECRET), "{shown}");
}

#[test]
fn check_refuses_tls_settings_that_cannot_apply_naming_the_key() {
    let certificate = SelfSigned::generate();
    let cases = [
        (
            format!("ca_file = \"{}\"", certificate.cert_path().display()),
            "http://127.0.0.1:9/hooks/SECRET-1",
            "ca_file",
            "applies only to an https:// url, and the url is http://",
        ),
        (
            "tls_verify = false".to_string(),
            "http://127.0.0.1:9/hooks/SECRET-1",
            "tls_verify",
            "applies only to an https:// url",
        ),
        (
            format!(
                "tls_verify = false\nca_file = \"{}\"",
                certificate.cert_path().display()
            ),
            "https://127.0.0.1:9/hooks/SECRET-1",
            "tls_verify",
            "false contradicts ca_file",
        ),
        (
            "ca_file = \"missing.pem\"".to_string(),
            "https://127.0.0.1:9/hooks/SECRET-1",
            "ca_file",
            "cannot read ",
        ),
    ];
    for (extra, url, key, problem) in cases {
        let sandbox = Sandbox::new();
        let path = write_hook(&sandbox, &extra);

        let output = kalshi(&sandbox, url, &["notifiers", "check"]);

        assert_eq!(output.status.code(), Some(1), "{}", all_output(&output));
        let stderr = stderr_of(&output);
        let expected = format!(
            "notifiers file {}: notifier \"hook\": key {key}: {problem}",
            path.display()
        );
        assert!(stderr.contains(&expected), "{expected}\nnot in\n{stderr}");
        assert!(!all_output(&output).contains(SECRET), "{stderr}");
    }
}
