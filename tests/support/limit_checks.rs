//! Checks that a limit changed on a running proxy takes effect without a restart, whatever
//! source the proxy follows. Each check takes the proxy, a [`SpecSource`] that publishes a
//! RouteConfig spec to it, and the manifest it was started with (keys, the spawner route
//! pointed at `spawner`'s upstream). The manifests mode passes [`ManifestFile`]; the kube mode
//! passes a source that applies `kube::route_config(&spec)` to its cluster, e.g.:
//!
//! ```ignore
//! struct KubeSource<'a>(&'a Cluster);
//! impl SpecSource for KubeSource<'_> {
//!     async fn publish(&mut self, _: &mut Proxy, m: &Manifest) {
//!         self.0.apply(&kube::route_config(&Value::Object(m.spec.clone()))).await;
//!     }
//! }
//! limit_checks::header_read_timeout_follows(&mut proxy, &mut KubeSource(&cluster), base).await;
//! ```

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::manifest::Manifest;
use super::proxy::Proxy;
use super::{Req, STEP, eventually, metric};

/// Where the proxy under test takes its spec from.
pub trait SpecSource {
    /// Publishes `m` (its spec and key Secrets) to the proxy's source.
    async fn publish(&mut self, proxy: &mut Proxy, m: &Manifest);
}

/// `route serve --manifests FILE`: the file is rewritten.
pub struct ManifestFile;

impl SpecSource for ManifestFile {
    async fn publish(&mut self, proxy: &mut Proxy, m: &Manifest) {
        proxy.update(m);
    }
}

/// The generation of the settings being served, from the admin `/metrics`.
pub async fn generation(proxy: &Proxy) -> u64 {
    metric(&proxy.metrics().await, "route_settings_generation").unwrap_or(0.0) as u64
}

/// Publishes `m` and waits until the proxy serves it (a new generation).
pub async fn reload(proxy: &mut Proxy, source: &mut impl SpecSource, m: &Manifest) {
    let before = generation(proxy).await;
    source.publish(proxy, m).await;
    eventually(STEP, "the proxy serves the edited spec", || async {
        (generation(proxy).await > before).then_some(())
    })
    .await;
}

/// How long the proxy takes to cut a new connection that sends half a request head and then
/// nothing; `None` when it has not cut it after `patience` (the head is then completed and
/// must be answered).
async fn slow_head_cut_after(proxy: &Proxy, patience: Duration) -> Option<Duration> {
    let mut stream = tokio::net::TcpStream::connect(proxy.addr()).await.expect("connect");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: d\r\nX-Slow: ").await.expect("write");
    let started = Instant::now();
    let mut buf = [0u8; 512];
    match tokio::time::timeout(patience, stream.read(&mut buf)).await {
        Ok(_) => Some(started.elapsed()),
        Err(_) => {
            stream.write_all(b"1\r\nConnection: close\r\n\r\n").await.expect("finish the head");
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(STEP, stream.read_to_end(&mut answer)).await;
            let answer = String::from_utf8_lossy(&answer);
            assert!(answer.starts_with("HTTP/1.1 200"), "the completed slow head: {answer:?}");
            proxy.expect_access("GET", "/healthz", 200);
            None
        }
    }
}

/// `spec.limits.headerReadTimeoutSeconds`: a slow head that the starting value (30 s) lets
/// through is cut within about a second once the spec says 1, on the next connection.
pub async fn header_read_timeout_follows(proxy: &mut Proxy, source: &mut impl SpecSource, base: Manifest) {
    let patience = Duration::from_millis(2500);
    assert_eq!(slow_head_cut_after(proxy, patience).await, None, "cut before the spec asked for it");
    let m = base.set_in("limits", "headerReadTimeoutSeconds", json!(1));
    reload(proxy, source, &m).await;
    let cut = slow_head_cut_after(proxy, Duration::from_secs(10)).await;
    let cut = cut.expect("the slow head was not cut with headerReadTimeoutSeconds: 1");
    assert!(cut >= Duration::from_millis(900) && cut < Duration::from_secs(5), "cut after {cut:?}");
}

/// A route's `maxBodyBytes`: the same upload passes, is refused with 413 once the limit is
/// under it, and passes again once it is raised.
pub async fn route_body_limit_follows(proxy: &mut Proxy, source: &mut impl SpecSource, base: Manifest) {
    let token = proxy.mint("127.0.0.1");
    let upload = || Req::post("/spawner/up", vec![b'u'; 4096]).abc(&token);
    assert_eq!(proxy.send(upload()).await.status, StatusCode::OK, "before the limit");
    let limited = base.clone().route(json!({"name": "spawner", "maxBodyBytes": 1024}));
    reload(proxy, source, &limited).await;
    assert_eq!(proxy.send(upload()).await.status, StatusCode::PAYLOAD_TOO_LARGE, "over maxBodyBytes 1024");
    let raised = base.route(json!({"name": "spawner", "maxBodyBytes": 8192}));
    reload(proxy, source, &raised).await;
    assert_eq!(proxy.send(upload()).await.status, StatusCode::OK, "under maxBodyBytes 8192");
}

/// A route's `readTimeoutSeconds`, against an upstream that answers after 2 s: 504 with 1 s,
/// the answer with 4 s.
pub async fn route_read_timeout_follows(proxy: &mut Proxy, source: &mut impl SpecSource, base: Manifest) {
    let token = proxy.mint("127.0.0.1");
    let short = base.clone().route(json!({"name": "spawner", "readTimeoutSeconds": 1}));
    reload(proxy, source, &short).await;
    let started = Instant::now();
    let resp = proxy.send(Req::get("/spawner").abc(&token)).await;
    assert_eq!(resp.status, StatusCode::GATEWAY_TIMEOUT, "readTimeoutSeconds 1: {}", resp.text());
    assert!(started.elapsed() < Duration::from_millis(1900), "504 after {:?}", started.elapsed());
    let long = base.route(json!({"name": "spawner", "readTimeoutSeconds": 4}));
    reload(proxy, source, &long).await;
    let resp = proxy.send(Req::get("/spawner").abc(&token)).await;
    assert_eq!(resp.status, StatusCode::OK, "readTimeoutSeconds 4: {}", resp.text());
}
