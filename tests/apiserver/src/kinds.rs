//! What the built-in kinds do on write: Secrets (`stringData` folded into `data`, key and size
//! rules, `immutable`, type rules), Namespaces (finalizer, phase, name label), Events (both API
//! versions share one storage: see `events`).

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::events;
use crate::resources::{Behavior, ResourceType};
use crate::status::FieldError;

const SECRET_MAX_BYTES: usize = 1024 * 1024;

/// A namespace object as the server creates it.
pub(crate) fn new_namespace(name: &str) -> Value {
    let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    crate::meta::on_create(&mut ns, false);
    prepare(Behavior::Namespace, &mut ns, None);
    ns
}

/// Server-side changes before validation, on create (`old` None) and update of the main resource.
pub(crate) fn prepare(behavior: Behavior, object: &mut Value, old: Option<&Value>) {
    match behavior {
        Behavior::Secret => {
            if let Some(Value::Object(string_data)) =
                object.as_object_mut().and_then(|o| o.remove("stringData"))
            {
                let data = object
                    .as_object_mut()
                    .map(|o| o.entry("data").or_insert_with(|| json!({})))
                    .filter(|d| d.is_object());
                if let Some(Value::Object(data)) = data {
                    for (k, v) in string_data {
                        let raw = v.as_str().unwrap_or("");
                        data.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(raw)));
                    }
                }
            }
            if object.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
                object["type"] = json!("Opaque");
            }
        }
        Behavior::Namespace => {
            let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned();
            if old.is_none() {
                if object.pointer("/spec/finalizers").is_none() {
                    object["spec"] = json!({"finalizers": ["kubernetes"]});
                }
                object["status"] = json!({"phase": "Active"});
            }
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                let labels = meta.entry("labels").or_insert_with(|| Value::Object(Map::new()));
                if let Some(labels) = labels.as_object_mut() {
                    labels.insert("kubernetes.io/metadata.name".to_owned(), json!(name));
                }
            }
        }
        Behavior::Event | Behavior::EventV1 | Behavior::Crd | Behavior::Custom => {}
    }
}

/// Rules of the kind beyond the schema.
pub(crate) fn validate(rt: &ResourceType, object: &Value, old: Option<&Value>) -> Vec<FieldError> {
    match rt.behavior {
        Behavior::Secret => validate_secret(object, old),
        Behavior::Event => events::validate_core(object),
        _ => Vec::new(),
    }
}

fn is_config_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k != "."
        && k != ".."
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn validate_secret(object: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let data = object.get("data").and_then(Value::as_object);
    let mut total = 0;
    for (k, v) in data.into_iter().flatten() {
        if !is_config_key(k) {
            errors.push(FieldError::invalid(
                format!("data[{k}]"),
                &json!(k),
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  \
                 or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            ));
        }
        total += v.as_str().map_or(0, |s| s.len() * 3 / 4);
    }
    if total > SECRET_MAX_BYTES {
        errors.push(FieldError::too_long("data", SECRET_MAX_BYTES as u64));
    }
    let type_ = object.get("type").and_then(Value::as_str).unwrap_or("Opaque");
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    let required: &[&str] = match type_ {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        _ => &[],
    };
    for k in required.iter().filter(|k| !has(k)) {
        errors.push(FieldError::required(format!("data[{k}]"), ""));
    }
    if let Some(old) = old {
        let old_type = old.get("type").and_then(Value::as_str).unwrap_or("Opaque");
        if old_type != type_ {
            errors.push(FieldError::invalid("type", &json!(type_), "field is immutable"));
        }
        if old.get("immutable").and_then(Value::as_bool) == Some(true) {
            if object.get("immutable").and_then(Value::as_bool) != Some(true) {
                errors.push(FieldError::forbidden("immutable", "field is immutable when `immutable` is set"));
            }
            if object.get("data") != old.get("data") {
                errors.push(FieldError::forbidden("data", "field is immutable when `immutable` is set"));
            }
        }
    }
    errors
}
