//! Query parameters and the request context every operation gets.

use std::sync::Arc;

use serde_json::Value;

use crate::events;
use crate::resources::{Behavior, ResourceType};
use crate::status::{ApiError, ApiResult};
use crate::store::{StoreKey, key};

/// Parsed query parameters (the last value of a repeated one wins).
#[derive(Debug, Clone, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `true`/`1` as Go's `strconv.ParseBool` reads them; absent is false.
    pub fn flag(&self, name: &str) -> ApiResult<bool> {
        match self.get(name) {
            None | Some("") => Ok(false),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(other) => {
                Err(ApiError::bad_request(format!("strconv.ParseBool: parsing {other:?}: invalid syntax")))
            }
        }
    }

    pub fn dry_run(&self) -> ApiResult<bool> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            ))),
        }
    }

    /// `fieldValidation`: Strict, Warn (the default) or Ignore.
    pub fn field_validation(&self) -> ApiResult<FieldValidation> {
        match self.get("fieldValidation") {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

/// What a request addresses.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub rt: Arc<ResourceType>,
    pub version: String,
    /// From the URL; None for cluster-scoped types and all-namespace lists.
    pub namespace: Option<String>,
    pub query: Query,
    /// The manager named by `fieldManager`, or derived from the User-Agent.
    pub manager: String,
}

impl Ctx {
    pub fn api_version(&self) -> String {
        self.rt.api_version(&self.version)
    }

    pub fn storage_key(&self, name: &str) -> StoreKey {
        let (group, plural) = self.rt.storage();
        key(&group, &plural, self.namespace.as_deref().unwrap_or(""), name)
    }

    /// A stored object as this request's version shows it.
    pub fn to_view(&self, stored: Value) -> Value {
        let mut view = if self.rt.behavior == Behavior::EventV1 { events::from_core(stored) } else { stored };
        view["apiVersion"] = Value::String(self.api_version());
        if view.get("kind").is_none() {
            view["kind"] = Value::String(self.rt.kind.clone());
        }
        view
    }

    /// An object of this request's version as stored.
    pub fn to_storage(&self, view: Value) -> Value {
        if self.rt.behavior == Behavior::EventV1 { events::to_core(view) } else { view }
    }
}
