//! Limits follow the settings snapshot: changed on a running proxy, they apply to the next
//! connection or request without a restart (`spec.limits.headerReadTimeoutSeconds` was read
//! once at start before). The checks live in `support::limit_checks` so that the kube mode
//! runs the same ones with its own source. The drop-in (env) mode can change no limit at run
//! time (its variables are read once; only the key files are re-read): there, the limits the
//! flags set must survive a reload.

mod support;

use std::time::Duration;

use http::StatusCode;
use route_mint::{PAYLOAD_PRIVATE, SIGNING_PUBLIC};
use support::limit_checks::{self, ManifestFile};
use support::{Behavior, Manifest, Proxy, Req, Upstream, keys, other_keys};

async fn spawner_proxy(behavior: Behavior) -> (Upstream, Proxy, Manifest) {
    let up = Upstream::start_with("spawner", behavior).await;
    let m = Manifest::new(keys()).port("spawner", up.port());
    let proxy = Proxy::start(&m).await;
    (up, proxy, m)
}

#[tokio::test]
async fn header_read_timeout_follows_a_manifest_edit() {
    let (_up, mut proxy, m) = spawner_proxy(Behavior::Echo).await;
    limit_checks::header_read_timeout_follows(&mut proxy, &mut ManifestFile, m).await;
    proxy.finish();
}

#[tokio::test]
async fn a_route_body_limit_follows_a_manifest_edit() {
    let (_up, mut proxy, m) = spawner_proxy(Behavior::Echo).await;
    limit_checks::route_body_limit_follows(&mut proxy, &mut ManifestFile, m).await;
    proxy.finish();
}

#[tokio::test]
async fn a_route_read_timeout_follows_a_manifest_edit() {
    let (_up, mut proxy, m) = spawner_proxy(Behavior::Delay(Duration::from_secs(2))).await;
    limit_checks::route_read_timeout_follows(&mut proxy, &mut ManifestFile, m).await;
    proxy.finish();
}

/// A path of `len` bytes.
fn long_path(len: usize) -> String {
    format!("/healthz?{}", "a".repeat(len - "/healthz?".len()))
}

/// The client limits come from flags, and every snapshot carries them: a reload keeps them.
async fn uri_limit_holds(proxy: &mut Proxy, reload: impl AsyncFnOnce(&mut Proxy)) {
    assert_eq!(proxy.send(Req::get(&long_path(100))).await.status, StatusCode::URI_TOO_LONG);
    assert_eq!(proxy.send(Req::get(&long_path(60))).await.status, StatusCode::OK);
    let before = limit_checks::generation(proxy).await;
    reload(proxy).await;
    support::eventually(support::STEP, "the reload is served", || async {
        (limit_checks::generation(proxy).await > before).then_some(())
    })
    .await;
    assert_eq!(
        proxy.send(Req::get(&long_path(100))).await.status,
        StatusCode::URI_TOO_LONG,
        "after a reload"
    );
    assert_eq!(proxy.send(Req::get(&long_path(60))).await.status, StatusCode::OK);
}

#[tokio::test]
async fn flag_limits_survive_a_manifest_reload() {
    let m = Manifest::new(keys());
    let mut proxy = Proxy::builder().manifest(&m).arg("--max-uri-bytes").arg("64").start().await;
    let edited = m.set("nodeName", serde_json::json!("edited"));
    uri_limit_holds(&mut proxy, async |proxy: &mut Proxy| proxy.update(&edited)).await;
    proxy.finish();
}

#[tokio::test]
async fn flag_limits_survive_a_key_file_reload_in_env_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    keys().write_dir(dir.path()).expect("keys");
    let signing = dir.path().join(SIGNING_PUBLIC).display().to_string();
    let payload = dir.path().join(PAYLOAD_PRIVATE).display().to_string();
    let mut proxy = Proxy::builder()
        .keys(keys())
        .env("JWT_DESKTOP_SIGNING_PUBLIC_KEY", &signing)
        .env("JWT_DESKTOP_PAYLOAD_PRIVATE_KEY", &payload)
        .env("ROUTE_MAX_URI_BYTES", "64")
        .start()
        .await;
    uri_limit_holds(&mut proxy, async |_: &mut Proxy| other_keys().write_dir(dir.path()).expect("rotate"))
        .await;
    proxy.finish();
}
