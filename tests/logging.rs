//! Log output never holds up traffic (issue 15). Standard error that nobody reads, or that is
//! read slowly, costs log lines, counted in `route_log_lines_dropped_total`, never a request
//! or a `/healthz` answer; once it drains, one line says how many were lost. A shutdown writes
//! out every line still queued.
//!
//! The stalled and slow runs print what they measured (`cargo test --test logging --
//! --nocapture`); `bench/stall` runs the same load against a release build.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use http::StatusCode;
use serde_json::Value;
use support::{Desk, Proxy, Req, eventually, keys, metric};

const REQUESTS: usize = 5000;
const CONCURRENCY: usize = 50;
/// A queue small enough that the pipe (64 KiB) and the queue fill within the run.
const QUEUE_LINES: &str = "500";
/// The slowest `/healthz` answer allowed while standard error is stalled: the stall used to
/// stop every answer, so any bound far below the client's 5 s timeout tells the two apart
/// while leaving room for a shared, busy machine.
const HEALTHZ_WORST: Duration = Duration::from_secs(1);
const DROPPED: &str = "route_log_lines_dropped_total";

/// `/healthz` on a fresh connection every 20 ms from a thread of its own, so that the test's
/// own load does not delay the measure.
struct Probes {
    latencies: Arc<Mutex<Vec<Duration>>>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Probes {
    fn start(addr: SocketAddr) -> Self {
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (out, done) = (Arc::clone(&latencies), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let started = Instant::now();
                let answered = healthz(addr);
                out.lock().unwrap().push(if answered { started.elapsed() } else { Duration::MAX });
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Self { latencies, stop, thread }
    }

    /// Stops probing; the latencies sorted, a failed probe as `Duration::MAX`.
    fn finish(self) -> Vec<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        let mut latencies = self.latencies.lock().unwrap().clone();
        latencies.sort();
        latencies
    }
}

/// One `GET /healthz`: true when a 200 came back within 5 s.
fn healthz(addr: SocketAddr) -> bool {
    let limit = Duration::from_secs(5);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, limit) else { return false };
    let _ = stream.set_read_timeout(Some(limit));
    let request = b"GET /healthz HTTP/1.1\r\nHost: route\r\nConnection: close\r\n\r\n";
    let mut answer = Vec::new();
    stream.write_all(request).is_ok()
        && stream.read_to_end(&mut answer).is_ok()
        && answer.starts_with(b"HTTP/1.1 200")
}

/// Sends `REQUESTS` cache hits, `CONCURRENCY` at a time; how many were answered 200.
async fn cache_hits(proxy: &Proxy, token: &str) -> usize {
    futures_util::stream::iter(0..REQUESTS)
        .map(|i| {
            let req = Req::get(&format!("/spawner/load{i}")).abc(token).timeout(Duration::from_secs(10));
            proxy.try_send(req)
        })
        .buffer_unordered(CONCURRENCY)
        .filter(|resp| std::future::ready(resp.as_ref().is_ok_and(|r| r.status == StatusCode::OK)))
        .count()
        .await
}

/// The loss warnings written so far: (lost, total) of each.
fn notices(proxy: &Proxy) -> Vec<(u64, u64)> {
    proxy
        .log_lines()
        .iter()
        .filter(|l| l["target"] == "route::logging")
        .map(|l| (l["lost"].as_u64().expect("lost"), l["total"].as_u64().expect("total")))
        .collect()
}

/// Access lines of the load's requests that reached standard error.
fn load_lines(proxy: &Proxy) -> usize {
    let is_load = |l: &Value| {
        l["target"] == "route::access" && l["path"].as_str().is_some_and(|p| p.starts_with("/spawner/load"))
    };
    proxy.log_lines().iter().filter(|l| is_load(l)).count()
}

async fn dropped(proxy: &Proxy) -> u64 {
    metric(&proxy.metrics().await, DROPPED).expect("the dropped-lines counter is exported") as u64
}

fn report(what: &str, answered: usize, latencies: &[Duration], dropped: u64) {
    let ms = |d: Duration| {
        if d == Duration::MAX { "none".to_owned() } else { format!("{:.1} ms", d.as_secs_f64() * 1e3) }
    };
    println!(
        "{what}: {answered}/{REQUESTS} cache hits answered; /healthz {} probes, median {}, worst {}; {DROPPED} {dropped}",
        latencies.len(),
        ms(latencies[latencies.len() / 2]),
        ms(latencies[latencies.len() - 1]),
    );
}

async fn start(desk: &Desk) -> Proxy {
    Proxy::builder()
        .manifest(&desk.manifest(keys()))
        .hold_stderr()
        .arg("--log-queue-lines")
        .arg(QUEUE_LINES)
        .start()
        .await
}

#[tokio::test]
async fn a_stalled_stderr_delays_nothing_and_recovery_says_how_many_lines_were_lost() {
    let desk = Desk::start().await;
    let mut proxy = start(&desk).await;
    let token = proxy.mint("127.0.0.1");
    let probes = Probes::start(proxy.addr());
    let answered = cache_hits(&proxy, &token).await;
    let latencies = probes.finish();
    let during = eventually(Duration::from_secs(3), "dropped lines are counted", || async {
        let dropped = dropped(&proxy).await;
        (dropped > 0).then_some(dropped)
    })
    .await;
    report("stalled standard error", answered, &latencies, during);
    assert_eq!(answered, REQUESTS, "every cache hit is answered while nobody reads standard error");
    assert!(latencies.len() >= 5, "too few /healthz probes: {latencies:?}");
    assert!(latencies[latencies.len() - 1] < HEALTHZ_WORST, "/healthz while stalled: {latencies:?}");

    // The collector comes back: what was queued is written, then one line for the rest.
    proxy.read_logs(None);
    let (notices, total) = eventually(Duration::from_secs(10), "a line says how many were lost", || async {
        let notices = notices(&proxy);
        let total = dropped(&proxy).await;
        (notices.last().is_some_and(|&(_, t)| t == total)).then_some((notices, total))
    })
    .await;
    assert_eq!(notices, [(total, total)], "one warning for the whole stall, the metric's count");
    assert!(total >= during);
    let written = load_lines(&proxy);
    assert!(written < REQUESTS, "all {written} access lines were written: nothing was stalled");
    assert!(
        written as u64 + total >= REQUESTS as u64,
        "{written} access lines written and {total} lines dropped account for fewer than {REQUESTS} requests"
    );
    proxy.finish();
}

#[tokio::test]
async fn a_slow_stderr_costs_lines_not_requests() {
    let desk = Desk::start().await;
    let mut proxy = start(&desk).await;
    // About 80 KiB/s: a collector that keeps up with a trickle of lines, not with this load.
    proxy.read_logs(Some((4096, Duration::from_millis(50))));
    let token = proxy.mint("127.0.0.1");
    let probes = Probes::start(proxy.addr());
    let answered = cache_hits(&proxy, &token).await;
    let latencies = probes.finish();
    let written_during = load_lines(&proxy);
    let during = dropped(&proxy).await;
    report("slow standard error", answered, &latencies, during);
    assert_eq!(answered, REQUESTS);
    assert!(latencies[latencies.len() - 1] < HEALTHZ_WORST, "/healthz with a slow reader: {latencies:?}");
    assert!(written_during > 0, "no access line got through the slow reader during the load");

    // Each warning covers the lines lost since the one before; the last one's total is the
    // metric's, once the reader has caught up.
    let notices =
        eventually(Duration::from_secs(20), "the reader catches up and the loss is reported", || async {
            let notices = notices(&proxy);
            let total = dropped(&proxy).await;
            (notices.last().is_some_and(|&(_, t)| t == total) && total > 0).then_some(notices)
        })
        .await;
    let total = notices.last().unwrap().1;
    assert_eq!(notices.iter().map(|&(lost, _)| lost).sum::<u64>(), total, "{notices:?}");
    assert!(
        load_lines(&proxy) as u64 + total >= REQUESTS as u64,
        "written and dropped lines account for fewer than {REQUESTS} requests"
    );
    proxy.finish();
}

#[tokio::test]
async fn a_shutdown_writes_out_every_queued_line() {
    let desk = Desk::start().await;
    let mut proxy = Proxy::start(&desk.manifest(keys())).await;
    let token = proxy.mint("127.0.0.1");
    let n = 300;
    let answered = futures_util::future::join_all(
        (0..n).map(|i| proxy.send(Req::get(&format!("/spawner/load{i}")).abc(&token))),
    )
    .await;
    assert!(answered.iter().all(|r| r.status == StatusCode::OK));
    // At once: the lines may still be queued when the signal arrives.
    proxy.sigterm();
    let status = proxy.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "{status}");
    eventually(Duration::from_secs(5), "every access line and the last line are written", || {
        let stopped = proxy.log_lines().iter().any(|l| l["message"] == "stopped");
        let done = load_lines(&proxy) == n && stopped;
        async move { done.then_some(()) }
    })
    .await;
    proxy.finish();
}
