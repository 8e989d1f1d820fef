//! Gemini streams: every event a whole `GenerateContentResponse` holding the next parts, read
//! into neutral events, and neutral events written as such responses for a client — SSE events
//! (`alt=sse`) or the elements of one JSON array (without it). There is no end marker: the last
//! response carries the finish reason and the body ends.

use std::borrow::Cow;
use std::io::Write as _;

use serde::Deserialize;

use super::{
    CallBody, Calls, PartBody, ResponseBody, answer_calls, call_args, finish_reason, stop_reason,
    usage_json,
};
use crate::json::{Fields, quote, write_str};
use crate::sse;
use crate::translate::stream::{Decoder, Encoder, Event, write_event, write_raw};
use crate::translate::{StopReason, Usage};

#[derive(Deserialize)]
struct ErrorBody<'a> {
    code: Option<u64>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
}

/// Reads a provider's Gemini stream (the first candidate).
#[derive(Default)]
pub struct GeminiDecoder {
    /// Ids for the answer's calls, once the first response named the answer.
    calls: Option<Calls>,
    /// A thought summary is being read and has no signature yet.
    thinking: bool,
    /// A finish reason arrived: the answer is complete when the body ends.
    finished: bool,
}

impl Decoder for GeminiDecoder {
    fn decode(
        &mut self,
        event: &sse::Event,
        out: &mut Vec<Event>,
    ) -> Result<(), serde_json::Error> {
        let body: ResponseBody = serde_json::from_str(&event.data)?;
        if let Some(raw) = body.error {
            let error: ErrorBody = serde_json::from_str(raw.get())?;
            let status = error
                .code
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| (400..600).contains(c))
                .unwrap_or(500);
            out.push(Event::Error {
                status,
                message: error.message.map_or_else(
                    || "the provider reported an error".to_owned(),
                    Cow::into_owned,
                ),
            });
            return Ok(());
        }
        let calls = self
            .calls
            .get_or_insert_with(|| answer_calls(body.response_id.as_deref()));
        // Usage first: a client's stream that opens with the usage (Messages) gets the
        // provider's prompt count rather than an estimate.
        if let Some(usage) = &body.usage_metadata {
            out.push(Event::Usage(usage.neutral()));
        }
        let Some(candidate) = body.candidates.and_then(|c| c.into_iter().next()) else {
            if body
                .prompt_feedback
                .is_some_and(|f| f.block_reason.is_some())
            {
                self.finished = true;
                out.push(Event::Stop(StopReason::Refusal));
            }
            return Ok(());
        };
        for raw in candidate.content.and_then(|c| c.parts).unwrap_or_default() {
            let part: PartBody = serde_json::from_str(raw.get())?;
            self.thinking = part_events(part, calls, self.thinking, out)?;
        }
        if let Some(reason) = candidate.finish_reason {
            self.finished = true;
            out.push(Event::Stop(stop_reason(&reason, !calls.made.is_empty())));
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<Event>) {
        if self.finished {
            out.push(Event::Done);
        }
    }

    fn relay(&self, event: &sse::Event, id: &str, model: &str, out: &mut Vec<u8>) {
        let Ok(fields) = serde_json::from_str::<Fields>(&event.data) else {
            return write_raw(out, event);
        };
        let (id, model) = (quote(id), quote(model));
        write_event(out, None, |out| {
            fields.write_with(
                out,
                |key| match key {
                    "responseId" => Some(Some(id.as_str())),
                    "modelVersion" => Some(Some(model.as_str())),
                    _ => None,
                },
                &[],
            );
        });
    }
}

/// One part's events; returns whether a thought summary is left open (unsigned).
fn part_events(
    part: PartBody,
    calls: &mut Calls,
    mut thinking: bool,
    out: &mut Vec<Event>,
) -> Result<bool, serde_json::Error> {
    let signature = part.thought_signature.filter(|s| !s.is_empty());
    if part.thought == Some(true) {
        if let Some(text) = part.text.filter(|t| !t.is_empty()) {
            out.push(Event::Thinking(text));
            thinking = true;
        }
        if let Some(signature) = signature {
            out.push(Event::Signature(signature));
            thinking = false;
        }
        return Ok(thinking);
    }
    if let Some(signature) = signature {
        // This signature belongs to the part it came on, not to the open summary: the summary
        // is closed first, with the empty signature that reads back as none.
        if thinking {
            out.push(Event::Signature(String::new()));
        }
        out.push(Event::Signature(signature));
        thinking = false;
    }
    if let Some(text) = part.text.filter(|t| !t.is_empty()) {
        out.push(Event::Text(text));
        thinking = false;
    }
    if let Some(raw) = part.function_call {
        let call: CallBody = serde_json::from_str(raw.get())?;
        let name = call.name.unwrap_or_default();
        let index = calls.made.len();
        let id = calls.call(call.id, &name);
        let json = call
            .args
            .map(serde_json::value::RawValue::get)
            .filter(|a| *a != "null")
            .unwrap_or("{}")
            .to_owned();
        out.push(Event::ToolCall { index, id, name });
        out.push(Event::ToolArguments { index, json });
        thinking = false;
    }
    Ok(thinking)
}

/// The Google status name for an HTTP status, as in Google's error bodies.
pub fn error_status(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 | 529 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        400..=499 => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}

/// `{"error":{"code":…,"message":…,"status":…}}`, Google's error body.
pub fn error_json(out: &mut Vec<u8>, status: u16, message: &str) {
    write!(out, "{{\"error\":{{\"code\":{status},\"message\":").expect("a Vec takes every write");
    write_str(out, message);
    out.extend_from_slice(b",\"status\":\"");
    out.extend_from_slice(error_status(status).as_bytes());
    out.extend_from_slice(b"\"}}");
}

/// Writes a Gemini stream for a client, one response per neutral content event.
///
/// Thinking goes as thought parts; a signature as an empty thought part of its own right after
/// them, which decoding the client's next request folds back into the thought it closes. A tool
/// call goes whole, as Gemini sends one, when its arguments are complete (at the next content
/// event, or in the last response); arguments that are not a JSON object go as a string under
/// `_raw` rather than lost. The finish reason and usage wait for the last response.
pub struct GeminiEncoder {
    /// `,"modelVersion":…,"responseId":…}`, rendered once: every response ends with it.
    tail: Vec<u8>,
    sse: bool,
    started: bool,
    /// The stream was ended (done or failed); nothing more is written.
    closed: bool,
    /// Calls whose arguments are still arriving: index, name, arguments so far.
    calls: Vec<(usize, String, String)>,
    stop: Option<StopReason>,
    usage: Option<Usage>,
}

impl GeminiEncoder {
    pub fn new(id: &str, model: &str, sse: bool) -> Self {
        let mut tail = Vec::with_capacity(48 + id.len() + model.len());
        tail.extend_from_slice(b",\"modelVersion\":");
        write_str(&mut tail, model);
        tail.extend_from_slice(b",\"responseId\":");
        write_str(&mut tail, id);
        tail.push(b'}');
        Self {
            tail,
            sse,
            started: false,
            closed: false,
            calls: Vec::new(),
            stop: None,
            usage: None,
        }
    }

    /// Frame one response: an SSE event, or the array's next element (Google separates them
    /// with `,\r\n`).
    fn response(&mut self, out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
        if self.sse {
            out.extend_from_slice(b"data: ");
        } else if self.started {
            out.extend_from_slice(b",\r\n");
        } else {
            out.push(b'[');
        }
        self.started = true;
        body(out);
        if self.sse {
            out.extend_from_slice(b"\n\n");
        }
    }

    /// A response whose candidate holds the parts `parts` writes (array members); the last
    /// one also gets the finish reason and usage.
    fn chunk(
        &mut self,
        out: &mut Vec<u8>,
        last: Option<(&str, Option<Usage>)>,
        parts: impl FnOnce(&mut Vec<u8>),
    ) {
        let tail = std::mem::take(&mut self.tail);
        self.response(out, |out| {
            out.extend_from_slice(b"{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[");
            parts(out);
            out.extend_from_slice(b"]}");
            if let Some((reason, _)) = last {
                write!(out, ",\"finishReason\":\"{reason}\"").expect("a Vec takes every write");
            }
            out.extend_from_slice(b",\"index\":0}]");
            if let Some((_, Some(usage))) = last {
                out.extend_from_slice(b",\"usageMetadata\":");
                serde_json::to_writer(&mut *out, &usage_json(&usage))
                    .expect("writing to a Vec cannot fail");
            }
            out.extend_from_slice(&tail);
        });
        self.tail = tail;
    }

    /// The pending calls as `functionCall` parts, written into `out`.
    fn call_parts(calls: &[(usize, String, String)], out: &mut Vec<u8>) {
        for (i, (_, name, arguments)) in calls.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let args = call_args(arguments).unwrap_or_else(|kept| kept);
            out.extend_from_slice(b"{\"functionCall\":{\"name\":");
            write_str(out, name);
            out.extend_from_slice(b",\"args\":");
            serde_json::to_writer(&mut *out, &args).expect("writing to a Vec cannot fail");
            out.extend_from_slice(b"}}");
        }
    }

    /// Write the calls whose arguments are complete, before other content follows them.
    fn flush_calls(&mut self, out: &mut Vec<u8>) {
        if self.calls.is_empty() {
            return;
        }
        let calls = std::mem::take(&mut self.calls);
        self.chunk(out, None, |out| Self::call_parts(&calls, out));
    }
}

impl Encoder for GeminiEncoder {
    fn encode(&mut self, event: &Event, out: &mut Vec<u8>) {
        if self.closed {
            return;
        }
        match event {
            Event::Text(text) => {
                self.flush_calls(out);
                self.chunk(out, None, |out| {
                    out.extend_from_slice(b"{\"text\":");
                    write_str(out, text);
                    out.push(b'}');
                });
            }
            Event::Thinking(text) => {
                self.flush_calls(out);
                self.chunk(out, None, |out| {
                    out.extend_from_slice(b"{\"text\":");
                    write_str(out, text);
                    out.extend_from_slice(b",\"thought\":true}");
                });
            }
            // An empty signature only closes an unsigned block: nothing to carry.
            Event::Signature(signature) if signature.is_empty() => {}
            Event::Signature(signature) => {
                self.flush_calls(out);
                self.chunk(out, None, |out| {
                    out.extend_from_slice(b"{\"text\":\"\",\"thought\":true,\"thoughtSignature\":");
                    write_str(out, signature);
                    out.push(b'}');
                });
            }
            // Another provider's encrypted reasoning has no form in Gemini.
            Event::RedactedThinking(_) => {}
            Event::ToolCall { index, name, .. } => {
                self.calls.push((*index, name.clone(), String::new()));
            }
            Event::ToolArguments { index, json } => {
                if let Some((_, _, arguments)) = self.calls.iter_mut().find(|(i, ..)| i == index) {
                    arguments.push_str(json);
                }
            }
            Event::Stop(stop) => self.stop = Some(stop.clone()),
            Event::Usage(usage) => self.usage = Some(*usage),
            Event::Error { status, message } => {
                self.closed = true;
                self.response(out, |out| error_json(out, *status, message));
                if !self.sse {
                    out.push(b']');
                }
            }
            Event::Done => {
                self.closed = true;
                let calls = std::mem::take(&mut self.calls);
                let reason = finish_reason(self.stop.as_ref().unwrap_or(&StopReason::EndTurn));
                self.chunk(out, Some((reason, self.usage)), |out| {
                    if calls.is_empty() {
                        // Gemini's last response holds a part even when it has nothing to add.
                        out.extend_from_slice(b"{\"text\":\"\"}");
                    } else {
                        Self::call_parts(&calls, out);
                    }
                });
                if !self.sse {
                    out.push(b']');
                }
            }
        }
    }
}
