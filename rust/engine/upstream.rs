//! Upstream I/O: one keep-alive connection pool per provider, owned by the Rust runtime, and one
//! attempt against one channel with its timeouts and failure classification.

use std::io::Write as _;
use std::time::Duration;

use super::protocol::Protocol;
use crate::client::{self, Origin, Pool, PoolConfig};
use crate::health::Outcome;

/// Upstream error bodies are read for their message, never without bound.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A pool for one provider origin, with the engine's keep-alive policy.
/// It goes through the proxy the environment names for the origin, if any.
pub fn new_pool(origin: Origin, connect_timeout: Duration) -> Pool {
    let egress = client::ProxyEnv::global().egress(&origin);
    Pool::new(
        origin,
        PoolConfig {
            connect_timeout,
            idle_timeout: Duration::from_secs(90),
            max_idle: 1024,
            tls: client::default_tls(),
            egress,
        },
    )
}

/// The Messages API version we speak to Anthropic providers.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// A provider as the data plane sees it: where to send, how to authenticate.
pub struct ProviderRoute {
    pub id: String,
    pub protocol: Protocol,
    pub pool: Pool,
    /// The endpoint's path (for Gemini its prefix: the model and method follow).
    path: String,
    /// Every fixed header field, rendered once; a request adds its request line and length.
    fields: Vec<u8>,
    /// The raw credential, kept only to scrub it from anything echoed back to clients.
    secret: Option<String>,
}

impl ProviderRoute {
    /// `pool` gives the connection pool for the provider's origin (a new one, or the one a
    /// previous routing table used for the same provider).
    pub fn new(
        id: String,
        protocol: Protocol,
        base_url: &str,
        secret: Option<String>,
        extra_headers: &[(String, String)],
        pool: impl FnOnce(Origin) -> Pool,
    ) -> Result<Self, String> {
        let endpoint = match protocol {
            Protocol::OpenAi => "chat/completions",
            Protocol::Anthropic => "messages",
            Protocol::Gemini => "models",
        };
        let url = format!("{}/{endpoint}", base_url.trim_end_matches('/'));
        let (origin, path) =
            Origin::parse(&url).map_err(|e| format!("provider {id}: invalid base_url: {e}"))?;
        let mut head = format!(
            "host: {}\r\ncontent-type: application/json\r\nuser-agent: muxgate/{}\r\n",
            origin.host_header(),
            env!("CARGO_PKG_VERSION"),
        );
        if let Some(s) = &secret {
            if !client::is_field_value(s.as_bytes()) {
                return Err(format!(
                    "provider {id}: credential is not a valid header value"
                ));
            }
            head.push_str(match protocol {
                Protocol::OpenAi => "authorization: Bearer ",
                Protocol::Anthropic => "x-api-key: ",
                Protocol::Gemini => "x-goog-api-key: ",
            });
            head.push_str(s);
            head.push_str("\r\n");
        }
        if protocol == Protocol::Anthropic {
            head.push_str("anthropic-version: ");
            head.push_str(ANTHROPIC_VERSION);
            head.push_str("\r\n");
        }
        for (name, value) in extra_headers {
            if name.is_empty() || !name.bytes().all(client::is_tchar) {
                return Err(format!("provider {id}: invalid header name {name:?}"));
            }
            if OWN_FIELDS.iter().any(|f| name.eq_ignore_ascii_case(f)) {
                return Err(format!(
                    "provider {id}: header {name} is set by the gateway itself"
                ));
            }
            if !client::is_field_value(value.as_bytes()) {
                return Err(format!("provider {id}: invalid value for header {name}"));
            }
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        Ok(Self {
            id,
            protocol,
            pool: pool(origin),
            path,
            fields: head.into_bytes(),
            secret,
        })
    }

    /// The complete request head. Gemini names the model and the method in the path; the other
    /// protocols have one endpoint. A Messages client's betas go to Messages providers.
    fn request_head(&self, request: &Request<'_>) -> Vec<u8> {
        let mut head = Vec::with_capacity(self.path.len() + self.fields.len() + 96);
        head.extend_from_slice(b"POST ");
        head.extend_from_slice(self.path.as_bytes());
        if self.protocol == Protocol::Gemini {
            head.push(b'/');
            percent_encode(request.model, &mut head);
            head.extend_from_slice(if request.stream {
                b":streamGenerateContent?alt=sse"
            } else {
                b":generateContent"
            });
        }
        head.extend_from_slice(b" HTTP/1.1\r\n");
        head.extend_from_slice(&self.fields);
        if let (Protocol::Anthropic, Some(beta)) = (self.protocol, request.anthropic_beta) {
            head.extend_from_slice(b"anthropic-beta: ");
            head.extend_from_slice(beta.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        let length = request.body.len();
        write!(head, "content-length: {length}\r\n\r\n").expect("a Vec takes every write");
        head
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

/// Fields that frame the request on the wire: a second copy from configuration would make
/// the request ambiguous.
const OWN_FIELDS: [&str; 3] = ["host", "content-length", "transfer-encoding"];

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

/// A path segment: unreserved characters as they are, every other byte as `%XX`.
fn percent_encode(segment: &str, out: &mut Vec<u8>) {
    for &b in segment.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            write!(out, "%{b:02X}").expect("a Vec takes every write");
        }
    }
}

/// One request to one channel.
pub struct Request<'a> {
    pub model: &'a str,
    pub stream: bool,
    pub anthropic_beta: Option<&'a str>,
    pub body: &'a [u8],
}

/// Send one request and wait for the response head, within `first_byte`.
pub async fn send(
    provider: &ProviderRoute,
    request: &Request<'_>,
    first_byte: Duration,
) -> Result<client::Response, AttemptError> {
    let head = provider.request_head(request);
    let response =
        match tokio::time::timeout(first_byte, provider.pool.send(&head, request.body)).await {
            Err(_) => return Err(AttemptError::Timeout),
            Ok(Err(e)) => return Err(AttemptError::Connect(connect_reason(&e))),
            Ok(Ok(r)) => r,
        };
    let status = response.status();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let retry_after = response
        .header("retry-after")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3600.0)));
    let message = match tokio::time::timeout(
        first_byte,
        response.into_body().collect(MAX_ERROR_BODY),
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

/// Why no response arrived. The client's errors name the peer and the OS error, never a
/// header value, so they are safe to show.
fn connect_reason(e: &client::Error) -> String {
    let kind = match e {
        client::Error::Connect { .. }
        | client::Error::ConnectTimeout { .. }
        | client::Error::Tls { .. }
        | client::Error::InvalidProxy(_)
        | client::Error::ProxyRefused { .. } => "connection failed",
        _ => "request failed",
    };
    format!("{kind}: {e}")
}

/// The human part of a provider error body (`{"error": {"message": ...}}` and variants).
pub(super) fn error_message(body: &[u8]) -> String {
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

    /// A request for `model` whose body is `length` bytes.
    fn request(model: &str, stream: bool, length: usize) -> Request<'_> {
        const BODY: &[u8] = &[b' '; 64];
        Request {
            model,
            stream,
            anthropic_beta: None,
            body: &BODY[..length],
        }
    }

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
        let pool = |origin| new_pool(origin, Duration::from_secs(1));
        let p = ProviderRoute::new(
            "p".into(),
            Protocol::OpenAi,
            "http://127.0.0.1:9/v1",
            Some("sk-secret-123".into()),
            &[],
            pool,
        )
        .unwrap();
        assert_eq!(
            p.scrub("Incorrect API key provided: sk-secret-123."),
            "Incorrect API key provided: [redacted]."
        );
        assert!(
            ProviderRoute::new("q".into(), Protocol::OpenAi, "ftp://x", None, &[], pool).is_err()
        );
        // The warning a refused URL becomes never repeats what it carries.
        let with_password = "https://user:hunter2@api.example.com/v1";
        let Err(warning) =
            ProviderRoute::new("u".into(), Protocol::OpenAi, with_password, None, &[], pool)
        else {
            panic!("a URL with credentials was accepted");
        };
        assert!(
            warning.contains("credentials") && !warning.contains("hunter2"),
            "{warning}"
        );
    }

    #[test]
    fn the_request_head_is_rendered_once_and_completed_per_request() {
        let pool = |origin| new_pool(origin, Duration::from_secs(1));
        let headers = [("X-Org".to_owned(), "acme".to_owned())];
        let p = ProviderRoute::new(
            "p".into(),
            Protocol::OpenAi,
            "https://api.example.com/v1/",
            Some("sk-1".into()),
            &headers,
            pool,
        )
        .unwrap();
        let expected = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: api.example.com\r\n\
             content-type: application/json\r\nuser-agent: muxgate/{}\r\n\
             authorization: Bearer sk-1\r\nX-Org: acme\r\ncontent-length: 42\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(
            String::from_utf8(p.request_head(&request("gpt-x", true, 42))).unwrap(),
            expected
        );
        assert!(p.pool.origin().is_tls());
    }

    #[test]
    fn anthropic_providers_get_their_endpoint_key_header_and_version() {
        let pool = |origin| new_pool(origin, Duration::from_secs(1));
        let p = ProviderRoute::new(
            "a".into(),
            Protocol::Anthropic,
            "https://api.anthropic.com/v1",
            Some("sk-ant-1".into()),
            &[],
            pool,
        )
        .unwrap();
        let head = String::from_utf8(p.request_head(&request("claude", false, 7))).unwrap();
        assert!(head.starts_with("POST /v1/messages HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("\r\nx-api-key: sk-ant-1\r\n"));
        assert!(head.contains("\r\nanthropic-version: 2023-06-01\r\n"));
        assert!(!head.contains("authorization") && !head.contains("anthropic-beta"));
        let beta = Request {
            anthropic_beta: Some("interleaved-thinking-2025-05-14"),
            ..request("claude", false, 7)
        };
        let head = String::from_utf8(p.request_head(&beta)).unwrap();
        assert!(head.contains("\r\nanthropic-beta: interleaved-thinking-2025-05-14\r\n"));
    }

    #[test]
    fn gemini_providers_name_model_and_method_in_the_path() {
        let pool = |origin| new_pool(origin, Duration::from_secs(1));
        let p = ProviderRoute::new(
            "g".into(),
            Protocol::Gemini,
            "https://generativelanguage.googleapis.com/v1beta",
            Some("AIza-1".into()),
            &[],
            pool,
        )
        .unwrap();
        let stream =
            String::from_utf8(p.request_head(&request("gemini-2.5-pro", true, 7))).unwrap();
        assert!(
            stream.starts_with(
                "POST /v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse HTTP/1.1\r\n"
            ),
            "{stream}"
        );
        assert!(stream.contains("\r\nx-goog-api-key: AIza-1\r\n"));
        let json = String::from_utf8(p.request_head(&request("odd name/x", false, 7))).unwrap();
        assert!(
            json.starts_with("POST /v1beta/models/odd%20name%2Fx:generateContent HTTP/1.1\r\n")
        );
    }

    #[test]
    fn header_injection_is_refused() {
        let pool = |origin| new_pool(origin, Duration::from_secs(1));
        let base = "http://127.0.0.1:9/v1";
        let header = |name: &str, value: &str| [(name.to_owned(), value.to_owned())];
        assert!(
            ProviderRoute::new(
                "p".into(),
                Protocol::OpenAi,
                base,
                Some("sk\r\nx: y".into()),
                &[],
                pool
            )
            .is_err()
        );
        for bad in [
            header("x-a", "v\r\nx-injected: 1"),
            header("x a", "v"),
            header("", "v"),
            header("x-a:", "v"),
            header("Content-Length", "1"),
            header("host", "other"),
        ] {
            assert!(
                ProviderRoute::new("p".into(), Protocol::OpenAi, base, None, &bad, pool).is_err(),
                "{bad:?}"
            );
        }
        assert!(
            ProviderRoute::new(
                "p".into(),
                Protocol::OpenAi,
                base,
                None,
                &header("x-a", "v\tw"),
                pool
            )
            .is_ok()
        );
    }
}
