//! The answer text: what the mock says, how it is cut into stream chunks, and its exact
//! token count as the real API reports it (so the gateway's metering can be checked against the mock's usage).

use serde_json::Value;

use crate::tokens::Encoding;

/// The encoding behind every count the mock reports (that of the current GPT models).
pub(crate) const ENCODING: Encoding = Encoding::O200kBase;

/// An answer split into stream chunks, with its completion token count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub text: String,
    /// End offset of each content chunk in `text` (chunks may be empty when padding).
    ends: Vec<usize>,
    pub completion_tokens: usize,
    /// The text was cut short by `max_tokens` / `max_completion_tokens`.
    pub cut: bool,
}

impl Answer {
    pub fn new(text: String, chunks: Option<usize>) -> Self {
        let ends = split(&text, chunks);
        let completion_tokens = ENCODING.count(&text);
        Answer {
            text,
            ends,
            completion_tokens,
            cut: false,
        }
    }

    /// The content chunks in order; concatenated they give back `text`.
    pub fn pieces(&self) -> impl ExactSizeIterator<Item = &str> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let piece = &self.text[start..end];
            start = end;
            piece
        })
    }

    /// The answer cut to at most `max_tokens`, or `None` when it already fits.
    pub fn limited(&self, max_tokens: usize, chunks: Option<usize>) -> Option<Answer> {
        if self.completion_tokens <= max_tokens {
            return None;
        }
        let end = longest_prefix_within(&self.text, max_tokens);
        let text = self.text[..end].to_owned();
        let completion_tokens = ENCODING.count(&text);
        Some(Answer {
            ends: split(&text, chunks),
            text,
            completion_tokens,
            cut: true,
        })
    }
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
        Answer::new(text.to_owned(), chunks)
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
        assert_eq!(answer.completion_tokens, ENCODING.count(&answer.text));
        assert!(answer.completion_tokens >= 8);
    }

    #[test]
    fn limited_cuts_to_exactly_max_tokens_for_plain_words() {
        let answer = Answer::new("alpha beta gamma delta epsilon zeta eta theta".into(), None);
        assert!(answer.limited(answer.completion_tokens, None).is_none());
        for max in 0..answer.completion_tokens {
            let cut = answer.limited(max, None).unwrap();
            assert!(cut.cut);
            assert!(answer.text.starts_with(&cut.text));
            assert_eq!(cut.completion_tokens, ENCODING.count(&cut.text));
            assert!(
                cut.completion_tokens <= max,
                "max={max} got {}",
                cut.completion_tokens
            );
            // One more character would exceed the limit, so the cut is as long as allowed.
            if let Some(c) = answer.text[cut.text.len()..].chars().next() {
                let longer = &answer.text[..cut.text.len() + c.len_utf8()];
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
        assert!(!cut.text.is_empty() && cut.text.len() < answer.text.len());
        assert_eq!(cut.completion_tokens, 2);
        assert_eq!(cut.pieces().len(), 3);
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
