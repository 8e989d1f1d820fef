//! The wire protocols the mock speaks, behind one interface: a request of any of them is read
//! into a [`Prompt`], and its errors and answer are rendered back in the protocol it came in.

use std::borrow::Cow;

use hyper::http::request::Parts;
use serde_json::Value;

use super::render::{Meta, RenderedStream, StreamShape};
use super::reply::{Answer, Stop, Usage};
use super::{anthropic, gemini, openai};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// Chat Completions: `POST /v1/chat/completions`.
    OpenAi,
    /// Anthropic Messages: `POST /v1/messages`.
    Anthropic,
    /// Gemini: `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent`.
    Gemini,
}

/// A request of any protocol, reduced to what its answer and the answer's rendering depend on.
#[derive(Debug)]
pub(crate) struct Prompt<'a> {
    pub model: Cow<'a, str>,
    /// The conversation as Chat Completions messages (a system prompt first): counted for the
    /// usage and quoted by the default reply.
    pub messages: Vec<Value>,
    pub max_tokens: Option<usize>,
    pub delivery: Delivery,
    /// Chat Completions: the client asked for the usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// The thinking is sent, not just counted (Gemini: `thinkingConfig.includeThoughts`).
    pub show_thinking: bool,
}

/// How the client wants the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// One JSON object.
    Whole,
    /// A stream of SSE events.
    Events,
    /// A stream of the elements of one JSON array (Gemini without `alt=sse`).
    Array,
}

/// Why a request gets an error instead of an answer, before a protocol words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Not a valid request; `param` names the field at fault where `OpenAI` would.
    Invalid {
        message: String,
        param: Option<&'static str>,
    },
    /// Strict mode and a model without a script.
    ModelNotFound(String),
    /// The script wants an API key; `provided` tells a wrong key from a missing one.
    Unauthorized { provided: bool },
    /// A failure the script injects, with its HTTP status.
    Injected(u16),
}

impl Protocol {
    pub fn parse<'a>(self, head: &Parts, body: &'a [u8]) -> Result<Prompt<'a>, Reject> {
        match self {
            Protocol::OpenAi => openai::parse(body),
            Protocol::Anthropic => anthropic::parse(body),
            Protocol::Gemini => gemini::parse(head, body),
        }
    }

    /// The API key the client sent, where this protocol carries it.
    pub fn api_key(self, head: &Parts) -> Option<&str> {
        match self {
            Protocol::OpenAi => openai::api_key(&head.headers),
            Protocol::Anthropic => anthropic::api_key(&head.headers),
            Protocol::Gemini => gemini::api_key(head),
        }
    }

    /// Status and body of the error response for `reject`.
    pub fn error(self, reject: &Reject) -> (u16, Vec<u8>) {
        match self {
            Protocol::OpenAi => {
                let error = openai::ApiError::from(reject);
                (error.status, error.render())
            }
            Protocol::Anthropic => anthropic::error(reject),
            Protocol::Gemini => gemini::error(reject),
        }
    }

    /// The protocol's name for why the model stopped.
    pub fn finish_reason(self, stop: Stop) -> &'static str {
        match self {
            Protocol::OpenAi => openai::finish_reason(stop),
            Protocol::Anthropic => anthropic::stop_reason(stop),
            Protocol::Gemini => gemini::finish_reason(stop),
        }
    }

    /// The whole answer as one JSON object.
    pub fn render_json(
        self,
        prompt: &Prompt,
        meta: &Meta,
        answer: &Answer,
        finish_reason: &str,
        usage: Usage,
    ) -> Vec<u8> {
        match self {
            Protocol::OpenAi => openai::render_completion(meta, answer, finish_reason, usage),
            Protocol::Anthropic => anthropic::render_message(meta, answer, finish_reason, usage),
            Protocol::Gemini => {
                gemini::render_response(meta, answer, finish_reason, usage, prompt.show_thinking)
            }
        }
    }

    pub fn render_stream<'a>(
        self,
        prompt: &Prompt,
        meta: &Meta,
        answer: &'a Answer,
        shape: &StreamShape,
    ) -> RenderedStream<'a> {
        match self {
            Protocol::OpenAi => openai::render_stream(meta, answer, shape, prompt.include_usage),
            Protocol::Anthropic => anthropic::render_stream(meta, answer, shape),
            Protocol::Gemini => {
                let sse = prompt.delivery == Delivery::Events;
                gemini::render_stream(meta, answer, shape, prompt.show_thinking, sse)
            }
        }
    }

    pub fn stream_content_type(self, delivery: Delivery) -> &'static str {
        match (self, delivery) {
            (_, Delivery::Array) => "application/json",
            (Protocol::Gemini, _) => "text/event-stream",
            _ => "text/event-stream; charset=utf-8",
        }
    }
}
