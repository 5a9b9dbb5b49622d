//! Adversarial requests against the real binary that try to reach another route, another
//! host or another pod than the one they are entitled to: path tricks, absolute-form and
//! CONNECT, foreign Host headers, h2c upgrades, WebSocket handshakes without a valid token,
//! tokens that are doubled, huge, or carry whitespace and control characters, and the same
//! over HTTP/2. Framing, limits and floods are in `tests/adversarial.rs`.
//!
//! Every test ends with `finish()`, which fails when a token the test used reached a log line,
//! and with `no_panic`. docs/reliability.md has the table of these cases.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;

use http::{Method, StatusCode};
use support::hostile::{host_head, no_panic, setup};
use support::raw::{Ended, RawConn, exchange};
use support::ws::Handshake;
use support::{Desk, Proxy, Req, STEP, metric_sum};

// ---------------------------------------------------------------------------------------------
// Path tricks

/// Dot-segments (plain or encoded), encoded slashes and backslashes, and paths whose decoded,
/// slash-merged form would pick another route are refused with 400: an upstream that
/// normalises (nginx did, so `/spawner/../API/x` reached pyos) must never see a request the
/// router authorised for another route. Everything else routes by the raw path, sent upstream
/// as it came.
#[tokio::test]
async fn path_tricks_never_move_a_request_to_another_route() {
    let (desk, proxy) = setup(&[]).await;
    let token = proxy.mint("127.0.0.1");
    let victim = desk.victim.port();
    let pod = desk.pod.port();
    for path in [
        "/spawner/../API/x".to_owned(),
        "/spawner/./x".to_owned(),
        "/spawner/%2e%2e/API/x".to_owned(),
        "/spawner/%2E%2e/API/x".to_owned(),
        "/spawner/.%2e/API/x".to_owned(),
        "/spawner%2F..%2FAPI/x".to_owned(),
        "/spawner%2fx".to_owned(),
        "/API%2F..%2Fspawner".to_owned(),
        "/x%5C..%5CAPI".to_owned(),
        "//API/x".to_owned(),
        "///spawner".to_owned(),
        "/%41PI/x".to_owned(),
        "/%73pawner/x".to_owned(),
        "/x%00y".to_owned(),
        "/./API/x".to_owned(),
        "/container/..".to_owned(),
        format!("/container/{token}/{victim}/../x"),
        format!("/container/{token}/{pod}/%2e%2e/x"),
        format!("/filer/../container/{token}/{victim}/x"),
    ] {
        let resp = proxy.send(Req::get(&path).abc(&token)).await;
        let shown = path.replace(&token, "<TOKEN>");
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{shown}: {}", resp.text());
    }
    // What is not a URI at all is refused by the parser; a fragment is dropped (the path
    // before it is routed, and needs its token like any other).
    for raw in ["/x\\..\\API", "/spawner/a b", "/spawner/../#frag"] {
        let resp = exchange(proxy.addr(), host_head("GET", raw, "").as_bytes()).await;
        assert_eq!(resp.map(|r| r.status), Some(400), "{raw}");
    }
    let resp = exchange(proxy.addr(), host_head("GET", "/spawner/#frag", "").as_bytes()).await;
    assert!(resp.as_ref().is_some_and(|r| matches!(r.status, 400 | 401)), "{resp:?}");
    assert_eq!(desk.hits_except(&[]), 0, "a refused path reached an upstream");

    // Routed by the raw path, the same route either way.
    let seen = proxy.send(Req::get("/spawner//x").abc(&token)).await.seen();
    assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("spawner", "/spawner//x"));
    let seen = proxy.send(Req::get("/API/a%20b").abc(&token)).await.seen();
    assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("pyos", "/API/a%20b"));
    let path = format!("/filer/container/{token}/{victim}/x");
    let seen = proxy.send(Req::get(&path).abc(&token)).await.seen();
    assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("filer", path.as_str()));
    let seen = proxy.send(Req::get("/spawner/...").abc(&token)).await.seen();
    assert_eq!(seen.uri, "/spawner/...");
    assert_eq!(desk.victim.hits(), 0);
    assert_eq!(desk.pod.hits(), 0);
    let metrics = proxy.metrics().await;
    assert!(metric_sum(&metrics, "route_requests_total", &["route=\"guard\""]) >= 19.0, "{metrics}");
    no_panic(&proxy);
    proxy.finish();
}

// ---------------------------------------------------------------------------------------------
// Request targets and Host

/// This is not a forward proxy: CONNECT and TRACE are 405, an absolute-form request routes by
/// its path (its authority is never connected to), and a Host naming another server changes
/// nothing but the Host the upstream sees.
#[tokio::test]
async fn absolute_form_connect_and_foreign_hosts_reach_nothing_else() {
    let (desk, proxy) = setup(&[]).await;
    let token = proxy.mint("127.0.0.1");
    let victim = desk.victim.addr();

    let connect = format!("CONNECT {victim} HTTP/1.1\r\nHost: {victim}\r\n\r\n");
    let mut conn = RawConn::connect(proxy.addr()).await;
    conn.send(connect.as_bytes()).await;
    let resp = conn.response(STEP).await.expect("an answer to CONNECT");
    assert_eq!(resp.status, 405, "{}", resp.head);
    // Anything sent after a refused CONNECT is not tunnelled.
    conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(matches!(conn.ended(STEP).await, Ended::Closed), "the connection stayed open after CONNECT");

    let trace = exchange(
        proxy.addr(),
        host_head("TRACE", "/API/x", &format!("ABCAuthorization: {token}\r\n")).as_bytes(),
    )
    .await
    .expect("answer");
    assert_eq!(trace.status, 405, "{}", trace.head);
    assert!(!trace.text().contains(&token), "TRACE echoed the token");

    let absolute = format!("GET http://{victim}/API/abs HTTP/1.1\r\nHost: {victim}\r\n\r\n");
    let resp = exchange(proxy.addr(), absolute.as_bytes()).await.expect("answer");
    assert_eq!(resp.status, 200, "{}", resp.head);
    let seen = desk.up("pyos").last();
    assert_eq!(seen.uri, "/API/abs", "the absolute-form path went elsewhere");
    proxy.expect_access("GET", "/API/abs", 200);

    let absolute = format!(
        "GET http://evil.example:{}/spawner/abs HTTP/1.1\r\nHost: evil.example\r\nABCAuthorization: {token}\r\n\r\n",
        victim.port()
    );
    let resp = exchange(proxy.addr(), absolute.as_bytes()).await.expect("answer");
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(desk.up("spawner").last().uri, "/spawner/abs");
    proxy.expect_access("GET", "/spawner/abs", 200);

    for host in [victim.to_string(), "169.254.169.254".to_owned(), "localhost:1".to_owned()] {
        let seen = proxy.send(Req::get("/API/host").header("Host", &host)).await.seen();
        assert_eq!(seen.upstream, "pyos", "Host {host} moved the request");
        assert_eq!(seen.header("host"), Some(host.as_str()));
        let seen = proxy.send(Req::get("/spawner/host").abc(&token).header("Host", &host)).await.seen();
        assert_eq!(seen.upstream, "spawner", "Host {host} moved the request");
    }
    assert_eq!(desk.victim.hits(), 0, "the victim was reached");
    assert_eq!(desk.hits_except(&["pyos", "spawner"]), 0);
    no_panic(&proxy);
    proxy.finish();
}

/// `Upgrade: h2c` is never honoured: the request is forwarded as a plain one without its
/// hop-by-hop upgrade headers (the h2c smuggling of a proxy that forwards them), answered 200.
#[tokio::test]
async fn h2c_upgrades_are_never_honoured() {
    let (desk, proxy) = setup(&[]).await;
    let token = proxy.mint("127.0.0.1");
    for (path, auth, upstream) in [
        ("/API/h2c", String::new(), "pyos"),
        ("/spawner/h2c", format!("ABCAuthorization: {token}\r\n"), "spawner"),
        ("/", String::new(), "website"),
    ] {
        let head = host_head(
            "GET",
            path,
            &format!(
                "{auth}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
            ),
        );
        let mut conn = RawConn::connect(proxy.addr()).await;
        conn.send(head.as_bytes()).await;
        let resp = conn.response(STEP).await.expect("an answer");
        assert_eq!(resp.status, 200, "{path}: {}", resp.head);
        proxy.expect_access("GET", path, 200);
        let seen = desk.up(upstream).last();
        for gone in ["upgrade", "http2-settings", "connection"] {
            assert!(!seen.has_header(gone), "{path}: the upstream saw {gone}");
        }
        // The connection still speaks HTTP/1.1 after it.
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: d\r\n\r\n").await;
        let next = conn.response(STEP).await.expect("HTTP/1.1 after an h2c offer");
        assert_eq!(next.status, 200);
        proxy.expect_access("GET", "/healthz", 200);
    }
    no_panic(&proxy);
    proxy.finish();
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// A WebSocket handshake with no token, a bad one, an expired one, or a token of other keys is
/// 401, and no upstream sees the handshake.
#[tokio::test]
async fn websocket_upgrades_without_a_valid_token_reach_nothing() {
    let (desk, proxy) = setup(&[]).await;
    let expired = proxy.secret(&support::mint_expired("127.0.0.1"));
    let foreign = proxy.secret(&support::mint_with(support::other_keys(), "127.0.0.1", 420));
    let garbage = "eyJhbGciOiJub25lIn0.eyJoYXNoIjoieCJ9.";
    let pod = desk.pod.port();
    for path in [
        "/websockify".to_owned(),
        "/websockify?jwt_token=".to_owned(),
        format!("/websockify?jwt_token={garbage}"),
        format!("/websockify?jwt_token={expired}"),
        format!("/websockify?jwt_token={foreign}"),
        format!("/terminals/1?{foreign}"),
        format!("/signalling?jwt_token={expired}"),
        format!("/container/{foreign}/{pod}/ws"),
    ] {
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        let mut conn = RawConn::connect(proxy.addr()).await;
        conn.send(head.as_bytes()).await;
        let resp = conn.response(STEP).await.expect("an answer");
        let shown = path.replace(&expired, "<EXPIRED>").replace(&foreign, "<FOREIGN>");
        assert_eq!(resp.status, 401, "{shown}: {}", resp.head);
        assert!(resp.header("upgrade").is_none(), "{shown}: an upgrade header on a refusal");
        proxy.expect_access("GET", &path, 401);
        // Bytes sent after a refused handshake are HTTP again, never tunnelled.
        conn.send(b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58").await;
    }
    assert_eq!(desk.hits_except(&[]), 0, "a refused handshake reached an upstream");
    no_panic(&proxy);
    proxy.finish();
}

/// A token in a header and another in the query: each route reads its own sources in order,
/// the first token found decides, and a bad first token is not retried with the second.
#[tokio::test]
async fn a_token_in_both_a_header_and_the_query_is_read_from_one_place() {
    let (desk, proxy) = setup(&[]).await;
    let good = proxy.mint("127.0.0.1");
    let bad = proxy.secret(&support::mint_with(support::other_keys(), "127.0.0.1", 420));

    // /spawner reads ABCAuthorization, then Authorization; never the query.
    let resp = proxy.send(Req::get(&format!("/spawner/q?jwt_token={bad}")).abc(&good)).await;
    assert_eq!(resp.status, StatusCode::OK);
    let resp = proxy.send(Req::get(&format!("/spawner/q?jwt_token={good}")).abc(&bad)).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "the query rescued a bad header token");
    let resp = proxy.send(Req::get(&format!("/spawner/q?jwt_token={good}"))).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "/spawner read the query");
    // ABCAuthorization comes before Authorization: Bearer.
    let resp =
        proxy.send(Req::get("/spawner/q").abc(&bad).header("Authorization", &format!("Bearer {good}"))).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "Authorization rescued a bad ABCAuthorization");

    // /websockify reads ?jwt_token= first.
    let handshake = proxy
        .ws(&format!("/websockify?jwt_token={good}"), &[("Authorization", &format!("Bearer {bad}"))])
        .await;
    assert!(matches!(handshake, Handshake::Open(..)), "a bad header spoiled a good query token");
    let handshake = proxy
        .ws(&format!("/websockify?jwt_token={bad}"), &[("Authorization", &format!("Bearer {good}"))])
        .await;
    assert!(
        matches!(handshake, Handshake::Refused(StatusCode::UNAUTHORIZED)),
        "the header rescued a bad query"
    );

    // Two jwt_token parameters: the first decides.
    let handshake = proxy.ws(&format!("/websockify?jwt_token={bad}&jwt_token={good}"), &[]).await;
    assert!(matches!(handshake, Handshake::Refused(StatusCode::UNAUTHORIZED)));
    let handshake = proxy.ws(&format!("/websockify?jwt_token={good}&jwt_token={bad}"), &[]).await;
    assert!(matches!(handshake, Handshake::Open(..)));
    assert_eq!(desk.hits_except(&["spawner", "websockify"]), 0);
    no_panic(&proxy);
    proxy.finish();
}

/// Huge tokens: over the 8 KiB token limit 401, over the head limit 431, over the URI limit
/// 414; none is logged, none reaches an upstream, and the proxy is fine after.
#[tokio::test]
async fn huge_tokens_are_refused_without_reaching_anything() {
    let (desk, proxy) = setup(&[]).await;
    let good = proxy.mint("127.0.0.1");
    let (header, rest) = good.split_once('.').unwrap();
    let padded = |n: usize| proxy.secret(&format!("{header}.{}{rest}", "A".repeat(n)));

    let t9k = padded(9 * 1024);
    let resp = proxy.send(Req::get("/spawner/huge").abc(&t9k)).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    let t30k = padded(30 * 1024);
    let resp = proxy.send(Req::get("/spawner/huge").abc(&t30k)).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    let t40k = padded(40 * 1024);
    let head = host_head("GET", "/spawner/huge", &format!("ABCAuthorization: {t40k}\r\n"));
    let resp = exchange(proxy.addr(), head.as_bytes()).await.expect("answer");
    assert_eq!(resp.status, 431, "{}", resp.head);
    let resp = proxy.send(Req::get(&format!("/websockify?jwt_token={t9k}"))).await;
    assert_eq!(resp.status, StatusCode::URI_TOO_LONG);
    let resp = proxy.send(Req::get(&format!("/container/{t9k}/{}/x", desk.pod.port()))).await;
    assert_eq!(resp.status, StatusCode::URI_TOO_LONG);
    let t6k = padded(6 * 1024);
    let resp = proxy.send(Req::get(&format!("/container/{t6k}/{}/x", desk.pod.port()))).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    let resp = proxy.send(Req::get("/spawner/after").abc(&good)).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(desk.hits_except(&["spawner"]), 0);
    assert_eq!(desk.up("spawner").hits(), 1);
    no_panic(&proxy);
    proxy.finish();
}

/// Whitespace and control characters around and inside a token: surrounding spaces and a
/// `Bearer ` prefix (any case) are forgiven, anything inside a token is 401, raw control
/// characters are 400 from the parser, percent-encoded ones 401; nothing is logged.
#[tokio::test]
async fn tokens_with_whitespace_and_control_characters() {
    let (desk, proxy) = setup(&[]).await;
    let good = proxy.mint("127.0.0.1");
    let (a, b) = good.split_at(good.len() / 2);
    let accepted =
        [format!("  {good}  "), format!("Bearer {good}"), format!("bEaReR    {good}"), format!("\t{good}\t")];
    for value in &accepted {
        let resp = proxy.send(Req::get("/spawner/ws").abc(value)).await;
        assert_eq!(resp.status, StatusCode::OK, "{:?} refused", value.replace(&good, "<TOKEN>"));
    }
    let refused = [
        format!("{a} {b}"),
        format!("{a}\t{b}"),
        format!("{a}\u{80}{b}"),
        "Bearer".to_owned(),
        format!("Bearer{good}"),
        format!("{good}{good}"),
        format!("{good},{good}"),
        format!("{good}."),
        format!(".{good}"),
    ];
    for value in &refused {
        proxy.secret(value);
        let req = Req::get("/spawner/ws");
        // A non-ASCII byte cannot go through the client's header API; send it raw.
        if !value.is_ascii() {
            let head = format!("GET /spawner/ws HTTP/1.1\r\nHost: d\r\nABCAuthorization: {value}\r\n\r\n");
            let resp = exchange(proxy.addr(), head.as_bytes()).await.expect("answer");
            assert_eq!(resp.status, 401, "{}", resp.head);
            proxy.expect_access("GET", "/spawner/ws", 401);
            continue;
        }
        let resp = proxy.send(req.abc(value)).await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{:?} accepted", value.replace(&good, "<TOKEN>"));
    }
    for raw in [format!("{a}\x01{b}"), format!("{a}\r\n{b}"), format!("{a}\x7f{b}"), format!("{a}\0{b}")] {
        proxy.secret(&raw);
        let head = format!("GET /spawner/raw HTTP/1.1\r\nHost: d\r\nABCAuthorization: {raw}\r\n\r\n");
        let resp = exchange(proxy.addr(), head.as_bytes()).await;
        assert!(resp.as_ref().is_some_and(|r| matches!(r.status, 400 | 401)), "{resp:?}");
        if let Some(r) = resp.filter(|r| r.status == 401) {
            proxy.expect_access("GET", "/spawner/raw", r.status);
        }
    }
    for query in [
        format!("jwt_token=%20{good}"),
        format!("jwt_token={good}%00"),
        format!("jwt_token={a}%0A{b}"),
        format!("jwt_token={a}+{b}"),
        format!("jwt_token={good}%20"),
    ] {
        let handshake = proxy.ws(&format!("/websockify?{query}"), &[]).await;
        assert!(
            matches!(handshake, Handshake::Refused(StatusCode::UNAUTHORIZED)),
            "{:?} accepted",
            query.replace(&good, "<TOKEN>")
        );
    }
    assert_eq!(desk.up("spawner").hits(), accepted.len());
    assert_eq!(desk.hits_except(&["spawner"]), 0);
    no_panic(&proxy);
    proxy.finish();
}

/// The pyos-minted vectors, mangled: every mangling of a token is 401 whatever the vector's
/// verdict, through the header, the raw query of `/terminals/<id>` and the container path.
#[tokio::test]
async fn mangled_vectors_are_all_refused() {
    let vectors_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");
    let text = std::fs::read_to_string(format!("{vectors_dir}/tokens.json")).expect("tokens.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    let set = "rsa1024-pkcs1";
    let keys = route_mint::KeySet::read_dir(std::path::Path::new(&format!("{vectors_dir}/keys/{set}")))
        .expect("keys");
    let desk = Desk::start().await;
    let proxy = Proxy::start(&desk.manifest(&keys)).await;
    let pod = desk.pod.port();
    let mut sent = 0;
    for v in doc["tokens"].as_array().expect("tokens") {
        if !v["name"].as_str().unwrap_or("").starts_with(&format!("{set}/")) {
            continue;
        }
        let token = proxy.secret(v["token"].as_str().expect("token"));
        if token.len() < 16 {
            continue;
        }
        let parts: Vec<&str> = token.split('.').collect();
        let mut mangled = vec![
            format!("{token}x"),
            token[..token.len() - 1].to_owned(),
            format!("{}.{}", parts[0], parts.get(1).copied().unwrap_or("")),
            token.replacen('.', "..", 1),
            token.to_ascii_uppercase(),
        ];
        if parts.len() == 3 {
            mangled.push(format!("{}.{}.{}", parts[0], parts[1], parts[1]));
            mangled.push(format!("{}.{}.{}", parts[1], parts[0], parts[2]));
        }
        for m in &mangled {
            // A mangling that keeps the JWS shape could pass for a token: it must not be logged.
            if m.matches('.').count() == 2 {
                proxy.secret(m);
            }
            let resp = proxy.send(Req::get("/spawner/v").abc(m)).await;
            assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{} mangled, via the header", v["name"]);
            let resp = proxy.send(Req::get(&format!("/terminals/1?{m}"))).await;
            assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{} mangled, via the raw query", v["name"]);
            let resp = proxy.send(Req::get(&format!("/container/{m}/{pod}/v"))).await;
            // `..` in a path segment is a dot-segment only when it is the whole segment.
            assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{} mangled, via the path", v["name"]);
            sent += 3;
        }
    }
    assert!(sent > 100);
    assert_eq!(desk.hits_except(&[]), 0, "a mangled vector reached an upstream");
    no_panic(&proxy);
    proxy.finish();
}

/// Requests over HTTP/2 (prior knowledge on the plain listener) get the same refusals.
#[tokio::test]
async fn http2_requests_get_the_same_refusals() {
    use http_body_util::Empty;
    let (desk, proxy) = setup(&[]).await;
    let token = proxy.mint("127.0.0.1");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<bytes::Bytes>>();
    let addr: SocketAddr = proxy.addr();
    let mut statuses = Vec::new();
    for (method, path) in [
        (Method::GET, "/spawner/../API/x"),
        (Method::GET, "/spawner/%2e%2e/API/x"),
        (Method::GET, "//API/x"),
        (Method::CONNECT, "/"),
        (Method::GET, "/spawner/h2"),
    ] {
        let request = http::Request::builder()
            .method(method.clone())
            .uri(format!("http://{addr}{path}"))
            .header("ABCAuthorization", &token)
            .body(Empty::new())
            .unwrap();
        let resp = support::within(STEP, "an HTTP/2 answer", client.request(request)).await;
        let status = resp.map(|r| r.status());
        // CONNECT has no path to find in the access log.
        if let (Ok(s), false) = (&status, method == Method::CONNECT) {
            proxy.expect_access(method.as_str(), path, s.as_u16());
        }
        statuses.push((path, status.map_err(|e| e.to_string())));
    }
    assert_eq!(statuses[0].1.as_ref().ok(), Some(&StatusCode::BAD_REQUEST), "{statuses:?}");
    assert_eq!(statuses[1].1.as_ref().ok(), Some(&StatusCode::BAD_REQUEST), "{statuses:?}");
    assert_eq!(statuses[2].1.as_ref().ok(), Some(&StatusCode::BAD_REQUEST), "{statuses:?}");
    assert_ne!(statuses[3].1.as_ref().ok(), Some(&StatusCode::OK), "{statuses:?}");
    assert_eq!(statuses[4].1.as_ref().ok(), Some(&StatusCode::OK), "{statuses:?}");
    assert_eq!(desk.hits_except(&["spawner"]), 0);
    no_panic(&proxy);
    proxy.finish();
}
