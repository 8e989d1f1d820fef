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
    /// Time to first token (of a streamed answer) above `ttft_ms` and above `p50_multiple` ×
    /// the model's recent p50; a bound that is not set, or a p50 not known yet, is not checked.
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
    /// A judge model grades a sample of answers for fabricated facts. Judged later by the
    /// control plane, so the engine only samples: it never decides a verdict here.
    Hallucination {
        sample_rate: f64,
        judge_model: String,
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
            Trigger::Hallucination { .. } => "hallucination",
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
    pub fn covers(&self, request: &Outcome<'_>) -> bool {
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
    /// The answer was streamed: only then is its time to first token its own (a JSON answer's
    /// first byte comes once the whole answer is written).
    pub streamed: bool,
    pub ttft_ms: Option<f64>,
    /// The model's recent time-to-first-token p50, as the snapshot publishes it.
    pub model_ttft_p50_ms: Option<f64>,
    pub output_tokens: u64,
    pub tokens_per_second: Option<f64>,
    /// The stream broke after its first byte (the provider failed or cut it).
    pub failed_stream: bool,
    /// The client went away: nothing it did not wait for is claimable.
    pub cancelled: bool,
}

/// One rule's finding on one request: what triggered, why, and the credit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub rule_id: String,
    pub trigger: &'static str,
    pub reason: String,
    /// Nano-USD, before the control plane applies the per-account daily cap.
    #[serde(rename = "credit_nano")]
    pub credit: u64,
}

impl Rule {
    /// Does the rule apply to this request at all (scope and minimum cost)?
    pub fn covers(&self, request: &Outcome<'_>) -> bool {
        self.scope.covers(request) && request.cost >= self.payout.min_cost.max(1)
    }
}

/// The verdicts of every rule that covers the request and triggered. Credits together never
/// exceed what the request cost. `content` runs the content checks with a rule's repetition
/// limit; it is called only for a content rule that covers the request.
pub fn evaluate(
    rules: &[Rule],
    request: &Outcome<'_>,
    content: &mut dyn FnMut(RepetitionLimit) -> Vec<Finding>,
) -> Vec<Verdict> {
    let mut verdicts = Vec::new();
    if request.cancelled {
        return verdicts;
    }
    let mut left = request.cost;
    for rule in rules {
        if !rule.covers(request) {
            continue;
        }
        let Some(reason) = triggered(&rule.trigger, request, content) else {
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
fn triggered(
    trigger: &Trigger,
    request: &Outcome<'_>,
    content: &mut dyn FnMut(RepetitionLimit) -> Vec<Finding>,
) -> Option<String> {
    match trigger {
        Trigger::HighLatency {
            ttft_ms,
            p50_multiple,
        } => {
            let ttft = request.ttft_ms.filter(|_| request.streamed)?;
            let mut reasons = Vec::with_capacity(2);
            if let Some(limit) = ttft_ms {
                if ttft <= *limit as f64 {
                    return None;
                }
                reasons.push(format!("above {limit} ms"));
            }
            let p50 = request.model_ttft_p50_ms.filter(|p| *p > 0.0);
            if let (Some(multiple), Some(p50)) = (p50_multiple, p50) {
                if ttft <= p50 * multiple {
                    return None;
                }
                reasons.push(format!("above {multiple}× the model's p50 of {p50:.0} ms"));
            }
            (!reasons.is_empty()).then(|| {
                format!(
                    "time to first token {ttft:.0} ms, {}",
                    reasons.join(" and ")
                )
            })
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
        Trigger::UnsatisfactoryContent { .. } => {
            content(trigger.repetition_limit()).first().map(describe)
        }
        Trigger::Hallucination { .. } => None,
    }
}

/// The hallucination rules that sample this request for the judge. The draw is a hash of the
/// request id, so a replayed request is sampled the same way and no random source is needed.
pub fn judge_sample<'r>(
    rules: &'r [Rule],
    request: &Outcome<'_>,
    request_id: &str,
) -> Vec<&'r str> {
    if request.cancelled {
        return Vec::new();
    }
    let draw = mix(fnv1a(request_id.as_bytes())) as f64 / u64::MAX as f64;
    rules
        .iter()
        .filter(|r| match r.trigger {
            Trigger::Hallucination { sample_rate, .. } => draw < sample_rate && r.covers(request),
            _ => false,
        })
        .map(|r| r.id.as_str())
        .collect()
}

/// splitmix64's finalizer: FNV alone leaves ids that differ in their last digits close together.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
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

    fn none(_: RepetitionLimit) -> Vec<Finding> {
        Vec::new()
    }

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
            streamed: true,
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
        assert_eq!(evaluate(&rules, &outcome(), &mut none), vec![]);
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
        let verdicts = evaluate(std::slice::from_ref(&latency), &slow, &mut none);
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
            evaluate(std::slice::from_ref(&throughput), &sluggish, &mut none)[0].credit,
            5_000
        );
        let short = Outcome {
            output_tokens: 50,
            ..sluggish.clone()
        };
        assert_eq!(
            evaluate(std::slice::from_ref(&throughput), &short, &mut none),
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
            evaluate(std::slice::from_ref(&capped), &cut, &mut none)[0].credit,
            2_500
        );
        capped.payout.min_cost = 20_000;
        assert_eq!(
            evaluate(&[capped], &cut, &mut none),
            vec![],
            "below the minimum cost"
        );

        let empty = outcome();
        let content = rule(
            "content",
            Trigger::UnsatisfactoryContent {
                repetition_ngram: 8,
                repetition_max: 12,
            },
            10_000,
        );
        let verdict = &evaluate(&[content], &empty, &mut |_| vec![Finding::Empty])[0];
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
        let verdicts = evaluate(&rules, &broken, &mut none);
        assert_eq!(verdicts.iter().map(|v| v.credit).sum::<u64>(), broken.cost);
        assert_eq!(verdicts.len(), 1, "nothing left to pay for the second rule");

        let mut scoped = rule("cut", Trigger::FailedStream, 10_000);
        scoped.scope.models = vec!["anthropic/*".to_owned()];
        assert_eq!(
            evaluate(std::slice::from_ref(&scoped), &broken, &mut none),
            vec![]
        );
        scoped.scope.models = vec!["openai/*".to_owned()];
        scoped.scope.accounts = vec!["other".to_owned()];
        assert_eq!(
            evaluate(std::slice::from_ref(&scoped), &broken, &mut none),
            vec![]
        );

        let left = Outcome {
            cancelled: true,
            ..broken
        };
        assert_eq!(evaluate(&rules, &left, &mut none), vec![]);
    }

    #[test]
    fn latency_bounds_must_all_hold_and_only_streams_have_a_first_token() {
        let both = rule(
            "lat",
            Trigger::HighLatency {
                ttft_ms: Some(5_000),
                p50_multiple: Some(3.0),
            },
            5_000,
        );
        let at = |ttft: f64, p50: Option<f64>, streamed: bool| Outcome {
            ttft_ms: Some(ttft),
            model_ttft_p50_ms: p50,
            streamed,
            ..outcome()
        };
        let fired = |o: &Outcome| !evaluate(std::slice::from_ref(&both), o, &mut none).is_empty();
        assert!(
            !fired(&at(6_000.0, Some(2_500.0), true)),
            "under 3× the p50"
        );
        assert!(
            !fired(&at(4_000.0, Some(500.0), true)),
            "under the absolute bound"
        );
        assert!(fired(&at(6_000.0, Some(1_000.0), true)));
        assert!(
            fired(&at(6_000.0, None, true)),
            "no p50 yet: the absolute bound decides"
        );
        assert!(
            !fired(&at(60_000.0, None, false)),
            "a JSON answer has no first token"
        );
    }

    #[test]
    fn the_judge_samples_by_request_id() {
        let judge = rule(
            "judge",
            Trigger::Hallucination {
                sample_rate: 0.25,
                judge_model: "openai/gpt-4o".to_owned(),
            },
            10_000,
        );
        let rules = [judge];
        assert_eq!(
            evaluate(&rules, &outcome(), &mut none),
            vec![],
            "judged later"
        );
        let sampled = (0..4_000)
            .filter(|i| !judge_sample(&rules, &outcome(), &format!("gen-{i}")).is_empty())
            .count();
        assert!((800..1_200).contains(&sampled), "{sampled} of 4000 at 25%");
        let id = (0..100)
            .map(|i| format!("gen-{i}"))
            .find(|id| !judge_sample(&rules, &outcome(), id).is_empty())
            .unwrap();
        assert_eq!(
            judge_sample(&rules, &outcome(), &id),
            vec!["judge"],
            "same draw again"
        );
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
