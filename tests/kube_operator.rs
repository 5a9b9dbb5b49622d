//! `route serve --kube` end to end, driven with the real `kubectl` as an operator would: the
//! generated CRD, the two abcdesktop key Secrets and a RouteConfig applied, traffic through the
//! real binary to a recording upstream; key rotation through each Secret with its grace period,
//! start-up before the configuration exists, and two replicas that do not make the status
//! flap. `route` runs as the chart's ServiceAccount: the audit log shows none of its requests
//! denied and each Secret and the RouteConfig asked for by name, and the account cannot read a
//! Secret the RouteConfig does not name.
//!
//! Against a real kube-apiserver started here by default, against a real cluster when
//! `ROUTE_TEST_KUBECONFIG` names its kubeconfig (see `support/kube.rs`). Refused changes are
//! in `kube_refusals.rs`, API server outages in `kube_outage.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{Value, json};
use support::kube::{Cluster, mixed, payload_secret, payload_secret_pem, route_config, signing_secret};
use support::kube_flow::{
    SECRETS, SHOW, condition_is, event_with, fingerprints, last_reload, ready, ready_and_serving, setup,
    spawner, spec, until_accepted,
};
use support::kube_requests::assert_requests_name_their_objects;
use support::{Upstream, eventually, keys, metric, mint_with, other_keys};

#[tokio::test]
async fn applied_with_kubectl_it_serves_and_reports() {
    let Some((cluster, proxy, up)) = setup("applied_with_kubectl_it_serves_and_reports", 600).await else {
        return;
    };
    let token = proxy.mint("127.0.0.1");
    assert_eq!(spawner(&proxy, &token).await, StatusCode::OK);
    assert_eq!(up.hits(), 1);

    let ready = condition_is(&cluster, "Ready", "True", "Loaded").await;
    assert_eq!(ready["observedGeneration"], 1);
    let signing = fingerprints(&cluster, "signingKeyFingerprints").await;
    let payload = fingerprints(&cluster, "payloadKeyFingerprints").await;
    assert_eq!((signing.len(), payload.len()), (1, 1), "{signing:?} {payload:?}");
    let rc = cluster.route_config().await;
    assert_eq!(rc["status"]["observedGeneration"], 1);
    assert!(rc["status"]["lastReload"].as_str().is_some_and(|t| t.ends_with('Z')), "{}", rc["status"]);
    assert_eq!(cluster.condition("SettingsRejected").await.unwrap()["status"], "False");

    // `kubectl get` shows the printer columns, by the short name too.
    let table = cluster.ns(&["get", "rtc"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "SIGNING", "PAYLOAD", "AGE"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["route", "True", signing[0].as_str(), payload[0].as_str()], "{table}");
    let wide = cluster.ns(&["get", "routeconfig", "route", "-o", "wide"]).await;
    assert!(wide.contains("REASON") && wide.contains("Loaded") && wide.contains("RELOADED"), "{wide}");

    event_with(&cluster, "SettingsLoaded: serving signing key").await;
    let metrics = proxy.metrics().await;
    assert_eq!(metric(&metrics, "route_settings_generation"), Some(1.0));
    assert_requests_name_their_objects(&cluster, &SECRETS);
    proxy.finish();
}

#[tokio::test]
async fn route_runs_as_the_charts_service_account_and_reads_only_what_it_names() {
    let test = "route_runs_as_the_charts_service_account_and_reads_only_what_it_names";
    let Some((cluster, proxy, _up)) = setup(test, 600).await else { return };
    let other = json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "unrelated"},
        "stringData": {"password": "not route's"},
    });
    cluster.apply(&other.to_string()).await;
    // With route's kubeconfig (the ServiceAccount token only): the named Secrets and the
    // RouteConfig are readable, nothing else.
    for name in SECRETS {
        let out = cluster.kubectl_as_route(&["get", "secret", name, "-o", "name"]).await;
        assert!(out.ok, "{name}: {}", out.stderr);
    }
    assert!(cluster.kubectl_as_route(&["get", "routeconfig", "route"]).await.ok);
    for args in [
        &["get", "secret", "unrelated"][..],
        &["get", "secrets"],
        &["get", "routeconfigs"],
        &["delete", "secret", "abcdesktopjwtdesktopsigning", "--dry-run=server"],
        &["patch", "routeconfig", "route", "--type=merge", "-p", r#"{"spec":{"logLevel":"x"}}"#],
    ] {
        let out = cluster.kubectl_as_route(args).await;
        assert!(
            !out.ok && out.stderr.contains("forbidden"),
            "{args:?} was allowed: {} {}",
            out.stdout,
            out.stderr
        );
    }
    let whoami = cluster.kubectl_as_route(&["auth", "can-i", "list", "secrets"]).await;
    assert_eq!(whoami.stdout.trim(), "no", "{whoami:?}");
    // route itself was never denied, and named each object it asked for.
    condition_is(&cluster, "Ready", "True", "Loaded").await;
    event_with(&cluster, "SettingsLoaded: serving signing key").await;
    assert_requests_name_their_objects(&cluster, &SECRETS);
    proxy.finish();
}

#[tokio::test]
async fn rotating_each_secret_switches_keys_at_once_and_old_ones_after_grace() {
    let grace = 3;
    let test = "rotating_each_secret_switches_keys_at_once_and_old_ones_after_grace";
    let Some((cluster, proxy, _up)) = setup(test, grace).await else { return };
    let first_signing = fingerprints(&cluster, "signingKeyFingerprints").await;
    let used = proxy.mint("127.0.0.1");
    let unused = proxy.mint("127.0.0.1");
    let unused_late = proxy.mint("127.0.0.1");
    assert_eq!(spawner(&proxy, &used).await, StatusCode::OK);

    // The signing key: tokens signed with the new key work at once.
    let signed_new = mixed(other_keys(), keys());
    let token = proxy.secret(&mint_with(&signed_new, "127.0.0.1", 420));
    cluster.apply(&signing_secret(other_keys())).await;
    let took = until_accepted(&proxy, &token, "a token signed with the new key works").await;
    let rotated = Instant::now();
    assert!(took < Duration::from_secs(2), "the signing rotation took {took:?}");
    // Tokens of the previous key keep working during the grace period, cached or not.
    assert_eq!(spawner(&proxy, &used).await, StatusCode::OK, "cached token of the old key in grace");
    assert_eq!(spawner(&proxy, &unused).await, StatusCode::OK, "fresh token of the old key in grace");
    let during = fingerprints(&cluster, "signingKeyFingerprints").await;
    event_with(&cluster, "SigningKeyRotated: signing key").await;
    // ... and stop after it.
    tokio::time::sleep((rotated + Duration::from_secs(grace) + Duration::from_millis(600)) - Instant::now())
        .await;
    assert_eq!(spawner(&proxy, &unused_late).await, StatusCode::UNAUTHORIZED, "old key after grace");
    assert_eq!(spawner(&proxy, &used).await, StatusCode::UNAUTHORIZED, "cached old token after grace");
    assert_eq!(spawner(&proxy, &token).await, StatusCode::OK);
    let after = eventually(SHOW, "the old signing key leaves the status", || async {
        Some(fingerprints(&cluster, "signingKeyFingerprints").await).filter(|f| f.len() == 1)
    })
    .await;
    assert_ne!(after, first_signing, "the signing fingerprint did not change");
    assert!(during.len() == 2 || during == after, "during grace: {during:?}");

    // The payload key, the same way.
    let old_payload = fingerprints(&cluster, "payloadKeyFingerprints").await;
    let reloaded = last_reload(&cluster).await;
    let before = proxy.secret(&mint_with(&signed_new, "127.0.0.1", 420));
    let both_new = proxy.secret(&mint_with(other_keys(), "127.0.0.1", 420));
    cluster.apply(&payload_secret(other_keys())).await;
    let took = until_accepted(&proxy, &both_new, "a token encrypted with the new payload key works").await;
    assert!(took < Duration::from_secs(2), "the payload rotation took {took:?}");
    let rotated = Instant::now();
    assert_eq!(spawner(&proxy, &before).await, StatusCode::OK, "old payload key in grace");
    event_with(&cluster, "PayloadKeyRotated: payload key").await;
    let late = proxy.secret(&mint_with(&signed_new, "127.0.0.1", 420));
    tokio::time::sleep((rotated + Duration::from_secs(grace) + Duration::from_millis(600)) - Instant::now())
        .await;
    assert_eq!(spawner(&proxy, &late).await, StatusCode::UNAUTHORIZED, "old payload key after grace");
    let new_payload = eventually(SHOW, "one payload key in the status", || async {
        Some(fingerprints(&cluster, "payloadKeyFingerprints").await).filter(|f| f.len() == 1)
    })
    .await;
    assert_ne!(new_payload, old_payload);
    // More than the grace period after the signing rotation: a later second.
    let after = last_reload(&cluster).await;
    assert!(after > reloaded, "lastReload {reloaded} did not move forward after the rotation: {after}");
    proxy.finish();
}

#[tokio::test]
async fn it_starts_unready_and_loads_what_is_applied_later() {
    let Some(cluster) = Cluster::start("it_starts_unready_and_loads_what_is_applied_later").await else {
        return;
    };
    let up = Upstream::start("spawner").await;
    // A RouteConfig whose payload key is broken: no settings can load.
    cluster.apply(&signing_secret(keys())).await;
    cluster.apply(&payload_secret_pem("not a key")).await;
    cluster.apply(&route_config(&spec(&up, 600))).await;
    let proxy = cluster.route(keys()).await;
    let ready = condition_is(&cluster, "Ready", "False", "SettingsRejected").await;
    assert!(ready["message"].as_str().unwrap().contains("nothing is served yet"), "{ready}");
    assert_eq!(proxy.admin_get("/readyz").await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(proxy.get("/healthz").await.status, StatusCode::OK);
    // Fixed with kubectl: loaded without a restart.
    cluster.apply(&payload_secret(keys())).await;
    ready_and_serving(&cluster, &proxy).await;
    proxy.finish();
}

#[tokio::test]
async fn two_replicas_do_not_make_the_status_flap() {
    let test = "two_replicas_do_not_make_the_status_flap";
    let Some((cluster, first, _up)) = setup(test, 600).await else { return };
    // A rotation: the first replica keeps the old key in grace, a replica started later never
    // had it, so their views of the trusted keys differ.
    cluster.apply(&signing_secret(other_keys())).await;
    eventually(SHOW, "the first replica reports the old key in grace", || async {
        (fingerprints(&cluster, "signingKeyFingerprints").await.len() == 2).then_some(())
    })
    .await;
    let second = cluster.route(&mixed(other_keys(), keys())).await;
    ready(&second).await;
    assert_eq!(spawner(&second, &second.mint("127.0.0.1")).await, StatusCode::OK);
    // Both have settled once the second has written (or chosen not to); then nothing moves.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let version = |rc: &Value| rc["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    let settled = version(&cluster.route_config().await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rc = cluster.route_config().await;
    assert_eq!(version(&rc), settled, "the status kept changing: {}", rc["status"]);
    assert_eq!(rc["status"]["conditions"][0]["status"], "True");
    first.finish();
    second.finish();
}
