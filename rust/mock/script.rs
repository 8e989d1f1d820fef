//! Per-model behaviour of the mock provider: what it answers, how fast, and how it fails, the
//! same on every protocol.
//!
//! "Content chunks" below are the stream chunks of the answer: its thinking, its text, and its
//! tool calls' arguments (in pieces of a few bytes; on Gemini, one chunk per call).
//!
//! The JSON shape of [`MockConfig`] is the contract shared with `muxgate.mock.config` (Python)
//! and with `PUT /mock/config`, so unknown fields are rejected rather than silently ignored.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::reply::{Answer, ToolCall};

/// What one model does. Every field is optional; the defaults give a healthy, instant model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MockScript {
    /// Fixed answer text. Default: a sentence quoting the last user message, or no text at all
    /// when the model makes `tool_calls`.
    pub reply: Option<String>,
    /// Reasoning the model outputs before its answer; its tokens are reported as reasoning tokens
    /// (part of the completion tokens).
    pub thinking: Option<String>,
    /// Calls the model makes after its thinking and text, ending its turn for the tool results.
    pub tool_calls: Vec<MockToolCall>,
    /// Number of stream chunks of the text, and of the thinking. Default: one per word (leading
    /// space kept).
    pub chunks: Option<usize>,
    /// Prompt tokens reported as read from the prompt cache (at most the prompt's count).
    pub cached_tokens: u64,
    /// Delay before the response head (and before the whole body for JSON).
    pub headers_delay_ms: u64,
    /// Delay after the head and before the first chunk (streams), or added before JSON.
    pub ttft_ms: u64,
    /// Pacing of content chunks in completion tokens per second; 0 sends them back to back.
    pub tokens_per_second: f64,
    /// Write the whole stream (after `ttft_ms`) as one body frame, ignoring pacing.
    pub burst: bool,
    /// Probability (0..=1) that a request fails with `error_status`.
    pub error_rate: f64,
    /// Every n-th request (counted per model since the last reload) fails; 0 = never.
    pub error_every: u64,
    /// HTTP status of injected failures.
    pub error_status: u16,
    /// Raw body of injected failures. Default: the protocol's error object for the status.
    pub error_body: Option<String>,
    /// Adds `Retry-After` (seconds) to injected failures.
    pub retry_after_s: Option<u64>,
    /// Read the request, then answer nothing until the client goes away.
    pub hang: bool,
    /// Streams: abort the connection after this many content chunks (no finish reason, final
    /// usage or closing event). JSON: abort after half of the body.
    pub truncate_after: Option<usize>,
    /// With `truncate_after`, end the HTTP body cleanly instead of aborting the connection.
    pub truncate_clean: bool,
    /// Streams: after this many content chunks, send one event whose data is invalid JSON.
    pub malformed_after: Option<usize>,
    /// Streams: after this many content chunks, send the protocol's in-stream error event and
    /// end the body cleanly.
    pub error_after: Option<usize>,
    /// Replaces the computed finish reason, verbatim in the protocol's field (`finish_reason`:
    /// `stop`/`length`/`tool_calls`; `stop_reason`: `end_turn`/`max_tokens`/`tool_use`;
    /// `finishReason`: `STOP`/`MAX_TOKENS`).
    pub finish_reason: Option<String>,
    /// Require this key where the protocol sends it: `Authorization: Bearer`, `x-api-key`, or
    /// `x-goog-api-key` / `?key=`.
    pub api_key: Option<String>,
}

impl Default for MockScript {
    fn default() -> Self {
        MockScript {
            reply: None,
            thinking: None,
            tool_calls: Vec::new(),
            chunks: None,
            cached_tokens: 0,
            headers_delay_ms: 0,
            ttft_ms: 0,
            tokens_per_second: 0.0,
            burst: false,
            error_rate: 0.0,
            error_every: 0,
            error_status: 500,
            error_body: None,
            retry_after_s: None,
            hang: false,
            truncate_after: None,
            truncate_clean: false,
            malformed_after: None,
            error_after: None,
            finish_reason: None,
            api_key: None,
        }
    }
}

/// One tool call of a script's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockToolCall {
    pub name: String,
    /// The arguments as JSON object text, e.g. `{"city":"Paris"}`.
    pub arguments: String,
}

/// The whole mock: scripts by request `model`, the fallback, and whether unknown models 404.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MockConfig {
    pub models: BTreeMap<String, MockScript>,
    pub default: MockScript,
    /// Unknown models get 404 `model_not_found` instead of the default script.
    pub strict: bool,
    /// Seed of the `error_rate` draws, so a single-threaded run fails the same requests each time.
    pub seed: u64,
}

/// A config that cannot be served: bad JSON or an out-of-range field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockConfigError(pub String);

impl fmt::Display for MockConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid mock config: {}", self.0)
    }
}

impl std::error::Error for MockConfigError {}

impl MockConfig {
    pub fn from_json(json: &str) -> Result<Self, MockConfigError> {
        let config: MockConfig =
            serde_json::from_str(json).map_err(|e| MockConfigError(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("config serializes")
    }

    pub fn validate(&self) -> Result<(), MockConfigError> {
        self.default.validate("default")?;
        for (name, script) in &self.models {
            script.validate(name)?;
        }
        Ok(())
    }
}

impl MockScript {
    /// The scripted answer around `text`: the script's thinking before it, its tool calls after.
    pub(crate) fn answer(&self, text: String) -> Answer {
        let calls = self.tool_calls.iter();
        Answer::with(
            self.thinking.clone().unwrap_or_default(),
            text,
            calls
                .map(|c| ToolCall::new(c.name.clone(), c.arguments.clone()))
                .collect(),
            self.chunks,
        )
    }

    fn validate(&self, name: &str) -> Result<(), MockConfigError> {
        let fail = |what: &str| Err(MockConfigError(format!("{name}: {what}")));
        if !(0.0..=1.0).contains(&self.error_rate) {
            return fail("error_rate must be within 0..=1");
        }
        if !self.tokens_per_second.is_finite() || self.tokens_per_second < 0.0 {
            return fail("tokens_per_second must be a finite number >= 0");
        }
        if !(100..=599).contains(&self.error_status) {
            return fail("error_status must be an HTTP status (100..=599)");
        }
        if self.chunks == Some(0) {
            return fail("chunks must be at least 1");
        }
        for call in &self.tool_calls {
            if call.name.is_empty() {
                return fail("tool_calls: name must not be empty");
            }
            if !matches!(
                serde_json::from_str(&call.arguments),
                Ok(serde_json::Value::Object(_))
            ) {
                return fail("tool_calls: arguments must be a JSON object");
            }
        }
        Ok(())
    }
}

/// A script ready to serve: a fixed answer pre-split and pre-counted, plus its failure counters.
#[derive(Debug)]
pub(crate) struct CompiledScript {
    pub script: MockScript,
    /// The answer before any max-tokens cut when it does not depend on the request (a fixed
    /// `reply`, or `tool_calls`), computed once per reload.
    pub fixed: Option<Arc<Answer>>,
    requests: AtomicU64,
    rng: Mutex<SmallRng>,
}

impl CompiledScript {
    fn new(script: MockScript, seed: u64) -> Self {
        let fixed = (script.reply.is_some() || !script.tool_calls.is_empty()).then(|| {
            let text = script.reply.clone().unwrap_or_default();
            Arc::new(script.answer(text))
        });
        CompiledScript {
            script,
            fixed,
            requests: AtomicU64::new(0),
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
        }
    }

    /// Counts this request and decides whether it is one of the injected failures.
    pub fn should_fail(&self) -> bool {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let every = self.script.error_every;
        if every > 0 && n % every == 0 {
            return true;
        }
        let rate = self.script.error_rate;
        rate > 0.0 && (rate >= 1.0 || self.rng.lock().random_bool(rate))
    }
}

/// The live script table; swapped whole on reload so in-flight requests keep their version.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub config: MockConfig,
    by_model: HashMap<String, CompiledScript>,
    default: CompiledScript,
}

impl Scripts {
    pub fn compile(config: MockConfig) -> Self {
        let seed = config.seed;
        let by_model = config
            .models
            .iter()
            .enumerate()
            .map(|(i, (name, script))| {
                let seed = seed.wrapping_add(i as u64 + 1);
                (name.clone(), CompiledScript::new(script.clone(), seed))
            })
            .collect();
        let default = CompiledScript::new(config.default.clone(), seed);
        Scripts {
            config,
            by_model,
            default,
        }
    }

    /// The script for a request's model; `None` means 404 (strict mode, unknown model).
    pub fn lookup(&self, model: &str) -> Option<&CompiledScript> {
        match self.by_model.get(model) {
            Some(script) => Some(script),
            None if self.config.strict => None,
            None => Some(&self.default),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_json_is_a_healthy_default() {
        let config = MockConfig::from_json("{}").unwrap();
        assert_eq!(config, MockConfig::default());
        assert_eq!(config.default.error_status, 500);
    }

    #[test]
    fn config_round_trips_and_rejects_unknown_fields() {
        let json = r#"{"models":{"m":{"reply":"hi","chunks":3,"error_every":2}},"strict":true}"#;
        let config = MockConfig::from_json(json).unwrap();
        assert_eq!(config.models["m"].chunks, Some(3));
        assert_eq!(MockConfig::from_json(&config.to_json()).unwrap(), config);
        let err = MockConfig::from_json(r#"{"default":{"replyy":"x"}}"#).unwrap_err();
        assert!(err.0.contains("replyy"), "{err}");
    }

    #[test]
    fn out_of_range_fields_are_rejected() {
        for bad in [
            r#"{"default":{"error_rate":1.5}}"#,
            r#"{"default":{"tokens_per_second":-1}}"#,
            r#"{"models":{"x":{"error_status":42}}}"#,
            r#"{"models":{"x":{"chunks":0}}}"#,
            r#"{"default":{"tool_calls":[{"name":"f","arguments":"[1]"}]}}"#,
            r#"{"default":{"tool_calls":[{"name":"f","arguments":"{"}]}}"#,
            r#"{"default":{"tool_calls":[{"name":"","arguments":"{}"}]}}"#,
            r#"{"default":{"tool_calls":[{"name":"f"}]}}"#,
        ] {
            assert!(MockConfig::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn error_every_fails_exactly_every_nth_request() {
        let script = CompiledScript::new(
            MockScript {
                error_every: 3,
                ..MockScript::default()
            },
            0,
        );
        let fails: Vec<bool> = (0..7).map(|_| script.should_fail()).collect();
        assert_eq!(fails, [false, false, true, false, false, true, false]);
    }

    #[test]
    fn error_rate_is_seeded_and_roughly_right() {
        let draw = |seed| {
            let s = CompiledScript::new(
                MockScript {
                    error_rate: 0.3,
                    ..MockScript::default()
                },
                seed,
            );
            (0..1000).map(|_| s.should_fail()).collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        let failures = a.iter().filter(|f| **f).count();
        assert!((200..400).contains(&failures), "{failures}");
        let always = CompiledScript::new(
            MockScript {
                error_rate: 1.0,
                ..MockScript::default()
            },
            0,
        );
        assert!((0..10).all(|_| always.should_fail()));
    }

    #[test]
    fn lookup_falls_back_to_default_unless_strict() {
        let mut config = MockConfig::default();
        config.models.insert(
            "a".into(),
            MockScript {
                hang: true,
                ..MockScript::default()
            },
        );
        let scripts = Scripts::compile(config.clone());
        assert!(scripts.lookup("a").unwrap().script.hang);
        assert!(!scripts.lookup("zzz").unwrap().script.hang);
        config.strict = true;
        let scripts = Scripts::compile(config);
        assert!(scripts.lookup("zzz").is_none());
        assert!(scripts.lookup("a").is_some());
    }

    #[test]
    fn fixed_reply_is_precomputed() {
        let scripts = Scripts::compile(MockConfig {
            default: MockScript {
                reply: Some("one two three".into()),
                ..MockScript::default()
            },
            ..MockConfig::default()
        });
        let fixed = scripts.lookup("x").unwrap().fixed.clone().unwrap();
        assert_eq!(fixed.text.as_str(), "one two three");
        assert_eq!(fixed.text.pieces().count(), 3);
    }

    #[test]
    fn tool_calls_alone_make_a_fixed_answer_without_text() {
        let config = MockConfig::from_json(
            r#"{"default":{"thinking":"hmm","tool_calls":[{"name":"f","arguments":"{\"a\":1}"}]}}"#,
        )
        .unwrap();
        let scripts = Scripts::compile(config);
        let fixed = scripts.lookup("x").unwrap().fixed.clone().unwrap();
        assert!(fixed.text.is_empty());
        assert_eq!(fixed.thinking.as_str(), "hmm");
        assert_eq!(fixed.tool_calls[0].arguments.as_str(), r#"{"a":1}"#);
    }
}
