//! OpenAI Responses (`POST /v1/responses`) as a client-facing surface: requests decoded into
//! the neutral request, answers encoded as `response` objects. Providers are reached through
//! the other protocols, so there is no request encoder and no response decoder.
//!
//! Nothing is stored between calls. What points at state a Responses server keeps
//! (`previous_response_id`, `conversation`, stored prompts, item references, uploaded file
//! ids) is refused with what to send instead, rather than answered without that context.

pub mod stream;

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::{
    Effort, Invalid, Media, Message, OutputFormat, Part, Reasoning, Request, Response, Role,
    StopReason, Tool, ToolChoice, Usage, parse, present, required, untranslatable,
};

/// Responses parameters no other protocol has: dropped when translating, by name.
const UNTRANSLATABLE: &[&str] = &[
    "store",
    "metadata",
    "include",
    "truncation",
    "user",
    "service_tier",
    "background",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
    "top_logprobs",
    "max_tool_calls",
];

/// How a reference to stored state is refused; what to send instead follows.
const NOT_STORED: &str = "is not supported (nothing is stored here)";

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
    instructions: Option<String>,
    max_output_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    stream: Option<bool>,
    #[serde(borrow)]
    tools: Option<Vec<&'a RawValue>>,
    #[serde(borrow)]
    tool_choice: Option<&'a RawValue>,
    parallel_tool_calls: Option<bool>,
    #[serde(borrow)]
    reasoning: Option<&'a RawValue>,
    #[serde(borrow)]
    text: Option<&'a RawValue>,
    #[serde(borrow)]
    previous_response_id: Option<&'a RawValue>,
    #[serde(borrow)]
    conversation: Option<&'a RawValue>,
    #[serde(borrow)]
    prompt: Option<&'a RawValue>,
}

/// Decode a Responses request body.
pub fn decode_request(raw_body: &[u8]) -> Result<Request, Invalid> {
    let body: Body = serde_json::from_slice(raw_body).map_err(|e| {
        Invalid::new(
            "",
            format!("the body is not a valid Responses request: {e}"),
        )
    })?;
    for (field, raw, instead) in [
        (
            "previous_response_id",
            body.previous_response_id,
            "send the whole conversation in input",
        ),
        (
            "conversation",
            body.conversation,
            "send the whole conversation in input",
        ),
        (
            "prompt",
            body.prompt,
            "send the prompt's text in instructions and input",
        ),
    ] {
        if present(raw).is_some() {
            return Err(Invalid::new(field, format!("{NOT_STORED}: {instead}")));
        }
    }
    let model = match body.model {
        Some(m) if !m.is_empty() => m.into_owned(),
        _ => return Err(Invalid::new("model", "Field required")),
    };
    let mut request = Request {
        model,
        system: body
            .instructions
            .filter(|text| !text.is_empty())
            .map(|text| Part::Text { text, cache: None })
            .into_iter()
            .collect(),
        max_tokens: body.max_output_tokens,
        temperature: body.temperature,
        top_p: body.top_p,
        stream: body.stream.unwrap_or(false),
        parallel_tool_calls: body.parallel_tool_calls,
        ..Request::default()
    };
    let input = present(body.input).ok_or_else(|| Invalid::new("input", "Field required"))?;
    if input.get().starts_with('"') {
        let text: String = parse(input, "input", "a string or an array of input items")?;
        push(
            &mut request,
            Role::User,
            vec![Part::Text { text, cache: None }],
        );
    } else {
        let items: Vec<&RawValue> = parse(input, "input", "a string or an array of input items")?;
        if items.is_empty() {
            return Err(Invalid::new("input", "must not be empty"));
        }
        for (i, raw) in items.iter().enumerate() {
            decode_item(raw, &format!("input.{i}"), &mut request)?;
        }
        // Every item was one with no equivalent (listed in `dropped`): nothing to answer.
        if request.messages.is_empty() {
            return Err(Invalid::new("input", "holds no message to answer"));
        }
    }
    for (i, raw) in body.tools.unwrap_or_default().iter().enumerate() {
        decode_tool(raw, &format!("tools.{i}"), &mut request)?;
    }
    if let Some(raw) = present(body.tool_choice) {
        decode_tool_choice(raw, &mut request)?;
    }
    if let Some(raw) = present(body.reasoning) {
        decode_reasoning(raw, &mut request)?;
    }
    if let Some(raw) = present(body.text) {
        decode_text(raw, &mut request)?;
    }
    untranslatable(raw_body, UNTRANSLATABLE, &mut request.dropped)?;
    Ok(request)
}

#[derive(Deserialize)]
struct ItemBody<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    call_id: Option<String>,
    name: Option<String>,
    arguments: Option<String>,
    #[serde(borrow)]
    output: Option<&'a RawValue>,
    #[serde(borrow)]
    summary: Option<Vec<&'a RawValue>>,
    encrypted_content: Option<String>,
}

fn decode_item(raw: &RawValue, path: &str, request: &mut Request) -> Result<(), Invalid> {
    let item: ItemBody = parse(raw, path, "an input item object")?;
    match item.kind.as_deref() {
        // A message may leave out its type.
        None | Some("message") => decode_message(&item, path, request)?,
        Some("function_call") => {
            let call = Part::ToolCall {
                id: required(item.call_id, path, "call_id")?,
                name: required(item.name, path, "name")?,
                arguments: required(item.arguments, path, "arguments")?,
            };
            push(request, Role::Assistant, vec![call]);
        }
        Some("function_call_output") => {
            let output_path = format!("{path}.output");
            let content = decode_content(required(item.output, path, "output")?, &output_path)?;
            if content
                .iter()
                .any(|p| !matches!(p, Part::Text { .. } | Part::Image { .. }))
            {
                return Err(Invalid::new(
                    output_path,
                    "a function call output may hold text and images only",
                ));
            }
            let result = Part::ToolResult {
                call_id: required(item.call_id, path, "call_id")?,
                content,
                is_error: false,
            };
            push(request, Role::User, vec![result]);
        }
        Some("reasoning") => {
            if let Some(part) = decode_reasoning_item(item, path)? {
                push(request, Role::Assistant, vec![part]);
            }
        }
        Some("item_reference") => {
            return Err(Invalid::new(
                path,
                format!("{NOT_STORED}: send the item itself"),
            ));
        }
        // Built-in tool calls and their outputs (web_search_call, computer_call...): the
        // provider's own business, with nothing another model could use.
        Some(_) => request.dropped.push(path.to_owned()),
    }
    Ok(())
}

fn decode_message(item: &ItemBody, path: &str, request: &mut Request) -> Result<(), Invalid> {
    let content_path = format!("{path}.content");
    let content = present(item.content)
        .ok_or_else(|| Invalid::new(&content_path, "Field required"))
        .and_then(|raw| decode_content(raw, &content_path));
    match item.role.as_deref() {
        Some("user") => push(request, Role::User, content?),
        Some("assistant") => push(request, Role::Assistant, content?),
        Some("system" | "developer") => {
            let parts = content?;
            if parts.iter().any(|p| !matches!(p, Part::Text { .. })) {
                return Err(Invalid::new(content_path, "may hold text only"));
            }
            request.system.extend(parts);
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

/// Items of one side join one turn: an assistant's reasoning, text and calls come as separate
/// items, and so do the outputs of parallel calls. A user message after call outputs joins
/// their turn, as Messages has it.
fn push(request: &mut Request, role: Role, parts: Vec<Part>) {
    if let Some(last) = request.messages.last_mut()
        && last.role == role
        && (role == Role::Assistant
            || last
                .parts
                .iter()
                .all(|p| matches!(p, Part::ToolResult { .. })))
    {
        last.parts.extend(parts);
        return;
    }
    request.messages.push(Message { role, parts });
}

#[derive(Deserialize)]
struct ContentBody<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    text: Option<String>,
    refusal: Option<String>,
    image_url: Option<String>,
    file_data: Option<String>,
    file_url: Option<String>,
    filename: Option<String>,
    file_id: Option<String>,
}

/// A string (one text part) or an array of content parts.
fn decode_content(raw: &RawValue, path: &str) -> Result<Vec<Part>, Invalid> {
    if raw.get().starts_with('"') {
        let text: String = parse(raw, path, "a string or an array of content parts")?;
        return Ok(vec![Part::Text { text, cache: None }]);
    }
    let items: Vec<&RawValue> = parse(raw, path, "a string or an array of content parts")?;
    let mut parts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("{path}.{i}");
        let part: ContentBody = parse(item, &path, "a content part object")?;
        let kind = required(part.kind.as_deref(), &path, "type")?;
        parts.push(match kind {
            "input_text" | "output_text" => Part::Text {
                text: required(part.text, &path, "text")?,
                cache: None,
            },
            // An assistant's refusal in the history is what it said.
            "refusal" => Part::Text {
                text: required(part.refusal, &path, "refusal")?,
                cache: None,
            },
            "input_image" => {
                let Some(url) = part.image_url else {
                    let uploaded = part.file_id.is_some();
                    return Err(no_source(&path, uploaded, "image_url", "image"));
                };
                Part::Image {
                    source: Media::from_url(&url),
                    cache: None,
                }
            }
            "input_file" => {
                let source = match (part.file_data, part.file_url) {
                    (Some(data), _) => Media::from_url(&data),
                    (None, Some(url)) => Media::Url(url),
                    (None, None) => {
                        let uploaded = part.file_id.is_some();
                        return Err(no_source(&path, uploaded, "file_data", "file"));
                    }
                };
                Part::Document {
                    source,
                    title: part.filename,
                    cache: None,
                }
            }
            other => {
                return Err(Invalid::new(
                    format!("{path}.type"),
                    format!("content part type '{other}' is not supported"),
                ));
            }
        });
    }
    Ok(parts)
}

/// The error for a part without its `field`: one naming an uploaded file instead is refused
/// for that, since uploads are not kept here.
fn no_source(path: &str, uploaded: bool, field: &str, what: &str) -> Invalid {
    if uploaded {
        Invalid::new(
            format!("{path}.file_id"),
            format!("{NOT_STORED}: send the {what} in {field}"),
        )
    } else {
        Invalid::new(format!("{path}.{field}"), "Field required")
    }
}

#[derive(Deserialize)]
struct SummaryBody {
    text: Option<String>,
}

/// A reasoning item as we wrote it (see [`reasoning_item`]): thinking in one summary part,
/// its signature as `encrypted_content`; or, with no summary, encrypted reasoning alone.
/// An item with neither carries nothing to pass back.
fn decode_reasoning_item(item: ItemBody, path: &str) -> Result<Option<Part>, Invalid> {
    let mut texts = Vec::new();
    for (i, raw) in item.summary.iter().flatten().enumerate() {
        let path = format!("{path}.summary.{i}");
        let summary: SummaryBody = parse(raw, &path, "a summary_text object")?;
        texts.push(required(summary.text, &path, "text")?);
    }
    Ok(match (texts.is_empty(), item.encrypted_content) {
        (false, signature) => Some(Part::Thinking {
            text: texts.join("\n\n"),
            signature,
        }),
        (true, Some(data)) => Some(Part::RedactedThinking { data }),
        (true, None) => None,
    })
}

#[derive(Deserialize)]
struct ToolBody<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    name: Option<String>,
    description: Option<String>,
    #[serde(borrow)]
    parameters: Option<&'a RawValue>,
    strict: Option<bool>,
}

fn decode_tool(raw: &RawValue, path: &str, request: &mut Request) -> Result<(), Invalid> {
    let tool: ToolBody = parse(raw, path, "a tool object")?;
    match required(tool.kind.as_deref(), path, "type")? {
        "function" => {
            let parameters = match present(tool.parameters) {
                Some(raw) if raw.get().starts_with('{') => raw.get().to_owned(),
                Some(_) => {
                    return Err(Invalid::new(
                        format!("{path}.parameters"),
                        "must be an object",
                    ));
                }
                // A function declared without parameters takes none.
                None => r#"{"type":"object","properties":{}}"#.to_owned(),
            };
            // Strict schema adherence is OpenAI's own; others get the schema alone.
            if tool.strict == Some(true) {
                request.dropped.push(format!("{path}.strict"));
            }
            request.tools.push(Tool {
                name: required(tool.name, path, "name")?,
                description: tool.description,
                parameters,
                cache: None,
            });
        }
        kind if kind.starts_with("web_search") => request.web_search = true,
        // file_search, code_interpreter, computer_use, image_generation, mcp...: hosted by
        // OpenAI, with no counterpart elsewhere.
        _ => request.dropped.push(path.to_owned()),
    }
    Ok(())
}

#[derive(Deserialize)]
struct ToolChoiceBody<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    name: Option<String>,
}

fn decode_tool_choice(raw: &RawValue, request: &mut Request) -> Result<(), Invalid> {
    if raw.get().starts_with('"') {
        let choice: String = parse(raw, "tool_choice", "a string or an object")?;
        request.tool_choice = Some(match choice.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            _ => {
                return Err(Invalid::new(
                    "tool_choice",
                    "must be 'none', 'auto', 'required' or an object",
                ));
            }
        });
        return Ok(());
    }
    let choice: ToolChoiceBody = parse(raw, "tool_choice", "a string or an object")?;
    match required(choice.kind.as_deref(), "tool_choice", "type")? {
        "function" => {
            request.tool_choice = Some(ToolChoice::Named(required(
                choice.name,
                "tool_choice",
                "name",
            )?));
        }
        // A hosted tool, an allowed-tools subset...: no neutral form.
        _ => request.dropped.push("tool_choice".to_owned()),
    }
    Ok(())
}

#[derive(Deserialize)]
struct ReasoningBody<'a> {
    #[serde(borrow)]
    effort: Option<Cow<'a, str>>,
    #[serde(borrow)]
    summary: Option<&'a RawValue>,
    #[serde(borrow)]
    generate_summary: Option<&'a RawValue>,
}

fn decode_reasoning(raw: &RawValue, request: &mut Request) -> Result<(), Invalid> {
    let body: ReasoningBody = parse(raw, "reasoning", "an object")?;
    if let Some(effort) = body.effort.as_deref() {
        let effort = Effort::parse(effort).ok_or_else(|| {
            Invalid::new(
                "reasoning.effort",
                "must be one of none, minimal, low, medium, high, xhigh",
            )
        })?;
        request.reasoning = Some(Reasoning::Effort(effort));
    }
    // What is returned is the reasoning itself, whatever summary was asked for.
    if present(body.summary)
        .or(present(body.generate_summary))
        .is_some()
    {
        request.dropped.push("reasoning.summary".to_owned());
    }
    Ok(())
}

#[derive(Deserialize)]
struct TextBody<'a> {
    #[serde(borrow)]
    format: Option<&'a RawValue>,
    #[serde(borrow)]
    verbosity: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct FormatBody<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    name: Option<String>,
    #[serde(borrow)]
    schema: Option<&'a RawValue>,
    strict: Option<bool>,
}

fn decode_text(raw: &RawValue, request: &mut Request) -> Result<(), Invalid> {
    let text: TextBody = parse(raw, "text", "an object")?;
    if present(text.verbosity).is_some() {
        request.dropped.push("text.verbosity".to_owned());
    }
    let Some(raw) = present(text.format) else {
        return Ok(());
    };
    let format: FormatBody = parse(raw, "text.format", "an object")?;
    request.output = match format.kind.as_deref() {
        Some("text") => None,
        Some("json_object") => Some(OutputFormat::JsonObject),
        Some("json_schema") => {
            let schema = required(format.schema, "text.format", "schema")?;
            if !schema.get().starts_with('{') {
                return Err(Invalid::new("text.format.schema", "must be an object"));
            }
            Some(OutputFormat::JsonSchema {
                name: format.name,
                schema: schema.get().to_owned(),
                strict: format.strict,
            })
        }
        _ => {
            return Err(Invalid::new(
                "text.format.type",
                "must be 'text', 'json_object' or 'json_schema'",
            ));
        }
    };
    Ok(())
}

/// Encode a `response` object.
pub fn encode_response(response: &Response, id: &str, model: &str, created: u64) -> Vec<u8> {
    let body = response_json(response, id, model, created, None);
    serde_json::to_vec(&body).expect("a JSON value always serializes")
}

/// The members of every `response` object, with `status`: those Responses clients require
/// besides the answer carry their defaults, since the answer is all an encoder sees (the
/// request's tools and settings are not echoed). This is the whole object at a stream's start.
fn envelope(id: &str, model: &str, created: u64, status: &str) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": null,
        "incomplete_details": null,
        "instructions": null,
        "model": model,
        "output": [],
        "parallel_tool_calls": true,
        "tool_choice": "auto",
        "tools": [],
        "usage": null,
    })
}

/// The `response` object of a finished answer; with `error`, of one that failed.
fn response_json(
    answer: &Response,
    id: &str,
    model: &str,
    created: u64,
    error: Option<Value>,
) -> Value {
    let (status, reason) = match error {
        Some(_) => ("failed", None),
        None => ending(answer.stop.as_ref()),
    };
    let mut body = envelope(id, model, created, status);
    body["error"] = error.unwrap_or(Value::Null);
    if let Some(reason) = reason {
        body["incomplete_details"] = json!({ "reason": reason });
    }
    body["output"] = output(answer, id, status != "completed");
    body["usage"] = usage_json(&answer.usage);
    body
}

/// A response's `status` for how the answer stopped, and the reason it is `incomplete`.
fn ending(stop: Option<&StopReason>) -> (&'static str, Option<&'static str>) {
    match stop {
        Some(StopReason::MaxTokens) => ("incomplete", Some("max_output_tokens")),
        Some(StopReason::Refusal) => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

/// The output items: a reasoning item per thinking block, a message per run of text, a
/// function call per tool call. When the answer was cut off, its last item is `incomplete`.
fn output(answer: &Response, id: &str, cut_off: bool) -> Value {
    let mut ids = ItemIds::default();
    let mut items = Vec::new();
    let text_run = |a: &Part, b: &Part| matches!((a, b), (Part::Text { .. }, Part::Text { .. }));
    for run in answer.parts.chunk_by(text_run) {
        items.push(match run {
            [Part::Text { .. }, ..] => {
                let texts = run.iter().filter_map(|p| match p {
                    Part::Text { text, .. } => Some(text.as_str()),
                    _ => None,
                });
                message_item(&ids.next(id, Kind::Message), texts, "completed")
            }
            [Part::Thinking { text, signature }] => reasoning_item(
                &ids.next(id, Kind::Reasoning),
                Some(text),
                signature.as_deref(),
            ),
            [Part::RedactedThinking { data }] => {
                reasoning_item(&ids.next(id, Kind::Reasoning), None, Some(data))
            }
            [
                Part::ToolCall {
                    id: call_id,
                    name,
                    arguments,
                },
            ] => call_item(
                &ids.next(id, Kind::Call),
                call_id,
                name,
                arguments,
                "completed",
            ),
            _ => continue,
        });
    }
    if cut_off && let Some(last) = items.last_mut().filter(|i| i.get("status").is_some()) {
        last["status"] = "incomplete".into();
    }
    Value::Array(items)
}

#[derive(Clone, Copy)]
enum Kind {
    Message,
    Reasoning,
    Call,
}

/// Output item ids, derived from the response id and numbered by kind, so that a response
/// and its stream name each item alike: `msg_<id>` (a later message `msg_<id>_<n>`),
/// `rs_<id>_<n>`, `fc_<id>_<n>`.
#[derive(Default)]
struct ItemIds {
    messages: usize,
    reasoning: usize,
    calls: usize,
}

impl ItemIds {
    fn next(&mut self, response_id: &str, kind: Kind) -> String {
        let (counter, prefix) = match kind {
            Kind::Message => (&mut self.messages, "msg"),
            Kind::Reasoning => (&mut self.reasoning, "rs"),
            Kind::Call => (&mut self.calls, "fc"),
        };
        let n = *counter;
        *counter += 1;
        match kind {
            Kind::Message if n == 0 => format!("{prefix}_{response_id}"),
            _ => format!("{prefix}_{response_id}_{n}"),
        }
    }
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": []})
}

fn message_item<'a>(id: &str, texts: impl IntoIterator<Item = &'a str>, status: &str) -> Value {
    let content: Vec<Value> = texts.into_iter().map(output_text).collect();
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
}

/// Thinking is one summary part (`summary`), its signature the `encrypted_content`; encrypted
/// reasoning has no summary at all, which is how [`decode_reasoning_item`] tells the two apart.
fn reasoning_item(id: &str, summary: Option<&str>, encrypted: Option<&str>) -> Value {
    let summary: Vec<Value> = summary
        .map(|text| json!({"type": "summary_text", "text": text}))
        .into_iter()
        .collect();
    let mut item = json!({"id": id, "type": "reasoning", "summary": summary});
    if let Some(encrypted) = encrypted {
        item["encrypted_content"] = encrypted.into();
    }
    item
}

fn call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({
        "id": id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    })
}

/// `usage` as Responses reports it: input tokens include cache reads and writes.
fn usage_json(u: &Usage) -> Value {
    let input = u.input + u.cache_read + u.cache_write;
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": u.cache_read, "cache_write_tokens": u.cache_write},
        "output_tokens": u.output,
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": input + u.output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::{anthropic, openai};

    fn decode(json: &str) -> Result<Request, Invalid> {
        decode_request(json.as_bytes())
    }

    fn text(text: &str) -> Part {
        Part::Text {
            text: text.to_owned(),
            cache: None,
        }
    }

    fn call(id: &str, name: &str, arguments: &str) -> Part {
        Part::ToolCall {
            id: id.to_owned(),
            name: name.to_owned(),
            arguments: arguments.to_owned(),
        }
    }

    fn result(call_id: &str, output: &str) -> Part {
        Part::ToolResult {
            call_id: call_id.to_owned(),
            content: vec![text(output)],
            is_error: false,
        }
    }

    /// A conversation as the OpenAI SDK sends it: instructions, system and developer messages,
    /// an image and a PDF, the assistant's reasoning, text and two parallel calls, their outputs.
    const RICH: &str = r#"{"model":"openai/gpt-5","instructions":"Be brief.","max_output_tokens":16000,
        "input":[
          {"role":"system","content":"Answer in French."},
          {"type":"message","role":"developer","content":[{"type":"input_text","text":"Use metric units."}]},
          {"role":"user","content":[{"type":"input_text","text":"Weather in Paris and Rome?"},
             {"type":"input_image","image_url":"data:image/png;base64,AAA=","detail":"auto"},
             {"type":"input_file","file_data":"data:application/pdf;base64,JVBE","filename":"r.pdf"}]},
          {"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"Two cities."}],"encrypted_content":"sig"},
          {"type":"message","role":"assistant","id":"msg_1","status":"completed",
             "content":[{"type":"output_text","text":"Checking.","annotations":[]}]},
          {"type":"function_call","id":"fc_1","call_id":"c1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
          {"type":"function_call","id":"fc_2","call_id":"c2","name":"get_weather","arguments":"{\"city\":\"Rome\"}"},
          {"type":"function_call_output","call_id":"c1","output":"18C"},
          {"type":"function_call_output","call_id":"c2","output":[{"type":"input_text","text":"25C"}]},
          {"role":"user","content":"Thanks"}],
        "tools":[{"type":"function","name":"get_weather","description":"Weather","strict":false,
                  "parameters":{"type":"object","properties":{"city":{"type":"string"}}}},
                 {"type":"web_search_preview"},
                 {"type":"file_search","vector_store_ids":["vs_1"]}],
        "tool_choice":"required","parallel_tool_calls":false,
        "reasoning":{"effort":"high","summary":"auto"},
        "text":{"format":{"type":"json_schema","name":"weather","schema":{"type":"object"},"strict":true}},
        "store":false,"metadata":{"k":"v"},"include":["reasoning.encrypted_content"],"user":"u"}"#;

    #[test]
    fn input_of_only_untranslatable_items_is_refused() {
        let refused =
            decode_request(br#"{"model":"m","input":[{"type":"web_search_call","id":"w"}]}"#);
        assert_eq!(refused.unwrap_err().path, "input");
    }

    #[test]
    fn a_string_input_is_one_user_turn() {
        let request = decode(
            r#"{"model":"gpt-5","input":"Hi","instructions":"Be brief.","max_output_tokens":100,
                "temperature":0.2,"top_p":0.9,"stream":true,"store":true,"truncation":"disabled",
                "previous_response_id":null}"#,
        )
        .unwrap();
        assert_eq!(
            request,
            Request {
                model: "gpt-5".to_owned(),
                system: vec![text("Be brief.")],
                messages: vec![Message {
                    role: Role::User,
                    parts: vec![text("Hi")],
                }],
                max_tokens: Some(100),
                temperature: Some(0.2),
                top_p: Some(0.9),
                stream: true,
                dropped: vec!["store".to_owned(), "truncation".to_owned()],
                ..Request::default()
            }
        );
    }

    #[test]
    fn a_rich_item_list_decodes_field_by_field() {
        let request = decode(RICH).unwrap();
        assert_eq!(request.model, "openai/gpt-5");
        assert_eq!(request.max_tokens, Some(16000));
        // Instructions first, then the system and developer messages, wherever they stood.
        assert_eq!(
            request.system,
            vec![
                text("Be brief."),
                text("Answer in French."),
                text("Use metric units.")
            ]
        );
        assert_eq!(request.messages.len(), 3);
        assert_eq!(
            request.messages[0],
            Message {
                role: Role::User,
                parts: vec![
                    text("Weather in Paris and Rome?"),
                    Part::Image {
                        source: Media::Base64 {
                            media_type: "image/png".to_owned(),
                            data: "AAA=".to_owned(),
                        },
                        cache: None,
                    },
                    Part::Document {
                        source: Media::Base64 {
                            media_type: "application/pdf".to_owned(),
                            data: "JVBE".to_owned(),
                        },
                        title: Some("r.pdf".to_owned()),
                        cache: None,
                    },
                ],
            }
        );
        // Reasoning, text and calls are separate items of one assistant turn.
        assert_eq!(
            request.messages[1],
            Message {
                role: Role::Assistant,
                parts: vec![
                    Part::Thinking {
                        text: "Two cities.".to_owned(),
                        signature: Some("sig".to_owned()),
                    },
                    text("Checking."),
                    call("c1", "get_weather", r#"{"city":"Paris"}"#),
                    call("c2", "get_weather", r#"{"city":"Rome"}"#),
                ],
            }
        );
        // The outputs of both calls, then the user's next words, are one user turn.
        assert_eq!(
            request.messages[2],
            Message {
                role: Role::User,
                parts: vec![result("c1", "18C"), result("c2", "25C"), text("Thanks")],
            }
        );
        assert_eq!(
            request.tools,
            vec![Tool {
                name: "get_weather".to_owned(),
                description: Some("Weather".to_owned()),
                parameters: r#"{"type":"object","properties":{"city":{"type":"string"}}}"#
                    .to_owned(),
                cache: None,
            }]
        );
        assert!(request.web_search);
        assert_eq!(request.tool_choice, Some(ToolChoice::Required));
        assert_eq!(request.parallel_tool_calls, Some(false));
        assert_eq!(request.reasoning, Some(Reasoning::Effort(Effort::High)));
        assert_eq!(
            request.output,
            Some(OutputFormat::JsonSchema {
                name: Some("weather".to_owned()),
                schema: r#"{"type":"object"}"#.to_owned(),
                strict: Some(true),
            })
        );
        assert_eq!(
            request.dropped,
            [
                "tools.2",
                "reasoning.summary",
                "include",
                "metadata",
                "store",
                "user"
            ]
        );
    }

    #[test]
    fn tool_choices_formats_and_reasoning_forms() {
        let with = |extra: &str| decode(&format!(r#"{{"model":"m","input":"x",{extra}}}"#));
        for (choice, expected) in [
            (r#""auto""#, ToolChoice::Auto),
            (r#""none""#, ToolChoice::None),
            (r#""required""#, ToolChoice::Required),
            (
                r#"{"type":"function","name":"f"}"#,
                ToolChoice::Named("f".to_owned()),
            ),
        ] {
            let request = with(&format!(r#""tool_choice":{choice}"#)).unwrap();
            assert_eq!(request.tool_choice, Some(expected), "{choice}");
        }
        let hosted = with(r#""tool_choice":{"type":"file_search"}"#).unwrap();
        assert_eq!(hosted.tool_choice, None);
        assert_eq!(hosted.dropped, ["tool_choice"]);

        let json = with(r#""text":{"format":{"type":"json_object"},"verbosity":"low"}"#).unwrap();
        assert_eq!(json.output, Some(OutputFormat::JsonObject));
        assert_eq!(json.dropped, ["text.verbosity"]);
        let plain = with(r#""text":{"format":{"type":"text"}}"#).unwrap();
        assert_eq!(plain.output, None);

        let effort = with(r#""reasoning":{"effort":"minimal"}"#).unwrap();
        assert_eq!(effort.reasoning, Some(Reasoning::Effort(Effort::Minimal)));
        assert!(effort.dropped.is_empty());

        let strict =
            with(r#""tools":[{"type":"function","name":"f","parameters":null,"strict":true}]"#)
                .unwrap();
        assert_eq!(
            strict.tools[0].parameters,
            r#"{"type":"object","properties":{}}"#
        );
        assert_eq!(strict.dropped, ["tools.0.strict"]);
    }

    #[test]
    fn encrypted_reasoning_and_hosted_tool_items() {
        let request = decode(
            r#"{"model":"m","input":[{"role":"user","content":"q"},
                {"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"opaque"},
                {"type":"reasoning","id":"rs_2","summary":[]},
                {"type":"web_search_call","id":"ws_1","status":"completed"},
                {"type":"message","role":"assistant","content":[{"type":"refusal","refusal":"No."}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            request.messages[1].parts,
            vec![
                Part::RedactedThinking {
                    data: "opaque".to_owned()
                },
                text("No.")
            ]
        );
        assert_eq!(request.dropped, ["input.3"]);
    }

    #[test]
    fn invalid_requests_name_the_field() {
        let cases = [
            (r#"{"input":"x"}"#, "model"),
            (r#"{"model":"m"}"#, "input"),
            (r#"{"model":"m","input":[]}"#, "input"),
            (r#"{"model":"m","input":7}"#, "input"),
            (
                r#"{"model":"m","input":[{"role":"tool","content":"x"}]}"#,
                "input.0.role",
            ),
            (r#"{"model":"m","input":[{"content":"x"}]}"#, "input.0.role"),
            (
                r#"{"model":"m","input":[{"role":"user"}]}"#,
                "input.0.content",
            ),
            (
                r#"{"model":"m","input":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},
                    {"role":"user","content":[{"type":"input_image","detail":"auto"}]}]}"#,
                "input.2.content.0.image_url",
            ),
            (
                r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_file","filename":"a.pdf"}]}]}"#,
                "input.0.content.0.file_data",
            ),
            (
                r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_audio"}]}]}"#,
                "input.0.content.0.type",
            ),
            (
                r#"{"model":"m","input":[{"role":"system","content":[{"type":"input_image","image_url":"https://x/a.png"}]}]}"#,
                "input.0.content",
            ),
            (
                r#"{"model":"m","input":[{"type":"function_call","name":"f","arguments":"{}"}]}"#,
                "input.0.call_id",
            ),
            (
                r#"{"model":"m","input":[{"type":"function_call_output","call_id":"c"}]}"#,
                "input.0.output",
            ),
            (
                r#"{"model":"m","input":[{"type":"function_call_output","call_id":"c",
                    "output":[{"type":"input_file","file_data":"data:application/pdf;base64,JVBE"}]}]}"#,
                "input.0.output",
            ),
            (
                r#"{"model":"m","input":[{"type":"reasoning","summary":[{"type":"summary_text"}]}]}"#,
                "input.0.summary.0.text",
            ),
            (
                r#"{"model":"m","input":"x","tools":[{"type":"function"}]}"#,
                "tools.0.name",
            ),
            (
                r#"{"model":"m","input":"x","tools":[{"type":"function","name":"f","parameters":"x"}]}"#,
                "tools.0.parameters",
            ),
            (
                r#"{"model":"m","input":"x","tools":[{"name":"f"}]}"#,
                "tools.0.type",
            ),
            (
                r#"{"model":"m","input":"x","tool_choice":"any"}"#,
                "tool_choice",
            ),
            (
                r#"{"model":"m","input":"x","tool_choice":{"type":"function"}}"#,
                "tool_choice.name",
            ),
            (
                r#"{"model":"m","input":"x","reasoning":{"effort":"max"}}"#,
                "reasoning.effort",
            ),
            (
                r#"{"model":"m","input":"x","text":{"format":{"type":"xml"}}}"#,
                "text.format.type",
            ),
            (
                r#"{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"n"}}}"#,
                "text.format.schema",
            ),
        ];
        for (body, path) in cases {
            let error = decode(body).unwrap_err();
            assert_eq!(error.path, path, "{body}: {error}");
        }
    }

    /// Nothing is stored here: what points at stored state is refused, not answered without it.
    #[test]
    fn references_to_stored_state_are_refused() {
        let error = decode(r#"{"model":"m","input":"and then?","previous_response_id":"resp_1"}"#)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "previous_response_id: is not supported (nothing is stored here): \
             send the whole conversation in input"
        );
        let cases = [
            (
                r#"{"model":"m","input":"x","conversation":"conv_1"}"#,
                "conversation",
            ),
            (
                r#"{"model":"m","input":"x","prompt":{"id":"pmpt_1"}}"#,
                "prompt",
            ),
            (
                r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"file_1"}]}]}"#,
                "input.0.content.0.file_id",
            ),
            (
                r#"{"model":"m","input":[{"type":"item_reference","id":"msg_1"}]}"#,
                "input.0",
            ),
        ];
        for (body, path) in cases {
            let error = decode(body).unwrap_err();
            assert_eq!(error.path, path, "{body}: {error}");
            assert!(error.message.contains("nothing is stored here"), "{error}");
        }
    }

    #[test]
    fn to_chat_completions_calls_pair_with_their_outputs() {
        let request = decode(RICH).unwrap();
        let encoded = openai::encode_request(&request, "gpt-5");
        let body: Value = serde_json::from_slice(&encoded.body).unwrap();
        assert_eq!(
            body["messages"],
            json!([
                {"role": "system", "content": [
                    {"type": "text", "text": "Be brief."},
                    {"type": "text", "text": "Answer in French."},
                    {"type": "text", "text": "Use metric units."},
                ]},
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather in Paris and Rome?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA="}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "r.pdf"}},
                ]},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}},
                ]},
                {"role": "tool", "tool_call_id": "c1", "content": "18C"},
                {"role": "tool", "tool_call_id": "c2", "content": "25C"},
                {"role": "user", "content": "Thanks"},
            ])
        );
        assert_eq!(body["max_completion_tokens"], 16000);
        assert_eq!(body["tool_choice"], "required");
        assert_eq!(body["parallel_tool_calls"], false);
        assert_eq!(body["reasoning_effort"], "high");
        assert_eq!(body["web_search_options"], json!({}));
        assert_eq!(
            body["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "weather", "schema": {"type": "object"}, "strict": true}})
        );
        // Chat Completions takes no reasoning back.
        assert_eq!(encoded.dropped, ["messages.1.0"]);
    }

    #[test]
    fn to_messages_thinking_keeps_its_signature() {
        let request = decode(RICH).unwrap();
        let encoded = anthropic::encode_request(&request, "claude");
        assert!(encoded.dropped.is_empty(), "{:?}", encoded.dropped);
        let body: Value = serde_json::from_slice(&encoded.body).unwrap();
        assert_eq!(
            body["system"],
            json!([
                {"type": "text", "text": "Be brief."},
                {"type": "text", "text": "Answer in French."},
                {"type": "text", "text": "Use metric units."},
            ])
        );
        assert_eq!(
            body["messages"][1]["content"],
            json!([
                {"type": "thinking", "thinking": "Two cities.", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "c2", "name": "get_weather", "input": {"city": "Rome"}},
            ])
        );
        assert_eq!(
            body["messages"][2]["content"],
            json!([
                {"type": "tool_result", "tool_use_id": "c1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "c2", "content": "25C"},
                {"type": "text", "text": "Thanks"},
            ])
        );
        assert_eq!(body["max_tokens"], 16000);
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": 10240})
        );
        assert_eq!(
            body["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
        assert_eq!(
            body["tools"][1],
            json!({"type": "web_search_20250305", "name": "web_search"})
        );
    }

    fn answer() -> Response {
        Response {
            parts: vec![
                Part::Thinking {
                    text: "plan".to_owned(),
                    signature: Some("sig".to_owned()),
                },
                text("Let me "),
                text("check."),
                call("call_1", "f", r#"{"x":1}"#),
            ],
            stop: Some(StopReason::ToolUse),
            usage: Usage {
                input: 40,
                output: 20,
                cache_read: 60,
                cache_write: 5,
                reasoning: 4,
            },
        }
    }

    fn encode(response: &Response) -> Value {
        serde_json::from_slice(&encode_response(response, "resp_1", "openai/gpt-5", 7)).unwrap()
    }

    #[test]
    fn a_response_object() {
        assert_eq!(
            encode(&answer()),
            json!({
                "id": "resp_1", "object": "response", "created_at": 7, "status": "completed",
                "error": null, "incomplete_details": null, "instructions": null,
                "model": "openai/gpt-5",
                "output": [
                    {"id": "rs_resp_1_0", "type": "reasoning",
                     "summary": [{"type": "summary_text", "text": "plan"}], "encrypted_content": "sig"},
                    {"id": "msg_resp_1", "type": "message", "status": "completed", "role": "assistant",
                     "content": [{"type": "output_text", "text": "Let me ", "annotations": []},
                                 {"type": "output_text", "text": "check.", "annotations": []}]},
                    {"id": "fc_resp_1_0", "type": "function_call", "status": "completed",
                     "call_id": "call_1", "name": "f", "arguments": "{\"x\":1}"},
                ],
                "parallel_tool_calls": true, "tool_choice": "auto", "tools": [],
                "usage": {"input_tokens": 105,
                          "input_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 5},
                          "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 4},
                          "total_tokens": 125},
            })
        );
    }

    #[test]
    fn cut_off_answers_are_incomplete_and_say_why() {
        let mut response = Response {
            parts: vec![text("a"), call("c", "f", "{"), text("b")],
            stop: Some(StopReason::MaxTokens),
            usage: Usage::default(),
        };
        let body = encode(&response);
        assert_eq!(body["status"], "incomplete");
        assert_eq!(
            body["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        let statuses: Vec<&Value> = body["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| &i["status"])
            .collect();
        assert_eq!(
            statuses,
            [
                &json!("completed"),
                &json!("completed"),
                &json!("incomplete")
            ]
        );
        // Each run of text is its own message.
        assert_eq!(body["output"][2]["id"], "msg_resp_1_1");

        response.stop = Some(StopReason::Refusal);
        let body = encode(&response);
        assert_eq!(body["status"], "incomplete");
        assert_eq!(
            body["incomplete_details"],
            json!({"reason": "content_filter"})
        );

        for stop in [
            None,
            Some(StopReason::EndTurn),
            Some(StopReason::StopSequence(None)),
        ] {
            response.stop = stop;
            assert_eq!(encode(&response)["status"], "completed");
        }
    }

    /// What a client passes back on its next turn is the answer it was given.
    #[test]
    fn output_items_come_back_as_the_same_parts() {
        let mut response = answer();
        response.parts.insert(
            1,
            Part::RedactedThinking {
                data: "opaque".to_owned(),
            },
        );
        let mut input = vec![json!({"role": "user", "content": "q"})];
        input.extend(
            encode(&response)["output"]
                .as_array()
                .unwrap()
                .iter()
                .cloned(),
        );
        let request = decode(&json!({"model": "m", "input": input}).to_string()).unwrap();
        assert_eq!(request.messages[1].parts, response.parts);
    }
}
