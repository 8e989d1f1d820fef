//! Model routing (`"model": "zenmux/auto"`): the gateway picks the model. The candidates are
//! the request's `model_routing_config.available_models` (else every model the key may use),
//! less those whose context cannot hold the request. They are ranked by a rule simple enough
//! to state: a model's *expected cost* for this request — its cheapest channel's prices applied
//! to the prompt estimate and the answer allowance — orders it; `price` takes the cheapest
//! first, `performance` the dearest (a model's list price is the catalog's measure of its
//! tier), `balanced` follows the request's complexity: the cheapest for a simple request, the
//! dearest for a complex one, the middle of the range otherwise. The first candidate answers;
//! the others are tried in order when every channel of the one before failed. Ties go to the
//! model with fewer recent errors, then to the slug.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::{ErrorKind, GatewayError};
use super::routing::{KeyEntry, ModelRoute, Routing};
use crate::translate::{Part, Request};

/// Says which models `zenmux/auto` ranked, and why.
pub const MODEL_ROUTING_HEADER: &str = "x-muxgate-model-routing";
/// The model name that asks the gateway to choose.
pub const AUTO_MODEL: &str = "zenmux/auto";
/// Candidates kept when the pool is the whole catalog (each one after the first is a failover).
const MAX_FROM_CATALOG: usize = 5;
/// The longest `available_models` list.
const MAX_LISTED: usize = 20;
/// What an image or a document is expected to take of a context.
const MEDIA_TOKENS: usize = 1_500;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Preference {
    #[default]
    Balanced,
    Performance,
    Price,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Complexity {
    Low,
    Medium,
    High,
}

impl Preference {
    fn name(self) -> &'static str {
        match self {
            Preference::Balanced => "balanced",
            Preference::Performance => "performance",
            Preference::Price => "price",
        }
    }
}

impl Complexity {
    fn name(self) -> &'static str {
        match self {
            Complexity::Low => "low",
            Complexity::Medium => "medium",
            Complexity::High => "high",
        }
    }
}

/// `model_routing_config`, as the request gave it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelRouting {
    /// Empty: every model the key may use.
    pub available: Vec<String>,
    pub preference: Preference,
    /// `task_info.complexity`, when the client states it (else it is estimated).
    pub complexity: Option<Complexity>,
}

#[derive(Deserialize)]
struct ConfigField<'a> {
    #[serde(borrow, default)]
    available_models: Option<&'a RawValue>,
    #[serde(borrow, default)]
    preference: Option<&'a RawValue>,
    #[serde(borrow, default)]
    task_info: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct TaskInfo<'a> {
    #[serde(borrow, default)]
    complexity: Option<&'a RawValue>,
}

fn invalid(message: &str) -> GatewayError {
    GatewayError::invalid(message.to_owned())
}

fn given(raw: Option<&RawValue>) -> Option<&RawValue> {
    raw.filter(|r| r.get() != "null")
}

impl ModelRouting {
    /// `model_routing_config` with ZenMux's rules: at least two listed models (when listed),
    /// a known preference.
    pub fn parse(raw: &RawValue) -> Result<Self, GatewayError> {
        const CONFIG: &str = "Parameter model_routing_config is not valid";
        const MODELS: &str = "Parameter available_models of model_routing_config is not valid";
        const PREFERENCE: &str = "Parameter preference of model_routing_config is not valid";
        const COMPLEXITY: &str =
            "Parameter complexity of model_routing_config.task_info is not valid";
        if !raw.get().starts_with('{') {
            return Err(invalid(CONFIG));
        }
        let field: ConfigField = serde_json::from_str(raw.get()).map_err(|_| invalid(CONFIG))?;
        let mut config = ModelRouting::default();
        if let Some(raw) = given(field.available_models) {
            let models: Vec<String> =
                serde_json::from_str(raw.get()).map_err(|_| invalid(MODELS))?;
            if !(2..=MAX_LISTED).contains(&models.len())
                || models.iter().any(|m| m.trim().is_empty())
            {
                return Err(invalid(MODELS));
            }
            config.available = models;
        }
        if let Some(raw) = given(field.preference) {
            let name: String = serde_json::from_str(raw.get()).map_err(|_| invalid(PREFERENCE))?;
            config.preference = match name.as_str() {
                "balanced" => Preference::Balanced,
                "performance" => Preference::Performance,
                "price" => Preference::Price,
                _ => return Err(invalid(PREFERENCE)),
            };
        }
        if let Some(raw) = given(field.task_info) {
            if !raw.get().starts_with('{') {
                return Err(invalid(COMPLEXITY));
            }
            let info: TaskInfo =
                serde_json::from_str(raw.get()).map_err(|_| invalid(COMPLEXITY))?;
            if let Some(raw) = given(info.complexity) {
                let name: String =
                    serde_json::from_str(raw.get()).map_err(|_| invalid(COMPLEXITY))?;
                config.complexity = Some(match name.as_str() {
                    "low" => Complexity::Low,
                    "medium" => Complexity::Medium,
                    "high" => Complexity::High,
                    _ => return Err(invalid(COMPLEXITY)),
                });
            }
        }
        Ok(config)
    }
}

/// What the request needs of a model.
#[derive(Debug, Clone, Copy, Default)]
pub struct Demand {
    /// The prompt's estimated tokens.
    pub prompt_tokens: u64,
    /// `max_tokens`, or the default allowance.
    pub answer_tokens: u64,
    pub tools: bool,
    pub structured_output: bool,
    pub reasoning: bool,
    /// Messages in the conversation.
    pub turns: usize,
}

impl Demand {
    /// A simple request (a short prompt asking for text) is `low`; tools, reasoning, a long
    /// prompt or a long conversation add up to `medium` and `high`.
    pub fn complexity(&self) -> Complexity {
        let prompt = match self.prompt_tokens {
            0..=500 => 0,
            501..=4_000 => 1,
            _ => 2,
        };
        let score = prompt
            + 2 * u32::from(self.tools)
            + 2 * u32::from(self.reasoning)
            + u32::from(self.structured_output)
            + u32::from(self.turns > 6);
        match score {
            0 => Complexity::Low,
            1..=2 => Complexity::Medium,
            _ => Complexity::High,
        }
    }
}

/// Tokens a prompt is expected to take, without counting (the I/O thread must not spend
/// milliseconds on a large prompt): its text at about four bytes a token, and a flat
/// `MEDIA_TOKENS` for each image or document however many bytes encode it.
pub fn prompt_estimate(request: &Request) -> u64 {
    fn part(p: &Part) -> usize {
        match p {
            Part::Text { text, .. } | Part::Thinking { text, .. } => text.len() / 4,
            Part::Image { .. } | Part::Document { .. } => MEDIA_TOKENS,
            Part::RedactedThinking { data } => data.len() / 4,
            Part::ToolCall { arguments, .. } => arguments.len() / 4,
            Part::ToolResult { content, .. } => content.iter().map(part).sum(),
        }
    }
    let parts = request
        .system
        .iter()
        .chain(request.messages.iter().flat_map(|m| &m.parts));
    let tools: usize = request
        .tools
        .iter()
        .map(|t| {
            (t.name.len() + t.description.as_ref().map_or(0, String::len) + t.parameters.len()) / 4
        })
        .sum();
    (parts.map(part).sum::<usize>() + tools) as u64
}

/// The models chosen, best first, and why (the `X-Muxgate-Model-Routing` header).
pub struct Choice {
    pub models: Vec<Arc<ModelRoute>>,
    pub explanation: String,
}

struct Candidate {
    model: Arc<ModelRoute>,
    cost: i64,
    errors: f64,
}

/// Rank the candidates for this request; `usable` says which models the request's other
/// routing controls leave open (an `order` list names providers of some models only).
pub fn choose(
    routing: &Routing,
    key: &KeyEntry,
    config: &ModelRouting,
    demand: &Demand,
    usable: impl Fn(&ModelRoute) -> bool,
) -> Result<Choice, GatewayError> {
    let mut open = pool(routing, key, config)?;
    open.retain(|m| !m.channels.is_empty() && usable(m));
    if open.is_empty() {
        return Err(GatewayError::new(
            ErrorKind::NoProviderAvailable,
            "No model of model_routing_config is available for this request".to_owned(),
        ));
    }
    let needed = demand.prompt_tokens + demand.answer_tokens;
    let mut candidates: Vec<Candidate> = open
        .into_iter()
        .filter(|m| m.context_length.is_none_or(|c| u64::from(c) >= needed))
        .map(|model| {
            let cost = model
                .channels
                .iter()
                .map(|c| c.price.cost(demand.prompt_tokens, 0, demand.answer_tokens))
                .min()
                .unwrap_or_default();
            let errors = model
                .channels
                .iter()
                .map(|c| c.stats.error_rate.unwrap_or(0.0))
                .fold(f64::INFINITY, f64::min);
            Candidate {
                model,
                cost,
                errors,
            }
        })
        .collect();
    if candidates.is_empty() {
        return Err(GatewayError::invalid(format!(
            "No model of model_routing_config has the context for this request (about {needed} \
             tokens with the answer)"
        )));
    }
    candidates.sort_by(|a, b| {
        a.cost
            .cmp(&b.cost)
            .then(a.errors.total_cmp(&b.errors))
            .then(a.model.slug.cmp(&b.model.slug))
    });
    let complexity = config.complexity.unwrap_or_else(|| demand.complexity());
    let ranked = match (config.preference, complexity) {
        (Preference::Price, _) | (Preference::Balanced, Complexity::Low) => candidates,
        (Preference::Performance, _) | (Preference::Balanced, Complexity::High) => {
            dearest_first(candidates)
        }
        (Preference::Balanced, Complexity::Medium) => middle_first(candidates),
    };
    let mut models: Vec<Arc<ModelRoute>> = ranked.into_iter().map(|c| c.model).collect();
    if config.available.is_empty() {
        models.truncate(MAX_FROM_CATALOG);
    }
    let explanation = format!(
        "preference={}; complexity={}; candidates={}",
        config.preference.name(),
        complexity.name(),
        models
            .iter()
            .map(|m| m.slug.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    Ok(Choice {
        models,
        explanation,
    })
}

/// The listed models (each must exist and be open to the key), or every model the key may use.
fn pool(
    routing: &Routing,
    key: &KeyEntry,
    config: &ModelRouting,
) -> Result<Vec<Arc<ModelRoute>>, GatewayError> {
    if config.available.is_empty() {
        return Ok(routing
            .catalog
            .iter()
            .filter(|m| key.allows(&m.slug))
            .cloned()
            .collect());
    }
    let mut pool: Vec<Arc<ModelRoute>> = Vec::with_capacity(config.available.len());
    for name in &config.available {
        let Some(model) = routing.model(name) else {
            return Err(GatewayError::new(
                ErrorKind::InvalidModel,
                format!("Model {name} in model_routing_config.available_models is not valid"),
            ));
        };
        if !key.allows(&model.slug) {
            return Err(GatewayError::new(
                ErrorKind::AccessDenied,
                format!(
                    "You have no permission to access this resource: this API key may not use \
                     model {}",
                    model.slug
                ),
            ));
        }
        if !pool.iter().any(|m| m.slug == model.slug) {
            pool.push(model.clone());
        }
    }
    Ok(pool)
}

/// Cheapest-first candidates, dearest first (ties keep their order).
fn dearest_first(mut candidates: Vec<Candidate>) -> Vec<Candidate> {
    candidates.sort_by_key(|c| std::cmp::Reverse(c.cost));
    candidates
}

/// Cheapest-first candidates, the middle one first, then outward (the cheaper side first).
fn middle_first(candidates: Vec<Candidate>) -> Vec<Candidate> {
    let middle = (candidates.len() - 1) / 2;
    let mut keyed: Vec<(usize, usize, Candidate)> = candidates
        .into_iter()
        .enumerate()
        .map(|(i, c)| (i.abs_diff(middle), i, c))
        .collect();
    keyed.sort_by_key(|(distance, i, _)| (*distance, *i));
    keyed.into_iter().map(|(_, _, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    #[test]
    fn the_config_follows_zenmuxs_rules() {
        let config = ModelRouting::parse(&raw(
            r#"{"available_models": ["a/x", "b/y"], "preference": "price",
                "task_info": {"task_type": "chat", "complexity": "high"}}"#,
        ))
        .unwrap();
        assert_eq!(config.available, ["a/x", "b/y"]);
        assert_eq!(config.preference, Preference::Price);
        assert_eq!(config.complexity, Some(Complexity::High));
        assert_eq!(
            ModelRouting::parse(&raw("{}")).unwrap(),
            ModelRouting::default()
        );
        for (bad, field) in [
            (r#"{"available_models": ["a/x"]}"#, "available_models"),
            (r#"{"available_models": ["a/x", ""]}"#, "available_models"),
            (r#"{"available_models": "a/x"}"#, "available_models"),
            (r#"{"preference": "fastest"}"#, "preference"),
            (r#"{"task_info": {"complexity": "extreme"}}"#, "complexity"),
            ("[]", "model_routing_config is"),
        ] {
            let error = ModelRouting::parse(&raw(bad)).unwrap_err();
            assert!(error.message.contains(field), "{bad}: {}", error.message);
            assert_eq!(error.status(), 400);
        }
    }

    #[test]
    fn a_prompt_is_estimated_by_its_text_and_a_flat_size_per_image() {
        let image = format!("data:image/png;base64,{}", "A".repeat(1_000_000));
        let body = serde_json::json!({
            "model": "m/1",
            "messages": [
                {"role": "system", "content": "x".repeat(400)},
                {"role": "user", "content": [
                    {"type": "text", "text": "y".repeat(800)},
                    {"type": "image_url", "image_url": {"url": image}},
                ]},
            ],
        });
        let request =
            crate::translate::openai::decode_request(body.to_string().as_bytes()).unwrap();
        assert_eq!(prompt_estimate(&request), 100 + 200 + 1_500);
    }

    #[test]
    fn complexity_adds_up_what_the_request_asks() {
        let simple = Demand {
            prompt_tokens: 20,
            answer_tokens: 1024,
            turns: 1,
            ..Demand::default()
        };
        assert_eq!(simple.complexity(), Complexity::Low);
        let structured = Demand {
            structured_output: true,
            ..simple
        };
        assert_eq!(structured.complexity(), Complexity::Medium);
        let agent = Demand {
            tools: true,
            prompt_tokens: 1_000,
            ..simple
        };
        assert_eq!(agent.complexity(), Complexity::High);
        let long = Demand {
            prompt_tokens: 10_000,
            ..simple
        };
        assert_eq!(long.complexity(), Complexity::Medium);
    }

    /// Five models priced 1 to 5 (USD per million, prompt and completion alike), `m/5` with a
    /// context of 2 000 tokens, `m/1` out of the key's reach.
    fn routing() -> Routing {
        use sha2::{Digest, Sha256};
        let models: Vec<serde_json::Value> = (1..=5)
            .map(|i| {
                let price = i64::from(i) * 1_000_000_000;
                serde_json::json!({
                    "slug": format!("m/{i}"),
                    "context_length": if i == 5 { Some(2_000) } else { None },
                    "channels": [{"id": format!("c{i}"), "provider": "p",
                        "upstream_model": "x", "price": {"prompt": price, "completion": price}}],
                })
            })
            .collect();
        let json = serde_json::json!({
            "version": 1,
            "providers": [{"id": "p", "base_url": "http://127.0.0.1:1/v1"}],
            "models": models,
            "accounts": [{"id": "a"}],
            "keys": [{"id": "k", "account": "a", "digest": format!("{:x}", Sha256::digest(b"sk")),
                "models": ["m/2", "m/3", "m/4", "m/5"]}],
        });
        let snapshot = rmp_serde::from_slice(&rmp_serde::to_vec_named(&json).unwrap()).unwrap();
        let (routing, _) = Routing::compile(
            &snapshot,
            &Routing::empty(),
            &std::collections::HashMap::new(),
        );
        routing
    }

    fn chosen(config: &ModelRouting, demand: &Demand) -> Result<Vec<String>, GatewayError> {
        let routing = routing();
        let key = routing.key("sk").unwrap();
        let choice = choose(&routing, key, config, demand, |_| true)?;
        Ok(choice.models.iter().map(|m| m.slug.clone()).collect())
    }

    #[test]
    fn candidates_are_ranked_by_expected_cost_as_the_preference_says() {
        let short = Demand {
            prompt_tokens: 10,
            answer_tokens: 100,
            turns: 1,
            ..Demand::default()
        };
        let with = |preference, complexity| ModelRouting {
            preference,
            complexity,
            ..ModelRouting::default()
        };
        // The key may not use m/1: the pool is m/2..m/5.
        let price = chosen(&with(Preference::Price, None), &short).unwrap();
        assert_eq!(price, ["m/2", "m/3", "m/4", "m/5"]);
        let best = chosen(&with(Preference::Performance, None), &short).unwrap();
        assert_eq!(best, ["m/5", "m/4", "m/3", "m/2"]);
        // Balanced: a simple request goes cheap, a complex one dear, a medium one to the middle.
        assert_eq!(chosen(&ModelRouting::default(), &short).unwrap()[0], "m/2");
        let agent = Demand {
            tools: true,
            reasoning: true,
            ..short
        };
        assert_eq!(chosen(&ModelRouting::default(), &agent).unwrap()[0], "m/5");
        let medium = with(Preference::Balanced, Some(Complexity::Medium));
        assert_eq!(
            chosen(&medium, &short).unwrap(),
            ["m/3", "m/2", "m/4", "m/5"]
        );
        // A request larger than m/5's context leaves it out.
        let long = Demand {
            prompt_tokens: 1_500,
            answer_tokens: 1_024,
            ..short
        };
        assert_eq!(
            chosen(&with(Preference::Performance, None), &long).unwrap()[0],
            "m/4"
        );
    }

    #[test]
    fn listed_models_must_exist_and_be_open_to_the_key() {
        let listed = |models: &[&str]| ModelRouting {
            available: models.iter().map(|m| (*m).to_owned()).collect(),
            preference: Preference::Price,
            complexity: None,
        };
        let demand = Demand::default();
        assert_eq!(
            chosen(&listed(&["m/4", "m/3", "m/4"]), &demand).unwrap(),
            ["m/3", "m/4"]
        );
        let unknown = chosen(&listed(&["m/3", "m/9"]), &demand).unwrap_err();
        assert_eq!(unknown.status(), 404);
        assert!(unknown.message.contains("m/9"), "{}", unknown.message);
        let forbidden = chosen(&listed(&["m/1", "m/3"]), &demand).unwrap_err();
        assert_eq!(forbidden.status(), 403);
        let huge = Demand {
            prompt_tokens: 10_000_000,
            ..demand
        };
        let none = chosen(&listed(&["m/3", "m/5"]), &huge);
        assert!(none.is_ok(), "no context length known: m/3 may hold it");
        let tight = chosen(&listed(&["m/5", "m/5"]), &huge).unwrap_err();
        assert_eq!(tight.status(), 400);
        assert!(tight.message.contains("context"), "{}", tight.message);
    }
}
