//! Origins reached through an HTTP proxy written here: it records what it was asked and
//! forwards the bytes (a CONNECT tunnel, or an absolute-form request passed on as it is).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::super::proxy::base64_for_tests;
use super::super::{Egress, Error, NoProxy, Origin, Pool, PoolConfig, Proxy, ProxyEnv};
use super::tls::{https_pool, tls_server};
use super::{OK_HELLO, Server, answer_all, config, post_head};

/// What the proxy saw on each connection: its first request line and `proxy-authorization`.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A proxy that answers CONNECT with `connect_status` (tunnelling on 2xx) and forwards
/// absolute-form requests to the origin they name.
async fn proxy_server(connect_status: u16) -> (Server, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let server = Server::start(move |mut client, _| {
        let log = log.clone();
        async move {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if client.read(&mut byte).await.unwrap_or(0) == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            let text = String::from_utf8(head.clone()).unwrap();
            let line = text.lines().next().unwrap().to_owned();
            let auth = text.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .starts_with("proxy-authorization:")
                    .then(|| l["proxy-authorization:".len()..].trim().to_owned())
            });
            log.lock().push((line.clone(), auth));
            let target = line.split(' ').nth(1).unwrap().to_owned();
            let mut upstream = if line.starts_with("CONNECT ") {
                if connect_status != 200 {
                    let answer =
                        format!("HTTP/1.1 {connect_status} No\r\ncontent-length: 0\r\n\r\n");
                    let _ = client.write_all(answer.as_bytes()).await;
                    return;
                }
                let upstream = TcpStream::connect(&target).await.unwrap();
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                upstream
            } else {
                let authority = target.strip_prefix("http://").unwrap().split('/').next();
                let mut upstream = TcpStream::connect(authority.unwrap()).await.unwrap();
                upstream.write_all(&head).await.unwrap();
                upstream
            };
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
    })
    .await;
    (server, seen)
}

fn through(proxy: &Server, userinfo: &str) -> Egress {
    let url = format!("http://{userinfo}127.0.0.1:{}", proxy.addr.port());
    Egress::Proxy(Arc::new(Proxy::parse(&url).unwrap()))
}

#[tokio::test]
async fn https_origins_go_through_a_connect_tunnel_with_basic_auth() {
    let (origin, cert) = tls_server().await;
    let (proxy, seen) = proxy_server(200).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let pool = https_pool(
        &origin,
        PoolConfig {
            tls: super::super::tls_with_roots(roots),
            egress: through(&proxy, "alice:s%40cret@"),
            ..config()
        },
    );
    for _ in 0..2 {
        let response = pool.send(&post_head(b"{}"), b"{}").await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.into_body().collect(64).await.unwrap(),
            &b"hello"[..]
        );
    }
    let target = format!("127.0.0.1:{}", origin.addr.port());
    let basic = format!("Basic {}", base64_for_tests(b"alice:s@cret"));
    // One tunnel, reused: the pool keeps connections per (proxy, origin).
    assert_eq!(
        *seen.lock(),
        vec![(format!("CONNECT {target} HTTP/1.1"), Some(basic))]
    );
    assert_eq!((proxy.accepted(), origin.accepted()), (1, 1));
}

#[tokio::test]
async fn http_origins_get_absolute_form_requests() {
    let origin = Server::start(|stream, _| answer_all(stream, OK_HELLO)).await;
    let (proxy, seen) = proxy_server(200).await;
    let pool = origin.pool_with(PoolConfig {
        egress: through(&proxy, "bob:pw@"),
        ..config()
    });
    for _ in 0..2 {
        let response = pool.send(&post_head(b"{}"), b"{}").await.unwrap();
        assert_eq!(
            response.into_body().collect(64).await.unwrap(),
            &b"hello"[..]
        );
    }
    let line = format!(
        "POST http://127.0.0.1:{}/v1/chat HTTP/1.1",
        origin.addr.port()
    );
    let basic = format!("Basic {}", base64_for_tests(b"bob:pw"));
    assert_eq!(*seen.lock(), vec![(line, Some(basic))]);
    assert_eq!(proxy.accepted(), 1);
}

#[tokio::test]
async fn a_refused_tunnel_names_the_proxy_and_its_status_never_the_credentials() {
    let (origin, _) = tls_server().await;
    let (proxy, _) = proxy_server(407).await;
    let pool = https_pool(
        &origin,
        PoolConfig {
            egress: through(&proxy, "alice:hunter2@"),
            ..config()
        },
    );
    let error = pool.send(&post_head(b""), b"").await.err().unwrap();
    assert!(
        matches!(error, Error::ProxyRefused { status: 407, .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("127.0.0.1:{}", proxy.addr.port())),
        "{message}"
    );
    assert!(
        !message.contains("hunter2") && !message.contains("alice"),
        "{message}"
    );
    let debug = format!("{:?}", through(&proxy, "alice:hunter2@"));
    assert!(!debug.contains("hunter2"), "{debug}");
    assert_eq!(origin.accepted(), 0);
}

#[tokio::test]
async fn an_unreachable_proxy_is_named_as_the_proxy() {
    let origin = Server::start(|stream, _| answer_all(stream, OK_HELLO)).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let proxy = Proxy::parse(&format!("127.0.0.1:{port}")).unwrap();
    let pool = origin.pool_with(PoolConfig {
        egress: Egress::Proxy(Arc::new(proxy)),
        ..config()
    });
    let error = pool.send(&post_head(b""), b"").await.err().unwrap();
    assert!(matches!(error, Error::Connect { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains(&format!("the proxy 127.0.0.1:{port}"))
    );
}

fn env(vars: &[(&str, &str)]) -> ProxyEnv {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    ProxyEnv::from_lookup(|name| vars.get(name).cloned())
}

fn origin(url: &str) -> Origin {
    Origin::parse(url).unwrap().0
}

#[tokio::test]
async fn no_proxy_origins_are_reached_directly() {
    let server = Server::start(|stream, _| answer_all(stream, OK_HELLO)).await;
    let (proxy, seen) = proxy_server(200).await;
    let proxy_url = format!("http://127.0.0.1:{}", proxy.addr.port());
    let listed = env(&[
        ("HTTP_PROXY", &proxy_url),
        (
            "NO_PROXY",
            &format!("example.com, 127.0.0.1:{}", server.addr.port()),
        ),
    ]);
    let url = format!("http://127.0.0.1:{}/v1", server.addr.port());
    let egress = listed.egress(&origin(&url));
    assert_eq!(egress, Egress::Direct);
    let pool = Pool::new(origin(&url), PoolConfig { egress, ..config() });
    let response = pool.send(&post_head(b""), b"").await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(seen.lock().is_empty());
    assert_eq!(proxy.accepted(), 0);
    // 127.0.0.1 is not bypassed implicitly.
    let unlisted = env(&[("HTTP_PROXY", &proxy_url)]);
    assert!(matches!(unlisted.egress(&origin(&url)), Egress::Proxy(_)));
}

#[test]
fn the_scheme_picks_the_variable_and_lowercase_wins() {
    let both = env(&[
        ("https_proxy", "http://lower:1"),
        ("HTTPS_PROXY", "http://upper:2"),
        ("HTTP_PROXY", "upper-http:3"),
    ]);
    let via = |e: &ProxyEnv, url: &str| match e.egress(&origin(url)) {
        Egress::Proxy(p) => p.authority(),
        other => format!("{other:?}"),
    };
    assert_eq!(via(&both, "https://api.example.com"), "lower:1");
    assert_eq!(via(&both, "http://api.example.com"), "upper-http:3");
    let none = env(&[]);
    assert_eq!(
        none.egress(&origin("https://api.example.com")),
        Egress::Direct
    );
    let bad = env(&[("HTTPS_PROXY", "socks5://h:1")]);
    assert!(matches!(
        bad.egress(&origin("https://a.b")),
        Egress::Misconfigured(_)
    ));
    assert_eq!(bad.egress(&origin("http://a.b")), Egress::Direct);
}

#[test]
fn no_proxy_matches_domains_ports_addresses_and_ranges() {
    let list = NoProxy::parse(
        "Example.com,.corp.internal, *.svc ,localhost:8080,10.0.0.0/8,192.168.1.7,[::1]:9000,fd00::/8",
    );
    let cases = [
        ("example.com", 443, true),
        ("api.example.com", 443, true),
        ("API.EXAMPLE.COM", 80, true),
        ("badexample.com", 443, false),
        ("corp.internal", 443, true),
        ("a.b.corp.internal", 443, true),
        ("x.svc", 80, true),
        ("localhost", 8080, true),
        ("localhost", 80, false),
        ("127.0.0.1", 80, false),
        ("10.20.30.40", 443, true),
        ("11.0.0.1", 443, false),
        ("192.168.1.7", 1, true),
        ("192.168.1.8", 1, false),
        ("::1", 9000, true),
        ("::1", 9001, false),
        ("fd12::1", 443, true),
        ("fe80::1", 443, false),
    ];
    for (host, port, bypassed) in cases {
        assert_eq!(list.bypasses(host, port), bypassed, "{host}:{port}");
    }
    assert!(NoProxy::parse("*").bypasses("anything.example", 1));
    assert!(!NoProxy::parse("").bypasses("localhost", 80));
}

#[test]
fn proxy_urls_parse_with_defaults_and_refuse_other_schemes() {
    let proxy = Proxy::parse("proxy.corp:3128").unwrap();
    assert_eq!(proxy.authority(), "proxy.corp:3128");
    assert_eq!(
        Proxy::parse("http://proxy.corp/").unwrap().authority(),
        "proxy.corp:80"
    );
    assert_eq!(
        Proxy::parse("http://[::1]:3128").unwrap().authority(),
        "[::1]:3128"
    );
    assert!(matches!(
        Proxy::parse("https://p:1"),
        Err(Error::InvalidProxy(_))
    ));
    assert!(matches!(
        Proxy::parse("http://p:x"),
        Err(Error::InvalidProxy(_))
    ));
    assert_eq!(base64_for_tests(b"a"), "YQ==");
    assert_eq!(base64_for_tests(b"ab"), "YWI=");
    assert_eq!(base64_for_tests(b"abc"), "YWJj");
}
