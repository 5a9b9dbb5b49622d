//! Field ownership (`metadata.managedFields`, FieldsV1): the field sets of each manager and
//! operation, and updates (PUT, non-apply patches), which take ownership of the fields they
//! change. Server-side apply is in `apply`.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::schema::{self, ListKind};

/// A path of FieldsV1 elements: `f:name`, `k:{"type":"Ready"}`, `v:"x"`.
pub(crate) type Path = Vec<String>;

/// What part of an object a write covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The whole object.
    All,
    /// Everything but `.status` (the main resource when a status subresource exists).
    Main,
    /// Only `.status`.
    Status,
}

impl Scope {
    pub(crate) fn subresource(self) -> Option<&'static str> {
        (self == Scope::Status).then_some("status")
    }

    pub(crate) fn covers(self, top: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Main => top != "status",
            Scope::Status => top == "status",
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub set: BTreeSet<Path>,
}

/// Who is writing, and how.
#[derive(Debug, Clone)]
pub(crate) struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub scope: Scope,
    /// The root schema of the version, for list types.
    pub schema: Option<&'a Value>,
}

fn meta_schema() -> Value {
    json!({"type": "object", "properties": {
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "x-kubernetes-list-type": "set"},
        "ownerReferences": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["uid"]},
    }})
}

/// The member paths of an object within a scope, and which of them are leaves.
pub(super) fn fields(object: &Value, w: &Writer<'_>) -> (BTreeSet<Path>, BTreeSet<Path>) {
    let (mut all, mut leaves) = (BTreeSet::new(), BTreeSet::new());
    let Some(map) = object.as_object() else { return (all, leaves) };
    let meta = meta_schema();
    for (k, v) in map {
        if k == "apiVersion" || k == "kind" || !w.scope.covers(k) {
            continue;
        }
        let path = vec![format!("f:{k}")];
        if k == "metadata" {
            if let Some(meta_map) = v.as_object() {
                for (mk, mv) in
                    meta_map.iter().filter(|(mk, _)| meta["properties"].get(mk.as_str()).is_some())
                {
                    let p = vec![path[0].clone(), format!("f:{mk}")];
                    collect(mv, schema::child(Some(&meta), mk), p, &mut all, &mut leaves);
                }
            }
            continue;
        }
        collect(v, schema::child(w.schema, k), path, &mut all, &mut leaves);
    }
    (all, leaves)
}

fn collect(
    v: &Value,
    schema: Option<&Value>,
    path: Path,
    all: &mut BTreeSet<Path>,
    leaves: &mut BTreeSet<Path>,
) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                let mut p = path.clone();
                p.push(format!("f:{k}"));
                collect(child, schema::child(schema, k), p, all, leaves);
            }
        }
        Value::Array(items) if schema.is_some_and(|s| list_kind(s) != ListKind::Atomic) => {
            let kind = schema.map_or(ListKind::Atomic, list_kind);
            let item_schema = schema::items(schema);
            for item in items {
                let mut p = path.clone();
                match &kind {
                    ListKind::Map(keys) => {
                        p.push(format!("k:{}", schema::list_key(item, keys)));
                        all.insert(p.clone());
                        if let Some(fields) = item.as_object() {
                            for (k, child) in fields {
                                let mut fp = p.clone();
                                fp.push(format!("f:{k}"));
                                collect(child, schema::child(item_schema, k), fp, all, leaves);
                            }
                        }
                    }
                    _ => {
                        p.push(format!("v:{item}"));
                        all.insert(p.clone());
                        leaves.insert(p);
                    }
                }
            }
        }
        _ => {
            all.insert(path.clone());
            leaves.insert(path);
        }
    }
}

pub(super) fn list_kind(schema: &Value) -> ListKind {
    schema::list_kind(schema)
}

/// The value a path points at.
pub(super) fn resolve<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = object;
    for el in path {
        cur = step(cur, el)?;
    }
    Some(cur)
}

fn step<'a>(cur: &'a Value, el: &str) -> Option<&'a Value> {
    if let Some(name) = el.strip_prefix("f:") {
        return cur.get(name);
    }
    let items = cur.as_array()?;
    if let Some(key) = el.strip_prefix("k:") {
        let id: Value = serde_json::from_str(key).ok()?;
        let keys = id.as_object()?;
        return items.iter().find(|item| keys.iter().all(|(k, v)| item.get(k) == Some(v)));
    }
    if let Some(raw) = el.strip_prefix("v:") {
        let value: Value = serde_json::from_str(raw).ok()?;
        return items.iter().find(|item| **item == value);
    }
    None
}

/// Removes the value a path points at.
pub(super) fn remove_path(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut cur = object;
    for el in parents {
        let next = match el.strip_prefix("f:") {
            Some(name) => cur.get_mut(name),
            None => {
                let Some(found) = step(cur, el).cloned() else { return };
                cur.as_array_mut().and_then(|items| items.iter_mut().find(|i| **i == found))
            }
        };
        let Some(next) = next else { return };
        cur = next;
    }
    if let Some(name) = last.strip_prefix("f:") {
        if let Some(map) = cur.as_object_mut() {
            map.remove(name);
        }
    } else if let Some(found) = step(cur, last).cloned()
        && let Some(items) = cur.as_array_mut()
    {
        items.retain(|i| *i != found);
    }
}

pub(super) fn parse_entries(object: &Value) -> Vec<Entry> {
    let Some(list) = object.pointer("/metadata/managedFields").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let mut set = BTreeSet::new();
            if let Some(f) = e.get("fieldsV1") {
                from_trie(f, &mut Vec::new(), &mut set);
            }
            let subresource = Some(s("subresource")).filter(|x| !x.is_empty());
            Entry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                subresource,
                set,
            }
        })
        .collect()
}

fn from_trie(node: &Value, prefix: &mut Path, set: &mut BTreeSet<Path>) {
    let Some(map) = node.as_object() else { return };
    for (k, v) in map {
        if k == "." {
            set.insert(prefix.clone());
        } else if v.as_object().is_some_and(Map::is_empty) {
            let mut p = prefix.clone();
            p.push(k.clone());
            set.insert(p);
        } else {
            prefix.push(k.clone());
            from_trie(v, prefix, set);
            prefix.pop();
        }
    }
}

fn to_trie(set: &BTreeSet<Path>) -> Value {
    let mut root = Value::Object(Map::new());
    for path in set {
        let mut cur = &mut root;
        for el in path {
            cur = match cur {
                Value::Object(m) => m.entry(el.clone()).or_insert_with(|| json!({})),
                other => other,
            };
        }
    }
    for path in set {
        let Some(node) = path.iter().try_fold(&mut root, |cur, el| cur.get_mut(el)) else { continue };
        if let Some(m) = node.as_object_mut().filter(|m| !m.is_empty()) {
            m.insert(".".to_owned(), json!({}));
        }
    }
    root
}

pub(super) fn write_entries(object: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut v = json!({"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": to_trie(&e.set)});
            if let Some(sub) = e.subresource {
                v["subresource"] = json!(sub);
            }
            v
        })
        .collect();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".to_owned(), Value::Array(list));
        }
    }
}

pub(super) fn entry_mut<'e>(entries: &'e mut Vec<Entry>, w: &Writer<'_>, operation: &str) -> &'e mut Entry {
    let sub = w.scope.subresource().map(str::to_owned);
    let pos = entries
        .iter()
        .position(|e| e.manager == w.manager && e.operation == operation && e.subresource == sub);
    let i = pos.unwrap_or_else(|| {
        entries.push(Entry {
            manager: w.manager.to_owned(),
            operation: operation.to_owned(),
            api_version: String::new(),
            time: String::new(),
            subresource: sub,
            set: BTreeSet::new(),
        });
        entries.len() - 1
    });
    let e = &mut entries[i];
    e.api_version = w.api_version.to_owned();
    e.time = crate::meta::now();
    e
}

/// Records an update (`old` None for a create): the writer owns what it changed.
pub(crate) fn record_update(old: Option<&Value>, new: &mut Value, w: &Writer<'_>) {
    let mut entries = parse_entries(new);
    let (all, _) = fields(new, w);
    let changed: BTreeSet<Path> =
        all.into_iter().filter(|p| old.and_then(|o| resolve(o, p)) != resolve(new, p)).collect();
    if !changed.is_empty() {
        for e in entries.iter_mut() {
            e.set.retain(|p| !changed.contains(p));
        }
        entry_mut(&mut entries, w, "Update").set.extend(changed);
    }
    for e in entries.iter_mut() {
        e.set.retain(|p| resolve(new, p).is_some());
    }
    write_entries(new, entries);
}
