//! The keep-alive pool of one origin (reached directly or through one proxy): idle connections reused newest first, a fresh one when
//! none is idle, and one transparent retry when a reused connection turns out to be stale.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use super::body::Body;
use super::conn::{Conn, Failure};
use super::head::{Head, Response};
use super::{Egress, Error, Origin, PoolConfig};

/// Connections to one origin. Cheap to clone; clones share the idle connections.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    origin: Origin,
    config: PoolConfig,
    /// Oldest at the front, most recently returned at the back.
    idle: Mutex<VecDeque<Conn>>,
}

impl Pool {
    pub fn new(origin: Origin, config: PoolConfig) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                origin,
                config,
                idle: Mutex::new(VecDeque::new()),
            }),
        }
    }

    pub fn origin(&self) -> &Origin {
        &self.inner.origin
    }

    /// Send one request: `head` is the complete request head (request line, fields with
    /// `content-length`, final CRLF) and `body` its body. Returns once the response head
    /// arrived.
    pub async fn send(&self, head: &[u8], body: &[u8]) -> Result<Response, Error> {
        let bodiless = head.starts_with(b"HEAD ");
        let absolute;
        let head = match &self.inner.config.egress {
            Egress::Proxy(proxy) if !self.inner.origin.is_tls() => {
                absolute = proxy.absolute_head(&self.inner.origin, head);
                &absolute[..]
            }
            _ => head,
        };
        if let Some(conn) = self.take_idle() {
            match conn.round_trip(head, body).await {
                Ok((response, conn)) => return self.respond(response, conn, bodiless),
                // The server closed the idle connection (its keep-alive ran out) before our
                // request reached it: no answer was started, so sending again is safe.
                Err(Failure::NoResponse(_)) => {}
                Err(Failure::Broken(e)) => return Err(e),
            }
        }
        let conn = Conn::connect(&self.inner.origin, &self.inner.config).await?;
        match conn.round_trip(head, body).await {
            Ok((response, conn)) => self.respond(response, conn, bodiless),
            Err(failure) => Err(failure.into_error()),
        }
    }

    /// Idle connections ready for reuse.
    pub fn idle_count(&self) -> usize {
        let mut idle = self.inner.idle.lock();
        self.expire(&mut idle);
        idle.len()
    }

    fn respond(&self, head: Head, conn: Conn, bodiless: bool) -> Result<Response, Error> {
        let (framing, reusable) = head.framing(bodiless)?;
        let home = reusable.then(|| self.clone());
        Ok(Response::new(head, Body::new(conn, framing, home)))
    }

    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.inner.idle.lock();
        self.expire(&mut idle);
        idle.pop_back()
    }

    /// Back from a response read to its end.
    pub(crate) fn put(&self, mut conn: Conn) {
        conn.idle_since = Instant::now();
        let mut idle = self.inner.idle.lock();
        self.expire(&mut idle);
        if idle.len() >= self.inner.config.max_idle {
            idle.pop_front();
        }
        if self.inner.config.max_idle > 0 {
            idle.push_back(conn);
        }
    }

    /// Close connections idle for longer than the idle timeout (they sit oldest first).
    fn expire(&self, idle: &mut VecDeque<Conn>) {
        let timeout = self.inner.config.idle_timeout;
        while idle
            .front()
            .is_some_and(|c| c.idle_since.elapsed() > timeout)
        {
            idle.pop_front();
        }
    }
}
