//! Gemini generateContent (`POST models/{model}:generateContent`, and
//! `:streamGenerateContent` for streams) to and from the neutral request and response. The
//! model and whether to stream are in the URL, not the body.
//!
//! Function calls travel without ids: Vertex AI rejects an `id` on `functionCall` and
//! `functionResponse` (and Google's SDKs refuse to send one to it), so responses are matched to
//! calls by name and order, as Gemini itself does. Thought signatures stay on the part they came
//! on: a signature on a part that is not a thought reads as an empty, signed thinking part just
//! before it, and is written back onto the part that follows such a thinking part.

pub mod stream;

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::{
    Effort, Encoded, Invalid, Media, Message, OutputFormat, Part, Reasoning, Request, Response,
    Role, StopReason, Tool, ToolChoice, Usage, base64_encode, parse, present, raw_json, required,
    tool_input,
};

/// Gemini parameters no other protocol has, by their camelCase path: dropped when translating.
const UNTRANSLATABLE: &[&str] = &[
    "safetySettings",
    "cachedContent",
    "labels",
    "toolConfig.retrievalConfig",
    "generationConfig.seed",
    "generationConfig.presencePenalty",
    "generationConfig.frequencyPenalty",
    "generationConfig.responseLogprobs",
    "generationConfig.logprobs",
    "generationConfig.responseModalities",
    "generationConfig.speechConfig",
    "generationConfig.imageConfig",
    "generationConfig.mediaResolution",
    "generationConfig.audioTimestamp",
    "generationConfig.enableEnhancedCivicAnswers",
    "generationConfig.routingConfig",
];

/// The request body. Google's APIs accept each field in camelCase or snake_case; both are read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    #[serde(borrow)]
    contents: Option<Vec<&'a RawValue>>,
    #[serde(borrow, alias = "system_instruction")]
    system_instruction: Option<&'a RawValue>,
    #[serde(borrow)]
    tools: Option<Vec<&'a RawValue>>,
    #[serde(borrow, alias = "tool_config")]
    tool_config: Option<&'a RawValue>,
    #[serde(borrow, alias = "generation_config")]
    generation_config: Option<&'a RawValue>,
}

/// An object's keys only, to find the parameters that have no counterpart elsewhere.
#[derive(Deserialize)]
struct Keys<'a>(#[serde(borrow)] std::collections::BTreeMap<Cow<'a, str>, &'a RawValue>);

/// Decode a generateContent request body; `model` and `stream` come from the URL.
pub fn decode_request(raw_body: &[u8], model: &str, stream: bool) -> Result<Request, Invalid> {
    let body: Body = serde_json::from_slice(raw_body).map_err(|e| {
        Invalid::new(
            "",
            format!("the body is not a valid generateContent request: {e}"),
        )
    })?;
    let Some(raw_contents) = body.contents else {
        return Err(Invalid::new("contents", "Field required"));
    };
    if raw_contents.is_empty() {
        return Err(Invalid::new("contents", "must not be empty"));
    }
    let mut request = Request {
        model: model.to_owned(),
        stream,
        ..Request::default()
    };
    let mut calls = Calls::new("call_");
    for (i, raw) in raw_contents.iter().enumerate() {
        decode_content(raw, &format!("contents.{i}"), &mut calls, &mut request)?;
    }
    if let Some(raw) = present(body.system_instruction) {
        request.system = decode_system(raw)?;
    }
    for (i, raw) in body.tools.unwrap_or_default().iter().enumerate() {
        decode_tool(raw, &format!("tools.{i}"), &mut request)?;
    }
    if let Some(raw) = present(body.tool_config) {
        decode_tool_config(raw, &mut request)?;
        note_untranslatable(raw.get().as_bytes(), "toolConfig", &mut request.dropped)?;
    }
    if let Some(raw) = present(body.generation_config) {
        decode_generation_config(raw, &mut request)?;
        note_untranslatable(
            raw.get().as_bytes(),
            "generationConfig",
            &mut request.dropped,
        )?;
    }
    note_untranslatable(raw_body, "", &mut request.dropped)?;
    Ok(request)
}

/// Lists in `dropped` the members of the object at `prefix` that are in [`UNTRANSLATABLE`].
fn note_untranslatable(raw: &[u8], prefix: &str, dropped: &mut Vec<String>) -> Result<(), Invalid> {
    let keys: Keys = serde_json::from_slice(raw)
        .map_err(|e| Invalid::new(prefix, format!("must be an object: {e}")))?;
    for (key, value) in &keys.0 {
        let path = match prefix {
            "" => camel(key).into_owned(),
            _ => format!("{prefix}.{}", camel(key)),
        };
        if value.get() != "null" && UNTRANSLATABLE.contains(&path.as_str()) {
            dropped.push(path);
        }
    }
    Ok(())
}

/// A field name in camelCase, the form paths are reported in whichever form was sent.
fn camel(key: &str) -> Cow<'_, str> {
    if !key.contains('_') {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The function calls of a conversation or an answer: ids for calls that came without one, and
/// which calls a `functionResponse` may still answer.
struct Calls {
    /// Generated ids are this followed by the call's number.
    prefix: String,
    made: Vec<Call>,
}

struct Call {
    id: String,
    name: String,
    answered: bool,
}

impl Calls {
    fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            made: Vec::new(),
        }
    }

    /// A call made: its own id, or the next generated one.
    fn call(&mut self, id: Option<String>, name: &str) -> String {
        let id = id
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| format!("{}{}", self.prefix, self.made.len()));
        self.made.push(Call {
            id: id.clone(),
            name: name.to_owned(),
            answered: false,
        });
        id
    }

    /// The id of the call a response answers: the call it names by id, else the earliest
    /// unanswered call of its function.
    fn answer(&mut self, id: Option<&str>, name: &str) -> Option<String> {
        let index = id
            .and_then(|id| self.made.iter().position(|c| c.id == id))
            .or_else(|| self.made.iter().position(|c| !c.answered && c.name == name))?;
        let call = &mut self.made[index];
        call.answered = true;
        Some(call.id.clone())
    }
}

/// The ids of an answer's function calls: `call_<responseId>_<n>` when the response has an id,
/// so calls of different turns never share one.
fn answer_calls(response_id: Option<&str>) -> Calls {
    match response_id {
        Some(id) if !id.is_empty() => Calls::new(format!("call_{id}_")),
        _ => Calls::new("call_"),
    }
}

#[derive(Deserialize)]
struct ContentBody<'a> {
    #[serde(borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow)]
    parts: Option<Vec<&'a RawValue>>,
}

fn decode_content(
    raw: &RawValue,
    path: &str,
    calls: &mut Calls,
    request: &mut Request,
) -> Result<(), Invalid> {
    let content: ContentBody = parse(raw, path, "a content object")?;
    // Function results are the user's turn, whether in `user` or in the older `function` role.
    let role = match content.role.as_deref() {
        None | Some("user" | "function") => Role::User,
        Some("model") => Role::Assistant,
        Some(other) => {
            return Err(Invalid::new(
                format!("{path}.role"),
                format!("must be 'user' or 'model', not '{other}'"),
            ));
        }
    };
    let raw_parts = required(content.parts, path, "parts")?;
    // Gemini takes several turns of one role in a row; the other protocols want one.
    if request.messages.last().is_none_or(|m| m.role != role) {
        request.messages.push(Message {
            role,
            parts: Vec::new(),
        });
    }
    let message = request.messages.last_mut().expect("pushed above");
    for (j, raw) in raw_parts.iter().enumerate() {
        let part_path = format!("{path}.parts.{j}");
        decode_part(
            raw,
            &part_path,
            calls,
            &mut message.parts,
            &mut request.dropped,
        )?;
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PartBody<'a> {
    text: Option<String>,
    thought: Option<bool>,
    #[serde(alias = "thought_signature")]
    thought_signature: Option<String>,
    #[serde(borrow, alias = "inline_data")]
    inline_data: Option<&'a RawValue>,
    #[serde(borrow, alias = "file_data")]
    file_data: Option<&'a RawValue>,
    #[serde(borrow, alias = "function_call")]
    function_call: Option<&'a RawValue>,
    #[serde(borrow, alias = "function_response")]
    function_response: Option<&'a RawValue>,
}

/// A request's part: what answers are made of, or media, or a function's response.
fn decode_part(
    raw: &RawValue,
    path: &str,
    calls: &mut Calls,
    parts: &mut Vec<Part>,
    dropped: &mut Vec<String>,
) -> Result<(), Invalid> {
    let part: PartBody = parse(raw, path, "a part object")?;
    let Some(part) = decode_answer_part(part, path, calls, parts)? else {
        return Ok(());
    };
    if let Some(raw) = part.inline_data {
        parts.push(decode_blob(raw, &format!("{path}.inlineData"))?);
    } else if let Some(raw) = part.file_data {
        parts.push(decode_file(raw, &format!("{path}.fileData"))?);
    } else if let Some(raw) = part.function_response {
        let result_path = format!("{path}.functionResponse");
        parts.push(decode_result(raw, &result_path, calls, dropped)?);
    } else {
        return Err(Invalid::new(
            path,
            "must hold text, inlineData, fileData, functionCall or functionResponse",
        ));
    }
    Ok(())
}

/// Text, thoughts, signatures and function calls — what answers are made of — into `parts`.
/// A part holding something else (media, a function's response) is returned to the caller.
fn decode_answer_part<'a>(
    mut part: PartBody<'a>,
    path: &str,
    calls: &mut Calls,
    parts: &mut Vec<Part>,
) -> Result<Option<PartBody<'a>>, Invalid> {
    let signature = part.thought_signature.take().filter(|s| !s.is_empty());
    if part.thought == Some(true) {
        push_thought(parts, part.text.unwrap_or_default(), signature);
        return Ok(None);
    }
    let signed = signature.is_some();
    if signed {
        parts.push(Part::Thinking {
            text: String::new(),
            signature,
        });
    }
    if let Some(text) = part.text {
        // An empty text part only carries a signature; the other protocols reject empty text.
        if !text.is_empty() {
            parts.push(Part::Text { text, cache: None });
        }
        return Ok(None);
    }
    if let Some(raw) = part.function_call {
        parts.push(decode_call(raw, &format!("{path}.functionCall"), calls)?);
        return Ok(None);
    }
    let bare =
        part.inline_data.is_none() && part.file_data.is_none() && part.function_response.is_none();
    Ok((!(signed && bare)).then_some(part))
}

/// A thought part. A streamed thought comes in pieces, signed on the last, and clients hand the
/// pieces back as they got them: pieces after an unsigned one continue it, so the signature
/// ends up on the whole thought as the other protocols carry it.
fn push_thought(parts: &mut Vec<Part>, text: String, signature: Option<String>) {
    if let Some(Part::Thinking {
        text: open,
        signature: open_signature @ None,
    }) = parts.last_mut()
    {
        open.push_str(&text);
        *open_signature = signature;
        return;
    }
    if !text.is_empty() || signature.is_some() {
        parts.push(Part::Thinking { text, signature });
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlobBody {
    #[serde(alias = "mime_type")]
    mime_type: Option<String>,
    data: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileBody {
    #[serde(alias = "mime_type")]
    mime_type: Option<String>,
    #[serde(alias = "file_uri")]
    file_uri: Option<String>,
}

fn decode_blob(raw: &RawValue, path: &str) -> Result<Part, Invalid> {
    let blob: BlobBody = parse(raw, path, "an object with mimeType and data")?;
    let media_type = required(blob.mime_type, path, "mimeType")?;
    let data = required(blob.data, path, "data")?;
    media_part(
        Media::Base64 {
            media_type: media_type.clone(),
            data,
        },
        &media_type,
        path,
    )
}

fn decode_file(raw: &RawValue, path: &str) -> Result<Part, Invalid> {
    let file: FileBody = parse(raw, path, "an object with fileUri")?;
    let uri = required(file.file_uri, path, "fileUri")?;
    let media_type = match file.mime_type {
        Some(media_type) => media_type,
        None => required(media_type_of(&uri), path, "mimeType")?.to_owned(),
    };
    media_part(Media::Url(uri), &media_type, path)
}

/// Images, PDFs and text documents: the media the other protocols carry.
fn media_part(source: Media, media_type: &str, path: &str) -> Result<Part, Invalid> {
    if media_type.starts_with("image/") {
        Ok(Part::Image {
            source,
            cache: None,
        })
    } else if media_type == "application/pdf" || media_type.starts_with("text/") {
        Ok(Part::Document {
            source,
            title: None,
            cache: None,
        })
    } else {
        Err(Invalid::new(
            format!("{path}.mimeType"),
            format!("media type '{media_type}' is not supported"),
        ))
    }
}

/// The media type a URL's file extension names, for the kinds of file Gemini reads.
fn media_type_of(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next().unwrap_or(path);
    let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        _ => return None,
    })
}

#[derive(Deserialize)]
struct CallBody<'a> {
    id: Option<String>,
    name: Option<String>,
    #[serde(borrow)]
    args: Option<&'a RawValue>,
}

fn decode_call(raw: &RawValue, path: &str, calls: &mut Calls) -> Result<Part, Invalid> {
    let call: CallBody = parse(raw, path, "an object with name and args")?;
    let name = required(call.name, path, "name")?;
    let arguments = match present(call.args) {
        None => "{}".to_owned(),
        Some(raw) if raw.get().starts_with('{') => raw.get().to_owned(),
        Some(_) => return Err(Invalid::new(format!("{path}.args"), "must be an object")),
    };
    Ok(Part::ToolCall {
        id: calls.call(call.id, &name),
        name,
        arguments,
    })
}

#[derive(Deserialize)]
struct ResultBody<'a> {
    id: Option<String>,
    name: Option<String>,
    #[serde(borrow)]
    response: Option<&'a RawValue>,
    #[serde(borrow)]
    parts: Option<&'a RawValue>,
}

fn decode_result(
    raw: &RawValue,
    path: &str,
    calls: &mut Calls,
    dropped: &mut Vec<String>,
) -> Result<Part, Invalid> {
    let result: ResultBody = parse(raw, path, "an object with name and response")?;
    let name = required(result.name, path, "name")?;
    let response = required(present(result.response), path, "response")?;
    let response: Map<String, Value> = parse(response, &format!("{path}.response"), "an object")?;
    let call_id = calls.answer(result.id.as_deref(), &name).ok_or_else(|| {
        Invalid::new(
            format!("{path}.name"),
            format!("answers no earlier functionCall of '{name}'"),
        )
    })?;
    if present(result.parts).is_some() {
        dropped.push(format!("{path}.parts"));
    }
    let (text, is_error) = result_text(response);
    let content = if text.is_empty() {
        Vec::new()
    } else {
        vec![Part::Text { text, cache: None }]
    };
    Ok(Part::ToolResult {
        call_id,
        content,
        is_error,
    })
}

/// A `response` as a tool result's text, by Gemini's convention: a lone `output` is the result,
/// a lone `error` a failure, any other object the result as a whole.
fn result_text(mut response: Map<String, Value>) -> (String, bool) {
    if response.len() == 1 {
        for (key, is_error) in [("output", false), ("error", true)] {
            if let Some(value) = response.remove(key) {
                let text = match value {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                return (text, is_error);
            }
        }
    }
    (Value::Object(response).to_string(), false)
}

/// `systemInstruction`: a content of text parts (a plain string is accepted too).
fn decode_system(raw: &RawValue) -> Result<Vec<Part>, Invalid> {
    if raw.get().starts_with('"') {
        let text: String = parse(raw, "systemInstruction", "a content object")?;
        return Ok(vec![Part::Text { text, cache: None }]);
    }
    let content: ContentBody = parse(raw, "systemInstruction", "a content object")?;
    let mut parts = Vec::new();
    for (j, raw) in content.parts.unwrap_or_default().iter().enumerate() {
        let path = format!("systemInstruction.parts.{j}");
        let part: PartBody = parse(raw, &path, "a part object")?;
        match part.text {
            Some(text) if part.thought != Some(true) => {
                parts.push(Part::Text { text, cache: None });
            }
            _ => return Err(Invalid::new(path, "systemInstruction may hold text only")),
        }
    }
    Ok(parts)
}

/// A `tools` entry: function declarations, Google Search, or tools with no counterpart
/// elsewhere (code execution, URL context, Maps...), which are listed as dropped.
fn decode_tool(raw: &RawValue, path: &str, request: &mut Request) -> Result<(), Invalid> {
    let keys: Keys = parse(raw, path, "a tool object")?;
    for (key, value) in &keys.0 {
        match camel(key).as_ref() {
            "functionDeclarations" => {
                let list_path = format!("{path}.functionDeclarations");
                let declarations: Vec<&RawValue> = parse(value, &list_path, "an array")?;
                for (k, raw) in declarations.iter().enumerate() {
                    let declaration = decode_declaration(raw, &format!("{list_path}.{k}"))?;
                    request.tools.push(declaration);
                }
            }
            "googleSearch" | "googleSearchRetrieval" => request.web_search = true,
            other => request.dropped.push(format!("{path}.{other}")),
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeclarationBody<'a> {
    name: Option<String>,
    description: Option<String>,
    #[serde(borrow)]
    parameters: Option<&'a RawValue>,
    #[serde(borrow, alias = "parameters_json_schema")]
    parameters_json_schema: Option<&'a RawValue>,
}

fn decode_declaration(raw: &RawValue, path: &str) -> Result<Tool, Invalid> {
    let declaration: DeclarationBody = parse(raw, path, "a function declaration object")?;
    let parameters = if let Some(raw) = present(declaration.parameters_json_schema) {
        object_text(raw, &format!("{path}.parametersJsonSchema"))?
    } else if let Some(raw) = present(declaration.parameters) {
        schema_text(raw, &format!("{path}.parameters"))?
    } else {
        // A function declared without parameters takes none.
        r#"{"type":"object","properties":{}}"#.to_owned()
    };
    Ok(Tool {
        name: required(declaration.name, path, "name")?,
        description: declaration.description,
        parameters,
        cache: None,
    })
}

/// A JSON object's text, as given.
fn object_text(raw: &RawValue, path: &str) -> Result<String, Invalid> {
    if raw.get().starts_with('{') {
        Ok(raw.get().to_owned())
    } else {
        Err(Invalid::new(path, "must be an object"))
    }
}

/// Gemini's own `Schema` (an OpenAPI subset) as JSON Schema text. Google's SDKs write its type
/// names in capitals (`"type": "OBJECT"`), which JSON Schema does not know.
fn schema_text(raw: &RawValue, path: &str) -> Result<String, Invalid> {
    let mut schema: Value = parse(raw, path, "an object")?;
    if !schema.is_object() {
        return Err(Invalid::new(path, "must be an object"));
    }
    lowercase_types(&mut schema);
    Ok(schema.to_string())
}

fn lowercase_types(value: &mut Value) {
    match value {
        Value::Object(members) => {
            for (key, member) in members.iter_mut() {
                match member {
                    Value::String(name) if key == "type" => name.make_ascii_lowercase(),
                    _ => lowercase_types(member),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(lowercase_types),
        _ => {}
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfigBody {
    #[serde(alias = "function_calling_config")]
    function_calling_config: Option<CallingConfigBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallingConfigBody {
    mode: Option<String>,
    #[serde(alias = "allowed_function_names")]
    allowed_function_names: Option<Vec<String>>,
}

fn decode_tool_config(raw: &RawValue, request: &mut Request) -> Result<(), Invalid> {
    let config: ToolConfigBody = parse(raw, "toolConfig", "an object")?;
    let Some(calling) = config.function_calling_config else {
        return Ok(());
    };
    let path = "toolConfig.functionCallingConfig";
    let names = calling.allowed_function_names.unwrap_or_default();
    let mode = calling.mode.map(|m| m.to_ascii_uppercase());
    request.tool_choice = match mode.as_deref() {
        None | Some("MODE_UNSPECIFIED") => None,
        Some("AUTO") => Some(ToolChoice::Auto),
        // Auto with calls checked against their schema: the checking has no counterpart.
        Some("VALIDATED") => {
            request.dropped.push(format!("{path}.mode"));
            Some(ToolChoice::Auto)
        }
        Some("NONE") => Some(ToolChoice::None),
        Some("ANY") => Some(match names.as_slice() {
            [name] => ToolChoice::Named(name.clone()),
            _ => ToolChoice::Required,
        }),
        Some(_) => {
            return Err(Invalid::new(
                format!("{path}.mode"),
                "must be AUTO, ANY, NONE or VALIDATED",
            ));
        }
    };
    if !names.is_empty() && !matches!(request.tool_choice, Some(ToolChoice::Named(_))) {
        request.dropped.push(format!("{path}.allowedFunctionNames"));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerationBody<'a> {
    #[serde(alias = "max_output_tokens")]
    max_output_tokens: Option<u64>,
    temperature: Option<f64>,
    #[serde(alias = "top_p")]
    top_p: Option<f64>,
    /// An integer in the Gemini API, a number in Vertex AI's.
    #[serde(alias = "top_k")]
    top_k: Option<f64>,
    #[serde(alias = "stop_sequences")]
    stop_sequences: Option<Vec<String>>,
    #[serde(alias = "candidate_count")]
    candidate_count: Option<u64>,
    #[serde(borrow, alias = "response_mime_type")]
    response_mime_type: Option<Cow<'a, str>>,
    #[serde(borrow, alias = "response_schema")]
    response_schema: Option<&'a RawValue>,
    #[serde(borrow, alias = "response_json_schema")]
    response_json_schema: Option<&'a RawValue>,
    #[serde(borrow, alias = "thinking_config")]
    thinking_config: Option<&'a RawValue>,
}

fn decode_generation_config(raw: &RawValue, request: &mut Request) -> Result<(), Invalid> {
    let path = "generationConfig";
    let config: GenerationBody = parse(raw, path, "an object of generation parameters")?;
    // A client asking for several candidates reads them all: one would be a wrong answer.
    if config.candidate_count.is_some_and(|n| n > 1) {
        return Err(Invalid::new(
            format!("{path}.candidateCount"),
            "only one candidate can be generated",
        ));
    }
    request.max_tokens = config.max_output_tokens;
    request.temperature = config.temperature;
    request.top_p = config.top_p;
    if let Some(k) = config.top_k {
        if k < 0.0 || k.fract() > 0.0 {
            return Err(Invalid::new(
                format!("{path}.topK"),
                "must be a whole number",
            ));
        }
        request.top_k = Some(k as u64);
    }
    request.stop = config.stop_sequences.unwrap_or_default();
    let mime = config.response_mime_type.as_deref().unwrap_or("text/plain");
    let json_schema = present(config.response_json_schema);
    let schema = present(config.response_schema);
    if mime == "application/json" {
        request.output = Some(match (json_schema, schema) {
            (Some(raw), _) => OutputFormat::JsonSchema {
                name: None,
                schema: object_text(raw, &format!("{path}.responseJsonSchema"))?,
                strict: None,
            },
            (None, Some(raw)) => OutputFormat::JsonSchema {
                name: None,
                schema: schema_text(raw, &format!("{path}.responseSchema"))?,
                strict: None,
            },
            (None, None) => OutputFormat::JsonObject,
        });
    } else {
        // Enum output (`text/x.enum`) and the like: no counterpart.
        if mime != "text/plain" {
            request.dropped.push(format!("{path}.responseMimeType"));
        }
        if json_schema.is_some() {
            request.dropped.push(format!("{path}.responseJsonSchema"));
        }
        if schema.is_some() {
            request.dropped.push(format!("{path}.responseSchema"));
        }
    }
    if let Some(raw) = present(config.thinking_config) {
        request.reasoning = decode_thinking(raw, &mut request.dropped)?;
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ThinkingBody {
    #[serde(alias = "thinking_budget")]
    thinking_budget: Option<i64>,
    #[serde(alias = "include_thoughts")]
    include_thoughts: Option<bool>,
    #[serde(alias = "thinking_level")]
    thinking_level: Option<String>,
}

/// `thinkingConfig`: a budget (Gemini 2.5) or a level (Gemini 3). A budget of -1 is dynamic
/// thinking, asked for to turn thinking on: it reads as the table's middle effort, medium.
fn decode_thinking(
    raw: &RawValue,
    dropped: &mut Vec<String>,
) -> Result<Option<Reasoning>, Invalid> {
    let path = "generationConfig.thinkingConfig";
    let thinking: ThinkingBody = parse(raw, path, "an object")?;
    let reasoning = match (thinking.thinking_budget, thinking.thinking_level) {
        (Some(_), Some(_)) => {
            return Err(Invalid::new(
                path,
                "thinkingBudget and thinkingLevel cannot both be set",
            ));
        }
        (Some(0), None) => Some(Reasoning::Disabled),
        (Some(-1), None) => Some(Reasoning::Effort(Effort::Medium)),
        (Some(budget), None) => match u64::try_from(budget) {
            Ok(budget) => Some(Reasoning::Budget(budget)),
            Err(_) => {
                return Err(Invalid::new(
                    format!("{path}.thinkingBudget"),
                    "must be -1, 0 or a number of tokens",
                ));
            }
        },
        (None, Some(level)) => {
            let effort = Effort::parse(&level.to_ascii_lowercase())
                .filter(|e| !matches!(e, Effort::None | Effort::XHigh))
                .ok_or_else(|| {
                    Invalid::new(
                        format!("{path}.thinkingLevel"),
                        "must be MINIMAL, LOW, MEDIUM or HIGH",
                    )
                })?;
            Some(Reasoning::Effort(effort))
        }
        (None, None) => None,
    };
    // The other protocols return the reasoning of a model that thinks: it cannot be hidden.
    if thinking.include_thoughts == Some(false) && reasoning != Some(Reasoning::Disabled) {
        dropped.push(format!("{path}.includeThoughts"));
    }
    Ok(reasoning)
}

/// Encode the body of `models/{upstream_model}:generateContent`. The model is in the URL, not
/// the body: the parameter is there for the signature every protocol shares.
pub fn encode_request(request: &Request, _upstream_model: &str) -> Encoded {
    let mut dropped = Vec::new();
    let mut body = Map::new();
    if !request.system.is_empty() {
        let mut parts = Vec::new();
        for (j, part) in request.system.iter().enumerate() {
            match part {
                Part::Text { text, cache } => {
                    if cache.is_some() {
                        dropped.push(format!("system.{j}.cache"));
                    }
                    parts.push(json!({"text": text}));
                }
                _ => dropped.push(format!("system.{j}")),
            }
        }
        body.insert("systemInstruction".into(), json!({"parts": parts}));
    }
    let mut calls = Vec::new();
    let mut contents = Vec::with_capacity(request.messages.len());
    for (i, message) in request.messages.iter().enumerate() {
        let parts = encode_parts(
            &message.parts,
            &format!("messages.{i}"),
            &mut calls,
            &mut dropped,
        );
        // Gemini rejects a turn without parts.
        if parts.is_empty() {
            continue;
        }
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "model",
        };
        contents.push(json!({"role": role, "parts": parts}));
    }
    body.insert("contents".into(), Value::Array(contents));
    encode_tools(request, &mut body, &mut dropped);
    let config = generation_config(request);
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    // Gemini calls functions in parallel as it sees fit.
    if request.parallel_tool_calls == Some(false) {
        dropped.push("parallel_tool_calls".to_owned());
    }
    let body = serde_json::to_vec(&Value::Object(body)).expect("a JSON value always serializes");
    Encoded { body, dropped }
}

/// A turn's (or an answer's) parts. `calls` holds the `(id, name)` of the calls made so far:
/// a `functionResponse` names its function, where the neutral result names the call's id.
fn encode_parts<'r>(
    parts: &'r [Part],
    path: &str,
    calls: &mut Vec<(&'r str, &'r str)>,
    dropped: &mut Vec<String>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(parts.len());
    // The signature of an empty thinking part, for the part that follows it.
    let mut held: Option<&str> = None;
    for (j, part) in parts.iter().enumerate() {
        if part.cache().is_some() {
            dropped.push(format!("{path}.{j}.cache"));
        }
        let mut value = match part {
            Part::Thinking { text, signature } if text.is_empty() => {
                if let Some(signature) = signature
                    && let Some(unclaimed) = held.replace(signature)
                {
                    out.push(signature_part(unclaimed));
                }
                continue;
            }
            Part::Thinking { text, signature } => {
                if let Some(unclaimed) = held.take() {
                    out.push(signature_part(unclaimed));
                }
                let mut thought = json!({"text": text, "thought": true});
                if let Some(signature) = signature {
                    thought["thoughtSignature"] = signature.clone().into();
                }
                out.push(thought);
                continue;
            }
            Part::RedactedThinking { .. } => {
                dropped.push(format!("{path}.{j}"));
                continue;
            }
            Part::Text { text, .. } => json!({"text": text}),
            Part::Image { source, .. } => media_json(source, "image/jpeg"),
            Part::Document { source, title, .. } => {
                if title.is_some() {
                    dropped.push(format!("{path}.{j}.title"));
                }
                media_json(source, "application/pdf")
            }
            Part::ToolCall {
                id,
                name,
                arguments,
            } => {
                calls.push((id, name));
                let args = call_args(arguments).unwrap_or_else(|kept| {
                    dropped.push(format!("{path}.{j}.arguments"));
                    kept
                });
                json!({"functionCall": {"name": name, "args": args}})
            }
            Part::ToolResult {
                call_id,
                content,
                is_error,
            } => {
                let Some(&(_, name)) = calls.iter().rev().find(|(id, _)| id == call_id) else {
                    dropped.push(format!("{path}.{j}"));
                    continue;
                };
                let mut result = json!({"functionResponse": {
                    "name": name,
                    "response": result_response(content, *is_error),
                }});
                if let Some(signature) = held.take() {
                    result["thoughtSignature"] = signature.into();
                }
                out.push(result);
                // A functionResponse holds JSON only: the result's images follow it.
                for item in content {
                    if let Part::Image { source, .. } = item {
                        out.push(media_json(source, "image/jpeg"));
                    }
                }
                continue;
            }
        };
        if let Some(signature) = held.take() {
            value["thoughtSignature"] = signature.into();
        }
        out.push(value);
    }
    if let Some(unclaimed) = held {
        out.push(signature_part(unclaimed));
    }
    out
}

/// A signature with no part of its own to ride on: an empty text part, as Gemini sends one.
fn signature_part(signature: &str) -> Value {
    json!({"text": "", "thoughtSignature": signature})
}

/// Inline bytes as `inlineData`, a URL as `fileData`, whose `mimeType` Gemini requires: the
/// URL's extension names it, else the part's kind does (`fallback`).
fn media_json(source: &Media, fallback: &str) -> Value {
    match source {
        Media::Base64 { media_type, data } => {
            json!({"inlineData": {"mimeType": media_type, "data": data}})
        }
        Media::Text { media_type, data } => json!({"inlineData": {
            "mimeType": media_type,
            "data": base64_encode(data.as_bytes()),
        }}),
        Media::Url(url) => json!({"fileData": {
            "mimeType": media_type_of(url).unwrap_or(fallback),
            "fileUri": url,
        }}),
    }
}

/// A call's arguments as the object `args` must be. Text that is not a JSON object is kept, as
/// a string under `_raw`, rather than lost: the error carries that object.
fn call_args(arguments: &str) -> Result<Value, Value> {
    tool_input(arguments).ok_or_else(|| json!({"_raw": arguments}))
}

/// A tool result as `response`: a JSON object as it is, other text under `output`, or `error`
/// for a failure — the keys Gemini reads.
fn result_response(content: &[Part], is_error: bool) -> Value {
    let text = content
        .iter()
        .filter_map(|p| match p {
            Part::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let value = match serde_json::from_str(&text) {
        Ok(object @ Value::Object(_)) => object,
        _ => Value::String(text),
    };
    match (value, is_error) {
        (object @ Value::Object(_), false) => object,
        (value, false) => json!({"output": value}),
        (value, true) => json!({"error": value}),
    }
}

/// `tools` (function declarations, Google Search) and `toolConfig`.
fn encode_tools(request: &Request, body: &mut Map<String, Value>, dropped: &mut Vec<String>) {
    let mut tools = Vec::new();
    if !request.tools.is_empty() {
        let mut declarations = Vec::with_capacity(request.tools.len());
        for (i, tool) in request.tools.iter().enumerate() {
            if tool.cache.is_some() {
                dropped.push(format!("tools.{i}.cache"));
            }
            let mut declaration = Map::new();
            declaration.insert("name".into(), tool.name.clone().into());
            if let Some(d) = &tool.description {
                declaration.insert("description".into(), d.clone().into());
            }
            // JSON Schema as given; `parameters` would want Gemini's OpenAPI subset.
            declaration.insert("parametersJsonSchema".into(), raw_json(&tool.parameters));
            declarations.push(Value::Object(declaration));
        }
        tools.push(json!({"functionDeclarations": declarations}));
    }
    if request.web_search {
        tools.push(json!({"googleSearch": {}}));
    }
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &request.tool_choice {
        let calling = match choice {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Named(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        body.insert(
            "toolConfig".into(),
            json!({"functionCallingConfig": calling}),
        );
    }
}

/// `generationConfig`: sampling, stop sequences, thinking and output format.
fn generation_config(request: &Request) -> Map<String, Value> {
    let mut config = Map::new();
    if let Some(max) = request.max_tokens {
        config.insert("maxOutputTokens".into(), max.into());
    }
    if let Some(t) = request.temperature {
        config.insert("temperature".into(), t.into());
    }
    if let Some(p) = request.top_p {
        config.insert("topP".into(), p.into());
    }
    if let Some(k) = request.top_k {
        config.insert("topK".into(), k.into());
    }
    if !request.stop.is_empty() {
        config.insert("stopSequences".into(), request.stop.clone().into());
    }
    if let Some(reasoning) = request.reasoning {
        // The conversion table: none and minimal turn thinking off (budget 0).
        let thinking = match reasoning.budget() {
            Some(budget) if budget > 0 => {
                json!({"thinkingBudget": budget, "includeThoughts": true})
            }
            _ => json!({"thinkingBudget": 0}),
        };
        config.insert("thinkingConfig".into(), thinking);
    }
    if let Some(output) = &request.output {
        config.insert("responseMimeType".into(), "application/json".into());
        if let OutputFormat::JsonSchema { schema, .. } = output {
            config.insert("responseJsonSchema".into(), raw_json(schema));
        }
    }
    config
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseBody<'a> {
    #[serde(borrow)]
    candidates: Option<Vec<CandidateBody<'a>>>,
    usage_metadata: Option<UsageBody>,
    #[serde(borrow)]
    prompt_feedback: Option<FeedbackBody<'a>>,
    #[serde(borrow)]
    response_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CandidateBody<'a> {
    #[serde(borrow)]
    content: Option<ContentBody<'a>>,
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FeedbackBody<'a> {
    #[serde(borrow)]
    block_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct UsageBody {
    #[serde(default, rename = "promptTokenCount")]
    prompt: u64,
    #[serde(default, rename = "toolUsePromptTokenCount")]
    tool_use_prompt: u64,
    #[serde(default, rename = "candidatesTokenCount")]
    candidates: u64,
    #[serde(default, rename = "thoughtsTokenCount")]
    thoughts: u64,
    #[serde(default, rename = "cachedContentTokenCount")]
    cached: u64,
}

impl UsageBody {
    /// The prompt count includes cached tokens, which the neutral `input` does not; thoughts
    /// are output, counted apart from the candidates.
    fn neutral(&self) -> Usage {
        let prompt = self.prompt + self.tool_use_prompt;
        Usage {
            input: prompt.saturating_sub(self.cached),
            output: self.candidates + self.thoughts,
            cache_read: self.cached,
            cache_write: 0,
            reasoning: self.thoughts,
        }
    }
}

/// Decode a generateContent response (the first candidate: the other protocols answer with
/// one). A prompt blocked before any candidate is an empty refusal.
pub fn decode_response(body: &[u8]) -> Result<Response, Invalid> {
    let body: ResponseBody = serde_json::from_slice(body)
        .map_err(|e| Invalid::new("", format!("not a generateContent response: {e}")))?;
    let usage = body
        .usage_metadata
        .as_ref()
        .map(UsageBody::neutral)
        .unwrap_or_default();
    let Some(candidate) = body.candidates.and_then(|c| c.into_iter().next()) else {
        if body
            .prompt_feedback
            .is_some_and(|f| f.block_reason.is_some())
        {
            return Ok(Response {
                parts: Vec::new(),
                stop: Some(StopReason::Refusal),
                usage,
            });
        }
        return Err(Invalid::new("candidates", "the response has no candidate"));
    };
    let mut calls = answer_calls(body.response_id.as_deref());
    let mut parts = Vec::new();
    let raw_parts = candidate.content.and_then(|c| c.parts).unwrap_or_default();
    for (j, raw) in raw_parts.iter().enumerate() {
        let path = format!("candidates.0.content.parts.{j}");
        let part: PartBody = parse(raw, &path, "a part object")?;
        // Anything else an answer holds (generated images, executed code) is not carried.
        decode_answer_part(part, &path, &mut calls, &mut parts)?;
    }
    let called = !calls.made.is_empty();
    Ok(Response {
        parts,
        stop: candidate
            .finish_reason
            .as_deref()
            .map(|reason| stop_reason(reason, called)),
        usage,
    })
}

/// A `finishReason` as a stop reason. Gemini says STOP for an answer that ends in function
/// calls (`called`) too.
pub fn stop_reason(finish: &str, called: bool) -> StopReason {
    match finish {
        "STOP" if called => StopReason::ToolUse,
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => StopReason::Refusal,
        _ => StopReason::EndTurn,
    }
}

/// A stop reason as a `finishReason`.
pub fn finish_reason(stop: &StopReason) -> &'static str {
    match stop {
        StopReason::EndTurn | StopReason::ToolUse | StopReason::StopSequence(_) => "STOP",
        StopReason::MaxTokens => "MAX_TOKENS",
        StopReason::Refusal => "SAFETY",
    }
}

/// `usageMetadata` as Gemini reports it: the prompt count includes cache reads and writes,
/// the candidates count excludes thoughts.
fn usage_json(u: &Usage) -> Value {
    let prompt = u.input + u.cache_read + u.cache_write;
    let mut usage = json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": u.output.saturating_sub(u.reasoning),
        "totalTokenCount": prompt + u.output,
    });
    if u.reasoning > 0 {
        usage["thoughtsTokenCount"] = u.reasoning.into();
    }
    if u.cache_read > 0 {
        usage["cachedContentTokenCount"] = u.cache_read.into();
    }
    usage
}

/// Encode a generateContent response. Thinking goes as thought parts with their signatures, so
/// a client can pass them back; redacted thinking has no form here and is left out.
pub fn encode_response(response: &Response, id: &str, model: &str) -> Vec<u8> {
    let parts = encode_parts(&response.parts, "parts", &mut Vec::new(), &mut Vec::new());
    let mut candidate = Map::new();
    candidate.insert("content".into(), json!({"role": "model", "parts": parts}));
    if let Some(stop) = &response.stop {
        candidate.insert("finishReason".into(), finish_reason(stop).into());
    }
    candidate.insert("index".into(), 0.into());
    let body = json!({
        "candidates": [candidate],
        "usageMetadata": usage_json(&response.usage),
        "modelVersion": model,
        "responseId": id,
    });
    serde_json::to_vec(&body).expect("a JSON value always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::{anthropic, openai};

    fn decode(body: &str) -> Request {
        decode_request(body.as_bytes(), "gemini-2.5-pro", false).unwrap()
    }

    fn encode(request: &Request) -> (Value, Vec<String>) {
        let encoded = encode_request(request, "gemini-2.5-pro");
        (
            serde_json::from_slice(&encoded.body).unwrap(),
            encoded.dropped,
        )
    }

    fn text(text: &str) -> Part {
        Part::Text {
            text: text.to_owned(),
            cache: None,
        }
    }

    fn thinking(text: &str, signature: Option<&str>) -> Part {
        Part::Thinking {
            text: text.to_owned(),
            signature: signature.map(str::to_owned),
        }
    }

    /// Everything Gemini and the neutral request both have, written as the encoder writes it.
    const RICH_GEMINI: &str = r#"{
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
          {"role": "user", "parts": [
             {"text": "Weather in Paris and Rome?"},
             {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
             {"fileData": {"mimeType": "application/pdf", "fileUri": "gs://bucket/report.pdf"}}]},
          {"role": "model", "parts": [
             {"text": "Need the tool.", "thought": true, "thoughtSignature": "c2lnMQ=="},
             {"text": "Checking."},
             {"functionCall": {"name": "get_weather", "args": {"city":"Paris"}}, "thoughtSignature": "c2lnMg=="},
             {"functionCall": {"name": "get_weather", "args": {"city":"Rome"}}}]},
          {"role": "user", "parts": [
             {"functionResponse": {"name": "get_weather", "response": {"output": "18C"}}},
             {"functionResponse": {"name": "get_weather", "response": {"temp": 25, "unit": "C"}}},
             {"text": "Thanks"}]},
          {"role": "model", "parts": [{"text": "Paris 18C, Rome 25C."}, {"text": "", "thoughtSignature": "c2lnMw=="}]},
          {"role": "user", "parts": [{"text": "And tomorrow?"}]}],
        "tools": [
          {"functionDeclarations": [{"name": "get_weather", "description": "Weather",
             "parametersJsonSchema": {"type":"object","properties":{"city":{"type":"string"}}}}]},
          {"googleSearch": {}}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
        "generationConfig": {
          "maxOutputTokens": 8000, "temperature": 0.5, "topP": 0.9, "topK": 40,
          "stopSequences": ["END"],
          "thinkingConfig": {"thinkingBudget": 5120, "includeThoughts": true},
          "responseMimeType": "application/json",
          "responseJsonSchema": {"type":"object"}}}"#;

    #[test]
    fn gemini_requests_survive_a_round_trip() {
        let original: Value = serde_json::from_str(RICH_GEMINI).unwrap();
        let request = decode(RICH_GEMINI);
        assert_eq!(request.model, "gemini-2.5-pro");
        assert!(request.dropped.is_empty(), "{:?}", request.dropped);
        assert_eq!(request.system, vec![text("Be brief.")]);
        assert_eq!(request.messages.len(), 5);
        assert_eq!(
            request.messages[1].parts,
            vec![
                thinking("Need the tool.", Some("c2lnMQ==")),
                text("Checking."),
                thinking("", Some("c2lnMg==")),
                Part::ToolCall {
                    id: "call_0".to_owned(),
                    name: "get_weather".to_owned(),
                    arguments: r#"{"city":"Paris"}"#.to_owned(),
                },
                Part::ToolCall {
                    id: "call_1".to_owned(),
                    name: "get_weather".to_owned(),
                    arguments: r#"{"city":"Rome"}"#.to_owned(),
                },
            ]
        );
        // Results answer the earliest unanswered call of their function, in order.
        assert_eq!(
            request.messages[2].parts[..2],
            [
                Part::ToolResult {
                    call_id: "call_0".to_owned(),
                    content: vec![text("18C")],
                    is_error: false,
                },
                Part::ToolResult {
                    call_id: "call_1".to_owned(),
                    content: vec![text(r#"{"temp":25,"unit":"C"}"#)],
                    is_error: false,
                },
            ]
        );
        assert_eq!(
            request.messages[3].parts,
            vec![text("Paris 18C, Rome 25C."), thinking("", Some("c2lnMw=="))]
        );
        assert_eq!(
            request.tool_choice,
            Some(ToolChoice::Named("get_weather".to_owned()))
        );
        assert!(request.web_search);
        assert_eq!(request.reasoning, Some(Reasoning::Budget(5120)));
        assert_eq!(request.top_k, Some(40));
        assert_eq!(
            request.output,
            Some(OutputFormat::JsonSchema {
                name: None,
                schema: r#"{"type":"object"}"#.to_owned(),
                strict: None,
            })
        );
        let (body, dropped) = encode(&request);
        assert!(dropped.is_empty(), "{dropped:?}");
        assert_eq!(body, original);
        let again = decode_request(&serde_json::to_vec(&body).unwrap(), "gemini-2.5-pro", false);
        assert_eq!(again.unwrap(), request);
    }

    #[test]
    fn snake_case_fields_and_split_turns_read_the_same() {
        let snake = r#"{
            "system_instruction": {"parts": [{"text": "Be brief."}]},
            "contents": [
              {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"},
                 {"inline_data": {"mime_type": "image/png", "data": "iVBORw0KGgo="}},
                 {"file_data": {"mime_type": "application/pdf", "file_uri": "gs://bucket/report.pdf"}}]},
              {"role": "model", "parts": [{"text": "Need the tool.", "thought": true, "thought_signature": "c2lnMQ=="},
                 {"text": "Checking."}]},
              {"role": "model", "parts": [
                 {"function_call": {"name": "get_weather", "args": {"city":"Paris"}}, "thought_signature": "c2lnMg=="},
                 {"function_call": {"name": "get_weather", "args": {"city":"Rome"}}}]},
              {"role": "function", "parts": [
                 {"function_response": {"name": "get_weather", "response": {"output": "18C"}}},
                 {"function_response": {"name": "get_weather", "response": {"temp": 25, "unit": "C"}}}]},
              {"role": "user", "parts": [{"text": "Thanks"}]},
              {"role": "model", "parts": [{"text": "Paris 18C, Rome 25C."}, {"text": "", "thought_signature": "c2lnMw=="}]},
              {"parts": [{"text": "And tomorrow?"}]}],
            "tools": [
              {"function_declarations": [{"name": "get_weather", "description": "Weather",
                 "parameters_json_schema": {"type":"object","properties":{"city":{"type":"string"}}}}]},
              {"google_search": {}}],
            "tool_config": {"function_calling_config": {"mode": "any", "allowed_function_names": ["get_weather"]}},
            "generation_config": {
              "max_output_tokens": 8000, "temperature": 0.5, "top_p": 0.9, "top_k": 40.0,
              "stop_sequences": ["END"],
              "thinking_config": {"thinking_budget": 5120, "include_thoughts": true},
              "response_mime_type": "application/json",
              "response_json_schema": {"type":"object"}}}"#;
        assert_eq!(decode(snake), decode(RICH_GEMINI));
    }

    #[test]
    fn gemini_schemas_and_untranslatable_fields() {
        let request = decode(
            r#"{"contents": [{"parts": [{"text": "x"}]}],
                "tools": [{"functionDeclarations": [
                    {"name": "f", "parameters": {"type": "OBJECT", "properties": {
                        "type": {"type": "STRING", "enum": ["A", "B"]},
                        "items": {"type": "ARRAY", "items": {"type": "INTEGER"}}}}},
                    {"name": "now"}],
                  "codeExecution": {}}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f", "now"]}},
                "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
                "cachedContent": "cachedContents/1",
                "generationConfig": {"seed": 7, "presencePenalty": 0.1, "candidateCount": 1,
                    "responseMimeType": "application/json",
                    "responseSchema": {"type": "OBJECT", "nullable": true},
                    "thinkingConfig": {"thinkingLevel": "LOW", "includeThoughts": false}}}"#,
        );
        assert_eq!(
            request.tools[0].parameters,
            r#"{"type":"object","properties":{"type":{"type":"string","enum":["A","B"]},"items":{"type":"array","items":{"type":"integer"}}}}"#
        );
        assert_eq!(
            request.tools[1].parameters,
            r#"{"type":"object","properties":{}}"#
        );
        assert_eq!(request.tool_choice, Some(ToolChoice::Required));
        assert_eq!(
            request.output,
            Some(OutputFormat::JsonSchema {
                name: None,
                schema: r#"{"type":"object","nullable":true}"#.to_owned(),
                strict: None,
            })
        );
        assert_eq!(request.reasoning, Some(Reasoning::Effort(Effort::Low)));
        assert_eq!(
            request.dropped,
            [
                "tools.0.codeExecution",
                "toolConfig.functionCallingConfig.allowedFunctionNames",
                "generationConfig.thinkingConfig.includeThoughts",
                "generationConfig.presencePenalty",
                "generationConfig.seed",
                "cachedContent",
                "safetySettings",
            ]
        );
        let plain = decode(
            r#"{"contents": [{"parts": [{"text": "x"}]}],
                "generationConfig": {"responseMimeType": "text/x.enum", "responseSchema": {"type": "STRING"}}}"#,
        );
        assert_eq!(plain.output, None);
        assert_eq!(
            plain.dropped,
            [
                "generationConfig.responseMimeType",
                "generationConfig.responseSchema"
            ]
        );
    }

    #[test]
    fn invalid_gemini_requests_name_the_field() {
        let cases = [
            ("{}", "contents"),
            (r#"{"contents": []}"#, "contents"),
            (
                r#"{"contents": [{"role": "system", "parts": [{"text": "x"}]}]}"#,
                "contents.0.role",
            ),
            (r#"{"contents": [{"role": "user"}]}"#, "contents.0.parts"),
            (
                r#"{"contents": [{"parts": [{"executableCode": {}}]}]}"#,
                "contents.0.parts.0",
            ),
            (
                r#"{"contents": [{"parts": [{"text": "x"}, {"inlineData": {"data": "AAA="}}]}]}"#,
                "contents.0.parts.1.inlineData.mimeType",
            ),
            (
                r#"{"contents": [{"parts": [{"inlineData": {"mimeType": "audio/wav", "data": "AAA="}}]}]}"#,
                "contents.0.parts.0.inlineData.mimeType",
            ),
            (
                r#"{"contents": [{"parts": [{"fileData": {"fileUri": "gs://b/clip"}}]}]}"#,
                "contents.0.parts.0.fileData.mimeType",
            ),
            (
                r#"{"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f", "args": [1]}}]}]}"#,
                "contents.0.parts.0.functionCall.args",
            ),
            (
                r#"{"contents": [{"parts": [{"functionResponse": {"name": "f", "response": {}}}]}]}"#,
                "contents.0.parts.0.functionResponse.name",
            ),
            (
                r#"{"contents": [{"parts": [{"functionResponse": {"name": "f"}}]}]}"#,
                "contents.0.parts.0.functionResponse.response",
            ),
            (
                r#"{"contents": [{"parts": [{"text": "x"}]}], "systemInstruction": {"parts": [{"inlineData": {}}]}}"#,
                "systemInstruction.parts.0",
            ),
            (
                r#"{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"candidateCount": 2}}"#,
                "generationConfig.candidateCount",
            ),
            (
                r#"{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"topK": 2.5}}"#,
                "generationConfig.topK",
            ),
            (
                r#"{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"thinkingConfig": {"thinkingBudget": -2}}}"#,
                "generationConfig.thinkingConfig.thinkingBudget",
            ),
            (
                r#"{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"thinkingConfig": {"thinkingLevel": "max"}}}"#,
                "generationConfig.thinkingConfig.thinkingLevel",
            ),
            (
                r#"{"contents": [{"parts": [{"text": "x"}]}], "toolConfig": {"functionCallingConfig": {"mode": "SOME"}}}"#,
                "toolConfig.functionCallingConfig.mode",
            ),
            (
                r#"{"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [{"description": "d"}]}]}"#,
                "tools.0.functionDeclarations.0.name",
            ),
        ];
        for (body, path) in cases {
            let error = decode_request(body.as_bytes(), "m", false).unwrap_err();
            assert_eq!(error.path, path, "{body}: {error}");
        }
        assert!(
            decode_request(b"[1]", "m", false)
                .unwrap_err()
                .path
                .is_empty()
        );
    }

    #[test]
    fn explicit_ids_match_and_streamed_thoughts_fold_into_one() {
        let request = decode(
            r#"{"contents": [
                {"role": "user", "parts": [{"text": "q"}]},
                {"role": "model", "parts": [{"text": "Let me ", "thought": true}]},
                {"role": "model", "parts": [{"text": "think.", "thought": true}]},
                {"role": "model", "parts": [{"text": "", "thought": true, "thoughtSignature": "c2ln"}]},
                {"role": "model", "parts": [
                    {"functionCall": {"id": "a", "name": "f", "args": {}}},
                    {"functionCall": {"id": "b", "name": "f"}}]},
                {"role": "user", "parts": [
                    {"functionResponse": {"id": "b", "name": "f", "response": {"error": "boom"}}},
                    {"functionResponse": {"id": "a", "name": "f", "response": {"output": {"ok": true}}}}]}]}"#,
        );
        assert_eq!(request.messages.len(), 3);
        assert_eq!(
            request.messages[1].parts[0],
            thinking("Let me think.", Some("c2ln"))
        );
        assert_eq!(
            request.messages[2].parts,
            vec![
                Part::ToolResult {
                    call_id: "b".to_owned(),
                    content: vec![text("boom")],
                    is_error: true,
                },
                Part::ToolResult {
                    call_id: "a".to_owned(),
                    content: vec![text(r#"{"ok":true}"#)],
                    is_error: false,
                },
            ]
        );
        let (body, _) = encode(&request);
        assert_eq!(
            body["contents"][1]["parts"][0],
            json!({"text": "Let me think.", "thought": true, "thoughtSignature": "c2ln"})
        );
        assert_eq!(
            body["contents"][2]["parts"],
            json!([
                {"functionResponse": {"name": "f", "response": {"error": "boom"}}},
                {"functionResponse": {"name": "f", "response": {"ok": true}}},
            ])
        );
    }

    const RICH_ANTHROPIC: &str = r#"{"model":"m","max_tokens":8000,
        "system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],
        "tools":[{"name":"get_weather","description":"Weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}},
                 {"type":"web_search_20250305","name":"web_search"}],
        "tool_choice":{"type":"auto","disable_parallel_tool_use":true},
        "thinking":{"type":"enabled","budget_tokens":5120},
        "temperature":1,"top_p":0.9,"top_k":40,"stop_sequences":["END"],
        "output_config":{"format":{"type":"json_schema","schema":{"type":"object"}}},
        "messages":[
          {"role":"user","content":[{"type":"text","text":"Look"},
             {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAA="}},
             {"type":"image","source":{"type":"url","url":"https://x/y.webp?size=2"}},
             {"type":"document","source":{"type":"url","url":"https://x/report"},"title":"r.pdf"},
             {"type":"document","source":{"type":"text","media_type":"text/plain","data":"foo"}}]},
          {"role":"assistant","content":[
             {"type":"thinking","thinking":"Two cities.","signature":"sig"},
             {"type":"redacted_thinking","data":"enc"},
             {"type":"tool_use","id":"t1","name":"get_weather","input":{"city":"Paris"}},
             {"type":"tool_use","id":"t2","name":"get_weather","input":{"city":"Rome"}}]},
          {"role":"user","content":[
             {"type":"tool_result","tool_use_id":"t2","content":"25C"},
             {"type":"tool_result","tool_use_id":"t1","is_error":true,"content":[{"type":"text","text":"timeout"},
                {"type":"image","source":{"type":"url","url":"https://x/radar.png"}}]},
             {"type":"text","text":"Thanks"}]}]}"#;

    #[test]
    fn anthropic_to_gemini() {
        let request = anthropic::decode_request(RICH_ANTHROPIC.as_bytes()).unwrap();
        let (body, dropped) = encode(&request);
        assert_eq!(
            body,
            json!({
                "systemInstruction": {"parts": [{"text": "Be brief."}]},
                "contents": [
                    {"role": "user", "parts": [
                        {"text": "Look"},
                        {"inlineData": {"mimeType": "image/png", "data": "AAA="}},
                        {"fileData": {"mimeType": "image/webp", "fileUri": "https://x/y.webp?size=2"}},
                        {"fileData": {"mimeType": "application/pdf", "fileUri": "https://x/report"}},
                        {"inlineData": {"mimeType": "text/plain", "data": "Zm9v"}},
                    ]},
                    {"role": "model", "parts": [
                        {"text": "Two cities.", "thought": true, "thoughtSignature": "sig"},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
                    ]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "get_weather", "response": {"output": "25C"}}},
                        {"functionResponse": {"name": "get_weather", "response": {"error": "timeout"}}},
                        {"fileData": {"mimeType": "image/png", "fileUri": "https://x/radar.png"}},
                        {"text": "Thanks"},
                    ]},
                ],
                "tools": [
                    {"functionDeclarations": [{"name": "get_weather", "description": "Weather",
                        "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}}}]},
                    {"googleSearch": {}},
                ],
                "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
                "generationConfig": {
                    "maxOutputTokens": 8000, "temperature": 1.0, "topP": 0.9, "topK": 40,
                    "stopSequences": ["END"],
                    "thinkingConfig": {"thinkingBudget": 5120, "includeThoughts": true},
                    "responseMimeType": "application/json",
                    "responseJsonSchema": {"type": "object"},
                },
            })
        );
        assert_eq!(
            dropped,
            [
                "system.0.cache",
                "messages.0.3.title",
                "messages.1.1",
                "parallel_tool_calls"
            ]
        );
        // Back through Gemini, the results answer the calls they answered, by position.
        let back = decode_request(&serde_json::to_vec(&body).unwrap(), "m", false).unwrap();
        let ids = |message: &Message| -> Vec<String> {
            message
                .parts
                .iter()
                .filter_map(|p| match p {
                    Part::ToolCall { id, .. } => Some(id.clone()),
                    Part::ToolResult { call_id, .. } => Some(call_id.clone()),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(ids(&back.messages[1]), ["call_0", "call_1"]);
        assert_eq!(ids(&back.messages[2]), ["call_0", "call_1"]);
        let anthropic_again = anthropic::encode_request(&back, "claude");
        let value: Value = serde_json::from_slice(&anthropic_again.body).unwrap();
        assert_eq!(value["messages"][1]["content"][0]["signature"], "sig");
        assert_eq!(value["messages"][2]["content"][1]["is_error"], true);
    }

    #[test]
    fn gemini_to_openai() {
        let request = decode(
            r#"{"systemInstruction": {"parts": [{"text": "Be brief."}]},
                "contents": [
                  {"role": "user", "parts": [{"text": "Look"},
                     {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/"}}]},
                  {"role": "model", "parts": [
                     {"text": "Plan.", "thought": true},
                     {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"},
                     {"functionCall": {"name": "now"}},
                     {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]},
                  {"role": "user", "parts": [
                     {"functionResponse": {"name": "now", "response": {"output": "noon"}}},
                     {"functionResponse": {"name": "get_weather", "response": {"output": "18C"}}},
                     {"functionResponse": {"name": "get_weather", "response": {"output": "25C"}}}]}],
                "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "OBJECT"}}, {"name": "now"}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "NONE"}},
                "generationConfig": {"thinkingConfig": {"thinkingBudget": 10240},
                    "responseMimeType": "application/json",
                    "responseJsonSchema": {"type": "object"}}}"#,
        );
        let encoded = openai::encode_request(&request, "gpt");
        let body: Value = serde_json::from_slice(&encoded.body).unwrap();
        assert_eq!(
            body["messages"],
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "Look"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}},
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_0", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
                    {"id": "call_1", "type": "function", "function": {"name": "now", "arguments": "{}"}},
                    {"id": "call_2", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "noon"},
                {"role": "tool", "tool_call_id": "call_0", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": "25C"},
            ])
        );
        // Reasoning is the provider's own: not passed to OpenAI.
        assert_eq!(encoded.dropped, ["messages.1.0", "messages.1.1"]);
        assert_eq!(body["reasoning_effort"], "high");
        assert_eq!(body["tool_choice"], "none");
        assert_eq!(
            body["tools"][0]["function"]["parameters"],
            json!({"type": "object"})
        );
        assert_eq!(
            body["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "response", "schema": {"type": "object"}}})
        );
    }

    #[test]
    fn reasoning_follows_the_conversion_table() {
        let thinking_config = |reasoning: Reasoning| {
            let request = Request {
                reasoning: Some(reasoning),
                ..Request::default()
            };
            encode(&request).0["generationConfig"]["thinkingConfig"].clone()
        };
        for (effort, budget) in [
            (Effort::None, 0),
            (Effort::Minimal, 0),
            (Effort::Low, 2048),
            (Effort::Medium, 5120),
            (Effort::High, 10240),
            (Effort::XHigh, 20480),
        ] {
            let expected = if budget == 0 {
                json!({"thinkingBudget": 0})
            } else {
                json!({"thinkingBudget": budget, "includeThoughts": true})
            };
            assert_eq!(
                thinking_config(Reasoning::Effort(effort)),
                expected,
                "{effort:?}"
            );
        }
        assert_eq!(
            thinking_config(Reasoning::Disabled),
            json!({"thinkingBudget": 0})
        );
        assert_eq!(
            thinking_config(Reasoning::Budget(3000)),
            json!({"thinkingBudget": 3000, "includeThoughts": true})
        );
        let reasoning = |config: &str| {
            let body = format!(
                r#"{{"contents": [{{"parts": [{{"text": "x"}}]}}], "generationConfig": {{"thinkingConfig": {config}}}}}"#
            );
            decode(&body).reasoning
        };
        assert_eq!(
            reasoning(r#"{"thinkingBudget": 0}"#),
            Some(Reasoning::Disabled)
        );
        assert_eq!(
            reasoning(r#"{"thinkingBudget": -1}"#),
            Some(Reasoning::Effort(Effort::Medium))
        );
        assert_eq!(
            reasoning(r#"{"thinkingBudget": 2048}"#),
            Some(Reasoning::Budget(2048))
        );
        assert_eq!(
            reasoning(r#"{"thinkingLevel": "high"}"#),
            Some(Reasoning::Effort(Effort::High))
        );
        assert_eq!(reasoning(r#"{"includeThoughts": true}"#), None);
        // Gemini→Chat: ≤2048 low, ≤5120 medium, above high, 0 none.
        for (budget, effort) in [
            (0, Effort::None),
            (2048, Effort::Low),
            (5000, Effort::Medium),
            (8000, Effort::High),
        ] {
            let config = format!(r#"{{"thinkingBudget": {budget}}}"#);
            assert_eq!(reasoning(&config).unwrap().effort(), effort, "{budget}");
        }
        // Messages needs the budget below max_tokens.
        let request = decode(
            r#"{"contents": [{"parts": [{"text": "x"}]}],
                "generationConfig": {"maxOutputTokens": 4096, "thinkingConfig": {"thinkingBudget": 10240}}}"#,
        );
        let body: Value =
            serde_json::from_slice(&anthropic::encode_request(&request, "claude").body).unwrap();
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": 4095})
        );
    }

    #[test]
    fn signatures_go_back_on_the_parts_they_came_on() {
        let request = decode(
            r#"{"contents": [
                {"role": "user", "parts": [{"text": "q"}]},
                {"role": "model", "parts": [
                    {"text": "Plan.", "thought": true},
                    {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "s1"},
                    {"thoughtSignature": "s2"}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]}"#,
        );
        assert_eq!(
            request.messages[1].parts,
            vec![
                thinking("Plan.", None),
                thinking("", Some("s1")),
                Part::ToolCall {
                    id: "call_0".to_owned(),
                    name: "f".to_owned(),
                    arguments: "{}".to_owned(),
                },
                thinking("", Some("s2")),
            ]
        );
        let (body, _) = encode(&request);
        assert_eq!(
            body["contents"][1]["parts"],
            json!([
                {"text": "Plan.", "thought": true},
                {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "s1"},
                {"text": "", "thoughtSignature": "s2"},
            ])
        );
        // Through Messages, the empty signed thinking keeps the signature apart from the
        // unsigned summary (which Messages cannot take back).
        let messages = anthropic::encode_request(&request, "claude");
        let value: Value = serde_json::from_slice(&messages.body).unwrap();
        assert_eq!(
            value["messages"][1]["content"][0],
            json!({"type": "thinking", "thinking": "", "signature": "s1"})
        );
        assert_eq!(messages.dropped, ["messages.1.0"]);
        // Signatures one after the other each get a part.
        let request = Request {
            messages: vec![Message {
                role: Role::Assistant,
                parts: vec![thinking("", Some("a")), thinking("", Some("b")), text("x")],
            }],
            ..Request::default()
        };
        assert_eq!(
            encode(&request).0["contents"][0]["parts"],
            json!([{"text": "", "thoughtSignature": "a"}, {"text": "x", "thoughtSignature": "b"}])
        );
    }

    #[test]
    fn tool_results_and_calls_without_a_counterpart() {
        let request = Request {
            messages: vec![
                Message {
                    role: Role::Assistant,
                    parts: vec![Part::ToolCall {
                        id: "c".to_owned(),
                        name: "f".to_owned(),
                        arguments: "{\"a\":".to_owned(),
                    }],
                },
                Message {
                    role: Role::User,
                    parts: vec![
                        Part::ToolResult {
                            call_id: "unknown".to_owned(),
                            content: vec![text("x")],
                            is_error: false,
                        },
                        Part::ToolResult {
                            call_id: "c".to_owned(),
                            content: vec![text("[1, 2]")],
                            is_error: false,
                        },
                    ],
                },
            ],
            parallel_tool_calls: Some(true),
            ..Request::default()
        };
        let (body, dropped) = encode(&request);
        assert_eq!(
            body["contents"],
            json!([
                {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"_raw": "{\"a\":"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"output": "[1, 2]"}}}]},
            ])
        );
        assert_eq!(dropped, ["messages.0.0.arguments", "messages.1.0"]);
    }

    const GEMINI_RESPONSE: &str = r#"{
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "Plan.", "thought": true},
            {"text": "Checking."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"}]},
          "finishReason": "STOP", "index": 0, "finishMessage": "Model generated function call(s)."}],
        "usageMetadata": {"promptTokenCount": 100, "toolUsePromptTokenCount": 5, "candidatesTokenCount": 20,
          "thoughtsTokenCount": 30, "cachedContentTokenCount": 60, "totalTokenCount": 155},
        "modelVersion": "gemini-2.5-pro", "responseId": "r1"}"#;

    #[test]
    fn gemini_response_to_chat_completion_and_messages() {
        let response = decode_response(GEMINI_RESPONSE.as_bytes()).unwrap();
        assert_eq!(
            response.parts,
            vec![
                thinking("Plan.", None),
                text("Checking."),
                thinking("", Some("c2ln")),
                Part::ToolCall {
                    id: "call_r1_0".to_owned(),
                    name: "get_weather".to_owned(),
                    arguments: r#"{"city": "Paris"}"#.to_owned(),
                },
            ]
        );
        assert_eq!(response.stop, Some(StopReason::ToolUse));
        assert_eq!(
            response.usage,
            Usage {
                input: 45,
                output: 50,
                cache_read: 60,
                cache_write: 0,
                reasoning: 30,
            }
        );
        let completion: Value = serde_json::from_slice(&openai::encode_response(
            &response,
            "gen-1",
            "google/gemini",
            7,
        ))
        .unwrap();
        assert_eq!(completion["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            completion["usage"],
            json!({"prompt_tokens": 105, "completion_tokens": 50, "total_tokens": 155,
                   "prompt_tokens_details": {"cached_tokens": 60},
                   "completion_tokens_details": {"reasoning_tokens": 30}})
        );
        let message: Value =
            serde_json::from_slice(&anthropic::encode_response(&response, "msg_1", "gemini"))
                .unwrap();
        assert_eq!(
            message["content"],
            json!([
                {"type": "thinking", "thinking": "Plan.", "signature": ""},
                {"type": "text", "text": "Checking."},
                {"type": "thinking", "thinking": "", "signature": "c2ln"},
                {"type": "tool_use", "id": "call_r1_0", "name": "get_weather", "input": {"city": "Paris"}},
            ])
        );
        assert_eq!(message["stop_reason"], "tool_use");
        // Same protocol both ways: Gemini's answer comes back as it was.
        let again: Value =
            serde_json::from_slice(&encode_response(&response, "r1", "gemini-2.5-pro")).unwrap();
        let mut original: Value = serde_json::from_str(GEMINI_RESPONSE).unwrap();
        original["candidates"][0]
            .as_object_mut()
            .unwrap()
            .remove("finishMessage");
        // Tool-use prompt tokens are prompt tokens.
        original["usageMetadata"] = json!({"promptTokenCount": 105, "candidatesTokenCount": 20,
            "thoughtsTokenCount": 30, "cachedContentTokenCount": 60, "totalTokenCount": 155});
        assert_eq!(again, original);
    }

    #[test]
    fn messages_response_to_gemini_and_back() {
        let message = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude",
            "content":[{"type":"thinking","thinking":"plan","signature":"s1"},
                       {"type":"redacted_thinking","data":"enc"},
                       {"type":"text","text":"Done"},
                       {"type":"tool_use","id":"toolu_1","name":"f","input":{"x":1}}],
            "stop_reason":"max_tokens","stop_sequence":null,
            "usage":{"input_tokens":10,"output_tokens":3,"cache_creation_input_tokens":4,"cache_read_input_tokens":6}}"#;
        let response = anthropic::decode_response(message.as_bytes()).unwrap();
        let body: Value =
            serde_json::from_slice(&encode_response(&response, "gen-1", "anthropic/claude"))
                .unwrap();
        assert_eq!(
            body,
            json!({
                "candidates": [{"content": {"role": "model", "parts": [
                    {"text": "plan", "thought": true, "thoughtSignature": "s1"},
                    {"text": "Done"},
                    {"functionCall": {"name": "f", "args": {"x": 1}}},
                ]}, "finishReason": "MAX_TOKENS", "index": 0}],
                "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 3,
                                  "totalTokenCount": 23, "cachedContentTokenCount": 6},
                "modelVersion": "anthropic/claude",
                "responseId": "gen-1",
            })
        );
        let back = decode_response(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(back.stop, Some(StopReason::MaxTokens));
        // Cache writes count as plain input in Gemini; the encrypted reasoning has no form.
        assert_eq!(
            back.usage,
            Usage {
                input: 14,
                output: 3,
                cache_read: 6,
                cache_write: 0,
                reasoning: 0,
            }
        );
        assert_eq!(
            back.parts,
            vec![
                thinking("plan", Some("s1")),
                text("Done"),
                Part::ToolCall {
                    id: "call_gen-1_0".to_owned(),
                    name: "f".to_owned(),
                    arguments: r#"{"x":1}"#.to_owned(),
                },
            ]
        );
    }

    #[test]
    fn finish_reasons_and_blocked_prompts() {
        for (reason, called, stop) in [
            ("STOP", false, StopReason::EndTurn),
            ("STOP", true, StopReason::ToolUse),
            ("MAX_TOKENS", true, StopReason::MaxTokens),
            ("SAFETY", false, StopReason::Refusal),
            ("RECITATION", false, StopReason::Refusal),
            ("PROHIBITED_CONTENT", false, StopReason::Refusal),
            ("MALFORMED_FUNCTION_CALL", false, StopReason::EndTurn),
            ("OTHER", false, StopReason::EndTurn),
        ] {
            assert_eq!(stop_reason(reason, called), stop, "{reason}");
        }
        for (stop, reason) in [
            (StopReason::EndTurn, "STOP"),
            (StopReason::ToolUse, "STOP"),
            (StopReason::StopSequence(Some("x".to_owned())), "STOP"),
            (StopReason::MaxTokens, "MAX_TOKENS"),
            (StopReason::Refusal, "SAFETY"),
        ] {
            assert_eq!(finish_reason(&stop), reason);
        }
        let blocked = decode_response(
            br#"{"promptFeedback": {"blockReason": "SAFETY"},
                 "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}}"#,
        )
        .unwrap();
        assert_eq!(
            blocked,
            Response {
                parts: Vec::new(),
                stop: Some(StopReason::Refusal),
                usage: Usage {
                    input: 7,
                    ..Usage::default()
                },
            }
        );
        assert_eq!(
            decode_response(br#"{"candidates": []}"#).unwrap_err().path,
            "candidates"
        );
    }
}
