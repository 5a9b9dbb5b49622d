//! One test per HTTP row of contract.md section 3: the port reached, the path sent, the headers
//! the upstream saw, the body; plus the response headers, the token sources and their 401s,
//! anchored paths, the container port allow-list, and the builtin endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::{Method, StatusCode};
use serde_json::json;
use support::{
    Desk, Manifest, Proxy, Req, Resp, assert_forwarded, assert_response_headers, keys, metric_sum,
    mint_expired,
};

const HOST: &str = "desktop.example.com";

async fn setup() -> (Desk, Proxy) {
    let desk = Desk::start().await;
    let proxy = Proxy::start(&desk.manifest(keys())).await;
    (desk, proxy)
}

fn req(method: Method, path: &str) -> Req {
    Req::new(method, path).header("Host", HOST)
}

/// Sends `request`, expects the answer of upstream `name` for `path_upstream`, with the
/// forwarding headers and the response headers right, and nothing reaching another upstream.
async fn through(desk: &Desk, proxy: &Proxy, request: Req, name: &str, path_upstream: &str) -> support::Seen {
    let shown = format!("{} {}", request.method, request.path.split('?').next().unwrap_or(""));
    let others_before = desk.hits_except(&[name]);
    let resp = proxy.send(request).await;
    assert_eq!(resp.status, StatusCode::OK, "{shown}: {}", resp.text());
    assert_response_headers(&resp, &shown);
    let seen = resp.seen();
    assert_eq!(seen.upstream, name, "{shown} reached the wrong upstream");
    assert_eq!(seen.port, desk_port(desk, name), "{shown}: port");
    assert_eq!(seen.uri, path_upstream, "{shown}: path sent upstream");
    assert_forwarded(&seen, "http", HOST);
    assert_eq!(desk.hits_except(&[name]), others_before, "{shown}: another upstream was reached");
    seen
}

fn desk_port(desk: &Desk, name: &str) -> u16 {
    match name {
        "pod" => desk.pod.port(),
        "victim" => desk.victim.port(),
        other => desk.up(other).port(),
    }
}

#[tokio::test]
async fn spawner_header_token_body_and_path_unchanged() {
    let (desk, proxy) = setup().await;
    let token = proxy.mint("127.0.0.1");
    let body = vec![42_u8; 64 * 1024];
    let seen = through(
        &desk,
        &proxy,
        req(Method::POST, "/spawner/launch?app=xterm&x=1").abc(&token).body(body.clone()),
        "spawner",
        "/spawner/launch?app=xterm&x=1",
    )
    .await;
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.body_len, body.len() as u64);
    assert_eq!(seen.body_sha256, support::sha256_hex(&body));
    assert_eq!(seen.header("abcauthorization"), Some(token.as_str()), "ABCAuthorization passed through");
    proxy.finish();
}

#[tokio::test]
async fn filer_printerfiler_snapshot_terminals_http() {
    let (desk, proxy) = setup().await;
    let token = proxy.mint("127.0.0.1");
    let body = b"file content".to_vec();
    let seen = through(
        &desk,
        &proxy,
        req(Method::PUT, "/filer?path=/home/balloon/a.txt").abc(&token).body(body.clone()),
        "filer",
        "/filer?path=/home/balloon/a.txt",
    )
    .await;
    assert_eq!((seen.method.as_str(), seen.body_len), ("PUT", body.len() as u64));

    through(
        &desk,
        &proxy,
        req(Method::GET, "/printerfiler/list").abc(&token),
        "printerfiler",
        "/printerfiler/list",
    )
    .await;
    through(
        &desk,
        &proxy,
        req(Method::GET, "/snapshot?format=png").abc(&token),
        "snapshot",
        "/snapshot?format=png",
    )
    .await;
    through(
        &desk,
        &proxy,
        req(Method::POST, "/terminals?cols=80&rows=24").abc(&token),
        "terminals",
        "/terminals?cols=80&rows=24",
    )
    .await;
    through(
        &desk,
        &proxy,
        req(Method::POST, "/terminals/1234/size?cols=100&rows=30").abc(&token),
        "terminals",
        "/terminals/1234/size?cols=100&rows=30",
    )
    .await;
    proxy.finish();
}

#[tokio::test]
async fn container_token_in_path_and_port_in_path() {
    let (desk, proxy) = setup().await;
    let token = proxy.mint("127.0.0.1");
    let port = desk.pod.port();

    let resp =
        proxy.send(req(Method::GET, &format!("/container/{token}/{port}/app/index.html?lang=fr"))).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_response_headers(&resp, "/container/<JWT>/<port>/<rest>");
    let seen = resp.seen();
    assert_eq!((seen.upstream.as_str(), seen.port), ("pod", port));
    assert_eq!(seen.uri, "/app/index.html?lang=fr", "/container/<JWT>/<port>/<rest> sends /<rest>?<query>");
    assert_forwarded(&seen, "http", HOST);

    let seen = proxy.send(req(Method::GET, &format!("/container/{token}/{port}"))).await.seen();
    assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("pod", "/"), "/container/<JWT>/<port> sends /");

    let seen = proxy
        .send(req(Method::POST, &format!("/container/{port}/api/x?y=1")).abc(&token).body("b"))
        .await
        .seen();
    assert_eq!(seen.upstream, "pod");
    assert_eq!(seen.uri, format!("/container/{port}/api/x?y=1"), "/container/<port> keeps the path");
    assert_eq!(seen.body_len, 1);

    assert_eq!(desk.hits_except(&["pod"]), 0);
    proxy.finish();
}

#[tokio::test]
async fn pyos_paths_need_no_token_and_keep_their_path() {
    let (desk, proxy) = setup().await;
    for path in [
        "/moauth?code=1",
        "/fauth",
        "/gauth/x",
        "/oauth/callback?state=s",
        "/autologin?user=a",
        "/API/auth/auth",
        "/API/composer/launchdesktop",
        "/API/manager/image?x=1",
        "/status",
    ] {
        let resp =
            proxy.send(req(Method::POST, path).header("Cookie", "abcdesktop_token=u").body("{}")).await;
        assert_eq!(resp.status, StatusCode::OK, "{path}: {}", resp.text());
        assert_response_headers(&resp, path);
        let seen = resp.seen();
        assert_eq!(seen.upstream, "pyos", "{path}");
        assert_eq!(seen.uri, path, "{path}: path sent to pyos");
        assert_eq!(seen.header("cookie"), Some("abcdesktop_token=u"), "{path}: Cookie passed through");
        assert_forwarded(&seen, "http", HOST);
    }
    assert_eq!(desk.hits_except(&["pyos"]), 0);
    // Anchored: a path that merely contains a pyos prefix goes to the website.
    let seen = proxy.send(req(Method::GET, "/x/API/y")).await.seen();
    assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("website", "/x/API/y"));
    let seen = proxy.send(req(Method::GET, "/APIx")).await.seen();
    assert_eq!(seen.upstream, "website");
    proxy.finish();
}

#[tokio::test]
async fn console_and_speedtest_have_their_prefix_replaced() {
    let (desk, proxy) = setup().await;
    through(&desk, &proxy, req(Method::GET, "/console/ui/index.html?x=1"), "console", "/ui/index.html?x=1")
        .await;
    let seen = proxy.send(req(Method::GET, "/console")).await.seen();
    assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("console", "/"));

    let body = vec![1_u8; 1024 * 1024];
    let seen = proxy.send(req(Method::POST, "/speedtest/empty.php?r=0.5").body(body.clone())).await.seen();
    assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("speedtest", "/empty.php?r=0.5"));
    assert_eq!(seen.body_len, body.len() as u64);
    proxy.finish();
}

#[tokio::test]
async fn website_gets_everything_else_unchanged() {
    let (desk, proxy) = setup().await;
    through(&desk, &proxy, req(Method::GET, "/"), "website", "/").await;
    let seen = proxy.send(req(Method::GET, "/img/logo.svg?v=3")).await.seen();
    assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("website", "/img/logo.svg?v=3"));
    // Anchored on a segment boundary: not the spawner.
    let seen = proxy.send(req(Method::GET, "/spawnerx")).await.seen();
    assert_eq!(seen.upstream, "website");
    assert_eq!(desk.hits_except(&["website"]), 0);
    proxy.finish();
}

#[tokio::test]
async fn client_headers_pass_through_and_hop_by_hop_ones_do_not() {
    let (desk, proxy) = setup().await;
    let token = proxy.mint("127.0.0.1");
    let request = req(Method::GET, "/spawner/x")
        .abc(&token)
        .header("Origin", "https://desktop.example.com")
        .header("Cookie", "abcdesktop_token=u; lang=fr")
        .header("User-Agent", "route-tests/1")
        .header("Accept-Language", "fr-FR")
        .header("X-Forwarded-For", "203.0.113.7")
        .header("Connection", "keep-alive, X-Hop")
        .header("X-Hop", "must not pass")
        .header("Keep-Alive", "timeout=5")
        .header("Proxy-Connection", "keep-alive")
        .header("X-Custom", "passes");
    let resp = proxy.send(request).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_response_headers(&resp, "/spawner");
    assert!(resp.header("keep-alive").is_none(), "the upstream's Keep-Alive reached the client");
    assert_eq!(resp.header("x-upstream"), Some("spawner"), "end-to-end response headers pass through");
    let seen = resp.seen();
    assert_forwarded(&seen, "http", HOST);
    assert_eq!(
        seen.header_all("x-forwarded-for").join(", "),
        "203.0.113.7, 127.0.0.1",
        "X-Forwarded-For appended"
    );
    for (name, value) in [
        ("origin", "https://desktop.example.com"),
        ("cookie", "abcdesktop_token=u; lang=fr"),
        ("user-agent", "route-tests/1"),
        ("accept-language", "fr-FR"),
        ("abcauthorization", token.as_str()),
        ("x-custom", "passes"),
    ] {
        assert_eq!(seen.header(name), Some(value), "{name} passed through");
    }
    for name in ["x-hop", "keep-alive", "proxy-connection"] {
        assert!(!seen.has_header(name), "hop-by-hop header {name} reached the upstream");
    }
    let connection = seen.header_all("connection").join(",").to_ascii_lowercase();
    assert!(!connection.contains("x-hop"), "Connection still names X-Hop: {connection:?}");
    assert_eq!(desk.hits_except(&["spawner"]), 0);
    proxy.finish();
}

#[tokio::test]
async fn token_sources_bearer_fallback_and_prefix() {
    let (desk, proxy) = setup().await;
    let token = proxy.mint("127.0.0.1");
    for (name, value) in [
        ("ABCAuthorization", token.clone()),
        ("ABCAuthorization", format!("Bearer {token}")),
        ("ABCAuthorization", format!("bearer {token}")),
        ("Authorization", format!("Bearer {token}")),
    ] {
        let resp = proxy.send(req(Method::GET, "/spawner").header(name, &value)).await;
        let prefix = value.split(' ').next().filter(|_| value.contains(' ')).unwrap_or("");
        assert_eq!(resp.status, StatusCode::OK, "{name}: {prefix} <token>: {}", resp.text());
        assert_eq!(resp.seen().upstream, "spawner");
    }
    assert_eq!(desk.hits_except(&["spawner"]), 0);
    proxy.finish();
}

async fn expect_401(proxy: &Proxy, request: Req, what: &str, tokens: &[&str]) -> Resp {
    let resp = proxy.send(request).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{what}: {}", resp.text());
    assert_response_headers(&resp, what);
    let body = resp.text();
    for t in tokens {
        assert!(!body.contains(t), "{what}: the 401 body carries the token");
    }
    assert!(body.lines().count() <= 1, "{what}: the 401 body is not one line: {body:?}");
    resp
}

#[tokio::test]
async fn missing_bad_and_expired_tokens_get_401_and_reach_nothing() {
    let (desk, proxy) = setup().await;
    let expired = proxy.secret(&mint_expired("127.0.0.1"));
    let foreign = proxy.secret(&support::mint_with(support::other_keys(), "127.0.0.1", 420));
    let bad = proxy.secret("eyJhbGciOiJub25lIn0.eyJoYXNoIjoieCJ9.c2lnbmF0dXJl");
    let port = desk.pod.port();
    for path in ["/spawner", "/filer", "/printerfiler", "/terminals", "/terminals/1/size", "/snapshot"] {
        expect_401(&proxy, req(Method::GET, path), &format!("{path} without token"), &[]).await;
        for (what, t) in [("bad", &bad), ("expired", &expired), ("foreign", &foreign)] {
            expect_401(&proxy, req(Method::GET, path).abc(t), &format!("{path} {what} token"), &[t]).await;
            expect_401(
                &proxy,
                req(Method::GET, path).header("Authorization", &format!("Bearer {t}")),
                &format!("{path} {what} Bearer"),
                &[t],
            )
            .await;
        }
    }
    for t in [&bad, &expired, &foreign] {
        expect_401(&proxy, req(Method::GET, &format!("/container/{t}/{port}/x")), "/container/<bad>", &[t])
            .await;
        expect_401(
            &proxy,
            req(Method::GET, &format!("/container/{port}/x")).abc(t),
            "/container/<port> bad",
            &[t],
        )
        .await;
        expect_401(&proxy, req(Method::GET, &format!("/websockify?jwt_token={t}")), "/websockify bad", &[t])
            .await;
    }
    expect_401(&proxy, req(Method::GET, &format!("/container/{port}/x")), "/container/<port> no token", &[])
        .await;
    assert_eq!(desk.hits_except(&[]), 0, "a refused request reached an upstream");

    let metrics = proxy.metrics().await;
    let failures = metric_sum(&metrics, "route_auth_failures_total", &[]);
    // 6 paths x (no token + 3 bad tokens x 2 headers), 3 x 3 other sources, 1 missing.
    assert_eq!(failures, 52.0, "route_auth_failures_total");
    proxy.finish();
}

#[tokio::test]
async fn anchored_paths_never_reach_a_port_named_inside_them() {
    let (desk, proxy) = setup().await;
    let token = proxy.mint("127.0.0.1");
    let victim = desk.victim.port();

    // /filer/container/<JWT>/<port>/x is a filer request (the original sent it to <port>).
    let path = format!("/filer/container/{token}/{victim}/x");
    let resp = proxy.send(req(Method::GET, &path).abc(&token)).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let seen = resp.seen();
    assert_eq!(seen.upstream, "filer");
    assert_eq!(seen.uri, path);
    let resp = proxy.send(req(Method::GET, &path)).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "without ABCAuthorization the filer refuses");

    // /API/container/... goes to pyos unchanged.
    let path = format!("/API/container/{token}/{victim}/x");
    let seen = proxy.send(req(Method::GET, &path)).await.seen();
    assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("pyos", path.as_str()));

    // Elsewhere in the path: the website, never the pod.
    let path = format!("/x/container/{token}/{victim}/x");
    let seen = proxy.send(req(Method::GET, &path)).await.seen();
    assert_eq!(seen.upstream, "website");

    assert_eq!(desk.victim.hits(), 0, "the port named in the path was reached");
    proxy.finish();
}

#[tokio::test]
async fn container_port_allow_list() {
    let desk = Desk::start().await;
    let m = desk.manifest(keys()).set_in("targets", "containerPorts", json!([desk.pod.port()]));
    let proxy = Proxy::start(&m).await;
    let token = proxy.mint("127.0.0.1");
    let (pod, victim) = (desk.pod.port(), desk.victim.port());

    let seen = proxy.send(req(Method::GET, &format!("/container/{token}/{pod}/x"))).await.seen();
    assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("pod", "/x"));

    for request in [
        req(Method::GET, &format!("/container/{token}/{victim}/x")),
        req(Method::GET, &format!("/container/{token}/{victim}")),
        req(Method::GET, &format!("/container/{victim}/x")).abc(&token),
    ] {
        let resp = proxy.send(request).await;
        assert_eq!(resp.status, StatusCode::FORBIDDEN, "a port outside containerPorts: {}", resp.text());
        assert_response_headers(&resp, "container port refused");
    }
    assert_eq!(desk.victim.hits(), 0, "a port outside containerPorts was reached");
    proxy.finish();
}

#[tokio::test]
async fn target_policy_refuses_targets_outside_the_allowed_networks() {
    let desk = Desk::start().await;
    let m = desk.manifest(keys()).set_in("targets", "allowedCidrs", json!(["10.244.0.0/16"]));
    let proxy = Proxy::start(&m).await;
    let token = proxy.mint("127.0.0.1");
    let resp = proxy.send(req(Method::GET, "/spawner").abc(&token)).await;
    assert!(
        resp.status == StatusCode::FORBIDDEN || resp.status == StatusCode::UNAUTHORIZED,
        "a target outside allowedCidrs: {} {}",
        resp.status,
        resp.text()
    );
    assert_eq!(desk.hits_except(&[]), 0);
    proxy.finish();
}

#[tokio::test]
async fn builtins_health_ready_node_metrics_acme() {
    let desk = Desk::start().await;
    let acme = tempfile::tempdir().expect("tempdir");
    std::fs::write(acme.path().join("Zk3x-token_1"), "Zk3x-token_1.thumbprint").expect("write challenge");
    let secret_dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(secret_dir.path().join("secret.txt"), "do not serve").expect("write");
    let m =
        desk.manifest(keys()).set("acmeChallengeDir", json!(acme.path())).set("nodeName", json!("node-a"));
    let proxy = Proxy::start(&m).await;

    for path in ["/healthz", "/readyz"] {
        let resp = proxy.get(path).await;
        assert_eq!(resp.status, StatusCode::OK, "{path}");
        assert_response_headers(&resp, path);
    }
    assert_eq!(proxy.get("/healthz").await.text().trim(), "OK");
    assert_eq!(proxy.get("/node").await.text().trim(), "node-a");

    let resp = proxy.get("/.well-known/acme-challenge/Zk3x-token_1").await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.text(), "Zk3x-token_1.thumbprint");
    assert_eq!(proxy.get("/.well-known/acme-challenge/missing").await.status, StatusCode::NOT_FOUND);
    let escape =
        format!("/.well-known/acme-challenge/..%2F..%2F{}", secret_dir.path().join("secret.txt").display());
    let resp = proxy.get(&escape).await;
    assert!(!resp.text().contains("do not serve"), "the challenge folder can be escaped");

    // A few proxied requests, then the metrics.
    let token = proxy.mint("127.0.0.1");
    for _ in 0..3 {
        assert_eq!(proxy.send(req(Method::GET, "/spawner").abc(&token)).await.status, StatusCode::OK);
    }
    assert_eq!(proxy.send(req(Method::GET, "/spawner")).await.status, StatusCode::UNAUTHORIZED);
    let metrics = proxy.metrics().await;
    assert!(
        metric_sum(&metrics, "route_requests_total", &["route=\"spawner\"", "class=\"2xx\""]) >= 3.0,
        "route_requests_total for spawner 2xx:\n{metrics}"
    );
    assert!(metric_sum(&metrics, "route_requests_total", &["route=\"spawner\"", "class=\"4xx\""]) >= 1.0);
    assert!(metric_sum(&metrics, "route_token_cache_hits_total", &[]) >= 2.0, "cache hits:\n{metrics}");
    assert!(metric_sum(&metrics, "route_token_cache_misses_total", &[]) >= 1.0, "cache misses");
    assert!(metric_sum(&metrics, "route_auth_failures_total", &[]) >= 1.0, "auth failures");
    assert!(metric_sum(&metrics, "route_settings_generation", &[]) >= 1.0, "settings generation");
    assert!(!metrics.contains(&token), "a token in the metrics");
    assert_eq!(desk.hits_except(&["spawner"]), 0);
    proxy.finish();
}

#[tokio::test]
async fn errors_and_builtins_carry_no_server_header() {
    let (_desk, proxy) = setup().await;
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
async fn debug_logs_carry_no_token_either() {
    let desk = Desk::start().await;
    let proxy = Proxy::builder().manifest(&desk.manifest(keys())).log_level("debug").start().await;
    let good = proxy.mint("127.0.0.1");
    let expired = proxy.secret(&mint_expired("127.0.0.1"));
    let foreign = proxy.secret(&support::mint_with(support::other_keys(), "127.0.0.1", 420));
    let port = desk.pod.port();
    for t in [&good, &expired, &foreign] {
        proxy.send(req(Method::GET, "/spawner").abc(t)).await;
        proxy.send(req(Method::GET, "/spawner").header("Authorization", &format!("Bearer {t}"))).await;
        proxy.send(req(Method::GET, &format!("/container/{t}/{port}/x?y=1"))).await;
        proxy.send(req(Method::GET, &format!("/websockify?jwt_token={t}&x=1"))).await;
        proxy.send(req(Method::GET, &format!("/terminals/1?{t}"))).await;
    }
    let logs = proxy.logs();
    assert!(!logs.is_empty(), "nothing logged at debug");
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
