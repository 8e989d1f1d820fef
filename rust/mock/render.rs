//! What the protocol renderers share: JSON string literals written straight into a buffer,
//! ids from a counter, and streams rendered ahead of time with the offsets the server paces
//! them by and the faults a script injects between their chunks.

use super::reply::Usage;

/// What identifies one response on the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta<'a> {
    /// Per-server sequence number, scrambled into the response's ids.
    pub seq: u64,
    pub created: u64,
    pub model: &'a str,
}

impl Meta<'_> {
    /// A random-looking id, unique per response (splitmix64 of the sequence number).
    pub fn id(&self) -> u64 {
        let mut z = self.seq.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// What a stream sends besides the answer's chunks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamShape<'a> {
    pub finish_reason: &'a str,
    pub usage: Usage,
    pub faults: Faults,
}

/// One event of a rendered stream, as far as pacing and the tests care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind<'a> {
    /// Opens the response: `OpenAI`'s role chunk, Anthropic's `message_start` and `ping`.
    Role,
    /// A chunk of the answer, with the text whose tokens it takes to generate.
    Content(&'a str),
    /// Framing around chunks, such as a tool call's name or a content block's start.
    Frame,
    Malformed,
    /// The protocol's in-stream error (`error_after`).
    Error,
    Finish,
    Usage,
    Done,
}

/// How a rendered stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Complete,
    /// Cut by `truncate_after`: no finish, usage or closing event.
    Truncated,
    /// Ended by the error event of `error_after`.
    Errored,
}

/// Faults a script injects into a stream, each after that many answer chunks (past the last
/// chunk: right after it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Faults {
    pub malformed: Option<usize>,
    pub truncate: Option<usize>,
    pub error: Option<usize>,
}

/// How a protocol shows the faults of [`Faults`].
pub(crate) trait FaultEvents {
    /// An event cut off inside its JSON, as a broken proxy or provider bug would send it.
    fn malformed(&self, buf: &mut Vec<u8>);
    /// The error a provider sends after the 200 head when it fails mid-answer.
    fn error(&self, buf: &mut Vec<u8>);
}

/// A stream rendered ahead of time: all events back to back, and where each one ends.
#[derive(Debug)]
pub(crate) struct RenderedStream<'a> {
    pub bytes: Vec<u8>,
    pub events: Vec<(EventKind<'a>, usize)>,
    pub ending: Ending,
    faults: Faults,
    /// Answer chunks written so far.
    chunks: usize,
}

impl<'a> RenderedStream<'a> {
    pub fn new(bytes: usize, events: usize, faults: Faults) -> Self {
        RenderedStream {
            bytes: Vec::with_capacity(bytes),
            events: Vec::with_capacity(events),
            ending: Ending::Complete,
            faults,
            chunks: 0,
        }
    }

    /// Marks the end of the event just written to `bytes`.
    pub fn end_event(&mut self, kind: EventKind<'a>) {
        if let EventKind::Content(_) = kind {
            self.chunks += 1;
        }
        self.events.push((kind, self.bytes.len()));
    }

    /// Called before each answer chunk and once after the last (`after_last`): writes the faults
    /// due at this point. `false` means the stream ends here.
    pub fn proceed(&mut self, shown: &impl FaultEvents, after_last: bool) -> bool {
        let sent = self.chunks;
        let due = |at: Option<usize>| at.is_some_and(|n| n == sent || (after_last && n > sent));
        if due(self.faults.malformed) {
            shown.malformed(&mut self.bytes);
            self.end_event(EventKind::Malformed);
        }
        if due(self.faults.truncate) {
            self.ending = Ending::Truncated;
            return false;
        }
        if due(self.faults.error) {
            shown.error(&mut self.bytes);
            self.end_event(EventKind::Error);
            self.ending = Ending::Errored;
            return false;
        }
        true
    }
}

/// Appends `s` as a JSON string literal.
pub(crate) fn push_json_str(buf: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        buf.extend_from_slice(escaped);
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_like_serde() {
        for s in [
            "plain",
            "q\"b\\",
            "line\nfeed\r\ttab",
            "\u{1}\u{1f}\u{7f}",
            "é✓😀",
            "",
        ] {
            let mut buf = Vec::new();
            push_json_str(&mut buf, s);
            assert_eq!(serde_json::from_slice::<String>(&buf).unwrap(), s);
        }
    }

    #[test]
    fn ids_are_unique() {
        let ids: std::collections::HashSet<u64> = (0..10_000)
            .map(|seq| {
                Meta {
                    seq,
                    created: 0,
                    model: "m",
                }
                .id()
            })
            .collect();
        assert_eq!(ids.len(), 10_000);
    }

    struct Marks;

    impl FaultEvents for Marks {
        fn malformed(&self, buf: &mut Vec<u8>) {
            buf.push(b'M');
        }
        fn error(&self, buf: &mut Vec<u8>) {
            buf.push(b'E');
        }
    }

    /// Three chunks `a`, `b`, `c` with the given faults: the bytes and how the stream ended.
    fn run(faults: Faults) -> (String, Ending) {
        let mut out = RenderedStream::new(16, 8, faults);
        for piece in ["a", "b", "c"] {
            if !out.proceed(&Marks, false) {
                return (String::from_utf8(out.bytes).unwrap(), out.ending);
            }
            out.bytes.extend_from_slice(piece.as_bytes());
            out.end_event(EventKind::Content(piece));
        }
        if out.proceed(&Marks, true) {
            out.bytes.push(b'.');
        }
        (String::from_utf8(out.bytes).unwrap(), out.ending)
    }

    #[test]
    fn faults_fire_between_chunks_or_after_the_last() {
        let f = |m, t, e| Faults {
            malformed: m,
            truncate: t,
            error: e,
        };
        assert_eq!(run(f(None, None, None)), ("abc.".into(), Ending::Complete));
        assert_eq!(
            run(f(Some(1), None, None)),
            ("aMbc.".into(), Ending::Complete)
        );
        assert_eq!(
            run(f(Some(9), None, None)),
            ("abcM.".into(), Ending::Complete)
        );
        assert_eq!(
            run(f(None, Some(2), None)),
            ("ab".into(), Ending::Truncated)
        );
        assert_eq!(
            run(f(None, Some(3), None)),
            ("abc".into(), Ending::Truncated)
        );
        assert_eq!(run(f(None, None, Some(0))), ("E".into(), Ending::Errored));
        assert_eq!(
            run(f(None, None, Some(5))),
            ("abcE".into(), Ending::Errored)
        );
        assert_eq!(
            run(f(Some(1), Some(1), Some(1))),
            ("aM".into(), Ending::Truncated)
        );
    }
}
