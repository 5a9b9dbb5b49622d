//! API server outages under `route serve --kube`: stopped and restarted mid-traffic (history
//! compacted, so resumed watches get 410 Gone and relist), and compaction while running. No
//! request may fail, and the next change must still arrive. Test API server only: these skip,
//! saying so, on a real cluster. Also the reload latency measurement (ignored: a benchmark).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;
use route_mint::{KeySet, PrivateFormat};
use serde_json::Value;
use support::kube::{Cluster, mixed, payload_secret, route_config, signing_secret};
use support::{Manifest, Proxy, Req, Upstream, eventually, keys, mint_with, other_keys};

const SHOW: Duration = Duration::from_secs(15);

async fn setup(test: &str, grace: u64) -> Option<(Cluster, Proxy, Upstream)> {
    let cluster = Cluster::start(test, true).await?;
    let up = Upstream::start("spawner").await;
    cluster.apply(&signing_secret(keys())).await;
    cluster.apply(&payload_secret(keys())).await;
    let spec = Manifest::new(keys()).port("spawner", up.port()).grace_seconds(grace).spec;
    cluster.apply(&route_config(&Value::Object(spec))).await;
    let proxy = cluster.route(keys()).await;
    eventually(SHOW, "/readyz answers 200", || async {
        (proxy.admin_get("/readyz").await.status == StatusCode::OK).then_some(())
    })
    .await;
    Some((cluster, proxy, up))
}

async fn spawner(proxy: &Proxy, token: &str) -> StatusCode {
    proxy.send(Req::get("/spawner").abc(token)).await.status
}

/// Requests with `token` every 10 ms until stopped; counts the answers and the failures.
struct Traffic {
    task: tokio::task::JoinHandle<()>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
}

impl Traffic {
    fn start(proxy: &Arc<Proxy>, token: &str) -> Self {
        let stop: Arc<AtomicBool> = Arc::default();
        let (sent, failed): (Arc<AtomicUsize>, Arc<AtomicUsize>) = (Arc::default(), Arc::default());
        let (stop2, sent2, failed2) = (Arc::clone(&stop), Arc::clone(&sent), Arc::clone(&failed));
        let (proxy, token) = (Arc::clone(proxy), token.to_owned());
        let task = tokio::spawn(async move {
            let (stop, sent, failed) = (stop2, sent2, failed2);
            while !stop.load(Ordering::Relaxed) {
                let ok = matches!(proxy.try_send(Req::get("/spawner").abc(&token)).await, Ok(r) if r.status == StatusCode::OK);
                sent.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Self { task, stop, sent, failed }
    }

    /// Stops, waits for the last request, and returns (sent, failed).
    async fn stop(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        (self.sent.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }
}

#[tokio::test]
async fn an_api_server_restart_mid_traffic_fails_no_request_and_the_next_change_arrives() {
    let test = "an_api_server_restart_mid_traffic_fails_no_request_and_the_next_change_arrives";
    let Some((cluster, proxy, _up)) = setup(test, 600).await else { return };
    let server = cluster.test_server().unwrap();
    let proxy = Arc::new(proxy);
    let token = proxy.mint("127.0.0.1");
    let traffic = Traffic::start(&proxy, &token);
    tokio::time::sleep(Duration::from_millis(300)).await;

    server.stop().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(proxy.get("/healthz").await.status, StatusCode::OK, "/healthz during the outage");
    assert_eq!(proxy.admin_get("/readyz").await.status, StatusCode::OK, "/readyz during the outage");
    server.clear_requests();
    server.restart().await.unwrap();

    // The next change arrives: a rotation of the signing key.
    let token_new = proxy.secret(&mint_with(&mixed(other_keys(), keys()), "127.0.0.1", 420));
    cluster.apply(&signing_secret(other_keys())).await;
    let started = Instant::now();
    eventually(SHOW, "the rotation after the restart arrives", || async {
        (spawner(&proxy, &token_new).await == StatusCode::OK).then_some(())
    })
    .await;
    eprintln!("rotation after the restart served in {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (sent, failed) = traffic.stop().await;
    assert!(sent > 100, "only {sent} requests were sent");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed during the outage");

    // The watchers relisted: the history was compacted, so resuming from the old
    // resourceVersion is answered 410 Gone and kube-runtime lists again.
    let lists: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/secrets") && !r.query.contains("watch=true"))
        .map(|r| format!("{} {}", r.path, r.query))
        .collect();
    assert!(!lists.is_empty(), "no Secret list after the restart: {:?}", server.requests());
    Arc::try_unwrap(proxy).ok().unwrap().finish();
}

#[tokio::test]
async fn compaction_while_watching_loses_no_change() {
    let Some((cluster, proxy, _up)) = setup("compaction_while_watching_loses_no_change", 600).await else {
        return;
    };
    let server = cluster.test_server().unwrap();
    for round in 0..3 {
        server.compact();
        let next = KeySet::generate(1024, PrivateFormat::Pkcs8).unwrap();
        let token = proxy.secret(&mint_with(&mixed(&next, keys()), "127.0.0.1", 420));
        cluster.apply(&signing_secret(&next)).await;
        eventually(SHOW, &format!("rotation {round} after a compaction"), || async {
            (spawner(&proxy, &token).await == StatusCode::OK).then_some(())
        })
        .await;
    }
    proxy.finish();
}

/// Reload latency: from a Secret update (kubectl apply returned) to the first request served
/// under the new key, over many rotations.
///
/// `ROTATIONS=50 cargo test --test kube_outage -- --ignored --nocapture reload_latency`
#[tokio::test]
#[ignore = "a measurement: ROTATIONS=50 cargo test --test kube_outage -- --ignored --nocapture reload_latency"]
async fn reload_latency() {
    let Some(cluster) = Cluster::start("reload_latency", false).await else { return };
    let up = Upstream::start("spawner").await;
    cluster.apply(&signing_secret(keys())).await;
    cluster.apply(&payload_secret(keys())).await;
    let spec = Manifest::new(keys()).port("spawner", up.port()).grace_seconds(0).spec;
    cluster.apply(&route_config(&Value::Object(spec))).await;
    let proxy = cluster.route_builder(keys()).log_level("warn").no_access_check().start().await;
    let rotations: usize = std::env::var("ROTATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(50);
    let mut after_write = Vec::with_capacity(rotations);
    let mut with_kubectl = Vec::with_capacity(rotations);
    for _ in 0..rotations {
        let next = KeySet::generate(1024, PrivateFormat::Pkcs8).unwrap();
        let token = proxy.secret(&mint_with(&mixed(&next, keys()), "127.0.0.1", 420));
        let yaml = signing_secret(&next);
        let started = Instant::now();
        cluster.apply(&yaml).await;
        let written = Instant::now();
        loop {
            if spawner(&proxy, &token).await == StatusCode::OK {
                break;
            }
            assert!(written.elapsed() < SHOW, "a rotation did not arrive");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        after_write.push(written.elapsed());
        with_kubectl.push(started.elapsed());
    }
    for (what, mut samples) in [("after the write", after_write), ("including kubectl", with_kubectl)] {
        samples.sort();
        let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        eprintln!(
            "reload latency {what}, {} rotations: min {:?} p50 {:?} p90 {:?} p99 {:?} max {:?}",
            samples.len(),
            samples[0],
            pick(0.5),
            pick(0.9),
            pick(0.99),
            samples[samples.len() - 1]
        );
    }
    proxy.finish();
}
