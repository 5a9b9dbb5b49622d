//! Kubernetes API server faults under `route serve --kube` not covered by `kube_outage.rs`
//! (stop, restart with compacted history) and `kube_operator.rs` (Secret and RouteConfig
//! deleted, then recreated): an API server that answers 500 to everything for a while. No
//! request may fail while it does (the watchers' lists and watches all fail after a restart),
//! `/readyz` stays ready, the watchers retry with backoff (no more API requests than the
//! default backoff allows), and the next change arrives once it answers again. Test API server
//! only (fault injection): skipped, saying so, on a real cluster.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;
use support::kube::{Cluster, mixed, payload_secret, route_config, signing_secret};
use support::{Manifest, Req, Upstream, eventually, keys, mint_with, other_keys};

const SHOW: Duration = Duration::from_secs(15);

/// The shortest wait of kube-runtime's `DefaultBackoff` (kube-runtime 5 watcher.rs: 800 ms
/// doubling to 30 s, jitter adding up to as much again, reset after 120 s without errors).
const MIN_RETRY: Duration = Duration::from_millis(800);
/// The watchers `route` runs here: the RouteConfig and the two Secrets it names.
const WATCHERS: usize = 3;

#[tokio::test]
async fn an_api_server_answering_500s_fails_no_request_and_the_next_change_arrives() {
    let test = "an_api_server_answering_500s_fails_no_request_and_the_next_change_arrives";
    let Some(cluster) = Cluster::start(test, true).await else { return };
    let up = Upstream::start("spawner").await;
    cluster.apply(&signing_secret(keys())).await;
    cluster.apply(&payload_secret(keys())).await;
    let spec = Manifest::new(keys()).port("spawner", up.port()).grace_seconds(600).spec;
    cluster.apply(&route_config(&Value::Object(spec))).await;
    let proxy = cluster.route(keys()).await;
    eventually(SHOW, "/readyz answers 200", || async {
        (proxy.admin_get("/readyz").await.status == StatusCode::OK).then_some(())
    })
    .await;
    let server = cluster.test_server().unwrap();
    let token = proxy.mint("127.0.0.1");

    // Every API request answered 500 for 3 s, while clients keep sending; the server restarts
    // first so that the watchers' new lists and watches all meet the 500s.
    server.fail_all(500);
    server.stop().await;
    server.restart().await.unwrap();
    server.clear_requests();
    let cleared = Instant::now();
    let until = cleared + Duration::from_secs(3);
    let (mut sent, mut failed) = (0, 0);
    while Instant::now() < until {
        let status = proxy.send(Req::get("/spawner/during-500s").abc(&token)).await.status;
        sent += 1;
        if status != StatusCode::OK {
            failed += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(proxy.admin_get("/readyz").await.status, StatusCode::OK, "/readyz while the API server fails");
    let requests = server.requests();
    let window = cleared.elapsed();
    server.clear_faults();
    let failed_api = requests.len();
    assert!(failed_api > 0, "the watchers did not call the API server during the 500s");
    // With backoff, not in a hot loop: kube-runtime's default watcher backoff waits at least
    // 0.8 s (doubling to 30 s; its jitter only adds) before each retry of a failed list or
    // watch, even when a relist resets it, so each watcher makes at most 1 + window / 0.8 s
    // requests. Twice that for the three watchers (the RouteConfig and its two Secrets), plus a
    // few for the status writer and events, is the bound; a loop without backoff makes hundreds.
    let per_watcher = 1 + (window.as_secs_f64() / MIN_RETRY.as_secs_f64()).floor() as usize;
    let bound = 2 * WATCHERS * per_watcher + 4;
    let listed: Vec<String> = requests
        .iter()
        .take(20)
        .map(|r| format!("{} {}?{} {}", r.method, r.path, r.query, r.status))
        .collect();
    assert!(
        failed_api <= bound,
        "{failed_api} API requests in {window:?} of 500s (at most {bound} with backoff); the first: {listed:#?}"
    );
    assert!(sent > 50, "only {sent} requests were sent");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed while the API server answered 500");

    // The next change arrives once it answers again: a rotation of the signing key.
    let rotated = proxy.secret(&mint_with(&mixed(other_keys(), keys()), "127.0.0.1", 420));
    cluster.apply(&signing_secret(other_keys())).await;
    let started = Instant::now();
    eventually(Duration::from_secs(30), "the rotation after the 500s arrives", || async {
        (proxy.send(Req::get("/spawner/after-500s").abc(&rotated)).await.status == StatusCode::OK)
            .then_some(())
    })
    .await;
    eprintln!(
        "{failed_api} API requests answered 500; the rotation after them served in {:?}",
        started.elapsed()
    );
    assert_eq!(proxy.send(Req::get("/spawner/old-key").abc(&token)).await.status, StatusCode::OK, "grace");
    assert!(!proxy.logs_redacted().contains("panicked"));
    proxy.finish();
}
