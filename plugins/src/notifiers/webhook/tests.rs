//! The `webhook` notifier against a recording receiver on loopback: what
//! each format sends, how each answer is classified, and which settings
//! are refused at build.

use std::time::Duration;

use kalshi_alerts_core::notifier::find_notifier;
use kalshi_alerts_core::{Condition, FailureKind, Market};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::receiver::{Receiver, Reply, SelfSigned};
use super::*;

/// A path shaped like a Slack webhook's; its last part is the token.
const TOKEN: &str = "xoxTOKENb7Qz9";
const HOOK_PATH: &str = "/services/T0001/B0002/xoxTOKENb7Qz9";

fn alert() -> FiredAlert {
    let condition: Condition = serde_json::from_value(json!({
        "id": "cond-1", "condition_type": "price_above", "ticker": "KXBTC-25DEC31-T100000",
        "threshold": 0.6, "label": "BTC over 60", "created_at": ""
    }))
    .unwrap();
    let market = Market {
        ticker: "KXBTC-25DEC31-T100000".into(),
        title: "Bitcoin above $100k?".into(),
        status: "active".into(),
        event_ticker: String::new(),
        yes_bid: Some(Decimal::new(64, 2)),
        yes_ask: Some(Decimal::new(67, 2)),
        volume: Some(Decimal::from(1234)),
    };
    FiredAlert::new(
        &condition,
        &market,
        Decimal::new(655, 3),
        chrono::Utc::now(),
    )
}

fn instantiate(settings: Value) -> Result<Box<dyn Notifier>, SettingsError> {
    let plugin = find_notifier(NAME).expect("webhook is registered");
    plugin.instantiate(settings.as_object().unwrap())
}

fn notifier(settings: Value) -> Box<dyn Notifier> {
    instantiate(settings).expect("settings are valid")
}

fn refusal(settings: Value) -> SettingsError {
    match instantiate(settings) {
        Ok(_) => panic!("settings were accepted"),
        Err(e) => e,
    }
}

/// One notify against a receiver answering `reply`.
async fn answer(reply: Reply) -> NotifyError {
    let receiver = Receiver::start([reply]);
    let hook = notifier(json!({ "url": receiver.url(HOOK_PATH), "format": "slack" }));
    hook.notify(&alert()).await.unwrap_err()
}

#[test]
fn describes_its_settings_with_url_and_token_secret() {
    let plugin = find_notifier(NAME).unwrap();
    let names: Vec<_> = plugin.settings().iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "url",
            "format",
            "bearer_token",
            "headers",
            "ca_file",
            "tls_verify",
            "ntfy_priority",
            "ntfy_tags"
        ]
    );
    let spec = |name: &str| plugin.settings().iter().find(|s| s.name == name).unwrap();
    assert!(spec("url").required && spec("url").secret);
    assert!(spec("bearer_token").secret && !spec("bearer_token").required);
    let plain = [
        "format",
        "headers",
        "ca_file",
        "tls_verify",
        "ntfy_priority",
        "ntfy_tags",
    ];
    assert!(plain.iter().all(|n| !spec(n).secret && !spec(n).required));
    assert_eq!(spec("format").default, Some("generic"));
    assert_eq!(spec("tls_verify").default, Some("true"));
    assert_eq!(spec("ntfy_priority").default, Some("high"));
}

#[tokio::test]
async fn generic_posts_the_record_with_content_type_and_idempotency_key() {
    let receiver = Receiver::start([]);
    let hook = notifier(json!({ "url": receiver.url("/alerts?team=ops") }));
    let alert = alert();

    hook.notify(&alert).await.unwrap();

    let got = receiver.requests();
    assert_eq!(got.len(), 1);
    let request = &got[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/alerts?team=ops");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("idempotency-key"), Some(alert.id.as_str()));
    assert!(request
        .header("user-agent")
        .is_some_and(|ua| ua.starts_with("kalshi-alerts/")));
    assert_eq!(request.body, serde_json::to_vec(&alert).unwrap());
    assert_eq!(request.json()["id"], alert.id.as_str());
}

#[tokio::test]
async fn slack_posts_a_text_message() {
    let receiver = Receiver::start([]);
    let hook = notifier(json!({ "url": receiver.url(HOOK_PATH), "format": "slack" }));
    let alert = alert();

    hook.notify(&alert).await.unwrap();

    let request = &receiver.requests()[0];
    assert_eq!(request.target, HOOK_PATH);
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("idempotency-key"), Some(alert.id.as_str()));
    let text = request.json()["text"].as_str().unwrap().to_string();
    assert!(
        text.contains("*KXBTC-25DEC31-T100000 price &gt; 0.6 (now 0.655)*"),
        "{text}"
    );
    assert!(text.contains("Bitcoin above $100k?"), "{text}");
    assert!(text.contains("value 0.655 vs threshold 0.60"), "{text}");
    assert!(text.contains(" UTC"), "{text}");
}

#[tokio::test]
async fn discord_posts_content_and_an_embed() {
    let receiver = Receiver::start([Reply::status(204)]);
    let hook = notifier(json!({
        "url": receiver.url("/api/webhooks/123/abcTOKEN"), "format": "discord"
    }));
    let alert = alert();

    hook.notify(&alert).await.unwrap();

    let request = &receiver.requests()[0];
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("idempotency-key"), Some(alert.id.as_str()));
    let body = request.json();
    assert_eq!(
        body["content"],
        "**KXBTC-25DEC31-T100000 price > 0.6 (now 0.655)**"
    );
    assert_eq!(body["embeds"][0]["title"], "Bitcoin above $100k?");
    assert_eq!(body["embeds"][0]["fields"][2]["value"], "0.655");
    assert!(body["embeds"][0]["timestamp"].is_string());
}

#[tokio::test]
async fn ntfy_posts_plain_text_with_title_priority_and_tags() {
    let receiver = Receiver::start([]);
    let hook = notifier(json!({
        "url": receiver.url("/kalshi-alerts-x7f3"), "format": "ntfy",
        "ntfy_priority": "urgent", "ntfy_tags": ["warning", "moneybag"]
    }));
    let alert = alert();

    hook.notify(&alert).await.unwrap();

    let request = &receiver.requests()[0];
    assert_eq!(request.target, "/kalshi-alerts-x7f3");
    assert_eq!(
        request.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        request.header("title"),
        Some("KXBTC-25DEC31-T100000 price > 0.6 (now 0.655)")
    );
    assert_eq!(request.header("priority"), Some("urgent"));
    assert_eq!(request.header("tags"), Some("warning,moneybag,price_above"));
    assert_eq!(request.header("idempotency-key"), Some(alert.id.as_str()));
    let text = request.text();
    assert!(text.starts_with("Bitcoin above $100k?\n"), "{text}");
    assert!(text.contains("value 0.655 vs threshold 0.60"), "{text}");
}

#[tokio::test]
async fn ntfy_priority_defaults_to_high() {
    let receiver = Receiver::start([]);
    let hook = notifier(json!({ "url": receiver.url("/topic"), "format": "ntfy" }));
    hook.notify(&alert()).await.unwrap();
    let request = &receiver.requests()[0];
    assert_eq!(request.header("priority"), Some("high"));
    assert_eq!(request.header("tags"), Some("price_above"));
}

#[tokio::test]
async fn custom_headers_and_the_bearer_token_are_sent_and_override_the_formats_own() {
    let receiver = Receiver::start([]);
    let hook = notifier(json!({
        "url": receiver.url("/topic"), "format": "ntfy",
        "bearer_token": "tk_secret",
        "headers": { "X-Team": "ops", "Title": "Kalshi" }
    }));
    hook.notify(&alert()).await.unwrap();
    let request = &receiver.requests()[0];
    assert_eq!(request.header("authorization"), Some("Bearer tk_secret"));
    assert_eq!(request.header("x-team"), Some("ops"));
    assert_eq!(request.header("title"), Some("Kalshi"));
    let titles = request
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("title"));
    assert_eq!(titles.count(), 1);
}

#[tokio::test]
async fn a_retry_carries_the_same_idempotency_key() {
    let receiver = Receiver::start([Reply::status(500)]);
    let hook = notifier(json!({ "url": receiver.url("/alerts") }));
    let alert = alert();

    let first = hook.notify(&alert).await.unwrap_err();
    assert_eq!(first.kind, FailureKind::Retryable);
    hook.notify(&alert).await.unwrap();

    let keys: Vec<_> = receiver
        .requests()
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_string())
        .collect();
    assert_eq!(keys, [alert.id.clone(), alert.id]);
}

#[tokio::test]
async fn server_errors_rate_limits_and_request_timeouts_are_retryable() {
    for status in [500, 502, 503, 504, 429, 408] {
        let err = answer(Reply::status(status)).await;
        assert_eq!(
            err.kind,
            FailureKind::Retryable,
            "{status}: {}",
            err.message
        );
        assert!(
            err.message
                .starts_with(&format!("webhook slack: HTTP {status}")),
            "{}",
            err.message
        );
    }
}

#[tokio::test]
async fn a_rate_limit_says_when_to_come_back() {
    let err = answer(Reply::status(429).header("Retry-After", "30")).await;
    assert_eq!(err.kind, FailureKind::Retryable);
    assert!(
        err.message
            .contains("HTTP 429 Too Many Requests (retry after 30)"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn other_client_errors_are_permanent_and_quote_the_body() {
    for (status, body) in [
        (400, "invalid_payload"),
        (403, "invalid_token"),
        (404, "no_service"),
        (410, "channel_is_archived"),
        (401, ""),
    ] {
        let err = answer(Reply::status(status).body(body)).await;
        assert_eq!(
            err.kind,
            FailureKind::Permanent,
            "{status}: {}",
            err.message
        );
        let reason = StatusCode::from_u16(status).unwrap();
        let expected = if body.is_empty() {
            format!("webhook slack: HTTP {reason}")
        } else {
            format!("webhook slack: HTTP {reason}: {body}")
        };
        assert_eq!(err.message, expected);
    }
}

#[tokio::test]
async fn a_long_error_body_is_quoted_short_and_on_one_line() {
    let body = format!("<html>\n<body>{}</body>\n</html>", "x".repeat(5000));
    let err = answer(Reply::status(400).body(&body)).await;
    let quoted = err
        .message
        .split_once(": HTTP 400 Bad Request: ")
        .unwrap()
        .1;
    assert!(quoted.starts_with("<html> <body>xxx"), "{quoted}");
    assert!(quoted.ends_with('…'), "{quoted}");
    assert_eq!(quoted.chars().count(), BODY_QUOTE_MAX + 1);
}

#[tokio::test]
async fn an_echoed_url_path_is_masked_in_the_message() {
    let echo = format!("Cannot POST {HOOK_PATH} (token {TOKEN} unknown)");
    let err = answer(Reply::status(404).body(&echo)).await;
    assert_eq!(err.kind, FailureKind::Permanent);
    assert!(!err.message.contains(TOKEN), "{}", err.message);
    assert!(!err.message.contains("B0002"), "{}", err.message);
    assert!(err.message.contains("Cannot POST ****"), "{}", err.message);
}

#[tokio::test]
async fn a_token_at_the_cut_of_a_long_body_is_masked_whole() {
    // Unmasked, the cut at BODY_QUOTE_MAX would fall inside the token.
    let echo = format!(
        "{}{HOOK_PATH}{}",
        "y".repeat(BODY_QUOTE_MAX - 30),
        "z".repeat(50)
    );
    let err = answer(Reply::status(404).body(&echo)).await;
    assert!(!err.message.contains("xoxTOK"), "{}", err.message);
    assert!(err.message.contains("y****zzz"), "{}", err.message);
    assert!(err.message.ends_with('…'), "{}", err.message);
}

#[tokio::test]
async fn redirects_are_not_followed_and_are_permanent() {
    let receiver = Receiver::start([Reply::status(301).header("Location", "/elsewhere")]);
    let hook = notifier(json!({ "url": receiver.url("/alerts") }));
    let err = hook.notify(&alert()).await.unwrap_err();
    assert_eq!(err.kind, FailureKind::Permanent);
    assert!(
        err.message.contains("redirects are not followed"),
        "{}",
        err.message
    );
    assert_eq!(receiver.wait_for(2, Duration::from_millis(200)).len(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_retryable_and_does_not_name_the_url() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}{HOOK_PATH}");
    let hook = notifier(json!({ "url": url, "format": "discord" }));
    let err = hook.notify(&alert()).await.unwrap_err();
    assert_eq!(err.kind, FailureKind::Retryable);
    assert!(
        err.message.starts_with("webhook discord: cannot connect: "),
        "{}",
        err.message
    );
    assert!(!err.message.contains(&port.to_string()), "{}", err.message);
    assert!(!err.message.contains(TOKEN), "{}", err.message);
}

#[test]
fn a_url_that_does_not_parse_is_refused_without_showing_it() {
    let err = refusal(json!({ "url": "http://[::1/hooks/secret-path" }));
    assert_eq!(err.key, "url");
    assert!(
        err.problem
            .contains("expected an absolute http:// or https:// URL"),
        "{err}"
    );
    assert!(!err.to_string().contains("secret-path"), "{err}");

    let err = refusal(json!({ "url": "ftp://example.test/secret-path" }));
    assert_eq!(err.key, "url");
    assert!(!err.to_string().contains("secret-path"), "{err}");
}

#[test]
fn missing_url_and_unknown_format_are_refused_by_name() {
    let err = refusal(json!({ "format": "slack" }));
    assert_eq!(err.key, "url");
    assert!(err.problem.starts_with("missing"), "{err}");

    let err = refusal(json!({ "url": "http://127.0.0.1:9/x", "format": "teams" }));
    assert_eq!(err.key, "format");
    assert!(
        err.problem.contains("one of generic, slack, discord, ntfy"),
        "{err}"
    );
}

#[test]
fn bad_header_names_and_values_are_refused_naming_the_header_only() {
    let url = "http://127.0.0.1:9/x";
    let err = refusal(json!({ "url": url, "headers": { "X Bad": "v" } }));
    assert_eq!(err.key, "headers");
    assert!(
        err.problem.contains("\"X Bad\" is not an HTTP header name"),
        "{err}"
    );

    let err = refusal(json!({ "url": url, "headers": { "X-Token": "abc\r\nInjected: 1" } }));
    assert_eq!(err.key, "headers");
    assert!(err.problem.contains("header X-Token"), "{err}");
    assert!(!err.problem.contains("abc"), "{err}");

    let err = refusal(json!({ "url": url, "headers": { "Idempotency-Key": "mine" } }));
    assert!(err.problem.contains("set by the notifier itself"), "{err}");
    let err = refusal(json!({ "url": url, "headers": { "Content-Length": "1" } }));
    assert!(err.problem.contains("set by the notifier itself"), "{err}");
    let err = refusal(json!({ "url": url, "headers": { "authorization": "Bearer tk_1" } }));
    assert!(err.problem.contains("bearer_token"), "{err}");
    assert!(!err.problem.contains("tk_1"), "{err}");

    let err = refusal(json!({ "url": url, "bearer_token": "tk_2\nX: y" }));
    assert_eq!(err.key, "bearer_token");
    assert!(!err.problem.contains("tk_2"), "{err}");
}

#[test]
fn ntfy_tags_must_be_short_codes() {
    let url = "http://127.0.0.1:9/topic";
    for bad in [json!("a,b"), json!(["ok", "two words"]), json!(["📈"])] {
        let err = refusal(json!({ "url": url, "format": "ntfy", "ntfy_tags": bad }));
        assert_eq!(err.key, "ntfy_tags", "{err}");
    }
    assert!(instantiate(json!({ "url": url, "format": "ntfy", "ntfy_tags": "warning" })).is_ok());
}

#[test]
fn url_parts_cover_the_path_segments_and_query_values() {
    let url = Url::parse("https://hooks.example.test/services/T1/tok3n%2D7?key=q-secret").unwrap();
    let parts = url_parts(&url);
    for part in [
        "/services/T1/tok3n%2D7",
        "services",
        "tok3n%2D7",
        "tok3n-7",
        "key=q-secret",
        "q-secret",
    ] {
        assert!(parts.iter().any(|p| p == part), "{part} in {parts:?}");
    }
    assert!(
        !parts.iter().any(|p| p == "T1"),
        "short parts stay: {parts:?}"
    );
}

#[test]
fn a_login_in_the_url_is_refused_without_showing_it() {
    let err = instantiate(json!({ "url": "https://user:pa55word@hooks.example.test/x" }))
        .err()
        .expect("a login in the url is refused");
    assert_eq!(err.key, "url");
    assert!(err.problem.contains("bearer_token"), "{}", err.problem);
    assert!(!err.problem.contains("pa55word"), "{}", err.problem);
}

#[tokio::test]
async fn a_self_signed_receiver_is_refused_for_good_with_a_hint_and_gets_nothing() {
    let certificate = SelfSigned::generate();
    let receiver = Receiver::start_tls(&certificate, []);
    let hook = notifier(json!({ "url": receiver.url(HOOK_PATH) }));

    let err = hook.notify(&alert()).await.unwrap_err();

    assert_eq!(err.kind, FailureKind::Permanent, "{}", err.message);
    assert!(
        err.message
            .starts_with("webhook generic: TLS failed: invalid peer certificate: UnknownIssuer"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("give that certificate as ca_file"),
        "{}",
        err.message
    );
    assert!(!err.message.contains(TOKEN), "{}", err.message);
    assert!(hook.warnings().is_empty());
    assert!(receiver.connections() >= 1);
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn ca_file_trusts_a_self_signed_receiver_and_checks_it() {
    let certificate = SelfSigned::generate();
    let receiver = Receiver::start_tls(&certificate, []);
    let hook = notifier(json!({
        "url": receiver.url(HOOK_PATH),
        "ca_file": certificate.cert_path().to_str().unwrap(),
    }));

    hook.notify(&alert()).await.unwrap();

    assert_eq!(receiver.requests().len(), 1);
    assert!(hook.warnings().is_empty());
}

#[tokio::test]
async fn tls_verify_false_accepts_any_certificate_and_says_so() {
    let certificate = SelfSigned::generate_marked_as_ca();
    let receiver = Receiver::start_tls(&certificate, []);
    let hook = notifier(json!({ "url": receiver.url(HOOK_PATH), "tls_verify": false }));

    hook.notify(&alert()).await.unwrap();

    assert_eq!(receiver.requests().len(), 1);
    assert_eq!(hook.warnings(), [crate::notifiers::tls::UNCHECKED]);
}

#[tokio::test]
async fn a_certificate_marked_as_a_ca_is_refused_with_the_openssl_hint() {
    let certificate = SelfSigned::generate_marked_as_ca();
    let receiver = Receiver::start_tls(&certificate, []);
    let hook = notifier(json!({
        "url": receiver.url(HOOK_PATH),
        "ca_file": certificate.cert_path().to_str().unwrap(),
    }));

    let err = hook.notify(&alert()).await.unwrap_err();

    assert_eq!(err.kind, FailureKind::Permanent, "{}", err.message);
    assert!(
        err.message.contains("basicConstraints CA:FALSE"),
        "{}",
        err.message
    );
    assert!(receiver.requests().is_empty());
}

#[test]
fn tls_settings_are_refused_with_an_http_url_or_together() {
    let http = "http://127.0.0.1:9/x";
    let err = refusal(json!({ "url": http, "tls_verify": false }));
    assert_eq!(err.key, "tls_verify");
    assert!(
        err.problem.contains("applies only to an https:// url"),
        "{err}"
    );
    let err = refusal(json!({ "url": http, "ca_file": "/etc/hostname" }));
    assert_eq!(err.key, "ca_file");
    assert!(instantiate(json!({ "url": http, "tls_verify": true })).is_ok());

    let https = "https://127.0.0.1:9/x";
    let err = refusal(json!({ "url": https, "tls_verify": false, "ca_file": "/etc/hostname" }));
    assert_eq!(err.key, "tls_verify");
    let err = refusal(json!({ "url": https, "ca_file": "/nonexistent/ca.pem" }));
    assert_eq!(err.key, "ca_file");
    assert!(
        err.problem.starts_with("cannot read /nonexistent/ca.pem"),
        "{err}"
    );
}
