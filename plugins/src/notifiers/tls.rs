//! What the notifiers that speak TLS (`webhook`, `email`) share: the
//! `ca_file` and `tls_verify` settings, the certificates a `ca_file`
//! holds, and why a server's certificate was refused (found in an error
//! by `kalshi_alerts_core::tls::refusal`).
//!
//! Certificates are checked by default against the web's root authorities,
//! built in (webpki-roots). `ca_file` adds trust anchors and keeps every
//! check; `tls_verify = false` drops the checks for one instance, which
//! then says so through `Notifier::warnings`.

use kalshi_alerts_core::notifier::SettingsError;
use kalshi_alerts_core::{SettingKind, SettingSpec, Settings};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{CertificateError, RootCertStore};
use serde_json::Value;

pub const CA_FILE: SettingSpec = SettingSpec {
    name: "ca_file",
    kind: SettingKind::Path,
    default: None,
    required: false,
    secret: false,
    help: "PEM certificate(s) to trust besides the usual web roots, every check kept: a \
           private CA, or a self-signed server certificate (one not marked as a CA)",
};

pub const TLS_VERIFY: SettingSpec = SettingSpec {
    name: "tls_verify",
    kind: SettingKind::Bool,
    default: Some("true"),
    required: false,
    secret: false,
    help: "false accepts any server certificate, an impostor's too, and logs a warning \
           naming the instance; for a self-signed server give its certificate as ca_file \
           instead",
};

/// What an instance with `tls_verify = false` says of itself.
pub const UNCHECKED: &str = "TLS certificates are not checked (tls_verify = false), so any \
                             server, an impostor's too, receives the alerts; give a \
                             self-signed or private certificate as ca_file instead";

/// How an instance checks the certificates servers present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Against the built-in roots and these (from `ca_file`; may be none).
    Checked(Vec<CertificateDer<'static>>),
    /// Not at all: `tls_verify = false`.
    Unchecked,
}

impl Trust {
    /// Reads `ca_file` and `tls_verify` from settings validated against
    /// [`CA_FILE`] and [`TLS_VERIFY`]; problems name the key for `notifier`.
    pub fn from_settings(notifier: &str, settings: &Settings) -> Result<Trust, SettingsError> {
        let refused = |key: &str, problem: String| SettingsError {
            notifier: notifier.into(),
            key: key.into(),
            problem,
        };
        let verify = settings
            .get(TLS_VERIFY.name)
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let ca_file = settings
            .get(CA_FILE.name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|p| !p.is_empty());
        match (verify, ca_file) {
            (true, None) => Ok(Trust::Checked(Vec::new())),
            (true, Some(path)) => read_ca_file(path)
                .map(Trust::Checked)
                .map_err(|p| refused(CA_FILE.name, p)),
            (false, None) => Ok(Trust::Unchecked),
            (false, Some(_)) => Err(refused(
                TLS_VERIFY.name,
                "false contradicts ca_file, which keeps certificates checked; remove one \
                 (ca_file is the safer)"
                    .into(),
            )),
        }
    }

    /// The instance's warnings: [`UNCHECKED`] when nothing is checked.
    pub fn warnings(&self) -> Vec<String> {
        match self {
            Trust::Unchecked => vec![UNCHECKED.to_string()],
            Trust::Checked(_) => Vec::new(),
        }
    }
}

/// The certificates in the PEM file at `path`, each one usable as a trust
/// anchor. Other PEM sections (a private key) are skipped.
/// The most a `ca_file` may weigh: the whole public web's roots are about
/// 250 KiB.
const CA_FILE_LIMIT: u64 = 4 * 1024 * 1024;

pub fn read_ca_file(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    use std::io::Read;

    // Only a regular file, and no larger than any bundle of certificates:
    // a FIFO would block the monitor for ever, /dev/zero would eat memory.
    // Looked at before opening it: opening a FIFO blocks already.
    let kind = std::fs::metadata(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    if !kind.is_file() {
        return Err(format!("{path} is not a regular file"));
    }
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{path} is not a regular file"));
    }
    let mut pem = Vec::new();
    file.by_ref()
        .take(CA_FILE_LIMIT + 1)
        .read_to_end(&mut pem)
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    if pem.len() as u64 > CA_FILE_LIMIT {
        return Err(format!(
            "{path} is larger than {} MiB; no certificate bundle is",
            CA_FILE_LIMIT / (1024 * 1024)
        ));
    }
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{path} is not valid PEM ({e}); expected PEM certificates"))?;
    if certificates.is_empty() {
        return Err(format!(
            "expected PEM certificates (-----BEGIN CERTIFICATE-----) in {path}, found none"
        ));
    }
    for (number, certificate) in certificates.iter().enumerate() {
        RootCertStore::empty()
            .add(certificate.clone())
            .map_err(|e| {
                format!(
                    "certificate {} of {path} cannot be trusted: {e}",
                    number + 1
                )
            })?;
    }
    Ok(certificates)
}

/// A TLS refusal in a few words, with what to do about the usual causes.
/// Every one repeats until a setting or the server changes.
pub fn describe_refusal(refusal: &rustls::Error) -> String {
    let rustls::Error::InvalidCertificate(why) = refusal else {
        return format!("TLS failed: {refusal} (check that the server speaks TLS on that port)");
    };
    let hint = match why {
        CertificateError::UnknownIssuer => {
            "the server's certificate is not signed by an authority this program trusts; \
             for a self-signed server or a private CA, give that certificate as ca_file"
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "the server's certificate is for another name; use a host name or address it \
             was issued for"
        }
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => {
            "check the dates of the server's certificate and this machine's clock"
        }
        // webpki will not take a CA certificate as a server's own, and
        // `openssl req -x509` marks a self-signed certificate as a CA.
        CertificateError::Other(other) if format!("{other:?}").contains("CaUsedAsEndEntity") => {
            "the server's certificate is marked as a CA: a self-signed certificate needs \
             basicConstraints CA:FALSE, or sign it with a private CA and give that CA as \
             ca_file"
        }
        _ => "the server's certificate was refused",
    };
    format!("TLS failed: {refusal} ({hint})")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn settings(value: Value) -> Settings {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn certificates_are_checked_unless_tls_verify_is_false() {
        let absent = Trust::from_settings("probe", &Settings::new()).unwrap();
        assert_eq!(absent, Trust::Checked(Vec::new()));
        assert!(absent.warnings().is_empty());

        let off = Trust::from_settings("probe", &settings(json!({"tls_verify": false}))).unwrap();
        assert_eq!(off, Trust::Unchecked);
        assert_eq!(off.warnings(), [UNCHECKED]);
        assert!(UNCHECKED.contains("certificates are not checked"));
    }

    #[test]
    fn a_ca_file_with_tls_verify_false_is_refused() {
        let both = settings(json!({"tls_verify": false, "ca_file": "/nonexistent/ca.pem"}));
        let err = Trust::from_settings("probe", &both).unwrap_err();
        assert_eq!(
            (err.notifier.as_str(), err.key.as_str()),
            ("probe", "tls_verify")
        );
        assert!(err.problem.contains("contradicts ca_file"), "{err}");
    }

    #[test]
    fn a_ca_file_that_is_not_a_regular_file_is_refused_without_reading_it() {
        // /dev/zero would never end; a directory is no file either.
        let zero = read_ca_file("/dev/zero").unwrap_err();
        assert_eq!(zero, "/dev/zero is not a regular file");
        assert!(read_ca_file("/tmp")
            .unwrap_err()
            .contains("not a regular file"));
        #[cfg(unix)]
        {
            let dir = tempfile::tempdir().unwrap();
            let fifo = dir.path().join("fifo");
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            let err = read_ca_file(fifo.to_str().unwrap()).unwrap_err();
            assert!(err.ends_with("is not a regular file"), "{err}");
        }
    }

    #[test]
    fn an_unreadable_or_empty_or_broken_ca_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let missing = missing.to_str().unwrap();
        let err = read_ca_file(missing).unwrap_err();
        assert!(
            err.starts_with(&format!("cannot read {missing}: ")),
            "{err}"
        );

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = read_ca_file(empty.to_str().unwrap()).unwrap_err();
        assert!(err.contains("expected PEM certificates"), "{err}");
        assert!(err.contains("empty.pem"), "{err}");

        // Valid PEM framing around bytes that are no certificate.
        let junk = dir.path().join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = read_ca_file(junk.to_str().unwrap()).unwrap_err();
        assert!(err.contains("certificate 1 of"), "{err}");
        assert!(err.contains("junk.pem cannot be trusted"), "{err}");
    }

    #[test]
    fn an_unknown_issuer_is_explained_with_ca_file() {
        let refusal = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let text = describe_refusal(&refusal);
        assert!(
            text.starts_with("TLS failed: invalid peer certificate"),
            "{text}"
        );
        assert!(text.contains("give that certificate as ca_file"), "{text}");
    }
}
