//! Telling a TLS refusal apart from other transport failures.
//!
//! A refused certificate or a broken handshake comes back from reqwest or
//! lettre as an I/O error around rustls's own; unlike a refused or dropped
//! connection, it fails the same way on every attempt until a setting or
//! the server changes, so callers do not retry it.

use std::error::Error;

/// The TLS refusal somewhere in `error`'s chain of causes, if the failure
/// was one. TLS libraries pass it up wrapped in I/O errors, one inside
/// another.
pub fn refusal<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(found) = current.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        // An I/O error's `source` skips the error it wraps; `get_ref` is
        // that error.
        cause = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn Error + 'static)),
            None => current.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use std::io;

    use rustls::CertificateError;

    use super::*;

    #[test]
    fn a_refusal_is_found_inside_io_errors() {
        let refused = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let inner = io::Error::new(io::ErrorKind::InvalidData, refused.clone());
        let outer = io::Error::other(inner);
        assert_eq!(refusal(&outer), Some(&refused));
    }

    #[test]
    fn other_transport_failures_are_no_refusal() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(refusal(&refused), None);
        let wrapped = io::Error::other("connection reset");
        assert_eq!(refusal(&wrapped), None);
    }
}
