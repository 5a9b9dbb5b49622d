//! The `RouteConfig` custom resource (`route.abcdesktop.io/v1alpha1`): what a user writes to
//! configure `route`.
//!
//! Every field is optional and defaults to what abcdesktop ships, so `spec: {}` is a working
//! configuration. The types only describe and parse; validation and compilation into the proxy's
//! settings live in `route-operator`'s `translate()`, which reports every error with its place.
//!
//! Maps that extend a built-in table (`services`, `routes`) default to empty here: the operator
//! merges them by name over the built-ins, so naming one entry never drops the others.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod routes;
mod rules;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt as _;

pub use routes::{PortsSpec, RewriteSpec, RouteSpec, ServiceSpec, TokenSourceSpec};
pub use rules::{BUILTIN_ROUTES, BUILTIN_SERVICES, SERVICE_ROUTES};

/// The CustomResourceDefinition of `RouteConfig`, generated from these types: what `route crd`
/// prints and `charts/route/crds/` holds.
pub fn crd() -> CustomResourceDefinition {
    RouteConfig::crd()
}

/// The API group of the resource.
pub const GROUP: &str = "route.abcdesktop.io";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "route.abcdesktop.io/v1alpha1";
/// The resource kind.
pub const KIND: &str = "RouteConfig";

/// The Secret holding the desktop signing key pair, and the data key of its public key.
pub const SIGNING_SECRET: &str = "abcdesktopjwtdesktopsigning";
pub const SIGNING_KEY: &str = "abcdesktop_jwt_desktop_signing_public_key.pem";
/// The Secret holding the desktop payload key pair, and the data key of its private key.
pub const PAYLOAD_SECRET: &str = "abcdesktopjwtdesktoppayload";
pub const PAYLOAD_KEY: &str = "abcdesktop_jwt_desktop_payload_private_key.pem";

/// How `route` authenticates desktop tokens and where it routes each path.
// Each printer column repeats `type_ = ...`, which clippy takes for a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "route.abcdesktop.io",
    version = "v1alpha1",
    kind = "RouteConfig",
    namespaced,
    status = "RouteConfigStatus",
    shortname = "rtc",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether the current spec and Secrets are being served"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#,
        priority = 1
    ),
    printcolumn(
        name = "Signing",
        type_ = "string",
        json_path = ".status.signingKeyFingerprints[0]",
        description = "Fingerprint of the current desktop signing public key"
    ),
    printcolumn(
        name = "Payload",
        type_ = "string",
        json_path = ".status.payloadKeyFingerprints[0]",
        description = "Fingerprint of the current desktop payload private key"
    ),
    printcolumn(name = "Reloaded", type_ = "date", json_path = ".status.lastReload", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    doc = "Configuration of route, the JWT-authenticated desktop router of abcdesktop"
)]
#[serde(rename_all = "camelCase")]
pub struct RouteConfigSpec {
    #[serde(default)]
    pub keys: KeysSpec,
    #[serde(default)]
    pub jwt: JwtSpec,
    #[serde(default)]
    pub cache: CacheSpec,
    #[serde(default)]
    pub targets: TargetsSpec,
    /// Fixed upstreams (no token), merged by name over the built-ins `pyos` (pyos:8000),
    /// `website` (website:80), `console` (console:80) and `speedtest` (speedtest:80).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend(
        "maxProperties" = 64,
        "x-kubernetes-validations" = [
            {"rule": rules::SERVICE_NAMES, "message": "a service name is letters, digits, '-' and '_' (at most 63)"},
            {"rule": rules::NEW_SERVICE_HOST, "message": "a new service needs a host"},
        ]
    ))]
    pub services: BTreeMap<String, ServiceSpec>,
    #[serde(default)]
    pub ports: PortsSpec,
    /// Merged by name over the built-in route table: override fields of a built-in, add a new
    /// route, or disable one with `enabled: false`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub routes: Vec<RouteSpec>,
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Answered on `/node`; empty means the `NODE_NAME` environment variable.
    #[serde(default)]
    pub node_name: String,
    /// Folder served under `/.well-known/acme-challenge/`; empty means off.
    #[serde(default)]
    #[schemars(pattern(r"^(/.*)?$"))]
    pub acme_challenge_dir: String,
    /// Certificate and key of the HTTPS listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

/// Where the desktop keys are, and how long replaced keys stay trusted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeysSpec {
    #[serde(default)]
    pub signing: SigningKeyRef,
    #[serde(default)]
    pub payload: PayloadKeyRef,
    /// Seconds the previous keys stay trusted after a rotation; 0 revokes them at once.
    #[serde(default = "default_grace_seconds")]
    pub grace_seconds: u64,
}

impl Default for KeysSpec {
    fn default() -> Self {
        Self {
            signing: SigningKeyRef::default(),
            payload: PayloadKeyRef::default(),
            grace_seconds: default_grace_seconds(),
        }
    }
}

fn default_grace_seconds() -> u64 {
    600
}

/// The desktop signing public key (PEM), which verifies token signatures.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeyRef {
    #[serde(default = "default_signing_secret")]
    #[schemars(length(min = 1, max = 253), pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub secret_name: String,
    #[serde(default = "default_signing_key")]
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

impl Default for SigningKeyRef {
    fn default() -> Self {
        Self { secret_name: default_signing_secret(), key: default_signing_key() }
    }
}

fn default_signing_secret() -> String {
    SIGNING_SECRET.into()
}

fn default_signing_key() -> String {
    SIGNING_KEY.into()
}

/// The desktop payload private key (PEM), which decrypts the `hash` claim.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PayloadKeyRef {
    #[serde(default = "default_payload_secret")]
    #[schemars(length(min = 1, max = 253), pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub secret_name: String,
    #[serde(default = "default_payload_key")]
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

impl Default for PayloadKeyRef {
    fn default() -> Self {
        Self { secret_name: default_payload_secret(), key: default_payload_key() }
    }
}

fn default_payload_secret() -> String {
    PAYLOAD_SECRET.into()
}

fn default_payload_key() -> String {
    PAYLOAD_KEY.into()
}

/// Token verification.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtSpec {
    /// Accepted JWS algorithms: RS256, RS384, RS512, PS256, PS384 or PS512 (the keys are RSA).
    #[serde(default = "default_algorithms")]
    #[schemars(schema_with = "rules::algorithms")]
    pub algorithms: Vec<String>,
    #[serde(default)]
    pub decryption: DecryptionSpec,
    /// Headers tried after each route's own token sources; a leading `Bearer ` is stripped.
    #[serde(default = "default_fallback_headers")]
    #[schemars(length(max = 16), inner(pattern(r"^[-!#$%&'*+.^_`|~0-9A-Za-z]+$")))]
    pub fallback_headers: Vec<String>,
}

impl Default for JwtSpec {
    fn default() -> Self {
        Self {
            algorithms: default_algorithms(),
            decryption: DecryptionSpec::default(),
            fallback_headers: default_fallback_headers(),
        }
    }
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}

fn default_fallback_headers() -> Vec<String> {
    vec!["Authorization".into()]
}

/// Padding of the RSA encryption of the token's `hash` claim.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DecryptionSpec {
    /// RSAES-PKCS1-v1_5, what pyos uses by default.
    #[default]
    #[serde(rename = "pkcs1v15")]
    Pkcs1v15,
    #[serde(rename = "oaep-sha1")]
    OaepSha1,
    #[serde(rename = "oaep-sha256")]
    OaepSha256,
}

/// Bounds of the token cache.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheSpec {
    /// Longest time a resolved token stays cached; 0 turns the cache off.
    #[serde(default = "default_ttl_cap")]
    pub ttl_cap_seconds: u64,
    #[serde(default = "default_max_entries")]
    #[schemars(range(min = 1))]
    pub max_entries: u64,
}

impl Default for CacheSpec {
    fn default() -> Self {
        Self { ttl_cap_seconds: default_ttl_cap(), max_entries: default_max_entries() }
    }
}

fn default_ttl_cap() -> u64 {
    600
}

fn default_max_entries() -> u64 {
    100_000
}

/// What a decrypted target may be. Empty lists allow anything.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetsSpec {
    /// Networks an IP target must be in, e.g. `10.244.0.0/16`.
    #[serde(default)]
    #[schemars(length(max = 64), inner(pattern(rules::CIDR)))]
    pub allowed_cidrs: Vec<String>,
    /// Suffixes a DNS target must end with, e.g. `.desktop.abcdesktop.svc.cluster.local`.
    #[serde(default)]
    #[schemars(
        length(max = 64),
        inner(pattern(r"^\s*\.?[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*\.?\s*$"))
    )]
    pub allowed_dns_suffixes: Vec<String>,
    /// Ports `/container/` may reach.
    #[serde(default)]
    #[schemars(length(max = 64), inner(range(min = 1, max = 65535)))]
    pub container_ports: Vec<i32>,
}

/// Process-wide timeouts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsSpec {
    #[serde(default = "default_connect_timeout")]
    #[schemars(range(min = 1))]
    pub connect_timeout_seconds: u64,
    #[serde(default = "default_drain")]
    pub drain_seconds: u64,
    #[serde(default = "default_header_read_timeout")]
    #[schemars(range(min = 1))]
    pub header_read_timeout_seconds: u64,
}

impl Default for LimitsSpec {
    fn default() -> Self {
        Self {
            connect_timeout_seconds: default_connect_timeout(),
            drain_seconds: default_drain(),
            header_read_timeout_seconds: default_header_read_timeout(),
        }
    }
}

fn default_connect_timeout() -> u64 {
    5
}

fn default_drain() -> u64 {
    30
}

fn default_header_read_timeout() -> u64 {
    30
}

/// A `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`) in the RouteConfig's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    #[schemars(length(min = 1, max = 253), pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub secret_name: String,
}

/// What the operator last did with the resource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteConfigStatus {
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, and `SettingsRejected` with the exact errors when the last change was refused.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Fingerprints (`sha256:` + 16 hex digits) of the trusted signing keys, current first.
    #[serde(default)]
    pub signing_key_fingerprints: Vec<String>,
    /// Fingerprints of the trusted payload keys, current first.
    #[serde(default)]
    pub payload_key_fingerprints: Vec<String>,
    /// RFC 3339 time of the last published reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reload: Option<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod cel_tests;
