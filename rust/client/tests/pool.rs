//! Connection reuse: when a connection goes back to the pool, when it does not, and the retry
//! of a request that met a stale keep-alive connection.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::super::{Error, PoolConfig};
use super::{OK_HELLO, Server, answer_all, config, post_head, read_request};

#[tokio::test]
async fn sequential_requests_share_one_connection() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = Server::start(move |mut stream, _| {
        let log = log.clone();
        async move {
            let mut buf = Vec::new();
            while let Some(request) = read_request(&mut stream, &mut buf).await {
                log.lock().unwrap().push(request);
                stream.write_all(OK_HELLO).await.unwrap();
            }
        }
    })
    .await;
    let pool = server.pool();
    for _ in 0..3 {
        let response = pool.send(&post_head(b"{}"), b"{}").await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.into_body().collect(1024).await.unwrap(),
            &b"hello"[..]
        );
    }
    assert_eq!(server.accepted(), 1);
    assert_eq!(pool.idle_count(), 1);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0], [post_head(b"{}"), b"{}".to_vec()].concat());
}

#[tokio::test]
async fn connections_that_must_close_are_not_reused() {
    for response in [
        &b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"[..],
        b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok",
    ] {
        let server = Server::start(move |stream, _| answer_all(stream, response)).await;
        let pool = server.pool();
        for _ in 0..2 {
            let body = pool.send(&post_head(b""), b"").await.unwrap().into_body();
            assert_eq!(body.collect(1024).await.unwrap(), &b"ok"[..]);
        }
        assert_eq!(server.accepted(), 2);
        assert_eq!(pool.idle_count(), 0);
    }
}

#[tokio::test]
async fn a_body_dropped_midway_closes_its_connection() {
    let server = Server::start(|stream, _| answer_all(stream, OK_HELLO)).await;
    let pool = server.pool();
    let response = pool.send(&post_head(b""), b"").await.unwrap();
    drop(response);
    assert_eq!(pool.idle_count(), 0);
    let body = pool.send(&post_head(b""), b"").await.unwrap().into_body();
    assert_eq!(body.collect(1024).await.unwrap(), &b"hello"[..]);
    assert_eq!(server.accepted(), 2);
    assert_eq!(pool.idle_count(), 1);
}

#[tokio::test]
async fn a_stale_keepalive_connection_is_retried_on_a_fresh_one() {
    // Each connection answers one request without announcing a close, then closes.
    let server = Server::start(|mut stream, _| async move {
        let mut buf = Vec::new();
        if read_request(&mut stream, &mut buf).await.is_some() {
            stream.write_all(OK_HELLO).await.unwrap();
        }
    })
    .await;
    let pool = server.pool();
    for _ in 0..3 {
        let body = pool.send(&post_head(b"x"), b"x").await.unwrap().into_body();
        assert_eq!(body.collect(1024).await.unwrap(), &b"hello"[..]);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.accepted(), 3);
}

#[tokio::test]
async fn a_reused_connection_that_fails_midresponse_is_not_retried() {
    let server = Server::start(|mut stream, index| async move {
        let mut buf = Vec::new();
        if index > 0 {
            return;
        }
        read_request(&mut stream, &mut buf).await.unwrap();
        stream.write_all(OK_HELLO).await.unwrap();
        read_request(&mut stream, &mut buf).await.unwrap();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-le")
            .await
            .unwrap();
    })
    .await;
    let pool = server.pool();
    let body = pool.send(&post_head(b""), b"").await.unwrap().into_body();
    body.collect(1024).await.unwrap();
    let error = pool.send(&post_head(b""), b"").await.err().unwrap();
    assert!(matches!(error, Error::Truncated), "{error}");
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn idle_connections_expire() {
    let server = Server::start(|stream, _| answer_all(stream, OK_HELLO)).await;
    let pool = server.pool_with(PoolConfig {
        idle_timeout: Duration::from_millis(30),
        ..config()
    });
    pool.send(&post_head(b""), b"")
        .await
        .unwrap()
        .into_body()
        .collect(64)
        .await
        .unwrap();
    assert_eq!(pool.idle_count(), 1);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(pool.idle_count(), 0);
    pool.send(&post_head(b""), b"")
        .await
        .unwrap()
        .into_body()
        .collect(64)
        .await
        .unwrap();
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn max_idle_bounds_the_pool() {
    let server = Server::start(|stream, _| answer_all(stream, OK_HELLO)).await;
    let pool = server.pool_with(PoolConfig {
        max_idle: 2,
        ..config()
    });
    let head = post_head(b"");
    let mut responses = Vec::new();
    for _ in 0..4 {
        responses.push(pool.send(&head, b"").await.unwrap());
    }
    for response in responses {
        response.into_body().collect(64).await.unwrap();
    }
    assert_eq!(server.accepted(), 4);
    assert_eq!(pool.idle_count(), 2);
}

#[tokio::test]
async fn connect_errors_name_the_peer_and_the_os_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let (origin, _) = super::super::Origin::parse(&format!("http://{addr}")).unwrap();
    let pool = super::super::Pool::new(origin, config());
    let error = pool.send(&post_head(b""), b"").await.err().unwrap();
    assert!(matches!(error, Error::Connect { .. }), "{error}");
    let text = error.to_string();
    assert!(text.contains(&addr.to_string()), "{text}");
    assert!(text.contains("refused"), "{text}");
}

#[tokio::test]
async fn errors_never_echo_header_values() {
    let server = Server::start(|stream, _| {
        answer_all(stream, b"HTTP/1.1 200 OK\r\nx-key: sk-secret\x01\r\n\r\n")
    })
    .await;
    let error = server
        .pool()
        .send(&post_head(b""), b"")
        .await
        .err()
        .unwrap();
    assert!(matches!(error, Error::InvalidResponse(_)), "{error}");
    assert!(!format!("{error} {error:?}").contains("sk-secret"));
}
