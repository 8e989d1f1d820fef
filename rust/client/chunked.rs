//! Chunked transfer decoding (RFC 9112 §7.1), incremental over a connection's read buffer.
//! Framing bytes are consumed as soon as they are complete; chunk data is handed out as slices
//! of the buffer, never copied. Extensions and trailers are validated and discarded.

use bytes::{Buf, Bytes, BytesMut};

use super::{Error, is_tchar};

/// Longest chunk-size line (size and extensions) or trailer section we accept.
const MAX_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;
const MAX_TRAILER_FIELDS: usize = 32;

#[derive(Debug)]
enum State {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data, this many bytes to go.
    Data(u64),
    /// Expecting the CRLF that closes a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields, then an empty line.
    Trailers,
    Done,
}

#[derive(Debug)]
pub(crate) struct Chunked {
    state: State,
}

impl Chunked {
    pub(crate) fn new() -> Self {
        Self { state: State::Size }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The next slice of chunk data in `buf`, if any is buffered. Framing that follows it is
    /// consumed right away, so `is_done` turns true with the last data when the terminator
    /// arrived together with it.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, Error> {
        self.skip_framing(buf)?;
        let State::Data(remaining) = &mut self.state else {
            return Ok(None);
        };
        if buf.is_empty() {
            return Ok(None);
        }
        let n = buf
            .len()
            .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
        let data = buf.split_to(n).freeze();
        *remaining -= n as u64;
        if *remaining == 0 {
            self.state = State::DataEnd;
        }
        // A framing error here leaves the state as it was, so the next call reports it; this
        // call still hands out the data that arrived intact before it.
        let _ = self.skip_framing(buf);
        Ok(Some(data))
    }

    /// Consume framing (size lines, data CRLFs, trailers) until chunk data, the end, or the
    /// end of what is buffered. Consumes nothing from an element it rejects.
    fn skip_framing(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        loop {
            match self.state {
                State::Data(_) | State::Done => return Ok(()),
                State::Size => {
                    let Some(line_end) = find_line(buf, MAX_LINE, "a chunk-size line is too long")?
                    else {
                        return Ok(());
                    };
                    let size = parse_size_line(&buf[..line_end])?;
                    buf.advance(line_end + 2);
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(());
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(Error::InvalidResponse("chunk data is not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
                    match httparse::parse_headers(buf, &mut fields) {
                        Ok(httparse::Status::Complete((len, _))) => {
                            buf.advance(len);
                            self.state = State::Done;
                        }
                        Ok(httparse::Status::Partial) if buf.len() > MAX_TRAILERS => {
                            return Err(Error::InvalidResponse("the trailer section is too long"));
                        }
                        Ok(httparse::Status::Partial) => return Ok(()),
                        Err(_) => return Err(Error::InvalidResponse("invalid trailer field")),
                    }
                }
            }
        }
    }
}

/// The index of the CRLF that ends the first line, if the whole line is buffered.
fn find_line(buf: &[u8], max: usize, too_long: &'static str) -> Result<Option<usize>, Error> {
    match memchr::memchr(b'\n', &buf[..buf.len().min(max + 2)]) {
        Some(lf) if lf > 0 && buf[lf - 1] == b'\r' => Ok(Some(lf - 1)),
        Some(_) => Err(Error::InvalidResponse("a chunk line does not end in CRLF")),
        None if buf.len() >= max + 2 => Err(Error::InvalidResponse(too_long)),
        None => Ok(None),
    }
}

/// `chunk-size [ chunk-ext ]`, without its CRLF:
/// `1*HEXDIG *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )`.
fn parse_size_line(line: &[u8]) -> Result<u64, Error> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(Error::InvalidResponse("a chunk size is not hexadecimal"));
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let digit = u64::from((b as char).to_digit(16).unwrap_or_default());
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(digit))
            .ok_or(Error::InvalidResponse("a chunk size overflows"))?;
    }
    parse_extensions(&line[digits..])?;
    Ok(size)
}

fn parse_extensions(mut rest: &[u8]) -> Result<(), Error> {
    const BAD: Error = Error::InvalidResponse("invalid chunk extension");
    loop {
        // Whitespace is allowed only before a ";", never at the end of the line.
        let Some(after) = skip_bws(rest).strip_prefix(b";") else {
            return if rest.is_empty() { Ok(()) } else { Err(BAD) };
        };
        rest = skip_bws(after);
        let name = token_len(rest);
        if name == 0 {
            return Err(BAD);
        }
        rest = &rest[name..];
        let after_bws = skip_bws(rest);
        if let Some(after) = after_bws.strip_prefix(b"=") {
            rest = skip_bws(after);
            let value = if rest.first() == Some(&b'"') {
                quoted_string_len(rest).ok_or(BAD)?
            } else {
                token_len(rest)
            };
            if value == 0 {
                return Err(BAD);
            }
            rest = &rest[value..];
        }
    }
}

fn skip_bws(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &s[n..]
}

fn token_len(s: &[u8]) -> usize {
    s.iter().take_while(|&&b| is_tchar(b)).count()
}

/// The length of the quoted-string at the start of `s`, quotes included.
fn quoted_string_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'"' => return Some(i + 1),
            b'\\' => {
                let escaped = *s.get(i + 1)?;
                if !(escaped == b'\t' || escaped >= 0x20) || escaped == 0x7f {
                    return None;
                }
                i += 2;
            }
            b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => i += 1,
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `input` in pieces of `step` bytes; collect the data and whether the body ended.
    fn decode_in_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, bool, usize), Error> {
        let mut decoder = Chunked::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            while let Some(data) = decoder.decode(&mut buf)? {
                out.extend_from_slice(&data);
            }
            if decoder.is_done() {
                break;
            }
        }
        Ok((out, decoder.is_done(), buf.len()))
    }

    #[test]
    fn decodes_whole_and_byte_by_byte() {
        let input = b"5\r\nhello\r\n7;ext=1;flag\r\n, world\r\n0\r\n\r\n";
        for step in [1, 2, 3, 7, input.len()] {
            let (data, done, left) = decode_in_steps(input, step).unwrap();
            assert_eq!(data, b"hello, world", "step {step}");
            assert!(done, "step {step}");
            assert_eq!(left, 0, "step {step}");
        }
    }

    #[test]
    fn extensions_follow_the_grammar() {
        for line in [
            &b"a"[..],
            b"A ; name",
            b"a;n=v",
            b"a ;\tn = \"quoted \\\" value\" ;m=tok",
            b"00000000000000000000a",
        ] {
            assert_eq!(parse_size_line(line).unwrap(), 10, "{line:?}");
        }
        for line in [
            &b""[..],
            b"x",
            b"a ",
            b"a;",
            b"a;=v",
            b"a;n=",
            b"a;n=\"open",
            b"a;n=v w",
            b"a;n@=v",
            b"-1",
            b"10000000000000000",
        ] {
            assert!(parse_size_line(line).is_err(), "{line:?}");
        }
    }

    #[test]
    fn trailers_are_consumed() {
        let input = b"3\r\nabc\r\n0\r\nx-checksum: 1\r\nx-other: two\r\n\r\n";
        for step in [1, 5, input.len()] {
            let (data, done, left) = decode_in_steps(input, step).unwrap();
            assert_eq!((data.as_slice(), done, left), (&b"abc"[..], true, 0));
        }
        assert!(decode_in_steps(b"0\r\nbad field\r\n\r\n", 64).is_err());
    }

    #[test]
    fn bytes_after_the_body_stay_in_the_buffer() {
        let (data, done, left) = decode_in_steps(b"1\r\nx\r\n0\r\n\r\nHTTP/1.1", 64).unwrap();
        assert_eq!((data.as_slice(), done, left), (&b"x"[..], true, 8));
    }

    #[test]
    fn framing_errors() {
        assert!(decode_in_steps(b"3\r\nabcX\r\n", 64).is_err());
        assert!(decode_in_steps(b"3\nabc\r\n", 64).is_err());
        let long = [b'1'; MAX_LINE + 8];
        assert!(decode_in_steps(&long, 64).is_err());
    }

    #[test]
    fn data_before_a_framing_error_is_still_handed_out() {
        let mut decoder = Chunked::new();
        let mut buf = BytesMut::from(&b"3\r\nabcXX"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap().unwrap(), &b"abc"[..]);
        assert!(decoder.decode(&mut buf).is_err());
    }

    #[test]
    fn partial_data_is_handed_out_as_it_arrives() {
        let mut decoder = Chunked::new();
        let mut buf = BytesMut::from(&b"b\r\nhel"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap().unwrap(), &b"hel"[..]);
        assert!(decoder.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"lo worl");
        assert_eq!(decoder.decode(&mut buf).unwrap().unwrap(), &b"lo worl"[..]);
        buf.extend_from_slice(b"d\r\n0\r\n\r\n");
        assert_eq!(decoder.decode(&mut buf).unwrap().unwrap(), &b"d"[..]);
        assert!(decoder.is_done());
    }
}
