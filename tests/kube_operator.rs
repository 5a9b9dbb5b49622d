//! `route serve --kube` end to end, driven with the real `kubectl` as an operator would: the
//! generated CRD, the two abcdesktop key Secrets and a RouteConfig applied, traffic through the
//! real binary to a recording upstream; key rotation through each Secret with its grace period,
//! refused changes (bad PEM, missing key, small key, a spec the schema lets through but
//! translate() refuses, deleted Secret or RouteConfig) that leave the last good settings serving
//! and say why in the status and events, start-up before the configuration exists, and two
//! replicas that do not make the status flap. `route` runs as the chart's ServiceAccount: the
//! audit log shows none of its requests denied and each Secret and the RouteConfig asked for by
//! name, and the account cannot read a Secret the RouteConfig does not name.
//!
//! Against a real kube-apiserver started here by default, against a real cluster when
//! `ROUTE_TEST_KUBECONFIG` names its kubeconfig (see `support/kube.rs`). The API server outage
//! tests are in `kube_outage.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{Value, json};
use support::kube::{
    Cluster, mixed, payload_secret, payload_secret_pem, route_config, signing_secret, signing_secret_pem,
};
use support::kube_requests::assert_requests_name_their_objects;
use support::{Manifest, Proxy, Req, Upstream, eventually, keys, metric, metric_sum, mint_with, other_keys};

/// How long a change may take to show (status, events); traffic is checked to a tighter bound.
const SHOW: Duration = Duration::from_secs(10);

/// A spec pointing `/spawner` at `up`, with `grace` seconds of key grace.
fn spec(up: &Upstream, grace: u64) -> Value {
    Value::Object(Manifest::new(keys()).port("spawner", up.port()).grace_seconds(grace).spec)
}

/// The cluster with the keys of [`keys()`] and a RouteConfig, and `route` serving it.
async fn setup(test: &str, grace: u64) -> Option<(Cluster, Proxy, Upstream)> {
    let cluster = Cluster::start(test).await?;
    let up = Upstream::start("spawner").await;
    cluster.apply(&signing_secret(keys())).await;
    cluster.apply(&payload_secret(keys())).await;
    cluster.apply(&route_config(&spec(&up, grace))).await;
    let proxy = cluster.route(keys()).await;
    ready(&proxy).await;
    Some((cluster, proxy, up))
}

async fn ready(proxy: &Proxy) {
    eventually(SHOW, "/readyz answers 200", || async {
        (proxy.admin_get("/readyz").await.status == StatusCode::OK).then_some(())
    })
    .await;
}

/// The status of `/spawner` with `token` (200 when it reached the upstream).
async fn spawner(proxy: &Proxy, token: &str) -> StatusCode {
    proxy.send(Req::get("/spawner").abc(token)).await.status
}

/// Waits until `token` reaches the upstream; returns how long it took.
async fn until_accepted(proxy: &Proxy, token: &str, what: &str) -> Duration {
    let started = Instant::now();
    eventually(SHOW, what, || async { (spawner(proxy, token).await == StatusCode::OK).then_some(()) }).await;
    started.elapsed()
}

async fn condition_is(cluster: &Cluster, type_: &str, status: &str, reason: &str) -> Value {
    eventually(SHOW, &format!("condition {type_} {status} ({reason})"), || async {
        cluster.condition(type_).await.filter(|c| c["status"] == status && c["reason"] == reason)
    })
    .await
}

async fn fingerprints(cluster: &Cluster, field: &str) -> Vec<String> {
    let rc = cluster.route_config().await;
    rc["status"][field]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// `status.lastReload` (RFC 3339, UTC, whole seconds: ordered as strings).
async fn last_reload(cluster: &Cluster) -> String {
    let rc = cluster.route_config().await;
    let text =
        rc["status"]["lastReload"].as_str().unwrap_or_else(|| panic!("no lastReload: {}", rc["status"]));
    assert!(text.len() == "2025-01-01T00:00:00Z".len() && text.ends_with('Z'), "lastReload {text}");
    text.to_owned()
}

async fn event_with(cluster: &Cluster, needle: &str) -> String {
    eventually(SHOW, &format!("an event with {needle:?}"), || async {
        cluster.events().await.into_iter().find(|e| e.contains(needle))
    })
    .await
}

/// `text` without list indexes (`[0]`).
fn without_indexes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close) if close > 0 && after[..close].bytes().all(|b| b.is_ascii_digit()) => {
                rest = &after[close + 1..]
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The message of the newest `SettingsRejected` Warning, from `kubectl get events` (core/v1).
async fn newest_warning(cluster: &Cluster) -> Option<String> {
    let out = cluster
        .ns(&["get", "events", "--field-selector", "type=Warning,reason=SettingsRejected", "-o", "json"])
        .await;
    let list: Value = serde_json::from_str(&out).ok()?;
    let mut items = list["items"].as_array()?.clone();
    items.sort_by_key(|e| {
        let series = e["series"]["lastObservedTime"].as_str().unwrap_or("");
        let time = e["eventTime"].as_str().or(e["lastTimestamp"].as_str()).unwrap_or("");
        series.max(time).to_owned()
    });
    items.last().and_then(|e| e["message"].as_str()).map(str::to_owned)
}

/// The Secrets of the setup's RouteConfig.
const SECRETS: [&str; 2] = ["abcdesktopjwtdesktopsigning", "abcdesktopjwtdesktoppayload"];

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
async fn refused_secrets_leave_the_last_good_settings_serving() {
    let test = "refused_secrets_leave_the_last_good_settings_serving";
    let Some((cluster, proxy, _up)) = setup(test, 600).await else { return };
    let token = proxy.mint("127.0.0.1");
    let serving = fingerprints(&cluster, "payloadKeyFingerprints").await;
    let small = openssl::rsa::Rsa::generate(512).unwrap().public_key_to_pem().unwrap();
    let missing_key = json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "abcdesktopjwtdesktoppayload"},
        "stringData": {"other.pem": "x"},
    });
    let place = "Secret abcdesktopjwtdesktoppayload";
    let cases: [(String, &str, String); 3] = [
        (
            payload_secret_pem("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"),
            "InvalidSecret",
            format!("{place}: key abcdesktop_jwt_desktop_payload_private_key.pem: "),
        ),
        (
            missing_key.to_string(),
            "InvalidSecret",
            format!("{place}: key abcdesktop_jwt_desktop_payload_private_key.pem missing"),
        ),
        (
            signing_secret_pem(std::str::from_utf8(&small).unwrap()),
            "InvalidSecret",
            "Secret abcdesktopjwtdesktopsigning: key abcdesktop_jwt_desktop_signing_public_key.pem: "
                .to_owned(),
        ),
    ];
    for (n, (secret, reason, message)) in cases.iter().enumerate() {
        cluster.apply(secret).await;
        let rejected = condition_is(&cluster, "SettingsRejected", "True", reason).await;
        let text = rejected["message"].as_str().unwrap();
        assert!(text.starts_with(message.as_str()), "case {n}: {text}");
        if n == 2 {
            assert!(text.contains("512"), "the small key's size is named: {text}");
        }
        let ready = condition_is(&cluster, "Ready", "False", "SettingsRejected").await;
        assert!(ready["message"].as_str().unwrap().contains("the previous settings keep serving"), "{ready}");
        // The newest Warning Event says why, this time (not an earlier rejection's message with
        // its count bumped), as `kubectl get events` shows it.
        let newest = eventually(SHOW, &format!("case {n}: a Warning Event with {message:?}"), || async {
            newest_warning(&cluster).await.filter(|m| m.starts_with(message.as_str()))
        })
        .await;
        assert_eq!(newest, text, "case {n}: the Event and the condition say the same");
        // Traffic goes on with the last good settings; the proxy stays ready.
        assert_eq!(spawner(&proxy, &token).await, StatusCode::OK, "case {n}");
        assert_eq!(spawner(&proxy, &proxy.mint("127.0.0.1")).await, StatusCode::OK, "case {n}");
        assert_eq!(proxy.admin_get("/readyz").await.status, StatusCode::OK);
        assert_eq!(fingerprints(&cluster, "payloadKeyFingerprints").await, serving);
        // Put the good Secrets back before the next case.
        cluster.apply(&payload_secret(keys())).await;
        cluster.apply(&signing_secret(keys())).await;
        condition_is(&cluster, "Ready", "True", "Loaded").await;
    }
    let table = cluster.ns(&["get", "rtc"]).await;
    assert!(table.lines().nth(1).unwrap().contains("True"), "{table}");
    event_with(&cluster, "SettingsRejected: Secret abcdesktopjwtdesktoppayload").await;
    let metrics = proxy.metrics().await;
    let rejected = metric_sum(&metrics, "route_settings_reloads_total", &["result=\"rejected\""]);
    assert!(rejected >= 3.0, "rejected reloads: {rejected}");
    assert_eq!(metric(&metrics, "route_settings_last_reload_success"), Some(1.0));
    proxy.finish();
}

#[tokio::test]
async fn a_spec_translate_refuses_is_reported_and_the_last_good_settings_keep_serving() {
    let test = "a_spec_translate_refuses_is_reported_and_the_last_good_settings_keep_serving";
    let Some((cluster, proxy, up)) = setup(test, 600).await else { return };
    let token = proxy.mint("127.0.0.1");
    let (two, three) = (Upstream::start("two").await, Upstream::start("three").await);
    condition_is(&cluster, "Ready", "True", "Loaded").await;
    let loaded_at = last_reload(&cluster).await;

    // A route to a service the spec does not declare: the schema cannot see across the
    // routes and the services (kubectl's apply succeeds); translate() refuses it. The same
    // change also moves /spawner to `two`, which must not happen.
    let app = json!({"name": "myapp", "paths": ["/myapp"], "service": "nosuch"});
    let bad = Manifest::new(keys()).port("spawner", two.port()).grace_seconds(600).route(app);
    cluster.apply(&route_config(&Value::Object(bad.spec))).await;
    let rejected = condition_is(&cluster, "SettingsRejected", "True", "InvalidSpec").await;
    assert_eq!(
        rejected["message"],
        "spec.routes[0].service: unknown service nosuch (known: console, pyos, speedtest, website)"
    );
    assert_eq!(rejected["observedGeneration"], 2, "{rejected}");
    let ready = condition_is(&cluster, "Ready", "False", "SettingsRejected").await;
    assert_eq!(ready["observedGeneration"], 2, "{ready}");
    let text = ready["message"].as_str().unwrap();
    assert!(text.starts_with("generation 2 of the spec or its Secrets refused; "), "{text}");
    assert!(text.contains("the previous settings keep serving"), "{text}");
    let rc = cluster.route_config().await;
    assert_eq!(rc["metadata"]["generation"], 2);
    assert_eq!(rc["status"]["observedGeneration"], 2);
    assert_eq!(rc["status"]["lastReload"], loaded_at.as_str(), "a refused change is no reload");
    event_with(&cluster, "SettingsRejected: spec.routes[0].service: unknown service nosuch").await;

    // Traffic goes on under generation 1: /spawner to `up`, no /myapp; the proxy stays ready.
    for _ in 0..5 {
        assert_eq!(proxy.send(Req::get("/spawner").abc(&token)).await.seen().upstream, "spawner");
    }
    assert_eq!(proxy.admin_get("/readyz").await.status, StatusCode::OK);
    assert_ne!(proxy.send(Req::get("/myapp").abc(&token)).await.status, StatusCode::OK);
    assert_eq!(two.hits(), 0);
    let metrics = proxy.metrics().await;
    assert_eq!(metric(&metrics, "route_settings_generation"), Some(1.0));
    assert_eq!(metric(&metrics, "route_settings_last_reload_success"), Some(0.0));

    // Fixed with kubectl (the service declared): generation 3 serves, Ready again.
    let app = json!({"name": "myapp", "paths": ["/myapp"], "service": "myapp"});
    let good = Manifest::new(keys())
        .port("spawner", two.port())
        .service("myapp", three.port())
        .grace_seconds(600)
        .route(app);
    cluster.apply(&route_config(&Value::Object(good.spec))).await;
    eventually(SHOW, "the fixed spec serves /spawner from `two`", || async {
        (proxy.send(Req::get("/spawner").abc(&token)).await.seen().upstream == "two").then_some(())
    })
    .await;
    assert_eq!(proxy.send(Req::get("/myapp")).await.seen().upstream, "three");
    let ready = condition_is(&cluster, "Ready", "True", "Loaded").await;
    assert_eq!(ready["observedGeneration"], 3, "{ready}");
    let accepted = condition_is(&cluster, "SettingsRejected", "False", "Accepted").await;
    assert_eq!(accepted["observedGeneration"], 3, "{accepted}");
    assert_eq!(cluster.route_config().await["status"]["observedGeneration"], 3);
    assert!(up.hits() >= 5, "the last good settings served during the refusal");
    proxy.finish();
}

#[tokio::test]
async fn the_schema_refuses_what_translate_refuses() {
    let Some(cluster) = Cluster::start("the_schema_refuses_what_translate_refuses").await else {
        return;
    };
    let bad = [
        (json!({"jwt": {"algorithms": ["HS256"]}}), "spec.jwt.algorithms[0]"),
        (json!({"jwt": {"algorithms": []}}), "spec.jwt.algorithms"),
        (json!({"ports": {"filer": 0}}), "spec.ports.filer"),
        (json!({"jwt": {"decryption": "rsa"}}), "spec.jwt.decryption"),
        (json!({"keys": {"signing": {"secretName": ""}}}), "spec.keys.signing.secretName"),
        (json!({"cache": {"maxEntries": 0}}), "spec.cache.maxEntries"),
        // Patterns and CEL rules too (crds/src/cel_tests.rs covers every rule).
        (json!({"routes": [{"name": "bad name", "desktopPort": 1, "paths": ["/x"]}]}), "spec.routes[0].name"),
        (
            json!({"routes": [{"name": "x", "desktopPort": 1, "paths": ["no-slash"]}]}),
            "spec.routes[0].paths[0]",
        ),
    ];
    // CEL rules (x-kubernetes-validations): enforced from Kubernetes 1.25 (a real cluster); a
    // 1.20 server keeps them in the CRD but does not run them. crds/src/cel_tests.rs runs every
    // rule offline with kube-cel.
    let cel = [
        (json!({"routes": [{"name": "x", "paths": ["/x"]}]}), "a new route needs one of desktopPort"),
        (
            json!({"routes": [{"name": "x", "desktopPort": 1, "service": "pyos", "paths": ["/x"]}]}),
            "not several",
        ),
        (json!({"services": {"cache": {"port": 6379}}}), "a new service needs a host"),
    ];
    let minor = cluster.server_minor().await;
    let enforced = minor >= 25;
    if !enforced {
        support::kube::say(&format!(
            "the_schema_refuses_what_translate_refuses: CEL rules not enforced on 1.{minor}; crds/src/cel_tests.rs checks them"
        ));
    }
    let cases = bad.into_iter().chain(cel.into_iter().filter(|_| enforced));
    // 1.20 names a list where later versions name its item (`spec.jwt.algorithms` for
    // `spec.jwt.algorithms[0]`): compared without the indexes.
    let unindexed = |text: &str| without_indexes(text);
    for (spec, field) in cases {
        let out = cluster.try_apply(&route_config(&spec)).await;
        assert!(!out.ok, "{spec} was accepted");
        assert!(unindexed(&out.stderr).contains(&unindexed(field)), "{spec}: {}", out.stderr);
    }
    // An empty spec is the abcdesktop defaults, filled in by the API server.
    cluster.apply(&route_config(&json!({}))).await;
    let rc = cluster.route_config().await;
    assert_eq!(rc["spec"]["keys"]["signing"]["secretName"], "abcdesktopjwtdesktopsigning");
    assert_eq!(rc["spec"]["ports"]["websockify"], 6081);
    assert_eq!(rc["spec"]["keys"]["graceSeconds"], 600);
}

#[tokio::test]
async fn deleting_a_secret_or_the_route_config_keeps_the_proxy_serving() {
    let test = "deleting_a_secret_or_the_route_config_keeps_the_proxy_serving";
    let Some((cluster, proxy, up)) = setup(test, 600).await else { return };
    let token = proxy.mint("127.0.0.1");

    cluster.ns(&["delete", "secret", "abcdesktopjwtdesktopsigning"]).await;
    let rejected = condition_is(&cluster, "SettingsRejected", "True", "SecretNotFound").await;
    assert!(
        rejected["message"].as_str().unwrap().starts_with("Secret abcdesktopjwtdesktopsigning: not found"),
        "{rejected}"
    );
    assert_eq!(spawner(&proxy, &token).await, StatusCode::OK);
    cluster.apply(&signing_secret(keys())).await;
    condition_is(&cluster, "Ready", "True", "Loaded").await;

    cluster.ns(&["delete", "routeconfig", "route"]).await;
    event_with(&cluster, "RouteConfigDeleted: RouteConfig").await;
    assert_eq!(spawner(&proxy, &token).await, StatusCode::OK);
    assert_eq!(proxy.admin_get("/readyz").await.status, StatusCode::OK);
    // Recreated with another port: followed again.
    let two = Upstream::start("two").await;
    cluster.apply(&route_config(&spec(&two, 600))).await;
    eventually(SHOW, "the recreated RouteConfig serves", || async {
        (proxy.send(Req::get("/spawner").abc(&token)).await.seen().upstream == "two").then_some(())
    })
    .await;
    condition_is(&cluster, "Ready", "True", "Loaded").await;
    assert!(up.hits() >= 2, "the old upstream served while the Secret and the RouteConfig were gone");
    // Relists after the deletions too asked for each object by name.
    assert_requests_name_their_objects(&cluster, &SECRETS);
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

async fn ready_and_serving(cluster: &Cluster, proxy: &Proxy) {
    ready(proxy).await;
    assert_eq!(spawner(proxy, &proxy.mint("127.0.0.1")).await, StatusCode::OK);
    condition_is(cluster, "Ready", "True", "Loaded").await;
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
