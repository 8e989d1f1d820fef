//! OpenAI Chat Completions (`POST /v1/chat/completions`) to and from the neutral request.

use serde_json::{Map, Value, json};

use super::{CacheControl, Media, OutputFormat, Part, Request, Role, ToolChoice};

/// A request for an OpenAI-compatible channel, with what it could not carry.
pub struct Encoded {
    pub body: Vec<u8>,
    /// Paths (in the neutral request's terms) of content no Chat Completions field holds.
    pub dropped: Vec<String>,
}

/// Encode for `upstream_model`. Streams ask for the usage chunk: metering needs it.
pub fn encode_request(request: &Request, upstream_model: &str) -> Encoded {
    let mut dropped = Vec::new();
    let mut body = Map::new();
    body.insert("model".into(), upstream_model.into());
    let mut messages = Vec::new();
    if !request.system.is_empty() {
        messages.push(json!({
            "role": "system",
            "content": content(&request.system, "system", &mut dropped),
        }));
    }
    for (i, message) in request.messages.iter().enumerate() {
        let path = format!("messages.{i}");
        match message.role {
            Role::User => user_messages(&message.parts, &path, &mut messages, &mut dropped),
            Role::Assistant => {
                messages.push(assistant_message(&message.parts, &path, &mut dropped));
            }
        }
    }
    body.insert("messages".into(), Value::Array(messages));
    if let Some(max) = request.max_tokens {
        body.insert("max_completion_tokens".into(), max.into());
    }
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), t.into());
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), p.into());
    }
    if request.top_k.is_some() {
        dropped.push("top_k".to_owned());
    }
    if !request.stop.is_empty() {
        body.insert("stop".into(), request.stop.clone().into());
    }
    if request.stream {
        body.insert("stream".into(), true.into());
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    encode_tools(request, &mut body);
    if let Some(reasoning) = request.reasoning {
        // Thinking turned off is the default of models that have it, and an error on models
        // that do not: nothing to send.
        let effort = reasoning.effort();
        if effort != super::Effort::None {
            body.insert("reasoning_effort".into(), effort.as_str().into());
        }
    }
    if let Some(format) = response_format(request.output.as_ref()) {
        body.insert("response_format".into(), format);
    }
    if request.web_search {
        body.insert("web_search_options".into(), json!({}));
    }
    let body = serde_json::to_vec(&Value::Object(body)).expect("a JSON value always serializes");
    Encoded { body, dropped }
}

/// `tools`, `tool_choice` and `parallel_tool_calls` (which OpenAI accepts only beside tools).
fn encode_tools(request: &Request, body: &mut Map<String, Value>) {
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                let mut function = Map::new();
                function.insert("name".into(), tool.name.clone().into());
                if let Some(d) = &tool.description {
                    function.insert("description".into(), d.clone().into());
                }
                function.insert("parameters".into(), raw_json(&tool.parameters));
                let mut entry = json!({"type": "function", "function": function});
                if let Some(cache) = &tool.cache {
                    entry["cache_control"] = cache_json(cache);
                }
                entry
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &request.tool_choice {
        let value = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Named(name) => json!({"type": "function", "function": {"name": name}}),
        };
        body.insert("tool_choice".into(), value);
    }
    if let Some(parallel) = request.parallel_tool_calls
        && !request.tools.is_empty()
    {
        body.insert("parallel_tool_calls".into(), parallel.into());
    }
}
fn response_format(output: Option<&OutputFormat>) -> Option<Value> {
    Some(match output? {
        OutputFormat::JsonObject => json!({"type": "json_object"}),
        OutputFormat::JsonSchema {
            name,
            schema,
            strict,
        } => {
            let mut spec = Map::new();
            spec.insert(
                "name".into(),
                name.clone().unwrap_or_else(|| "response".to_owned()).into(),
            );
            spec.insert("schema".into(), raw_json(schema));
            if let Some(strict) = strict {
                spec.insert("strict".into(), (*strict).into());
            }
            json!({"type": "json_schema", "json_schema": spec})
        }
    })
}

/// JSON text held by the neutral request (validated when it was decoded).
fn raw_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn cache_json(cache: &CacheControl) -> Value {
    match &cache.ttl {
        Some(ttl) => json!({"type": "ephemeral", "ttl": ttl}),
        None => json!({"type": "ephemeral"}),
    }
}

/// A message's `content`: a plain string when it is one uncached text, parts otherwise.
fn content(parts: &[Part], path: &str, dropped: &mut Vec<String>) -> Value {
    if let [Part::Text { text, cache: None }] = parts {
        return Value::String(text.clone());
    }
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let (mut value, cache) = match part {
            Part::Text { text, cache } => (json!({"type": "text", "text": text}), cache),
            Part::Image { source, cache } => (
                json!({"type": "image_url", "image_url": {"url": source.to_url()}}),
                cache,
            ),
            Part::Document {
                source: source @ (Media::Base64 { .. } | Media::Text { .. }),
                title,
                cache,
            } => {
                let mut file = Map::new();
                file.insert("file_data".into(), source.to_url().into());
                file.insert(
                    "filename".into(),
                    title
                        .clone()
                        .unwrap_or_else(|| "document".to_owned())
                        .into(),
                );
                (json!({"type": "file", "file": file}), cache)
            }
            _ => {
                dropped.push(format!("{path}.{i}"));
                continue;
            }
        };
        if let Some(cache) = cache {
            value["cache_control"] = cache_json(cache);
        }
        out.push(value);
    }
    Value::Array(out)
}

/// A user turn: its tool results become `tool` messages (which must follow the assistant's
/// calls directly), the rest one user message after them.
fn user_messages(parts: &[Part], path: &str, messages: &mut Vec<Value>, dropped: &mut Vec<String>) {
    let mut rest = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        match part {
            Part::ToolResult {
                call_id,
                content: result,
                ..
            } => {
                // A tool message holds text only; images in the result follow as user content.
                let text: Vec<&Part> = result
                    .iter()
                    .filter(|p| matches!(p, Part::Text { .. }))
                    .collect();
                let body = match text.as_slice() {
                    [Part::Text { text, .. }] => Value::String(text.clone()),
                    _ => Value::Array(
                        text.iter()
                            .map(|p| match p {
                                Part::Text { text, .. } => json!({"type": "text", "text": text}),
                                _ => unreachable!("filtered to text"),
                            })
                            .collect(),
                    ),
                };
                messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": body}));
                rest.extend(
                    result
                        .iter()
                        .filter(|p| matches!(p, Part::Image { .. }))
                        .cloned(),
                );
            }
            Part::Thinking { .. } | Part::RedactedThinking { .. } | Part::ToolCall { .. } => {
                dropped.push(format!("{path}.{i}"));
            }
            other => rest.push(other.clone()),
        }
    }
    if !rest.is_empty() {
        messages.push(json!({"role": "user", "content": content(&rest, path, dropped)}));
    }
}

fn assistant_message(parts: &[Part], path: &str, dropped: &mut Vec<String>) -> Value {
    let mut text = String::new();
    let mut calls = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        match part {
            Part::Text { text: t, .. } => text.push_str(t),
            Part::ToolCall {
                id,
                name,
                arguments,
            } => calls.push(json!({
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            })),
            // Reasoning is the provider's own: OpenAI-compatible APIs take none back (some
            // reject it), and it means nothing to another model.
            _ => dropped.push(format!("{path}.{i}")),
        }
    }
    let mut message = json!({"role": "assistant"});
    message["content"] = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::anthropic;

    fn encode(anthropic_body: &str) -> (Value, Vec<String>) {
        let request = anthropic::decode_request(anthropic_body.as_bytes()).unwrap();
        let encoded = encode_request(&request, "gpt-4o-mini");
        (
            serde_json::from_slice(&encoded.body).unwrap(),
            encoded.dropped,
        )
    }

    #[test]
    fn plain_conversation() {
        let (body, dropped) = encode(
            r#"{"model":"openai/gpt-4o-mini","max_tokens":256,"system":"Be brief.",
                "messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"},
                            {"role":"user","content":[{"type":"text","text":"More"}]}],
                "temperature":0.2,"top_k":5,"stop_sequences":["x"],"stream":true}"#,
        );
        assert_eq!(
            body,
            json!({
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello"},
                    {"role": "user", "content": "More"},
                ],
                "max_completion_tokens": 256,
                "temperature": 0.2,
                "stop": ["x"],
                "stream": true,
                "stream_options": {"include_usage": true},
            })
        );
        assert_eq!(dropped, vec!["top_k".to_owned()]);
    }

    #[test]
    fn tools_results_images_and_reasoning() {
        let (body, dropped) = encode(
            r#"{"model":"m","max_tokens":8000,
                "tools":[{"name":"get_weather","description":"Weather","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral"}}],
                "tool_choice":{"type":"tool","name":"get_weather","disable_parallel_tool_use":true},
                "thinking":{"type":"enabled","budget_tokens":5000},
                "output_config":{"format":{"type":"json_schema","schema":{"type":"object"}}},
                "messages":[
                  {"role":"user","content":[
                     {"type":"text","text":"Look","cache_control":{"type":"ephemeral","ttl":"1h"}},
                     {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAA="}}]},
                  {"role":"assistant","content":[
                     {"type":"thinking","thinking":"hmm","signature":"s"},
                     {"type":"tool_use","id":"t1","name":"get_weather","input":{"city":"Paris"}}]},
                  {"role":"user","content":[
                     {"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"18C"},
                        {"type":"image","source":{"type":"url","url":"https://x/y.png"}}]},
                     {"type":"text","text":"Thanks"}]}]}"#,
        );
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": [
                    {"type": "text", "text": "Look", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA="}},
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "t1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                ]},
                {"role": "tool", "tool_call_id": "t1", "content": "18C"},
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                    {"type": "text", "text": "Thanks"},
                ]},
            ])
        );
        assert_eq!(
            body["tools"],
            json!([{"type": "function", "cache_control": {"type": "ephemeral"},
                    "function": {"name": "get_weather", "description": "Weather",
                                 "parameters": {"type": "object"}}}])
        );
        assert_eq!(
            body["tool_choice"],
            json!({"type": "function", "function": {"name": "get_weather"}})
        );
        assert_eq!(body["parallel_tool_calls"], json!(false));
        assert_eq!(body["reasoning_effort"], json!("medium"));
        assert_eq!(
            body["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "response", "schema": {"type": "object"}}})
        );
        assert_eq!(dropped, vec!["messages.1.0".to_owned()]);
    }

    #[test]
    fn documents_and_web_search() {
        let (body, dropped) = encode(
            r#"{"model":"m","max_tokens":10,
                "tools":[{"type":"web_search_20250305","name":"web_search"}],
                "messages":[{"role":"user","content":[
                   {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBE"},"title":"r.pdf"},
                   {"type":"document","source":{"type":"text","media_type":"text/plain","data":"foo"}},
                   {"type":"document","source":{"type":"url","url":"https://x/d.pdf"}}]}]}"#,
        );
        assert_eq!(
            body["messages"][0]["content"],
            json!([
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "r.pdf"}},
                {"type": "file", "file": {"file_data": "data:text/plain;base64,Zm9v", "filename": "document"}},
            ])
        );
        assert_eq!(body["web_search_options"], json!({}));
        assert!(body.get("tools").is_none());
        assert_eq!(dropped, vec!["messages.0.2".to_owned()]);
    }

    #[test]
    fn disabled_thinking_and_any_tool_choice() {
        let (body, _) = encode(
            r#"{"model":"m","max_tokens":10,"thinking":{"type":"disabled"},
                "tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"any"},
                "messages":[{"role":"user","content":"x"}]}"#,
        );
        assert!(body.get("reasoning_effort").is_none());
        assert_eq!(body["tool_choice"], json!("required"));
        assert!(body.get("parallel_tool_calls").is_none());
    }
}
