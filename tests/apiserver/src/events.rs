//! Events: `v1` and `events.k8s.io/v1` are two views of the same stored objects, converted field
//! by field as Kubernetes does (`regarding` is `involvedObject`, `note` is `message`, ...).

use serde_json::{Map, Value, json};

use crate::status::FieldError;

/// `(events.k8s.io/v1 name, v1 name)`; the other fields have the same name in both.
const RENAMED: [(&str, &str); 7] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

fn rename(object: Value, from_v1: bool) -> Value {
    let Value::Object(map) = object else { return object };
    let mut out = Map::new();
    for (k, v) in map {
        let renamed = RENAMED.iter().find_map(|(new, old)| {
            if from_v1 { (*new == k).then_some(*old) } else { (*old == k).then_some(*new) }
        });
        out.insert(renamed.map_or(k, str::to_owned), v);
    }
    Value::Object(out)
}

/// An `events.k8s.io/v1` Event as stored (`v1`).
pub(crate) fn to_core(object: Value) -> Value {
    let mut core = rename(object, true);
    core["apiVersion"] = json!("v1");
    core
}

/// A stored Event as `events.k8s.io/v1`.
pub(crate) fn from_core(object: Value) -> Value {
    let mut v1 = rename(object, false);
    v1["apiVersion"] = json!("events.k8s.io/v1");
    v1
}

/// Rules for Events written through `events.k8s.io/v1`.
pub(crate) fn validate_v1(event: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let s = |k: &str| event.get(k).and_then(Value::as_str).unwrap_or("");
    if s("eventTime").is_empty() {
        errors.push(FieldError::required("eventTime", ""));
    }
    for (field, max) in
        [("reportingController", 253_u64), ("reportingInstance", 128), ("action", 128), ("reason", 128)]
    {
        if s(field).is_empty() {
            errors.push(FieldError::required(field, ""));
        } else if s(field).len() as u64 > max {
            errors.push(FieldError::too_long(field, max));
        }
    }
    if !matches!(s("type"), "Normal" | "Warning") {
        errors.push(FieldError::invalid(
            "type",
            &json!(s("type")),
            "has invalid value: must be Normal or Warning",
        ));
    }
    if s("note").len() > 1024 {
        errors.push(FieldError::too_long("note", 1024));
    }
    if let Some(series) = event.get("series").filter(|v| !v.is_null()) {
        if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
            errors.push(FieldError::invalid("series.count", &series["count"], "should be at least 2"));
        }
        if series.get("lastObservedTime").and_then(Value::as_str).is_none_or(str::is_empty) {
            errors.push(FieldError::required("series.lastObservedTime", ""));
        }
    }
    for (field, key) in [("deprecatedCount", "deprecatedCount"), ("deprecatedSource", "deprecatedSource")] {
        let set = event.get(key).is_some_and(|v| !v.is_null() && *v != json!(0) && *v != json!({}));
        if set {
            errors.push(FieldError::invalid(field, &event[key], "needs to be unset"));
        }
    }
    errors
}

/// Rules for Events written through `v1`.
pub(crate) fn validate_core(event: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let namespace = event.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
    let involved = event.pointer("/involvedObject/namespace").and_then(Value::as_str).unwrap_or("");
    if !involved.is_empty() && involved != namespace {
        errors.push(FieldError::invalid(
            "involvedObject.namespace",
            &json!(involved),
            "does not match event.namespace",
        ));
    }
    errors
}
