//! The routing table a worker serves from: a snapshot compiled into lookup structures (key
//! digests, model slugs and aliases, channels with their provider pools and live selectors).
//! Immutable once built; a reload builds a new one that inherits pools and selector state.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::protocol::Protocol;
use super::upstream::{ProviderRoute, new_pool};
use crate::client::Pool;
use crate::health::HealthPolicy;
use crate::insurance::rules::Rule;
use crate::select::{ChannelSpec, ModelSelector};
use crate::snapshot::{
    LiveStats, Price, Provider, RoutingSnapshot, Settings, Timeouts, model_allowed,
};
use crate::tokens::Encoding;

/// Whether the key itself may ask, its expiry aside (that is the clock's to say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Active,
    Disabled,
    /// What it spent reached its credit limit.
    CreditLimitReached,
}

#[derive(Debug)]
pub struct KeyEntry {
    pub id: String,
    pub account: String,
    pub models: Vec<String>,
    pub standing: Standing,
    /// Unix milliseconds from which the key is refused.
    pub expires_at: Option<u64>,
    pub account_blocked: bool,
    /// The account keeps insurance cases with their content.
    pub retain_content: bool,
    /// The account's default fallback model, for requests that name none.
    pub default_fallback: Option<String>,
}

impl KeyEntry {
    pub fn allows(&self, slug: &str) -> bool {
        model_allowed(&self.models, slug)
    }
}

pub struct ChannelRoute {
    pub id: String,
    pub provider: Arc<ProviderRoute>,
    pub upstream_model: String,
    pub weight: u32,
    pub price: Price,
    pub timeouts: Timeouts,
    pub stats: LiveStats,
}

pub struct ModelRoute {
    pub slug: String,
    pub context_length: Option<u32>,
    pub channels: Vec<ChannelRoute>,
    pub selector: ModelSelector,
    pub encoding: Encoding,
    pub ttft_p50_ms: Option<f64>,
    /// Attempts across the channels, the first included (at least 1).
    pub max_attempts: usize,
    /// Why enabled channels of the model are left out (their provider cannot be used), told to
    /// clients when no channel is left: names of environment variables, never their values.
    pub disabled: Vec<String>,
}

pub struct Routing {
    pub version: u64,
    keys: HashMap<[u8; 32], KeyEntry>,
    /// Slugs and aliases, all pointing at the same route.
    models: HashMap<String, Arc<ModelRoute>>,
    /// Models in catalog order, for listings.
    pub catalog: Vec<Arc<ModelRoute>>,
    pub settings: Settings,
    pub insurance: Arc<[Rule]>,
    pub limits: Arc<[crate::snapshot::RateLimit]>,
    /// Pools by (provider id, base URL, connect timeout), inherited by the next routing table.
    pools: HashMap<(String, String, u64), Pool>,
}

impl Routing {
    /// No snapshot yet: the worker refuses traffic rather than serving an empty table.
    pub fn empty() -> Self {
        Self {
            version: 0,
            keys: HashMap::new(),
            models: HashMap::new(),
            catalog: Vec::new(),
            settings: Settings::default(),
            insurance: Arc::new([]),
            limits: Arc::new([]),
            pools: HashMap::new(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.version > 0
    }

    /// Compile a snapshot. Problems that concern one provider (a missing credential variable,
    /// a bad URL) disable that provider's channels and come back as warnings instead of
    /// refusing the whole table.
    #[allow(clippy::too_many_lines)] // one pass over the snapshot reads best in one place
    pub fn compile(
        snapshot: &RoutingSnapshot,
        previous: &Routing,
        credentials: &HashMap<String, String>,
    ) -> (Routing, Vec<String>) {
        let mut warnings = Vec::new();
        let mut pools = HashMap::new();
        let mut providers: HashMap<&str, Arc<ProviderRoute>> = HashMap::new();
        // Providers that cannot be used, with the reason a client may be told.
        let mut unusable: HashMap<&str, String> = HashMap::new();
        for p in &snapshot.providers {
            let Some(protocol) = Protocol::from_name(&p.protocol) else {
                warnings.push(format!(
                    "provider {}: protocol {:?} is not supported by this worker; its channels are disabled",
                    p.id, p.protocol
                ));
                unusable.insert(
                    &p.id,
                    format!(
                        "provider {} speaks protocol {}, which this gateway does not support",
                        p.id, p.protocol
                    ),
                );
                continue;
            };
            let secret = match (credentials.get(&p.id), &p.credential_env) {
                (Some(secret), _) => Some(secret.clone()),
                (None, Some(var)) => match std::env::var(var) {
                    Ok(v) if !v.is_empty() => Some(v),
                    _ => {
                        warnings.push(format!(
                            "provider {}: environment variable {var} is not set; its channels are disabled",
                            p.id
                        ));
                        unusable.insert(
                            &p.id,
                            format!("{var} is not set (the credential of provider {})", p.id),
                        );
                        continue;
                    }
                },
                (None, None) => None,
            };
            let headers = match headers_from_env(p) {
                Ok(headers) => headers,
                Err((name, var)) => {
                    warnings.push(format!(
                        "provider {}: environment variable {var} (header {name}) is not set; its channels are disabled",
                        p.id
                    ));
                    unusable.insert(
                        &p.id,
                        format!("{var} is not set (header {name} of provider {})", p.id),
                    );
                    continue;
                }
            };
            let pool_key = (p.id.clone(), p.base_url.clone(), p.connect_timeout_ms);
            let inherited = previous.pools.get(&pool_key).cloned();
            let connect_timeout = Duration::from_millis(p.connect_timeout_ms);
            match ProviderRoute::new(
                p.id.clone(),
                protocol,
                &p.base_url,
                secret,
                &headers,
                // Same provider and URL: keep its warm connections across the reload.
                |origin| inherited.unwrap_or_else(|| new_pool(origin, connect_timeout)),
            ) {
                Ok(route) => {
                    pools.insert(pool_key, route.pool.clone());
                    providers.insert(p.id.as_str(), Arc::new(route));
                }
                Err(e) => {
                    warnings.push(e);
                    // The details (a URL, a header) stay in the gateway's log.
                    unusable.insert(
                        &p.id,
                        format!("provider {} is misconfigured (see the gateway's log)", p.id),
                    );
                }
            }
        }

        let mut models = HashMap::new();
        let mut catalog = Vec::new();
        let policy = HealthPolicy::default();
        for m in &snapshot.models {
            let mut channels = Vec::new();
            let mut disabled: Vec<String> = Vec::new();
            for c in m.channels.iter().filter(|c| c.enabled && c.weight > 0) {
                if let Some(reason) = unusable.get(c.provider.as_str()) {
                    if !disabled.contains(reason) {
                        disabled.push(reason.clone());
                    }
                }
                match providers.get(c.provider.as_str()) {
                    Some(provider) => channels.push(ChannelRoute {
                        id: c.id.clone(),
                        provider: provider.clone(),
                        upstream_model: c.upstream_model.clone(),
                        weight: c.weight,
                        price: c.price,
                        timeouts: c.timeouts,
                        stats: c.stats,
                    }),
                    None if snapshot.providers.iter().any(|p| p.id == c.provider) => {}
                    None => warnings.push(format!(
                        "model {}: channel {} names unknown provider {}",
                        m.slug, c.id, c.provider
                    )),
                }
            }
            let specs: Vec<ChannelSpec> = channels
                .iter()
                .map(|c| ChannelSpec {
                    id: c.id.clone(),
                    weight: c.weight,
                })
                .collect();
            let selector = match previous.models.get(&m.slug) {
                Some(old) => old.selector.rebuild(&specs, policy),
                None => ModelSelector::new(&specs, policy),
            };
            let route = Arc::new(ModelRoute {
                slug: m.slug.clone(),
                context_length: m.context_length,
                encoding: Encoding::for_model(&m.slug),
                channels,
                selector,
                ttft_p50_ms: m.ttft_p50_ms,
                max_attempts: m
                    .max_attempts
                    .unwrap_or(snapshot.settings.max_attempts)
                    .max(1) as usize,
                disabled,
            });
            for alias in &m.aliases {
                models.insert(alias.clone(), route.clone());
            }
            models.insert(m.slug.clone(), route.clone());
            catalog.push(route);
        }

        let accounts: HashMap<&str, &crate::snapshot::Account> = snapshot
            .accounts
            .iter()
            .map(|a| (a.id.as_str(), a))
            .collect();
        let mut keys = HashMap::new();
        for k in &snapshot.keys {
            let Some(digest) = decode_digest(&k.digest) else {
                warnings.push(format!("key {}: digest is not 64 hex digits", k.id));
                continue;
            };
            keys.insert(
                digest,
                KeyEntry {
                    id: k.id.clone(),
                    account: k.account.clone(),
                    models: k.models.clone(),
                    standing: match (k.enabled, k.credit_exhausted) {
                        (false, _) => Standing::Disabled,
                        (true, true) => Standing::CreditLimitReached,
                        (true, false) => Standing::Active,
                    },
                    expires_at: k.expires_at,
                    account_blocked: accounts.get(k.account.as_str()).is_some_and(|a| a.blocked),
                    retain_content: accounts
                        .get(k.account.as_str())
                        .is_some_and(|a| a.retain_content),
                    default_fallback: accounts
                        .get(k.account.as_str())
                        .and_then(|a| a.default_fallback.clone()),
                },
            );
        }
        let routing = Routing {
            version: snapshot.version,
            keys,
            models,
            catalog,
            settings: snapshot.settings,
            insurance: snapshot.insurance.clone().into(),
            limits: snapshot.limits.clone().into(),
            pools,
        };
        (routing, warnings)
    }

    pub fn key(&self, secret: &str) -> Option<&KeyEntry> {
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        self.keys.get(&digest)
    }

    pub fn model(&self, name: &str) -> Option<&Arc<ModelRoute>> {
        self.models.get(name)
    }

    /// A model by slug or alias, or `author/model:provider`: the model with the provider it
    /// pins (a slug itself containing `:` wins).
    pub fn model_and_pin<'n>(&self, name: &'n str) -> Option<(&Arc<ModelRoute>, Option<&'n str>)> {
        if let Some(model) = self.models.get(name) {
            return Some((model, None));
        }
        let (slug, provider) = name.rsplit_once(':')?;
        let model = self.models.get(slug)?;
        (!provider.is_empty()).then_some((model, Some(provider)))
    }
}

fn decode_digest(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// The secret from `Authorization: Bearer <key>` or a bare `x-api-key`.
pub fn bearer(authorization: Option<&str>, api_key: Option<&str>) -> Option<String> {
    if let Some(h) = authorization {
        let h = h.trim();
        let (scheme, rest) = h.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty() {
            return Some(rest.trim().to_owned());
        }
        return None;
    }
    api_key
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
}

/// The provider's extra headers with their values read from the environment, or the first
/// header whose variable is unset (its name and the variable's, never a value).
fn headers_from_env(p: &Provider) -> Result<Vec<(String, String)>, (&str, &str)> {
    p.headers_env
        .iter()
        .map(|(name, var)| match std::env::var(var) {
            Ok(value) if !value.is_empty() => Ok((name.clone(), value)),
            _ => Err((name.as_str(), var.as_str())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(env_var: &str) -> RoutingSnapshot {
        let digest = format!("{:x}", Sha256::digest(b"sk-test"));
        let json = serde_json::json!({
            "version": 3,
            "providers": [
                {"id": "mock", "base_url": "http://127.0.0.1:1/v1"},
                {"id": "real", "base_url": "https://api.example.com/v1", "credential_env": env_var},
            ],
            "models": [{"slug": "openai/gpt-4o-mini", "aliases": ["gpt-4o-mini"], "channels": [
                {"id": "a", "provider": "mock", "upstream_model": "gpt-4o-mini", "weight": 2},
                {"id": "b", "provider": "real", "upstream_model": "gpt-4o-mini"},
                {"id": "c", "provider": "mock", "upstream_model": "x", "enabled": false},
            ]}],
            "accounts": [{"id": "acc", "blocked": true}],
            "keys": [{"id": "k1", "account": "acc", "digest": digest, "models": ["openai/*"]}],
        });
        rmp_serde::from_slice(&rmp_serde::to_vec_named(&json).unwrap()).unwrap()
    }

    #[test]
    fn compiles_keys_models_aliases() {
        let (r, warnings) = Routing::compile(
            &snapshot("MUXGATE_TEST_UNSET_VAR_1"),
            &Routing::empty(),
            &HashMap::new(),
        );
        assert!(r.is_ready());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("MUXGATE_TEST_UNSET_VAR_1"));
        let key = r.key("sk-test").expect("key by digest");
        assert_eq!(key.id, "k1");
        assert!(key.account_blocked);
        assert!(key.allows("openai/gpt-4o-mini"));
        assert!(r.key("sk-other").is_none());
        let m = r.model("gpt-4o-mini").expect("alias");
        assert_eq!(m.slug, "openai/gpt-4o-mini");
        // channel b is disabled by the missing credential, c by config
        assert_eq!(m.channels.len(), 1);
        assert_eq!(m.selector.len(), 1);
        assert_eq!(
            m.disabled,
            ["MUXGATE_TEST_UNSET_VAR_1 is not set (the credential of provider real)"]
        );
    }

    #[test]
    fn credential_from_environment_enables_the_provider() {
        // SAFETY: tests in this module use a variable name no other test touches.
        unsafe { std::env::set_var("MUXGATE_TEST_SET_VAR_2", "sk-upstream") };
        let (r, warnings) = Routing::compile(
            &snapshot("MUXGATE_TEST_SET_VAR_2"),
            &Routing::empty(),
            &HashMap::new(),
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(r.model("openai/gpt-4o-mini").unwrap().channels.len(), 2);
    }

    #[test]
    fn decrypted_credential_wins_over_the_environment() {
        let credentials = HashMap::from([("real".to_owned(), "sk-decrypted".to_owned())]);
        let (r, warnings) = Routing::compile(
            &snapshot("MUXGATE_TEST_UNSET_VAR_3"),
            &Routing::empty(),
            &credentials,
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let m = r.model("openai/gpt-4o-mini").unwrap();
        assert_eq!(m.channels.len(), 2);
        let real = m.channels.iter().find(|c| c.provider.id == "real").unwrap();
        assert_eq!(real.provider.scrub("key sk-decrypted"), "key [redacted]");
    }

    #[test]
    fn provider_headers_come_from_the_environment() {
        let mut snap = snapshot("MUXGATE_TEST_SET_VAR_4");
        // SAFETY: tests in this module use a variable name no other test touches.
        unsafe { std::env::set_var("MUXGATE_TEST_SET_VAR_4", "sk-upstream") };
        snap.providers[1].headers_env = vec![("X-Org".to_owned(), "MUXGATE_TEST_VAR_5".to_owned())];
        let (r, warnings) = Routing::compile(&snap, &Routing::empty(), &HashMap::new());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("MUXGATE_TEST_VAR_5") && warnings[0].contains("X-Org"));
        let m = r.model("openai/gpt-4o-mini").unwrap();
        assert_eq!(m.channels.len(), 1);
        // What a 502 says when no channel is left: the variable, never a value.
        assert_eq!(
            m.disabled,
            ["MUXGATE_TEST_VAR_5 is not set (header X-Org of provider real)"]
        );
        unsafe { std::env::set_var("MUXGATE_TEST_VAR_5", "org-secret-value") };
        let (r, warnings) = Routing::compile(&snap, &Routing::empty(), &HashMap::new());
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(r.model("openai/gpt-4o-mini").unwrap().channels.len(), 2);
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(Some("Bearer sk-1"), None).as_deref(), Some("sk-1"));
        assert_eq!(
            bearer(Some("bearer   sk-1 "), None).as_deref(),
            Some("sk-1")
        );
        assert_eq!(bearer(Some("Basic abc"), None), None);
        assert_eq!(bearer(Some("Bearer "), None), None);
        assert_eq!(bearer(None, Some("sk-2")).as_deref(), Some("sk-2"));
        assert_eq!(bearer(None, None), None);
    }
}
