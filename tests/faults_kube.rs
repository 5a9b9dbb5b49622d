//! Kubernetes API server faults the real server cannot be made to produce, injected by a
//! fault proxy between `route` and kube-apiserver (`support/fault_proxy.rs`): every request
//! answered 500 for a while, then every request left hanging. No request may fail meanwhile,
//! `/readyz` stays ready, the watchers retry with backoff (no more API requests than the
//! default backoff allows), and the next change arrives once the server answers again. On the
//! control plane started here only: skipped, saying so, on a real cluster.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;
use support::fault_proxy::{FaultProxy, Mode};
use support::kube::{Cluster, mixed, payload_secret, route_config, signing_secret};
use support::{Manifest, Proxy, Req, Upstream, eventually, keys, mint_with, other_keys};

const SHOW: Duration = Duration::from_secs(15);

/// The shortest wait of kube-runtime's `DefaultBackoff` (kube-runtime 5 watcher.rs: 800 ms
/// doubling to 30 s, jitter adding up to as much again, reset after 120 s without errors).
const MIN_RETRY: Duration = Duration::from_millis(800);
/// The watchers `route` runs here: the RouteConfig and the two Secrets it names.
const WATCHERS: usize = 3;

/// The cluster configured, and `route` serving through a fault proxy in front of its server.
async fn setup(test: &str) -> Option<(Cluster, FaultProxy, Proxy, Upstream)> {
    let cluster = Cluster::start(test).await?;
    let Some(plane) = cluster.plane() else {
        support::kube::say(&format!(
            "{test}: skipped on a real cluster: the fault proxy fronts the test control plane"
        ));
        return None;
    };
    let faults = FaultProxy::start(plane).await;
    let kubeconfig = cluster.route_kubeconfig.with_extension("via-proxy");
    faults.write_kubeconfig(&kubeconfig, &cluster.route_token, &cluster.namespace);
    let up = Upstream::start("spawner").await;
    cluster.apply(&signing_secret(keys())).await;
    cluster.apply(&payload_secret(keys())).await;
    let spec = Manifest::new(keys()).port("spawner", up.port()).grace_seconds(600).spec;
    cluster.apply(&route_config(&Value::Object(spec))).await;
    let proxy = cluster.route_builder_with(keys(), &kubeconfig).start().await;
    eventually(SHOW, "/readyz answers 200", || async {
        (proxy.admin_get("/readyz").await.status == StatusCode::OK).then_some(())
    })
    .await;
    Some((cluster, faults, proxy, up))
}

/// Sends `/spawner` requests for `window`; returns (sent, failed).
async fn traffic_for(proxy: &Proxy, token: &str, what: &str, window: Duration) -> (usize, usize) {
    let until = Instant::now() + window;
    let (mut sent, mut failed) = (0, 0);
    while Instant::now() < until {
        let status = proxy.send(Req::get(&format!("/spawner/{what}")).abc(token)).await.status;
        sent += 1;
        if status != StatusCode::OK {
            failed += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (sent, failed)
}

/// A rotation of the signing key, applied straight to the server, reaches route.
async fn next_change_arrives(cluster: &Cluster, proxy: &Proxy, what: &str) -> Duration {
    let rotated = proxy.secret(&mint_with(&mixed(other_keys(), keys()), "127.0.0.1", 420));
    cluster.apply(&signing_secret(other_keys())).await;
    let started = Instant::now();
    eventually(Duration::from_secs(30), &format!("the rotation after {what} arrives"), || async {
        (proxy.send(Req::get("/spawner/after").abc(&rotated)).await.status == StatusCode::OK).then_some(())
    })
    .await;
    started.elapsed()
}

#[tokio::test]
async fn an_api_server_answering_500s_fails_no_request_and_the_next_change_arrives() {
    let test = "an_api_server_answering_500s_fails_no_request_and_the_next_change_arrives";
    let Some((cluster, faults, proxy, _up)) = setup(test).await else { return };
    let token = proxy.mint("127.0.0.1");

    // Every API request answered 500 for 3 s, while clients keep sending; the open watches are
    // cut first, so that the watchers' new lists and watches all meet the 500s.
    faults.set(Mode::Fail(500));
    faults.cut();
    faults.clear_seen();
    let cleared = Instant::now();
    let (sent, failed) = traffic_for(&proxy, &token, "during-500s", Duration::from_secs(3)).await;
    assert_eq!(proxy.admin_get("/readyz").await.status, StatusCode::OK, "/readyz while the API server fails");
    let requests = faults.seen();
    let window = cleared.elapsed();
    faults.set(Mode::Pass);
    let failed_api = requests.iter().filter(|r| r.status == 500).count();
    assert!(failed_api > 0, "the watchers did not call the API server during the 500s");
    // With backoff, not in a hot loop: kube-runtime's default watcher backoff waits at least
    // 0.8 s (doubling to 30 s; its jitter only adds) before each retry of a failed list or
    // watch, so each watcher makes at most 1 + window / 0.8 s requests. Twice that for the three
    // watchers, plus a few for the status writer and events, is the bound; a loop without
    // backoff makes hundreds.
    let per_watcher = 1 + (window.as_secs_f64() / MIN_RETRY.as_secs_f64()).floor() as usize;
    let bound = 2 * WATCHERS * per_watcher + 4;
    assert!(
        requests.len() <= bound,
        "{} API requests in {window:?} of 500s (at most {bound} with backoff): {requests:#?}",
        requests.len()
    );
    assert!(sent > 50, "only {sent} requests were sent");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed while the API server answered 500");

    let took = next_change_arrives(&cluster, &proxy, "the 500s").await;
    eprintln!("{failed_api} API requests answered 500; the rotation after them served in {took:?}");
    assert_eq!(proxy.send(Req::get("/spawner/old-key").abc(&token)).await.status, StatusCode::OK, "grace");
    assert!(!proxy.logs_redacted().contains("panicked"));
    proxy.finish();
}

#[tokio::test]
async fn an_api_server_that_hangs_fails_no_request_and_the_next_change_arrives() {
    let test = "an_api_server_that_hangs_fails_no_request_and_the_next_change_arrives";
    let Some((cluster, faults, proxy, _up)) = setup(test).await else { return };
    let token = proxy.mint("127.0.0.1");

    // Every API request left without an answer for 3 s, the open watches cut first.
    faults.set(Mode::Hang);
    faults.cut();
    faults.clear_seen();
    let (sent, failed) = traffic_for(&proxy, &token, "during-hang", Duration::from_secs(3)).await;
    assert_eq!(proxy.admin_get("/readyz").await.status, StatusCode::OK, "/readyz while the API server hangs");
    let held = faults.seen().iter().filter(|r| r.status == 0).count();
    faults.set(Mode::Pass);
    assert!(held > 0, "no API request met the hang");
    assert!(sent > 50, "only {sent} requests were sent");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed while the API server hung");

    let took = next_change_arrives(&cluster, &proxy, "the hang").await;
    eprintln!("{held} API requests held; the rotation after them served in {took:?}");
    proxy.finish();
}
