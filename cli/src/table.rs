//! Plain-text tables: columns padded to their widest cell and, on a
//! terminal, fitted to its width by shortening the columns that may shrink
//! (labels, titles) with an ellipsis. Piped output is never cut.

use std::io::IsTerminal;

/// The terminal's width when standard output is one: `COLUMNS` if set,
/// else what the terminal says.
pub fn terminal_width() -> Option<usize> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    if let Some(columns) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(columns);
    }
    #[cfg(unix)]
    {
        let mut size = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass.
        let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
        if ok && size.ws_col > 0 {
            return Some(size.ws_col.into());
        }
    }
    None
}

/// The narrowest a shrinking column gets.
const MIN_SHRUNK: usize = 8;

/// Renders `rows` under `header`, two spaces between columns. When `width`
/// is given and the table is wider, the columns listed in `shrink` are cut
/// (widest first) until it fits or they reach their minimum. Every cell is
/// made [`printable`](kalshi_alerts_core::display::printable) first: a
/// cell from a hand-edited file (an id, a ticker, a kind) must not reach
/// the terminal raw any more than a label.
pub fn render(
    header: &[&str],
    rows: &[Vec<String>],
    width: Option<usize>,
    shrink: &[usize],
) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| kalshi_alerts_core::display::printable(cell).into_owned())
                .collect()
        })
        .collect();
    let rows = rows.as_slice();
    let count = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = header.iter().map(|h| count(h)).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(count(cell));
        }
    }
    if let Some(limit) = width {
        let total =
            |widths: &[usize]| widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
        while total(&widths) > limit {
            let Some(&column) = shrink
                .iter()
                .filter(|&&c| widths[c] > MIN_SHRUNK.max(count(header[c])))
                .max_by_key(|&&c| widths[c])
            else {
                break;
            };
            widths[column] -= 1;
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &width)| format!("{:<width$}", cut(cell, width)))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `text` in at most `width` characters, ending with `…` when cut.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Vec<String>> {
        vec![
            vec![
                "a1".into(),
                "A rather long label that goes on".into(),
                "x".into(),
            ],
            vec!["b2".into(), "short".into(), "y".into()],
        ]
    }

    #[test]
    fn without_a_width_nothing_is_cut() {
        let text = render(&["ID", "LABEL", "Z"], &rows(), None, &[1]);
        assert!(
            text.contains("A rather long label that goes on  x"),
            "{text}"
        );
    }

    #[test]
    fn a_narrow_terminal_cuts_the_shrinking_column_with_an_ellipsis() {
        let text = render(&["ID", "LABEL", "Z"], &rows(), Some(20), &[1]);
        for line in text.lines() {
            assert!(line.chars().count() <= 20, "{line:?}");
        }
        assert!(text.contains("A rather lon…  x"), "{text}");
        // Too narrow to fit: the column stops at its minimum.
        let text = render(&["ID", "LABEL", "Z"], &rows(), Some(5), &[1]);
        assert!(text.contains("A rathe…  x"), "{text}");
    }
}
