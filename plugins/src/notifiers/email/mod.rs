//! The `email` notifier: sends each alert, or each cycle's alerts as one
//! digest, by SMTP.
//!
//! The connection is encrypted with STARTTLS (the default) or TLS from the
//! first byte, the server's certificate checked as `super::tls` describes;
//! plain SMTP is allowed only to a loopback host, so that neither
//! credentials nor alerts cross a network in clear. Every message
//! carries a Message-ID derived from its alerts, so that a retry is the
//! same message to a mail system that deduplicates. Each call makes one
//! SMTP session; retries and timeouts are the core's.

mod compose;
#[cfg(test)]
mod smtp_servers;

use std::net::IpAddr;

use kalshi_alerts_core::notifier::{string_list, SettingsError};
use kalshi_alerts_core::{
    async_trait, FailureKind, FiredAlert, Notifier, NotifierPlugin, NotifyError, SettingKind,
    SettingSpec, Settings,
};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;

use super::tls::{self, Trust};

pub const NAME: &str = "email";

/// The `tls` choices: STARTTLS on a plain connection, TLS from the first
/// byte, or none at all (loopback only).
const TLS_MODES: &[&str] = &["starttls", "implicit", "none"];

const SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        name: "host",
        kind: SettingKind::String,
        default: None,
        required: true,
        secret: false,
        help: "SMTP server host name or IP address, e.g. smtp.example.com",
    },
    SettingSpec {
        name: "port",
        kind: SettingKind::Integer,
        default: None,
        required: false,
        secret: false,
        help: "SMTP server port; when absent it follows tls: 587 for starttls, 465 for implicit, 25 for none",
    },
    SettingSpec {
        name: "tls",
        kind: SettingKind::Choice(TLS_MODES),
        default: Some("starttls"),
        required: false,
        secret: false,
        help: "starttls (a plain connection upgraded to TLS; refused if the server cannot), implicit (TLS from the first byte) or none (no TLS; only to 127.0.0.1, ::1 or localhost)",
    },
    SettingSpec {
        name: "username",
        kind: SettingKind::String,
        default: None,
        required: false,
        secret: false,
        help: "SMTP login; give it with password to authenticate, omit both to send without",
    },
    SettingSpec {
        name: "password",
        kind: SettingKind::String,
        default: None,
        required: false,
        secret: true,
        help: "SMTP password (or app password) for username, e.g. { env = \"SMTP_PASSWORD\" }",
    },
    SettingSpec {
        name: "from",
        kind: SettingKind::String,
        default: None,
        required: true,
        secret: false,
        help: "sender address, e.g. alerts@example.com or \"Kalshi alerts <alerts@example.com>\"",
    },
    SettingSpec {
        name: "to",
        kind: SettingKind::StringList,
        default: None,
        required: true,
        secret: false,
        help: "recipient address, or a list of them",
    },
    tls::CA_FILE,
    tls::TLS_VERIFY,
    SettingSpec {
        name: "market_url",
        kind: SettingKind::Url,
        default: Some("https://kalshi.com/markets/{ticker}"),
        required: false,
        secret: false,
        help: "link to the market in each alert; {ticker} becomes the lower-cased ticker",
    },
    SettingSpec {
        name: "digest",
        kind: SettingKind::Bool,
        default: Some("false"),
        required: false,
        secret: false,
        help: "send one message per check listing all its alerts, instead of one per alert",
    },
];

struct EmailNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// `host:port`, for messages.
    server: String,
    from: Mailbox,
    to: Vec<Mailbox>,
    market_url: String,
    digest: bool,
    /// Set when `tls_verify = false`.
    warnings: Vec<String>,
    /// The login as it crosses the wire (base64, as AUTH PLAIN and LOGIN
    /// send it): a server that echoes it in an error must not get it shown.
    login_forms: Vec<String>,
}

/// The base64 forms of a login that SMTP AUTH puts on the wire: PLAIN's
/// `\0user\0password`, and LOGIN's user and password one at a time; each
/// with and without padding.
fn login_forms(user: &str, password: &str) -> Vec<String> {
    use base64::Engine;
    let encoders = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    let mut forms = Vec::new();
    for plain in [
        format!("\0{user}\0{password}"),
        user.to_string(),
        password.to_string(),
    ] {
        for engine in &encoders {
            let form = engine.encode(&plain);
            // A very short form would hide ordinary words of the reply.
            if form.len() >= 6 && !forms.contains(&form) {
                forms.push(form);
            }
        }
    }
    // The longest first, so that no part of one is left behind.
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms
}

impl EmailNotifier {
    /// The failure, with any encoded form of the login masked.
    fn masked(&self, mut error: NotifyError) -> NotifyError {
        for form in &self.login_forms {
            error.message = error
                .message
                .replace(form.as_str(), kalshi_alerts_core::secret::MASK);
        }
        error
    }

    fn message(&self, id: String, subject: String, body: String) -> Result<Message, NotifyError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .message_id(Some(id))
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .body(body)
            // The addresses were checked at build; nothing else can fail,
            // and it would fail again.
            .map_err(|e| NotifyError::permanent(format!("cannot compose the message: {e}")))
    }

    async fn send(&self, message: Message) -> Result<(), NotifyError> {
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| self.masked(failure(&self.server, &e)))
    }
}

#[async_trait]
impl Notifier for EmailNotifier {
    async fn notify(&self, alert: &FiredAlert) -> Result<(), NotifyError> {
        let message = self.message(
            compose::message_id(alert),
            compose::subject(alert),
            compose::body(alert, &self.market_url),
        )?;
        self.send(message).await
    }

    fn batches(&self) -> bool {
        self.digest
    }

    async fn notify_batch(&self, alerts: &[FiredAlert]) -> Result<(), NotifyError> {
        match alerts {
            [] => Ok(()),
            [one] => self.notify(one).await,
            many if self.digest => {
                let message = self.message(
                    compose::digest_message_id(many),
                    compose::digest_subject(many),
                    compose::digest_body(many, &self.market_url),
                )?;
                self.send(message).await
            }
            // Without digest, one message each. A retry after a failure
            // part-way resends the earlier ones too, with the same
            // Message-IDs, so a deduplicating mail system shows them once.
            many => {
                for alert in many {
                    self.notify(alert).await?;
                }
                Ok(())
            }
        }
    }

    /// Connects, says EHLO, upgrades to TLS and logs in as configured,
    /// then asks the server for a NOOP: everything but sending.
    async fn check(&self) -> Result<(), NotifyError> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(NotifyError::retryable(format!(
                "smtp server {}: connected but it did not answer NOOP",
                self.server
            ))),
            Err(e) => Err(self.masked(failure(&self.server, &e))),
        }
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
}

/// Says whether an SMTP failure may pass, and what it was.
///
/// A reply of the 4xx class is the server saying "not now" (a full queue,
/// greylisting, too many connections), and a refused or dropped connection
/// or a timeout may be a server restarting: retryable. A 5xx reply is the
/// server refusing for good: bad credentials (535), a rejected sender or
/// recipient (550, 553), a STARTTLS demand (530). A certificate or TLS
/// handshake failure, or a server that cannot do what the settings ask
/// (no STARTTLS, no usable AUTH mechanism), repeats until someone changes
/// the settings: permanent.
fn classify(error: &SmtpError) -> FailureKind {
    if error.is_transient() || error.is_timeout() {
        FailureKind::Retryable
    } else if error.is_permanent() || error.is_tls() || error.is_client() || tls_handshake(error) {
        FailureKind::Permanent
    } else {
        // Connection and network errors, an unreadable or cut-off reply:
        // most often a server going away; worth another try.
        FailureKind::Retryable
    }
}

/// Whether the failure was the TLS handshake: rustls reports its errors
/// (an unknown issuer, a name mismatch, a server not speaking TLS) as I/O
/// errors of kind `InvalidData`, which plain TCP never produces.
fn tls_handshake(error: &SmtpError) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::InvalidData;
        }
        source = cause.source();
    }
    false
}

/// The failure as the core reports it: which server, what went wrong in
/// a few words, and a hint for the usual causes.
fn failure(server: &str, error: &SmtpError) -> NotifyError {
    if let Some(refusal) = kalshi_alerts_core::tls::refusal(error) {
        let text = tls::describe_refusal(refusal);
        return NotifyError::permanent(format!("smtp server {server}: {text}"));
    }
    let tls = error.is_tls() || tls_handshake(error);
    let what = if error.status().is_some() {
        // "permanent error (535): 5.7.8 Authentication credentials invalid"
        error.to_string()
    } else if tls {
        format!("TLS failed: {}", root_cause(error))
    } else if error.is_client() {
        root_cause(error)
    } else if error.is_response() {
        format!("unexpected reply: {}", root_cause(error))
    } else {
        format!("connection failed: {}", root_cause(error))
    };
    let hint = match error.status().map(u16::from) {
        Some(535 | 534) => " (the server refused the username or password)",
        Some(530) => " (the server wants authentication or STARTTLS first)",
        Some(550..=553) => " (the server refused an address)",
        _ if tls => " (check host, port and tls, and ca_file for a private certificate)",
        _ => "",
    };
    let message = format!("smtp server {server}: {what}{hint}");
    match classify(error) {
        FailureKind::Retryable => NotifyError::retryable(message),
        FailureKind::Permanent => NotifyError::permanent(message),
    }
}

/// The innermost cause: lettre nests "Connection error" wrappers around
/// the I/O or TLS error that says what happened.
fn root_cause(error: &SmtpError) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

fn settings_error(key: &str, problem: impl Into<String>) -> SettingsError {
    SettingsError {
        notifier: NAME.into(),
        key: key.into(),
        problem: problem.into(),
    }
}

fn text<'a>(settings: &'a Settings, key: &str) -> Option<&'a str> {
    settings
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `host` without the brackets an IPv6 address may be written with.
fn bare_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) and localhost: the hosts
/// plain SMTP may go to, because the traffic never leaves the machine.
fn is_loopback(host: &str) -> bool {
    let host = bare_host(host);
    if host.eq_ignore_ascii_case("localhost") || host.eq_ignore_ascii_case("localhost.") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

fn mailbox(key: &str, value: &str) -> Result<Mailbox, SettingsError> {
    value.trim().parse::<Mailbox>().map_err(|e| {
        settings_error(
            key,
            format!(
                "expected an email address such as alerts@example.com or \
                 \"Alerts <alerts@example.com>\", got {value:?} ({e})"
            ),
        )
    })
}

fn tls_parameters(host: &str, trust: &Trust) -> Result<TlsParameters, SettingsError> {
    let mut builder = TlsParameters::builder(host.to_string());
    match trust {
        Trust::Checked(extra) => {
            for certificate in extra {
                let certificate = Certificate::from_der(certificate.to_vec()).map_err(|e| {
                    settings_error(tls::CA_FILE.name, format!("cannot be used: {e}"))
                })?;
                builder = builder.add_root_certificate(certificate);
            }
        }
        // lettre checks the host name even when it takes any certificate;
        // a name check on a certificate nobody vouches for proves nothing.
        Trust::Unchecked => {
            builder = builder
                .dangerous_accept_invalid_certs(true)
                .dangerous_accept_invalid_hostnames(true);
        }
    }
    builder.build_rustls().map_err(|e| match trust {
        Trust::Checked(extra) if !extra.is_empty() => {
            settings_error(tls::CA_FILE.name, format!("cannot be used: {e}"))
        }
        _ => settings_error("host", format!("cannot set up TLS for {host:?}: {e}")),
    })
}

/// The `port` setting, or the standard port of the TLS mode: 587 for
/// submission with STARTTLS, 465 for submission over TLS, 25 for SMTP.
fn port(settings: &Settings, mode: &str) -> Result<u16, SettingsError> {
    match settings.get("port").filter(|v| !v.is_null()) {
        None => Ok(match mode {
            "implicit" => 465,
            "none" => 25,
            _ => 587,
        }),
        Some(value) => value
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                settings_error(
                    "port",
                    format!("expected a port from 1 to 65535, got {value}"),
                )
            }),
    }
}

fn build(settings: &Settings) -> Result<Box<dyn Notifier>, SettingsError> {
    let host = text(settings, "host").ok_or_else(|| settings_error("host", "missing"))?;
    if host.contains(char::is_whitespace) || host.contains('/') {
        return Err(settings_error(
            "host",
            format!("expected a host name or IP address, got {host:?}"),
        ));
    }
    let mode = text(settings, "tls").unwrap_or("starttls");
    let port = port(settings, mode)?;
    let trust = match mode {
        "none" => {
            refuse_tls_settings_without_tls(settings)?;
            Trust::Checked(Vec::new())
        }
        _ => Trust::from_settings(NAME, settings)?,
    };
    let server_host = bare_host(host);
    let tls = match mode {
        "none" => {
            if !is_loopback(host) {
                return Err(settings_error(
                    "tls",
                    format!(
                        "tls = \"none\" sends mail and passwords in clear, so it is allowed \
                         only to 127.0.0.1, ::1 or localhost, not {host:?}; \
                         use starttls or implicit"
                    ),
                ));
            }
            Tls::None
        }
        "implicit" => Tls::Wrapper(tls_parameters(server_host, &trust)?),
        "starttls" => Tls::Required(tls_parameters(server_host, &trust)?),
        other => {
            return Err(settings_error(
                "tls",
                format!("expected one of {}, got {other:?}", TLS_MODES.join(", ")),
            ))
        }
    };

    let from = mailbox(
        "from",
        text(settings, "from").ok_or_else(|| settings_error("from", "missing"))?,
    )?;
    let recipients = settings.get("to").map(string_list).unwrap_or_default();
    if recipients.is_empty() {
        return Err(settings_error("to", "expected at least one address"));
    }
    let to = recipients
        .iter()
        .map(|r| mailbox("to", r))
        .collect::<Result<Vec<_>, _>>()?;

    let forms = match (text(settings, "username"), text(settings, "password")) {
        (Some(user), Some(password)) => login_forms(user, password),
        _ => Vec::new(),
    };
    let credentials = match (text(settings, "username"), text(settings, "password")) {
        (Some(user), Some(password)) => Some(Credentials::new(user.into(), password.into())),
        (None, None) => None,
        (Some(_), None) => {
            return Err(settings_error(
                "password",
                "missing; expected a password with username",
            ))
        }
        (None, Some(_)) => {
            return Err(settings_error(
                "username",
                "missing; expected a username with password",
            ))
        }
    };

    let market_url = text(settings, "market_url")
        .unwrap_or("https://kalshi.com/markets/{ticker}")
        .to_string();
    let digest = settings
        .get("digest")
        .and_then(Value::as_bool)
        .unwrap_or(false);

    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server_host)
        .port(port)
        .tls(tls);
    if let Some(credentials) = credentials {
        transport = transport.credentials(credentials);
    }
    let server = match server_host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{server_host}]:{port}"),
        _ => format!("{server_host}:{port}"),
    };
    Ok(Box::new(EmailNotifier {
        transport: transport.build(),
        server,
        from,
        to,
        market_url,
        digest,
        warnings: trust.warnings(),
        login_forms: forms,
    }))
}

/// `ca_file` and `tls_verify` say how to check the server's certificate;
/// with `tls = "none"` there is none to check.
fn refuse_tls_settings_without_tls(settings: &Settings) -> Result<(), SettingsError> {
    let key = if text(settings, tls::CA_FILE.name).is_some() {
        tls::CA_FILE.name
    } else if settings.get(tls::TLS_VERIFY.name) == Some(&Value::Bool(false)) {
        tls::TLS_VERIFY.name
    } else {
        return Ok(());
    };
    Err(settings_error(
        key,
        format!("expected no {key} with tls = \"none\"; it applies to starttls and implicit"),
    ))
}

kalshi_alerts_core::inventory::submit! {
    NotifierPlugin {
        name: NAME,
        description: "sends each alert, or a digest per check, by SMTP (STARTTLS or TLS)",
        settings: SETTINGS,
        build,
    }
}

#[cfg(test)]
mod tests;
