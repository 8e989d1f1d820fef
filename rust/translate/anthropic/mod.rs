//! Anthropic Messages (`POST /v1/messages`) to and from the neutral request and response.

pub mod stream;

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::{
    CacheControl, Encoded, Invalid, Media, Message, OutputFormat, Part, Reasoning, Request,
    Response, Role, StopReason, Tool, ToolChoice, Usage, cache_json, parse, present, raw_json,
    render_parts, required, tool_input,
};

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    max_tokens: Option<u64>,
    #[serde(borrow)]
    messages: Option<Vec<&'a RawValue>>,
    #[serde(borrow)]
    system: Option<&'a RawValue>,
    #[serde(default)]
    stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    stream: Option<bool>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u64>,
    #[serde(borrow)]
    tools: Option<Vec<&'a RawValue>>,
    #[serde(borrow)]
    tool_choice: Option<&'a RawValue>,
    #[serde(borrow)]
    thinking: Option<&'a RawValue>,
    #[serde(borrow)]
    output_config: Option<&'a RawValue>,
    #[serde(borrow)]
    metadata: Option<&'a RawValue>,
    #[serde(borrow)]
    service_tier: Option<&'a RawValue>,
}

/// Decode a Messages request body.
pub fn decode_request(body: &[u8]) -> Result<Request, Invalid> {
    decode(body, true)
}

/// Decode a `count_tokens` request: a Messages request without `max_tokens`.
pub fn decode_count_request(body: &[u8]) -> Result<Request, Invalid> {
    decode(body, false)
}

fn decode(body: &[u8], max_tokens_required: bool) -> Result<Request, Invalid> {
    let body: Body = serde_json::from_slice(body)
        .map_err(|e| Invalid::new("", format!("the body is not a valid Messages request: {e}")))?;
    let model = match body.model {
        Some(m) if !m.is_empty() => m.into_owned(),
        _ => return Err(Invalid::new("model", "Field required")),
    };
    let max_tokens = match body.max_tokens {
        Some(n) => n,
        None if max_tokens_required => return Err(Invalid::new("max_tokens", "Field required")),
        None => u64::MAX,
    };
    if max_tokens == 0 {
        return Err(Invalid::new("max_tokens", "must be at least 1"));
    }
    let Some(raw_messages) = body.messages else {
        return Err(Invalid::new("messages", "Field required"));
    };
    if raw_messages.is_empty() {
        return Err(Invalid::new("messages", "must not be empty"));
    }
    let mut messages = Vec::with_capacity(raw_messages.len());
    for (i, raw) in raw_messages.iter().enumerate() {
        messages.push(decode_message(raw, &format!("messages.{i}"))?);
    }
    let system = match present(body.system) {
        None => Vec::new(),
        Some(raw) => decode_content(raw, "system")?
            .into_iter()
            .map(|part| match part {
                Part::Text { .. } => Ok(part),
                _ => Err(Invalid::new("system", "may hold text blocks only")),
            })
            .collect::<Result<_, _>>()?,
    };
    let mut request = Request {
        model,
        system,
        messages,
        max_tokens: body.max_tokens,
        temperature: body.temperature,
        top_p: body.top_p,
        top_k: body.top_k,
        stop: body.stop_sequences.unwrap_or_default(),
        stream: body.stream.unwrap_or(false),
        ..Request::default()
    };
    for (i, raw) in body.tools.unwrap_or_default().iter().enumerate() {
        decode_tool(raw, &format!("tools.{i}"), &mut request)?;
    }
    if let Some(raw) = present(body.tool_choice) {
        decode_tool_choice(raw, &mut request)?;
    }
    if let Some(raw) = present(body.thinking) {
        request.reasoning = Some(decode_thinking(raw, max_tokens)?);
    }
    if let Some(raw) = present(body.output_config) {
        request.output = decode_output_config(raw)?;
    }
    if body.metadata.is_some() {
        request.dropped.push("metadata".to_owned());
    }
    if body.service_tier.is_some() {
        request.dropped.push("service_tier".to_owned());
    }
    Ok(request)
}

#[derive(Deserialize)]
struct MessageBody<'a> {
    #[serde(borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
}

fn decode_message(raw: &RawValue, path: &str) -> Result<Message, Invalid> {
    let message: MessageBody = parse(raw, path, "an object with role and content")?;
    let role = match message.role.as_deref() {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some(other) => {
            return Err(Invalid::new(
                format!("{path}.role"),
                format!("must be 'user' or 'assistant', not '{other}'"),
            ));
        }
        None => return Err(Invalid::new(format!("{path}.role"), "Field required")),
    };
    let Some(content) = message.content else {
        return Err(Invalid::new(format!("{path}.content"), "Field required"));
    };
    let parts = decode_content(content, &format!("{path}.content"))?;
    Ok(Message { role, parts })
}

/// A string (one text part) or an array of content blocks.
fn decode_content(raw: &RawValue, path: &str) -> Result<Vec<Part>, Invalid> {
    let text = raw.get();
    if text.starts_with('"') {
        let text: String = parse(raw, path, "a string or an array of content blocks")?;
        return Ok(vec![Part::Text { text, cache: None }]);
    }
    let blocks: Vec<&RawValue> = parse(raw, path, "a string or an array of content blocks")?;
    blocks
        .iter()
        .enumerate()
        .map(|(i, block)| decode_block(block, &format!("{path}.{i}")))
        .collect()
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    text: Option<String>,
    #[serde(borrow)]
    source: Option<&'a RawValue>,
    title: Option<String>,
    #[serde(borrow)]
    cache_control: Option<&'a RawValue>,
    id: Option<String>,
    name: Option<String>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
    tool_use_id: Option<String>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    is_error: Option<bool>,
    thinking: Option<String>,
    signature: Option<String>,
    data: Option<String>,
}

fn decode_block(raw: &RawValue, path: &str) -> Result<Part, Invalid> {
    let block: Block = parse(raw, path, "a content block object")?;
    let cache = decode_cache_control(block.cache_control, path)?;
    let kind = required(block.kind, path, "type")?;
    Ok(match kind.as_ref() {
        "text" => Part::Text {
            text: required(block.text, path, "text")?,
            cache,
        },
        "image" => Part::Image {
            source: decode_source(required(block.source, path, "source")?, path)?,
            cache,
        },
        "document" => Part::Document {
            source: decode_source(required(block.source, path, "source")?, path)?,
            title: block.title,
            cache,
        },
        "tool_use" => {
            let input = required(block.input, path, "input")?;
            if !input.get().starts_with('{') {
                return Err(Invalid::new(format!("{path}.input"), "must be an object"));
            }
            Part::ToolCall {
                id: required(block.id, path, "id")?,
                name: required(block.name, path, "name")?,
                arguments: input.get().to_owned(),
            }
        }
        "tool_result" => {
            let content = match present(block.content) {
                None => Vec::new(),
                Some(raw) => decode_content(raw, &format!("{path}.content"))?,
            };
            if content
                .iter()
                .any(|p| !matches!(p, Part::Text { .. } | Part::Image { .. }))
            {
                return Err(Invalid::new(
                    format!("{path}.content"),
                    "a tool result may hold text and image blocks only",
                ));
            }
            Part::ToolResult {
                call_id: required(block.tool_use_id, path, "tool_use_id")?,
                content,
                is_error: block.is_error.unwrap_or(false),
            }
        }
        "thinking" => Part::Thinking {
            text: required(block.thinking, path, "thinking")?,
            // An empty signature is ours, for thinking that came without one.
            signature: block.signature.filter(|s| !s.is_empty()),
        },
        "redacted_thinking" => Part::RedactedThinking {
            data: required(block.data, path, "data")?,
        },
        other => {
            return Err(Invalid::new(
                format!("{path}.type"),
                format!("content block type '{other}' is not supported"),
            ));
        }
    })
}

#[derive(Deserialize)]
struct Source<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    media_type: Option<String>,
    data: Option<String>,
    url: Option<String>,
}

fn decode_source(raw: &RawValue, block_path: &str) -> Result<Media, Invalid> {
    let path = format!("{block_path}.source");
    let source: Source = parse(raw, &path, "a source object")?;
    let kind = required(source.kind, &path, "type")?;
    Ok(match kind.as_ref() {
        "base64" => Media::Base64 {
            media_type: required(source.media_type, &path, "media_type")?,
            data: required(source.data, &path, "data")?,
        },
        "url" => Media::Url(required(source.url, &path, "url")?),
        "text" => Media::Text {
            media_type: source.media_type.unwrap_or_else(|| "text/plain".to_owned()),
            data: required(source.data, &path, "data")?,
        },
        other => {
            return Err(Invalid::new(
                format!("{path}.type"),
                format!("source type '{other}' is not supported"),
            ));
        }
    })
}

#[derive(Deserialize)]
struct CacheBody<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    ttl: Option<String>,
}

/// The `cache_control` of the block or tool at `path`, if it has one.
fn decode_cache_control(
    raw: Option<&RawValue>,
    path: &str,
) -> Result<Option<CacheControl>, Invalid> {
    let Some(raw) = present(raw) else {
        return Ok(None);
    };
    let path = format!("{path}.cache_control");
    let cache: CacheBody = parse(raw, &path, "an object")?;
    if cache.kind.as_deref() != Some("ephemeral") {
        return Err(Invalid::new(format!("{path}.type"), "must be 'ephemeral'"));
    }
    Ok(Some(CacheControl { ttl: cache.ttl }))
}

#[derive(Deserialize)]
struct ToolBody<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    name: Option<String>,
    description: Option<String>,
    #[serde(borrow)]
    input_schema: Option<&'a RawValue>,
    #[serde(borrow)]
    cache_control: Option<&'a RawValue>,
}

fn decode_tool(raw: &RawValue, path: &str, request: &mut Request) -> Result<(), Invalid> {
    let tool: ToolBody = parse(raw, path, "a tool object")?;
    match tool.kind.as_deref() {
        None | Some("custom") => {
            let schema = required(tool.input_schema, path, "input_schema")?;
            if !schema.get().starts_with('{') {
                return Err(Invalid::new(
                    format!("{path}.input_schema"),
                    "must be an object",
                ));
            }
            let cache = decode_cache_control(tool.cache_control, path)?;
            request.tools.push(Tool {
                name: required(tool.name, path, "name")?,
                description: tool.description,
                parameters: schema.get().to_owned(),
                cache,
            });
        }
        Some(kind) if kind.starts_with("web_search_") => request.web_search = true,
        // Server tools the other protocols have no counterpart for (bash, text_editor, ...).
        Some(_) => request.dropped.push(path.to_owned()),
    }
    Ok(())
}

#[derive(Deserialize)]
struct ToolChoiceBody<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    name: Option<String>,
    disable_parallel_tool_use: Option<bool>,
}

fn decode_tool_choice(raw: &RawValue, request: &mut Request) -> Result<(), Invalid> {
    let choice: ToolChoiceBody = parse(raw, "tool_choice", "an object")?;
    request.tool_choice = Some(match choice.kind.as_deref() {
        Some("auto") => ToolChoice::Auto,
        Some("any") => ToolChoice::Required,
        Some("none") => ToolChoice::None,
        Some("tool") => ToolChoice::Named(required(choice.name, "tool_choice", "name")?),
        _ => {
            return Err(Invalid::new(
                "tool_choice.type",
                "must be 'auto', 'any', 'tool' or 'none'",
            ));
        }
    });
    if choice.disable_parallel_tool_use == Some(true) {
        request.parallel_tool_calls = Some(false);
    }
    Ok(())
}

#[derive(Deserialize)]
struct ThinkingBody<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    budget_tokens: Option<u64>,
}

fn decode_thinking(raw: &RawValue, max_tokens: u64) -> Result<Reasoning, Invalid> {
    let thinking: ThinkingBody = parse(raw, "thinking", "an object")?;
    match thinking.kind.as_deref() {
        Some("disabled") => Ok(Reasoning::Disabled),
        Some("enabled") => {
            let budget = required(thinking.budget_tokens, "thinking", "budget_tokens")?;
            if budget < 1024 {
                return Err(Invalid::new(
                    "thinking.budget_tokens",
                    "must be at least 1024",
                ));
            }
            if budget >= max_tokens {
                return Err(Invalid::new(
                    "thinking.budget_tokens",
                    "must be less than max_tokens",
                ));
            }
            Ok(Reasoning::Budget(budget))
        }
        _ => Err(Invalid::new(
            "thinking.type",
            "must be 'enabled' or 'disabled'",
        )),
    }
}

#[derive(Deserialize)]
struct OutputConfigBody<'a> {
    #[serde(borrow)]
    format: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct FormatBody<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    schema: Option<&'a RawValue>,
}

fn decode_output_config(raw: &RawValue) -> Result<Option<OutputFormat>, Invalid> {
    let config: OutputConfigBody = parse(raw, "output_config", "an object")?;
    let Some(format) = present(config.format) else {
        return Ok(None);
    };
    let format: FormatBody = parse(format, "output_config.format", "an object")?;
    if format.kind.as_deref() != Some("json_schema") {
        return Err(Invalid::new(
            "output_config.format.type",
            "must be 'json_schema'",
        ));
    }
    let schema = required(format.schema, "output_config.format", "schema")?;
    if !schema.get().starts_with('{') {
        return Err(Invalid::new(
            "output_config.format.schema",
            "must be an object",
        ));
    }
    Ok(Some(OutputFormat::JsonSchema {
        name: None,
        schema: schema.get().to_owned(),
        strict: None,
    }))
}

/// `max_tokens` is required by Messages; requests that leave it open get ZenMux's default.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Encode for `upstream_model`.
pub fn encode_request(request: &Request, upstream_model: &str) -> Encoded {
    let mut dropped = Vec::new();
    let max_tokens = request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    let mut body = Map::new();
    body.insert("model".into(), upstream_model.into());
    body.insert("max_tokens".into(), max_tokens.into());
    if !request.system.is_empty() {
        body.insert(
            "system".into(),
            blocks(&request.system, "system", &mut dropped, true),
        );
    }
    let messages: Vec<Value> = request
        .messages
        .iter()
        .enumerate()
        .map(|(i, message)| {
            let role = match message.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            let path = format!("messages.{i}");
            json!({"role": role, "content": blocks(&message.parts, &path, &mut dropped, true)})
        })
        .collect();
    body.insert("messages".into(), Value::Array(messages));
    let thinking = request.reasoning.map(|r| match budget_for(r, max_tokens) {
        Some(budget) => json!({"type": "enabled", "budget_tokens": budget}),
        None => json!({"type": "disabled"}),
    });
    let thinking_on = thinking.as_ref().is_some_and(|t| t["type"] == "enabled");
    if let Some(t) = request.temperature {
        // Extended thinking accepts no temperature other than the default.
        if thinking_on && (t - 1.0).abs() > f64::EPSILON {
            dropped.push("temperature".to_owned());
        } else {
            body.insert("temperature".into(), t.into());
        }
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), p.into());
    }
    if let Some(k) = request.top_k {
        if thinking_on {
            dropped.push("top_k".to_owned());
        } else {
            body.insert("top_k".into(), k.into());
        }
    }
    if !request.stop.is_empty() {
        body.insert("stop_sequences".into(), request.stop.clone().into());
    }
    if request.stream {
        body.insert("stream".into(), true.into());
    }
    encode_tools(request, &mut body);
    if let Some(thinking) = thinking {
        body.insert("thinking".into(), thinking);
    }
    if let Some(output) = &request.output {
        let schema = match output {
            // Any JSON object: the schema that says exactly that.
            OutputFormat::JsonObject => json!({"type": "object"}),
            OutputFormat::JsonSchema { schema, .. } => raw_json(schema),
        };
        body.insert(
            "output_config".into(),
            json!({"format": {"type": "json_schema", "schema": schema}}),
        );
    }
    let body = serde_json::to_vec(&Value::Object(body)).expect("a JSON value always serializes");
    Encoded { body, dropped }
}

/// `tools` (the web-search server tool included) and `tool_choice`, which also carries
/// Messages' form of `parallel_tool_calls: false`.
fn encode_tools(request: &Request, body: &mut Map<String, Value>) {
    let mut tools: Vec<Value> = request
        .tools
        .iter()
        .map(|tool| {
            let mut entry = Map::new();
            entry.insert("name".into(), tool.name.clone().into());
            if let Some(d) = &tool.description {
                entry.insert("description".into(), d.clone().into());
            }
            entry.insert("input_schema".into(), raw_json(&tool.parameters));
            if let Some(cache) = &tool.cache {
                entry.insert("cache_control".into(), cache_json(cache));
            }
            Value::Object(entry)
        })
        .collect();
    if request.web_search {
        tools.push(json!({"type": "web_search_20250305", "name": "web_search"}));
    }
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
    }
    let mut choice = request.tool_choice.as_ref().map(|choice| match choice {
        ToolChoice::Auto => json!({"type": "auto"}),
        ToolChoice::None => json!({"type": "none"}),
        ToolChoice::Required => json!({"type": "any"}),
        ToolChoice::Named(name) => json!({"type": "tool", "name": name}),
    });
    if request.parallel_tool_calls == Some(false) && !request.tools.is_empty() {
        let choice = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if choice["type"] != "none" {
            choice["disable_parallel_tool_use"] = true.into();
        }
    }
    if let Some(choice) = choice {
        body.insert("tool_choice".into(), choice);
    }
}

/// Content blocks (a plain string for one uncached text when `plain` allows it).
fn blocks(parts: &[Part], path: &str, dropped: &mut Vec<String>, plain: bool) -> Value {
    render_parts(parts, path, dropped, plain, |i, part, dropped| {
        Some(match part {
            Part::Text { text, .. } => json!({"type": "text", "text": text}),
            Part::Image { source, .. } => json!({"type": "image", "source": source_json(source)}),
            Part::Document { source, title, .. } => {
                let mut block = json!({"type": "document", "source": source_json(source)});
                if let Some(title) = title {
                    block["title"] = title.clone().into();
                }
                block
            }
            // Messages takes thinking back only with the signature it was issued with.
            Part::Thinking {
                text,
                signature: Some(signature),
            } => json!({"type": "thinking", "thinking": text, "signature": signature}),
            Part::Thinking {
                signature: None, ..
            } => return None,
            Part::RedactedThinking { data } => json!({"type": "redacted_thinking", "data": data}),
            Part::ToolCall {
                id,
                name,
                arguments,
            } => {
                let input = tool_input(arguments).unwrap_or_else(|| {
                    dropped.push(format!("{path}.{i}.arguments"));
                    json!({})
                });
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
            Part::ToolResult {
                call_id,
                content,
                is_error,
            } => {
                let content = blocks(content, &format!("{path}.{i}.content"), dropped, true);
                let mut block =
                    json!({"type": "tool_result", "tool_use_id": call_id, "content": content});
                if *is_error {
                    block["is_error"] = true.into();
                }
                block
            }
        })
    })
}

fn source_json(source: &Media) -> Value {
    match source {
        Media::Url(url) => json!({"type": "url", "url": url}),
        Media::Base64 { media_type, data } => {
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
        Media::Text { media_type, data } => {
            json!({"type": "text", "media_type": media_type, "data": data})
        }
    }
}

#[derive(Deserialize)]
struct MessageResponse<'a> {
    #[serde(borrow)]
    content: Option<Vec<&'a RawValue>>,
    #[serde(borrow)]
    stop_reason: Option<Cow<'a, str>>,
    stop_sequence: Option<String>,
    usage: Option<UsageBody>,
}

#[derive(Deserialize, Default)]
struct UsageBody {
    #[serde(default, rename = "input_tokens")]
    input: u64,
    #[serde(default, rename = "output_tokens")]
    output: u64,
    #[serde(rename = "cache_read_input_tokens")]
    cache_read: Option<u64>,
    #[serde(rename = "cache_creation_input_tokens")]
    cache_write: Option<u64>,
}

/// Decode a Messages response (`"type": "message"`). Server-tool blocks (web search calls
/// and their results) are the provider's own business and are not carried.
pub fn decode_response(body: &[u8]) -> Result<Response, Invalid> {
    let body: MessageResponse = serde_json::from_slice(body)
        .map_err(|e| Invalid::new("", format!("not a Messages response: {e}")))?;
    let mut parts = Vec::new();
    for (i, raw) in body.content.unwrap_or_default().iter().enumerate() {
        let path = format!("content.{i}");
        let block: Block = parse(raw, &path, "a content block object")?;
        if let Some("text" | "thinking" | "redacted_thinking" | "tool_use") = block.kind.as_deref()
        {
            parts.push(decode_block(raw, &path)?);
        }
    }
    let stop = body
        .stop_reason
        .as_deref()
        .map(|reason| stop_reason(reason, body.stop_sequence.clone()));
    let usage = body.usage.unwrap_or_default();
    Ok(Response {
        parts,
        stop,
        usage: Usage {
            input: usage.input,
            output: usage.output,
            cache_read: usage.cache_read.unwrap_or(0),
            cache_write: usage.cache_write.unwrap_or(0),
            reasoning: 0,
        },
    })
}

/// A Messages `stop_reason` (and the `stop_sequence` that matched) as a stop reason.
pub fn stop_reason(reason: &str, sequence: Option<String>) -> StopReason {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => StopReason::MaxTokens,
        "tool_use" => StopReason::ToolUse,
        "stop_sequence" => StopReason::StopSequence(sequence),
        "refusal" => StopReason::Refusal,
        _ => StopReason::EndTurn,
    }
}

/// A stop reason as Messages' `stop_reason` and `stop_sequence`.
fn stop_fields(stop: Option<&StopReason>) -> (Value, Value) {
    match stop {
        None => (Value::Null, Value::Null),
        Some(StopReason::EndTurn) => ("end_turn".into(), Value::Null),
        Some(StopReason::MaxTokens) => ("max_tokens".into(), Value::Null),
        Some(StopReason::ToolUse) => ("tool_use".into(), Value::Null),
        Some(StopReason::Refusal) => ("refusal".into(), Value::Null),
        Some(StopReason::StopSequence(seq)) => (
            "stop_sequence".into(),
            seq.clone().map_or(Value::Null, Value::String),
        ),
    }
}

/// `usage` as Messages reports it.
fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input,
        "output_tokens": u.output,
        "cache_creation_input_tokens": u.cache_write,
        "cache_read_input_tokens": u.cache_read,
    })
}

/// Encode a Messages response. Thinking that came without a signature (another provider's
/// reasoning) gets an empty one, which decoding reads back as none.
pub fn encode_response(response: &Response, id: &str, model: &str) -> Vec<u8> {
    let mut dropped = Vec::new();
    let mut content = Vec::with_capacity(response.parts.len());
    for part in &response.parts {
        content.push(match part {
            Part::Thinking { text, signature } => json!({
                "type": "thinking",
                "thinking": text,
                "signature": signature.clone().unwrap_or_default(),
            }),
            other => match blocks(std::slice::from_ref(other), "content", &mut dropped, false) {
                Value::Array(mut one) if one.len() == 1 => one.remove(0),
                _ => continue,
            },
        });
    }
    let (stop_reason, stop_sequence) = stop_fields(response.stop.as_ref());
    let body = json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_json(&response.usage),
    });
    serde_json::to_vec(&body).expect("a JSON value always serializes")
}

/// The thinking budget an effort asks for, kept below `max_tokens` as Anthropic requires.
pub fn budget_for(reasoning: Reasoning, max_tokens: u64) -> Option<u64> {
    let budget = reasoning.budget()?.max(1024);
    (budget < max_tokens).then_some(budget).or_else(|| {
        // Too little room for the table's budget: the most that still fits, if any.
        (max_tokens > 1024)
            .then(|| max_tokens - 1)
            .filter(|b| *b >= 1024)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::Effort;

    fn decode(json: &str) -> Result<Request, Invalid> {
        decode_request(json.as_bytes())
    }

    #[test]
    fn text_conversation_with_system_and_parameters() {
        let request = decode(
            r#"{"model":"anthropic/claude-sonnet-4.5","max_tokens":1024,
                "system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],
                "messages":[{"role":"user","content":"Hi"},
                            {"role":"assistant","content":[{"type":"text","text":"Hello!"}]},
                            {"role":"user","content":"How are you?"}],
                "temperature":0.5,"top_p":0.9,"top_k":40,"stop_sequences":["END"],"stream":true,
                "metadata":{"user_id":"u1"}}"#,
        )
        .unwrap();
        assert_eq!(request.model, "anthropic/claude-sonnet-4.5");
        assert_eq!(request.max_tokens, Some(1024));
        assert_eq!(
            request.system,
            vec![Part::Text {
                text: "Be brief.".to_owned(),
                cache: Some(CacheControl { ttl: None }),
            }]
        );
        assert_eq!(request.messages.len(), 3);
        assert_eq!(request.messages[1].role, Role::Assistant);
        assert_eq!(
            request.messages[2].parts,
            vec![Part::Text {
                text: "How are you?".to_owned(),
                cache: None
            }]
        );
        assert_eq!(request.temperature, Some(0.5));
        assert_eq!(request.top_p, Some(0.9));
        assert_eq!(request.top_k, Some(40));
        assert_eq!(request.stop, vec!["END".to_owned()]);
        assert!(request.stream);
        assert_eq!(request.dropped, vec!["metadata".to_owned()]);
    }

    #[test]
    fn tools_tool_turns_images_documents_and_thinking() {
        let request = decode(
            r#"{"model":"m","max_tokens":4096,
                "tools":[{"name":"get_weather","description":"Weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}},
                         {"type":"web_search_20250305","name":"web_search","max_uses":3},
                         {"type":"bash_20250124","name":"bash"}],
                "tool_choice":{"type":"any","disable_parallel_tool_use":true},
                "thinking":{"type":"enabled","budget_tokens":2000},
                "messages":[
                  {"role":"user","content":[
                     {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
                     {"type":"image","source":{"type":"url","url":"https://example.com/a.jpg"}},
                     {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="},"title":"Report"},
                     {"type":"text","text":"Weather in Paris?"}]},
                  {"role":"assistant","content":[
                     {"type":"thinking","thinking":"Need the tool.","signature":"sig=="},
                     {"type":"redacted_thinking","data":"enc"},
                     {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city": "Paris"}}]},
                  {"role":"user","content":[
                     {"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"18C"}]},
                     {"type":"tool_result","tool_use_id":"toolu_2","content":"oops","is_error":true}]}]}"#,
        )
        .unwrap();
        assert_eq!(request.tools.len(), 1);
        assert_eq!(request.tools[0].name, "get_weather");
        assert!(request.tools[0].parameters.contains("\"city\""));
        assert!(request.web_search);
        assert_eq!(request.dropped, vec!["tools.2".to_owned()]);
        assert_eq!(request.tool_choice, Some(ToolChoice::Required));
        assert_eq!(request.parallel_tool_calls, Some(false));
        assert_eq!(request.reasoning, Some(Reasoning::Budget(2000)));
        let user = &request.messages[0].parts;
        assert_eq!(
            user[0],
            Part::Image {
                source: Media::Base64 {
                    media_type: "image/png".to_owned(),
                    data: "iVBORw0KGgo=".to_owned()
                },
                cache: None
            }
        );
        assert_eq!(
            user[1],
            Part::Image {
                source: Media::Url("https://example.com/a.jpg".to_owned()),
                cache: None
            }
        );
        assert!(matches!(&user[2], Part::Document { title: Some(t), .. } if t == "Report"));
        let assistant = &request.messages[1].parts;
        assert_eq!(
            assistant[0],
            Part::Thinking {
                text: "Need the tool.".to_owned(),
                signature: Some("sig==".to_owned())
            }
        );
        assert_eq!(
            assistant[1],
            Part::RedactedThinking {
                data: "enc".to_owned()
            }
        );
        assert_eq!(
            assistant[2],
            Part::ToolCall {
                id: "toolu_1".to_owned(),
                name: "get_weather".to_owned(),
                arguments: r#"{"city": "Paris"}"#.to_owned()
            }
        );
        let results = &request.messages[2].parts;
        assert_eq!(
            results[1],
            Part::ToolResult {
                call_id: "toolu_2".to_owned(),
                content: vec![Part::Text {
                    text: "oops".to_owned(),
                    cache: None
                }],
                is_error: true
            }
        );
    }

    #[test]
    fn output_format_and_named_tool_choice() {
        let request = decode(
            r#"{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"x"}],
                "tool_choice":{"type":"tool","name":"f"},
                "output_config":{"format":{"type":"json_schema","schema":{"type":"object"}}}}"#,
        )
        .unwrap();
        assert_eq!(request.tool_choice, Some(ToolChoice::Named("f".to_owned())));
        assert_eq!(request.parallel_tool_calls, None);
        assert_eq!(
            request.output,
            Some(OutputFormat::JsonSchema {
                name: None,
                schema: r#"{"type":"object"}"#.to_owned(),
                strict: None
            })
        );
    }

    #[test]
    fn invalid_requests_name_the_field() {
        let cases = [
            (
                r#"{"max_tokens":1,"messages":[{"role":"user","content":"x"}]}"#,
                "model",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
                "max_tokens",
            ),
            (r#"{"model":"m","max_tokens":1}"#, "messages"),
            (r#"{"model":"m","max_tokens":1,"messages":[]}"#, "messages"),
            (
                r#"{"model":"m","max_tokens":1,"messages":[{"role":"system","content":"x"}]}"#,
                "messages.0.role",
            ),
            (
                r#"{"model":"m","max_tokens":1,"messages":[{"role":"user"}]}"#,
                "messages.0.content",
            ),
            (
                r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"video"}]}]}"#,
                "messages.0.content.0.type",
            ),
            (
                r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file"}}]}]}"#,
                "messages.0.content.0.source.type",
            ),
            (
                r#"{"model":"m","max_tokens":2000,"messages":[{"role":"user","content":"x"}],"thinking":{"type":"enabled","budget_tokens":512}}"#,
                "thinking.budget_tokens",
            ),
            (
                r#"{"model":"m","max_tokens":2000,"messages":[{"role":"user","content":"x"}],"thinking":{"type":"enabled","budget_tokens":4096}}"#,
                "thinking.budget_tokens",
            ),
            (
                r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"some"}}"#,
                "tool_choice.type",
            ),
            (
                r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"system":[{"type":"image","source":{"type":"url","url":"u"}}]}"#,
                "system",
            ),
        ];
        for (body, path) in cases {
            let error = decode(body).unwrap_err();
            assert_eq!(error.path, path, "{body}: {error}");
        }
        assert!(decode("[1]").unwrap_err().path.is_empty());
    }

    #[test]
    fn budgets_fit_under_max_tokens() {
        assert_eq!(
            budget_for(Reasoning::Effort(Effort::Medium), 16000),
            Some(5120)
        );
        assert_eq!(
            budget_for(Reasoning::Effort(Effort::High), 4096),
            Some(4095)
        );
        assert_eq!(budget_for(Reasoning::Effort(Effort::Low), 1024), None);
        assert_eq!(budget_for(Reasoning::Disabled, 4096), None);
        assert_eq!(Reasoning::Budget(3000).effort(), Effort::Medium);
    }
}
