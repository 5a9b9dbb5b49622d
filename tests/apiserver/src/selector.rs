//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`) and field selectors (`=`,
//! `==`, `!=` on the fields each type supports), parsed and matched as the API server does.

use serde_json::Value;

use crate::resources::{Behavior, ResourceType};
use crate::status::{ApiError, ApiResult};

#[derive(Debug, Clone, PartialEq)]
enum LabelReq {
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
struct FieldReq {
    field: String,
    value: String,
    equal: bool,
}

/// Both selectors of a list or watch.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Selector {
    labels: Vec<LabelReq>,
    fields: Vec<FieldReq>,
}

impl Selector {
    pub fn parse(rt: &ResourceType, label: Option<&str>, field: Option<&str>) -> ApiResult<Self> {
        let labels = match label {
            Some(s) if !s.trim().is_empty() => parse_labels(s)?,
            _ => Vec::new(),
        };
        let fields = match field {
            Some(s) if !s.trim().is_empty() => parse_fields(rt, s)?,
            _ => Vec::new(),
        };
        Ok(Self { labels, fields })
    }

    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels").and_then(Value::as_object);
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let labels_ok = self.labels.iter().all(|req| match req {
            LabelReq::Exists(k) => label(k).is_some(),
            LabelReq::NotExists(k) => label(k).is_none(),
            LabelReq::In(k, vs) => label(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            LabelReq::NotIn(k, vs) => label(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
        });
        labels_ok
            && self.fields.iter().all(|req| {
                let value = field_value(object, &req.field);
                (value == req.value) == req.equal
            })
    }
}

fn parse_labels(s: &str) -> ApiResult<Vec<LabelReq>> {
    let mut reqs = Vec::new();
    for part in split_top_level(s) {
        let part = part.trim();
        let bad = || {
            ApiError::bad_request(format!("unable to parse requirement: invalid label selector: {part:?}"))
        };
        if let Some(key) = part.strip_prefix('!') {
            reqs.push(LabelReq::NotExists(label_key(key.trim()).ok_or_else(bad)?));
        } else if let Some((k, v)) = part.split_once("!=") {
            reqs.push(LabelReq::NotIn(label_key(k.trim()).ok_or_else(bad)?, vec![v.trim().to_owned()]));
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            reqs.push(LabelReq::In(label_key(k.trim()).ok_or_else(bad)?, vec![v.trim().to_owned()]));
        } else if let Some((k, set)) = split_set(part, " notin ") {
            reqs.push(LabelReq::NotIn(label_key(k).ok_or_else(bad)?, set.ok_or_else(bad)?));
        } else if let Some((k, set)) = split_set(part, " in ") {
            reqs.push(LabelReq::In(label_key(k).ok_or_else(bad)?, set.ok_or_else(bad)?));
        } else {
            reqs.push(LabelReq::Exists(label_key(part).ok_or_else(bad)?));
        }
    }
    Ok(reqs)
}

/// Splits on commas that are not inside `( )`.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0_i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn split_set<'a>(part: &'a str, op: &str) -> Option<(&'a str, Option<Vec<String>>)> {
    let (k, rest) = part.split_once(op)?;
    let rest = rest.trim();
    let values = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .map(|inner| inner.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect());
    Some((k.trim(), values))
}

fn label_key(k: &str) -> Option<String> {
    let ok = !k.is_empty()
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
    ok.then(|| k.to_owned())
}

fn parse_fields(rt: &ResourceType, s: &str) -> ApiResult<Vec<FieldReq>> {
    let mut reqs = Vec::new();
    for part in s.split(',') {
        let (field, value, equal) = if let Some((f, v)) = part.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            (f, v, true)
        } else {
            return Err(ApiError::bad_request(format!("invalid selector: '{s}'; can't understand '{part}'")));
        };
        let field = field.trim();
        if !supported_field(rt, field) {
            return Err(ApiError::bad_request(format!("field label not supported: {field}")));
        }
        reqs.push(FieldReq { field: field.to_owned(), value: value.trim().to_owned(), equal });
    }
    Ok(reqs)
}

fn supported_field(rt: &ResourceType, field: &str) -> bool {
    if field == "metadata.name" || field == "metadata.namespace" {
        return true;
    }
    match rt.behavior {
        Behavior::Secret => field == "type",
        Behavior::Namespace => field == "status.phase",
        Behavior::Event => {
            matches!(field, "reason" | "reportingComponent" | "source" | "type")
                || field.strip_prefix("involvedObject.").is_some_and(|f| {
                    matches!(
                        f,
                        "kind"
                            | "namespace"
                            | "name"
                            | "uid"
                            | "apiVersion"
                            | "resourceVersion"
                            | "fieldPath"
                    )
                })
        }
        Behavior::EventV1 => {
            matches!(field, "reason" | "reportingController" | "type")
                || field.strip_prefix("regarding.").is_some_and(|f| {
                    matches!(
                        f,
                        "kind"
                            | "namespace"
                            | "name"
                            | "uid"
                            | "apiVersion"
                            | "resourceVersion"
                            | "fieldPath"
                    )
                })
        }
        Behavior::Crd | Behavior::Custom => false,
    }
}

/// The value of a selectable field, as a string ("" when absent).
pub(crate) fn field_value(object: &Value, field: &str) -> String {
    let path = match field {
        "source" if object.get("involvedObject").is_some() => "source.component",
        other => other,
    };
    let pointer = format!("/{}", path.replace('.', "/"));
    match object.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}
