//! A whole desktop on loopback: one recording upstream per desktop route (each on its own
//! ephemeral port, named after the route), one per fixed service, and a `pod` upstream for
//! `/container/`. The manifest points every route at its upstream; tokens target 127.0.0.1.

use std::collections::BTreeMap;

use super::manifest::Manifest;
use super::upstream::Upstream;

/// The desktop routes and their `ports:` keys.
pub const DESKTOP_ROUTES: [&str; 11] = [
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
];

/// The fixed services.
pub const SERVICES: [&str; 4] = ["pyos", "website", "console", "speedtest"];

pub struct Desk {
    pub upstreams: BTreeMap<&'static str, Upstream>,
    /// A server on the desktop "pod" reached through `/container/<JWT>/<port>`.
    pub pod: Upstream,
    /// Another one, for port policies and anchoring checks: nothing should ever reach it.
    pub victim: Upstream,
}

impl Desk {
    pub async fn start() -> Self {
        let mut upstreams = BTreeMap::new();
        for name in DESKTOP_ROUTES.into_iter().chain(SERVICES) {
            upstreams.insert(name, Upstream::start(name).await);
        }
        Self { upstreams, pod: Upstream::start("pod").await, victim: Upstream::start("victim").await }
    }

    pub fn up(&self, name: &str) -> &Upstream {
        self.upstreams.get(name).unwrap_or_else(|| panic!("no upstream {name}"))
    }

    /// A manifest with `keys` pointing every route and service at its upstream.
    pub fn manifest(&self, keys: &route_mint::KeySet) -> Manifest {
        let mut m = Manifest::new(keys);
        for name in DESKTOP_ROUTES {
            m = m.port(name, self.up(name).port());
        }
        for name in SERVICES {
            m = m.service(name, self.up(name).port());
        }
        m
    }

    /// How many requests reached any upstream other than those named.
    pub fn hits_except(&self, names: &[&str]) -> usize {
        self.upstreams.iter().filter(|(n, _)| !names.contains(n)).map(|(_, u)| u.hits()).sum::<usize>()
            + if names.contains(&"pod") { 0 } else { self.pod.hits() }
            + if names.contains(&"victim") { 0 } else { self.victim.hits() }
    }
}
