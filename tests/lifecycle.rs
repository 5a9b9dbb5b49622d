//! The process and its commands: SIGTERM drains in-flight requests, invalid start-up settings
//! exit 64 before binding, `route check` validates offline, `route keys` and `route token`
//! make what the proxy accepts, and the HTTPS listener speaks HTTP/1.1 and HTTP/2 via ALPN.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use route_mint::{KeySet, PAYLOAD_PRIVATE, PAYLOAD_PUBLIC, SIGNING_PRIVATE, SIGNING_PUBLIC, unix_now};
use serde_json::json;
use support::proxy::run;
use support::{Behavior, Manifest, Proxy, Req, STEP, Upstream, eventually, keys, within};

#[tokio::test]
async fn sigterm_stops_accepting_and_finishes_in_flight_requests() {
    let up = Upstream::start_with("spawner", Behavior::Delay(Duration::from_millis(2000))).await;
    let m = Manifest::new(keys()).port("spawner", up.port()).set_in("limits", "drainSeconds", json!(10));
    let mut proxy = Proxy::start(&m).await;
    let token = proxy.mint("127.0.0.1");
    let addr = proxy.addr();

    let in_flight = futures_util::future::join_all((0..3).map(|i| {
        proxy.try_send(
            Req::post(&format!("/spawner/{i}"), vec![1_u8; 100_000])
                .abc(&token)
                .timeout(Duration::from_secs(20)),
        )
    }));
    let terminate = async {
        eventually(STEP, "three requests in flight at the upstream", || async {
            (up.hits() >= 3).then_some(())
        })
        .await;
        proxy.sigterm();
        let sent = Instant::now();
        eventually(Duration::from_millis(1500), "new connections refused after SIGTERM", || async {
            tokio::net::TcpStream::connect(addr).await.is_err().then_some(())
        })
        .await;
        sent.elapsed()
    };
    let (results, refused_after) = tokio::join!(in_flight, terminate);
    for (i, result) in results.into_iter().enumerate() {
        let resp = result.unwrap_or_else(|e| panic!("in-flight request {i} failed during the drain: {e}"));
        assert_eq!(resp.status, StatusCode::OK, "in-flight request {i}: {}", resp.text());
        assert_eq!(resp.seen().body_len, 100_000);
    }
    let status = proxy.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "route exited with {status} after SIGTERM");
    eprintln!("listener closed {refused_after:?} after SIGTERM");
    proxy.finish();
}

#[tokio::test]
async fn sigterm_gives_up_on_requests_past_drain_seconds() {
    let up = Upstream::start_with("spawner", Behavior::Hang).await;
    let m = Manifest::new(keys())
        .port("spawner", up.port())
        .set_in("limits", "drainSeconds", json!(1))
        .route(json!({"name": "spawner", "readTimeoutSeconds": 60}));
    let mut proxy = Proxy::start(&m).await;
    let token = proxy.mint("127.0.0.1");
    let hung = proxy.try_send(Req::get("/spawner/hang").abc(&token).timeout(Duration::from_secs(20)));
    let terminate = async {
        eventually(STEP, "the request is at the upstream", || async { (up.hits() >= 1).then_some(()) }).await;
        proxy.sigterm();
        Instant::now()
    };
    let (_outcome, sent) = tokio::join!(hung, terminate);
    let status = proxy.wait_exit(Duration::from_secs(10)).await;
    let took = sent.elapsed();
    assert!(status.success(), "route exited with {status}");
    assert!(took < Duration::from_secs(6), "exit {took:?} after SIGTERM with drainSeconds: 1");
    proxy.finish();
}

/// Tunnels are not in-flight requests: once those are done (here, none), SIGTERM closes the
/// open tunnels and the process exits, well before `drainSeconds`.
#[tokio::test]
async fn sigterm_closes_websocket_tunnels_and_exits() {
    use futures_util::StreamExt as _;
    use support::ws::Handshake;

    let up = Upstream::start("websockify").await;
    let m = Manifest::new(keys()).port("websockify", up.port()).set_in("limits", "drainSeconds", json!(5));
    let mut proxy = Proxy::start(&m).await;
    let token = proxy.mint("127.0.0.1");
    let Handshake::Open(mut tunnel, _) = proxy.ws(&format!("/websockify?jwt_token={token}"), &[]).await
    else {
        panic!("refused")
    };
    within(STEP, "greeting", tunnel.next()).await.expect("greeting").expect("greeting ok");
    assert_eq!(support::metric(&proxy.metrics().await, "route_websockets_open"), Some(1.0));

    proxy.sigterm();
    let sent = Instant::now();
    within(Duration::from_secs(10), "the tunnel is closed after SIGTERM", async {
        while let Some(Ok(msg)) = tunnel.next().await {
            if msg.is_close() {
                break;
            }
        }
    })
    .await;
    let status = proxy.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "route exited with {status}");
    let took = sent.elapsed();
    assert!(took < Duration::from_secs(7), "exit {took:?} after SIGTERM with drainSeconds: 5");
    proxy.finish();
}

/// Every kind of invalid setting that still parses, so that each must be reported.
fn invalid_manifest() -> Manifest {
    Manifest::new(keys()).set("jwt", json!({"algorithms": ["HS256"], "decryption": "pkcs1v15"})).set_in(
        "targets",
        "allowedCidrs",
        json!(["not-a-cidr"]),
    )
}

#[tokio::test]
async fn invalid_startup_settings_exit_64_before_binding() {
    let exited = Proxy::builder().manifest(&invalid_manifest()).start_expect_exit().await;
    assert_eq!(exited.status.code(), Some(64), "stderr:\n{}", exited.stderr);
    assert!(!exited.stdout.contains("listening"), "it bound a port: {}", exited.stdout);
    assert!(exited.stderr.contains("HS256"), "the error does not say what is wrong:\n{}", exited.stderr);
}

#[tokio::test]
async fn check_validates_offline_and_reports_every_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.yaml");
    Manifest::new(keys()).write_atomic(&good);
    let out = run(&["check", "--manifests", good.to_str().unwrap()], &[]).await;
    assert!(out.status.success(), "a valid manifest failed the check: {}", out.stderr);

    let bad = dir.path().join("bad.yaml");
    invalid_manifest().write_atomic(&bad);
    let out = run(&["check", "--manifests", bad.to_str().unwrap()], &[]).await;
    assert!(!out.status.success(), "an invalid manifest passed the check");
    assert!(out.stderr.contains("HS256"), "the algorithm error is missing:\n{}", out.stderr);
    assert!(out.stderr.contains("not-a-cidr"), "the CIDR error is missing:\n{}", out.stderr);

    // A RouteConfig whose payload key Secret is not among the manifests.
    let m = Manifest::new(keys());
    let docs = m.documents();
    let yaml = [&docs[0], &docs[2]]
        .iter()
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n");
    let lonely = dir.path().join("lonely.yaml");
    std::fs::write(&lonely, yaml).expect("write");
    let out = run(&["check", "--manifests", lonely.to_str().unwrap()], &[]).await;
    assert!(!out.status.success(), "a manifest without its payload Secret passed the check");
    assert!(
        out.stderr.contains("abcdesktopjwtdesktoppayload"),
        "the missing Secret is not named:\n{}",
        out.stderr
    );

    let out = run(&["check", "--manifests", dir.path().join("absent.yaml").to_str().unwrap()], &[]).await;
    assert!(!out.status.success(), "a missing file passed the check");
    // The folder holds invalid files: checking it fails too.
    let out = run(&["check", "--manifests", dir.path().to_str().unwrap()], &[]).await;
    assert!(!out.status.success(), "a folder with invalid manifests passed the check");
}

/// `route token --keys <dir> --target 127.0.0.1 <args>`, its output.
async fn route_token(dir: &std::path::Path, args: &[&str]) -> String {
    let mut all = vec!["token", "--keys", dir.to_str().unwrap(), "--target", "127.0.0.1"];
    all.extend_from_slice(args);
    let out = run(&all, &[]).await;
    assert!(out.status.success(), "route token {args:?}: {}", out.stderr);
    out.stdout.trim().to_owned()
}

fn claims(token: &str) -> String {
    let segment = token.split('.').nth(1).expect("claims segment");
    String::from_utf8(URL_SAFE_NO_PAD.decode(segment).expect("base64url")).expect("utf8")
}

#[tokio::test]
async fn keys_and_token_commands_make_what_the_proxy_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pkcs8, pkcs1) = (dir.path().join("pkcs8"), dir.path().join("pkcs1"));
    let out = run(&["keys", "--out", pkcs8.to_str().unwrap(), "--bits", "1024"], &[]).await;
    assert!(out.status.success(), "route keys: {}", out.stderr);
    let out = run(&["keys", "--out", pkcs1.to_str().unwrap(), "--bits", "1024", "--pkcs1"], &[]).await;
    assert!(out.status.success(), "route keys --pkcs1: {}", out.stderr);
    for name in [SIGNING_PRIVATE, SIGNING_PUBLIC, PAYLOAD_PRIVATE, PAYLOAD_PUBLIC] {
        assert!(pkcs8.join(name).is_file(), "route keys did not write {name}");
    }
    let read = |p: &std::path::Path| std::fs::read_to_string(p).expect("read key");
    assert!(read(&pkcs8.join(PAYLOAD_PRIVATE)).starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(read(&pkcs1.join(PAYLOAD_PRIVATE)).starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(read(&pkcs8.join(SIGNING_PUBLIC)).starts_with("-----BEGIN PUBLIC KEY-----"));

    for dir in [&pkcs8, &pkcs1] {
        let up = Upstream::start("spawner").await;
        let set = KeySet::read_dir(dir).expect("read key set");
        let proxy = Proxy::start(&Manifest::new(&set).port("spawner", up.port())).await;
        let fresh = proxy.secret(&route_token(dir, &["--lifetime", "60"]).await);
        let text = claims(&fresh);
        let order: Vec<usize> = ["\"key\"", "\"nfb\"", "\"hash\"", "\"exp\""]
            .iter()
            .map(|k| text.find(k).expect("claim"))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "claims not in pyos' order: {text}");
        let claims: serde_json::Value = serde_json::from_str(&text).expect("claims json");
        let exp = claims["exp"].as_u64().expect("exp");
        assert!(exp.abs_diff(unix_now() + 60) <= 5, "exp {exp} is not now + 60");
        let header =
            String::from_utf8(URL_SAFE_NO_PAD.decode(fresh.split('.').next().unwrap()).unwrap()).unwrap();
        assert!(header.contains("RS256") && !header.contains("kid"), "header {header}");
        assert_eq!(proxy.send(Req::get("/spawner").abc(&fresh)).await.status, StatusCode::OK);

        let past = (unix_now() - 10).to_string();
        let expired = proxy.secret(&route_token(dir, &["--exp", &past]).await);
        assert_eq!(proxy.send(Req::get("/spawner").abc(&expired)).await.status, StatusCode::UNAUTHORIZED);

        let oaep = proxy.secret(&route_token(dir, &["--oaep", "sha1"]).await);
        assert_eq!(
            proxy.send(Req::get("/spawner").abc(&oaep)).await.status,
            StatusCode::UNAUTHORIZED,
            "an OAEP token accepted with pkcs1v15 decryption"
        );
        proxy.finish();
    }
}

#[tokio::test]
async fn https_listener_speaks_http1_and_http2_via_alpn() {
    let up = Upstream::start("spawner").await;
    let (cert_pem, key_pem, cert_der) = support::tls::self_signed();
    let m = Manifest::new(keys())
        .port("spawner", up.port())
        .port("websockify", up.port())
        .tls(&cert_pem, &key_pem);
    let proxy = Proxy::builder().manifest(&m).tls().start().await;
    let token = proxy.mint("127.0.0.1");
    let addr = proxy.https_addr();

    // HTTP/2.
    let tls = support::tls::connect(addr, &[&cert_der], &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "h2 not negotiated");
    let (mut h2, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    for (path, abc) in [("/healthz", None), ("/spawner/x?y=1", Some(token.as_str()))] {
        let mut req = http::Request::get(format!("https://desktop.example.com{path}"));
        if let Some(t) = abc {
            req = req.header("ABCAuthorization", t);
        }
        let resp = within(STEP, "h2 request", h2.send_request(req.body(Empty::<Bytes>::new()).unwrap()))
            .await
            .expect("h2 response");
        let status = resp.status();
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert!(resp.headers().get("server").is_none());
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        proxy.expect_access("GET", path, status.as_u16());
        assert_eq!(status, StatusCode::OK, "h2 {path}: {}", String::from_utf8_lossy(&body));
        if abc.is_some() {
            let seen = support::Seen::from_json(&serde_json::from_slice(&body).expect("json")).expect("seen");
            assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("spawner", "/spawner/x?y=1"));
            assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
            assert_eq!(seen.header("x-forwarded-host"), Some("desktop.example.com"));
            assert_eq!(seen.version, "HTTP/1.1", "the upstream is spoken to in HTTP/1.1");
        }
    }

    // HTTP/1.1.
    let tls = support::tls::connect(addr, &[&cert_der], &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut h1, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.expect("h1 handshake");
    tokio::spawn(conn);
    let req = http::Request::get("/spawner/y")
        .header("Host", "desktop.example.com")
        .header("ABCAuthorization", &token)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = within(STEP, "h1 request", h1.send_request(req)).await.expect("h1 response");
    assert_eq!(resp.version(), http::Version::HTTP_11);
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    proxy.expect_access("GET", "/spawner/y", status.as_u16());
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let seen = support::Seen::from_json(&serde_json::from_slice(&body).expect("json")).expect("seen");
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));

    // A WebSocket over TLS (wss://), as browsers reach the desktop.
    let tls = support::tls::connect(addr, &[&cert_der], &[b"http/1.1"]).await;
    let url = format!("wss://localhost/websockify?jwt_token={token}");
    let (mut socket, _) =
        within(STEP, "wss handshake", tokio_tungstenite::client_async(url, tls)).await.expect("wss");
    proxy.expect_access("GET", &format!("/websockify?jwt_token={token}"), 101);
    let seen = support::ws::greet_and_echo(&mut socket).await;
    assert_eq!((seen.upstream.as_str(), seen.uri.as_str()), ("spawner", "/"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));

    // The plain listener still answers.
    assert_eq!(proxy.get("/healthz").await.status, StatusCode::OK);
    proxy.finish();
}

/// `ROUTE_LISTEN` sets the HTTP address when `--listen` is absent; the flag wins over it.
#[test]
fn route_listen_sets_the_address_and_the_flag_wins() {
    use std::io::{BufRead as _, Read as _, Write as _};
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("route.yaml");
    Manifest::new(keys()).write_atomic(&file);
    let listening = |extra: &[&str], env_addr: &str| {
        let mut child = std::process::Command::new(support::proxy::BIN)
            .args(["serve", "--manifests", file.to_str().unwrap(), "--log-level", "warn"])
            .args(extra)
            .env("ROUTE_LISTEN", env_addr)
            .env("ROUTE_ADMIN_LISTEN", "127.0.0.1:0")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn route");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("stdout line");
        (child, line.trim().to_owned())
    };
    let wanted = format!("127.0.0.1:{}", support::closed_port());
    let (mut child, line) = listening(&[], &wanted);
    assert_eq!(line, format!("listening http {wanted}"));
    let mut stream = std::net::TcpStream::connect(&wanted).expect("connect to ROUTE_LISTEN");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("OK\n"), "{answer}");
    child.kill().expect("kill");
    child.wait().expect("wait");

    let (mut child, line) = listening(&["--listen", "127.0.0.1:0"], &wanted);
    assert!(
        line.starts_with("listening http 127.0.0.1:") && line != format!("listening http {wanted}"),
        "{line}"
    );
    child.kill().expect("kill");
    child.wait().expect("wait");
}
