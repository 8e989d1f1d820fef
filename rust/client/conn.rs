//! One connection to an origin: establishing it (DNS, TCP, a proxy's tunnel, TLS), writing a request in one
//! vectored write, and reading the response head into the connection's own buffer.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::head::Head;
use super::{Egress, Error, Origin, PoolConfig, Proxy};

/// Room made in the read buffer before each read: one TLS record's worth.
const READ_SPARE: usize = 16 * 1024;
/// Lets the kernel notice a peer that vanished while the connection sat idle in the pool.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// A proxy's answer to CONNECT longer than this is not one.
const MAX_TUNNEL_HEAD: usize = 16 * 1024;

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

pub(crate) struct Conn {
    stream: Stream,
    /// Bytes read and not yet handed out; responses are split off its front.
    pub(crate) buf: BytesMut,
    /// When the connection last went back to the pool.
    pub(crate) idle_since: Instant,
}

/// A request that failed on a connection.
pub(crate) enum Failure {
    /// Nothing of a response arrived, so the server cannot have answered: on a reused
    /// connection this is a stale keep-alive, and the request may go out again.
    NoResponse(Error),
    /// Part of a response arrived; the request must not be repeated.
    Broken(Error),
}

impl Failure {
    pub(crate) fn into_error(self) -> Error {
        match self {
            Failure::NoResponse(e) | Failure::Broken(e) => e,
        }
    }
}

impl Conn {
    /// A new connection, established within `config.connect_timeout`.
    pub(crate) async fn connect(origin: &Origin, config: &PoolConfig) -> Result<Conn, Error> {
        let timeout = config.connect_timeout;
        match tokio::time::timeout(timeout, establish(origin, config)).await {
            Ok(result) => result,
            Err(_) => Err(Error::ConnectTimeout {
                authority: origin.authority(),
                timeout,
            }),
        }
    }

    /// Send a request and read its response head, leaving any body bytes in `buf`.
    pub(crate) async fn round_trip(
        mut self,
        head: &[u8],
        body: &[u8],
    ) -> Result<(Head, Conn), Failure> {
        if let Err(e) = self.write_request(head, body).await {
            return Err(Failure::NoResponse(Error::Io(e)));
        }
        let mut seen = false;
        loop {
            match Head::parse(&mut self.buf) {
                Ok(Some(head)) => return Ok((head, self)),
                Ok(None) => {}
                Err(e) => return Err(Failure::Broken(e)),
            }
            match self.fill().await {
                Ok(0) if !seen => return Err(Failure::NoResponse(Error::Closed)),
                Ok(0) => return Err(Failure::Broken(Error::Truncated)),
                Ok(_) => seen = true,
                Err(e) if !seen => return Err(Failure::NoResponse(Error::Io(e))),
                Err(e) => return Err(Failure::Broken(Error::Io(e))),
            }
        }
    }

    /// Head and body in one vectored write (one syscall for plain TCP, one TLS flush).
    async fn write_request(&mut self, head: &[u8], body: &[u8]) -> io::Result<()> {
        let mut slices = [IoSlice::new(head), IoSlice::new(body)];
        let mut pending: &mut [IoSlice<'_>] = &mut slices;
        IoSlice::advance_slices(&mut pending, 0);
        while !pending.is_empty() {
            let n = self.stream.write_vectored(pending).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut pending, n);
        }
        self.stream.flush().await
    }

    /// Read more into `buf`; 0 means the peer closed. Cancel-safe: a read that did not
    /// complete consumed nothing.
    pub(crate) async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(READ_SPARE);
        self.stream.read_buf(&mut self.buf).await
    }
}

async fn establish(origin: &Origin, config: &PoolConfig) -> Result<Conn, Error> {
    let tcp = match &config.egress {
        Egress::Direct => open_tcp(&origin.host, origin.port)
            .await
            .map_err(|source| Error::Connect {
                authority: origin.authority(),
                source,
            })?,
        Egress::Proxy(proxy) => {
            let mut tcp =
                open_tcp(&proxy.host, proxy.port)
                    .await
                    .map_err(|source| Error::Connect {
                        authority: format!("the proxy {}", proxy.authority()),
                        source,
                    })?;
            if origin.is_tls() {
                tunnel(&mut tcp, proxy, origin).await?;
            }
            tcp
        }
        Egress::Misconfigured(why) => return Err(Error::InvalidProxy(why)),
    };
    let stream = match &origin.tls {
        None => Stream::Plain(tcp),
        Some(name) => {
            let tls = TlsConnector::from(config.tls.clone())
                .connect(name.clone(), tcp)
                .await
                .map_err(|source| Error::Tls {
                    authority: origin.authority(),
                    source,
                })?;
            Stream::Tls(Box::new(tls))
        }
    };
    Ok(Conn {
        stream,
        buf: BytesMut::with_capacity(READ_SPARE),
        idle_since: Instant::now(),
    })
}

/// Ask the proxy for a tunnel to `origin` (CONNECT) and read its answer's head, which ends
/// before any byte of the origin's: TLS has the client speak first.
async fn tunnel(tcp: &mut TcpStream, proxy: &Proxy, origin: &Origin) -> Result<(), Error> {
    let refused = |status| Error::ProxyRefused {
        proxy: proxy.authority(),
        target: origin.authority(),
        status,
    };
    tcp.write_all(&proxy.connect_head(origin))
        .await
        .map_err(Error::Io)?;
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_TUNNEL_HEAD {
            return Err(refused(0));
        }
        // Byte by byte: nothing past the head may be consumed (it is not ours to read).
        let mut byte = [0u8; 1];
        if tcp.read(&mut byte).await.map_err(Error::Io)? == 0 {
            return Err(refused(0));
        }
        head.push(byte[0]);
    }
    let status = head
        .strip_prefix(b"HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| std::str::from_utf8(code).ok())
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| refused(0))?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(refused(status))
    }
}

/// Try each resolved address in turn; the last failure is the one reported.
async fn open_tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                // Requests are written whole; waiting to coalesce them only adds latency.
                tcp.set_nodelay(true)?;
                let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
                socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive)?;
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address found")))
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
