//! Text from outside, made safe to show.
//!
//! Market titles come from a server and labels from a hand-editable file.
//! Shown raw on a terminal or written into a log line, a control character
//! in them could move the cursor, clear the screen, set the window title or
//! forge a whole log line. [`printable`] replaces every control character
//! with `?` (tabs with a space) before such text is shown.

use std::borrow::Cow;

/// `text` with control characters replaced; borrowed when it has none.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| match c {
                '\t' => ' ',
                c if c.is_control() => '?',
                c => c,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_newlines_and_terminal_sequences() {
        assert_eq!(printable("plain title"), "plain title");
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
        assert_eq!(printable("a\nALERT FAKE"), "a?ALERT FAKE");
        assert_eq!(printable("\u{1b}]0;pwned\u{7}x"), "?]0;pwned?x");
        assert_eq!(printable("tab\there"), "tab here");
        assert_eq!(printable("S&P 500 ≥ 5000"), "S&P 500 ≥ 5000");
    }
}
