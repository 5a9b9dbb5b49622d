//! Schema rules the derive cannot say with attributes alone: CEL `x-kubernetes-validations`
//! and the algorithm list. Each rule refuses, at `kubectl apply` time, something `translate()`
//! would refuse later; none refuses more (the operator's tests check the built-in names here
//! against its route table).
//!
//! Every list and map a rule walks has a `maxItems`/`maxProperties` and every string it matches
//! a `maxLength`, so that the API server's CEL cost estimate stays bounded.

use schemars::{Schema, SchemaGenerator, json_schema};

/// The names of the built-in routes (operator `translate::builtin`).
pub const BUILTIN_ROUTES: [&str; 18] = [
    "spawner",
    "filer",
    "printerfiler",
    "terminals",
    "websockify",
    "signalling",
    "broadcast",
    "sound",
    "microphone",
    "gamepad",
    "snapshot",
    "container",
    "pyos",
    "pyos-launchdesktop",
    "pyos-image",
    "console",
    "speedtest",
    "website",
];

/// The built-in routes that go to a fixed service (they take no token).
pub const SERVICE_ROUTES: [&str; 6] =
    ["pyos", "pyos-launchdesktop", "pyos-image", "console", "speedtest", "website"];

/// The built-in services.
pub const BUILTIN_SERVICES: [&str; 4] = ["pyos", "website", "console", "speedtest"];

/// The JWS algorithms an RSA key verifies.
pub const ALGORITHMS: [&str; 6] = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];

/// How many of the target fields a route entry gives, as a CEL expression.
macro_rules! targets_given {
    () => {
        "((has(self.desktopPort) ? 1 : 0) + (has(self.service) ? 1 : 0) \
         + ((has(self.container) && self.container) ? 1 : 0))"
    };
}

macro_rules! builtin_routes {
    () => {
        "['spawner', 'filer', 'printerfiler', 'terminals', 'websockify', 'signalling', \
         'broadcast', 'sound', 'microphone', 'gamepad', 'snapshot', 'container', 'pyos', \
         'pyos-launchdesktop', 'pyos-image', 'console', 'speedtest', 'website']"
    };
}

macro_rules! disabled {
    () => {
        "(has(self.enabled) && !self.enabled)"
    };
}

/// A route entry gives at most one of `desktopPort`, `service`, `container: true`.
pub(crate) const ONE_TARGET: &str = concat!(targets_given!(), " <= 1");

/// A new (not built-in, enabled) route names its upstream.
pub(crate) const NEW_ROUTE_TARGET: &str =
    concat!("self.name in ", builtin_routes!(), " || ", disabled!(), " || ", targets_given!(), " == 1");

/// A new (not built-in, enabled) route has paths.
pub(crate) const NEW_ROUTE_PATHS: &str =
    concat!("self.name in ", builtin_routes!(), " || ", disabled!(), " || has(self.paths)");

/// An enabled route does not empty its paths.
pub(crate) const SOME_PATHS: &str = concat!("!has(self.paths) || size(self.paths) > 0 || ", disabled!());

/// `tokenSources` on a route that goes to a fixed service (given here, or a built-in one).
pub(crate) const SERVICE_NO_TOKEN: &str = concat!(
    "!has(self.tokenSources) || has(self.desktopPort) || (has(self.container) && self.container) || ",
    "(!has(self.service) && !(self.name in ['pyos', 'pyos-launchdesktop', 'pyos-image', 'console', ",
    "'speedtest', 'website']))"
);

/// A token source gives exactly one of `header`, `query`, `rawQuery`.
pub(crate) const ONE_SOURCE: &str =
    "(has(self.header) ? 1 : 0) + (has(self.query) ? 1 : 0) + (has(self.rawQuery) ? 1 : 0) == 1";

/// `rawQuery: false` says nothing: refused, as translate() does.
pub(crate) const RAW_QUERY_TRUE: &str = "!has(self.rawQuery) || self.rawQuery";

/// A CIDR as translate() parses it (`ipnet`, after trimming): an IPv4 address (no `:`) with a
/// prefix of at most 2 digits up to 32, or an IPv6 address (with a `:`) with at most 3 digits up
/// to 128. The addresses themselves are left to translate(): a pattern that refused every bad
/// one would be long and still not refuse more than translate() does.
pub(crate) const CIDR: &str = concat!(
    r"^\s*(",
    r"[0-9.]+/(3[0-2]|[0-2]?[0-9])",
    r"|",
    r"[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*/(12[0-8]|1[01][0-9]|0?[0-9]?[0-9])",
    r")\s*$"
);

/// Service names are route-name-like.
pub(crate) const SERVICE_NAMES: &str = "self.all(k, k.matches('^[A-Za-z0-9_-]{1,63}$'))";

/// A service that is not built in gives its host.
pub(crate) const NEW_SERVICE_HOST: &str =
    "self.all(k, k in ['pyos', 'website', 'console', 'speedtest'] || has(self[k].host))";

/// `jwt.algorithms`: at least one of the RSA algorithms, default `[RS256]`.
pub(crate) fn algorithms(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Accepted JWS algorithms: RS256, RS384, RS512, PS256, PS384 or PS512 (the keys are RSA).",
        "type": "array",
        "items": {"type": "string", "enum": ALGORITHMS},
        "minItems": 1,
        "maxItems": 6,
        "default": ["RS256"],
    })
}
