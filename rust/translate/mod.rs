//! Protocol translation: every inbound surface to every channel protocol — Chat Completions
//! (`openai`), Messages (`anthropic`) and Gemini's generateContent (`gemini`). Each protocol
//! module has the same shape — decode its own wire format into the neutral request below,
//! encode the neutral request into its wire format — so any pair composes through this one type
//! and no pair needs code of its own. Same-protocol calls are relayed as they came, with only the
//! model renamed; their streams still pass through the protocol's decoder, for metering.
//!
//! Chat Completions, Messages and Gemini go both ways. Responses ([`responses`]) is a client
//! surface only: no provider is reached through it, so it decodes requests and encodes answers
//! and streams, and nothing else.

pub mod anthropic;
pub mod gemini;
pub mod openai;
pub mod responses;
#[cfg(test)]
mod roundtrip;
pub mod stream;

use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

/// A chat request as every protocol can express it. What one side has and the other lacks is
/// either carried here (so a round trip keeps it) or listed by the decoder in `dropped`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    pub model: String,
    /// Instructions ahead of the conversation (OpenAI system/developer messages, Responses'
    /// `instructions`, Anthropic's `system`, Gemini's `systemInstruction`). Text parts only.
    pub system: Vec<Part>,
    pub messages: Vec<Message>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    pub stop: Vec<String>,
    pub stream: bool,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    /// None leaves the provider's default (parallel calls allowed).
    pub parallel_tool_calls: Option<bool>,
    pub reasoning: Option<Reasoning>,
    pub output: Option<OutputFormat>,
    /// Web search requested (OpenAI `web_search_options`, Responses' `web_search` tool,
    /// Anthropic's web-search server tool).
    pub web_search: bool,
    /// Parameters of the inbound request that the neutral form cannot carry, by their path in
    /// that request: dropped on purpose, reported for diagnostics.
    pub dropped: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text {
        text: String,
        cache: Option<CacheControl>,
    },
    Image {
        source: Media,
        cache: Option<CacheControl>,
    },
    /// A PDF or plain-text document.
    Document {
        source: Media,
        title: Option<String>,
        cache: Option<CacheControl>,
    },
    /// Model reasoning, passed back unchanged on later turns (the signature included).
    Thinking {
        text: String,
        signature: Option<String>,
    },
    /// Reasoning the provider returned encrypted.
    RedactedThinking { data: String },
    ToolCall {
        id: String,
        name: String,
        /// The arguments as JSON text, exactly as produced.
        arguments: String,
    },
    ToolResult {
        call_id: String,
        /// Text and image parts.
        content: Vec<Part>,
        is_error: bool,
    },
}

impl Part {
    /// The prompt-cache breakpoint set on this part, if any.
    pub fn cache(&self) -> Option<&CacheControl> {
        match self {
            Part::Text { cache, .. } | Part::Image { cache, .. } | Part::Document { cache, .. } => {
                cache.as_ref()
            }
            _ => None,
        }
    }
}

/// Where a file's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Media {
    Url(String),
    Base64 {
        media_type: String,
        data: String,
    },
    /// Plain text given inline (Anthropic's text document source).
    Text {
        media_type: String,
        data: String,
    },
}

impl Media {
    /// A `data:` URL for inline bytes, the URL itself otherwise.
    pub fn to_url(&self) -> String {
        match self {
            Media::Url(url) => url.clone(),
            Media::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
            Media::Text { media_type, data } => {
                format!(
                    "data:{media_type};base64,{}",
                    base64_encode(data.as_bytes())
                )
            }
        }
    }

    /// Inline bytes from a `data:` URL (`data:<type>;base64,<data>`); any other URL as is.
    pub fn from_url(url: &str) -> Media {
        if let Some(rest) = url.strip_prefix("data:")
            && let Some((media_type, data)) = rest.split_once(";base64,")
        {
            return Media::Base64 {
                media_type: media_type.to_owned(),
                data: data.to_owned(),
            };
        }
        Media::Url(url.to_owned())
    }
}

/// Prompt-cache breakpoint (Anthropic `cache_control`, accepted on OpenAI parts by ZenMux).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheControl {
    /// `"5m"` or `"1h"`; None is the provider's default.
    pub ttl: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments, as JSON text.
    pub parameters: String,
    pub cache: Option<CacheControl>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    /// Some tool must be called (OpenAI `required`, Anthropic `any`, Gemini `ANY`).
    Required,
    Named(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    None,
    Minimal,
    Low,
    Medium,
    High,
    XHigh,
}

impl Effort {
    pub fn as_str(self) -> &'static str {
        match self {
            Effort::None => "none",
            Effort::Minimal => "minimal",
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
            Effort::XHigh => "xhigh",
        }
    }

    pub fn parse(text: &str) -> Option<Effort> {
        Some(match text {
            "none" => Effort::None,
            "minimal" => Effort::Minimal,
            "low" => Effort::Low,
            "medium" => Effort::Medium,
            "high" => Effort::High,
            "xhigh" => Effort::XHigh,
            _ => return None,
        })
    }

    /// The thinking budget for an effort (ZenMux's conversion table); None turns thinking off.
    pub fn budget(self) -> Option<u64> {
        match self {
            Effort::None | Effort::Minimal => None,
            Effort::Low => Some(2048),
            Effort::Medium => Some(5120),
            Effort::High => Some(10240),
            Effort::XHigh => Some(20480),
        }
    }

    /// The effort a thinking budget stands for: ≤2048 low, ≤5120 medium, above high.
    pub fn from_budget(budget: u64) -> Effort {
        match budget {
            0 => Effort::None,
            1..=2048 => Effort::Low,
            2049..=5120 => Effort::Medium,
            _ => Effort::High,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reasoning {
    Disabled,
    Effort(Effort),
    Budget(u64),
}

impl Reasoning {
    pub fn effort(self) -> Effort {
        match self {
            Reasoning::Disabled => Effort::None,
            Reasoning::Effort(e) => e,
            Reasoning::Budget(b) => Effort::from_budget(b),
        }
    }

    pub fn budget(self) -> Option<u64> {
        match self {
            Reasoning::Disabled => None,
            Reasoning::Effort(e) => e.budget(),
            Reasoning::Budget(b) => Some(b),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutputFormat {
    JsonObject,
    JsonSchema {
        name: Option<String>,
        /// The schema as JSON text.
        schema: String,
        strict: Option<bool>,
    },
}

/// A complete (non-streamed) answer, as every protocol can express it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    /// Text, thinking, redacted thinking and tool-call parts, in the order produced.
    pub parts: Vec<Part>,
    pub stop: Option<StopReason>,
    pub usage: Usage,
}

/// Why generation stopped (the table in ZenMux's protocol-conversion reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    ToolUse,
    /// A stop sequence matched; Messages names which one, Chat Completions does not.
    StopSequence(Option<String>),
    /// The provider refused or filtered the answer.
    Refusal,
}

/// Token counts. `input` excludes cache reads and writes, as Messages counts it; Chat
/// Completions' `prompt_tokens` is the sum of the three.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// Part of `output`.
    pub reasoning: u64,
}

/// A request encoded for a channel, with what its protocol could not carry.
#[derive(Debug)]
pub struct Encoded {
    pub body: Vec<u8>,
    /// Paths (in the neutral request's terms) of content the target protocol has no field for.
    pub dropped: Vec<String>,
}

/// A request the decoder cannot accept, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub path: String,
    pub message: String,
}

impl Invalid {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for Invalid {}

/// A field's raw JSON decoded as `T`; the error names the field and what it must be.
fn parse<'a, T: Deserialize<'a>>(raw: &'a RawValue, path: &str, what: &str) -> Result<T, Invalid> {
    serde_json::from_str(raw.get()).map_err(|_| Invalid::new(path, format!("must be {what}")))
}

/// A field that is there and not `null`.
fn present(raw: Option<&RawValue>) -> Option<&RawValue> {
    raw.filter(|r| r.get() != "null")
}

fn required<T>(value: Option<T>, path: &str, field: &str) -> Result<T, Invalid> {
    value.ok_or_else(|| Invalid::new(format!("{path}.{field}"), "Field required"))
}

/// Top-level keys only, to find the parameters that have no counterpart elsewhere.
#[derive(Deserialize)]
struct Keys<'a>(
    #[serde(borrow)] std::collections::BTreeMap<std::borrow::Cow<'a, str>, &'a RawValue>,
);

/// The top-level parameters of `body` that are among `names` and not `null`, in key order,
/// added to `dropped`: a decoder's report of what it could not carry.
fn untranslatable(body: &[u8], names: &[&str], dropped: &mut Vec<String>) -> Result<(), Invalid> {
    let keys: Keys = serde_json::from_slice(body)
        .map_err(|e| Invalid::new("", format!("the body is not a JSON object: {e}")))?;
    for (key, value) in &keys.0 {
        if names.contains(&key.as_ref()) && value.get() != "null" {
            dropped.push(key.clone().into_owned());
        }
    }
    Ok(())
}

/// Content parts as a protocol writes them: one uncached text as a plain string when `plain`
/// allows it, otherwise an array of what `render` makes of each part, with its
/// `cache_control`. A part `render` has no form for (None) is listed in `dropped` by its path.
fn render_parts(
    parts: &[Part],
    path: &str,
    dropped: &mut Vec<String>,
    plain: bool,
    mut render: impl FnMut(usize, &Part, &mut Vec<String>) -> Option<serde_json::Value>,
) -> serde_json::Value {
    if plain && let [Part::Text { text, cache: None }] = parts {
        return serde_json::Value::String(text.clone());
    }
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let Some(mut value) = render(i, part, dropped) else {
            dropped.push(format!("{path}.{i}"));
            continue;
        };
        if let Some(cache) = part.cache() {
            value["cache_control"] = cache_json(cache);
        }
        out.push(value);
    }
    serde_json::Value::Array(out)
}

/// JSON text held by the neutral request (validated when it was decoded), as a value.
fn raw_json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

/// A tool call's arguments as the JSON object Messages and Gemini want (OpenAI sends `""` for
/// none); None when the text is not a JSON object.
fn tool_input(arguments: &str) -> Option<serde_json::Value> {
    if arguments.trim().is_empty() {
        return Some(serde_json::json!({}));
    }
    match serde_json::from_str(arguments) {
        Ok(value @ serde_json::Value::Object(_)) => Some(value),
        _ => None,
    }
}

/// `cache_control` as both Messages and ZenMux's Chat Completions write it.
fn cache_json(cache: &CacheControl) -> serde_json::Value {
    match &cache.ttl {
        Some(ttl) => serde_json::json!({"type": "ephemeral", "ttl": ttl}),
        None => serde_json::json!({"type": "ephemeral"}),
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn data_urls_round_trip() {
        let media = Media::Base64 {
            media_type: "image/png".to_owned(),
            data: "iVBORw0KGgo=".to_owned(),
        };
        assert_eq!(media.to_url(), "data:image/png;base64,iVBORw0KGgo=");
        assert_eq!(Media::from_url(&media.to_url()), media);
        assert_eq!(
            Media::from_url("https://example.com/a.png"),
            Media::Url("https://example.com/a.png".to_owned())
        );
    }

    #[test]
    fn effort_and_budget_follow_the_conversion_table() {
        assert_eq!(Effort::Low.budget(), Some(2048));
        assert_eq!(Effort::Medium.budget(), Some(5120));
        assert_eq!(Effort::High.budget(), Some(10240));
        assert_eq!(Effort::XHigh.budget(), Some(20480));
        assert_eq!(Effort::Minimal.budget(), None);
        for (budget, effort) in [
            (1024, Effort::Low),
            (2048, Effort::Low),
            (2049, Effort::Medium),
            (5120, Effort::Medium),
            (10240, Effort::High),
            (32000, Effort::High),
        ] {
            assert_eq!(Effort::from_budget(budget), effort, "budget {budget}");
        }
    }
}
