//! The door: who may ask (the key, checked against the worker's own clock for its expiry), and
//! rate limits: which of the snapshot's limits a request falls under (per key and per account,
//! requests and tokens), taking from their buckets before anything is sent, and settling the
//! token buckets with what the request really used once it is metered.

use std::time::Duration;

use super::error::{ErrorKind, GatewayError};
use super::routing::{KeyEntry, Routing, Standing};
use crate::limits::{Limiter, Rate, Verdict};
use crate::snapshot::{RateLimit, model_allowed};

/// The key a request is made with, if it may ask now (`now_ms`: the worker's clock in Unix
/// milliseconds, given so tests can set it). An expired key is refused from the millisecond of
/// its expiry on, whatever snapshot the worker holds.
pub fn authenticate<'r>(
    routing: &'r Routing,
    secret: Option<&str>,
    now_ms: u64,
) -> Result<&'r KeyEntry, GatewayError> {
    if !routing.is_ready() {
        return Err(GatewayError::new(
            ErrorKind::Unavailable,
            "The gateway has no routing table yet; try again shortly",
        ));
    }
    let Some(secret) = secret else {
        return Err(GatewayError::new(
            ErrorKind::InvalidApiKey,
            "Missing API key: send it as 'Authorization: Bearer <key>'",
        ));
    };
    let Some(key) = routing.key(secret) else {
        return Err(GatewayError::new(
            ErrorKind::InvalidApiKey,
            "Invalid API key",
        ));
    };
    if key.standing == Standing::Disabled {
        return Err(GatewayError::new(
            ErrorKind::InvalidApiKey,
            "This API key is disabled",
        ));
    }
    if let Some(expiry) = key.expires_at.filter(|&at| now_ms >= at) {
        return Err(GatewayError::new(
            ErrorKind::InvalidApiKey,
            format!("This API key expired at {}", utc_timestamp(expiry)),
        ));
    }
    if key.account_blocked {
        return Err(GatewayError::new(
            ErrorKind::InsufficientCredit,
            "Account overdue. To prevent abuse, a non-negative balance is required for all models (including free tiers).",
        ));
    }
    if key.standing == Standing::CreditLimitReached {
        return Err(GatewayError::new(
            ErrorKind::InsufficientCredit,
            "This API key has reached its credit limit; raise the key's limit to use it again",
        ));
    }
    Ok(key)
}

/// `2026-01-31T12:00:05Z` for Unix milliseconds (whole seconds: expiries are set to the second).
fn utc_timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Tokens reserved for the answer of a request that sets no `max_tokens`.
pub const DEFAULT_ANSWER_TOKENS: u64 = 1024;

/// One bucket a request took from.
#[derive(Debug, Clone)]
pub struct Taken {
    pub bucket: String,
    pub rate: Rate,
    pub cost: i64,
    /// A token bucket, settled with the actual usage later.
    pub tokens: bool,
}

/// What the request took, and the headers that tell the client where it stands.
#[derive(Debug, Default)]
pub struct Admission {
    pub taken: Vec<Taken>,
    pub headers: Vec<(String, String)>,
}

/// Who is asking: the key and its account, for which model.
pub struct Asker<'a> {
    pub key: &'a str,
    pub account: &'a str,
    pub model: &'a str,
}

/// The limit of `scope` for `subject` that applies to one dimension (`pick` reads it).
fn applicable<'l>(
    limits: &'l [RateLimit],
    scope: &str,
    subject: &str,
    model: &str,
    pick: impl Fn(&RateLimit) -> Option<u64>,
) -> Option<(&'l RateLimit, u64)> {
    limits
        .iter()
        .filter(|l| l.scope == scope)
        .filter(|l| l.subjects.is_empty() || l.subjects.iter().any(|s| s == subject))
        .filter(|l| model_allowed(&l.models, model))
        .filter_map(|l| pick(l).filter(|v| *v > 0).map(|v| (l, v)))
        // Highest priority; on a tie, the strictest.
        .max_by(|(a, av), (b, bv)| a.priority.cmp(&b.priority).then(bv.cmp(av)))
}

/// A refusal: the `429`, and the headers saying where the bucket stands.
pub type Refusal = (GatewayError, Vec<(String, String)>);

/// Take from every bucket the request falls under: one request from each request limit,
/// `tokens` (the prompt's estimate and the answer's allowance) from each token limit. A
/// refusal gives back what was taken and is a `429` saying when to retry.
pub async fn admit(
    limiter: &Limiter,
    limits: &[RateLimit],
    asker: &Asker<'_>,
    tokens: u64,
) -> Result<Admission, Refusal> {
    let mut admission = Admission::default();
    if limits.is_empty() {
        return Ok(admission);
    }
    let mut wanted = Vec::with_capacity(4);
    for (scope, subject) in [("key", asker.key), ("account", asker.account)] {
        if let Some((limit, rpm)) = applicable(limits, scope, subject, asker.model, |l| l.rpm) {
            wanted.push(Taken {
                bucket: format!("{scope}:{subject}:{}:rpm", limit.id),
                rate: Rate::per_minute(rpm, limit.burst.unwrap_or(rpm)),
                cost: 1,
                tokens: false,
            });
        }
        if let Some((limit, tpm)) = applicable(limits, scope, subject, asker.model, |l| l.tpm) {
            wanted.push(Taken {
                bucket: format!("{scope}:{subject}:{}:tpm", limit.id),
                rate: Rate::per_minute(tpm, tpm),
                cost: i64::try_from(tokens).unwrap_or(i64::MAX),
                tokens: true,
            });
        }
    }
    let mut shown = false;
    for want in wanted {
        let verdict = limiter.take(&want.bucket, want.rate, want.cost).await;
        if !verdict.allowed {
            give_back(limiter, &admission.taken).await;
            return Err(refusal(&want, &verdict));
        }
        if !shown && !want.tokens {
            admission.headers = headers(&want, &verdict);
            shown = true;
        }
        admission.taken.push(want);
    }
    Ok(admission)
}

/// Settle the token buckets with what the request really used (given back when it used less
/// than it reserved, taken when more).
pub async fn settle(limiter: &Limiter, taken: &[Taken], used: u64) {
    let used = i64::try_from(used).unwrap_or(i64::MAX);
    for t in taken.iter().filter(|t| t.tokens && t.cost != used) {
        limiter.take(&t.bucket, t.rate, used - t.cost).await;
    }
}

async fn give_back(limiter: &Limiter, taken: &[Taken]) {
    for t in taken {
        limiter.take(&t.bucket, t.rate, -t.cost).await;
    }
}

fn headers(taken: &Taken, verdict: &Verdict) -> Vec<(String, String)> {
    vec![
        (
            "x-ratelimit-limit".to_owned(),
            taken.rate.per_minute.to_string(),
        ),
        (
            "x-ratelimit-remaining".to_owned(),
            verdict.remaining.to_string(),
        ),
        (
            "x-ratelimit-reset".to_owned(),
            seconds(verdict.reset_us).to_string(),
        ),
    ]
}

fn seconds(us: i64) -> u64 {
    u64::try_from(us.max(0)).unwrap_or(0).div_ceil(1_000_000)
}

fn refusal(taken: &Taken, verdict: &Verdict) -> Refusal {
    let what = if taken.tokens { "tokens" } else { "requests" };
    let limit = taken.rate.per_minute;
    let (scope, subject) = taken.bucket.split_once(':').map_or(("", ""), |(s, rest)| {
        (s, rest.split(':').next().unwrap_or(""))
    });
    if verdict.retry_us < 0 {
        let error = GatewayError::new(
            ErrorKind::RateLimited { retry_after: None },
            format!(
                "Rate limit exceeded: this request needs {} {what}, more than {scope} {subject} \
                 may use in a minute ({limit})",
                taken.cost
            ),
        );
        return (error, headers(taken, verdict));
    }
    let wait = Duration::from_micros(u64::try_from(verdict.retry_us).unwrap_or(0));
    let error = GatewayError::new(
        ErrorKind::RateLimited {
            retry_after: Some(wait.max(Duration::from_secs(1))),
        },
        format!("Rate limit exceeded: {limit} {what} per minute for {scope} {subject}"),
    );
    (error, headers(taken, verdict))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use sha2::{Digest, Sha256};

    use super::*;
    use crate::snapshot::RoutingSnapshot;

    fn routing(keys: &serde_json::Value) -> Routing {
        let json = serde_json::json!({
            "version": 1,
            "accounts": [{"id": "acc"}, {"id": "overdue", "blocked": true}],
            "keys": keys,
        });
        let snapshot: RoutingSnapshot =
            rmp_serde::from_slice(&rmp_serde::to_vec_named(&json).unwrap()).unwrap();
        Routing::compile(&snapshot, &Routing::empty(), &HashMap::new()).0
    }

    fn digest(secret: &str) -> String {
        format!("{:x}", Sha256::digest(secret.as_bytes()))
    }

    #[test]
    fn an_expired_key_is_refused_from_its_expiry_on_by_the_workers_clock() {
        // 2026-01-31T12:00:05Z
        let expiry = 1_769_860_805_000_u64;
        let routing = routing(&serde_json::json!([
            {"id": "k", "account": "acc", "digest": digest("sk-k"), "expires_at": expiry},
        ]));
        assert_eq!(
            authenticate(&routing, Some("sk-k"), expiry - 1).unwrap().id,
            "k"
        );
        for now in [expiry, expiry + 60_000] {
            let refused = authenticate(&routing, Some("sk-k"), now).unwrap_err();
            assert_eq!(refused.status(), 401);
            assert_eq!(refused.type_name(), "invalid_api_key");
            assert_eq!(
                refused.message,
                "This API key expired at 2026-01-31T12:00:05Z"
            );
        }
    }

    #[test]
    fn each_refusal_says_why() {
        let routing = routing(&serde_json::json!([
            {"id": "spent", "account": "acc", "digest": digest("sk-spent"),
             "credit_exhausted": true},
            {"id": "off", "account": "acc", "digest": digest("sk-off"), "enabled": false},
            {"id": "owing", "account": "overdue", "digest": digest("sk-owing")},
        ]));
        let refusal = |secret| authenticate(&routing, secret, 0).unwrap_err();
        let spent = refusal(Some("sk-spent"));
        assert_eq!(
            (spent.status(), spent.type_name()),
            (402, "insufficient_credit")
        );
        assert!(spent.message.contains("credit limit"), "{}", spent.message);
        let off = refusal(Some("sk-off"));
        assert_eq!(
            (off.status(), off.message.as_str()),
            (401, "This API key is disabled")
        );
        assert_eq!(refusal(Some("sk-owing")).status(), 402);
        assert_eq!(refusal(Some("sk-none")).message, "Invalid API key");
        assert_eq!(refusal(None).status(), 401);
    }

    fn limit(id: &str, scope: &str, rpm: Option<u64>, priority: i64) -> RateLimit {
        RateLimit {
            id: id.to_owned(),
            scope: scope.to_owned(),
            subjects: Vec::new(),
            models: Vec::new(),
            rpm,
            tpm: None,
            burst: None,
            priority,
        }
    }

    #[test]
    fn the_highest_priority_applies_and_ties_go_to_the_strictest() {
        let mut gpt = limit("gpt", "key", Some(60), 10);
        gpt.models = vec!["openai/gpt-4*".to_owned()];
        let mut own = limit("key:k1", "key", Some(500), 30);
        own.subjects = vec!["k1".to_owned()];
        let limits = vec![
            gpt,
            own,
            limit("all", "key", Some(1000), 0),
            limit("tie", "key", Some(40), 10),
        ];
        let rpm = |subject: &str, model: &str| {
            applicable(&limits, "key", subject, model, |l| l.rpm).map(|(l, v)| (l.id.clone(), v))
        };
        assert_eq!(rpm("k1", "openai/gpt-4o"), Some(("key:k1".to_owned(), 500)));
        assert_eq!(rpm("k2", "openai/gpt-4o"), Some(("tie".to_owned(), 40)));
        assert_eq!(rpm("k2", "x/y"), Some(("tie".to_owned(), 40)));
        assert_eq!(
            applicable(&limits, "account", "a", "x/y", |l| l.rpm).map(|(_, v)| v),
            None
        );
    }

    #[tokio::test]
    async fn a_refusal_gives_back_what_was_taken_and_says_when_to_retry() {
        let limiter = Limiter::in_memory();
        let mut per_key = limit("rpm", "key", Some(60), 0);
        per_key.burst = Some(2);
        let mut tokens = limit("tpm", "account", None, 0);
        tokens.tpm = Some(1000);
        let limits = vec![per_key, tokens];
        let asker = Asker {
            key: "k",
            account: "a",
            model: "m/x",
        };
        let first = admit(&limiter, &limits, &asker, 600).await.unwrap();
        assert_eq!(
            first.headers[0],
            ("x-ratelimit-limit".to_owned(), "60".to_owned())
        );
        assert_eq!(
            first.headers[1],
            ("x-ratelimit-remaining".to_owned(), "1".to_owned())
        );
        // 600 more tokens would pass 1000 a minute: refused, and the request unit returned.
        let (refused, _) = admit(&limiter, &limits, &asker, 600).await.unwrap_err();
        assert_eq!(refused.status(), 429);
        assert!(
            refused.message.contains("tokens per minute for account a"),
            "{}",
            refused.message
        );
        // It used 100 tokens, not 600: 500 come back and the next request fits.
        settle(&limiter, &first.taken, 100).await;
        let second = admit(&limiter, &limits, &asker, 600).await.unwrap();
        assert_eq!(second.headers[1].1, "0");
        let (third, headers) = admit(&limiter, &limits, &asker, 1).await.unwrap_err();
        assert_eq!(
            headers[1],
            ("x-ratelimit-remaining".to_owned(), "0".to_owned())
        );
        assert_eq!(third.retry_after(), Some(Duration::from_secs(1)));
        assert!(
            third.message.contains("60 requests per minute for key k"),
            "{}",
            third.message
        );
        let other_key = Asker { key: "k2", ..asker };
        let (huge, _) = admit(&limiter, &limits, &other_key, 5000)
            .await
            .unwrap_err();
        assert!(
            huge.message.contains("more than account a may use"),
            "{}",
            huge.message
        );
    }
}
