//! Errors are types: one place maps each to its HTTP status and its body on the OpenAI surface
//! (ZenMux's `{"error": {"code": "<status>", "type", "message"}}`).

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidParams,
    BodyTooLarge,
    InvalidApiKey,
    AccessDenied,
    InsufficientCredit,
    InvalidModel,
    RateLimited {
        retry_after: Option<Duration>,
    },
    ProviderUnprocessable,
    NoProviderAvailable,
    /// The provider failed after the stream started.
    ProviderError,
    ProviderTimeout,
    /// The worker cannot serve yet (no routing table).
    Unavailable,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub kind: ErrorKind,
    pub message: String,
}

impl GatewayError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParams, message)
    }

    pub fn status(&self) -> u16 {
        match self.kind {
            ErrorKind::InvalidParams => 400,
            ErrorKind::InvalidApiKey => 401,
            ErrorKind::InsufficientCredit => 402,
            ErrorKind::AccessDenied => 403,
            ErrorKind::InvalidModel => 404,
            ErrorKind::BodyTooLarge => 413,
            ErrorKind::ProviderUnprocessable => 422,
            ErrorKind::RateLimited { .. } => 429,
            ErrorKind::Internal => 500,
            ErrorKind::NoProviderAvailable | ErrorKind::ProviderError => 502,
            ErrorKind::Unavailable => 503,
            ErrorKind::ProviderTimeout => 504,
        }
    }

    /// The `type` field: clients branch on it, so it is part of the contract.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            ErrorKind::InvalidParams | ErrorKind::BodyTooLarge => "invalid_params",
            ErrorKind::InvalidApiKey => "invalid_api_key",
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::InsufficientCredit => "insufficient_credit",
            ErrorKind::InvalidModel => "invalid_model",
            ErrorKind::RateLimited { .. } => "rate_limit",
            ErrorKind::ProviderUnprocessable => "provider_unprocessable_entity_error",
            ErrorKind::NoProviderAvailable => "no_provider_available",
            ErrorKind::ProviderError => "provider_error",
            ErrorKind::ProviderTimeout => "provider_timeout",
            ErrorKind::Unavailable => "service_unavailable",
            ErrorKind::Internal => "internal_server_error",
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            ErrorKind::RateLimited { retry_after } => retry_after,
            _ => None,
        }
    }

    /// `{"error": {"code": "429", "type": "rate_limit", "message": "..."}}`
    pub fn to_json(&self) -> Vec<u8> {
        let body = serde_json::json!({
            "error": {
                "code": self.status().to_string(),
                "type": self.type_name(),
                "message": self.message,
            }
        });
        serde_json::to_vec(&body).expect("a JSON value always serializes")
    }

    /// The same error as a final SSE event, for failures after the stream started: the client
    /// must see an explicit error, never a clean-looking end.
    pub fn to_sse(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.message.len());
        // No `event:` name: OpenAI-style clients (the official SDKs included) raise on any data
        // event whose payload has an `error` member, the convention OpenRouter also uses.
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&self.to_json());
        out.extend_from_slice(b"\n\n");
        out
    }

    /// Response headers that belong to the error (`Retry-After`).
    pub fn headers(&self, out: &mut Vec<(String, String)>) {
        if let Some(after) = self.retry_after() {
            let secs = after.as_secs_f64().ceil() as u64;
            out.push(("retry-after".to_owned(), secs.to_string()));
        }
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.type_name(),
            self.status(),
            self.message
        )
    }
}

impl std::error::Error for GatewayError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_string_code_type_and_message() {
        let err = GatewayError::invalid("Parameter model is required");
        let v: serde_json::Value = serde_json::from_slice(&err.to_json()).unwrap();
        assert_eq!(v["error"]["code"], "400");
        assert_eq!(v["error"]["type"], "invalid_params");
        assert_eq!(v["error"]["message"], "Parameter model is required");
    }

    #[test]
    fn rate_limit_carries_retry_after_rounded_up() {
        let err = GatewayError::new(
            ErrorKind::RateLimited {
                retry_after: Some(Duration::from_millis(1500)),
            },
            "Rate limit exceeded",
        );
        let mut h = Vec::new();
        err.headers(&mut h);
        assert_eq!(h, vec![("retry-after".to_owned(), "2".to_owned())]);
        assert_eq!(err.status(), 429);
    }

    #[test]
    fn sse_error_is_a_data_event_with_error_member() {
        let err = GatewayError::new(ErrorKind::NoProviderAvailable, "upstream cut the stream");
        let sse = String::from_utf8(err.to_sse()).unwrap();
        assert!(sse.starts_with("data: {\"error\":"));
        assert!(sse.ends_with("}\n\n"));
    }
}
