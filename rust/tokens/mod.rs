//! Exact `OpenAI` token counting (`o200k_base`, `cl100k_base`), offline.
//!
//! Backed by `bpe-openai`, whose vocabularies are compiled into the binary and whose linear-time
//! encoder yields the same token ids as tiktoken's `encode_ordinary` (cross-checked against
//! `tiktoken-rs`, which vendors `OpenAI`'s own `CoreBPE`, in the tests below). Chat-request
//! framing lives in `chat.rs`.

mod chat;

use bpe_openai::Tokenizer;

pub use chat::{MEDIA_PART_TOKENS, count_chat_messages, count_plain_chat};

/// An `OpenAI` byte-pair encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    O200kBase,
    Cl100kBase,
}

/// Model-name prefixes (after any `vendor/` and `ft:` prefix) that `OpenAI` serves with
/// `cl100k_base`; `gpt-4` itself is handled separately so `gpt-4o` and `gpt-4.1` stay on o200k.
const CL100K_PREFIXES: [&str; 6] = [
    "gpt-3.5",
    "gpt-35",
    "text-embedding-3",
    "text-embedding-ada-002",
    "davinci-002",
    "babbage-002",
];

impl Encoding {
    /// Encoding `OpenAI` uses for `model`, with or without a `vendor/` or `ft:` prefix.
    ///
    /// gpt-4o*, gpt-4.1*, gpt-4.5*, gpt-5*, o1*, o3*, o4*, chatgpt-4o* are o200k; gpt-4 and
    /// gpt-4-* (turbo, 32k, snapshots), gpt-3.5*, text-embedding-3*/ada-002 are cl100k. Anything
    /// else (other vendors, unknown names) gets o200k as the closest estimate.
    pub fn for_model(model: &str) -> Self {
        let name = model.rsplit('/').next().unwrap_or(model);
        let name = strip_prefix_ci(name, "ft:").unwrap_or(name);
        let plain_gpt4 = strip_prefix_ci(name, "gpt-4")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', ':', '@']));
        if plain_gpt4
            || CL100K_PREFIXES
                .iter()
                .any(|prefix| strip_prefix_ci(name, prefix).is_some())
        {
            Self::Cl100kBase
        } else {
            Self::O200kBase
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::O200kBase => "o200k_base",
            Self::Cl100kBase => "cl100k_base",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "o200k_base" => Some(Self::O200kBase),
            "cl100k_base" => Some(Self::Cl100kBase),
            _ => None,
        }
    }

    /// Token count of ordinary text; special-token strings such as `<|endoftext|>` count as text,
    /// as with tiktoken's `encode_ordinary`.
    pub fn count(self, text: &str) -> usize {
        self.tokenizer().count(text)
    }

    /// The token ids tiktoken's `encode_ordinary` returns for `text`.
    pub fn encode(self, text: &str) -> Vec<u32> {
        self.tokenizer().encode(text)
    }

    /// The encoder, deserialized on first use (tens of milliseconds) and shared afterwards.
    fn tokenizer(self) -> &'static Tokenizer {
        match self {
            Self::O200kBase => bpe_openai::o200k_base(),
            Self::Cl100kBase => bpe_openai::cl100k_base(),
        }
    }
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Loads both encodings now, so the first request does not pay for deserializing them.
pub fn warm_up() {
    for encoding in [Encoding::O200kBase, Encoding::Cl100kBase] {
        std::hint::black_box(encoding.tokenizer());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use tiktoken_rs::CoreBPE;

    const BOTH: [Encoding; 2] = [Encoding::O200kBase, Encoding::Cl100kBase];

    fn oracle(encoding: Encoding) -> &'static CoreBPE {
        match encoding {
            Encoding::O200kBase => tiktoken_rs::o200k_base_singleton(),
            Encoding::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
        }
    }

    #[track_caller]
    fn assert_same_as_tiktoken(encoding: Encoding, text: &str) {
        let expected = oracle(encoding).encode_ordinary(text);
        assert_eq!(encoding.encode(text), expected, "{encoding:?} on {text:?}");
        assert_eq!(
            encoding.count(text),
            expected.len(),
            "{encoding:?} count on {text:?}"
        );
    }

    #[test]
    fn known_vectors() {
        let cl100k: &[(&str, &[u32])] = &[
            ("hello world", &[15339, 1917]),
            ("tiktoken is great!", &[83, 1609, 5963, 374, 2294, 0]),
            ("rer", &[38149]),
            ("'rer", &[2351, 81]),
            ("today\n ", &[31213, 198, 220]),
            ("today\n \n", &[31213, 27907]),
            ("today\n  \n", &[31213, 14211]),
            (" \u{85}0", &[220, 126, 227, 15]),
            ("👍", &[9468, 239, 235]),
            ("", &[]),
        ];
        for &(text, ids) in cl100k {
            assert_eq!(Encoding::Cl100kBase.encode(text), ids, "cl100k {text:?}");
            assert_eq!(Encoding::Cl100kBase.count(text), ids.len());
        }
        assert_eq!(Encoding::O200kBase.encode("hello world"), [24912, 2375]);
        assert_eq!(Encoding::O200kBase.count(""), 0);
    }

    #[test]
    fn special_token_strings_are_plain_text() {
        for encoding in BOTH {
            assert!(encoding.count("<|endoftext|>") > 1);
            assert_same_as_tiktoken(encoding, "<|endoftext|><|im_start|>user<|fim_prefix|>");
        }
    }

    /// Why bpe-openai's cl100k split (old tiktoken regex, `\s*[\r\n]+` before `\s+$`) gives the
    /// same ids as tiktoken's current one (`\s++$` first): the two only split a trailing
    /// whitespace run differently, at its last newline, and no whitespace-only token spans a
    /// newline followed by other whitespace, so BPE never merges across that point.
    #[test]
    fn no_whitespace_token_continues_past_a_newline() {
        for encoding in BOTH {
            let bpe = &encoding.tokenizer().bpe;
            for id in 0..bpe.num_tokens() as u32 {
                let Ok(token) = std::str::from_utf8(bpe.token_bytes(id)) else {
                    continue;
                };
                if token.chars().all(char::is_whitespace)
                    && let Some(newline) = token.rfind(['\r', '\n'])
                {
                    assert_eq!(
                        newline + 1,
                        token.len(),
                        "{encoding:?} token {id} {token:?}"
                    );
                }
            }
        }
    }

    const CORPUS: &[&str] = &[
        "The quick brown fox jumps over the lazy dog. It's 4:30pm; we'll see—they've said they'd come.",
        "DON'T SHOUT! I'M HERE. You're right, isn't it? O'Neil's café naïve coöperate résumé",
        "fn main() {\n    let x: Vec<u32> = (0..10).map(|i| i * 2).collect();\n    println!(\"{x:?}\");\n}\n",
        "def f(a, b=2, *args, **kw):\n\tif a is None:\n\t\treturn {'k': [1, 2.5e-3, None]}\n\n\n",
        "<div class=\"x\"><a href='https://example.com/a/b?c=1&d=2#e'>link</a></div>\r\n",
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi \"there\"\n\u00e9"}],"n":1}"#,
        "SELECT id, name FROM users WHERE created_at >= '2024-01-01' ORDER BY id DESC LIMIT 50;",
        "1234567890123456789012345678901234567890 3.14159265358979 1,000,000 0x1F 1e10 -42 007",
        "９８７６５ ٣٤٥ ४५६ ⅫⅣ ½ ¾ ²³",
        "人工智能是计算机科学的一个分支。我们今天去公园吧！東京タワーは高い。한국어 문장입니다.",
        "Привет, мир! Γειά σου Κόσμε. مرحبا بالعالم. שלום עולם. नमस्ते दुनिया. สวัสดีชาวโลก",
        "emoji 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇯🇵 ❤️‍🔥 😀😃😄 ✅❌ 🤖",
        "mixed: naïve 日本語abc123 Ωmega ТЕСТtest αβγ123 😀word word😀",
        "     leading spaces and trailing spaces     ",
        "\n\n\n\nnewlines\n\n\n\n",
        "tabs\t\t\tand\u{a0}\u{a0}nbsp\u{2003}em\u{3000}ideographic\u{2028}line\u{2029}para  \n  \n\t",
        "   \n",
        " \r\n \r\n  ",
        "a    \n    b\n        \n c\n",
        "control \u{0}\u{1}\u{7f}\u{85}\u{200b}\u{200d}\u{feff} private \u{e000}\u{f8ff} astral \u{10ffff}\u{1d11e}",
        "combining e\u{301} a\u{308}\u{308}\u{308} ñ vs n\u{303}; Hangul jamo \u{1100}\u{1161}\u{11a8}",
        "///// ---- ==== **** .... ,,,, !!!! ???? #### $$$$ %%%% &&&& |||| ~~~~ ____",
        "https://a.b/c//d///e/f.g?h=i path/to//file.rs ../../x C:\\Users\\me\\file.txt",
        "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'VE 'M 'LL 'D ''s x's X'S y'all",
        "CamelCaseIdentifier snake_case_identifier SCREAMING_CASE kebab-case HTTPServerError iPhone",
        "",
        " ",
        "a",
    ];

    #[test]
    fn corpus_matches_tiktoken() {
        for encoding in BOTH {
            for text in CORPUS {
                assert_same_as_tiktoken(encoding, text);
            }
            // Long unsplittable runs and long runs of every whitespace kind.
            for unit in [
                "9", "x", "😀", "中", " ", "\n", "\t", " \n", "\u{a0}", "ab", ".-",
            ] {
                assert_same_as_tiktoken(encoding, &unit.repeat(3_000));
            }
            assert_same_as_tiktoken(encoding, &CORPUS.concat());
        }
    }

    /// Text assembled from random vocabulary tokens: realistic pieces whose merges are exercised.
    #[test]
    fn random_token_concatenations_match_tiktoken() {
        let mut rng = SmallRng::seed_from_u64(0x6d75_7867);
        for encoding in BOTH {
            let bpe = &encoding.tokenizer().bpe;
            for _ in 0..200 {
                let mut text = String::new();
                while text.len() < 300 {
                    let id = rng.random_range(0..bpe.num_tokens() as u32);
                    if let Ok(token) = std::str::from_utf8(bpe.token_bytes(id)) {
                        text.push_str(token);
                    }
                }
                assert_same_as_tiktoken(encoding, &text);
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_strings_match_tiktoken(text in any::<String>()) {
            for encoding in BOTH {
                prop_assert_eq!(encoding.encode(&text), oracle(encoding).encode_ordinary(&text));
            }
        }

        #[test]
        fn whitespace_digit_and_script_mixes_match_tiktoken(
            text in "[ \t\r\n\u{a0}\u{3000}\u{85}a-cA-C0-9'./:_<|>\u{4e00}-\u{4e05}\u{e9}\u{301}\u{1f600}-\u{1f603}]{0,80}"
        ) {
            for encoding in BOTH {
                prop_assert_eq!(encoding.encode(&text), oracle(encoding).encode_ordinary(&text));
            }
        }
    }

    #[test]
    fn encodings_for_models() {
        let cases = [
            ("gpt-4o", Encoding::O200kBase),
            ("openai/gpt-4o-mini", Encoding::O200kBase),
            ("gpt-4o-2024-05-13", Encoding::O200kBase),
            ("chatgpt-4o-latest", Encoding::O200kBase),
            ("gpt-4.1-nano", Encoding::O200kBase),
            ("gpt-4.5-preview", Encoding::O200kBase),
            ("gpt-5", Encoding::O200kBase),
            ("openai/gpt-5.2-codex", Encoding::O200kBase),
            ("o1-mini", Encoding::O200kBase),
            ("o3", Encoding::O200kBase),
            ("o4-mini-2025-04-16", Encoding::O200kBase),
            ("ft:gpt-4o:org:name:id", Encoding::O200kBase),
            ("gpt-4", Encoding::Cl100kBase),
            ("openai/gpt-4", Encoding::Cl100kBase),
            ("GPT-4-Turbo", Encoding::Cl100kBase),
            ("gpt-4-0613", Encoding::Cl100kBase),
            ("gpt-4-32k", Encoding::Cl100kBase),
            ("gpt-3.5-turbo", Encoding::Cl100kBase),
            ("ft:gpt-3.5-turbo-0613:org::id", Encoding::Cl100kBase),
            ("azure/gpt-35-turbo", Encoding::Cl100kBase),
            ("text-embedding-3-small", Encoding::Cl100kBase),
            ("openai/text-embedding-ada-002", Encoding::Cl100kBase),
            ("anthropic/claude-sonnet-4.5", Encoding::O200kBase),
            ("google/gemini-2.5-pro", Encoding::O200kBase),
            ("", Encoding::O200kBase),
            ("gpt-", Encoding::O200kBase),
        ];
        for (model, expected) in cases {
            assert_eq!(Encoding::for_model(model), expected, "{model}");
        }
    }

    #[test]
    fn names_round_trip() {
        for encoding in BOTH {
            assert_eq!(Encoding::from_name(encoding.name()), Some(encoding));
        }
        assert_eq!(Encoding::O200kBase.name(), "o200k_base");
        assert_eq!(Encoding::Cl100kBase.name(), "cl100k_base");
        assert_eq!(Encoding::from_name("p50k_base"), None);
    }

    #[test]
    fn warm_up_loads_both() {
        warm_up();
        assert_eq!(Encoding::Cl100kBase.count("hello world"), 2);
    }

    /// Throughput against tiktoken-rs on ~2 MB of mixed text (best of 3, both warmed up); also
    /// re-checks equality at scale.
    /// `cargo test --release --lib tokens::tests::throughput -- --ignored --nocapture`
    #[test]
    #[ignore = "timing run; use --release --ignored --nocapture"]
    fn throughput() {
        use std::time::Instant;
        fn best_secs<T>(mut run: impl FnMut() -> T) -> (T, f64) {
            let mut best = f64::INFINITY;
            let mut out = None;
            for _ in 0..3 {
                let started = Instant::now();
                out = Some(run());
                best = best.min(started.elapsed().as_secs_f64());
            }
            (out.unwrap(), best)
        }
        let started = Instant::now();
        warm_up();
        println!(
            "warm_up (both encodings): {:.0} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
        let text = CORPUS.join("\n").repeat(1_000);
        let megabytes = text.len() as f64 / 1e6;
        for encoding in BOTH {
            oracle(encoding).encode_ordinary("warm up");
            let (ours, ours_secs) = best_secs(|| encoding.encode(&text));
            let (count, count_secs) = best_secs(|| encoding.count(&text));
            let (theirs, theirs_secs) = best_secs(|| oracle(encoding).encode_ordinary(&text));
            assert_eq!(ours, theirs);
            assert_eq!(count, theirs.len());
            println!(
                "{}: {megabytes:.1} MB, {} tokens; bpe-openai encode {:.1} MB/s, count {:.1} MB/s; tiktoken-rs encode_ordinary {:.1} MB/s",
                encoding.name(),
                theirs.len(),
                megabytes / ours_secs,
                megabytes / count_secs,
                megabytes / theirs_secs,
            );
        }
    }
}
