//! Gemini wire format (Generative Language API `v1beta`): the endpoints and request fields
//! the mock reads, and rendering of `GenerateContentResponse` objects, whole or streamed, and
//! error objects.
//!
//! `:streamGenerateContent` sends one response per chunk: SSE `data:` events with `alt=sse`
//! (CRLF line endings and no `[DONE]`, as Google's servers send them), else the elements of
//! one JSON array written as they come. Each chunk has a single part; the last one has the
//! `finishReason` and the final `usageMetadata`.

use std::borrow::Cow;
use std::io::Write;

use hyper::http::request::Parts;
use serde::Deserialize;
use serde_json::{Value, json};

use super::protocol::{Delivery, Prompt, Reject};
use super::render::{EventKind, FaultEvents, Meta, RenderedStream, StreamShape, push_json_str};
use super::reply::{Answer, Stop, Usage};

/// The `thoughtSignature` of the first function call after thinking: stable, base64 like a
/// real one.
const THOUGHT_SIGNATURE: &str = "CiJtdXhnYXRlLW1vY2sgdGhvdWdodCBzaWduYXR1cmU=";

/// The model and whether it streams, from a `/v1beta/models/{model}:{method}` path.
pub(crate) fn endpoint(path: &str) -> Option<(&str, bool)> {
    let (model, method) = path.strip_prefix("/v1beta/models/")?.rsplit_once(':')?;
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return None,
    };
    (!model.is_empty()).then_some((model, stream))
}

/// The subset of a `GenerateContentRequest` that changes the mock's answer. Field names are
/// read in both spellings, as Google's protobuf JSON parsing does (the GenAI SDK sends some
/// nested fields in snake case on Vertex).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentRequest {
    contents: Option<Vec<Content>>,
    #[serde(alias = "system_instruction")]
    system_instruction: Option<Content>,
    #[serde(alias = "generation_config")]
    generation_config: Option<GenerationConfig>,
}

#[derive(Debug, Deserialize)]
struct Content {
    role: Option<String>,
    #[serde(default)]
    parts: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    #[serde(alias = "max_output_tokens")]
    max_output_tokens: Option<u64>,
    #[serde(alias = "thinking_config")]
    thinking_config: Option<ThinkingConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ThinkingConfig {
    #[serde(alias = "include_thoughts")]
    include_thoughts: Option<bool>,
}

/// Reads a request to one of the [`endpoint`]s; the model comes from the path, `alt=sse` from
/// the query.
pub(crate) fn parse<'a>(head: &Parts, body: &[u8]) -> Result<Prompt<'a>, Reject> {
    let invalid = |message: String| Reject::Invalid {
        message,
        param: None,
    };
    let (model, stream) = endpoint(head.uri.path()).expect("routed to a Gemini endpoint");
    let request: GenerateContentRequest = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("Invalid JSON payload received. {e}")))?;
    let contents = request.contents.unwrap_or_default();
    if contents.is_empty() {
        return Err(invalid(
            "* GenerateContentRequest.contents: contents is not specified\n".to_owned(),
        ));
    }
    let system = request
        .system_instruction
        .map(|content| chat_message("system", content));
    let messages = system
        .into_iter()
        .chain(contents.into_iter().map(|content| {
            let role = match content.role.as_deref() {
                Some("model") => "assistant",
                _ => "user",
            };
            chat_message(role, content)
        }))
        .collect();
    let config = request.generation_config;
    let (max_tokens, thoughts) = config.map_or((None, None), |c| {
        (
            c.max_output_tokens,
            c.thinking_config.and_then(|t| t.include_thoughts),
        )
    });
    Ok(Prompt {
        model: Cow::Owned(model.to_owned()),
        messages,
        max_tokens: max_tokens.map(|n| n as usize),
        delivery: match (stream, query(head, "alt")) {
            (false, _) => Delivery::Whole,
            (true, Some("sse")) => Delivery::Events,
            (true, _) => Delivery::Array,
        },
        include_usage: false,
        show_thinking: thoughts == Some(true),
    })
}

/// A `Content` as a chat message: text parts stay text, other parts count by their JSON.
fn chat_message(role: &str, content: Content) -> Value {
    let parts: Vec<Value> = content
        .parts
        .into_iter()
        .map(|part| match part.get("text") {
            Some(Value::String(text)) => json!({"type": "text", "text": text}),
            _ => part,
        })
        .collect();
    json!({"role": role, "content": parts})
}

fn query<'h>(head: &'h Parts, name: &str) -> Option<&'h str> {
    head.uri
        .query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// The `x-goog-api-key` header, or the `key` query parameter.
pub(crate) fn api_key(head: &Parts) -> Option<&str> {
    let header = head.headers.get("x-goog-api-key");
    header
        .and_then(|v| v.to_str().ok())
        .or_else(|| query(head, "key"))
}

/// Status and `{"error":{code, message, status}}` body for `reject`.
pub(crate) fn error(reject: &Reject) -> (u16, Vec<u8>) {
    let (code, message): (u16, Cow<str>) = match reject {
        Reject::Invalid { message, .. } => (400, message.into()),
        Reject::ModelNotFound(model) => (
            404,
            format!(
                "models/{model} is not found for API version v1beta, or is not supported for \
                 generateContent. Call ListModels to see the list of available models and their \
                 supported methods."
            )
            .into(),
        ),
        Reject::Unauthorized { provided: true } => (
            401,
            "API key not valid. Please pass a valid API key.".into(),
        ),
        Reject::Unauthorized { provided: false } => (
            401,
            "Method doesn't allow unregistered callers (callers without established identity). \
             Please use API Key or other form of API consumer identity to call this API."
                .into(),
        ),
        Reject::Injected(status) => (*status, injected_message(*status).into()),
    };
    let mut buf = Vec::with_capacity(96 + message.len());
    push_error(&mut buf, code, &message);
    (code, buf)
}

fn injected_message(code: u16) -> &'static str {
    match code {
        429 => "Resource has been exhausted (e.g. check quota).",
        503 => "The model is overloaded. Please try again later.",
        500..=599 => {
            "An internal error has occurred. Please retry or report in \
             https://developers.generativeai.google/guide/troubleshooting"
        }
        _ => "Injected failure (mock).",
    }
}

/// The canonical status name Google's APIs pair with an HTTP status.
fn status_name(code: u16) -> &'static str {
    match code {
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        500..=599 => "INTERNAL",
        _ => "INVALID_ARGUMENT",
    }
}

fn push_error(buf: &mut Vec<u8>, code: u16, message: &str) {
    write!(buf, "{{\"error\":{{\"code\":{code},\"message\":").expect("Vec write");
    push_json_str(buf, message);
    write!(buf, ",\"status\":\"{}\"}}}}", status_name(code)).expect("Vec write");
}

/// `finishReason` of an answer that stopped for `stop`: a turn with function calls ends with
/// `STOP` too.
pub(crate) fn finish_reason(stop: Stop) -> &'static str {
    match stop {
        Stop::End | Stop::ToolCalls => "STOP",
        Stop::MaxTokens => "MAX_TOKENS",
    }
}

/// The final `usageMetadata`: candidates exclude the thoughts, which are counted on their own;
/// the prompt includes the cached content.
fn push_usage(buf: &mut Vec<u8>, usage: Usage) {
    let candidates = usage.completion - usage.reasoning;
    write!(
        buf,
        "{{\"promptTokenCount\":{},\"candidatesTokenCount\":{candidates},\"totalTokenCount\":{}",
        usage.prompt,
        usage.prompt + usage.completion
    )
    .expect("Vec write");
    push_counts_if_any(buf, usage.cached, usage.reasoning);
}

/// The `usageMetadata` of a chunk before the last: the prompt only.
fn push_prompt_usage(buf: &mut Vec<u8>, usage: Usage) {
    write!(
        buf,
        "{{\"promptTokenCount\":{0},\"totalTokenCount\":{0}",
        usage.prompt
    )
    .expect("Vec write");
    push_counts_if_any(buf, usage.cached, 0);
}

/// The counts Gemini leaves out when zero, and the closing brace.
fn push_counts_if_any(buf: &mut Vec<u8>, cached: usize, thoughts: usize) {
    if cached > 0 {
        write!(buf, ",\"cachedContentTokenCount\":{cached}").expect("Vec write");
    }
    if thoughts > 0 {
        write!(buf, ",\"thoughtsTokenCount\":{thoughts}").expect("Vec write");
    }
    buf.push(b'}');
}

/// What follows a response's candidates: its usage, model and id.
fn push_response_tail(buf: &mut Vec<u8>, meta: &Meta, usage: impl FnOnce(&mut Vec<u8>)) {
    buf.extend_from_slice(b",\"usageMetadata\":");
    usage(buf);
    buf.extend_from_slice(b",\"modelVersion\":");
    push_json_str(buf, meta.model);
    write!(buf, ",\"responseId\":\"{:016x}\"}}", meta.id()).expect("Vec write");
}

fn push_text_part(buf: &mut Vec<u8>, text: &str, thought: bool) {
    buf.extend_from_slice(b"{\"text\":");
    push_json_str(buf, text);
    if thought {
        buf.extend_from_slice(b",\"thought\":true");
    }
    buf.push(b'}');
}

/// A `functionCall` part; `args` is the arguments JSON, which the script validated.
fn push_call_part(buf: &mut Vec<u8>, name: &str, args: &str, signed: bool) {
    buf.extend_from_slice(b"{\"functionCall\":{\"name\":");
    push_json_str(buf, name);
    buf.extend_from_slice(b",\"args\":");
    buf.extend_from_slice(args.as_bytes());
    buf.push(b'}');
    if signed {
        write!(buf, ",\"thoughtSignature\":\"{THOUGHT_SIGNATURE}\"").expect("Vec write");
    }
    buf.push(b'}');
}

/// Whether the answer gets a text part: when it has text, or when no other part is shown.
fn has_text_part(answer: &Answer, show_thinking: bool) -> bool {
    let thought_shown = show_thinking && !answer.thinking.is_empty();
    !answer.text.is_empty() || (!thought_shown && answer.tool_calls.is_empty())
}

/// A whole `GenerateContentResponse`. Thinking is a `thought` part only when the request set
/// `includeThoughts`; it counts as `thoughtsTokenCount` either way.
pub(crate) fn render_response(
    meta: &Meta,
    answer: &Answer,
    finish_reason: &str,
    usage: Usage,
    show_thinking: bool,
) -> Vec<u8> {
    let (thinking, text) = (answer.thinking.as_str(), answer.text.as_str());
    let mut buf = Vec::with_capacity(
        384 + thinking.len() + text.len() + meta.model.len() + 128 * answer.tool_calls.len(),
    );
    buf.extend_from_slice(b"{\"candidates\":[{\"content\":{\"parts\":[");
    let mut parts = 0;
    let mut next_part = |buf: &mut Vec<u8>| {
        if parts > 0 {
            buf.push(b',');
        }
        parts += 1;
    };
    if show_thinking && !thinking.is_empty() {
        next_part(&mut buf);
        push_text_part(&mut buf, thinking, true);
    }
    if has_text_part(answer, show_thinking) {
        next_part(&mut buf);
        push_text_part(&mut buf, text, false);
    }
    for (i, call) in answer.tool_calls.iter().enumerate() {
        next_part(&mut buf);
        let signed = i == 0 && !thinking.is_empty();
        push_call_part(&mut buf, &call.name, call.arguments.as_str(), signed);
    }
    buf.extend_from_slice(b"],\"role\":\"model\"},\"finishReason\":");
    push_json_str(&mut buf, finish_reason);
    buf.extend_from_slice(b",\"index\":0}]");
    push_response_tail(&mut buf, meta, |buf| push_usage(buf, usage));
    buf
}

/// The body of `:streamGenerateContent`: SSE events (`sse`) or a JSON array, one response per
/// thought, text chunk and function call, then the one with the finish reason.
pub(crate) fn render_stream<'a>(
    meta: &Meta,
    answer: &'a Answer,
    shape: &StreamShape,
    show_thinking: bool,
    sse: bool,
) -> RenderedStream<'a> {
    let thoughts = if show_thinking {
        answer.thinking.pieces().len()
    } else {
        0
    };
    let chunks = thoughts + answer.text.pieces().len() + answer.tool_calls.len();
    let mut tail = Vec::with_capacity(160 + meta.model.len());
    tail.extend_from_slice(b"],\"role\":\"model\"},\"index\":0}]");
    push_response_tail(&mut tail, meta, |buf| push_prompt_usage(buf, shape.usage));
    let size = answer.thinking.as_str().len()
        + answer.text.as_str().len()
        + answer
            .tool_calls
            .iter()
            .map(|c| c.arguments.as_str().len())
            .sum::<usize>();
    let mut out = RenderedStream::new(
        (tail.len() + 96) * (chunks + 1) + 2 * size,
        chunks + 3,
        shape.faults,
    );
    let frame = Framing { sse };
    let push_chunk = |out: &mut RenderedStream<'a>, part: &dyn Fn(&mut Vec<u8>)| {
        frame.open(&mut out.bytes);
        out.bytes
            .extend_from_slice(b"{\"candidates\":[{\"content\":{\"parts\":[");
        part(&mut out.bytes);
        out.bytes.extend_from_slice(&tail);
        frame.close(&mut out.bytes);
    };

    let thinking = answer.thinking.pieces().take(thoughts);
    let texts = thinking
        .map(|piece| (piece, true))
        .chain(answer.text.pieces().map(|piece| (piece, false)));
    for (piece, thought) in texts {
        if !out.proceed(&frame, false) {
            return out;
        }
        push_chunk(&mut out, &|buf| push_text_part(buf, piece, thought));
        out.end_event(EventKind::Content(piece));
    }
    for (i, call) in answer.tool_calls.iter().enumerate() {
        if !out.proceed(&frame, false) {
            return out;
        }
        let signed = i == 0 && !answer.thinking.is_empty();
        let arguments = call.arguments.as_str();
        push_chunk(&mut out, &|buf| {
            push_call_part(buf, &call.name, arguments, signed);
        });
        out.end_event(EventKind::Content(arguments));
    }
    if !out.proceed(&frame, true) {
        return out;
    }

    frame.open(&mut out.bytes);
    out.bytes.extend_from_slice(
        b"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\"}],\"role\":\"model\"},\
          \"finishReason\":",
    );
    push_json_str(&mut out.bytes, shape.finish_reason);
    out.bytes.extend_from_slice(b",\"index\":0}]");
    push_response_tail(&mut out.bytes, meta, |buf| push_usage(buf, shape.usage));
    frame.close(&mut out.bytes);
    frame.end(&mut out.bytes);
    out.end_event(EventKind::Finish);
    out
}

/// How the responses of a stream are delimited: SSE events, or elements of one JSON array.
struct Framing {
    sse: bool,
}

impl Framing {
    /// Before a response; the first one of an array opens it.
    fn open(&self, buf: &mut Vec<u8>) {
        let head: &[u8] = match (self.sse, buf.is_empty()) {
            (true, _) => b"data: ",
            (false, true) => b"[",
            (false, false) => b",\r\n",
        };
        buf.extend_from_slice(head);
    }

    fn close(&self, buf: &mut Vec<u8>) {
        if self.sse {
            buf.extend_from_slice(b"\r\n\r\n");
        }
    }

    /// After the last response.
    fn end(&self, buf: &mut Vec<u8>) {
        if !self.sse {
            buf.push(b']');
        }
    }
}

/// Stream faults as responses: one cut off inside its JSON, and the error object Google's
/// servers send when they fail mid-stream (which ends the stream).
impl FaultEvents for Framing {
    fn malformed(&self, buf: &mut Vec<u8>) {
        self.open(buf);
        buf.extend_from_slice(b"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":");
        self.close(buf);
    }

    fn error(&self, buf: &mut Vec<u8>) {
        self.open(buf);
        push_error(buf, 500, injected_message(500));
        self.close(buf);
        self.end(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::render::{Ending, Faults};
    use crate::mock::reply::ToolCall;

    const META: Meta = Meta {
        seq: 3,
        created: 0,
        model: "gemini-mock",
    };
    const USAGE: Usage = Usage {
        prompt: 20,
        cached: 8,
        completion: 30,
        reasoning: 5,
    };

    fn shape(faults: Faults) -> StreamShape<'static> {
        StreamShape {
            finish_reason: "STOP",
            usage: USAGE,
            faults,
        }
    }

    fn answer() -> Answer {
        Answer::with(
            "Think first.".into(),
            "Calling.".into(),
            vec![
                ToolCall::new("lookup".into(), r#"{"query":"weather in Paris"}"#.into()),
                ToolCall::new("clock".into(), "{}".into()),
            ],
            None,
        )
    }

    fn head(uri: &str) -> Parts {
        hyper::Request::post(uri).body(()).unwrap().into_parts().0
    }

    fn sse_chunks(bytes: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(bytes).unwrap();
        assert!(text.ends_with("\r\n\r\n"), "{text}");
        text.split_terminator("\r\n\r\n")
            .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            endpoint("/v1beta/models/gemini-2.5-flash:generateContent"),
            Some(("gemini-2.5-flash", false))
        );
        assert_eq!(
            endpoint("/v1beta/models/google/gemini-2.5-pro:streamGenerateContent"),
            Some(("google/gemini-2.5-pro", true))
        );
        assert_eq!(endpoint("/v1beta/models/x:countTokens"), None);
        assert_eq!(endpoint("/v1beta/models/:generateContent"), None);
        assert_eq!(endpoint("/v1/models/x:generateContent"), None);
    }

    #[test]
    fn request_parsing_and_its_errors() {
        let body = br#"{"systemInstruction":{"parts":[{"text":"Be brief."}]},
            "contents":[{"role":"user","parts":[{"text":"hi"},{"text":"there"}]},
                {"role":"model","parts":[{"functionCall":{"name":"f","args":{}}}]}],
            "generationConfig":{"maxOutputTokens":7,"thinkingConfig":{"thinkingBudget":1024,"includeThoughts":true}}}"#;
        let uri = "/v1beta/models/gem:streamGenerateContent?alt=sse&key=k";
        let prompt = parse(&head(uri), body).unwrap();
        assert_eq!(prompt.model, "gem");
        assert_eq!(prompt.delivery, Delivery::Events);
        assert!(prompt.show_thinking);
        assert_eq!(prompt.max_tokens, Some(7));
        assert_eq!(
            prompt.messages,
            [
                json!({"role": "system", "content": [{"type": "text", "text": "Be brief."}]}),
                json!({"role": "user", "content": [{"type": "text", "text": "hi"},
                    {"type": "text", "text": "there"}]}),
                json!({"role": "assistant", "content": [{"functionCall": {"name": "f", "args": {}}}]}),
            ]
        );
        assert_eq!(api_key(&head(uri)), Some("k"));
        let prompt = parse(
            &head("/v1beta/models/gem:generateContent"),
            br#"{"contents":[{"parts":[{"text":"x"}]}]}"#,
        )
        .unwrap();
        assert_eq!(prompt.delivery, Delivery::Whole);
        assert!(!prompt.show_thinking);
        let array = "/v1beta/models/gem:streamGenerateContent?key=k";
        let prompt = parse(&head(array), br#"{"contents":[{"parts":[]}]}"#).unwrap();
        assert_eq!(prompt.delivery, Delivery::Array);
        assert_eq!(prompt.max_tokens, None);
        let empty = parse(&head(uri), br#"{"contents":[]}"#).unwrap_err();
        assert!(matches!(empty, Reject::Invalid { message, .. } if message.contains("contents")));
        assert!(parse(&head(uri), b"[").is_err());
    }

    #[test]
    fn errors_have_the_api_shape() {
        let (code, body) = error(&Reject::ModelNotFound("nope".into()));
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(code, 404);
        assert_eq!(body["error"]["code"], 404);
        assert_eq!(body["error"]["status"], "NOT_FOUND");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("models/nope ")
        );
        for (reject, code, status) in [
            (
                Reject::Unauthorized { provided: true },
                401,
                "UNAUTHENTICATED",
            ),
            (Reject::Injected(400), 400, "INVALID_ARGUMENT"),
            (Reject::Injected(429), 429, "RESOURCE_EXHAUSTED"),
            (Reject::Injected(500), 500, "INTERNAL"),
            (Reject::Injected(503), 503, "UNAVAILABLE"),
        ] {
            let (got, body) = error(&reject);
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!((got, &body["error"]["status"]), (code, &json!(status)));
            assert_eq!(body["error"]["code"], code);
        }
    }

    #[test]
    fn response_shows_thoughts_only_when_asked() {
        let answer = answer();
        let render = |show| {
            let body = render_response(&META, &answer, "STOP", USAGE, show);
            serde_json::from_slice::<Value>(&body).unwrap()
        };
        let shown = render(true);
        let id = shown["responseId"].clone();
        assert_eq!(
            shown,
            json!({
                "candidates": [{"content": {"parts": [
                    {"text": "Think first.", "thought": true},
                    {"text": "Calling."},
                    {"functionCall": {"name": "lookup", "args": {"query": "weather in Paris"}},
                        "thoughtSignature": THOUGHT_SIGNATURE},
                    {"functionCall": {"name": "clock", "args": {}}}
                ], "role": "model"}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 25,
                    "totalTokenCount": 50, "cachedContentTokenCount": 8, "thoughtsTokenCount": 5},
                "modelVersion": "gemini-mock", "responseId": id
            })
        );
        let hidden = render(false);
        let parts = hidden["candidates"][0]["content"]["parts"]
            .as_array()
            .unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], json!({"text": "Calling."}));
        assert_eq!(hidden["usageMetadata"], shown["usageMetadata"]);

        let plain = Answer::with(String::new(), "Hi".into(), Vec::new(), None);
        let usage = Usage {
            cached: 0,
            reasoning: 0,
            ..USAGE
        };
        let body: Value =
            serde_json::from_slice(&render_response(&META, &plain, "STOP", usage, false)).unwrap();
        assert_eq!(
            body["usageMetadata"],
            json!({"promptTokenCount": 20, "candidatesTokenCount": 30, "totalTokenCount": 50})
        );
    }

    #[test]
    fn sse_stream_has_one_part_per_chunk_and_finishes_last() {
        let answer = answer();
        let out = render_stream(&META, &answer, &shape(Faults::default()), true, true);
        assert_eq!(out.ending, Ending::Complete);
        let chunks = sse_chunks(&out.bytes);
        // "Think", " first.", "Calling.", two calls, the finish.
        assert_eq!(chunks.len(), 6);
        let parts: Vec<&Value> = chunks
            .iter()
            .map(|c| {
                let parts = c["candidates"][0]["content"]["parts"].as_array().unwrap();
                assert_eq!(parts.len(), 1);
                assert_eq!(c["modelVersion"], "gemini-mock");
                &parts[0]
            })
            .collect();
        assert_eq!(parts[0], &json!({"text": "Think", "thought": true}));
        assert_eq!(parts[2], &json!({"text": "Calling."}));
        assert_eq!(parts[3]["thoughtSignature"], THOUGHT_SIGNATURE);
        assert_eq!(
            parts[4],
            &json!({"functionCall": {"name": "clock", "args": {}}})
        );
        for chunk in &chunks[..5] {
            assert!(chunk["candidates"][0].get("finishReason").is_none());
            assert_eq!(
                chunk["usageMetadata"],
                json!({"promptTokenCount": 20, "totalTokenCount": 20, "cachedContentTokenCount": 8})
            );
        }
        let last = &chunks[5];
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        let whole = render_response(&META, &answer, "STOP", USAGE, true);
        let whole: Value = serde_json::from_slice(&whole).unwrap();
        assert_eq!(last["usageMetadata"], whole["usageMetadata"]);

        let hidden = render_stream(&META, &answer, &shape(Faults::default()), false, true);
        assert_eq!(sse_chunks(&hidden.bytes).len(), 4);
    }

    #[test]
    fn array_stream_is_one_json_array() {
        let answer = answer();
        let out = render_stream(&META, &answer, &shape(Faults::default()), false, false);
        let array: Vec<Value> = serde_json::from_slice(&out.bytes).unwrap();
        assert_eq!(array.len(), 4);
        assert_eq!(array[3]["candidates"][0]["finishReason"], "STOP");

        let errored = render_stream(
            &META,
            &answer,
            &shape(Faults {
                error: Some(1),
                ..Faults::default()
            }),
            false,
            false,
        );
        let array: Vec<Value> = serde_json::from_slice(&errored.bytes).unwrap();
        assert_eq!(array.len(), 2);
        assert_eq!(array[1]["error"]["status"], "INTERNAL");
    }

    #[test]
    fn faults_in_an_sse_stream() {
        let answer = answer();
        let errored = render_stream(
            &META,
            &answer,
            &shape(Faults {
                error: Some(2),
                ..Faults::default()
            }),
            true,
            true,
        );
        assert_eq!(errored.ending, Ending::Errored);
        let chunks = sse_chunks(&errored.bytes);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[2]["error"]["code"], 500);

        let malformed = render_stream(
            &META,
            &answer,
            &shape(Faults {
                malformed: Some(0),
                ..Faults::default()
            }),
            true,
            true,
        );
        let text = std::str::from_utf8(&malformed.bytes).unwrap();
        let first = text.split("\r\n\r\n").next().unwrap();
        assert!(serde_json::from_str::<Value>(first.strip_prefix("data: ").unwrap()).is_err());
        assert_eq!(text.split_terminator("\r\n\r\n").count(), 7);
    }
}
