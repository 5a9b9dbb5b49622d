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
    pub services: BTreeMap<String, ServiceSpec>,
    #[serde(default)]
    pub ports: PortsSpec,
    /// Merged by name over the built-in route table: override fields of a built-in, add a new
    /// route, or disable one with `enabled: false`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSpec>,
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Answered on `/node`; empty means the `NODE_NAME` environment variable.
    #[serde(default)]
    pub node_name: String,
    /// Folder served under `/.well-known/acme-challenge/`; empty means off.
    #[serde(default)]
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
    pub secret_name: String,
    #[serde(default = "default_signing_key")]
    pub key: String,
}

impl Default for SigningKeyRef {
    fn default() -> Self {
        Self {
            secret_name: default_signing_secret(),
            key: default_signing_key(),
        }
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
    pub secret_name: String,
    #[serde(default = "default_payload_key")]
    pub key: String,
}

impl Default for PayloadKeyRef {
    fn default() -> Self {
        Self {
            secret_name: default_payload_secret(),
            key: default_payload_key(),
        }
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
    pub algorithms: Vec<String>,
    #[serde(default)]
    pub decryption: DecryptionSpec,
    /// Headers tried after each route's own token sources; a leading `Bearer ` is stripped.
    #[serde(default = "default_fallback_headers")]
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
        Self {
            ttl_cap_seconds: default_ttl_cap(),
            max_entries: default_max_entries(),
        }
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
    pub allowed_cidrs: Vec<String>,
    /// Suffixes a DNS target must end with, e.g. `.desktop.abcdesktop.svc.cluster.local`.
    #[serde(default)]
    pub allowed_dns_suffixes: Vec<String>,
    /// Ports `/container/` may reach.
    #[serde(default)]
    #[schemars(inner(range(min = 1, max = 65535)))]
    pub container_ports: Vec<i32>,
}

/// A fixed upstream. For a new service `host` is required and `port` defaults to 80.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// Desktop pod ports of the built-in routes, the abcdesktop defaults.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortsSpec {
    #[serde(default = "port::spawner")]
    #[schemars(range(min = 1, max = 65535))]
    pub spawner: i32,
    #[serde(default = "port::filer")]
    #[schemars(range(min = 1, max = 65535))]
    pub filer: i32,
    #[serde(default = "port::printerfiler")]
    #[schemars(range(min = 1, max = 65535))]
    pub printerfiler: i32,
    #[serde(default = "port::terminals")]
    #[schemars(range(min = 1, max = 65535))]
    pub terminals: i32,
    #[serde(default = "port::websockify")]
    #[schemars(range(min = 1, max = 65535))]
    pub websockify: i32,
    #[serde(default = "port::signalling")]
    #[schemars(range(min = 1, max = 65535))]
    pub signalling: i32,
    #[serde(default = "port::broadcast")]
    #[schemars(range(min = 1, max = 65535))]
    pub broadcast: i32,
    #[serde(default = "port::sound")]
    #[schemars(range(min = 1, max = 65535))]
    pub sound: i32,
    #[serde(default = "port::microphone")]
    #[schemars(range(min = 1, max = 65535))]
    pub microphone: i32,
    #[serde(default = "port::gamepad")]
    #[schemars(range(min = 1, max = 65535))]
    pub gamepad: i32,
    #[serde(default = "port::snapshot")]
    #[schemars(range(min = 1, max = 65535))]
    pub snapshot: i32,
}

/// The abcdesktop default ports, one function per field (serde defaults need functions).
mod port {
    pub fn spawner() -> i32 {
        29786
    }
    pub fn filer() -> i32 {
        29783
    }
    pub fn printerfiler() -> i32 {
        29782
    }
    pub fn terminals() -> i32 {
        29781
    }
    pub fn websockify() -> i32 {
        6081
    }
    pub fn signalling() -> i32 {
        29787
    }
    pub fn broadcast() -> i32 {
        29784
    }
    pub fn sound() -> i32 {
        29788
    }
    pub fn microphone() -> i32 {
        29789
    }
    pub fn gamepad() -> i32 {
        29790
    }
    pub fn snapshot() -> i32 {
        29785
    }
}

impl Default for PortsSpec {
    fn default() -> Self {
        Self {
            spawner: port::spawner(),
            filer: port::filer(),
            printerfiler: port::printerfiler(),
            terminals: port::terminals(),
            websockify: port::websockify(),
            signalling: port::signalling(),
            broadcast: port::broadcast(),
            sound: port::sound(),
            microphone: port::microphone(),
            gamepad: port::gamepad(),
            snapshot: port::snapshot(),
        }
    }
}

impl PortsSpec {
    /// The port of a built-in desktop route, by route name (the field of the same name).
    pub fn by_route(&self, route: &str) -> Option<i32> {
        Some(match route {
            "spawner" => self.spawner,
            "filer" => self.filer,
            "printerfiler" => self.printerfiler,
            "terminals" => self.terminals,
            "websockify" => self.websockify,
            "signalling" => self.signalling,
            "broadcast" => self.broadcast,
            "sound" => self.sound,
            "microphone" => self.microphone,
            "gamepad" => self.gamepad,
            "snapshot" => self.snapshot,
            _ => return None,
        })
    }
}

/// One route, merged by `name` over the built-in table. Absent fields keep the built-in's value
/// (or a default, for a new route). At most one of `desktopPort`, `service` and
/// `container: true` may be given; a new route needs exactly one.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    pub name: String,
    /// Path prefixes, matched anchored and on a segment boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// The desktop pod port the token's target is reached on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub desktop_port: Option<i32>,
    /// A fixed upstream from `services`; no token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `/container/<JWT>/<port>/...` and `/container/<port>` addressing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<bool>,
    /// Where the token is found, in order (before `jwt.fallbackHeaders`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sources: Option<Vec<TokenSourceSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<RewriteSpec>,
    /// Largest request body; absent keeps the built-in's value, unlimited for a new route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub read_timeout_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub idle_timeout_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// One place a token may be: exactly one field is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenSourceSpec {
    /// A request header (`Bearer ` is stripped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// A query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// `true`: the whole raw query string is the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_query: Option<bool>,
}

/// What path the upstream sees.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RewriteSpec {
    /// Path and query as the client sent them.
    Keep,
    /// `/`, without the query.
    Root,
    /// The matched prefix replaced by `/`; the query is kept.
    StripPrefix,
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
    pub secret_name: String,
}

/// What the operator last did with the resource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteConfigStatus {
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
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
