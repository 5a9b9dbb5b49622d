//! The original router's environment, as a drop-in: the same variables configure `route`.
//!
//! - `JWT_DESKTOP_SIGNING_PUBLIC_KEY`, `JWT_DESKTOP_PAYLOAD_PRIVATE_KEY`: paths of the PEM key
//!   files (the original image's defaults below). Unlike the original, which read them once,
//!   the files are re-read when their bytes change (a mounted Secret updates in place).
//! - `PYOS_FQDN` (else the service-link `PYOS_SERVICE_HOST`, else `pyos`) and
//!   `PYOS_SERVICE_PORT` (8000).
//! - `WEBSITE_FQDN`, `CONSOLE_FQDN`, `SPEEDTEST_FQDN`: hosts of those services.
//! - `NODE_NAME`: answered on `/node`.
//!
//! Host variables take an optional `:port` suffix. Empty values count as unset. The settings go
//! through the same [`translate()`](crate::translate()) as a RouteConfig; every other setting
//! is the RouteConfig default.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use route_crds::{PayloadKeyRef, RouteConfigSpec, ServiceSpec, SigningKeyRef};
use route_proxy::Settings;

use crate::error::io_reason;
use crate::publisher::Publisher;
use crate::translate::{ConfigError, Context, Secrets, translate};

pub const SIGNING_VAR: &str = "JWT_DESKTOP_SIGNING_PUBLIC_KEY";
pub const PAYLOAD_VAR: &str = "JWT_DESKTOP_PAYLOAD_PRIVATE_KEY";
pub const DEFAULT_SIGNING_PATH: &str = "/config.signing/abcdesktop_jwt_desktop_signing_public_key.pem";
pub const DEFAULT_PAYLOAD_PATH: &str = "/config.payload/abcdesktop_jwt_desktop_payload_private_key.pem";

/// The variables the original router reads; `None` when unset or empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyEnv {
    /// `JWT_DESKTOP_SIGNING_PUBLIC_KEY`, or the original image's path.
    pub signing_key_path: PathBuf,
    /// `JWT_DESKTOP_PAYLOAD_PRIVATE_KEY`, or the original image's path.
    pub payload_key_path: PathBuf,
    pub pyos_fqdn: Option<String>,
    /// Set by Kubernetes for a Service named `pyos`; used when `PYOS_FQDN` is not.
    pub pyos_service_host: Option<String>,
    pub pyos_service_port: Option<String>,
    pub website_fqdn: Option<String>,
    pub console_fqdn: Option<String>,
    pub speedtest_fqdn: Option<String>,
    pub node_name: Option<String>,
}

impl LegacyEnv {
    /// From the process environment.
    pub fn from_env() -> Self {
        Self::from_vars(
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// From explicit variables (tests, or a caller that filtered the environment).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let vars: BTreeMap<String, String> = vars.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        let get = |name: &str| vars.get(name).cloned();
        Self {
            signing_key_path: get(SIGNING_VAR).unwrap_or_else(|| DEFAULT_SIGNING_PATH.into()).into(),
            payload_key_path: get(PAYLOAD_VAR).unwrap_or_else(|| DEFAULT_PAYLOAD_PATH.into()).into(),
            pyos_fqdn: get("PYOS_FQDN"),
            pyos_service_host: get("PYOS_SERVICE_HOST"),
            pyos_service_port: get("PYOS_SERVICE_PORT"),
            website_fqdn: get("WEBSITE_FQDN"),
            console_fqdn: get("CONSOLE_FQDN"),
            speedtest_fqdn: get("SPEEDTEST_FQDN"),
            node_name: get("NODE_NAME"),
        }
    }

    /// The host variables that are set: (variable, value, service).
    fn hosts(&self) -> Vec<(&'static str, &str, &'static str)> {
        let pyos = match (&self.pyos_fqdn, &self.pyos_service_host) {
            (Some(fqdn), _) => Some(("PYOS_FQDN", fqdn)),
            (None, Some(host)) => Some(("PYOS_SERVICE_HOST", host)),
            (None, None) => None,
        };
        let others = [
            ("WEBSITE_FQDN", &self.website_fqdn, "website"),
            ("CONSOLE_FQDN", &self.console_fqdn, "console"),
            ("SPEEDTEST_FQDN", &self.speedtest_fqdn, "speedtest"),
        ];
        pyos.map(|(var, value)| (var, value.as_str(), "pyos"))
            .into_iter()
            .chain(
                others
                    .into_iter()
                    .filter_map(|(var, value, service)| Some((var, value.as_deref()?, service))),
            )
            .collect()
    }
}

/// The bytes of the two key files, or why each could not be read.
type KeyFiles = (Result<Vec<u8>, String>, Result<Vec<u8>, String>);

fn read(env: &LegacyEnv) -> KeyFiles {
    let read = |path: &PathBuf| std::fs::read(path).map_err(|err| io_reason(&err));
    (read(&env.signing_key_path), read(&env.payload_key_path))
}

/// Reads the key files and translates the environment.
pub fn load(env: &LegacyEnv, ctx: &Context) -> Result<Settings, Vec<ConfigError>> {
    build(env, &read(env), ctx)
}

/// Publishes the environment's settings whenever the key files' bytes change, checking every
/// `poll`. Never returns. As [`manifests::watch`](crate::manifests::watch), the first poll
/// publishes the files as they are (nothing new when they were just loaded and published).
pub async fn watch(env: LegacyEnv, ctx: Context, publisher: Publisher, poll: Duration) {
    let source = ctx.source.clone();
    let reader = env.clone();
    crate::poll::watch(
        source,
        publisher,
        poll,
        move || read(&reader),
        move |files: &KeyFiles| build(&env, files, &ctx),
    )
    .await;
}

fn build(
    env: &LegacyEnv,
    (signing, payload): &KeyFiles,
    ctx: &Context,
) -> Result<Settings, Vec<ConfigError>> {
    let mut errors = Vec::new();
    // Places of translate()'s errors, put back in the environment's terms.
    let mut renames: Vec<(String, String)> = Vec::new();
    // The key files become one-key Secrets named after their variable, so translate() checks
    // them as it checks Secrets.
    let mut secrets = Secrets::new();
    let keys = [(SIGNING_VAR, &env.signing_key_path, signing), (PAYLOAD_VAR, &env.payload_key_path, payload)];
    for (var, path, bytes) in keys {
        let path = path.display().to_string();
        match bytes {
            Ok(bytes) => {
                secrets.insert(var.to_owned(), BTreeMap::from([(path.clone(), bytes.clone())]));
            }
            Err(reason) => {
                errors.push(ConfigError::new(format!("{var}={path}"), format!("cannot read: {reason}")))
            }
        }
        renames.push((format!("Secret {var}: key {path}"), format!("{var}={path}")));
    }
    let mut spec = RouteConfigSpec::default();
    spec.keys.signing =
        SigningKeyRef { secret_name: SIGNING_VAR.into(), key: env.signing_key_path.display().to_string() };
    spec.keys.payload =
        PayloadKeyRef { secret_name: PAYLOAD_VAR.into(), key: env.payload_key_path.display().to_string() };
    spec.node_name = env.node_name.clone().unwrap_or_default();
    for (var, value, service) in env.hosts() {
        let (host, port) = split_host_port(value);
        let port = port.and_then(|port| parse_port(var, value, port, &mut errors));
        spec.services.insert(service.into(), ServiceSpec { host: Some(host.to_owned()), port });
        renames.push((format!("spec.services.{service}.host"), format!("{var}={value}")));
    }
    if let Some(value) = &env.pyos_service_port {
        // A port given with the host wins.
        let pyos = spec.services.entry("pyos".into()).or_default();
        if pyos.port.is_none() {
            pyos.port = parse_port("PYOS_SERVICE_PORT", value, value, &mut errors);
        }
    }
    match translate(&spec, &secrets, ctx) {
        Ok(settings) if errors.is_empty() => Ok(settings),
        Ok(_) => Err(errors),
        Err(more) => {
            // An unreadable key file is already reported; its Secret is "not found" to translate().
            let unread: Vec<String> = errors
                .iter()
                .filter_map(|e| Some(format!("Secret {}", e.place.split_once('=')?.0)))
                .collect();
            errors.extend(more.into_iter().filter(|e| !unread.contains(&e.place)).map(|mut error| {
                if let Some((_, to)) = renames.iter().find(|(from, _)| *from == error.place) {
                    error.place.clone_from(to);
                }
                error
            }));
            Err(errors)
        }
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`; a bare IPv6 address has no port.
fn split_host_port(value: &str) -> (&str, Option<&str>) {
    if let Some((host, after)) = value.strip_prefix('[').and_then(|rest| rest.split_once(']')) {
        return (host, after.strip_prefix(':'));
    }
    match value.split_once(':') {
        Some((host, port)) if !port.contains(':') => (host, Some(port)),
        _ => (value, None),
    }
}

fn parse_port(var: &str, value: &str, port: &str, errors: &mut Vec<ConfigError>) -> Option<i32> {
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Some(i32::from(port)),
        _ => {
            errors.push(ConfigError::new(
                format!("{var}={value}"),
                format!("{port:?} is not a port (1 to 65535)"),
            ));
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
