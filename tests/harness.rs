//! Tests of the harness itself (no `route` process): the recording upstream, the WebSocket
//! echo, the manifest writer and the access-line matcher. If these fail, every other
//! end-to-end result is suspect.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use support::client::{self, Req};
use support::ws::{self, Handshake};
use support::{Behavior, Manifest, STEP, Upstream};

#[tokio::test]
async fn upstream_records_and_answers_what_it_saw() {
    let up = Upstream::start("echo").await;
    let http = client::http_client();
    let resp = client::send(
        &http,
        up.addr(),
        Req::post("/a/b?x=1", vec![7_u8; 1000]).header("X-Test", "1").header("Cookie", "a=b"),
    )
    .await
    .expect("answer");
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.header("server"), Some("recording-upstream/1.0"));
    let seen = resp.seen();
    assert_eq!(seen.upstream, "echo");
    assert_eq!(seen.port, up.port());
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.uri, "/a/b?x=1");
    assert_eq!(seen.path(), "/a/b");
    assert_eq!(seen.header("x-test"), Some("1"));
    assert_eq!(seen.header("COOKIE"), Some("a=b"));
    assert_eq!(seen.body_len, 1000);
    assert_eq!(seen.body_sha256, support::sha256_hex(&[7_u8; 1000]));
    assert!(seen.complete);
    assert_eq!(up.last().uri, "/a/b?x=1");
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn upstream_behaviours() {
    let up = Upstream::start_with("slow", Behavior::Delay(Duration::from_millis(300))).await;
    let http = client::http_client();
    let started = std::time::Instant::now();
    let resp = client::send(&http, up.addr(), Req::get("/")).await.expect("answer");
    assert_eq!(resp.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    up.set_behavior(Behavior::Hang);
    let hung = client::send(&http, up.addr(), Req::get("/hang").timeout(Duration::from_millis(300))).await;
    assert!(hung.is_err(), "a hanging upstream answered");
    support::eventually(STEP, "the hung request head is counted", || async {
        up.heads().contains(&"/hang".to_owned()).then_some(())
    })
    .await;

    let closing = Upstream::start_with("closing", Behavior::Close).await;
    let err = client::send(&http, closing.addr(), Req::get("/closed")).await;
    assert!(err.is_err(), "a closing upstream answered: {:?}", err.map(|r| r.status));
    support::eventually(STEP, "the closed request head is counted", || async {
        closing.heads().contains(&"/closed".to_owned()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn websocket_echo_greets_with_what_it_saw() {
    let up = Upstream::start("ws").await;
    let Handshake::Open(mut socket, _) =
        ws::connect(up.addr(), "/terminals/abc?x=y", &[("Origin", "http://o")]).await
    else {
        panic!("refused")
    };
    let seen = ws::greet_and_echo(&mut socket).await;
    assert!(seen.websocket);
    assert_eq!(seen.uri, "/terminals/abc?x=y");
    assert_eq!(seen.header("origin"), Some("http://o"));
    assert_eq!(up.last().uri, "/terminals/abc?x=y");
}

#[test]
fn manifest_is_three_yaml_documents() {
    let m = Manifest::new(support::keys())
        .port("spawner", 1234)
        .route(json!({"name": "spawner", "readTimeoutSeconds": 1}));
    let yaml = m.to_yaml();
    let docs: Vec<serde_json::Value> =
        yaml.split("\n---\n").map(|d| serde_yaml::from_str(d).expect("yaml")).collect();
    assert_eq!(docs.len(), 3, "{yaml}");
    assert_eq!(docs[0]["kind"], "Secret");
    assert_eq!(docs[0]["metadata"]["name"], "abcdesktopjwtdesktopsigning");
    assert!(
        docs[0]["stringData"]["abcdesktop_jwt_desktop_signing_public_key.pem"]
            .as_str()
            .is_some_and(|p| p.starts_with("-----BEGIN PUBLIC KEY-----"))
    );
    assert_eq!(docs[1]["metadata"]["name"], "abcdesktopjwtdesktoppayload");
    assert!(docs[1]["data"]["abcdesktop_jwt_desktop_payload_private_key.pem"].is_string());
    assert_eq!(docs[2]["kind"], "RouteConfig");
    assert_eq!(docs[2]["spec"]["ports"]["spawner"], 1234);
    assert_eq!(docs[2]["spec"]["routes"][0]["readTimeoutSeconds"], 1);
}

#[test]
fn access_paths_match_with_tokens_redacted() {
    use support::proxy::path_matches;
    let secrets = vec!["aaa.bbb.ccc".to_owned()];
    assert!(path_matches("/spawner/x?y=1", "/spawner/x", &secrets));
    assert!(path_matches("/container/aaa.bbb.ccc/80/x", "/container/[redacted]/80/x", &secrets));
    assert!(path_matches("/container/aaa.bbb.ccc/80/x", "/container/***/80/x?q", &secrets));
    assert!(!path_matches("/container/aaa.bbb.ccc/80/x", "/container/***/81/x", &secrets));
    assert!(!path_matches("/spawner", "/filer", &secrets));
}

#[test]
fn metrics_are_parsed() {
    let text = "# HELP x\nroute_settings_generation 3\nroute_requests_total{route=\"spawner\",class=\"2xx\"} 2\nroute_requests_total{route=\"filer\",class=\"2xx\"} 5\n";
    assert_eq!(support::metric(text, "route_settings_generation"), Some(3.0));
    assert_eq!(support::metric_sum(text, "route_requests_total", &["class=\"2xx\""]), 7.0);
    assert_eq!(support::metric_sum(text, "route_requests_total", &["route=\"filer\""]), 5.0);
}

/// The leak check is live: a registered secret that the proxy logs (here, a path segment that
/// does not look like a token, so the proxy cannot know to redact it) fails the test.
#[tokio::test]
#[should_panic(expected = "tokens appear in")]
async fn a_secret_in_the_logs_fails_the_test() {
    let proxy = support::Proxy::start(&Manifest::new(support::keys())).await;
    let secret = proxy.secret("not-a-token-but-secret");
    proxy.get(&format!("/{secret}")).await;
    proxy.finish();
}

/// The access-line check is live: a request the proxy never saw has no access line.
#[tokio::test]
#[should_panic(expected = "no access line")]
async fn a_request_without_access_line_fails_the_test() {
    let proxy = support::Proxy::start(&Manifest::new(support::keys())).await;
    proxy.get("/healthz").await;
    proxy.expect_access("GET", "/never-sent", 200);
    proxy.finish();
}

/// Dropping the proxy without `finish()` runs the same checks.
#[tokio::test]
#[should_panic(expected = "tokens appear in")]
async fn dropping_the_proxy_checks_too() {
    let proxy = support::Proxy::start(&Manifest::new(support::keys())).await;
    let secret = proxy.secret("not-a-token-but-secret");
    proxy.get(&format!("/{secret}")).await;
}
