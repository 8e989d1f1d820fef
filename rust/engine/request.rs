//! An inbound OpenAI chat-completions request: validated once, then re-rendered per channel
//! with the upstream model name and usage reporting forced on.

use std::borrow::Cow;
use std::sync::OnceLock;

use serde_json::value::RawValue;

use super::error::GatewayError;
use super::protocol::{Call, Protocol, Surface};
use super::steering::{self, Steering};
use crate::client;
use crate::json::{self, Fields, quote};
use crate::tokens::{self, Encoding};
use crate::translate::{OutputFormat, Request, Tool};

pub struct ChatRequest<'a> {
    fields: Fields<'a>,
    pub model: Cow<'a, str>,
    pub stream: bool,
    /// The client asked for the usage chunk (`stream_options.include_usage` or `usage.include`).
    pub include_usage: bool,
    pub messages: &'a RawValue,
}

fn invalid(param: &str) -> GatewayError {
    GatewayError::invalid(format!("Parameter {param} is not valid"))
}

fn parse_as<'a, T: serde::Deserialize<'a>>(
    raw: &'a RawValue,
    param: &str,
) -> Result<T, GatewayError> {
    serde_json::from_str(raw.get()).map_err(|_| invalid(param))
}

fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

#[derive(serde::Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(serde::Deserialize)]
struct UsageOption {
    #[serde(default)]
    include: Option<bool>,
}

impl<'a> ChatRequest<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, GatewayError> {
        let fields: Fields<'a> = serde_json::from_slice(body).map_err(|e| {
            GatewayError::invalid(format!("Request body is not a valid JSON object: {e}"))
        })?;
        let model = match fields.get("model") {
            None => return Err(GatewayError::invalid("Parameter model is required")),
            Some(raw) if is_null(raw) => {
                return Err(GatewayError::invalid("Parameter model is required"));
            }
            Some(raw) => parse_as::<Cow<'a, str>>(raw, "model")?,
        };
        if model.is_empty() {
            return Err(GatewayError::invalid("Parameter model is required"));
        }
        let messages = match fields.get("messages") {
            Some(raw) if !is_null(raw) => raw,
            _ => return Err(GatewayError::invalid("Parameter messages is required")),
        };
        validate_messages(messages)?;
        let stream = match fields.get("stream") {
            Some(raw) if !is_null(raw) => parse_as::<bool>(raw, "stream")?,
            _ => false,
        };
        let stream_usage = match fields.get("stream_options") {
            Some(raw) if !is_null(raw) => {
                if !stream {
                    return Err(GatewayError::invalid(
                        "Parameter stream_options is not supported while stream is false",
                    ));
                }
                parse_as::<StreamOptions>(raw, "stream_options")?.include_usage
            }
            _ => None,
        };
        let usage_include = match fields.get("usage") {
            Some(raw) if !is_null(raw) => parse_as::<UsageOption>(raw, "usage")?.include,
            _ => None,
        };
        if stream_usage.is_some() && usage_include.is_some() {
            return Err(GatewayError::invalid(
                "Parameter stream_options.include_usage conflict with usage.include",
            ));
        }
        if let Some(raw) = fields.get("n").filter(|r| !is_null(r)) {
            let n: i64 = parse_as(raw, "n")?;
            if n > 1 {
                return Err(GatewayError::invalid(
                    "Parameter n greater than 1 is not supported",
                ));
            }
            if n < 1 {
                return Err(invalid("n"));
            }
        }
        for param in [
            "temperature",
            "top_p",
            "frequency_penalty",
            "presence_penalty",
        ] {
            if let Some(raw) = fields.get(param).filter(|r| !is_null(r)) {
                let value: f64 = parse_as(raw, param)?;
                if param == "temperature" && value < 0.0 {
                    return Err(invalid(param));
                }
            }
        }
        for param in ["max_tokens", "max_completion_tokens"] {
            if let Some(raw) = fields.get(param).filter(|r| !is_null(r)) {
                let value: i64 = parse_as(raw, param)?;
                if value < 1 {
                    return Err(invalid(param));
                }
            }
        }
        Ok(Self {
            fields,
            model,
            stream,
            include_usage: stream_usage.or(usage_include).unwrap_or(false),
            messages,
        })
    }

    /// The body sent to one channel: `model` renamed, and for streams usage forced on so we can
    /// meter; our own routing extensions (`provider`, `usage`) stay with us.
    pub fn upstream_body(&self, upstream_model: &str, out: &mut Vec<u8>) {
        let model = quote(upstream_model);
        let forced: &[(&str, &str)] = if self.stream {
            &[("stream_options", r#"{"include_usage":true}"#)]
        } else {
            &[]
        };
        self.fields.write_with(
            out,
            |key| match key {
                "model" => Some(Some(model.as_str())),
                "stream_options" | "usage" => Some(None),
                key if steering::FIELDS.contains(&key) => Some(None),
                _ => None,
            },
            forced,
        );
    }

    /// The answer's token allowance the request sets, if any.
    pub fn max_tokens(&self) -> Option<u64> {
        ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|name| self.fields.get(name))
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
    }

    /// How the request steers its routing.
    pub fn steering(&self) -> Result<Steering, GatewayError> {
        Steering::parse(|name| self.fields.get(name))
    }

    /// Whether the request names an output format at all (a field lookup: the content checks
    /// read the request only when they may need to).
    pub fn names_output_format(&self) -> bool {
        self.fields
            .get("response_format")
            .is_some_and(|r| !is_null(r))
    }

    /// What the request asks of its answer.
    pub fn expectations(&self) -> Expectations {
        let (output, tools) = crate::translate::openai::decode_expectations(
            self.fields.get("response_format"),
            self.fields.get("tools"),
        );
        Expectations { output, tools }
    }

    /// The messages as JSON values, for the local prompt count.
    pub fn message_values(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(self.messages.get()).unwrap_or_default()
    }
}

fn validate_messages(raw: &RawValue) -> Result<(), GatewayError> {
    let items: Vec<&RawValue> = parse_as(raw, "messages")?;
    if items.is_empty() {
        return Err(GatewayError::invalid("Parameter messages can not be empty"));
    }
    for item in items {
        if is_null(item) {
            return Err(GatewayError::invalid(
                "Parameter messages can not contain null elements",
            ));
        }
        let message: Fields = parse_as(item, "messages")?;
        match message.get("role") {
            Some(role) if role.get().starts_with('"') => {}
            _ => return Err(GatewayError::invalid("Parameter messages.role is required")),
        }
    }
    Ok(())
}

/// A body nesting deeper than `json::MAX_DEPTH`, refused before anything parses or forwards it.
pub fn refuse_deep(body: &[u8]) -> Result<(), GatewayError> {
    if json::nests_within(body, json::MAX_DEPTH) {
        return Ok(());
    }
    Err(GatewayError::invalid(format!(
        "Request body nests arrays and objects deeper than {} levels",
        json::MAX_DEPTH
    )))
}

/// The steering fields of a body other than Chat Completions (whose fields are at hand). Most
/// bodies name none, which a substring search tells without parsing.
pub fn steering_of(body: &[u8]) -> Result<Steering, GatewayError> {
    let finder = |needle: &str| memchr::memmem::find(body, needle.as_bytes()).is_some();
    if !finder("\"provider") && !finder("\"zenmux-route\"") && !finder("\"model_routing_config\"") {
        return Ok(Steering::default());
    }
    let fields: Fields = serde_json::from_slice(body).map_err(|e| {
        GatewayError::invalid(format!("Request body is not a valid JSON object: {e}"))
    })?;
    Steering::parse(|name| fields.get(name))
}

/// What a request asks of its answer (structured output, the tools it offers), for the
/// insurance content checks.
#[derive(Debug, Default)]
pub struct Expectations {
    pub output: Option<OutputFormat>,
    pub tools: Vec<Tool>,
}

/// A request as the client sent it, in its own protocol, ready to be rendered for any channel.
/// A channel of the client's own protocol gets the body with only the model renamed, so nothing
/// the neutral form lacks is lost; every other pair goes through the neutral request, decoded
/// once, the first time one is needed.
pub struct Inbound<'a> {
    pub surface: Surface,
    /// Messages' `anthropic-beta`, for Messages providers.
    pub anthropic_beta: Option<&'a str>,
    pub model: Cow<'a, str>,
    pub stream: bool,
    /// The client asked for usage in the stream (always so on protocols that always send it).
    pub include_usage: bool,
    pub steering: Steering,
    body: &'a [u8],
    chat: Option<ChatRequest<'a>>,
    neutral: OnceLock<Result<Request, GatewayError>>,
}

impl<'a> Inbound<'a> {
    pub fn parse(call: &'a Call, body: &'a [u8]) -> Result<Self, GatewayError> {
        let surface = call.surface;
        refuse_deep(body)?;
        let anthropic_beta = call.anthropic_beta.as_deref();
        if anthropic_beta.is_some_and(|v| !client::is_field_value(v.as_bytes())) {
            return Err(GatewayError::invalid(
                "anthropic-beta: not a valid header value",
            ));
        }
        if surface == Surface::Chat {
            let chat = ChatRequest::parse(body)?;
            return Ok(Self {
                surface,
                anthropic_beta,
                model: chat.model.clone(),
                stream: chat.stream,
                include_usage: chat.include_usage,
                steering: chat.steering()?,
                body,
                chat: Some(chat),
                neutral: OnceLock::new(),
            });
        }
        let request = surface
            .decode_request(body, &call.path_model)
            .map_err(|e| surface.invalid(&e))?;
        Ok(Self {
            surface,
            anthropic_beta,
            model: Cow::Owned(request.model.clone()),
            stream: request.stream,
            include_usage: true,
            steering: steering_of(body)?,
            body,
            chat: None,
            neutral: OnceLock::from(Ok(request)),
        })
    }

    /// The neutral form of the request.
    pub fn neutral(&self) -> Result<&Request, GatewayError> {
        self.neutral
            .get_or_init(|| {
                self.surface
                    .decode_request(self.body, &self.model)
                    .map_err(|e| self.surface.invalid(&e))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Whether a channel speaking `channel` gets the client's own body (model renamed) and its
    /// answer is passed back as it comes.
    pub fn relayed_to(&self, channel: Protocol) -> bool {
        self.surface.protocol() == Some(channel)
    }

    /// The body for one channel, in its protocol, with its upstream model name. Returns the
    /// request's parameters that the translation had to leave out.
    pub fn upstream_body(
        &self,
        channel: Protocol,
        upstream_model: &str,
        out: &mut Vec<u8>,
    ) -> Result<Vec<String>, GatewayError> {
        if !self.relayed_to(channel) {
            let request = self.neutral()?;
            let encoded = channel.encode_request(request, upstream_model);
            *out = encoded.body;
            let mut dropped = request.dropped.clone();
            dropped.extend(encoded.dropped);
            return Ok(dropped);
        }
        if let Some(chat) = &self.chat {
            chat.upstream_body(upstream_model, out);
            return Ok(Vec::new());
        }
        let fields: Fields = serde_json::from_slice(self.body).map_err(|e| {
            GatewayError::invalid(format!("Request body is not a valid JSON object: {e}"))
        })?;
        let model = quote(upstream_model);
        fields.write_with(
            out,
            |key| match key {
                "model" => Some(Some(model.as_str())),
                key if steering::FIELDS.contains(&key) => Some(None),
                _ => None,
            },
            &[],
        );
        Ok(Vec::new())
    }

    /// The prompt's token count by the local tokenizer, framed as Chat Completions frames it.
    pub fn local_prompt_tokens(&self, encoding: Encoding) -> u64 {
        if let Some(chat) = &self.chat {
            let messages = chat.messages.get();
            return tokens::count_plain_chat(encoding, messages)
                .unwrap_or_else(|| tokens::count_chat_messages(encoding, &chat.message_values()))
                as u64;
        }
        self.neutral()
            .map_or(0, |request| prompt_tokens(encoding, request))
    }

    /// Whether the request may ask for structured output (cheap; see `expectations`).
    pub fn names_output_format(&self) -> bool {
        match &self.chat {
            Some(chat) => chat.names_output_format(),
            None => self.neutral().is_ok_and(|r| r.output.is_some()),
        }
    }

    /// What the request asks of its answer.
    pub fn expectations(&self) -> Expectations {
        if let Some(chat) = &self.chat {
            return chat.expectations();
        }
        self.neutral()
            .map(|r| Expectations {
                output: r.output.clone(),
                tools: r.tools.clone(),
            })
            .unwrap_or_default()
    }

    /// The answer's token allowance the request sets, if any.
    pub fn max_tokens(&self) -> Option<u64> {
        match &self.chat {
            Some(chat) => chat.max_tokens(),
            None => self.neutral().ok().and_then(|r| r.max_tokens),
        }
    }

    /// The client's body, as it came.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Size hint for an upstream body.
    pub fn len_hint(&self) -> usize {
        self.body.len() + 256
    }
}

/// Input tokens of a neutral request by the local tokenizer: its messages as Chat Completions
/// frames them, plus the tool definitions' text.
pub fn prompt_tokens(encoding: Encoding, request: &Request) -> u64 {
    #[derive(serde::Deserialize)]
    struct Messages {
        messages: Vec<serde_json::Value>,
    }
    let body = Protocol::OpenAi.encode_request(request, "").body;
    let messages =
        serde_json::from_slice::<Messages>(&body).map_or_else(|_| Vec::new(), |m| m.messages);
    let tools: usize = request
        .tools
        .iter()
        .map(|t| {
            encoding.count(&t.name)
                + t.description.as_deref().map_or(0, |d| encoding.count(d))
                + encoding.count(&t.parameters)
        })
        .sum();
    (tokens::count_chat_messages(encoding, &messages) + tools) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        match ChatRequest::parse(body.as_bytes()) {
            Ok(_) => panic!("accepted {body}"),
            Err(e) => {
                assert_eq!(e.status(), 400);
                e.message
            }
        }
    }

    const MSG: &str = r#"[{"role":"user","content":"hi"}]"#;

    #[test]
    fn validation_messages() {
        assert!(err("not json").starts_with("Request body is not a valid JSON object"));
        assert!(err("[]").starts_with("Request body is not a valid JSON object"));
        assert_eq!(
            err(&format!(r#"{{"messages":{MSG}}}"#)),
            "Parameter model is required"
        );
        assert_eq!(
            err(&format!(r#"{{"model":5,"messages":{MSG}}}"#)),
            "Parameter model is not valid"
        );
        assert_eq!(err(r#"{"model":"m"}"#), "Parameter messages is required");
        assert_eq!(
            err(r#"{"model":"m","messages":[]}"#),
            "Parameter messages can not be empty"
        );
        assert_eq!(
            err(r#"{"model":"m","messages":"x"}"#),
            "Parameter messages is not valid"
        );
        assert_eq!(
            err(r#"{"model":"m","messages":[null]}"#),
            "Parameter messages can not contain null elements"
        );
        assert_eq!(
            err(r#"{"model":"m","messages":[{"content":"x"}]}"#),
            "Parameter messages.role is required"
        );
        assert_eq!(
            err(&format!(
                r#"{{"model":"m","messages":{MSG},"stream_options":{{"include_usage":true}}}}"#
            )),
            "Parameter stream_options is not supported while stream is false"
        );
        assert_eq!(
            err(&format!(r#"{{"model":"m","messages":{MSG},"n":2}}"#)),
            "Parameter n greater than 1 is not supported"
        );
        assert_eq!(
            err(&format!(
                r#"{{"model":"m","messages":{MSG},"stream":"yes"}}"#
            )),
            "Parameter stream is not valid"
        );
        assert_eq!(
            err(&format!(
                r#"{{"model":"m","messages":{MSG},"temperature":-1}}"#
            )),
            "Parameter temperature is not valid"
        );
        assert_eq!(
            err(&format!(
                r#"{{"model":"m","messages":{MSG},"max_tokens":"a"}}"#
            )),
            "Parameter max_tokens is not valid"
        );
        assert_eq!(
            err(&format!(
                r#"{{"model":"m","messages":{MSG},"stream":true,"stream_options":{{"include_usage":true}},"usage":{{"include":true}}}}"#
            )),
            "Parameter stream_options.include_usage conflict with usage.include"
        );
    }

    #[test]
    fn upstream_body_renames_model_and_forces_usage_on_streams() {
        let body = format!(
            r#"{{"model":"openai/gpt-4o-mini","messages":{MSG},"stream":true,"provider":{{"x":1}},"temperature":0.5}}"#
        );
        let req = ChatRequest::parse(body.as_bytes()).unwrap();
        assert!(req.stream && !req.include_usage);
        let mut out = Vec::new();
        req.upstream_body("gpt-4o-mini", &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "gpt-4o-mini");
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert!(v.get("provider").is_none());
        assert_eq!(v["temperature"], 0.5);
        assert_eq!(v["messages"][0]["content"], "hi");
    }

    #[test]
    fn usage_include_is_an_alias_for_include_usage() {
        let body =
            format!(r#"{{"model":"m","messages":{MSG},"stream":true,"usage":{{"include":true}}}}"#);
        assert!(ChatRequest::parse(body.as_bytes()).unwrap().include_usage);
        let body = format!(
            r#"{{"model":"m","messages":{MSG},"stream":true,"stream_options":{{"include_usage":true}}}}"#
        );
        assert!(ChatRequest::parse(body.as_bytes()).unwrap().include_usage);
    }

    #[test]
    fn non_stream_body_passes_through_untouched_but_model() {
        let body = format!(r#"{{"model":"m","messages":{MSG},"max_completion_tokens":5}}"#);
        let req = ChatRequest::parse(body.as_bytes()).unwrap();
        let mut out = Vec::new();
        req.upstream_body("up", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(r#"{{"model":"up","messages":{MSG},"max_completion_tokens":5}}"#)
        );
    }
}
