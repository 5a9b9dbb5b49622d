//! CustomResourceDefinitions: validation, defaulting, the status the server writes
//! (`NamesAccepted`, `Established`, `acceptedNames`, `storedVersions`) and the resource type a
//! CRD makes servable.

use serde_json::{Value, json};

use crate::resources::{Behavior, Column, ResourceType, VersionInfo, version_priority};
use crate::status::FieldError;
use crate::structural;

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Fills what the API server defaults in a CRD spec.
pub(crate) fn default(crd: &mut Value) {
    let kind = str_at(crd, "/spec/names/kind").to_owned();
    if let Some(names) = crd.pointer_mut("/spec/names").and_then(Value::as_object_mut)
        && !kind.is_empty()
    {
        names.entry("singular").or_insert_with(|| json!(kind.to_lowercase()));
        names.entry("listKind").or_insert_with(|| json!(format!("{kind}List")));
    }
    if let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) {
        spec.entry("conversion").or_insert_with(|| json!({"strategy": "None"}));
    }
}

/// Whether every version has the same `key` (absent and empty alike): the server converts a v1
/// CRD to its internal version, where such a field moves to the top of the spec, and validates
/// it there (`spec.validation`, `spec.additionalPrinterColumns`).
fn shared(versions: &[Value], key: &str) -> bool {
    let field = |v: &Value| v.get(key).filter(|f| f.as_array().is_none_or(|a| !a.is_empty())).cloned();
    versions.windows(2).all(|w| field(&w[0]) == field(&w[1]))
}

/// `ValidateCustomResourceColumnDefinition` for each printer column of a version.
fn columns(version: &Value, path: &str) -> Vec<FieldError> {
    const TYPES: [&str; 5] = ["boolean", "date", "integer", "number", "string"];
    const FORMATS: [&str; 8] = ["byte", "date", "date-time", "double", "float", "int32", "int64", "password"];
    let mut errors = Vec::new();
    let all = version.get("additionalPrinterColumns").and_then(Value::as_array);
    for (j, c) in all.into_iter().flatten().enumerate() {
        let at = format!("{path}[{j}]");
        if str_at(c, "/name").is_empty() {
            errors.push(FieldError::required(format!("{at}.name"), ""));
        }
        let types = format!("must be one of {}", TYPES.join(","));
        match str_at(c, "/type") {
            "" => errors.push(FieldError::required(format!("{at}.type"), &types)),
            t if !TYPES.contains(&t) => {
                errors.push(FieldError::invalid(format!("{at}.type"), &json!(t), &types))
            }
            _ => {}
        }
        let format = str_at(c, "/format");
        if !format.is_empty() && !FORMATS.contains(&format) {
            let detail = format!("must be one of {}", FORMATS.join(","));
            errors.push(FieldError::invalid(format!("{at}.format"), &json!(format), &detail));
        }
        match str_at(c, "/jsonPath") {
            "" => errors.push(FieldError::required(format!("{at}.JSONPath"), "")),
            p if !p.starts_with('.') => errors.push(FieldError::invalid(
                format!("{at}.JSONPath"),
                &json!(p),
                "must be a simple json path starting with .",
            )),
            _ => {}
        }
    }
    errors
}

/// The rules `ValidateCustomResourceDefinition` applies (the ones tests meet).
pub(crate) fn validate(crd: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let group = str_at(crd, "/spec/group");
    let plural = str_at(crd, "/spec/names/plural");
    let name = str_at(crd, "/metadata/name");
    if !group.contains('.') {
        errors.push(FieldError::invalid(
            "spec.group",
            &json!(group),
            "should be a domain with at least one dot",
        ));
    }
    if name != format!("{plural}.{group}") {
        errors.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if !crate::meta::is_dns1123_label(plural) {
        errors.push(FieldError::invalid("spec.names.plural", &json!(plural), "a lowercase RFC 1123 label"));
    }
    let scope = str_at(crd, "/spec/scope");
    if scope != "Namespaced" && scope != "Cluster" {
        errors.push(FieldError::not_supported(
            "spec.scope",
            &json!(scope),
            &[json!("Cluster"), json!("Namespaced")],
        ));
    }
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array).cloned().unwrap_or_default();
    if versions.is_empty() {
        errors.push(FieldError::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    } else if versions.iter().filter(|v| v.get("storage") == Some(&json!(true))).count() != 1 {
        errors.push(FieldError::invalid(
            "spec.versions",
            &json!(versions),
            "must have exactly one version marked as storage version",
        ));
    }
    let (shared_schema, shared_columns) =
        (shared(&versions, "schema"), shared(&versions, "additionalPrinterColumns"));
    for (i, v) in versions.iter().enumerate() {
        let at = format!("spec.versions[{i}]");
        match v.pointer("/schema/openAPIV3Schema") {
            None => errors
                .push(FieldError::required(format!("{at}.schema.openAPIV3Schema"), "schemas are required")),
            Some(s) if !shared_schema => {
                errors.extend(structural::validate(s, &format!("{at}.schema.openAPIV3Schema")));
            }
            Some(_) => {}
        }
        if !shared_columns {
            errors.extend(columns(v, &format!("{at}.additionalPrinterColumns")));
        }
    }
    if shared_schema && let Some(s) = versions.first().and_then(|v| v.pointer("/schema/openAPIV3Schema")) {
        errors.extend(structural::validate(s, "spec.validation.openAPIV3Schema"));
    }
    if shared_columns && let Some(v) = versions.first() {
        errors.extend(columns(v, "spec.additionalPrinterColumns"));
    }
    if let Some(old) = old {
        if str_at(old, "/spec/scope") != scope {
            errors.push(FieldError::invalid("spec.scope", &json!(scope), "field is immutable"));
        }
        if str_at(old, "/spec/group") != group {
            errors.push(FieldError::invalid("spec.group", &json!(group), "field is immutable"));
        }
    }
    errors
}

/// The status the server maintains.
pub(crate) fn set_status(crd: &mut Value, old: Option<&Value>) {
    let now = crate::meta::now();
    let since = |t: &str| {
        old.and_then(|o| o.pointer("/status/conditions"))
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some(t)))
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now))
    };
    let mut stored: Vec<Value> = old
        .and_then(|o| o.pointer("/status/storedVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array).cloned().unwrap_or_default();
    for v in versions.iter().filter(|v| v.get("storage") == Some(&json!(true))) {
        if let Some(name) = v.get("name").filter(|n| !stored.contains(n)) {
            stored.push(name.clone());
        }
    }
    crd["status"] = json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found",
             "lastTransitionTime": since("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": since("Established")},
        ],
        "acceptedNames": crd.pointer("/spec/names").cloned().unwrap_or_else(|| json!({})),
        "storedVersions": stored,
    });
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The resource type a (valid, defaulted) CRD serves.
pub(crate) fn resource_type(crd: &Value) -> ResourceType {
    let names = crd.pointer("/spec/names").cloned().unwrap_or_else(|| json!({}));
    let kind = str_at(&names, "/kind").to_owned();
    let mut versions: Vec<VersionInfo> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("served") == Some(&json!(true)))
        .map(|v| VersionInfo {
            name: str_at(v, "/name").to_owned(),
            schema: v.pointer("/schema/openAPIV3Schema").cloned(),
            status: v.pointer("/subresources/status").is_some(),
            columns: v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| Column {
                    name: str_at(c, "/name").to_owned(),
                    type_: str_at(c, "/type").to_owned(),
                    format: str_at(c, "/format").to_owned(),
                    description: str_at(c, "/description").to_owned(),
                    priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                    json_path: str_at(c, "/jsonPath").to_owned(),
                })
                .collect(),
        })
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(version_priority(&v.name)));
    ResourceType {
        group: str_at(crd, "/spec/group").to_owned(),
        plural: str_at(&names, "/plural").to_owned(),
        singular: str_at(&names, "/singular").to_owned(),
        list_kind: str_at(&names, "/listKind").to_owned(),
        kind,
        namespaced: str_at(crd, "/spec/scope") == "Namespaced",
        short_names: strings(names.get("shortNames")),
        categories: strings(names.get("categories")),
        versions,
        behavior: Behavior::Custom,
    }
}
