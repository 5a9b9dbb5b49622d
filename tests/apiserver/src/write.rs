//! The write path shared by create, update, patch and apply: decoding rules, unknown fields,
//! defaults, validation, server-owned fields, the status subresource, generation, field
//! ownership, finalizers, no-op detection, and the CRD side effects.

use serde_json::{Value, json};

use crate::managed::{self, Scope, Writer};
use crate::query::{Ctx, FieldValidation};
use crate::resources::{Behavior, ResourceType};
use crate::status::{ApiError, ApiResult, FieldError};
use crate::store::Store;
use crate::{crd, events, kinds, meta, schema};

/// A write's answer.
#[derive(Debug)]
pub(crate) struct Written {
    pub code: u16,
    pub object: Value,
    pub warnings: Vec<String>,
}

/// Who owns the fields of this write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ownership {
    /// An update: the manager owns what it changed.
    Update,
    /// Server-side apply already computed `managedFields`.
    Applied,
}

pub(crate) fn scope(ctx: &Ctx, status: bool) -> Scope {
    match (status, ctx.rt.has_status(&ctx.version)) {
        (true, _) => Scope::Status,
        (false, true) => Scope::Main,
        (false, false) => Scope::All,
    }
}

pub(crate) fn writer<'a>(ctx: &'a Ctx, api_version: &'a str, status: bool) -> Writer<'a> {
    let schema = ctx.rt.version(&ctx.version).and_then(|v| v.schema.as_ref());
    Writer { manager: &ctx.manager, api_version, scope: scope(ctx, status), schema }
}

/// Checks `apiVersion` and `kind` of a body against the URL (filling them when a built-in omits them).
pub(crate) fn check_type(ctx: &Ctx, body: &mut Value) -> ApiResult<()> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the object provided is not a JSON object"));
    }
    let expected = ctx.api_version();
    let custom = ctx.rt.behavior == Behavior::Custom;
    match body.get("kind").and_then(Value::as_str) {
        None | Some("") if custom => {
            return Err(ApiError::bad_request(format!("Object 'Kind' is missing in '{body}'")));
        }
        None | Some("") => body["kind"] = json!(ctx.rt.kind),
        Some(k) if k != ctx.rt.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind of the object ({k}) does not match the kind on the URL ({})",
                ctx.rt.kind
            )));
        }
        Some(_) => {}
    }
    match body.get("apiVersion").and_then(Value::as_str) {
        None | Some("") if custom => {
            return Err(ApiError::bad_request(format!("Object 'apiVersion' is missing in '{body}'")));
        }
        None | Some("") => body["apiVersion"] = json!(expected),
        Some(v) if v != expected => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected})"
            )));
        }
        Some(_) => {}
    }
    if !body.get("metadata").is_none_or(|m| m.is_object() || m.is_null()) {
        return Err(ApiError::undecodable(&ctx.rt, &ctx.version, "metadata must be an object"));
    }
    if body.get("metadata").is_none_or(Value::is_null) {
        body["metadata"] = json!({});
    }
    Ok(())
}

/// Unknown fields, defaults and schema errors of the object about to be stored.
fn structural(
    ctx: &Ctx,
    object: &mut Value,
    old: Option<&Value>,
    warnings: &mut Vec<String>,
) -> ApiResult<Vec<FieldError>> {
    let rt = &ctx.rt;
    let Some(schema) = rt.version(&ctx.version).and_then(|v| v.schema.clone()) else { return Ok(Vec::new()) };
    schema::default(&schema, object);
    let outcome = schema::check(&schema, object, true);
    if !outcome.unknown.is_empty() {
        match ctx.query.field_validation()? {
            FieldValidation::Strict => {
                let fields: Vec<String> =
                    outcome.unknown.iter().map(|f| format!("unknown field {f:?}")).collect();
                let why = format!("strict decoding error: {}", fields.join(", "));
                return Err(ApiError::undecodable(rt, &ctx.version, &why));
            }
            FieldValidation::Warn => {
                warnings.extend(outcome.unknown.iter().map(|f| format!("unknown field {f:?}")))
            }
            FieldValidation::Ignore => {}
        }
    }
    let mut errors = outcome.errors;
    if !outcome.type_errors.is_empty() {
        if rt.behavior != Behavior::Custom {
            let why =
                outcome.type_errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>();
            return Err(ApiError::undecodable(rt, &ctx.version, &why.join("; ")));
        }
        errors.splice(0..0, outcome.type_errors);
    }
    if rt.behavior == Behavior::EventV1 {
        errors.extend(events::validate_v1(object));
    }
    if rt.behavior == Behavior::Custom && errors.is_empty() {
        errors.extend(crate::cel::validate(rt, &ctx.version, object, old));
    }
    Ok(errors)
}

fn validate(ctx: &Ctx, object: &Value, old: Option<&Value>, mut errors: Vec<FieldError>) -> ApiResult<()> {
    let rt: &ResourceType = &ctx.rt;
    let label_name = rt.behavior == Behavior::Namespace;
    let mut all = meta::validate(&object["metadata"], rt.namespaced, label_name);
    all.append(&mut errors);
    all.extend(kinds::validate(rt, object, old));
    if rt.behavior == Behavior::Crd {
        all.extend(crd::validate(object, old));
    }
    if let (Some(old), Some(fs)) = (old, object.pointer("/metadata/finalizers").and_then(Value::as_array)) {
        let old_fs =
            old.pointer("/metadata/finalizers").and_then(Value::as_array).cloned().unwrap_or_default();
        if old.pointer("/metadata/deletionTimestamp").is_some() && fs.iter().any(|f| !old_fs.contains(f)) {
            all.push(FieldError::forbidden(
                "metadata.finalizers",
                "no new finalizers can be added if the object is being deleted",
            ));
        }
    }
    if all.is_empty() {
        return Ok(());
    }
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    Err(ApiError::invalid(rt, name, &all))
}

/// Everything but metadata and (when `status` is excluded) status: what bumps `generation`.
fn spec_part(object: &Value, without_status: bool) -> Value {
    let mut v = object.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        if without_status {
            m.remove("status");
        }
    }
    v
}

/// The object minus what changes on every write (resourceVersion, managedFields times).
fn comparable(object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        if let Some(Value::Array(entries)) = m.get_mut("managedFields") {
            for e in entries.iter_mut().filter_map(Value::as_object_mut) {
                e.remove("time");
            }
        }
    }
    v
}

/// Creates `object` (a checked body in the request's view).
pub(crate) fn create(
    store: &mut Store,
    ctx: &Ctx,
    mut object: Value,
    ownership: Ownership,
) -> ApiResult<Written> {
    let rt = ctx.rt.clone();
    let mut warnings = Vec::new();
    if rt.namespaced {
        let url_ns = ctx.namespace.clone().unwrap_or_default();
        match object.pointer("/metadata/namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != url_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => object["metadata"]["namespace"] = json!(url_ns),
        }
        if !store.namespace_exists(&url_ns) {
            return Err(ApiError::namespace_not_found(&url_ns));
        }
    } else if let Some(m) = object["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    if object.pointer("/metadata/resourceVersion").and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::bad_request("resourceVersion should not be set on objects to be created"));
    }
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned();
    if name.is_empty()
        && let Some(prefix) = object.pointer("/metadata/generateName").and_then(Value::as_str)
    {
        object["metadata"]["name"] = json!(format!("{prefix}{}", meta::random_suffix()));
    }
    meta::on_create(&mut object, rt.tracks_generation());
    if rt.has_status(&ctx.version)
        && rt.behavior == Behavior::Custom
        && let Some(m) = object.as_object_mut()
    {
        m.remove("status");
    }
    kinds::prepare(rt.behavior, &mut object, None);
    if rt.behavior == Behavior::Crd {
        crd::default(&mut object);
    }
    let errors = structural(ctx, &mut object, None, &mut warnings)?;
    validate(ctx, &object, None, errors)?;
    if rt.behavior == Behavior::Crd {
        crd::set_status(&mut object, None);
    }
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned();
    let key = ctx.storage_key(&name);
    if store.get(&key).is_some() {
        return Err(ApiError::already_exists(&rt, &name));
    }
    if ownership == Ownership::Update {
        if let Some(m) = object["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
        let api_version = ctx.api_version();
        managed::record_update(None, &mut object, &writer(ctx, &api_version, false));
    }
    meta::normalize(&mut object);
    if ctx.query.dry_run()? {
        return Ok(Written { code: 201, object, warnings });
    }
    let stored = store.put(key, ctx.to_storage(object));
    if rt.behavior == Behavior::Crd {
        store.registry.insert(crd::resource_type(&stored));
    }
    Ok(Written { code: 201, object: ctx.to_view(stored), warnings })
}

/// Replaces `old` (the stored object, in the request's view) with `new`.
pub(crate) fn update(
    store: &mut Store,
    ctx: &Ctx,
    old: &Value,
    mut new: Value,
    status: bool,
    ownership: Ownership,
) -> ApiResult<Written> {
    let rt = ctx.rt.clone();
    let mut warnings = Vec::new();
    let name = old.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned();
    let requested_rv =
        new.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("").to_owned();
    let old_rv = old.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("");
    if requested_rv.is_empty() && rt.behavior == Behavior::Custom {
        let e =
            FieldError::invalid("metadata.resourceVersion", &json!("0x0"), "must be specified for an update");
        return Err(ApiError::invalid(&rt, &name, &[e]));
    }
    if !requested_rv.is_empty() && requested_rv != old_rv {
        return Err(ApiError::stale(&rt, &name));
    }
    let incoming_managed = new.pointer("/metadata/managedFields").cloned();
    if status {
        let mut merged = old.clone();
        match new.get("status") {
            Some(s) => merged["status"] = s.clone(),
            None => {
                if let Some(m) = merged.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        new = merged;
    } else if rt.has_status(&ctx.version) {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    match incoming_managed {
        Some(Value::Array(list)) if list.is_empty() => {
            if let Some(m) = new["metadata"].as_object_mut() {
                m.remove("managedFields");
            }
        }
        Some(Value::Array(list)) => new["metadata"]["managedFields"] = Value::Array(list),
        _ => {
            new["metadata"]["managedFields"] =
                old.pointer("/metadata/managedFields").cloned().unwrap_or(json!([]))
        }
    }
    meta::on_update(old, &mut new);
    new["metadata"]["namespace"] = old["metadata"].get("namespace").cloned().unwrap_or(Value::Null);
    if !status {
        kinds::prepare(rt.behavior, &mut new, Some(old));
    }
    if rt.behavior == Behavior::Crd {
        crd::default(&mut new);
    }
    let errors = structural(ctx, &mut new, Some(old), &mut warnings)?;
    validate(ctx, &new, Some(old), errors)?;
    if rt.behavior == Behavior::Crd && !status {
        crd::set_status(&mut new, Some(old));
    }
    if rt.tracks_generation()
        && spec_part(&new, rt.has_status(&ctx.version)) != spec_part(old, rt.has_status(&ctx.version))
    {
        let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
        new["metadata"]["generation"] = json!(generation + 1);
    }
    if ownership == Ownership::Update {
        let api_version = ctx.api_version();
        managed::record_update(Some(old), &mut new, &writer(ctx, &api_version, status));
    }
    meta::normalize(&mut new);
    if comparable(&new) == comparable(old) {
        return Ok(Written { code: 200, object: old.clone(), warnings });
    }
    let dry_run = ctx.query.dry_run()?;
    let finalized = new.pointer("/metadata/deletionTimestamp").is_some()
        && new.pointer("/metadata/finalizers").and_then(Value::as_array).is_none_or(Vec::is_empty);
    if dry_run {
        return Ok(Written { code: 200, object: new, warnings });
    }
    let key = ctx.storage_key(&name);
    if finalized {
        store.put(key.clone(), ctx.to_storage(new));
        let gone = crate::ops::remove(store, &rt, &key).unwrap_or(Value::Null);
        return Ok(Written { code: 200, object: ctx.to_view(gone), warnings });
    }
    let stored = store.put(key, ctx.to_storage(new));
    if rt.behavior == Behavior::Crd {
        let served = crd::resource_type(&stored);
        if let Some(previous) = crd_type_of(old)
            && (previous.0 != served.group || previous.1 != served.plural)
            && store.registry.get(&previous.0, &previous.1).is_some()
        {
            store.registry.remove(&previous.0, &previous.1);
        }
        store.registry.insert(served);
    }
    Ok(Written { code: 200, object: ctx.to_view(stored), warnings })
}

fn crd_type_of(crd: &Value) -> Option<(String, String)> {
    let group = crd.pointer("/spec/group")?.as_str()?;
    let plural = crd.pointer("/spec/names/plural")?.as_str()?;
    Some((group.to_owned(), plural.to_owned()))
}
