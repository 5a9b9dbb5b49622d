//! One test per HTTP row of contract.md section 3: the port reached, the path sent, the headers
//! the upstream saw, the body; plus the response headers. Builtins, metrics and routes changed
//! by configuration: tests/builtins.rs. Tokens and target policy: tests/token_policy.rs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::{Method, StatusCode};
use support::rows::{HOST, req, through};
use support::{assert_forwarded, assert_response_headers, desk_and_proxy};

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
