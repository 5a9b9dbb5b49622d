//! The built-in route table: contract.md section 3, with the abcdesktop defaults.

use http::HeaderName;
use route_crds::PortsSpec;
use route_proxy::route_table::Rewrite;
use route_proxy::route_table::TokenSource;

use super::route_table::{Draft, Target};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// The token header of HTTP requests to desktops.
pub(super) fn abc_authorization() -> TokenSource {
    TokenSource::Header(HeaderName::from_static("abcauthorization"))
}

fn jwt_token() -> TokenSource {
    TokenSource::Query("jwt_token".into())
}

/// A desktop route with the defaults of desktop routes: keep the path, no body limit, 60 s
/// read timeout, no WebSocket.
fn desktop(name: &str, ports: &PortsSpec, sources: Vec<TokenSource>) -> Draft {
    let port = ports.by_route(name).unwrap_or_default();
    let target = Target::Desktop { port, place: format!("spec.ports.{name}"), sources };
    Draft::new(name, &[&format!("/{name}")], target)
}

fn service(name: &str, paths: &[&str], service: &str) -> Draft {
    Draft::new(name, paths, Target::Service { name: service.into(), place: None })
}

/// Every built-in route, in the order of contract.md.
pub(super) fn routes(ports: &PortsSpec) -> Vec<Draft> {
    let header = || vec![abc_authorization()];
    let query = || vec![jwt_token()];
    vec![
        desktop("spawner", ports, header()).max_body(8 * MIB),
        desktop("filer", ports, header()).max_body(8 * GIB),
        desktop("printerfiler", ports, header()),
        // HTTP requests carry the header; the WebSocket `/terminals/<id>?<JWT>` the raw query.
        desktop("terminals", ports, vec![abc_authorization(), TokenSource::RawQuery]).websocket(1800),
        // 3600 s idle rather than the original's 60 s, which drops an idle noVNC session.
        desktop("websockify", ports, vec![jwt_token(), TokenSource::RawQuery])
            .rewrite(Rewrite::Root)
            .websocket(3600),
        desktop("signalling", ports, query()).rewrite(Rewrite::Root).websocket(3600),
        desktop("broadcast", ports, query()).websocket(1800),
        desktop("sound", ports, query()).rewrite(Rewrite::Root).websocket(3600),
        desktop("microphone", ports, query()).rewrite(Rewrite::Root).websocket(3600),
        desktop("gamepad", ports, query()).rewrite(Rewrite::Root).websocket(3600),
        desktop("snapshot", ports, header()),
        Draft::new("container", &["/container"], Target::Container { sources: header() }).websocket(3600),
        // nginx's default client_max_body_size is 1 MiB; pyos uploads get 8 MiB.
        service("pyos", &["/moauth", "/fauth", "/gauth", "/oauth", "/autologin", "/API", "/status"], "pyos")
            .max_body(8 * MIB)
            .read_timeout(360),
        service("pyos-launchdesktop", &["/API/composer/launchdesktop"], "pyos")
            .max_body(8 * MIB)
            .read_timeout(600),
        service("pyos-image", &["/API/manager/image"], "pyos").max_body(16 * MIB).read_timeout(360),
        service("console", &["/console"], "console").rewrite(Rewrite::StripPrefix),
        service("speedtest", &["/speedtest"], "speedtest")
            .rewrite(Rewrite::StripPrefix)
            .max_body(256 * MIB)
            .no_compression(),
        service("website", &["/"], "website"),
    ]
}
