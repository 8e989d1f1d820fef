//! Bodies over real connections: each framing, truncation, limits, and reads cancelled by a
//! timeout that must not lose bytes.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::super::Error;
use super::{Server, answer_all, post_head, read_request};

/// A server that answers the first request with `parts`, pausing `gap` between them, then
/// keeps the connection open for reuse (or closes it when `close` is set).
async fn scripted(parts: &'static [&'static [u8]], gap: Duration, close: bool) -> Server {
    Server::start(move |mut stream, _| async move {
        let mut buf = Vec::new();
        if read_request(&mut stream, &mut buf).await.is_none() {
            return;
        }
        for part in parts {
            stream.write_all(part).await.unwrap();
            tokio::time::sleep(gap).await;
        }
        if !close {
            while read_request(&mut stream, &mut buf).await.is_some() {}
        }
    })
    .await
}

#[tokio::test]
async fn chunked_bodies_stream_and_return_the_connection() {
    let server = scripted(
        &[
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            b"6;ext=1\r\ndata: \r\n",
            b"1\r\na\r\n",
            b"2\r\n\n\n\r\n0\r\nx-trailer: t\r\n\r\n",
        ],
        Duration::from_millis(5),
        false,
    )
    .await;
    let pool = server.pool();
    let mut response = pool.send(&post_head(b"{}"), b"{}").await.unwrap();
    let body = response.body_mut();
    let mut got = Vec::new();
    while let Some(chunk) = body.chunk().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(got, b"data: a\n\n");
    assert!(body.is_end());
    assert_eq!(pool.idle_count(), 1);
}

#[tokio::test]
async fn cancelled_reads_lose_no_bytes() {
    let server = scripted(
        &[
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            b"3\r\none\r\n",
            b"3\r\ntw",
            b"o\r\n5",
            b"\r\nthree\r\n0\r\n",
            b"\r\n",
        ],
        Duration::from_millis(15),
        false,
    )
    .await;
    let pool = server.pool();
    let mut body = pool.send(&post_head(b""), b"").await.unwrap().into_body();
    let mut got = Vec::new();
    let mut timeouts = 0;
    loop {
        match tokio::time::timeout(Duration::from_millis(2), body.chunk()).await {
            Err(_) => timeouts += 1,
            Ok(None) => break,
            Ok(Some(chunk)) => got.extend_from_slice(&chunk.unwrap()),
        }
    }
    assert_eq!(got, b"onetwothree");
    assert!(timeouts > 0, "the reads were never cancelled");
    assert!(body.is_end());
    assert_eq!(pool.idle_count(), 1);
}

#[tokio::test]
async fn bodies_read_until_close() {
    let server = scripted(
        &[b"HTTP/1.1 200 OK\r\n\r\npart one, ", b"part two"],
        Duration::from_millis(5),
        true,
    )
    .await;
    let pool = server.pool();
    let body = pool.send(&post_head(b""), b"").await.unwrap().into_body();
    assert_eq!(
        body.collect(1024).await.unwrap(),
        &b"part one, part two"[..]
    );
    assert_eq!(pool.idle_count(), 0);
}

#[tokio::test]
async fn a_short_body_is_truncated() {
    const SHORT: [&[u8]; 1] = [b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"];
    const CUT: [&[u8]; 1] = [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab"];
    for parts in [&SHORT, &CUT] {
        let server = scripted(parts, Duration::ZERO, true).await;
        let body = server
            .pool()
            .send(&post_head(b""), b"")
            .await
            .unwrap()
            .into_body();
        let error = body.collect(1024).await.err().unwrap();
        assert!(matches!(error, Error::Truncated), "{error}");
    }
}

#[tokio::test]
async fn collect_stops_at_its_limit() {
    let server = Server::start(|stream, _| {
        answer_all(
            stream,
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789",
        )
    })
    .await;
    let pool = server.pool();
    let body = pool.send(&post_head(b""), b"").await.unwrap().into_body();
    assert!(matches!(
        body.collect(9).await,
        Err(Error::BodyTooLarge { limit: 9 })
    ));
    let chunked = scripted(
        &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n"],
        Duration::ZERO,
        false,
    )
    .await;
    let body = chunked
        .pool()
        .send(&post_head(b""), b"")
        .await
        .unwrap()
        .into_body();
    assert!(matches!(
        body.collect(9).await,
        Err(Error::BodyTooLarge { limit: 9 })
    ));
}

#[tokio::test]
async fn bodiless_answers_return_the_connection_at_once() {
    let server = Server::start(|stream, _| {
        answer_all(
            stream,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nretry-after: 7\r\n\r\n",
        )
    })
    .await;
    let pool = server.pool();
    let response = pool.send(&post_head(b""), b"").await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(response.header("Retry-After"), Some(&b"7"[..]));
    assert_eq!(response.headers().count(), 1);
    assert!(response.into_body().is_end());
    assert_eq!(pool.idle_count(), 1);
}

#[tokio::test]
async fn bytes_past_the_response_keep_the_connection_out_of_the_pool() {
    let server = Server::start(|stream, _| {
        answer_all(
            stream,
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA",
        )
    })
    .await;
    let pool = server.pool();
    let body = pool.send(&post_head(b""), b"").await.unwrap().into_body();
    assert_eq!(body.collect(64).await.unwrap(), &b"ok"[..]);
    assert_eq!(pool.idle_count(), 0);
}
