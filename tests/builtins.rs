//! The builtin endpoints (`/healthz`, `/readyz`, `/node`, ACME challenges, `/metrics` on the
//! admin listener), the metrics requests leave behind, and routes changed by configuration.
//! Each HTTP row of contract.md section 3: tests/endpoints.rs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::{Method, StatusCode};
use serde_json::json;
use support::rows::{req, through};
use support::{
    Desk, Manifest, Proxy, Req, assert_response_headers, desk_and_proxy, keys, metric_sum, mint_expired,
};

#[tokio::test]
async fn row_healthz_and_readyz() {
    let (desk, proxy) = desk_and_proxy().await;
    let resp = proxy.get("/healthz").await;
    assert_eq!(resp.status, StatusCode::OK, "/healthz");
    assert_response_headers(&resp, "/healthz");
    assert_eq!(resp.text().trim(), "OK");
    assert_eq!(desk.hits_except(&[]), 0, "a builtin reached an upstream");
    for path in ["/healthz", "/readyz"] {
        let resp = proxy.admin_get(path).await;
        assert_eq!(resp.status, StatusCode::OK, "admin {path}");
        assert_response_headers(&resp, path);
    }
    proxy.finish();
}

/// `/metrics` and `/readyz` are the admin listener's: on the public one they are ordinary
/// paths, routed as the table says (here the website's `/`), and never show the proxy's
/// internals; the admin listener answers nothing else.
#[tokio::test]
async fn metrics_and_readyz_are_only_on_the_admin_listener() {
    let (desk, proxy) = desk_and_proxy().await;
    for path in ["/metrics", "/readyz"] {
        let resp = proxy.get(path).await;
        assert!(!resp.text().contains("route_requests_total"), "public {path}: {}", resp.text());
    }
    assert_eq!(desk.up("website").hits(), 2, "the public /metrics and /readyz went to the website");
    let metrics = proxy.metrics().await;
    assert!(metrics.contains("route_requests_total"), "{metrics}");
    assert_eq!(proxy.admin_get("/readyz").await.text().trim(), "ready");
    for path in ["/spawner", "/node", "/"] {
        assert_eq!(proxy.admin_get(path).await.status, StatusCode::NOT_FOUND, "admin {path}");
    }
    assert_eq!(desk.hits_except(&["website"]), 0, "an admin request reached an upstream");
    proxy.finish();
}

#[tokio::test]
async fn row_node() {
    let desk = Desk::start().await;
    let proxy = Proxy::start(&desk.manifest(keys()).set("nodeName", json!("node-a"))).await;
    let resp = proxy.get("/node").await;
    assert_eq!((resp.status, resp.text().trim()), (StatusCode::OK, "node-a"));
    assert_response_headers(&resp, "/node");
    assert_eq!(desk.hits_except(&[]), 0);
    proxy.finish();
}

#[tokio::test]
async fn row_acme_challenge() {
    let desk = Desk::start().await;
    let acme = tempfile::tempdir().expect("tempdir");
    std::fs::write(acme.path().join("Zk3x-token_1"), "Zk3x-token_1.thumbprint").expect("write challenge");
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("secret.txt"), "do not serve").expect("write");
    let proxy = Proxy::start(&desk.manifest(keys()).set("acmeChallengeDir", json!(acme.path()))).await;

    let resp = proxy.get("/.well-known/acme-challenge/Zk3x-token_1").await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.text(), "Zk3x-token_1.thumbprint");
    assert_response_headers(&resp, "acme");
    assert_eq!(proxy.get("/.well-known/acme-challenge/missing").await.status, StatusCode::NOT_FOUND);
    let rel = format!("..%2F{}%2Fsecret.txt", outside.path().file_name().unwrap().to_str().unwrap());
    for path in [
        format!("/.well-known/acme-challenge/{rel}"),
        format!("/.well-known/acme-challenge/..%2F..%2F..%2F{}", outside.path().join("secret.txt").display()),
    ] {
        let resp = proxy.get(&path).await;
        assert!(!resp.text().contains("do not serve"), "the challenge folder can be escaped: {path}");
    }
    assert_eq!(desk.hits_except(&[]), 0);
    proxy.finish();
}

#[tokio::test]
async fn metrics_count_requests_cache_and_failures() {
    let (desk, proxy) = desk_and_proxy().await;
    let token = proxy.mint("127.0.0.1");
    for _ in 0..3 {
        assert_eq!(proxy.send(req(Method::GET, "/spawner").abc(&token)).await.status, StatusCode::OK);
    }
    assert_eq!(proxy.send(req(Method::GET, "/spawner")).await.status, StatusCode::UNAUTHORIZED);
    let upload = vec![b'u'; 10_000];
    let resp = proxy.send(Req::post("/filer/up", upload.clone()).abc(&token)).await;
    assert_eq!(resp.status, StatusCode::OK);
    let metrics = proxy.metrics().await;
    let count = |labels: &[&str]| metric_sum(&metrics, "route_requests_total", labels);
    assert_eq!(metric_sum(&metrics, "route_token_cache_entries", &[]), 1.0, "cache entries:\n{metrics}");
    let bytes =
        |direction: &str| metric_sum(&metrics, "route_bytes_total", &[&format!("direction=\"{direction}\"")]);
    assert!(bytes("upstream") >= upload.len() as f64, "bytes upstream: {}", bytes("upstream"));
    assert!(bytes("downstream") >= resp.body.len() as f64, "bytes downstream: {}", bytes("downstream"));
    // Four spawner requests in the latency histogram: its count and its +Inf bucket.
    let histogram = |name: &str, labels: &[&str]| metric_sum(&metrics, name, labels);
    assert_eq!(histogram("route_request_duration_seconds_count", &["route=\"spawner\""]), 4.0);
    assert_eq!(
        histogram("route_request_duration_seconds_bucket", &["route=\"spawner\"", "le=\"+Inf\""]),
        4.0
    );
    assert_eq!(count(&["route=\"spawner\"", "class=\"2xx\""]), 3.0, "spawner 2xx:\n{metrics}");
    assert_eq!(count(&["route=\"spawner\"", "class=\"4xx\""]), 1.0, "spawner 4xx");
    assert_eq!(metric_sum(&metrics, "route_token_cache_misses_total", &[]), 1.0, "cache misses");
    assert_eq!(metric_sum(&metrics, "route_token_cache_hits_total", &[]), 3.0, "cache hits");
    let failures = |labels: &[&str]| metric_sum(&metrics, "route_request_failures_total", labels);
    assert_eq!(failures(&[]), 1.0, "failures:\n{metrics}");
    assert_eq!(
        failures(&["route=\"spawner\"", "reason=\"missing\"", "side=\"client\""]),
        1.0,
        "the missing token, by route, reason and side:\n{metrics}"
    );
    assert!(metric_sum(&metrics, "route_settings_generation", &[]) >= 1.0, "settings generation");
    assert!(!metrics.contains(&token), "a token in the metrics");
    assert_eq!(desk.hits_except(&["spawner", "filer"]), 0);
    proxy.finish();
}

#[tokio::test]
async fn errors_and_builtins_carry_no_server_header() {
    let (_desk, proxy) = desk_and_proxy().await;
    let fqdn = proxy.mint("nowhere-0a1b2c3d.desktop.abcdesktop.svc.cluster.local");
    for (request, status) in [
        (req(Method::GET, "/healthz"), StatusCode::OK),
        (req(Method::GET, "/spawner"), StatusCode::UNAUTHORIZED),
        (req(Method::GET, "/spawner").abc(&fqdn), StatusCode::BAD_GATEWAY),
    ] {
        let what = request.path.clone();
        let resp = proxy.send(request).await;
        assert_eq!(resp.status, status, "{what}");
        assert_response_headers(&resp, &what);
    }
    proxy.finish();
}

#[tokio::test]
async fn manifests_folder_works_like_a_file() {
    let desk = Desk::start().await;
    let m: Manifest = desk.manifest(keys());
    let proxy = Proxy::builder().manifest(&m).folder().start().await;
    let token = proxy.mint("127.0.0.1");
    assert_eq!(proxy.send(req(Method::GET, "/spawner").abc(&token)).await.seen().upstream, "spawner");
    proxy.finish();
}

#[tokio::test]
async fn routes_can_be_added_overridden_and_disabled() {
    let desk = Desk::start().await;
    let m = desk
        .manifest(keys())
        .route(json!({"name": "console", "enabled": false}))
        .route(json!({
            "name": "myapp",
            "paths": ["/myapp"],
            "desktopPort": desk.pod.port(),
            "tokenSources": [{"header": "X-App-Token"}, {"query": "app_token"}],
            "rewrite": "keep",
            "websocket": false,
        }))
        .route(json!({"name": "spawner", "paths": ["/spawner2"]}));
    let proxy = Proxy::start(&m).await;
    let token = proxy.mint("127.0.0.1");

    // An added route with its own token sources (and the Bearer fallback).
    let seen = through(
        &desk,
        &proxy,
        req(Method::GET, "/myapp/x?y=1").header("X-App-Token", &token),
        "pod",
        "/myapp/x?y=1",
    )
    .await;
    assert_eq!(seen.header("x-app-token"), Some(token.as_str()));
    let seen = proxy.send(req(Method::GET, &format!("/myapp/q?app_token={token}"))).await.seen();
    assert_eq!(seen.upstream, "pod");
    let bearer = format!("Bearer {token}");
    assert_eq!(
        proxy.send(req(Method::GET, "/myapp").header("Authorization", &bearer)).await.seen().upstream,
        "pod"
    );
    assert_eq!(proxy.send(req(Method::GET, "/myapp").abc(&token)).await.status, StatusCode::UNAUTHORIZED);

    // A disabled route: its paths fall through to the website.
    let seen = proxy.send(req(Method::GET, "/console/x")).await.seen();
    assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("website", "/console/x"));
    assert_eq!(desk.up("console").hits(), 0);

    // An overridden route: its new path serves, the old one no longer does.
    let seen = proxy.send(req(Method::GET, "/spawner2/x").abc(&token)).await.seen();
    assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("spawner", "/spawner2/x"));
    let seen = proxy.send(req(Method::GET, "/spawner/x").abc(&token)).await.seen();
    assert_eq!(seen.upstream, "website", "the spawner's replaced path still routes to it");
    proxy.finish();
}

#[tokio::test]
async fn auth_failures_are_counted_by_reason() {
    use route_mint::Minter;
    let desk = Desk::start().await;
    let m = desk.manifest(keys()).set_in("targets", "containerPorts", json!([desk.pod.port()])).set_in(
        "targets",
        "allowedDnsSuffixes",
        json!([".cluster.local"]),
    );
    let proxy = Proxy::start(&m).await;
    let now = support::unix_now();
    // Signed by the trusted key, but the hash is encrypted for another payload key.
    let other_payload =
        Minter::new(keys().signing_private.as_bytes(), support::other_keys().payload_public.as_bytes())
            .expect("minter")
            .mint("127.0.0.1", now, now + 420)
            .expect("mint");
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("malformed", Some("not-a-token".to_owned())),
        ("expired", Some(mint_expired("127.0.0.1"))),
        ("signature", Some(support::mint_with(support::other_keys(), "127.0.0.1", 420))),
        ("decrypt", Some(other_payload)),
        ("target_policy", Some(support::mint("evil.example.com"))),
    ];
    for (reason, token) in &cases {
        let mut request = req(Method::GET, "/spawner");
        if let Some(t) = token {
            request = request.abc(&proxy.secret(t));
        }
        let resp = proxy.send(request).await;
        assert!(resp.status.is_client_error(), "{reason}: {}", resp.status);
    }
    let token = proxy.mint("127.0.0.1");
    let resp = proxy.send(req(Method::GET, &format!("/container/{token}/{}/x", desk.victim.port()))).await;
    assert!(resp.status.is_client_error(), "port_policy: {}", resp.status);

    let metrics = proxy.metrics().await;
    for reason in cases.iter().map(|(r, _)| *r).chain(["port_policy"]) {
        let label = format!("reason=\"{reason}\"");
        assert_eq!(
            metric_sum(&metrics, "route_request_failures_total", &[&label]),
            1.0,
            "route_request_failures_total{{{label}}}:\n{metrics}"
        );
    }
    assert_eq!(desk.hits_except(&[]), 0);
    proxy.finish();
}
