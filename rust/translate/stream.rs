//! Streams between protocols. Each protocol decodes its provider's events into the neutral
//! [`Event`]s below and encodes neutral events into its clients' event stream, so any pair
//! composes through [`Relay`] as requests do through [`super::Request`].

use std::time::Instant;

use super::{StopReason, Usage};
use crate::relay::{self, Observed};
use crate::sse;

/// One step of an answer as every protocol can express it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Text(String),
    Thinking(String),
    /// The signature that closes the current thinking block.
    Signature(String),
    /// A reasoning block the provider returned encrypted.
    RedactedThinking(String),
    /// A tool call begins; `index` numbers the answer's tool calls from 0.
    ToolCall {
        index: usize,
        id: String,
        name: String,
    },
    /// The next piece of a tool call's arguments (JSON text, to be concatenated).
    ToolArguments {
        index: usize,
        json: String,
    },
    Stop(StopReason),
    /// Usage so far; a later one replaces it.
    Usage(Usage),
    /// The provider reported a failure inside the stream; `status` is the HTTP status it
    /// stands for (429 rate limited, 529 overloaded, 500 otherwise).
    Error {
        status: u16,
        message: String,
    },
    /// The provider ended the answer properly.
    Done,
}

/// A provider's event stream, read into neutral events.
pub trait Decoder: Send {
    /// One dispatched SSE event. An event whose JSON does not parse is an error; the relay
    /// counts it and goes on.
    fn decode(&mut self, event: &sse::Event, out: &mut Vec<Event>)
    -> Result<(), serde_json::Error>;

    /// The body ended. Protocols without an end marker (Gemini) complete here.
    fn end(&mut self, _out: &mut Vec<Event>) {}

    /// `event` for a client speaking the provider's own protocol: as it came, except that the
    /// response's id and model, where the protocol names them, become ours.
    fn relay(&self, event: &sse::Event, _id: &str, _model: &str, out: &mut Vec<u8>) {
        write_raw(out, event);
    }
}

/// A client's event stream, written from neutral events.
pub trait Encoder: Send {
    fn encode(&mut self, event: &Event, out: &mut Vec<u8>);
}

/// What the client is sent for the provider's events.
enum Output {
    /// The client speaks another protocol: the neutral events, encoded for it.
    Translated(Box<dyn Encoder>),
    /// The client speaks the provider's protocol: the events as they came, with our id and
    /// model.
    Relayed { id: String, model: String },
}

/// Relay of a provider's stream, one synchronous call per upstream read like
/// [`relay::StreamRelay`], recording the same observations: translated for a client of another
/// protocol, or passed through for one of the same.
pub struct Relay {
    parser: sse::Parser,
    sse_events: Vec<sse::Event>,
    events: Vec<Event>,
    decoder: Box<dyn Decoder>,
    output: Output,
    observed: Observed,
}

impl Relay {
    pub fn new(decoder: Box<dyn Decoder>, encoder: Box<dyn Encoder>) -> Self {
        Self::with_output(decoder, Output::Translated(encoder))
    }

    /// The provider's events as they came (but for id and model), observed all the same.
    pub fn passthrough(decoder: Box<dyn Decoder>, id: &str, model: &str) -> Self {
        Self::with_output(
            decoder,
            Output::Relayed {
                id: id.to_owned(),
                model: model.to_owned(),
            },
        )
    }

    fn with_output(decoder: Box<dyn Decoder>, output: Output) -> Self {
        Self {
            parser: sse::Parser::new(),
            sse_events: Vec::new(),
            events: Vec::new(),
            decoder,
            output,
            observed: Observed::default(),
        }
    }

    /// One upstream read in, the client's bytes out (appended to `out`).
    pub fn feed(
        &mut self,
        chunk: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<(), sse::SseError> {
        self.sse_events.clear();
        self.parser.feed(chunk, &mut self.sse_events)?;
        let sse_events = std::mem::take(&mut self.sse_events);
        for event in &sse_events {
            if self.observed.completed || self.observed.upstream_error.is_some() {
                break;
            }
            self.events.clear();
            if self.decoder.decode(event, &mut self.events).is_err() {
                self.observed.malformed_events += 1;
                self.observed.malformed_first |= self.observed.events == 0;
                continue;
            }
            if let Output::Relayed { id, model } = &self.output {
                self.decoder.relay(event, id, model, out);
            }
            self.emit(now, out);
            if self.observed.upstream_error.is_none() {
                self.observed.events += 1;
            }
        }
        self.sse_events = sse_events;
        Ok(())
    }

    /// End of the upstream body: what the decoder completes at EOF is written to `out`.
    pub fn finish(&mut self, now: Instant, out: &mut Vec<u8>) -> &Observed {
        self.parser.finish();
        if !self.observed.completed && self.observed.upstream_error.is_none() {
            self.events.clear();
            self.decoder.end(&mut self.events);
            self.emit(now, out);
        }
        &self.observed
    }

    /// End the client's stream with an error of ours (the provider broke off, went silent...).
    /// False when passing through: the caller writes the error in the protocol's own format.
    pub fn fail(&mut self, status: u16, message: &str, out: &mut Vec<u8>) -> bool {
        let Output::Translated(encoder) = &mut self.output else {
            return false;
        };
        encoder.encode(
            &Event::Error {
                status,
                message: message.to_owned(),
            },
            out,
        );
        true
    }

    pub fn observed(&self) -> &Observed {
        &self.observed
    }

    pub fn completed(&self) -> bool {
        self.observed.completed
    }

    fn emit(&mut self, now: Instant, out: &mut Vec<u8>) {
        let mut output = false;
        for event in &self.events {
            output |= observe(event, &mut self.observed);
            if let Output::Translated(encoder) = &mut self.output {
                encoder.encode(event, out);
            }
        }
        if output {
            relay::stamp_output(&mut self.observed, now);
        }
    }
}

/// Record what the usage event and the insurance checks need to know about one neutral event;
/// true when it carried output.
fn observe(event: &Event, seen: &mut Observed) -> bool {
    match event {
        Event::Text(text) => seen.text.push_str(text),
        Event::Thinking(text) => seen.reasoning.push_str(text),
        Event::ToolCall { index, name, .. } => seen.tool_call(*index).name.push_str(name),
        Event::ToolArguments { index, json } => seen.tool_call(*index).arguments.push_str(json),
        Event::Stop(stop) => {
            seen.finish_reason = Some(super::openai::finish_reason(stop).to_owned());
        }
        Event::Usage(u) => {
            seen.usage = Some(relay::Usage {
                prompt: u.input + u.cache_read + u.cache_write,
                completion: u.output,
                cached: u.cache_read,
                reasoning: u.reasoning,
            });
        }
        Event::Error { message, .. } => seen.upstream_error = Some(message.clone()),
        Event::Done => seen.completed = true,
        Event::Signature(_) | Event::RedactedThinking(_) => {}
    }
    match event {
        Event::Text(text) | Event::Thinking(text) | Event::ToolArguments { json: text, .. } => {
            !text.is_empty()
        }
        Event::ToolCall { .. } => true,
        _ => false,
    }
}

/// An event written back as it was parsed (its data lines split again).
pub(super) fn write_raw(out: &mut Vec<u8>, event: &sse::Event) {
    if let Some(name) = &event.event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    for line in event.data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// Build one SSE event into `out`: an optional `event:` line, then one `data:` line. The
/// payload is written by `data` straight into `out` (JSON never holds a raw newline).
pub(super) fn write_event(out: &mut Vec<u8>, name: Option<&str>, data: impl FnOnce(&mut Vec<u8>)) {
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    data(out);
    out.extend_from_slice(b"\n\n");
}

/// The provider streams and helpers here serve the other protocols' stream tests too.
#[cfg(test)]
pub(super) mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::translate::anthropic::stream::{MessageDecoder, MessageEncoder};
    use crate::translate::gemini::{self, stream::GeminiDecoder, stream::GeminiEncoder};
    use crate::translate::openai::stream::{ChunkDecoder, ChunkEncoder};

    /// A provider's Messages stream: thinking with a signature, text, a tool call whose
    /// arguments come in pieces, cumulative usage, pings.
    pub(crate) const ANTHROPIC: &str = concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1,"cache_read_input_tokens":10,"cache_creation_input_tokens":0}}}"#,
        "\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: content_block_start\n",
        r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
        "\n\nevent: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me "}}"#,
        "\n\nevent: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"think."}}"#,
        "\n\nevent: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"c2lnbmF0dXJl"}}"#,
        "\n\nevent: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":0}"#,
        "\n\nevent: content_block_start\n",
        r#"data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
        "\n\nevent: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Checking \"Paris\"."}}"#,
        "\n\nevent: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":1}"#,
        "\n\nevent: content_block_start\n",
        r#"data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}"#,
        "\n\nevent: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Pa"}}"#,
        "\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"ris\", \"unit\": \"c\"}"}}"#,
        "\n\nevent: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":2}"#,
        "\n\nevent: content_block_start\n",
        r#"data: {"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_2","name":"now","input":{}}}"#,
        "\n\nevent: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":3}"#,
        "\n\nevent: message_delta\n",
        r#"data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}}"#,
        "\n\nevent: message_stop\n",
        r#"data: {"type":"message_stop"}"#,
        "\n\n",
    );

    /// A Messages stream that says "Hi" and then reports the provider overloaded.
    pub(crate) const ANTHROPIC_OVERLOADED: &str = concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"usage":{"input_tokens":5,"output_tokens":1}}}"#,
        "\n\nevent: content_block_start\n",
        r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        "\n\nevent: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
        "\n\nevent: error\n",
        r#"data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        "\n\n",
    );

    /// A provider's Chat Completions stream with reasoning, text, two tool calls and usage.
    pub(crate) const OPENAI: &str = concat!(
        r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning_content":"Hmm"},"finish_reason":null}],"usage":null}"#,
        "\n\n",
        r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt","choices":[{"index":0,"delta":{"content":"Sure: "},"finish_reason":null}],"usage":null}"#,
        "\n\n",
        r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}],"usage":null}"#,
        "\n\n",
        r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}],"usage":null}"#,
        "\n\n",
        r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"finish_reason":null}],"usage":null}"#,
        "\n\n",
        r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"now","arguments":"{}"}}]},"finish_reason":null}],"usage":null}"#,
        "\n\n",
        r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":null}"#,
        "\n\n",
        r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt","choices":[],"usage":{"prompt_tokens":30,"completion_tokens":17,"total_tokens":47,"prompt_tokens_details":{"cached_tokens":8},"completion_tokens_details":{"reasoning_tokens":3}}}"#,
        "\n\ndata: [DONE]\n\n",
    );

    /// A provider's Gemini stream (`alt=sse`, CRLF as Google writes it): thought summaries,
    /// text, two function calls in the last response (the first signed), usage on every
    /// response, the finish reason on the last, no end marker.
    const GEMINI: &str = concat!(
        r#"data: {"candidates":[{"content":{"parts":[{"text":"Let me ","thought":true}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":40,"totalTokenCount":40,"cachedContentTokenCount":10,"promptTokensDetails":[{"modality":"TEXT","tokenCount":40}]},"modelVersion":"gemini-2.5-pro","responseId":"r1"}"#,
        "\r\n\r\n",
        r#"data: {"candidates":[{"content":{"parts":[{"text":"think.","thought":true}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":40,"totalTokenCount":60,"cachedContentTokenCount":10,"thoughtsTokenCount":20},"modelVersion":"gemini-2.5-pro","responseId":"r1"}"#,
        "\r\n\r\n",
        r#"data: {"candidates":[{"content":{"parts":[{"text":"Checking \"Paris\"."}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":40,"candidatesTokenCount":4,"totalTokenCount":64,"cachedContentTokenCount":10,"thoughtsTokenCount":20},"modelVersion":"gemini-2.5-pro","responseId":"r1"}"#,
        "\r\n\r\n",
        r#"data: {"candidates":[{"content":{"parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris","unit":"c"}},"thoughtSignature":"c2lnbmF0dXJl"},{"functionCall":{"name":"now","args":{}}}],"role":"model"},"finishReason":"STOP","index":0,"finishMessage":"Model generated function call(s)."}],"usageMetadata":{"promptTokenCount":40,"candidatesTokenCount":22,"totalTokenCount":82,"cachedContentTokenCount":10,"thoughtsTokenCount":20},"modelVersion":"gemini-2.5-pro","responseId":"r1"}"#,
        "\r\n\r\n",
    );

    pub(crate) fn relay_all(mut relay: Relay, input: &str, split: usize) -> (Vec<u8>, Observed) {
        let mut out = Vec::new();
        let now = Instant::now();
        for piece in input.as_bytes().chunks(split.max(1)) {
            relay.feed(piece, now, &mut out).unwrap();
        }
        let observed = relay.finish(now, &mut out).clone();
        (out, observed)
    }

    pub(crate) fn events(bytes: &[u8]) -> Vec<(String, String)> {
        let mut parser = sse::Parser::new();
        let mut events = Vec::new();
        parser.feed(bytes, &mut events).unwrap();
        events
            .into_iter()
            .map(|e| (e.event_type().to_owned(), e.data))
            .collect()
    }

    fn anthropic_to_openai(include_usage: bool) -> Relay {
        Relay::new(
            Box::<MessageDecoder>::default(),
            Box::new(ChunkEncoder::new(
                "gen-1",
                "anthropic/claude",
                7,
                include_usage,
            )),
        )
    }

    fn openai_to_anthropic() -> Relay {
        Relay::new(
            Box::<ChunkDecoder>::default(),
            Box::new(MessageEncoder::new("gen-2", "openai/gpt", 28)),
        )
    }

    fn gemini_to_openai() -> Relay {
        Relay::new(
            Box::<GeminiDecoder>::default(),
            Box::new(ChunkEncoder::new("gen-3", "google/gemini", 7, true)),
        )
    }

    fn gemini_to_anthropic() -> Relay {
        Relay::new(
            Box::<GeminiDecoder>::default(),
            Box::new(MessageEncoder::new("gen-4", "google/gemini", 28)),
        )
    }

    fn anthropic_to_gemini(sse: bool) -> Relay {
        Relay::new(
            Box::<MessageDecoder>::default(),
            Box::new(GeminiEncoder::new("gen-5", "anthropic/claude", sse)),
        )
    }

    fn openai_to_gemini(sse: bool) -> Relay {
        Relay::new(
            Box::<ChunkDecoder>::default(),
            Box::new(GeminiEncoder::new("gen-6", "openai/gpt", sse)),
        )
    }

    /// A Gemini stream's responses: its SSE events, or the elements of its JSON array.
    fn gemini_responses(bytes: &[u8], sse: bool) -> Vec<Value> {
        if !sse {
            return serde_json::from_slice(bytes).expect("one JSON array");
        }
        events(bytes)
            .into_iter()
            .map(|(name, data)| {
                assert_eq!(name, "message", "Gemini names no events");
                serde_json::from_str(&data).unwrap()
            })
            .collect()
    }

    /// Every part of a Gemini stream, in order, as a client keeps them for the next turn.
    fn gemini_parts(responses: &[Value]) -> Vec<Value> {
        responses
            .iter()
            .flat_map(|r| {
                r["candidates"][0]["content"]["parts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Chat chunks folded the way the OpenAI SDK accumulates them.
    fn fold_chunks(bytes: &[u8]) -> (Value, Vec<Value>) {
        let mut message =
            json!({"content": "", "reasoning": "", "tool_calls": [], "signatures": []});
        let mut chunks = Vec::new();
        for (_, data) in events(bytes) {
            if data == "[DONE]" {
                chunks.push(Value::Null);
                continue;
            }
            let chunk: Value = serde_json::from_str(&data).unwrap();
            if let Some(choice) = chunk["choices"].get(0) {
                let delta = &choice["delta"];
                if let Some(t) = delta["content"].as_str() {
                    message["content"] =
                        format!("{}{t}", message["content"].as_str().unwrap()).into();
                }
                if let Some(t) = delta["reasoning"].as_str() {
                    message["reasoning"] =
                        format!("{}{t}", message["reasoning"].as_str().unwrap()).into();
                }
                for d in delta["reasoning_details"].as_array().into_iter().flatten() {
                    if let Some(s) = d["signature"].as_str() {
                        message["signatures"].as_array_mut().unwrap().push(s.into());
                    }
                }
                for call in delta["tool_calls"].as_array().into_iter().flatten() {
                    let i = call["index"].as_u64().unwrap() as usize;
                    let calls = message["tool_calls"].as_array_mut().unwrap();
                    if calls.len() <= i {
                        calls.push(json!({"id": call["id"], "name": call["function"]["name"], "arguments": ""}));
                    }
                    let args = format!(
                        "{}{}",
                        calls[i]["arguments"].as_str().unwrap(),
                        call["function"]["arguments"].as_str().unwrap_or("")
                    );
                    calls[i]["arguments"] = args.into();
                }
            }
            chunks.push(chunk);
        }
        (message, chunks)
    }

    #[test]
    fn messages_stream_to_chat_chunks() {
        let (out, observed) = relay_all(anthropic_to_openai(true), ANTHROPIC, usize::MAX);
        let (message, chunks) = fold_chunks(&out);
        assert_eq!(message["content"], "Checking \"Paris\".");
        assert_eq!(message["reasoning"], "Let me think.");
        assert_eq!(message["signatures"], json!(["c2lnbmF0dXJl"]));
        let calls = message["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["id"], "toolu_1");
        assert_eq!(calls[0]["name"], "get_weather");
        let args: Value = serde_json::from_str(calls[0]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"city": "Paris", "unit": "c"}));
        assert_eq!(calls[1]["arguments"], "{}", "a call without input deltas");
        // Every chunk is ours; the first delta names the role; the finish chunk, the usage
        // chunk and [DONE] close the stream in OpenAI's order.
        assert!(chunks[..chunks.len() - 1].iter().all(|c| c["id"] == "gen-1"
            && c["model"] == "anthropic/claude"
            && c["object"] == "chat.completion.chunk"));
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let n = chunks.len();
        assert_eq!(chunks[n - 3]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(chunks[n - 2]["choices"], json!([]));
        assert_eq!(
            chunks[n - 2]["usage"],
            json!({"prompt_tokens": 35, "completion_tokens": 42, "total_tokens": 77,
                   "prompt_tokens_details": {"cached_tokens": 10},
                   "completion_tokens_details": {"reasoning_tokens": 0}})
        );
        assert!(chunks[n - 1].is_null());
        assert!(observed.completed);
        assert_eq!(observed.finish_reason.as_deref(), Some("tool_calls"));
        let usage = observed.usage.unwrap();
        assert_eq!((usage.prompt, usage.completion, usage.cached), (35, 42, 10));
        assert!(observed.reasoning.contains("Let me think."));
        assert!(observed.text.contains("Checking"));
        assert_eq!(observed.malformed_events, 0);
    }

    #[test]
    fn the_usage_chunk_is_left_out_when_not_asked_for() {
        let (out, _) = relay_all(anthropic_to_openai(false), ANTHROPIC, usize::MAX);
        let (_, chunks) = fold_chunks(&out);
        assert!(chunks.iter().all(|c| c.get("usage").is_none()));
        assert!(chunks.last().unwrap().is_null());
    }

    #[test]
    fn chat_chunks_to_messages_stream() {
        let (out, observed) = relay_all(openai_to_anthropic(), OPENAI, usize::MAX);
        let events = events(&out);
        for (name, data) in &events {
            let value: Value = serde_json::from_str(data).unwrap();
            assert_eq!(value["type"], name.as_str(), "the data names its event");
        }
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        let data: Vec<Value> = events
            .iter()
            .map(|(_, d)| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(data[0]["message"]["id"], "gen-2");
        assert_eq!(data[0]["message"]["model"], "openai/gpt");
        assert_eq!(
            data[0]["message"]["usage"]["input_tokens"], 28,
            "the local estimate"
        );
        assert_eq!(data[2]["content_block"]["type"], "thinking");
        assert_eq!(
            data[3]["delta"],
            json!({"type": "thinking_delta", "thinking": "Hmm"})
        );
        assert_eq!(
            data[6]["delta"],
            json!({"type": "text_delta", "text": "Sure: "})
        );
        assert_eq!(
            data[8]["content_block"],
            json!({"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}})
        );
        let args: String = [&data[9], &data[10]]
            .iter()
            .map(|d| d["delta"]["partial_json"].as_str().unwrap())
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&args).unwrap(),
            json!({"city": "Paris"})
        );
        assert_eq!(data[12]["index"], 3);
        assert_eq!(
            data[15]["delta"],
            json!({"stop_reason": "tool_use", "stop_sequence": null})
        );
        assert_eq!(
            data[15]["usage"],
            json!({"input_tokens": 22, "output_tokens": 17, "cache_creation_input_tokens": 0,
                   "cache_read_input_tokens": 8})
        );
        assert!(observed.completed);
        assert_eq!(observed.usage.unwrap().reasoning, 3);
    }

    #[test]
    fn every_split_of_the_upstream_gives_the_same_client_stream() {
        for (make, input) in [
            ((|| anthropic_to_openai(true)) as fn() -> Relay, ANTHROPIC),
            (openai_to_anthropic as fn() -> Relay, OPENAI),
        ] {
            let (whole, _) = relay_all(make(), input, usize::MAX);
            for split in [1, 2, 3, 7, 64] {
                let (pieces, _) = relay_all(make(), input, split);
                assert_eq!(events(&pieces), events(&whole), "split {split}");
            }
        }
    }

    /// Same protocol on both sides through the neutral events: what the client reads equals
    /// what the provider sent, event for event.
    #[test]
    fn a_stream_survives_its_own_protocol_round_trip() {
        let (out, _) = relay_all(
            Relay::new(
                Box::<MessageDecoder>::default(),
                Box::new(MessageEncoder::new("msg_1", "claude", 0)),
            ),
            ANTHROPIC,
            usize::MAX,
        );
        let decode = |bytes: &[u8]| {
            let mut decoder = MessageDecoder::default();
            let mut parser = sse::Parser::new();
            let mut raw = Vec::new();
            parser.feed(bytes, &mut raw).unwrap();
            let mut neutral = Vec::new();
            for e in &raw {
                decoder.decode(e, &mut neutral).unwrap();
            }
            neutral
        };
        assert_eq!(decode(&out), decode(ANTHROPIC.as_bytes()));

        let (out, _) = relay_all(
            Relay::new(
                Box::<ChunkDecoder>::default(),
                Box::new(ChunkEncoder::new("c1", "gpt", 1, true)),
            ),
            OPENAI,
            usize::MAX,
        );
        let (ours, _) = fold_chunks(&out);
        let (theirs, _) = fold_chunks(OPENAI.as_bytes());
        assert_eq!(ours["content"], theirs["content"]);
        assert_eq!(ours["tool_calls"], theirs["tool_calls"]);
    }

    #[test]
    fn a_messages_client_gets_a_messages_provider_stream_as_it_came() {
        let relay = Relay::passthrough(
            Box::<MessageDecoder>::default(),
            "gen-3",
            "anthropic/claude",
        );
        let (out, observed) = relay_all(relay, ANTHROPIC, 5);
        let ours = events(&out);
        let theirs = events(ANTHROPIC.as_bytes());
        assert_eq!(ours.len(), theirs.len());
        assert_eq!(ours[1..], theirs[1..], "only message_start differs");
        let start: Value = serde_json::from_str(&ours[0].1).unwrap();
        let mut expected: Value = serde_json::from_str(&theirs[0].1).unwrap();
        expected["message"]["id"] = "gen-3".into();
        expected["message"]["model"] = "anthropic/claude".into();
        assert_eq!(start, expected);
        assert!(observed.completed);
        assert_eq!(observed.usage.unwrap().completion, 42);
        assert_eq!(observed.finish_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn a_gemini_client_gets_a_gemini_provider_stream_as_it_came() {
        let relay = Relay::passthrough(
            Box::<crate::translate::gemini::stream::GeminiDecoder>::default(),
            "gen-4",
            "google/gemini",
        );
        let (out, observed) = relay_all(relay, GEMINI, 7);
        let ours = events(&out);
        let theirs = events(GEMINI.as_bytes());
        assert_eq!(ours.len(), theirs.len());
        for ((_, ours), (_, theirs)) in ours.iter().zip(&theirs) {
            let ours: Value = serde_json::from_str(ours).unwrap();
            let mut expected: Value = serde_json::from_str(theirs).unwrap();
            expected["responseId"] = "gen-4".into();
            expected["modelVersion"] = "google/gemini".into();
            assert_eq!(ours, expected);
        }
        assert!(
            observed.completed,
            "a finish reason, then the end of the body"
        );
        assert_eq!(observed.finish_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn errors_mid_stream_reach_the_client_in_its_format() {
        let input = ANTHROPIC_OVERLOADED;
        let (out, observed) = relay_all(anthropic_to_openai(true), input, usize::MAX);
        let last = events(&out).pop().unwrap().1;
        let error: Value = serde_json::from_str(&last).unwrap();
        assert_eq!(
            error,
            json!({"error": {"code": "529", "type": "provider_error", "message": "Overloaded"}})
        );
        assert_eq!(observed.upstream_error.as_deref(), Some("Overloaded"));
        assert!(!observed.completed);

        let input = concat!(
            r#"data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
            "\n\n",
            r#"data: {"error":{"message":"Rate limited","code":429}}"#,
            "\n\n",
        );
        let (out, observed) = relay_all(openai_to_anthropic(), input, usize::MAX);
        let (name, data) = events(&out).pop().unwrap();
        assert_eq!(name, "error");
        assert_eq!(
            serde_json::from_str::<Value>(&data).unwrap(),
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limited"}})
        );
        assert!(!observed.completed);
    }

    #[test]
    fn a_cut_stream_is_not_completed_and_malformed_events_are_counted() {
        let cut = &OPENAI[..OPENAI.find("\"finish_reason\":\"tool_calls\"").unwrap()];
        let input = format!("data: {{not json\n\n{cut}");
        let (_, observed) = relay_all(openai_to_anthropic(), &input, usize::MAX);
        assert!(!observed.completed);
        assert_eq!(observed.malformed_events, 1);
        assert!(observed.usage.is_none());
        assert!(observed.first_token_at.is_some());
    }

    #[test]
    fn gemini_stream_to_chat_chunks() {
        let (out, observed) = relay_all(gemini_to_openai(), GEMINI, usize::MAX);
        let (message, chunks) = fold_chunks(&out);
        assert_eq!(message["content"], "Checking \"Paris\".");
        assert_eq!(message["reasoning"], "Let me think.");
        assert_eq!(message["signatures"], json!(["c2lnbmF0dXJl"]));
        let calls = message["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["id"], "call_r1_0");
        assert_eq!(calls[0]["name"], "get_weather");
        let args: Value = serde_json::from_str(calls[0]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"city": "Paris", "unit": "c"}));
        assert_eq!(calls[1]["id"], "call_r1_1");
        assert_eq!(calls[1]["arguments"], "{}");
        let n = chunks.len();
        assert_eq!(chunks[n - 3]["choices"][0]["finish_reason"], "tool_calls");
        // Gemini's last usage is final: candidates and thoughts are the completion.
        assert_eq!(
            chunks[n - 2]["usage"],
            json!({"prompt_tokens": 40, "completion_tokens": 42, "total_tokens": 82,
                   "prompt_tokens_details": {"cached_tokens": 10},
                   "completion_tokens_details": {"reasoning_tokens": 20}})
        );
        assert!(chunks[n - 1].is_null(), "[DONE] at the end of the body");
        assert!(observed.completed);
        assert_eq!(observed.finish_reason.as_deref(), Some("tool_calls"));
        let usage = observed.usage.unwrap();
        assert_eq!(
            (
                usage.prompt,
                usage.completion,
                usage.cached,
                usage.reasoning
            ),
            (40, 42, 10, 20)
        );
        assert_eq!(observed.malformed_events, 0);
    }

    #[test]
    fn gemini_stream_to_messages_stream() {
        let (out, observed) = relay_all(gemini_to_anthropic(), GEMINI, usize::MAX);
        let events = events(&out);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        let data: Vec<Value> = events
            .iter()
            .map(|(_, d)| serde_json::from_str(d).unwrap())
            .collect();
        // The provider's usage came with its first response, ahead of the content.
        assert_eq!(
            data[0]["message"]["usage"],
            json!({"input_tokens": 30, "output_tokens": 0, "cache_creation_input_tokens": 0,
                   "cache_read_input_tokens": 10})
        );
        assert_eq!(data[2]["content_block"]["type"], "thinking");
        assert_eq!(data[4]["delta"]["thinking"], "think.");
        assert_eq!(data[7]["delta"]["text"], "Checking \"Paris\".");
        // The call's signature is a signed thinking block of its own, right before the call.
        assert_eq!(data[9]["content_block"]["type"], "thinking");
        assert_eq!(
            data[10]["delta"],
            json!({"type": "signature_delta", "signature": "c2lnbmF0dXJl"})
        );
        assert_eq!(
            data[12]["content_block"],
            json!({"type": "tool_use", "id": "call_r1_0", "name": "get_weather", "input": {}})
        );
        assert_eq!(
            serde_json::from_str::<Value>(data[13]["delta"]["partial_json"].as_str().unwrap())
                .unwrap(),
            json!({"city": "Paris", "unit": "c"})
        );
        assert_eq!(data[16]["delta"]["partial_json"], "{}");
        assert_eq!(
            data[18],
            json!({"type": "message_delta",
                   "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                   "usage": {"input_tokens": 30, "output_tokens": 42,
                             "cache_creation_input_tokens": 0, "cache_read_input_tokens": 10}})
        );
        assert!(observed.completed);
    }

    #[test]
    fn a_call_signature_stays_apart_from_the_unsigned_thought_before_it() {
        let input = concat!(
            r#"data: {"candidates":[{"content":{"parts":[{"text":"Plan.","thought":true}],"role":"model"},"index":0}],"responseId":"r2"}"#,
            "\n\n",
            r#"data: {"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{}},"thoughtSignature":"c2ln"}],"role":"model"},"finishReason":"STOP","index":0}],"responseId":"r2"}"#,
            "\n\n",
        );
        let (out, _) = relay_all(gemini_to_anthropic(), input, usize::MAX);
        // What a Messages client keeps of the answer, handed back on its next turn.
        let mut content: Vec<Value> = Vec::new();
        for (name, data) in events(&out) {
            let event: Value = serde_json::from_str(&data).unwrap();
            match name.as_str() {
                "content_block_start" => content.push(event["content_block"].clone()),
                "content_block_delta" => {
                    let block = content.last_mut().unwrap();
                    for field in ["thinking", "signature"] {
                        if let Some(more) = event["delta"][field].as_str() {
                            block[field] =
                                format!("{}{more}", block[field].as_str().unwrap()).into();
                        }
                    }
                }
                _ => {}
            }
        }
        assert_eq!(
            content,
            [
                json!({"type": "thinking", "thinking": "Plan.", "signature": ""}),
                json!({"type": "thinking", "thinking": "", "signature": "c2ln"}),
                json!({"type": "tool_use", "id": "call_r2_0", "name": "f", "input": {}}),
            ]
        );
        let next_turn = json!({"model": "m", "max_tokens": 100, "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_r2_0", "content": "ok"}]},
        ]});
        let request =
            crate::translate::anthropic::decode_request(next_turn.to_string().as_bytes()).unwrap();
        let body: Value =
            serde_json::from_slice(&gemini::encode_request(&request, "gemini").body).unwrap();
        assert_eq!(
            body["contents"][1]["parts"],
            json!([
                {"text": "Plan.", "thought": true},
                {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "c2ln"},
            ])
        );
    }

    #[test]
    fn messages_stream_to_gemini_in_both_framings() {
        for sse in [true, false] {
            let (out, observed) = relay_all(anthropic_to_gemini(sse), ANTHROPIC, usize::MAX);
            if !sse {
                assert!(out.starts_with(b"[{") && out.ends_with(b"}]"));
                assert!(out.windows(4).any(|w| w == b"},\r\n"), "Google's separator");
            }
            let responses = gemini_responses(&out, sse);
            assert!(
                responses
                    .iter()
                    .all(|r| r["modelVersion"] == "anthropic/claude"
                        && r["responseId"] == "gen-5"
                        && r["candidates"][0]["index"] == 0
                        && r["candidates"][0]["content"]["role"] == "model")
            );
            let parts = gemini_parts(&responses);
            assert_eq!(
                parts,
                [
                    json!({"text": "Let me ", "thought": true}),
                    json!({"text": "think.", "thought": true}),
                    json!({"text": "", "thought": true, "thoughtSignature": "c2lnbmF0dXJl"}),
                    json!({"text": "Checking \"Paris\"."}),
                    json!({"functionCall": {"name": "get_weather", "args": {"city": "Paris", "unit": "c"}}}),
                    json!({"functionCall": {"name": "now", "args": {}}}),
                ]
            );
            let (last, rest) = responses.split_last().unwrap();
            assert!(
                rest.iter()
                    .all(|r| r["candidates"][0].get("finishReason").is_none()
                        && r.get("usageMetadata").is_none())
            );
            // The calls go whole, with the finish reason and usage, in the last response.
            assert_eq!(
                last["candidates"][0]["content"]["parts"]
                    .as_array()
                    .unwrap()
                    .len(),
                2
            );
            assert_eq!(last["candidates"][0]["finishReason"], "STOP");
            assert_eq!(
                last["usageMetadata"],
                json!({"promptTokenCount": 35, "candidatesTokenCount": 42, "totalTokenCount": 77,
                       "cachedContentTokenCount": 10})
            );
            assert!(observed.completed);
            // The client hands the parts back: Messages gets its thinking back whole, signed.
            let next_turn = json!({"contents": [
                {"role": "user", "parts": [{"text": "Weather?"}]},
                {"role": "model", "parts": parts},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"output": "18C"}}},
                    {"functionResponse": {"name": "now", "response": {"output": "noon"}}}]},
            ]});
            let request =
                gemini::decode_request(next_turn.to_string().as_bytes(), "claude", true).unwrap();
            let body: Value = serde_json::from_slice(
                &crate::translate::anthropic::encode_request(&request, "claude").body,
            )
            .unwrap();
            assert_eq!(
                body["messages"][1]["content"][0],
                json!({"type": "thinking", "thinking": "Let me think.", "signature": "c2lnbmF0dXJl"})
            );
            assert_eq!(body["messages"][2]["content"][1]["tool_use_id"], "call_1");
        }
    }

    #[test]
    fn chat_chunks_to_gemini_in_both_framings() {
        for sse in [true, false] {
            let (out, observed) = relay_all(openai_to_gemini(sse), OPENAI, usize::MAX);
            let responses = gemini_responses(&out, sse);
            assert_eq!(
                gemini_parts(&responses),
                [
                    json!({"text": "Hmm", "thought": true}),
                    json!({"text": "Sure: "}),
                    json!({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}),
                    json!({"functionCall": {"name": "now", "args": {}}}),
                ]
            );
            let last = responses.last().unwrap();
            assert_eq!(last["candidates"][0]["finishReason"], "STOP");
            assert_eq!(
                last["usageMetadata"],
                json!({"promptTokenCount": 30, "candidatesTokenCount": 14, "totalTokenCount": 47,
                       "thoughtsTokenCount": 3, "cachedContentTokenCount": 8})
            );
            assert!(observed.completed);
        }
    }

    #[test]
    fn arguments_that_are_not_an_object_are_kept_under_raw() {
        let input = concat!(
            r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":"}}]}}]}"#,
            "\n\n",
            r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#,
            "\n\ndata: [DONE]\n\n",
        );
        let (out, _) = relay_all(openai_to_gemini(false), input, usize::MAX);
        let responses = gemini_responses(&out, false);
        assert_eq!(
            responses,
            [json!({
                "candidates": [{"content": {"role": "model", "parts": [
                    {"functionCall": {"name": "f", "args": {"_raw": "{\"a\":"}}},
                ]}, "finishReason": "MAX_TOKENS", "index": 0}],
                "modelVersion": "openai/gpt",
                "responseId": "gen-6",
            })]
        );
    }

    #[test]
    fn every_split_of_a_gemini_stream_gives_the_same_client_stream() {
        for (make, input) in [
            (gemini_to_openai as fn() -> Relay, GEMINI),
            (gemini_to_anthropic as fn() -> Relay, GEMINI),
            ((|| anthropic_to_gemini(true)) as fn() -> Relay, ANTHROPIC),
            ((|| anthropic_to_gemini(false)) as fn() -> Relay, ANTHROPIC),
        ] {
            let (whole, _) = relay_all(make(), input, usize::MAX);
            for split in 1..=8 {
                let (pieces, _) = relay_all(make(), input, split);
                assert_eq!(pieces, whole, "split {split}");
            }
        }
    }

    #[test]
    fn a_cut_gemini_stream_is_not_completed() {
        let cut = &GEMINI[..GEMINI.rfind("data: ").unwrap()];
        let (out, observed) = relay_all(gemini_to_openai(), cut, usize::MAX);
        assert!(!observed.completed);
        assert!(observed.finish_reason.is_none());
        assert_eq!(
            observed.usage.unwrap().completion,
            24,
            "the last usage seen"
        );
        assert!(!String::from_utf8(out).unwrap().contains("[DONE]"));
    }

    #[test]
    fn gemini_errors_mid_stream_both_ways() {
        let input = concat!(
            r#"data: {"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},"index":0}]}"#,
            "\r\n\r\n",
            r#"data: {"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}"#,
            "\r\n\r\n",
        );
        let (out, observed) = relay_all(gemini_to_anthropic(), input, usize::MAX);
        let (name, data) = events(&out).pop().unwrap();
        assert_eq!(name, "error");
        assert_eq!(
            serde_json::from_str::<Value>(&data).unwrap(),
            json!({"type": "error", "error": {"type": "rate_limit_error",
                                              "message": "Resource has been exhausted"}})
        );
        assert!(!observed.completed);

        let input = ANTHROPIC_OVERLOADED;
        for sse in [true, false] {
            let mut relay = anthropic_to_gemini(sse);
            let (mut out, observed) = {
                let mut out = Vec::new();
                let now = Instant::now();
                relay.feed(input.as_bytes(), now, &mut out).unwrap();
                let observed = relay.finish(now, &mut out).clone();
                (out, observed)
            };
            // Nothing follows the error, not even an error of ours.
            relay.fail(502, "late", &mut out);
            let responses = gemini_responses(&out, sse);
            assert_eq!(responses.len(), 2);
            assert_eq!(
                responses[0]["candidates"][0]["content"]["parts"],
                json!([{"text": "Hi"}])
            );
            assert_eq!(
                responses[1],
                json!({"error": {"code": 529, "message": "Overloaded", "status": "UNAVAILABLE"}})
            );
            assert_eq!(observed.upstream_error.as_deref(), Some("Overloaded"));
        }
        for (status, name) in [
            (400, "INVALID_ARGUMENT"),
            (401, "UNAUTHENTICATED"),
            (403, "PERMISSION_DENIED"),
            (404, "NOT_FOUND"),
            (429, "RESOURCE_EXHAUSTED"),
            (500, "INTERNAL"),
            (503, "UNAVAILABLE"),
            (504, "DEADLINE_EXCEEDED"),
        ] {
            assert_eq!(gemini::stream::error_status(status), name);
        }
    }
}
