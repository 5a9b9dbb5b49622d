//! Manifests on disk: a RouteConfig and its Secrets, as one would `kubectl apply` them.
//!
//! The path is a YAML file or a folder of them (every `*.yaml` and `*.yml` directly inside,
//! in name order, hidden files skipped, as in a mounted ConfigMap). Documents are separated by
//! `---`. Exactly one `route.abcdesktop.io/v1alpha1` RouteConfig is expected, with the `v1`
//! Secrets it names (`data` in base64 and/or `stringData`, which wins, as in Kubernetes).
//! Other kinds are ignored. Namespaces are not looked at: the files are one namespace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use route_crds::{API_VERSION, KIND, RouteConfigSpec, RouteConfigStatus};
use route_proxy::Settings;
use serde::Deserialize;

use crate::error::io_reason;
use crate::publisher::Publisher;
use crate::translate::{ConfigError, Context, Secrets, translate};

/// The files of a manifests path and their bytes, in the order they are read.
type Files = Vec<(PathBuf, Vec<u8>)>;

/// Reads and translates the manifests at `path`.
pub fn load(path: &Path, ctx: &Context) -> Result<Settings, Vec<ConfigError>> {
    build(&read(path)?, path, ctx)
}

/// Loads the manifests at `path` and describes the settings they give, for `route check`.
pub fn check(path: &Path, ctx: &Context) -> Result<String, Vec<ConfigError>> {
    load(path, ctx).map(|settings| crate::summary(&settings))
}

/// Publishes the manifests at `path` whenever their bytes change, checking every `poll`.
/// Never returns. It polls rather than using inotify, which misses the symlink swaps through
/// which Kubernetes updates mounted Secrets and ConfigMaps.
///
/// The first poll publishes the files as they are; a caller that loaded and published them
/// just before (to refuse a bad configuration at start-up) gets no second generation for the
/// same content.
pub async fn watch(path: PathBuf, ctx: Context, publisher: Publisher, poll: Duration) {
    let source = ctx.source.clone();
    let root = path.clone();
    crate::poll::watch(
        source,
        publisher,
        poll,
        move || read(&path),
        move |files: &Result<Files, Vec<ConfigError>>| match files {
            Ok(files) => build(files, &root, &ctx),
            Err(errors) => Err(errors.clone()),
        },
    )
    .await;
}

/// Parses and translates; the errors of both steps are reported together, so one run shows
/// a typo'd field and a bad value alike.
fn build(files: &Files, root: &Path, ctx: &Context) -> Result<Settings, Vec<ConfigError>> {
    let Parsed { spec, secrets, mut errors } = parse(files, root);
    let Some(spec) = spec else { return Err(errors) };
    match translate(&spec, &secrets, ctx) {
        Ok(settings) if errors.is_empty() => Ok(settings),
        Ok(_) => Err(errors),
        Err(more) => {
            errors.extend(more);
            Err(errors)
        }
    }
}

/// The manifest files at `path` with their bytes.
fn read(path: &Path) -> Result<Files, Vec<ConfigError>> {
    let unreadable = |p: &Path, err: std::io::Error| {
        vec![ConfigError::new(p.display().to_string(), format!("cannot read: {}", io_reason(&err)))]
    };
    let metadata = std::fs::metadata(path).map_err(|e| unreadable(path, e))?;
    if !metadata.is_dir() {
        let bytes = std::fs::read(path).map_err(|e| unreadable(path, e))?;
        return Ok(vec![(path.to_owned(), bytes)]);
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| unreadable(path, e))? {
        let entry = entry.map_err(|e| unreadable(path, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        // Follows symlinks: a mounted ConfigMap's files are links into `..data`.
        if yaml && !name.starts_with('.') && entry.path().is_file() {
            names.push(entry.path());
        }
    }
    names.sort();
    let mut files = Vec::with_capacity(names.len());
    let mut errors = Vec::new();
    for file in names {
        match std::fs::read(&file) {
            Ok(bytes) => files.push((file, bytes)),
            Err(err) => errors.extend(unreadable(&file, err)),
        }
    }
    if errors.is_empty() { Ok(files) } else { Err(errors) }
}

/// A RouteConfig document, typed so that errors carry the field's path and line.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RouteConfigDoc {
    #[serde(rename = "apiVersion")]
    _api_version: String,
    #[serde(rename = "kind")]
    _kind: String,
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: RouteConfigSpec,
    #[serde(default, rename = "status")]
    _status: Option<RouteConfigStatus>,
}

/// What the documents of the files give.
#[derive(Default)]
struct Parsed {
    /// The RouteConfig's spec, if one was read (unknown fields are errors, yet the spec is
    /// still translated so that its own errors are reported too).
    spec: Option<RouteConfigSpec>,
    secrets: Secrets,
    errors: Vec<ConfigError>,
}

/// The RouteConfig spec and the Secrets in `files`.
fn parse(files: &Files, root: &Path) -> Parsed {
    let mut parsed = Parsed::default();
    // Where the RouteConfig and each Secret were found.
    let mut route_config_place: Option<String> = None;
    let mut secret_places: BTreeMap<String, String> = BTreeMap::new();
    let mut route_configs = 0;
    let mut unreadable = false;
    for (file, bytes) in files {
        for (index, document) in serde_yaml::Deserializer::from_slice(bytes).enumerate() {
            let place = format!("{} (document {})", file.display(), index + 1);
            let value = match serde_yaml::Value::deserialize(document) {
                Ok(value) => value,
                Err(err) => {
                    parsed.errors.push(ConfigError::new(place, format!("not YAML: {err}")));
                    // The rest of this file cannot be split into documents reliably.
                    unreadable = true;
                    break;
                }
            };
            if value.is_null() {
                continue;
            }
            let field = |name: &str| value.get(name).and_then(serde_yaml::Value::as_str).map(str::to_owned);
            let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
                let message = "not a Kubernetes object: apiVersion and kind are needed";
                parsed.errors.push(ConfigError::new(place, message));
                continue;
            };
            // Typed again from the text, so errors name the field and line.
            let Some(document) = serde_yaml::Deserializer::from_slice(bytes).nth(index) else { continue };
            match (api_version.as_str(), kind.as_str()) {
                (API_VERSION, KIND) => {
                    route_configs += 1;
                    let Some(doc) =
                        typed::<RouteConfigDoc>(document, &place, Quote::Values, &mut parsed.errors)
                    else {
                        continue;
                    };
                    if let Some(first) = &route_config_place {
                        let message =
                            format!("a second RouteConfig: one is expected, the first is in {first}");
                        parsed.errors.push(ConfigError::new(place, message));
                        continue;
                    }
                    tracing::debug!(place, name = ?doc.metadata.name, "RouteConfig");
                    parsed.spec = Some(doc.spec);
                    route_config_place = Some(place);
                }
                (_, KIND) => {
                    route_configs += 1;
                    let message = format!(
                        "apiVersion {api_version} of RouteConfig is not supported: use {API_VERSION}"
                    );
                    parsed.errors.push(ConfigError::new(place, message));
                }
                ("v1", "Secret") => {
                    let Some(secret) = typed::<Secret>(document, &place, Quote::Nothing, &mut parsed.errors)
                    else {
                        continue;
                    };
                    let Some(name) = secret.metadata.name.clone() else {
                        parsed.errors.push(ConfigError::new(place, "Secret without metadata.name"));
                        continue;
                    };
                    if let Some(first) = secret_places.get(&name) {
                        parsed
                            .errors
                            .push(ConfigError::new(place, format!("Secret {name} is also in {first}")));
                        continue;
                    }
                    parsed.secrets.insert(name.clone(), secret_data(secret));
                    secret_places.insert(name, place);
                }
                _ => tracing::debug!(place, api_version, kind, "ignored"),
            }
        }
    }
    // After a YAML syntax error the RouteConfig may be in the part that could not be read.
    if route_configs == 0 && !unreadable {
        let message = format!("no RouteConfig ({API_VERSION}) found");
        parsed.errors.push(ConfigError::new(root.display().to_string(), message));
    }
    parsed
}

/// Whether a parse error may quote the document's values. A Secret's may be key material
/// (`data: "-----BEGIN RSA PRIVATE KEY-----..."` is "invalid type: string ..."), so its quoted
/// strings are left out of the message.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    Values,
    Nothing,
}

/// A document as `T`. Unknown fields are errors, as `kubectl apply` refuses them, but the value
/// is still returned so that its other errors can be found; `None` when it does not parse.
fn typed<'de, T: Deserialize<'de>>(
    document: serde_yaml::Deserializer<'de>,
    place: &str,
    quote: Quote,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    let mut unknown = Vec::new();
    let result = serde_ignored::deserialize(document, |path| unknown.push(field_path(&path)));
    errors.extend(unknown.into_iter().map(|path| ConfigError::new(place, format!("{path}: unknown field"))));
    result
        .map_err(|err| {
            let message = match quote {
                Quote::Values => err.to_string(),
                Quote::Nothing => redact_quoted(&err.to_string()),
            };
            errors.push(ConfigError::new(place, message));
        })
        .ok()
}

/// Every `"..."` (with `\"` escapes, as serde quotes values) replaced by `"<redacted>"`.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '"' {
            let mut escaped = false;
            for c in chars.by_ref() {
                match c {
                    '"' if !escaped => break,
                    '\\' if !escaped => escaped = true,
                    _ => escaped = false,
                }
            }
            out.push_str("<redacted>\"");
        }
    }
    out
}

/// `spec.routes[0].desktopport`.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => match field_path(parent) {
            parent if parent.is_empty() => key.clone(),
            parent => format!("{parent}.{key}"),
        },
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            field_path(parent)
        }
    }
}

/// `data` (already base64-decoded), then `stringData` over it, as the API server merges them.
fn secret_data(secret: Secret) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> =
        secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
    for (key, value) in secret.string_data.unwrap_or_default() {
        data.insert(key, value.into_bytes());
    }
    data
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
