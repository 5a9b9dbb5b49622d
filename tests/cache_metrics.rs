//! The cache's miss counter counts resolutions that did RSA work, not every request that
//! missed while another was resolving the same token (design.md: "concurrent misses for one
//! token do the crypto once"; metrics.rs: "Token resolutions that needed RSA work").

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::{Method, StatusCode};
use support::{Req, desk_and_proxy, metric_sum};

fn req(method: Method, path: &str) -> Req {
    Req::new(method, path)
}

#[tokio::test]
async fn concurrent_first_uses_of_a_token_resolve_it_once() {
    let (desk, proxy) = desk_and_proxy().await;
    let token = proxy.mint("127.0.0.1");
    let requests = (0..20).map(|_| proxy.send(req(Method::GET, "/spawner").abc(&token)));
    for resp in futures_util::future::join_all(requests).await {
        assert_eq!(resp.status, StatusCode::OK);
    }
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric_sum(&metrics, "route_token_cache_misses_total", &[]),
        1.0,
        "RSA work for one token:\n{metrics}"
    );
    assert_eq!(metric_sum(&metrics, "route_token_cache_hits_total", &[]), 19.0, "cache hits");
    assert_eq!(desk.up("spawner").hits(), 20);
    proxy.finish();
}
