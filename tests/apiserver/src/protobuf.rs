//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), which kubectl's typed
//! clients send for imperative commands (`kubectl create secret`, `kubectl create namespace`).
//! Decoded into JSON for Secrets, Namespaces and DeleteOptions; other kinds answer 415 as before.
//! Answers are always JSON (those clients accept it).

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::status::{ApiError, ApiResult};

const MAGIC: &[u8] = b"k8s\x00";

/// One field of a protobuf message.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn bad(why: &str) -> ApiError {
    ApiError::bad_request(format!("unable to decode protobuf body: {why}"))
}

fn varint(buf: &[u8], pos: &mut usize) -> ApiResult<u64> {
    let mut value = 0_u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos).ok_or_else(|| bad("truncated varint"))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(bad("varint too long"))
}

fn fields(buf: &[u8]) -> ApiResult<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let (number, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => out.push((number, Field::Varint(varint(buf, &mut pos)?))),
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).map_err(|_| bad("length"))?;
                let end =
                    pos.checked_add(len).filter(|e| *e <= buf.len()).ok_or_else(|| bad("truncated field"))?;
                out.push((number, Field::Bytes(&buf[pos..end])));
                pos = end;
            }
            1 => pos += 8,
            5 => pos += 4,
            _ => return Err(bad("unsupported wire type")),
        }
    }
    Ok(out)
}

fn string(b: &[u8]) -> ApiResult<Value> {
    std::str::from_utf8(b).map(|s| json!(s)).map_err(|_| bad("invalid UTF-8"))
}

/// A `map<string, string>` (or bytes, base64-encoded) entry.
fn map_entry(b: &[u8], bytes_value: bool, into: &mut Map<String, Value>) -> ApiResult<()> {
    let (mut key, mut value) = (String::new(), Value::String(String::new()));
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(k)) => {
                key = std::str::from_utf8(k).map_err(|_| bad("invalid UTF-8"))?.to_owned()
            }
            (2, Field::Bytes(v)) if bytes_value => {
                value = json!(base64::engine::general_purpose::STANDARD.encode(v))
            }
            (2, Field::Bytes(v)) => value = string(v)?,
            _ => {}
        }
    }
    into.insert(key, value);
    Ok(())
}

fn time(b: &[u8]) -> ApiResult<Value> {
    let mut seconds = 0_i64;
    for (n, f) in fields(b)? {
        if let (1, Field::Varint(v)) = (n, f) {
            seconds = v as i64;
        }
    }
    if seconds == 0 {
        return Ok(Value::Null);
    }
    let t = jiff::Timestamp::from_second(seconds).map_err(|_| bad("time out of range"))?;
    Ok(json!(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

fn object_meta(b: &[u8]) -> ApiResult<Value> {
    let mut m = Map::new();
    let (mut labels, mut annotations, mut finalizers, mut owners) =
        (Map::new(), Map::new(), Vec::new(), Vec::new());
    for (n, f) in fields(b)? {
        let name = match n {
            1 => "name",
            2 => "generateName",
            3 => "namespace",
            5 => "uid",
            6 => "resourceVersion",
            _ => "",
        };
        match (n, f) {
            (1..=3 | 5 | 6, Field::Bytes(v)) => {
                m.insert(name.to_owned(), string(v)?);
            }
            (7, Field::Varint(v)) => {
                m.insert("generation".to_owned(), json!(v as i64));
            }
            (8, Field::Bytes(v)) => {
                m.insert("creationTimestamp".to_owned(), time(v)?);
            }
            (11, Field::Bytes(v)) => map_entry(v, false, &mut labels)?,
            (12, Field::Bytes(v)) => map_entry(v, false, &mut annotations)?,
            (13, Field::Bytes(v)) => owners.push(owner_reference(v)?),
            (14, Field::Bytes(v)) => finalizers.push(string(v)?),
            _ => {}
        }
    }
    for (k, v) in [("labels", Value::Object(labels)), ("annotations", Value::Object(annotations))] {
        if v.as_object().is_some_and(|o| !o.is_empty()) {
            m.insert(k.to_owned(), v);
        }
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".to_owned(), Value::Array(finalizers));
    }
    if !owners.is_empty() {
        m.insert("ownerReferences".to_owned(), Value::Array(owners));
    }
    Ok(Value::Object(m))
}

fn owner_reference(b: &[u8]) -> ApiResult<Value> {
    let mut o = Map::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(v)) => drop(o.insert("kind".to_owned(), string(v)?)),
            (3, Field::Bytes(v)) => drop(o.insert("name".to_owned(), string(v)?)),
            (4, Field::Bytes(v)) => drop(o.insert("uid".to_owned(), string(v)?)),
            (5, Field::Bytes(v)) => drop(o.insert("apiVersion".to_owned(), string(v)?)),
            (6, Field::Varint(v)) => drop(o.insert("controller".to_owned(), json!(v != 0))),
            (7, Field::Varint(v)) => drop(o.insert("blockOwnerDeletion".to_owned(), json!(v != 0))),
            _ => {}
        }
    }
    Ok(Value::Object(o))
}

fn secret(b: &[u8], object: &mut Map<String, Value>) -> ApiResult<()> {
    let (mut data, mut string_data) = (Map::new(), Map::new());
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(v)) => drop(object.insert("metadata".to_owned(), object_meta(v)?)),
            (2, Field::Bytes(v)) => map_entry(v, true, &mut data)?,
            (3, Field::Bytes(v)) => drop(object.insert("type".to_owned(), string(v)?)),
            (4, Field::Bytes(v)) => map_entry(v, false, &mut string_data)?,
            (5, Field::Varint(v)) => drop(object.insert("immutable".to_owned(), json!(v != 0))),
            _ => {}
        }
    }
    if !data.is_empty() {
        object.insert("data".to_owned(), Value::Object(data));
    }
    if !string_data.is_empty() {
        object.insert("stringData".to_owned(), Value::Object(string_data));
    }
    Ok(())
}

fn namespace(b: &[u8], object: &mut Map<String, Value>) -> ApiResult<()> {
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(v)) => drop(object.insert("metadata".to_owned(), object_meta(v)?)),
            (2, Field::Bytes(v)) => {
                let mut finalizers = Vec::new();
                for (sn, sf) in fields(v)? {
                    if let (1, Field::Bytes(x)) = (sn, sf) {
                        finalizers.push(string(x)?);
                    }
                }
                if !finalizers.is_empty() {
                    object.insert("spec".to_owned(), json!({"finalizers": finalizers}));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn delete_options(b: &[u8], object: &mut Map<String, Value>) -> ApiResult<()> {
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Varint(v)) => drop(object.insert("gracePeriodSeconds".to_owned(), json!(v as i64))),
            (2, Field::Bytes(v)) => {
                let mut pre = Map::new();
                for (pn, pf) in fields(v)? {
                    match (pn, pf) {
                        (1, Field::Bytes(x)) => drop(pre.insert("uid".to_owned(), string(x)?)),
                        (2, Field::Bytes(x)) => drop(pre.insert("resourceVersion".to_owned(), string(x)?)),
                        _ => {}
                    }
                }
                object.insert("preconditions".to_owned(), Value::Object(pre));
            }
            (4, Field::Bytes(v)) => drop(object.insert("propagationPolicy".to_owned(), string(v)?)),
            (5, Field::Bytes(v)) => {
                let dry = object.entry("dryRun").or_insert_with(|| json!([]));
                if let Some(list) = dry.as_array_mut() {
                    list.push(string(v)?);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Decodes a protobuf body (with its `k8s\0` envelope) into the JSON object it stands for.
pub(crate) fn decode(body: &[u8]) -> ApiResult<Value> {
    let envelope = body.strip_prefix(MAGIC).ok_or_else(|| bad("missing the k8s envelope"))?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(envelope)? {
        match (n, f) {
            (1, Field::Bytes(type_meta)) => {
                for (tn, tf) in fields(type_meta)? {
                    match (tn, tf) {
                        (1, Field::Bytes(v)) => api_version = String::from_utf8_lossy(v).into_owned(),
                        (2, Field::Bytes(v)) => kind = String::from_utf8_lossy(v).into_owned(),
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(v)) => raw = v,
            _ => {}
        }
    }
    let mut object = Map::new();
    object.insert("apiVersion".to_owned(), json!(api_version));
    object.insert("kind".to_owned(), json!(kind));
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "Secret") => secret(raw, &mut object)?,
        ("v1", "Namespace") => namespace(raw, &mut object)?,
        (_, "DeleteOptions") => delete_options(raw, &mut object)?,
        _ => {
            return Err(ApiError::unsupported_media_type(
                "application/vnd.kubernetes.protobuf",
                &["application/json", "application/yaml"],
            ));
        }
    }
    Ok(Value::Object(object))
}
