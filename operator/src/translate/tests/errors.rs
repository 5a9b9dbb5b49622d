//! Every error class, with its exact message.

use route_crds::{PAYLOAD_KEY, PAYLOAD_SECRET, RouteConfigSpec, SIGNING_KEY, SIGNING_SECRET};

use super::{errors, spec};
use crate::test_support::{key_secrets, pem, rsa_pair};

/// The errors of a spec over good keys.
fn spec_errors(yaml: &str) -> Vec<String> {
    errors(&spec(yaml), &key_secrets("rsa1024-pkcs1"))
}

#[test]
fn ports() {
    let yaml = r#"
ports: {filer: 0}
targets: {containerPorts: [8080, 70000, -1]}
routes:
  - {name: a, paths: [/a], desktopPort: 8080}
  - {name: b, paths: [/b], desktopPort: 8081}
  - {name: c, paths: [/c], desktopPort: 0}
services: {pyos: {port: 65536}}
"#;
    assert_eq!(
        spec_errors(yaml),
        [
            "spec.targets.containerPorts[1]: 70000 is not a port (1 to 65535)",
            "spec.targets.containerPorts[2]: -1 is not a port (1 to 65535)",
            "spec.services.pyos.port: 65536 is not a port (1 to 65535)",
            "spec.ports.filer: 0 is not a port (1 to 65535)",
            "spec.routes[2].desktopPort: 0 is not a port (1 to 65535)",
        ]
    );
}

#[test]
fn missing_secrets_and_keys() {
    let mut secrets = key_secrets("rsa1024-pkcs1");
    secrets.remove(SIGNING_SECRET);
    secrets.get_mut(PAYLOAD_SECRET).unwrap().remove(PAYLOAD_KEY);
    assert_eq!(
        errors(&RouteConfigSpec::default(), &secrets),
        [
            "Secret abcdesktopjwtdesktopsigning: not found (named by spec.keys.signing.secretName)",
            "Secret abcdesktopjwtdesktoppayload: key abcdesktop_jwt_desktop_payload_private_key.pem missing",
        ]
    );
    let empty = spec("keys: {signing: {secretName: ''}, payload: {key: ''}}");
    assert_eq!(
        errors(&empty, &key_secrets("rsa1024-pkcs1")),
        [
            "spec.keys.signing.secretName: empty: name the Secret",
            "spec.keys.payload.key: empty: name the key of the Secret"
        ]
    );
}

#[test]
fn key_sizes_and_kinds_without_key_material() {
    let (small_private, small_public) = rsa_pair(512);
    let mut secrets = key_secrets("rsa1024-pkcs1");
    secrets.get_mut(SIGNING_SECRET).unwrap().insert(SIGNING_KEY.into(), small_public);
    secrets.get_mut(PAYLOAD_SECRET).unwrap().insert(PAYLOAD_KEY.into(), small_private);
    assert_eq!(
        errors(&RouteConfigSpec::default(), &secrets),
        [
            "Secret abcdesktopjwtdesktopsigning: key abcdesktop_jwt_desktop_signing_public_key.pem: RSA key of 512 bits; 1024 to 4096 are accepted",
            "Secret abcdesktopjwtdesktoppayload: key abcdesktop_jwt_desktop_payload_private_key.pem: RSA key of 512 bits; 1024 to 4096 are accepted",
        ]
    );
    // The payload Secret's public key where the private key is expected, and garbage.
    let mut secrets = key_secrets("rsa2048-pkcs8");
    let public = pem("rsa2048-pkcs8", "abcdesktop_jwt_desktop_payload_public_key.pem");
    secrets.get_mut(PAYLOAD_SECRET).unwrap().insert(PAYLOAD_KEY.into(), public);
    secrets
        .get_mut(SIGNING_SECRET)
        .unwrap()
        .insert(SIGNING_KEY.into(), b"MIIBIjANBgkqhkiG9w0B secret".to_vec());
    let messages = errors(&RouteConfigSpec::default(), &secrets);
    assert_eq!(
        messages,
        [
            "Secret abcdesktopjwtdesktopsigning: key abcdesktop_jwt_desktop_signing_public_key.pem: not an RSA public key in PEM (SubjectPublicKeyInfo or PKCS#1)",
            "Secret abcdesktopjwtdesktoppayload: key abcdesktop_jwt_desktop_payload_private_key.pem: not an unencrypted RSA private key in PEM (PKCS#1 or PKCS#8)",
        ]
    );
    for message in messages {
        assert!(
            !message.contains("MII") && !message.contains("BEGIN") && !message.contains("secret"),
            "{message}"
        );
    }
}

#[test]
fn algorithms_are_rsa_only() {
    assert_eq!(
        spec_errors("jwt: {algorithms: [HS256, RS256, none, ES256, rs256]}"),
        [
            "spec.jwt.algorithms[0]: HS256 is not allowed: only RSA algorithms (RS256.. PS512)",
            "spec.jwt.algorithms[2]: none is not allowed: only RSA algorithms (RS256.. PS512)",
            "spec.jwt.algorithms[3]: ES256 is not allowed: only RSA algorithms (RS256.. PS512)",
            "spec.jwt.algorithms[4]: rs256 is not allowed: only RSA algorithms (RS256.. PS512)",
        ]
    );
    assert_eq!(
        spec_errors("jwt: {algorithms: []}"),
        ["spec.jwt.algorithms: empty: name at least one (RS256 is the default)"]
    );
}

#[test]
fn token_sources_and_headers() {
    let yaml = r#"
jwt: {fallbackHeaders: ["Bad Header"]}
routes:
  - name: a
    paths: [/a]
    desktopPort: 1
    tokenSources: [{header: X, query: y}, {}, {rawQuery: false}, {query: "a=b"}, {header: "é"}]
  - {name: pyos, tokenSources: [{header: ABCAuthorization}]}
"#;
    assert_eq!(
        spec_errors(yaml),
        [
            r#"spec.jwt.fallbackHeaders[0]: "Bad Header" is not a header name"#,
            "spec.routes[0].tokenSources[0]: give exactly one of header, query or rawQuery: true",
            "spec.routes[0].tokenSources[1]: give exactly one of header, query or rawQuery: true",
            "spec.routes[0].tokenSources[2].rawQuery: false: leave the source out instead",
            r#"spec.routes[0].tokenSources[3].query: "a=b" is not a query parameter name"#,
            r#"spec.routes[0].tokenSources[4].header: "é" is not a header name"#,
            "spec.routes[1].tokenSources: a service route takes no token",
        ]
    );
}

#[test]
fn routes() {
    let yaml = r#"
routes:
  - {name: new-no-paths, desktopPort: 8080}
  - {name: new-no-upstream, paths: [/x]}
  - {name: several, paths: [/y], desktopPort: 1, service: pyos}
  - {name: empty-paths, paths: [], container: true}
  - {name: relative, paths: [api, "/ok", "/q?x"], service: website}
  - {name: unknown, paths: [/u], service: nope}
  - {name: filer, service: pyos, container: true}
  - {name: "bad name", paths: [/b], desktopPort: 1}
  - {name: new-no-paths, enabled: false}
  - {name: taken, paths: [/API/], service: pyos}
  - {name: timeouts, paths: [/t], desktopPort: 1, readTimeoutSeconds: 0, idleTimeoutSeconds: 0}
"#;
    assert_eq!(
        spec_errors(yaml),
        [
            "spec.routes[0].paths: missing: a new route needs at least one path",
            "spec.routes[1]: a new route needs one of desktopPort, service or container: true",
            "spec.routes[2]: give one of desktopPort, service or container: true, not several",
            "spec.routes[6]: give one of desktopPort, service or container: true, not several",
            r#"spec.routes[7].name: "bad name" is not a route name (letters, digits, '-', '_')"#,
            "spec.routes[8].name: new-no-paths repeats spec.routes[0]",
            "spec.routes[10].readTimeoutSeconds: 0: at least 1 second",
            "spec.routes[10].idleTimeoutSeconds: 0: at least 1 second",
            "spec.routes[3].paths: empty: a route needs at least one path",
            r#"spec.routes[4].paths[0]: "api" is not a path prefix (it starts with '/', no query)"#,
            r#"spec.routes[4].paths[2]: "/q?x" is not a path prefix (it starts with '/', no query)"#,
            "spec.routes[5].service: unknown service nope (known: console, pyos, speedtest, website)",
            "spec.routes[9].paths[0]: /API/ is already routed by pyos",
        ]
    );
}

#[test]
fn services_targets_cache_limits_acme() {
    let yaml = r#"
services:
  pyos: {host: "pyos:8000"}
  extra: {port: 81}
  "bad/name": {host: x}
targets:
  allowedCidrs: [10.0.0.0/33, 10.0.0.1]
  allowedDnsSuffixes: [".", "a..b"]
cache: {maxEntries: 0}
limits: {connectTimeoutSeconds: 0, headerReadTimeoutSeconds: 0}
acmeChallengeDir: acme
"#;
    assert_eq!(
        spec_errors(yaml),
        [
            r#"spec.targets.allowedCidrs[0]: "10.0.0.0/33" is not a CIDR (e.g. 10.244.0.0/16)"#,
            r#"spec.targets.allowedCidrs[1]: "10.0.0.1" is not a CIDR (e.g. 10.244.0.0/16)"#,
            r#"spec.targets.allowedDnsSuffixes[0]: "." is not a DNS suffix (e.g. .desktop.abcdesktop.svc.cluster.local)"#,
            r#"spec.targets.allowedDnsSuffixes[1]: "a..b" is not a DNS suffix (e.g. .desktop.abcdesktop.svc.cluster.local)"#,
            "spec.cache.maxEntries: 0: at least 1 (use ttlCapSeconds: 0 to turn the cache off)",
            r#"spec.services.bad/name: "bad/name" is not a service name (letters, digits, '-', '_')"#,
            "spec.services.extra.host: missing: a new service needs a host",
            r#"spec.services.pyos.host: "pyos:8000" is not a host name or IP address"#,
            "spec.limits.connectTimeoutSeconds: 0: at least 1 second",
            "spec.limits.headerReadTimeoutSeconds: 0: at least 1 second",
            r#"spec.acmeChallengeDir: "acme" is not an absolute path"#,
        ]
    );
}

#[test]
fn tls_secrets() {
    let (cert, key) = crate::test_support::self_signed();
    let (_, other_key) = crate::test_support::self_signed();
    let tls = |crt: &[u8], key: Option<&[u8]>| {
        let mut secrets = key_secrets("rsa1024-pkcs1");
        let mut data = std::collections::BTreeMap::from([("tls.crt".to_owned(), crt.to_vec())]);
        if let Some(key) = key {
            data.insert("tls.key".into(), key.to_vec());
        }
        secrets.insert("route-tls".into(), data);
        errors(&spec("tls: {secretName: route-tls}"), &secrets)
    };
    assert_eq!(
        errors(&spec("tls: {secretName: route-tls}"), &key_secrets("rsa1024-pkcs1")),
        ["Secret route-tls: not found (named by spec.tls.secretName)"]
    );
    assert_eq!(tls(&cert, None), ["Secret route-tls: key tls.key missing"]);
    assert_eq!(
        tls(&cert, Some(&other_key)),
        ["Secret route-tls: the private key in tls.key does not match the certificate in tls.crt"]
    );
    assert_eq!(
        tls(b"nothing", Some(b"nothing")),
        [
            "Secret route-tls: key tls.crt: no certificate (BEGIN CERTIFICATE) in PEM",
            "Secret route-tls: key tls.key: no private key (PKCS#1, PKCS#8 or SEC1) in PEM",
        ]
    );
    assert_eq!(
        tls(&key, Some(&key)),
        ["Secret route-tls: key tls.crt: no certificate (BEGIN CERTIFICATE) in PEM"]
    );
}
