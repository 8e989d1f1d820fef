//! Responses streams for a client: neutral events written as OpenAI's Responses events
//! (`response.created` … `response.completed`), each named by its `type` and numbered by
//! `sequence_number`.
//!
//! The encoder keeps the answer as a [`Response`] with one part per output item, so a part's
//! index is its item's `output_index`, and the final event carries exactly what
//! [`super::encode_response`] makes of the same answer.
//!
//! A failure mid-stream is written twice: as an `error` event (the stream's own error event)
//! and as `response.failed` with the output so far (the terminal event clients wait for).
//! Both follow `response.created`, which the OpenAI SDK's stream helper requires before
//! anything else.

use std::io::Write as _;

use serde_json::{Value, json};

use super::{
    ItemIds, Kind, call_item, ending, envelope, message_item, output_text, reasoning_item,
    response_json,
};
use crate::json::write_str;
use crate::translate::stream::{Encoder, Event, write_event};
use crate::translate::{Part, Response};

/// Writes a Responses event stream for a client.
pub struct ResponsesEncoder {
    id: String,
    model: String,
    created: u64,
    events: Events,
    started: bool,
    /// A terminal event (`response.completed`, `incomplete` or `failed`) went out: a stream
    /// has one, and nothing follows it.
    finished: bool,
    /// The answer so far, one part per output item.
    answer: Response,
    /// Each item's id, by output index.
    item_ids: Vec<String>,
    numbering: ItemIds,
    /// The message or reasoning item being written, by output index.
    current: Option<usize>,
    /// Function-call items still open (the call's index, the item's): their arguments may
    /// come interleaved with other calls' until the end.
    calls: Vec<(usize, usize)>,
}

/// Numbers a stream's events and writes them.
struct Events {
    next: u64,
}

impl Events {
    /// One event: its `type` and `sequence_number`, then the members `body` writes (each
    /// after a comma).
    fn write(&mut self, out: &mut Vec<u8>, name: &str, body: impl FnOnce(&mut Vec<u8>)) {
        let sequence = self.next;
        self.next += 1;
        write_event(out, Some(name), |out| {
            write!(out, "{{\"type\":\"{name}\",\"sequence_number\":{sequence}")
                .expect("a Vec takes every write");
            body(out);
            out.push(b'}');
        });
    }

    /// An event about one item: its `item_id` and `output_index`, then what `body` writes.
    fn item(
        &mut self,
        out: &mut Vec<u8>,
        name: &str,
        (item_id, index): (&str, usize),
        body: impl FnOnce(&mut Vec<u8>),
    ) {
        self.write(out, name, |out| {
            out.extend_from_slice(b",\"item_id\":");
            write_str(out, item_id);
            write!(out, ",\"output_index\":{index}").expect("a Vec takes every write");
            body(out);
        });
    }

    /// An event carrying `value` under `key`, after the item's `output_index` if there is one.
    fn value(
        &mut self,
        out: &mut Vec<u8>,
        name: &str,
        index: Option<usize>,
        key: &str,
        value: &Value,
    ) {
        self.write(out, name, |out| {
            if let Some(index) = index {
                write!(out, ",\"output_index\":{index}").expect("a Vec takes every write");
            }
            write!(out, ",\"{key}\":").expect("a Vec takes every write");
            serde_json::to_writer(&mut *out, value).expect("writing to a Vec cannot fail");
        });
    }
}

impl ResponsesEncoder {
    pub fn new(id: &str, model: &str, created: u64) -> Self {
        Self {
            id: id.to_owned(),
            model: model.to_owned(),
            created,
            events: Events { next: 0 },
            started: false,
            finished: false,
            answer: Response::default(),
            item_ids: Vec::new(),
            numbering: ItemIds::default(),
            current: None,
            calls: Vec::new(),
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        let response = envelope(&self.id, &self.model, self.created, "in_progress");
        for name in ["response.created", "response.in_progress"] {
            self.events.value(out, name, None, "response", &response);
        }
    }

    /// A new output item holding `part`, announced as `added` makes it from its id.
    fn open(
        &mut self,
        part: Part,
        kind: Kind,
        added: impl FnOnce(&str) -> Value,
        out: &mut Vec<u8>,
    ) -> usize {
        let index = self.answer.parts.len();
        let item_id = self.numbering.next(&self.id, kind);
        let item = added(&item_id);
        self.answer.parts.push(part);
        self.item_ids.push(item_id);
        self.events.value(
            out,
            "response.output_item.added",
            Some(index),
            "item",
            &item,
        );
        index
    }

    /// The message item being written, opened now if another item is.
    fn message(&mut self, out: &mut Vec<u8>) -> usize {
        if let Some(index) = self.current
            && matches!(self.answer.parts[index], Part::Text { .. })
        {
            return index;
        }
        self.close_current(out);
        let empty = Part::Text {
            text: String::new(),
            cache: None,
        };
        let index = self.open(
            empty,
            Kind::Message,
            |id| message_item(id, [], "in_progress"),
            out,
        );
        let at = (self.item_ids[index].as_str(), index);
        self.events
            .item(out, "response.content_part.added", at, |out| {
                out.extend_from_slice(b",\"content_index\":0,\"part\":");
                serde_json::to_writer(&mut *out, &output_text(""))
                    .expect("writing to a Vec cannot fail");
            });
        self.current = Some(index);
        index
    }

    /// The reasoning item being written, opened now if another item is. A signature closes
    /// its item, so a current reasoning item is always one still open.
    fn reasoning(&mut self, out: &mut Vec<u8>) -> usize {
        if let Some(index) = self.current
            && matches!(self.answer.parts[index], Part::Thinking { .. })
        {
            return index;
        }
        self.close_current(out);
        let empty = Part::Thinking {
            text: String::new(),
            signature: None,
        };
        let index = self.open(
            empty,
            Kind::Reasoning,
            |id| reasoning_item(id, None, None),
            out,
        );
        let at = (self.item_ids[index].as_str(), index);
        self.events
            .item(out, "response.reasoning_summary_part.added", at, |out| {
                out.extend_from_slice(
                    b",\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":\"\"}",
                );
            });
        self.current = Some(index);
        index
    }

    /// An item's `status` when it is done: the last one of an answer cut off is incomplete.
    fn status(&self, index: usize) -> &'static str {
        let cut_off = ending(self.answer.stop.as_ref()).0 != "completed";
        if cut_off && index + 1 == self.answer.parts.len() {
            "incomplete"
        } else {
            "completed"
        }
    }

    fn close_current(&mut self, out: &mut Vec<u8>) {
        let Some(index) = self.current.take() else {
            return;
        };
        let status = self.status(index);
        let at = (self.item_ids[index].as_str(), index);
        let item = match &self.answer.parts[index] {
            Part::Text { text, .. } => {
                self.events
                    .item(out, "response.output_text.done", at, |out| {
                        out.extend_from_slice(b",\"content_index\":0,\"text\":");
                        write_str(out, text);
                        out.extend_from_slice(b",\"logprobs\":[]");
                    });
                self.events
                    .item(out, "response.content_part.done", at, |out| {
                        out.extend_from_slice(b",\"content_index\":0,\"part\":");
                        serde_json::to_writer(&mut *out, &output_text(text))
                            .expect("writing to a Vec cannot fail");
                    });
                message_item(at.0, [text.as_str()], status)
            }
            Part::Thinking { text, signature } => {
                self.events
                    .item(out, "response.reasoning_summary_text.done", at, |out| {
                        out.extend_from_slice(b",\"summary_index\":0,\"text\":");
                        write_str(out, text);
                    });
                self.events
                    .item(out, "response.reasoning_summary_part.done", at, |out| {
                        out.extend_from_slice(
                            b",\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":",
                        );
                        write_str(out, text);
                        out.push(b'}');
                    });
                reasoning_item(at.0, Some(text), signature.as_deref())
            }
            _ => return,
        };
        self.events
            .value(out, "response.output_item.done", Some(index), "item", &item);
    }

    fn close_call(&mut self, index: usize, out: &mut Vec<u8>) {
        let status = self.status(index);
        let at = (self.item_ids[index].as_str(), index);
        let Part::ToolCall {
            id,
            name,
            arguments,
        } = &self.answer.parts[index]
        else {
            return;
        };
        self.events
            .item(out, "response.function_call_arguments.done", at, |out| {
                out.extend_from_slice(b",\"arguments\":");
                write_str(out, arguments);
            });
        let item = call_item(at.0, id, name, arguments, status);
        self.events
            .value(out, "response.output_item.done", Some(index), "item", &item);
    }

    /// The terminal event: the whole response, as [`super::encode_response`] writes it, or
    /// as it stood when `error` ended it.
    fn finish(&mut self, error: Option<Value>, out: &mut Vec<u8>) {
        self.finished = true;
        let name = match (&error, ending(self.answer.stop.as_ref()).0) {
            (Some(_), _) => "response.failed",
            (None, "incomplete") => "response.incomplete",
            (None, _) => "response.completed",
        };
        let response = response_json(&self.answer, &self.id, &self.model, self.created, error);
        self.events.value(out, name, None, "response", &response);
    }
}

/// The code of an error of ours, among those Responses clients know.
fn error_code(status: u16) -> &'static str {
    match status {
        429 => "rate_limit_exceeded",
        _ => "server_error",
    }
}

impl Encoder for ResponsesEncoder {
    fn encode(&mut self, event: &Event, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        if !matches!(event, Event::Stop(_) | Event::Usage(_)) {
            self.start(out);
        }
        match event {
            Event::Text(text) => {
                let index = self.message(out);
                if let Part::Text { text: all, .. } = &mut self.answer.parts[index] {
                    all.push_str(text);
                }
                let at = (self.item_ids[index].as_str(), index);
                self.events
                    .item(out, "response.output_text.delta", at, |out| {
                        out.extend_from_slice(b",\"content_index\":0,\"delta\":");
                        write_str(out, text);
                        out.extend_from_slice(b",\"logprobs\":[]");
                    });
            }
            Event::Thinking(text) => {
                let index = self.reasoning(out);
                if let Part::Thinking { text: all, .. } = &mut self.answer.parts[index] {
                    all.push_str(text);
                }
                let at = (self.item_ids[index].as_str(), index);
                self.events
                    .item(out, "response.reasoning_summary_text.delta", at, |out| {
                        out.extend_from_slice(b",\"summary_index\":0,\"delta\":");
                        write_str(out, text);
                    });
            }
            Event::Signature(value) => {
                let index = self.reasoning(out);
                if let Part::Thinking { signature, .. } = &mut self.answer.parts[index] {
                    *signature = Some(value.clone());
                }
                self.close_current(out);
            }
            Event::RedactedThinking(data) => {
                self.close_current(out);
                let part = Part::RedactedThinking { data: data.clone() };
                let index = self.open(
                    part,
                    Kind::Reasoning,
                    |id| reasoning_item(id, None, None),
                    out,
                );
                let item = reasoning_item(&self.item_ids[index], None, Some(data));
                self.events
                    .value(out, "response.output_item.done", Some(index), "item", &item);
            }
            Event::ToolCall { index, id, name } => {
                self.close_current(out);
                let call = Part::ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    arguments: String::new(),
                };
                let added = |item_id: &str| call_item(item_id, id, name, "", "in_progress");
                let item = self.open(call, Kind::Call, added, out);
                self.calls.push((*index, item));
            }
            Event::ToolArguments { index, json } => {
                // Parallel calls may interleave their arguments; each delta names its item.
                let Some(&(_, item)) = self.calls.iter().find(|(call, _)| call == index) else {
                    return;
                };
                if let Part::ToolCall { arguments, .. } = &mut self.answer.parts[item] {
                    arguments.push_str(json);
                }
                let at = (self.item_ids[item].as_str(), item);
                self.events
                    .item(out, "response.function_call_arguments.delta", at, |out| {
                        out.extend_from_slice(b",\"delta\":");
                        write_str(out, json);
                    });
            }
            Event::Stop(stop) => self.answer.stop = Some(stop.clone()),
            Event::Usage(usage) => self.answer.usage = *usage,
            Event::Error { status, message } => {
                let code = error_code(*status);
                self.events.write(out, "error", |out| {
                    write!(out, ",\"code\":\"{code}\",\"message\":")
                        .expect("a Vec takes every write");
                    write_str(out, message);
                    out.extend_from_slice(b",\"param\":null");
                });
                self.finish(Some(json!({"code": code, "message": message})), out);
            }
            Event::Done => {
                self.close_current(out);
                for (_, item) in std::mem::take(&mut self.calls) {
                    self.close_call(item, out);
                }
                self.finish(None, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::translate::anthropic::stream::MessageDecoder;
    use crate::translate::openai::stream::ChunkDecoder;
    use crate::translate::responses::encode_response;
    use crate::translate::stream::tests::{ANTHROPIC, OPENAI, events, relay_all};
    use crate::translate::stream::{Decoder, Relay};
    use crate::translate::{StopReason, Usage};

    fn relay(decoder: Box<dyn Decoder>, input: &str) -> Vec<Value> {
        let encoder = Box::new(ResponsesEncoder::new("resp_1", "m", 7));
        let (out, _) = relay_all(Relay::new(decoder, encoder), input, usize::MAX);
        checked(&out)
    }

    fn encode(events: &[Event]) -> Vec<Value> {
        let mut encoder = ResponsesEncoder::new("resp_1", "m", 7);
        let mut out = Vec::new();
        for event in events {
            encoder.encode(event, &mut out);
        }
        checked(&out)
    }

    /// The events' data, checked for what every Responses event has: the data names its
    /// event, and sequence numbers count from 0.
    fn checked(bytes: &[u8]) -> Vec<Value> {
        events(bytes)
            .iter()
            .enumerate()
            .map(|(n, (name, data))| {
                let value: Value = serde_json::from_str(data).unwrap();
                assert_eq!(value["type"], name.as_str(), "the data names its event");
                assert_eq!(value["sequence_number"], n, "{name}");
                value
            })
            .collect()
    }

    fn names(events: &[Value]) -> Vec<&str> {
        events.iter().map(|e| e["type"].as_str().unwrap()).collect()
    }

    /// The output as the OpenAI SDK's stream helper accumulates it: items by `output_index`,
    /// content parts, text and argument deltas, then each item as its done event gives it.
    /// Every delta must name the item it belongs to.
    fn fold(events: &[Value]) -> Vec<Value> {
        let mut output: Vec<Value> = Vec::new();
        for event in events {
            let index = event["output_index"].as_u64().map(|i| i as usize);
            if let (Some(index), Some(id)) = (index, event["item_id"].as_str()) {
                assert_eq!(output[index]["id"], id, "{event}");
            }
            match event["type"].as_str().unwrap() {
                "response.output_item.added" => {
                    assert_eq!(index, Some(output.len()));
                    output.push(event["item"].clone());
                }
                "response.content_part.added" => {
                    let content = output[index.unwrap()]["content"].as_array_mut().unwrap();
                    assert_eq!(event["content_index"], content.len());
                    content.push(event["part"].clone());
                }
                "response.output_text.delta" => {
                    let part = &mut output[index.unwrap()]["content"][0];
                    part["text"] = format!(
                        "{}{}",
                        part["text"].as_str().unwrap(),
                        event["delta"].as_str().unwrap()
                    )
                    .into();
                }
                "response.function_call_arguments.delta" => {
                    let item = &mut output[index.unwrap()];
                    item["arguments"] = format!(
                        "{}{}",
                        item["arguments"].as_str().unwrap(),
                        event["delta"].as_str().unwrap()
                    )
                    .into();
                }
                "response.output_item.done" => {
                    let item = &mut output[index.unwrap()];
                    assert_eq!(item["id"], event["item"]["id"]);
                    if item["type"] == "message" {
                        assert_eq!(
                            item["content"], event["item"]["content"],
                            "the deltas add up"
                        );
                    }
                    if item["type"] == "function_call" {
                        assert_eq!(
                            item["arguments"], event["item"]["arguments"],
                            "the deltas add up"
                        );
                    }
                    *item = event["item"].clone();
                }
                _ => {}
            }
        }
        output
    }

    fn expected(response: &Response) -> Value {
        serde_json::from_slice(&encode_response(response, "resp_1", "m", 7)).unwrap()
    }

    fn call(id: &str, name: &str, arguments: &str) -> Part {
        Part::ToolCall {
            id: id.to_owned(),
            name: name.to_owned(),
            arguments: arguments.to_owned(),
        }
    }

    #[test]
    fn chat_chunks_to_responses_events() {
        let events = relay(Box::<ChunkDecoder>::default(), OPENAI);
        assert_eq!(
            names(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let created = &events[0]["response"];
        assert_eq!(created["status"], "in_progress");
        assert_eq!(created["output"], json!([]));
        assert_eq!(events[1]["response"], *created);
        assert_eq!(events[4]["delta"], "Hmm");
        assert_eq!(events[10]["delta"], "Sure: ");
        assert_eq!(events[10]["logprobs"], json!([]));
        assert_eq!(
            events[14]["item"],
            json!({"id": "fc_resp_1_0", "type": "function_call", "status": "in_progress",
                   "call_id": "call_a", "name": "get_weather", "arguments": ""})
        );
        let args: Value = serde_json::from_str(events[19]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"city": "Paris"}));

        let answer = Response {
            parts: vec![
                Part::Thinking {
                    text: "Hmm".to_owned(),
                    signature: None,
                },
                Part::Text {
                    text: "Sure: ".to_owned(),
                    cache: None,
                },
                call("call_a", "get_weather", r#"{"city":"Paris"}"#),
                call("call_b", "now", "{}"),
            ],
            stop: Some(StopReason::ToolUse),
            usage: Usage {
                input: 22,
                output: 17,
                cache_read: 8,
                cache_write: 0,
                reasoning: 3,
            },
        };
        let completed = &events.last().unwrap()["response"];
        assert_eq!(*completed, expected(&answer));
        assert_eq!(
            fold(&events),
            completed["output"].as_array().unwrap().clone()
        );
    }

    #[test]
    fn a_messages_stream_to_responses_events() {
        let events = relay(Box::<MessageDecoder>::default(), ANTHROPIC);
        let answer = Response {
            parts: vec![
                Part::Thinking {
                    text: "Let me think.".to_owned(),
                    signature: Some("c2lnbmF0dXJl".to_owned()),
                },
                Part::Text {
                    text: "Checking \"Paris\".".to_owned(),
                    cache: None,
                },
                call(
                    "toolu_1",
                    "get_weather",
                    r#"{"city": "Paris", "unit": "c"}"#,
                ),
                call("toolu_2", "now", "{}"),
            ],
            stop: Some(StopReason::ToolUse),
            usage: Usage {
                input: 25,
                output: 42,
                cache_read: 10,
                cache_write: 0,
                reasoning: 0,
            },
        };
        let completed = events.last().unwrap();
        assert_eq!(completed["type"], "response.completed");
        assert_eq!(completed["response"], expected(&answer));
        let output = fold(&events);
        assert_eq!(
            output,
            completed["response"]["output"].as_array().unwrap().clone()
        );
        // The signature closes the reasoning item and comes back as its encrypted content.
        assert_eq!(output[0]["encrypted_content"], "c2lnbmF0dXJl");
        let text: String = events
            .iter()
            .filter(|e| e["type"] == "response.reasoning_summary_text.delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        assert_eq!(text, "Let me think.");
    }

    #[test]
    fn interleaved_arguments_of_parallel_calls_land_in_their_items() {
        let arguments = |index: usize, json: &str| Event::ToolArguments {
            index,
            json: json.to_owned(),
        };
        let events = encode(&[
            Event::ToolCall {
                index: 0,
                id: "a".to_owned(),
                name: "f".to_owned(),
            },
            Event::ToolCall {
                index: 1,
                id: "b".to_owned(),
                name: "g".to_owned(),
            },
            arguments(1, r#"{"y""#),
            arguments(0, r#"{"x""#),
            arguments(0, ":1}"),
            arguments(1, ":2}"),
            Event::Stop(StopReason::ToolUse),
            Event::Done,
        ]);
        let output = fold(&events);
        assert_eq!(output[0]["arguments"], r#"{"x":1}"#);
        assert_eq!(output[1]["arguments"], r#"{"y":2}"#);
        assert_eq!(events.last().unwrap()["response"]["output"], json!(output));
    }

    #[test]
    fn a_max_tokens_stop_gives_an_incomplete_response() {
        let events = encode(&[
            Event::Text("Once upon".to_owned()),
            Event::Stop(StopReason::MaxTokens),
            Event::Usage(Usage {
                input: 5,
                output: 2,
                ..Usage::default()
            }),
            Event::Done,
        ]);
        let last = events.last().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(last["response"]["status"], "incomplete");
        assert_eq!(
            last["response"]["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        let done = &events[events.len() - 2];
        assert_eq!(done["type"], "response.output_item.done");
        assert_eq!(done["item"]["status"], "incomplete");
        assert_eq!(last["response"]["output"], json!([done["item"]]));
        assert_eq!(last["response"]["usage"]["total_tokens"], 7);
    }

    #[test]
    fn errors_end_the_stream_with_an_error_and_a_failed_response() {
        let input = crate::translate::stream::tests::ANTHROPIC_OVERLOADED;
        let events = relay(Box::<MessageDecoder>::default(), input);
        let n = events.len();
        assert_eq!(
            events[n - 2],
            json!({"type": "error", "sequence_number": n - 2, "code": "server_error",
                   "message": "Overloaded", "param": null})
        );
        let failed = &events[n - 1];
        assert_eq!(failed["type"], "response.failed");
        assert_eq!(failed["response"]["status"], "failed");
        assert_eq!(
            failed["response"]["error"],
            json!({"code": "server_error", "message": "Overloaded"})
        );
        assert_eq!(failed["response"]["output"][0]["content"][0]["text"], "Hi");

        // An error of ours before anything came still follows `response.created`, and ends
        // the stream: nothing is written after it.
        let events = encode(&[
            Event::Error {
                status: 429,
                message: "Rate limited".to_owned(),
            },
            Event::Done,
        ]);
        assert_eq!(
            names(&events),
            [
                "response.created",
                "response.in_progress",
                "error",
                "response.failed"
            ]
        );
        assert_eq!(events[2]["code"], "rate_limit_exceeded");
    }

    #[test]
    fn redacted_thinking_is_a_reasoning_item_with_no_summary() {
        let events = encode(&[
            Event::Thinking("a".to_owned()),
            Event::RedactedThinking("opaque".to_owned()),
            Event::Thinking("b".to_owned()),
            Event::Done,
        ]);
        let output = fold(&events);
        assert_eq!(
            output,
            [
                json!({"id": "rs_resp_1_0", "type": "reasoning",
                       "summary": [{"type": "summary_text", "text": "a"}]}),
                json!({"id": "rs_resp_1_1", "type": "reasoning", "summary": [],
                       "encrypted_content": "opaque"}),
                json!({"id": "rs_resp_1_2", "type": "reasoning",
                       "summary": [{"type": "summary_text", "text": "b"}]}),
            ]
        );
        assert_eq!(events.last().unwrap()["response"]["output"], json!(output));
    }

    #[test]
    fn every_split_of_the_upstream_gives_the_same_client_stream() {
        let make = || {
            Relay::new(
                Box::<ChunkDecoder>::default(),
                Box::new(ResponsesEncoder::new("resp_1", "m", 7)),
            )
        };
        let (whole, _) = relay_all(make(), OPENAI, usize::MAX);
        for split in [1, 3, 64] {
            let (pieces, _) = relay_all(make(), OPENAI, split);
            assert_eq!(events(&pieces), events(&whole), "split {split}");
        }
    }
}
