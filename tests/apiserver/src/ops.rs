//! The verbs: get, list, create, update, patch (merge, JSON, strategic, apply), delete and
//! deletecollection, on one resource type.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::patch;
use crate::query::{Ctx, Query};
use crate::resources::{Behavior, ResourceType};
use crate::selector::Selector;
use crate::status::{ApiError, ApiResult};
use crate::store::{Store, StoreKey, key};
use crate::write::{self, Ownership, Written};

pub(crate) fn get(store: &Store, ctx: &Ctx, name: &str) -> ApiResult<Value> {
    if let Some(rv) = not_older_than(&ctx.query).filter(|&rv| rv > store.current_rv()) {
        return Err(ApiError::too_large_resource_version(rv, store.current_rv()));
    }
    store
        .get(&ctx.storage_key(name))
        .map(|o| ctx.to_view(o.clone()))
        .ok_or_else(|| ApiError::not_found(&ctx.rt, name))
}

pub(crate) fn parse_rv(raw: &str) -> ApiResult<u64> {
    raw.parse().map_err(|_| ApiError::bad_request(format!("invalid resource version {raw:?}")))
}

fn limited(query: &Query) -> bool {
    query.get("limit").and_then(|l| l.parse::<u64>().ok()).is_some_and(|l| l > 0)
}

/// The resourceVersion a read must not be older than: the watch cache waits up to 3 s for it
/// (a later one answers 504). Not for exact reads (`Exact`, or no match under a limit).
pub(crate) fn not_older_than(query: &Query) -> Option<u64> {
    let rv = query.get("resourceVersion")?.parse().ok().filter(|&rv| rv > 0)?;
    let continued = query.get("continue").is_some_and(|c| !c.is_empty());
    match query.get("resourceVersionMatch").filter(|m| !m.is_empty()) {
        Some("NotOlderThan") => Some(rv),
        None if !limited(query) && !continued => Some(rv),
        _ => None,
    }
}

/// One page of a LIST.
#[derive(Debug)]
pub(crate) struct Page {
    pub items: Vec<Value>,
    pub rv: u64,
    /// The token for the next page, when `limit` cut the list.
    pub continue_: Option<String>,
    pub remaining: Option<usize>,
}

fn invalid_list(message: &str) -> ApiError {
    ApiError::unprocessable(format!("ListOptions.meta.k8s.io \"\" is invalid: {message}"))
}

fn item_key(o: &Value) -> String {
    let s = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or("").to_owned();
    format!("{}/{}", s("/metadata/namespace"), s("/metadata/name"))
}

/// A continue token: the snapshot resourceVersion and the last key served.
fn encode_continue(rv: u64, start: &str) -> String {
    base64::engine::general_purpose::URL_SAFE
        .encode(json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).to_string())
}

fn decode_continue(token: &str) -> ApiResult<(u64, String)> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?.to_owned();
    Ok((rv, start))
}

/// Lists (in the request's view) with the resourceVersion semantics of a LIST, and `limit` /
/// `continue` pagination over a consistent snapshot.
pub(crate) fn list(store: &Store, ctx: &Ctx, selector: &Selector) -> ApiResult<Page> {
    let (group, plural) = ctx.rt.storage();
    let rv = ctx.query.get("resourceVersion").filter(|s| !s.is_empty());
    let rv_match = ctx.query.get("resourceVersionMatch").filter(|s| !s.is_empty());
    let ns = ctx.namespace.as_deref();
    let limit = match ctx.query.get("limit").filter(|s| !s.is_empty()) {
        Some(l) => l.parse::<usize>().map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        None => 0,
    };
    let (items, at, after) = if let Some(token) = ctx.query.get("continue").filter(|c| !c.is_empty()) {
        if rv.is_some() || rv_match.is_some() {
            return Err(invalid_list(
                "resourceVersion: Forbidden: specifying resource version is not allowed when using continue",
            ));
        }
        let (at, start) = decode_continue(token)?;
        let items = store.list_at(&group, &plural, ns, at).map_err(|e| {
            if e.code == 410 {
                ApiError::new(410, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
            } else {
                e
            }
        })?;
        (items, at, Some(start))
    } else {
        match (rv, rv_match) {
            (None, Some(_)) => {
                return Err(invalid_list(
                    "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            // Without a match, a resourceVersion under a limit is exact (the legacy semantics).
            (Some(raw), Some("Exact") | None) if rv_match.is_some() || (limit > 0 && raw != "0") => {
                let at = parse_rv(raw)?;
                if at == 0 {
                    return Err(invalid_list(
                        "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                    ));
                }
                (store.list_at(&group, &plural, ns, at)?, at, None)
            }
            (Some(raw), None | Some("NotOlderThan")) => {
                let at = parse_rv(raw)?;
                if at > store.current_rv() {
                    return Err(ApiError::too_large_resource_version(at, store.current_rv()));
                }
                (store.list(&group, &plural, ns), store.current_rv(), None)
            }
            (None, None) => (store.list(&group, &plural, ns), store.current_rv(), None),
            (_, Some(other)) => {
                return Err(invalid_list(&format!(
                    "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
                )));
            }
        }
    };
    let mut items = filter(ctx, items, selector);
    if let Some(start) = after {
        items.retain(|o| item_key(o) > start);
    }
    if limit == 0 || items.len() <= limit {
        return Ok(Page { items, rv: at, continue_: None, remaining: None });
    }
    let remaining = items.len() - limit;
    items.truncate(limit);
    let token = items.last().map(|o| encode_continue(at, &item_key(o)));
    Ok(Page { items, rv: at, continue_: token, remaining: Some(remaining) })
}

fn filter(ctx: &Ctx, items: Vec<Value>, selector: &Selector) -> Vec<Value> {
    items.into_iter().map(|o| ctx.to_view(o)).filter(|o| selector.matches(o)).collect()
}

pub(crate) fn create(store: &mut Store, ctx: &Ctx, mut body: Value) -> ApiResult<Written> {
    write::check_type(ctx, &mut body)?;
    write::create(store, ctx, body, Ownership::Update)
}

fn check_name(ctx: &Ctx, body: &mut Value, name: &str) -> ApiResult<()> {
    match body.pointer("/metadata/name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() && n != name => Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        ))),
        Some(n) if !n.is_empty() => check_namespace(ctx, body),
        _ => {
            body["metadata"]["name"] = json!(name);
            check_namespace(ctx, body)
        }
    }
}

fn check_namespace(ctx: &Ctx, body: &Value) -> ApiResult<()> {
    let ns = body.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
    if ctx.rt.namespaced && !ns.is_empty() && Some(ns) != ctx.namespace.as_deref() {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// PUT of the object or of its status.
pub(crate) fn update(
    store: &mut Store,
    ctx: &Ctx,
    name: &str,
    mut body: Value,
    status: bool,
) -> ApiResult<Written> {
    write::check_type(ctx, &mut body)?;
    check_name(ctx, &mut body, name)?;
    let old = get(store, ctx, name)?;
    write::update(store, ctx, &old, body, status, Ownership::Update)
}

const PATCH_TYPES: [&str; 3] =
    ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"];

/// PATCH of the object or of its status.
pub(crate) fn patch(
    store: &mut Store,
    ctx: &Ctx,
    name: &str,
    content_type: &str,
    body: &[u8],
    status: bool,
) -> ApiResult<Written> {
    let custom = ctx.rt.behavior == Behavior::Custom;
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if media == "application/apply-patch+yaml" {
        return apply(store, ctx, name, body, status);
    }
    if ctx.query.get("force").is_some() {
        return Err(ApiError::unprocessable(
            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch",
        ));
    }
    let known = PATCH_TYPES.contains(&media.as_str())
        || (!custom && media == "application/strategic-merge-patch+json");
    if !known {
        let mut accepted = PATCH_TYPES.to_vec();
        if !custom {
            accepted.push("application/strategic-merge-patch+json");
        }
        return Err(ApiError::unsupported_media_type(&media, &accepted));
    }
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let old = get(store, ctx, name)?;
    let mut new = old.clone();
    match media.as_str() {
        "application/merge-patch+json" => {
            if !doc.is_object() {
                return Err(ApiError::bad_request("json: cannot unmarshal non-object into a merge patch"));
            }
            patch::merge(&mut new, &doc);
        }
        "application/json-patch+json" => patch::json_patch(&mut new, &doc)?,
        _ => {
            if !doc.is_object() {
                return Err(ApiError::bad_request(
                    "json: cannot unmarshal non-object into a strategic merge patch",
                ));
            }
            patch::strategic(&mut new, &doc)?;
        }
    }
    if !new.is_object() {
        return Err(ApiError::unprocessable("the patched object is not an object"));
    }
    if new.get("metadata").is_none_or(|m| !m.is_object()) {
        new["metadata"] = json!({});
    }
    if new.pointer("/metadata/resourceVersion").and_then(Value::as_str).is_none_or(str::is_empty) {
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
    }
    write::check_type(ctx, &mut new)?;
    check_name(ctx, &mut new, name)?;
    write::update(store, ctx, &old, new, status, Ownership::Update)
}

/// Server-side apply (`application/apply-patch+yaml`).
fn apply(store: &mut Store, ctx: &Ctx, name: &str, body: &[u8], status: bool) -> ApiResult<Written> {
    if ctx.query.get("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::unprocessable(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    let force = ctx.query.flag("force")?;
    let mut config: Value = serde_yaml::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !config.is_object() {
        return Err(ApiError::bad_request("error decoding YAML: the apply configuration is not an object"));
    }
    for field in ["kind", "apiVersion"] {
        if config.get(field).and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(ApiError::bad_request(format!(
                "Object '{}' is missing in '{config}'",
                if field == "kind" { "Kind" } else { field }
            )));
        }
    }
    write::check_type(ctx, &mut config)?;
    if config.pointer("/metadata/managedFields").is_some_and(|m| !m.is_null()) {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    check_name(ctx, &mut config, name)?;
    let api_version = ctx.api_version();
    let w = write::writer(ctx, &api_version, status);
    match get(store, ctx, name) {
        Ok(old) => {
            let merged = crate::apply::apply(&old, &config, &w, force)?;
            write::update(store, ctx, &old, merged, status, Ownership::Applied)
        }
        Err(e) if e.code == 404 && !status => {
            let mut base =
                json!({"apiVersion": api_version, "kind": ctx.rt.kind, "metadata": {"name": name}});
            if let Some(ns) = &ctx.namespace {
                base["metadata"]["namespace"] = json!(ns);
            }
            let merged = crate::apply::apply(&base, &config, &w, force)?;
            write::create(store, ctx, merged, Ownership::Applied)
        }
        Err(e) => Err(e),
    }
}

/// DELETE of one object; objects with finalizers only get a deletionTimestamp.
pub(crate) fn delete(store: &mut Store, ctx: &Ctx, name: &str, options: &Value) -> ApiResult<Written> {
    let old = get(store, ctx, name)?;
    let rt = &ctx.rt;
    if rt.behavior == Behavior::Namespace && crate::store::INITIAL_NAMESPACES[..3].contains(&name) {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!("namespaces {name:?} is forbidden: this namespace may not be deleted"),
        ));
    }
    let precondition = |field: &str, label: &str| -> ApiResult<()> {
        let wanted = options.pointer(&format!("/preconditions/{field}")).and_then(Value::as_str);
        let actual = old.pointer(&format!("/metadata/{field}")).and_then(Value::as_str).unwrap_or("");
        match wanted {
            Some(w) if !w.is_empty() && w != actual => Err(ApiError::conflict(
                rt,
                name,
                &format!(
                    "Precondition failed: {label} in precondition: {w}, {label} in object meta: {actual}"
                ),
            )),
            _ => Ok(()),
        }
    };
    precondition("uid", "UID")?;
    precondition("resourceVersion", "ResourceVersion")?;
    let dry_run = ctx.query.dry_run()?
        || options.get("dryRun").and_then(Value::as_array).is_some_and(|d| d.iter().any(|x| x == "All"));
    let has_finalizers =
        old.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
    if has_finalizers {
        if old.pointer("/metadata/deletionTimestamp").is_some() || dry_run {
            return Ok(Written { code: 202, object: old, warnings: Vec::new() });
        }
        let mut marked = old.clone();
        marked["metadata"]["deletionTimestamp"] = json!(crate::meta::now());
        marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        let stored = store.put(ctx.storage_key(name), ctx.to_storage(marked));
        return Ok(Written { code: 202, object: ctx.to_view(stored), warnings: Vec::new() });
    }
    if dry_run {
        return Ok(Written { code: 200, object: old, warnings: Vec::new() });
    }
    let gone = remove(store, rt, &ctx.storage_key(name)).ok_or_else(|| ApiError::not_found(rt, name))?;
    Ok(Written { code: 200, object: ctx.to_view(gone), warnings: Vec::new() })
}

/// DELETE of a collection: every selected object; answers the list of deleted objects.
pub(crate) fn delete_collection(
    store: &mut Store,
    ctx: &Ctx,
    selector: &Selector,
    options: &Value,
) -> ApiResult<Vec<Value>> {
    let mut deleted = Vec::new();
    for item in list(store, ctx, selector)?.items {
        let name = item.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned();
        let mut item_ctx = ctx.clone();
        item_ctx.namespace = item.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_owned);
        deleted.push(delete(store, &item_ctx, &name, options)?.object);
    }
    Ok(deleted)
}

/// Removes an object, with what goes with it: a namespace's objects, a CRD's resources.
pub(crate) fn remove(store: &mut Store, rt: &ResourceType, k: &StoreKey) -> Option<Value> {
    let object = store.get(k)?.clone();
    match rt.behavior {
        Behavior::Namespace => {
            let mut storages: Vec<(String, String)> =
                store.registry.all().filter(|t| t.namespaced).map(|t| t.storage()).collect();
            storages.sort();
            storages.dedup();
            for (group, plural) in storages {
                for item in store.list(&group, &plural, Some(&k.3)) {
                    let name = item.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
                    store.remove(&key(&group, &plural, &k.3, name));
                }
            }
        }
        Behavior::Crd => {
            let group = object.pointer("/spec/group").and_then(Value::as_str).unwrap_or("").to_owned();
            let plural =
                object.pointer("/spec/names/plural").and_then(Value::as_str).unwrap_or("").to_owned();
            for item in store.list(&group, &plural, None) {
                let ns = item.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
                let name = item.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
                store.remove(&key(&group, &plural, ns, name));
            }
            store.close_watchers(Some((&group, &plural)));
            store.registry.remove(&group, &plural);
        }
        _ => {}
    }
    store.remove(k)
}
