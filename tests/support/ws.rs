//! WebSocket: the upstream's echo (tokio-tungstenite on a hyper upgrade) and a client.
//!
//! On connect, the echo server first sends one text message, the JSON of the upgrade request
//! it saw (so the client learns through the tunnel which path reached which upstream), then
//! echoes every text and binary message back.

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::upstream::Seen;
use super::{STEP, within};

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Answers the upgrade with 101 and spawns the echo on the upgraded connection.
pub fn accept(mut req: Request<Incoming>, seen: Value) -> Response<Full<Bytes>> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Full::new(Bytes::from_static(b"no sec-websocket-key")))
            .expect("response");
    };
    let offered =
        req.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        if ws.send(Message::text(seen.to_string())).await.is_err() {
            return;
        }
        while let Some(Ok(msg)) = ws.next().await {
            let reply = match msg {
                Message::Text(_) | Message::Binary(_) => msg,
                Message::Close(_) => break,
                _ => continue,
            };
            if ws.send(reply).await.is_err() {
                break;
            }
        }
    });
    let mut response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::CONNECTION, "Upgrade")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
        .header("server", "recording-upstream/1.0");
    // The first subprotocol offered is chosen (noVNC offers `binary`).
    if let Some(protocol) = offered.as_deref().and_then(|p| p.split(',').next()) {
        response = response.header("sec-websocket-protocol", protocol.trim());
    }
    response.body(Full::new(Bytes::new())).expect("response")
}

/// The outcome of a client handshake through the proxy.
pub enum Handshake {
    /// 101: the tunnel is open; the response's headers are kept.
    Open(Box<Client>, http::HeaderMap),
    /// Refused with this status.
    Refused(StatusCode),
}

/// Opens a WebSocket to `ws://<addr><path_and_query>` with extra request headers.
pub async fn connect(
    addr: std::net::SocketAddr,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Handshake {
    let url = format!("ws://{addr}{path_and_query}");
    let mut request = url.into_client_request().expect("ws request");
    for (k, v) in headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            http::HeaderValue::from_str(v).expect("header value"),
        );
    }
    let stream = within(STEP, "connect to proxy", TcpStream::connect(addr)).await.expect("connect");
    let handshake = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream));
    match within(STEP, "websocket handshake", handshake).await {
        Ok((ws, response)) => Handshake::Open(Box::new(ws), response.headers().clone()),
        Err(tungstenite::Error::Http(response)) => Handshake::Refused(response.status()),
        Err(e) => panic!(
            "websocket handshake to {path_and_query_redacted} failed: {e}",
            path_and_query_redacted = redact_query(path_and_query)
        ),
    }
}

fn redact_query(pq: &str) -> &str {
    pq.split_once('?').map_or(pq, |(p, _)| p)
}

/// Reads the echo server's greeting (what the upstream saw), then checks a text and a binary
/// round trip through the tunnel, then closes. Returns what the upstream saw.
pub async fn greet_and_echo<S>(ws: &mut WebSocketStream<S>) -> Seen
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let greeting =
        within(STEP, "websocket greeting", ws.next()).await.expect("greeting").expect("greeting ok");
    let Message::Text(text) = greeting else { panic!("greeting is not text: {greeting:?}") };
    let seen = Seen::from_json(&serde_json::from_str(text.as_str()).expect("greeting json"))
        .expect("greeting shape");

    ws.send(Message::text("hello through the tunnel")).await.expect("send text");
    let echo = within(STEP, "text echo", ws.next()).await.expect("echo").expect("echo ok");
    assert_eq!(echo, Message::text("hello through the tunnel"));

    let payload: Vec<u8> = (0..300_000_u32).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(payload.clone())).await.expect("send binary");
    let echo = within(STEP, "binary echo", ws.next()).await.expect("echo").expect("echo ok");
    assert_eq!(echo.into_data().as_ref(), payload.as_slice(), "binary echo differs");

    within(STEP, "websocket close", ws.close(None)).await.ok();
    seen
}
