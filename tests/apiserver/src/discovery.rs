//! Discovery: `/version`, `/api`, `/apis`, `/apis/<group>`, the resource lists of each
//! group/version, and the aggregated discovery documents (`apidiscovery.k8s.io/v2` and `v2beta1`)
//! that kubectl 1.32 and kube-rs ask for first.

use serde_json::{Value, json};

use crate::resources::{Registry, ResourceType};

/// The Kubernetes version the server claims (kubectl dispatchers pick a client from it).
pub(crate) const MINOR_VERSION: u32 = 32;

/// What `/version` reports.
pub(crate) fn version() -> Value {
    json!({
        "major": "1", "minor": MINOR_VERSION.to_string(), "gitVersion": format!("v1.{MINOR_VERSION}.0"),
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2024-12-11T00:00:00Z", "goVersion": "go1.23.3", "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub(crate) fn api_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

fn group_entry(name: &str, versions: &[String]) -> Value {
    let gvs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect();
    json!({"name": name, "versions": gvs, "preferredVersion": gvs.first().cloned().unwrap_or(Value::Null)})
}

pub(crate) fn api_group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> =
        registry.groups().iter().map(|(name, versions)| group_entry(name, versions)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub(crate) fn api_group(registry: &Registry, group: &str) -> Option<Value> {
    let groups = registry.groups();
    let (name, versions) = groups.iter().find(|(g, _)| g == group)?;
    let mut entry = group_entry(name, versions);
    entry["kind"] = json!("APIGroup");
    entry["apiVersion"] = json!("v1");
    Some(entry)
}

fn resource_entry(rt: &ResourceType) -> Value {
    let mut r = json!({"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
        "kind": rt.kind, "verbs": rt.verbs()});
    if !rt.short_names.is_empty() {
        r["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        r["categories"] = json!(rt.categories);
    }
    r
}

/// `APIResourceList` of a group/version; None when nothing is served there.
pub(crate) fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let types = registry.in_group_version(group, version);
    if types.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for rt in &types {
        resources.push(resource_entry(rt));
        for sub in rt.subresources(version) {
            let verbs = if sub == "finalize" { json!(["update"]) } else { json!(["get", "patch", "update"]) };
            resources.push(json!({"name": format!("{}/{sub}", rt.plural), "singularName": "",
                "namespaced": rt.namespaced, "kind": rt.kind, "verbs": verbs}));
        }
    }
    let gv = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}

fn discovery_resource(rt: &ResourceType, version: &str) -> Value {
    let kind = json!({"group": rt.group, "version": version, "kind": rt.kind});
    let mut r = json!({"resource": rt.plural, "responseKind": kind, "singularResource": rt.singular,
        "scope": if rt.namespaced { "Namespaced" } else { "Cluster" }, "verbs": rt.verbs()});
    if !rt.short_names.is_empty() {
        r["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        r["categories"] = json!(rt.categories);
    }
    let subs: Vec<Value> = rt
        .subresources(version)
        .into_iter()
        .map(|sub| {
            let verbs = if sub == "finalize" { json!(["update"]) } else { json!(["get", "patch", "update"]) };
            json!({"subresource": sub, "responseKind": kind, "verbs": verbs})
        })
        .collect();
    if !subs.is_empty() {
        r["subresources"] = Value::Array(subs);
    }
    r
}

/// `APIGroupDiscoveryList` for `/api` (core) or `/apis` (every other group).
pub(crate) fn aggregated(registry: &Registry, core: bool, api_version: &str) -> Value {
    let groups: Vec<(String, Vec<String>)> =
        if core { vec![(String::new(), vec!["v1".to_owned()])] } else { registry.groups() };
    let items: Vec<Value> = groups
        .iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = registry
                        .in_group_version(group, v)
                        .iter()
                        .map(|rt| discovery_resource(rt, v))
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items})
}
