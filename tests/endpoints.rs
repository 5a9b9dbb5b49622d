//! One test per HTTP row of contract.md section 3: the port reached, the path sent, the headers
//! the upstream saw, the body; plus the response headers, the builtin endpoints, metrics, and
//! routes changed by configuration. Tokens and target policy: tests/token_policy.rs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::{Method, StatusCode};
use serde_json::json;
use support::{
    Desk, Manifest, Proxy, Req, assert_forwarded, assert_response_headers, desk_and_proxy, keys, metric_sum,
    mint_expired,
};

const HOST: &str = "desktop.example.com";

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

/// A desktop row with an `ABCAuthorization` token: the request (with a body) reaches the
/// route's port with `upstream_path`, the body intact, the token header passed through; the
/// same request without a token is 401 and reaches nothing.
async fn desktop_row(method: Method, path: &str, name: &str, upstream_path: &str) {
    let (desk, proxy) = desk_and_proxy().await;
    let token = proxy.mint("127.0.0.1");
    let body: Vec<u8> = (0..100_000_u32).map(|i| (i % 241) as u8).collect();
    let request = req(method.clone(), path).abc(&token).body(body.clone());
    let seen = through(&desk, &proxy, request, name, upstream_path).await;
    assert_eq!(seen.method, method.as_str());
    assert_eq!(seen.body_len, body.len() as u64, "{path}: body length");
    assert_eq!(seen.body_sha256, support::sha256_hex(&body), "{path}: body digest");
    assert_eq!(seen.header("abcauthorization"), Some(token.as_str()), "ABCAuthorization passed through");

    let resp = proxy.send(req(method, path).body(body)).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{path} without a token");
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer realm=\"route\""),
        "{path}: the 401's challenge"
    );
    assert_eq!(desk.up(name).hits(), 1, "{path} without a token reached the upstream");
    proxy.finish();
}

#[tokio::test]
async fn row_spawner() {
    desktop_row(Method::POST, "/spawner/launch?app=xterm&x=1", "spawner", "/spawner/launch?app=xterm&x=1")
        .await;
}

#[tokio::test]
async fn row_filer() {
    desktop_row(Method::PUT, "/filer?path=/home/balloon/a.txt", "filer", "/filer?path=/home/balloon/a.txt")
        .await;
}

#[tokio::test]
async fn row_printerfiler() {
    desktop_row(Method::POST, "/printerfiler/print?job=1", "printerfiler", "/printerfiler/print?job=1").await;
}

#[tokio::test]
async fn row_terminals_http() {
    desktop_row(Method::POST, "/terminals?cols=80&rows=24", "terminals", "/terminals?cols=80&rows=24").await;
}

#[tokio::test]
async fn row_terminals_size() {
    desktop_row(
        Method::POST,
        "/terminals/1234/size?cols=100&rows=30",
        "terminals",
        "/terminals/1234/size?cols=100&rows=30",
    )
    .await;
}

#[tokio::test]
async fn row_snapshot() {
    desktop_row(Method::POST, "/snapshot?format=png", "snapshot", "/snapshot?format=png").await;
}

#[tokio::test]
async fn row_container_token_port_rest() {
    let (desk, proxy) = desk_and_proxy().await;
    let token = proxy.mint("127.0.0.1");
    let port = desk.pod.port();
    let path = format!("/container/{token}/{port}/app/index.html?lang=fr");
    let seen =
        through(&desk, &proxy, req(Method::POST, &path).body("x=1"), "pod", "/app/index.html?lang=fr").await;
    assert_eq!(seen.body_len, 3);
    // The token in the path is the credential: no header needed, and a bad one is refused.
    let resp = proxy.send(req(Method::GET, &format!("/container/not.a.token/{port}/app"))).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer realm=\"route\", error=\"invalid_token\""),
        "a refused token's challenge"
    );
    assert_eq!(desk.pod.hits(), 1);
    proxy.finish();
}

#[tokio::test]
async fn row_container_token_port() {
    let (desk, proxy) = desk_and_proxy().await;
    let token = proxy.mint("127.0.0.1");
    let port = desk.pod.port();
    through(&desk, &proxy, req(Method::GET, &format!("/container/{token}/{port}")), "pod", "/").await;
    through(&desk, &proxy, req(Method::GET, &format!("/container/{token}/{port}/")), "pod", "/").await;
    proxy.finish();
}

#[tokio::test]
async fn row_container_port_with_header() {
    let (desk, proxy) = desk_and_proxy().await;
    let token = proxy.mint("127.0.0.1");
    let port = desk.pod.port();
    let path = format!("/container/{port}/api/x?y=1");
    let seen = through(&desk, &proxy, req(Method::POST, &path).abc(&token).body("b"), "pod", &path).await;
    assert_eq!(seen.body_len, 1);
    let resp = proxy.send(req(Method::GET, &path)).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "/container/<port> without ABCAuthorization");
    assert_eq!(desk.pod.hits(), 1);
    proxy.finish();
}

#[tokio::test]
async fn row_pyos_paths_need_no_token_and_keep_their_path() {
    let (desk, proxy) = desk_and_proxy().await;
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
    // /API/manager/image takes bodies up to 16 MiB: over it, answered from the declared length.
    let head = format!(
        "POST /API/manager/image HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {}\r\n\r\n",
        17 * 1024 * 1024
    );
    let resp = support::client::raw_exchange(proxy.addr(), head, 0, |_| bytes::Bytes::new()).await;
    proxy.expect_access("POST", "/API/manager/image", resp.status);
    assert_eq!(resp.status, 413, "17 MiB declared on /API/manager/image");
    let image = vec![3_u8; 12 * 1024 * 1024];
    let seen = proxy.send(req(Method::POST, "/API/manager/image").body(image)).await.seen();
    assert_eq!((seen.upstream.as_str(), seen.body_len), ("pyos", 12 * 1024 * 1024));
    // Anchored: a path that merely contains a pyos prefix goes to the website.
    let seen = proxy.send(req(Method::GET, "/x/API/y")).await.seen();
    assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("website", "/x/API/y"));
    let seen = proxy.send(req(Method::GET, "/APIx")).await.seen();
    assert_eq!(seen.upstream, "website");
    proxy.finish();
}

#[tokio::test]
async fn row_console_prefix_replaced() {
    let (desk, proxy) = desk_and_proxy().await;
    through(&desk, &proxy, req(Method::GET, "/console/ui/index.html?x=1"), "console", "/ui/index.html?x=1")
        .await;
    through(&desk, &proxy, req(Method::GET, "/console"), "console", "/").await;
    let seen = proxy.send(req(Method::GET, "/consolex")).await.seen();
    assert_eq!(seen.upstream, "website", "/consolex is not the console");
    proxy.finish();
}

#[tokio::test]
async fn row_speedtest_prefix_replaced_and_large_bodies() {
    let (desk, proxy) = desk_and_proxy().await;
    let body = vec![1_u8; 4 * 1024 * 1024];
    let request = req(Method::POST, "/speedtest/empty.php?r=0.5").body(body.clone());
    let seen = through(&desk, &proxy, request, "speedtest", "/empty.php?r=0.5").await;
    assert_eq!(seen.body_len, body.len() as u64);
    // Over its 256 MiB limit, answered from the declared length.
    let head = format!(
        "POST /speedtest/empty.php HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {}\r\n\r\n",
        257 * 1024 * 1024
    );
    let resp = support::client::raw_exchange(proxy.addr(), head, 0, |_| bytes::Bytes::new()).await;
    proxy.expect_access("POST", "/speedtest/empty.php", resp.status);
    assert_eq!(resp.status, 413, "257 MiB declared on /speedtest");
    assert_eq!(desk.up("speedtest").hits(), 1);
    proxy.finish();
}

#[tokio::test]
async fn row_website_gets_everything_else_unchanged() {
    let (desk, proxy) = desk_and_proxy().await;
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
    let (desk, proxy) = desk_and_proxy().await;
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
        .header("X-Custom", "passes")
        .header("X-Test-Response-Hop", "1");
    let resp = proxy.send(request).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_response_headers(&resp, "/spawner");
    assert!(resp.header("keep-alive").is_none(), "the upstream's Keep-Alive reached the client");
    assert!(
        resp.header("x-resp-hop").is_none(),
        "a header the upstream's Connection names reached the client"
    );
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
async fn upstream_statuses_and_head_requests_pass_through() {
    let (desk, proxy) = desk_and_proxy().await;
    let token = proxy.mint("127.0.0.1");
    for status in [201_u16, 204, 302, 404, 500, 503] {
        let resp = proxy
            .send(req(Method::GET, "/spawner/x").abc(&token).header("X-Test-Status", &status.to_string()))
            .await;
        assert_eq!(resp.status.as_u16(), status, "the upstream's {status}");
        assert_response_headers(&resp, &format!("upstream {status}"));
    }
    let resp = proxy.send(req(Method::HEAD, "/API/x")).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(resp.body.is_empty(), "a body on HEAD");
    assert_eq!(desk.up("pyos").last().method, "HEAD");
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
