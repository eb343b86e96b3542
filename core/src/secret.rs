//! Keeping secret setting values out of everything a person reads.
//!
//! A resolved secret (an SMTP password, a token in a webhook URL) is known
//! to its notifier instance; any text about that instance that leaves the
//! program (a log line, an error, `--json` output) goes through [`mask`].

/// What a secret is shown as.
pub const MASK: &str = "****";

/// `text` with every occurrence of every secret replaced by [`MASK`].
///
/// Longer secrets are replaced first, so a secret that contains another is
/// masked whole.
pub fn mask(text: &str, secrets: &[String]) -> String {
    let mut ordered: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    ordered.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut masked = text.to_string();
    for secret in ordered {
        if masked.contains(secret.as_str()) {
            masked = masked.replace(secret.as_str(), MASK);
        }
    }
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_occurrence_is_masked_longest_first() {
        let secrets = vec![
            "hunter2".to_string(),
            "hunter2-admin".to_string(),
            String::new(),
        ];
        assert_eq!(
            mask("login hunter2-admin failed, then hunter2", &secrets),
            "login **** failed, then ****"
        );
        assert_eq!(mask("nothing here", &secrets), "nothing here");
    }
}
