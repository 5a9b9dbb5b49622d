//! Structural schemas (`openAPIV3Schema` of CRDs, and the built-in kinds described the same way):
//! null pruning, defaulting, unknown-field detection and pruning, and validation of types,
//! required fields, enums, bounds, lengths and list uniqueness.
//!
//! Also `pattern` (Rust `regex`, unanchored). Not implemented: `format` checks (except `byte`),
//! `anyOf`/`oneOf`/`allOf`/`not`, ratcheting. CEL rules are in `cel`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use regex::Regex;
use serde_json::{Map, Value, json};

use crate::builtin::object_meta_schema;
use crate::status::FieldError;

/// What a walk found.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Paths of fields the schema does not declare (pruned when asked).
    pub unknown: Vec<String>,
    /// Fields whose value has the wrong JSON type (decode errors for built-in kinds).
    pub type_errors: Vec<FieldError>,
    /// Every other violation.
    pub errors: Vec<FieldError>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// Removes nulls where the schema does not allow them and fills `default`s, recursively.
pub(crate) fn default(schema: &Value, value: &mut Value) {
    default_at(schema, value, true);
}

fn default_at(schema: &Value, value: &mut Value, root: bool) {
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(props) = props {
                for (k, prop) in props {
                    if root && k == "metadata" {
                        continue;
                    }
                    if map.get(k).is_some_and(Value::is_null) && !flag(prop, "nullable") {
                        map.remove(k);
                    }
                    if !map.contains_key(k)
                        && let Some(d) = prop.get("default")
                    {
                        map.insert(k.clone(), d.clone());
                    }
                    if let Some(child) = map.get_mut(k) {
                        default_at(prop, child, false);
                    }
                }
            }
            if let Some(extra) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                for (k, child) in map.iter_mut() {
                    if props.is_some_and(|p| p.contains_key(k)) {
                        continue;
                    }
                    default_at(extra, child, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    default_at(item_schema, item, false);
                }
            }
        }
        _ => {}
    }
}

/// Checks `value` against `schema`; with `prune`, unknown fields are removed.
pub(crate) fn check(schema: &Value, value: &mut Value, prune: bool) -> Outcome {
    let mut out = Outcome::default();
    let Some(map) = value.as_object_mut() else {
        out.type_errors.push(FieldError::invalid("", &json!(type_name(value)), "must be of type object"));
        return out;
    };
    if let Some(meta) = map.get_mut("metadata") {
        walk(&object_meta_schema(), meta, "metadata", prune, &mut out);
    }
    let mut body = Value::Object(std::mem::take(map));
    let mut root_schema = schema.clone();
    if let Some(props) = root_schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert(
            "metadata".to_owned(),
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
        props.insert("apiVersion".to_owned(), json!({"type": "string"}));
        props.insert("kind".to_owned(), json!({"type": "string"}));
    }
    walk(&root_schema, &mut body, "", prune, &mut out);
    *value = body;
    out
}

fn walk(schema: &Value, value: &mut Value, path: &str, prune: bool, out: &mut Outcome) {
    if value.is_null() {
        // Go decoding and CRD pruning both turn a null into "absent": nothing to check.
        return;
    }
    let actual = type_name(value);
    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let int_or_string = flag(schema, "x-kubernetes-int-or-string");
        let ok = expected == actual
            || (expected == "number" && actual == "integer")
            || (int_or_string && (actual == "integer" || actual == "string"));
        if !ok {
            let detail = format!("{path} in body must be of type {expected}: {actual:?}");
            out.type_errors.push(FieldError::invalid(path, &json!(actual), &detail));
            return;
        }
    } else if flag(schema, "x-kubernetes-int-or-string") && actual != "integer" && actual != "string" {
        let detail = format!("{path} in body must be of type integer,string: {actual:?}");
        out.type_errors.push(FieldError::invalid(path, &json!(actual), &detail));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        out.errors.push(FieldError::not_supported(path, value, allowed));
    }
    let snapshot = match value {
        Value::String(_) | Value::Number(_) => value.clone(),
        _ => Value::Null,
    };
    let value_ref = &snapshot;
    match value {
        Value::Object(map) => walk_object(schema, map, path, prune, out),
        Value::Array(items) => walk_array(schema, items, path, prune, out),
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64).filter(|m| len > *m) {
                out.errors.push(FieldError::too_long(path, max));
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64).filter(|m| len < *m) {
                let detail = format!("{path} in body should be at least {min} chars long");
                out.errors.push(FieldError::invalid(path, value_ref, &detail));
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
                && !matches_pattern(pattern, s)
            {
                let detail = format!("{path} in body should match '{pattern}'");
                out.errors.push(FieldError::invalid(path, value_ref, &detail));
            }
            if schema.get("format").and_then(Value::as_str) == Some("byte") {
                use base64::Engine as _;
                if let Err(e) = base64::engine::general_purpose::STANDARD.decode(s.as_bytes()) {
                    out.type_errors.push(FieldError::invalid(
                        path,
                        value_ref,
                        &format!("illegal base64 data: {e}"),
                    ));
                }
            }
        }
        Value::Number(n) => {
            let Some(x) = n.as_f64() else { return };
            let exclusive_min = flag(schema, "exclusiveMinimum");
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && (x < min || (exclusive_min && x == min))
            {
                let rel = if exclusive_min { "greater than" } else { "greater than or equal to" };
                let detail = format!("{path} in body should be {rel} {}", json!(min_int(min)));
                out.errors.push(FieldError::invalid(path, value_ref, &detail));
            }
            let exclusive_max = flag(schema, "exclusiveMaximum");
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && (x > max || (exclusive_max && x == max))
            {
                let rel = if exclusive_max { "less than" } else { "less than or equal to" };
                let detail = format!("{path} in body should be {rel} {}", json!(min_int(max)));
                out.errors.push(FieldError::invalid(path, value_ref, &detail));
            }
        }
        _ => {}
    }
}

/// Whether `s` matches a schema `pattern` (unanchored, as OpenAPI says); an invalid pattern
/// matches nothing, so that the write is refused rather than let through.
fn matches_pattern(pattern: &str, s: &str) -> bool {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let re = cache.entry(pattern.to_owned()).or_insert_with(|| Regex::new(pattern).ok());
    re.as_ref().is_some_and(|re| re.is_match(s))
}

fn min_int(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 { json!(x as i64) } else { json!(x) }
}

fn walk_object(schema: &Value, map: &mut Map<String, Value>, path: &str, prune: bool, out: &mut Outcome) {
    let props = schema.get("properties").and_then(Value::as_object);
    let extra = schema.get("additionalProperties").filter(|s| s.is_object());
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields")
        || schema.get("additionalProperties").and_then(Value::as_bool) == Some(true);
    let embedded = flag(schema, "x-kubernetes-embedded-resource");
    let mut unknown = Vec::new();
    for (k, child) in map.iter_mut() {
        let child_path = join(path, k);
        if let Some(prop) = props.and_then(|p| p.get(k)) {
            walk(prop, child, &child_path, prune, out);
        } else if let Some(extra) = extra {
            walk(extra, child, &child_path, prune, out);
        } else if embedded && (k == "apiVersion" || k == "kind" || k == "metadata") {
        } else if !preserve {
            unknown.push(k.clone());
            out.unknown.push(child_path);
        }
    }
    if prune {
        for k in unknown {
            map.remove(&k);
        }
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if map.get(r).is_none_or(Value::is_null) {
                out.errors.push(FieldError::required(join(path, r), ""));
            }
        }
    }
    let n = map.len() as u64;
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64).filter(|m| n > *m) {
        let detail = format!("must have at most {max} properties");
        out.errors.push(FieldError::invalid(path, &json!(n), &detail));
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64).filter(|m| n < *m) {
        let detail = format!("must have at least {min} properties");
        out.errors.push(FieldError::invalid(path, &json!(n), &detail));
    }
}

fn walk_array(schema: &Value, items: &mut [Value], path: &str, prune: bool, out: &mut Outcome) {
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter_mut().enumerate() {
            walk(item_schema, item, &format!("{path}[{i}]"), prune, out);
        }
    }
    let n = items.len() as u64;
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64).filter(|m| n > *m) {
        out.errors.push(FieldError::too_long(path, max));
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64).filter(|m| n < *m) {
        let detail = format!("{path} in body should have at least {min} items");
        out.errors.push(FieldError::invalid(path, &json!(n), &detail));
    }
    match list_kind(schema) {
        ListKind::Set => {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    out.errors.push(FieldError::duplicate(format!("{path}[{i}]"), item));
                }
            }
        }
        ListKind::Map(keys) => {
            let ids: Vec<Value> = items.iter().map(|item| list_key(item, &keys)).collect();
            for (i, id) in ids.iter().enumerate() {
                if ids[..i].contains(id) {
                    out.errors.push(FieldError::duplicate(format!("{path}[{i}]"), id));
                }
            }
        }
        ListKind::Atomic => {}
    }
}

/// How a list merges (`x-kubernetes-list-type`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ListKind {
    Atomic,
    Set,
    Map(Vec<String>),
}

pub(crate) fn list_kind(schema: &Value) -> ListKind {
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => ListKind::Set,
        Some("map") => {
            let keys = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            ListKind::Map(keys)
        }
        _ => ListKind::Atomic,
    }
}

/// The identity of a list-map item: its key fields.
pub(crate) fn list_key(item: &Value, keys: &[String]) -> Value {
    let mut id = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            id.insert(k.clone(), v.clone());
        }
    }
    Value::Object(id)
}

/// The schema of a child: a property, the map values, or the list items.
pub(crate) fn child<'a>(schema: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    let schema = schema?;
    schema
        .get("properties")
        .and_then(|p| p.get(key))
        .or_else(|| schema.get("additionalProperties").filter(|s| s.is_object()))
}

pub(crate) fn items(schema: Option<&Value>) -> Option<&Value> {
    schema?.get("items")
}
