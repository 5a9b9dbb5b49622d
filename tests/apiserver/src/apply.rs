//! Server-side apply: an apply owns the fields it sets, conflicts with other managers that own a
//! field it changes (unless forced), removes the fields it owned before and no longer sets (when
//! nobody else owns them), and merges maps, atomic lists, `x-kubernetes-list-type: map` lists by
//! key and `set` lists by value.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::managed::{
    Entry, Path, Scope, Writer, entry_mut, fields, list_kind, parse_entries, remove_path, resolve,
    write_entries,
};
use crate::schema::{self, ListKind};
use crate::status::ApiError;

/// Server-side apply of `config` onto `current` (None: create).
pub(crate) fn apply(current: &Value, config: &Value, w: &Writer<'_>, force: bool) -> Result<Value, ApiError> {
    let mut entries = parse_entries(current);
    let (applied, leaves) = fields(config, w);
    let sub = w.scope.subresource().map(str::to_owned);
    let is_self = |e: &Entry| e.manager == w.manager && e.operation == "Apply" && e.subresource == sub;
    let mut conflicts: Vec<(String, String, Path)> = Vec::new();
    for p in &leaves {
        let live = resolve(current, p);
        if live.is_none() || live == resolve(config, p) {
            continue;
        }
        for e in entries.iter().filter(|e| !is_self(e) && e.set.contains(p)) {
            conflicts.push((e.manager.clone(), e.api_version.clone(), p.clone()));
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(&conflicts));
    }
    if force {
        for e in entries.iter_mut().filter(|e| !is_self(e)) {
            e.set.retain(|p| !leaves.contains(p) || resolve(current, p) == resolve(config, p));
        }
    }
    let previous: BTreeSet<Path> =
        entries.iter().filter(|e| is_self(e)).flat_map(|e| e.set.clone()).collect();
    let mut merged = current.clone();
    let mut gone: Vec<&Path> = previous
        .iter()
        .filter(|p| !applied.contains(*p) && !entries.iter().any(|e| !is_self(e) && e.set.contains(*p)))
        .collect();
    gone.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in gone {
        remove_path(&mut merged, p);
    }
    merge_apply(&mut merged, config, w.schema, true, w.scope);
    entry_mut(&mut entries, w, "Apply").set = applied;
    for e in entries.iter_mut() {
        e.set.retain(|p| resolve(&merged, p).is_some());
    }
    write_entries(&mut merged, entries);
    Ok(merged)
}

fn conflict_error(conflicts: &[(String, String, Path)]) -> ApiError {
    let render = |p: &Path| -> String {
        p.iter()
            .map(|el| match el.strip_prefix("f:") {
                Some(name) => format!(".{name}"),
                None => format!("[{}]", el.split_once(':').map_or(el.as_str(), |(_, v)| v)),
            })
            .collect()
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, v, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m:?} using {v}"), "field": render(p)}))
        .collect();
    let message = if let [(m, v, p)] = conflicts {
        format!("Apply failed with 1 conflict: conflict with {m:?} using {v}: {}", render(p))
    } else {
        let lines: Vec<String> = conflicts
            .iter()
            .map(|(m, v, p)| format!("- conflict with {m:?} using {v}: {}", render(p)))
            .collect();
        format!("Apply failed with {} conflicts: \n{}", conflicts.len(), lines.join("\n"))
    };
    let mut err = ApiError::new(409, "Conflict", message);
    err.details = Some(json!({"causes": causes}));
    err
}

fn merge_apply(dst: &mut Value, src: &Value, schema: Option<&Value>, root: bool, scope: Scope) {
    if src.is_object() && !dst.is_object() {
        *dst = json!({});
    }
    if let (Some(d), Some(s)) = (dst.as_object_mut(), src.as_object()) {
        for (k, v) in s {
            if root && !scope.covers(k) && k != "metadata" && k != "apiVersion" && k != "kind" {
                continue;
            }
            if v.is_null() {
                d.remove(k);
                continue;
            }
            let child_schema = if root && k == "metadata" { None } else { schema::child(schema, k) };
            let slot = d.entry(k.clone()).or_insert(Value::Null);
            merge_apply(slot, v, child_schema, false, scope);
        }
        return;
    }
    let kind = schema.map_or(ListKind::Atomic, list_kind);
    match (dst.as_array_mut(), src.as_array(), kind) {
        (Some(d), Some(s), ListKind::Map(keys)) => {
            for item in s {
                let id = schema::list_key(item, &keys);
                match d.iter_mut().find(|x| schema::list_key(x, &keys) == id) {
                    Some(existing) => merge_apply(existing, item, schema::items(schema), false, scope),
                    None => d.push(item.clone()),
                }
            }
        }
        (Some(d), Some(s), ListKind::Set) => {
            for item in s {
                if !d.contains(item) {
                    d.push(item.clone());
                }
            }
        }
        _ => *dst = src.clone(),
    }
}
