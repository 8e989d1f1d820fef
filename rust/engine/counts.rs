//! Local token counts, kept off the I/O thread when the text is large: counting runs at about
//! 10 MB/s, so one 1 MB prompt counted in place would stall every other request the I/O thread
//! serves for a tenth of a second.

use tokio::task::JoinHandle;

use crate::relay::Observed;
use crate::tokens::Encoding;

/// Text up to this size is counted in place (microseconds); larger text on the blocking pool.
pub const INLINE_BYTES: usize = 16 * 1024;

/// A count done, or under way on the blocking pool.
pub enum Count {
    Ready(u64),
    Pending(JoinHandle<u64>),
}

impl Count {
    /// `count` run in place for up to `INLINE_BYTES` of input, on the blocking pool above.
    pub fn of(len: usize, count: impl FnOnce() -> u64 + Send + 'static) -> Self {
        if len <= INLINE_BYTES {
            Count::Ready(count())
        } else {
            Count::Pending(tokio::task::spawn_blocking(count))
        }
    }

    pub async fn get(self) -> u64 {
        match self {
            Count::Ready(n) => n,
            // A count that panicked counts nothing; the provider's usage is billed anyway.
            Count::Pending(handle) => handle.await.unwrap_or(0),
        }
    }
}

/// Tokens of an answer: its text, reasoning and tool calls.
pub async fn output(encoding: Encoding, answer: &Observed) -> u64 {
    let len: usize = answer.output_pieces().map(str::len).sum();
    if len <= INLINE_BYTES {
        return answer
            .output_pieces()
            .map(|p| encoding.count(p) as u64)
            .sum();
    }
    let pieces: Vec<String> = answer.output_pieces().map(str::to_owned).collect();
    Count::of(len, move || {
        pieces.iter().map(|p| encoding.count(p) as u64).sum()
    })
    .get()
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn large_texts_count_the_same_off_the_thread() {
        let encoding = Encoding::O200kBase;
        let small = "hello world";
        let large = "The quick brown fox jumps over the lazy dog. ".repeat(2_000);
        assert!(large.len() > INLINE_BYTES);
        for text in [small, large.as_str()] {
            let answer = Observed {
                text: text.to_owned(),
                reasoning: small.to_owned(),
                ..Observed::default()
            };
            let expected = encoding.count(text) + encoding.count(small);
            assert_eq!(output(encoding, &answer).await, expected as u64);
        }
        let pending = Count::of(large.len(), {
            let large = large.clone();
            move || encoding.count(&large) as u64
        });
        assert!(matches!(pending, Count::Pending(_)));
        assert_eq!(pending.get().await, encoding.count(&large) as u64);
    }
}
