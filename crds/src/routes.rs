//! Where paths go: fixed services, desktop ports, and the routes merged over the built-ins.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A fixed upstream. For a new service `host` is required and `port` defaults to 80.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// A DNS name or an IP address; no scheme, port or path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(r"^[A-Za-z0-9_.:\[\]-]+$"))]
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
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": crate::rules::ONE_TARGET, "message": "give one of desktopPort, service or container: true, not several"},
    {"rule": crate::rules::NEW_ROUTE_TARGET, "message": "a new route needs one of desktopPort, service or container: true"},
    {"rule": crate::rules::NEW_ROUTE_PATHS, "message": "a new route needs at least one path"},
    {"rule": crate::rules::SOME_PATHS, "message": "paths: empty: a route needs at least one path"},
    {"rule": crate::rules::SERVICE_NO_TOKEN, "message": "tokenSources: a service route takes no token"},
]))]
pub struct RouteSpec {
    /// A built-in route's name overrides it; any other name adds a route.
    #[schemars(length(min = 1, max = 63), pattern(r"^[A-Za-z0-9_-]+$"))]
    pub name: String,
    /// Path prefixes, matched anchored and on a segment boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), inner(length(max = 1024), pattern(r"^/[^?#\s]*$")))]
    pub paths: Option<Vec<String>>,
    /// The desktop pod port the token's target is reached on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub desktop_port: Option<i32>,
    /// A fixed upstream from `services`; no token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(r"^[A-Za-z0-9_-]+$"))]
    pub service: Option<String>,
    /// `/container/<JWT>/<port>/...` and `/container/<port>` addressing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<bool>,
    /// Where the token is found, in order (before `jwt.fallbackHeaders`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
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
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": crate::rules::ONE_SOURCE, "message": "give exactly one of header, query or rawQuery: true"},
    {"rule": crate::rules::RAW_QUERY_TRUE, "message": "rawQuery: false: leave the source out instead"},
]))]
pub struct TokenSourceSpec {
    /// A request header (`Bearer ` is stripped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256), pattern(r"^[-!#$%&'*+.^_`|~0-9A-Za-z]+$"))]
    pub header: Option<String>,
    /// A query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256), pattern(r"^[^&=#? ]+$"))]
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
