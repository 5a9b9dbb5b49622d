//! `docs/builtin-routes.md`: the built-in route table as translate() builds it from an empty
//! spec, so that the reference a user overrides routes by cannot drift from the code.
//! `ROUTE_BLESS=1 cargo test -p route-operator builtin_routes` rewrites it.

use std::fmt::Write as _;

use route_crds::{PortsSpec, RouteConfigSpec};
use route_proxy::route_table::TokenSource;
use route_proxy::route_table::{Backend, Rewrite};

use super::ok;
use crate::test_support::key_secrets;
use crate::translate::builtin;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/builtin-routes.md");

fn sources(list: &[TokenSource]) -> String {
    let names: Vec<String> = list
        .iter()
        .map(|s| match s {
            TokenSource::Header(name) if name == "abcauthorization" => "`ABCAuthorization` header".to_owned(),
            TokenSource::Header(name) => format!("`{name}` header"),
            TokenSource::Query(name) => format!("`?{name}=`"),
            TokenSource::RawQuery => "the raw query `?<JWT>`".to_owned(),
        })
        .collect();
    names.join(", then ")
}

fn size(bytes: Option<u64>) -> String {
    const MIB: u64 = 1024 * 1024;
    match bytes {
        None => "unlimited".to_owned(),
        Some(b) if b >= 1024 * MIB && b % (1024 * MIB) == 0 => format!("{} GiB", b / (1024 * MIB)),
        Some(b) if b % MIB == 0 => format!("{} MiB", b / MIB),
        Some(b) => format!("{b} B"),
    }
}

fn render() -> String {
    let settings = ok(&RouteConfigSpec::default(), &key_secrets("rsa2048-pkcs8"));
    // The table is sorted longest prefix first; the reference groups prefixes by route, in the
    // order the routes were declared (the order of contract.md).
    let mut routes: Vec<(String, Vec<String>, std::sync::Arc<route_proxy::route_table::Route>)> = Vec::new();
    let mut prefixes: Vec<(&str, &std::sync::Arc<route_proxy::route_table::Route>)> =
        settings.routes.iter().collect();
    prefixes.reverse();
    for (prefix, route) in prefixes {
        match routes.iter_mut().find(|(name, ..)| **name == *route.name) {
            Some((_, paths, _)) => paths.push(prefix.to_owned()),
            None => routes.push((route.name.to_string(), vec![prefix.to_owned()], route.clone())),
        }
    }
    let order: Vec<String> =
        builtin::routes(&PortsSpec::default()).iter().map(|d| d.name().to_owned()).collect();
    routes.sort_by_key(|(name, ..)| order.iter().position(|o| o == name).unwrap_or(order.len()));
    let mut out = String::from(
        "# Built-in routes\n\n\
         <!-- Generated from translate() of an empty spec by operator/src/translate/tests/reference.rs; \
         do not edit. -->\n\n\
         What `route` serves with `spec: {}`. Change a row with `spec.routes` (by `name`: `paths`, \
         `desktopPort`, `service`, `container`, `tokenSources`, `rewrite`, `maxBodyBytes`, \
         `readTimeoutSeconds`, `websocket`, `idleTimeoutSeconds`, `enabled: false`), ports with `spec.ports`, \
         services with `spec.services`; see [configuration.md](configuration.md). Paths match \
         anchored, on a segment boundary, longest first. Every route also accepts \
         `Authorization: Bearer <JWT>` after its own sources.\n\n\
         | route | paths | upstream | token from | path sent | body limit | read timeout | WebSocket idle |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for (name, mut paths, route) in routes {
        paths.sort();
        let paths: Vec<String> = paths.iter().map(|p| format!("`{p}`")).collect();
        let (upstream, token) = match &route.backend {
            Backend::Desktop { port, sources: s } => (format!("desktop pod :{port}"), sources(s)),
            Backend::Container { sources: s } => (
                "desktop pod, port from the path".to_owned(),
                format!("the path `/container/<JWT>/<port>/...`, or {}", sources(s)),
            ),
            Backend::Service { host, port } => (format!("`{host}:{port}`"), "none".to_owned()),
        };
        let rewrite = match (&route.backend, route.rewrite) {
            (Backend::Container { .. }, _) => "`/<rest>?<query>` when the token is in the path",
            (_, Rewrite::Keep) => "unchanged",
            (_, Rewrite::Root) => "`/`",
            (_, Rewrite::StripPrefix) => "prefix replaced by `/`",
        };
        let idle = if route.websocket {
            format!("{} s", route.idle_timeout.as_secs())
        } else {
            "no WebSocket".to_owned()
        };
        let compress = if route.compress { "" } else { " (no gzip)" };
        writeln!(
            out,
            "| `{name}`{compress} | {} | {upstream} | {token} | {rewrite} | {} | {} s | {idle} |",
            paths.join(" "),
            size(route.max_body),
            route.read_timeout.as_secs(),
        )
        .unwrap();
    }
    out
}

#[test]
fn builtin_routes_reference_is_what_translate_builds() {
    let want = render();
    if std::env::var_os("ROUTE_BLESS").is_some() {
        std::fs::write(PATH, &want).unwrap();
    }
    let have = std::fs::read_to_string(PATH).unwrap_or_default();
    assert!(
        have == want,
        "docs/builtin-routes.md differs from the built-in table; rewrite it with \
         `ROUTE_BLESS=1 cargo test -p route-operator builtin_routes`"
    );
}
