//! Limits and failures: 413 (a declared length over the limit answered before the upload, a
//! chunked body over the limit), 502 (closed port, unresolvable FQDN, upstream closing), 504 (an
//! upstream silent past `readTimeoutSeconds`), and a 2 GiB upload streamed through `/filer`
//! with the proxy's peak RSS under 64 MiB.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use http::{Method, StatusCode};
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use serde_json::json;
use support::client::raw_exchange;
use support::{Behavior, Manifest, Proxy, Req, Upstream, keys};

const MIB: u64 = 1024 * 1024;

async fn spawner_proxy(up: &Upstream, m: Option<Manifest>) -> Proxy {
    let m = m.unwrap_or_else(|| Manifest::new(keys())).port("spawner", up.port());
    Proxy::start(&m).await
}

#[tokio::test]
async fn declared_length_over_the_limit_is_413_before_any_upload() {
    let up = Upstream::start("spawner").await;
    let proxy = spawner_proxy(&up, None).await;
    let token = proxy.mint("127.0.0.1");
    let head = format!(
        "POST /spawner/upload HTTP/1.1\r\nHost: desktop.example.com\r\nABCAuthorization: {token}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        9 * MIB
    );
    // Not a byte of body is sent: the answer must come from the head alone.
    let started = Instant::now();
    let resp = raw_exchange(proxy.addr(), head, 0, |_| Bytes::new()).await;
    proxy.expect_access("POST", "/spawner/upload", resp.status);
    assert_eq!(resp.status, 413, "{}", resp.head);
    assert!(started.elapsed() < Duration::from_secs(5), "the 413 waited for a body");
    assert!(!resp.head.to_ascii_lowercase().contains("\r\nserver:"), "a Server header: {}", resp.head);
    assert_eq!(up.hits(), 0, "an oversized request reached the upstream");
    proxy.finish();
}

fn chunked(data_len: usize, fill: u8) -> Bytes {
    let mut out = BytesMut::with_capacity(data_len + 16);
    out.extend_from_slice(format!("{data_len:x}\r\n").as_bytes());
    out.extend_from_slice(&vec![fill; data_len]);
    out.extend_from_slice(b"\r\n");
    out.freeze()
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_413_and_never_delivered_whole() {
    let up = Upstream::start("spawner").await;
    let proxy = spawner_proxy(&up, None).await;
    let token = proxy.mint("127.0.0.1");
    let head = format!(
        "POST /spawner/upload HTTP/1.1\r\nHost: desktop.example.com\r\nABCAuthorization: {token}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    // 9 MiB in 64 KiB chunks, then the last chunk.
    let chunks = 9 * 16;
    let resp = raw_exchange(proxy.addr(), head, chunks + 1, move |i| {
        if i < chunks { chunked(64 * 1024, b'x') } else { Bytes::from_static(b"0\r\n\r\n") }
    })
    .await;
    proxy.expect_access("POST", "/spawner/upload", resp.status);
    assert_eq!(resp.status, 413, "{}", resp.head);
    // Whatever the proxy streamed before the limit, the upstream never got a whole body past it.
    let over: Vec<_> = up.seen().into_iter().filter(|s| s.complete && s.body_len > 8 * MIB).collect();
    assert!(over.is_empty(), "the upstream received a complete body of {} bytes", over[0].body_len);
    proxy.finish();
}

/// The spawner with the default limit, and the filer's route limited to 1 MiB.
async fn filer_limited_to_a_mib() -> (Upstream, Upstream, Proxy) {
    let up = Upstream::start("spawner").await;
    let filer = Upstream::start("filer").await;
    let m = Manifest::new(keys())
        .port("filer", filer.port())
        .route(json!({"name": "filer", "maxBodyBytes": MIB}));
    let proxy = spawner_proxy(&up, Some(m)).await;
    (up, filer, proxy)
}

#[tokio::test]
async fn bodies_up_to_the_limit_pass_and_route_limits_are_configurable() {
    let (_spawner, filer, proxy) = filer_limited_to_a_mib().await;
    let token = proxy.mint("127.0.0.1");

    // Exactly 8 MiB, chunked (the client does not announce a length).
    let stream = futures_util::stream::iter(
        (0..128).map(|_| Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![7_u8; 64 * 1024])))),
    );
    let resp = proxy
        .send(
            Req::new(Method::POST, "/spawner/upload")
                .abc(&token)
                .stream_body(StreamBody::new(stream).boxed_unsync()),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "8 MiB on /spawner: {}", resp.text());
    assert_eq!(resp.seen().body_len, 8 * MIB);

    let resp = proxy
        .send(Req::new(Method::PUT, "/filer").abc(&token).body(vec![1_u8; usize::try_from(MIB).unwrap()]))
        .await;
    assert_eq!(resp.status, StatusCode::OK, "1 MiB on /filer limited to 1 MiB: {}", resp.text());
    let resp = proxy
        .send(Req::new(Method::PUT, "/filer").abc(&token).body(vec![1_u8; usize::try_from(MIB + 1).unwrap()]))
        .await;
    assert_eq!(resp.status, StatusCode::PAYLOAD_TOO_LARGE, "1 MiB + 1 on /filer limited to 1 MiB");
    assert_eq!(filer.seen().iter().filter(|s| s.complete && s.body_len > MIB).count(), 0);
    proxy.finish();
}

/// A client that sends an over-limit body without waiting for the answer (no `Expect`) still
/// reads the 413: the proxy takes in and drops the body instead of closing with it unread,
/// which resets the connection under the client (it saw a broken pipe, not the 413).
#[tokio::test]
async fn an_over_limit_upload_sent_anyway_still_reads_its_413() {
    let (_spawner, filer, proxy) = filer_limited_to_a_mib().await;
    let token = proxy.mint("127.0.0.1");
    let body = vec![1_u8; usize::try_from(8 * MIB).unwrap()];
    for round in 0..3 {
        let mut conn = support::raw::RawConn::connect(proxy.addr()).await;
        let head = format!(
            "PUT /filer/big HTTP/1.1\r\nHost: d\r\nABCAuthorization: {token}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let sent = conn.try_send(head.as_bytes()).await.and(conn.try_send(&body).await);
        assert!(sent.is_ok(), "round {round}: the upload was cut: {sent:?}");
        let resp = conn.response(support::STEP).await;
        assert_eq!(resp.map(|r| r.status), Some(413), "round {round}: the 413 was lost");
        proxy.expect_access("PUT", "/filer/big", 413);
    }
    assert_eq!(filer.seen().len(), 0, "an over-limit upload reached the filer");
    proxy.finish();
}

/// The body of a refused upload is read for a few seconds at most: a client that keeps sending
/// is cut off, not served forever.
#[tokio::test]
async fn a_refused_upload_that_never_ends_is_cut_off() {
    let up = Upstream::start("spawner").await;
    let proxy = spawner_proxy(
        &up,
        Some(Manifest::new(keys()).route(json!({"name": "spawner", "maxBodyBytes": MIB}))),
    )
    .await;
    let token = proxy.mint("127.0.0.1");
    let mut conn = support::raw::RawConn::connect(proxy.addr()).await;
    let head = format!(
        "PUT /spawner/big HTTP/1.1\r\nHost: d\r\nABCAuthorization: {token}\r\nContent-Length: {}\r\n\r\n",
        1_u64 << 40
    );
    assert!(conn.try_send(head.as_bytes()).await.is_ok());
    let chunk = vec![0_u8; 64 * 1024];
    let started = Instant::now();
    let cut = loop {
        if conn.try_send(&chunk).await.is_err() {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "still reading a refused upload after 20 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(cut >= Duration::from_secs(4), "cut after {cut:?}: the 413 may not have been readable");
    assert_eq!(up.seen().len(), 0);
    proxy.expect_access("PUT", "/spawner/big", 413);
    proxy.finish();
}

#[tokio::test]
async fn unreachable_targets_are_502() {
    let closed = support::closed_port();
    let m = Manifest::new(keys()).port("spawner", closed);
    let proxy = Proxy::start(&m).await;
    let token = proxy.mint("127.0.0.1");
    let fqdn = proxy.mint("anonymous-0a1b2c3d.desktop.abcdesktop.svc.cluster.local");
    for (what, req) in [
        ("closed port", Req::get("/spawner").abc(&token)),
        ("closed container port", Req::get(&format!("/container/{token}/{closed}/x"))),
        ("unresolvable FQDN", Req::get("/spawner").abc(&fqdn)),
        ("unresolvable FQDN container", Req::get(&format!("/container/{fqdn}/{closed}/x"))),
        ("closed pyos", Req::get("/API/status")),
    ] {
        let started = Instant::now();
        let resp = proxy.send(req).await;
        assert_eq!(resp.status, StatusCode::BAD_GATEWAY, "{what}: {}", resp.text());
        assert!(started.elapsed() < Duration::from_secs(5), "{what}: 502 took {:?}", started.elapsed());
        assert!(resp.header("server").is_none());
        assert!(
            !resp.text().contains(&token) && !resp.text().contains(&fqdn),
            "{what}: token in the error body"
        );
    }
    // Each failure is logged with its kind and route (and, like every line, no token).
    support::eventually(Duration::from_secs(3), "five connect failures logged", || async {
        (failures_logged(&proxy, "connect") >= 5).then_some(())
    })
    .await;
    proxy.finish();
}

/// Warning lines for failed upstream requests of `reason` (connect, upstream_timeout, ...).
fn failures_logged(proxy: &Proxy, reason: &str) -> usize {
    let lines = proxy.log_lines();
    lines
        .iter()
        .filter(|l| {
            l["message"] == "request failed"
                && l["reason"] == reason
                && l["side"] == "upstream"
                && l["level"] == "WARN"
        })
        .count()
}

#[tokio::test]
async fn an_upstream_closing_without_answering_is_502() {
    let up = Upstream::start_with("spawner", Behavior::Close).await;
    let proxy = spawner_proxy(&up, None).await;
    let token = proxy.mint("127.0.0.1");
    let resp = proxy.send(Req::get("/spawner").abc(&token)).await;
    assert_eq!(resp.status, StatusCode::BAD_GATEWAY, "{}", resp.text());
    assert!(up.hits() >= 1, "the upstream was not reached");
    proxy.finish();
}

#[tokio::test]
async fn a_silent_upstream_is_504_after_read_timeout() {
    let up = Upstream::start_with("spawner", Behavior::Hang).await;
    let m = Manifest::new(keys()).route(json!({"name": "spawner", "readTimeoutSeconds": 1}));
    let proxy = spawner_proxy(&up, Some(m)).await;
    let token = proxy.mint("127.0.0.1");

    let started = Instant::now();
    let resp = proxy.send(Req::get("/spawner/slow").abc(&token).timeout(Duration::from_secs(15))).await;
    let elapsed = started.elapsed();
    assert_eq!(resp.status, StatusCode::GATEWAY_TIMEOUT, "{}", resp.text());
    assert!(elapsed >= Duration::from_millis(900), "504 before the read timeout: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "504 long after the 1 s read timeout: {elapsed:?}");
    assert!(resp.header("server").is_none());
    support::eventually(Duration::from_secs(3), "the timeout logged", || async {
        (failures_logged(&proxy, "upstream_timeout") == 1).then_some(())
    })
    .await;

    // An upstream slower than nothing but within the timeout is fine.
    up.set_behavior(Behavior::Delay(Duration::from_millis(300)));
    let resp = proxy.send(Req::get("/spawner/slow").abc(&token)).await;
    assert_eq!(resp.status, StatusCode::OK);
    proxy.finish();
}

/// The 2 GiB body: 8192 chunks of 256 KiB, each stamped with its index, generated as sent.
const UPLOAD_CHUNK: usize = 256 * 1024;
const UPLOAD_CHUNKS: usize = 8192;

fn upload_chunk(i: usize, base: &Bytes) -> Bytes {
    let mut chunk = BytesMut::from(base.as_ref());
    chunk[..8].copy_from_slice(&(i as u64).to_le_bytes());
    chunk.freeze()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_gib_upload_streams_through_filer_in_bounded_memory() {
    let up = Upstream::start("filer").await;
    let m = Manifest::new(keys()).port("filer", up.port());
    let proxy = Proxy::start(&m).await;
    let token = proxy.mint("127.0.0.1");
    let total = (UPLOAD_CHUNK * UPLOAD_CHUNKS) as u64;

    let base = Bytes::from((0..UPLOAD_CHUNK).map(|i| (i % 253) as u8).collect::<Vec<u8>>());
    let hasher = Arc::new(Mutex::new(openssl::sha::Sha256::new()));
    let sink = Arc::clone(&hasher);
    let stream = futures_util::stream::iter(0..UPLOAD_CHUNKS).map(move |i| {
        let chunk = upload_chunk(i, &base);
        sink.lock().unwrap().update(&chunk);
        Ok::<_, std::io::Error>(Frame::data(chunk))
    });
    let started = Instant::now();
    let resp = proxy
        .send(
            Req::new(Method::PUT, "/filer?path=/home/balloon/big.bin")
                .abc(&token)
                .header("Content-Length", &total.to_string())
                .stream_body(StreamBody::new(stream).boxed_unsync())
                .timeout(Duration::from_secs(300)),
        )
        .await;
    let elapsed = started.elapsed();
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let seen = resp.seen();
    assert_eq!(seen.body_len, total, "the upstream counted {} of {total} bytes", seen.body_len);
    let expected = hex::encode(Arc::try_unwrap(hasher).ok().expect("hasher").into_inner().unwrap().finish());
    assert_eq!(seen.body_sha256, expected, "the body changed on its way");

    let hwm = proxy.vm_hwm_kib();
    eprintln!("2 GiB through /filer in {elapsed:?}; proxy VmHWM {hwm} KiB");
    assert!(hwm < 64 * 1024, "the proxy's peak RSS reached {hwm} KiB streaming 2 GiB");
    proxy.finish();
}

/// Reads one response head (up to the blank line) from a raw connection.
async fn read_head(reader: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match support::within(support::STEP, "a response head", reader.read(&mut byte)).await {
            Ok(0) | Err(_) => break,
            Ok(_) => head.push(byte[0]),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// `Expect: 100-continue`, as curl sends it with any body over 1 KiB: the proxy says 100 and
/// the upload goes through; over the limit it says 413 instead, and the body is never sent.
#[tokio::test]
async fn expect_100_continue() {
    use tokio::io::AsyncWriteExt as _;
    let up = Upstream::start("spawner").await;
    let proxy = spawner_proxy(&up, None).await;
    let token = proxy.mint("127.0.0.1");

    let stream = tokio::net::TcpStream::connect(proxy.addr()).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "PUT /spawner/up HTTP/1.1\r\nHost: d\r\nABCAuthorization: {token}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).await.expect("write head");
    let first = read_head(&mut reader).await;
    assert!(first.starts_with("HTTP/1.1 100"), "no 100 Continue: {first:?}");
    writer.write_all(b"hello").await.expect("write body");
    let second = read_head(&mut reader).await;
    assert!(second.starts_with("HTTP/1.1 200"), "after 100 Continue: {second:?}");
    proxy.expect_access("PUT", "/spawner/up", 200);
    assert_eq!(up.last().body_len, 5);

    let stream = tokio::net::TcpStream::connect(proxy.addr()).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "PUT /spawner/up HTTP/1.1\r\nHost: d\r\nABCAuthorization: {token}\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        9 * MIB
    );
    writer.write_all(head.as_bytes()).await.expect("write head");
    let first = read_head(&mut reader).await;
    assert!(first.starts_with("HTTP/1.1 413"), "an oversized upload was not refused up front: {first:?}");
    // The refused body is read and dropped if it comes (a lingering close), which must not
    // make the proxy say 100 Continue after its 413.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        let mut chunk = [0_u8; 4096];
        while let Ok(n) = tokio::io::AsyncReadExt::read(&mut reader, &mut chunk).await {
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    let rest = String::from_utf8_lossy(&rest);
    assert!(!rest.contains("HTTP/1.1 100"), "100 Continue after the 413: {rest:?}");
    proxy.expect_access("PUT", "/spawner/up", 413);
    assert_eq!(up.hits(), 1);
    proxy.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_512_mib_download_streams_in_bounded_memory() {
    let up = Upstream::start("filer").await;
    let proxy = Proxy::start(&Manifest::new(keys()).port("filer", up.port())).await;
    let token = proxy.mint("127.0.0.1");
    let total = 512 * MIB;
    let request = http::Request::get(format!("http://{}/filer?path=/big.bin", proxy.addr()))
        .header("ABCAuthorization", &token)
        .header("X-Test-Download", total.to_string())
        .body(http_body_util::Empty::<Bytes>::new().map_err(|never| match never {}).boxed_unsync())
        .expect("request");
    let client = support::client::http_client();
    let response = support::within(Duration::from_secs(120), "download head", client.request(request))
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let (mut received, mut wrong) = (0_u64, 0_u64);
    support::within(Duration::from_secs(240), "the whole download", async {
        while let Some(frame) = body.frame().await {
            let frame = frame.expect("download body");
            if let Some(data) = frame.data_ref() {
                for (k, b) in data.iter().enumerate() {
                    let at = usize::try_from(received).unwrap() + k;
                    if *b != ((at % support::upstream::DOWNLOAD_CHUNK) % 251) as u8 {
                        wrong += 1;
                    }
                }
                received += data.len() as u64;
            }
        }
    })
    .await;
    proxy.expect_access("GET", "/filer?path=/big.bin", 200);
    assert_eq!(received, total, "bytes received");
    assert_eq!(wrong, 0, "bytes changed on the way");
    let hwm = proxy.vm_hwm_kib();
    assert!(hwm < 64 * 1024, "the proxy's peak RSS reached {hwm} KiB streaming 512 MiB down");
    proxy.finish();
}

/// A client that never finishes its request head is cut after `headerReadTimeoutSeconds`.
#[tokio::test]
async fn a_slow_request_head_is_cut_after_the_header_read_timeout() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let m = Manifest::new(keys()).set_in("limits", "headerReadTimeoutSeconds", json!(1));
    let proxy = Proxy::start(&m).await;
    let mut stream = tokio::net::TcpStream::connect(proxy.addr()).await.expect("connect");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: d\r\nX-Slow: ").await.expect("write");
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = support::within(
        Duration::from_secs(10),
        "the proxy cuts the slow head",
        stream.read_to_end(&mut buf),
    )
    .await;
    let elapsed = started.elapsed();
    drop(read);
    assert!(elapsed >= Duration::from_millis(900), "cut after {elapsed:?}, before the timeout");
    assert!(elapsed < Duration::from_secs(5), "cut after {elapsed:?} with headerReadTimeoutSeconds: 1");
    let text = String::from_utf8_lossy(&buf).into_owned();
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "answered {text:?}");
    if !text.is_empty() {
        proxy.expect_access("GET", "/healthz", 408);
    }
    proxy.finish();
}
