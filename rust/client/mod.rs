//! A lean HTTP/1.1 client for upstream providers: one keep-alive pool per origin, requests as
//! pre-rendered heads, bodies handed out as slices of the connection's read buffer. It does
//! only what the engine needs (no redirects, cookies or HTTP/2; an HTTP egress proxy from the
//! environment, see `proxy`), which is what makes it cheaper per request than a
//! general-purpose client.

mod body;
mod chunked;
mod conn;
mod head;
mod pool;
mod proxy;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::pki_types::ServerName;

pub use self::body::Body;
pub use self::head::Response;
pub use self::pool::Pool;
pub use self::proxy::{Egress, NoProxy, Proxy, ProxyEnv};

/// Where requests go: scheme, host and port. Paths travel in the request heads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    host: String,
    port: u16,
    /// The TLS server name for https origins, validated once at parse time.
    tls: Option<ServerName<'static>>,
    host_header: String,
}

impl Origin {
    /// Split an `http` or `https` URL into its origin and its path with query (at least `/`).
    pub fn parse(url: &str) -> Result<(Origin, String), Error> {
        let (tls, rest) = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            _ => return Err(Error::InvalidUrl("the scheme must be http or https")),
        };
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(Error::InvalidUrl(
                "credentials in the URL are not supported",
            ));
        }
        let (host, port) = split_host_port(authority)?;
        let port = port.unwrap_or(if tls { 443 } else { 80 });
        let server_name = if tls {
            Some(
                ServerName::try_from(host.to_owned())
                    .map_err(|_| Error::InvalidUrl("the host is not a valid TLS server name"))?,
            )
        } else {
            None
        };
        let bracketed = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let host_header = if port == if tls { 443 } else { 80 } {
            bracketed
        } else {
            format!("{bracketed}:{port}")
        };
        let path = match path.as_bytes().first() {
            None => "/".to_owned(),
            Some(b'?') => format!("/{path}"),
            Some(_) => path.to_owned(),
        };
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(Error::InvalidUrl(
                "the path has spaces or control characters",
            ));
        }
        let origin = Origin {
            host: host.to_owned(),
            port,
            tls: server_name,
            host_header,
        };
        Ok((origin, path))
    }

    /// The value of the `host` header: the host, with the port when it is not the default.
    pub fn host_header(&self) -> &str {
        &self.host_header
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// `host:port`, as error messages name the peer.
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), Error> {
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or(Error::InvalidUrl("an IPv6 host lacks its closing bracket"))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(Error::InvalidUrl(
                "the bracketed host is not an IPv6 address",
            ));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or(Error::InvalidUrl("unexpected text after the IPv6 host"))?,
            ),
        };
        (host, port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let valid = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !valid {
            return Err(Error::InvalidUrl(
                "the host is empty or has invalid characters",
            ));
        }
        (host, port)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(
            p.parse::<u16>()
                .map_err(|_| Error::InvalidUrl("the port is out of range"))?,
        ),
        Some(_) => return Err(Error::InvalidUrl("the port is not a number")),
    };
    Ok((host, port))
}

/// RFC 9110 token characters (`tchar`): all a field name or a chunk extension name may use.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `value` may stand as a field value in a request head: visible characters, spaces
/// and tabs, and no CR or LF that would end the field early.
pub fn is_field_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// How a pool connects and how long it keeps idle connections.
#[derive(Clone)]
pub struct PoolConfig {
    /// DNS, TCP and TLS handshake together.
    pub connect_timeout: Duration,
    /// Idle connections older than this are closed instead of reused.
    pub idle_timeout: Duration,
    pub max_idle: usize,
    pub tls: Arc<rustls::ClientConfig>,
    /// Direct, or through a proxy: a pool's connections all go one way.
    pub egress: Egress,
}

/// Public web roots and the ring provider, built once and shared by every pool.
pub fn default_tls() -> Arc<rustls::ClientConfig> {
    static DEFAULT: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            tls_with_roots(roots)
        })
        .clone()
}

/// A TLS configuration trusting exactly `roots` (a private CA, a test certificate).
pub fn tls_with_roots(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Why a request failed. Messages name the peer and the OS error, never a header value:
/// requests carry credentials in their headers.
#[derive(Debug)]
pub enum Error {
    InvalidUrl(&'static str),
    /// The proxy setting (`HTTPS_PROXY`...) cannot be used.
    InvalidProxy(&'static str),
    /// The proxy did not open a tunnel to `target`: `status` is its answer (0: none readable).
    ProxyRefused {
        proxy: String,
        target: String,
        status: u16,
    },
    /// DNS or TCP failed; `authority` is `host:port`.
    Connect {
        authority: String,
        source: io::Error,
    },
    ConnectTimeout {
        authority: String,
        timeout: Duration,
    },
    Tls {
        authority: String,
        source: io::Error,
    },
    /// The connection failed while the request or response was in flight.
    Io(io::Error),
    /// The peer closed the connection before a response head arrived.
    Closed,
    /// The peer closed the connection before the response body ended.
    Truncated,
    InvalidResponse(&'static str),
    BodyTooLarge {
        limit: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUrl(why) => write!(f, "invalid URL: {why}"),
            Error::InvalidProxy(why) => write!(f, "invalid proxy setting: {why}"),
            Error::ProxyRefused {
                proxy,
                target,
                status: 0,
            } => write!(
                f,
                "the proxy {proxy} sent no valid answer to CONNECT {target}"
            ),
            Error::ProxyRefused {
                proxy,
                target,
                status,
            } => write!(f, "the proxy {proxy} refused CONNECT {target} ({status})"),
            Error::Connect { authority, source } => {
                write!(f, "could not connect to {authority}: {source}")
            }
            Error::ConnectTimeout { authority, timeout } => write!(
                f,
                "could not connect to {authority} within {} ms",
                timeout.as_millis()
            ),
            Error::Tls { authority, source } => {
                write!(f, "TLS handshake with {authority} failed: {source}")
            }
            Error::Io(e) => write!(f, "connection error: {e}"),
            Error::Closed => f.write_str("the connection closed before a response arrived"),
            Error::Truncated => f.write_str("the connection closed before the response ended"),
            Error::InvalidResponse(why) => write!(f, "invalid response: {why}"),
            Error::BodyTooLarge { limit } => {
                write!(f, "the response body is larger than {limit} bytes")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connect { source, .. } | Error::Tls { source, .. } | Error::Io(source) => {
                Some(source)
            }
            _ => None,
        }
    }
}
