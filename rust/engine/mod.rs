//! The data-plane engine: routing table, upstream pools and the request flow, on a Tokio
//! runtime of its own. Python hands it a request and a way to deliver the reply; everything
//! between (auth, validation, routing, upstream I/O, failover, relay, metering) happens here.

mod admission;
pub mod auto;
mod chat;
mod counts;
pub mod error;
pub mod insurance;
pub mod protocol;
mod request;
pub mod routing;
pub mod steering;
pub mod stream;
pub mod upstream;
pub mod usage;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use self::admission::authenticate;
use self::error::{ErrorKind, GatewayError};
use self::protocol::{Call, Surface};
use self::routing::{Routing, bearer};
use self::stream::StreamBuffer;
use self::usage::UsageEvent;
use crate::snapshot::RoutingSnapshot;

pub type Headers = Vec<(String, String)>;

/// A complete response.
pub struct Response {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

pub enum Reply {
    Complete(Response),
    /// A 200 event stream: write the headers, then drain the buffer until it ends.
    Stream {
        headers: Headers,
        buffer: Arc<StreamBuffer>,
    },
}

pub type Deliver = Box<dyn FnOnce(Reply) + Send>;

/// Called (from any thread) whenever usage events are waiting to be taken.
pub type UsageNotify = Arc<dyn Fn() + Send + Sync>;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Work handed to the I/O thread. Waking a parked Tokio thread costs a syscall, so requests
/// that arrive together (one event-loop turn of the caller) share one wake-up.
#[derive(Default)]
struct Submissions {
    queue: Mutex<Vec<Job>>,
    ready: tokio::sync::Notify,
}

impl Submissions {
    fn submit(&self, job: Job) {
        let first = {
            let mut queue = self.queue.lock();
            queue.push(job);
            queue.len() == 1
        };
        if first {
            self.ready.notify_one();
        }
    }

    /// Runs on the I/O thread until `stopped`: spawn what was submitted, as it comes.
    async fn serve(&self, mut stopped: tokio::sync::oneshot::Receiver<()>) {
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                () = self.ready.notified() => {
                    let jobs = std::mem::take(&mut *self.queue.lock());
                    for job in jobs {
                        tokio::spawn(job);
                    }
                }
            }
        }
    }
}

pub struct Engine {
    routing: ArcSwap<Routing>,
    submissions: Arc<Submissions>,
    /// Dropping it stops the runtime thread.
    _stop: tokio::sync::oneshot::Sender<()>,
    /// Usage events of finished requests not taken yet, one JSON line each: encoded here, on
    /// the I/O thread, so the Python side only moves bytes.
    usage: Mutex<Vec<u8>>,
    usage_notify: Mutex<Option<UsageNotify>>,
    /// Rate-limit buckets: in the Redis named by `use_redis_limits` (shared by every worker),
    /// else in memory; made on the I/O thread with the first request.
    limiter: tokio::sync::OnceCell<Arc<crate::limits::Limiter>>,
    limits_redis: Mutex<Option<String>>,
}

impl Engine {
    pub fn new() -> std::io::Result<Arc<Self>> {
        // One I/O thread driving a current-thread runtime: the Python thread only ever hands
        // work to this one thread, so a work-stealing scheduler has nothing to steal. A quick
        // check measured less CPU per request; the full benchmark did not confirm a gain yet.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let submissions = Arc::new(Submissions::default());
        let serving = submissions.clone();
        std::thread::Builder::new()
            .name("muxgate-io".to_owned())
            .spawn(move || runtime.block_on(serving.serve(stopped)))?;
        // The vocabularies load in ~0.1 s: do it now, off the caller's thread, not on the
        // first request.
        handle.spawn_blocking(crate::tokens::warm_up);
        Ok(Arc::new(Self {
            routing: ArcSwap::from_pointee(Routing::empty()),
            submissions,
            _stop: stop,
            usage: Mutex::new(Vec::new()),
            usage_notify: Mutex::new(None),
            limiter: tokio::sync::OnceCell::new(),
            limits_redis: Mutex::new(None),
        }))
    }

    /// Swap in a new routing table, built from msgpack snapshot bytes. In-flight requests keep
    /// the table they started with. `credentials` holds provider secrets the worker decrypted
    /// itself (by provider id); they win over `credential_env`. Returns the warnings found
    /// while compiling.
    pub fn load_snapshot(
        &self,
        bytes: &[u8],
        credentials: &HashMap<String, String>,
    ) -> Result<Vec<String>, String> {
        let snapshot: RoutingSnapshot =
            rmp_serde::from_slice(bytes).map_err(|e| format!("invalid routing snapshot: {e}"))?;
        if snapshot.version == 0 {
            return Err("routing snapshot version must be positive".to_owned());
        }
        let current = self.routing.load();
        if current.is_ready() && snapshot.version < current.version {
            return Err(format!(
                "routing snapshot {} is older than the loaded {}",
                snapshot.version, current.version
            ));
        }
        let (routing, warnings) = Routing::compile(&snapshot, &current, credentials);
        self.routing.store(Arc::new(routing));
        Ok(warnings)
    }

    pub fn routing_version(&self) -> u64 {
        self.routing.load().version
    }

    /// The channels a request for `model` (`author/model[:provider]`) would try, in order,
    /// under the routing fields of `body` (a JSON object such as a request's; `provider`,
    /// `zenmux-route`...). The decision is made `repeat` times (at least once, for
    /// benchmarks) and the last plan returned; planning moves round-robin state as requests do.
    pub fn route(&self, model: &str, body: &[u8], repeat: u32) -> Result<Vec<String>, String> {
        let routing = self.routing.load();
        let steering = request::steering_of(body).map_err(|e| e.message)?;
        let (route, pinned) = routing
            .model_and_pin(model)
            .ok_or_else(|| format!("Model {model} is not valid"))?;
        steering::check(route, &steering.order, pinned).map_err(|e| e.message)?;
        let mut plan = Vec::with_capacity(route.channels.len());
        for _ in 0..repeat.max(1) {
            steering::plan(route, &steering.order, pinned, Instant::now(), &mut plan)
                .map_err(|e| e.message)?;
        }
        Ok(plan.iter().map(|&i| route.channels[i].id.clone()).collect())
    }

    /// Keep rate-limit buckets in the Redis at `url`, shared by every worker using it. Call
    /// before the first request; without it buckets live in this process's memory.
    pub fn use_redis_limits(&self, url: &str) {
        *self.limits_redis.lock() = Some(url.to_owned());
    }

    /// The rate limiter, made on the I/O thread with the first request. While Redis does not
    /// answer, the worker limits in its own memory (see `limits`).
    async fn limiter(&self) -> &crate::limits::Limiter {
        use crate::limits::Limiter;
        self.limiter
            .get_or_init(|| async {
                let url = self.limits_redis.lock().clone();
                let limiter = url
                    .and_then(|url| Limiter::with_redis(&url, "muxgate:rl:").ok())
                    .unwrap_or_else(Limiter::in_memory);
                let limiter = Arc::new(limiter);
                Limiter::sweep_every(&limiter);
                limiter
            })
            .await
    }

    pub fn set_usage_notify(&self, notify: UsageNotify) {
        *self.usage_notify.lock() = Some(notify);
    }

    /// The JSON lines queued since the last call (empty if none).
    pub fn take_usage(&self) -> Vec<u8> {
        std::mem::take(&mut *self.usage.lock())
    }

    /// Queue a request's usage event. Called before the request's answer is delivered (and
    /// before a stream is ended), so whoever takes the answer finds its usage already queued:
    /// the worker writes it to its usage journal before the answer's bytes go out.
    fn emit_usage(&self, event: &UsageEvent) {
        let first = {
            let mut queue = self.usage.lock();
            let first = queue.is_empty();
            serde_json::to_writer(&mut *queue, event).expect("a usage event always serializes");
            queue.push(b'\n');
            first
        };
        if first && let Some(notify) = self.usage_notify.lock().clone() {
            notify();
        }
    }

    /// Start a chat request on the client's surface; `deliver` is called exactly once, from the
    /// runtime.
    pub fn chat(
        self: &Arc<Self>,
        call: Call,
        authorization: Option<&str>,
        api_key: Option<&str>,
        body: Vec<u8>,
        deliver: Deliver,
    ) {
        let secret = bearer(authorization, api_key);
        let engine = self.clone();
        let received = Instant::now();
        self.submissions.submit(Box::pin(async move {
            engine.run_chat(call, secret, body, received, deliver).await;
        }));
    }

    /// `GET /models`: the models this key may use, in the client protocol's list shape.
    pub fn models(
        &self,
        surface: Surface,
        authorization: Option<&str>,
        api_key: Option<&str>,
    ) -> Response {
        let routing = self.routing.load();
        let request_id = new_request_id();
        let key = match authenticate(
            &routing,
            bearer(authorization, api_key).as_deref(),
            unix_ms(),
        ) {
            Ok(k) => k,
            Err(e) => return error_response(&e, &request_id, surface),
        };
        let models = routing.catalog.iter().filter(|m| key.allows(&m.slug));
        let body = match surface {
            Surface::Chat | Surface::Responses => {
                let data: Vec<serde_json::Value> = models
                    .map(|m| {
                        serde_json::json!({
                            "id": m.slug,
                            "object": "model",
                            "created": 0,
                            "owned_by": m.slug.split_once('/').map_or("muxgate", |(a, _)| a),
                            "context_length": m.context_length,
                        })
                    })
                    .collect();
                serde_json::json!({"object": "list", "data": data})
            }
            Surface::Messages => {
                let data: Vec<serde_json::Value> = models
                    .map(|m| {
                        serde_json::json!({
                            "type": "model",
                            "id": m.slug,
                            "display_name": m.slug,
                            "created_at": "1970-01-01T00:00:00Z",
                        })
                    })
                    .collect();
                serde_json::json!({
                    "first_id": data.first().map(|m| m["id"].clone()),
                    "last_id": data.last().map(|m| m["id"].clone()),
                    "has_more": false,
                    "data": data,
                })
            }
            Surface::Gemini { .. } => {
                let data: Vec<serde_json::Value> = models
                    .map(|m| {
                        serde_json::json!({
                            "name": format!("models/{}", m.slug),
                            "displayName": m.slug,
                            "inputTokenLimit": m.context_length,
                            "supportedGenerationMethods": [
                                "generateContent",
                                "streamGenerateContent",
                                "countTokens",
                            ],
                        })
                    })
                    .collect();
                serde_json::json!({"models": data})
            }
        };
        Response {
            status: 200,
            headers: vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                (REQUEST_ID_HEADER.to_owned(), request_id),
            ],
            body: serde_json::to_vec(&body).expect("a JSON value always serializes"),
        }
    }

    /// `POST /messages/count_tokens`: the input tokens of a Messages request by the local
    /// tokenizer of its model, without calling a provider.
    pub fn count_tokens(
        &self,
        authorization: Option<&str>,
        api_key: Option<&str>,
        body: &[u8],
    ) -> Response {
        let routing = self.routing.load();
        let request_id = new_request_id();
        let surface = Surface::Messages;
        let counted = authenticate(
            &routing,
            bearer(authorization, api_key).as_deref(),
            unix_ms(),
        )
        .and_then(|key| {
            request::refuse_deep(body)?;
            let request = crate::translate::anthropic::decode_count_request(body)
                .map_err(|e| surface.invalid(&e))?;
            let model = routing.model(&request.model).ok_or_else(|| {
                GatewayError::new(
                    ErrorKind::InvalidModel,
                    format!("Model {} is not valid", request.model),
                )
            })?;
            if !key.allows(&model.slug) {
                return Err(GatewayError::new(
                    ErrorKind::AccessDenied,
                    format!("This API key may not use model {}", model.slug),
                ));
            }
            Ok(request::prompt_tokens(model.encoding, &request))
        });
        match counted {
            Ok(tokens) => Response {
                status: 200,
                headers: vec![
                    ("content-type".to_owned(), "application/json".to_owned()),
                    (REQUEST_ID_HEADER.to_owned(), request_id),
                ],
                body: format!("{{\"input_tokens\":{tokens}}}").into_bytes(),
            },
            Err(e) => error_response(&e, &request_id, surface),
        }
    }
}

pub const REQUEST_ID_HEADER: &str = "x-muxgate-request-id";
pub const CHANNEL_HEADER: &str = "x-muxgate-channel";
pub const OVERHEAD_HEADER: &str = "x-muxgate-overhead-us";
pub const ATTEMPTS_HEADER: &str = "x-muxgate-attempts";
/// Request parameters the answering channel's protocol has no field for, left out on purpose.
pub const DROPPED_HEADER: &str = "x-muxgate-dropped-params";

pub fn error_response(error: &GatewayError, request_id: &str, surface: Surface) -> Response {
    let mut headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        (REQUEST_ID_HEADER.to_owned(), request_id.to_owned()),
    ];
    error.headers(&mut headers);
    Response {
        status: error.status(),
        headers,
        body: surface.error_body(error),
    }
}

/// 32 hex digits: time-ordered high half (so ids sort by arrival), random low half.
pub fn new_request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let millis = u128::from(unix_ms() & 0xffff_ffff_ffff);
    let random: u128 = rand::random::<u128>() & ((1 << 80) - 1);
    let value = (millis << 80) | random;
    let digits: Vec<u8> = (0..32)
        .rev()
        .map(|i| HEX[((value >> (i * 4)) & 0xf) as usize])
        .collect();
    String::from_utf8(digits).expect("hex digits are ASCII")
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_32_hex_digits_that_sort_by_time() {
        let first = new_request_id();
        std::thread::sleep(Duration::from_millis(2));
        let second = new_request_id();
        for id in [&first, &second] {
            assert_eq!(id.len(), 32);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
        }
        assert!(first < second, "{first} then {second}");
        let millis = u64::from_str_radix(&second[..12], 16).unwrap();
        assert!(unix_ms().abs_diff(millis) < 60_000);
        assert_ne!(first[12..], second[12..]);
    }
}
