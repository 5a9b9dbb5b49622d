//! Faults on the far side of the proxy, each with a bounded answer, the right status at the
//! client, and recovery without help (the next request is fine): an upstream that refuses,
//! resets before or during its answer, hangs before its head or in its body, restarts under
//! pooled connections, drops a WebSocket; a target name that does not resolve; SIGTERM under
//! load. docs/reliability.md has the table of these cases.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use http::StatusCode;
use serde_json::json;
use support::faulty::{Fault, Faulty};
use support::hostile::no_panic;
use support::ws::Handshake;
use support::{Behavior, Manifest, Proxy, Req, STEP, Upstream, eventually, keys, metric, metric_sum, within};

/// A proxy whose `spawner` and `websockify` routes go to `faulty`, with 1 s read timeouts.
async fn proxy_for(faulty: &Faulty) -> Proxy {
    let m = Manifest::new(keys())
        .port("spawner", faulty.port())
        .port("websockify", faulty.port())
        .route(json!({"name": "spawner", "readTimeoutSeconds": 1}))
        .set_in("limits", "connectTimeoutSeconds", json!(2));
    Proxy::start(&m).await
}

/// Sends `GET /spawner/<what>` and returns the outcome and how long it took.
async fn timed(proxy: &Proxy, token: &str, what: &str) -> (Result<support::Resp, String>, Duration) {
    let started = Instant::now();
    let outcome = proxy.try_send(Req::get(&format!("/spawner/{what}")).abc(token).timeout(STEP)).await;
    (outcome, started.elapsed())
}

async fn recovers(proxy: &Proxy, faulty: &Faulty, token: &str) {
    faulty.set(Fault::Healthy);
    let (outcome, _) = timed(proxy, token, "after").await;
    let resp = outcome.expect("the request after the fault got no answer");
    assert_eq!(resp.status, StatusCode::OK, "the request after the fault: {}", resp.text());
    assert_eq!(resp.text(), "ok");
}

#[tokio::test]
async fn an_upstream_that_refuses_connections_is_502_and_serves_again_once_back() {
    let mut faulty = Faulty::start(Fault::Healthy).await;
    let proxy = proxy_for(&faulty).await;
    let token = proxy.mint("127.0.0.1");
    faulty.stop().await;
    let (outcome, took) = timed(&proxy, &token, "refused").await;
    assert_eq!(outcome.expect("an answer").status, StatusCode::BAD_GATEWAY);
    assert!(took < Duration::from_secs(2), "502 after {took:?}");
    faulty.restart().await;
    recovers(&proxy, &faulty, &token).await;
    no_panic(&proxy);
    proxy.finish();
}

#[tokio::test]
async fn an_upstream_reset_before_its_head_is_502() {
    let faulty = Faulty::start(Fault::ResetBeforeHead).await;
    let proxy = proxy_for(&faulty).await;
    let token = proxy.mint("127.0.0.1");
    let (outcome, took) = timed(&proxy, &token, "reset").await;
    assert_eq!(outcome.expect("an answer").status, StatusCode::BAD_GATEWAY);
    assert!(took < Duration::from_secs(2), "502 after {took:?}");
    recovers(&proxy, &faulty, &token).await;
    no_panic(&proxy);
    proxy.finish();
}

/// Once the head went out the status cannot change: the client sees the body end early (an
/// error, never a short body taken for a whole one), and the access line says why.
#[tokio::test]
async fn an_upstream_reset_mid_body_cuts_the_client_body() {
    let faulty = Faulty::start(Fault::ResetMidBody).await;
    let proxy = proxy_for(&faulty).await;
    let token = proxy.mint("127.0.0.1");
    let (outcome, took) = timed(&proxy, &token, "reset-mid-body").await;
    proxy.expect_access("GET", "/spawner/reset-mid-body", 200);
    let err = outcome.expect_err("a body cut by a reset was delivered as complete");
    assert!(took < Duration::from_secs(2), "cut after {took:?}: {err}");
    recovers(&proxy, &faulty, &token).await;
    // The access line is written when the proxy drops the cut body, which may come after the
    // client saw the cut.
    support::eventually(Duration::from_secs(3), "the access line says the body failed", || async {
        proxy.logs().contains("body_error").then_some(())
    })
    .await;
    no_panic(&proxy);
    proxy.finish();
}

#[tokio::test]
async fn an_upstream_hanging_before_its_head_is_504_at_the_read_timeout() {
    let faulty = Faulty::start(Fault::HangBeforeHead).await;
    let proxy = proxy_for(&faulty).await;
    let token = proxy.mint("127.0.0.1");
    let (outcome, took) = timed(&proxy, &token, "hang").await;
    assert_eq!(outcome.expect("an answer").status, StatusCode::GATEWAY_TIMEOUT);
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(3), "504 after {took:?}");
    recovers(&proxy, &faulty, &token).await;
    no_panic(&proxy);
    proxy.finish();
}

/// A client that closes its connection while the upstream has not answered still gets its
/// access line, at once and with nginx's 499, not the 504 nobody received.
#[tokio::test]
async fn a_client_gone_before_its_answer_is_logged_499() {
    use tokio::io::AsyncWriteExt as _;
    let faulty = Faulty::start(Fault::HangBeforeHead).await;
    let proxy = proxy_for(&faulty).await;
    let token = proxy.mint("127.0.0.1");
    let mut client = tokio::net::TcpStream::connect(proxy.addr()).await.expect("connect");
    let head =
        format!("GET /spawner/gave-up HTTP/1.1\r\nHost: x\r\nABCAuthorization: Bearer {token}\r\n\r\n");
    client.write_all(head.as_bytes()).await.expect("request");
    eventually(STEP, "the request reached the upstream", || async {
        faulty.heads().iter().any(|h| h.starts_with("GET /spawner/gave-up ")).then_some(())
    })
    .await;
    drop(client);
    // Before the route's 1 s read timeout, which would log a 504.
    eventually(Duration::from_millis(800), "a 499 line", || async {
        proxy.logs().lines().any(|l| l.contains("gave-up") && l.contains("499")).then_some(())
    })
    .await;
    proxy.expect_access("GET", "/spawner/gave-up", 499);
    faulty.set(Fault::Healthy);
    recovers(&proxy, &faulty, &token).await;
    no_panic(&proxy);
    proxy.finish();
}

#[tokio::test]
async fn an_upstream_hanging_mid_body_is_cut_at_the_read_timeout() {
    let faulty = Faulty::start(Fault::HangMidBody).await;
    let proxy = proxy_for(&faulty).await;
    let token = proxy.mint("127.0.0.1");
    let (outcome, took) = timed(&proxy, &token, "hang-mid-body").await;
    proxy.expect_access("GET", "/spawner/hang-mid-body", 200);
    let err = outcome.expect_err("a stalled body was delivered as complete");
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(3), "cut after {took:?}: {err}");
    recovers(&proxy, &faulty, &token).await;
    no_panic(&proxy);
    proxy.finish();
}

/// An upstream restarted under the proxy's pooled keep-alive connections: the first request
/// after it is served (a dead pooled connection is not the client's problem).
#[tokio::test]
async fn an_upstream_restart_under_pooled_connections_loses_no_request() {
    let mut faulty = Faulty::start(Fault::Healthy).await;
    let proxy = proxy_for(&faulty).await;
    let token = proxy.mint("127.0.0.1");
    for round in 0..5 {
        // Several pooled connections, then all of them killed by the restart.
        let warm = futures_util::future::join_all(
            (0..4).map(|i| proxy.try_send(Req::get(&format!("/spawner/warm{round}-{i}")).abc(&token))),
        )
        .await;
        assert!(warm.iter().all(|r| r.as_ref().is_ok_and(|r| r.status == StatusCode::OK)));
        faulty.restart().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (outcome, _) = timed(&proxy, &token, &format!("after-restart-{round}")).await;
        let resp = outcome.expect("an answer");
        assert_eq!(
            resp.status,
            StatusCode::OK,
            "round {round}: first request after a restart: {}",
            resp.text()
        );
    }
    no_panic(&proxy);
    proxy.finish();
}

/// An upstream that closes a kept-alive connection just as route reuses it (its keep-alive
/// timeout fired): a bodiless GET lost that way is sent again on a fresh connection and the
/// client never sees the race; a POST with a body is not sent twice and gets 502.
#[tokio::test]
async fn a_get_lost_by_a_reused_connection_is_sent_again_and_a_post_is_not() {
    let faulty = Faulty::start(Fault::ResetReused).await;
    let proxy = proxy_for(&faulty).await;
    let token = proxy.mint("127.0.0.1");
    for i in 0..4 {
        // Idle long enough for route to keep a copy (a connection in steady use gets none).
        tokio::time::sleep(Duration::from_millis(150)).await;
        let (outcome, _) = timed(&proxy, &token, &format!("get{i}")).await;
        let resp = outcome.expect("an answer");
        assert_eq!(resp.status, StatusCode::OK, "GET {i} on a reused connection: {}", resp.text());
    }
    let heads = faulty.heads();
    for i in 1..4 {
        let sent = heads.iter().filter(|h| h.starts_with(&format!("GET /spawner/get{i} "))).count();
        assert_eq!(sent, 2, "GET {i}: once on the reused connection, once on a fresh one: {heads:?}");
    }
    let resent =
        metric_sum(&proxy.metrics().await, "route_upstream_requests_resent_total", &["reason=\"lost\""]);
    assert_eq!(resent, 3.0, "each GET sent again is counted");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let post = proxy.try_send(Req::post("/spawner/post", "body").abc(&token).timeout(STEP)).await;
    assert_eq!(post.expect("an answer").status, StatusCode::BAD_GATEWAY);
    let posted = faulty.heads().iter().filter(|h| h.starts_with("POST /spawner/post ")).count();
    assert_eq!(posted, 1, "a POST was sent twice");
    let resent =
        metric_sum(&proxy.metrics().await, "route_upstream_requests_resent_total", &["reason=\"lost\""]);
    assert_eq!(resent, 3.0, "a POST counted as sent again");
    no_panic(&proxy);
    proxy.finish();
}

/// An upstream that drops a WebSocket without a close frame: the client's side ends at once,
/// the open-tunnel gauge returns to 0, and the next handshake is served.
#[tokio::test]
async fn an_upstream_dropping_a_websocket_ends_the_client_side() {
    let faulty = Faulty::start(Fault::WsDrop).await;
    let proxy = proxy_for(&faulty).await;
    let token = proxy.mint("127.0.0.1");
    for _ in 0..2 {
        let Handshake::Open(mut ws, _) = proxy.ws(&format!("/websockify?jwt_token={token}"), &[]).await
        else {
            panic!("the handshake was refused")
        };
        let first = within(STEP, "the upstream's frame", ws.next()).await;
        assert!(matches!(first, Some(Ok(ref m)) if m.to_text().ok() == Some("hi")), "{first:?}");
        let started = Instant::now();
        within(Duration::from_secs(5), "the client side ends after the upstream drops", async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    eventually(STEP, "no tunnel left open", || async {
        (metric(&proxy.metrics().await, "route_websockets_open") == Some(0.0)).then_some(())
    })
    .await;
    faulty.set(Fault::Healthy);
    recovers(&proxy, &faulty, &token).await;
    no_panic(&proxy);
    proxy.finish();
}

/// A target name that does not resolve: 502 for HTTP and for a WebSocket, fast, and the next
/// request with a resolvable target is fine.
#[tokio::test]
async fn a_target_name_that_does_not_resolve_is_502() {
    let faulty = Faulty::start(Fault::Healthy).await;
    let proxy = proxy_for(&faulty).await;
    let token = proxy.mint("127.0.0.1");
    let lost = proxy.mint("anonymous-deadbeef.desktop.abcdesktop.svc.cluster.local");
    for _ in 0..3 {
        let (outcome, took) = timed(&proxy, &lost, "nxdomain").await;
        assert_eq!(outcome.expect("an answer").status, StatusCode::BAD_GATEWAY);
        assert!(took < Duration::from_secs(5), "502 after {took:?}");
        let handshake = proxy.ws(&format!("/websockify?jwt_token={lost}"), &[]).await;
        assert!(matches!(handshake, Handshake::Refused(StatusCode::BAD_GATEWAY)));
    }
    recovers(&proxy, &faulty, &token).await;
    no_panic(&proxy);
    proxy.finish();
}

/// SIGTERM while clients keep sending: every request that reached the upstream gets its whole
/// answer, nothing gets a 5xx, and the process exits 0 within the drain deadline. Requests
/// that never reached the upstream may fail to connect (safe to retry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_nothing_that_reached_an_upstream() {
    let up = Upstream::start_with("spawner", Behavior::Delay(Duration::from_millis(100))).await;
    let m = Manifest::new(keys()).port("spawner", up.port()).set_in("limits", "drainSeconds", json!(10));
    let mut proxy = Proxy::start(&m).await;
    let token = proxy.mint("127.0.0.1");
    let proxy_ref = &proxy;
    let outcomes = Arc::new(std::sync::Mutex::new(Vec::<(String, Result<u16, String>)>::new()));
    let clients = (0..8).map(|c| {
        let outcomes = Arc::clone(&outcomes);
        let token = token.clone();
        async move {
            for n in 0..400 {
                let path = format!("/spawner/load/{c}/{n}");
                let outcome = proxy_ref
                    .try_send(Req::get(&path).abc(&token).timeout(Duration::from_secs(20)))
                    .await
                    .map(|r| {
                        assert!(
                            r.status != StatusCode::OK || r.seen().uri == path,
                            "an answer for another request"
                        );
                        r.status.as_u16()
                    });
                let failed = outcome.is_err();
                outcomes.lock().unwrap().push((path, outcome));
                if failed {
                    break;
                }
            }
        }
    });
    let terminate = async {
        eventually(STEP, "load is flowing", || async { (up.hits() >= 40).then_some(()) }).await;
        proxy_ref.sigterm();
    };
    let started = Instant::now();
    within(
        Duration::from_secs(60),
        "the load ends",
        futures_util::future::join(futures_util::future::join_all(clients), terminate),
    )
    .await;
    let status = proxy.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "route exited with {status} after SIGTERM under load");
    let outcomes = outcomes.lock().unwrap().clone();
    let reached: HashSet<String> = up.heads().into_iter().collect();
    let ok = outcomes.iter().filter(|(_, o)| o.as_ref().is_ok_and(|s| *s == 200)).count();
    let lost: Vec<&String> = outcomes
        .iter()
        .filter(|(p, o)| reached.contains(p) && !matches!(o, Ok(200)))
        .map(|(p, _)| p)
        .collect();
    let errors_5xx = outcomes.iter().filter(|(_, o)| o.as_ref().is_ok_and(|s| *s >= 500)).count();
    eprintln!(
        "SIGTERM under load: {} requests, {ok} answered 200, {} reached the upstream, {} failed to connect or were cut before the upstream; {:?}",
        outcomes.len(),
        reached.len(),
        outcomes.iter().filter(|(_, o)| o.is_err()).count(),
        started.elapsed()
    );
    assert!(lost.is_empty(), "requests that reached the upstream were lost: {lost:?}");
    assert_eq!(errors_5xx, 0, "5xx answers during the drain");
    assert!(ok >= 40);
    no_panic(&proxy);
    proxy.finish();
}
