//! Messages streams: named events (`message_start`, content blocks, `message_delta`,
//! `message_stop`, `ping`, `error`) read into neutral events, and neutral events written as
//! such a stream for a client.

use std::borrow::Cow;
use std::io::Write as _;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{stop_fields, stop_reason, usage_json};
use crate::json::{Fields, quote, write_str};
use crate::sse;
use crate::translate::stream::{Decoder, Encoder, Event, write_event, write_raw};
use crate::translate::{StopReason, Usage};

#[derive(Deserialize)]
struct EventBody<'a> {
    #[serde(default)]
    message: Option<MessageStart>,
    #[serde(default)]
    index: Option<usize>,
    #[serde(borrow, default)]
    content_block: Option<BlockStart<'a>>,
    #[serde(borrow, default)]
    delta: Option<DeltaBody<'a>>,
    #[serde(default)]
    usage: Option<UsageBody>,
    #[serde(borrow, default)]
    error: Option<ErrorBody<'a>>,
}

#[derive(Deserialize)]
struct MessageStart {
    #[serde(default)]
    usage: Option<UsageBody>,
}

/// Usage as `message_start` and `message_delta` carry it; absent counts keep their value.
#[derive(Deserialize)]
struct UsageBody {
    #[serde(rename = "input_tokens")]
    input: Option<u64>,
    #[serde(rename = "output_tokens")]
    output: Option<u64>,
    #[serde(rename = "cache_read_input_tokens")]
    cache_read: Option<u64>,
    #[serde(rename = "cache_creation_input_tokens")]
    cache_write: Option<u64>,
}

#[derive(Deserialize)]
struct BlockStart<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    signature: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct DeltaBody<'a> {
    #[serde(borrow, rename = "type", default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    signature: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    stop_sequence: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow, rename = "type", default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}

/// What a provider's content block is, by its index.
enum Block {
    Text,
    Thinking,
    /// A tool call: its ordinal among the answer's calls, the `input` of its start (sent as the
    /// arguments when no `input_json_delta` follows), and whether arguments were sent.
    Tool {
        index: usize,
        input: String,
        sent: bool,
    },
    /// Server-tool blocks and kinds this version does not know: not carried.
    Other,
}

/// Reads a provider's Messages stream.
#[derive(Default)]
pub struct MessageDecoder {
    blocks: Vec<(usize, Block)>,
    tools: usize,
    usage: Usage,
}

impl Decoder for MessageDecoder {
    fn decode(
        &mut self,
        event: &sse::Event,
        out: &mut Vec<Event>,
    ) -> Result<(), serde_json::Error> {
        let name = event.event_type();
        if name == "ping" {
            return Ok(());
        }
        let body: EventBody = serde_json::from_str(&event.data)?;
        match name {
            "message_start" => {
                if let Some(usage) = body.message.and_then(|m| m.usage) {
                    self.merge(&usage);
                    out.push(Event::Usage(self.usage));
                }
            }
            "content_block_start" => {
                if let (Some(index), Some(block)) = (body.index, body.content_block) {
                    let block = self.start(block, out);
                    self.blocks.push((index, block));
                }
            }
            "content_block_delta" => {
                if let (Some(index), Some(delta)) = (body.index, body.delta) {
                    self.delta(index, delta, out);
                }
            }
            "content_block_stop" => {
                if let Some(Block::Tool { index, input, sent }) =
                    body.index.and_then(|i| self.block(i))
                {
                    if !*sent {
                        *sent = true;
                        out.push(Event::ToolArguments {
                            index: *index,
                            json: std::mem::take(input),
                        });
                    }
                }
            }
            "message_delta" => {
                if let Some(reason) = body
                    .delta
                    .and_then(|d| d.stop_reason.map(|r| (r, d.stop_sequence)))
                {
                    out.push(Event::Stop(stop_reason(&reason.0, reason.1)));
                }
                if let Some(usage) = body.usage {
                    self.merge(&usage);
                    out.push(Event::Usage(self.usage));
                }
            }
            "message_stop" => out.push(Event::Done),
            "error" => {
                let (kind, message) = body.error.map_or((None, None), |e| (e.kind, e.message));
                let kind = kind.unwrap_or(Cow::Borrowed("api_error"));
                out.push(Event::Error {
                    status: status_of(&kind),
                    message: message.map_or_else(|| kind.clone().into_owned(), Cow::into_owned),
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn relay(&self, event: &sse::Event, id: &str, model: &str, out: &mut Vec<u8>) {
        if event.event_type() != "message_start" {
            return write_raw(out, event);
        }
        let (id, model) = (quote(id), quote(model));
        write_event(out, Some("message_start"), |out| {
            let mark = out.len();
            if rewrite_start(&event.data, &id, &model, out).is_err() {
                out.truncate(mark);
                out.extend_from_slice(event.data.as_bytes());
            }
        });
    }
}

/// `message_start` with the message's `id` and `model` replaced (JSON literals).
fn rewrite_start(
    data: &str,
    id: &str,
    model: &str,
    out: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    let top: Fields = serde_json::from_str(data)?;
    let Some(message) = top.get("message") else {
        out.extend_from_slice(data.as_bytes());
        return Ok(());
    };
    let message: Fields = serde_json::from_str(message.get())?;
    let mut rewritten = Vec::with_capacity(message.0.iter().map(|(_, v)| v.get().len() + 16).sum());
    message.write_with(
        &mut rewritten,
        |key| match key {
            "id" => Some(Some(id)),
            "model" => Some(Some(model)),
            _ => None,
        },
        &[],
    );
    let rewritten = std::str::from_utf8(&rewritten).expect("JSON written from UTF-8 is UTF-8");
    top.write_with(
        out,
        |key| (key == "message").then_some(Some(rewritten)),
        &[],
    );
    Ok(())
}

impl MessageDecoder {
    fn merge(&mut self, usage: &UsageBody) {
        let u = &mut self.usage;
        u.input = usage.input.unwrap_or(u.input);
        u.output = usage.output.unwrap_or(u.output);
        u.cache_read = usage.cache_read.unwrap_or(u.cache_read);
        u.cache_write = usage.cache_write.unwrap_or(u.cache_write);
    }

    fn block(&mut self, index: usize) -> Option<&mut Block> {
        self.blocks
            .iter_mut()
            .rev()
            .find(|(i, _)| *i == index)
            .map(|(_, b)| b)
    }

    fn start(&mut self, block: BlockStart, out: &mut Vec<Event>) -> Block {
        match block.kind.as_ref() {
            "text" => {
                if let Some(text) = block.text.filter(|t| !t.is_empty()) {
                    out.push(Event::Text(text.into_owned()));
                }
                Block::Text
            }
            "thinking" => {
                if let Some(text) = block.thinking.filter(|t| !t.is_empty()) {
                    out.push(Event::Thinking(text.into_owned()));
                }
                if let Some(signature) = block.signature.filter(|s| !s.is_empty()) {
                    out.push(Event::Signature(signature.into_owned()));
                }
                Block::Thinking
            }
            "redacted_thinking" => {
                out.push(Event::RedactedThinking(
                    block.data.map(Cow::into_owned).unwrap_or_default(),
                ));
                Block::Other
            }
            "tool_use" => {
                let index = self.tools;
                self.tools += 1;
                out.push(Event::ToolCall {
                    index,
                    id: block.id.map(Cow::into_owned).unwrap_or_default(),
                    name: block.name.map(Cow::into_owned).unwrap_or_default(),
                });
                let input = block
                    .input
                    .map(RawValue::get)
                    .filter(|i| *i != "null")
                    .unwrap_or("{}");
                Block::Tool {
                    index,
                    input: input.to_owned(),
                    sent: false,
                }
            }
            _ => Block::Other,
        }
    }

    fn delta(&mut self, index: usize, delta: DeltaBody, out: &mut Vec<Event>) {
        let Some(block) = self.block(index) else {
            return;
        };
        match (block, delta.kind.as_deref()) {
            (Block::Text, Some("text_delta")) => {
                if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
                    out.push(Event::Text(text.into_owned()));
                }
            }
            (Block::Thinking, Some("thinking_delta")) => {
                if let Some(text) = delta.thinking.filter(|t| !t.is_empty()) {
                    out.push(Event::Thinking(text.into_owned()));
                }
            }
            (Block::Thinking, Some("signature_delta")) => {
                if let Some(signature) = delta.signature.filter(|s| !s.is_empty()) {
                    out.push(Event::Signature(signature.into_owned()));
                }
            }
            (Block::Tool { index, sent, .. }, Some("input_json_delta")) => {
                if let Some(json) = delta.partial_json.filter(|j| !j.is_empty()) {
                    *sent = true;
                    out.push(Event::ToolArguments {
                        index: *index,
                        json: json.into_owned(),
                    });
                }
            }
            _ => {}
        }
    }
}

/// The HTTP status an Anthropic error type stands for.
fn status_of(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        _ => 500,
    }
}

/// The Anthropic error type for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

/// `{"type":"error","error":{"type":…,"message":…}}`, Anthropic's error body.
pub fn error_json(out: &mut Vec<u8>, status: u16, message: &str) {
    out.extend_from_slice(b"{\"type\":\"error\",\"error\":{\"type\":\"");
    out.extend_from_slice(error_type(status).as_bytes());
    out.extend_from_slice(b"\",\"message\":");
    write_str(out, message);
    out.extend_from_slice(b"}}");
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    Tool(usize),
}

/// Writes a Messages stream for a client. `message_start` waits for the first event so a
/// provider's early usage (its own `message_start`) is in it; otherwise it carries the local
/// estimate of the input, and `message_delta` the provider's final counts.
pub struct MessageEncoder {
    id: String,
    model: String,
    estimated_input: u64,
    started: bool,
    /// The open content block and its index.
    open: Option<(usize, Open)>,
    next_block: usize,
    /// Block index of each tool call, by the call's index.
    tool_blocks: Vec<(usize, usize)>,
    stop: Option<StopReason>,
    usage: Option<Usage>,
}

impl MessageEncoder {
    pub fn new(id: &str, model: &str, estimated_input: u64) -> Self {
        Self {
            id: id.to_owned(),
            model: model.to_owned(),
            estimated_input,
            started: false,
            open: None,
            next_block: 0,
            tool_blocks: Vec::new(),
            stop: None,
            usage: None,
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        let usage = self.usage.unwrap_or(Usage {
            input: self.estimated_input,
            ..Usage::default()
        });
        let message = serde_json::json!({
            "type": "message_start",
            "message": {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage_json(&usage),
            },
        });
        write_event(out, Some("message_start"), |out| {
            serde_json::to_writer(&mut *out, &message).expect("writing to a Vec cannot fail");
        });
        write_event(out, Some("ping"), |out| {
            out.extend_from_slice(b"{\"type\": \"ping\"}");
        });
    }

    /// Make `kind` the open block, closing another one first; returns its index and whether
    /// it was opened just now.
    fn open(&mut self, kind: Open, out: &mut Vec<u8>) -> (usize, bool) {
        if let Some((index, open)) = self.open {
            if open == kind {
                return (index, false);
            }
            self.close(out);
        }
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some((index, kind));
        (index, true)
    }

    /// The open text or thinking block, started (empty, as Messages starts them) unless it is
    /// the one already open.
    fn delta_block(&mut self, kind: Open, out: &mut Vec<u8>) -> usize {
        let (index, new) = self.open(kind, out);
        if new {
            let empty: &[u8] = match kind {
                Open::Text => b"{\"type\":\"text\",\"text\":\"\"}",
                _ => b"{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}",
            };
            Self::block_start(out, index, |out| out.extend_from_slice(empty));
        }
        index
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open.take() {
            write_event(out, Some("content_block_stop"), |out| {
                write!(out, "{{\"type\":\"content_block_stop\",\"index\":{index}}}")
                    .expect("a Vec takes every write");
            });
        }
    }

    fn block_start(out: &mut Vec<u8>, index: usize, block: impl FnOnce(&mut Vec<u8>)) {
        write_event(out, Some("content_block_start"), |out| {
            write!(
                out,
                "{{\"type\":\"content_block_start\",\"index\":{index},\"content_block\":"
            )
            .expect("a Vec takes every write");
            block(out);
            out.push(b'}');
        });
    }

    fn block_delta(out: &mut Vec<u8>, index: usize, kind: &str, field: &str, value: &str) {
        write_event(out, Some("content_block_delta"), |out| {
            write!(
                out,
                "{{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":{{\"type\":\"{kind}\",\"{field}\":"
            )
            .expect("a Vec takes every write");
            write_str(out, value);
            out.extend_from_slice(b"}}");
        });
    }
}

impl Encoder for MessageEncoder {
    fn encode(&mut self, event: &Event, out: &mut Vec<u8>) {
        if let Event::Usage(usage) = event {
            self.usage = Some(*usage);
            return;
        }
        if !matches!(event, Event::Error { .. }) {
            self.start(out);
        }
        match event {
            Event::Text(text) => {
                let index = self.delta_block(Open::Text, out);
                Self::block_delta(out, index, "text_delta", "text", text);
            }
            Event::Thinking(text) => {
                let index = self.delta_block(Open::Thinking, out);
                Self::block_delta(out, index, "thinking_delta", "thinking", text);
            }
            Event::Signature(signature) => {
                let index = self.delta_block(Open::Thinking, out);
                Self::block_delta(out, index, "signature_delta", "signature", signature);
                // A signature ends its thinking block.
                self.close(out);
            }
            Event::RedactedThinking(data) => {
                self.close(out);
                let index = self.next_block;
                self.next_block += 1;
                Self::block_start(out, index, |out| {
                    out.extend_from_slice(b"{\"type\":\"redacted_thinking\",\"data\":");
                    write_str(out, data);
                    out.push(b'}');
                });
                self.open = Some((index, Open::Thinking));
                self.close(out);
            }
            Event::ToolCall { index, id, name } => {
                self.close(out);
                let (block, _) = self.open(Open::Tool(*index), out);
                self.tool_blocks.push((*index, block));
                Self::block_start(out, block, |out| {
                    out.extend_from_slice(b"{\"type\":\"tool_use\",\"id\":");
                    write_str(out, id);
                    out.extend_from_slice(b",\"name\":");
                    write_str(out, name);
                    out.extend_from_slice(b",\"input\":{}}");
                });
            }
            Event::ToolArguments { index, json } => {
                // Parallel calls may interleave their arguments; each delta names its block.
                if let Some(&(_, block)) = self.tool_blocks.iter().find(|(i, _)| i == index) {
                    Self::block_delta(out, block, "input_json_delta", "partial_json", json);
                }
            }
            Event::Stop(stop) => self.stop = Some(stop.clone()),
            Event::Usage(_) => {}
            Event::Error { status, message } => {
                write_event(out, Some("error"), |out| error_json(out, *status, message));
            }
            Event::Done => {
                self.close(out);
                let stop = self.stop.take().unwrap_or(StopReason::EndTurn);
                let (reason, sequence) = stop_fields(Some(&stop));
                let usage = self.usage.unwrap_or(Usage {
                    input: self.estimated_input,
                    ..Usage::default()
                });
                let delta = serde_json::json!({
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": sequence},
                    "usage": usage_json(&usage),
                });
                write_event(out, Some("message_delta"), |out| {
                    serde_json::to_writer(&mut *out, &delta).expect("writing to a Vec cannot fail");
                });
                write_event(out, Some("message_stop"), |out| {
                    out.extend_from_slice(b"{\"type\":\"message_stop\"}");
                });
            }
        }
    }
}
