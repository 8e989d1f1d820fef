//! Objective checks on what an answer said (the `unsatisfactory_content` trigger): each finding
//! is a fact anyone can verify from the request and the answer, never a judgement of quality.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde_json::Value;

use super::schema;

/// What the request asked of the answer.
#[derive(Debug, Clone, Default)]
pub struct Expected<'a> {
    /// `json_object` or a JSON schema was requested: the answer's text must be JSON.
    pub json: bool,
    /// The requested schema (JSON text), when there is one.
    pub schema: Option<&'a str>,
    /// The tools offered: name and parameter schema (JSON text).
    pub tools: Vec<(&'a str, &'a str)>,
}

/// What the answer said.
#[derive(Debug, Clone, Default)]
pub struct Answer<'a> {
    /// Visible text (reasoning excluded).
    pub text: &'a str,
    /// Tool calls: name and arguments (JSON text).
    pub tool_calls: Vec<(&'a str, &'a str)>,
    /// The answer stopped at `max_tokens`.
    pub hit_max_tokens: bool,
    /// Reasoning tokens spent.
    pub reasoning_tokens: u64,
}

/// Where an n-gram repeated too often counts as degenerate.
#[derive(Debug, Clone, Copy)]
pub struct RepetitionLimit {
    /// Words per n-gram (four characters to a word in text without spaces).
    pub ngram: usize,
    /// Occurrences of one n-gram beyond which the answer is degenerate.
    pub max_repeats: usize,
}

impl Default for RepetitionLimit {
    fn default() -> Self {
        Self {
            ngram: 8,
            max_repeats: 12,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// No text and no tool call.
    Empty,
    /// JSON was requested and the text does not parse.
    InvalidJson(String),
    /// The text parses but breaks the requested schema: where, and why.
    SchemaViolation { path: String, reason: String },
    /// A tool call's arguments are not a JSON object.
    InvalidToolArguments { tool: String },
    /// A tool call's arguments break the tool's parameter schema.
    ToolArgumentsViolateSchema {
        tool: String,
        path: String,
        reason: String,
    },
    /// A call to a tool the request did not offer.
    UnofferedTool { tool: String },
    /// The same n-gram repeated past the limit.
    Repetition { ngram: String, repeats: usize },
    /// `max_tokens` ran out inside the reasoning: nothing visible came out.
    ReasoningExhausted,
}

/// Every finding for one answer, in the order above.
pub fn check(expected: &Expected, answer: &Answer, limit: RepetitionLimit) -> Vec<Finding> {
    let mut findings = Vec::new();
    let visible = !answer.text.trim().is_empty() || !answer.tool_calls.is_empty();
    if !visible {
        if answer.hit_max_tokens && answer.reasoning_tokens > 0 {
            findings.push(Finding::ReasoningExhausted);
        } else {
            findings.push(Finding::Empty);
        }
    }
    // An answer cut at the client's own `max_tokens` is incomplete by request: its JSON and its
    // last call's arguments are not judged.
    if expected.json
        && !answer.hit_max_tokens
        && !answer.text.trim().is_empty()
        && answer.tool_calls.is_empty()
    {
        match serde_json::from_str::<Value>(strip_fence(answer.text)) {
            Err(e) => findings.push(Finding::InvalidJson(e.to_string())),
            Ok(value) => {
                let schema = expected
                    .schema
                    .and_then(|s| serde_json::from_str::<Value>(s).ok());
                if let Some((path, reason)) = schema.and_then(|s| schema::violation(&s, &value)) {
                    findings.push(Finding::SchemaViolation { path, reason });
                }
            }
        }
    }
    for (name, arguments) in &answer.tool_calls {
        let Some((_, parameters)) = expected.tools.iter().find(|(t, _)| t == name) else {
            findings.push(Finding::UnofferedTool {
                tool: (*name).to_owned(),
            });
            continue;
        };
        if answer.hit_max_tokens {
            continue;
        }
        let arguments = if arguments.trim().is_empty() {
            "{}"
        } else {
            arguments
        };
        match serde_json::from_str::<Value>(arguments) {
            Ok(value @ Value::Object(_)) => {
                let schema = serde_json::from_str::<Value>(parameters).ok();
                if let Some((path, reason)) = schema.and_then(|s| schema::violation(&s, &value)) {
                    findings.push(Finding::ToolArgumentsViolateSchema {
                        tool: (*name).to_owned(),
                        path,
                        reason,
                    });
                }
            }
            _ => findings.push(Finding::InvalidToolArguments {
                tool: (*name).to_owned(),
            }),
        }
    }
    // Degenerate: one n-gram past the limit, and its repeats cover half the answer or more (a
    // long document with some boilerplate is not a loop).
    if let Some((ngram, repeats, tokens)) = most_repeated(answer.text, limit.ngram)
        && repeats > limit.max_repeats
        && repeats * limit.ngram * 2 >= tokens
    {
        findings.push(Finding::Repetition { ngram, repeats });
    }
    findings
}

/// A JSON answer wrapped in a Markdown code fence, as models often write it.
fn strip_fence(text: &str) -> &str {
    let text = text.trim();
    let Some(inner) = text.strip_prefix("```") else {
        return text;
    };
    let inner = inner.strip_prefix("json").unwrap_or(inner);
    inner.strip_suffix("```").unwrap_or(inner).trim()
}

/// Multiplier of the rolling n-gram hash.
const BASE: u64 = 0x0100_0000_01b3;

/// The n-gram (of words, or of characters where the text is written without spaces) that
/// occurs most often, how often (the first such one on a tie), and the text's length in words
/// (characters over four). Runs on every answer a content rule covers, so n-grams are counted
/// by a rolling hash of their tokens' hashes rather than hashed whole at every position.
fn most_repeated(text: &str, words: usize) -> Option<(String, usize, usize)> {
    let split: Vec<&str> = text.split_whitespace().collect();
    // Scripts written without spaces read as a few huge words: count characters instead, four
    // to a word.
    let (tokens, n, separator) = if split.len() * 15 >= text.chars().count() {
        (split, words, " ")
    } else {
        let chars = text
            .char_indices()
            .map(|(i, c)| &text[i..i + c.len_utf8()])
            .filter(|c| !c.trim().is_empty())
            .collect();
        (chars, words * 4, "")
    };
    if n == 0 || tokens.len() < n {
        return None;
    }
    let hashes: Vec<u64> = tokens.iter().map(|t| token_hash(t)).collect();
    let top = BASE.wrapping_pow(u32::try_from(n - 1).ok()?);
    let mut key = hashes[..n]
        .iter()
        .fold(0u64, |k, h| k.wrapping_mul(BASE).wrapping_add(*h));
    // Per n-gram: occurrences, and where it first occurs.
    let mut counts: HashMap<u64, (usize, usize), BuildHasherDefault<Prehashed>> =
        HashMap::with_capacity_and_hasher(tokens.len(), BuildHasherDefault::default());
    let (mut most, mut at) = (0, 0);
    for start in 0..=tokens.len() - n {
        if start > 0 {
            key = key
                .wrapping_sub(hashes[start - 1].wrapping_mul(top))
                .wrapping_mul(BASE)
                .wrapping_add(hashes[start + n - 1]);
        }
        let entry = counts.entry(key).or_insert((0, start));
        entry.0 += 1;
        if entry.0 > most || (entry.0 == most && entry.1 < at) {
            (most, at) = (entry.0, entry.1);
        }
    }
    Some((
        tokens[at..at + n].join(separator),
        most,
        tokens.len() * words / n,
    ))
}

fn token_hash(token: &str) -> u64 {
    // FNV-1a, then a finalizer so that tokens differing in one byte spread over all bits.
    let mut x = token.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    x = (x ^ (x >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 33)
}

/// The keys are hashes already: the map uses them as they are.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> Answer<'_> {
        Answer {
            text,
            ..Answer::default()
        }
    }

    const LIMIT: RepetitionLimit = RepetitionLimit {
        ngram: 8,
        max_repeats: 12,
    };

    #[test]
    fn good_answers_have_no_findings() {
        let plain = "The quick brown fox jumps over the lazy dog. ".repeat(3);
        assert_eq!(check(&Expected::default(), &answer(&plain), LIMIT), vec![]);
        let json = Expected {
            json: true,
            schema: Some(r#"{"type":"object","required":["a"]}"#),
            ..Expected::default()
        };
        assert_eq!(check(&json, &answer(r#"{"a": 1}"#), LIMIT), vec![]);
        assert_eq!(
            check(&json, &answer("```json\n{\"a\": 1}\n```"), LIMIT),
            vec![]
        );
        let tools = Expected {
            tools: vec![(
                "get_weather",
                r#"{"type":"object","properties":{"city":{"type":"string"}}}"#,
            )],
            ..Expected::default()
        };
        let call = Answer {
            tool_calls: vec![("get_weather", r#"{"city":"Paris"}"#)],
            ..Answer::default()
        };
        assert_eq!(check(&tools, &call, LIMIT), vec![]);
    }

    #[test]
    fn each_failure_is_found() {
        assert_eq!(
            check(&Expected::default(), &answer("  "), LIMIT),
            vec![Finding::Empty]
        );
        let exhausted = Answer {
            hit_max_tokens: true,
            reasoning_tokens: 900,
            ..Answer::default()
        };
        assert_eq!(
            check(&Expected::default(), &exhausted, LIMIT),
            vec![Finding::ReasoningExhausted]
        );
        let json = Expected {
            json: true,
            schema: Some(r#"{"type":"object","required":["a"]}"#),
            ..Expected::default()
        };
        assert!(matches!(
            check(&json, &answer("{\"a\": "), LIMIT)[..],
            [Finding::InvalidJson(_)]
        ));
        assert_eq!(
            check(&json, &answer(r#"{"b": 1}"#), LIMIT),
            vec![Finding::SchemaViolation {
                path: "/".to_owned(),
                reason: "missing required property \"a\"".to_owned()
            }]
        );
        let tools = Expected {
            tools: vec![(
                "get_weather",
                r#"{"type":"object","properties":{"city":{"type":"string"}}}"#,
            )],
            ..Expected::default()
        };
        let calls = Answer {
            tool_calls: vec![
                ("get_weather", r#"{"city": 5}"#),
                ("get_weather", "{\"city\": \"Par"),
                ("launch", "{}"),
            ],
            ..Answer::default()
        };
        assert_eq!(
            check(&tools, &calls, LIMIT),
            vec![
                Finding::ToolArgumentsViolateSchema {
                    tool: "get_weather".to_owned(),
                    path: "/city".to_owned(),
                    reason: "expected type \"string\"".to_owned()
                },
                Finding::InvalidToolArguments {
                    tool: "get_weather".to_owned()
                },
                Finding::UnofferedTool {
                    tool: "launch".to_owned()
                },
            ]
        );
    }

    #[test]
    fn an_answer_cut_at_max_tokens_is_not_judged_on_its_json() {
        let json = Expected {
            json: true,
            tools: vec![("f", r#"{"type":"object"}"#)],
            ..Expected::default()
        };
        let cut = Answer {
            text: "{\"a\": [1, 2",
            hit_max_tokens: true,
            ..Answer::default()
        };
        assert_eq!(check(&json, &cut, LIMIT), vec![]);
        let cut_call = Answer {
            tool_calls: vec![("f", "{\"a\": "), ("g", "{}")],
            hit_max_tokens: true,
            ..Answer::default()
        };
        assert_eq!(
            check(&json, &cut_call, LIMIT),
            vec![Finding::UnofferedTool {
                tool: "g".to_owned()
            }]
        );
    }

    #[test]
    fn degenerate_repetition_is_found_in_words_and_in_characters() {
        let looped = format!(
            "Sure. {}",
            "I will now answer the question about the weather. ".repeat(20)
        );
        let findings = check(&Expected::default(), &answer(&looped), LIMIT);
        assert!(
            matches!(&findings[..], [Finding::Repetition { repeats, .. }] if *repeats >= 19),
            "{findings:?}"
        );
        let cjk = "我们来回答这个问题。".repeat(30);
        assert!(matches!(
            &check(&Expected::default(), &answer(&cjk), LIMIT)[..],
            [Finding::Repetition { .. }]
        ));
        // A phrase repeated a few times is fine; so is a long text with some boilerplate.
        let fine = "The answer is yes. ".repeat(5) + &"Varied words follow here now. ".repeat(2);
        assert_eq!(check(&Expected::default(), &answer(&fine), LIMIT), vec![]);
        let words: Vec<String> = (0..2000).map(|i| format!("w{i}")).collect();
        let document = format!(
            "{} {}",
            "see the notes at the end of this page ".repeat(15),
            words.join(" ")
        );
        assert_eq!(
            check(&Expected::default(), &answer(&document), LIMIT),
            vec![]
        );
    }
}
