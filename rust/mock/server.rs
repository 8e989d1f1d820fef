//! The HTTP/1.1 side: accept loop, routing, and the chat completion handler that turns a
//! script into a response.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::body::{MockBody, Paced};
use super::gemini;
use super::openai::{ApiError, render_models};
use super::protocol::{Delivery, Prompt, Protocol, Reject};
use super::render::{Ending, EventKind, Faults, Meta, RenderedStream, StreamShape};
use super::reply::{Answer, ENCODING, Usage, default_reply};
use super::script::{CompiledScript, MockConfig, MockScript, Scripts};
use super::stats::{InFlight, Outcome, Stats};
use crate::tokens::count_chat_messages;

/// State shared by every connection of one server.
pub(crate) struct Shared {
    pub scripts: ArcSwap<Scripts>,
    pub stats: Arc<Stats>,
    seq: AtomicU64,
}

impl Shared {
    pub fn new(config: MockConfig) -> Self {
        Shared {
            scripts: ArcSwap::from_pointee(Scripts::compile(config)),
            stats: Arc::new(Stats::default()),
            seq: AtomicU64::new(0),
        }
    }
}

/// Accepts connections until `stop` fires; each connection is served keep-alive on its own task.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let stream = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = stream else {
            // Out of file descriptors or a connection reset before accept: back off briefly.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        // Chunks must leave as soon as they are written, not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(route(&shared, request).await) }
            });
            // Errors here are peers going away or our own aborts: nothing to report.
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(shared: &Shared, request: Request<Incoming>) -> Response<MockBody> {
    let method = request.method();
    match request.uri().path() {
        "/v1/chat/completions" if method == Method::POST => {
            complete(shared, request, Protocol::OpenAi).await
        }
        "/v1/messages" if method == Method::POST => {
            complete(shared, request, Protocol::Anthropic).await
        }
        "/v1/models" if method == Method::GET => {
            let scripts = shared.scripts.load();
            json(
                StatusCode::OK,
                render_models(scripts.config.models.keys().map(String::as_str)),
            )
        }
        "/mock/stats" if method == Method::GET => json(
            StatusCode::OK,
            serde_json::to_vec(&shared.stats.snapshot()).expect("stats serialize"),
        ),
        "/mock/config" if method == Method::GET => {
            json(StatusCode::OK, shared.scripts.load().config.to_json())
        }
        "/mock/config" if method == Method::PUT => reload(shared, request).await,
        path if gemini::endpoint(path).is_some() => {
            if method == Method::POST {
                complete(shared, request, Protocol::Gemini).await
            } else {
                error(&ApiError::invalid_url(method.as_str(), path, 405))
            }
        }
        path @ ("/v1/chat/completions"
        | "/v1/messages"
        | "/v1/models"
        | "/mock/stats"
        | "/mock/config") => error(&ApiError::invalid_url(method.as_str(), path, 405)),
        path => error(&ApiError::invalid_url(method.as_str(), path, 404)),
    }
}

/// `PUT /mock/config`: replace the scripts of a running server (e.g. flip a model to failing).
async fn reload(shared: &Shared, request: Request<Incoming>) -> Response<MockBody> {
    let Ok(body) = request.into_body().collect().await else {
        return error(&ApiError::invalid_request(
            "unreadable body".to_owned(),
            None,
        ));
    };
    let config = std::str::from_utf8(&body.to_bytes())
        .map_err(|e| e.to_string())
        .and_then(|json| MockConfig::from_json(json).map_err(|e| e.to_string()));
    match config {
        Ok(config) => {
            shared.scripts.store(Arc::new(Scripts::compile(config)));
            json(StatusCode::OK, &b"{\"ok\":true}"[..])
        }
        Err(message) => error(&ApiError::invalid_request(message, None)),
    }
}

/// A completion request on any protocol: the script decides how it is answered, the protocol
/// how the answer and any error look.
async fn complete(
    shared: &Shared,
    request: Request<Incoming>,
    protocol: Protocol,
) -> Response<MockBody> {
    shared.stats.request();
    let (head, body) = request.into_parts();
    let Ok(body) = body.collect().await else {
        return reject(
            protocol,
            &Reject::Invalid {
                message: "unreadable body".to_owned(),
                param: None,
            },
        );
    };
    let body = body.to_bytes();
    let prompt = match protocol.parse(&head, &body) {
        Ok(prompt) => prompt,
        Err(e) => return reject(protocol, &e),
    };
    shared.stats.model(&prompt.model);
    let scripts = shared.scripts.load_full();
    let Some(compiled) = scripts.lookup(&prompt.model) else {
        return reject(protocol, &Reject::ModelNotFound(prompt.model.into_owned()));
    };
    let script = &compiled.script;
    if let Some(key) = &script.api_key {
        if let Err(e) = authorize(protocol, &head, key) {
            return reject(protocol, &e);
        }
    }
    let mut guard = InFlight::new(shared.stats.clone());
    if compiled.should_fail() {
        shared.stats.error_injected();
        guard.finish(Outcome::Answered);
        return injected_error(protocol, script);
    }
    if script.hang {
        // Until hyper sees the peer close and drops this future (and the guard with it).
        std::future::pending::<()>().await;
    }

    let answer = answer(compiled, &prompt);
    let meta = Meta {
        seq: shared.seq.fetch_add(1, Ordering::Relaxed),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: &prompt.model,
    };
    let usage = usage(script, &prompt, &answer);
    if prompt.delivery == Delivery::Whole {
        json_response(protocol, script, &prompt, &answer, usage, &meta, guard).await
    } else {
        shared.stats.stream_started();
        stream_response(protocol, script, &prompt, &answer, usage, &meta, guard).await
    }
}

/// The whole answer as one JSON object, sent after the scripted delay (head, TTFT and
/// generation).
async fn json_response(
    protocol: Protocol,
    script: &MockScript,
    prompt: &Prompt<'_>,
    answer: &Answer,
    usage: Usage,
    meta: &Meta<'_>,
    mut guard: InFlight,
) -> Response<MockBody> {
    let delay = ms(script.headers_delay_ms) + ms(script.ttft_ms) + generation_time(answer, script);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let finish_reason = finish_reason(protocol, script, answer);
    let bytes = Bytes::from(protocol.render_json(prompt, meta, answer, finish_reason, usage));
    if script.truncate_after.is_some() {
        let frames = vec![(bytes.len() / 2, Duration::ZERO)];
        let len = bytes.len() as u64;
        let body = Paced::new(bytes, frames, Outcome::Answered, guard).aborting(Some(len));
        return with_type(MockBody::Paced(Box::new(body)), "application/json");
    }
    guard.finish(Outcome::Answered);
    json(StatusCode::OK, bytes)
}

/// A stream: the head after `headers_delay_ms`, then the events on the script's schedule.
async fn stream_response(
    protocol: Protocol,
    script: &MockScript,
    prompt: &Prompt<'_>,
    answer: &Answer,
    usage: Usage,
    meta: &Meta<'_>,
    guard: InFlight,
) -> Response<MockBody> {
    if script.headers_delay_ms > 0 {
        tokio::time::sleep(ms(script.headers_delay_ms)).await;
    }
    let shape = StreamShape {
        finish_reason: finish_reason(protocol, script, answer),
        usage,
        faults: Faults {
            malformed: script.malformed_after,
            truncate: script.truncate_after,
            error: script.error_after,
        },
    };
    let rendered = protocol.render_stream(prompt, meta, answer, &shape);
    let frames = schedule(&rendered, script);
    let outcome = match rendered.ending {
        Ending::Complete => Outcome::StreamCompleted,
        Ending::Truncated | Ending::Errored => Outcome::StreamTruncated,
    };
    let abort = rendered.ending == Ending::Truncated && !script.truncate_clean;
    let mut body = Paced::new(Bytes::from(rendered.bytes), frames, outcome, guard);
    if abort {
        body = body.aborting(None);
    }
    let mut response = with_type(
        MockBody::Paced(Box::new(body)),
        protocol.stream_content_type(prompt.delivery),
    );
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn finish_reason<'a>(protocol: Protocol, script: &'a MockScript, answer: &Answer) -> &'a str {
    let computed = protocol.finish_reason(answer.stop());
    script.finish_reason.as_deref().unwrap_or(computed)
}

/// Exact counts: the prompt as the real API counts chat messages (of which the script's
/// `cached_tokens` were cache reads), the completion as sent.
fn usage(script: &MockScript, prompt: &Prompt, answer: &Answer) -> Usage {
    let prompt = count_chat_messages(ENCODING, &prompt.messages);
    Usage {
        prompt,
        cached: prompt.min(script.cached_tokens as usize),
        completion: answer.completion_tokens,
        reasoning: answer.reasoning_tokens,
    }
}

/// The scripted answer, cut to the request's max tokens.
fn answer(compiled: &CompiledScript, prompt: &Prompt) -> Arc<Answer> {
    let chunks = compiled.script.chunks;
    let full = match &compiled.fixed {
        Some(fixed) => fixed.clone(),
        None => Arc::new(compiled.script.answer(default_reply(&prompt.messages))),
    };
    match prompt.max_tokens.and_then(|max| full.limited(max, chunks)) {
        Some(cut) => Arc::new(cut),
        None => full,
    }
}

fn authorize(protocol: Protocol, head: &Parts, key: &str) -> Result<(), Reject> {
    match protocol.api_key(head) {
        Some(given) if given == key => Ok(()),
        given => Err(Reject::Unauthorized {
            provided: given.is_some_and(|g| !g.is_empty()),
        }),
    }
}

fn injected_error(protocol: Protocol, script: &MockScript) -> Response<MockBody> {
    let body = match &script.error_body {
        Some(body) => Bytes::from(body.clone()),
        None => Bytes::from(protocol.error(&Reject::Injected(script.error_status)).1),
    };
    let status =
        StatusCode::from_u16(script.error_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json(status, body);
    if let Some(seconds) = script.retry_after_s {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// When each event leaves, relative to the response head: everything waits for `ttft_ms`;
/// each answer chunk after the first then waits its own token count at `tokens_per_second`;
/// the closing events follow the last chunk at once. `burst` sends everything in one frame.
fn schedule(rendered: &RenderedStream, script: &MockScript) -> Vec<(usize, Duration)> {
    let ttft = ms(script.ttft_ms);
    if script.burst {
        return vec![(rendered.bytes.len(), ttft)];
    }
    let tps = script.tokens_per_second;
    let mut at = ttft;
    let mut first = true;
    let mut frames = Vec::with_capacity(rendered.events.len());
    for &(kind, end) in &rendered.events {
        if let EventKind::Content(text) = kind {
            if !first && tps > 0.0 {
                at += Duration::from_secs_f64(ENCODING.count(text) as f64 / tps);
            }
            first = false;
        }
        frames.push((end, at));
    }
    frames
}

/// How long a JSON answer takes to "generate" at the script's pace.
fn generation_time(answer: &Answer, script: &MockScript) -> Duration {
    if script.tokens_per_second > 0.0 {
        Duration::from_secs_f64(answer.completion_tokens as f64 / script.tokens_per_second)
    } else {
        Duration::ZERO
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn with_type(body: MockBody, content_type: &'static str) -> Response<MockBody> {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json(status: StatusCode, bytes: impl Into<Bytes>) -> Response<MockBody> {
    let mut response = with_type(MockBody::full(bytes), "application/json");
    *response.status_mut() = status;
    response
}

/// An error response in the request's protocol.
fn reject(protocol: Protocol, reject: &Reject) -> Response<MockBody> {
    let (status, body) = protocol.error(reject);
    json(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        body,
    )
}

/// An `OpenAI`-style error, for requests that reach no protocol's endpoint.
fn error(e: &ApiError) -> Response<MockBody> {
    json(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        e.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_paces_by_tokens_after_ttft() {
        let answer = Answer::new("one two three".into(), None);
        let script = MockScript {
            ttft_ms: 100,
            tokens_per_second: 10.0,
            ..MockScript::default()
        };
        let meta = Meta {
            seq: 0,
            created: 0,
            model: "m",
        };
        let shape = StreamShape {
            finish_reason: "stop",
            usage: Usage {
                prompt: 1,
                cached: 0,
                completion: 3,
                reasoning: 0,
            },
            faults: Faults::default(),
        };
        let rendered = crate::mock::openai::render_stream(&meta, &answer, &shape, false);
        let at: Vec<u64> = schedule(&rendered, &script)
            .iter()
            .map(|f| f.1.as_millis() as u64)
            .collect();
        // role, "one", " two", " three", finish, [DONE]: one token each at 10 tokens/s.
        assert_eq!(at, [100, 100, 200, 300, 300, 300]);
        let ends: Vec<usize> = schedule(&rendered, &script).iter().map(|f| f.0).collect();
        assert_eq!(*ends.last().unwrap(), rendered.bytes.len());

        let burst = MockScript {
            burst: true,
            ttft_ms: 5,
            ..script
        };
        assert_eq!(schedule(&rendered, &burst), [(rendered.bytes.len(), ms(5))]);
        let unpaced = schedule(&rendered, &MockScript::default());
        assert!(unpaced.iter().all(|f| f.1.is_zero()));
    }

    #[test]
    fn authorization_requires_the_exact_key_where_the_protocol_sends_it() {
        let head = |name: &str, value: &str| {
            let request = Request::post("/").header(name, value).body(()).unwrap();
            request.into_parts().0
        };
        let missing = Request::post("/").body(()).unwrap().into_parts().0;
        for (protocol, name, value) in [
            (Protocol::OpenAi, "authorization", "Bearer k"),
            (Protocol::Anthropic, "x-api-key", "k"),
            (Protocol::Gemini, "x-goog-api-key", "k"),
        ] {
            let wrong = value.replace('k', "nope");
            assert_eq!(
                authorize(protocol, &missing, "k"),
                Err(Reject::Unauthorized { provided: false })
            );
            assert_eq!(
                authorize(protocol, &head(name, &wrong), "k"),
                Err(Reject::Unauthorized { provided: true })
            );
            assert_eq!(authorize(protocol, &head(name, value), "k"), Ok(()));
        }
        let other = head("x-api-key", "k");
        assert!(authorize(Protocol::OpenAi, &other, "k").is_err());
    }

    #[test]
    fn injected_error_carries_status_body_and_retry_after() {
        let script = MockScript {
            error_status: 429,
            retry_after_s: Some(3),
            ..MockScript::default()
        };
        let response = injected_error(Protocol::OpenAi, &script);
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[RETRY_AFTER], "3");
        let custom = MockScript {
            error_body: Some("{\"x\":1}".into()),
            ..MockScript::default()
        };
        let MockBody::Full(Some(body)) = injected_error(Protocol::Anthropic, &custom).into_body()
        else {
            panic!()
        };
        assert_eq!(&body[..], b"{\"x\":1}");
    }
}
