//! Errors as the API server answers them: a `Status` object with the code, reason and message a
//! real kube-apiserver gives for the same failure.

use serde_json::{Value, json};

use crate::resources::ResourceType;

/// A failed request, rendered as a `meta/v1 Status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// One field error of an `Invalid` answer (`field.ErrorList` in Kubernetes).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldError {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub(crate) fn required(field: impl Into<String>, detail: &str) -> Self {
        let message =
            if detail.is_empty() { "Required value".to_owned() } else { format!("Required value: {detail}") };
        Self { reason: "FieldValueRequired", field: field.into(), message }
    }

    pub(crate) fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        let mut message = format!("Invalid value: {}", render_value(value));
        if !detail.is_empty() {
            message.push_str(": ");
            message.push_str(detail);
        }
        Self { reason: "FieldValueInvalid", field: field.into(), message }
    }

    pub(crate) fn not_supported(field: impl Into<String>, value: &Value, allowed: &[Value]) -> Self {
        let allowed: Vec<String> = allowed.iter().map(render_value).collect();
        let message =
            format!("Unsupported value: {}: supported values: {}", render_value(value), allowed.join(", "));
        Self { reason: "FieldValueNotSupported", field: field.into(), message }
    }

    pub(crate) fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self { reason: "FieldValueForbidden", field: field.into(), message: format!("Forbidden: {detail}") }
    }

    pub(crate) fn too_long(field: impl Into<String>, max: u64) -> Self {
        let message = format!("Too long: may not be more than {max} bytes");
        Self { reason: "FieldValueTooLong", field: field.into(), message }
    }

    pub(crate) fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        let message = format!("Duplicate value: {}", render_value(value));
        Self { reason: "FieldValueDuplicate", field: field.into(), message }
    }

    pub(crate) fn line(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// Go's `%#v`-like rendering of a JSON value used in field error messages.
fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_owned(),
        other => other.to_string(),
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), details: None }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The `Status` body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        } else if self.reason == "NotFound" || self.reason == "MethodNotAllowed" {
            status["details"] = json!({});
        }
        if self.reason.is_empty()
            && let Some(map) = status.as_object_mut()
        {
            map.remove("reason");
        }
        status
    }

    /// An unknown path or resource.
    pub(crate) fn path_not_found() -> Self {
        Self::new(404, "NotFound", "the server could not find the requested resource")
    }

    pub(crate) fn not_found(rt: &ResourceType, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} {name:?} not found", rt.qualified()))
            .with_details(json!({"name": name, "group": rt.group, "kind": rt.plural}))
    }

    pub(crate) fn namespace_not_found(name: &str) -> Self {
        Self::new(404, "NotFound", format!("namespaces {name:?} not found"))
            .with_details(json!({"name": name, "kind": "namespaces"}))
    }

    pub(crate) fn already_exists(rt: &ResourceType, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{} {name:?} already exists", rt.qualified()))
            .with_details(json!({"name": name, "group": rt.group, "kind": rt.plural}))
    }

    pub(crate) fn conflict(rt: &ResourceType, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {} {name:?}: {why}", rt.qualified()),
        )
        .with_details(json!({"name": name, "group": rt.group, "kind": rt.plural}))
    }

    pub(crate) fn stale(rt: &ResourceType, name: &str) -> Self {
        Self::conflict(
            rt,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `Kind "name" is invalid: ...` with one cause per field error.
    pub(crate) fn invalid(rt: &ResourceType, name: &str, errors: &[FieldError]) -> Self {
        let lines: Vec<String> = errors.iter().map(FieldError::line).collect();
        let joined = if lines.len() == 1 { lines.concat() } else { format!("[{}]", lines.join(", ")) };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.reason, "message": e.message, "field": e.field}))
            .collect();
        let kind = if rt.group.is_empty() { rt.kind.clone() } else { format!("{}.{}", rt.kind, rt.group) };
        Self::new(422, "Invalid", format!("{kind} {name:?} is invalid: {joined}"))
            .with_details(json!({"name": name, "group": rt.group, "kind": rt.kind, "causes": causes}))
    }

    /// 422 without a kind (a patch that cannot be applied, invalid options).
    pub(crate) fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// A body that does not decode as the kind (wrong types, unknown fields under Strict).
    pub(crate) fn undecodable(rt: &ResourceType, version: &str, why: &str) -> Self {
        Self::bad_request(format!(
            "{} in version {version:?} cannot be handled as a {}: {why}",
            rt.kind, rt.kind
        ))
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    }

    pub(crate) fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
        .with_details(json!({"causes": [{"reason": "UnexpectedServerResponse", "message": content_type}]}))
    }

    pub(crate) fn not_acceptable() -> Self {
        Self::new(
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json, application/yaml, \
             application/json;as=Table;v=v1;g=meta.k8s.io",
        )
    }

    /// 410 for a watch from a compacted resourceVersion.
    pub(crate) fn too_old(requested: u64, oldest: u64) -> Self {
        Self::new(410, "Expired", format!("too old resource version: {requested} ({oldest})"))
    }

    /// 410 for an exact list from a compacted resourceVersion.
    pub(crate) fn list_too_old() -> Self {
        Self::new(410, "Expired", "The resourceVersion for the provided list is too old.")
    }

    /// 504 for a read ahead of the store (`storage.NewTooLargeResourceVersionError`).
    pub(crate) fn too_large_resource_version(requested: u64, current: u64) -> Self {
        Self::new(
            504,
            "Timeout",
            format!("Timeout: Too large resource version: {requested}, current: {current}"),
        )
        .with_details(
            json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                   "retryAfterSeconds": 1}),
        )
    }

    /// The answer of an injected fault.
    pub(crate) fn injected(code: u16) -> Self {
        let reason = match code {
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            409 => "Conflict",
            403 => "Forbidden",
            401 => "Unauthorized",
            404 => "NotFound",
            _ => "",
        };
        Self::new(code, reason, format!("injected failure (code {code})"))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}
