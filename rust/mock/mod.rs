//! Mock LLM provider: a real HTTP/1.1 server speaking the `OpenAI` Chat Completions, Anthropic
//! Messages and Gemini protocols (whole JSON answers and streams, byte for byte as the real
//! APIs send them), scripted per model (thinking, tool calls, cached tokens, latency, pacing,
//! failures, hangs, truncation, malformed chunks, mid-stream errors). The gateway's tests, the
//! embedded demo and the benchmark run against it instead of real APIs.
//!
//! Endpoints:
//! - `POST /v1/chat/completions`: Chat Completions (`Authorization: Bearer` key).
//! - `POST /v1/messages`: Anthropic Messages (`x-api-key` key).
//! - `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent` (SSE with
//!   `?alt=sse`, else a JSON array): Gemini (`x-goog-api-key` or `?key=` key).
//! - `GET /v1/models`, `GET /mock/stats`, and `GET`/`PUT /mock/config` to read or replace the
//!   scripts of a running server.
//!
//! Every protocol answers with the same scripted [`MockScript`], rendered in its own wire format.

mod anthropic;
mod body;
mod gemini;
mod openai;
mod protocol;
mod render;
mod reply;
mod script;
mod server;
mod stats;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::net::TcpSocket;
use tokio::sync::oneshot;

pub use script::{MockConfig, MockConfigError, MockScript};
pub use stats::MockStats;

use script::Scripts;
use server::Shared;

/// A running mock provider on its own tokio runtime and thread(s); stopped on drop.
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Binds `addr` (port 0 picks a free port) and returns once it accepts connections.
    /// `threads` <= 1 runs everything on one thread; more gives a multi-threaded runtime.
    pub fn start(addr: SocketAddr, config: MockConfig, threads: usize) -> io::Result<MockServer> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // Load the tokenizer now, so the first request is not the one paying for it.
        crate::tokens::warm_up();
        let runtime = if threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
        .enable_all()
        .thread_name("muxgate-mock")
        .build()?;
        let listener = {
            let _context = runtime.enter();
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(1024)?
        };
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("muxgate-mock".to_owned())
            .spawn({
                let shared = shared.clone();
                // Dropping the runtime at the end cancels every connection still open.
                move || runtime.block_on(server::serve(listener, shared, stopped))
            })?;
        Ok(MockServer {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The provider base URL to configure a channel with, e.g. `http://127.0.0.1:8123/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Replaces the scripts; requests already running finish with the old ones.
    pub fn set_config(&self, config: MockConfig) -> Result<(), MockConfigError> {
        config.validate()?;
        self.shared
            .scripts
            .store(Arc::new(Scripts::compile(config)));
        Ok(())
    }

    pub fn config(&self) -> MockConfig {
        self.shared.scripts.load().config.clone()
    }

    pub fn stats(&self) -> MockStats {
        self.shared.stats.snapshot()
    }

    /// Stops accepting, drops open connections and joins the server thread. Idempotent.
    pub fn shutdown(&mut self) {
        let Some(stop) = self.stop.take() else { return };
        self.shared.stats.stopping();
        let _ = stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests;
