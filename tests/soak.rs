//! The soak run: mixed load against the real binary for a given time, with key rotations and
//! an upstream restarting under it. Ignored in the test run; `bench/soak [MINUTES]` runs it in
//! release and prints (and writes to `target/soak-report.txt`) the figures of
//! docs/reliability.md: requests, unexpected errors (must be 0), latency p50/p99, the proxy's
//! RSS at the start and the end of the load (must be flat), open descriptors (back to the
//! baseline).
//!
//! The load, all at once for the whole run:
//! - HTTP through several endpoints with pooled keep-alive connections: `/spawner` and `/filer`
//!   (`ABCAuthorization`), `POST /terminals`, `/container/<JWT>/<port>/`, pyos `/API`, the
//!   website; every 50th request with a token never seen before (verify + decrypt);
//! - uploads of 1 to 4 MiB to `/filer`, each checked by length at the upstream;
//! - WebSockets held open and talking (`/websockify`, `/terminals/<id>`, `/signalling`), a
//!   message every 500 ms checked by its echo, each reopened every minute with a fresh token;
//! - a key rotation every 5 s (the manifest rewritten with a new key set, 30 s grace);
//! - the `/printerfiler` upstream stopped for 1 s every 20 s: its 502s while it is down are
//!   expected and counted apart; any other failure is unexpected.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::{Method, StatusCode};
use route_mint::{KeySet, PrivateFormat};
use serde_json::json;
use support::client::{self, Req};
use support::faulty::{Fault, Faulty};
use support::ws::Handshake;
use support::{Desk, Manifest, Proxy, metric};
use tokio_tungstenite::tungstenite::Message;

/// When the start RSS is taken on a run of 10 minutes or more: the token lifetime (420 s) and
/// half a minute.
const WARM_UP: Duration = Duration::from_secs(450);

/// Pause of each HTTP worker between two requests.
const PAUSE_MS: u64 = 5;

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    uploads: AtomicU64,
    upload_bytes: AtomicU64,
    ws_messages: AtomicU64,
    ws_opened: AtomicU64,
    cold_tokens: AtomicU64,
    rotations: AtomicU64,
    restarts: AtomicU64,
    expected_errors: AtomicU64,
    unexpected: AtomicU64,
    /// The first unexpected errors, for the report.
    examples: Mutex<Vec<String>>,
    /// Microseconds of every small HTTP request.
    latencies: Mutex<Vec<u32>>,
}

impl Stats {
    fn unexpected(&self, what: String) {
        self.unexpected.fetch_add(1, Ordering::Relaxed);
        let mut examples = self.examples.lock().unwrap();
        if examples.len() < 20 {
            examples.push(what);
        }
    }
}

/// The key set tokens are minted with now, and a counter of rotations.
struct Keys {
    current: RwLock<KeySet>,
}

impl Keys {
    fn mint(&self, proxy: &Proxy) -> String {
        let keys = self.current.read().unwrap().clone();
        proxy.secret(&support::mint_with(&keys, "127.0.0.1", 420))
    }
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn manifest(desk: &Desk, printer_port: u16, keys: &KeySet) -> Manifest {
    desk.manifest(keys).port("printerfiler", printer_port).grace_seconds(30).set_in(
        "limits",
        "connectTimeoutSeconds",
        json!(2),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a long run: bench/soak [MINUTES]"]
async fn soak() {
    let minutes = env_f64("SOAK_MINUTES", 1.0);
    let run_for = Duration::from_secs_f64(minutes * 60.0);
    let desk = Desk::start().await;
    let mut printer = Faulty::start(Fault::Healthy).await;
    let printer_port = printer.port();
    let first = KeySet::generate(1024, PrivateFormat::Pkcs8).expect("keys");
    let proxy = Proxy::builder()
        .manifest(&manifest(&desk, printer_port, &first))
        .log_level("warn")
        .no_access_check()
        .start()
        .await;
    let pid = proxy.pid();
    let addr = proxy.addr();
    let keys = Keys { current: RwLock::new(first) };
    let stats = Stats::default();
    let stop = AtomicBool::new(false);
    let printer_down = AtomicBool::new(false);
    let printer_epoch = AtomicU64::new(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fds_baseline = fds(pid);
    let rss_idle = rss_kib(pid);
    let started = Instant::now();
    let deadline = started + run_for;
    let rss_start = Mutex::new(0_u64);
    // The start figure: once the token cache is full. Tokens live 420 s and new ones keep
    // coming, so the cache grows for 420 s, then entries expire as fast as they arrive. Runs
    // shorter than 10 minutes take it after a tenth of the run (at most 30 s).
    let warm = if run_for >= Duration::from_secs(600) {
        WARM_UP
    } else {
        Duration::from_secs_f64((run_for.as_secs_f64() / 10.0).min(30.0))
    };
    let rss_series = Mutex::new(Vec::<u64>::new());
    eprintln!("soak: {minutes} min; proxy pid {pid}, {rss_idle} KiB RSS idle, {fds_baseline} fds");

    let http_worker = |w: usize| {
        let (stats, keys, stop, proxy, desk) = (&stats, &keys, &stop, &proxy, &desk);
        async move {
            let client = client::http_client();
            let mut token = keys.mint(proxy);
            let mut minted_at = Instant::now();
            let pod = desk.pod.port();
            let mut n = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if n.is_multiple_of(50) || minted_at.elapsed() > Duration::from_secs(20) {
                    token = keys.mint(proxy);
                    minted_at = Instant::now();
                    stats.cold_tokens.fetch_add(1, Ordering::Relaxed);
                }
                let (what, req, upstream) = match (n + w as u64) % 6 {
                    0 => ("spawner", Req::get("/spawner/soak").abc(&token), "spawner"),
                    1 => ("filer", Req::get("/filer?path=/home/balloon").abc(&token), "filer"),
                    2 => {
                        ("terminals", Req::post("/terminals?cols=80&rows=24", "{}").abc(&token), "terminals")
                    }
                    3 => ("container", Req::get(&format!("/container/{token}/{pod}/soak")), "pod"),
                    4 => ("pyos", Req::get("/API/healthz"), "pyos"),
                    _ => ("website", Req::get("/index.html"), "website"),
                };
                let begun = Instant::now();
                let outcome = client::send(&client, addr, req.timeout(Duration::from_secs(30))).await;
                let micros = u32::try_from(begun.elapsed().as_micros()).unwrap_or(u32::MAX);
                stats.requests.fetch_add(1, Ordering::Relaxed);
                match outcome {
                    Ok(resp) if resp.status == StatusCode::OK => {
                        let seen = support::upstream::Seen::from_json(&resp.json());
                        if seen.as_ref().map(|s| s.upstream.as_str()) != Some(upstream) {
                            stats.unexpected(format!("{what}: answered by {:?}", seen.map(|s| s.upstream)));
                        }
                        stats.latencies.lock().unwrap().push(micros);
                    }
                    Ok(resp) => stats.unexpected(format!("{what}: {} {}", resp.status, resp.text().trim())),
                    Err(err) => stats.unexpected(format!("{what}: {err}")),
                }
                // A steady load, not a saturating one: the machine is shared.
                tokio::time::sleep(Duration::from_millis(PAUSE_MS)).await;
            }
        }
    };

    let upload_worker = |w: usize| {
        let (stats, keys, stop, proxy) = (&stats, &keys, &stop, &proxy);
        async move {
            let client = client::http_client();
            let mut n = 0_usize;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let token = keys.mint(proxy);
                let len = (1 + (n + w) % 4) * 1024 * 1024;
                let body = Bytes::from(vec![(n % 251) as u8; len]);
                let req = Req::new(Method::PUT, "/filer?path=/home/balloon/up.bin")
                    .abc(&token)
                    .body(body)
                    .timeout(Duration::from_secs(60));
                stats.requests.fetch_add(1, Ordering::Relaxed);
                match client::send(&client, addr, req).await {
                    Ok(resp) if resp.status == StatusCode::OK => {
                        let seen = resp.seen();
                        if seen.body_len != len as u64 || !seen.complete {
                            stats.unexpected(format!("upload: {} of {len} bytes arrived", seen.body_len));
                        }
                        stats.uploads.fetch_add(1, Ordering::Relaxed);
                        stats.upload_bytes.fetch_add(len as u64, Ordering::Relaxed);
                    }
                    Ok(resp) => stats.unexpected(format!("upload: {}", resp.status)),
                    Err(err) => stats.unexpected(format!("upload: {err}")),
                }
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        }
    };

    let printer_worker = async {
        let client = client::http_client();
        let token = keys.mint(&proxy);
        let mut token = token;
        let mut minted_at = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if minted_at.elapsed() > Duration::from_secs(10) {
                token = keys.mint(&proxy);
                minted_at = Instant::now();
            }
            let epoch = printer_epoch.load(Ordering::SeqCst);
            let down_before = printer_down.load(Ordering::SeqCst);
            let outcome = client::send(&client, addr, Req::get("/printerfiler/soak").abc(&token)).await;
            let disturbed = down_before
                || printer_down.load(Ordering::SeqCst)
                || printer_epoch.load(Ordering::SeqCst) != epoch;
            stats.requests.fetch_add(1, Ordering::Relaxed);
            match outcome {
                Ok(resp) if resp.status == StatusCode::OK && resp.text() == "ok" => {}
                Ok(resp) if resp.status == StatusCode::BAD_GATEWAY && disturbed => {
                    stats.expected_errors.fetch_add(1, Ordering::Relaxed);
                }
                Ok(resp) => stats.unexpected(format!("printerfiler: {} {}", resp.status, resp.text().trim())),
                Err(err) => stats.unexpected(format!("printerfiler: {err}")),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };

    let restarter = async {
        while Instant::now() + Duration::from_secs(21) < deadline {
            tokio::time::sleep(Duration::from_secs(20)).await;
            printer_down.store(true, Ordering::SeqCst);
            printer_epoch.fetch_add(1, Ordering::SeqCst);
            printer.stop().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            printer.restart().await;
            // Requests that began before the restart completed may still see the old socket go.
            tokio::time::sleep(Duration::from_millis(200)).await;
            printer_down.store(false, Ordering::SeqCst);
            stats.restarts.fetch_add(1, Ordering::Relaxed);
        }
    };

    let rotator = async {
        while Instant::now() + Duration::from_secs(6) < deadline {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let next = tokio::task::spawn_blocking(|| KeySet::generate(1024, PrivateFormat::Pkcs8))
                .await
                .expect("join")
                .expect("keys");
            let before = metric(&proxy.metrics().await, "route_settings_generation").unwrap_or(0.0);
            manifest(&desk, printer_port, &next).write_atomic(proxy.manifest_path());
            let loaded = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    let now = metric(&proxy.metrics().await, "route_settings_generation").unwrap_or(0.0);
                    if now > before {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await;
            if loaded.is_err() {
                stats.unexpected("a key rotation was not loaded within 5 s".into());
            }
            *keys.current.write().unwrap() = next;
            stats.rotations.fetch_add(1, Ordering::Relaxed);
        }
    };

    let ws_worker = |w: usize| {
        let (stats, keys, stop, proxy) = (&stats, &keys, &stop, &proxy);
        async move {
            while !stop.load(Ordering::Relaxed) {
                let token = keys.mint(proxy);
                let path = match w % 3 {
                    0 => format!("/websockify?jwt_token={token}"),
                    1 => format!("/terminals/{w}?{token}"),
                    _ => format!("/signalling?jwt_token={token}"),
                };
                let mut ws = match support::ws::connect(addr, &path, &[]).await {
                    Handshake::Open(ws, _) => ws,
                    Handshake::Refused(status) => {
                        stats.unexpected(format!("websocket {w}: handshake {status}"));
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                stats.ws_opened.fetch_add(1, Ordering::Relaxed);
                let greeting = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
                if !matches!(greeting, Ok(Some(Ok(Message::Text(_))))) {
                    stats.unexpected(format!("websocket {w}: no greeting: {greeting:?}"));
                    continue;
                }
                let opened = Instant::now();
                let mut i = 0_u64;
                while !stop.load(Ordering::Relaxed) && opened.elapsed() < Duration::from_secs(60) {
                    i += 1;
                    let text = format!("soak {w} {i}");
                    if let Err(err) = ws.send(Message::text(text.clone())).await {
                        stats.unexpected(format!("websocket {w}: send: {err}"));
                        break;
                    }
                    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                        Ok(Some(Ok(Message::Text(echo)))) if echo.as_str() == text => {
                            stats.ws_messages.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            stats.unexpected(format!("websocket {w}: echo: {other:?}"));
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                let _ = (*ws).close(None).await;
            }
        }
    };

    let reporter = async {
        let mut last = Instant::now();
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let elapsed = started.elapsed();
            if elapsed >= warm && *rss_start.lock().unwrap() == 0 {
                *rss_start.lock().unwrap() = rss_kib(pid);
            }
            if elapsed.as_secs() >= 60 * (rss_series.lock().unwrap().len() as u64 + 1) {
                rss_series.lock().unwrap().push(rss_kib(pid) / 1024);
            }
            if last.elapsed() >= Duration::from_secs(30) {
                last = Instant::now();
                eprintln!(
                    "soak: {:>5.0} s  requests {:>8}  ws messages {:>7}  unexpected {}  rss {} KiB  fds {}",
                    elapsed.as_secs_f64(),
                    stats.requests.load(Ordering::Relaxed),
                    stats.ws_messages.load(Ordering::Relaxed),
                    stats.unexpected.load(Ordering::Relaxed),
                    rss_kib(pid),
                    fds(pid)
                );
            }
        }
        stop.store(true, Ordering::Relaxed);
    };

    let load = futures_util::future::join4(
        futures_util::future::join_all((0..6).map(http_worker)),
        futures_util::future::join_all((0..2).map(upload_worker)),
        futures_util::future::join_all((0..24).map(ws_worker)),
        futures_util::future::join4(printer_worker, restarter, rotator, reporter),
    );
    let limit = run_for + Duration::from_secs(120);
    support::within(limit, "the soak load ends", load).await;
    let load_time = started.elapsed();
    let rss_end = rss_kib(pid);
    let fds_end_of_load = fds(pid);
    let rss_start = *rss_start.lock().unwrap();

    // Clients are gone; pooled upstream connections close after their 90 s idle timeout (the
    // pool looks at them every few seconds), so this waits up to 180 s.
    let settle = Instant::now();
    let mut fds_settled = fds(pid);
    while fds_settled > fds_baseline && settle.elapsed() < Duration::from_secs(180) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        fds_settled = fds(pid);
    }
    let settled_after = settle.elapsed();
    let metrics = proxy.metrics().await;
    let tunnels_open = metric(&metrics, "route_websockets_open").unwrap_or(-1.0);

    let mut latencies = stats.latencies.lock().unwrap().clone();
    latencies.sort_unstable();
    let requests = stats.requests.load(Ordering::Relaxed);
    let unexpected = stats.unexpected.load(Ordering::Relaxed);
    let report = format!(
        "soak report ({minutes} min requested, {:.0} s of load)\n\
         requests (HTTP)          {requests} ({:.0}/s)\n\
         small HTTP latency        p50 {:.2} ms, p99 {:.2} ms ({} requests)\n\
         uploads                   {} ({} MiB)\n\
         WebSocket messages echoed {} over {} tunnels opened\n\
         new tokens (cold path)    {}\n\
         key rotations             {}\n\
         upstream restarts         {} ({} expected 502s while it was down)\n\
         unexpected errors         {unexpected}\n\
         proxy RSS                 idle {rss_idle} KiB, after warm-up ({:.0} s) {rss_start} KiB, end of load {rss_end} KiB\n\
         proxy RSS by minute (MiB) {:?}\n\
         proxy fds                 baseline {fds_baseline}, end of load {fds_end_of_load}, {fds_settled} after {:.0} s\n\
         tunnels open at the end   {tunnels_open}\n",
        load_time.as_secs_f64(),
        requests as f64 / load_time.as_secs_f64(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.len(),
        stats.uploads.load(Ordering::Relaxed),
        stats.upload_bytes.load(Ordering::Relaxed) / (1024 * 1024),
        stats.ws_messages.load(Ordering::Relaxed),
        stats.ws_opened.load(Ordering::Relaxed),
        stats.cold_tokens.load(Ordering::Relaxed),
        stats.rotations.load(Ordering::Relaxed),
        stats.restarts.load(Ordering::Relaxed),
        stats.expected_errors.load(Ordering::Relaxed),
        warm.as_secs_f64(),
        rss_series.lock().unwrap(),
        settled_after.as_secs_f64(),
    );
    eprintln!("{report}");
    let examples = stats.examples.lock().unwrap().clone();
    for example in &examples {
        eprintln!("unexpected: {example}");
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/soak-report.txt");
    let _ = std::fs::write(&out, &report);

    assert_eq!(unexpected, 0, "unexpected errors: {examples:#?}");
    assert!(
        rss_end <= rss_start + rss_start / 10 + 2 * 1024,
        "RSS grew from {rss_start} KiB after warm-up to {rss_end} KiB"
    );
    assert!(fds_settled <= fds_baseline + 2, "fds {fds_settled}, baseline {fds_baseline}");
    assert_eq!(tunnels_open, 0.0, "tunnels left open");
    proxy.finish();
}
