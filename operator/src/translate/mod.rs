//! `translate()`: a RouteConfig spec and its key material into proxy [`Settings`].
//!
//! A pure function: no I/O, no clock. It reports every error it finds, each naming its place
//! (`spec.routes[2].desktopPort`, `Secret abcdesktopjwtdesktoppayload`) and never quoting key
//! material.

mod auth;
mod builtin;
mod keys;
mod route_table;
mod services;
mod tls;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use route_crds::{LimitsSpec, RouteConfigSpec};
use route_proxy::Settings;
use route_proxy::settings::{AuthSettings, ClientLimits, Limits};

/// Secret name -> (data key -> bytes): the Secrets a spec may name (keys, TLS).
pub type Secrets = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// What translate() takes from the process rather than from the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// The `NODE_NAME` environment variable, used when `spec.nodeName` is empty.
    pub node_name: String,
    /// Where the spec comes from, for logs and status: `manifests:/etc/route`, `env`, ...
    pub source: String,
}

/// One thing wrong with a configuration: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {message}")]
pub struct ConfigError {
    /// `spec.routes[2].desktopPort`, `Secret abcdesktopjwtdesktoppayload`,
    /// `/etc/route/route.yaml (document 2)`, `JWT_DESKTOP_PAYLOAD_PRIVATE_KEY=/x/y.pem`.
    pub place: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(place: impl Into<String>, message: impl Into<String>) -> Self {
        Self { place: place.into(), message: message.into() }
    }
}

/// Errors gathered while translating.
#[derive(Debug, Default)]
pub(crate) struct Errors(Vec<ConfigError>);

impl Errors {
    pub(crate) fn push(&mut self, place: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError::new(place, message));
    }
}

/// Builds the proxy settings a spec describes, with `generation: 0` (the publisher numbers
/// them), or every error found.
pub fn translate(
    spec: &RouteConfigSpec,
    secrets: &Secrets,
    ctx: &Context,
) -> Result<Settings, Vec<ConfigError>> {
    let mut errors = Errors::default();
    let algorithms = auth::algorithms(&spec.jwt.algorithms, &mut errors);
    let fallback_sources = auth::fallback_sources(&spec.jwt.fallback_headers, &mut errors);
    let targets = auth::targets(&spec.targets, &mut errors);
    let cache = auth::cache(&spec.cache, &mut errors);
    let keys = keys::key_ring(&spec.keys, secrets, &mut errors);
    let services = services::resolve(&spec.services, &mut errors);
    let routes = route_table::table(spec, &services, &mut errors);
    let limits = limits(&spec.limits, &mut errors);
    let tls = tls::certified_key(spec.tls.as_ref(), secrets, &mut errors);
    let acme_dir = acme_dir(&spec.acme_challenge_dir, &mut errors);
    let node_name = if spec.node_name.is_empty() { &ctx.node_name } else { &spec.node_name };

    let Errors(errors) = errors;
    let (Some(keys), Ok(tls), true) = (keys, tls, errors.is_empty()) else {
        return Err(errors);
    };
    Ok(Settings {
        generation: 0,
        source: ctx.source.clone(),
        routes,
        auth: AuthSettings {
            algorithms,
            decryption: auth::decryption(spec.jwt.decryption),
            keys,
            targets,
            cache,
            grace: Duration::from_secs(spec.keys.grace_seconds),
            fallback_sources,
        },
        limits,
        node_name: node_name.clone(),
        acme_dir,
        tls,
    })
}

/// `{value} is not a port (1 to 65535)` unless it is one.
pub(crate) fn port(value: i32, place: &str, errors: &mut Errors) -> Option<u16> {
    match u16::try_from(value) {
        Ok(port) if port > 0 => Some(port),
        _ => {
            errors.push(place, format!("{value} is not a port (1 to 65535)"));
            None
        }
    }
}

/// A duration of at least one second.
pub(crate) fn seconds_at_least_one(value: u64, place: &str, errors: &mut Errors) -> Duration {
    if value == 0 {
        errors.push(place, "0: at least 1 second");
    }
    Duration::from_secs(value)
}

fn limits(spec: &LimitsSpec, errors: &mut Errors) -> Limits {
    Limits {
        connect_timeout: seconds_at_least_one(
            spec.connect_timeout_seconds,
            "spec.limits.connectTimeoutSeconds",
            errors,
        ),
        drain_timeout: Duration::from_secs(spec.drain_seconds),
        header_read_timeout: seconds_at_least_one(
            spec.header_read_timeout_seconds,
            "spec.limits.headerReadTimeoutSeconds",
            errors,
        ),
        // The process's own (flags): the publisher puts them into every snapshot.
        client: ClientLimits::default(),
    }
}

fn acme_dir(dir: &str, errors: &mut Errors) -> Option<PathBuf> {
    if dir.is_empty() {
        return None;
    }
    let path = PathBuf::from(dir);
    if !path.is_absolute() {
        errors.push("spec.acmeChallengeDir", format!("{dir:?} is not an absolute path"));
    }
    Some(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
