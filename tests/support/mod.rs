//! The end-to-end harness: recording upstreams, a WebSocket echo, manifests, and the real
//! `route` binary run as a child process on loopback.
//!
//! Every wait has a deadline; nothing sleeps to wait for state (see [`eventually`]).
//! A [`proxy::Proxy`] checks, when it is finished or dropped, that no token the test used
//! appears in the binary's logs and that every request it answered has an access line.

#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod access_log;
pub mod capture;
pub mod client;
pub mod control_plane;
pub mod desk;
pub mod fault_proxy;
pub mod faulty;
pub mod hostile;
pub mod kube;
pub mod kube_flow;
pub mod kube_requests;
pub mod limit_checks;
pub mod manifest;
pub mod proxy;
pub mod raw;
pub mod rows;
pub mod tls;
pub mod upstream;
pub mod ws;

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

pub use route_mint::unix_now;
use route_mint::{KeySet, Minter, PrivateFormat};

pub use client::{Req, Resp};
pub use desk::Desk;
pub use manifest::Manifest;
pub use proxy::Proxy;
pub use upstream::{Behavior, Seen, Upstream};

/// Every upstream of a desktop namespace, and the real binary in front of them with the test keys.
pub async fn desk_and_proxy() -> (Desk, Proxy) {
    let desk = Desk::start().await;
    let proxy = Proxy::start(&desk.manifest(keys())).await;
    (desk, proxy)
}

/// The default deadline of a single step (a request, a connection, a process start).
pub const STEP: Duration = Duration::from_secs(15);

/// Awaits `fut` for at most `limit`, failing the test with `what` when it takes longer.
pub async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// Polls `check` until it returns `Some`, every 50 ms, failing after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if let Ok(Some(v)) = tokio::time::timeout(remaining.max(Duration::from_millis(1)), check()).await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("not true within {limit:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A 1024-bit PKCS#8 key set, generated once per test binary (1024 bits keep tests fast).
pub fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| KeySet::generate(1024, PrivateFormat::Pkcs8).expect("generate keys"))
}

/// A second, unrelated key set (rotation, wrong keys).
pub fn other_keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| KeySet::generate(1024, PrivateFormat::Pkcs1).expect("generate keys"))
}

/// A token for `target` signed and encrypted with `keys`, valid for `lifetime` seconds.
pub fn mint_with(keys: &KeySet, target: &str, lifetime: u64) -> String {
    let now = unix_now();
    Minter::from_key_set(keys).expect("minter").mint(target, now, now + lifetime).expect("mint")
}

/// A token for `target` with the default key set, valid for 420 s (what abcdesktop ships).
pub fn mint(target: &str) -> String {
    mint_with(keys(), target, 420)
}

/// A token that expired a minute ago.
pub fn mint_expired(target: &str) -> String {
    let now = unix_now();
    Minter::from_key_set(keys()).expect("minter").mint(target, now - 480, now - 60).expect("mint")
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(openssl::sha::sha256(data))
}

/// The value of a Prometheus sample, e.g. `metric(text, "route_settings_reloads_total{result=\"rejected\"}")`.
/// Label order in `name` must match the exposition; a name without labels matches the bare sample.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok())
    })
}

/// Sum of every sample of a metric family whose labels contain all of `labels` (`key="value"`).
pub fn metric_sum(text: &str, family: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            let (base, label_text) = match name.split_once('{') {
                Some((b, rest)) => (b, rest.trim_end_matches('}')),
                None => (name, ""),
            };
            (base == family && labels.iter().all(|want| label_text.split(',').any(|have| have == *want)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// The client address the proxy must report: these tests connect from 127.0.0.1.
pub const CLIENT_IP: &str = "127.0.0.1";

/// Asserts the forwarding headers every proxied request carries: `X-Real-IP` (the client),
/// `X-Forwarded-For` ending with the client, `X-Forwarded-Proto` = `proto`, `X-Forwarded-Host`
/// = the client's Host, and the client's Host passed through.
pub fn assert_forwarded(seen: &Seen, proto: &str, host: &str) {
    let route = format!("{} {}", seen.upstream, seen.path());
    assert_eq!(seen.header("x-real-ip"), Some(CLIENT_IP), "{route}: X-Real-IP");
    let xff = seen.header_all("x-forwarded-for").join(", ");
    assert!(
        xff.ends_with(CLIENT_IP),
        "{route}: X-Forwarded-For {xff:?} does not end with the client address"
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some(proto), "{route}: X-Forwarded-Proto");
    assert_eq!(seen.header("x-forwarded-host"), Some(host), "{route}: X-Forwarded-Host");
    assert_eq!(seen.header("host"), Some(host), "{route}: Host passed through");
}

/// Asserts what every response of the proxy carries: no `Server`, `X-Frame-Options: SAMEORIGIN`.
pub fn assert_response_headers(resp: &Resp, what: &str) {
    assert!(resp.header("server").is_none(), "{what}: Server header {:?}", resp.header("server"));
    assert_eq!(resp.header("x-frame-options"), Some("SAMEORIGIN"), "{what}: X-Frame-Options");
}
