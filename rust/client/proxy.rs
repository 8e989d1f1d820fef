//! Reaching origins through an HTTP egress proxy, as `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`
//! (or their lowercase forms, which win) say. https origins go through a CONNECT tunnel, http
//! origins as absolute-form requests; credentials in the proxy URL's userinfo go out as
//! `proxy-authorization: Basic` and never appear in an error message.
//!
//! `NO_PROXY` is a comma (or space) separated list: `*` (every origin), host names matching
//! themselves and their subdomains (`example.com`, `.example.com`, `*.example.com`), IP
//! addresses and CIDR ranges, each optionally with `:port`. Nothing is bypassed implicitly:
//! `localhost` and `127.0.0.1` go through the proxy unless listed, as with curl.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use super::{Error, Origin, split_host_port};

/// An HTTP proxy: where it listens, and the `proxy-authorization` value its URL carried.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    pub(crate) host: String,
    pub(crate) port: u16,
    authorization: Option<String>,
}

impl fmt::Debug for Proxy {
    /// Without the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proxy({})", self.authority())
    }
}

impl Proxy {
    /// `http://[user:password@]host[:port]` (no scheme means http; the port defaults to 80).
    pub fn parse(url: &str) -> Result<Proxy, Error> {
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some(_) => return Err(Error::InvalidProxy("the proxy URL's scheme must be http")),
            None => url,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport)
            .map_err(|_| Error::InvalidProxy("the proxy URL's host or port is invalid"))?;
        let authorization = userinfo.map(|userinfo| {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let credentials = [
                percent_decode(user),
                b":".to_vec(),
                percent_decode(password),
            ];
            format!("Basic {}", base64(&credentials.concat()))
        });
        Ok(Proxy {
            host: host.to_owned(),
            port: port.unwrap_or(80),
            authorization,
        })
    }

    /// `host:port`, as error messages name the proxy.
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The CONNECT request opening a tunnel to `origin`.
    pub(crate) fn connect_head(&self, origin: &Origin) -> Vec<u8> {
        let target = origin.authority();
        let mut head = format!("CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n");
        self.push_authorization(&mut head);
        head.push_str("\r\n");
        head.into_bytes()
    }

    /// `head` (origin-form, as the engine renders it) in the absolute form a proxy forwards.
    pub(crate) fn absolute_head(&self, origin: &Origin, head: &[u8]) -> Vec<u8> {
        let method_end = head.iter().position(|&b| b == b' ').unwrap_or(0);
        let line_end = head
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(head.len(), |i| i + 2);
        let mut fields = String::new();
        self.push_authorization(&mut fields);
        let mut out = Vec::with_capacity(head.len() + fields.len() + 64);
        out.extend_from_slice(&head[..=method_end]);
        out.extend_from_slice(b"http://");
        out.extend_from_slice(origin.host_header().as_bytes());
        out.extend_from_slice(&head[method_end + 1..line_end]);
        out.extend_from_slice(fields.as_bytes());
        out.extend_from_slice(&head[line_end..]);
        out
    }

    fn push_authorization(&self, head: &mut String) {
        if let Some(value) = &self.authorization {
            head.push_str("proxy-authorization: ");
            head.push_str(value);
            head.push_str("\r\n");
        }
    }
}

/// The proxy settings of the environment, read once.
#[derive(Debug, Default)]
pub struct ProxyEnv {
    http: Option<Result<Arc<Proxy>, &'static str>>,
    https: Option<Result<Arc<Proxy>, &'static str>>,
    no_proxy: NoProxy,
}

impl ProxyEnv {
    /// From `lookup` (an environment variable's value by name): the lowercase name first.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> ProxyEnv {
        // An empty variable counts as unset.
        let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let var = |name: &str| set(&name.to_ascii_lowercase()).or_else(|| set(name));
        let proxy = |name: &str| {
            var(name).map(|url| match Proxy::parse(url.trim()) {
                Ok(proxy) => Ok(Arc::new(proxy)),
                Err(Error::InvalidProxy(why)) => Err(why),
                Err(_) => Err("the proxy URL is invalid"),
            })
        };
        ProxyEnv {
            http: proxy("HTTP_PROXY"),
            https: proxy("HTTPS_PROXY"),
            no_proxy: NoProxy::parse(&var("NO_PROXY").unwrap_or_default()),
        }
    }

    /// This process's environment, read on first use.
    pub fn global() -> &'static ProxyEnv {
        static ENV: OnceLock<ProxyEnv> = OnceLock::new();
        ENV.get_or_init(|| ProxyEnv::from_lookup(|name| std::env::var(name).ok()))
    }

    /// How to reach `origin`. An unusable proxy setting fails its requests rather than going
    /// direct, which would bypass the egress the operator asked for.
    pub fn egress(&self, origin: &Origin) -> Egress {
        let setting = if origin.is_tls() {
            &self.https
        } else {
            &self.http
        };
        match setting {
            None => Egress::Direct,
            Some(_) if self.no_proxy.bypasses(&origin.host, origin.port) => Egress::Direct,
            Some(Ok(proxy)) => Egress::Proxy(proxy.clone()),
            Some(Err(why)) => Egress::Misconfigured(why),
        }
    }
}

/// How a pool reaches its origin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Egress {
    #[default]
    Direct,
    Proxy(Arc<Proxy>),
    /// The proxy setting for the origin's scheme cannot be used: why.
    Misconfigured(&'static str),
}

/// The origins `NO_PROXY` sends direct.
#[derive(Debug, Default, PartialEq)]
pub struct NoProxy {
    all: bool,
    entries: Vec<(Target, Option<u16>)>,
}

#[derive(Debug, PartialEq)]
enum Target {
    /// A host name, lowercase, without a leading dot: itself and its subdomains.
    Domain(String),
    Net(IpAddr, u8),
}

impl NoProxy {
    pub fn parse(list: &str) -> NoProxy {
        let mut no_proxy = NoProxy::default();
        for entry in list.split([',', ' ', '\t']).filter(|e| !e.is_empty()) {
            if entry == "*" {
                no_proxy.all = true;
                continue;
            }
            let entry = entry.trim_start_matches("*.").trim_start_matches('.');
            let (address, prefix) = match entry.split_once('/') {
                Some((address, bits)) => (address, bits.parse::<u8>().ok()),
                None => (entry, None),
            };
            let (host, port) = match split_host_port(address) {
                Ok((host, port)) => (host, port),
                // A bare IPv6 address (`::1`) reads as host and port otherwise.
                Err(_) => (address, None),
            };
            let target = match host.parse::<IpAddr>() {
                Ok(ip) => {
                    let full = if ip.is_ipv4() { 32 } else { 128 };
                    Target::Net(ip, prefix.unwrap_or(full).min(full))
                }
                Err(_) if !host.is_empty() => Target::Domain(host.to_ascii_lowercase()),
                Err(_) => continue,
            };
            no_proxy.entries.push((target, port));
        }
        no_proxy
    }

    pub fn bypasses(&self, host: &str, port: u16) -> bool {
        if self.all {
            return true;
        }
        let host = host.to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        self.entries.iter().any(|(target, want)| {
            want.is_none_or(|p| p == port)
                && match target {
                    Target::Domain(domain) => {
                        host == *domain
                            || host
                                .strip_suffix(domain.as_str())
                                .is_some_and(|sub| sub.ends_with('.'))
                    }
                    Target::Net(net, bits) => ip.is_some_and(|ip| in_net(ip, *net, *bits)),
                }
        })
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(a.to_bits()), u128::from(b.to_bits()), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (a.to_bits(), b.to_bits(), 128),
        _ => return false,
    };
    let shift = width - u32::from(bits);
    shift >= 128 || (ip >> shift) == (net >> shift)
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) fn base64_for_tests(data: &[u8]) -> String {
    base64(data)
}
