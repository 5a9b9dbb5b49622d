//! Helpers of the adversarial tests (`tests/adversarial*.rs`) and the fault tests.

use http::StatusCode;

use super::{Desk, Proxy, keys};

/// The recording desk and a proxy in front of it, started with extra `route serve` flags.
pub async fn setup(args: &[&str]) -> (Desk, Proxy) {
    let desk = Desk::start().await;
    let m = desk.manifest(keys());
    let mut builder = Proxy::builder().manifest(&m);
    for arg in args {
        builder = builder.arg(arg);
    }
    (desk, builder.start().await)
}

/// No panic message in the proxy's logs.
pub fn no_panic(proxy: &Proxy) {
    let logs = proxy.logs_redacted();
    assert!(!logs.contains("panicked"), "the proxy panicked:\n{logs}");
}

/// The proxy still answers a plain request after whatever the test did.
pub async fn still_serves(proxy: &Proxy) {
    let resp = proxy.get("/healthz").await;
    assert_eq!(resp.status, StatusCode::OK, "the proxy no longer answers /healthz");
}

/// A request head for `desktop.example.com` with `extra` header lines.
pub fn host_head(method: &str, target: &str, extra: &str) -> String {
    format!("{method} {target} HTTP/1.1\r\nHost: desktop.example.com\r\n{extra}\r\n")
}
