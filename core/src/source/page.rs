//! Reading a `GET /markets` page while it streams in.
//!
//! A page of 1,000 current-generation markets is about 2.3 MB of JSON, and
//! a full scan of the exchange is a hundred of them. Building a
//! `serde_json::Value` tree of each page would cost several times the page
//! in memory and most of the scan's time, for the handful of fields the
//! monitor reads. [`PageReader`] instead takes the body chunk by chunk as
//! it arrives and hands on each market record as soon as its closing brace
//! is in, read into a [`MarketRecord`] that borrows only the fields the
//! conditions use; then the record's bytes are dropped. The page's cursor
//! is handed on as soon as it is read (Kalshi writes it before the
//! markets), so the next page can be requested while this one downloads.
//!
//! serde_json parses every value (strings, escapes, numbers, nesting); the
//! reader only walks the punctuation of the two levels around them: the
//! page object and its `markets` array. A value cut off by the end of a
//! chunk is parsed again, whole, once the next chunk is in: serde_json
//! reports that case as an end-of-input error, which tells it apart from
//! invalid JSON.

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The fields of one market record that the monitor reads, borrowed from
/// the page. Every other field is skipped unread; a field written as `null`
/// is absent.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MarketRecord<'a> {
    #[serde(borrow)]
    pub ticker: Option<&'a RawValue>,
    #[serde(borrow)]
    pub event_ticker: Option<&'a RawValue>,
    #[serde(borrow)]
    pub title: Option<&'a RawValue>,
    #[serde(borrow)]
    pub status: Option<&'a RawValue>,
    #[serde(borrow)]
    pub yes_bid: Option<&'a RawValue>,
    #[serde(borrow)]
    pub yes_bid_dollars: Option<&'a RawValue>,
    #[serde(borrow)]
    pub yes_ask: Option<&'a RawValue>,
    #[serde(borrow)]
    pub yes_ask_dollars: Option<&'a RawValue>,
    #[serde(borrow)]
    pub volume: Option<&'a RawValue>,
    #[serde(borrow)]
    pub volume_fp: Option<&'a RawValue>,
}

/// What the reader found, in the order of the page.
pub enum PageEvent<'a> {
    /// The page's cursor: `None` when it is missing, `null` or empty (the
    /// last page).
    Cursor(Option<String>),
    /// One element of the `markets` array that is a JSON object.
    Record(MarketRecord<'a>),
    /// One element of the `markets` array that is valid JSON but cannot be
    /// read as a market record (not an object, a field given twice); why.
    Unreadable(String),
}

/// Why a page cannot be read; the page is then not used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("not valid JSON ({0})")]
    NotJson(String),
    #[error("no \"markets\" array")]
    NoMarkets,
    #[error("\"cursor\" is not a string")]
    CursorNotText,
}

/// Where the reader is in the page's outer structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Before the page's opening brace.
    Start,
    /// After `{` or `,` in the page object: a key, or `}` after `{`.
    Key { first: bool },
    /// After a key: its colon.
    Colon(Field),
    /// After a key's colon: its value.
    Value(Field),
    /// After a value of the page object: `,` or `}`.
    AfterValue,
    /// Inside `markets`, after `[` or `,`: a record, or `]` after `[`.
    Record { first: bool },
    /// Inside `markets`, after a record: `,` or `]`.
    AfterRecord,
    /// After the page's closing brace: only whitespace may follow.
    Done,
}

/// The page-object keys the reader acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Markets,
    Cursor,
    Other,
}

/// Reads one page, chunk by chunk; see the module docs.
pub struct PageReader {
    /// Bytes received and not yet read: at most the value a chunk cut off.
    pending: Vec<u8>,
    /// How long `pending` must grow before the value in it is read again.
    /// Each try reads the value from its start, so trying at every chunk
    /// of a server that sends a byte at a time would take time quadratic
    /// in the value's size; waiting for it to double keeps it linear.
    retry_at: usize,
    /// How many times `read` ran, for the tests.
    #[cfg(test)]
    reads: usize,
    place: Place,
    saw_markets: bool,
    /// Bytes received in all, for error positions.
    consumed: usize,
}

/// One step's result: how many bytes were used, or that more are needed.
enum Step {
    Used(usize),
    NeedMore,
}

impl Default for PageReader {
    fn default() -> Self {
        PageReader::new()
    }
}

impl PageReader {
    pub fn new() -> PageReader {
        PageReader {
            pending: Vec::new(),
            retry_at: 0,
            #[cfg(test)]
            reads: 0,
            place: Place::Start,
            saw_markets: false,
            consumed: 0,
        }
    }

    /// Reads `chunk`, the next bytes of the body, telling `sink` of each
    /// cursor and record completed by it.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        sink: &mut dyn FnMut(PageEvent<'_>),
    ) -> Result<(), PageError> {
        if self.pending.is_empty() {
            // The common case: read straight from the chunk and keep only
            // the value it cut off, if any.
            let used = self.read(chunk, false, sink)?;
            self.pending.extend_from_slice(&chunk[used..]);
        } else if self.pending.len() + chunk.len() < self.retry_at {
            self.pending.extend_from_slice(chunk);
            return Ok(());
        } else {
            let mut bytes = std::mem::take(&mut self.pending);
            bytes.extend_from_slice(chunk);
            let used = self.read(&bytes, false, sink)?;
            bytes.drain(..used);
            self.pending = bytes;
        }
        self.retry_at = self.pending.len().saturating_mul(2);
        Ok(())
    }

    /// Ends the page: whatever is left must complete it.
    pub fn finish(mut self, sink: &mut dyn FnMut(PageEvent<'_>)) -> Result<(), PageError> {
        let bytes = std::mem::take(&mut self.pending);
        let used = self.read(&bytes, true, sink)?;
        if used < bytes.len() || self.place != Place::Done {
            return Err(self.not_json(format!(
                "the page ends at byte {} before it is complete",
                self.consumed
            )));
        }
        if !self.saw_markets {
            return Err(PageError::NoMarkets);
        }
        Ok(())
    }

    /// Reads as much of `bytes` as it can; returns how many it used. With
    /// `last`, no more bytes will come, so a value at the very end is whole.
    fn read(
        &mut self,
        bytes: &[u8],
        last: bool,
        sink: &mut dyn FnMut(PageEvent<'_>),
    ) -> Result<usize, PageError> {
        #[cfg(test)]
        {
            self.reads += 1;
        }
        let mut at = 0;
        loop {
            at += whitespace(&bytes[at..]);
            if at == bytes.len() {
                return Ok(at);
            }
            match self.step(&bytes[at..], last, sink)? {
                Step::Used(used) => {
                    at += used;
                    self.consumed += used;
                }
                Step::NeedMore => return Ok(at),
            }
        }
    }

    /// Reads one token or value at the start of `bytes` (no whitespace).
    fn step(
        &mut self,
        bytes: &[u8],
        last: bool,
        sink: &mut dyn FnMut(PageEvent<'_>),
    ) -> Result<Step, PageError> {
        let byte = bytes[0];
        let place = self.place;
        let (next, used) = match (place, byte) {
            (Place::Start, b'{') => (Place::Key { first: true }, 1),
            (Place::Key { first: true }, b'}') => (Place::Done, 1),
            (Place::Key { .. }, b'"') => {
                let Some((key, used)) = self.value::<String>(bytes, last)? else {
                    return Ok(Step::NeedMore);
                };
                let field = match key.as_str() {
                    "markets" => Field::Markets,
                    "cursor" => Field::Cursor,
                    _ => Field::Other,
                };
                (Place::Colon(field), used)
            }
            (Place::Colon(field), b':') => (Place::Value(field), 1),
            (Place::Value(Field::Markets), b'[') => {
                self.saw_markets = true;
                (Place::Record { first: true }, 1)
            }
            (Place::Value(Field::Markets), _) => return Err(PageError::NoMarkets),
            (Place::Value(Field::Cursor), _) => {
                let Some((cursor, used)) = self.value::<serde_json::Value>(bytes, last)? else {
                    return Ok(Step::NeedMore);
                };
                let cursor = match cursor {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(text) => Some(text).filter(|t| !t.is_empty()),
                    _ => return Err(PageError::CursorNotText),
                };
                sink(PageEvent::Cursor(cursor));
                (Place::AfterValue, used)
            }
            (Place::Value(Field::Other), _) => {
                let Some((IgnoredAny, used)) = self.value::<IgnoredAny>(bytes, last)? else {
                    return Ok(Step::NeedMore);
                };
                (Place::AfterValue, used)
            }
            (Place::AfterValue, b',') => (Place::Key { first: false }, 1),
            (Place::AfterValue, b'}') => (Place::Done, 1),
            (Place::Record { first: true }, b']') => (Place::AfterValue, 1),
            (Place::Record { .. }, _) => {
                let Some(used) = self.record(bytes, last, sink)? else {
                    return Ok(Step::NeedMore);
                };
                (Place::AfterRecord, used)
            }
            (Place::AfterRecord, b',') => (Place::Record { first: false }, 1),
            (Place::AfterRecord, b']') => (Place::AfterValue, 1),
            _ => return Err(self.unexpected(byte)),
        };
        self.place = next;
        Ok(Step::Used(used))
    }

    /// Reads one element of `markets` and tells `sink` of it; `None` when
    /// it is not all in yet.
    fn record(
        &self,
        bytes: &[u8],
        last: bool,
        sink: &mut dyn FnMut(PageEvent<'_>),
    ) -> Result<Option<usize>, PageError> {
        if bytes[0] != b'{' {
            // serde would read an array as a record, field by position.
            let Some((IgnoredAny, used)) = self.value::<IgnoredAny>(bytes, last)? else {
                return Ok(None);
            };
            sink(PageEvent::Unreadable(
                "a market record is not a JSON object".into(),
            ));
            return Ok(Some(used));
        }
        let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<MarketRecord>();
        match values.next() {
            Some(Ok(record)) => {
                let used = values.byte_offset();
                if !self.whole(used, bytes.len(), last) {
                    return Ok(None);
                }
                sink(PageEvent::Record(record));
                Ok(Some(used))
            }
            Some(Err(e)) if e.is_data() => {
                // Valid JSON that is no market record: find where it ends.
                let Some((IgnoredAny, used)) = self.value::<IgnoredAny>(bytes, last)? else {
                    return Ok(None);
                };
                sink(PageEvent::Unreadable(e.to_string()));
                Ok(Some(used))
            }
            Some(Err(e)) => self.failed(&e, bytes, last),
            None => Ok(None),
        }
    }

    /// Reads one value of type `T` at the start of `bytes` and how many
    /// bytes it took; `None` when it is not all in yet.
    fn value<'b, T: Deserialize<'b>>(
        &self,
        bytes: &'b [u8],
        last: bool,
    ) -> Result<Option<(T, usize)>, PageError> {
        let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<T>();
        match values.next() {
            Some(Ok(value)) => {
                let used = values.byte_offset();
                Ok(self.whole(used, bytes.len(), last).then_some((value, used)))
            }
            Some(Err(e)) => self.failed(&e, bytes, last),
            None => Ok(None),
        }
    }

    /// What a value that serde_json could not read means: more is needed
    /// when it ran into the end of the bytes and more will come (a number
    /// cut short reports itself invalid, not cut short), else the page is
    /// not JSON.
    fn failed<T>(
        &self,
        e: &serde_json::Error,
        bytes: &[u8],
        last: bool,
    ) -> Result<Option<T>, PageError> {
        let at_the_end = e.is_eof() || offset_of(bytes, e.line(), e.column()) + 1 >= bytes.len();
        match (at_the_end, last) {
            (true, false) => Ok(None),
            (true, true) => Err(self.not_json(format!(
                "the page ends at byte {} before it is complete",
                self.consumed + bytes.len()
            ))),
            (false, _) => Err(self.not_json(self.at(e))),
        }
    }

    /// Whether a value read from `used` of `available` bytes is whole: a
    /// number or a literal that runs to the end of a chunk may go on in the
    /// next one, so only a value followed by something, or the body's
    /// last, is taken.
    fn whole(&self, used: usize, available: usize, last: bool) -> bool {
        last || used < available
    }

    fn unexpected(&self, byte: u8) -> PageError {
        let what = match self.place {
            Place::Start => "the page is not a JSON object",
            Place::Key { .. } => "expected a key",
            Place::Colon(_) => "expected ':'",
            Place::AfterValue => "expected ',' or '}'",
            Place::AfterRecord => "expected ',' or ']' in \"markets\"",
            Place::Done => "more follows the page",
            Place::Value(_) | Place::Record { .. } => "unexpected value",
        };
        let shown = if byte.is_ascii_graphic() {
            format!("{:?}", byte as char)
        } else {
            format!("byte 0x{byte:02x}")
        };
        self.not_json(format!("{what}, found {shown} at byte {}", self.consumed))
    }

    /// serde_json's error, its position counted in the whole body.
    fn at(&self, e: &serde_json::Error) -> String {
        let message = e.to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        format!("{message}, in the value at byte {}", self.consumed)
    }

    fn not_json(&self, reason: String) -> PageError {
        PageError::NotJson(reason)
    }
}

/// The offset in `bytes` of serde_json's 1-based `line` and `column` (of
/// bytes; column 0 is the newline ending the line before).
fn offset_of(bytes: &[u8], line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(line - 2)
            .map_or(bytes.len(), |(i, _)| i + 1)
    };
    (line_start + column).saturating_sub(1)
}

/// How many bytes of JSON whitespace `bytes` starts with.
fn whitespace(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
        .unwrap_or(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a page read in chunks of `size` bytes told: cursors, record
    /// tickers (as raw JSON), unreadable records, and the outcome.
    fn read_in_chunks(page: &str, size: usize) -> (Vec<String>, Result<(), PageError>) {
        let mut seen = Vec::new();
        let mut sink = |event: PageEvent<'_>| {
            seen.push(match event {
                PageEvent::Cursor(cursor) => format!("cursor {cursor:?}"),
                PageEvent::Record(record) => {
                    format!("record {}", record.ticker.map_or("-", |t| t.get()))
                }
                PageEvent::Unreadable(_) => "unreadable".to_string(),
            })
        };
        let mut reader = PageReader::new();
        for chunk in page.as_bytes().chunks(size.max(1)) {
            if let Err(e) = reader.feed(chunk, &mut sink) {
                return (seen, Err(e));
            }
        }
        let outcome = reader.finish(&mut sink);
        (seen, outcome)
    }

    const PAGE: &str = r#"{"cursor": "abc", "markets": [
        {"ticker": "A-1", "yes_bid_dollars": "0.4500", "nested": {"x": [1, 2, {"y": "}"}]}},
        {"ticker": "B\"2", "volume": 12345, "title": null},
        7,
        {"ticker": "C-3", "ticker": "twice"},
        ["D-4", "E", "title", "active", null, "0.7000"]
    ], "extra": 12.5e3, "more": [true, false, null]}"#;

    #[test]
    fn a_page_reads_the_same_whatever_its_chunks() {
        let (whole, outcome) = read_in_chunks(PAGE, PAGE.len());
        outcome.unwrap();
        assert_eq!(
            whole,
            [
                r#"cursor Some("abc")"#,
                r#"record "A-1""#,
                r#"record "B\"2""#,
                "unreadable",
                "unreadable",
                "unreadable",
            ]
        );
        for size in 1..40 {
            let (seen, outcome) = read_in_chunks(PAGE, size);
            assert_eq!(outcome, Ok(()), "chunks of {size}");
            assert_eq!(seen, whole, "chunks of {size}");
        }
    }

    #[test]
    fn null_fields_are_absent() {
        let page = r#"{"markets": [{"ticker": "T", "title": null, "yes_bid": 3}]}"#;
        let mut titles = Vec::new();
        let mut reader = PageReader::new();
        reader
            .feed(page.as_bytes(), &mut |event| {
                if let PageEvent::Record(record) = event {
                    titles.push((
                        record.title.is_none(),
                        record.yes_bid.map(|b| b.get().to_string()),
                    ));
                }
            })
            .unwrap();
        reader.finish(&mut |_| {}).unwrap();
        assert_eq!(titles, [(true, Some("3".to_string()))]);
    }

    #[test]
    fn cursors_that_end_the_listing() {
        for (page, cursor) in [
            (r#"{"markets": [], "cursor": ""}"#, "cursor None"),
            (r#"{"markets": [], "cursor": null}"#, "cursor None"),
            (r#"{"cursor": "n", "markets": []}"#, r#"cursor Some("n")"#),
        ] {
            let (seen, outcome) = read_in_chunks(page, 3);
            outcome.unwrap();
            assert_eq!(seen, [cursor], "{page}");
        }
        let (seen, outcome) = read_in_chunks(r#"{"markets": []}"#, 3);
        assert!(seen.is_empty());
        outcome.unwrap();
    }

    #[test]
    fn broken_pages_are_refused_with_the_reason() {
        let cases = [
            (
                "<!DOCTYPE html><html></html>",
                "not valid JSON (the page is not a JSON object",
            ),
            (
                r#"{"markets": [{"ticker": "T", "yes_bid_dollars": "0.45"#,
                "before it is complete",
            ),
            (r#"{"markets": [{"ticker": "T"}"#, "before it is complete"),
            (
                r#"{"markets": [{"ticker": "T"} {"ticker": "U"}]}"#,
                "expected ',' or ']'",
            ),
            (r#"{"markets": {}}"#, "no \"markets\" array"),
            (r#"{"cursor": "x"}"#, "no \"markets\" array"),
            (
                r#"{"markets": [], "cursor": 5}"#,
                "\"cursor\" is not a string",
            ),
            (r#"{"markets": []} trailing"#, "more follows the page"),
            (r#"{"markets": [{"ticker": tru}]}"#, "not valid JSON"),
            ("", "before it is complete"),
        ];
        for (page, expected) in cases {
            for size in [1, 4, page.len().max(1)] {
                let (_, outcome) = read_in_chunks(page, size);
                let message = outcome.expect_err(page).to_string();
                assert!(message.contains(expected), "{page} in {size}s: {message}");
            }
        }
    }

    #[test]
    fn a_number_cut_by_a_chunk_is_read_whole() {
        let page = r#"{"markets": [], "count": 123456}"#;
        for size in 1..page.len() {
            let (_, outcome) = read_in_chunks(page, size);
            assert_eq!(outcome, Ok(()), "chunks of {size}");
        }
    }

    #[test]
    fn a_value_sent_a_byte_at_a_time_is_read_in_linear_time() {
        let title = "x".repeat(200_000);
        let page = format!(r#"{{"markets": [{{"ticker": "T", "title": "{title}"}}]}}"#);
        let mut reader = PageReader::new();
        let mut records = 0;
        for byte in page.as_bytes().chunks(1) {
            reader.feed(byte, &mut |_| records += 1).unwrap();
        }
        // Read again only each time the cut-off value has doubled: a few
        // dozen reads, not one per byte.
        assert!(reader.reads < 100, "{} reads", reader.reads);
        reader.finish(&mut |_| records += 1).unwrap();
        assert_eq!(records, 1);
    }

    #[test]
    fn only_the_value_a_chunk_cut_off_is_kept() {
        let record = r#"{"ticker": "T", "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
        let mut page = String::from(r#"{"markets": ["#);
        for i in 0..1000 {
            if i > 0 {
                page.push(',');
            }
            page.push_str(record);
        }
        page.push_str("]}");
        let mut reader = PageReader::new();
        let mut records = 0;
        let mut most = 0;
        for chunk in page.as_bytes().chunks(1000) {
            reader.feed(chunk, &mut |_| records += 1).unwrap();
            most = most.max(reader.pending.len());
        }
        reader.finish(&mut |_| records += 1).unwrap();
        assert_eq!(records, 1000);
        // A value is read again once what is kept of it has doubled.
        assert!(most < 2 * record.len(), "kept {most} bytes");
    }
}
