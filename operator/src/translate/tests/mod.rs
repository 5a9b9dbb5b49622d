//! translate(): the built-in table over an empty spec, merges, and every error class.

mod errors;
mod merge;
mod reference;

use std::time::Duration;

use http::HeaderName;
use jsonwebtoken::Algorithm;
use route_crds::RouteConfigSpec;
use route_proxy::Settings;
use route_proxy::route_table::TokenSource;
use route_proxy::route_table::{Backend, Rewrite};
use route_proxy::settings::Decryption;

use super::{Secrets, translate};
use crate::test_support::{SETS, ctx, key_secrets, lookup};

const MIB: u64 = 1024 * 1024;

/// A spec as a user writes it, in YAML.
pub(super) fn spec(yaml: &str) -> RouteConfigSpec {
    serde_yaml::from_str(yaml).unwrap()
}

pub(super) fn ok(spec: &RouteConfigSpec, secrets: &Secrets) -> Settings {
    translate(spec, secrets, &ctx())
        .unwrap_or_else(|errors| panic!("{}", crate::test_support::messages(&errors).join("\n")))
}

pub(super) fn errors(spec: &RouteConfigSpec, secrets: &Secrets) -> Vec<String> {
    match translate(spec, secrets, &ctx()) {
        Ok(_) => panic!("translated"),
        Err(errors) => crate::test_support::messages(&errors),
    }
}

fn header(name: &str) -> TokenSource {
    TokenSource::Header(HeaderName::from_bytes(name.as_bytes()).unwrap())
}

fn query(name: &str) -> TokenSource {
    TokenSource::Query(name.into())
}

#[test]
fn an_empty_spec_is_abcdesktop_with_every_vector_key_set() {
    for set in SETS {
        let settings = ok(&RouteConfigSpec::default(), &key_secrets(set));
        assert_eq!(settings.generation, 0);
        assert_eq!(settings.source, "test");
        assert_eq!(settings.node_name, "node-1");
        let auth = &settings.auth;
        assert_eq!(auth.algorithms, [Algorithm::RS256]);
        assert_eq!(auth.decryption, Decryption::Pkcs1v15);
        assert_eq!(auth.fallback_sources, [header("authorization")]);
        assert_eq!(auth.grace, Duration::from_secs(600));
        assert_eq!(auth.cache.ttl_cap, Duration::from_secs(600));
        assert_eq!(auth.cache.max_entries, 100_000);
        assert!(auth.targets.cidrs.is_empty() && auth.targets.dns_suffixes.is_empty());
        assert_eq!(auth.targets.container_ports, None);
        assert_eq!(auth.keys.signing.len(), 1);
        assert_eq!(auth.keys.payload.len(), 1);
        assert_eq!(auth.keys.signing[0].until, None);
        let bits: u32 = set[3..set.find('-').unwrap()].parse().unwrap();
        assert_eq!(auth.keys.signing[0].key.bits(), bits);
        assert_eq!(auth.keys.payload[0].key.bits(), bits);
        assert_eq!(settings.limits.connect_timeout, Duration::from_secs(5));
        assert_eq!(settings.limits.drain_timeout, Duration::from_secs(30));
        assert_eq!(settings.limits.header_read_timeout, Duration::from_secs(30));
        assert!(settings.tls.is_none() && settings.acme_dir.is_none());
    }
}

/// One row per built-in: (a path, route, upstream, sources, rewrite, max body, read s,
/// websocket, idle s).
#[test]
fn the_built_in_table_is_contract_section_3() {
    let settings = ok(&RouteConfigSpec::default(), &key_secrets("rsa2048-pkcs8"));
    let abc = || vec![header("abcauthorization")];
    let jwt = || vec![query("jwt_token")];
    let desktop = |port, sources| Backend::Desktop { port, sources };
    let service = |host: &str, port| Backend::Service { host: host.into(), port };
    type Row = (&'static str, &'static str, Backend, Rewrite, Option<u64>, u64, bool, u64);
    let rows: Vec<Row> = vec![
        ("/spawner/x", "spawner", desktop(29786, abc()), Rewrite::Keep, Some(8 * MIB), 60, false, 3600),
        ("/filer", "filer", desktop(29783, abc()), Rewrite::Keep, Some(8 * 1024 * MIB), 60, false, 3600),
        ("/printerfiler", "printerfiler", desktop(29782, abc()), Rewrite::Keep, None, 60, false, 3600),
        (
            "/terminals/1/size",
            "terminals",
            desktop(29781, vec![header("abcauthorization"), TokenSource::RawQuery]),
            Rewrite::Keep,
            None,
            60,
            true,
            1800,
        ),
        (
            "/websockify",
            "websockify",
            desktop(6081, vec![query("jwt_token"), TokenSource::RawQuery]),
            Rewrite::Root,
            None,
            60,
            true,
            3600,
        ),
        ("/signalling", "signalling", desktop(29787, jwt()), Rewrite::Root, None, 60, true, 3600),
        ("/broadcast", "broadcast", desktop(29784, jwt()), Rewrite::Keep, None, 60, true, 1800),
        ("/sound", "sound", desktop(29788, jwt()), Rewrite::Root, None, 60, true, 3600),
        ("/microphone", "microphone", desktop(29789, jwt()), Rewrite::Root, None, 60, true, 3600),
        ("/gamepad", "gamepad", desktop(29790, jwt()), Rewrite::Root, None, 60, true, 3600),
        ("/snapshot", "snapshot", desktop(29785, abc()), Rewrite::Keep, None, 60, false, 3600),
        (
            "/container/t/80/x",
            "container",
            Backend::Container { sources: abc() },
            Rewrite::Keep,
            None,
            60,
            true,
            3600,
        ),
        (
            "/API/manager/images",
            "pyos",
            service("pyos", 8000),
            Rewrite::Keep,
            Some(8 * MIB),
            360,
            false,
            3600,
        ),
        (
            "/API/composer/launchdesktop",
            "pyos-launchdesktop",
            service("pyos", 8000),
            Rewrite::Keep,
            Some(8 * MIB),
            600,
            false,
            3600,
        ),
        (
            "/API/manager/image",
            "pyos-image",
            service("pyos", 8000),
            Rewrite::Keep,
            Some(16 * MIB),
            360,
            false,
            3600,
        ),
        ("/console/", "console", service("console", 80), Rewrite::StripPrefix, None, 60, false, 3600),
        (
            "/speedtest",
            "speedtest",
            service("speedtest", 80),
            Rewrite::StripPrefix,
            Some(256 * MIB),
            60,
            false,
            3600,
        ),
        ("/index.html", "website", service("website", 80), Rewrite::Keep, None, 60, false, 3600),
        ("/filerx", "website", service("website", 80), Rewrite::Keep, None, 60, false, 3600),
    ];
    for (path, name, upstream, rewrite, max_body, read, websocket, idle) in rows {
        let (_, route) = lookup(&settings, path);
        assert_eq!(&*route.name, name, "{path}");
        assert_eq!(route.backend, upstream, "{path}");
        assert_eq!(route.rewrite, rewrite, "{path}");
        assert_eq!(route.max_body, max_body, "{path}");
        assert_eq!(route.read_timeout, Duration::from_secs(read), "{path}");
        assert_eq!(route.websocket, websocket, "{path}");
        if websocket {
            assert_eq!(route.idle_timeout, Duration::from_secs(idle), "{path}");
        }
    }
    for path in ["/moauth", "/fauth", "/gauth", "/oauth", "/autologin", "/API", "/status"] {
        assert_eq!(&*lookup(&settings, path).1.name, "pyos", "{path}");
    }
    // 11 desktop routes, container, 7 pyos prefixes, 2 more pyos routes, console, speedtest, website.
    assert_eq!(settings.routes.len(), 11 + 1 + 7 + 2 + 3);
}

#[test]
fn node_name_from_the_spec_wins_over_the_environment() {
    let settings = ok(&spec("nodeName: worker-7"), &key_secrets("rsa1024-pkcs1"));
    assert_eq!(settings.node_name, "worker-7");
}

#[test]
fn options_are_compiled() {
    let spec = spec(
        r#"
keys: {graceSeconds: 0}
jwt: {algorithms: [PS256, RS512, PS256], decryption: oaep-sha256, fallbackHeaders: [Authorization, X-Token]}
cache: {ttlCapSeconds: 0, maxEntries: 1}
targets:
  allowedCidrs: [10.244.1.7/16, "fd00::/8"]
  allowedDnsSuffixes: [desktop.abcdesktop.svc.cluster.local, .Other.Local.]
  containerPorts: [8080, 22, 8080]
limits: {connectTimeoutSeconds: 1, drainSeconds: 0, headerReadTimeoutSeconds: 2}
acmeChallengeDir: /var/acme
"#,
    );
    let settings = ok(&spec, &key_secrets("rsa1024-pkcs1"));
    let auth = &settings.auth;
    assert_eq!(auth.algorithms, [Algorithm::PS256, Algorithm::RS512]);
    assert_eq!(auth.decryption, Decryption::OaepSha256);
    assert_eq!(auth.fallback_sources, [header("authorization"), header("x-token")]);
    assert_eq!(auth.grace, Duration::ZERO);
    assert_eq!(auth.cache.ttl_cap, Duration::ZERO);
    assert_eq!(auth.targets.cidrs, ["10.244.0.0/16".parse().unwrap(), "fd00::/8".parse().unwrap()]);
    assert_eq!(auth.targets.dns_suffixes, [".desktop.abcdesktop.svc.cluster.local", ".other.local"]);
    assert_eq!(auth.targets.container_ports, Some(vec![8080, 22]));
    assert!(auth.targets.allows_name("pod-1.desktop.abcdesktop.svc.cluster.local"));
    assert_eq!(settings.limits.drain_timeout, Duration::ZERO);
    assert_eq!(settings.acme_dir.as_deref(), Some(std::path::Path::new("/var/acme")));
}

#[test]
fn tls_from_a_kubernetes_tls_secret() {
    let (cert, key) = crate::test_support::self_signed();
    let mut secrets = key_secrets("rsa1024-pkcs1");
    secrets.insert("route-tls".into(), [("tls.crt".to_owned(), cert), ("tls.key".to_owned(), key)].into());
    let settings = ok(&spec("tls: {secretName: route-tls}"), &secrets);
    let certified = settings.tls.expect("tls");
    assert_eq!(certified.cert.len(), 1);
}
