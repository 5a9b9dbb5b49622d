//! The default layout: one current-thread runtime per core, each accepting on its own
//! `SO_REUSEPORT` socket of the same address. Connections spread over the runtimes (seen in
//! `route_connections_accepted_total{worker}`), and what is process-wide stays so: the
//! connection limit, the SIGTERM drain, a reload.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use support::client::{self, http_client};
use support::raw::RawConn;
use support::{Behavior, Manifest, Proxy, Req, STEP, Upstream, eventually, keys};

/// Workers that set `ROUTE_WORKERS` explicitly, so that several runtimes exist whatever the
/// machine: the connections of a test land on more than one of them.
const WORKERS: usize = 3;

/// Connections accepted by each worker runtime, from `/metrics`.
async fn accepted(proxy: &Proxy) -> BTreeMap<usize, f64> {
    let text = proxy.metrics().await;
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("route_connections_accepted_total{worker=\"")?;
            let (worker, rest) = rest.split_once('"')?;
            let value = rest.rsplit_once(' ')?.1;
            Some((worker.parse().ok()?, value.parse().ok()?))
        })
        .collect()
}

/// Waits until the workers accepted `total` connections in all, and returns them by worker.
async fn accepted_total(proxy: &Proxy, total: f64) -> BTreeMap<usize, f64> {
    eventually(STEP, "the connections are accepted", || async {
        let by_worker = accepted(proxy).await;
        (by_worker.values().sum::<f64>() >= total).then_some(by_worker)
    })
    .await
}

fn busy_workers(by_worker: &BTreeMap<usize, f64>) -> usize {
    by_worker.values().filter(|&&n| n > 0.0).count()
}

/// A request on a fresh connection of its own (a new client each time).
async fn fresh(proxy: &Proxy, req: Req) -> client::Resp {
    let (method, path) = (req.method.to_string(), req.path.clone());
    let resp = client::send(&http_client(), proxy.addr(), req).await.expect("a response");
    proxy.expect_access(&method, &path, resp.status.as_u16());
    resp
}

#[tokio::test]
async fn default_layout_serves_connections_on_one_runtime_per_core() {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let proxy = Proxy::start(&Manifest::new(keys())).await;
    for _ in 0..32 {
        assert_eq!(fresh(&proxy, Req::get("/healthz")).await.status, StatusCode::OK);
    }
    let by_worker = accepted_total(&proxy, 32.0).await;
    eprintln!("{cores} cores; connections by worker: {by_worker:?}");
    assert_eq!(by_worker.len(), cores, "one worker runtime per core: {by_worker:?}");
    if cores > 1 {
        // 32 connections hashed over the sockets: all on one has odds of 2^-31 on 2 cores.
        assert!(busy_workers(&by_worker) > 1, "every connection went to one runtime: {by_worker:?}");
    }
    proxy.finish();
}

#[tokio::test]
async fn route_workers_one_means_exactly_one_runtime() {
    let proxy = Proxy::builder().manifest(&Manifest::new(keys())).env("ROUTE_WORKERS", "1").start().await;
    for _ in 0..4 {
        assert_eq!(fresh(&proxy, Req::get("/healthz")).await.status, StatusCode::OK);
    }
    let by_worker = accepted_total(&proxy, 4.0).await;
    assert_eq!(by_worker.into_iter().collect::<Vec<_>>(), vec![(0, 4.0)]);
    proxy.finish();
}

#[tokio::test]
async fn connection_limit_is_global_across_runtimes() {
    const LIMIT: usize = 12;
    let proxy = Proxy::builder()
        .manifest(&Manifest::new(keys()))
        .env("ROUTE_WORKERS", &WORKERS.to_string())
        .arg("--max-connections")
        .arg(&LIMIT.to_string())
        .start()
        .await;
    let mut held = Vec::new();
    for _ in 0..LIMIT {
        let mut conn = RawConn::connect(proxy.addr()).await;
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: d\r\n\r\n").await;
        assert_eq!(conn.response(STEP).await.expect("answer").status, 200);
        proxy.expect_access("GET", "/healthz", 200);
        held.push(conn);
    }
    let by_worker = accepted_total(&proxy, LIMIT as f64).await;
    assert!(busy_workers(&by_worker) > 1, "the held connections are on one runtime: {by_worker:?}");
    // Whichever runtime the next connection reaches, the limit counts those of all of them.
    for _ in 0..4 {
        let mut over = RawConn::connect(proxy.addr()).await;
        over.send(b"GET /healthz HTTP/1.1\r\nHost: d\r\n\r\n").await;
        let answer = over.response(STEP).await.expect("an answer over the limit");
        assert_eq!(answer.status, 503, "a connection past the limit: {}", answer.head);
    }
    let by_worker = accepted_total(&proxy, (LIMIT + 4) as f64).await;
    eprintln!("connections by worker: {by_worker:?}");
    let metrics = proxy.metrics().await;
    assert_eq!(support::metric_sum(&metrics, "route_connections_refused_total", &["reason=\"total\""]), 4.0);
    // A freed slot serves again, on any runtime.
    held.truncate(LIMIT - 1);
    eventually(STEP, "a slot is free again", || async {
        let mut conn = RawConn::connect(proxy.addr()).await;
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n").await;
        conn.response(STEP).await.is_some_and(|r| r.status == 200).then_some(())
    })
    .await;
    proxy.expect_access("GET", "/healthz", 200);
    drop(held);
    proxy.finish();
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_on_every_runtime() {
    const IN_FLIGHT: usize = 16;
    let up = Upstream::start_with("spawner", Behavior::Delay(Duration::from_millis(2000))).await;
    let m = Manifest::new(keys()).port("spawner", up.port()).set_in("limits", "drainSeconds", json!(10));
    let mut proxy = Proxy::builder().manifest(&m).env("ROUTE_WORKERS", &WORKERS.to_string()).start().await;
    let token = proxy.mint("127.0.0.1");
    let in_flight = futures_util::future::join_all((0..IN_FLIGHT).map(|i| {
        let req = Req::get(&format!("/spawner/{i}")).abc(&token).timeout(Duration::from_secs(20));
        let (method, path) = (req.method.to_string(), req.path.clone());
        let proxy = &proxy;
        async move {
            let resp = client::send(&http_client(), proxy.addr(), req).await;
            if let Ok(resp) = &resp {
                proxy.expect_access(&method, &path, resp.status.as_u16());
            }
            resp
        }
    }));
    let terminate = async {
        eventually(STEP, "every request in flight at the upstream", || async {
            (up.hits() >= IN_FLIGHT).then_some(())
        })
        .await;
        let by_worker = accepted_total(&proxy, IN_FLIGHT as f64).await;
        eprintln!("in-flight connections by worker: {by_worker:?}");
        proxy.sigterm();
        by_worker
    };
    let (results, by_worker) = tokio::join!(in_flight, terminate);
    assert!(busy_workers(&by_worker) > 1, "the in-flight requests are on one runtime: {by_worker:?}");
    for (i, result) in results.into_iter().enumerate() {
        let resp = result.unwrap_or_else(|e| panic!("in-flight request {i} failed during the drain: {e}"));
        assert_eq!(resp.status, StatusCode::OK, "in-flight request {i}: {}", resp.text());
    }
    let status = proxy.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "route exited with {status} after SIGTERM");
    eventually(STEP, "every worker logged its drain", || async {
        let lines = proxy.log_lines();
        let drained: Vec<u64> =
            lines.iter().filter(|l| l["message"] == "drained").filter_map(|l| l["worker"].as_u64()).collect();
        let stopped = lines.iter().any(|l| l["message"] == "stopped");
        (stopped && drained.len() == WORKERS).then_some(drained)
    })
    .await;
    proxy.finish();
}

#[tokio::test]
async fn a_reload_reaches_every_runtime() {
    const REQUESTS: usize = 24;
    let before = Upstream::start("spawner").await;
    let after = Upstream::start("spawner").await;
    let m = Manifest::new(keys()).port("spawner", before.port());
    let mut proxy = Proxy::builder().manifest(&m).env("ROUTE_WORKERS", &WORKERS.to_string()).start().await;
    let token = proxy.mint("127.0.0.1");
    assert_eq!(fresh(&proxy, Req::get("/spawner/a").abc(&token)).await.status, StatusCode::OK);
    assert_eq!(before.hits(), 1);
    proxy.update(&m.clone().port("spawner", after.port()));
    eventually(Duration::from_secs(5), "the reload serves", || async {
        fresh(&proxy, Req::get("/spawner/b").abc(&token)).await;
        (after.hits() > 0).then_some(())
    })
    .await;
    let (hits_before, hits_after) = (before.hits(), after.hits());
    let start = accepted(&proxy).await;
    for i in 0..REQUESTS {
        let resp = fresh(&proxy, Req::get(&format!("/spawner/c{i}")).abc(&token)).await;
        assert_eq!(resp.status, StatusCode::OK);
    }
    assert_eq!(before.hits(), hits_before, "a runtime still served the old settings");
    assert_eq!(after.hits(), hits_after + REQUESTS);
    let total = start.values().sum::<f64>() + REQUESTS as f64;
    let end = accepted_total(&proxy, total).await;
    let spread: BTreeMap<usize, f64> =
        end.iter().map(|(w, n)| (*w, n - start.get(w).copied().unwrap_or(0.0))).collect();
    eprintln!("connections after the reload by worker: {spread:?}");
    assert!(busy_workers(&spread) > 1, "the requests after the reload are on one runtime: {spread:?}");
    proxy.finish();
}
