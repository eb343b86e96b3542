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
    // A server may echo a secret percent-encoded (a URL, a form body).
    let mut forms: Vec<String> = secrets
        .iter()
        .filter(|s| !s.is_empty())
        // A value read from an env file may end in `\r` that is trimmed
        // before use; the trimmed form is what a server would echo.
        .flat_map(|s| [s.clone(), s.trim().to_string(), crate::percent::encode(s)])
        .filter(|s| !s.is_empty())
        .collect();
    forms.sort_by_key(|s| std::cmp::Reverse(s.len()));
    forms.dedup();
    let mut masked = text.to_string();
    for secret in forms {
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
        let url = vec!["https://hooks.example/T0/B1/x y".to_string()];
        assert_eq!(
            mask(
                "posted to https%3A%2F%2Fhooks.example%2FT0%2FB1%2Fx%20y",
                &url
            ),
            "posted to ****"
        );
    }
}
