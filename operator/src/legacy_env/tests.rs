//! The original router's environment: defaults, overrides, and errors naming the variable.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use route_proxy::Settings;
use route_proxy::metrics::Metrics;
use route_proxy::route_table::Backend;

use super::{DEFAULT_PAYLOAD_PATH, DEFAULT_SIGNING_PATH, LegacyEnv, load, watch};
use crate::Publisher;
use crate::test_support::{ctx, key_dir, lookup, messages, rsa_pair};

fn vars(pairs: &[(&str, &str)]) -> LegacyEnv {
    LegacyEnv::from_vars(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
}

/// The variables pointing at a vector key set's files.
fn key_vars(set: &str) -> Vec<(String, String)> {
    let dir = key_dir(set);
    vec![
        (
            "JWT_DESKTOP_SIGNING_PUBLIC_KEY".into(),
            dir.join("abcdesktop_jwt_desktop_signing_public_key.pem").display().to_string(),
        ),
        (
            "JWT_DESKTOP_PAYLOAD_PRIVATE_KEY".into(),
            dir.join("abcdesktop_jwt_desktop_payload_private_key.pem").display().to_string(),
        ),
    ]
}

fn with_keys(pairs: &[(&str, &str)]) -> LegacyEnv {
    let mut all = key_vars("rsa1024-pkcs1");
    all.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    LegacyEnv::from_vars(all)
}

fn service(settings: &Settings, path: &str) -> (String, u16) {
    match &lookup(settings, path).1.backend {
        Backend::Service { host, port } => (host.to_string(), *port),
        other => panic!("{other:?}"),
    }
}

fn load_errors(env: &LegacyEnv) -> Vec<String> {
    match load(env, &ctx()) {
        Ok(_) => panic!("loaded"),
        Err(errors) => messages(&errors),
    }
}

#[test]
fn defaults_are_the_original_images() {
    let env = vars(&[]);
    assert_eq!(env.signing_key_path, Path::new(DEFAULT_SIGNING_PATH));
    assert_eq!(env.payload_key_path, Path::new(DEFAULT_PAYLOAD_PATH));
    assert_eq!(env.pyos_fqdn, None);
    assert_eq!(
        load_errors(&env),
        [
            "JWT_DESKTOP_SIGNING_PUBLIC_KEY=/config.signing/abcdesktop_jwt_desktop_signing_public_key.pem: cannot read: No such file or directory",
            "JWT_DESKTOP_PAYLOAD_PRIVATE_KEY=/config.payload/abcdesktop_jwt_desktop_payload_private_key.pem: cannot read: No such file or directory",
        ]
    );
    let settings = load(&with_keys(&[]), &ctx()).unwrap();
    assert_eq!(service(&settings, "/API"), ("pyos".into(), 8000));
    assert_eq!(service(&settings, "/"), ("website".into(), 80));
    assert_eq!(service(&settings, "/console"), ("console".into(), 80));
    assert_eq!(service(&settings, "/speedtest"), ("speedtest".into(), 80));
    assert_eq!(settings.node_name, "node-1");
    assert_eq!(settings.auth.keys.signing[0].key.bits(), 1024);
}

#[test]
fn overrides() {
    let env = with_keys(&[
        ("PYOS_FQDN", "pyos.abcdesktop.svc.cluster.local"),
        ("PYOS_SERVICE_HOST", "10.96.0.9"),
        ("PYOS_SERVICE_PORT", "8001"),
        ("WEBSITE_FQDN", "web:8080"),
        ("CONSOLE_FQDN", "[fd00::1]:81"),
        ("SPEEDTEST_FQDN", "speed.example.org"),
        ("NODE_NAME", "worker-3"),
    ]);
    let settings = load(&env, &ctx()).unwrap();
    assert_eq!(service(&settings, "/API"), ("pyos.abcdesktop.svc.cluster.local".into(), 8001));
    assert_eq!(service(&settings, "/"), ("web".into(), 8080));
    assert_eq!(service(&settings, "/console"), ("fd00::1".into(), 81));
    assert_eq!(service(&settings, "/speedtest"), ("speed.example.org".into(), 80));
    assert_eq!(settings.node_name, "worker-3");
    // The service link when PYOS_FQDN is unset or empty; a port with the host wins.
    let settings =
        load(&with_keys(&[("PYOS_FQDN", ""), ("PYOS_SERVICE_HOST", "10.96.0.9")]), &ctx()).unwrap();
    assert_eq!(service(&settings, "/API"), ("10.96.0.9".into(), 8000));
    let settings =
        load(&with_keys(&[("PYOS_FQDN", "pyos:9000"), ("PYOS_SERVICE_PORT", "8000")]), &ctx()).unwrap();
    assert_eq!(service(&settings, "/API"), ("pyos".into(), 9000));
}

#[test]
fn errors_name_the_variable() {
    let env =
        with_keys(&[("PYOS_SERVICE_PORT", "http"), ("WEBSITE_FQDN", "a b"), ("CONSOLE_FQDN", "console:0")]);
    assert_eq!(
        load_errors(&env),
        [
            r#"CONSOLE_FQDN=console:0: "0" is not a port (1 to 65535)"#,
            r#"PYOS_SERVICE_PORT=http: "http" is not a port (1 to 65535)"#,
            r#"WEBSITE_FQDN=a b: "a b" is not a host name or IP address"#,
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.pem");
    std::fs::write(&small, rsa_pair(512).1).unwrap();
    let missing = "/x/y.pem";
    let env = vars(&[
        ("JWT_DESKTOP_SIGNING_PUBLIC_KEY", small.to_str().unwrap()),
        ("JWT_DESKTOP_PAYLOAD_PRIVATE_KEY", missing),
    ]);
    assert_eq!(
        load_errors(&env),
        [
            "JWT_DESKTOP_PAYLOAD_PRIVATE_KEY=/x/y.pem: cannot read: No such file or directory".to_owned(),
            format!(
                "JWT_DESKTOP_SIGNING_PUBLIC_KEY={}: RSA key of 512 bits; 1024 to 4096 are accepted",
                small.display()
            ),
        ]
    );
}

#[tokio::test]
async fn watch_publishes_rotated_key_files_with_grace() {
    let dir = tempfile::tempdir().unwrap();
    let signing = dir.path().join("signing.pem");
    let payload = dir.path().join("payload.pem");
    let copy = |set: &str| {
        let from = key_dir(set);
        std::fs::copy(from.join("abcdesktop_jwt_desktop_signing_public_key.pem"), &signing).unwrap();
        std::fs::copy(from.join("abcdesktop_jwt_desktop_payload_private_key.pem"), &payload).unwrap();
    };
    copy("rsa1024-pkcs1");
    let env = vars(&[
        ("JWT_DESKTOP_SIGNING_PUBLIC_KEY", signing.to_str().unwrap()),
        ("JWT_DESKTOP_PAYLOAD_PRIVATE_KEY", payload.to_str().unwrap()),
    ]);
    let (tx, rx) = Settings::channel();
    let publisher = Publisher::new(tx, Arc::new(Metrics::new()));
    publisher.publish(load(&env, &ctx()).unwrap());
    let task = tokio::spawn(watch(env, ctx(), publisher.clone(), Duration::from_millis(20)));
    copy("rsa2048-pkcs8");
    for _ in 0..500 {
        if rx.borrow().generation == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let current = publisher.current();
    assert_eq!(current.generation, 2);
    let bits: Vec<(u32, bool)> =
        current.auth.keys.payload.iter().map(|k| (k.key.bits(), k.until.is_some())).collect();
    assert_eq!(bits, [(2048, false), (1024, true)]);
    task.abort();
}
