//! Shallow JSON objects: the top-level keys in order, each value left as unparsed raw text.
//! Rewriting one field of a request or chunk this way costs a scan, not a parse and re-render
//! of everything nested under it.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

pub struct Fields<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Fields<'a> {
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Render the object again, asking `replace` for each key: `None` keeps the raw value,
    /// `Some(None)` drops the key, `Some(Some(raw))` writes `raw` instead.
    pub fn write_with<'r>(
        &self,
        out: &mut Vec<u8>,
        mut replace: impl FnMut(&str) -> Option<Option<&'r str>>,
        extra: &[(&str, &str)],
    ) {
        out.push(b'{');
        let mut first = true;
        let mut sep = |out: &mut Vec<u8>| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
        };
        for (key, value) in &self.0 {
            let raw = match replace(key) {
                None => value.get(),
                Some(None) => continue,
                Some(Some(raw)) => raw,
            };
            sep(out);
            write_key(out, key, matches!(key, Cow::Borrowed(_)));
            out.extend_from_slice(raw.as_bytes());
        }
        for (key, raw) in extra {
            sep(out);
            write_key(out, key, false);
            out.extend_from_slice(raw.as_bytes());
        }
        out.push(b'}');
    }
}

/// `verbatim` when the key was borrowed from the source: it had no escape sequence there, and a
/// JSON string holds no raw quote, backslash or control character, so the text is its own
/// literal.
fn write_key(out: &mut Vec<u8>, key: &str, verbatim: bool) {
    if verbatim {
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, key).expect("writing to a Vec cannot fail");
    }
    out.push(b':');
}

/// A JSON string literal for `text`, escaped.
pub fn quote(text: &str) -> String {
    serde_json::to_string(text).expect("a string always serializes")
}

/// `text` as an escaped JSON string literal, appended to `out`.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
}

/// How deep arrays and objects may nest in a request body. Deeper input is refused before it is
/// parsed or forwarded: no real request comes near it, and a provider or a recursive decoder
/// should never see a body built to exhaust its stack.
pub const MAX_DEPTH: usize = 128;

/// Whether the arrays and objects of `body` nest at most `limit` deep. A byte scan, not a parse:
/// strings (most of a request) are skipped with `memchr`, so it costs little beside the parse
/// that follows; malformed JSON is left for that parse to refuse.
pub fn nests_within(body: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                i += 1;
                // To the closing quote, stepping over each escape's next byte.
                loop {
                    match memchr::memchr2(b'"', b'\\', &body[i..]) {
                        None => return true,
                        Some(at) if body[i + at] == b'\\' => i = (i + at + 2).min(body.len()),
                        Some(at) => {
                            i += at;
                            break;
                        }
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    true
}

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for FieldsVisitor<'a> {
            type Value = Fields<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    fields.push((key, value));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_drops_and_appends_keeping_order() {
        let body = r#"{"a":1,"model":"x","drop":[1,{"n":2}],"z\"q":"s"}"#;
        let fields: Fields = serde_json::from_str(body).unwrap();
        let mut out = Vec::new();
        let model = quote("up/model");
        fields.write_with(
            &mut out,
            |k| match k {
                "model" => Some(Some(model.as_str())),
                "drop" => Some(None),
                _ => None,
            },
            &[("extra", "true")],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":1,"model":"up/model","z\"q":"s","extra":true}"#
        );
        assert_eq!(fields.get("a").unwrap().get(), "1");
    }

    #[test]
    fn keys_with_escapes_are_written_escaped_again() {
        let body = r#"{"tab\tkey":1,"\u00e9t\u00e9":2,"quote\"d":3,"plain":4}"#;
        let fields: Fields = serde_json::from_str(body).unwrap();
        let mut out = Vec::new();
        fields.write_with(&mut out, |_| None, &[]);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, r#"{"tab\tkey":1,"été":2,"quote\"d":3,"plain":4}"#);
        let before: serde_json::Value = serde_json::from_str(body).unwrap();
        let after: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(before, after);
    }

    #[test]
    fn rejects_non_objects() {
        assert!(serde_json::from_str::<Fields>("[1]").is_err());
        assert!(serde_json::from_str::<Fields>("{\"a\":").is_err());
    }

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(nests_within(deep(128).as_bytes(), MAX_DEPTH));
        assert!(!nests_within(deep(129).as_bytes(), MAX_DEPTH));
        let body = format!(r#"{{"a":{},"b":"{}"}}"#, deep(127), "[{".repeat(500));
        assert!(nests_within(body.as_bytes(), MAX_DEPTH));
        // An escaped quote does not end the string; an escaped backslash before one does.
        let escaped = format!(
            r#"{{"s":"\"{}","t":"\\\\","u":{}}}"#,
            "[".repeat(200),
            deep(127)
        );
        assert!(nests_within(escaped.as_bytes(), MAX_DEPTH));
        let after = format!(r#"{{"t":"\\\\",{}}}"#, deep(128));
        assert!(!nests_within(after.as_bytes(), MAX_DEPTH));
        // Siblings do not add up: depth is how far in, not how many.
        let wide = format!("[{}]", vec![deep(100); 50].join(","));
        assert!(nests_within(wide.as_bytes(), MAX_DEPTH));
        // Unterminated input is the parser's to refuse.
        assert!(nests_within(br#"{"a":"never closed"#, MAX_DEPTH));
        assert!(nests_within(br#"{"a":"\"#, MAX_DEPTH));
    }
}
