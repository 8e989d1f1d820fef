//! The routing snapshot: the whole routing state a worker needs, compiled by the control plane
//! and shipped as msgpack. Mirrors `muxgate.wire.snapshot` field for field; the worker never
//! reads SQL, only this.

use serde::Deserialize;

use crate::insurance::rules::Rule;

/// Money is integer nano-USD (1e-9 USD) everywhere: never a float.
pub type NanoUsd = i64;

#[derive(Debug, Clone, Deserialize)]
pub struct RoutingSnapshot {
    pub version: u64,
    #[serde(default)]
    pub providers: Vec<Provider>,
    #[serde(default)]
    pub models: Vec<Model>,
    #[serde(default)]
    pub accounts: Vec<Account>,
    #[serde(default)]
    pub keys: Vec<ApiKey>,
    #[serde(default)]
    pub settings: Settings,
    /// Enabled insurance rules, evaluated when each request finishes.
    #[serde(default)]
    pub insurance: Vec<Rule>,
    #[serde(default)]
    pub limits: Vec<RateLimit>,
}

/// A limit on requests and/or tokens per minute, with one bucket per key (`scope` "key") or
/// per account ("account") it applies to. Of the limits of one scope covering a request, the
/// one with the highest `priority` that sets a dimension applies to it (on a tie, the
/// strictest).
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimit {
    pub id: String,
    pub scope: String,
    /// Key or account ids; empty: every one.
    #[serde(default)]
    pub subjects: Vec<String>,
    /// Model patterns; empty: every model.
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub rpm: Option<u64>,
    #[serde(default)]
    pub tpm: Option<u64>,
    /// Requests at once (default: `rpm`).
    #[serde(default)]
    pub burst: Option<u64>,
    #[serde(default)]
    pub priority: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Provider {
    pub id: String,
    /// Base URL including the API version path, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// Name of the environment variable holding the credential, resolved by the worker itself
    /// so the secret never travels through Redis or the store.
    #[serde(default)]
    pub credential_env: Option<String>,
    /// Extra headers as (name, environment variable holding the value), resolved by the worker
    /// like the credential: no header value travels through Redis or the store.
    #[serde(default)]
    pub headers_env: Vec<(String, String)>,
    /// Connecting is about the host, not the model, so its timeout lives here.
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
}

fn default_protocol() -> String {
    "openai".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
pub struct Model {
    /// `author/model`, the name clients use.
    pub slug: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub context_length: Option<u32>,
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// The model's recent median time to first token (for `high_latency` rules relative to it).
    #[serde(default)]
    pub ttft_p50_ms: Option<f64>,
    /// Attempts across this model's channels, the first included (the settings' default when
    /// unset).
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Channel {
    pub id: String,
    pub provider: String,
    pub upstream_model: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default)]
    pub price: Price,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default)]
    pub stats: LiveStats,
}

/// A channel's recent behaviour, computed by the control plane from metering over a sliding
/// window, for requests that route by latency, throughput or quality. Unknown until the
/// channel has served enough requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct LiveStats {
    #[serde(default)]
    pub ttft_p50_ms: Option<f64>,
    #[serde(default)]
    pub tokens_per_second_p50: Option<f64>,
    /// Share of failed requests, 0 to 1.
    #[serde(default)]
    pub error_rate: Option<f64>,
}

fn default_weight() -> u32 {
    1
}

fn default_true() -> bool {
    true
}

/// Prices in nano-USD per million tokens.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Price {
    #[serde(default)]
    pub prompt: NanoUsd,
    #[serde(default)]
    pub completion: NanoUsd,
    #[serde(default)]
    pub cached: NanoUsd,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Timeouts {
    /// Until the response head and, for streams, the first body bytes.
    #[serde(default = "default_first_byte_ms")]
    pub first_byte_ms: u64,
    /// Longest silence between two reads of a stream once it started.
    #[serde(default = "default_idle_ms")]
    pub idle_ms: u64,
    /// Whole request, for non-streaming calls.
    #[serde(default = "default_total_ms")]
    pub total_ms: u64,
}

fn default_connect_ms() -> u64 {
    5_000
}
fn default_first_byte_ms() -> u64 {
    60_000
}
fn default_idle_ms() -> u64 {
    120_000
}
fn default_total_ms() -> u64 {
    600_000
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            first_byte_ms: default_first_byte_ms(),
            idle_ms: default_idle_ms(),
            total_ms: default_total_ms(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    pub id: String,
    #[serde(default)]
    pub blocked: bool,
    /// Opted into content retention: insurance cases keep the request and answer (redacted by
    /// the control plane).
    #[serde(default)]
    pub retain_content: bool,
    /// The model tried when every channel of a requested model failed, unless the request
    /// names its own fallback.
    #[serde(default)]
    pub default_fallback: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub account: String,
    /// Hex SHA-256 of the secret: workers never hold the secret itself.
    pub digest: String,
    /// Model slugs or glob patterns (`openai/*`, `*`); empty means every model.
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// When the key stops working, in Unix milliseconds. The worker compares it with its own
    /// clock at admission, so expiry holds to the second without waiting for a new snapshot.
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// What the key spent reached its credit limit: refused (402) until the limit is raised.
    #[serde(default)]
    pub credit_exhausted: bool,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Settings {
    /// How often a waiting stream gets a `: processing` comment.
    #[serde(default = "default_keepalive_ms")]
    pub keepalive_ms: u64,
    /// Attempts per request across channels, the first included.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

fn default_keepalive_ms() -> u64 {
    10_000
}
fn default_max_attempts() -> u32 {
    3
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            keepalive_ms: default_keepalive_ms(),
            max_attempts: default_max_attempts(),
        }
    }
}

/// Does a key's model pattern admit `slug`? Only a trailing `*` is a wildcard, so patterns stay
/// readable (`openai/*`) and matching stays a prefix compare.
pub fn model_allowed(patterns: &[String], slug: &str) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => slug.starts_with(prefix),
            None => p == slug,
        })
}

impl Price {
    /// Cost of one request; one rounding at the end so sub-nano parts of each item are not lost.
    pub fn cost(&self, prompt: u64, cached: u64, completion: u64) -> NanoUsd {
        let uncached = prompt.saturating_sub(cached);
        let micro = i128::from(self.prompt) * i128::from(uncached)
            + i128::from(self.cached) * i128::from(cached)
            + i128::from(self.completion) * i128::from(completion);
        ((micro + 500_000) / 1_000_000) as NanoUsd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_patterns() {
        let p = vec![
            "openai/*".to_owned(),
            "anthropic/claude-sonnet-4.5".to_owned(),
        ];
        assert!(model_allowed(&p, "openai/gpt-4o-mini"));
        assert!(model_allowed(&p, "anthropic/claude-sonnet-4.5"));
        assert!(!model_allowed(&p, "anthropic/claude-opus-4.1"));
        assert!(model_allowed(&[], "anything/at-all"));
        assert!(model_allowed(&["*".to_owned()], "x/y"));
    }

    #[test]
    fn cost_is_exact_integer_arithmetic() {
        // $0.15 / M prompt, $0.60 / M completion, $0.075 / M cached.
        let price = Price {
            prompt: 150_000_000,
            completion: 600_000_000,
            cached: 75_000_000,
        };
        // 1000 prompt (200 cached), 500 completion:
        // 800*150 + 200*75 + 500*600 nano = 120000+15000+300000
        assert_eq!(price.cost(1000, 200, 500), 435_000);
        assert_eq!(price.cost(0, 0, 0), 0);
        // 1 token at $0.15/M is 150 nano-USD exactly.
        assert_eq!(price.cost(1, 0, 0), 150);
    }

    #[test]
    fn decodes_msgpack_maps_with_defaults() {
        let json = serde_json::json!({
            "version": 7,
            "providers": [{"id": "mock", "base_url": "http://127.0.0.1:1/v1"}],
            "models": [{"slug": "openai/gpt-4o-mini", "channels": [
                {"id": "a", "provider": "mock", "upstream_model": "gpt-4o-mini"}]}],
            "keys": [{"id": "k", "account": "acc", "digest": "00"}],
            "insurance": [{"id": "cut", "trigger": {"type": "failed_stream"},
                           "scope": {"models": [], "channels": [], "accounts": []},
                           "payout": {"share_bp": 10000, "max_per_request": null, "min_cost": 0,
                                      "max_per_account_day": null}},
                          {"id": "lat", "trigger": {"type": "high_latency", "ttft_ms": 5000,
                                                     "p50_multiple": null},
                           "payout": {"share_bp": 5000}}],
        });
        let bytes = rmp_serde::to_vec_named(&json).unwrap();
        let snap: RoutingSnapshot = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(snap.version, 7);
        assert_eq!(snap.models[0].channels[0].weight, 1);
        assert!(snap.models[0].channels[0].enabled);
        assert_eq!(snap.settings.keepalive_ms, 10_000);
        assert_eq!(snap.providers[0].protocol, "openai");
        assert_eq!(snap.insurance.len(), 2);
        assert_eq!(snap.insurance[1].trigger.name(), "high_latency");
    }
}
