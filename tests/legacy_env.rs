//! Legacy env mode (no `--manifests`): the original router's environment, keys read from the
//! PEM files named by `JWT_DESKTOP_SIGNING_PUBLIC_KEY` and `JWT_DESKTOP_PAYLOAD_PRIVATE_KEY`,
//! host overrides for pyos, the website, the console and speedtest.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::time::Duration;

use http::StatusCode;
use route_mint::{KeySet, PAYLOAD_PRIVATE, SIGNING_PUBLIC};
use support::{Proxy, Req, Upstream, eventually, keys, mint_with, other_keys};

struct Legacy {
    pyos: Upstream,
    website: Upstream,
    console: Upstream,
    speedtest: Upstream,
    keys_dir: tempfile::TempDir,
}

impl Legacy {
    async fn start() -> Self {
        let keys_dir = tempfile::tempdir().expect("tempdir");
        keys().write_dir(keys_dir.path()).expect("write keys");
        Self {
            pyos: Upstream::start("pyos").await,
            website: Upstream::start("website").await,
            console: Upstream::start("console").await,
            speedtest: Upstream::start("speedtest").await,
            keys_dir,
        }
    }

    fn signing(&self) -> String {
        self.keys_dir.path().join(SIGNING_PUBLIC).display().to_string()
    }

    fn payload(&self) -> String {
        self.keys_dir.path().join(PAYLOAD_PRIVATE).display().to_string()
    }

    fn builder(&self) -> support::proxy::Builder {
        Proxy::builder()
            .keys(keys())
            .env("JWT_DESKTOP_SIGNING_PUBLIC_KEY", &self.signing())
            .env("JWT_DESKTOP_PAYLOAD_PRIVATE_KEY", &self.payload())
            .env("PYOS_FQDN", "127.0.0.1")
            .env("PYOS_SERVICE_PORT", &self.pyos.port().to_string())
            .env("WEBSITE_FQDN", &format!("127.0.0.1:{}", self.website.port()))
            .env("CONSOLE_FQDN", &format!("127.0.0.1:{}", self.console.port()))
            .env("SPEEDTEST_FQDN", &format!("127.0.0.1:{}", self.speedtest.port()))
            .env("NODE_NAME", "node-legacy")
    }
}

#[tokio::test]
async fn legacy_env_serves_with_keys_from_files_and_host_overrides() {
    let legacy = Legacy::start().await;
    let proxy = legacy.builder().start().await;

    assert_eq!(proxy.admin_get("/readyz").await.status, StatusCode::OK);
    assert_eq!(proxy.get("/node").await.text().trim(), "node-legacy");

    let seen = proxy.get("/API/auth/auth?x=1").await.seen();
    assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("pyos", "/API/auth/auth?x=1"));
    let seen = proxy.get("/index.html").await.seen();
    assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("website", "/index.html"));
    let seen = proxy.get("/console/x").await.seen();
    assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("console", "/x"));
    let seen = proxy.get("/speedtest/garbage.php").await.seen();
    assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("speedtest", "/garbage.php"));

    // Desktop ports are abcdesktop's fixed ones here: a valid token passes authentication
    // (the pod port answers or not), a bad one is refused.
    let good = proxy.mint("127.0.0.1");
    let resp = proxy.send(Req::get("/spawner").abc(&good)).await;
    assert_ne!(resp.status, StatusCode::UNAUTHORIZED, "a valid token refused: {}", resp.text());
    let foreign = proxy.secret(&mint_with(other_keys(), "127.0.0.1", 420));
    assert_eq!(proxy.send(Req::get("/spawner").abc(&foreign)).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(proxy.get("/spawner").await.status, StatusCode::UNAUTHORIZED);
    proxy.finish();
}

#[tokio::test]
async fn pyos_service_host_is_the_fallback_for_pyos_fqdn() {
    let legacy = Legacy::start().await;
    let proxy = Proxy::builder()
        .env("JWT_DESKTOP_SIGNING_PUBLIC_KEY", &legacy.signing())
        .env("JWT_DESKTOP_PAYLOAD_PRIVATE_KEY", &legacy.payload())
        .env("PYOS_SERVICE_HOST", "127.0.0.1")
        .env("PYOS_SERVICE_PORT", &legacy.pyos.port().to_string())
        .start()
        .await;
    let seen = proxy.get("/status").await.seen();
    assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("pyos", "/status"));
    proxy.finish();
}

#[tokio::test]
async fn legacy_key_files_are_read_again_when_they_change() {
    let legacy = Legacy::start().await;
    let proxy = legacy.builder().start().await;
    let old = proxy.mint("127.0.0.1");
    assert_ne!(proxy.send(Req::get("/spawner").abc(&old)).await.status, StatusCode::UNAUTHORIZED);

    // A mounted Secret updates in place: write the new keys over the old files.
    replace_file(&legacy.keys_dir.path().join(SIGNING_PUBLIC), &other_keys().signing_public);
    replace_file(&legacy.keys_dir.path().join(PAYLOAD_PRIVATE), &other_keys().payload_private);
    let new = proxy.secret(&mint_with(other_keys(), "127.0.0.1", 420));
    eventually(Duration::from_secs(10), "a token of the new key files is accepted", || async {
        (proxy.send(Req::get("/spawner").abc(&new)).await.status != StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    proxy.finish();
}

fn replace_file(path: &Path, content: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, content).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test]
async fn a_missing_key_file_exits_non_zero_naming_the_variable_and_the_path() {
    let legacy = Legacy::start().await;
    for (variable, good_other) in [
        ("JWT_DESKTOP_SIGNING_PUBLIC_KEY", ("JWT_DESKTOP_PAYLOAD_PRIVATE_KEY", legacy.payload())),
        ("JWT_DESKTOP_PAYLOAD_PRIVATE_KEY", ("JWT_DESKTOP_SIGNING_PUBLIC_KEY", legacy.signing())),
    ] {
        let missing = legacy.keys_dir.path().join("nowhere").join("missing_key.pem").display().to_string();
        let exited = Proxy::builder()
            .env(variable, &missing)
            .env(good_other.0, &good_other.1)
            .env("PYOS_FQDN", "127.0.0.1")
            .start_expect_exit()
            .await;
        assert!(!exited.status.success(), "{variable} missing: exited with {}", exited.status);
        assert!(!exited.stdout.contains("listening"), "{variable} missing: it listened: {}", exited.stdout);
        assert!(
            exited.stderr.contains(variable),
            "{variable} missing: stderr does not name it:\n{}",
            exited.stderr
        );
        assert!(
            exited.stderr.contains(&missing),
            "{variable} missing: stderr does not name {missing}:\n{}",
            exited.stderr
        );
    }
}

#[tokio::test]
async fn pkcs1_private_keys_load_too() {
    let legacy = Legacy::start().await;
    let pkcs1 = KeySet::generate(1024, route_mint::PrivateFormat::Pkcs1).expect("keys");
    assert!(pkcs1.payload_private.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    pkcs1.write_dir(legacy.keys_dir.path()).expect("write keys");
    let proxy = legacy.builder().start().await;
    let token = proxy.secret(&mint_with(&pkcs1, "127.0.0.1", 420));
    assert_ne!(proxy.send(Req::get("/spawner").abc(&token)).await.status, StatusCode::UNAUTHORIZED);
    proxy.finish();
}

#[tokio::test]
async fn pyos_fqdn_may_carry_its_port() {
    let legacy = Legacy::start().await;
    let proxy = Proxy::builder()
        .env("JWT_DESKTOP_SIGNING_PUBLIC_KEY", &legacy.signing())
        .env("JWT_DESKTOP_PAYLOAD_PRIVATE_KEY", &legacy.payload())
        .env("PYOS_FQDN", &format!("127.0.0.1:{}", legacy.pyos.port()))
        .start()
        .await;
    let seen = proxy.get("/autologin?x=1").await.seen();
    assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("pyos", "/autologin?x=1"));
    proxy.finish();
}

#[tokio::test]
async fn node_name_env_answers_node_in_manifests_mode_too() {
    let m = support::Manifest::new(keys()).unset("nodeName");
    let proxy = Proxy::builder().manifest(&m).env("NODE_NAME", "node-from-env").start().await;
    assert_eq!(proxy.get("/node").await.text().trim(), "node-from-env");
    proxy.finish();
}
