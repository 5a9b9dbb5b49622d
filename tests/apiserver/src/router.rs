//! Request routing: non-resource paths (discovery, OpenAPI, health), then resource paths
//! (`/api/v1/...`, `/apis/<group>/<version>/...`, namespaced or not, with `status`), and the verb
//! each method means there.

use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::media::{self, Output};
use crate::query::{Ctx, Query};
use crate::selector::Selector;
use crate::server::Shared;
use crate::status::{ApiError, ApiResult};
use crate::table::{self, Include};
use crate::watch::{self, Format};
use crate::write::Written;
use crate::{discovery, openapi, ops};

/// What a request gets back.
#[derive(Debug)]
pub(crate) enum Reply {
    Json { code: u16, body: Value, warnings: Vec<String>, yaml: bool, content_type: Option<String> },
    Text { code: u16, body: String },
    Stream { rx: mpsc::Receiver<Bytes> },
}

impl Reply {
    fn json(code: u16, body: Value) -> Self {
        Reply::Json { code, body, warnings: Vec::new(), yaml: false, content_type: None }
    }

    pub fn error(e: &ApiError) -> Self {
        Self::json(e.code, e.to_status())
    }
}

/// A request, as the router needs it.
#[derive(Debug)]
pub(crate) struct Incoming<'a> {
    pub method: Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub body: &'a [u8],
}

/// The resourceVersion a GET of resources must see at least, when it names one the watch cache
/// would wait for (watches: see [`watch::start`]).
pub(crate) fn not_older_than(req: &Incoming<'_>) -> Option<u64> {
    let resources = req.path.starts_with("/api/") || req.path.starts_with("/apis/");
    let query = Query::parse(req.query);
    (req.method == Method::GET && resources && query.flag("watch") == Ok(false))
        .then(|| ops::not_older_than(&query))
        .flatten()
}

pub(crate) fn dispatch(shared: &Arc<Shared>, req: &Incoming<'_>) -> Reply {
    match route(shared, req) {
        Ok(reply) => reply,
        Err(e) => Reply::error(&e),
    }
}

fn route(shared: &Arc<Shared>, req: &Incoming<'_>) -> ApiResult<Reply> {
    let segments: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let get_only = |reply: ApiResult<Reply>| {
        if req.method == Method::GET { reply } else { Err(ApiError::method_not_allowed()) }
    };
    match segments.as_slice() {
        ["version"] => get_only(Ok(Reply::json(200, discovery::version()))),
        ["healthz" | "livez" | "readyz"] => get_only(Ok(Reply::Text { code: 200, body: "ok".to_owned() })),
        ["api"] => get_only(discover(shared, req, true)),
        ["apis"] => get_only(discover(shared, req, false)),
        ["apis", group] => {
            let store = shared.lock_store();
            get_only(
                discovery::api_group(&store.registry, group)
                    .map(|v| Reply::json(200, v))
                    .ok_or_else(ApiError::path_not_found),
            )
        }
        ["api", "v1"] | ["apis", _, _] => {
            let (group, version) = if segments[0] == "api" { ("", "v1") } else { (segments[1], segments[2]) };
            let store = shared.lock_store();
            let list = discovery::resource_list(&store.registry, group, version);
            get_only(list.map(|v| Reply::json(200, v)).ok_or_else(ApiError::path_not_found))
        }
        ["openapi", "v3"] => {
            let store = shared.lock_store();
            get_only(Ok(Reply::json(200, openapi::index(&store.registry))))
        }
        ["openapi", "v3", "api", version] | ["openapi", "v3", "apis", _, version] => {
            let group = if segments[2] == "api" { "" } else { segments[3] };
            let store = shared.lock_store();
            let doc = openapi::document(&store.registry, group, version);
            get_only(doc.map(|v| Reply::json(200, v)).ok_or_else(ApiError::path_not_found))
        }
        ["api", "v1", rest @ ..] => resource(shared, req, "", "v1", rest),
        ["apis", group, version, rest @ ..] => resource(shared, req, group, version, rest),
        _ => Err(ApiError::path_not_found()),
    }
}

fn discover(shared: &Arc<Shared>, req: &Incoming<'_>, core: bool) -> ApiResult<Reply> {
    let store = shared.lock_store();
    if let Some(v) = media::aggregated_discovery(req.accept) {
        let api_version = format!("apidiscovery.k8s.io/{v}");
        let body = discovery::aggregated(&store.registry, core, &api_version);
        let content_type = format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList");
        return Ok(Reply::Json {
            code: 200,
            body,
            warnings: Vec::new(),
            yaml: false,
            content_type: Some(content_type),
        });
    }
    if !media::accepts_json(req.accept) {
        return Err(ApiError::not_acceptable());
    }
    let body = if core {
        discovery::api_versions(&shared.address())
    } else {
        discovery::api_group_list(&store.registry)
    };
    Ok(Reply::json(200, body))
}

fn manager(query: &Query, user_agent: Option<&str>) -> String {
    match query.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) => m.to_owned(),
        None => user_agent
            .and_then(|ua| ua.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_owned(),
    }
}

fn resource(
    shared: &Arc<Shared>,
    req: &Incoming<'_>,
    group: &str,
    version: &str,
    rest: &[&str],
) -> ApiResult<Reply> {
    let query = Query::parse(req.query);
    let registry_lookup = |plural: &str| shared.lock_store().registry.lookup(group, version, plural);
    let (rt, namespace, tail) = match rest {
        ["namespaces", ns, plural, tail @ ..] if registry_lookup(plural).is_some_and(|rt| rt.namespaced) => {
            (registry_lookup(plural).ok_or_else(ApiError::path_not_found)?, Some((*ns).to_owned()), tail)
        }
        [plural, tail @ ..] => {
            let rt = registry_lookup(plural).ok_or_else(ApiError::path_not_found)?;
            if rt.namespaced && !tail.is_empty() {
                return Err(ApiError::path_not_found());
            }
            (rt, None, tail)
        }
        [] => return Err(ApiError::path_not_found()),
    };
    let ctx =
        Ctx { rt, version: version.to_owned(), namespace, manager: manager(&query, req.user_agent), query };
    if ctx.manager.len() > 128 {
        return Err(ApiError::unprocessable("fieldManager: Too long: must have at most 128 bytes"));
    }
    match tail {
        [] => collection(shared, req, &ctx),
        [name] => item(shared, req, &ctx, name, false),
        [name, "status"] if ctx.rt.subresources(version).contains(&"status") => {
            item(shared, req, &ctx, name, true)
        }
        _ => Err(ApiError::path_not_found()),
    }
}

fn output(req: &Incoming<'_>, ctx: &Ctx) -> ApiResult<Output> {
    media::output(req.accept, Include::parse(ctx.query.get("includeObject")))
        .ok_or_else(ApiError::not_acceptable)
}

fn body_json(req: &Incoming<'_>) -> ApiResult<Value> {
    let media = req
        .content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" | "" => serde_json::from_slice(req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding from json: {e}"))),
        "application/yaml" => serde_yaml::from_slice(req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding from yaml: {e}"))),
        "application/vnd.kubernetes.protobuf" => crate::protobuf::decode(req.body),
        other => Err(ApiError::unsupported_media_type(other, &["application/json", "application/yaml"])),
    }
}

fn written(w: Written) -> Reply {
    Reply::Json { code: w.code, body: w.object, warnings: w.warnings, yaml: false, content_type: None }
}

fn selector(ctx: &Ctx) -> ApiResult<Selector> {
    Selector::parse(&ctx.rt, ctx.query.get("labelSelector"), ctx.query.get("fieldSelector"))
}

fn all_namespaces(ctx: &Ctx) -> bool {
    ctx.rt.namespaced && ctx.namespace.is_none()
}

fn collection(shared: &Arc<Shared>, req: &Incoming<'_>, ctx: &Ctx) -> ApiResult<Reply> {
    match req.method {
        Method::GET => {
            let out = output(req, ctx)?;
            let selector = selector(ctx)?;
            if ctx.query.flag("watch")? {
                let rx = watch::start(shared, ctx.clone(), selector, out.format)?;
                return Ok(Reply::Stream { rx });
            }
            let page = ops::list(&shared.lock_store(), ctx, &selector)?;
            Ok(list_reply(ctx, page, out))
        }
        Method::POST if !all_namespaces(ctx) => {
            let body = body_json(req)?;
            Ok(written(ops::create(&mut shared.lock_store(), ctx, body)?))
        }
        Method::DELETE if !all_namespaces(ctx) && ctx.rt.verbs().contains(&"deletecollection") => {
            let options = if req.body.is_empty() { json!({}) } else { body_json(req)? };
            let selector = selector(ctx)?;
            let deleted = ops::delete_collection(&mut shared.lock_store(), ctx, &selector, &options)?;
            let rv = shared.lock_store().current_rv();
            let page = ops::Page { items: deleted, rv, continue_: None, remaining: None };
            Ok(list_reply(ctx, page, Output { format: Format::Object, yaml: false }))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn list_reply(ctx: &Ctx, page: ops::Page, out: Output) -> Reply {
    let ops::Page { items, rv, continue_, remaining } = page;
    let mut body = match out.format {
        Format::Table(include) => table::table(&ctx.rt, &ctx.version, &items, Some(rv), include, true),
        Format::Metadata => json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": rv.to_string()}, "items": items.iter().map(table::partial).collect::<Vec<_>>()}),
        Format::Object => json!({"kind": ctx.rt.list_kind, "apiVersion": ctx.api_version(),
            "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
    };
    if let Some(token) = continue_ {
        body["metadata"]["continue"] = json!(token);
    }
    if let Some(n) = remaining {
        body["metadata"]["remainingItemCount"] = json!(n);
    }
    Reply::Json { code: 200, body, warnings: Vec::new(), yaml: out.yaml, content_type: None }
}

fn item(shared: &Arc<Shared>, req: &Incoming<'_>, ctx: &Ctx, name: &str, status: bool) -> ApiResult<Reply> {
    match req.method {
        Method::GET => {
            let out = output(req, ctx)?;
            if !status && ctx.query.flag("watch")? {
                let mut ctx = ctx.clone();
                let fields = match ctx.query.get("fieldSelector").filter(|s| !s.is_empty()) {
                    Some(f) => format!("{f},metadata.name={name}"),
                    None => format!("metadata.name={name}"),
                };
                let selector = Selector::parse(&ctx.rt, ctx.query.get("labelSelector"), Some(&fields))?;
                ctx.query = Query::parse(req.query);
                let rx = watch::start(shared, ctx, selector, out.format)?;
                return Ok(Reply::Stream { rx });
            }
            let object = ops::get(&shared.lock_store(), ctx, name)?;
            let body = match out.format {
                Format::Object => object,
                Format::Metadata => table::partial(&object),
                Format::Table(include) => {
                    let rv = object
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse().ok());
                    table::table(&ctx.rt, &ctx.version, &[object], rv, include, true)
                }
            };
            Ok(Reply::Json { code: 200, body, warnings: Vec::new(), yaml: out.yaml, content_type: None })
        }
        Method::PUT => {
            let body = body_json(req)?;
            Ok(written(ops::update(&mut shared.lock_store(), ctx, name, body, status)?))
        }
        Method::PATCH => {
            let content_type = req.content_type.unwrap_or("");
            Ok(written(ops::patch(&mut shared.lock_store(), ctx, name, content_type, req.body, status)?))
        }
        Method::DELETE if !status => {
            let options = if req.body.is_empty() { json!({}) } else { body_json(req)? };
            Ok(written(ops::delete(&mut shared.lock_store(), ctx, name, &options)?))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}
