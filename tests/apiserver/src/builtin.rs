//! The built-in resource types: their names, structural schemas (the subset of the Go types that
//! decoding checks) and printer columns.

use serde_json::{Value, json};

use crate::resources::{Behavior, Column, ResourceType, VersionInfo};

/// `ObjectMeta`, checked for every kind.
pub(crate) fn object_meta_schema() -> Value {
    let s = json!({"type": "string"});
    let ts = json!({"type": "string", "nullable": true});
    let map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    json!({"type": "object", "properties": {
        "name": s, "generateName": s, "namespace": s, "selfLink": s, "uid": s, "resourceVersion": s,
        "generation": {"type": "integer"}, "creationTimestamp": ts, "deletionTimestamp": ts,
        "deletionGracePeriodSeconds": {"type": "integer"}, "labels": map, "annotations": map,
        "finalizers": {"type": "array", "items": s},
        "ownerReferences": {"type": "array", "items": {"type": "object", "required": ["apiVersion", "kind", "name", "uid"],
            "properties": {"apiVersion": s, "kind": s, "name": s, "uid": s,
                "controller": {"type": "boolean"}, "blockOwnerDeletion": {"type": "boolean"}}}},
        "managedFields": {"type": "array", "items": {"type": "object", "properties": {
            "manager": s, "operation": s, "apiVersion": s, "time": ts, "fieldsType": s, "subresource": s,
            "fieldsV1": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
    }})
}

fn object_reference() -> Value {
    let s = json!({"type": "string"});
    json!({"type": "object", "properties": {"kind": s, "namespace": s, "name": s, "uid": s,
        "apiVersion": s, "resourceVersion": s, "fieldPath": s}})
}

fn root(properties: Value) -> Value {
    let mut schema = json!({"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
        "metadata": {"type": "object"},
    }});
    if let (Some(dst), Some(src)) = (schema["properties"].as_object_mut(), properties.as_object()) {
        dst.extend(src.clone());
    }
    schema
}

fn secret_schema() -> Value {
    root(json!({
        "data": {"type": "object", "additionalProperties": {"type": "string", "format": "byte"}},
        "stringData": {"type": "object", "additionalProperties": {"type": "string"}},
        "type": {"type": "string"},
        "immutable": {"type": "boolean"},
    }))
}

fn namespace_schema() -> Value {
    root(json!({
        "spec": {"type": "object", "properties": {"finalizers": {"type": "array", "items": {"type": "string"}}}},
        "status": {"type": "object", "properties": {"phase": {"type": "string"},
            "conditions": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
    }))
}

fn event_schema() -> Value {
    let s = json!({"type": "string"});
    let ts = json!({"type": "string", "nullable": true});
    root(json!({
        "involvedObject": object_reference(), "reason": s, "message": s,
        "source": {"type": "object", "properties": {"component": s, "host": s}},
        "firstTimestamp": ts, "lastTimestamp": ts, "count": {"type": "integer"}, "type": s,
        "eventTime": ts, "action": s, "related": object_reference(),
        "series": {"type": "object", "properties": {"count": {"type": "integer"}, "lastObservedTime": ts}},
        "reportingComponent": s, "reportingInstance": s,
    }))
}

fn event_v1_schema() -> Value {
    let s = json!({"type": "string"});
    let ts = json!({"type": "string", "nullable": true});
    root(json!({
        "eventTime": ts, "reportingController": s, "reportingInstance": s, "action": s, "reason": s,
        "regarding": object_reference(), "related": object_reference(), "note": s, "type": s,
        "series": {"type": "object", "properties": {"count": {"type": "integer"}, "lastObservedTime": ts}},
        "deprecatedSource": {"type": "object", "properties": {"component": s, "host": s}},
        "deprecatedFirstTimestamp": ts, "deprecatedLastTimestamp": ts, "deprecatedCount": {"type": "integer"},
    }))
}

fn crd_schema() -> Value {
    let s = json!({"type": "string"});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let any = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    let names = json!({"type": "object", "required": ["plural", "kind"], "properties": {
        "plural": s, "singular": s, "kind": s, "listKind": s, "shortNames": strings, "categories": strings}});
    let column = json!({"type": "object", "required": ["name", "type", "jsonPath"], "properties": {
        "name": s, "type": s, "format": s, "description": s, "priority": {"type": "integer"}, "jsonPath": s}});
    let version = json!({"type": "object", "required": ["name", "served", "storage"], "properties": {
        "name": s, "served": {"type": "boolean"}, "storage": {"type": "boolean"},
        "deprecated": {"type": "boolean"}, "deprecationWarning": s,
        "schema": {"type": "object", "properties": {"openAPIV3Schema": any}},
        "subresources": {"type": "object", "properties": {"status": any, "scale": any}},
        "additionalPrinterColumns": {"type": "array", "items": column},
        "selectableFields": {"type": "array", "items": {"type": "object", "properties": {"jsonPath": s}}},
    }});
    root(json!({
        "spec": {"type": "object", "required": ["group", "names", "scope", "versions"], "properties": {
            "group": s, "names": names, "scope": s,
            "versions": {"type": "array", "items": version},
            "conversion": any, "preserveUnknownFields": {"type": "boolean"},
        }},
        "status": any,
    }))
}

fn age() -> Column {
    Column::new("Age", "date", ".metadata.creationTimestamp")
}

fn builtin(group: &str, plural: &str, kind: &str, namespaced: bool, behavior: Behavior) -> ResourceType {
    ResourceType {
        group: group.to_owned(),
        plural: plural.to_owned(),
        singular: kind.to_lowercase(),
        kind: kind.to_owned(),
        list_kind: format!("{kind}List"),
        namespaced,
        short_names: Vec::new(),
        categories: Vec::new(),
        versions: Vec::new(),
        behavior,
    }
}

fn version(name: &str, schema: Value, status: bool, columns: Vec<Column>) -> Vec<VersionInfo> {
    vec![VersionInfo { name: name.to_owned(), schema: Some(schema), status, columns }]
}

/// Every built-in type.
pub(crate) fn types() -> Vec<ResourceType> {
    let mut secret = builtin("", "secrets", "Secret", true, Behavior::Secret);
    secret.versions = version(
        "v1",
        secret_schema(),
        false,
        vec![Column::new("Type", "string", ".type"), Column::new("Data", "string", "#data-count"), age()],
    );

    let mut namespace = builtin("", "namespaces", "Namespace", false, Behavior::Namespace);
    namespace.short_names = vec!["ns".to_owned()];
    namespace.versions = version(
        "v1",
        namespace_schema(),
        true,
        vec![Column::new("Status", "string", ".status.phase"), age()],
    );

    let event_columns = vec![
        Column::new("Last Seen", "string", "#event-last-seen"),
        Column::new("Type", "string", ".type"),
        Column::new("Reason", "string", ".reason"),
        Column::new("Object", "string", "#event-object"),
        Column::new("Message", "string", "#event-message"),
        Column { priority: 1, format: "name".to_owned(), ..Column::new("Name", "string", "#name") },
    ];
    let mut event = builtin("", "events", "Event", true, Behavior::Event);
    event.short_names = vec!["ev".to_owned()];
    event.versions = version("v1", event_schema(), false, event_columns.clone());

    let mut event_v1 = builtin("events.k8s.io", "events", "Event", true, Behavior::EventV1);
    event_v1.short_names = vec!["ev".to_owned()];
    event_v1.versions = version("v1", event_v1_schema(), false, event_columns);

    let mut crd = builtin(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        Behavior::Crd,
    );
    crd.short_names = vec!["crd".to_owned(), "crds".to_owned()];
    crd.categories = vec!["api-extensions".to_owned()];
    crd.versions = version("v1", crd_schema(), true, vec![Column::new("Created At", "date", "#created-at")]);

    vec![secret, namespace, event, event_v1, crd]
}
