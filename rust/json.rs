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
}
