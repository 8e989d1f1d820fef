//! Insurance where a request ends: the snapshot's rules judged on what the request measured
//! and what the answer said, so the verdicts leave with the usage event and the client is told
//! in the response (a header, or the stream's last words).

use serde::Serialize;
use serde_json::value::RawValue;

use super::request::Inbound;
use super::usage::UsageEvent;
use crate::insurance::content::{self, Answer, Expected, Finding, RepetitionLimit};
use crate::insurance::rules::{self, Outcome, Rule, Verdict};
use crate::relay::{Observed, ToolCall};
use crate::translate::OutputFormat;

/// Response header naming each claim: `<trigger>;credit=<USD>;rule=<id>`, comma-separated.
pub const INSURANCE_HEADER: &str = "x-muxgate-insurance";

/// What the rules decided about one request.
#[derive(Debug, Default)]
pub struct Assessment {
    pub verdicts: Vec<Verdict>,
    /// Hallucination rules that sampled the request for the judge.
    pub judge: Vec<String>,
}

/// Everything about the request the rules look at, besides its usage event.
pub struct Facts<'a> {
    pub rules: &'a [Rule],
    pub req: &'a Inbound<'a>,
    pub observed: Option<&'a Observed>,
    pub model_ttft_p50_ms: Option<f64>,
    /// The account keeps cases with their content (and only then can the judge read them).
    pub retain_content: bool,
}

/// Judge the request. Cheap when nothing applies: rules out of scope cost a comparison, and
/// the request is read for its expectations only when the answer has something to check
/// against them.
pub fn assess(facts: &Facts<'_>, event: &UsageEvent<'_>) -> Assessment {
    if facts.rules.is_empty() {
        return Assessment::default();
    }
    let outcome = Outcome {
        model: event.model,
        channel: event.channel_id,
        account: event.account_id,
        cost: u64::try_from(event.cost_nano_usd).unwrap_or(0),
        streamed: event.stream,
        ttft_ms: event.ttft_ms,
        model_ttft_p50_ms: facts.model_ttft_p50_ms,
        output_tokens: event.completion_tokens,
        tokens_per_second: event.output_tokens_per_second,
        // The stream broke after it began (failures before it are failed over, and unbilled).
        failed_stream: event.stream && event.status == "failed" && facts.observed.is_some(),
        cancelled: event.cancelled,
    };
    let mut checked: Option<(RepetitionLimit, Vec<Finding>)> = None;
    let mut content = |limit: RepetitionLimit| -> Vec<Finding> {
        if let Some((seen_limit, findings)) = &checked
            && seen_limit.ngram == limit.ngram
            && seen_limit.max_repeats == limit.max_repeats
        {
            return findings.clone();
        }
        let findings = check_content(facts, event, limit);
        checked = Some((limit, findings.clone()));
        findings
    };
    let verdicts = rules::evaluate(facts.rules, &outcome, &mut content);
    let judge = if facts.retain_content && event.status == "ok" {
        rules::judge_sample(facts.rules, &outcome, event.request_id)
            .into_iter()
            .map(str::to_owned)
            .collect()
    } else {
        Vec::new()
    };
    Assessment { verdicts, judge }
}

/// The content checks, on a complete answer only: a broken stream is `failed_stream`'s, and an
/// answer a safety filter withheld is not a broken one.
fn check_content(
    facts: &Facts<'_>,
    event: &UsageEvent<'_>,
    limit: RepetitionLimit,
) -> Vec<Finding> {
    let Some(seen) = facts.observed else {
        return Vec::new();
    };
    if event.status != "ok" || event.finish_reason == Some("content_filter") {
        return Vec::new();
    }
    let reads_request = !seen.tool_calls.is_empty()
        || (!seen.text.trim().is_empty() && facts.req.names_output_format());
    let expectations = if reads_request {
        facts.req.expectations()
    } else {
        super::request::Expectations::default()
    };
    let expected = Expected {
        json: expectations.output.is_some(),
        schema: match &expectations.output {
            Some(OutputFormat::JsonSchema { schema, .. }) => Some(schema.as_str()),
            _ => None,
        },
        tools: expectations
            .tools
            .iter()
            .map(|t| (t.name.as_str(), t.parameters.as_str()))
            .collect(),
    };
    let answer = Answer {
        text: &seen.text,
        tool_calls: seen
            .tool_calls
            .iter()
            .map(|c| (c.name.as_str(), c.arguments.as_str()))
            .collect(),
        hit_max_tokens: event.finish_reason == Some("length"),
        reasoning_tokens: event
            .reasoning_tokens
            .max(u64::from(!seen.reasoning.is_empty())),
    };
    content::check(&expected, &answer, limit)
}

/// A retained case: the request and the answer as the client saw them. The control plane
/// redacts it before it is stored.
#[derive(Debug, Serialize)]
pub struct Case<'a> {
    pub surface: &'static str,
    pub request: &'a RawValue,
    pub answer: CaseAnswer<'a>,
    pub judge_rules: &'a [String],
}

#[derive(Debug, Serialize)]
pub struct CaseAnswer<'a> {
    pub text: &'a str,
    pub reasoning: &'a str,
    pub tool_calls: &'a [ToolCall],
}

/// The case to send with the usage event: for accounts that retain content, when a rule
/// triggered or the judge will read the answer.
pub fn case<'a>(facts: &Facts<'a>, claimed: bool, judge: &'a [String]) -> Option<Case<'a>> {
    if !facts.retain_content || (!claimed && judge.is_empty()) {
        return None;
    }
    let request: &RawValue = serde_json::from_slice(facts.req.body()).ok()?;
    let (text, reasoning, tool_calls) = facts.observed.map_or(("", "", &[][..]), |seen| {
        (
            seen.text.as_str(),
            seen.reasoning.as_str(),
            &seen.tool_calls[..],
        )
    });
    Some(Case {
        surface: facts.req.surface.name(),
        request,
        answer: CaseAnswer {
            text,
            reasoning,
            tool_calls,
        },
        judge_rules: judge,
    })
}

/// The header value (and stream comment) naming each claim.
pub fn describe(verdicts: &[Verdict]) -> String {
    verdicts
        .iter()
        .map(|v| format!("{};credit={};rule={}", v.trigger, usd(v.credit), v.rule_id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `insurance` object written beside a stream's `usage`: the total credit and each claim.
pub fn usage_object(verdicts: &[Verdict]) -> String {
    #[derive(Serialize)]
    struct Claim<'a> {
        rule: &'a str,
        trigger: &'a str,
        reason: &'a str,
        credit: &'a RawValue,
    }
    let amounts: Vec<String> = verdicts.iter().map(|v| usd(v.credit)).collect();
    let total = usd(verdicts.iter().map(|v| v.credit).sum());
    let claims: Vec<Claim> = verdicts
        .iter()
        .zip(&amounts)
        .map(|(v, amount)| Claim {
            rule: &v.rule_id,
            trigger: v.trigger,
            reason: &v.reason,
            credit: raw_number(amount),
        })
        .collect();
    format!(
        r#"{{"credit":{total},"claims":{}}}"#,
        serde_json::to_string(&claims).expect("claims serialize")
    )
}

fn raw_number(text: &str) -> &RawValue {
    serde_json::from_str(text).expect("a decimal is a JSON number")
}

/// Nano-USD as an exact decimal USD amount (`0.000123`), as money is written on the wire.
pub fn usd(nano: u64) -> String {
    let whole = nano / 1_000_000_000;
    let frac = nano % 1_000_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:09}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_decimals() {
        assert_eq!(usd(0), "0");
        assert_eq!(usd(1), "0.000000001");
        assert_eq!(usd(123_000), "0.000123");
        assert_eq!(usd(2_500_000_000), "2.5");
    }

    #[test]
    fn claims_are_described_for_headers_and_streams() {
        let verdicts = vec![
            Verdict {
                rule_id: "cut".to_owned(),
                trigger: "failed_stream",
                reason: "the stream broke off".to_owned(),
                credit: 1_500,
            },
            Verdict {
                rule_id: "lat".to_owned(),
                trigger: "high_latency",
                reason: "slow \"start\"".to_owned(),
                credit: 500,
            },
        ];
        assert_eq!(
            describe(&verdicts),
            "failed_stream;credit=0.0000015;rule=cut, high_latency;credit=0.0000005;rule=lat"
        );
        let object: serde_json::Value = serde_json::from_str(&usage_object(&verdicts)).unwrap();
        assert_eq!(object["credit"], serde_json::json!(0.000_002));
        assert_eq!(object["claims"][1]["reason"], "slow \"start\"");
        assert_eq!(
            object["claims"][0]["credit"],
            serde_json::json!(0.000_001_5)
        );
    }
}
