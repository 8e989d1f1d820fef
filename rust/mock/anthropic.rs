//! Messages wire format (Anthropic API): the request fields the mock reads, and rendering of
//! the `message` object, its SSE events and error objects.
//!
//! A stream is `message_start`, `ping`, then per content block (thinking, text, tool use) a
//! `content_block_start`, its deltas and a `content_block_stop`, then `message_delta` with the
//! stop reason and cumulative usage, and `message_stop`. Every event is
//! `event: <type>\ndata: {"type":"<type>",...}\n\n`.

use std::borrow::Cow;
use std::io::Write;

use hyper::header::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::protocol::{Delivery, Prompt, Reject};
use super::render::{EventKind, FaultEvents, Meta, RenderedStream, StreamShape, push_json_str};
use super::reply::{Answer, Stop, Usage};

/// The `signature` of every thinking block: stable and shaped like a real one (base64).
const SIGNATURE: &str =
    "EgwIARABbXV4Z2F0ZS1tb2NrIHRoaW5raW5nIHNpZ25hdHVyZSwgc3RhYmxlIGFjcm9zcyByZXF1ZXN0cy4=";

/// The subset of a Messages request that changes the mock's answer. Required fields are
/// optional here so that their absence gets the API's own error.
#[derive(Debug, Deserialize)]
struct MessagesRequest<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    messages: Option<Vec<Value>>,
    max_tokens: Option<u64>,
    stream: Option<bool>,
    system: Option<Value>,
}

/// Reads a Messages request; the system prompt becomes the first message.
pub(crate) fn parse(body: &[u8]) -> Result<Prompt<'_>, Reject> {
    let invalid = |message: String| Reject::Invalid {
        message,
        param: None,
    };
    let request: MessagesRequest =
        serde_json::from_slice(body).map_err(|e| invalid(format!("invalid request: {e}")))?;
    let model = request
        .model
        .ok_or_else(|| invalid("model: Field required".to_owned()))?;
    let mut messages = request
        .messages
        .ok_or_else(|| invalid("messages: Field required".to_owned()))?;
    if messages.is_empty() {
        return Err(invalid(
            "messages: at least one message is required".to_owned(),
        ));
    }
    let max_tokens = request
        .max_tokens
        .ok_or_else(|| invalid("max_tokens: Field required".to_owned()))?;
    if let Some(system) = request.system {
        messages.insert(0, json!({"role": "system", "content": system}));
    }
    Ok(Prompt {
        model,
        messages,
        max_tokens: Some(max_tokens as usize),
        delivery: if request.stream == Some(true) {
            Delivery::Events
        } else {
            Delivery::Whole
        },
        include_usage: false,
        show_thinking: true,
    })
}

/// The `x-api-key` header.
pub(crate) fn api_key(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-api-key").and_then(|v| v.to_str().ok())
}

/// Status and `{"type":"error","error":{type, message}}` body for `reject`.
pub(crate) fn error(reject: &Reject) -> (u16, Vec<u8>) {
    let (status, message): (u16, Cow<str>) = match reject {
        Reject::Invalid { message, .. } => (400, message.into()),
        Reject::ModelNotFound(model) => (404, format!("model: {model}").into()),
        Reject::Unauthorized { provided: true } => (401, "invalid x-api-key".into()),
        Reject::Unauthorized { provided: false } => (401, "x-api-key header is required".into()),
        Reject::Injected(status) => (*status, injected_message(*status).into()),
    };
    let mut buf = Vec::with_capacity(96 + message.len());
    push_error(&mut buf, error_type(status), &message);
    (status, buf)
}

/// The API's error `type` for an HTTP status.
fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

fn injected_message(status: u16) -> &'static str {
    match status {
        429 => "This request would exceed your organization's rate limit (mock).",
        529 => "Overloaded",
        500..=599 => "Internal server error",
        _ => "Injected failure (mock).",
    }
}

fn push_error(buf: &mut Vec<u8>, kind: &str, message: &str) {
    buf.extend_from_slice(b"{\"type\":\"error\",\"error\":{\"type\":");
    push_json_str(buf, kind);
    buf.extend_from_slice(b",\"message\":");
    push_json_str(buf, message);
    buf.extend_from_slice(b"}}");
}

/// `stop_reason` of an answer that stopped for `stop`.
pub(crate) fn stop_reason(stop: Stop) -> &'static str {
    match stop {
        Stop::End => "end_turn",
        Stop::MaxTokens => "max_tokens",
        Stop::ToolCalls => "tool_use",
    }
}

/// `usage`: input tokens exclude the cache reads, which are reported on their own.
fn push_usage(buf: &mut Vec<u8>, usage: Usage, output_tokens: usize) {
    write!(
        buf,
        "{{\"input_tokens\":{},\"cache_creation_input_tokens\":0,\
         \"cache_read_input_tokens\":{},\"output_tokens\":{output_tokens}}}",
        usage.prompt - usage.cached,
        usage.cached
    )
    .expect("Vec write");
}

fn push_message_id(buf: &mut Vec<u8>, meta: &Meta) {
    write!(buf, "\"msg_01{:016x}\"", meta.id()).expect("Vec write");
}

fn push_tool_use_id(buf: &mut Vec<u8>, meta: &Meta, index: usize) {
    write!(buf, "\"toolu_01{:016x}{index:06x}\"", meta.id()).expect("Vec write");
}

/// The message fields before `content`.
fn push_message_head(buf: &mut Vec<u8>, meta: &Meta) {
    buf.extend_from_slice(b"{\"id\":");
    push_message_id(buf, meta);
    buf.extend_from_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    push_json_str(buf, meta.model);
}

/// Whether the answer gets a text block: when it has text, or when there is nothing else to
/// show (an empty answer is one empty text block).
fn has_text_block(answer: &Answer) -> bool {
    !answer.text.is_empty() || (answer.thinking.is_empty() && answer.tool_calls.is_empty())
}

/// A `message` object: thinking, text and tool use blocks, stop reason and usage.
pub(crate) fn render_message(
    meta: &Meta,
    answer: &Answer,
    stop_reason: &str,
    usage: Usage,
) -> Vec<u8> {
    let (thinking, text) = (answer.thinking.as_str(), answer.text.as_str());
    let mut buf = Vec::with_capacity(
        384 + thinking.len() + text.len() + meta.model.len() + 160 * answer.tool_calls.len(),
    );
    push_message_head(&mut buf, meta);
    buf.extend_from_slice(b",\"content\":[");
    let mut blocks = 0;
    let mut next_block = |buf: &mut Vec<u8>| {
        if blocks > 0 {
            buf.push(b',');
        }
        blocks += 1;
    };
    if !thinking.is_empty() {
        next_block(&mut buf);
        buf.extend_from_slice(b"{\"type\":\"thinking\",\"thinking\":");
        push_json_str(&mut buf, thinking);
        buf.extend_from_slice(b",\"signature\":");
        push_json_str(&mut buf, SIGNATURE);
        buf.push(b'}');
    }
    if has_text_block(answer) {
        next_block(&mut buf);
        buf.extend_from_slice(b"{\"type\":\"text\",\"text\":");
        push_json_str(&mut buf, text);
        buf.push(b'}');
    }
    for (i, call) in answer.tool_calls.iter().enumerate() {
        next_block(&mut buf);
        push_tool_use(&mut buf, meta, i, &call.name, call.arguments.as_str());
    }
    buf.extend_from_slice(b"],\"stop_reason\":");
    push_json_str(&mut buf, stop_reason);
    buf.extend_from_slice(b",\"stop_sequence\":null,\"usage\":");
    push_usage(&mut buf, usage, usage.completion);
    buf.push(b'}');
    buf
}

/// A `tool_use` block; `input` is the arguments JSON, which the script validated.
fn push_tool_use(buf: &mut Vec<u8>, meta: &Meta, index: usize, name: &str, input: &str) {
    buf.extend_from_slice(b"{\"type\":\"tool_use\",\"id\":");
    push_tool_use_id(buf, meta, index);
    buf.extend_from_slice(b",\"name\":");
    push_json_str(buf, name);
    buf.extend_from_slice(b",\"input\":");
    buf.extend_from_slice(input.as_bytes());
    buf.push(b'}');
}

/// One SSE event; `fields` writes what follows `"type"` in its data.
fn push_event(buf: &mut Vec<u8>, kind: &str, fields: impl FnOnce(&mut Vec<u8>)) {
    write!(buf, "event: {kind}\ndata: {{\"type\":\"{kind}\"").expect("Vec write");
    fields(buf);
    buf.extend_from_slice(b"}\n\n");
}

/// The SSE body of a streamed answer.
pub(crate) fn render_stream<'a>(
    meta: &Meta,
    answer: &'a Answer,
    shape: &StreamShape,
) -> RenderedStream<'a> {
    let chunks = answer.thinking.pieces().len()
        + answer.text.pieces().len()
        + answer
            .tool_calls
            .iter()
            .map(|c| c.arguments.pieces().len())
            .sum::<usize>();
    let size = answer.thinking.as_str().len() + answer.text.as_str().len();
    let mut out = RenderedStream::new(
        1024 + 2 * size + 128 * chunks,
        chunks + 4 * answer.tool_calls.len() + 12,
        shape.faults,
    );
    let usage = shape.usage;

    push_event(&mut out.bytes, "message_start", |buf| {
        buf.extend_from_slice(b",\"message\":");
        push_message_head(buf, meta);
        buf.extend_from_slice(
            b",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":",
        );
        push_usage(buf, usage, 1);
        buf.push(b'}');
    });
    out.end_event(EventKind::Role);
    push_event(&mut out.bytes, "ping", |_| {});
    out.end_event(EventKind::Role);

    let mut blocks = Blocks {
        out: &mut out,
        index: 0,
    };
    if !answer.thinking.is_empty() {
        let start = |buf: &mut Vec<u8>| {
            buf.extend_from_slice(b"{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}");
        };
        if !blocks.push(
            start,
            answer.thinking.pieces(),
            "thinking_delta",
            "thinking",
            true,
        ) {
            return out;
        }
    }
    if has_text_block(answer) {
        let start = |buf: &mut Vec<u8>| buf.extend_from_slice(b"{\"type\":\"text\",\"text\":\"\"}");
        if !blocks.push(start, answer.text.pieces(), "text_delta", "text", false) {
            return out;
        }
    }
    for (i, call) in answer.tool_calls.iter().enumerate() {
        let start = |buf: &mut Vec<u8>| push_tool_use(buf, meta, i, &call.name, "{}");
        let pieces = call.arguments.pieces();
        if !blocks.push(start, pieces, "input_json_delta", "partial_json", false) {
            return out;
        }
    }
    if !out.proceed(&Events, true) {
        return out;
    }

    push_event(&mut out.bytes, "message_delta", |buf| {
        buf.extend_from_slice(b",\"delta\":{\"stop_reason\":");
        push_json_str(buf, shape.finish_reason);
        buf.extend_from_slice(b",\"stop_sequence\":null},\"usage\":");
        push_usage(buf, usage, usage.completion);
    });
    out.end_event(EventKind::Finish);
    push_event(&mut out.bytes, "message_stop", |_| {});
    out.end_event(EventKind::Done);
    out
}

/// Writes a stream's content blocks, numbering them.
struct Blocks<'o, 'a> {
    out: &'o mut RenderedStream<'a>,
    index: usize,
}

impl<'a> Blocks<'_, 'a> {
    /// One block: its start (sent with its first chunk, so a fault due before that chunk comes
    /// first), a delta per chunk whose `field` carries the piece, the thinking's signature when
    /// `signed`, and its stop. `false` when the stream ended inside the block.
    fn push(
        &mut self,
        start: impl Fn(&mut Vec<u8>),
        pieces: impl Iterator<Item = &'a str>,
        delta: &str,
        field: &str,
        signed: bool,
    ) -> bool {
        let (out, index) = (&mut *self.out, self.index);
        self.index += 1;
        let start = |out: &mut RenderedStream<'a>| {
            push_event(&mut out.bytes, "content_block_start", |buf| {
                write!(buf, ",\"index\":{index},\"content_block\":").expect("Vec write");
                start(buf);
            });
            out.end_event(EventKind::Frame);
        };
        let mut started = false;
        for piece in pieces {
            if !out.proceed(&Events, false) {
                return false;
            }
            if !started {
                start(out);
                started = true;
            }
            push_event(&mut out.bytes, "content_block_delta", |buf| {
                write!(
                    buf,
                    ",\"index\":{index},\"delta\":{{\"type\":\"{delta}\",\"{field}\":"
                )
                .expect("Vec write");
                push_json_str(buf, piece);
                buf.push(b'}');
            });
            out.end_event(EventKind::Content(piece));
        }
        if !started {
            start(out);
        }
        if signed {
            push_event(&mut out.bytes, "content_block_delta", |buf| {
                write!(
                    buf,
                    ",\"index\":{index},\"delta\":{{\"type\":\"signature_delta\",\"signature\":\"{SIGNATURE}\"}}"
                )
                .expect("Vec write");
            });
            out.end_event(EventKind::Frame);
        }
        push_event(&mut out.bytes, "content_block_stop", |buf| {
            write!(buf, ",\"index\":{index}").expect("Vec write");
        });
        out.end_event(EventKind::Frame);
        true
    }
}

/// Stream faults as events: a delta cut off inside its JSON, and the `error` event the API
/// sends when it is overloaded mid-stream.
struct Events;

impl FaultEvents for Events {
    fn malformed(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":\n\n",
        );
    }

    fn error(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(b"event: error\ndata: ");
        push_error(buf, "overloaded_error", "Overloaded");
        buf.extend_from_slice(b"\n\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::render::{Ending, Faults};
    use crate::mock::reply::ToolCall;

    const META: Meta = Meta {
        seq: 7,
        created: 0,
        model: "claude-mock",
    };
    const USAGE: Usage = Usage {
        prompt: 20,
        cached: 8,
        completion: 30,
        reasoning: 5,
    };

    fn shape(faults: Faults) -> StreamShape<'static> {
        StreamShape {
            finish_reason: "tool_use",
            usage: USAGE,
            faults,
        }
    }

    fn answer() -> Answer {
        Answer::with(
            "Think first.".into(),
            "Calling.".into(),
            vec![ToolCall::new(
                "lookup".into(),
                r#"{"query":"weather in Paris"}"#.into(),
            )],
            None,
        )
    }

    /// `(event name, data)` of each event, checking the data's `type` names the event.
    fn events(bytes: &[u8]) -> Vec<(String, Value)> {
        let mut parser = crate::sse::Parser::new();
        let mut events = Vec::new();
        parser.feed(bytes, &mut events).unwrap();
        events
            .into_iter()
            .map(|e| {
                let data: Value = serde_json::from_str(&e.data).unwrap();
                let name = e.event.unwrap();
                assert_eq!(data["type"], name.as_str());
                (name, data)
            })
            .collect()
    }

    #[test]
    fn request_parsing_and_its_errors() {
        let prompt = parse(
            br#"{"model":"m","max_tokens":9,"system":"Be brief.","stream":true,
                "messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}"#,
        )
        .unwrap();
        assert_eq!((prompt.model.as_ref(), prompt.max_tokens), ("m", Some(9)));
        assert_eq!(prompt.delivery, Delivery::Events);
        assert_eq!(
            prompt.messages[0],
            json!({"role": "system", "content": "Be brief."})
        );
        assert_eq!(prompt.messages.len(), 2);
        for (body, message) in [
            (
                &br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#[..],
                "max_tokens: Field required",
            ),
            (
                br#"{"model":"m","max_tokens":1,"messages":[]}"#,
                "messages: at least one message is required",
            ),
            (
                br#"{"max_tokens":1,"messages":[{"role":"user","content":"x"}]}"#,
                "model: Field required",
            ),
        ] {
            let Err(Reject::Invalid { message: got, .. }) = parse(body) else {
                panic!("{message}")
            };
            assert_eq!(got, message);
        }
        assert!(parse(b"{oops").is_err());
    }

    #[test]
    fn errors_have_the_api_shape() {
        let body = |reject: &Reject| {
            let (status, body) = error(reject);
            (status, serde_json::from_slice::<Value>(&body).unwrap())
        };
        let (status, b) = body(&Reject::ModelNotFound("nope".into()));
        assert_eq!(status, 404);
        assert_eq!(
            b,
            json!({"type": "error", "error": {"type": "not_found_error", "message": "model: nope"}})
        );
        let (status, b) = body(&Reject::Unauthorized { provided: true });
        assert_eq!(
            (status, &b["error"]["type"]),
            (401, &json!("authentication_error"))
        );
        for (status, kind) in [
            (400, "invalid_request_error"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (529, "overloaded_error"),
        ] {
            let (got, b) = body(&Reject::Injected(status));
            assert_eq!((got, &b["error"]["type"]), (status, &json!(kind)));
        }
    }

    #[test]
    fn message_has_the_api_shape() {
        let body: Value =
            serde_json::from_slice(&render_message(&META, &answer(), "tool_use", USAGE)).unwrap();
        let id = body["id"].as_str().unwrap();
        assert!(id.starts_with("msg_01"), "{id}");
        let tool_id = body["content"][2]["id"].as_str().unwrap();
        assert!(tool_id.starts_with("toolu_01"), "{tool_id}");
        assert_eq!(
            body,
            json!({
                "id": id, "type": "message", "role": "assistant", "model": "claude-mock",
                "content": [
                    {"type": "thinking", "thinking": "Think first.", "signature": SIGNATURE},
                    {"type": "text", "text": "Calling."},
                    {"type": "tool_use", "id": tool_id, "name": "lookup",
                        "input": {"query": "weather in Paris"}}
                ],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 12, "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 8, "output_tokens": 30}
            })
        );
        let empty = Answer::with(String::new(), String::new(), Vec::new(), None);
        let body: Value =
            serde_json::from_slice(&render_message(&META, &empty, "end_turn", USAGE)).unwrap();
        assert_eq!(body["content"], json!([{"type": "text", "text": ""}]));
    }

    #[test]
    fn stream_events_follow_the_api_flow() {
        let answer = answer();
        let out = render_stream(&META, &answer, &shape(Faults::default()));
        assert_eq!(out.ending, Ending::Complete);
        let events = events(&out.bytes);
        let names: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
        let mut expected = vec!["message_start", "ping", "content_block_start"];
        expected.extend(["content_block_delta"; 3]); // "Think", " first." and the signature
        expected.extend([
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
        ]);
        expected.extend(["content_block_stop", "content_block_start"]);
        let argument_pieces = answer.tool_calls[0].arguments.pieces().len();
        expected.extend(vec!["content_block_delta"; argument_pieces]);
        expected.extend(["content_block_stop", "message_delta", "message_stop"]);
        assert_eq!(names, expected);

        let start = &events[0].1["message"];
        assert_eq!(start["content"], json!([]));
        assert_eq!(start["usage"]["input_tokens"], 12);
        assert_eq!(start["usage"]["output_tokens"], 1);
        assert_eq!(
            events[5].1["delta"],
            json!({"type": "signature_delta", "signature": SIGNATURE})
        );
        let tool_start = &events[10].1;
        assert_eq!(tool_start["index"], 2);
        assert_eq!(tool_start["content_block"]["input"], json!({}));
        let arguments: String = events[11..11 + argument_pieces]
            .iter()
            .map(|e| {
                assert_eq!(e.1["delta"]["type"], "input_json_delta");
                e.1["delta"]["partial_json"].as_str().unwrap()
            })
            .collect();
        assert_eq!(arguments, r#"{"query":"weather in Paris"}"#);
        let delta = &events[events.len() - 2].1;
        assert_eq!(
            delta["delta"],
            json!({"stop_reason": "tool_use", "stop_sequence": null})
        );
        assert_eq!(
            delta["usage"],
            json!({"input_tokens": 12, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 8, "output_tokens": 30})
        );
    }

    #[test]
    fn faults_in_a_stream() {
        let answer = answer();
        let errored = render_stream(
            &META,
            &answer,
            &shape(Faults {
                error: Some(1),
                ..Faults::default()
            }),
        );
        assert_eq!(errored.ending, Ending::Errored);
        let events = events(&errored.bytes);
        assert_eq!(
            events.last().unwrap(),
            &(
                "error".to_owned(),
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            )
        );
        // Before the second chunk: inside the thinking block, which never stops.
        assert_eq!(events.len(), 5);

        let malformed = render_stream(
            &META,
            &answer,
            &shape(Faults {
                malformed: Some(2),
                ..Faults::default()
            }),
        );
        let text = std::str::from_utf8(&malformed.bytes).unwrap();
        let bad = text
            .split_terminator("\n\n")
            .filter(|e| serde_json::from_str::<Value>(&e[e.find("data: ").unwrap() + 6..]).is_err())
            .count();
        assert_eq!(bad, 1);
        assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    }
}
