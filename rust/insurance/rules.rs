//! Insurance rules as data, and their verdict on one finished request. A rule names a trigger,
//! the requests it covers and what it pays; the verdict is computed where the request ends, so
//! it travels with the request's usage event and the control plane only books it (applying the
//! per-account daily cap, which needs the ledger).

use serde::{Deserialize, Serialize};

use super::content::{Finding, RepetitionLimit};
use crate::snapshot::model_allowed;

/// What makes a request claimable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// Time to first token above `ttft_ms`, or above `p50_multiple` × the model's recent p50
    /// (whichever is set; with both, either one).
    HighLatency {
        #[serde(default)]
        ttft_ms: Option<u64>,
        #[serde(default)]
        p50_multiple: Option<f64>,
    },
    /// Output tokens per second after the first token below `min_tokens_per_second`, judged only
    /// once `min_output_tokens` were produced.
    LowThroughput {
        min_tokens_per_second: f64,
        min_output_tokens: u64,
    },
    /// The provider failed or cut the stream after its first byte.
    FailedStream,
    /// An objective check of the answer failed (see `content::check`).
    UnsatisfactoryContent {
        #[serde(default = "default_ngram")]
        repetition_ngram: usize,
        #[serde(default = "default_repeats")]
        repetition_max: usize,
    },
}

fn default_ngram() -> usize {
    RepetitionLimit::default().ngram
}

fn default_repeats() -> usize {
    RepetitionLimit::default().max_repeats
}

impl Trigger {
    pub fn name(&self) -> &'static str {
        match self {
            Trigger::HighLatency { .. } => "high_latency",
            Trigger::LowThroughput { .. } => "low_throughput",
            Trigger::FailedStream => "failed_stream",
            Trigger::UnsatisfactoryContent { .. } => "unsatisfactory_content",
        }
    }

    /// The repetition limit of a content rule (the default for other triggers).
    pub fn repetition_limit(&self) -> RepetitionLimit {
        match self {
            Trigger::UnsatisfactoryContent {
                repetition_ngram,
                repetition_max,
            } => RepetitionLimit {
                ngram: *repetition_ngram,
                max_repeats: *repetition_max,
            },
            _ => RepetitionLimit::default(),
        }
    }
}

/// Which requests a rule covers; an empty list covers everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scope {
    /// Model slugs, `author/*` wildcards allowed.
    pub models: Vec<String>,
    pub channels: Vec<String>,
    pub accounts: Vec<String>,
}

impl Scope {
    fn covers(&self, request: &Outcome<'_>) -> bool {
        model_allowed(&self.models, request.model)
            && (self.channels.is_empty()
                || request
                    .channel
                    .is_some_and(|c| self.channels.iter().any(|x| x == c)))
            && (self.accounts.is_empty() || self.accounts.iter().any(|a| a == request.account))
    }
}

/// What a rule pays: a share of the request's cost, within caps. Money in nano-USD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payout {
    /// Share of the request's cost, in basis points (10 000 = all of it).
    pub share_bp: u32,
    /// At most this much per request.
    #[serde(default)]
    pub max_per_request: Option<u64>,
    /// Requests that cost less are not covered.
    #[serde(default)]
    pub min_cost: u64,
    /// At most this much per account and day (applied by the control plane when it books).
    #[serde(default)]
    pub max_per_account_day: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub trigger: Trigger,
    #[serde(default)]
    pub scope: Scope,
    pub payout: Payout,
}

/// What is known about a finished request.
#[derive(Debug, Clone, Default)]
pub struct Outcome<'a> {
    pub model: &'a str,
    pub channel: Option<&'a str>,
    pub account: &'a str,
    pub cost: u64,
    pub ttft_ms: Option<f64>,
    /// The model's recent time-to-first-token p50, as the snapshot publishes it.
    pub model_ttft_p50_ms: Option<f64>,
    pub output_tokens: u64,
    pub tokens_per_second: Option<f64>,
    /// The stream broke after its first byte (the provider failed or cut it).
    pub failed_stream: bool,
    /// The client went away: nothing it did not wait for is claimable.
    pub cancelled: bool,
    /// What the content checks found (run with the rule's repetition limit).
    pub findings: &'a [Finding],
}

/// One rule's finding on one request: what triggered, why, and the credit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub rule_id: String,
    pub trigger: &'static str,
    pub reason: String,
    pub credit: u64,
}

/// The verdicts of every rule that covers the request and triggered. Credits together never
/// exceed what the request cost.
pub fn evaluate(rules: &[Rule], request: &Outcome<'_>) -> Vec<Verdict> {
    let mut verdicts = Vec::new();
    if request.cancelled {
        return verdicts;
    }
    let mut left = request.cost;
    for rule in rules {
        if !rule.scope.covers(request) || request.cost < rule.payout.min_cost.max(1) {
            continue;
        }
        let Some(reason) = triggered(&rule.trigger, request) else {
            continue;
        };
        let share = u128::from(request.cost) * u128::from(rule.payout.share_bp) / 10_000;
        let credit = (share as u64)
            .min(rule.payout.max_per_request.unwrap_or(u64::MAX))
            .min(left);
        if credit == 0 {
            continue;
        }
        left -= credit;
        verdicts.push(Verdict {
            rule_id: rule.id.clone(),
            trigger: rule.trigger.name(),
            reason,
            credit,
        });
    }
    verdicts
}

/// Why the trigger fired, or None.
fn triggered(trigger: &Trigger, request: &Outcome<'_>) -> Option<String> {
    match trigger {
        Trigger::HighLatency {
            ttft_ms,
            p50_multiple,
        } => {
            let ttft = request.ttft_ms?;
            if let Some(limit) = ttft_ms.map(|l| l as f64).filter(|l| ttft > *l) {
                return Some(format!(
                    "time to first token {ttft:.0} ms, above {limit:.0} ms"
                ));
            }
            let p50 = request.model_ttft_p50_ms.filter(|p| *p > 0.0)?;
            let multiple = p50_multiple.filter(|m| ttft > p50 * m)?;
            Some(format!(
                "time to first token {ttft:.0} ms, above {multiple}× the model's p50 of {p50:.0} ms"
            ))
        }
        Trigger::LowThroughput {
            min_tokens_per_second,
            min_output_tokens,
        } => {
            let tps = request.tokens_per_second?;
            (request.output_tokens >= *min_output_tokens && tps < *min_tokens_per_second).then(
                || {
                    format!(
                        "{tps:.1} tokens/s over {} tokens, below {min_tokens_per_second}",
                        request.output_tokens
                    )
                },
            )
        }
        Trigger::FailedStream => request
            .failed_stream
            .then(|| "the stream broke off after it started".to_owned()),
        Trigger::UnsatisfactoryContent { .. } => request.findings.first().map(describe),
    }
}

fn describe(finding: &Finding) -> String {
    match finding {
        Finding::Empty => "the answer is empty".to_owned(),
        Finding::ReasoningExhausted => {
            "max_tokens ran out in the reasoning: no visible answer".to_owned()
        }
        Finding::InvalidJson(e) => {
            format!("JSON was requested and the answer does not parse ({e})")
        }
        Finding::SchemaViolation { path, reason } => {
            format!("the answer breaks the requested schema at {path}: {reason}")
        }
        Finding::InvalidToolArguments { tool } => {
            format!("the arguments of a call to {tool} are not a JSON object")
        }
        Finding::ToolArgumentsViolateSchema { tool, path, reason } => {
            format!("the arguments of a call to {tool} break its schema at {path}: {reason}")
        }
        Finding::UnofferedTool { tool } => format!("a call to {tool}, which was not offered"),
        Finding::Repetition { ngram, repeats } => {
            format!("degenerate repetition: {ngram:?} {repeats} times")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, trigger: Trigger, share_bp: u32) -> Rule {
        Rule {
            id: id.to_owned(),
            trigger,
            scope: Scope::default(),
            payout: Payout {
                share_bp,
                max_per_request: None,
                min_cost: 0,
                max_per_account_day: None,
            },
        }
    }

    fn outcome() -> Outcome<'static> {
        Outcome {
            model: "openai/gpt-4o",
            channel: Some("gpt-4o@a"),
            account: "team",
            cost: 10_000,
            ttft_ms: Some(400.0),
            model_ttft_p50_ms: Some(350.0),
            output_tokens: 500,
            tokens_per_second: Some(60.0),
            ..Outcome::default()
        }
    }

    #[test]
    fn a_good_request_is_never_credited() {
        let rules = [
            rule(
                "lat",
                Trigger::HighLatency {
                    ttft_ms: Some(10_000),
                    p50_multiple: Some(5.0),
                },
                5_000,
            ),
            rule(
                "tps",
                Trigger::LowThroughput {
                    min_tokens_per_second: 5.0,
                    min_output_tokens: 100,
                },
                5_000,
            ),
            rule("cut", Trigger::FailedStream, 10_000),
            rule(
                "content",
                Trigger::UnsatisfactoryContent {
                    repetition_ngram: 8,
                    repetition_max: 12,
                },
                10_000,
            ),
        ];
        assert_eq!(evaluate(&rules, &outcome()), vec![]);
    }

    #[test]
    fn each_trigger_pays_its_share_within_the_caps() {
        let slow = Outcome {
            ttft_ms: Some(2_000.0),
            ..outcome()
        };
        let latency = rule(
            "lat",
            Trigger::HighLatency {
                ttft_ms: None,
                p50_multiple: Some(5.0),
            },
            5_000,
        );
        let verdicts = evaluate(std::slice::from_ref(&latency), &slow);
        assert_eq!(verdicts.len(), 1);
        assert_eq!(
            (verdicts[0].trigger, verdicts[0].credit),
            ("high_latency", 5_000)
        );
        assert!(
            verdicts[0].reason.contains("5× the model's p50 of 350 ms"),
            "{}",
            verdicts[0].reason
        );

        let sluggish = Outcome {
            tokens_per_second: Some(2.0),
            ..outcome()
        };
        let throughput = rule(
            "tps",
            Trigger::LowThroughput {
                min_tokens_per_second: 5.0,
                min_output_tokens: 100,
            },
            5_000,
        );
        assert_eq!(
            evaluate(std::slice::from_ref(&throughput), &sluggish)[0].credit,
            5_000
        );
        let short = Outcome {
            output_tokens: 50,
            ..sluggish.clone()
        };
        assert_eq!(
            evaluate(std::slice::from_ref(&throughput), &short),
            vec![],
            "too few tokens to judge"
        );

        let cut = Outcome {
            failed_stream: true,
            ..outcome()
        };
        let mut capped = rule("cut", Trigger::FailedStream, 10_000);
        capped.payout.max_per_request = Some(2_500);
        assert_eq!(
            evaluate(std::slice::from_ref(&capped), &cut)[0].credit,
            2_500
        );
        capped.payout.min_cost = 20_000;
        assert_eq!(evaluate(&[capped], &cut), vec![], "below the minimum cost");

        let findings = [Finding::Empty];
        let empty = Outcome {
            findings: &findings,
            ..outcome()
        };
        let content = rule(
            "content",
            Trigger::UnsatisfactoryContent {
                repetition_ngram: 8,
                repetition_max: 12,
            },
            10_000,
        );
        let verdict = &evaluate(&[content], &empty)[0];
        assert_eq!(
            (verdict.trigger, verdict.credit),
            ("unsatisfactory_content", 10_000)
        );
        assert_eq!(verdict.reason, "the answer is empty");
    }

    #[test]
    fn credits_never_exceed_the_cost_and_scope_and_cancellation_hold() {
        let broken = Outcome {
            failed_stream: true,
            ttft_ms: Some(60_000.0),
            ..outcome()
        };
        let rules = [
            rule("cut", Trigger::FailedStream, 10_000),
            rule(
                "lat",
                Trigger::HighLatency {
                    ttft_ms: Some(10_000),
                    p50_multiple: None,
                },
                5_000,
            ),
        ];
        let verdicts = evaluate(&rules, &broken);
        assert_eq!(verdicts.iter().map(|v| v.credit).sum::<u64>(), broken.cost);
        assert_eq!(verdicts.len(), 1, "nothing left to pay for the second rule");

        let mut scoped = rule("cut", Trigger::FailedStream, 10_000);
        scoped.scope.models = vec!["anthropic/*".to_owned()];
        assert_eq!(evaluate(std::slice::from_ref(&scoped), &broken), vec![]);
        scoped.scope.models = vec!["openai/*".to_owned()];
        scoped.scope.accounts = vec!["other".to_owned()];
        assert_eq!(evaluate(std::slice::from_ref(&scoped), &broken), vec![]);

        let left = Outcome {
            cancelled: true,
            ..broken
        };
        assert_eq!(evaluate(&rules, &left), vec![]);
    }

    #[test]
    fn rules_read_from_json() {
        let rule: Rule = serde_json::from_str(
            r#"{"id":"lat","trigger":{"type":"high_latency","p50_multiple":3.0},
                "scope":{"models":["openai/*"]},"payout":{"share_bp":5000,"max_per_request":1000000}}"#,
        )
        .unwrap();
        assert_eq!(rule.trigger.name(), "high_latency");
        assert!(
            serde_json::from_str::<Rule>(
                r#"{"id":"x","trigger":{"type":"vibes"},"payout":{"share_bp":1}}"#
            )
            .is_err()
        );
    }
}
