//! CEL rules of CRD schemas (`x-kubernetes-validations`), evaluated with kube-cel (the
//! Kubernetes CEL library functions included), with `oldSelf` on updates, reported as a real
//! server reports them.

use std::cell::RefCell;

use kube_cel::{RootContext, Validator};
use serde_json::{Value, json};

use crate::resources::ResourceType;
use crate::status::FieldError;

thread_local! {
    static VALIDATOR: RefCell<Option<Validator>> = const { RefCell::new(None) };
}

fn has_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => map.contains_key("x-kubernetes-validations") || map.values().any(has_rules),
        Value::Array(items) => items.iter().any(has_rules),
        _ => false,
    }
}

fn type_at(object: &Value, path: &str) -> &'static str {
    let mut cur = Some(object);
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        cur = cur.and_then(|c| c.get(name));
        if let Some(i) = index {
            cur = cur.and_then(|c| c.get(i));
        }
    }
    match cur {
        Some(Value::String(_)) => "string",
        Some(Value::Number(_)) => "number",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Array(_)) => "array",
        _ => "object",
    }
}

/// The CEL rule violations of `object` (None `old` on create).
pub(crate) fn validate(
    rt: &ResourceType,
    version: &str,
    object: &Value,
    old: Option<&Value>,
) -> Vec<FieldError> {
    let Some(schema) = rt.version(version).and_then(|v| v.schema.as_ref()).filter(|s| has_rules(s)) else {
        return Vec::new();
    };
    let root = RootContext {
        api_version: rt.api_version(version),
        api_group: rt.group.clone(),
        kind: rt.kind.clone(),
    };
    let result = VALIDATOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let validator = slot.get_or_insert_with(Validator::new);
        validator.validate_with_context(schema, object, old, Some(&root))
    });
    let Err(errors) = result else { return Vec::new() };
    errors
        .into_vec()
        .into_iter()
        .map(|e| {
            let field = e.field_path.clone();
            match e.reason.as_deref() {
                Some("FieldValueForbidden") => FieldError::forbidden(field, &e.message),
                Some("FieldValueRequired") => FieldError::required(field, &e.message),
                Some("FieldValueDuplicate") => FieldError::duplicate(field, &json!(e.message)),
                _ => FieldError::invalid(field.clone(), &json!(type_at(object, &field)), &e.message),
            }
        })
        .collect()
}
