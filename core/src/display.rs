//! Text from outside, made safe to show.
//!
//! Market titles come from a server and labels from a hand-editable file.
//! Shown raw on a terminal or written into a log line, a control character
//! in them could move the cursor, clear the screen, set the window title or
//! forge a whole log line; a bidirectional override or isolate (U+202E,
//! say) could make text read in another order than it is, hiding what it
//! says. [`printable`] replaces every such character with `?` (tabs with a
//! space) before such text is shown. The text stored is never changed.

use std::borrow::Cow;

/// `text` with control characters and bidirectional overrides replaced;
/// borrowed when it has none.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_to_show) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| match c {
                '\t' => ' ',
                c if unsafe_to_show(c) => '?',
                c => c,
            })
            .collect(),
    )
}

/// A control character (C0, DEL, C1); a line or paragraph separator
/// (U+2028, U+2029), which some terminals and viewers break lines at; or
/// one that changes the order in which the text around it is shown: the
/// bidirectional marks (U+200E, U+200F, U+061C), embeddings and overrides
/// (U+202A–U+202E) and isolates (U+2066–U+2069).
fn unsafe_to_show(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `text` cut to at most `limit` characters, with `…` and the length left
/// out when cut: a server's value quoted in a log line stays one line long
/// however long the value.
pub fn clipped(text: &str, limit: usize) -> Cow<'_, str> {
    match text.char_indices().nth(limit) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!(
            "{}… ({} more bytes)",
            &text[..end],
            text.len() - end
        )),
    }
}

/// A server's value as a log line quotes it: [`clipped`] to `limit`
/// characters and [`printable`].
pub fn for_log(text: &str, limit: usize) -> String {
    printable(&clipped(text, limit)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_clipped_at_a_character_boundary() {
        assert_eq!(clipped("short", 10), "short");
        assert_eq!(clipped("ééééé", 2), "éé… (6 more bytes)");
        assert_eq!(
            clipped(&"x".repeat(5_000_000), 3),
            "xxx… (4999997 more bytes)"
        );
    }

    #[test]
    fn escapes_newlines_and_terminal_sequences() {
        assert_eq!(printable("plain title"), "plain title");
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
        assert_eq!(printable("a\nALERT FAKE"), "a?ALERT FAKE");
        assert_eq!(printable("\u{1b}]0;pwned\u{7}x"), "?]0;pwned?x");
        assert_eq!(printable("tab\there"), "tab here");
        assert_eq!(printable("S&P 500 ≥ 5000"), "S&P 500 ≥ 5000");
        assert_eq!(printable("\u{1b}[2Jx\ry"), "?[2Jx?y");
    }

    #[test]
    fn replaces_bidirectional_overrides_and_isolates() {
        assert_eq!(printable("abc\u{202E}fed"), "abc?fed");
        let marks_and_separators = ['\u{061C}', '\u{200E}', '\u{200F}', '\u{2028}', '\u{2029}'];
        for c in ('\u{202A}'..='\u{202E}')
            .chain('\u{2066}'..='\u{2069}')
            .chain(marks_and_separators)
        {
            assert_eq!(printable(&format!("a{c}b")), "a?b", "U+{:04X}", c as u32);
        }
        // Neighbours and ordinary right-to-left text are kept.
        assert_eq!(
            printable("\u{200D}\u{202F}\u{2065}"),
            "\u{200D}\u{202F}\u{2065}"
        );
        assert_eq!(printable("שלום مرحبا"), "שלום مرحبا");
        assert_eq!(for_log("x\u{2067}y", 10), "x?y");
    }
}
