//! Chat Completions streams: `chat.completion.chunk` events read into neutral events, and
//! neutral events written as chunks, ending with the usage chunk (when asked for) and `[DONE]`.

use std::borrow::Cow;
use std::io::Write as _;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{UsageBody, finish_reason, stop_reason};
use crate::json::write_str;
use crate::sse;
use crate::translate::stream::{Decoder, Encoder, Event, write_event};
use crate::translate::{StopReason, Usage};

/// The `format` ZenMux gives reasoning details that came from Anthropic models.
const REASONING_FORMAT: &str = "anthropic-claude-v1";

#[derive(Deserialize)]
struct ChunkBody<'a> {
    #[serde(borrow, default)]
    choices: Option<Vec<ChoiceBody<'a>>>,
    #[serde(default)]
    usage: Option<UsageBody>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ChoiceBody<'a> {
    #[serde(borrow, default)]
    delta: Option<DeltaBody<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct DeltaBody<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_details: Option<Vec<DetailBody<'a>>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCallDelta<'a>>>,
}

#[derive(Deserialize)]
struct DetailBody<'a> {
    #[serde(borrow, rename = "type", default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    signature: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ToolCallDelta<'a> {
    #[serde(default)]
    index: Option<usize>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(default)]
    code: Option<serde_json::Value>,
}

/// Reads a provider's Chat Completions stream (the first choice: other protocols have no `n`).
#[derive(Default)]
pub struct ChunkDecoder {
    /// Tool calls announced so far, by the provider's index.
    started: Vec<usize>,
}

impl Decoder for ChunkDecoder {
    fn decode(
        &mut self,
        event: &sse::Event,
        out: &mut Vec<Event>,
    ) -> Result<(), serde_json::Error> {
        if event.data == "[DONE]" {
            out.push(Event::Done);
            return Ok(());
        }
        let chunk: ChunkBody = serde_json::from_str(&event.data)?;
        if let Some(raw) = chunk.error {
            let error: ErrorBody = serde_json::from_str(raw.get()).unwrap_or(ErrorBody {
                message: None,
                code: None,
            });
            let status = match error.code.as_ref().and_then(status_of) {
                Some(s) if s >= 400 => s,
                _ => 500,
            };
            out.push(Event::Error {
                status,
                message: error.message.map_or_else(
                    || "the provider reported an error".to_owned(),
                    Cow::into_owned,
                ),
            });
            return Ok(());
        }
        if let Some(choice) = chunk.choices.and_then(|c| c.into_iter().next()) {
            if let Some(delta) = choice.delta {
                self.delta(delta, out);
            }
            if let Some(reason) = choice.finish_reason {
                out.push(Event::Stop(stop_reason(&reason)));
            }
        }
        if let Some(usage) = chunk.usage {
            out.push(Event::Usage(usage.neutral()));
        }
        Ok(())
    }
}

/// An error `code` as an HTTP status, when it is one (`429`, `"429"`).
fn status_of(code: &serde_json::Value) -> Option<u16> {
    match code {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

impl ChunkDecoder {
    fn delta(&mut self, delta: DeltaBody, out: &mut Vec<Event>) {
        // Reasoning details carry the text and its signature; the plain fields repeat the text
        // for clients that only read those, so they count only when no detail has text.
        let mut detail_text = false;
        for detail in delta.reasoning_details.iter().flatten() {
            if detail.kind.as_deref() == Some("reasoning.encrypted") {
                if let Some(data) = &detail.data {
                    out.push(Event::RedactedThinking(data.to_string()));
                }
                continue;
            }
            if let Some(text) = detail.text.as_deref().filter(|t| !t.is_empty()) {
                detail_text = true;
                out.push(Event::Thinking(text.to_owned()));
            }
            if let Some(signature) = detail.signature.as_deref().filter(|s| !s.is_empty()) {
                out.push(Event::Signature(signature.to_owned()));
            }
        }
        if !detail_text
            && let Some(text) = delta.reasoning.or(delta.reasoning_content)
            && !text.is_empty()
        {
            out.push(Event::Thinking(text.into_owned()));
        }
        for text in [delta.content, delta.refusal].into_iter().flatten() {
            if !text.is_empty() {
                out.push(Event::Text(text.into_owned()));
            }
        }
        for call in delta.tool_calls.into_iter().flatten() {
            let index = call.index.unwrap_or(0);
            let (name, arguments) = call
                .function
                .map_or((None, None), |f| (f.name, f.arguments));
            if !self.started.contains(&index) {
                self.started.push(index);
                out.push(Event::ToolCall {
                    index,
                    id: call
                        .id
                        .map_or_else(|| format!("call_{index}"), Cow::into_owned),
                    name: name.map(Cow::into_owned).unwrap_or_default(),
                });
            }
            if let Some(arguments) = arguments.filter(|a| !a.is_empty()) {
                out.push(Event::ToolArguments {
                    index,
                    json: arguments.into_owned(),
                });
            }
        }
    }
}

/// Writes Chat Completions chunks for a client. Stop and usage wait for the end of the answer
/// only as far as OpenAI orders them: the finish chunk goes out at once, the usage chunk (when
/// the client asked for it) just before `[DONE]`.
pub struct ChunkEncoder {
    /// `{"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":[`, rendered
    /// once.
    prefix: Vec<u8>,
    include_usage: bool,
    role_sent: bool,
    stopped: bool,
    usage: Option<Usage>,
    /// Reasoning blocks begun so far, and the one being written (its index among them).
    thinking_blocks: usize,
    thinking: Option<usize>,
}

impl ChunkEncoder {
    pub fn new(id: &str, model: &str, created: u64, include_usage: bool) -> Self {
        let mut prefix = Vec::with_capacity(96 + model.len());
        prefix.extend_from_slice(b"{\"id\":");
        write_str(&mut prefix, id);
        write!(
            prefix,
            ",\"object\":\"chat.completion.chunk\",\"created\":{created},\"model\":"
        )
        .expect("a Vec takes every write");
        write_str(&mut prefix, model);
        prefix.extend_from_slice(b",\"choices\":[");
        Self {
            prefix,
            include_usage,
            role_sent: false,
            stopped: false,
            usage: None,
            thinking_blocks: 0,
            thinking: None,
        }
    }

    /// One chunk whose delta is what `delta` writes (the members, without braces).
    fn chunk(&mut self, out: &mut Vec<u8>, delta: impl FnOnce(&mut Vec<u8>)) {
        let role = !std::mem::replace(&mut self.role_sent, true);
        let prefix = &self.prefix;
        write_event(out, None, |out| {
            out.extend_from_slice(prefix);
            out.extend_from_slice(b"{\"index\":0,\"delta\":{");
            if role {
                out.extend_from_slice(b"\"role\":\"assistant\",");
            }
            delta(out);
            out.extend_from_slice(b"},\"finish_reason\":null}]}");
        });
    }

    fn finish_chunk(&mut self, stop: &StopReason, out: &mut Vec<u8>) {
        self.stopped = true;
        let prefix = &self.prefix;
        write_event(out, None, |out| {
            out.extend_from_slice(prefix);
            out.extend_from_slice(b"{\"index\":0,\"delta\":{},\"finish_reason\":\"");
            out.extend_from_slice(finish_reason(stop).as_bytes());
            out.extend_from_slice(b"\"}]}");
        });
    }

    /// The index of the thinking block being written, begun now if none is.
    fn thinking_index(&mut self) -> usize {
        *self.thinking.get_or_insert_with(|| {
            self.thinking_blocks += 1;
            self.thinking_blocks - 1
        })
    }

    fn reasoning_detail(&mut self, out: &mut Vec<u8>, field: &str, value: &str) {
        let index = self.thinking_index();
        out.extend_from_slice(b"\"reasoning_details\":[{\"type\":\"reasoning.text\",\"");
        out.extend_from_slice(field.as_bytes());
        out.extend_from_slice(b"\":");
        write_str(out, value);
        write!(
            out,
            ",\"format\":\"{REASONING_FORMAT}\",\"index\":{index}}}]"
        )
        .expect("a Vec takes every write");
    }
}

impl Encoder for ChunkEncoder {
    fn encode(&mut self, event: &Event, out: &mut Vec<u8>) {
        if !matches!(event, Event::Thinking(_) | Event::Signature(_)) {
            self.thinking = None;
        }
        match event {
            Event::Text(text) => self.chunk(out, |out| {
                out.extend_from_slice(b"\"content\":");
                write_str(out, text);
            }),
            Event::Thinking(text) => {
                let mut body = Vec::with_capacity(text.len() * 2 + 96);
                body.extend_from_slice(b"\"reasoning\":");
                write_str(&mut body, text);
                body.push(b',');
                self.reasoning_detail(&mut body, "text", text);
                self.chunk(out, |out| out.extend_from_slice(&body));
            }
            Event::Signature(signature) => {
                let mut body = Vec::with_capacity(signature.len() + 96);
                self.reasoning_detail(&mut body, "signature", signature);
                self.chunk(out, |out| out.extend_from_slice(&body));
                // A signature ends its block.
                self.thinking = None;
            }
            Event::RedactedThinking(data) => {
                let index = self.thinking_blocks;
                self.thinking_blocks += 1;
                self.chunk(out, |out| {
                    out.extend_from_slice(
                        b"\"reasoning_details\":[{\"type\":\"reasoning.encrypted\",\"data\":",
                    );
                    write_str(out, data);
                    write!(
                        out,
                        ",\"format\":\"{REASONING_FORMAT}\",\"index\":{index}}}]"
                    )
                    .expect("a Vec takes every write");
                });
            }
            Event::ToolCall { index, id, name } => self.chunk(out, |out| {
                write!(out, "\"tool_calls\":[{{\"index\":{index},\"id\":")
                    .expect("a Vec takes every write");
                write_str(out, id);
                out.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
                write_str(out, name);
                out.extend_from_slice(b",\"arguments\":\"\"}}]");
            }),
            Event::ToolArguments { index, json } => self.chunk(out, |out| {
                write!(
                    out,
                    "\"tool_calls\":[{{\"index\":{index},\"function\":{{\"arguments\":"
                )
                .expect("a Vec takes every write");
                write_str(out, json);
                out.extend_from_slice(b"}}]");
            }),
            Event::Stop(stop) => {
                if !self.stopped {
                    self.finish_chunk(stop, out);
                }
            }
            Event::Usage(usage) => self.usage = Some(*usage),
            // No `event:` name: OpenAI clients raise on any data event with an `error` member.
            Event::Error { status, message } => write_event(out, None, |out| {
                let kind = match status {
                    429 => "rate_limit",
                    504 => "provider_timeout",
                    _ => "provider_error",
                };
                write!(
                    out,
                    "{{\"error\":{{\"code\":\"{status}\",\"type\":\"{kind}\",\"message\":"
                )
                .expect("a Vec takes every write");
                write_str(out, message);
                out.extend_from_slice(b"}}");
            }),
            Event::Done => {
                if !self.stopped {
                    self.finish_chunk(&StopReason::EndTurn, out);
                }
                if self.include_usage {
                    let usage = super::usage_json(&self.usage.unwrap_or_default());
                    let prefix = &self.prefix;
                    write_event(out, None, |out| {
                        out.extend_from_slice(prefix);
                        out.extend_from_slice(b"],\"usage\":");
                        serde_json::to_writer(&mut *out, &usage)
                            .expect("writing to a Vec cannot fail");
                        out.push(b'}');
                    });
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
            }
        }
    }
}
