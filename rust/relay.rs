//! Relay of OpenAI chat-completions responses, one synchronous call per upstream read.
//!
//! Each call parses the read's SSE events, rewrites `id` to our generation id and `model` back
//! to the slug the client asked for, pulls out usage, finish reason and output text (for the
//! local count when usage never arrives), stamps token timings, and hands back the bytes to
//! write. Usage is always forced on upstream for metering; the relay strips it again when the
//! client did not ask for it, so the client sees exactly what OpenAI would have sent.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer as _, SeqAccess, Visitor};

use crate::json::Fields;
use crate::sse;

/// Token usage as the provider reported it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
    pub cached: u64,
    pub reasoning: u64,
}

/// One tool call of an answer, its arguments as they arrived (JSON text).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ToolCall {
    pub name: String,
    pub arguments: String,
}

/// What the relay learned about a response, for the usage event (the local count when usage
/// never arrives) and the insurance checks (which look at text, reasoning and calls apart).
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
    /// Visible text: content and refusals.
    pub text: String,
    pub reasoning: String,
    /// Tool calls by their index in the answer.
    pub tool_calls: Vec<ToolCall>,
    pub first_token_at: Option<Instant>,
    pub last_token_at: Option<Instant>,
    /// Chunks that carried output.
    pub token_chunks: u32,
    /// Longest pause between two output chunks.
    pub max_gap: Duration,
    /// Events that were not valid JSON and had to be dropped.
    pub malformed_events: u32,
    /// Valid events the provider sent, its error events aside: until the first, a broken
    /// stream is a failure to route around rather than one to report.
    pub events: u32,
    /// A malformed event came before the first valid one.
    pub malformed_first: bool,
    /// The upstream sent `[DONE]` (streams) or a complete body (JSON).
    pub completed: bool,
    /// An error the upstream reported inside a 200 response.
    pub upstream_error: Option<String>,
}

impl Observed {
    /// The call at `index`, created (with those before it) on its first piece.
    pub fn tool_call(&mut self, index: usize) -> &mut ToolCall {
        if self.tool_calls.len() <= index {
            self.tool_calls.resize_with(index + 1, ToolCall::default);
        }
        &mut self.tool_calls[index]
    }

    /// Every piece of output text, for the local token count.
    pub fn output_pieces(&self) -> impl Iterator<Item = &str> {
        [self.text.as_str(), self.reasoning.as_str()]
            .into_iter()
            .chain(
                self.tool_calls
                    .iter()
                    .flat_map(|c| [c.name.as_str(), c.arguments.as_str()]),
            )
    }
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(borrow, default)]
    delta: Option<MessageView<'a>>,
    #[serde(borrow, default)]
    message: Option<MessageView<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MessageView<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCallView<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallView<'a> {
    /// Streamed calls say which call a piece belongs to; a complete message lists them in order.
    #[serde(default)]
    index: Option<usize>,
    #[serde(borrow, default)]
    function: Option<FunctionView<'a>>,
}

#[derive(Deserialize)]
struct FunctionView<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct UsageView {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ErrorView<'a> {
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}

/// What became of one rewritten object.
#[derive(Debug, PartialEq, Eq)]
enum Rewritten {
    /// A usage-only chunk the client did not ask for.
    Dropped,
    Written,
    /// Written, and it carries usage the client will see.
    WrittenWithUsage,
}

/// Rewrites one response object (a chunk or a whole JSON response) into `out` and records what
/// it carries.
struct Rewriter {
    /// `id` and `model` as JSON literals, quoted once per response rather than per chunk.
    id_json: String,
    model_json: String,
    keep_usage: bool,
}

impl Rewriter {
    fn new(generation_id: &str, client_model: &str, keep_usage: bool) -> Self {
        Self {
            id_json: crate::json::quote(generation_id),
            model_json: crate::json::quote(client_model),
            keep_usage,
        }
    }

    fn rewrite(
        &self,
        json: &str,
        now: Instant,
        seen: &mut Observed,
        out: &mut Vec<u8>,
    ) -> Result<Rewritten, serde_json::Error> {
        let top: Fields = serde_json::from_str(json)?;
        let mut choices_empty = false;
        let mut has_usage = false;
        for (key, value) in &top.0 {
            match key.as_ref() {
                "choices" => {
                    let mut record = RecordChoices {
                        now,
                        seen,
                        count: 0,
                    };
                    let mut de = serde_json::Deserializer::from_str(value.get());
                    de.deserialize_seq(&mut record)?;
                    de.end()?;
                    choices_empty = record.count == 0;
                }
                "usage" if value.get() != "null" => {
                    let usage: UsageView = serde_json::from_str(value.get())?;
                    has_usage = true;
                    seen.usage = Some(Usage {
                        prompt: usage.prompt_tokens,
                        completion: usage.completion_tokens,
                        cached: usage
                            .prompt_tokens_details
                            .and_then(|d| d.cached_tokens)
                            .unwrap_or(0),
                        reasoning: usage
                            .completion_tokens_details
                            .and_then(|d| d.reasoning_tokens)
                            .unwrap_or(0),
                    });
                }
                "error" if value.get() != "null" => {
                    let error: ErrorView =
                        serde_json::from_str(value.get()).unwrap_or(ErrorView { message: None });
                    seen.upstream_error =
                        Some(error.message.map_or_else(
                            || "upstream reported an error".to_owned(),
                            Cow::into_owned,
                        ));
                }
                _ => {}
            }
        }
        if !self.keep_usage && has_usage && choices_empty {
            return Ok(Rewritten::Dropped);
        }
        top.write_with(
            out,
            |key| match key {
                "id" => Some(Some(self.id_json.as_str())),
                "model" => Some(Some(self.model_json.as_str())),
                "usage" if !self.keep_usage => Some(None),
                _ => None,
            },
            &[],
        );
        Ok(if has_usage && self.keep_usage {
            Rewritten::WrittenWithUsage
        } else {
            Rewritten::Written
        })
    }
}

/// Records each choice of a `choices` array as it is parsed, without collecting them.
struct RecordChoices<'s> {
    now: Instant,
    seen: &'s mut Observed,
    count: usize,
}

impl<'de> Visitor<'de> for &mut RecordChoices<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of choices")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(choice) = seq.next_element::<ChoiceView<'de>>()? {
            record_choice(&choice, self.now, self.seen);
            self.count += 1;
        }
        Ok(())
    }
}

fn record_choice(choice: &ChoiceView, now: Instant, seen: &mut Observed) {
    if let Some(reason) = &choice.finish_reason {
        seen.finish_reason = Some(reason.clone().into_owned());
    }
    let Some(msg) = choice.delta.as_ref().or(choice.message.as_ref()) else {
        return;
    };
    let mut output = false;
    for text in [&msg.content, &msg.refusal].into_iter().flatten() {
        seen.text.push_str(text);
        output |= !text.is_empty();
    }
    for text in [&msg.reasoning_content, &msg.reasoning]
        .into_iter()
        .flatten()
    {
        seen.reasoning.push_str(text);
        output |= !text.is_empty();
    }
    for (position, call) in msg.tool_calls.iter().flatten().enumerate() {
        if let Some(f) = &call.function {
            let seen_call = seen.tool_call(call.index.unwrap_or(position));
            if let Some(name) = &f.name {
                seen_call.name.push_str(name);
            }
            if let Some(arguments) = &f.arguments {
                seen_call.arguments.push_str(arguments);
            }
            output = true;
        }
    }
    if output {
        stamp_output(seen, now);
    }
}

/// Output arrived at `now`: time to first token, the longest gap, one more output chunk.
pub fn stamp_output(seen: &mut Observed, now: Instant) {
    if seen.first_token_at.is_none() {
        seen.first_token_at = Some(now);
    }
    if let Some(last) = seen.last_token_at {
        seen.max_gap = seen.max_gap.max(now.saturating_duration_since(last));
    }
    seen.last_token_at = Some(now);
    seen.token_chunks += 1;
}

/// Streaming relay: one per streamed response. The end of the stream (the chunk carrying
/// usage, and `[DONE]`) is held back for [`StreamRelay::tail`], so what the request's
/// insurance verdict says can still be written beside the usage.
pub struct StreamRelay {
    parser: sse::Parser,
    events: Vec<sse::Event>,
    rewriter: Rewriter,
    observed: Observed,
    /// The rewritten chunk that carries usage (JSON, without its `data: ` framing).
    held: Vec<u8>,
}

impl StreamRelay {
    pub fn new(generation_id: &str, client_model: &str, include_usage: bool) -> Self {
        Self {
            parser: sse::Parser::new(),
            events: Vec::new(),
            rewriter: Rewriter::new(generation_id, client_model, include_usage),
            observed: Observed::default(),
            held: Vec::new(),
        }
    }

    /// One upstream read in, the bytes for the client out (appended to `out`).
    pub fn feed(
        &mut self,
        chunk: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<(), sse::SseError> {
        self.events.clear();
        self.parser.feed(chunk, &mut self.events)?;
        for event in &self.events {
            if self.observed.completed {
                break;
            }
            let data = event.data.as_str();
            if data == "[DONE]" {
                self.observed.completed = true;
                continue;
            }
            let mark = out.len();
            out.extend_from_slice(b"data: ");
            let rewritten = self.rewriter.rewrite(data, now, &mut self.observed, out);
            if rewritten.is_ok() && self.observed.upstream_error.is_none() {
                self.observed.events += 1;
            }
            match rewritten {
                Ok(Rewritten::Written) => out.extend_from_slice(b"\n\n"),
                Ok(Rewritten::WrittenWithUsage) => {
                    // A later usage chunk replaces this one, as usage does.
                    self.held.clear();
                    self.held.extend_from_slice(&out[mark + b"data: ".len()..]);
                    out.truncate(mark);
                }
                Ok(Rewritten::Dropped) => out.truncate(mark),
                Err(_) => {
                    out.truncate(mark);
                    self.observed.malformed_events += 1;
                    self.observed.malformed_first |= self.observed.events == 0;
                }
            }
            if self.observed.upstream_error.is_some() {
                // The error chunk was relayed as the provider sent it (OpenAI clients raise on
                // it); nothing after it is meaningful.
                break;
            }
        }
        Ok(())
    }

    /// End of the upstream body. A stream that never sent `[DONE]` was cut.
    pub fn finish(&mut self) -> &Observed {
        self.parser.finish();
        &self.observed
    }

    pub fn observed(&self) -> &Observed {
        &self.observed
    }

    pub fn completed(&self) -> bool {
        self.observed.completed
    }

    /// The stream's last words: the usage chunk with `member` (a JSON object member, such as
    /// `"insurance":{…}`) added, or `comment` as an SSE comment when there is no usage chunk
    /// to carry it, then `[DONE]` if the provider sent it.
    pub fn tail(&mut self, member: Option<&str>, comment: Option<&str>, out: &mut Vec<u8>) {
        if !self.held.is_empty() {
            out.extend_from_slice(b"data: ");
            match member {
                // The chunk is an object we wrote: it ends with its closing brace.
                Some(member) if self.held.ends_with(b"}") => {
                    out.extend_from_slice(&self.held[..self.held.len() - 1]);
                    out.push(b',');
                    out.extend_from_slice(member.as_bytes());
                    out.push(b'}');
                }
                _ => out.extend_from_slice(&self.held),
            }
            out.extend_from_slice(b"\n\n");
            self.held.clear();
        } else if let Some(comment) = comment {
            write_comment(comment, out);
        }
        if self.observed.completed {
            out.extend_from_slice(b"data: [DONE]\n\n");
        }
    }
}

/// An SSE comment (ignored by every client's parser), one line per line of `text`.
pub fn write_comment(text: &str, out: &mut Vec<u8>) {
    for line in text.lines() {
        out.extend_from_slice(b": ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// Relay of a whole JSON response: same rewrite, usage always kept (OpenAI always returns it).
pub fn relay_json(
    body: &[u8],
    generation_id: &str,
    client_model: &str,
    now: Instant,
    out: &mut Vec<u8>,
) -> Result<Observed, serde_json::Error> {
    let text = std::str::from_utf8(body).map_err(|e| {
        <serde_json::Error as serde::de::Error>::custom(format!("response is not UTF-8: {e}"))
    })?;
    let mut observed = Observed::default();
    Rewriter::new(generation_id, client_model, true).rewrite(text, now, &mut observed, out)?;
    observed.completed = observed.upstream_error.is_none();
    Ok(observed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(content: &str, finish: Option<&str>, usage_null: bool) -> String {
        let finish = finish.map_or("null".to_owned(), |f| format!("\"{f}\""));
        let usage = if usage_null { ",\"usage\":null" } else { "" };
        format!(
            "data: {{\"id\":\"chatcmpl-up\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}},\"finish_reason\":{finish}}}]{usage}}}\n\n",
            serde_json::to_string(content).unwrap()
        )
    }

    const USAGE: &str = "data: {\"id\":\"chatcmpl-up\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15,\"prompt_tokens_details\":{\"cached_tokens\":4},\"completion_tokens_details\":{\"reasoning_tokens\":1}}}\n\n";

    fn upstream() -> String {
        [
            chunk("Hel", None, true),
            chunk("lo", None, true),
            chunk("", Some("stop"), true),
            USAGE.to_owned(),
            "data: [DONE]\n\n".to_owned(),
        ]
        .concat()
    }

    fn data_events(out: &[u8]) -> Vec<String> {
        let mut p = sse::Parser::new();
        let mut ev = Vec::new();
        p.feed(out, &mut ev).unwrap();
        ev.into_iter().map(|e| e.data).collect()
    }

    #[test]
    fn strips_usage_when_client_did_not_ask_but_still_meters_it() {
        let mut relay = StreamRelay::new("gen-1", "openai/gpt-4o-mini", false);
        let mut out = Vec::new();
        relay
            .feed(upstream().as_bytes(), Instant::now(), &mut out)
            .unwrap();
        relay.tail(None, None, &mut out);
        let events = data_events(&out);
        assert_eq!(
            events.len(),
            4,
            "3 chunks + [DONE], no usage chunk: {events:?}"
        );
        for e in &events[..3] {
            let v: serde_json::Value = serde_json::from_str(e).unwrap();
            assert_eq!(v["id"], "gen-1");
            assert_eq!(v["model"], "openai/gpt-4o-mini");
            assert!(v.get("usage").is_none(), "usage key must be absent: {e}");
        }
        assert_eq!(events[3], "[DONE]");
        let seen = relay.finish();
        assert!(seen.completed);
        assert_eq!(
            seen.usage,
            Some(Usage {
                prompt: 12,
                completion: 3,
                cached: 4,
                reasoning: 1
            })
        );
        assert_eq!(seen.finish_reason.as_deref(), Some("stop"));
        assert_eq!(seen.text, "Hello");
        assert_eq!(seen.token_chunks, 2);
    }

    #[test]
    fn keeps_usage_chunk_and_nulls_when_client_asked() {
        let mut relay = StreamRelay::new("gen-2", "openai/gpt-4o-mini", true);
        let mut out = Vec::new();
        relay
            .feed(upstream().as_bytes(), Instant::now(), &mut out)
            .unwrap();
        relay.tail(None, None, &mut out);
        let events = data_events(&out);
        assert_eq!(events.len(), 5);
        let first: serde_json::Value = serde_json::from_str(&events[0]).unwrap();
        assert!(first["usage"].is_null() && first.get("usage").is_some());
        let usage: serde_json::Value = serde_json::from_str(&events[3]).unwrap();
        assert_eq!(usage["usage"]["prompt_tokens"], 12);
        assert_eq!(usage["choices"], serde_json::json!([]));
        assert_eq!(usage["id"], "gen-2");
        assert_eq!(events[4], "[DONE]");
    }

    #[test]
    fn the_tail_carries_a_member_beside_usage_or_a_comment() {
        let mut relay = StreamRelay::new("gen-3", "m", true);
        let mut out = Vec::new();
        relay
            .feed(upstream().as_bytes(), Instant::now(), &mut out)
            .unwrap();
        assert_eq!(data_events(&out).len(), 3, "usage and [DONE] held back");
        out.clear();
        relay.tail(
            Some(r#""insurance":{"credit":1}"#),
            Some("insurance x"),
            &mut out,
        );
        let events = data_events(&out);
        let usage: serde_json::Value = serde_json::from_str(&events[0]).unwrap();
        assert_eq!(usage["usage"]["prompt_tokens"], 12);
        assert_eq!(usage["insurance"]["credit"], 1);
        assert_eq!(events[1], "[DONE]");
        assert!(!String::from_utf8_lossy(&out).contains(": insurance"));

        let mut relay = StreamRelay::new("gen-4", "m", false);
        let mut out = Vec::new();
        relay
            .feed(upstream().as_bytes(), Instant::now(), &mut out)
            .unwrap();
        out.clear();
        relay.tail(Some(r#""insurance":{}"#), Some("insurance x"), &mut out);
        assert_eq!(out, b": insurance x\n\ndata: [DONE]\n\n");
    }

    #[test]
    fn every_split_gives_the_same_output() {
        let whole = upstream();
        let mut reference = Vec::new();
        StreamRelay::new("g", "m", true)
            .feed(whole.as_bytes(), Instant::now(), &mut reference)
            .unwrap();
        for cut in 0..whole.len() {
            let mut relay = StreamRelay::new("g", "m", true);
            let mut out = Vec::new();
            let now = Instant::now();
            relay.feed(&whole.as_bytes()[..cut], now, &mut out).unwrap();
            relay.feed(&whole.as_bytes()[cut..], now, &mut out).unwrap();
            assert_eq!(out, reference, "split at {cut}");
        }
    }

    #[test]
    fn cut_stream_is_not_completed_and_keeps_partial_text() {
        let mut relay = StreamRelay::new("g", "m", false);
        let mut out = Vec::new();
        relay
            .feed(
                chunk("partial", None, true).as_bytes(),
                Instant::now(),
                &mut out,
            )
            .unwrap();
        let seen = relay.finish();
        assert!(!seen.completed);
        assert!(seen.usage.is_none());
        assert_eq!(seen.text, "partial");
    }

    #[test]
    fn malformed_events_are_dropped_and_counted() {
        let mut relay = StreamRelay::new("g", "m", false);
        let mut out = Vec::new();
        let stream = format!(
            "{}data: {{not json\n\n{}data: [DONE]\n\n",
            chunk("a", None, true),
            chunk("b", Some("stop"), true)
        );
        relay
            .feed(stream.as_bytes(), Instant::now(), &mut out)
            .unwrap();
        relay.tail(None, None, &mut out);
        assert_eq!(data_events(&out).len(), 3);
        let seen = relay.finish();
        assert_eq!(seen.malformed_events, 1);
        assert!(seen.completed);
    }

    #[test]
    fn a_malformed_event_before_any_valid_one_is_told_apart() {
        let broken = "data: {\"id\":\n\n".to_owned();
        for (stream, first) in [
            (format!("{broken}{}", chunk("a", None, true)), true),
            (format!("{}{broken}", chunk("a", None, true)), false),
        ] {
            let mut relay = StreamRelay::new("g", "m", false);
            relay
                .feed(stream.as_bytes(), Instant::now(), &mut Vec::new())
                .unwrap();
            let seen = relay.observed();
            assert_eq!((seen.malformed_first, seen.events), (first, 1), "{stream}");
        }
        let mut relay = StreamRelay::new("g", "m", false);
        let error = "data: {\"error\":{\"message\":\"overloaded\"}}\n\n";
        relay
            .feed(error.as_bytes(), Instant::now(), &mut Vec::new())
            .unwrap();
        assert_eq!(relay.observed().events, 0, "an error is not a valid event");
    }

    #[test]
    fn choices_that_are_not_an_array_of_objects_are_malformed() {
        let mut relay = StreamRelay::new("g", "m", false);
        let mut out = Vec::new();
        let stream = concat!(
            "data: {\"id\":\"x\",\"choices\":null}\n\n",
            "data: {\"id\":\"x\",\"choices\":{\"0\":{}}}\n\n",
            "data: {\"id\":\"x\",\"choices\":[1]}\n\n",
            "data: {\"id\":\"x\",\"choices\":[{\"delta\":{\"content\":\"ok\"}}] }\n\n",
            "data: [DONE]\n\n",
        );
        relay
            .feed(stream.as_bytes(), Instant::now(), &mut out)
            .unwrap();
        relay.tail(None, None, &mut out);
        assert_eq!(data_events(&out).len(), 2);
        let seen = relay.finish();
        assert_eq!(seen.malformed_events, 3);
        assert_eq!(seen.text, "ok");
        assert_eq!(seen.token_chunks, 1);
    }

    #[test]
    fn upstream_error_inside_stream_is_recorded_and_ends_relay() {
        let mut relay = StreamRelay::new("g", "m", false);
        let mut out = Vec::new();
        let stream = format!(
            "{}data: {{\"error\":{{\"message\":\"overloaded\",\"type\":\"server_error\"}}}}\n\n{}",
            chunk("a", None, true),
            chunk("b", None, true)
        );
        relay
            .feed(stream.as_bytes(), Instant::now(), &mut out)
            .unwrap();
        let seen = relay.finish();
        assert_eq!(seen.upstream_error.as_deref(), Some("overloaded"));
        assert!(!seen.completed);
        assert_eq!(seen.text, "a");
    }

    #[test]
    fn token_timing_tracks_first_token_and_gaps() {
        let mut relay = StreamRelay::new("g", "m", false);
        let mut out = Vec::new();
        let t0 = Instant::now();
        relay
            .feed(chunk("", None, true).as_bytes(), t0, &mut out)
            .unwrap();
        relay
            .feed(
                chunk("a", None, true).as_bytes(),
                t0 + Duration::from_millis(10),
                &mut out,
            )
            .unwrap();
        relay
            .feed(
                chunk("b", None, true).as_bytes(),
                t0 + Duration::from_millis(50),
                &mut out,
            )
            .unwrap();
        let seen = relay.observed();
        assert_eq!(seen.first_token_at, Some(t0 + Duration::from_millis(10)));
        assert_eq!(seen.max_gap, Duration::from_millis(40));
        assert_eq!(seen.token_chunks, 2);
    }

    #[test]
    fn tool_call_arguments_and_reasoning_count_as_output() {
        let mut relay = StreamRelay::new("g", "m", false);
        let mut out = Vec::new();
        let c = "data: {\"id\":\"x\",\"model\":\"u\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"think\",\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}]},\"finish_reason\":null}]}\n\n";
        relay.feed(c.as_bytes(), Instant::now(), &mut out).unwrap();
        let more = "data: {\"id\":\"x\",\"model\":\"u\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"name\":\"g\",\"arguments\":\"{\"}},{\"index\":0,\"function\":{\"arguments\":\"}\"}}]},\"finish_reason\":null}]}\n\n";
        relay
            .feed(more.as_bytes(), Instant::now(), &mut out)
            .unwrap();
        let seen = relay.observed();
        assert_eq!(seen.reasoning, "think");
        assert_eq!(seen.text, "");
        let calls: Vec<_> = seen
            .tool_calls
            .iter()
            .map(|c| (c.name.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(calls, [("f", "{\"a\":1}}"), ("g", "{")]);
        assert_eq!(
            seen.output_pieces().collect::<String>(),
            "thinkf{\"a\":1}}g{"
        );
        assert_eq!(seen.token_chunks, 2);
    }

    #[test]
    fn json_response_is_rewritten_with_usage_kept() {
        let body = br#"{"id":"chatcmpl-9","object":"chat.completion","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hi \"there\""},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
        let mut out = Vec::new();
        let seen = relay_json(
            body,
            "gen-9",
            "openai/gpt-4o-mini",
            Instant::now(),
            &mut out,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], "gen-9");
        assert_eq!(v["model"], "openai/gpt-4o-mini");
        assert_eq!(v["choices"][0]["message"]["content"], "Hi \"there\"");
        assert_eq!(v["usage"]["total_tokens"], 7);
        assert_eq!(seen.usage.unwrap().completion, 2);
        assert_eq!(seen.text, "Hi \"there\"");
        assert!(seen.completed);
    }

    #[test]
    fn escaped_keys_survive_the_rewrite() {
        let body = br#"{"id":"x","model":"m","choices":[],"we\"ird":1}"#;
        let mut out = Vec::new();
        relay_json(body, "g", "s", Instant::now(), &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["we\"ird"], 1);
    }
}
