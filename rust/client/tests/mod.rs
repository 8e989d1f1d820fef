//! The client against real local servers: scripted TCP listeners that answer with exact bytes,
//! so each test controls framing, keep-alive and failures down to the byte.

mod bodies;
mod origin;
mod pool;
mod proxy;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Origin, Pool, PoolConfig, default_tls};

/// A listener on 127.0.0.1 that hands each accepted connection, with its index, to `handler`.
struct Server {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start<F, Fut>(handler: F) -> Server
    where
        F: Fn(TcpStream, usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let index = count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(handler(stream, index));
            }
        });
        Server {
            addr,
            accepted,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn pool(&self) -> Pool {
        self.pool_with(config())
    }

    fn pool_with(&self, config: PoolConfig) -> Pool {
        let (origin, _) = Origin::parse(&format!("http://{}/", self.addr)).unwrap();
        Pool::new(origin, config)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn config() -> PoolConfig {
    PoolConfig {
        connect_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(30),
        max_idle: 8,
        tls: default_tls(),
        egress: super::Egress::Direct,
    }
}

/// A POST head as the engine renders it.
fn post_head(body: &[u8]) -> Vec<u8> {
    format!(
        "POST /v1/chat HTTP/1.1\r\nhost: test\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes()
}

/// One request (head and content-length body) off the stream; `None` once the peer closed.
async fn read_request<S: AsyncReadExt + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> Option<Vec<u8>> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            let total = end + 4 + length;
            if buf.len() >= total {
                return Some(buf.drain(..total).collect());
            }
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Answer every request on the connection with `response`, until the peer closes.
async fn answer_all(mut stream: TcpStream, response: &'static [u8]) {
    let mut buf = Vec::new();
    while read_request(&mut stream, &mut buf).await.is_some() {
        if stream.write_all(response).await.is_err() {
            return;
        }
    }
}

const OK_HELLO: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
