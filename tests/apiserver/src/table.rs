//! Server-side printing: `meta.k8s.io/v1 Table` answers for `kubectl get`, with the printer
//! columns of a CRD version (JSONPath-lite) or of a built-in kind.

use serde_json::{Value, json};

use crate::resources::{Column, ResourceType};

/// What rows carry besides cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(raw: Option<&str>) -> Self {
        match raw {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

fn columns(rt: &ResourceType, version: &str) -> Vec<Column> {
    let declared = rt.version(version).map(|v| v.columns.clone()).unwrap_or_default();
    if declared.is_empty() {
        vec![Column::new("Age", "date", ".metadata.creationTimestamp")]
    } else {
        declared
    }
}

/// Whether the columns place the name themselves (Events do, last); otherwise it comes first.
fn names_itself(columns: &[Column]) -> bool {
    columns.iter().any(|c| c.json_path == "#name")
}

fn definitions(columns: &[Column]) -> Vec<Value> {
    let mut defs = Vec::new();
    if !names_itself(columns) {
        defs.push(json!({"name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace. Is required when creating resources, although some \
                        resources may allow a client to request the generation of an appropriate name automatically."}));
    }
    defs.extend(columns.iter().map(|c| {
        json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority})
    }));
    defs
}

/// A Table of `objects` (already in the request's view).
pub(crate) fn table(
    rt: &ResourceType,
    version: &str,
    objects: &[Value],
    resource_version: Option<u64>,
    include: Include,
    with_headers: bool,
) -> Value {
    let columns = columns(rt, version);
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = Vec::new();
            if !names_itself(&columns) {
                cells.push(o.pointer("/metadata/name").cloned().unwrap_or(Value::Null));
            }
            cells.extend(columns.iter().map(|c| cell(c, o)));
            let mut row = json!({"cells": cells});
            match include {
                Include::None => {}
                Include::Metadata => {
                    row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                        "metadata": o.get("metadata").cloned().unwrap_or(json!({}))});
                }
                Include::Object => row["object"] = o.clone(),
            }
            row
        })
        .collect();
    let mut table = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "rows": rows});
    if with_headers {
        table["columnDefinitions"] = Value::Array(definitions(&columns));
    }
    if let Some(rv) = resource_version {
        table["metadata"]["resourceVersion"] = json!(rv.to_string());
    }
    table
}

/// `PartialObjectMetadata` of an object (for `as=PartialObjectMetadata` answers).
pub(crate) fn partial(object: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
        "metadata": object.get("metadata").cloned().unwrap_or(json!({}))})
}

fn cell(column: &Column, object: &Value) -> Value {
    let special = match column.json_path.as_str() {
        "#name" => Some(object.pointer("/metadata/name").cloned().unwrap_or(Value::Null)),
        "#created-at" => Some(object.pointer("/metadata/creationTimestamp").cloned().unwrap_or(Value::Null)),
        "#data-count" => Some(json!(object.get("data").and_then(Value::as_object).map_or(0, |d| d.len()))),
        "#event-object" => {
            let involved = object.get("involvedObject").or_else(|| object.get("regarding"));
            let kind = involved.and_then(|i| i.get("kind")).and_then(Value::as_str).unwrap_or("");
            let name = involved.and_then(|i| i.get("name")).and_then(Value::as_str).unwrap_or("");
            Some(json!(format!("{}/{name}", kind.to_lowercase())))
        }
        "#event-message" => {
            Some(object.get("message").or_else(|| object.get("note")).cloned().unwrap_or(json!("")))
        }
        "#event-last-seen" => {
            let at = ["/series/lastObservedTime", "/lastTimestamp", "/deprecatedLastTimestamp", "/eventTime"]
                .iter()
                .find_map(|p| object.pointer(p).and_then(Value::as_str).filter(|s| !s.is_empty()));
            Some(at.and_then(age).map_or(json!("<unknown>"), Value::String))
        }
        _ => None,
    };
    if let Some(value) = special {
        return value;
    }
    let Some(found) = eval(&column.json_path, object).into_iter().next() else { return Value::Null };
    match column.type_.as_str() {
        "date" => found.as_str().and_then(age).map_or(Value::Null, Value::String),
        "integer" | "number" | "boolean" => found.clone(),
        _ => match found {
            Value::String(s) => json!(s),
            Value::Null => Value::Null,
            other => json!(other.to_string()),
        },
    }
}

/// The age of an RFC 3339 timestamp as kubectl prints it.
pub(crate) fn age(timestamp: &str) -> Option<String> {
    let t: jiff::Timestamp = timestamp.parse().ok()?;
    let seconds = jiff::Timestamp::now().as_second() - t.as_second();
    Some(human_duration(seconds))
}

/// `duration.HumanDuration` of Kubernetes.
pub(crate) fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter { path: Vec<String>, value: Value, equal: bool },
}

/// A JSONPath of the printer-column subset: `.a.b`, `['a.b']`, `[0]`, `[*]`,
/// `[?(@.type=="Ready")]` (`==`, `!=`), optionally wrapped in `{}`.
pub(crate) fn eval<'a>(path: &str, object: &'a Value) -> Vec<&'a Value> {
    let Some(steps) = parse(path) else { return Vec::new() };
    let mut current = vec![object];
    for step in &steps {
        let mut next = Vec::new();
        for v in current {
            match step {
                Step::Field(name) => next.extend(v.get(name.as_str())),
                Step::Index(i) => next.extend(v.get(*i)),
                Step::All => match v {
                    Value::Array(items) => next.extend(items.iter()),
                    Value::Object(map) => next.extend(map.values()),
                    _ => {}
                },
                Step::Filter { path, value, equal } => {
                    for item in v.as_array().into_iter().flatten() {
                        let field = path.iter().try_fold(item, |cur, k| cur.get(k.as_str()));
                        let same = field.is_some_and(|f| f == value || plain(f) == plain(value));
                        if field.is_some() && same == *equal {
                            next.push(item);
                        }
                    }
                }
            }
        }
        current = next;
    }
    current
}

fn plain(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

fn parse(path: &str) -> Option<Vec<Step>> {
    let path = path.trim();
    let path = path.strip_prefix('{').and_then(|p| p.strip_suffix('}')).unwrap_or(path);
    let chars: Vec<char> = path.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    name.push(chars[i]);
                    i += 1;
                }
                if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let end = chars[i..].iter().position(|c| *c == ']')? + i;
                let inner: String = chars[i + 1..end].iter().collect();
                steps.push(bracket(inner.trim())?);
                i = end + 1;
            }
            _ => return None,
        }
    }
    Some(steps)
}

fn bracket(inner: &str) -> Option<Step> {
    if inner == "*" {
        return Some(Step::All);
    }
    if let Ok(i) = inner.parse::<usize>() {
        return Some(Step::Index(i));
    }
    if let Some(quoted) = unquote(inner) {
        return Some(Step::Field(quoted));
    }
    let cond = inner.strip_prefix("?(")?.strip_suffix(')')?.trim();
    let (lhs, rhs, equal) = match cond.split_once("!=") {
        Some((l, r)) => (l, r, false),
        None => cond.split_once("==").map(|(l, r)| (l, r, true))?,
    };
    let path = lhs.trim().strip_prefix("@.")?.split('.').map(str::to_owned).collect();
    let rhs = rhs.trim();
    let value = match unquote(rhs) {
        Some(s) => json!(s),
        None => serde_json::from_str(rhs).unwrap_or_else(|_| json!(rhs)),
    };
    Some(Step::Filter { path, value, equal })
}

fn unquote(s: &str) -> Option<String> {
    let stripped = s.strip_prefix('"').and_then(|x| x.strip_suffix('"'));
    stripped.or_else(|| s.strip_prefix('\'').and_then(|x| x.strip_suffix('\''))).map(str::to_owned)
}
