//! The usage event: one per finished request, the unit of metering, billing and (later)
//! insurance. Serialized as one JSON line that decodes into `muxgate.wire.UsageEvent`; it
//! borrows its names from the request and the routing table, since it lives only until then.

use serde::Serialize;

use super::insurance::Case;
use crate::insurance::rules::Verdict;
use crate::snapshot::NanoUsd;

#[derive(Debug, Serialize)]
pub struct UsageEvent<'a> {
    pub request_id: &'a str,
    /// Unix time in milliseconds when the request arrived.
    pub created_ms: u64,
    pub account_id: &'a str,
    pub key_id: &'a str,
    /// The slug the client asked for.
    pub model: &'a str,
    /// The protocol the client spoke (`Surface::api`).
    pub api: &'static str,
    pub channel_id: Option<&'a str>,
    pub provider_id: Option<&'a str>,
    pub upstream_model: Option<&'a str>,
    /// Provider-reported tokens; the local counts sit beside them as a cross-check and as the
    /// fallback when a stream is cut before usage arrives (`usage_source` says which was billed).
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
    pub local_prompt_tokens: u64,
    pub local_completion_tokens: u64,
    pub usage_source: &'static str,
    pub cost_nano_usd: NanoUsd,
    /// The channel's prices the cost was computed with (nano-USD per million tokens), so the
    /// bill can be itemized later whatever the prices have become since.
    pub price_prompt: NanoUsd,
    pub price_completion: NanoUsd,
    pub price_cached: NanoUsd,
    pub ttft_ms: Option<f64>,
    pub total_ms: f64,
    pub output_tokens_per_second: Option<f64>,
    pub max_chunk_gap_ms: Option<f64>,
    pub gateway_overhead_us: u64,
    pub finish_reason: Option<&'a str>,
    /// "ok", "failed" or "cancelled".
    pub status: &'static str,
    pub http_status: u16,
    pub error_type: Option<&'static str>,
    pub error_message: Option<String>,
    pub stream: bool,
    pub cancelled: bool,
    /// Channels tried, the one that answered included.
    pub attempts: u32,
    pub malformed_chunks: u32,
    /// The insurance rules that triggered, with their credit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub insurance: Vec<Verdict>,
    /// The request and answer, for accounts that retain content (see `insurance::case`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case: Option<Case<'a>>,
    /// Channels that failed and were failed over before the answer (or before giving up).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failovers: Vec<String>,
}
