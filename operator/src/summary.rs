//! A human summary of settings, for `route check` and logs.

use std::fmt::Write as _;

use route_proxy::Settings;
use route_proxy::route_table::Backend;

/// What a snapshot routes and trusts, one fact a line. Holds no key material.
pub fn summary(settings: &Settings) -> String {
    let mut out = String::new();
    let auth = &settings.auth;
    // Writing into a String cannot fail.
    let _ = writeln!(out, "source: {}", settings.source);
    for key in &auth.keys.signing {
        let _ = writeln!(out, "signing key: {} ({} bits)", key.key.fingerprint(), key.key.bits());
    }
    for key in &auth.keys.payload {
        let _ = writeln!(out, "payload key: {} ({} bits)", key.key.fingerprint(), key.key.bits());
    }
    let algorithms: Vec<String> = auth.algorithms.iter().map(|a| format!("{a:?}")).collect();
    let _ = writeln!(out, "algorithms: {}; decryption: {:?}", algorithms.join(", "), auth.decryption);
    let _ = writeln!(
        out,
        "cache: ttl cap {} s, {} entries; key grace {} s",
        auth.cache.ttl_cap.as_secs(),
        auth.cache.max_entries,
        auth.grace.as_secs()
    );
    let _ = writeln!(out, "routes: {}", settings.routes.len());
    for (prefix, route) in settings.routes.iter() {
        let upstream = match &route.backend {
            Backend::Desktop { port, .. } => format!("desktop:{port}"),
            Backend::Container { .. } => "desktop:<port from path>".to_owned(),
            Backend::Service { host, port } => format!("{host}:{port}"),
        };
        let _ = writeln!(out, "  {prefix} -> {} ({upstream})", route.name);
    }
    if let Some(dir) = &settings.acme_dir {
        let _ = writeln!(out, "acme challenges: {}", dir.display());
    }
    let _ = writeln!(out, "tls: {}", if settings.tls.is_some() { "yes" } else { "no" });
    out
}
