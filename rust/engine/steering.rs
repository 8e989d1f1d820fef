//! What a request says about where it should go, in every form ZenMux users write it: the
//! `provider` object (`routing` by a priority factor or an explicit order, one `fallback`
//! model), the FAQ's `zenmux-route` (a strategy and a list of fallback models), the legacy
//! `provider_routing_strategy`, and the `author/model:provider` suffix (see `routing`).
//! These fields are ours: they never reach a provider.

use std::time::Instant;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::auto::ModelRouting;
use super::error::GatewayError;
use super::routing::{ChannelRoute, ModelRoute};

/// Top-level request fields that steer routing, removed from every upstream body.
pub const FIELDS: [&str; 4] = [
    "provider",
    "zenmux-route",
    "provider_routing_strategy",
    "model_routing_config",
];

/// What orders a model's channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    /// Live time to first token, lowest first.
    Latency,
    /// Prompt + completion price, cheapest first.
    Price,
    /// Live output tokens per second, highest first.
    Throughput,
    /// Live error rate, lowest first.
    Quality,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Order {
    /// Weight, health and latency, as the selector plans.
    #[default]
    Balanced,
    /// Weighted round-robin only, without latency.
    RoundRobin,
    /// Channels sorted by one factor (unhealthy ones last).
    Priority(Factor),
    /// Exactly these channels, in this order: channel ids, provider ids or `provider/channel`.
    Listed(Vec<String>),
}

/// How the request wants to be routed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Steering {
    pub order: Order,
    /// Models to try, in order, when every channel of the requested one failed.
    pub fallbacks: Vec<String>,
    /// `provider.fallback: "false"`: not even the account's default fallback.
    pub no_fallback: bool,
    /// `model_routing_config`, for `zenmux/auto` (see `auto`).
    pub model_routing: Option<ModelRouting>,
}

fn invalid(message: &str) -> GatewayError {
    GatewayError::invalid(message.to_owned())
}

#[derive(Deserialize)]
struct ProviderField<'a> {
    #[serde(borrow, default)]
    routing: Option<&'a RawValue>,
    #[serde(borrow, default)]
    fallback: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RoutingField<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    primary_factor: Option<&'a RawValue>,
    #[serde(borrow, default)]
    providers: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RouteField<'a> {
    #[serde(borrow, default)]
    strategy: Option<&'a RawValue>,
    #[serde(borrow, default)]
    fallback: Option<&'a RawValue>,
}

fn present(raw: Option<&RawValue>) -> Option<&RawValue> {
    raw.filter(|r| r.get() != "null")
}

/// An object field parsed as `T` (serde would also take an array for a struct).
fn object<'a, T: Deserialize<'a>>(raw: &'a RawValue, message: &str) -> Result<T, GatewayError> {
    if !raw.get().starts_with('{') {
        return Err(invalid(message));
    }
    serde_json::from_str(raw.get()).map_err(|_| invalid(message))
}

fn string(raw: &RawValue) -> Option<String> {
    serde_json::from_str(raw.get()).ok()
}

fn factor(name: &str) -> Option<Factor> {
    Some(match name {
        "latency" | "speed" => Factor::Latency,
        "price" | "cost" => Factor::Price,
        "throughput" => Factor::Throughput,
        "quality" => Factor::Quality,
        _ => return None,
    })
}

fn providers(raw: Option<&RawValue>, message: &str) -> Result<Vec<String>, GatewayError> {
    let list: Vec<String> = present(raw)
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .ok_or_else(|| invalid(message))?;
    if list.is_empty() || list.iter().any(|p| p.trim().is_empty()) {
        return Err(invalid(message));
    }
    Ok(list)
}

/// `provider.routing`: the guide's `priority` / `order` and the API reference's
/// `round_robin` / `least_latency`.
fn routing(raw: &RawValue) -> Result<Order, GatewayError> {
    const TYPE: &str = "Parameter type of provider.routing is not valid";
    const PROVIDERS: &str = "Parameter providers of provider.routing is not valid";
    const FACTOR: &str = "Parameter primary_factor of provider.routing is not valid";
    let field: RoutingField = object(raw, TYPE)?;
    let kind = present(field.kind)
        .and_then(string)
        .ok_or_else(|| invalid(TYPE))?;
    let primary = present(field.primary_factor)
        .map(|r| {
            string(r)
                .and_then(|f| factor(&f))
                .ok_or_else(|| invalid(FACTOR))
        })
        .transpose()?;
    match kind.as_str() {
        "priority" => Ok(Order::Priority(primary.unwrap_or(Factor::Latency))),
        "order" => Ok(Order::Listed(providers(field.providers, PROVIDERS)?)),
        "least_latency" => Ok(Order::Priority(Factor::Latency)),
        "round_robin" => Ok(Order::RoundRobin),
        _ => Err(invalid(TYPE)),
    }
}

impl Steering {
    /// The steering fields of a request (`field` looks one up as its raw JSON value; absent
    /// or null: not set). A per-request `provider` wins over `zenmux-route`, which wins over
    /// the legacy field.
    pub fn parse<'a>(field: impl Fn(&str) -> Option<&'a RawValue>) -> Result<Self, GatewayError> {
        let (provider, route, legacy) = (
            field("provider"),
            field("zenmux-route"),
            field("provider_routing_strategy"),
        );
        let mut steering = Steering {
            model_routing: present(field("model_routing_config"))
                .map(ModelRouting::parse)
                .transpose()?,
            ..Steering::default()
        };
        if let Some(raw) = present(legacy) {
            const LEGACY: &str = "Parameter provider_routing_strategy is not valid";
            let field: RoutingField = object(raw, LEGACY)?;
            match present(field.kind).and_then(string).as_deref() {
                Some("specified_providers" | "order") => {
                    steering.order = Order::Listed(providers(field.providers, LEGACY)?);
                }
                _ => return Err(invalid(LEGACY)),
            }
        }
        if let Some(raw) = present(route) {
            let field: RouteField = object(raw, "Parameter zenmux-route is not valid")?;
            if let Some(strategy) = present(field.strategy) {
                let chosen = string(strategy)
                    .and_then(|s| factor(&s))
                    .ok_or_else(|| invalid("Parameter strategy of zenmux-route is not valid"))?;
                steering.order = Order::Priority(chosen);
            }
            if let Some(fallback) = present(field.fallback) {
                const FALLBACK: &str = "Parameter fallback of zenmux-route is not valid";
                let models: Vec<String> = if fallback.get().starts_with('"') {
                    vec![string(fallback).ok_or_else(|| invalid(FALLBACK))?]
                } else {
                    serde_json::from_str(fallback.get()).map_err(|_| invalid(FALLBACK))?
                };
                if models.iter().any(|m| m.trim().is_empty()) {
                    return Err(invalid(FALLBACK));
                }
                steering.fallbacks = models;
            }
        }
        if let Some(raw) = present(provider) {
            let field: ProviderField = object(raw, "Parameter provider is not valid")?;
            if let Some(raw) = present(field.routing) {
                steering.order = routing(raw)?;
            }
            if let Some(raw) = present(field.fallback) {
                const FALLBACK: &str = "Parameter fallback of provider is not valid";
                let value = string(raw).ok_or_else(|| invalid(FALLBACK))?;
                match value.as_str() {
                    // The API reference's booleans: the account's default, or none at all.
                    "true" => {}
                    "false" => {
                        steering.no_fallback = true;
                        steering.fallbacks.clear();
                    }
                    "" => return Err(invalid(FALLBACK)),
                    model => steering.fallbacks = vec![model.to_owned()],
                }
            }
        }
        Ok(steering)
    }
}

/// Does a name from a request (`order` list, `model:provider` suffix) designate this channel?
/// A channel id, its provider's id, or `provider/channel`.
pub fn names(channel: &ChannelRoute, name: &str) -> bool {
    let provider = channel.provider.id.as_str();
    name == channel.id
        || name == provider
        || name
            .strip_prefix(provider)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|rest| rest == channel.id)
}

/// The attempt plan for `model` under `order`, restricted to the channels `pinned` names (the
/// `model:provider` suffix). Listed orders try exactly the listed channels; a priority factor
/// sorts the healthy channels by it (those with no figure after those with one, the
/// selector's order breaking ties) and leaves the unhealthy ones last.
pub fn plan(
    model: &ModelRoute,
    order: &Order,
    pinned: Option<&str>,
    now: Instant,
    out: &mut Vec<usize>,
) -> Result<(), GatewayError> {
    let healthy = match order {
        Order::RoundRobin => model.selector.plan_round_robin(now, out),
        _ => model.selector.plan(now, out),
    };
    match order {
        Order::Balanced | Order::RoundRobin => {}
        Order::Priority(factor) => {
            let key = |&i: &usize| score(model, i, *factor);
            out[..healthy].sort_by(|a, b| key(a).total_cmp(&key(b)));
        }
        Order::Listed(names_in_order) => {
            let planned = std::mem::take(out);
            for name in names_in_order {
                for &i in &planned {
                    if names(&model.channels[i], name) && !out.contains(&i) {
                        out.push(i);
                    }
                }
            }
            if out.is_empty() {
                return Err(GatewayError::invalid(format!(
                    "Parameter providers of provider.routing is not valid: none of {} serves \
                     model {}",
                    names_in_order.join(", "),
                    model.slug
                )));
            }
        }
    }
    if let Some(pin) = pinned {
        out.retain(|&i| names(&model.channels[i], pin));
        if out.is_empty() {
            return Err(GatewayError::invalid(format!(
                "Provider {pin} does not serve model {}",
                model.slug
            )));
        }
    }
    Ok(())
}

/// Refuse, before anything is tried, a listed order or a pin that names no channel of `model`.
pub fn check(model: &ModelRoute, order: &Order, pinned: Option<&str>) -> Result<(), GatewayError> {
    let serves = |name: &str| model.channels.iter().any(|c| names(c, name));
    if let Order::Listed(listed) = order
        && !listed.iter().any(|name| serves(name))
    {
        return Err(GatewayError::invalid(format!(
            "Parameter providers of provider.routing is not valid: none of {} serves model {}",
            listed.join(", "),
            model.slug
        )));
    }
    if let Some(pin) = pinned
        && !serves(pin)
    {
        return Err(GatewayError::invalid(format!(
            "Provider {pin} does not serve model {}",
            model.slug
        )));
    }
    Ok(())
}

/// Lower is better; unknown is worst.
fn score(model: &ModelRoute, index: usize, factor: Factor) -> f64 {
    let channel = &model.channels[index];
    let stats = channel.stats;
    let known = match factor {
        Factor::Latency => model
            .selector
            .ttft(index)
            .map(|t| t.as_secs_f64() * 1000.0)
            .or(stats.ttft_p50_ms),
        Factor::Price => Some((channel.price.prompt + channel.price.completion) as f64),
        Factor::Throughput => stats.tokens_per_second_p50.map(|t| -t),
        Factor::Quality => stats.error_rate,
    };
    known.unwrap_or(f64::INFINITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    fn parse(provider: &str, route: &str, legacy: &str) -> Result<Steering, String> {
        let (p, r, l) = (raw(provider), raw(route), raw(legacy));
        Steering::parse(|name| match name {
            "provider" => Some(&*p),
            "zenmux-route" => Some(&*r),
            "provider_routing_strategy" => Some(&*l),
            _ => None,
        })
        .map_err(|e| e.message)
    }

    #[test]
    fn every_written_form_is_read() {
        let none = parse("null", "null", "null").unwrap();
        assert_eq!(none, Steering::default());
        let priority = parse(
            r#"{"routing": {"type": "priority", "primary_factor": "price"}}"#,
            "null",
            "null",
        )
        .unwrap();
        assert_eq!(priority.order, Order::Priority(Factor::Price));
        let order = parse(
            r#"{"routing": {"type": "order", "providers": ["a/x", "b"]}, "fallback": "m/n"}"#,
            "null",
            "null",
        )
        .unwrap();
        assert_eq!(order.order, Order::Listed(vec!["a/x".into(), "b".into()]));
        assert_eq!(order.fallbacks, vec!["m/n".to_owned()]);
        let faq = parse(
            "null",
            r#"{"strategy": "throughput", "fallback": ["a/b", "c/d"]}"#,
            "null",
        )
        .unwrap();
        assert_eq!(faq.order, Order::Priority(Factor::Throughput));
        assert_eq!(faq.fallbacks, vec!["a/b".to_owned(), "c/d".to_owned()]);
        let legacy = parse(
            "null",
            "null",
            r#"{"type": "specified_providers", "providers": ["p"]}"#,
        )
        .unwrap();
        assert_eq!(legacy.order, Order::Listed(vec!["p".into()]));
        for (kind, expected) in [
            (r#"{"type": "round_robin"}"#, Order::RoundRobin),
            (
                r#"{"type": "least_latency"}"#,
                Order::Priority(Factor::Latency),
            ),
            (
                r#"{"type": "priority", "primary_factor": "cost"}"#,
                Order::Priority(Factor::Price),
            ),
            (
                r#"{"type": "priority", "primary_factor": "quality"}"#,
                Order::Priority(Factor::Quality),
            ),
        ] {
            let provider = format!(r#"{{"routing": {kind}}}"#);
            assert_eq!(parse(&provider, "null", "null").unwrap().order, expected);
        }
        let off = parse(
            r#"{"fallback": "false"}"#,
            r#"{"fallback": ["x/y"]}"#,
            "null",
        )
        .unwrap();
        assert!(off.no_fallback && off.fallbacks.is_empty());
    }

    #[test]
    fn the_request_wins_over_the_faq_form_and_both_over_the_legacy_one() {
        let both = parse(
            r#"{"routing": {"type": "priority", "primary_factor": "latency"}, "fallback": "p/q"}"#,
            r#"{"strategy": "cost", "fallback": ["x/y"]}"#,
            r#"{"type": "specified_providers", "providers": ["p"]}"#,
        )
        .unwrap();
        assert_eq!(both.order, Order::Priority(Factor::Latency));
        assert_eq!(both.fallbacks, vec!["p/q".to_owned()]);
    }

    fn model() -> std::sync::Arc<ModelRoute> {
        use std::collections::HashMap;

        use super::super::routing::Routing;
        let json = serde_json::json!({
            "version": 1,
            "providers": [
                {"id": "anthropic", "base_url": "http://127.0.0.1:1/v1"},
                {"id": "bedrock", "base_url": "http://127.0.0.1:2/v1"},
                {"id": "vertex", "base_url": "http://127.0.0.1:3/v1"},
            ],
            "models": [{"slug": "anthropic/claude", "channels": [
                {"id": "direct", "provider": "anthropic", "upstream_model": "c",
                 "price": {"prompt": 3, "completion": 15},
                 "stats": {"ttft_p50_ms": 900.0, "tokens_per_second_p50": 40.0, "error_rate": 0.02}},
                {"id": "bedrock-us", "provider": "bedrock", "upstream_model": "c",
                 "price": {"prompt": 2, "completion": 10},
                 "stats": {"ttft_p50_ms": 400.0, "tokens_per_second_p50": 90.0, "error_rate": 0.10}},
                {"id": "bedrock-eu", "provider": "bedrock", "upstream_model": "c",
                 "price": {"prompt": 4, "completion": 20}},
                {"id": "vertex", "provider": "vertex", "upstream_model": "c",
                 "price": {"prompt": 3, "completion": 15},
                 "stats": {"ttft_p50_ms": 600.0, "tokens_per_second_p50": 60.0, "error_rate": 0.0}},
            ]}],
        });
        let snapshot = rmp_serde::from_slice(&rmp_serde::to_vec_named(&json).unwrap()).unwrap();
        let (routing, _) = Routing::compile(&snapshot, &Routing::empty(), &HashMap::new());
        routing.model("anthropic/claude").unwrap().clone()
    }

    fn planned(order: &Order, pinned: Option<&str>) -> Result<Vec<String>, String> {
        let model = model();
        let mut out = Vec::new();
        plan(&model, order, pinned, Instant::now(), &mut out).map_err(|e| e.message)?;
        Ok(out.iter().map(|&i| model.channels[i].id.clone()).collect())
    }

    #[test]
    fn channels_are_ordered_by_the_requested_factor() {
        let by = |f| planned(&Order::Priority(f), None).unwrap();
        assert_eq!(
            by(Factor::Price),
            ["bedrock-us", "direct", "vertex", "bedrock-eu"]
        );
        assert_eq!(
            by(Factor::Latency),
            ["bedrock-us", "vertex", "direct", "bedrock-eu"]
        );
        assert_eq!(
            by(Factor::Throughput),
            ["bedrock-us", "vertex", "direct", "bedrock-eu"]
        );
        assert_eq!(
            by(Factor::Quality),
            ["vertex", "direct", "bedrock-us", "bedrock-eu"]
        );
        assert_eq!(planned(&Order::Balanced, None).unwrap().len(), 4);
    }

    #[test]
    fn listed_orders_and_pins_keep_to_the_named_channels() {
        let listed = Order::Listed(vec![
            "vertex".into(),
            "bedrock/bedrock-eu".into(),
            "direct".into(),
        ]);
        assert_eq!(
            planned(&listed, None).unwrap(),
            ["vertex", "bedrock-eu", "direct"]
        );
        let provider = Order::Listed(vec!["bedrock".into()]);
        let mut both = planned(&provider, None).unwrap();
        both.sort();
        assert_eq!(both, ["bedrock-eu", "bedrock-us"]);
        let pinned = planned(&Order::Priority(Factor::Price), Some("bedrock")).unwrap();
        assert_eq!(pinned, ["bedrock-us", "bedrock-eu"]);
        assert!(
            planned(&Order::Listed(vec!["azure".into()]), None)
                .unwrap_err()
                .starts_with("Parameter providers of provider.routing is not valid")
        );
        assert_eq!(
            planned(&Order::Balanced, Some("azure")).unwrap_err(),
            "Provider azure does not serve model anthropic/claude"
        );
    }

    #[test]
    fn invalid_values_get_the_documented_messages() {
        for (provider, route, message) in [
            (
                r#"{"routing": {"type": "fastest"}}"#,
                "null",
                "Parameter type of provider.routing is not valid",
            ),
            (
                r#"{"routing": {"type": "order", "providers": []}}"#,
                "null",
                "Parameter providers of provider.routing is not valid",
            ),
            (
                r#"{"routing": {"type": "order"}}"#,
                "null",
                "Parameter providers of provider.routing is not valid",
            ),
            (
                r#"{"routing": {"type": "priority", "primary_factor": "vibes"}}"#,
                "null",
                "Parameter primary_factor of provider.routing is not valid",
            ),
            (
                r#"{"routing": "order"}"#,
                "null",
                "Parameter type of provider.routing is not valid",
            ),
            (
                r#"{"fallback": 3}"#,
                "null",
                "Parameter fallback of provider is not valid",
            ),
            ("[1]", "null", "Parameter provider is not valid"),
            (
                "null",
                r#"{"strategy": "random"}"#,
                "Parameter strategy of zenmux-route is not valid",
            ),
            (
                "null",
                r#"{"fallback": [""]}"#,
                "Parameter fallback of zenmux-route is not valid",
            ),
        ] {
            assert_eq!(
                parse(provider, route, "null").unwrap_err(),
                message,
                "{provider} {route}"
            );
        }
        assert_eq!(
            parse("null", "null", r#"{"type": "nearest"}"#).unwrap_err(),
            "Parameter provider_routing_strategy is not valid"
        );
    }
}
