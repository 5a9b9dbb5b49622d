//! Tokens and targets end to end: where a token is read from, the 401 of a missing, bad or
//! expired one (reaching nothing), anchored paths, the container port allow-list, the CIDR and
//! DNS-suffix target policies, the cache's expiry and cap, and logs that never carry a token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::{Method, StatusCode};
use serde_json::json;
use support::{
    Desk, Proxy, Req, Resp, assert_response_headers, desk_and_proxy, keys, metric_sum, mint_expired,
};

fn req(method: Method, path: &str) -> Req {
    Req::new(method, path).header("Host", "desktop.example.com")
}

#[tokio::test]
async fn token_sources_bearer_fallback_and_prefix() {
    let (desk, proxy) = desk_and_proxy().await;
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
    // Routes whose own source is the raw query (terminals, websockify) still reach the
    // fallback when the query holds parameters rather than a token.
    for path in ["/terminals?cols=80&rows=24", "/terminals/1/size?cols=80&rows=24"] {
        let resp =
            proxy.send(req(Method::POST, path).header("Authorization", &format!("Bearer {token}"))).await;
        assert_eq!(resp.status, StatusCode::OK, "{path} with Authorization: {}", resp.text());
        assert_eq!(resp.seen().upstream, "terminals");
        assert_eq!(resp.seen().uri, path);
    }
    assert_eq!(desk.hits_except(&["spawner", "terminals"]), 0);
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
    let (desk, proxy) = desk_and_proxy().await;
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
    let failures = metric_sum(&metrics, "route_request_failures_total", &["side=\"client\""]);
    // 6 paths x (no token + 3 bad tokens x 2 headers), 3 x 3 other sources, 1 missing.
    assert_eq!(failures, 52.0, "route_request_failures_total{{side=\"client\"}}:\n{metrics}");
    proxy.finish();
}

#[tokio::test]
async fn anchored_paths_never_reach_a_port_named_inside_them() {
    let (desk, proxy) = desk_and_proxy().await;
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
    assert_eq!(resp.status, StatusCode::FORBIDDEN, "a target outside allowedCidrs: {}", resp.text());
    assert_eq!(desk.hits_except(&[]), 0);
    proxy.finish();
}

#[tokio::test]
async fn debug_logs_carry_no_token_either() {
    debug_logs_carry_no_token("debug", false).await;
}

#[tokio::test]
async fn trace_logs_carry_no_token_either() {
    debug_logs_carry_no_token("trace", false).await;
}

/// The text format (the default outside the tests) goes through the same redaction.
#[tokio::test]
async fn text_logs_carry_no_token_either() {
    let logs = debug_logs_carry_no_token("info", true).await;
    assert!(
        logs.lines().any(|l| l.contains("/spawner") && l.contains("status=200") && !l.starts_with('{')),
        "no text access line for /spawner: {logs}"
    );
    assert!(!logs.contains('\u{1b}'), "colour escape codes in logs written to a pipe");
}

async fn debug_logs_carry_no_token(level: &str, text: bool) -> String {
    let desk = Desk::start().await;
    let builder = Proxy::builder().manifest(&desk.manifest(keys())).log_level(level);
    let proxy = if text { builder.text_logs() } else { builder }.start().await;
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
        // Tokens where no route reads them still never reach a log.
        proxy.send(req(Method::GET, &format!("/API/x?jwt_token={t}&a=1"))).await;
        proxy.send(req(Method::GET, &format!("/index.html?{t}"))).await;
        proxy.send(req(Method::GET, &format!("/img/{t}/x.png"))).await;
        proxy.send(req(Method::GET, &format!("/container/{t}/99999/x"))).await;
    }
    let logs = proxy.logs_redacted();
    assert!(!logs.is_empty(), "nothing logged at {level}");
    proxy.finish();
    logs
}

#[tokio::test]
async fn a_cached_token_is_refused_once_it_expires() {
    let (_desk, proxy) = desk_and_proxy().await;
    let now = support::unix_now();
    let exp = now + 3;
    let token = proxy.secret(
        &route_mint::Minter::from_key_set(keys()).expect("minter").mint("127.0.0.1", now, exp).expect("mint"),
    );
    // Used (and cached) while valid...
    for _ in 0..2 {
        assert_eq!(proxy.send(req(Method::GET, "/spawner").abc(&token)).await.status, StatusCode::OK);
    }
    // ...refused as soon as the clock passes exp (exp must be strictly greater than now).
    support::eventually(std::time::Duration::from_secs(10), "the clock passes exp", || async {
        (support::unix_now() >= exp).then_some(())
    })
    .await;
    let resp = proxy.send(req(Method::GET, "/spawner").abc(&token)).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "an expired token served from the cache");
    proxy.finish();
}

#[tokio::test]
async fn dns_suffix_policy_refuses_before_resolving() {
    let desk = Desk::start().await;
    let m = desk.manifest(keys()).set_in(
        "targets",
        "allowedDnsSuffixes",
        json!([".desktop.abcdesktop.svc.cluster.local"]),
    );
    let proxy = Proxy::start(&m).await;
    let inside = proxy.mint("anonymous-0a1b2c3d.desktop.abcdesktop.svc.cluster.local");
    let outside = proxy.mint("evil.example.com");
    let resp = proxy.send(req(Method::GET, "/spawner").abc(&inside)).await;
    assert_eq!(
        resp.status,
        StatusCode::BAD_GATEWAY,
        "an allowed FQDN that does not resolve: {}",
        resp.text()
    );
    let resp = proxy.send(req(Method::GET, "/spawner").abc(&outside)).await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN, "a name outside allowedDnsSuffixes: {}", resp.text());
    proxy.finish();
}

#[tokio::test]
async fn nothing_is_cached_when_the_cap_is_one_second() {
    let desk = Desk::start().await;
    let m = desk.manifest(keys()).set("cache", json!({"ttlCapSeconds": 1, "maxEntries": 100}));
    let proxy = Proxy::start(&m).await;
    let token = proxy.mint("127.0.0.1");
    for _ in 0..3 {
        assert_eq!(proxy.send(req(Method::GET, "/spawner").abc(&token)).await.status, StatusCode::OK);
    }
    let metrics = proxy.metrics().await;
    assert_eq!(metric_sum(&metrics, "route_token_cache_hits_total", &[]), 0.0, "a hit with a 1 s cap");
    assert_eq!(metric_sum(&metrics, "route_token_cache_misses_total", &[]), 3.0);
    proxy.finish();
}

#[tokio::test]
async fn pyos_authorization_passes_through_untouched() {
    let (desk, proxy) = desk_and_proxy().await;
    // pyos reads its own user token from Authorization: the Bearer fallback must not eat it.
    let seen = proxy
        .send(req(Method::GET, "/API/user/whoami").header("Authorization", "Bearer pyos-user-token"))
        .await
        .seen();
    assert_eq!(seen.upstream, "pyos");
    assert_eq!(seen.header("authorization"), Some("Bearer pyos-user-token"));
    assert_eq!(desk.hits_except(&["pyos"]), 0);
    proxy.finish();
}
