//! API server outages under `route serve --kube`, with the real processes: kube-apiserver
//! stopped and restarted mid-traffic (etcd's history compacted meanwhile: the resumed watches
//! meet a new watch cache and relist), and compaction while running (the watches cut, held
//! while a Secret changes and the history is compacted, then resumed), and the same without the
//! watch cache for Secrets, where the resumed watch fails on every retry until route relists.
//! No request may fail, and the next change must still arrive. Each test runs a control plane of its own; they skip, saying so, on a real
//! cluster. Also the reload latency measurement (ignored: a benchmark).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;
use route_mint::{KeySet, PrivateFormat};
use serde_json::Value;
use support::fault_proxy::{FaultProxy, Mode};
use support::kube::{Cluster, mixed, payload_secret, route_config, signing_secret};
use support::kube_requests::{
    assert_requests_name_their_objects, assert_requests_name_their_objects_but_during, authorized_since,
    route_requests,
};
use support::{Manifest, Proxy, Req, Upstream, eventually, keys, metric_sum, mint_with, other_keys};

const SHOW: Duration = Duration::from_secs(20);
const SECRETS: [&str; 2] = ["abcdesktopjwtdesktopsigning", "abcdesktopjwtdesktoppayload"];

/// The Secrets and a RouteConfig applied in `cluster`.
async fn configure(cluster: &Cluster, grace: u64) -> Upstream {
    let up = Upstream::start("spawner").await;
    cluster.apply(&signing_secret(keys())).await;
    cluster.apply(&payload_secret(keys())).await;
    let spec = Manifest::new(keys()).port("spawner", up.port()).grace_seconds(grace).spec;
    cluster.apply(&route_config(&Value::Object(spec))).await;
    up
}

async fn ready(proxy: &Proxy) {
    eventually(SHOW, "/readyz answers 200", || async {
        (proxy.admin_get("/readyz").await.status == StatusCode::OK).then_some(())
    })
    .await;
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

/// How many lists of `secret` route made, from the audit log.
fn lists_of(cluster: &Cluster, secret: &str) -> usize {
    route_requests(cluster)
        .unwrap_or_default()
        .iter()
        .filter(|e| e["verb"] == "list" && e["objectRef"]["name"] == secret)
        .count()
}

/// An audit timestamp (RFC 3339, microseconds) for now: the last event's, the server being up.
fn audit_now(plane: &support::control_plane::ControlPlane) -> String {
    plane
        .audit()
        .iter()
        .rev()
        .find_map(|e| e["stageTimestamp"].as_str().map(str::to_owned))
        .expect("an audit event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_restart_mid_traffic_fails_no_request_and_the_next_change_arrives() {
    let test = "an_api_server_restart_mid_traffic_fails_no_request_and_the_next_change_arrives";
    let Some(cluster) = Cluster::start_own(test, &[]).await else { return };
    let _up = configure(&cluster, 600).await;
    let proxy = Arc::new(cluster.route(keys()).await);
    ready(&proxy).await;
    let token = proxy.mint("127.0.0.1");
    let traffic = Traffic::start(&proxy, &token);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listed_before = lists_of(&cluster, SECRETS[0]);

    // kube-apiserver stopped (etcd keeps running), its history compacted meanwhile, started again.
    let plane = cluster.plane().unwrap();
    tokio::task::block_in_place(|| plane.stop_apiserver());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(proxy.get("/healthz").await.status, StatusCode::OK, "/healthz during the outage");
    assert_eq!(proxy.admin_get("/readyz").await.status, StatusCode::OK, "/readyz during the outage");
    // A change made while the server is down would be lost to a watch resumed past it; compacting
    // the history makes every resumed watch 410 Gone.
    tokio::task::block_in_place(|| plane.compact_etcd());
    let restarted = Instant::now();
    let restart_from = audit_now(plane);
    tokio::task::block_in_place(|| plane.start_apiserver());
    eprintln!("kube-apiserver back in {:?}", restarted.elapsed());
    // Ready, but it may refuse route 403 until its RBAC authorizer has read the Roles back.
    let authorized = authorized_since(&cluster, SECRETS[0]).await;

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

    // The watchers relisted after the restart, still by name and never denied.
    let listed_after = lists_of(&cluster, SECRETS[0]);
    assert!(listed_after > listed_before, "no list of the Secret after the restart ({listed_before} before)");
    let logs = proxy.logs_redacted();
    // Either a resumed watch met 410 Gone (kube-runtime relists), or the watches failed 3 times
    // in a row meanwhile (route restarts them from a list; right after a restart the server
    // also answers 403 until its RBAC cache is filled): which comes first depends on timing.
    let relisted: Vec<&str> = logs
        .lines()
        .filter(|l| {
            (l.contains("watch failed") && l.contains("too old resource version"))
                || l.contains("restarting it from a fresh list")
        })
        .collect();
    assert!(!relisted.is_empty(), "no watch met 410 Gone nor was restarted from a list: {logs}");
    eprintln!("relisted after the restart: {}", relisted[0]);
    let failures = metric_sum(&proxy.metrics().await, "route_watch_failures_total", &[]);
    assert!(failures >= 1.0, "the watches' failures during the outage are not counted");
    assert_requests_name_their_objects_but_during(&cluster, &SECRETS, (&restart_from, &authorized));
    Arc::try_unwrap(proxy).ok().unwrap().finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_while_watching_loses_no_change() {
    let test = "compaction_while_watching_loses_no_change";
    // With the watch cache (the default), a watch resumed from before the compaction is served
    // from the cache. Without it, see the next test.
    let Some(cluster) = Cluster::start_own(test, &[]).await else { return };
    let plane = cluster.plane().unwrap();
    let faults = FaultProxy::start(plane).await;
    let kubeconfig = cluster.route_kubeconfig.with_extension("via-proxy");
    faults.write_kubeconfig(&kubeconfig, &cluster.route_token, &cluster.namespace);
    let _up = configure(&cluster, 600).await;
    let proxy = cluster.route_builder_with(keys(), &kubeconfig).start().await;
    ready(&proxy).await;
    for round in 0..3 {
        // route's connections cut and held while the Secret changes and the history is
        // compacted past the revision its watches resume from.
        faults.set(Mode::Hang);
        faults.cut();
        let next = KeySet::generate(1024, PrivateFormat::Pkcs8).unwrap();
        let token = proxy.secret(&mint_with(&mixed(&next, keys()), "127.0.0.1", 420));
        cluster.apply(&signing_secret(&next)).await;
        tokio::task::block_in_place(|| plane.compact_etcd());
        faults.set(Mode::Pass);
        eventually(SHOW, &format!("rotation {round} after a compaction"), || async {
            (spawner(&proxy, &token).await == StatusCode::OK).then_some(())
        })
        .await;
    }
    let held = faults.seen().iter().filter(|s| s.status == 0).count();
    assert!(held > 0, "no request of route's met the cut");
    assert_requests_name_their_objects(&cluster, &SECRETS);
    proxy.finish();
}

/// How long a change may take to arrive once the server answers again, when the resumed watches
/// keep failing: route relists after 3 consecutive failures, backing off 0.8 s doubling (jitter
/// adding up to as much again) before each retry: under 12 s of waits, then a list.
const RELIST_BOUND: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_without_the_watch_cache_relists_and_loses_no_change() {
    let test = "compaction_without_the_watch_cache_relists_and_loses_no_change";
    // Without the watch cache for Secrets, 1.20 answers a watch resumed at a compacted revision
    // `500 etcd event received with PrevKv=nil` on every retry, never 410 Gone: kube-runtime's
    // watcher alone would retry at that revision forever. route restarts it from a list.
    let Some(cluster) = Cluster::start_own(test, &["--watch-cache-sizes=secrets#0"]).await else { return };
    let plane = cluster.plane().unwrap();
    let faults = FaultProxy::start(plane).await;
    let kubeconfig = cluster.route_kubeconfig.with_extension("via-proxy");
    faults.write_kubeconfig(&kubeconfig, &cluster.route_token, &cluster.namespace);
    let _up = configure(&cluster, 600).await;
    let proxy = Arc::new(cluster.route_builder_with(keys(), &kubeconfig).start().await);
    ready(&proxy).await;
    let traffic = Traffic::start(&proxy, &proxy.mint("127.0.0.1"));

    // A first rotation, served, while route's writes (status, Events) are refused: the signing
    // Secret's watcher resumes from the rotation's revision, and nothing else is written after it.
    faults.set(Mode::FailWrites(503));
    let first = proxy.secret(&mint_with(&mixed(other_keys(), keys()), "127.0.0.1", 420));
    cluster.apply(&signing_secret(other_keys())).await;
    eventually(SHOW, "the first rotation", || async {
        (spawner(&proxy, &first).await == StatusCode::OK).then_some(())
    })
    .await;

    // route's watches cut and held while the Secret changes again (the one write since) and
    // etcd's history is compacted up to that change: the resumed watch starts at the compacted
    // revision, whose event has lost its previous value. Then released.
    faults.set(Mode::Hang);
    faults.cut();
    let next = KeySet::generate(1024, PrivateFormat::Pkcs8).unwrap();
    let token = proxy.secret(&mint_with(&mixed(&next, keys()), "127.0.0.1", 420));
    let before = tokio::task::block_in_place(|| plane.etcd_revision());
    cluster.apply(&signing_secret(&next)).await;
    let compacted = tokio::task::block_in_place(|| plane.compact_etcd());
    assert_eq!(compacted, before + 1, "another write than the Secret's between the two");
    faults.set(Mode::Pass);
    let released = Instant::now();
    eventually(RELIST_BOUND, "the rotation made while the watches were cut", || async {
        (spawner(&proxy, &token).await == StatusCode::OK).then_some(())
    })
    .await;
    let took = released.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (sent, failed) = traffic.stop().await;
    assert!(sent > 100, "only {sent} requests were sent");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed meanwhile");

    // The server did answer the resumed watch 500 (the fault this test is about), and route
    // relisted because of it.
    let logs = proxy.logs_redacted();
    let prevkv: Vec<&str> = logs.lines().filter(|l| l.contains("PrevKv=nil")).collect();
    assert!(!prevkv.is_empty(), "no resumed watch answered `PrevKv=nil`: {logs}");
    let relisted: Vec<&str> =
        logs.lines().filter(|l| l.contains("restarting it from a fresh list")).collect();
    assert!(!relisted.is_empty(), "no watcher restarted from a list: {logs}");
    let relists = metric_sum(
        &proxy.metrics().await,
        "route_watch_failures_total",
        &["kind=\"Secret\"", "next=\"relist\""],
    );
    assert!(relists >= 1.0, "the Secret watcher's restart from a list is not counted");
    eprintln!(
        "rotation served {took:?} after the release ({} watch failures with PrevKv=nil); {}",
        prevkv.len(),
        relisted[0]
    );
    assert_requests_name_their_objects(&cluster, &SECRETS);
    Arc::try_unwrap(proxy).ok().unwrap().finish();
}

/// Reload latency: from a Secret update (kubectl apply returned) to the first request served
/// under the new key, over many rotations.
///
/// `ROTATIONS=50 cargo test --test kube_outage -- --ignored --nocapture reload_latency`
#[tokio::test]
#[ignore = "a measurement: ROTATIONS=50 cargo test --test kube_outage -- --ignored --nocapture reload_latency"]
async fn reload_latency() {
    let Some(cluster) = Cluster::start("reload_latency").await else { return };
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
