//! Adversarial requests against the real binary, each with the answer a hardened proxy gives
//! and a check that nothing reached an upstream that should not have: request smuggling,
//! oversized and slow requests, connection floods. Path tricks, request targets and tokens are
//! in `tests/adversarial_routing.rs`.
//!
//! Every test ends with `finish()`, which fails when a token the test used reached a log line,
//! and with `no_panic`. docs/reliability.md has the table of these cases.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use support::hostile::{host_head, no_panic, setup, still_serves};
use support::raw::{Ended, RawConn, exchange};
use support::ws::Handshake;
use support::{Desk, Proxy, STEP, keys, metric_sum};

// ---------------------------------------------------------------------------------------------
// Request smuggling

/// Content-Length with Transfer-Encoding (CL.TE and TE.CL): chunked wins (RFC 9112, 6.3), the
/// Content-Length is dropped, the upstream gets one request with the body re-framed, and the
/// connection is closed after the answer, so the smuggled tail is never read as a request.
#[tokio::test]
async fn content_length_with_transfer_encoding_never_smuggles_a_request() {
    let (desk, proxy) = setup(&[]).await;
    let token = proxy.mint("127.0.0.1");
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    // CL.TE: a front end reading Content-Length would forward the tail as a second request.
    let body = format!("0\r\n\r\n{smuggled}");
    let head = format!(
        "POST /spawner/cl-te HTTP/1.1\r\nHost: d\r\nABCAuthorization: {token}\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        body.len()
    );
    let mut conn = RawConn::connect(proxy.addr()).await;
    conn.send(format!("{head}{body}").as_bytes()).await;
    let resp = conn.response(STEP).await.expect("an answer");
    assert!(matches!(resp.status, 200 | 400), "CL.TE answered {}", resp.head);
    assert!(matches!(conn.ended(STEP).await, Ended::Closed), "the connection stayed open after CL+TE");
    // TE.CL: a chunk whose data holds a request, and a short Content-Length.
    let inner = format!("{smuggled}\r\n");
    let body = format!("{:x}\r\n{inner}\r\n0\r\n\r\n", inner.len());
    let head = format!(
        "POST /spawner/te-cl HTTP/1.1\r\nHost: d\r\nABCAuthorization: {token}\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
    );
    let mut conn = RawConn::connect(proxy.addr()).await;
    conn.send(format!("{head}{body}").as_bytes()).await;
    let resp = conn.response(STEP).await.expect("an answer");
    assert!(matches!(resp.status, 200 | 400), "TE.CL answered {}", resp.head);
    assert!(matches!(conn.ended(STEP).await, Ended::Closed), "the connection stayed open after TE+CL");

    let spawner = desk.up("spawner").seen();
    for seen in &spawner {
        assert!(!seen.has_header("content-length") || seen.header("transfer-encoding").is_none());
    }
    if let Some(seen) = spawner.iter().find(|s| s.uri == "/spawner/te-cl") {
        assert_eq!(seen.body_len, inner.len() as u64, "the chunked body was not what arrived");
    }
    let heads: Vec<String> = desk.upstreams.values().flat_map(|u| u.heads()).collect();
    assert!(
        heads.iter().all(|h| !h.contains("smuggled")),
        "a smuggled request reached an upstream: {heads:?}"
    );
    assert!(spawner.len() <= 2, "more requests than sent reached the spawner: {}", spawner.len());
    assert_eq!(desk.hits_except(&["spawner"]), 0);
    still_serves(&proxy).await;
    no_panic(&proxy);
    proxy.finish();
}

/// Two different Content-Lengths, a folded header, a Transfer-Encoding the proxy cannot
/// forward, chunked on HTTP/1.0, two Host lines, no Host: refused, nothing upstream.
#[tokio::test]
async fn ambiguous_framing_is_refused_before_any_upstream() {
    let (desk, proxy) = setup(&[]).await;
    let token = proxy.mint("127.0.0.1");
    let auth = format!("ABCAuthorization: {token}\r\n");
    let cases = [
        (
            "two Content-Lengths",
            format!(
                "POST /spawner/a HTTP/1.1\r\nHost: d\r\n{auth}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
            ),
            400,
        ),
        (
            "obsolete line folding",
            format!("GET /spawner/a HTTP/1.1\r\nHost: d\r\n{auth}X-Folded: a\r\n  b\r\n\r\n"),
            400,
        ),
        (
            "folded Transfer-Encoding",
            format!(
                "POST /spawner/a HTTP/1.1\r\nHost: d\r\n{auth}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"
            ),
            400,
        ),
        (
            "gzip, chunked",
            format!(
                "POST /spawner/a HTTP/1.1\r\nHost: d\r\n{auth}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
            ),
            501,
        ),
        (
            "chunked twice",
            format!(
                "POST /spawner/a HTTP/1.1\r\nHost: d\r\n{auth}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
            501,
        ),
        (
            "identity",
            format!(
                "POST /spawner/a HTTP/1.1\r\nHost: d\r\n{auth}Transfer-Encoding: identity\r\nContent-Length: 1\r\n\r\nx"
            ),
            400,
        ),
        (
            "chunked on HTTP/1.0",
            format!(
                "POST /spawner/a HTTP/1.0\r\nHost: d\r\n{auth}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
            400,
        ),
        ("two Host lines", format!("GET /spawner/a HTTP/1.1\r\nHost: d\r\nHost: e\r\n{auth}\r\n"), 400),
        ("no Host", format!("GET /spawner/a HTTP/1.1\r\n{auth}\r\n"), 400),
        (
            "space before colon",
            format!("GET /spawner/a HTTP/1.1\r\nHost: d\r\n{auth}Content-Length : 5\r\n\r\nhello"),
            400,
        ),
        ("bare CR", format!("GET /spawner/a HTTP/1.1\r\nHost: d\r\n{auth}X: a\rb\r\n\r\n"), 400),
        ("NUL in a header", format!("GET /spawner/a HTTP/1.1\r\nHost: d\r\n{auth}X: a\0b\r\n\r\n"), 400),
        (
            "negative Content-Length",
            format!("POST /spawner/a HTTP/1.1\r\nHost: d\r\n{auth}Content-Length: -1\r\n\r\n"),
            400,
        ),
        (
            "Content-Length with a plus",
            format!("POST /spawner/a HTTP/1.1\r\nHost: d\r\n{auth}Content-Length: +1\r\n\r\nx"),
            400,
        ),
        (
            "chunk size overflow",
            format!(
                "POST /spawner/a HTTP/1.1\r\nHost: d\r\n{auth}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nx\r\n0\r\n\r\n"
            ),
            400,
        ),
    ];
    for (what, bytes, want) in cases {
        let resp = exchange(proxy.addr(), bytes.as_bytes()).await;
        let status = resp.as_ref().map(|r| r.status);
        // A chunk-size error comes after the head was accepted: the upstream may have the head.
        if what == "chunk size overflow" {
            assert!(status.is_none() || status != Some(200), "{what}: {status:?}");
            continue;
        }
        assert_eq!(status, Some(want), "{what}: {:?}", resp.map(|r| r.head));
    }
    let spawner_complete = desk.up("spawner").seen().iter().filter(|s| s.complete && s.body_len > 0).count();
    assert_eq!(spawner_complete, 0, "a refused body reached the spawner");
    assert!(desk.up("spawner").hits() <= 1, "refused requests reached the spawner");
    assert_eq!(desk.hits_except(&["spawner"]), 0);
    still_serves(&proxy).await;
    no_panic(&proxy);
    proxy.finish();
}

/// Bare LF line ends are read as line ends (RFC 9112, 2.2, as nginx does); the request goes
/// upstream re-written with CRLF, once, and nothing hides behind a lone LF.
#[tokio::test]
async fn bare_lf_is_one_request_rewritten_with_crlf() {
    let (desk, proxy) = setup(&[]).await;
    let token = proxy.mint("127.0.0.1");
    let bytes = format!("GET /spawner/lf HTTP/1.1\nHost: d\nABCAuthorization: {token}\nX-A: 1\n\n");
    let resp = exchange(proxy.addr(), bytes.as_bytes()).await.expect("an answer");
    assert!(matches!(resp.status, 200 | 400), "{}", resp.head);
    if resp.status == 200 {
        let seen = desk.up("spawner").last();
        assert_eq!(seen.uri, "/spawner/lf");
        assert_eq!(seen.header("x-a"), Some("1"));
    }
    // A header hidden behind a lone LF inside a value is its own header line or an error,
    // never a second request.
    let bytes = format!(
        "GET /spawner/lf2 HTTP/1.1\r\nHost: d\r\nABCAuthorization: {token}\r\nX-B: 1\nGET /smuggled HTTP/1.1\r\n\r\n"
    );
    let resp = exchange(proxy.addr(), bytes.as_bytes()).await;
    assert!(resp.as_ref().is_none_or(|r| r.status != 404), "{resp:?}");
    let heads: Vec<String> = desk.upstreams.values().flat_map(|u| u.heads()).collect();
    assert!(heads.iter().all(|h| !h.contains("smuggled")), "{heads:?}");
    assert_eq!(desk.hits_except(&["spawner"]), 0);
    no_panic(&proxy);
    proxy.finish();
}

// ---------------------------------------------------------------------------------------------
// Size and count limits

#[tokio::test]
async fn oversized_request_lines_and_heads_get_414_and_431() {
    let (desk, proxy) =
        setup(&["--max-header-bytes", "16384", "--max-uri-bytes", "4096", "--max-headers", "50"]).await;
    let token = proxy.mint("127.0.0.1");
    let auth = format!("ABCAuthorization: {token}\r\n");

    let long_path = format!("/spawner/{}", "a".repeat(5000));
    let resp = exchange(proxy.addr(), host_head("GET", &long_path, &auth).as_bytes()).await.expect("answer");
    assert_eq!(resp.status, 414, "{}", resp.head);
    let long_query = format!("/spawner?{}", "q=1&".repeat(1500));
    let resp = exchange(proxy.addr(), host_head("GET", &long_query, &auth).as_bytes()).await.expect("answer");
    assert_eq!(resp.status, 414, "{}", resp.head);

    let big = format!("{auth}X-Big: {}\r\n", "b".repeat(20_000));
    let resp = exchange(proxy.addr(), host_head("GET", "/spawner/x", &big).as_bytes()).await.expect("answer");
    assert_eq!(resp.status, 431, "{}", resp.head);
    // A head that never ends: cut at the limit, not buffered on.
    let endless = format!("GET /spawner/x HTTP/1.1\r\nHost: d\r\nX-Endless: {}", "e".repeat(100_000));
    let resp = exchange(proxy.addr(), endless.as_bytes()).await.expect("answer");
    assert_eq!(resp.status, 431, "{}", resp.head);

    let many: String = (0..60).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let resp = exchange(proxy.addr(), host_head("GET", "/spawner/x", &format!("{auth}{many}")).as_bytes())
        .await
        .expect("answer");
    assert_eq!(resp.status, 431, "{}", resp.head);

    // Under every limit: served.
    let some: String = (0..40).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let fine = host_head("GET", &format!("/spawner/{}", "a".repeat(3000)), &format!("{auth}{some}"));
    let resp = exchange(proxy.addr(), fine.as_bytes()).await.expect("answer");
    assert_eq!(resp.status, 200, "{}", resp.head);
    proxy.expect_access("GET", &format!("/spawner/{}", "a".repeat(3000)), 200);
    assert_eq!(desk.up("spawner").hits(), 1, "an oversized request reached the spawner");
    assert_eq!(desk.hits_except(&["spawner"]), 0);
    no_panic(&proxy);
    proxy.finish();
}

// ---------------------------------------------------------------------------------------------
// Slow clients

/// A head sent a byte at a time is cut at the header read timeout (the clock does not restart
/// with each byte), and a connection that never sends a byte is closed at the same deadline.
#[tokio::test]
async fn slow_and_silent_heads_are_cut_at_the_header_read_timeout() {
    let desk = Desk::start().await;
    let m = desk.manifest(keys()).set_in("limits", "headerReadTimeoutSeconds", serde_json::json!(1));
    let proxy = Proxy::start(&m).await;

    let started = Instant::now();
    let mut drip = RawConn::connect(proxy.addr()).await;
    let head =
        b"GET /healthz HTTP/1.1\r\nHost: d\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut cut = None;
    for byte in head {
        drip.send(&[*byte]).await;
        if let Ended::Closed = drip.ended(Duration::from_millis(100)).await {
            cut = Some(started.elapsed());
            break;
        }
    }
    let cut = cut.expect("a head sent a byte every 100 ms was never cut");
    assert!(cut < Duration::from_secs(3), "cut after {cut:?}");

    let started = Instant::now();
    let mut silent = RawConn::connect(proxy.addr()).await;
    let ended = silent.ended(Duration::from_secs(10)).await;
    let took = started.elapsed();
    assert!(matches!(ended, Ended::Closed), "a silent connection was held 10 s");
    assert!(took >= Duration::from_millis(800) && took < Duration::from_secs(4), "closed after {took:?}");

    // An HTTP/2 preface that stops half-way is cut too.
    let mut half = RawConn::connect(proxy.addr()).await;
    half.send(b"PRI * HTTP/2.0\r\n").await;
    assert!(matches!(half.ended(Duration::from_secs(10)).await, Ended::Closed), "half a preface held");
    still_serves(&proxy).await;
    assert_eq!(desk.hits_except(&[]), 0);
    no_panic(&proxy);
    proxy.finish();
}

/// A body that stops coming is cut after `--body-idle-timeout`: the client gets 408 and the
/// upstream never sees the body complete.
#[tokio::test]
async fn a_stalled_body_is_cut_with_408() {
    let (desk, proxy) = setup(&["--body-idle-timeout", "1"]).await;
    let token = proxy.mint("127.0.0.1");
    let mut conn = RawConn::connect(proxy.addr()).await;
    let head = format!(
        "POST /spawner/slow-body HTTP/1.1\r\nHost: d\r\nABCAuthorization: {token}\r\nContent-Length: 1000\r\n\r\n"
    );
    conn.send(head.as_bytes()).await;
    conn.send(&[b'x'; 100]).await;
    let started = Instant::now();
    let resp = conn.response(Duration::from_secs(10)).await.expect("an answer to a stalled body");
    let took = started.elapsed();
    assert_eq!(resp.status, 408, "{}", resp.head);
    assert!(took >= Duration::from_millis(800) && took < Duration::from_secs(4), "408 after {took:?}");
    proxy.expect_access("POST", "/spawner/slow-body", 408);
    let seen = desk.up("spawner").wait_seen(1, STEP).await;
    assert!(!seen[0].complete || seen[0].body_len < 1000, "the upstream saw a whole body");

    // A slow but steady body is not cut: 10 x 100 bytes, one every 300 ms.
    let mut conn = RawConn::connect(proxy.addr()).await;
    let head = format!(
        "POST /spawner/steady HTTP/1.1\r\nHost: d\r\nABCAuthorization: {token}\r\nContent-Length: 1000\r\n\r\n"
    );
    conn.send(head.as_bytes()).await;
    for _ in 0..10 {
        conn.send(&[b'y'; 100]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let resp = conn.response(STEP).await.expect("an answer");
    assert_eq!(resp.status, 200, "{}", resp.head);
    proxy.expect_access("POST", "/spawner/steady", 200);
    no_panic(&proxy);
    proxy.finish();
}

// ---------------------------------------------------------------------------------------------
// Connection floods

async fn refused_with_503(conn: &mut RawConn) -> bool {
    match conn.response(STEP).await {
        Some(resp) => resp.status == 503,
        None => true,
    }
}

/// Connections from one address past `--max-connections-per-ip` get 503 and are closed;
/// another address is not affected, and a freed slot is usable again.
#[tokio::test]
async fn connections_per_client_address_are_limited() {
    let (_desk, proxy) = setup(&["--max-connections-per-ip", "4"]).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(RawConn::connect(proxy.addr()).await);
    }
    // Each of the four is served (one request each, the connection kept).
    for conn in &mut held {
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: d\r\n\r\n").await;
        assert_eq!(conn.response(STEP).await.expect("answer").status, 200);
        proxy.expect_access("GET", "/healthz", 200);
    }
    let mut fifth = RawConn::connect(proxy.addr()).await;
    assert!(refused_with_503(&mut fifth).await, "a fifth connection from 127.0.0.1 was served");
    assert!(matches!(fifth.ended(STEP).await, Ended::Closed));

    let other: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let mut elsewhere = RawConn::connect_from(proxy.addr(), other).await;
    elsewhere.send(b"GET /healthz HTTP/1.1\r\nHost: d\r\n\r\n").await;
    assert_eq!(elsewhere.response(STEP).await.expect("answer").status, 200, "127.0.0.2 was refused");
    proxy.expect_access("GET", "/healthz", 200);

    drop(held.pop());
    support::eventually(STEP, "a freed slot serves again", || async {
        let mut conn = RawConn::connect(proxy.addr()).await;
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: d\r\n\r\n").await;
        let ok = conn.response(STEP).await.is_some_and(|r| r.status == 200);
        ok.then_some(())
    })
    .await;
    proxy.expect_access("GET", "/healthz", 200);
    // The admin listener has no connection limit of the public ones.
    let metrics = proxy.metrics().await;
    assert!(metric_sum(&metrics, "route_connections_refused_total", &["reason=\"per_ip\""]) >= 1.0);
    drop(held);
    no_panic(&proxy);
    proxy.finish();
}

/// Past `--max-connections` in all, WebSocket tunnels included, new connections get 503.
#[tokio::test]
async fn connections_overall_are_limited_tunnels_included() {
    let (_desk, proxy) = setup(&["--max-connections", "3"]).await;
    let token = proxy.mint("127.0.0.1");
    let Handshake::Open(mut tunnel, _) = proxy.ws(&format!("/websockify?jwt_token={token}"), &[]).await
    else {
        panic!("the tunnel was refused")
    };
    let mut a = RawConn::connect(proxy.addr()).await;
    let mut b = RawConn::connect_from(proxy.addr(), "127.0.0.3".parse().unwrap()).await;
    a.send(b"GET /healthz HTTP/1.1\r\nHost: d\r\n\r\n").await;
    b.send(b"GET /healthz HTTP/1.1\r\nHost: d\r\n\r\n").await;
    assert_eq!(a.response(STEP).await.expect("a").status, 200);
    assert_eq!(b.response(STEP).await.expect("b").status, 200);
    proxy.expect_access("GET", "/healthz", 200);
    proxy.expect_access("GET", "/healthz", 200);
    let mut c = RawConn::connect_from(proxy.addr(), "127.0.0.4".parse().unwrap()).await;
    assert!(refused_with_503(&mut c).await, "a fourth connection was served");
    // The tunnel still works, then closes and frees its slot.
    use futures_util::{SinkExt as _, StreamExt as _};
    let _greeting = support::within(STEP, "greeting", tunnel.next()).await;
    tunnel.send(tokio_tungstenite::tungstenite::Message::text("still here")).await.expect("send");
    let echo = support::within(STEP, "echo", tunnel.next()).await.expect("echo").expect("echo ok");
    assert_eq!(echo.into_text().expect("text").as_str(), "still here");
    (*tunnel).close(None).await.ok();
    drop(tunnel);
    drop(a);
    support::eventually(STEP, "slots free again", || async {
        let mut conn = RawConn::connect(proxy.addr()).await;
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: d\r\n\r\n").await;
        conn.response(STEP).await.is_some_and(|r| r.status == 200).then_some(())
    })
    .await;
    proxy.expect_access("GET", "/healthz", 200);
    no_panic(&proxy);
    proxy.finish();
}
