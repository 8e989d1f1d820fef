//! The answer: what the mock outputs (thinking, text, tool calls), how it is cut into stream
//! chunks, and its exact token counts as the real API reports them (so the gateway's metering
//! can be checked against the mock's usage). Every protocol renders the same answer.

use serde_json::Value;

use crate::tokens::Encoding;

/// The encoding behind every count the mock reports (that of the current GPT models).
pub(crate) const ENCODING: Encoding = Encoding::O200kBase;

/// Text released in stream chunks: the whole, and where each chunk ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunked {
    text: String,
    /// End offset of each chunk in `text` (chunks may be empty when padding).
    ends: Vec<usize>,
}

impl Chunked {
    /// Split like a model streams words: see [`split`].
    pub fn words(text: String, chunks: Option<usize>) -> Self {
        Chunked {
            ends: split(&text, chunks),
            text,
        }
    }

    fn none() -> Self {
        Chunked {
            text: String::new(),
            ends: Vec::new(),
        }
    }

    /// Split into pieces of about `size` bytes, each ending on a char boundary.
    fn bytes(text: String, size: usize) -> Self {
        let mut ends = Vec::with_capacity(text.len() / size + 1);
        let mut end = 0;
        while end < text.len() {
            end = (end + size).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            ends.push(end);
        }
        Chunked { text, ends }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The chunks in order; concatenated they give back the text.
    pub fn pieces(&self) -> impl ExactSizeIterator<Item = &str> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let piece = &self.text[start..end];
            start = end;
            piece
        })
    }
}

/// Bytes per streamed piece of a tool call's arguments: small enough that every call arrives
/// in several pieces a client must join.
const ARGUMENT_PIECE_BYTES: usize = 8;

/// A call the model makes to one of the client's tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ToolCall {
    pub name: String,
    /// JSON object text, streamed in pieces of about [`ARGUMENT_PIECE_BYTES`].
    pub arguments: Chunked,
    /// Output tokens the call takes: its name and its arguments.
    tokens: usize,
}

impl ToolCall {
    pub fn new(name: String, arguments: String) -> Self {
        let tokens = ENCODING.count(&name) + ENCODING.count(&arguments);
        ToolCall {
            name,
            arguments: Chunked::bytes(arguments, ARGUMENT_PIECE_BYTES),
            tokens,
        }
    }
}

/// What the model outputs, in order: thinking, text, tool calls; with its exact token counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// Reasoning before the answer; empty when the script has none.
    pub thinking: Chunked,
    pub text: Chunked,
    pub tool_calls: Vec<ToolCall>,
    /// Tokens of `thinking`; part of `completion_tokens`.
    pub reasoning_tokens: usize,
    /// Every output token: thinking, text and tool calls.
    pub completion_tokens: usize,
    /// The output was cut short by the request's max tokens.
    pub cut: bool,
}

/// Why the model stopped, before any protocol names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// A natural end.
    End,
    /// Cut by the request's max tokens.
    MaxTokens,
    /// Waiting for the results of its tool calls.
    ToolCalls,
}

impl Answer {
    /// A text-only answer.
    #[cfg(test)]
    pub fn new(text: String, chunks: Option<usize>) -> Self {
        Answer::with(String::new(), text, Vec::new(), chunks)
    }

    /// Thinking and text are chunked alike: per word, or into `chunks` chunks each.
    pub fn with(
        thinking: String,
        text: String,
        tool_calls: Vec<ToolCall>,
        chunks: Option<usize>,
    ) -> Self {
        let reasoning_tokens = ENCODING.count(&thinking);
        let completion_tokens = reasoning_tokens
            + ENCODING.count(&text)
            + tool_calls.iter().map(|c| c.tokens).sum::<usize>();
        // No thinking, or no text before tool calls, is no chunks rather than empty padding.
        let thinking = if thinking.is_empty() {
            Chunked::none()
        } else {
            Chunked::words(thinking, chunks)
        };
        let text = if text.is_empty() && !tool_calls.is_empty() {
            Chunked::none()
        } else {
            Chunked::words(text, chunks)
        };
        Answer {
            thinking,
            text,
            tool_calls,
            reasoning_tokens,
            completion_tokens,
            cut: false,
        }
    }

    pub fn stop(&self) -> Stop {
        if self.cut {
            Stop::MaxTokens
        } else if self.tool_calls.is_empty() {
            Stop::End
        } else {
            Stop::ToolCalls
        }
    }

    /// The answer cut to at most `max_tokens`, or `None` when it already fits. Thinking and
    /// text are cut like a model running out of tokens mid-word; a tool call that does not
    /// fit whole is left out, with everything after it.
    pub fn limited(&self, max_tokens: usize, chunks: Option<usize>) -> Option<Answer> {
        if self.completion_tokens <= max_tokens {
            return None;
        }
        let mut budget = max_tokens;
        let mut fits = true;
        let mut take = |text: &str| -> String {
            if !fits {
                return String::new();
            }
            let end = longest_prefix_within(text, budget);
            fits = end == text.len();
            budget -= ENCODING.count(&text[..end]);
            text[..end].to_owned()
        };
        let thinking = take(self.thinking.as_str());
        let text = take(self.text.as_str());
        let mut tool_calls = Vec::new();
        if fits {
            for call in &self.tool_calls {
                if call.tokens > budget {
                    break;
                }
                budget -= call.tokens;
                tool_calls.push(call.clone());
            }
        }
        Some(Answer {
            cut: true,
            ..Answer::with(thinking, text, tool_calls, chunks)
        })
    }
}

/// Token usage of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub prompt: usize,
    /// The part of `prompt` read from the provider's prompt cache.
    pub cached: usize,
    pub completion: usize,
    /// The part of `completion` spent thinking.
    pub reasoning: usize,
}

/// The default reply: quotes the last user message so tests can tell answers apart.
pub(crate) fn default_reply(messages: &[Value]) -> String {
    let said = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| message_text(m.get("content").unwrap_or(&Value::Null)))
        .unwrap_or_default();
    if said.trim().is_empty() {
        "Hello! How can I help you today?".to_owned()
    } else {
        format!("Hello! You said: {said}.")
    }
}

/// Text of a message `content`: a string, or the `text` parts of a content-part array.
fn message_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Chunk end offsets: one chunk per word like a real model (`chunks: None`), or exactly `n`
/// chunks grouping words (or characters, when there are fewer words), padded with empty ones.
fn split(text: &str, chunks: Option<usize>) -> Vec<usize> {
    let words = word_ends(text);
    let Some(n) = chunks else { return words };
    let units = if words.len() >= n {
        words
    } else {
        text.char_indices().map(|(i, c)| i + c.len_utf8()).collect()
    };
    if units.len() < n {
        let mut ends = units;
        ends.resize(n, text.len());
        return ends;
    }
    (1..=n).map(|i| units[i * units.len() / n - 1]).collect()
}

/// Word ends, each word keeping its leading whitespace (" world"), as tokenizers emit them.
fn word_ends(text: &str) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut prev_space = true;
    for (i, c) in text.char_indices() {
        let space = c.is_whitespace();
        if space && !prev_space {
            ends.push(i);
        }
        prev_space = space;
    }
    if !text.is_empty() {
        ends.push(text.len());
    }
    ends
}

/// The longest prefix of `text` holding at most `max` tokens: whole words first, then
/// characters of the word that crosses the limit.
fn longest_prefix_within(text: &str, max: usize) -> usize {
    let fits = |end: usize| ENCODING.count(&text[..end]) <= max;
    let mut bounds = vec![0];
    bounds.extend(word_ends(text));
    let word = last_fitting(&bounds, fits);
    let Some(&next) = bounds.get(word + 1) else {
        return bounds[word];
    };
    let mut chars: Vec<usize> = text[bounds[word]..next]
        .char_indices()
        .map(|(i, _)| bounds[word] + i)
        .collect();
    chars.push(next);
    chars[last_fitting(&chars, fits)]
}

/// Index of the last offset in `offsets` that fits, given that `offsets[0]` always does and
/// fitting is monotonic (a longer prefix never has fewer tokens).
fn last_fitting(offsets: &[usize], fits: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, offsets.len() - 1);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(offsets[mid]) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pieces(text: &str, chunks: Option<usize>) -> Vec<String> {
        Chunked::words(text.to_owned(), chunks)
            .pieces()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn default_split_is_per_word_with_leading_space() {
        assert_eq!(
            pieces("Hello! You said: hi.", None),
            ["Hello!", " You", " said:", " hi."]
        );
        assert_eq!(pieces("a\n\nb  c", None), ["a", "\n\nb", "  c"]);
        assert_eq!(pieces(" lead", None), [" lead"]);
        assert!(pieces("", None).is_empty());
    }

    #[test]
    fn explicit_chunk_count_is_exact() {
        let text = "one two three four five six seven";
        for n in 1..=40 {
            let p = pieces(text, Some(n));
            assert_eq!(p.len(), n, "n={n}");
            assert_eq!(p.concat(), text);
        }
        assert_eq!(
            pieces("one two three four", Some(2)),
            ["one two", " three four"]
        );
        assert_eq!(pieces("héllo", Some(5)), ["h", "é", "l", "l", "o"]);
        assert_eq!(pieces("ab", Some(3)), ["a", "b", ""]);
    }

    #[test]
    fn completion_tokens_are_o200k_counts() {
        let answer = Answer::new("Hello! You said: the quick brown fox.".into(), None);
        assert_eq!(
            answer.completion_tokens,
            ENCODING.count(answer.text.as_str())
        );
        assert!(answer.completion_tokens >= 8);
    }

    #[test]
    fn limited_cuts_to_exactly_max_tokens_for_plain_words() {
        let answer = Answer::new("alpha beta gamma delta epsilon zeta eta theta".into(), None);
        assert!(answer.limited(answer.completion_tokens, None).is_none());
        for max in 0..answer.completion_tokens {
            let cut = answer.limited(max, None).unwrap();
            assert!(cut.cut);
            let (full, text) = (answer.text.as_str(), cut.text.as_str());
            assert!(full.starts_with(text));
            assert_eq!(cut.completion_tokens, ENCODING.count(text));
            assert!(
                cut.completion_tokens <= max,
                "max={max} got {}",
                cut.completion_tokens
            );
            // One more character would exceed the limit, so the cut is as long as allowed.
            if let Some(c) = full[text.len()..].chars().next() {
                let longer = &full[..text.len() + c.len_utf8()];
                assert!(
                    ENCODING.count(longer) > max,
                    "max={max}: {longer:?} also fits"
                );
            }
        }
    }

    #[test]
    fn limited_splits_inside_a_long_word() {
        let answer = Answer::new("Supercalifragilisticexpialidocious".into(), Some(3));
        let cut = answer.limited(2, Some(3)).unwrap();
        assert!(!cut.text.is_empty() && cut.text.as_str().len() < answer.text.as_str().len());
        assert_eq!(cut.completion_tokens, 2);
        assert_eq!(cut.text.pieces().len(), 3);
    }

    #[test]
    fn arguments_stream_in_small_pieces_on_char_boundaries() {
        let call = ToolCall::new("f".into(), r#"{"city":"Zürich","days":3}"#.into());
        let pieces: Vec<&str> = call.arguments.pieces().collect();
        assert_eq!(pieces.concat(), call.arguments.as_str());
        assert!(pieces.len() >= 3, "{pieces:?}");
        assert!(
            pieces
                .iter()
                .all(|p| (1..=ARGUMENT_PIECE_BYTES + 3).contains(&p.len()))
        );
    }

    #[test]
    fn thinking_and_tool_calls_count_as_completion_tokens() {
        let call = ToolCall::new("get_weather".into(), r#"{"city":"Paris"}"#.into());
        let answer = Answer::with("Let me think.".into(), String::new(), vec![call], Some(4));
        assert_eq!(answer.reasoning_tokens, ENCODING.count("Let me think."));
        assert_eq!(
            answer.completion_tokens,
            answer.reasoning_tokens
                + ENCODING.count("get_weather")
                + ENCODING.count(r#"{"city":"Paris"}"#)
        );
        assert_eq!(answer.thinking.pieces().len(), 4);
        // No text before tool calls: no chunks, not four empty ones.
        assert_eq!(answer.text.pieces().len(), 0);
        assert_eq!(answer.stop(), Stop::ToolCalls);
        assert_eq!(
            Answer::with(String::new(), "hi".into(), Vec::new(), None)
                .thinking
                .pieces()
                .len(),
            0
        );
    }

    #[test]
    fn limited_spends_the_budget_in_order() {
        let calls = vec![
            ToolCall::new("a".into(), r#"{"x":1}"#.into()),
            ToolCall::new("b".into(), r#"{"y":2}"#.into()),
        ];
        let answer = Answer::with("think hard now".into(), "so the answer".into(), calls, None);
        let thinking = answer.reasoning_tokens;
        let text = ENCODING.count("so the answer");

        let cut = answer.limited(thinking - 1, None).unwrap();
        assert!(cut.thinking.as_str().len() < "think hard now".len());
        assert!(cut.text.is_empty() && cut.tool_calls.is_empty());
        assert_eq!(cut.stop(), Stop::MaxTokens);

        let cut = answer.limited(thinking + 1, None).unwrap();
        assert_eq!(cut.thinking.as_str(), "think hard now");
        assert_eq!(cut.completion_tokens, thinking + 1);
        assert!(cut.tool_calls.is_empty());

        let first_call = answer.tool_calls[0].tokens;
        let cut = answer.limited(thinking + text + first_call, None).unwrap();
        assert_eq!(cut.text.as_str(), "so the answer");
        assert_eq!(cut.tool_calls.len(), 1);
        assert_eq!(cut.completion_tokens, thinking + text + first_call);
        assert_eq!(cut.stop(), Stop::MaxTokens);
        assert!(answer.limited(answer.completion_tokens, None).is_none());
    }

    #[test]
    fn default_reply_quotes_last_user_message() {
        let msgs = vec![
            json!({"role": "system", "content": "be nice"}),
            json!({"role": "user", "content": "first"}),
            json!({"role": "assistant", "content": "ok"}),
            json!({"role": "user", "content": [
                {"type": "text", "text": "look at"},
                {"type": "image_url", "image_url": {"url": "x"}},
                {"type": "text", "text": "this"}
            ]}),
        ];
        assert_eq!(default_reply(&msgs), "Hello! You said: look at this.");
        assert_eq!(default_reply(&msgs[..2]), "Hello! You said: first.");
        assert_eq!(
            default_reply(&msgs[..1]),
            "Hello! How can I help you today?"
        );
    }
}
