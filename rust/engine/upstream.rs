//! Upstream I/O: one keep-alive connection pool per provider, owned by the Rust runtime, and one
//! attempt against one channel with its timeouts and failure classification.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use hyper::{Request, Response, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::health::Outcome;

pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Upstream error bodies are read for their message, never without bound.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub fn new_client(connect_timeout: Duration) -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .expect("the ring provider supports the default protocol versions")
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(https)
}

/// A provider as the data plane sees it: where to send, how to authenticate.
pub struct ProviderRoute {
    pub id: String,
    pub chat_url: Uri,
    authorization: Option<HeaderValue>,
    /// The raw credential, kept only to scrub it from anything echoed back to clients.
    secret: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    pub client: HttpClient,
}

impl ProviderRoute {
    pub fn new(
        id: String,
        base_url: &str,
        secret: Option<String>,
        extra_headers: &[(String, String)],
        client: HttpClient,
    ) -> Result<Self, String> {
        let url = format!("{}/chat/completions", base_url.trim_end_matches('/'));
        let chat_url: Uri = url
            .parse()
            .map_err(|e| format!("provider {id}: invalid base_url {base_url:?}: {e}"))?;
        if !matches!(chat_url.scheme_str(), Some("http" | "https")) {
            return Err(format!("provider {id}: base_url must be http or https"));
        }
        let authorization = match &secret {
            Some(s) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {s}")).map_err(|_| {
                    format!("provider {id}: credential is not a valid header value")
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let mut headers = Vec::with_capacity(extra_headers.len());
        for (name, value) in extra_headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("provider {id}: invalid header name {name:?}"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("provider {id}: invalid value for header {name}"))?;
            headers.push((name, value));
        }
        Ok(Self {
            id,
            chat_url,
            authorization,
            secret,
            headers,
            client,
        })
    }

    /// Remove our credential from text that came from the provider before a client sees it.
    pub fn scrub(&self, text: &str) -> String {
        match &self.secret {
            Some(s) if !s.is_empty() && text.contains(s.as_str()) => {
                text.replace(s.as_str(), "[redacted]")
            }
            _ => text.to_owned(),
        }
    }
}

/// Why an attempt failed, and whether the next channel should be tried.
#[derive(Debug, Clone)]
pub enum AttemptError {
    Connect(String),
    Timeout,
    /// Non-2xx answer. `message` is the provider's own, scrubbed of our credential.
    Status {
        status: u16,
        retry_after: Option<Duration>,
        message: String,
    },
}

impl AttemptError {
    /// 400, 413 and 422 are the request's fault: another channel would say the same.
    pub fn fails_over(&self) -> bool {
        !matches!(
            self,
            AttemptError::Status {
                status: 400 | 413 | 422,
                ..
            }
        )
    }

    pub fn outcome(&self) -> Outcome {
        match self {
            AttemptError::Connect(_) => Outcome::ConnectError,
            AttemptError::Timeout | AttemptError::Status { status: 408, .. } => Outcome::Timeout,
            AttemptError::Status {
                status: 429,
                retry_after,
                ..
            } => Outcome::RateLimited {
                retry_after: *retry_after,
            },
            AttemptError::Status { status, .. } if *status >= 500 => Outcome::ServerError(*status),
            AttemptError::Status { status, .. } => Outcome::ClientError(*status),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            AttemptError::Connect(reason) => reason.clone(),
            AttemptError::Timeout => "timed out".to_owned(),
            AttemptError::Status { status, .. } => format!("HTTP {status}"),
        }
    }
}

/// Send one request and wait for the response head, within `first_byte`.
pub async fn send(
    provider: &ProviderRoute,
    body: Vec<u8>,
    first_byte: Duration,
) -> Result<Response<Incoming>, AttemptError> {
    let mut builder = Request::post(provider.chat_url.clone())
        .header(CONTENT_TYPE, "application/json")
        .header("user-agent", concat!("muxgate/", env!("CARGO_PKG_VERSION")));
    if let Some(auth) = &provider.authorization {
        builder = builder.header(AUTHORIZATION, auth.clone());
    }
    for (name, value) in &provider.headers {
        builder = builder.header(name, value);
    }
    let request = builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| AttemptError::Connect(format!("could not build the request: {e}")))?;
    let response = match tokio::time::timeout(first_byte, provider.client.request(request)).await {
        Err(_) => return Err(AttemptError::Timeout),
        Ok(Err(e)) => return Err(AttemptError::Connect(connect_reason(&e))),
        Ok(Ok(r)) => r,
    };
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3600.0)));
    let message = match tokio::time::timeout(
        first_byte,
        read_limited(response.into_body(), MAX_ERROR_BODY),
    )
    .await
    {
        Ok(Ok(bytes)) => error_message(&bytes),
        _ => String::new(),
    };
    Err(AttemptError::Status {
        status,
        retry_after,
        message: provider.scrub(&message),
    })
}

fn connect_reason(e: &hyper_util::client::legacy::Error) -> String {
    // The error chain of a connect failure names the host and the OS error, never the headers.
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut reason = if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
    .to_owned();
    while let Some(s) = source {
        reason = format!("{reason}: {s}");
        source = s.source();
    }
    reason
}

/// Read a body up to `limit` bytes (the rest is dropped with the connection).
pub async fn read_limited(mut body: Incoming, limit: usize) -> Result<Vec<u8>, hyper::Error> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            let room = limit.saturating_sub(out.len());
            out.extend_from_slice(&data[..data.len().min(room)]);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// The human part of a provider error body (`{"error": {"message": ...}}` and variants).
fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Inner {
        message: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum ErrorField {
        Object(Inner),
        Text(String),
    }
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Option<ErrorField>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(
            Envelope {
                error: Some(ErrorField::Object(Inner { message: Some(m) }) | ErrorField::Text(m)),
                ..
            }
            | Envelope {
                message: Some(m), ..
            },
        ) => m,
        _ => String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_from_common_shapes() {
        assert_eq!(
            error_message(br#"{"error":{"message":"bad model","type":"x"}}"#),
            "bad model"
        );
        assert_eq!(error_message(br#"{"error":"plain"}"#), "plain");
        assert_eq!(error_message(br#"{"message":"top"}"#), "top");
        assert_eq!(error_message(b"<html>oops</html>"), "<html>oops</html>");
    }

    #[test]
    fn failover_classes() {
        let status = |s| AttemptError::Status {
            status: s,
            retry_after: None,
            message: String::new(),
        };
        assert!(status(500).fails_over());
        assert!(status(429).fails_over());
        assert!(status(401).fails_over());
        assert!(status(404).fails_over());
        assert!(!status(400).fails_over());
        assert!(!status(422).fails_over());
        assert!(AttemptError::Timeout.fails_over());
        assert_eq!(status(503).outcome(), Outcome::ServerError(503));
    }

    #[test]
    fn credentials_are_scrubbed() {
        let p = ProviderRoute::new(
            "p".into(),
            "http://127.0.0.1:9/v1",
            Some("sk-secret-123".into()),
            &[],
            new_client(Duration::from_secs(1)),
        )
        .unwrap();
        assert_eq!(
            p.scrub("Incorrect API key provided: sk-secret-123."),
            "Incorrect API key provided: [redacted]."
        );
        assert_eq!(
            p.chat_url.to_string(),
            "http://127.0.0.1:9/v1/chat/completions"
        );
        assert!(
            ProviderRoute::new(
                "q".into(),
                "ftp://x",
                None,
                &[],
                new_client(Duration::from_secs(1))
            )
            .is_err()
        );
    }
}
