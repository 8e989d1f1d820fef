//! https origins against a local TLS server with a freshly generated self-signed certificate.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsAcceptor;

use super::super::{Error, Origin, Pool, PoolConfig, default_tls, tls_with_roots};
use super::{OK_HELLO, Server, config, post_head, read_request};

/// A TLS server for 127.0.0.1 answering every request with `OK_HELLO`, and its certificate.
pub(super) async fn tls_server() -> (Server, CertificateDer<'static>) {
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = generated.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(server_config));
    let server = Server::start(move |stream, _| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(mut tls) = acceptor.accept(stream).await else {
                return;
            };
            let mut buf = Vec::new();
            while read_request(&mut tls, &mut buf).await.is_some() {
                tls.write_all(OK_HELLO).await.unwrap();
            }
        }
    })
    .await;
    (server, cert)
}

pub(super) fn https_pool(server: &Server, config: PoolConfig) -> Pool {
    let (origin, _) =
        Origin::parse(&format!("https://127.0.0.1:{}/v1", server.addr.port())).unwrap();
    Pool::new(origin, config)
}

#[tokio::test]
async fn requests_over_tls_reuse_the_connection() {
    let (server, cert) = tls_server().await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let pool = https_pool(
        &server,
        PoolConfig {
            tls: tls_with_roots(roots),
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
    assert_eq!(server.accepted(), 1);
    assert_eq!(pool.idle_count(), 1);
}

#[tokio::test]
async fn an_untrusted_certificate_fails_the_handshake() {
    let (server, _) = tls_server().await;
    let pool = https_pool(&server, config());
    assert!(Arc::ptr_eq(&default_tls(), &default_tls()));
    let error = pool.send(&post_head(b""), b"").await.err().unwrap();
    assert!(matches!(error, Error::Tls { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains(&format!("127.0.0.1:{}", server.addr.port()))
    );
}

#[tokio::test]
async fn a_silent_handshake_hits_the_connect_timeout() {
    // Accepts TCP, never answers the ClientHello.
    let server = Server::start(|stream, _| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(stream);
    })
    .await;
    let pool = https_pool(
        &server,
        PoolConfig {
            connect_timeout: Duration::from_millis(50),
            ..config()
        },
    );
    let error = pool.send(&post_head(b""), b"").await.err().unwrap();
    assert!(matches!(error, Error::ConnectTimeout { .. }), "{error}");
}
