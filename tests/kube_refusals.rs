//! Changes `route serve --kube` must refuse, made with the real `kubectl`: Secrets with a bad
//! PEM, a missing key or a small key, a spec the schema lets through but translate() refuses,
//! specs the schema itself refuses, and a deleted Secret or RouteConfig. Each leaves the last
//! good settings serving and says why in the RouteConfig's status and in events. The rest of
//! the operator's life is in `kube_operator.rs`; API server outages in `kube_outage.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::StatusCode;
use serde_json::{Value, json};
use support::kube::{
    Cluster, payload_secret, payload_secret_pem, route_config, signing_secret, signing_secret_pem,
};
use support::kube_flow::{
    SECRETS, SHOW, condition_is, event_with, fingerprints, last_reload, newest_warning, setup, spawner, spec,
    without_indexes,
};
use support::kube_requests::assert_requests_name_their_objects;
use support::{Manifest, Req, Upstream, eventually, keys, metric, metric_sum};

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
