//! `metadata`: validation as `ValidateObjectMeta` does it, and the fields the server owns (uid,
//! creationTimestamp, generation).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::status::FieldError;

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
     characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', \
     regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters \
     or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used \
     for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must \
     start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for \
     validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// The current time as Kubernetes writes `metav1.Time` (RFC 3339, seconds, UTC).
pub(crate) fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random (version 4 layout) UUID.
pub(crate) fn new_uid() -> String {
    let (a, b) = (random_u64(), random_u64());
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x4000;
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// The suffix `generateName` gets: five characters from Kubernetes' alphabet.
pub(crate) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = random_u64();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize];
            n /= ALPHABET.len() as u64;
            char::from(c)
        })
        .collect()
}

pub(crate) fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub(crate) fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(|label| is_dns1123_label(label) || is_label_with_long_ok(label))
}

fn is_label_with_long_ok(label: &str) -> bool {
    // Subdomain labels follow the label rules but only the whole name is length-limited.
    !label.is_empty()
        && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

fn is_qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// A label or annotation key (`prefix/name` or `name`).
fn check_qualified_name(field: &str, key: &str, errors: &mut Vec<FieldError>) {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && (prefix.is_empty() || !is_dns1123_subdomain(prefix))
    {
        errors.push(FieldError::invalid(field, &json!(key), &format!("prefix part {DNS1123_SUBDOMAIN_MSG}")));
        return;
    }
    if !is_qualified_name_part(name) {
        errors.push(FieldError::invalid(field, &json!(key), QUALIFIED_NAME_MSG));
    }
}

/// Validates `metadata` of an object about to be stored.
pub(crate) fn validate(meta: &Value, namespaced: bool, label_name: bool) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        errors.push(FieldError::required("metadata.name", "name or generateName is required"));
    } else if label_name && !is_dns1123_label(name) {
        errors.push(FieldError::invalid("metadata.name", &json!(name), DNS1123_LABEL_MSG));
    } else if !label_name && !is_dns1123_subdomain(name) {
        errors.push(FieldError::invalid("metadata.name", &json!(name), DNS1123_SUBDOMAIN_MSG));
    }
    let namespace = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
    if namespaced && namespace.is_empty() {
        errors.push(FieldError::required("metadata.namespace", ""));
    } else if !namespaced && !namespace.is_empty() {
        errors.push(FieldError::forbidden("metadata.namespace", "not allowed on this type"));
    }
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            check_qualified_name("metadata.labels", k, &mut errors);
            let v = v.as_str().unwrap_or("");
            if !v.is_empty() && !is_qualified_name_part(v) {
                errors.push(FieldError::invalid(
                    "metadata.labels",
                    &json!(v),
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or \
                     '.', and must start and end with an alphanumeric character",
                ));
            }
        }
    }
    if let Some(annotations) = meta.get("annotations").and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in annotations {
            check_qualified_name("metadata.annotations", &k.to_lowercase(), &mut errors);
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            errors.push(FieldError::too_long("metadata.annotations", 256 * 1024));
        }
    }
    if let Some(finalizers) = meta.get("finalizers").and_then(Value::as_array) {
        for (i, f) in finalizers.iter().enumerate() {
            check_qualified_name(&format!("metadata.finalizers[{i}]"), f.as_str().unwrap_or(""), &mut errors);
        }
    }
    errors
}

/// Fills what the server owns on creation.
pub(crate) fn on_create(object: &mut Value, tracks_generation: bool) {
    let meta = &mut object["metadata"];
    meta["uid"] = json!(new_uid());
    meta["creationTimestamp"] = json!(now());
    if let Some(m) = meta.as_object_mut() {
        for f in
            ["deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "resourceVersion", "generation"]
        {
            m.remove(f);
        }
        if tracks_generation {
            m.insert("generation".to_owned(), json!(1));
        }
    }
}

/// Keeps what the client may not change on update.
pub(crate) fn on_update(old: &Value, new: &mut Value) {
    let old_meta = &old["metadata"];
    let Some(meta) = new["metadata"].as_object_mut() else { return };
    for f in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
        match old_meta.get(f) {
            Some(v) => {
                meta.insert(f.to_owned(), v.clone());
            }
            None => {
                meta.remove(f);
            }
        }
    }
    meta.remove("selfLink");
}

/// Drops empty and null metadata fields the way Go's `omitempty` does on output.
pub(crate) fn normalize(object: &mut Value) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|_, v| {
            let empty = v.is_null()
                || v.as_object().is_some_and(serde_json::Map::is_empty)
                || v.as_array().is_some_and(Vec::is_empty)
                || v.as_str().is_some_and(str::is_empty);
            !empty
        });
    }
}
