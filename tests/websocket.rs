//! WebSocket echo through every WebSocket endpoint of contract.md section 3, checking the path
//! the upstream saw, the upgrade headers, the 401s of the handshake, idle timeouts and the
//! open-tunnel gauge.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use http::StatusCode;
use serde_json::json;
use support::ws::{self, Handshake};
use support::{Desk, Proxy, STEP, assert_forwarded, keys, metric, mint_expired};
use tokio_tungstenite::tungstenite::Message;

const HOST: &str = "desktop.example.com";

/// Opens a tunnel, runs the echo, and returns what the upstream saw.
async fn echo(proxy: &Proxy, path_and_query: &str, headers: &[(&str, &str)]) -> support::Seen {
    let mut all = vec![("Host", HOST), ("Origin", "https://desktop.example.com")];
    all.extend_from_slice(headers);
    match proxy.ws(path_and_query, &all).await {
        Handshake::Open(mut socket, response_headers) => {
            assert!(response_headers.get("server").is_none(), "a Server header on the 101");
            let seen = ws::greet_and_echo(&mut socket).await;
            assert!(seen.websocket);
            assert_forwarded(&seen, "http", HOST);
            assert_eq!(seen.header("origin"), Some("https://desktop.example.com"), "Origin passed through");
            assert_eq!(seen.header("upgrade").map(str::to_ascii_lowercase).as_deref(), Some("websocket"));
            assert!(
                seen.header("connection").is_some_and(|c| c.to_ascii_lowercase().contains("upgrade")),
                "Connection: upgrade sent upstream"
            );
            assert!(seen.has_header("sec-websocket-key") && seen.has_header("sec-websocket-version"));
            assert_eq!(seen.version, "HTTP/1.1");
            seen
        }
        Handshake::Refused(status) => {
            panic!("{} refused with {status}", path_and_query.split('?').next().unwrap_or(""))
        }
    }
}

/// A WebSocket row: `make(token)` is the request path and query; the tunnel echoes through
/// `upstream`, which saw `expect(token)`; nothing else is reached.
async fn ws_row(make: impl Fn(&str, u16) -> String, upstream: &str, expect: impl Fn(&str, u16) -> String) {
    let desk = Desk::start().await;
    let proxy = Proxy::start(&desk.manifest(keys())).await;
    let t = proxy.mint("127.0.0.1");
    let port = desk.pod.port();
    let request = make(&t, port);
    let seen = echo(&proxy, &request, &[]).await;
    let shown = redact(&request, &[&t]);
    assert_eq!(seen.upstream, upstream, "{shown} reached the wrong upstream");
    let want_port = if upstream == "pod" { port } else { desk.up(upstream).port() };
    assert_eq!(seen.port, want_port, "{shown}: port");
    let want = expect(&t, port);
    assert!(
        seen.uri == want,
        "{shown}: the upstream saw {} instead of {}",
        redact(&seen.uri, &[&t]),
        redact(&want, &[&t])
    );
    let others = if upstream == "pod" { desk.hits_except(&["pod"]) } else { desk.hits_except(&[upstream]) };
    assert_eq!(others, 0, "{shown}: another upstream was reached");

    // The Bearer fallback works on every WebSocket endpoint too (without the token in the URL).
    let bare = request.split('?').next().unwrap_or_default();
    if !bare.contains("/container/") {
        let bearer = format!("Bearer {t}");
        let seen = echo(&proxy, bare, &[("Authorization", &bearer)]).await;
        assert_eq!(seen.upstream, upstream, "{shown} with Bearer");
    }
    proxy.finish();
}

#[tokio::test]
async fn ws_terminals_raw_query() {
    ws_row(|t, _| format!("/terminals/8f3a?{t}"), "terminals", |t, _| format!("/terminals/8f3a?{t}")).await;
}

#[tokio::test]
async fn ws_websockify_jwt_token() {
    ws_row(|t, _| format!("/websockify?jwt_token={t}"), "websockify", |_, _| "/".into()).await;
}

#[tokio::test]
async fn ws_websockify_raw_query() {
    ws_row(|t, _| format!("/websockify?{t}"), "websockify", |_, _| "/".into()).await;
}

#[tokio::test]
async fn ws_signalling() {
    ws_row(|t, _| format!("/signalling?jwt_token={t}"), "signalling", |_, _| "/".into()).await;
}

#[tokio::test]
async fn ws_broadcast_keeps_its_path() {
    ws_row(
        |t, _| format!("/broadcast?jwt_token={t}"),
        "broadcast",
        |t, _| format!("/broadcast?jwt_token={t}"),
    )
    .await;
}

#[tokio::test]
async fn ws_sound() {
    ws_row(|t, _| format!("/sound?jwt_token={t}"), "sound", |_, _| "/".into()).await;
}

#[tokio::test]
async fn ws_microphone() {
    ws_row(|t, _| format!("/microphone?jwt_token={t}"), "microphone", |_, _| "/".into()).await;
}

#[tokio::test]
async fn ws_gamepad() {
    ws_row(|t, _| format!("/gamepad?jwt_token={t}"), "gamepad", |_, _| "/".into()).await;
}

#[tokio::test]
async fn ws_container_token_port_rest() {
    ws_row(|t, p| format!("/container/{t}/{p}/vnc/ws?x=1"), "pod", |_, _| "/vnc/ws?x=1".into()).await;
}

#[tokio::test]
async fn ws_container_token_port() {
    ws_row(|t, p| format!("/container/{t}/{p}"), "pod", |_, _| "/".into()).await;
}

#[tokio::test]
async fn ws_container_port_with_header() {
    let desk = Desk::start().await;
    let proxy = Proxy::start(&desk.manifest(keys())).await;
    let t = proxy.mint("127.0.0.1");
    let port = desk.pod.port();
    let seen = echo(&proxy, &format!("/container/{port}/ws"), &[("ABCAuthorization", &t)]).await;
    assert_eq!((seen.upstream.as_str(), seen.uri), ("pod", format!("/container/{port}/ws")));
    proxy.finish();
}

fn redact(text: &str, tokens: &[&str]) -> String {
    tokens.iter().fold(text.to_owned(), |text, t| text.replace(t, "<TOKEN>"))
}

#[tokio::test]
async fn websocket_handshakes_without_a_valid_token_get_401() {
    let desk = Desk::start().await;
    let proxy = Proxy::start(&desk.manifest(keys())).await;
    let expired = proxy.secret(&mint_expired("127.0.0.1"));
    let foreign = proxy.secret(&support::mint_with(support::other_keys(), "127.0.0.1", 420));
    let port = desk.pod.port();
    let mut cases = vec![
        "/terminals/8f3a".to_owned(),
        "/websockify".to_owned(),
        "/signalling?jwt_token=".to_owned(),
        "/broadcast".to_owned(),
        format!("/container/{port}/ws"),
    ];
    for t in [&expired, &foreign] {
        cases.extend([
            format!("/terminals/8f3a?{t}"),
            format!("/websockify?jwt_token={t}"),
            format!("/signalling?jwt_token={t}"),
            format!("/broadcast?jwt_token={t}"),
            format!("/sound?jwt_token={t}"),
            format!("/microphone?jwt_token={t}"),
            format!("/gamepad?jwt_token={t}"),
            format!("/container/{t}/{port}/ws"),
        ]);
    }
    for path in &cases {
        match proxy.ws(path, &[]).await {
            Handshake::Refused(status) => {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", redact(path, &[&expired, &foreign]));
            }
            Handshake::Open(..) => {
                panic!("opened without a valid token: {}", redact(path, &[&expired, &foreign]))
            }
        }
    }
    assert_eq!(desk.hits_except(&[]), 0, "a refused handshake reached an upstream");
    proxy.finish();
}

#[tokio::test]
async fn open_tunnels_are_counted_and_idle_ones_are_closed() {
    let desk = Desk::start().await;
    let m = desk.manifest(keys()).route(json!({"name": "websockify", "idleTimeoutSeconds": 1}));
    let proxy = Proxy::start(&m).await;
    let t = proxy.mint("127.0.0.1");

    // An active tunnel outlives the idle timeout.
    let Handshake::Open(mut active, _) = proxy.ws(&format!("/websockify?jwt_token={t}"), &[]).await else {
        panic!("refused")
    };
    let _greeting = support::within(STEP, "greeting", active.next()).await;
    let open = metric(&proxy.metrics().await, "route_websockets_open");
    assert_eq!(open, Some(1.0), "route_websockets_open with one tunnel");
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        active.send(Message::text("ping")).await.expect("an active tunnel was closed");
        let echo = support::within(STEP, "echo", active.next()).await;
        assert!(matches!(echo, Some(Ok(Message::Text(_)))), "an active tunnel was closed: {echo:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop(active);
    support::eventually(STEP, "route_websockets_open back to 0", || async {
        (metric(&proxy.metrics().await, "route_websockets_open") == Some(0.0)).then_some(())
    })
    .await;

    // A silent one is closed after about a second.
    let Handshake::Open(mut idle, _) = proxy.ws(&format!("/websockify?jwt_token={t}"), &[]).await else {
        panic!("refused")
    };
    let _greeting = support::within(STEP, "greeting", idle.next()).await;
    let started = Instant::now();
    let end = support::within(Duration::from_secs(10), "the idle tunnel is closed", async {
        loop {
            match idle.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            }
        }
    });
    end.await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(800), "closed too early: {elapsed:?}");
    proxy.finish();
}

#[tokio::test]
async fn subprotocols_and_upstream_refusals_pass_through() {
    let desk = Desk::start().await;
    let m = desk.manifest(keys()).route(json!({"name": "signalling", "readTimeoutSeconds": 1}));
    let proxy = Proxy::start(&m).await;
    let t = proxy.mint("127.0.0.1");

    // noVNC asks for the `binary` subprotocol; the upstream's choice comes back.
    let path = format!("/websockify?jwt_token={t}");
    match proxy.ws(&path, &[("Sec-WebSocket-Protocol", "binary, base64")]).await {
        Handshake::Open(mut socket, headers) => {
            assert_eq!(headers.get("sec-websocket-protocol").and_then(|v| v.to_str().ok()), Some("binary"));
            let seen = ws::greet_and_echo(&mut socket).await;
            assert_eq!(seen.header("sec-websocket-protocol"), Some("binary, base64"));
        }
        Handshake::Refused(status) => panic!("refused with {status}"),
    }

    // An upstream that refuses the upgrade: its status reaches the client.
    match proxy.ws(&format!("/sound?jwt_token={t}"), &[("X-Test-Status", "403")]).await {
        Handshake::Refused(status) => assert_eq!(status, StatusCode::FORBIDDEN),
        Handshake::Open(..) => panic!("opened although the upstream refused"),
    }

    // An upstream that never answers the upgrade: 504 after the route's read timeout.
    desk.up("signalling").set_behavior(support::Behavior::Hang);
    let started = Instant::now();
    match proxy.ws(&format!("/signalling?jwt_token={t}"), &[]).await {
        Handshake::Refused(status) => assert_eq!(status, StatusCode::GATEWAY_TIMEOUT),
        Handshake::Open(..) => panic!("opened although the upstream hangs"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "504 after {:?}", started.elapsed());
    proxy.finish();
}
