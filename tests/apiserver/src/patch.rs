//! Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch for the
//! built-in kinds (merge patch for maps, the `$patch`, `$retainKeys`, `$setElementOrder` and
//! `$deleteFromPrimitiveList` directives, and merging by key for the lists of `ObjectMeta` that
//! Kubernetes declares mergeable: `finalizers` and `ownerReferences`).

use serde_json::{Map, Value};

use crate::status::{ApiError, ApiResult};

/// RFC 7386.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(map) = target.as_object_mut() else { return };
    for (k, v) in patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// RFC 6902.
pub(crate) fn json_patch(target: &mut Value, patch: &Value) -> ApiResult<()> {
    let ops = patch.as_array().ok_or_else(|| {
        ApiError::bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    })?;
    for op in ops {
        let name = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = op.get("path").and_then(Value::as_str).ok_or_else(|| unprocessable("missing path"))?;
        let value = || op.get("value").cloned().ok_or_else(|| unprocessable("missing value"));
        let from = || op.get("from").and_then(Value::as_str).ok_or_else(|| unprocessable("missing from"));
        match name {
            "add" => add(target, path, value()?)?,
            "remove" => {
                remove(target, path)?;
            }
            "replace" => {
                remove(target, path)?;
                add(target, path, value()?)?;
            }
            "move" => {
                let moved = remove(target, from()?)?;
                add(target, path, moved)?;
            }
            "copy" => {
                let copied = target.pointer(from()?).cloned().ok_or_else(|| missing(path))?;
                add(target, path, copied)?;
            }
            "test" => {
                if target.pointer(path) != Some(&value()?) {
                    return Err(unprocessable(&format!("testing value {path} failed: test failed")));
                }
            }
            other => return Err(unprocessable(&format!("Unexpected kind: {other}"))),
        }
    }
    Ok(())
}

fn unprocessable(message: &str) -> ApiError {
    ApiError::unprocessable(message.to_owned())
}

fn missing(path: &str) -> ApiError {
    unprocessable(&format!("doc is missing path: {path:?}: missing value"))
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split(path: &str) -> ApiResult<(String, String)> {
    if path.is_empty() {
        return Ok((String::new(), String::new()));
    }
    let (parent, last) = path.rsplit_once('/').ok_or_else(|| missing(path))?;
    Ok((parent.to_owned(), unescape(last)))
}

fn add(target: &mut Value, path: &str, value: Value) -> ApiResult<()> {
    if path.is_empty() {
        *target = value;
        return Ok(());
    }
    let (parent, last) = split(path)?;
    let container = target.pointer_mut(&parent).ok_or_else(|| missing(path))?;
    match container {
        Value::Object(map) => {
            map.insert(last, value);
        }
        Value::Array(items) => {
            let index =
                if last == "-" { items.len() } else { last.parse::<usize>().map_err(|_| missing(path))? };
            if index > items.len() {
                return Err(missing(path));
            }
            items.insert(index, value);
        }
        _ => return Err(missing(path)),
    }
    Ok(())
}

fn remove(target: &mut Value, path: &str) -> ApiResult<Value> {
    let (parent, last) = split(path)?;
    let container = target.pointer_mut(&parent).ok_or_else(|| missing(path))?;
    match container {
        Value::Object(map) => map.remove(&last).ok_or_else(|| missing(path)),
        Value::Array(items) => {
            let index = last.parse::<usize>().map_err(|_| missing(path))?;
            if index >= items.len() {
                return Err(missing(path));
            }
            Ok(items.remove(index))
        }
        _ => Err(missing(path)),
    }
}

/// Lists of the built-in kinds that merge instead of being replaced: (path, merge key).
fn merge_key(path: &str) -> Option<Option<&'static str>> {
    match path {
        "metadata.finalizers" => Some(None),
        "metadata.ownerReferences" => Some(Some("uid")),
        _ => None,
    }
}

/// Strategic merge patch for the built-in kinds.
pub(crate) fn strategic(target: &mut Value, patch: &Value) -> ApiResult<()> {
    strategic_at(target, patch, "")
}

fn strategic_at(target: &mut Value, patch: &Value, path: &str) -> ApiResult<()> {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replaced = patch.clone();
            replaced.remove("$patch");
            *target = Value::Object(replaced);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some(other) if other != "merge" => {
            return Err(ApiError::bad_request(format!("Unable to find patch directive {other:?}")));
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(map) = target.as_object_mut() else { return Ok(()) };
    for (k, v) in patch {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(gone)) = (map.get_mut(field), v.as_array()) {
                items.retain(|item| !gone.contains(item));
            }
            continue;
        }
        let child_path = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
        if v.is_null() {
            map.remove(k);
            continue;
        }
        match (merge_key(&child_path), v) {
            (Some(key), Value::Array(items)) => {
                let current = map.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                merge_list(current, items, key);
            }
            (_, Value::Object(_)) => {
                let child = map.entry(k.clone()).or_insert(Value::Null);
                strategic_at(child, v, &child_path)?;
                if child.is_null() {
                    map.remove(k);
                }
            }
            _ => {
                map.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(keep) = patch.get("$retainKeys").and_then(Value::as_array) {
        map.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k)));
    }
    Ok(())
}

fn merge_list(current: &mut Value, items: &[Value], key: Option<&str>) {
    if !current.is_array() {
        *current = Value::Array(Vec::new());
    }
    let Some(list) = current.as_array_mut() else { return };
    for item in items {
        match key {
            None => {
                if !list.contains(item) {
                    list.push(item.clone());
                }
            }
            Some(key) => {
                let id = item.get(key);
                let deleting = item.get("$patch").and_then(Value::as_str) == Some("delete");
                let pos = list.iter().position(|x| x.get(key) == id);
                match (pos, deleting) {
                    (Some(i), true) => {
                        list.remove(i);
                    }
                    (Some(i), false) => merge(&mut list[i], item),
                    (None, false) => list.push(item.clone()),
                    (None, true) => {}
                }
            }
        }
    }
}
