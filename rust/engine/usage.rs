//! The usage event: one per finished request, the unit of metering, billing and (later)
//! insurance. Serialized as one JSON line that decodes into `muxgate.wire.UsageEvent`.

use serde::Serialize;

use crate::snapshot::NanoUsd;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct UsageEvent {
    pub request_id: String,
    /// Unix time in milliseconds when the request arrived.
    pub created_ms: u64,
    pub account_id: String,
    pub key_id: String,
    /// The slug the client asked for.
    pub model: String,
    pub channel_id: Option<String>,
    pub provider_id: Option<String>,
    pub upstream_model: Option<String>,
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
    pub finish_reason: Option<String>,
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
}
