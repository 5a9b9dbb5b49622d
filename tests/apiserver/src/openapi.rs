//! OpenAPI v3, as much as kubectl needs: the index (`/openapi/v3`) and one document per
//! group/version whose PATCH operations declare the `fieldValidation` parameter, so kubectl 1.32
//! validates on the server (`fieldValidation=Strict`) instead of client-side. Custom resources also
//! get their schema as a component (for `kubectl explain`).

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Map, Value, json};

use crate::resources::{Behavior, Registry, ResourceType};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

fn hash(doc: &Value) -> String {
    let mut h = DefaultHasher::new();
    doc.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// Every served group/version.
fn group_versions(registry: &Registry) -> Vec<(String, String)> {
    let mut gvs = vec![(String::new(), "v1".to_owned())];
    for (group, versions) in registry.groups() {
        gvs.extend(versions.into_iter().map(|v| (group.clone(), v)));
    }
    gvs
}

/// `/openapi/v3`.
pub(crate) fn index(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for (group, version) in group_versions(registry) {
        if let Some(doc) = document(registry, &group, &version) {
            let path = gv_path(&group, &version);
            let url = format!("/openapi/v3/{path}?hash={}", hash(&doc));
            paths.insert(path, json!({"serverRelativeURL": url}));
        }
    }
    json!({"paths": paths})
}

fn param(name: &str, location: &str) -> Value {
    json!({"name": name, "in": location, "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(rt: &ResourceType, version: &str, action: &str) -> Value {
    let mut op = json!({
        "operationId": format!("{action}{}", rt.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": version, "kind": rt.kind},
        "responses": {"200": {"description": "OK"}},
    });
    let params: Vec<Value> = match action {
        "patch" | "apply" => {
            ["dryRun", "fieldManager", "fieldValidation", "force"].iter().map(|p| param(p, "query")).collect()
        }
        "put" | "post" => {
            ["dryRun", "fieldManager", "fieldValidation"].iter().map(|p| param(p, "query")).collect()
        }
        _ => Vec::new(),
    };
    op["parameters"] = Value::Array(params);
    op
}

fn schema_name(rt: &ResourceType, version: &str) -> String {
    let reversed: Vec<&str> = rt.group.split('.').rev().collect();
    format!("{}.{version}.{}", reversed.join("."), rt.kind)
}

/// The document of one group/version; None when nothing is served there.
pub(crate) fn document(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let types = registry.in_group_version(group, version);
    if types.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for rt in &types {
        let base = format!("/{}", gv_path(group, version));
        let collection = if rt.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", rt.plural)
        } else {
            format!("{base}/{}", rt.plural)
        };
        let mut path_params =
            vec![json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}})];
        if rt.namespaced {
            path_params.push(
                json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}}),
            );
        }
        paths.insert(
            collection.clone(),
            json!({"get": operation(rt, version, "list"), "post": operation(rt, version, "post")}),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({"parameters": path_params, "get": operation(rt, version, "get"), "put": operation(rt, version, "put"),
                   "patch": operation(rt, version, "patch"), "delete": operation(rt, version, "delete")}),
        );
        if rt.behavior == Behavior::Custom
            && let Some(mut schema) = rt.version(version).and_then(|v| v.schema.clone())
        {
            schema["x-kubernetes-group-version-kind"] =
                json!([{"group": rt.group, "version": version, "kind": rt.kind}]);
            schemas.insert(schema_name(rt, version), schema);
        }
    }
    let mut doc = json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": format!("v1.{}.0", crate::discovery::MINOR_VERSION)}, "paths": paths});
    if !schemas.is_empty() {
        doc["components"] = json!({"schemas": schemas});
    }
    Some(doc)
}
