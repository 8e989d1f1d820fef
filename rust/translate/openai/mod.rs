//! OpenAI Chat Completions (`POST /v1/chat/completions`) to and from the neutral request and
//! response.

pub mod stream;

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::{
    CacheControl, Effort, Encoded, Invalid, Media, Message, OutputFormat, Part, Reasoning, Request,
    Response, Role, StopReason, Tool, ToolChoice, Usage, cache_json, parse, present, raw_json,
    render_parts, untranslatable,
};

/// Chat Completions parameters no other protocol has: dropped when translating, by name.
const UNTRANSLATABLE: &[&str] = &[
    "n",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "seed",
    "user",
    "metadata",
    "service_tier",
    "verbosity",
    "prediction",
    "store",
    "modalities",
    "audio",
];

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    messages: Option<Vec<&'a RawValue>>,
    max_completion_tokens: Option<u64>,
    max_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u64>,
    #[serde(borrow)]
    stop: Option<&'a RawValue>,
    stream: Option<bool>,
    #[serde(borrow)]
    tools: Option<Vec<&'a RawValue>>,
    #[serde(borrow)]
    tool_choice: Option<&'a RawValue>,
    parallel_tool_calls: Option<bool>,
    #[serde(borrow)]
    reasoning_effort: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reasoning: Option<&'a RawValue>,
    #[serde(borrow)]
    response_format: Option<&'a RawValue>,
    #[serde(borrow)]
    web_search_options: Option<&'a RawValue>,
}

/// Decode a Chat Completions request body.
pub fn decode_request(raw_body: &[u8]) -> Result<Request, Invalid> {
    let body: Body = serde_json::from_slice(raw_body).map_err(|e| {
        Invalid::new(
            "",
            format!("the body is not a valid chat completions request: {e}"),
        )
    })?;
    let model = match body.model {
        Some(m) if !m.is_empty() => m.into_owned(),
        _ => return Err(Invalid::new("model", "Parameter model is required")),
    };
    let raw_messages = body.messages.unwrap_or_default();
    if raw_messages.is_empty() {
        return Err(Invalid::new("messages", "Parameter messages is required"));
    }
    let mut request = Request {
        model,
        max_tokens: body.max_completion_tokens.or(body.max_tokens),
        temperature: body.temperature,
        top_p: body.top_p,
        top_k: body.top_k,
        stream: body.stream.unwrap_or(false),
        parallel_tool_calls: body.parallel_tool_calls,
        web_search: present(body.web_search_options).is_some(),
        ..Request::default()
    };
    for (i, raw) in raw_messages.iter().enumerate() {
        decode_message(raw, &format!("messages.{i}"), &mut request)?;
    }
    if let Some(raw) = present(body.stop) {
        request.stop = if raw.get().starts_with('"') {
            vec![parse(raw, "stop", "a string or an array of strings")?]
        } else {
            parse(raw, "stop", "a string or an array of strings")?
        };
    }
    for (i, raw) in body.tools.unwrap_or_default().iter().enumerate() {
        decode_tool(raw, &format!("tools.{i}"), &mut request)?;
    }
    if let Some(raw) = present(body.tool_choice) {
        request.tool_choice = Some(decode_tool_choice(raw)?);
    }
    request.reasoning =
        decode_reasoning(body.reasoning_effort.as_deref(), present(body.reasoning))?;
    if let Some(raw) = present(body.response_format) {
        request.output = decode_response_format(raw)?;
    }
    untranslatable(raw_body, UNTRANSLATABLE, &mut request.dropped)?;
    Ok(request)
}

#[derive(Deserialize)]
struct MessageBody<'a> {
    #[serde(borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    #[serde(borrow)]
    tool_calls: Option<Vec<&'a RawValue>>,
    tool_call_id: Option<String>,
    refusal: Option<String>,
    reasoning: Option<String>,
    reasoning_content: Option<String>,
    #[serde(borrow)]
    reasoning_details: Option<Vec<&'a RawValue>>,
}

fn decode_message(raw: &RawValue, path: &str, request: &mut Request) -> Result<(), Invalid> {
    let message: MessageBody = parse(raw, path, "a message object")?;
    let content = present(message.content);
    match message.role.as_deref() {
        Some("system" | "developer") => {
            let parts = match content {
                Some(raw) => decode_content(raw, &format!("{path}.content"))?,
                None => Vec::new(),
            };
            request.system.extend(parts);
        }
        Some("user") => {
            let Some(raw) = content else {
                return Err(Invalid::new(format!("{path}.content"), "Field required"));
            };
            let parts = decode_content(raw, &format!("{path}.content"))?;
            push(request, Role::User, parts);
        }
        Some("assistant") => {
            let mut parts = Vec::new();
            decode_reasoning_parts(&message, path, &mut parts)?;
            if let Some(raw) = content {
                parts.extend(decode_content(raw, &format!("{path}.content"))?);
            }
            if let Some(refusal) = &message.refusal {
                parts.push(Part::Text {
                    text: refusal.clone(),
                    cache: None,
                });
            }
            for (i, raw) in message.tool_calls.iter().flatten().enumerate() {
                parts.push(decode_tool_call(raw, &format!("{path}.tool_calls.{i}"))?);
            }
            request.messages.push(Message {
                role: Role::Assistant,
                parts,
            });
        }
        Some("tool") => {
            let call_id = message
                .tool_call_id
                .ok_or_else(|| Invalid::new(format!("{path}.tool_call_id"), "Field required"))?;
            let content = match content {
                Some(raw) => decode_content(raw, &format!("{path}.content"))?,
                None => Vec::new(),
            };
            // Consecutive tool messages answer one assistant turn: one user turn of results.
            push(
                request,
                Role::User,
                vec![Part::ToolResult {
                    call_id,
                    content,
                    is_error: false,
                }],
            );
        }
        Some(other) => {
            return Err(Invalid::new(
                format!("{path}.role"),
                format!("role '{other}' is not supported"),
            ));
        }
        None => return Err(Invalid::new(format!("{path}.role"), "Field required")),
    }
    Ok(())
}

/// A user turn that follows tool messages joins their turn of results, as Messages has it.
fn push(request: &mut Request, role: Role, parts: Vec<Part>) {
    if role == Role::User
        && let Some(last) = request.messages.last_mut()
        && last.role == Role::User
        && last
            .parts
            .iter()
            .all(|p| matches!(p, Part::ToolResult { .. }))
    {
        last.parts.extend(parts);
        return;
    }
    request.messages.push(Message { role, parts });
}

#[derive(Deserialize)]
struct ReasoningDetail<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    text: Option<String>,
    signature: Option<String>,
    data: Option<String>,
}

/// ZenMux's `reasoning_details` (thinking with its signature, passed back unchanged), or else
/// the plain `reasoning`/`reasoning_content` text.
fn decode_reasoning_parts(
    message: &MessageBody,
    path: &str,
    parts: &mut Vec<Part>,
) -> Result<(), Invalid> {
    if let Some(details) = &message.reasoning_details {
        for (i, raw) in details.iter().enumerate() {
            let item_path = format!("{path}.reasoning_details.{i}");
            let detail: ReasoningDetail = parse(raw, &item_path, "an object")?;
            match detail.kind.as_deref() {
                Some("reasoning.text") => parts.push(Part::Thinking {
                    text: detail.text.unwrap_or_default(),
                    signature: detail.signature,
                }),
                Some("reasoning.encrypted") => parts.push(Part::RedactedThinking {
                    data: detail.data.unwrap_or_default(),
                }),
                // Summaries are for reading, not for passing back.
                _ => {}
            }
        }
        return Ok(());
    }
    if let Some(text) = message
        .reasoning
        .as_ref()
        .or(message.reasoning_content.as_ref())
    {
        parts.push(Part::Thinking {
            text: text.clone(),
            signature: None,
        });
    }
    Ok(())
}

#[derive(Deserialize)]
struct ContentPart<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    text: Option<String>,
    refusal: Option<String>,
    #[serde(borrow)]
    image_url: Option<&'a RawValue>,
    #[serde(borrow)]
    file: Option<&'a RawValue>,
    #[serde(borrow)]
    cache_control: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ImageUrl {
    url: String,
}

#[derive(Deserialize)]
struct FileBody {
    file_data: Option<String>,
    filename: Option<String>,
}

#[derive(Deserialize)]
struct CacheBody {
    ttl: Option<String>,
}

fn decode_cache(raw: Option<&RawValue>, path: &str) -> Result<Option<CacheControl>, Invalid> {
    present(raw)
        .map(|raw| {
            let body: CacheBody = parse(raw, &format!("{path}.cache_control"), "an object")?;
            Ok(CacheControl { ttl: body.ttl })
        })
        .transpose()
}

fn decode_content(raw: &RawValue, path: &str) -> Result<Vec<Part>, Invalid> {
    if raw.get().starts_with('"') {
        let text: String = parse(raw, path, "a string or an array of content parts")?;
        return Ok(vec![Part::Text { text, cache: None }]);
    }
    let items: Vec<&RawValue> = parse(raw, path, "a string or an array of content parts")?;
    let mut parts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}.{i}");
        let part: ContentPart = parse(item, &item_path, "a content part object")?;
        let cache = decode_cache(part.cache_control, &item_path)?;
        let missing = |field: &str| Invalid::new(format!("{item_path}.{field}"), "Field required");
        parts.push(match part.kind.as_deref() {
            Some("text") => Part::Text {
                text: part.text.ok_or_else(|| missing("text"))?,
                cache,
            },
            // An assistant's refusal in the history is what it said.
            Some("refusal") => Part::Text {
                text: part.refusal.ok_or_else(|| missing("refusal"))?,
                cache,
            },
            Some("image_url") => {
                let raw = part.image_url.ok_or_else(|| missing("image_url"))?;
                let image: ImageUrl =
                    parse(raw, &format!("{item_path}.image_url"), "an object with url")?;
                Part::Image {
                    source: Media::from_url(&image.url),
                    cache,
                }
            }
            Some("file") => {
                let raw = part.file.ok_or_else(|| missing("file"))?;
                let file: FileBody = parse(raw, &format!("{item_path}.file"), "an object")?;
                let data = file.file_data.ok_or_else(|| missing("file.file_data"))?;
                Part::Document {
                    source: Media::from_url(&data),
                    title: file.filename,
                    cache,
                }
            }
            Some(other) => {
                return Err(Invalid::new(
                    format!("{item_path}.type"),
                    format!("content part type '{other}' is not supported"),
                ));
            }
            None => return Err(missing("type")),
        });
    }
    Ok(parts)
}

#[derive(Deserialize)]
struct ToolCallBody {
    id: Option<String>,
    function: Option<FunctionCall>,
}

#[derive(Deserialize)]
struct FunctionCall {
    name: Option<String>,
    arguments: Option<String>,
}

fn decode_tool_call(raw: &RawValue, path: &str) -> Result<Part, Invalid> {
    let call: ToolCallBody = parse(raw, path, "a tool call object")?;
    let missing = |field: &str| Invalid::new(format!("{path}.{field}"), "Field required");
    let function = call.function.ok_or_else(|| missing("function"))?;
    Ok(Part::ToolCall {
        id: call.id.ok_or_else(|| missing("id"))?,
        name: function.name.ok_or_else(|| missing("function.name"))?,
        arguments: function.arguments.unwrap_or_default(),
    })
}

#[derive(Deserialize)]
struct ToolBody<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: Option<FunctionSpec<'a>>,
    #[serde(borrow)]
    cache_control: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct FunctionSpec<'a> {
    name: Option<String>,
    description: Option<String>,
    #[serde(borrow)]
    parameters: Option<&'a RawValue>,
}

fn decode_tool(raw: &RawValue, path: &str, request: &mut Request) -> Result<(), Invalid> {
    let tool: ToolBody = parse(raw, path, "a tool object")?;
    if tool.kind.as_deref() != Some("function") {
        request.dropped.push(path.to_owned());
        return Ok(());
    }
    let missing = |field: &str| Invalid::new(format!("{path}.{field}"), "Field required");
    let function = tool.function.ok_or_else(|| missing("function"))?;
    let parameters = match present(function.parameters) {
        Some(raw) if raw.get().starts_with('{') => raw.get().to_owned(),
        Some(_) => {
            return Err(Invalid::new(
                format!("{path}.function.parameters"),
                "must be an object",
            ));
        }
        // A function declared without parameters takes none.
        None => r#"{"type":"object","properties":{}}"#.to_owned(),
    };
    request.tools.push(Tool {
        name: function.name.ok_or_else(|| missing("function.name"))?,
        description: function.description,
        parameters,
        cache: decode_cache(tool.cache_control, path)?,
    });
    Ok(())
}

#[derive(Deserialize)]
struct NamedChoice {
    function: Option<NamedFunction>,
}

#[derive(Deserialize)]
struct NamedFunction {
    name: String,
}

fn decode_tool_choice(raw: &RawValue) -> Result<ToolChoice, Invalid> {
    if raw.get().starts_with('"') {
        let choice: String = parse(raw, "tool_choice", "a string or an object")?;
        return match choice.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            _ => Err(Invalid::new(
                "tool_choice",
                "must be 'none', 'auto', 'required' or a function",
            )),
        };
    }
    let named: NamedChoice = parse(raw, "tool_choice", "a string or an object")?;
    named
        .function
        .map(|f| ToolChoice::Named(f.name))
        .ok_or_else(|| Invalid::new("tool_choice.function", "Field required"))
}

#[derive(Deserialize)]
struct ReasoningBody {
    effort: Option<String>,
    max_tokens: Option<u64>,
    enabled: Option<bool>,
}

/// ZenMux's `reasoning` object wins over `reasoning_effort`, as on its Chat surface.
fn decode_reasoning(
    effort: Option<&str>,
    reasoning: Option<&RawValue>,
) -> Result<Option<Reasoning>, Invalid> {
    let effort_of = |text: &str, path: &str| {
        Effort::parse(text).ok_or_else(|| {
            Invalid::new(
                path,
                "must be one of none, minimal, low, medium, high, xhigh",
            )
        })
    };
    if let Some(raw) = reasoning {
        let body: ReasoningBody = parse(raw, "reasoning", "an object")?;
        if body.enabled == Some(false) {
            return Ok(Some(Reasoning::Disabled));
        }
        if let Some(budget) = body.max_tokens {
            return Ok(Some(Reasoning::Budget(budget)));
        }
        if let Some(text) = body.effort.as_deref() {
            return Ok(Some(Reasoning::Effort(effort_of(
                text,
                "reasoning.effort",
            )?)));
        }
    }
    effort
        .map(|text| effort_of(text, "reasoning_effort").map(Reasoning::Effort))
        .transpose()
}

#[derive(Deserialize)]
struct ResponseFormat<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    json_schema: Option<JsonSchemaSpec<'a>>,
}

#[derive(Deserialize)]
struct JsonSchemaSpec<'a> {
    name: Option<String>,
    #[serde(borrow)]
    schema: Option<&'a RawValue>,
    strict: Option<bool>,
}

fn decode_response_format(raw: &RawValue) -> Result<Option<OutputFormat>, Invalid> {
    let format: ResponseFormat = parse(raw, "response_format", "an object")?;
    match format.kind.as_deref() {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(OutputFormat::JsonObject)),
        Some("json_schema") => {
            let spec = format
                .json_schema
                .ok_or_else(|| Invalid::new("response_format.json_schema", "Field required"))?;
            let schema = match present(spec.schema) {
                Some(raw) if raw.get().starts_with('{') => raw.get().to_owned(),
                _ => {
                    return Err(Invalid::new(
                        "response_format.json_schema.schema",
                        "must be an object",
                    ));
                }
            };
            Ok(Some(OutputFormat::JsonSchema {
                name: spec.name,
                schema,
                strict: spec.strict,
            }))
        }
        _ => Err(Invalid::new(
            "response_format.type",
            "must be 'text', 'json_object' or 'json_schema'",
        )),
    }
}

/// What a request asks of its answer, from its `response_format` and `tools` alone: the
/// insurance checks need nothing else, and a request passed through is never decoded whole.
/// What does not decode asks for nothing.
pub fn decode_expectations(
    response_format: Option<&RawValue>,
    tools: Option<&RawValue>,
) -> (Option<OutputFormat>, Vec<Tool>) {
    let output = present(response_format)
        .and_then(|raw| decode_response_format(raw).ok())
        .flatten();
    let mut request = Request::default();
    let listed: Vec<&RawValue> = present(tools)
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .unwrap_or_default();
    for (i, raw) in listed.into_iter().enumerate() {
        let _ = decode_tool(raw, &format!("tools.{i}"), &mut request);
    }
    (output, request.tools)
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

/// A message's `content`: a plain string when it is one uncached text, parts otherwise.
fn content(parts: &[Part], path: &str, dropped: &mut Vec<String>) -> Value {
    render_parts(parts, path, dropped, true, |_, part, _| match part {
        Part::Text { text, .. } => Some(json!({"type": "text", "text": text})),
        Part::Image { source, .. } => Some(json!({
            "type": "image_url",
            "image_url": {"url": source.to_url()},
        })),
        Part::Document {
            source: source @ (Media::Base64 { .. } | Media::Text { .. }),
            title,
            ..
        } => {
            let filename = title.as_deref().unwrap_or("document");
            Some(json!({
                "type": "file",
                "file": {"file_data": source.to_url(), "filename": filename},
            }))
        }
        _ => None,
    })
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
                is_error,
            } => {
                // A tool message has no error flag: the result's own text has to say it.
                if *is_error {
                    dropped.push(format!("{path}.{i}.is_error"));
                }
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

#[derive(Deserialize)]
struct CompletionBody<'a> {
    #[serde(borrow)]
    choices: Option<Vec<ChoiceBody<'a>>>,
    usage: Option<UsageBody>,
}

#[derive(Deserialize)]
struct ChoiceBody<'a> {
    #[serde(borrow)]
    message: Option<MessageBody<'a>>,
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct UsageBody {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    reasoning_tokens: Option<u64>,
}

/// Decode a `chat.completion` object (the first choice: Messages has no `n`).
pub fn decode_response(body: &[u8]) -> Result<Response, Invalid> {
    let body: CompletionBody = serde_json::from_slice(body)
        .map_err(|e| Invalid::new("", format!("not a chat completion: {e}")))?;
    let choice = body
        .choices
        .and_then(|c| c.into_iter().next())
        .ok_or_else(|| Invalid::new("choices", "the completion has no choice"))?;
    let mut parts = Vec::new();
    if let Some(message) = &choice.message {
        decode_reasoning_parts(message, "choices.0.message", &mut parts)?;
        if let Some(raw) = present(message.content) {
            parts.extend(decode_content(raw, "choices.0.message.content")?);
        }
        if let Some(refusal) = &message.refusal {
            parts.push(Part::Text {
                text: refusal.clone(),
                cache: None,
            });
        }
        for (i, raw) in message.tool_calls.iter().flatten().enumerate() {
            parts.push(decode_tool_call(
                raw,
                &format!("choices.0.message.tool_calls.{i}"),
            )?);
        }
    }
    Ok(Response {
        parts,
        stop: choice.finish_reason.as_deref().map(stop_reason),
        usage: body.usage.map(UsageBody::neutral).unwrap_or_default(),
    })
}

impl UsageBody {
    /// `prompt_tokens` counts cached tokens; the neutral `input` does not.
    fn neutral(self) -> Usage {
        let cached = self
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0);
        Usage {
            input: self.prompt_tokens.saturating_sub(cached),
            output: self.completion_tokens,
            cache_read: cached,
            cache_write: 0,
            reasoning: self
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

/// A `finish_reason` as a stop reason.
pub fn stop_reason(finish: &str) -> StopReason {
    match finish {
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::Refusal,
        _ => StopReason::EndTurn,
    }
}

/// A stop reason as a `finish_reason`.
pub fn finish_reason(stop: &StopReason) -> &'static str {
    match stop {
        StopReason::EndTurn | StopReason::StopSequence(_) => "stop",
        StopReason::MaxTokens => "length",
        StopReason::ToolUse => "tool_calls",
        StopReason::Refusal => "content_filter",
    }
}

/// Encode a `chat.completion` object. Thinking travels in ZenMux's `reasoning` and
/// `reasoning_details` (signatures included), so a client can pass it back unchanged.
pub fn encode_response(response: &Response, id: &str, model: &str, created: u64) -> Vec<u8> {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut details = Vec::new();
    let mut calls = Vec::new();
    for part in &response.parts {
        match part {
            Part::Text { text: t, .. } => text.push_str(t),
            Part::Thinking { text: t, signature } => {
                reasoning.push_str(t);
                let mut detail = json!({"type": "reasoning.text", "text": t,
                                        "format": "anthropic-claude-v1", "index": details.len()});
                if let Some(signature) = signature {
                    detail["signature"] = signature.clone().into();
                }
                details.push(detail);
            }
            Part::RedactedThinking { data } => details.push(json!({
                "type": "reasoning.encrypted", "data": data,
                "format": "anthropic-claude-v1", "index": details.len(),
            })),
            Part::ToolCall {
                id,
                name,
                arguments,
            } => calls.push(json!({
                "id": id, "type": "function",
                "function": {"name": name, "arguments": arguments},
            })),
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": text});
    if text.is_empty() && !calls.is_empty() {
        message["content"] = Value::Null;
    }
    if !reasoning.is_empty() {
        message["reasoning"] = reasoning.into();
    }
    if !details.is_empty() {
        message["reasoning_details"] = Value::Array(details);
    }
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let finish = response.stop.as_ref().map(finish_reason);
    let body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage_json(&response.usage),
    });
    serde_json::to_vec(&body).expect("a JSON value always serializes")
}

/// `usage` as Chat Completions reports it: prompt tokens include cache reads and writes.
fn usage_json(u: &Usage) -> Value {
    let prompt = u.input + u.cache_read + u.cache_write;
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": u.output,
        "total_tokens": prompt + u.output,
        "prompt_tokens_details": {"cached_tokens": u.cache_read},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning},
    })
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

    const RICH_ANTHROPIC: &str = r#"{"model":"m","max_tokens":8000,
        "system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],
        "tools":[{"name":"get_weather","description":"Weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],
        "tool_choice":{"type":"auto","disable_parallel_tool_use":true},
        "thinking":{"type":"enabled","budget_tokens":5120},
        "temperature":1,"top_p":0.9,"stop_sequences":["END"],"stream":true,
        "output_config":{"format":{"type":"json_schema","schema":{"type":"object"}}},
        "messages":[
          {"role":"user","content":[{"type":"text","text":"Look"},
             {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAA="}},
             {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBE"},"title":"r.pdf"}]},
          {"role":"assistant","content":[{"type":"text","text":"Checking."},
             {"type":"tool_use","id":"t1","name":"get_weather","input":{"city":"Paris"}},
             {"type":"tool_use","id":"t2","name":"get_weather","input":{"city":"Rome"}}]},
          {"role":"user","content":[
             {"type":"tool_result","tool_use_id":"t1","content":"18C"},
             {"type":"tool_result","tool_use_id":"t2","content":"25C"},
             {"type":"text","text":"Thanks"}]}]}"#;

    /// What a round trip may change: the decoder's own notes.
    fn comparable(mut request: Request) -> Request {
        request.dropped.clear();
        request
    }

    #[test]
    fn openai_requests_survive_a_round_trip() {
        let body = r#"{"model":"gpt-4o","messages":[
              {"role":"system","content":"Be brief."},
              {"role":"user","content":[{"type":"text","text":"Look","cache_control":{"type":"ephemeral","ttl":"1h"}},
                 {"type":"image_url","image_url":{"url":"https://x/y.png","detail":"high"}}]},
              {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
              {"role":"tool","tool_call_id":"c1","content":"done"},
              {"role":"user","content":"next"}],
            "max_completion_tokens":300,"temperature":0.3,"top_p":0.5,"stop":"END","stream":true,
            "stream_options":{"include_usage":true},
            "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
            "tool_choice":"required","parallel_tool_calls":false,"reasoning_effort":"high",
            "response_format":{"type":"json_schema","json_schema":{"name":"out","schema":{"type":"object"},"strict":true}},
            "web_search_options":{},"seed":7,"n":1,"user":"u"}"#;
        let first = decode_request(body.as_bytes()).unwrap();
        assert_eq!(first.dropped, vec!["n", "seed", "user"]);
        assert_eq!(first.stop, vec!["END".to_owned()]);
        assert_eq!(first.reasoning, Some(Reasoning::Effort(Effort::High)));
        // The user turn after the tool message joins the turn of results, as in Messages.
        assert_eq!(first.messages.len(), 3);
        let again = decode_request(&encode_request(&first, "gpt-4o").body).unwrap();
        assert_eq!(comparable(again), comparable(first));
    }

    #[test]
    fn anthropic_to_openai_and_back_keeps_what_both_support() {
        let original = anthropic::decode_request(RICH_ANTHROPIC.as_bytes()).unwrap();
        let openai = encode_request(&original, "m");
        assert!(openai.dropped.is_empty(), "{:?}", openai.dropped);
        let back = decode_request(&openai.body).unwrap();
        // Chat Completions speaks reasoning in effort levels: 5120 comes back as "medium",
        // which is 5120 again.
        assert_eq!(back.reasoning, Some(Reasoning::Effort(Effort::Medium)));
        assert_eq!(back.reasoning.unwrap().budget(), Some(5120));
        // JSON schema output gets a name on the way (Chat Completions requires one).
        assert!(
            matches!(&back.output, Some(OutputFormat::JsonSchema { name: Some(n), .. }) if n == "response")
        );
        let normalize = |mut r: Request| {
            r.reasoning = r
                .reasoning
                .and_then(Reasoning::budget)
                .map(Reasoning::Budget);
            if let Some(OutputFormat::JsonSchema { name, .. }) = &mut r.output {
                *name = None;
            }
            comparable(r)
        };
        assert_eq!(normalize(back), normalize(original));
    }

    #[test]
    fn anthropic_requests_survive_a_round_trip() {
        let first = anthropic::decode_request(RICH_ANTHROPIC.as_bytes()).unwrap();
        let encoded = anthropic::encode_request(&first, "m");
        assert!(encoded.dropped.is_empty(), "{:?}", encoded.dropped);
        let again = anthropic::decode_request(&encoded.body).unwrap();
        assert_eq!(comparable(again), comparable(first));
    }

    #[test]
    fn openai_reasoning_details_reach_anthropic_with_their_signature() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"q"},
            {"role":"assistant","content":"a","reasoning":"plain",
             "reasoning_details":[{"type":"reasoning.text","text":"think","signature":"sig","format":"anthropic-claude-v1"},
                                  {"type":"reasoning.encrypted","data":"enc"},
                                  {"type":"reasoning.summary","summary":"s"}]},
            {"role":"user","content":"q2"}]}"#;
        let request = decode_request(body.as_bytes()).unwrap();
        let encoded = anthropic::encode_request(&request, "claude");
        let value: Value = serde_json::from_slice(&encoded.body).unwrap();
        assert_eq!(
            value["messages"][1]["content"],
            json!([
                {"type": "thinking", "thinking": "think", "signature": "sig"},
                {"type": "redacted_thinking", "data": "enc"},
                {"type": "text", "text": "a"},
            ])
        );
        assert_eq!(value["max_tokens"], json!(anthropic::DEFAULT_MAX_TOKENS));
        // Thinking without a signature cannot go back to Messages.
        let plain = r#"{"model":"m","messages":[{"role":"user","content":"q"},
            {"role":"assistant","content":"a","reasoning_content":"plain"}]}"#;
        let encoded = anthropic::encode_request(&decode_request(plain.as_bytes()).unwrap(), "c");
        assert_eq!(encoded.dropped, vec!["messages.1.0".to_owned()]);
    }

    #[test]
    fn invalid_openai_requests_name_the_field() {
        let cases = [
            (r#"{"messages":[{"role":"user","content":"x"}]}"#, "model"),
            (r#"{"model":"m","messages":[]}"#, "messages"),
            (
                r#"{"model":"m","messages":[{"role":"function","content":"x"}]}"#,
                "messages.0.role",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user"}]}"#,
                "messages.0.content",
            ),
            (
                r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#,
                "messages.0.tool_call_id",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio"}]}]}"#,
                "messages.0.content.0.type",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"reasoning_effort":"max"}"#,
                "reasoning_effort",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"any"}"#,
                "tool_choice",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"xml"}}"#,
                "response_format.type",
            ),
        ];
        for (body, path) in cases {
            let error = decode_request(body.as_bytes()).unwrap_err();
            assert_eq!(error.path, path, "{body}: {error}");
        }
    }

    #[test]
    fn an_error_flag_on_a_tool_result_is_reported_as_dropped() {
        let (body, dropped) = encode(
            r#"{"model":"m","max_tokens":10,"messages":[
                {"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]},
                {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"boom","is_error":true}]}]}"#,
        );
        assert_eq!(
            body["messages"][1],
            json!({"role": "tool", "tool_call_id": "t", "content": "boom"})
        );
        assert_eq!(dropped, vec!["messages.1.0.is_error".to_owned()]);
    }

    #[test]
    fn chat_completion_to_messages_response_and_back() {
        let completion = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt",
            "choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant",
              "content":"Let me check.","reasoning":"hmm",
              "reasoning_details":[{"type":"reasoning.text","text":"hmm","signature":"sig"}],
              "tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"x\": 1}"}}]}}],
            "usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120,
              "prompt_tokens_details":{"cached_tokens":60},"completion_tokens_details":{"reasoning_tokens":5}}}"#;
        let response = decode_response(completion.as_bytes()).unwrap();
        assert_eq!(response.stop, Some(StopReason::ToolUse));
        assert_eq!(
            response.usage,
            Usage {
                input: 40,
                output: 20,
                cache_read: 60,
                cache_write: 0,
                reasoning: 5
            }
        );
        let message: Value =
            serde_json::from_slice(&anthropic::encode_response(&response, "msg_1", "m")).unwrap();
        assert_eq!(
            message,
            json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "call_1", "name": "f", "input": {"x": 1}},
                ],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 40, "output_tokens": 20,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 60},
            })
        );
        let back = anthropic::decode_response(&serde_json::to_vec(&message).unwrap()).unwrap();
        // Messages re-renders the arguments and has no reasoning-token count.
        let mut expected = response.clone();
        expected.usage.reasoning = 0;
        if let Part::ToolCall { arguments, .. } = &mut expected.parts[2] {
            *arguments = r#"{"x":1}"#.to_owned();
        }
        assert_eq!(back, expected);
    }

    #[test]
    fn messages_response_to_chat_completion_and_back() {
        let message = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude",
            "content":[{"type":"thinking","thinking":"plan","signature":"s1"},
                       {"type":"server_tool_use","id":"srv","name":"web_search","input":{"query":"q"}},
                       {"type":"text","text":"Done"}],
            "stop_reason":"stop_sequence","stop_sequence":"END",
            "usage":{"input_tokens":10,"output_tokens":3,"cache_creation_input_tokens":4,"cache_read_input_tokens":6}}"#;
        let response = anthropic::decode_response(message.as_bytes()).unwrap();
        assert_eq!(response.parts.len(), 2);
        assert_eq!(
            response.stop,
            Some(StopReason::StopSequence(Some("END".to_owned())))
        );
        let completion: Value =
            serde_json::from_slice(&encode_response(&response, "gen-1", "anthropic/claude", 7))
                .unwrap();
        assert_eq!(
            completion,
            json!({
                "id": "gen-1", "object": "chat.completion", "created": 7, "model": "anthropic/claude",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {
                    "role": "assistant", "content": "Done", "reasoning": "plan",
                    "reasoning_details": [{"type": "reasoning.text", "text": "plan",
                        "format": "anthropic-claude-v1", "index": 0, "signature": "s1"}],
                }}],
                "usage": {"prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23,
                          "prompt_tokens_details": {"cached_tokens": 6},
                          "completion_tokens_details": {"reasoning_tokens": 0}},
            })
        );
        let back = decode_response(&serde_json::to_vec(&completion).unwrap()).unwrap();
        // Chat Completions names no stop sequence and has no cache-write count.
        assert_eq!(back.stop, Some(StopReason::EndTurn));
        assert_eq!(back.parts, response.parts);
        assert_eq!(back.usage.input + back.usage.cache_read, 20);
    }

    #[test]
    fn unsigned_thinking_gets_an_empty_signature_that_reads_back_as_none() {
        let response = Response {
            parts: vec![Part::Thinking {
                text: "t".to_owned(),
                signature: None,
            }],
            stop: Some(StopReason::EndTurn),
            usage: Usage::default(),
        };
        let body = anthropic::encode_response(&response, "msg", "m");
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["content"][0]["signature"], json!(""));
        assert_eq!(anthropic::decode_response(&body).unwrap(), response);
    }

    #[test]
    fn refusals_in_the_history_are_what_the_assistant_said() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"q"},
            {"role":"assistant","content":null,"refusal":"I can't help with that."},
            {"role":"assistant","content":[{"type":"refusal","refusal":"No."}]},
            {"role":"user","content":"ok"}]}"#;
        let request = decode_request(body.as_bytes()).unwrap();
        let said = |i: usize| request.messages[i].parts.clone();
        assert_eq!(
            said(1),
            vec![Part::Text {
                text: "I can't help with that.".to_owned(),
                cache: None
            }]
        );
        assert_eq!(
            said(2),
            vec![Part::Text {
                text: "No.".to_owned(),
                cache: None
            }]
        );
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
