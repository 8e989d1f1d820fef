use super::super::{Error, Origin};

#[test]
fn default_ports_paths_and_host_headers() {
    let (o, path) = Origin::parse("https://api.example.com/v1/chat/completions").unwrap();
    assert!(o.is_tls());
    assert_eq!(
        (o.host_header(), o.port, path.as_str()),
        ("api.example.com", 443, "/v1/chat/completions")
    );
    let (o, path) = Origin::parse("HTTP://127.0.0.1:8080").unwrap();
    assert!(!o.is_tls());
    assert_eq!(
        (o.host_header(), o.port, path.as_str()),
        ("127.0.0.1:8080", 8080, "/")
    );
    let (o, path) = Origin::parse("http://h:80?x=1#frag").unwrap();
    assert_eq!((o.host_header(), path.as_str()), ("h", "/?x=1"));
}

#[test]
fn ipv6_literals() {
    let (o, path) = Origin::parse("http://[::1]:9000/a").unwrap();
    assert_eq!(
        (o.host.as_str(), o.port, o.host_header(), path.as_str()),
        ("::1", 9000, "[::1]:9000", "/a")
    );
    assert_eq!(o.authority(), "[::1]:9000");
    let (o, _) = Origin::parse("https://[2001:db8::1]").unwrap();
    assert_eq!((o.port, o.host_header()), (443, "[2001:db8::1]"));
}

#[test]
fn rejects_what_it_cannot_reach() {
    for url in [
        "ftp://x",
        "x",
        "http://",
        "http:///path",
        "http://user:pw@host/",
        "http://host:port/",
        "http://host:70000/",
        "http://[::1/",
        "http://[nothex]/",
        "http://[::1]x/",
        "http://a:b:c/",
        "http://ho st/",
        "http://host/a b",
    ] {
        assert!(
            matches!(Origin::parse(url), Err(Error::InvalidUrl(_))),
            "{url}"
        );
    }
}
