//! Chat Completions wire format (`OpenAI` API): the request fields the mock reads, and byte-exact
//! rendering of `chat.completion`, `chat.completion.chunk` events and error objects.
//!
//! Rendering writes straight into one buffer (no serde tree): a stream's chunk prefix
//! (`id`, `created`, `model`) is rendered once and copied per chunk.

use std::borrow::Cow;
use std::io::Write;

use hyper::header::{AUTHORIZATION, HeaderMap};
use serde::Deserialize;
use serde_json::Value;

use super::protocol::{Delivery, Prompt, Reject};
use super::render::{EventKind, FaultEvents, Meta, RenderedStream, StreamShape, push_json_str};
use super::reply::{Answer, Stop, Usage};

/// Placeholder `system_fingerprint`, formatted like a real one.
const SYSTEM_FINGERPRINT: &str = "fp_mock0000000";

/// Reads a chat completion request.
pub(crate) fn parse(body: &[u8]) -> Result<Prompt<'_>, Reject> {
    let request = ChatRequest::parse(body)?;
    Ok(Prompt {
        delivery: if request.stream() {
            Delivery::Events
        } else {
            Delivery::Whole
        },
        include_usage: request.include_usage(),
        show_thinking: true,
        max_tokens: request.max_tokens(),
        model: request.model,
        messages: request.messages,
    })
}

/// The subset of a chat completion request that changes the mock's answer.
#[derive(Debug, Deserialize)]
struct ChatRequest<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    messages: Vec<Value>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    max_completion_tokens: Option<u64>,
    max_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

impl ChatRequest<'_> {
    fn parse(body: &[u8]) -> Result<ChatRequest<'_>, Reject> {
        let request: ChatRequest = serde_json::from_slice(body).map_err(|e| {
            let message = if e.is_data() {
                format!("Invalid request body: {e}")
            } else {
                format!("We could not parse the JSON body of your request: {e}")
            };
            Reject::Invalid {
                message,
                param: None,
            }
        })?;
        if request.messages.is_empty() {
            return Err(Reject::Invalid {
                message: "[] is too short - 'messages'".to_owned(),
                param: Some("messages"),
            });
        }
        Ok(request)
    }

    fn stream(&self) -> bool {
        self.stream == Some(true)
    }

    fn include_usage(&self) -> bool {
        self.stream_options.as_ref().and_then(|o| o.include_usage) == Some(true)
    }

    /// `max_completion_tokens` wins over the deprecated `max_tokens`, as upstream.
    fn max_tokens(&self) -> Option<usize> {
        self.max_completion_tokens
            .or(self.max_tokens)
            .map(|n| n as usize)
    }
}

/// An OpenAI-style error response: status plus `{"error": {message, type, param, code}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
}

impl From<&Reject> for ApiError {
    fn from(reject: &Reject) -> Self {
        match reject {
            Reject::Invalid { message, param } => {
                ApiError::invalid_request(message.clone(), *param)
            }
            Reject::ModelNotFound(model) => ApiError::model_not_found(model),
            Reject::Unauthorized { provided } => ApiError::invalid_api_key(*provided),
            Reject::Injected(status) => ApiError::injected(*status),
        }
    }
}

impl ApiError {
    pub fn invalid_request(message: String, param: Option<&'static str>) -> Self {
        ApiError {
            status: 400,
            message,
            kind: "invalid_request_error",
            param,
            code: None,
        }
    }

    pub fn model_not_found(model: &str) -> Self {
        ApiError {
            status: 404,
            message: format!("The model `{model}` does not exist or you do not have access to it."),
            kind: "invalid_request_error",
            param: None,
            code: Some("model_not_found"),
        }
    }

    pub fn invalid_api_key(provided: bool) -> Self {
        let message = if provided {
            "Incorrect API key provided."
        } else {
            "You didn't provide an API key. You need to provide your API key in an Authorization \
             header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        };
        ApiError {
            status: 401,
            message: message.to_owned(),
            kind: "invalid_request_error",
            param: None,
            code: Some("invalid_api_key"),
        }
    }

    pub fn invalid_url(method: &str, path: &str, status: u16) -> Self {
        let message = if status == 405 {
            format!("Invalid method for URL ({method} {path})")
        } else {
            format!("Invalid URL ({method} {path})")
        };
        ApiError {
            status,
            message,
            kind: "invalid_request_error",
            param: None,
            code: None,
        }
    }

    /// The failure a script injects, worded like the real API's for that status.
    pub fn injected(status: u16) -> Self {
        let (message, kind, code) = match status {
            429 => (
                "Rate limit reached for requests (mock).",
                "requests",
                Some("rate_limit_exceeded"),
            ),
            500..=599 => (
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
            ),
            _ => ("Injected failure (mock).", "invalid_request_error", None),
        };
        ApiError {
            status,
            message: message.to_owned(),
            kind,
            param: None,
            code,
        }
    }

    pub fn render(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(128 + self.message.len());
        buf.extend_from_slice(b"{\"error\":{\"message\":");
        push_json_str(&mut buf, &self.message);
        buf.extend_from_slice(b",\"type\":");
        push_json_str(&mut buf, self.kind);
        buf.extend_from_slice(b",\"param\":");
        push_opt_str(&mut buf, self.param);
        buf.extend_from_slice(b",\"code\":");
        push_opt_str(&mut buf, self.code);
        buf.extend_from_slice(b"}}");
        buf
    }
}

/// The fields every chat completion object and chunk opens with, up to `"choices":[`.
fn push_head(buf: &mut Vec<u8>, meta: &Meta, object: &str) {
    write!(
        buf,
        "{{\"id\":\"chatcmpl-{:016x}\",\"object\":\"{object}\",",
        meta.id()
    )
    .expect("Vec write");
    write!(buf, "\"created\":{},\"model\":", meta.created).expect("Vec write");
    push_json_str(buf, meta.model);
    write!(
        buf,
        ",\"system_fingerprint\":\"{SYSTEM_FINGERPRINT}\",\"choices\":["
    )
    .expect("Vec write");
}

/// `finish_reason` of an answer that stopped for `stop`.
pub(crate) fn finish_reason(stop: Stop) -> &'static str {
    match stop {
        Stop::End => "stop",
        Stop::MaxTokens => "length",
        Stop::ToolCalls => "tool_calls",
    }
}

fn push_usage(buf: &mut Vec<u8>, usage: Usage) {
    let Usage {
        prompt: p,
        cached,
        completion: c,
        reasoning,
    } = usage;
    write!(
        buf,
        "{{\"prompt_tokens\":{p},\"completion_tokens\":{c},\"total_tokens\":{},\
         \"prompt_tokens_details\":{{\"cached_tokens\":{cached},\"audio_tokens\":0}},\
         \"completion_tokens_details\":{{\"reasoning_tokens\":{reasoning},\"audio_tokens\":0,\
         \"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}}",
        p + c
    )
    .expect("Vec write");
}

/// The `Authorization: Bearer` key.
pub(crate) fn api_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// A tool call id like the API's (`call_` and 24 characters), unique per response and call.
fn push_call_id(buf: &mut Vec<u8>, meta: &Meta, index: usize) {
    write!(buf, "\"call_{:016x}{index:08x}\"", meta.id()).expect("Vec write");
}

/// A `chat.completion` object. Thinking goes in `reasoning_content` (as DeepSeek and ZenMux
/// send it); `content` is null when the model only calls tools.
pub(crate) fn render_completion(
    meta: &Meta,
    answer: &Answer,
    finish_reason: &str,
    usage: Usage,
) -> Vec<u8> {
    let text = answer.text.as_str();
    let calls = &answer.tool_calls;
    let mut buf = Vec::with_capacity(
        512 + text.len() + answer.thinking.as_str().len() + meta.model.len() + 160 * calls.len(),
    );
    push_head(&mut buf, meta, "chat.completion");
    buf.extend_from_slice(b"{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    if text.is_empty() && !calls.is_empty() {
        buf.extend_from_slice(b"null");
    } else {
        push_json_str(&mut buf, text);
    }
    if !answer.thinking.is_empty() {
        buf.extend_from_slice(b",\"reasoning_content\":");
        push_json_str(&mut buf, answer.thinking.as_str());
    }
    if !calls.is_empty() {
        buf.extend_from_slice(b",\"tool_calls\":[");
        for (i, call) in calls.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(b"{\"id\":");
            push_call_id(&mut buf, meta, i);
            buf.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
            push_json_str(&mut buf, &call.name);
            buf.extend_from_slice(b",\"arguments\":");
            push_json_str(&mut buf, call.arguments.as_str());
            buf.extend_from_slice(b"}}");
        }
        buf.push(b']');
    }
    buf.extend_from_slice(b",\"refusal\":null},\"logprobs\":null,\"finish_reason\":");
    push_json_str(&mut buf, finish_reason);
    buf.extend_from_slice(b"}],\"usage\":");
    push_usage(&mut buf, usage);
    buf.push(b'}');
    buf
}

/// The SSE body of a streamed answer, shaped like the real API's: a role chunk, the thinking
/// (`reasoning_content`) and content chunks, each tool call as a chunk naming it and chunks
/// carrying pieces of its arguments, a finish chunk, the usage chunk (only with
/// `include_usage`; then every other chunk has `"usage":null`), and `data: [DONE]`.
pub(crate) fn render_stream<'a>(
    meta: &Meta,
    answer: &'a Answer,
    shape: &StreamShape,
    include_usage: bool,
) -> RenderedStream<'a> {
    let mut prefix = Vec::with_capacity(192 + meta.model.len());
    prefix.extend_from_slice(b"data: ");
    push_head(&mut prefix, meta, "chat.completion.chunk");
    let tail: &[u8] = if include_usage {
        b",\"usage\":null}\n\n"
    } else {
        b"}\n\n"
    };
    let calls = &answer.tool_calls;
    let events = answer.thinking.pieces().len()
        + answer.text.pieces().len()
        + calls
            .iter()
            .map(|c| c.arguments.pieces().len() + 1)
            .sum::<usize>();
    let per_chunk = prefix.len() + tail.len() + 64;
    let mut out = RenderedStream::new(
        per_chunk * (events + 3)
            + (answer.text.as_str().len() + answer.thinking.as_str().len()) * 2,
        events + 5,
        shape.faults,
    );
    let chunks = Chunks {
        prefix: &prefix,
        tail,
    };

    chunks.push(&mut out.bytes, |buf| {
        let content: &[u8] = if answer.text.is_empty() && !calls.is_empty() {
            b"null"
        } else {
            b"\"\""
        };
        buf.extend_from_slice(b"\"role\":\"assistant\",\"content\":");
        buf.extend_from_slice(content);
        buf.extend_from_slice(b",\"refusal\":null");
    });
    out.end_event(EventKind::Role);

    let sections = [
        (&answer.thinking, &b"\"reasoning_content\":"[..]),
        (&answer.text, b"\"content\":"),
    ];
    for (text, field) in sections {
        for piece in text.pieces() {
            if !out.proceed(&chunks, false) {
                return out;
            }
            chunks.push(&mut out.bytes, |buf| {
                buf.extend_from_slice(field);
                push_json_str(buf, piece);
            });
            out.end_event(EventKind::Content(piece));
        }
    }
    for (i, call) in calls.iter().enumerate() {
        for (j, piece) in call.arguments.pieces().enumerate() {
            if !out.proceed(&chunks, false) {
                return out;
            }
            if j == 0 {
                chunks.push(&mut out.bytes, |buf| {
                    write!(buf, "\"tool_calls\":[{{\"index\":{i},\"id\":").expect("Vec write");
                    push_call_id(buf, meta, i);
                    buf.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
                    push_json_str(buf, &call.name);
                    buf.extend_from_slice(b",\"arguments\":\"\"}}]");
                });
                out.end_event(EventKind::Frame);
            }
            chunks.push(&mut out.bytes, |buf| {
                write!(
                    buf,
                    "\"tool_calls\":[{{\"index\":{i},\"function\":{{\"arguments\":"
                )
                .expect("Vec write");
                push_json_str(buf, piece);
                buf.extend_from_slice(b"}}]");
            });
            out.end_event(EventKind::Content(piece));
        }
    }
    if !out.proceed(&chunks, true) {
        return out;
    }

    out.bytes.extend_from_slice(&prefix);
    out.bytes
        .extend_from_slice(b"{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":");
    push_json_str(&mut out.bytes, shape.finish_reason);
    out.bytes.extend_from_slice(b"}]");
    out.bytes.extend_from_slice(tail);
    out.end_event(EventKind::Finish);

    if include_usage {
        out.bytes.extend_from_slice(&prefix);
        out.bytes.extend_from_slice(b"],\"usage\":");
        push_usage(&mut out.bytes, shape.usage);
        out.bytes.extend_from_slice(b"}\n\n");
        out.end_event(EventKind::Usage);
    }
    out.bytes.extend_from_slice(b"data: [DONE]\n\n");
    out.end_event(EventKind::Done);
    out
}

/// The chunks of one stream, which share their prefix (`id`, `created`, `model`) and tail.
struct Chunks<'p> {
    prefix: &'p [u8],
    tail: &'p [u8],
}

impl Chunks<'_> {
    /// A chunk whose delta has the fields `delta` writes, and no finish reason yet.
    fn push(&self, buf: &mut Vec<u8>, delta: impl FnOnce(&mut Vec<u8>)) {
        buf.extend_from_slice(self.prefix);
        buf.extend_from_slice(b"{\"index\":0,\"delta\":{");
        delta(buf);
        buf.extend_from_slice(b"},\"logprobs\":null,\"finish_reason\":null}]");
        buf.extend_from_slice(self.tail);
    }
}

/// Stream faults as chunks: one cut off inside its JSON, and the error object the API sends
/// when it fails mid-stream.
impl FaultEvents for Chunks<'_> {
    fn malformed(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(self.prefix);
        buf.extend_from_slice(b"{\"index\":0,\"delta\":{\"content\":\n\n");
    }

    fn error(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(b"data: ");
        buf.extend_from_slice(&ApiError::injected(500).render());
        buf.extend_from_slice(b"\n\n");
    }
}

/// `GET /v1/models`: the scripted model names.
pub(crate) fn render_models<'a>(models: impl Iterator<Item = &'a str>) -> Vec<u8> {
    let mut buf = b"{\"object\":\"list\",\"data\":[".to_vec();
    for (i, id) in models.enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"id\":");
        push_json_str(&mut buf, id);
        buf.extend_from_slice(
            b",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"muxgate-mock\"}",
        );
    }
    buf.extend_from_slice(b"]}");
    buf
}

fn push_opt_str(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => push_json_str(buf, s),
        None => buf.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::render::{Ending, Faults};
    use crate::mock::reply::ToolCall;
    use serde_json::json;

    const META: Meta = Meta {
        seq: 1,
        created: 1_700_000_123,
        model: "gpt-\"4o\"",
    };
    const USAGE: Usage = Usage {
        prompt: 11,
        cached: 0,
        completion: 4,
        reasoning: 0,
    };

    fn shape() -> StreamShape<'static> {
        StreamShape {
            finish_reason: "stop",
            usage: USAGE,
            faults: Faults::default(),
        }
    }

    /// The `data:` payloads of an SSE body.
    fn events(bytes: &[u8]) -> Vec<String> {
        let text = std::str::from_utf8(bytes).unwrap();
        assert!(text.ends_with("\n\n"));
        text.split_terminator("\n\n")
            .map(|e| e.strip_prefix("data: ").expect("data event").to_owned())
            .collect()
    }

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn completion_object_has_openai_shape() {
        let body = parse(
            std::str::from_utf8(&render_completion(
                &META,
                &Answer::new("Hi \"there\"".into(), None),
                "stop",
                USAGE,
            ))
            .unwrap(),
        );
        let id = body["id"].as_str().unwrap();
        assert!(id.starts_with("chatcmpl-") && id.len() == 25, "{id}");
        assert_eq!(
            body,
            json!({
                "id": id, "object": "chat.completion", "created": 1_700_000_123,
                "model": "gpt-\"4o\"", "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi \"there\"",
                    "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15,
                    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                        "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
            })
        );
    }

    #[test]
    fn stream_without_usage_has_no_usage_keys() {
        let answer = Answer::new("Hello big world".into(), None);
        let out = render_stream(&META, &answer, &shape(), false);
        let ev = events(&out.bytes);
        assert_eq!(ev.len(), 6);
        assert_eq!(ev[5], "[DONE]");
        let chunks: Vec<Value> = ev[..5].iter().map(|e| parse(e.as_str())).collect();
        let id = chunks[0]["id"].clone();
        for c in &chunks {
            assert_eq!(c["object"], "chat.completion.chunk");
            assert_eq!(c["id"], id);
            assert_eq!(c["model"], "gpt-\"4o\"");
            assert!(c.get("usage").is_none());
        }
        assert_eq!(
            chunks[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": "", "refusal": null})
        );
        let content: Vec<&str> = chunks[1..4]
            .iter()
            .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
            .collect();
        assert_eq!(content, ["Hello", " big", " world"]);
        assert_eq!(chunks[3]["choices"][0]["finish_reason"], Value::Null);
        assert_eq!(
            chunks[4]["choices"][0],
            json!({"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"})
        );
        let kinds: Vec<EventKind> = out.events.iter().map(|e| e.0).collect();
        assert_eq!(
            kinds,
            [
                EventKind::Role,
                EventKind::Content("Hello"),
                EventKind::Content(" big"),
                EventKind::Content(" world"),
                EventKind::Finish,
                EventKind::Done
            ]
        );
        assert_eq!(out.events.last().unwrap().1, out.bytes.len());
        assert_eq!(out.ending, Ending::Complete);
    }

    #[test]
    fn stream_with_usage_ends_with_usage_chunk() {
        let answer = Answer::new("Hello world".into(), None);
        let out = render_stream(&META, &answer, &shape(), true);
        let ev = events(&out.bytes);
        assert_eq!(ev.len(), 6);
        for e in &ev[..4] {
            let c = parse(e);
            assert_eq!(c["usage"], Value::Null);
            assert!(c.as_object().unwrap().contains_key("usage"));
        }
        let last = parse(&ev[4]);
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"]["total_tokens"], 15);
        assert_eq!(
            last["usage"]["completion_tokens_details"]["reasoning_tokens"],
            0
        );
        assert_eq!(ev[5], "[DONE]");
    }

    #[test]
    fn truncation_and_malformed_events() {
        let answer = Answer::new("a b c d".into(), None);
        let out = render_stream(
            &META,
            &answer,
            &StreamShape {
                faults: Faults {
                    truncate: Some(2),
                    ..Faults::default()
                },
                ..shape()
            },
            true,
        );
        let ev = events(&out.bytes);
        assert_eq!(out.ending, Ending::Truncated);
        assert_eq!(ev.len(), 3, "role + 2 content chunks");
        assert!(
            ev.iter()
                .all(|e| parse(e)["choices"][0]["finish_reason"].is_null())
        );

        let out = render_stream(
            &META,
            &answer,
            &StreamShape {
                faults: Faults {
                    malformed: Some(1),
                    ..Faults::default()
                },
                ..shape()
            },
            false,
        );
        let ev = events(&out.bytes);
        assert_eq!(ev.len(), 8);
        assert!(serde_json::from_str::<Value>(&ev[2]).is_err());
        assert_eq!(out.events[2].0, EventKind::Malformed);
        let text = crate::mock::tests::content_of(&ev);
        assert_eq!(text, "a b c d");

        // Past the last chunk: malformed just before the finish chunk; truncation drops the end.
        let out = render_stream(
            &META,
            &answer,
            &StreamShape {
                faults: Faults {
                    malformed: Some(9),
                    truncate: Some(9),
                    error: None,
                },
                ..shape()
            },
            false,
        );
        let kinds: Vec<EventKind> = out.events.iter().map(|e| e.0).collect();
        assert_eq!(kinds.last(), Some(&EventKind::Malformed));
        assert_eq!(kinds.len(), 6);
    }

    fn thinking_and_calls() -> Answer {
        Answer::with(
            "Need weather.".into(),
            String::new(),
            vec![
                ToolCall::new(
                    "get_weather".into(),
                    r#"{"city":"Paris","unit":"c"}"#.into(),
                ),
                ToolCall::new("get_time".into(), r#"{"tz":"Europe/Paris"}"#.into()),
            ],
            None,
        )
    }

    #[test]
    fn completion_with_thinking_and_tool_calls() {
        let answer = thinking_and_calls();
        let body = render_completion(&META, &answer, "tool_calls", USAGE);
        let message = &parse(std::str::from_utf8(&body).unwrap())["choices"][0]["message"];
        assert_eq!(message["content"], Value::Null);
        assert_eq!(message["reasoning_content"], "Need weather.");
        let calls = message["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        assert_eq!(
            calls[0]["function"]["arguments"],
            r#"{"city":"Paris","unit":"c"}"#
        );
        let ids: Vec<&str> = calls.iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert!(ids[0].starts_with("call_") && ids[0].len() == 29, "{ids:?}");
        assert_ne!(ids[0], ids[1]);
    }

    #[test]
    fn stream_with_thinking_and_tool_calls() {
        let answer = thinking_and_calls();
        let out = render_stream(&META, &answer, &shape(), false);
        let chunks: Vec<Value> = events(&out.bytes)
            .iter()
            .filter(|e| *e != "[DONE]")
            .map(|e| parse(e))
            .collect();
        let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
        assert_eq!(deltas[0]["content"], Value::Null);
        let thinking: String = deltas
            .iter()
            .filter_map(|d| d["reasoning_content"].as_str())
            .collect();
        assert_eq!(thinking, "Need weather.");
        let mut calls: Vec<(String, String, String)> = Vec::new();
        for delta in &deltas {
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = call["index"].as_u64().unwrap() as usize;
                if let Some(id) = call["id"].as_str() {
                    assert_eq!(index, calls.len());
                    assert_eq!(call["function"]["arguments"], "");
                    let name = call["function"]["name"].as_str().unwrap();
                    calls.push((id.to_owned(), name.to_owned(), String::new()));
                } else {
                    calls[index].2 += call["function"]["arguments"].as_str().unwrap();
                }
            }
        }
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].1, "get_weather");
        assert_eq!(calls[0].2, r#"{"city":"Paris","unit":"c"}"#);
        assert_eq!(calls[1].2, r#"{"tz":"Europe/Paris"}"#);
        let argument_chunks = answer
            .tool_calls
            .iter()
            .map(|c| c.arguments.pieces().len())
            .sum::<usize>();
        assert!(argument_chunks >= 5);
        let frames = out
            .events
            .iter()
            .filter(|e| e.0 == EventKind::Frame)
            .count();
        assert_eq!(frames, 2);
    }

    #[test]
    fn error_after_ends_with_an_error_object() {
        let answer = Answer::new("a b c d".into(), None);
        let out = render_stream(
            &META,
            &answer,
            &StreamShape {
                faults: Faults {
                    error: Some(2),
                    ..Faults::default()
                },
                ..shape()
            },
            true,
        );
        assert_eq!(out.ending, Ending::Errored);
        let ev = events(&out.bytes);
        assert_eq!(ev.len(), 4, "role, 2 chunks, error");
        assert_eq!(
            parse(&ev[3]),
            json!({"error": {"message": "The server had an error while processing your request. Sorry about that!",
                "type": "server_error", "param": null, "code": null}})
        );
    }

    #[test]
    fn request_parsing() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,
            "stream_options":{"include_usage":true},"max_tokens":5,"max_completion_tokens":7,"temperature":0}"#;
        let r = ChatRequest::parse(body).unwrap();
        assert!(r.stream() && r.include_usage());
        assert_eq!(r.max_tokens(), Some(7));
        let r = ChatRequest::parse(
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":null}"#,
        )
        .unwrap();
        assert!(!r.stream() && !r.include_usage());
        assert_eq!(r.max_tokens(), None);

        let err = ApiError::from(&ChatRequest::parse(b"{not json").unwrap_err());
        assert_eq!((err.status, err.kind), (400, "invalid_request_error"));
        let err = ApiError::from(&ChatRequest::parse(br#"{"messages":[]}"#).unwrap_err());
        assert!(err.message.contains("model"), "{}", err.message);
        let err = ChatRequest::parse(br#"{"model":"m","messages":[]}"#).unwrap_err();
        assert!(matches!(
            err,
            Reject::Invalid {
                param: Some("messages"),
                ..
            }
        ));
    }

    #[test]
    fn error_bodies_are_openai_shaped() {
        let body = parse(std::str::from_utf8(&ApiError::model_not_found("nope").render()).unwrap());
        assert_eq!(body["error"]["code"], "model_not_found");
        assert_eq!(body["error"]["param"], Value::Null);
        assert_eq!(body["error"]["type"], "invalid_request_error");
        let e = ApiError::injected(429);
        assert_eq!((e.status, e.code), (429, Some("rate_limit_exceeded")));
        let e = ApiError::injected(503);
        assert_eq!((e.kind, e.code), ("server_error", None));
        let body = parse(
            std::str::from_utf8(&ApiError::invalid_request("bad".into(), None).render()).unwrap(),
        );
        assert_eq!(
            body,
            json!({"error": {"message": "bad", "type": "invalid_request_error", "param": null, "code": null}})
        );
    }

    #[test]
    fn models_list() {
        let body = parse(std::str::from_utf8(&render_models(["a", "b"].into_iter())).unwrap());
        assert_eq!(body["object"], "list");
        assert_eq!(body["data"][1]["id"], "b");
        assert_eq!(body["data"][0]["object"], "model");
    }
}
