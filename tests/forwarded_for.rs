//! A client request with several `X-Forwarded-For` lines keeps every earlier hop, in order, with
//! the client's address last (proxy/src/forward/headers.rs, `to_upstream`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::Method;
use support::{Req, desk_and_proxy};

fn req(method: Method, path: &str) -> Req {
    Req::new(method, path)
}

#[tokio::test]
async fn every_x_forwarded_for_line_is_kept() {
    let (desk, proxy) = desk_and_proxy().await;
    // Two X-Forwarded-For lines from upstream proxies: both kept, the client appended last.
    let token = proxy.mint("127.0.0.1");
    let seen = proxy
        .send(
            req(Method::GET, "/spawner")
                .abc(&token)
                .header("X-Forwarded-For", "198.51.100.1")
                .header("X-Forwarded-For", "203.0.113.7"),
        )
        .await
        .seen();
    let chain: Vec<String> =
        seen.header_all("x-forwarded-for").join(",").split(',').map(|s| s.trim().to_owned()).collect();
    assert_eq!(chain, ["198.51.100.1", "203.0.113.7", "127.0.0.1"], "X-Forwarded-For chain");
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(desk.hits_except(&["spawner"]), 0);
    proxy.finish();
}
