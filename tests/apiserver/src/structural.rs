//! The schema rules a CRD's `openAPIV3Schema` must meet to be accepted: structurality
//! (apiextensions-apiserver `pkg/apiserver/schema`: `validation.go`, `complete.go`) and the
//! OpenAPI checks of `ValidateCustomResourceDefinitionOpenAPISchema` that go with it, with the
//! real field paths and messages.

use serde_json::{Value, json};

use crate::status::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

const TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

/// What a value validation (under `allOf`, `anyOf`, `oneOf`, `not`) may not say: only the
/// structure outside of them types, prunes and defaults.
const NESTED_FORBIDDEN: [(&str, &str); 13] = [
    ("type", "must be empty to be structural"),
    ("additionalProperties", "must be undefined to be structural"),
    ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"),
    ("description", "must be empty to be structural"),
    ("nullable", "must be false to be structural"),
    ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
    ("x-kubernetes-embedded-resource", "must be false to be structural"),
    ("x-kubernetes-int-or-string", "must be false to be structural"),
    ("x-kubernetes-list-map-keys", "must be empty to be structural"),
    ("x-kubernetes-list-type", "must be undefined to be structural"),
    ("x-kubernetes-map-type", "must be undefined to be structural"),
    ("x-kubernetes-validations", "must be empty to be structural"),
];

/// JSON Schema keywords the server refuses in CRDs.
const UNSUPPORTED: [(&str, &str); 6] = [
    ("id", "id is not supported"),
    ("additionalItems", "additionalItems is not supported"),
    ("patternProperties", "patternProperties is not supported"),
    ("definitions", "definitions is not supported"),
    ("dependencies", "dependencies is not supported"),
    ("$ref", "$ref is not supported"),
];

/// Keywords outside of the structural schema: they do not count as restricting `metadata`.
const NOT_STRUCTURAL: [&str; 11] = [
    "type",
    "default",
    "example",
    "externalDocs",
    "id",
    "$schema",
    "$ref",
    "additionalItems",
    "patternProperties",
    "definitions",
    "dependencies",
];

/// Every error in the schema at `path` (`spec.validation.openAPIV3Schema` or
/// `spec.versions[i].schema.openAPIV3Schema`), in the server's order.
pub(crate) fn validate(schema: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if on(schema, "nullable") {
        errors.push(FieldError::forbidden(format!("{path}.nullable"), "nullable cannot be true at the root"));
    }
    let mut structural = Vec::new();
    invariants(schema, Level::Root, path, &mut structural);
    junctors_complete(schema, schema, path, path, &mut structural);
    // ValidateStructural sorts its errors by text (they come from Go maps).
    structural.sort_by_cached_key(FieldError::line);
    errors.append(&mut structural);
    openapi(schema, path, &mut errors);
    errors
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn on(v: &Value, key: &str) -> bool {
    v.get(key) == Some(&Value::Bool(true))
}

/// Set to something other than Go's zero value.
fn is_set(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false)) && v != "" && *v != json!([]) && *v != json!({})
}

fn properties(v: &Value) -> impl Iterator<Item = (&String, &Value)> {
    v.get("properties").and_then(Value::as_object).into_iter().flatten()
}

fn property<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.get("properties").and_then(|p| p.get(name))
}

fn list<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = (usize, &'a Value)> {
    v.get(key).and_then(Value::as_array).into_iter().flatten().enumerate()
}

fn items(v: &Value) -> Option<&Value> {
    v.get("items").filter(|i| i.is_object())
}

fn key(path: &str, name: &str) -> String {
    format!("{path}.properties[{name}]")
}

fn int_or_string(any_of: Option<&Value>) -> bool {
    any_of == Some(&json!([{"type": "integer"}, {"type": "string"}]))
}

/// `validateStructuralInvariants`.
fn invariants(s: &Value, lvl: Level, path: &str, errors: &mut Vec<FieldError>) {
    let ty = str_of(s, "type");
    if ty == "array" && s.get("items").is_none() {
        errors.push(FieldError::required(format!("{path}.items"), "must be specified"));
    }
    if let Some(items) = items(s) {
        invariants(items, Level::Item, &format!("{path}.items"), errors);
    }
    for (name, p) in properties(s) {
        invariants(p, Level::Field, &key(path, name), errors);
    }
    let additional = s.get("additionalProperties");
    if additional.is_some() && lvl == Level::Root {
        errors.push(FieldError::forbidden(
            format!("{path}.additionalProperties"),
            "must not be used at the root",
        ));
    }
    if let Some(a) = additional.filter(|a| a.is_object()) {
        invariants(a, Level::Field, &format!("{path}.additionalProperties"), errors);
    }
    let (ios, preserve, embedded) = (
        on(s, "x-kubernetes-int-or-string"),
        on(s, "x-kubernetes-preserve-unknown-fields"),
        on(s, "x-kubernetes-embedded-resource"),
    );
    for (flag, set) in
        [("x-kubernetes-preserve-unknown-fields", preserve), ("x-kubernetes-embedded-resource", embedded)]
    {
        if ios && set {
            let detail = "must be false if x-kubernetes-int-or-string is true";
            errors.push(FieldError::invalid(format!("{path}.{flag}"), &json!(true), detail));
        }
    }
    let first_all_of = s.pointer("/allOf/0/anyOf");
    value_validation(s, int_or_string(s.get("anyOf")), int_or_string(first_all_of), lvl, path, errors);

    let type_path = format!("{path}.type");
    if embedded && ty != "object" {
        let detail = "must be object if x-kubernetes-embedded-resource is true";
        errors.push(if ty.is_empty() {
            FieldError::required(type_path.clone(), detail)
        } else {
            FieldError::invalid(type_path.clone(), &json!(ty), detail)
        });
    } else if ty.is_empty() && !ios && !preserve {
        let detail = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errors.push(FieldError::required(type_path.clone(), detail));
    }
    if embedded && additional.is_some() {
        errors.push(FieldError::forbidden(
            format!("{path}.additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !ty.is_empty() && ty != "object" {
        errors.push(FieldError::invalid(type_path, &json!(ty), "must be object at the root"));
    }
    let resource = lvl == Level::Root || embedded;
    for name in ["kind", "apiVersion"] {
        if let Some(p) = property(s, name).filter(|p| resource && str_of(p, "type") != "string") {
            let at = format!("{}.type", key(path, name));
            errors.push(FieldError::invalid(at, &json!(str_of(p, "type")), "must be string"));
        }
    }
    if let Some(m) = property(s, "metadata") {
        metadata(m, resource, lvl, &key(path, "metadata"), errors);
    }
    if embedded && !preserve && properties(s).next().is_none() {
        errors.push(FieldError::required(
            format!("{path}.properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

/// ObjectMeta is the server's: a schema may only restrict `name` and `generateName` at the root.
fn metadata(m: &Value, resource: bool, lvl: Level, path: &str, errors: &mut Vec<FieldError>) {
    let ty = str_of(m, "type");
    if resource && ty != "object" {
        errors.push(FieldError::invalid(format!("{path}.type"), &json!(ty), "must be object"));
    }
    if lvl != Level::Root {
        return;
    }
    let names_only = m
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty() && p.keys().all(|k| k == "name" || k == "generateName"));
    let ignored = |k: &str| NOT_STRUCTURAL.contains(&k) || (k == "properties" && names_only);
    let restricts = m.as_object().into_iter().flatten().any(|(k, v)| !ignored(k) && is_set(v));
    if restricts {
        errors.push(FieldError::forbidden(
            path,
            "must not specify anything other than name and generateName, but metadata is implicitly specified",
        ));
    }
}

/// `validateValueValidation`: the junctors of a node (the int-or-string `anyOf` excepted).
fn value_validation(
    v: &Value,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    lvl: Level,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if !skip_any_of {
        for (i, n) in list(v, "anyOf") {
            nested(n, false, false, lvl, &format!("{path}.anyOf[{i}]"), errors);
        }
    }
    for (i, n) in list(v, "allOf") {
        nested(n, skip_first_all_of_any_of && i == 0, false, lvl, &format!("{path}.allOf[{i}]"), errors);
    }
    for (i, n) in list(v, "oneOf") {
        nested(n, false, false, lvl, &format!("{path}.oneOf[{i}]"), errors);
    }
    if let Some(n) = v.get("not") {
        nested(n, false, false, lvl, &format!("{path}.not"), errors);
    }
}

/// `validateNestedValueValidation`.
fn nested(
    v: &Value,
    skip_any_of: bool,
    skip_all_of_any_of: bool,
    lvl: Level,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    value_validation(v, skip_any_of, skip_all_of_any_of, lvl, path, errors);
    if let Some(items) = items(v) {
        nested(items, false, false, lvl, &format!("{path}.items"), errors);
    }
    for (name, p) in properties(v) {
        nested(p, false, false, Level::Field, &key(path, name), errors);
    }
    for (name, detail) in NESTED_FORBIDDEN {
        if v.get(name).is_some_and(is_set) {
            errors.push(FieldError::forbidden(format!("{path}.{name}"), detail));
        }
    }
    if property(v, "metadata").is_some() {
        errors
            .push(FieldError::forbidden(key(path, "metadata"), "must not be specified in a nested context"));
    }
}

/// `validateStructuralCompleteness`, which the server runs from the root's junctors: what they
/// name must also be specified outside of them.
fn junctors_complete(v: &Value, s: &Value, s_path: &str, v_path: &str, errors: &mut Vec<FieldError>) {
    if let Some(n) = v.get("not") {
        complete(n, Some(s), s_path, &format!("{v_path}.not"), errors);
    }
    for junctor in ["allOf", "anyOf", "oneOf"] {
        for (i, n) in list(v, junctor) {
            complete(n, Some(s), s_path, &format!("{v_path}.{junctor}[{i}]"), errors);
        }
    }
}

fn complete(v: &Value, s: Option<&Value>, s_path: &str, v_path: &str, errors: &mut Vec<FieldError>) {
    let Some(s) = s else {
        errors.push(FieldError::required(s_path, &format!("because it is defined in {v_path}")));
        return;
    };
    junctors_complete(v, s, s_path, v_path, errors);
    if let Some(i) = items(v) {
        complete(i, items(s), &format!("{s_path}.items"), &format!("{v_path}.items"), errors);
    }
    for (name, p) in properties(v) {
        complete(p, property(s, name), &key(s_path, name), &key(v_path, name), errors);
    }
}

/// The checks of `ValidateCustomResourceDefinitionOpenAPISchema` that refuse a schema the
/// server cannot use (list and map types are not checked).
fn openapi(s: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let ty = str_of(s, "type");
    if !ty.is_empty() && !TYPES.contains(&ty) {
        let allowed = TYPES.map(|t| json!(t));
        errors.push(FieldError::not_supported(format!("{path}.type"), &json!(ty), &allowed));
    }
    for (name, detail) in UNSUPPORTED {
        if s.get(name).is_some_and(is_set) {
            errors.push(FieldError::forbidden(format!("{path}.{name}"), detail));
        }
    }
    if ty == "null" {
        let detail = "type cannot be set to null, use nullable as an alternative";
        errors.push(FieldError::forbidden(format!("{path}.type"), detail));
    }
    if s.get("items").is_some_and(Value::is_array) {
        let detail = "items must be a schema object and not an array";
        errors.push(FieldError::forbidden(format!("{path}.items"), detail));
    }
    if on(s, "uniqueItems") {
        let detail = "uniqueItems cannot be set to true since the runtime complexity becomes quadratic";
        errors.push(FieldError::forbidden(format!("{path}.uniqueItems"), detail));
    }
    if let Some(a) = s.get("additionalProperties") {
        // Properties are for structs, additionalProperties for maps: both would contradict the
        // convention of dropping unknown fields. `true` alongside properties is allowed.
        if properties(s).next().is_some() && (a == &json!(false) || a.is_object()) {
            let detail = "additionalProperties and properties are mutual exclusive";
            errors.push(FieldError::forbidden(format!("{path}.additionalProperties"), detail));
        }
        if a.is_object() {
            openapi(a, &format!("{path}.additionalProperties"), errors);
        }
    }
    for (name, p) in properties(s) {
        openapi(p, &key(path, name), errors);
    }
    if let Some(n) = s.get("not") {
        openapi(n, &format!("{path}.not"), errors);
    }
    for junctor in ["allOf", "oneOf", "anyOf"] {
        for (i, n) in list(s, junctor) {
            openapi(n, &format!("{path}.{junctor}[{i}]"), errors);
        }
    }
    if let Some(i) = items(s) {
        openapi(i, &format!("{path}.items"), errors);
    }
    if s.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(false)) {
        let at = format!("{path}.x-kubernetes-preserve-unknown-fields");
        errors.push(FieldError::invalid(at, &json!(false), "must be true or undefined"));
    }
}
