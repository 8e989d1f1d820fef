//! End-to-end tests: a real server on its own runtime, driven over TCP by hyper's client.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::*;
use crate::tokens::{Encoding, count_chat_messages};

fn script(json: Value) -> MockScript {
    serde_json::from_value(json).unwrap()
}

fn start(config: MockConfig) -> MockServer {
    MockServer::start("127.0.0.1:0".parse().unwrap(), config, 1).unwrap()
}

fn with_model(name: &str, s: MockScript) -> MockConfig {
    let mut config = MockConfig::default();
    config.models.insert(name.to_owned(), s);
    config
}

/// One request on a fresh connection; the connection task is returned so a test can kill it
/// (which closes the socket, like a client going away).
async fn open(
    server: &MockServer,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (
    impl Future<Output = hyper::Result<Response<Incoming>>> + use<>,
    JoinHandle<()>,
) {
    let stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "mock")
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    (async move { sender.send_request(request).await }, conn)
}

/// Status, headers and the whole body (`Err` when the server cut the body short).
async fn send(
    server: &MockServer,
    path: &str,
    body: &Value,
) -> (u16, hyper::HeaderMap, Result<Bytes, String>) {
    send_with(server, "POST", path, &body.to_string(), None).await
}

async fn send_with(
    server: &MockServer,
    method: &str,
    path: &str,
    body: &str,
    auth: Option<&str>,
) -> (u16, hyper::HeaderMap, Result<Bytes, String>) {
    let bearer = auth.map(|key| format!("Bearer {key}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|value| ("authorization", value.as_str()))
        .collect();
    send_headers(server, method, path, body, &headers).await
}

async fn send_headers(
    server: &MockServer,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, hyper::HeaderMap, Result<Bytes, String>) {
    let (response, _conn) = open(server, method, path, body, headers).await;
    let (parts, body) = response.await.unwrap().into_parts();
    let body = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .map_err(|e| e.to_string());
    (parts.status.as_u16(), parts.headers, body)
}

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]})
}

fn stream_chat(model: &str, text: &str, include_usage: bool) -> Value {
    let mut body = chat(model, text);
    body["stream"] = json!(true);
    if include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// The `data:` payloads of an SSE body.
fn events(body: &[u8]) -> Vec<String> {
    std::str::from_utf8(body)
        .unwrap()
        .split_terminator("\n\n")
        .map(|e| e.strip_prefix("data: ").unwrap().to_owned())
        .collect()
}

/// The assistant text carried by a stream's data events (unparseable ones skipped).
pub(super) fn content_of(events: &[String]) -> String {
    events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// The events of an SSE body, parsed as a client would.
fn sse(body: &[u8]) -> Vec<crate::sse::Event> {
    let mut parser = crate::sse::Parser::new();
    let mut events = Vec::new();
    parser.feed(body, &mut events).unwrap();
    events
}

/// The JSON of every SSE event but `[DONE]`.
fn sse_json(body: &[u8]) -> Vec<Value> {
    sse(body)
        .iter()
        .filter(|e| e.data != "[DONE]")
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

fn tools_script() -> MockScript {
    script(json!({
        "thinking": "The user wants the weather, so I call the tool.",
        "tool_calls": [
            {"name": "get_weather", "arguments": r#"{"city": "Paris", "unit": "celsius"}"#},
            {"name": "get_time", "arguments": r#"{"zone":"Europe/Paris"}"#}
        ],
        "cached_tokens": 4
    }))
}

async fn wait_for(server: &MockServer, what: impl Fn(&MockStats) -> bool) -> MockStats {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let snap = server.stats();
        if what(&snap) || Instant::now() > deadline {
            return snap;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn json_completion_has_exact_usage() {
    let server = start(MockConfig::default());
    let request = chat("gpt-4o-mini", "What is 2+2?");
    let (status, headers, body) = send(&server, "/v1/chat/completions", &request).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&body.unwrap()).unwrap();
    let text = "Hello! You said: What is 2+2?.";
    assert_eq!(body["choices"][0]["message"]["content"], text);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["model"], "gpt-4o-mini");
    let prompt = count_chat_messages(Encoding::O200kBase, request["messages"].as_array().unwrap());
    let completion = Encoding::O200kBase.count(text);
    assert_eq!(body["usage"]["prompt_tokens"], prompt);
    assert_eq!(body["usage"]["completion_tokens"], completion);
    assert_eq!(body["usage"]["total_tokens"], prompt + completion);
    let snap = server.stats();
    assert_eq!(
        (snap.requests, snap.models["gpt-4o-mini"], snap.in_flight),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn stream_with_usage_matches_openai_shape() {
    let server = start(with_model(
        "m",
        script(json!({"reply": "one two three four", "chunks": 2})),
    ));
    let request = stream_chat("m", "hi", true);
    let (status, headers, body) = send(&server, "/v1/chat/completions", &request).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream; charset=utf-8");
    let ev = events(&body.unwrap());
    // role, 2 content chunks, finish, usage, [DONE]
    assert_eq!(ev.len(), 6, "{ev:?}");
    assert_eq!(content_of(&ev), "one two three four");
    let usage: Value = serde_json::from_str(&ev[4]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"]["completion_tokens"],
        Encoding::O200kBase.count("one two three four")
    );
    assert_eq!(
        usage["usage"]["prompt_tokens"],
        count_chat_messages(Encoding::O200kBase, request["messages"].as_array().unwrap())
    );
    assert_eq!(ev[5], "[DONE]");
    let snap = wait_for(&server, |s| s.streams_completed == 1).await;
    assert_eq!(
        (
            snap.streams_started,
            snap.streams_completed,
            snap.client_disconnects
        ),
        (1, 1, 0)
    );

    let (_, _, body) = send(
        &server,
        "/v1/chat/completions",
        &stream_chat("m", "hi", false),
    )
    .await;
    let ev = events(&body.unwrap());
    assert_eq!(ev.len(), 5);
    assert!(ev[..4].iter().all(|e| !e.contains("usage")));
}

#[tokio::test]
async fn max_tokens_cuts_with_length() {
    let server = start(with_model(
        "m",
        script(json!({"reply": "alpha beta gamma delta epsilon"})),
    ));
    let mut request = chat("m", "x");
    request["max_completion_tokens"] = json!(2);
    let (_, _, body) = send(&server, "/v1/chat/completions", &request).await;
    let body: Value = serde_json::from_slice(&body.unwrap()).unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["completion_tokens"], 2);
    assert_eq!(body["choices"][0]["message"]["content"], "alpha beta");
}

#[tokio::test]
async fn request_errors_are_openai_shaped() {
    let mut config = with_model("locked", script(json!({"api_key": "sk-right"})));
    config.strict = true;
    let server = start(config);
    let code = |body: &Result<Bytes, String>| {
        let body: Value = serde_json::from_slice(body.as_ref().unwrap()).unwrap();
        body["error"]["code"].clone()
    };
    let (status, _, body) = send(&server, "/v1/chat/completions", &chat("unknown", "x")).await;
    assert_eq!((status, code(&body)), (404, json!("model_not_found")));
    let (status, _, body) = send(&server, "/v1/chat/completions", &chat("locked", "x")).await;
    assert_eq!((status, code(&body)), (401, json!("invalid_api_key")));
    let (status, _, _) = send_with(
        &server,
        "POST",
        "/v1/chat/completions",
        &chat("locked", "x").to_string(),
        Some("sk-right"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, body) = send_with(&server, "POST", "/v1/chat/completions", "{oops", None).await;
    let body: Value = serde_json::from_slice(&body.unwrap()).unwrap();
    assert_eq!(
        (status, &body["error"]["type"]),
        (400, &json!("invalid_request_error"))
    );
    let (status, _, _) = send_with(&server, "POST", "/chat/completions", "{}", None).await;
    assert_eq!(status, 404);
    let (status, _, _) = send_with(&server, "GET", "/v1/chat/completions", "", None).await;
    assert_eq!(status, 405);
    let (status, _, body) = send_with(&server, "GET", "/v1/models", "", None).await;
    let body: Value = serde_json::from_slice(&body.unwrap()).unwrap();
    assert_eq!((status, &body["data"][0]["id"]), (200, &json!("locked")));
}

#[tokio::test]
async fn injected_failures_and_reload() {
    let server = start(with_model(
        "m",
        script(json!({"error_every": 2, "error_status": 429, "retry_after_s": 7})),
    ));
    let request = chat("m", "x");
    let (status, _, _) = send(&server, "/v1/chat/completions", &request).await;
    assert_eq!(status, 200);
    let (status, headers, body) = send(&server, "/v1/chat/completions", &request).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "7");
    let body: Value = serde_json::from_slice(&body.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(server.stats().errors_injected, 1);

    // Flip to always failing, through the Rust API and then back over HTTP.
    server
        .set_config(with_model("m", script(json!({"error_rate": 1.0}))))
        .unwrap();
    let (status, _, _) = send(&server, "/v1/chat/completions", &request).await;
    assert_eq!(status, 500);
    let healthy = with_model("m", MockScript::default()).to_json();
    let (status, _, _) = send_with(&server, "PUT", "/mock/config", &healthy, None).await;
    assert_eq!(status, 200);
    let (status, _, _) = send(&server, "/v1/chat/completions", &request).await;
    assert_eq!(status, 200);
    let (status, _, _) = send_with(&server, "PUT", "/mock/config", "{\"bogus\":1}", None).await;
    assert_eq!(status, 400);
    assert_eq!(server.config(), with_model("m", MockScript::default()));
    let (status, _, body) = send_with(&server, "GET", "/mock/stats", "", None).await;
    let snap: MockStats = serde_json::from_slice(&body.unwrap()).unwrap();
    assert_eq!((status, snap.requests, snap.errors_injected), (200, 4, 2));
}

#[tokio::test]
async fn hang_counts_the_client_going_away() {
    let server = start(with_model("slow", script(json!({"hang": true}))));
    let (response, conn) = open(
        &server,
        "POST",
        "/v1/chat/completions",
        &chat("slow", "x").to_string(),
        &[],
    )
    .await;
    let pending = tokio::spawn(response);
    let snap = wait_for(&server, |s| s.in_flight == 1).await;
    assert_eq!(snap.in_flight, 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!pending.is_finished(), "hang answered");
    conn.abort();
    let snap = wait_for(&server, |s| s.client_disconnects == 1).await;
    assert_eq!((snap.client_disconnects, snap.in_flight), (1, 0));
}

#[tokio::test]
async fn disconnect_while_pacing_is_seen_at_once() {
    // One token per second: the disconnect must be noticed long before the next chunk is due.
    let server = start(with_model(
        "m",
        script(json!({"reply": "a b c d e f", "tokens_per_second": 1.0})),
    ));
    let (response, conn) = open(
        &server,
        "POST",
        "/v1/chat/completions",
        &stream_chat("m", "x", true).to_string(),
        &[],
    )
    .await;
    let mut body = response.await.unwrap().into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(first.starts_with(b"data: {"));
    let t0 = Instant::now();
    conn.abort();
    drop(body);
    let snap = wait_for(&server, |s| s.client_disconnects == 1).await;
    assert_eq!(
        (
            snap.client_disconnects,
            snap.streams_completed,
            snap.in_flight
        ),
        (1, 0, 0)
    );
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn ttft_delays_first_chunk_not_head() {
    let server = start(with_model(
        "m",
        script(json!({"ttft_ms": 150, "headers_delay_ms": 30})),
    ));
    let (response, _conn) = open(
        &server,
        "POST",
        "/v1/chat/completions",
        &stream_chat("m", "x", false).to_string(),
        &[],
    )
    .await;
    let t0 = Instant::now();
    let mut body = response.await.unwrap().into_body();
    let head = t0.elapsed();
    assert!(
        head >= Duration::from_millis(30) && head < Duration::from_millis(120),
        "{head:?}"
    );
    body.frame().await.unwrap().unwrap();
    let first = t0.elapsed();
    assert!(first >= Duration::from_millis(180), "{first:?}");

    let start = Instant::now();
    let (status, _, _) = send(&server, "/v1/chat/completions", &chat("m", "x")).await;
    assert_eq!(status, 200);
    assert!(start.elapsed() >= Duration::from_millis(180));
}

#[tokio::test]
async fn truncation_and_malformed_chunks() {
    let mut config = with_model(
        "cut",
        script(json!({"reply": "a b c d", "truncate_after": 2})),
    );
    config.models.insert(
        "clean".into(),
        script(json!({"reply": "a b c d", "truncate_after": 2, "truncate_clean": true})),
    );
    config.models.insert(
        "bad".into(),
        script(json!({"reply": "a b c d", "malformed_after": 1})),
    );
    let server = start(config);

    let (status, _, body) = send(
        &server,
        "/v1/chat/completions",
        &stream_chat("cut", "x", true),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.is_err(), "aborted stream must not look complete");
    let (_, _, body) = send(
        &server,
        "/v1/chat/completions",
        &stream_chat("clean", "x", true),
    )
    .await;
    let ev = events(&body.unwrap());
    assert_eq!(ev.len(), 3);
    assert_eq!(content_of(&ev), "a b");
    assert!(
        !ev.iter()
            .any(|e| e == "[DONE]" || e.contains("finish_reason\":\""))
    );
    let (_, _, body) = send(&server, "/v1/chat/completions", &chat("cut", "x")).await;
    assert!(body.is_err(), "JSON cut mid-body");
    let snap = wait_for(&server, |s| s.streams_truncated == 2).await;
    assert_eq!((snap.streams_truncated, snap.client_disconnects), (2, 0));

    let (_, _, body) = send(
        &server,
        "/v1/chat/completions",
        &stream_chat("bad", "x", false),
    )
    .await;
    let ev = events(&body.unwrap());
    assert_eq!(
        ev.iter()
            .filter(|e| serde_json::from_str::<Value>(e).is_err())
            .count(),
        2
    ); // + [DONE]
    assert_eq!(content_of(&ev), "a b c d");
    assert_eq!(ev.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn multi_threaded_server_keeps_connections_alive() {
    let server =
        MockServer::start("127.0.0.1:0".parse().unwrap(), MockConfig::default(), 2).unwrap();
    let stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    for i in 0..20 {
        let request = Request::post("/v1/chat/completions")
            .header("host", "mock")
            .body(Full::new(Bytes::from(
                stream_chat("m", &format!("n{i}"), i % 2 == 0).to_string(),
            )))
            .unwrap();
        let body = sender
            .send_request(request)
            .await
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap();
        assert!(content_of(&events(&body.to_bytes())).ends_with(&format!("n{i}.")));
    }
    assert_eq!(server.stats().streams_completed, 20);
    let mut server = server;
    server.shutdown();
    server.shutdown();
    assert!(TcpStream::connect(server.local_addr()).await.is_err());
}

#[tokio::test]
async fn openai_thinking_tool_calls_and_cached_tokens() {
    let server = start(with_model("m", tools_script()));
    let request = chat("m", "Weather in Paris?");
    let (status, _, body) = send(&server, "/v1/chat/completions", &request).await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_slice(&body.unwrap()).unwrap();
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    assert_eq!(
        choice["message"]["reasoning_content"],
        "The user wants the weather, so I call the tool."
    );
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls[1]["function"]["name"], "get_time");
    let usage = body["usage"].clone();
    let thinking = Encoding::O200kBase.count("The user wants the weather, so I call the tool.");
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 4);
    assert_eq!(
        usage["completion_tokens_details"]["reasoning_tokens"],
        thinking
    );

    let (_, _, body) = send(
        &server,
        "/v1/chat/completions",
        &stream_chat("m", "Weather in Paris?", true),
    )
    .await;
    let chunks = sse_json(&body.unwrap());
    let mut arguments = vec![String::new(); 2];
    let mut thinking_text = String::new();
    for chunk in &chunks[..chunks.len() - 1] {
        let delta = &chunk["choices"][0]["delta"];
        thinking_text += delta["reasoning_content"].as_str().unwrap_or_default();
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap() as usize;
            arguments[index] += call["function"]["arguments"].as_str().unwrap();
        }
    }
    assert_eq!(thinking_text, choice["message"]["reasoning_content"]);
    for (streamed, call) in arguments.iter().zip(calls) {
        assert_eq!(streamed, &call["function"]["arguments"]);
    }
    let finish = &chunks[chunks.len() - 2]["choices"][0];
    assert_eq!(finish["finish_reason"], "tool_calls");
    assert_eq!(chunks.last().unwrap()["usage"], usage);
}

#[tokio::test]
async fn openai_error_after_sends_an_error_chunk() {
    let server = start(with_model(
        "m",
        script(json!({"reply": "a b c d", "error_after": 2})),
    ));
    let (status, _, body) = send(
        &server,
        "/v1/chat/completions",
        &stream_chat("m", "x", true),
    )
    .await;
    assert_eq!(status, 200);
    let chunks = sse_json(&body.expect("ends cleanly"));
    assert_eq!(chunks.len(), 4, "role, 2 chunks, error");
    assert_eq!(chunks[3]["error"]["type"], "server_error");
    let snap = wait_for(&server, |s| s.streams_truncated == 1).await;
    assert_eq!((snap.streams_truncated, snap.client_disconnects), (1, 0));
}

const ANTHROPIC: &[(&str, &str)] = &[("anthropic-version", "2023-06-01")];

fn messages(model: &str, text: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 1024, "stream": stream, "system": "Be brief.",
        "messages": [{"role": "user", "content": text}]})
}

/// The prompt tokens of `messages(..)`: its system prompt and user message as chat messages.
fn messages_prompt_tokens(text: &str) -> usize {
    let chat = chat("m", text);
    count_chat_messages(Encoding::O200kBase, chat["messages"].as_array().unwrap())
}

/// The `message` an Anthropic stream adds up to, assembled from its events as a client does.
fn assemble_message(body: &[u8]) -> Value {
    let mut message = Value::Null;
    let mut partial_json: Vec<String> = Vec::new();
    for event in sse(body) {
        let data: Value = serde_json::from_str(&event.data).unwrap();
        let name = event.event.unwrap();
        assert_eq!(data["type"], name.as_str());
        let index = data["index"].as_u64().unwrap_or_default() as usize;
        match name.as_str() {
            "message_start" => message = data["message"].clone(),
            "content_block_start" => {
                assert_eq!(index, partial_json.len());
                let content = message["content"].as_array_mut().unwrap();
                content.push(data["content_block"].clone());
                partial_json.push(String::new());
            }
            "content_block_delta" => {
                let block = &mut message["content"][index];
                let delta = &data["delta"];
                let (field, piece) = match delta["type"].as_str().unwrap() {
                    "text_delta" => ("text", &delta["text"]),
                    "thinking_delta" => ("thinking", &delta["thinking"]),
                    "signature_delta" => ("signature", &delta["signature"]),
                    "input_json_delta" => {
                        partial_json[index] += delta["partial_json"].as_str().unwrap();
                        continue;
                    }
                    other => panic!("unexpected delta {other}"),
                };
                let text = block[field].as_str().unwrap().to_owned() + piece.as_str().unwrap();
                block[field] = json!(text);
            }
            "content_block_stop" => {
                let block = &mut message["content"][index];
                if block["type"] == "tool_use" {
                    block["input"] = serde_json::from_str(&partial_json[index]).unwrap();
                }
            }
            "message_delta" => {
                message["stop_reason"] = data["delta"]["stop_reason"].clone();
                message["stop_sequence"] = data["delta"]["stop_sequence"].clone();
                message["usage"] = data["usage"].clone();
            }
            "message_stop" | "ping" => {}
            other => panic!("unexpected event {other}"),
        }
    }
    message
}

/// A message without its ids, which differ between two requests.
fn without_ids(mut message: Value) -> Value {
    message["id"] = Value::Null;
    for block in message["content"].as_array_mut().unwrap() {
        if block.get("id").is_some() {
            block["id"] = Value::Null;
        }
    }
    message
}

#[tokio::test]
async fn anthropic_json_and_stream_give_the_same_message() {
    let mut tools = tools_script();
    tools.reply = Some("Let me check.".into());
    let server = start(with_model("claude", tools));
    let request = messages("claude", "Weather in Paris?", false).to_string();
    let (status, headers, body) =
        send_headers(&server, "POST", "/v1/messages", &request, ANTHROPIC).await;
    assert_eq!(
        (status, &headers["content-type"]),
        (200, &"application/json".parse().unwrap())
    );
    let message: Value = serde_json::from_slice(&body.unwrap()).unwrap();
    let types: Vec<&str> = message["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["thinking", "text", "tool_use", "tool_use"]);
    assert_eq!(message["content"][1]["text"], "Let me check.");
    assert_eq!(
        message["content"][2]["input"],
        json!({"city": "Paris", "unit": "celsius"})
    );
    assert_eq!(message["stop_reason"], "tool_use");
    let thinking = Encoding::O200kBase.count("The user wants the weather, so I call the tool.");
    let calls = Encoding::O200kBase.count("get_weather")
        + Encoding::O200kBase.count(r#"{"city": "Paris", "unit": "celsius"}"#)
        + Encoding::O200kBase.count("get_time")
        + Encoding::O200kBase.count(r#"{"zone":"Europe/Paris"}"#);
    let output = thinking + Encoding::O200kBase.count("Let me check.") + calls;
    let prompt = messages_prompt_tokens("Weather in Paris?");
    assert_eq!(
        message["usage"],
        json!({"input_tokens": prompt - 4, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 4, "output_tokens": output})
    );

    let request = messages("claude", "Weather in Paris?", true).to_string();
    let (status, headers, body) =
        send_headers(&server, "POST", "/v1/messages", &request, ANTHROPIC).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream; charset=utf-8");
    let streamed = assemble_message(&body.unwrap());
    assert_eq!(without_ids(streamed), without_ids(message));
    let snap = wait_for(&server, |s| s.streams_completed == 1).await;
    assert_eq!((snap.requests, snap.models["claude"]), (2, 2));
}

#[tokio::test]
async fn anthropic_default_reply_and_max_tokens() {
    let server = start(with_model(
        "long",
        script(json!({"reply": "alpha beta gamma delta epsilon", "chunks": 3})),
    ));
    let request = messages("any", "What is 2+2?", false).to_string();
    let (_, _, body) = send_headers(&server, "POST", "/v1/messages", &request, ANTHROPIC).await;
    let message: Value = serde_json::from_slice(&body.unwrap()).unwrap();
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "Hello! You said: What is 2+2?."}])
    );
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["model"], "any");

    for stream in [false, true] {
        let mut request = messages("long", "x", stream);
        request["max_tokens"] = json!(2);
        let (_, _, body) = send_headers(
            &server,
            "POST",
            "/v1/messages",
            &request.to_string(),
            ANTHROPIC,
        )
        .await;
        let body = body.unwrap();
        let message = if stream {
            assemble_message(&body)
        } else {
            serde_json::from_slice(&body).unwrap()
        };
        assert_eq!(message["content"][0]["text"], "alpha beta");
        assert_eq!(message["stop_reason"], "max_tokens");
        assert_eq!(message["usage"]["output_tokens"], 2);
    }
}

#[tokio::test]
async fn anthropic_errors_have_the_api_shape() {
    let mut config = with_model("locked", script(json!({"api_key": "sk-ant"})));
    config.models.insert(
        "busy".into(),
        script(json!({"error_every": 1, "error_status": 529, "retry_after_s": 2})),
    );
    config.models.insert(
        "flaky".into(),
        script(json!({"reply": "a b c d", "error_after": 2})),
    );
    config.models.insert(
        "cut".into(),
        script(json!({"reply": "a b c d", "truncate_after": 2})),
    );
    config.strict = true;
    let server = start(config);
    let post = |body: Value, headers: &'static [(&'static str, &'static str)]| {
        let server = &server;
        async move {
            let (status, headers, body) =
                send_headers(server, "POST", "/v1/messages", &body.to_string(), headers).await;
            (status, headers, body)
        }
    };
    let error_of = |body: Result<Bytes, String>| {
        let body: Value = serde_json::from_slice(&body.unwrap()).unwrap();
        assert_eq!(body["type"], "error");
        body["error"].clone()
    };

    let mut no_max = messages("locked", "x", false);
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let (status, _, body) = post(no_max, ANTHROPIC).await;
    assert_eq!(status, 400);
    assert_eq!(
        error_of(body),
        json!({"type": "invalid_request_error", "message": "max_tokens: Field required"})
    );
    let (status, _, body) = post(messages("nope", "x", false), ANTHROPIC).await;
    assert_eq!(
        (status, error_of(body)["type"].clone()),
        (404, json!("not_found_error"))
    );
    let (status, _, body) = post(messages("locked", "x", false), ANTHROPIC).await;
    assert_eq!(
        (status, error_of(body)["type"].clone()),
        (401, json!("authentication_error"))
    );
    let bearer = &[("authorization", "Bearer sk-ant")];
    let (status, _, _) = post(messages("locked", "x", false), bearer).await;
    assert_eq!(status, 401);
    let keyed = &[("x-api-key", "sk-ant"), ("anthropic-version", "2023-06-01")];
    let (status, _, _) = post(messages("locked", "x", false), keyed).await;
    assert_eq!(status, 200);

    let (status, headers, body) = post(messages("busy", "x", true), ANTHROPIC).await;
    assert_eq!(
        (status, &headers["retry-after"]),
        (529, &"2".parse().unwrap())
    );
    assert_eq!(
        error_of(body),
        json!({"type": "overloaded_error", "message": "Overloaded"})
    );

    let (status, _, body) = post(messages("flaky", "x", true), ANTHROPIC).await;
    assert_eq!(status, 200);
    let events = sse(&body.expect("ends cleanly"));
    let last = events.last().unwrap();
    assert_eq!(last.event.as_deref(), Some("error"));
    assert_eq!(
        serde_json::from_str::<Value>(&last.data).unwrap(),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
    let text_deltas = events
        .iter()
        .filter(|e| e.data.contains("text_delta"))
        .count();
    assert_eq!(text_deltas, 2);

    let (status, _, body) = post(messages("cut", "x", true), ANTHROPIC).await;
    assert_eq!(status, 200);
    assert!(body.is_err(), "aborted stream must not look complete");
    let snap = wait_for(&server, |s| s.streams_truncated == 2).await;
    assert_eq!(
        (snap.requests, snap.errors_injected, snap.streams_truncated),
        (8, 1, 2)
    );
}

fn gemini_request(text: &str, include_thoughts: bool) -> Value {
    json!({
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [{"role": "user", "parts": [{"text": text}]}],
        "generationConfig": {"thinkingConfig": {"includeThoughts": include_thoughts}}
    })
}

/// The response a stream of Gemini chunks adds up to, merged as a client does: consecutive
/// text parts of the same kind joined, function calls appended, the last chunk's finish
/// reason and usage.
fn merge_chunks(chunks: &[Value]) -> Value {
    let mut parts: Vec<Value> = Vec::new();
    for chunk in chunks {
        for part in chunk["candidates"][0]["content"]["parts"]
            .as_array()
            .unwrap()
        {
            let Some(text) = part["text"].as_str() else {
                parts.push(part.clone());
                continue;
            };
            match parts.last_mut() {
                Some(last) if last["text"].is_string() && last["thought"] == part["thought"] => {
                    last["text"] = json!(last["text"].as_str().unwrap().to_owned() + text);
                }
                _ if text.is_empty() => {}
                _ => parts.push(part.clone()),
            }
        }
    }
    let last = chunks.last().unwrap();
    json!({
        "parts": parts,
        "finishReason": last["candidates"][0]["finishReason"],
        "usageMetadata": last["usageMetadata"],
    })
}

/// The same view of a whole response.
fn gemini_view(response: &Value) -> Value {
    json!({
        "parts": response["candidates"][0]["content"]["parts"],
        "finishReason": response["candidates"][0]["finishReason"],
        "usageMetadata": response["usageMetadata"],
    })
}

#[tokio::test]
async fn gemini_json_and_streams_give_the_same_response() {
    let mut tools = tools_script();
    tools.reply = Some("Let me check.".into());
    let server = start(with_model("gemini-pro", tools));
    let base = "/v1beta/models/gemini-pro";
    let post = |path: String, include_thoughts: bool| {
        let server = &server;
        async move {
            let body = gemini_request("Weather in Paris?", include_thoughts).to_string();
            send_headers(server, "POST", &path, &body, &[]).await
        }
    };

    let (status, _, body) = post(format!("{base}:generateContent"), true).await;
    assert_eq!(status, 200);
    let whole: Value = serde_json::from_slice(&body.unwrap()).unwrap();
    assert_eq!(whole["modelVersion"], "gemini-pro");
    let view = gemini_view(&whole);
    let parts = view["parts"].as_array().unwrap();
    assert_eq!(
        parts[0],
        json!({"text": "The user wants the weather, so I call the tool.", "thought": true})
    );
    assert_eq!(parts[1], json!({"text": "Let me check."}));
    assert_eq!(
        parts[2]["functionCall"],
        json!({"name": "get_weather", "args": {"city": "Paris", "unit": "celsius"}})
    );
    assert!(parts[2]["thoughtSignature"].is_string());
    assert_eq!(view["finishReason"], "STOP");
    let thinking = Encoding::O200kBase.count("The user wants the weather, so I call the tool.");
    let calls = Encoding::O200kBase.count("get_weather")
        + Encoding::O200kBase.count(r#"{"city": "Paris", "unit": "celsius"}"#)
        + Encoding::O200kBase.count("get_time")
        + Encoding::O200kBase.count(r#"{"zone":"Europe/Paris"}"#);
    let candidates = Encoding::O200kBase.count("Let me check.") + calls;
    let prompt = messages_prompt_tokens("Weather in Paris?");
    assert_eq!(
        view["usageMetadata"],
        json!({"promptTokenCount": prompt, "candidatesTokenCount": candidates,
            "totalTokenCount": prompt + thinking + candidates, "cachedContentTokenCount": 4,
            "thoughtsTokenCount": thinking})
    );

    let (status, headers, body) = post(format!("{base}:streamGenerateContent?alt=sse"), true).await;
    assert_eq!(
        (status, &headers["content-type"]),
        (200, &"text/event-stream".parse().unwrap())
    );
    let events = sse(&body.unwrap());
    assert!(
        events
            .iter()
            .all(|e| e.event.is_none() && e.data != "[DONE]")
    );
    let chunks: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    assert!(chunks.len() > 5);
    assert_eq!(merge_chunks(&chunks), view);

    let (_, headers, body) = post(format!("{base}:streamGenerateContent"), true).await;
    assert_eq!(headers["content-type"], "application/json");
    let array: Vec<Value> = serde_json::from_slice(&body.unwrap()).unwrap();
    assert_eq!(merge_chunks(&array), view);

    // Without includeThoughts the thinking is counted but not sent.
    let (_, _, body) = post(format!("{base}:generateContent"), false).await;
    let hidden = gemini_view(&serde_json::from_slice(&body.unwrap()).unwrap());
    assert_eq!(hidden["usageMetadata"], view["usageMetadata"]);
    assert_eq!(hidden["parts"].as_array().unwrap()[..], parts[1..]);
    let (_, _, body) = post(format!("{base}:streamGenerateContent?alt=sse"), false).await;
    assert_eq!(merge_chunks(&sse_json(&body.unwrap())), hidden);

    let snap = wait_for(&server, |s| s.streams_completed == 3).await;
    assert_eq!(
        (
            snap.requests,
            snap.models["gemini-pro"],
            snap.streams_completed
        ),
        (5, 5, 3)
    );
}

#[tokio::test]
async fn gemini_default_reply_and_max_tokens() {
    let server = start(with_model(
        "long",
        script(json!({"reply": "alpha beta gamma delta epsilon"})),
    ));
    let body = gemini_request("What is 2+2?", false).to_string();
    let path = "/v1beta/models/any:generateContent";
    let (_, _, response) = send_headers(&server, "POST", path, &body, &[]).await;
    let response: Value = serde_json::from_slice(&response.unwrap()).unwrap();
    assert_eq!(
        response["candidates"][0]["content"],
        json!({"parts": [{"text": "Hello! You said: What is 2+2?."}], "role": "model"})
    );

    let mut request = gemini_request("x", false);
    request["generationConfig"]["maxOutputTokens"] = json!(2);
    for path in [
        "/v1beta/models/long:generateContent",
        "/v1beta/models/long:streamGenerateContent?alt=sse",
    ] {
        let (_, _, body) = send_headers(&server, "POST", path, &request.to_string(), &[]).await;
        let body = body.unwrap();
        let view = if path.contains("stream") {
            merge_chunks(&sse_json(&body))
        } else {
            gemini_view(&serde_json::from_slice(&body).unwrap())
        };
        assert_eq!(view["parts"], json!([{"text": "alpha beta"}]));
        assert_eq!(view["finishReason"], "MAX_TOKENS");
        assert_eq!(view["usageMetadata"]["candidatesTokenCount"], 2);
    }
}

#[tokio::test]
async fn gemini_errors_have_the_api_shape() {
    let mut config = with_model("locked", script(json!({"api_key": "gk"})));
    config.models.insert(
        "busy".into(),
        script(json!({"error_every": 1, "error_status": 503})),
    );
    config.models.insert(
        "flaky".into(),
        script(json!({"reply": "a b c d", "error_after": 3})),
    );
    config.strict = true;
    let server = start(config);
    let body = gemini_request("x", false).to_string();
    let status_of = |body: Result<Bytes, String>| {
        let body: Value = serde_json::from_slice(&body.unwrap()).unwrap();
        body["error"]["status"].clone()
    };

    let path = "/v1beta/models/locked:generateContent";
    let (status, _, response) = send_headers(&server, "POST", path, &body, &[]).await;
    assert_eq!(
        (status, status_of(response)),
        (401, json!("UNAUTHENTICATED"))
    );
    let wrong = &[("x-goog-api-key", "nope")];
    let (status, _, _) = send_headers(&server, "POST", path, &body, wrong).await;
    assert_eq!(status, 401);
    let (status, _, _) =
        send_headers(&server, "POST", path, &body, &[("x-goog-api-key", "gk")]).await;
    assert_eq!(status, 200);
    let keyed = "/v1beta/models/locked:generateContent?key=gk";
    let (status, _, _) = send_headers(&server, "POST", keyed, &body, &[]).await;
    assert_eq!(status, 200);

    let path = "/v1beta/models/nope:generateContent";
    let (status, _, response) = send_headers(&server, "POST", path, &body, &[]).await;
    assert_eq!((status, status_of(response)), (404, json!("NOT_FOUND")));
    let path = "/v1beta/models/locked:generateContent?key=gk";
    let (status, _, response) =
        send_headers(&server, "POST", path, r#"{"contents":[]}"#, &[]).await;
    assert_eq!(
        (status, status_of(response)),
        (400, json!("INVALID_ARGUMENT"))
    );
    let (status, _, _) = send_headers(&server, "GET", path, "", &[]).await;
    assert_eq!(status, 405);

    let path = "/v1beta/models/busy:streamGenerateContent?alt=sse";
    let (status, _, response) = send_headers(&server, "POST", path, &body, &[]).await;
    let response: Value = serde_json::from_slice(&response.unwrap()).unwrap();
    assert_eq!(status, 503);
    assert_eq!(
        response,
        json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
            "status": "UNAVAILABLE"}})
    );

    let path = "/v1beta/models/flaky:streamGenerateContent?alt=sse";
    let (status, _, response) = send_headers(&server, "POST", path, &body, &[]).await;
    assert_eq!(status, 200);
    let chunks = sse_json(&response.expect("ends cleanly"));
    assert_eq!(chunks.len(), 4);
    assert_eq!(chunks[3]["error"]["code"], 500);
    assert_eq!(chunks[3]["error"]["status"], "INTERNAL");
    let snap = wait_for(&server, |s| s.streams_truncated == 1).await;
    assert_eq!((snap.requests, snap.errors_injected), (8, 1));
}
