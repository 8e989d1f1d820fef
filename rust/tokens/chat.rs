//! Prompt-token count of a chat request: message text plus `OpenAI`'s per-message framing.

use std::borrow::Cow;

use serde_json::Value;

use super::Encoding;

/// Framing tokens around every message (`<|start|>{role}<|message|>…<|end|>`), per `OpenAI`'s cookbook.
const TOKENS_PER_MESSAGE: usize = 3;
/// Extra token when a message carries a `name` (or a tool message's `tool_call_id`).
const TOKENS_PER_NAME: usize = 1;
/// `<|start|>assistant<|message|>` that primes the reply.
const REPLY_PRIMING: usize = 3;
/// Per function/tool call overhead, the heuristic tiktoken-rs uses.
const TOKENS_PER_CALL: usize = 1;
/// Fixed estimate for an image, audio or file content part: the base cost of a low-detail image
/// on gpt-4o. The real cost depends on resolution/duration, which is not decoded here; billing
/// uses the provider-reported usage.
pub const MEDIA_PART_TOKENS: usize = 85;

/// Prompt tokens of an `OpenAI` chat request's `messages`, with `OpenAI`'s chat framing: 3 per
/// message, 1 per `name`, 3 for the reply priming (the gpt-4o / gpt-4 family rule of `OpenAI`'s
/// cookbook and tiktoken-rs's `num_tokens_from_messages`).
///
/// `content` may be a string or an array of parts: text parts are joined and counted (as
/// tiktoken-rs does), image/audio/file parts add [`MEDIA_PART_TOKENS`] each. `tool_calls` and
/// `function_call` count name + arguments + 1 per call; `tool_call_id` counts like a `name`.
/// Any other shape or field is counted by its JSON text rather than ignored. Special-token
/// strings in content count as plain text, as the API encodes them.
pub fn count_chat_messages(encoding: Encoding, messages: &[Value]) -> usize {
    let framed: usize = messages
        .iter()
        .map(|message| TOKENS_PER_MESSAGE + message_tokens(encoding, message))
        .sum();
    framed + REPLY_PRIMING
}

/// [`count_chat_messages`] for `messages` given as JSON text, when every message holds only a
/// string `role`, a string (or null) `content` and an optional string `name` — the common
/// shape, counted from the text as it is, without building a JSON tree. None for any other
/// shape, which the general count handles.
pub fn count_plain_chat(encoding: Encoding, messages: &str) -> Option<usize> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Plain<'a> {
        #[serde(borrow)]
        role: Cow<'a, str>,
        #[serde(borrow, default)]
        content: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        name: Option<Cow<'a, str>>,
    }
    let messages: Vec<Plain> = serde_json::from_str(messages).ok()?;
    let framed: usize = messages
        .iter()
        .map(|m| {
            TOKENS_PER_MESSAGE
                + encoding.count(&m.role)
                + m.content.as_deref().map_or(0, |c| encoding.count(c))
                + m.name
                    .as_deref()
                    .map_or(0, |n| encoding.count(n) + TOKENS_PER_NAME)
        })
        .sum();
    Some(framed + REPLY_PRIMING)
}

fn message_tokens(encoding: Encoding, message: &Value) -> usize {
    let Value::Object(fields) = message else {
        return json_tokens(encoding, message);
    };
    fields
        .iter()
        .map(|(key, value)| match key.as_str() {
            "content" => content_tokens(encoding, value),
            "name" | "tool_call_id" if !value.is_null() => {
                text_tokens(encoding, value) + TOKENS_PER_NAME
            }
            "tool_calls" => match value {
                Value::Array(calls) => calls.iter().map(|c| tool_call_tokens(encoding, c)).sum(),
                other => text_tokens(encoding, other),
            },
            "function_call" => function_tokens(encoding, value),
            // role, refusal and anything unrecognised.
            _ => text_tokens(encoding, value),
        })
        .sum()
}

/// A string counts as its text, null as nothing, anything else as its JSON text.
fn text_tokens(encoding: Encoding, value: &Value) -> usize {
    match value {
        Value::String(text) => encoding.count(text),
        Value::Null => 0,
        other => json_tokens(encoding, other),
    }
}

fn json_tokens(encoding: Encoding, value: &Value) -> usize {
    encoding.count(&value.to_string())
}

fn content_tokens(encoding: Encoding, content: &Value) -> usize {
    let Value::Array(parts) = content else {
        return text_tokens(encoding, content);
    };
    let mut text = String::new();
    let mut refusal = String::new();
    let mut other = 0;
    for part in parts {
        let field = |name: &str| part.get(name).and_then(Value::as_str);
        match (
            part.get("type").and_then(Value::as_str),
            field("text"),
            field("refusal"),
        ) {
            (Some("text"), Some(part_text), _) => text.push_str(part_text),
            (Some("refusal"), _, Some(part_refusal)) => refusal.push_str(part_refusal),
            (Some("image_url" | "input_audio" | "file"), _, _) => other += MEDIA_PART_TOKENS,
            _ => other += json_tokens(encoding, part),
        }
    }
    encoding.count(&text) + encoding.count(&refusal) + other
}

fn tool_call_tokens(encoding: Encoding, call: &Value) -> usize {
    match call.get("function").or_else(|| call.get("custom")) {
        Some(function @ Value::Object(_)) => function_tokens(encoding, function),
        _ => json_tokens(encoding, call) + TOKENS_PER_CALL,
    }
}

/// `{name, arguments}` (or a custom tool's `{name, input}`) plus the per-call overhead.
fn function_tokens(encoding: Encoding, function: &Value) -> usize {
    let Value::Object(fields) = function else {
        return text_tokens(encoding, function);
    };
    let arguments = fields.get("arguments").or_else(|| fields.get("input"));
    fields
        .get("name")
        .map_or(0, |name| text_tokens(encoding, name))
        + arguments.map_or(0, |args| text_tokens(encoding, args))
        + TOKENS_PER_CALL
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tiktoken_rs::{ChatCompletionRequestMessage, FunctionCall};

    /// tiktoken-rs's view of the messages used here (`tool_call_id` maps to `name`, as its
    /// async-openai adapter does; array content is pre-joined by the caller).
    fn tiktoken_messages(messages: &[Value]) -> Vec<ChatCompletionRequestMessage> {
        let text = |m: &Value, key: &str| m.get(key).and_then(Value::as_str).map(str::to_owned);
        let call = |f: &Value| FunctionCall {
            name: text(f, "name").unwrap_or_default(),
            arguments: text(f, "arguments").unwrap_or_default(),
        };
        messages
            .iter()
            .map(|m| ChatCompletionRequestMessage {
                role: text(m, "role").unwrap_or_default(),
                content: text(m, "content"),
                name: text(m, "name").or_else(|| text(m, "tool_call_id")),
                function_call: m.get("function_call").map(call),
                tool_calls: m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .map(|calls| calls.iter().map(|c| call(&c["function"])).collect())
                    .unwrap_or_default(),
                refusal: text(m, "refusal"),
            })
            .collect()
    }

    #[track_caller]
    fn assert_chat_same_as_tiktoken(messages: &[Value]) {
        let theirs = tiktoken_messages(messages);
        for (encoding, model) in [
            (Encoding::O200kBase, "gpt-4o"),
            (Encoding::Cl100kBase, "gpt-4"),
        ] {
            let expected = tiktoken_rs::num_tokens_from_messages(model, &theirs).unwrap();
            assert_eq!(count_chat_messages(encoding, messages), expected, "{model}");
        }
    }

    fn cookbook_example() -> Vec<Value> {
        vec![
            json!({"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."}),
            json!({"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."}),
            json!({"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."}),
            json!({"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."}),
            json!({"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."}),
            json!({"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."}),
        ]
    }

    #[test]
    fn plain_messages_count_the_same_from_their_text() {
        let mut shapes = vec![cookbook_example(), Vec::new()];
        shapes.push(vec![
            json!({"role": "user", "content": "Quote: \"é\" \\ \u{e9} 👍"}),
            json!({"role": "assistant", "content": null}),
        ]);
        for messages in shapes {
            let text = serde_json::to_string(&messages).unwrap();
            for encoding in [Encoding::O200kBase, Encoding::Cl100kBase] {
                assert_eq!(
                    count_plain_chat(encoding, &text),
                    Some(count_chat_messages(encoding, &messages))
                );
            }
        }
        for other in [
            r#"[{"role":"user","content":[{"type":"text","text":"hi"}]}]"#,
            r#"[{"role":"assistant","content":null,"tool_calls":[]}]"#,
            r#"[{"role":"tool","tool_call_id":"c","content":"x"}]"#,
        ] {
            assert_eq!(
                count_plain_chat(Encoding::O200kBase, other),
                None,
                "{other}"
            );
        }
    }

    #[test]
    fn cookbook_example_counts() {
        // OpenAI's cookbook: 129 prompt tokens on gpt-4 (cl100k), 124 on gpt-4o (o200k).
        let messages = cookbook_example();
        assert_eq!(count_chat_messages(Encoding::Cl100kBase, &messages), 129);
        assert_eq!(count_chat_messages(Encoding::O200kBase, &messages), 124);
        assert_chat_same_as_tiktoken(&messages);
    }

    #[test]
    fn function_call_example_counts() {
        // tiktoken-rs's case validated against the OpenAI API (78 prompt tokens on gpt-4-0613).
        let messages = vec![
            json!({"role": "system", "content": "You are a friendly chatbot.\n"}),
            json!({"role": "assistant", "content": "Hello, I am a friendly chatbot!\n"}),
            json!({"role": "user", "content": "What is the weather in New York?"}),
            json!({"role": "assistant", "content": "", "function_call": {"name": "get_weather", "arguments": "{\n  \"city\": \"New York\"\n}"}}),
            json!({"role": "function", "name": "get_weather", "content": "{\"temperature\": 72, \"conditions\": \"partly_cloudy\"}"}),
        ];
        assert_eq!(count_chat_messages(Encoding::Cl100kBase, &messages), 78);
        assert_chat_same_as_tiktoken(&messages);
    }

    #[test]
    fn chat_shapes_match_tiktoken() {
        assert_chat_same_as_tiktoken(&[]);
        assert_chat_same_as_tiktoken(&[json!({"role": "user", "content": "Hello, world!"})]);
        assert_chat_same_as_tiktoken(&[
            json!({"role": "developer", "content": "Answer in JSON. 日本語で 👍"}),
            json!({"role": "user", "content": "Weather in Paris and London?"}),
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"London\"}"}}
            ]}),
            json!({"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 18}"}),
            json!({"role": "tool", "tool_call_id": "call_2", "content": "{\"temp\": 12}"}),
            json!({"role": "assistant", "refusal": "I cannot help with that request."}),
            json!({"role": "user", "name": "alice", "content": "   \n\n  1234567890  \n"}),
        ]);
    }

    #[test]
    fn content_parts() {
        let enc = Encoding::O200kBase;
        let plain = [json!({"role": "user", "content": "What is in this image? Describe it."})];
        let parts = [json!({"role": "user", "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "text", "text": " Describe it."},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
        ]})];
        assert_eq!(
            count_chat_messages(enc, &parts),
            count_chat_messages(enc, &plain) + 2 * MEDIA_PART_TOKENS
        );
        // Refusal parts count like a `refusal` field.
        let refusal_part =
            [json!({"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]})];
        let refusal_field = [json!({"role": "assistant", "refusal": "No."})];
        assert_eq!(
            count_chat_messages(enc, &refusal_part),
            count_chat_messages(enc, &refusal_field)
        );
    }

    #[test]
    fn unknown_shapes_are_counted_as_json() {
        let enc = Encoding::Cl100kBase;
        let empty = count_chat_messages(enc, &[json!({})]);
        assert_eq!(empty, TOKENS_PER_MESSAGE + REPLY_PRIMING);

        let odd_part = json!({"type": "video", "frames": 12});
        let with_odd_part = [json!({"content": [odd_part]})];
        assert_eq!(
            count_chat_messages(enc, &with_odd_part),
            empty + enc.count(&odd_part.to_string())
        );

        let extra = [json!({"reasoning_content": "think", "metadata": {"k": 1}})];
        assert_eq!(
            count_chat_messages(enc, &extra),
            empty + enc.count("think") + enc.count(r#"{"k":1}"#)
        );

        let bare = [json!("just a string")];
        assert_eq!(
            count_chat_messages(enc, &bare),
            empty + enc.count("\"just a string\"")
        );

        let odd_call = json!({"id": "c", "type": "mystery"});
        let with_odd_call = [json!({"tool_calls": [odd_call]})];
        assert_eq!(
            count_chat_messages(enc, &with_odd_call),
            empty + enc.count(&odd_call.to_string()) + TOKENS_PER_CALL
        );

        let custom = [
            json!({"tool_calls": [{"type": "custom", "custom": {"name": "sh", "input": "ls -la"}}]}),
        ];
        assert_eq!(
            count_chat_messages(enc, &custom),
            empty + enc.count("sh") + enc.count("ls -la") + TOKENS_PER_CALL
        );
    }

    #[test]
    fn special_token_strings_in_messages_count_as_text() {
        let enc = Encoding::O200kBase;
        let messages = [json!({"role": "user", "content": "<|endoftext|>"})];
        assert_eq!(
            count_chat_messages(enc, &messages),
            TOKENS_PER_MESSAGE + enc.count("user") + enc.count("<|endoftext|>") + REPLY_PRIMING
        );
    }
}
