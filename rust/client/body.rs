//! Response bodies, read on demand as slices of the connection's buffer. A body read to its
//! end gives its connection back to the pool; a body dropped before that closes it.

use bytes::{Bytes, BytesMut};

use super::Error;
use super::chunked::Chunked;
use super::conn::Conn;
use super::pool::Pool;

/// How a body is delimited.
#[derive(Debug)]
pub(crate) enum Framing {
    /// `content-length`: this many bytes to go.
    Length(u64),
    Chunked(Chunked),
    /// Neither: the body ends when the server closes the connection.
    UntilClose,
}

impl Framing {
    pub(crate) fn chunked() -> Self {
        Framing::Chunked(Chunked::new())
    }

    fn is_done(&self) -> bool {
        match self {
            Framing::Length(remaining) => *remaining == 0,
            Framing::Chunked(c) => c.is_done(),
            Framing::UntilClose => false,
        }
    }

    /// Body bytes from the front of `buf`, if any are buffered.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, Error> {
        match self {
            Framing::Length(remaining) => {
                if *remaining == 0 || buf.is_empty() {
                    return Ok(None);
                }
                let n = buf
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                *remaining -= n as u64;
                Ok(Some(buf.split_to(n).freeze()))
            }
            Framing::Chunked(c) => c.decode(buf),
            Framing::UntilClose if buf.is_empty() => Ok(None),
            Framing::UntilClose => Ok(Some(buf.split().freeze())),
        }
    }
}

/// A response body. Chunks are whatever arrived together, not the sender's chunks.
pub struct Body {
    /// The connection while the body is being read; gone once it ended or failed.
    conn: Option<Conn>,
    framing: Framing,
    /// Where the connection goes when the body ends, if it may carry another request.
    home: Option<Pool>,
    ended: bool,
}

impl Body {
    pub(crate) fn new(conn: Conn, framing: Framing, home: Option<Pool>) -> Body {
        let mut body = Body {
            conn: Some(conn),
            framing,
            home,
            ended: false,
        };
        if body.framing.is_done() {
            body.finish();
        }
        body
    }

    /// The next piece of the body; `None` once it ended (or after an error). Cancel-safe:
    /// a call dropped while waiting loses no bytes, they stay buffered for the next call.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, Error>> {
        loop {
            let conn = self.conn.as_mut()?;
            match self.framing.decode(&mut conn.buf) {
                Err(e) => return Some(Err(self.fail(e))),
                Ok(data) => {
                    if self.framing.is_done() {
                        self.finish();
                    }
                    if let Some(data) = data {
                        return Some(Ok(data));
                    }
                }
            }
            let conn = self.conn.as_mut()?;
            match conn.fill().await {
                Ok(0) if matches!(self.framing, Framing::UntilClose) => {
                    self.ended = true;
                    self.conn = None;
                    return None;
                }
                Ok(0) => return Some(Err(self.fail(Error::Truncated))),
                Ok(_) => {}
                Err(e) => return Some(Err(self.fail(Error::Io(e)))),
            }
        }
    }

    /// The whole body in one buffer, failing once it exceeds `limit` bytes. A body that
    /// arrived in one piece is returned as it is, without a copy.
    pub async fn collect(mut self, limit: usize) -> Result<Bytes, Error> {
        if let Framing::Length(n) = self.framing
            && n > limit as u64
        {
            return Err(Error::BodyTooLarge { limit });
        }
        let mut first: Option<Bytes> = None;
        let mut joined: Option<BytesMut> = None;
        let mut total = 0usize;
        while let Some(chunk) = self.chunk().await {
            let chunk = chunk?;
            total += chunk.len();
            if total > limit {
                return Err(Error::BodyTooLarge { limit });
            }
            if let Some(joined) = &mut joined {
                joined.extend_from_slice(&chunk);
            } else if let Some(head) = first.take() {
                // What is still to come, when the length is known, so the buffer grows once.
                let rest = match self.framing {
                    Framing::Length(n) => n as usize,
                    _ => chunk.len(),
                };
                let mut buf = BytesMut::with_capacity(head.len() + chunk.len() + rest);
                buf.extend_from_slice(&head);
                buf.extend_from_slice(&chunk);
                joined = Some(buf);
            } else {
                first = Some(chunk);
            }
        }
        Ok(joined.map_or_else(|| first.unwrap_or_default(), BytesMut::freeze))
    }

    /// True once the body was read to its end.
    pub fn is_end(&self) -> bool {
        self.ended
    }

    /// The body ended: hand the connection back if it is clean and may be reused.
    fn finish(&mut self) {
        self.ended = true;
        let conn = self.conn.take();
        if let (Some(conn), Some(pool)) = (conn, self.home.take())
            // Bytes past the end of the response mean the connection's state is unknown.
            && conn.buf.is_empty()
        {
            pool.put(conn);
        }
    }

    /// The body broke off: the connection is closed, the error handed to the caller.
    fn fail(&mut self, e: Error) -> Error {
        self.conn = None;
        e
    }
}
