//! Incremental Server-Sent Events parser, exact to WHATWG HTML "event stream interpretation".
//!
//! Every upstream stream chunk passes through [`Parser::feed`], so the parser scans with
//! `memchr`, processes lines that lie wholly inside a read straight from the read's bytes, and
//! copies only the unterminated tail line. Events are never held back waiting for the next read:
//! a CR ending a read ends its line at once, and an LF opening the next read is then skipped.
//!
//! UTF-8 decoding is done per line (and once per event for `data`). That equals decoding the
//! whole stream first because CR, LF, `:` and space are ASCII, which never sits inside a
//! multi-byte sequence, so an ill-formed sequence yields the same U+FFFD either way.

use std::fmt;
use std::mem;

use memchr::{memchr, memchr2_iter};

const BOM: &[u8; 3] = b"\xEF\xBB\xBF";

/// A line buffer grown past this by one huge line is dropped rather than kept for the stream's life.
const RETAINED_LINE_CAPACITY: usize = 64 * 1024;

/// Size bounds; a hostile upstream must not make us buffer without limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted line in bytes, excluding its line ending.
    pub max_line_bytes: usize,
    /// Largest accepted event data in bytes (data lines joined with LF, as received).
    pub max_event_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line_bytes: 1 << 20,
            max_event_bytes: 8 << 20,
        }
    }
}

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `event:` field; None means the default type "message".
    pub event: Option<String>,
    /// Data lines joined with '\n' (the one trailing LF stripped).
    pub data: String,
    /// The last-event-id at dispatch time (persists across events, per spec). None if never set / set to empty.
    pub id: Option<String>,
    /// A valid `retry:` value seen while building this event.
    pub retry: Option<u64>,
}

impl Event {
    /// The event type as a browser would report it: `message` unless `event:` named one.
    pub fn event_type(&self) -> &str {
        self.event.as_deref().unwrap_or("message")
    }
}

/// A stream broke a size bound; the stream cannot be parsed further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// A line (without its line ending) exceeded `limit` bytes.
    LineTooLong { limit: usize },
    /// An event's data exceeded `limit` bytes.
    EventTooLarge { limit: usize },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LineTooLong { limit } => write!(f, "SSE line longer than {limit} bytes"),
            Self::EventTooLarge { limit } => write!(f, "SSE event data larger than {limit} bytes"),
        }
    }
}

impl std::error::Error for SseError {}

/// Where the stream stands on its optional leading BOM, which may arrive split across reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bom {
    /// This many leading bytes matched the BOM so far and are held back.
    Matching(u8),
    /// Decided: stripped, or the stream does not start with one.
    Done,
}

/// Incremental parser for one event stream.
///
/// After [`feed`](Self::feed) returns an error the stream is unusable: every later `feed`
/// returns the same error until [`finish`](Self::finish) starts a new stream.
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    bom: Bom,
    /// The previous read ended with a CR line ending, so an LF opening this read belongs to it.
    pending_cr: bool,
    /// The unterminated tail line carried over from earlier reads.
    line: Vec<u8>,
    /// The spec's data buffer, as raw bytes; decoded once at dispatch.
    data: Vec<u8>,
    /// The spec's event type buffer (empty means "message").
    event_type: String,
    /// The spec's last event ID buffer (None is the empty string).
    id_buffer: Option<String>,
    /// The spec's last event ID string, committed at each dispatch.
    last_event_id: Option<String>,
    /// A valid `retry` seen since the last dispatch.
    event_retry: Option<u64>,
    reconnection_time: Option<u64>,
    comments: u64,
    failed: Option<SseError>,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    /// A parser with the default [`Limits`].
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    pub fn with_limits(limits: Limits) -> Self {
        Self {
            limits,
            bom: Bom::Matching(0),
            pending_cr: false,
            line: Vec::new(),
            data: Vec::new(),
            event_type: String::new(),
            id_buffer: None,
            last_event_id: None,
            event_retry: None,
            reconnection_time: None,
            comments: 0,
            failed: None,
        }
    }

    /// Feed one network read; dispatched events are appended to `out`.
    ///
    /// Events dispatched before a bound is broken are still appended when this returns `Err`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.feed_lines(chunk, out);
        if let Err(err) = &result {
            self.failed = Some(err.clone());
            // Release what the hostile stream made us hold.
            self.line = Vec::new();
            self.data = Vec::new();
            self.event_type = String::new();
        }
        result
    }

    /// End of stream: an unterminated event (no blank line yet) is discarded, per spec.
    ///
    /// The parser is then ready for a new stream (a reconnection): the BOM check is re-armed,
    /// an error is cleared, and the last-event-id and reconnection time carry over as an
    /// `EventSource`'s do. An `id:` from the discarded event does not.
    pub fn finish(&mut self) {
        self.bom = Bom::Matching(0);
        self.pending_cr = false;
        self.line.clear();
        self.data.clear();
        self.event_type.clear();
        self.id_buffer.clone_from(&self.last_event_id);
        self.event_retry = None;
        self.failed = None;
    }

    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// The last valid `retry:` value in milliseconds.
    pub fn reconnection_time(&self) -> Option<u64> {
        self.reconnection_time
    }

    /// Number of comment lines seen (keep-alives), useful for diagnostics.
    pub fn comments_seen(&self) -> u64 {
        self.comments
    }

    fn feed_lines(&mut self, mut chunk: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        if let Bom::Matching(seen) = self.bom {
            let seen = usize::from(seen);
            let rest = &BOM[seen..];
            let n = rest.len().min(chunk.len());
            if chunk[..n] == rest[..n] {
                chunk = &chunk[n..];
                if seen + n < BOM.len() {
                    self.bom = Bom::Matching((seen + n) as u8);
                    return Ok(());
                }
            } else {
                // Not a BOM after all: the held-back bytes start the first line.
                self.line.extend_from_slice(&BOM[..seen]);
            }
            self.bom = Bom::Done;
        }

        let mut start = 0;
        for end in memchr2_iter(b'\r', b'\n', chunk) {
            if mem::take(&mut self.pending_cr) && end == start && chunk[end] == b'\n' {
                start = end + 1;
                continue;
            }
            self.end_line(&chunk[start..end], out)?;
            self.pending_cr = chunk[end] == b'\r';
            start = end + 1;
        }

        let tail = &chunk[start..];
        if !tail.is_empty() {
            self.pending_cr = false;
            self.check_line_len(self.line.len() + tail.len())?;
            self.line.extend_from_slice(tail);
        }
        Ok(())
    }

    /// A line ending was found; `piece` is the part of the line inside the current read.
    fn end_line(&mut self, piece: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        if self.line.is_empty() {
            self.check_line_len(piece.len())?;
            return self.process_line(piece, out);
        }
        self.check_line_len(self.line.len() + piece.len())?;
        let mut line = mem::take(&mut self.line);
        line.extend_from_slice(piece);
        let result = self.process_line(&line, out);
        if line.capacity() <= RETAINED_LINE_CAPACITY {
            line.clear();
            self.line = line;
        }
        result
    }

    fn check_line_len(&self, len: usize) -> Result<(), SseError> {
        if len > self.limits.max_line_bytes {
            return Err(SseError::LineTooLong {
                limit: self.limits.max_line_bytes,
            });
        }
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let (name, value) = match memchr(b':', line) {
            Some(0) => {
                self.comments += 1;
                return Ok(());
            }
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match name {
            b"data" => {
                if self.data.len() + value.len() > self.limits.max_event_bytes {
                    return Err(SseError::EventTooLarge {
                        limit: self.limits.max_event_bytes,
                    });
                }
                self.data.reserve(value.len() + 1);
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            b"event" => {
                self.event_type.clear();
                self.event_type.push_str(&String::from_utf8_lossy(value));
            }
            b"id" if memchr(0, value).is_none() => {
                self.id_buffer = if value.is_empty() {
                    None
                } else {
                    Some(String::from_utf8_lossy(value).into_owned())
                };
            }
            b"retry" => {
                if let Some(ms) = parse_retry(value) {
                    self.event_retry = Some(ms);
                    self.reconnection_time = Some(ms);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        // The spec commits the id before the empty-data check, so an id-only block still counts.
        if self.last_event_id != self.id_buffer {
            self.last_event_id.clone_from(&self.id_buffer);
        }
        let retry = self.event_retry.take();
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        let mut data = mem::take(&mut self.data);
        data.pop(); // every data line ended with LF, so the last byte is one
        let data = match String::from_utf8(data) {
            Ok(text) => text,
            Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
        };
        let event = if self.event_type.is_empty() {
            None
        } else {
            Some(mem::take(&mut self.event_type))
        };
        out.push(Event {
            event,
            data,
            id: self.last_event_id.clone(),
            retry,
        });
    }
}

/// The spec's `retry` rule: ASCII digits only (so not empty); a value past `u64` saturates.
fn parse_retry(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0_u64, |ms, digit| {
        ms.saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(event: Option<&str>, data: &str, id: Option<&str>, retry: Option<u64>) -> Event {
        Event {
            event: event.map(str::to_owned),
            data: data.to_owned(),
            id: id.map(str::to_owned),
            retry,
        }
    }

    fn msg(data: &str) -> Event {
        ev(None, data, None, None)
    }

    /// Feeds each chunk in turn, then ends the stream.
    fn parse_chunks(chunks: &[&[u8]]) -> Vec<Event> {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, &mut out).unwrap();
        }
        parser.finish();
        out
    }

    fn parse(bytes: &[u8]) -> Vec<Event> {
        parse_chunks(&[bytes])
    }

    fn data_of(events: &[Event]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    // ---- UTF-8 -------------------------------------------------------------------------------

    #[test]
    fn utf8_is_decoded() {
        assert_eq!(parse("data:döm …🙂\n\n".as_bytes()), vec![msg("döm …🙂")]);
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        // A lone continuation byte, a truncated 3-byte sequence, an overlong encoding.
        let events = parse(b"data:a\x80b\ndata:\xE2\x82\ndata:\xC0\xAF\n\n");
        assert_eq!(events, vec![msg("a\u{FFFD}b\n\u{FFFD}\n\u{FFFD}\u{FFFD}")]);
        let named = parse(b"event:\xFFx\nid:\xF0\x9F\ndata:1\n\n");
        assert_eq!(
            named,
            vec![ev(Some("\u{FFFD}x"), "1", Some("\u{FFFD}"), None)]
        );
    }

    #[test]
    fn multibyte_character_split_across_reads() {
        let bytes = "data: é🙂\n\n".as_bytes();
        for cut in 0..=bytes.len() {
            let events = parse_chunks(&[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(events, vec![msg("é🙂")], "cut at {cut}");
        }
    }

    // ---- BOM ---------------------------------------------------------------------------------

    #[test]
    fn leading_bom_is_stripped() {
        assert_eq!(parse(b"\xEF\xBB\xBFdata:1\n\n"), vec![msg("1")]);
    }

    #[test]
    fn bom_split_across_reads_is_stripped() {
        let bytes = b"\xEF\xBB\xBFdata:1\n\n";
        for a in 0..=4 {
            for b in a..=4 {
                let events = parse_chunks(&[&bytes[..a], &bytes[a..b], &bytes[b..]]);
                assert_eq!(events, vec![msg("1")], "cuts at {a},{b}");
            }
        }
        let byte_by_byte: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_chunks(&byte_by_byte), vec![msg("1")]);
    }

    #[test]
    fn partial_bom_is_ordinary_content() {
        // EF BB then 'd': not a BOM, so the two bytes decode to one U+FFFD in the field name.
        assert!(parse(b"\xEF\xBBdata:1\n\n").is_empty());
        assert_eq!(
            parse_chunks(&[b"\xEF", b"\xBB", b"data:1\n\ndata:2\n\n"]),
            vec![msg("2")]
        );
        assert_eq!(parse_chunks(&[b"\xEF", b"\n\ndata:2\n\n"]), vec![msg("2")]);
    }

    #[test]
    fn bom_check_rearms_after_finish() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.feed(b"\xEF\xBB\xBFdata:1\n\n", &mut out).unwrap();
        parser.finish();
        parser.feed(b"\xEF\xBB", &mut out).unwrap();
        parser.feed(b"\xBFdata:2\n\n", &mut out).unwrap();
        assert_eq!(out, vec![msg("1"), msg("2")]);
    }

    /// WPT format-bom: only a BOM at the very start is stripped.
    #[test]
    fn wpt_format_bom() {
        let events = parse(b"\xEF\xBB\xBFdata:1\n\n\xEF\xBB\xBFdata:2\n\ndata:3\n\n\n");
        assert_eq!(data_of(&events), ["1", "3"]);
    }

    /// WPT format-bom-2: of two leading BOMs only one is stripped.
    #[test]
    fn wpt_format_bom_2() {
        let events = parse(b"\xEF\xBB\xBF\xEF\xBB\xBFdata:1\n\ndata:2\n\ndata:3\n\n\n");
        assert_eq!(data_of(&events), ["2", "3"]);
    }

    // ---- line endings ------------------------------------------------------------------------

    #[test]
    fn lf_cr_and_crlf_all_end_lines() {
        let expected = vec![msg("a\nb\nc")];
        assert_eq!(parse(b"data:a\ndata:b\ndata:c\n\n"), expected);
        assert_eq!(parse(b"data:a\rdata:b\rdata:c\r\r"), expected);
        assert_eq!(parse(b"data:a\r\ndata:b\r\ndata:c\r\n\r\n"), expected);
        assert_eq!(parse(b"data:a\r\ndata:b\rdata:c\n\r\n"), expected);
    }

    #[test]
    fn lf_cr_is_two_line_endings() {
        // "\n\r" is LF then CR: the CR is an empty line, so it dispatches.
        assert_eq!(parse(b"data:a\n\rdata:b\n\n"), vec![msg("a"), msg("b")]);
    }

    #[test]
    fn cr_at_end_of_read_dispatches_without_waiting() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.feed(b"data:a\r\r", &mut out).unwrap();
        assert_eq!(out, vec![msg("a")], "dispatched before the next read");
        // The LF opening the next read completes the CRLF; it is not another empty line.
        parser.feed(b"\ndata:b\r", &mut out).unwrap();
        parser.feed(b"\n", &mut out).unwrap();
        assert_eq!(out.len(), 1);
        parser.feed(b"\r\n", &mut out).unwrap();
        assert_eq!(out, vec![msg("a"), msg("b")]);
    }

    #[test]
    fn cr_lf_split_survives_an_empty_read() {
        let events = parse_chunks(&[b"data:a\r", b"", b"\n", b"data:b\n\n"]);
        assert_eq!(events, vec![msg("a\nb")]);
    }

    #[test]
    fn only_one_lf_is_absorbed_after_cr() {
        let events = parse_chunks(&[b"data:a\r", b"\n\n"]);
        assert_eq!(events, vec![msg("a")]);
    }

    /// WPT format-newlines.
    #[test]
    fn wpt_format_newlines() {
        let events = parse(b"data:test\r\ndata\ndata:test\r\n\r\n");
        assert_eq!(events, vec![msg("test\n\ntest")]);
    }

    // ---- dispatch ----------------------------------------------------------------------------

    #[test]
    fn empty_line_dispatches_and_extra_empty_lines_do_not() {
        assert_eq!(
            parse(b"\n\ndata:1\n\n\n\n\ndata:2\n\n"),
            vec![msg("1"), msg("2")]
        );
    }

    #[test]
    fn data_lines_join_with_lf_and_one_trailing_lf_is_stripped() {
        assert_eq!(parse(b"data:a\ndata:b\n\n"), vec![msg("a\nb")]);
        assert_eq!(parse(b"data:a\ndata:\n\n"), vec![msg("a\n")]);
        assert_eq!(parse(b"data\ndata\n\n"), vec![msg("\n")]);
    }

    #[test]
    fn empty_data_buffer_dispatches_nothing_but_resets_type() {
        let events = parse(b"event:x\n\ndata:y\n\nevent:z\nid:1\nretry:5\n\n");
        assert_eq!(events, vec![msg("y")]);
    }

    #[test]
    fn event_type_resets_after_each_dispatch() {
        let events = parse(b"event:a\ndata:1\n\ndata:2\n\n");
        assert_eq!(events, vec![ev(Some("a"), "1", None, None), msg("2")]);
        assert_eq!(events[0].event_type(), "a");
        assert_eq!(events[1].event_type(), "message");
    }

    #[test]
    fn data_before_blank_line_is_discarded_at_eof() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.feed(b"data:1\n\ndata:2\n", &mut out).unwrap();
        parser.finish();
        parser.feed(b"\n", &mut out).unwrap();
        assert_eq!(
            out,
            vec![msg("1")],
            "the blank line of a new stream finds nothing"
        );
    }

    #[test]
    fn unterminated_line_is_discarded_at_eof() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.feed(b"data:1", &mut out).unwrap();
        parser.finish();
        parser.feed(b"\n\ndata:2\n\n", &mut out).unwrap();
        assert_eq!(out, vec![msg("2")]);
    }

    /// WPT format-data-before-final-empty-line: the unterminated event and its id vanish.
    #[test]
    fn wpt_format_data_before_final_empty_line() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        let stream = b"retry:1000\ndata:test1\n\nid:test\ndata:test2\n";
        parser.feed(stream, &mut out).unwrap();
        parser.finish();
        assert_eq!(out, vec![ev(None, "test1", None, Some(1000))]);
        assert_eq!(parser.last_event_id(), None);
        // The reconnection replays the stream; the discarded id must not leak into it.
        parser.feed(stream, &mut out).unwrap();
        assert_eq!(out[1], ev(None, "test1", None, Some(1000)));
    }

    /// WPT event-data, fed in the same pieces the test server writes.
    #[test]
    fn wpt_event_data() {
        let writes: [&[u8]; 16] = [
            b"data:msg",
            b"\n",
            b"data:msg",
            b"\n\n",
            b":",
            b"\n",
            b"falsefield:msg",
            b"\n\n",
            b"falsefield:msg",
            b"\n",
            b"Data:data",
            b"\n\n",
            b"data",
            b"\n\n",
            b"data:end",
            b"\n\n",
        ];
        let events = parse_chunks(&writes);
        assert_eq!(data_of(&events), ["msg\nmsg", "", "end"]);
    }

    /// WPT format-field-data.
    #[test]
    fn wpt_format_field_data() {
        let events = parse(b"data:\n\ndata\ndata\n\ndata:test\n\n\n");
        assert_eq!(data_of(&events), ["", "\n", "test"]);
    }

    /// WPT format-null-character: NUL is ordinary data.
    #[test]
    fn wpt_format_null_character() {
        assert_eq!(parse(b"data:\0\n\n\n\n"), vec![msg("\0")]);
    }

    /// WPT format-utf-8.
    #[test]
    fn wpt_format_utf_8() {
        assert_eq!(parse(b"data:ok\xE2\x80\xA6\n\n\n"), vec![msg("ok…")]);
    }

    // ---- comments ----------------------------------------------------------------------------

    #[test]
    fn comments_are_ignored_and_counted() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser
            .feed(b": keep-alive\n\n:\ndata:1\n: inside\n\n:ping", &mut out)
            .unwrap();
        assert_eq!(out, vec![msg("1")]);
        assert_eq!(
            parser.comments_seen(),
            3,
            "the unterminated comment is not a line yet"
        );
        parser.feed(b"\r", &mut out).unwrap();
        assert_eq!(parser.comments_seen(), 4);
    }

    /// WPT format-comments (including the 2 KiB comments).
    #[test]
    fn wpt_format_comments() {
        let long = "x".repeat(2048);
        let stream =
            format!("data:1\r:\0\n:\r\ndata:2\n:{long}\rdata:3\n:data:fail\r:{long}\ndata:4\n\n");
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.feed(stream.as_bytes(), &mut out).unwrap();
        assert_eq!(out, vec![msg("1\n2\n3\n4")]);
        assert_eq!(parser.comments_seen(), 5);
    }

    // ---- field parsing -----------------------------------------------------------------------

    #[test]
    fn exactly_one_leading_space_is_removed() {
        assert_eq!(parse(b"data: a\n\n"), vec![msg("a")]);
        assert_eq!(parse(b"data:a\n\n"), vec![msg("a")]);
        assert_eq!(parse(b"data:  a \n\n"), vec![msg(" a ")]);
        assert_eq!(parse(b"data:\ta\n\n"), vec![msg("\ta")]);
    }

    #[test]
    fn value_keeps_colons_after_the_first() {
        assert_eq!(parse(b"data: a: b:c\n\n"), vec![msg("a: b:c")]);
        assert_eq!(
            parse(b"event: x:y\ndata:1\n\n"),
            vec![ev(Some("x:y"), "1", None, None)]
        );
    }

    #[test]
    fn line_without_colon_is_field_with_empty_value() {
        assert_eq!(parse(b"data\n\n"), vec![msg("")]);
        assert_eq!(
            parse(b"id:7\ndata:1\n\nid\ndata:2\n\n"),
            vec![ev(None, "1", Some("7"), None), msg("2")]
        );
    }

    #[test]
    fn field_names_are_case_sensitive_and_exact() {
        assert!(parse(b"Data:1\ndata :2\n data:3\nDATA:4\n\n").is_empty());
    }

    #[test]
    fn unknown_fields_are_ignored() {
        assert_eq!(
            parse(b"data:1\nfoo\nfoo: bar\nretryx:5\ndata:2\n\n"),
            vec![msg("1\n2")]
        );
    }

    /// WPT format-field-parsing.
    #[test]
    fn wpt_format_field_parsing() {
        let stream = b"data:\0\ndata:  2\rData:1\ndata\0:2\ndata:1\r\0data:4\nda-ta:3\rdata_5\ndata:3\rdata:\r\n data:32\ndata:4\n\n";
        assert_eq!(parse(stream), vec![msg("\0\n 2\n1\n3\n\n4")]);
    }

    /// WPT format-leading-space.
    #[test]
    fn wpt_format_leading_space() {
        let events = parse(b"data:\ttest\rdata: \ndata:test\n\n\n");
        assert_eq!(events, vec![msg("\ttest\n\ntest")]);
    }

    /// WPT format-field-unknown.
    #[test]
    fn wpt_format_field_unknown() {
        let stream =
            b"data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test\n\n\n";
        assert_eq!(parse(stream), vec![msg("test\n\ntest")]);
    }

    // ---- event -------------------------------------------------------------------------------

    #[test]
    fn event_field_sets_the_type_and_the_last_one_wins() {
        let events = parse(b"event:a\nevent: b\ndata:1\n\n");
        assert_eq!(events, vec![ev(Some("b"), "1", None, None)]);
    }

    /// WPT format-field-event.
    #[test]
    fn wpt_format_field_event() {
        let events = parse(b"event:test\ndata:x\n\ndata:x\n\n\n");
        assert_eq!(events, vec![ev(Some("test"), "x", None, None), msg("x")]);
    }

    /// WPT format-field-event-empty: an empty type means "message".
    #[test]
    fn wpt_format_field_event_empty() {
        let events = parse(b"event: \ndata:data\n\n\n");
        assert_eq!(events, vec![msg("data")]);
        assert_eq!(events[0].event_type(), "message");
    }

    // ---- id ----------------------------------------------------------------------------------

    #[test]
    fn id_persists_across_events() {
        let events = parse(b"id: 1\ndata:a\n\ndata:b\n\nid:2\ndata:c\n\n");
        assert_eq!(
            events,
            vec![
                ev(None, "a", Some("1"), None),
                ev(None, "b", Some("1"), None),
                ev(None, "c", Some("2"), None),
            ]
        );
    }

    #[test]
    fn id_with_nul_is_ignored() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser
            .feed(
                b"id:ok\ndata:1\n\nid:\0\0\ndata:2\n\nid:x\0x\ndata:3\n\nid: \0\n\n",
                &mut out,
            )
            .unwrap();
        assert!(out.iter().all(|e| e.id.as_deref() == Some("ok")));
        assert_eq!(parser.last_event_id(), Some("ok"));
    }

    #[test]
    fn id_in_a_data_less_block_still_updates_last_event_id() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.feed(b"id:9\n\n", &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(parser.last_event_id(), Some("9"));
        parser
            .feed(b"data:x\n\nid:\n\ndata:y\n\n", &mut out)
            .unwrap();
        assert_eq!(out, vec![ev(None, "x", Some("9"), None), msg("y")]);
        assert_eq!(parser.last_event_id(), None);
    }

    #[test]
    fn id_commits_only_at_dispatch() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.feed(b"id:1\ndata:a\n\nid:2\n", &mut out).unwrap();
        assert_eq!(parser.last_event_id(), Some("1"));
        parser.feed(b"\n", &mut out).unwrap();
        assert_eq!(parser.last_event_id(), Some("2"));
    }

    /// WPT format-field-id and format-field-id-2: the id survives a reconnection.
    #[test]
    fn wpt_format_field_id_and_id_2() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser
            .feed("id: …\nretry: 200\ndata: hello\n\n".as_bytes(), &mut out)
            .unwrap();
        parser.finish();
        assert_eq!(out, vec![ev(None, "hello", Some("…"), Some(200))]);
        // The server echoes the Last-Event-ID header back without an id field.
        parser.feed("data: …\n\n".as_bytes(), &mut out).unwrap();
        assert_eq!(out[1], ev(None, "…", Some("…"), None));
        assert_eq!(parser.reconnection_time(), Some(200));
    }

    /// WPT format-field-id-3: persists, changes and persists, resets.
    #[test]
    fn wpt_format_field_id_3() {
        let ids = |stream: &[u8]| -> Vec<Option<String>> {
            parse(stream).into_iter().map(|e| e.id).collect()
        };
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(ids(b"id: 1\ndata: 1\n\ndata:2\n\n"), [s("1"), s("1")]);
        assert_eq!(
            ids(b"id: 1\ndata: 1\n\nid: 2\ndata:2\n\ndata:3\n\n"),
            [s("1"), s("2"), s("2")]
        );
        assert_eq!(
            ids(b"id: 1\ndata: 1\n\nid:\ndata:2\n\ndata:3\n\n"),
            [s("1"), None, None]
        );
    }

    /// WPT format-field-id-null: an id containing NUL anywhere is ignored.
    #[test]
    fn wpt_format_field_id_null() {
        for id in [&b"\0\0"[..], b"x\0", b"\0x", b"x\0x", b" \0"] {
            let mut stream = b"id: ".to_vec();
            stream.extend_from_slice(id);
            stream.extend_from_slice(b"\nretry: 200\ndata: hello\n\n");
            assert_eq!(parse(&stream), vec![ev(None, "hello", None, Some(200))]);
        }
    }

    // ---- retry -------------------------------------------------------------------------------

    #[test]
    fn retry_accepts_only_ascii_digits() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.feed(b"retry:2000\n\n", &mut out).unwrap();
        assert_eq!(parser.reconnection_time(), Some(2000));
        for bogus in [
            "a0", "1234x", "0x10", "1.5", "+1", "-1", "1_000", "  5", "٣",
        ] {
            parser
                .feed(format!("retry:{bogus}\n\n").as_bytes(), &mut out)
                .unwrap();
            assert_eq!(parser.reconnection_time(), Some(2000), "retry:{bogus}");
        }
        parser.feed(b"retry: 1234\n\n", &mut out).unwrap();
        assert_eq!(parser.reconnection_time(), Some(1234));
        assert!(out.is_empty());
    }

    #[test]
    fn retry_value_belongs_to_the_event_being_built() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser
            .feed(
                b"retry:10\ndata:a\n\ndata:b\n\nretry:20\n\ndata:c\n\n",
                &mut out,
            )
            .unwrap();
        assert_eq!(out, vec![ev(None, "a", None, Some(10)), msg("b"), msg("c")]);
        assert_eq!(parser.reconnection_time(), Some(20));
    }

    #[test]
    fn retry_overflow_saturates() {
        let events = parse(b"retry:99999999999999999999999\ndata:x\n\n");
        assert_eq!(events[0].retry, Some(u64::MAX));
    }

    /// WPT format-field-retry: leading zeros are decimal, not octal.
    #[test]
    fn wpt_format_field_retry() {
        let events = parse(b"retry:03000\ndata:x\n\n\n");
        assert_eq!(events, vec![ev(None, "x", None, Some(3000))]);
    }

    /// WPT format-field-retry-bogus.
    #[test]
    fn wpt_format_field_retry_bogus() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser
            .feed(b"retry:2000\nretry:1000x\ndata:x\n\n\n", &mut out)
            .unwrap();
        assert_eq!(out, vec![ev(None, "x", None, Some(2000))]);
        assert_eq!(parser.reconnection_time(), Some(2000));
    }

    /// WPT format-field-retry-empty: a bare `retry` is ignored.
    #[test]
    fn wpt_format_field_retry_empty() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.feed(b"retry\ndata:test\n\n\n", &mut out).unwrap();
        assert_eq!(out, vec![msg("test")]);
        assert_eq!(parser.reconnection_time(), None);
    }

    // ---- provider streams --------------------------------------------------------------------

    const OPENAI: &str = concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        ": OPENROUTER PROCESSING\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n",
        "data: [DONE]\n\n",
    );

    const ANTHROPIC: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\n",
        "data: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );

    #[test]
    fn openai_stream() {
        let events = parse(OPENAI.as_bytes());
        assert_eq!(events.len(), 5);
        assert!(events.iter().all(|e| e.event.is_none() && e.id.is_none()));
        assert!(events[1].data.contains("\"content\":\"Hi\""));
        assert!(events[3].data.contains("\"total_tokens\":11"));
        assert_eq!(events[4].data, "[DONE]");
    }

    #[test]
    fn anthropic_stream() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        // Network reads cut lines anywhere.
        for chunk in ANTHROPIC.as_bytes().chunks(37) {
            parser.feed(chunk, &mut out).unwrap();
        }
        let types: Vec<&str> = out.iter().map(Event::event_type).collect();
        assert_eq!(
            types,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        assert!(out[5].data.contains("\"output_tokens\":15"));
        assert_eq!(out[6].data, "{\"type\":\"message_stop\"}");
    }

    #[test]
    fn gemini_stream_with_crlf_and_no_done_sentinel() {
        let stream = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"}}]}\r\n\r\n",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"}],\"role\":\"model\"},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":2,\"totalTokenCount\":5}}\r\n\r\n",
        );
        let bytes = stream.as_bytes();
        for cut in 0..=bytes.len() {
            let events = parse_chunks(&[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(events.len(), 2, "cut at {cut}");
            assert!(events[1].data.ends_with("\"totalTokenCount\":5}}"));
        }
    }

    // ---- limits ------------------------------------------------------------------------------

    fn limited(max_line_bytes: usize, max_event_bytes: usize) -> Parser {
        Parser::with_limits(Limits {
            max_line_bytes,
            max_event_bytes,
        })
    }

    #[test]
    fn default_limits() {
        let limits = Limits::default();
        assert_eq!(limits.max_line_bytes, 1024 * 1024);
        assert_eq!(limits.max_event_bytes, 8 * 1024 * 1024);
    }

    #[test]
    fn line_at_the_limit_is_accepted() {
        let mut parser = limited(8, 100);
        let mut out = Vec::new();
        parser.feed(b"data:123\n", &mut out).unwrap();
        parser.feed(b"data:", &mut out).unwrap();
        parser.feed(b"456\n\n", &mut out).unwrap();
        assert_eq!(out, vec![msg("123\n456")]);
    }

    #[test]
    fn line_over_the_limit_fails_whole_or_split() {
        let err = SseError::LineTooLong { limit: 8 };
        let mut out = Vec::new();
        assert_eq!(
            limited(8, 100).feed(b"data:1234\n", &mut out),
            Err(err.clone())
        );
        let mut parser = limited(8, 100);
        parser.feed(b"data:", &mut out).unwrap();
        assert_eq!(parser.feed(b"1234\n", &mut out), Err(err.clone()));
        // Without a line ending in sight: fail as soon as the tail is too long.
        let mut parser = limited(8, 100);
        parser.feed(b"data:123", &mut out).unwrap();
        assert_eq!(parser.feed(b"4", &mut out), Err(err.clone()));
        // Comments are lines too.
        assert_eq!(limited(8, 100).feed(b":12345678\n", &mut out), Err(err));
        assert!(out.is_empty());
    }

    #[test]
    fn event_data_limit() {
        let mut out = Vec::new();
        let mut parser = limited(100, 7);
        parser.feed(b"data:abc\ndata:def\n\n", &mut out).unwrap();
        assert_eq!(out, vec![msg("abc\ndef")], "exactly 7 bytes is accepted");
        let result = parser.feed(b"data:abc\ndata:defg\n\n", &mut out);
        assert_eq!(result, Err(SseError::EventTooLarge { limit: 7 }));
        // Many small lines add up.
        let mut parser = limited(100, 7);
        let result = parser.feed(
            b"data\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\n",
            &mut out,
        );
        assert_eq!(result, Err(SseError::EventTooLarge { limit: 7 }));
    }

    #[test]
    fn events_before_an_error_are_delivered_and_the_error_sticks_until_finish() {
        let mut parser = limited(8, 100);
        let mut out = Vec::new();
        let err = SseError::LineTooLong { limit: 8 };
        assert_eq!(
            parser.feed(b"data:1\n\ndata:123456789\n\ndata:2\n\n", &mut out),
            Err(err.clone())
        );
        assert_eq!(out, vec![msg("1")]);
        assert_eq!(parser.feed(b"data:3\n\n", &mut out), Err(err));
        assert_eq!(out.len(), 1);
        parser.finish();
        parser.feed(b"data:4\n\n", &mut out).unwrap();
        assert_eq!(out, vec![msg("1"), msg("4")]);
    }

    #[test]
    fn errors_display_their_limit() {
        let line = SseError::LineTooLong { limit: 3 }.to_string();
        let event = SseError::EventTooLarge { limit: 4 }.to_string();
        assert!(line.contains("line") && line.contains('3'), "{line}");
        assert!(event.contains("event") && event.contains('4'), "{event}");
    }

    // ---- properties --------------------------------------------------------------------------

    /// What a whole stream produces: events, then the parser's state after `finish`.
    #[derive(Debug, PartialEq, Eq)]
    struct Outcome {
        events: Vec<Event>,
        error: Option<SseError>,
        last_event_id: Option<String>,
        reconnection_time: Option<u64>,
        comments: u64,
    }

    fn run(limits: Limits, chunks: impl IntoIterator<Item = impl AsRef<[u8]>>) -> Outcome {
        let mut parser = Parser::with_limits(limits);
        let mut events = Vec::new();
        let mut error = None;
        for chunk in chunks {
            if let Err(err) = parser.feed(chunk.as_ref(), &mut events) {
                error = Some(err);
                break;
            }
        }
        let comments = parser.comments_seen();
        parser.finish();
        Outcome {
            events,
            error,
            last_event_id: parser.last_event_id().map(str::to_owned),
            reconnection_time: parser.reconnection_time(),
            comments,
        }
    }

    fn split_at_cuts(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut prev = 0;
        for cut in cuts {
            chunks.push(bytes[prev..cut].to_vec());
            prev = cut;
        }
        chunks.push(bytes[prev..].to_vec());
        chunks
    }

    /// A direct transcription of the spec over characters: decode the whole stream, then split.
    fn reference(bytes: &[u8]) -> Outcome {
        let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
        let text = String::from_utf8_lossy(bytes);
        let mut lines = Vec::new();
        let mut current = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => {
                    chars.next_if_eq(&'\n');
                    lines.push(mem::take(&mut current));
                }
                '\n' => lines.push(mem::take(&mut current)),
                c => current.push(c),
            }
        }
        let (mut data, mut kind, mut id_buffer, mut last_id) =
            (String::new(), String::new(), String::new(), String::new());
        let (mut event_retry, mut reconnection_time, mut comments) = (None, None, 0);
        let mut events = Vec::new();
        for line in lines {
            if line.is_empty() {
                last_id.clone_from(&id_buffer);
                let retry = event_retry.take();
                if data.is_empty() {
                    kind.clear();
                    continue;
                }
                data.pop();
                events.push(Event {
                    event: (!kind.is_empty()).then(|| mem::take(&mut kind)),
                    data: mem::take(&mut data),
                    id: (!last_id.is_empty()).then(|| last_id.clone()),
                    retry,
                });
                continue;
            }
            if line.starts_with(':') {
                comments += 1;
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line.as_str(), ""),
            };
            match field {
                "data" => {
                    data.push_str(value);
                    data.push('\n');
                }
                "event" => kind = value.to_owned(),
                "id" if !value.contains('\0') => id_buffer = value.to_owned(),
                "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                    let ms = value.parse::<u64>().unwrap_or(u64::MAX);
                    event_retry = Some(ms);
                    reconnection_time = Some(ms);
                }
                _ => {}
            }
        }
        Outcome {
            events,
            error: None,
            last_event_id: (!last_id.is_empty()).then_some(last_id),
            reconnection_time,
            comments,
        }
    }

    /// Streams built from SSE lines with mixed line endings, plus hostile bytes.
    fn stream() -> impl Strategy<Value = Vec<u8>> {
        let name = prop_oneof![
            Just("data"),
            Just("data"),
            Just("event"),
            Just("id"),
            Just("retry"),
            Just("Data"),
            Just("foo"),
            Just(""),
        ];
        let sep = prop_oneof![Just(""), Just(":"), Just(": "), Just(":  ")];
        let value = prop_oneof![
            "[a-z0-9 :\u{0}é🙂\u{FEFF}]{0,6}",
            "[0-9]{1,25}",
            Just(String::new()),
        ];
        let field = (name, sep, value).prop_map(|(n, s, v)| format!("{n}{s}{v}").into_bytes());
        let line = prop_oneof![
            6 => field,
            1 => "[ a-z:]{0,5}".prop_map(|c| format!(":{c}").into_bytes()),
            3 => Just(Vec::new()),
            1 => proptest::collection::vec(any::<u8>(), 0..4),
        ];
        let ending = prop_oneof![Just(&b"\n"[..]), Just(&b"\r"[..]), Just(&b"\r\n"[..])];
        let bom = prop_oneof![Just(&b""[..]), Just(&BOM[..]), Just(&BOM[..2])];
        (
            bom,
            proptest::collection::vec((line, ending), 0..24),
            proptest::collection::vec(any::<u8>(), 0..3),
        )
            .prop_map(|(bom, lines, tail)| {
                let mut bytes = bom.to_vec();
                for (line, ending) in lines {
                    bytes.extend_from_slice(&line);
                    bytes.extend_from_slice(ending);
                }
                bytes.extend_from_slice(&tail);
                bytes
            })
    }

    /// Arbitrary bytes drawn mostly from the ones that matter to the grammar.
    fn noise() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            3 => proptest::sample::select(&b"\r\n\r\n: dataeventidretry0123\xEF\xBB\xBF\x00\xFF\xE2\x82"[..]),
            1 => any::<u8>(),
        ];
        proptest::collection::vec(byte, 0..160)
    }

    fn check_split_invariance(bytes: &[u8], limits: Limits, cuts: &[usize]) {
        let whole = run(limits, [bytes]);
        for cut in 0..=bytes.len() {
            let split = run(limits, [&bytes[..cut], &bytes[cut..]]);
            assert_eq!(split, whole, "split at {cut} of {bytes:?}");
        }
        assert_eq!(run(limits, bytes.chunks(1)), whole, "byte by byte");
        assert_eq!(
            run(limits, split_at_cuts(bytes, cuts)),
            whole,
            "cuts {cuts:?}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn prop_matches_the_spec_reference(bytes in prop_oneof![stream(), noise()]) {
            prop_assert_eq!(run(Limits::default(), [&bytes]), reference(&bytes));
        }

        #[test]
        fn prop_streams_parse_the_same_however_split(
            bytes in stream(),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            check_split_invariance(&bytes, Limits::default(), &cuts);
        }

        #[test]
        fn prop_noise_parses_the_same_however_split(
            bytes in noise(),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            check_split_invariance(&bytes, Limits::default(), &cuts);
        }

        #[test]
        fn prop_limits_trip_the_same_however_split(
            bytes in prop_oneof![stream(), noise()],
            max_line_bytes in 0_usize..12,
            max_event_bytes in 0_usize..24,
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let limits = Limits { max_line_bytes, max_event_bytes };
            check_split_invariance(&bytes, limits, &cuts);
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic_and_respect_limits(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            chunk_len in 1_usize..64,
            max_line_bytes in 0_usize..64,
            max_event_bytes in 0_usize..64,
        ) {
            let mut parser = Parser::with_limits(Limits { max_line_bytes, max_event_bytes });
            let mut out = Vec::new();
            let mut failed = None;
            for chunk in bytes.chunks(chunk_len) {
                match (parser.feed(chunk, &mut out), &failed) {
                    (Err(err), None) => failed = Some(err),
                    (result, Some(first)) => prop_assert_eq!(result, Err(first.clone())),
                    (Ok(()), None) => {}
                }
            }
            parser.finish();
            // The bound is on bytes as received; U+FFFD (3 bytes) may stand for one of them.
            for event in &out {
                prop_assert!(event.data.len() <= 3 * max_event_bytes);
            }
            // `finish` clears an error: a new stream parses again.
            let before = out.len();
            prop_assert!(parser.feed(b"\n\n", &mut out).is_ok());
            prop_assert_eq!(out.len(), before);
        }
    }
}
