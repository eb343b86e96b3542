//! The `webhook` notifier: POSTs each alert to a URL, as the fired-alert
//! JSON record or as a Slack, Discord or ntfy message.
//!
//! The URL is a secret (Slack and Discord put a token in its path; an ntfy
//! topic is its own password), so no message this notifier writes names
//! it, and anything a receiver echoes back has the URL's parts masked.
//! An https receiver's certificate is checked as `super::tls` describes.

mod payload;
#[cfg(test)]
mod receiver;
#[cfg(test)]
mod tests;

use std::time::Duration;

use kalshi_alerts_core::notifier::SettingsError;
use kalshi_alerts_core::secret::mask;
use kalshi_alerts_core::{
    async_trait, FiredAlert, Notifier, NotifierPlugin, NotifyError, SettingKind, SettingSpec,
    Settings,
};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde_json::Value;

use super::tls::{self, Trust};
use payload::{Format, NtfyOptions};

pub const NAME: &str = "webhook";

/// ntfy's priority names, lowest first.
const NTFY_PRIORITIES: &[&str] = &["min", "low", "default", "high", "urgent"];

/// Sent with every request so that a receiver can drop the copy a retry
/// delivers after a response was lost.
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Headers a user may not set in `headers`: the client frames the request
/// itself, and the idempotency key must stay the alert's id.
const RESERVED_HEADERS: &[&str] = &[
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "idempotency-key",
];

/// The whole attempt is bounded by the instance timeout in the core; this
/// only makes an unreachable host fail as "cannot connect" rather than as
/// a bare timeout when the instance timeout is the longer one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How much of an error response's body is read, and how much is quoted.
const BODY_READ_MAX: usize = 2048;
const BODY_QUOTE_MAX: usize = 200;

/// URL parts at least this long are masked in what a receiver echoes;
/// shorter ones (`/api`) would mask ordinary words too.
const MASKED_PART_MIN: usize = 4;

const SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        name: "url",
        kind: SettingKind::Url,
        default: None,
        required: true,
        secret: true,
        help: "where to POST alerts: your receiver, a Slack or Discord webhook URL, or an ntfy \
               topic URL; it holds a token, so give it as { env = \"VAR\" }",
    },
    SettingSpec {
        name: "format",
        kind: SettingKind::Choice(Format::NAMES),
        default: Some("generic"),
        required: false,
        secret: false,
        help: "the payload: generic (the fired-alert JSON record), slack, discord or ntfy",
    },
    SettingSpec {
        name: "bearer_token",
        kind: SettingKind::String,
        default: None,
        required: false,
        secret: true,
        help: "sent as Authorization: Bearer TOKEN, for a receiver or an ntfy topic that needs \
               a login; give it as { env = \"VAR\" }",
    },
    SettingSpec {
        name: "headers",
        kind: SettingKind::Table,
        default: None,
        required: false,
        secret: false,
        help: "extra HTTP headers for every request, e.g. { X-Team = \"ops\" }; not for \
               secrets, which belong in url or bearer_token",
    },
    tls::CA_FILE,
    tls::TLS_VERIFY,
    SettingSpec {
        name: "ntfy_priority",
        kind: SettingKind::Choice(NTFY_PRIORITIES),
        default: Some("high"),
        required: false,
        secret: false,
        help: "the notification's priority (format ntfy only)",
    },
    SettingSpec {
        name: "ntfy_tags",
        kind: SettingKind::StringList,
        default: None,
        required: false,
        secret: false,
        help: "tags or emoji short codes shown with the notification, e.g. warning; the \
               condition type is always added (format ntfy only)",
    },
];

struct WebhookNotifier {
    client: reqwest::Client,
    url: Url,
    format: Format,
    /// The user's headers and the bearer token, values marked sensitive so
    /// they never show up in a debug print of a request.
    headers: HeaderMap,
    ntfy: NtfyOptions,
    /// The URL and its longer parts, masked in text quoted from responses
    /// and errors: a 404 page often echoes the path, and the path is the
    /// token.
    url_parts: Vec<String>,
    /// Set when `tls_verify = false`.
    warnings: Vec<String>,
}

#[async_trait]
impl Notifier for WebhookNotifier {
    async fn notify(&self, alert: &FiredAlert) -> Result<(), NotifyError> {
        let content = payload::render(self.format, alert, &self.ntfy);
        let headers = self.request_headers(alert, &content)?;
        let sent = self
            .client
            .post(self.url.clone())
            .headers(headers)
            .body(content.body)
            .send()
            .await;
        let response = sent.map_err(|e| self.transport_failure(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = read_start(response).await;
        Err(self.refusal(status, retry_after.as_deref(), &body))
    }

    // No `check`: a webhook cannot be asked whether it would accept a
    // message without sending one, and build has already parsed the URL.

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
}

impl WebhookNotifier {
    /// The format's headers, then the user's, which win (a fixed ntfy
    /// `Title`, a JSON `Content-Type` with a charset), then the alert's id
    /// as the idempotency key.
    fn request_headers(
        &self,
        alert: &FiredAlert,
        content: &payload::Payload,
    ) -> Result<HeaderMap, NotifyError> {
        let unsendable =
            |what: &str| NotifyError::permanent(format!("{}: {what} cannot be sent", self.what()));
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content.content_type));
        for (name, value) in &content.headers {
            let value =
                HeaderValue::from_str(value).map_err(|_| unsendable(&format!("header {name}")))?;
            headers.insert(*name, value);
        }
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        let key = HeaderValue::from_str(&alert.id).map_err(|_| unsendable("the alert id"))?;
        headers.insert(IDEMPOTENCY_KEY, key);
        Ok(headers)
    }

    /// How messages name this instance's target without naming the URL.
    fn what(&self) -> String {
        format!("webhook {}", self.format.name())
    }

    /// A response other than 2xx: 408, 429 and 5xx may pass later; the rest
    /// (a bad token, a deleted channel, a malformed payload) will not.
    fn refusal(&self, status: StatusCode, retry_after: Option<&str>, body: &[u8]) -> NotifyError {
        let mut message = format!("{}: HTTP {status}", self.what());
        if let Some(wait) = retry_after {
            message.push_str(&format!(" (retry after {})", quote(wait, 40)));
        }
        // Masked before it is cut, so that a cut cannot leave half a token.
        let echoed = mask(&String::from_utf8_lossy(body), &self.url_parts);
        let snippet = quote(&echoed, BODY_QUOTE_MAX);
        if !snippet.is_empty() {
            message.push_str(": ");
            message.push_str(&snippet);
        }
        if status.is_redirection() {
            message.push_str("; redirects are not followed, set url to the final address");
        }
        let retryable = status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT;
        if !retryable {
            return NotifyError::permanent(message);
        }
        // Only the seconds form is honoured; an HTTP date is quoted above.
        match retry_after.and_then(|text| text.trim().parse::<u64>().ok()) {
            Some(seconds) => NotifyError::retryable(message)
                .with_retry_after(std::time::Duration::from_secs(seconds)),
            None => NotifyError::retryable(message),
        }
    }

    /// No response. A refused certificate or a failed TLS handshake will
    /// fail the same way until a setting or the server changes; any other
    /// transport failure (refused, reset, timed out, a name that did not
    /// resolve) may pass later. reqwest's own text names the URL, so only
    /// the root cause is quoted.
    fn transport_failure(&self, error: reqwest::Error) -> NotifyError {
        if let Some(refusal) = kalshi_alerts_core::tls::refusal(&error) {
            let text = mask(&tls::describe_refusal(refusal), &self.url_parts);
            return NotifyError::permanent(format!("{}: {text}", self.what()));
        }
        let what = if error.is_connect() {
            "cannot connect"
        } else if error.is_timeout() {
            "no response in time"
        } else if error.is_builder() {
            return NotifyError::permanent(format!("{}: request cannot be built", self.what()));
        } else {
            "request failed"
        };
        let error = error.without_url();
        let mut cause: &dyn std::error::Error = &error;
        while let Some(next) = cause.source() {
            cause = next;
        }
        let cause = quote(&mask(&cause.to_string(), &self.url_parts), BODY_QUOTE_MAX);
        NotifyError::retryable(format!("{}: {what}: {cause}", self.what()))
    }
}

/// The first bytes of a response body; a receiver that sends more has
/// said what matters by then.
async fn read_start(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < BODY_READ_MAX {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(BODY_READ_MAX);
    body
}

/// `text` on one line, at most `max` characters.
fn quote(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        return line;
    }
    let mut cut: String = line.chars().take(max).collect();
    cut.push('…');
    cut
}

fn build(settings: &Settings) -> Result<Box<dyn Notifier>, SettingsError> {
    let url = parse_url(settings.get("url"))?;
    let format = text(settings, "format")
        .and_then(Format::parse)
        .unwrap_or(Format::Generic);
    let mut headers = match settings.get("headers") {
        Some(Value::Object(table)) => custom_headers(table)?,
        _ => HeaderMap::new(),
    };
    if let Some(token) = text(settings, "bearer_token") {
        headers.insert(AUTHORIZATION, bearer(token)?);
    }
    let ntfy = NtfyOptions {
        priority: text(settings, "ntfy_priority")
            .unwrap_or("high")
            .to_string(),
        tags: ntfy_tags(settings.get("ntfy_tags"))?,
    };
    if url.scheme() == "http" {
        refuse_tls_settings_for_plain_http(settings)?;
    }
    let trust = Trust::from_settings(NAME, settings)?;
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        // A redirected POST may turn into a GET or carry the body to a host
        // the user never named; a webhook has no reason to redirect.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("kalshi-alerts/", env!("CARGO_PKG_VERSION")));
    let client = trusting(client, &trust)?
        .build()
        .map_err(|e| match &trust {
            Trust::Checked(extra) if !extra.is_empty() => {
                refused(tls::CA_FILE.name, format!("cannot be used: {e}"))
            }
            _ => refused("url", format!("the HTTP client cannot be set up: {e}")),
        })?;
    // Everything secret is masked in quoted text before it is cut, so
    // that a cut cannot leave half a token showing.
    let mut url_parts = url_parts(&url);
    if let Some(token) = text(settings, "bearer_token") {
        url_parts.push(token.trim().to_string());
    }
    Ok(Box::new(WebhookNotifier {
        client,
        url,
        format,
        headers,
        ntfy,
        url_parts,
        warnings: trust.warnings(),
    }))
}

/// `client` checking certificates as `trust` says.
fn trusting(
    mut client: reqwest::ClientBuilder,
    trust: &Trust,
) -> Result<reqwest::ClientBuilder, SettingsError> {
    match trust {
        Trust::Checked(extra) => {
            for certificate in extra {
                let certificate = reqwest::Certificate::from_der(certificate)
                    .map_err(|e| refused(tls::CA_FILE.name, format!("cannot be used: {e}")))?;
                client = client.add_root_certificate(certificate);
            }
            Ok(client)
        }
        Trust::Unchecked => Ok(client.danger_accept_invalid_certs(true)),
    }
}

/// `ca_file` and `tls_verify` say how to check an https server; with an
/// http:// URL they would do nothing, which is most likely a mistake in
/// the URL. The URL is a secret, so only its scheme is named.
fn refuse_tls_settings_for_plain_http(settings: &Settings) -> Result<(), SettingsError> {
    let given = |spec: &SettingSpec| settings.get(spec.name).is_some_and(|v| !v.is_null());
    let unchecked = settings.get(tls::TLS_VERIFY.name) == Some(&Value::Bool(false));
    let key = if given(&tls::CA_FILE) {
        tls::CA_FILE.name
    } else if unchecked {
        tls::TLS_VERIFY.name
    } else {
        return Ok(());
    };
    Err(refused(
        key,
        "applies only to an https:// url, and the url is http://; use https or remove it".into(),
    ))
}

fn refused(key: &str, problem: String) -> SettingsError {
    SettingsError {
        notifier: NAME.into(),
        key: key.into(),
        problem,
    }
}

fn text<'a>(settings: &'a Settings, key: &str) -> Option<&'a str> {
    settings.get(key).and_then(Value::as_str)
}

/// The URL, refused without quoting it: it is a secret.
fn parse_url(value: Option<&Value>) -> Result<Url, SettingsError> {
    let expected = "expected an absolute http:// or https:// URL with a host";
    let not_shown = "the value is secret and not shown";
    let text = value
        .and_then(Value::as_str)
        .ok_or_else(|| refused("url", format!("missing; {expected}")))?;
    let url = Url::parse(text.trim())
        .map_err(|e| refused("url", format!("{expected} ({e}); {not_shown}")))?;
    let has_host = url.host_str().is_some_and(|h| !h.is_empty());
    if !matches!(url.scheme(), "http" | "https") || !has_host {
        return Err(refused("url", format!("{expected}; {not_shown}")));
    }
    // A login in the URL becomes a Basic header that a server may echo
    // encoded, where no mask can recognise it; a bearer token can be masked.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused(
            "url",
            format!("must not carry a login; give it as bearer_token = {{ env = \"VAR\" }}; {not_shown}"),
        ));
    }
    Ok(url)
}

/// What to mask of `url` in quoted text: the whole, and each part long
/// enough to be a token.
fn url_parts(url: &Url) -> Vec<String> {
    let mut parts = vec![url.as_str().to_string(), url.path().to_string()];
    parts.extend(url.query().map(str::to_string));
    parts.extend(
        url.path_segments()
            .into_iter()
            .flatten()
            .map(str::to_string),
    );
    parts.extend(url.query_pairs().map(|(_, v)| v.into_owned()));
    // A server may echo the path decoded (`%2D` as `-`, `%7B` as `{`).
    let decoded: Vec<String> = parts
        .iter()
        .map(|p| kalshi_alerts_core::percent::decode(p))
        .collect();
    parts.extend(decoded);
    parts.retain(|p| p.len() >= MASKED_PART_MIN);
    parts.sort();
    parts.dedup();
    parts
}

/// The `headers` table as request headers, each name and value checked.
/// Problems name the header, never its value.
fn custom_headers(table: &serde_json::Map<String, Value>) -> Result<HeaderMap, SettingsError> {
    let mut headers = HeaderMap::new();
    for (name, value) in table {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            refused(
                "headers",
                format!("{name:?} is not an HTTP header name; expected letters, digits and -"),
            )
        })?;
        if header == AUTHORIZATION {
            return Err(refused(
                "headers",
                "header Authorization would be shown with the settings; give the token as \
                 bearer_token = { env = \"VAR\" }"
                    .into(),
            ));
        }
        if RESERVED_HEADERS.contains(&header.as_str()) {
            return Err(refused(
                "headers",
                format!("header {name} is set by the notifier itself; remove it"),
            ));
        }
        let text = value.as_str().unwrap_or_default();
        let mut value = HeaderValue::from_str(text).map_err(|_| {
            refused(
                "headers",
                format!(
                    "the value of header {name} is not a valid HTTP header value; expected \
                     printable ASCII without line breaks (the value is not shown)"
                ),
            )
        })?;
        value.set_sensitive(true);
        headers.insert(header, value);
    }
    Ok(headers)
}

/// The `Authorization` value for `token`, refused without quoting it.
fn bearer(token: &str) -> Result<HeaderValue, SettingsError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim())).map_err(|_| {
        refused(
            "bearer_token",
            "expected printable ASCII without line breaks (the value is secret and not shown)"
                .into(),
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// ntfy tags go out comma-separated in one header, so each must be
/// printable ASCII without a comma.
fn ntfy_tags(value: Option<&Value>) -> Result<Vec<String>, SettingsError> {
    let tags: Vec<String> = value
        .map(kalshi_alerts_core::notifier::string_list)
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.trim().to_string())
        .collect();
    for tag in &tags {
        if tag.is_empty() || tag.contains(',') || !tag.chars().all(|c| c.is_ascii_graphic()) {
            return Err(refused(
                "ntfy_tags",
                format!(
                    "expected tags of printable ASCII without commas or spaces, such as \
                     warning or chart_with_upwards_trend, got {tag:?}"
                ),
            ));
        }
    }
    Ok(tags)
}

kalshi_alerts_core::inventory::submit! {
    NotifierPlugin {
        name: NAME,
        description: "POSTs each alert to a URL: the JSON record, or a Slack, Discord or ntfy message",
        settings: SETTINGS,
        build,
    }
}
