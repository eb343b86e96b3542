//! Percent-encoding (RFC 3986), as text travels in URLs.
//!
//! The market client encodes a cursor into a query string; masking looks
//! for a secret in the forms a server may echo it back, encoded or decoded.

/// Every byte outside the unreserved set as `%XX`.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// `text` with every well-formed `%XX` decoded; anything else kept as is.
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_reserved_bytes_and_decodes_them_back() {
        assert_eq!(encode("Cg+w/Q=="), "Cg%2Bw%2FQ%3D%3D");
        assert_eq!(encode("f1o100"), "f1o100");
        assert_eq!(decode("Cg%2Bw%2FQ%3D%3D"), "Cg+w/Q==");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%2D"), "%zz-");
    }
}
