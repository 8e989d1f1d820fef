//! Response heads: parsed with `httparse` straight from the connection's read buffer, kept as
//! one shared slice of it plus field offsets, and read for how the body is framed.

use bytes::{Buf, Bytes, BytesMut};

use super::Error;
use super::body::{Body, Framing};

/// Heads are a few hundred bytes; anything near this is not a provider talking.
const MAX_HEAD: usize = 64 * 1024;
const MAX_FIELDS: usize = 100;

/// Offsets of one field's name and value within the head.
#[derive(Clone, Copy, Debug)]
struct Field {
    name: (usize, usize),
    value: (usize, usize),
}

#[derive(Debug)]
pub(crate) struct Head {
    status: u16,
    /// HTTP/1.1, as opposed to 1.0.
    http11: bool,
    bytes: Bytes,
    fields: Vec<Field>,
}

impl Head {
    /// Take a complete final response head off the front of `buf`, skipping interim (1xx)
    /// responses. `None` while the head is still incomplete.
    pub(crate) fn parse(buf: &mut BytesMut) -> Result<Option<Head>, Error> {
        loop {
            let mut slots = [httparse::EMPTY_HEADER; MAX_FIELDS];
            let mut response = httparse::Response::new(&mut slots);
            let len = match response.parse(buf) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                    return Err(Error::InvalidResponse("the response head is too large"));
                }
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(Error::InvalidResponse("the response has too many fields"));
                }
                Err(_) => return Err(Error::InvalidResponse("malformed response head")),
            };
            let status = response.code.unwrap_or_default();
            if status == 101 {
                return Err(Error::InvalidResponse("unexpected protocol switch"));
            }
            if (100..200).contains(&status) {
                buf.advance(len);
                continue;
            }
            let http11 = response.version == Some(1);
            let base = buf.as_ptr().addr();
            let span = |s: &[u8]| {
                let start = s.as_ptr().addr() - base;
                (start, start + s.len())
            };
            let fields = response
                .headers
                .iter()
                .map(|h| Field {
                    name: span(h.name.as_bytes()),
                    value: span(h.value),
                })
                .collect();
            let bytes = buf.split_to(len).freeze();
            return Ok(Some(Head {
                status,
                http11,
                bytes,
                fields,
            }));
        }
    }

    pub(crate) fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(|f| {
            (
                &self.bytes[f.name.0..f.name.1],
                &self.bytes[f.value.0..f.value.1],
            )
        })
    }

    fn values(&self, name: &'static str) -> impl Iterator<Item = &[u8]> {
        self.fields()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Comma-separated list elements of every field named `name`, trimmed.
    fn elements(&self, name: &'static str) -> impl Iterator<Item = &[u8]> {
        self.values(name)
            .flat_map(|v| v.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|e| !e.is_empty())
    }

    /// How the body is delimited (RFC 9112 §6.3) and whether the connection may carry another
    /// request once it is read. `bodiless` is true for answers to HEAD.
    pub(crate) fn framing(&self, bodiless: bool) -> Result<(Framing, bool), Error> {
        let close = !self.http11
            || self
                .elements("connection")
                .any(|e| e.eq_ignore_ascii_case(b"close"));
        if bodiless || self.status == 204 || self.status == 304 {
            return Ok((Framing::Length(0), !close));
        }
        let has_length = self.values("content-length").next().is_some();
        if let Some(last) = self.elements("transfer-encoding").last() {
            if !self.http11 {
                return Err(Error::InvalidResponse(
                    "transfer-encoding in an HTTP/1.0 response",
                ));
            }
            if !last.eq_ignore_ascii_case(b"chunked") {
                return Ok((Framing::UntilClose, false));
            }
            // Both framings at once may be an attempt at smuggling: decode, then close.
            return Ok((Framing::chunked(), !close && !has_length));
        }
        if has_length {
            return Ok((Framing::Length(self.content_length()?), !close));
        }
        Ok((Framing::UntilClose, false))
    }

    /// Every content-length element must be the same number.
    fn content_length(&self) -> Result<u64, Error> {
        const BAD: Error = Error::InvalidResponse("invalid content-length");
        let mut length = None;
        for element in self
            .values("content-length")
            .flat_map(|v| v.split(|&b| b == b','))
        {
            let digits = element.trim_ascii();
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(BAD);
            }
            let n: u64 = std::str::from_utf8(digits)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(BAD)?;
            if length.is_some_and(|l| l != n) {
                return Err(BAD);
            }
            length = Some(n);
        }
        length.ok_or(BAD)
    }
}

/// A response whose head has arrived; its body is read on demand.
pub struct Response {
    head: Head,
    body: Body,
}

impl Response {
    pub(crate) fn new(head: Head, body: Body) -> Self {
        Self { head, body }
    }

    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// The first field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.head
            .fields()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Every field as (name, value), in the order received.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.head.fields()
    }

    pub fn body_mut(&mut self) -> &mut Body {
        &mut self.body
    }

    pub fn into_body(self) -> Body {
        self.body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        let mut buf = BytesMut::from(text.as_bytes());
        Head::parse(&mut buf).unwrap().expect("a complete head")
    }

    fn framing(text: &str) -> Result<(Framing, bool), Error> {
        head(text).framing(false)
    }

    #[test]
    fn parses_fields_and_leaves_the_body() {
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 429 Too Many\r\nRetry-After: 3\r\nX-A: 1\r\n\r\nbody"[..]);
        let h = Head::parse(&mut buf).unwrap().unwrap();
        assert_eq!(h.status, 429);
        assert_eq!(h.values("retry-after").next(), Some(&b"3"[..]));
        assert_eq!(h.fields().count(), 2);
        assert_eq!(&buf[..], b"body");
    }

    #[test]
    fn incomplete_heads_wait_and_interim_responses_are_skipped() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-le"[..]);
        assert!(Head::parse(&mut buf).unwrap().is_none());
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 103 Early\r\nlink: x\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"[..]);
        assert_eq!(Head::parse(&mut buf).unwrap().unwrap().status, 200);
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n"[..]);
        assert!(Head::parse(&mut buf).is_err());
    }

    #[test]
    fn framing_rules() {
        let ok = |t| framing(t).unwrap();
        assert!(matches!(
            ok("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"),
            (Framing::Length(5), true)
        ));
        assert!(matches!(
            ok("HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\nConnection: keep-alive, Close\r\n\r\n"),
            (Framing::Length(5), false)
        ));
        assert!(matches!(
            ok("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n"),
            (Framing::Chunked(_), true)
        ));
        assert!(matches!(
            ok("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n"),
            (Framing::Chunked(_), false)
        ));
        assert!(matches!(
            ok("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n"),
            (Framing::UntilClose, false)
        ));
        assert!(matches!(
            ok("HTTP/1.1 200 OK\r\n\r\n"),
            (Framing::UntilClose, false)
        ));
        assert!(matches!(
            ok("HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n"),
            (Framing::Length(2), false)
        ));
        assert!(matches!(
            ok("HTTP/1.1 204 No Content\r\n\r\n"),
            (Framing::Length(0), true)
        ));
        assert!(matches!(
            head("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n").framing(true),
            Ok((Framing::Length(0), true))
        ));
        for bad in [
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -5\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: \r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\n",
            "HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        ] {
            assert!(framing(bad).is_err(), "{bad:?}");
        }
    }
}
