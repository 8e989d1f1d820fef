//! The wire protocols, as the engine meets them on both sides: the surface a client speaks
//! (its request, answers, streams and errors) and the protocol a channel's provider speaks (the
//! request we send it, how its answers and streams are read).

use std::time::Instant;

use super::error::GatewayError;
use crate::insurance::rules::Verdict;
use crate::json::{Fields, quote};
use crate::relay::{self, Observed};
use crate::sse::SseError;
use crate::translate::stream::{self, Decoder, Encoder};
use crate::translate::{
    self, Encoded, Invalid, Request, Response, anthropic, gemini, openai, responses,
};

/// The protocol a channel's provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Chat Completions.
    OpenAi,
    /// Messages.
    Anthropic,
    /// Gemini's generateContent.
    Gemini,
}

impl Protocol {
    /// A channel protocol by its configuration name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "openai" => Some(Protocol::OpenAi),
            "anthropic" => Some(Protocol::Anthropic),
            "gemini" => Some(Protocol::Gemini),
            _ => None,
        }
    }

    pub fn encode_request(self, request: &Request, upstream_model: &str) -> Encoded {
        match self {
            Protocol::OpenAi => openai::encode_request(request, upstream_model),
            Protocol::Anthropic => anthropic::encode_request(request, upstream_model),
            Protocol::Gemini => gemini::encode_request(request, upstream_model),
        }
    }

    pub fn decode_response(self, body: &[u8]) -> Result<Response, Invalid> {
        match self {
            Protocol::OpenAi => openai::decode_response(body),
            Protocol::Anthropic => anthropic::decode_response(body),
            Protocol::Gemini => gemini::decode_response(body),
        }
    }

    /// The top-level fields of an answer that name it and its model (made ours when passed
    /// through).
    pub fn naming_fields(self) -> (&'static str, &'static str) {
        match self {
            Protocol::OpenAi | Protocol::Anthropic => ("id", "model"),
            Protocol::Gemini => ("responseId", "modelVersion"),
        }
    }

    pub fn stream_decoder(self) -> Box<dyn Decoder> {
        match self {
            Protocol::OpenAi => Box::<openai::stream::ChunkDecoder>::default(),
            Protocol::Anthropic => Box::<anthropic::stream::MessageDecoder>::default(),
            Protocol::Gemini => Box::<gemini::stream::GeminiDecoder>::default(),
        }
    }
}

/// What a client's call says besides its body: the API it speaks, and what that API puts in
/// the path or the headers.
#[derive(Debug, Clone)]
pub struct Call {
    pub surface: Surface,
    /// The model named by the path (Gemini); empty where the body names it.
    pub path_model: String,
    /// Messages' `anthropic-beta` header, passed on to Messages providers.
    pub anthropic_beta: Option<String>,
}

impl Call {
    pub fn new(surface: Surface) -> Self {
        Self {
            surface,
            path_model: String::new(),
            anthropic_beta: None,
        }
    }
}

/// The API a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `/api/v1/chat/completions`.
    Chat,
    /// `/api/anthropic/v1/messages`.
    Messages,
    /// `/api/v1/responses`.
    Responses,
    /// `/api/vertex-ai/…/models/{model}:generateContent` or `:streamGenerateContent`, whose
    /// stream is SSE with `alt=sse` and one JSON array written piece by piece without.
    Gemini { stream: bool, sse: bool },
}

impl Surface {
    /// How the usage event and retained cases name the surface.
    pub fn name(self) -> &'static str {
        match self {
            Surface::Chat => "chat",
            Surface::Messages => "messages",
            Surface::Responses => "responses",
            Surface::Gemini { .. } => "gemini",
        }
    }

    /// The API the generation record names (`api`): ZenMux's names of the four protocols.
    pub fn api(self) -> &'static str {
        match self {
            Surface::Chat => "chat.completions",
            Surface::Messages => "messages",
            Surface::Responses => "responses",
            Surface::Gemini { .. } => "generateContent",
        }
    }

    /// The channel protocol that is this surface's own wire format: a channel speaking it gets
    /// the client's request and the client its answer as they are.
    pub fn protocol(self) -> Option<Protocol> {
        match self {
            Surface::Chat => Some(Protocol::OpenAi),
            Surface::Messages => Some(Protocol::Anthropic),
            Surface::Responses => None,
            // Providers are always asked for SSE; the array form is written by translation.
            Surface::Gemini { stream, sse } => (!stream || sse).then_some(Protocol::Gemini),
        }
    }

    /// The request, with the model named by the path where the surface puts it there.
    pub fn decode_request(self, body: &[u8], path_model: &str) -> Result<Request, Invalid> {
        match self {
            Surface::Chat => openai::decode_request(body),
            Surface::Messages => anthropic::decode_request(body),
            Surface::Responses => responses::decode_request(body),
            Surface::Gemini { stream, .. } => gemini::decode_request(body, path_model, stream),
        }
    }

    /// The content type of a streamed answer.
    pub fn stream_content_type(self) -> &'static str {
        match self {
            Surface::Gemini { sse: false, .. } => "application/json",
            _ => "text/event-stream",
        }
    }

    /// What keeps a waiting stream's connection alive: an SSE comment, or whitespace inside
    /// Gemini's JSON array.
    pub fn keepalive(self) -> &'static [u8] {
        match self {
            Surface::Gemini { sse: false, .. } => b"\n",
            _ => b": processing\n\n",
        }
    }

    pub fn encode_response(
        self,
        response: &Response,
        id: &str,
        model: &str,
        created: u64,
    ) -> Vec<u8> {
        match self {
            Surface::Chat => openai::encode_response(response, id, model, created),
            Surface::Messages => anthropic::encode_response(response, id, model),
            Surface::Responses => responses::encode_response(response, id, model, created),
            Surface::Gemini { .. } => gemini::encode_response(response, id, model),
        }
    }

    /// The client's stream writer. `estimated_input` stands in for the prompt tokens where a
    /// protocol announces them before the provider has (Messages' `message_start`).
    pub fn stream_encoder(
        self,
        id: &str,
        model: &str,
        created: u64,
        include_usage: bool,
        estimated_input: u64,
    ) -> Box<dyn Encoder> {
        match self {
            Surface::Chat => Box::new(openai::stream::ChunkEncoder::new(
                id,
                model,
                created,
                include_usage,
            )),
            Surface::Messages => Box::new(anthropic::stream::MessageEncoder::new(
                id,
                model,
                estimated_input,
            )),
            Surface::Responses => {
                Box::new(responses::stream::ResponsesEncoder::new(id, model, created))
            }
            Surface::Gemini { sse, .. } => {
                Box::new(gemini::stream::GeminiEncoder::new(id, model, sse))
            }
        }
    }

    /// An error response body in this surface's format.
    pub fn error_body(self, error: &GatewayError) -> Vec<u8> {
        match self {
            Surface::Chat | Surface::Responses => error.to_json(),
            Surface::Messages => {
                let mut out = Vec::with_capacity(64 + error.message.len());
                anthropic::stream::error_json(&mut out, error.status(), &error.message);
                out
            }
            Surface::Gemini { .. } => {
                let mut out = Vec::with_capacity(64 + error.message.len());
                gemini::stream::error_json(&mut out, error.status(), &error.message);
                out
            }
        }
    }

    /// An error as the final event of a stream already open to the client (which has had
    /// nothing but keep-alive comments, or the events of a passed-through answer).
    pub fn error_event(self, error: &GatewayError, id: &str, model: &str, created: u64) -> Vec<u8> {
        match self {
            Surface::Chat => error.to_sse(),
            Surface::Messages => {
                let mut out = b"event: error\ndata: ".to_vec();
                anthropic::stream::error_json(&mut out, error.status(), &error.message);
                out.extend_from_slice(b"\n\n");
                out
            }
            Surface::Responses | Surface::Gemini { .. } => {
                let mut out = Vec::new();
                self.stream_encoder(id, model, created, true, 0).encode(
                    &stream::Event::Error {
                        status: error.status(),
                        message: error.message.clone(),
                    },
                    &mut out,
                );
                out
            }
        }
    }

    /// A request the surface's decoder refused, as a 400 naming the field.
    pub fn invalid(self, invalid: &Invalid) -> GatewayError {
        GatewayError::invalid(match self {
            Surface::Chat | Surface::Responses => format!("Parameter {invalid}"),
            Surface::Messages | Surface::Gemini { .. } => invalid.to_string(),
        })
    }
}

/// Record a complete answer's text, reasoning and tool calls.
fn observe_parts(response: &Response, seen: &mut Observed) {
    for part in &response.parts {
        match part {
            translate::Part::Text { text, .. } => seen.text.push_str(text),
            translate::Part::Thinking { text, .. } => seen.reasoning.push_str(text),
            translate::Part::ToolCall {
                name, arguments, ..
            } => seen.tool_calls.push(relay::ToolCall {
                name: name.clone(),
                arguments: arguments.clone(),
            }),
            _ => {}
        }
    }
}

/// A provider's complete answer in `from`, for a client speaking `to`, with what the usage
/// event needs: translated, or for the same protocol passed on with our id and model. An error
/// object inside a 200 is the provider's failure.
pub fn answer_json(
    from: Protocol,
    to: Surface,
    raw: &[u8],
    id: &str,
    model: &str,
    created: u64,
    now: Instant,
) -> Result<(Vec<u8>, Observed), String> {
    // One shallow pass finds an error answer and, passed through, is what gets rewritten.
    let fields = serde_json::from_slice::<Fields>(raw).ok();
    if fields
        .as_ref()
        .and_then(|f| f.get("error"))
        .is_some_and(|e| e.get() != "null")
    {
        return Err(super::upstream::error_message(raw));
    }
    let response = from
        .decode_response(raw)
        .map_err(|e| format!("the provider returned an invalid response ({e})"))?;
    let u = &response.usage;
    let mut observed = Observed {
        usage: Some(relay::Usage {
            prompt: u.input + u.cache_read + u.cache_write,
            completion: u.output,
            cached: u.cache_read,
            reasoning: u.reasoning,
        }),
        finish_reason: response
            .stop
            .as_ref()
            .map(|s| openai::finish_reason(s).to_owned()),
        first_token_at: Some(now),
        last_token_at: Some(now),
        token_chunks: 1,
        completed: true,
        ..Observed::default()
    };
    observe_parts(&response, &mut observed);
    let Some(fields) = fields.filter(|_| to.protocol() == Some(from)) else {
        return Ok((to.encode_response(&response, id, model, created), observed));
    };
    let (id, model) = (quote(id), quote(model));
    let (id_field, model_field) = from.naming_fields();
    let mut body = Vec::with_capacity(raw.len() + 64);
    fields.write_with(
        &mut body,
        |key| {
            if key == id_field {
                Some(Some(id.as_str()))
            } else if key == model_field {
                Some(Some(model.as_str()))
            } else {
                None
            }
        },
        &[],
    );
    Ok((body, observed))
}

/// The relay of one streamed answer: Chat Completions chunks rewritten in place, or any other
/// stream through the neutral events (translated, or passed through to a client of the same
/// protocol).
pub enum StreamRelay {
    Chat(relay::StreamRelay),
    Events(stream::Relay),
}

impl StreamRelay {
    pub fn feed(&mut self, chunk: &[u8], now: Instant, out: &mut Vec<u8>) -> Result<(), SseError> {
        match self {
            StreamRelay::Chat(r) => r.feed(chunk, now, out),
            StreamRelay::Events(r) => r.feed(chunk, now, out),
        }
    }

    /// End of the provider's body; anything the end completes is written to `out`.
    pub fn finish(&mut self, now: Instant, out: &mut Vec<u8>) -> &Observed {
        match self {
            StreamRelay::Chat(r) => r.finish(),
            StreamRelay::Events(r) => r.finish(now, out),
        }
    }

    pub fn completed(&self) -> bool {
        match self {
            StreamRelay::Chat(r) => r.completed(),
            StreamRelay::Events(r) => r.completed(),
        }
    }

    pub fn observed(&self) -> &Observed {
        match self {
            StreamRelay::Chat(r) => r.observed(),
            StreamRelay::Events(r) => r.observed(),
        }
    }

    /// The stream's last words once the request's insurance verdicts are known: for Chat
    /// Completions the held usage chunk with an `insurance` object beside `usage` (or, without
    /// one, an SSE comment) and `[DONE]`; for the other event streams a comment naming the
    /// claims. Gemini's JSON-array stream has no room for one.
    pub fn tail(&mut self, surface: Surface, verdicts: &[Verdict], out: &mut Vec<u8>) {
        let comment = (!verdicts.is_empty())
            .then(|| format!("insurance {}", super::insurance::describe(verdicts)));
        match self {
            StreamRelay::Chat(r) => {
                let member = comment.as_ref().map(|_| {
                    format!(
                        r#""insurance":{}"#,
                        super::insurance::usage_object(verdicts)
                    )
                });
                r.tail(member.as_deref(), comment.as_deref(), out);
            }
            StreamRelay::Events(_) => {
                if let Some(comment) = comment
                    && surface.stream_content_type() == "text/event-stream"
                {
                    relay::write_comment(&comment, out);
                }
            }
        }
    }

    /// Our own error as the stream's last event, in the client's protocol. `client` writes it
    /// where the relay passes events through.
    pub fn fail(
        &mut self,
        error: &GatewayError,
        out: &mut Vec<u8>,
        client: impl FnOnce() -> Vec<u8>,
    ) {
        if let StreamRelay::Events(r) = self
            && r.fail(error.status(), &error.message, out)
        {
            return;
        }
        out.extend_from_slice(&client());
    }
}
