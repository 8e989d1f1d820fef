//! JSON Schema validation for the content checks: does an answer (or a tool call's arguments)
//! match the schema the request gave? The keywords structured outputs and tool definitions use
//! are checked; any keyword not known here is ignored, so a schema we do not fully understand
//! can only let an answer pass, never credit a good one.

use std::cell::Cell;

use serde_json::{Map, Value};

/// The first place `value` breaks `schema`, as a JSON pointer and a reason; None if it fits.
/// Runs on the engine's I/O thread with a schema the client wrote, so its work is bounded:
/// past `MAX_CHECKS` schema applications (nested `anyOf`s multiply them) the value passes.
pub fn violation(schema: &Value, value: &Value) -> Option<(String, String)> {
    let mut path = String::new();
    CHECKS.with(|c| c.set(0));
    check(schema, schema, value, &mut path, 0)
}

/// Deeper than this, a schema is taken to be recursive without end and the value passes.
const MAX_DEPTH: usize = 64;
/// Schema applications one validation may make.
const MAX_CHECKS: u32 = 20_000;

thread_local! {
    static CHECKS: Cell<u32> = const { Cell::new(0) };
}

fn check(
    root: &Value,
    schema: &Value,
    value: &Value,
    path: &mut String,
    depth: usize,
) -> Option<(String, String)> {
    let spent = CHECKS.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    if depth > MAX_DEPTH || spent > MAX_CHECKS {
        return None;
    }
    let schema = match schema {
        Value::Bool(false) => return fail(path, "no value is allowed here"),
        Value::Object(s) => s,
        // `true`, or not a schema at all: anything goes.
        _ => return None,
    };
    if let Some(Value::String(reference)) = schema.get("$ref") {
        let target = resolve(root, reference)?;
        if let Some(found) = check(root, target, value, path, depth + 1) {
            return Some(found);
        }
    }
    if let Some(types) = schema.get("type")
        && !type_matches(types, value)
    {
        return fail(path, &format!("expected type {types}"));
    }
    if let Some(Value::Array(options)) = schema.get("enum")
        && !options.iter().any(|o| same(o, value))
    {
        return fail(path, "not one of the enumerated values");
    }
    if let Some(expected) = schema.get("const")
        && !same(expected, value)
    {
        return fail(path, &format!("expected {expected}"));
    }
    if let Some(found) = combinators(root, schema, value, path, depth) {
        return Some(found);
    }
    match value {
        Value::Object(fields) => object(root, schema, fields, path, depth),
        Value::Array(items) => array(root, schema, items, path, depth),
        Value::String(text) => string(schema, text, path),
        Value::Number(n) => n.as_f64().and_then(|n| number(schema, n, path)),
        _ => None,
    }
}

#[allow(clippy::unnecessary_wraps)] // every check returns what this makes
fn fail(path: &str, reason: &str) -> Option<(String, String)> {
    let at = if path.is_empty() { "/" } else { path };
    Some((at.to_owned(), reason.to_owned()))
}

/// `#/$defs/name` and `#/definitions/name` (JSON pointers into the root schema).
fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    root.pointer(pointer)
}

fn type_matches(types: &Value, value: &Value) -> bool {
    let one = |name: &str| match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value
            .as_f64()
            .is_some_and(|n| n.fract() == 0.0 && n.is_finite()),
        _ => true,
    };
    match types {
        Value::String(name) => one(name),
        Value::Array(names) => names.iter().filter_map(Value::as_str).any(one),
        _ => true,
    }
}

/// JSON equality where 1 and 1.0 are the same number.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn combinators(
    root: &Value,
    schema: &Map<String, Value>,
    value: &Value,
    path: &mut String,
    depth: usize,
) -> Option<(String, String)> {
    let fits = |s: &Value, path: &mut String| check(root, s, value, path, depth + 1).is_none();
    if let Some(Value::Array(all)) = schema.get("allOf") {
        for s in all {
            if let Some(found) = check(root, s, value, path, depth + 1) {
                return Some(found);
            }
        }
    }
    if let Some(Value::Array(any)) = schema.get("anyOf")
        && !any.iter().any(|s| fits(s, path))
    {
        return fail(path, "matches none of anyOf");
    }
    if let Some(Value::Array(one)) = schema.get("oneOf") {
        let matching = one.iter().filter(|s| fits(s, path)).count();
        if matching != 1 {
            return fail(
                path,
                &format!("matches {matching} of oneOf, not exactly one"),
            );
        }
    }
    if let Some(not) = schema.get("not")
        && fits(not, path)
    {
        return fail(path, "matches a schema it must not");
    }
    None
}

fn object(
    root: &Value,
    schema: &Map<String, Value>,
    fields: &Map<String, Value>,
    path: &mut String,
    depth: usize,
) -> Option<(String, String)> {
    if let Some(Value::Array(required)) = schema.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !fields.contains_key(name) {
                return fail(path, &format!("missing required property {name:?}"));
            }
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    for (name, field) in fields {
        let mark = path.len();
        path.push('/');
        path.push_str(&name.replace('~', "~0").replace('/', "~1"));
        let found = match (properties.and_then(|p| p.get(name)), additional) {
            (Some(s), _) | (None, Some(s)) => check(root, s, field, path, depth + 1),
            (None, None) => None,
        };
        path.truncate(mark);
        if found.is_some() {
            return found;
        }
    }
    bounds(
        schema,
        fields.len(),
        "minProperties",
        "maxProperties",
        "properties",
        path,
    )
}

fn array(
    root: &Value,
    schema: &Map<String, Value>,
    items: &[Value],
    path: &mut String,
    depth: usize,
) -> Option<(String, String)> {
    let prefix = schema.get("prefixItems").and_then(Value::as_array);
    for (i, item) in items.iter().enumerate() {
        let item_schema = prefix
            .and_then(|p| p.get(i))
            .or_else(|| schema.get("items"));
        let Some(item_schema) = item_schema else {
            continue;
        };
        let mark = path.len();
        path.push('/');
        path.push_str(&i.to_string());
        let found = check(root, item_schema, item, path, depth + 1);
        path.truncate(mark);
        if found.is_some() {
            return found;
        }
    }
    bounds(schema, items.len(), "minItems", "maxItems", "items", path)
}

fn string(schema: &Map<String, Value>, text: &str, path: &str) -> Option<(String, String)> {
    bounds(
        schema,
        text.chars().count(),
        "minLength",
        "maxLength",
        "characters",
        path,
    )
}

fn number(schema: &Map<String, Value>, n: f64, path: &str) -> Option<(String, String)> {
    let limit = |key: &str| schema.get(key).and_then(Value::as_f64);
    if limit("minimum").is_some_and(|m| n < m) || limit("exclusiveMinimum").is_some_and(|m| n <= m)
    {
        return fail(path, "below the minimum");
    }
    if limit("maximum").is_some_and(|m| n > m) || limit("exclusiveMaximum").is_some_and(|m| n >= m)
    {
        return fail(path, "above the maximum");
    }
    if let Some(step) = limit("multipleOf").filter(|s| *s > 0.0)
        && ((n / step).round() * step - n).abs() > 1e-9 * n.abs().max(1.0)
    {
        return fail(path, &format!("not a multiple of {step}"));
    }
    None
}

fn bounds(
    schema: &Map<String, Value>,
    count: usize,
    min: &str,
    max: &str,
    what: &str,
    path: &str,
) -> Option<(String, String)> {
    let limit = |key: &str| schema.get(key).and_then(Value::as_u64);
    if let Some(m) = limit(min).filter(|m| (count as u64) < *m) {
        return fail(path, &format!("fewer than {m} {what}"));
    }
    if let Some(m) = limit(max).filter(|m| (count as u64) > *m) {
        return fail(path, &format!("more than {m} {what}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_schema_that_multiplies_the_work_is_given_up_on() {
        // Level n is an anyOf of level n-1 twice (by reference, so the schema stays small):
        // 2^30 applications on a value that fits no branch, without the bound.
        let mut defs = serde_json::Map::new();
        defs.insert("l0".into(), json!({"type": "integer", "minimum": 10}));
        for n in 1..=30 {
            let below = format!("#/$defs/l{}", n - 1);
            defs.insert(
                format!("l{n}"),
                json!({"anyOf": [{"$ref": below}, {"$ref": below}]}),
            );
        }
        let schema = json!({"$defs": defs, "$ref": "#/$defs/l30"});
        assert_eq!(
            violation(&schema, &json!(5)),
            None,
            "given up on: the value passes"
        );
        // The bound is per validation: the next one starts afresh.
        let small = json!({"anyOf": [{"type": "string"}, {"type": "null"}]});
        assert!(violation(&small, &json!(5)).is_some());
    }

    #[test]
    fn fitting_values_pass() {
        let schema = json!({
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 1},
                "days": {"type": "array", "items": {"type": "integer", "minimum": 1}, "maxItems": 7},
                "unit": {"enum": ["c", "f"]},
                "at": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/time"}]}
            },
            "required": ["city"],
            "additionalProperties": false,
            "$defs": {"time": {"type": "string"}}
        });
        for value in [
            json!({"city": "Paris"}),
            json!({"city": "Paris", "days": [1, 2.0], "unit": "c", "at": null}),
            json!({"city": "Paris", "at": "noon"}),
        ] {
            assert_eq!(violation(&schema, &value), None, "{value}");
        }
    }

    #[test]
    fn violations_name_the_place() {
        let schema = json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                "unit": {"enum": ["c", "f"]}
            },
            "required": ["city"],
            "additionalProperties": false
        });
        let cases = [
            (json!([]), "/"),
            (json!({}), "/"),
            (json!({"city": 5}), "/city"),
            (json!({"city": "x", "days": [1, 0]}), "/days/1"),
            (json!({"city": "x", "days": [1.5]}), "/days/0"),
            (json!({"city": "x", "unit": "k"}), "/unit"),
            (json!({"city": "x", "extra": true}), "/extra"),
        ];
        for (value, at) in cases {
            let found = violation(&schema, &value);
            assert_eq!(
                found.as_ref().map(|(p, _)| p.as_str()),
                Some(at),
                "{value}: {found:?}"
            );
        }
    }

    #[test]
    fn unknown_keywords_and_recursive_schemas_never_fail_a_value() {
        let odd = json!({"type": "string", "format": "made-up", "x-vendor": 1, "pattern": "^a"});
        assert_eq!(violation(&odd, &json!("zzz")), None);
        let recursive = json!({"$ref": "#"});
        assert_eq!(violation(&recursive, &json!({"a": 1})), None);
        assert_eq!(violation(&json!(true), &json!(null)), None);
        assert!(violation(&json!(false), &json!(null)).is_some());
    }
}
