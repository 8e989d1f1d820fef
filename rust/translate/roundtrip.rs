//! Round-trip properties: a request made only of what two protocols both carry survives being
//! encoded for either and decoded again, so a request A→B→A keeps every field A and B share.
//! The generator writes requests in each field's canonical form (alternating turns, tool
//! results before the rest of their turn, calls numbered as Gemini numbers them, one text per
//! assistant turn), and each protocol is checked on the features it has.

use proptest::prelude::*;

use super::{
    CacheControl, Media, Message, OutputFormat, Part, Reasoning, Request, Role, Tool, ToolChoice,
    anthropic, gemini, openai,
};

/// What a protocol carries beyond the common core.
#[derive(Clone, Copy)]
struct Features {
    cache: bool,
    thinking: bool,
    top_k: bool,
}

const OPENAI: Features = Features {
    cache: true,
    thinking: false,
    top_k: false,
};
const ANTHROPIC: Features = Features {
    cache: true,
    thinking: true,
    top_k: true,
};
const GEMINI: Features = Features {
    cache: false,
    thinking: true,
    top_k: true,
};

/// Intersection of two protocols' features.
fn both(a: Features, b: Features) -> Features {
    Features {
        cache: a.cache && b.cache,
        thinking: a.thinking && b.thinking,
        top_k: a.top_k && b.top_k,
    }
}

fn word() -> impl Strategy<Value = String> {
    "[A-Za-z][a-z]{0,7}( [a-z]{1,6}){0,3}"
}

fn cache(features: Features) -> impl Strategy<Value = Option<CacheControl>> {
    let choices = if features.cache {
        vec![None, Some(None), Some(Some("5m")), Some(Some("1h"))]
    } else {
        vec![None]
    };
    proptest::sample::select(choices).prop_map(|c| {
        c.map(|ttl| CacheControl {
            ttl: ttl.map(str::to_owned),
        })
    })
}

fn text(features: Features) -> impl Strategy<Value = Part> {
    (word(), cache(features)).prop_map(|(text, cache)| Part::Text { text, cache })
}

fn image(features: Features) -> impl Strategy<Value = Part> {
    let source = prop_oneof![
        "[a-z]{1,8}".prop_map(|n| Media::Url(format!("https://example.com/{n}.png"))),
        "[A-Za-z0-9]{4,12}".prop_map(|data| Media::Base64 {
            media_type: "image/png".to_owned(),
            data: format!("{data}=="),
        }),
    ];
    (source, cache(features)).prop_map(|(source, cache)| Part::Image { source, cache })
}

fn tool(name: String) -> impl Strategy<Value = Tool> {
    let schemas = [
        r#"{"type":"object","properties":{}}"#,
        r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#,
        r#"{"type":"object","properties":{"n":{"type":"integer","minimum":1}}}"#,
    ];
    (
        proptest::option::of(word()),
        proptest::sample::select(schemas.to_vec()),
    )
        .prop_map(move |(description, parameters)| Tool {
            name: name.clone(),
            description,
            parameters: parameters.to_owned(),
            cache: None,
        })
}

/// One assistant turn's shape: thinking, text, and how many calls.
#[derive(Debug, Clone)]
struct Turn {
    user: Vec<Part>,
    thinking: Option<(String, String)>,
    reply: Option<String>,
    calls: Vec<(usize, String)>,
}

fn turn(features: Features, tools: usize) -> impl Strategy<Value = Turn> {
    let user =
        proptest::collection::vec(prop_oneof![3 => text(features), 1 => image(features)], 1..3);
    let thinking = if features.thinking {
        proptest::option::of((word(), "[A-Za-z0-9]{8,16}")).boxed()
    } else {
        Just(None).boxed()
    };
    let calls = if tools == 0 {
        Just(Vec::new()).boxed()
    } else {
        proptest::collection::vec((0..tools, "[a-z]{1,6}"), 0..3).boxed()
    };
    (user, thinking, proptest::option::of(word()), calls).prop_map(
        |(user, thinking, reply, calls)| {
            // An assistant turn says something.
            let reply = if reply.is_none() && calls.is_empty() {
                Some("ok".to_owned())
            } else {
                reply
            };
            Turn {
                user,
                thinking,
                reply,
                calls,
            }
        },
    )
}

/// The turns as messages, ending on a user turn: each call answered at the start of the next
/// user turn, with the ids Gemini would give the calls (numbered over the conversation).
fn conversation(turns: &[Turn], names: &[&str]) -> Vec<Message> {
    let mut messages = Vec::new();
    let mut call_index = 0;
    let mut pending: Vec<(String, String)> = Vec::new();
    for (i, turn) in turns.iter().enumerate() {
        let mut user: Vec<Part> = pending
            .drain(..)
            .map(|(call_id, text)| Part::ToolResult {
                call_id,
                content: vec![Part::Text { text, cache: None }],
                is_error: false,
            })
            .collect();
        user.extend(turn.user.iter().cloned());
        messages.push(Message {
            role: Role::User,
            parts: user,
        });
        // The conversation ends on the user's turn.
        if i + 1 == turns.len() {
            break;
        }
        let mut parts = Vec::new();
        if let Some((text, signature)) = &turn.thinking {
            parts.push(Part::Thinking {
                text: text.clone(),
                signature: Some(signature.clone()),
            });
        }
        if let Some(reply) = &turn.reply {
            parts.push(Part::Text {
                text: reply.clone(),
                cache: None,
            });
        }
        for (tool, result) in &turn.calls {
            let id = format!("call_{call_index}");
            call_index += 1;
            parts.push(Part::ToolCall {
                id: id.clone(),
                name: names[*tool].to_owned(),
                arguments: r#"{"city":"Paris"}"#.to_owned(),
            });
            pending.push((id, format!("result {result}")));
        }
        messages.push(Message {
            role: Role::Assistant,
            parts,
        });
    }
    messages
}

fn request(features: Features) -> impl Strategy<Value = Request> {
    let names = ["get_weather", "now", "lookup"];
    (0usize..=3)
        .prop_flat_map(move |tools| {
            let defs: Vec<_> = names[..tools]
                .iter()
                .map(|n| tool((*n).to_owned()))
                .collect();
            (
                Just(tools),
                defs,
                proptest::collection::vec(turn(features, tools), 1..4),
                proptest::collection::vec(
                    text(Features {
                        cache: false,
                        ..features
                    }),
                    0..3,
                ),
                (
                    1u64..100_000,
                    proptest::option::of(0u32..=100),
                    proptest::option::of(1u32..=100),
                ),
                (
                    if features.top_k {
                        proptest::option::of(1u64..=100).boxed()
                    } else {
                        Just(None).boxed()
                    },
                    proptest::collection::vec("[a-z]{1,5}", 0..3),
                    any::<bool>(),
                    any::<bool>(),
                ),
                (
                    0usize..5,
                    proptest::option::of(proptest::sample::select(vec![2048u64, 5120, 10240])),
                    0usize..3,
                ),
            )
        })
        .prop_map(
            move |(
                tools,
                defs,
                turns,
                system,
                (max_tokens, temperature, top_p),
                (top_k, stop, stream, web_search),
                (choice, budget, output),
            )| {
                let messages = conversation(&turns, &names);
                let tool_choice = match (tools, choice) {
                    (0, _) | (_, 0) => None,
                    (_, 1) => Some(ToolChoice::Auto),
                    (_, 2) => Some(ToolChoice::None),
                    (_, 3) => Some(ToolChoice::Required),
                    (n, _) => Some(ToolChoice::Named(names[n - 1].to_owned())),
                };
                let output = match output {
                    0 => None,
                    1 => Some(OutputFormat::JsonObject),
                    _ => Some(OutputFormat::JsonSchema {
                        name: None,
                        schema: r#"{"type":"object","properties":{"a":{"type":"string"}}}"#
                            .to_owned(),
                        strict: None,
                    }),
                };
                Request {
                    model: "m".to_owned(),
                    system,
                    messages,
                    max_tokens: Some(max_tokens.max(budget.unwrap_or(0) + 1)),
                    // Thinking takes neither (Messages refuses them with thinking on).
                    temperature: temperature
                        .filter(|_| budget.is_none())
                        .map(|t| f64::from(t) / 100.0),
                    top_p: top_p.map(|p| f64::from(p) / 100.0),
                    top_k: top_k.filter(|_| budget.is_none()),
                    stop,
                    stream,
                    tools: defs,
                    tool_choice,
                    parallel_tool_calls: None,
                    reasoning: budget.map(Reasoning::Budget),
                    output,
                    web_search,
                    dropped: Vec::new(),
                }
            },
        )
}

/// What the comparison ignores: the forms one request takes in different protocols (an effort
/// or a budget; a schema's name, which only Chat Completions has; "any JSON object" as a mode
/// or as a schema).
fn canonical(mut request: Request) -> Request {
    request.reasoning = request
        .reasoning
        .and_then(Reasoning::budget)
        .map(Reasoning::Budget);
    match &mut request.output {
        Some(OutputFormat::JsonSchema { name, strict, .. }) => {
            *name = None;
            *strict = None;
        }
        // Messages says "any JSON object" with the schema that says so.
        output @ Some(OutputFormat::JsonObject) => {
            *output = Some(OutputFormat::JsonSchema {
                name: None,
                schema: r#"{"type":"object"}"#.to_owned(),
                strict: None,
            });
        }
        None => {}
    }
    request
}

fn check(
    request: &Request,
    encode: fn(&Request, &str) -> super::Encoded,
    decode: impl Fn(&[u8]) -> Result<Request, super::Invalid>,
) -> Result<(), TestCaseError> {
    let encoded = encode(request, "m");
    prop_assert!(encoded.dropped.is_empty(), "dropped {:?}", encoded.dropped);
    let back = decode(&encoded.body).map_err(|e| {
        TestCaseError::fail(format!("{e} in {}", String::from_utf8_lossy(&encoded.body)))
    })?;
    prop_assert!(back.dropped.is_empty(), "dropped {:?}", back.dropped);
    prop_assert_eq!(canonical(back), canonical(request.clone()));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn chat_completions_keeps_what_it_shares_with_messages(request in request(both(OPENAI, ANTHROPIC))) {
        check(&request, openai::encode_request, openai::decode_request)?;
        check(&request, anthropic::encode_request, anthropic::decode_request)?;
    }

    #[test]
    fn gemini_keeps_what_it_shares_with_chat_completions(request in request(both(GEMINI, OPENAI))) {
        let stream = request.stream;
        check(&request, gemini::encode_request, |body| gemini::decode_request(body, "m", stream))?;
        check(&request, openai::encode_request, openai::decode_request)?;
    }

    #[test]
    fn messages_and_gemini_keep_thinking_and_signatures(request in request(both(ANTHROPIC, GEMINI))) {
        let stream = request.stream;
        check(&request, anthropic::encode_request, anthropic::decode_request)?;
        check(&request, gemini::encode_request, |body| gemini::decode_request(body, "m", stream))?;
    }
}
