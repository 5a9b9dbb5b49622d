//! The upstream connection pool (proxy/src/forward/http1.rs): keep-alive connections are
//! reused once their response has ended, and HEAD answers (no body) free theirs too. A body cut
//! short takes its connection with it (never back to the pool half-read): tests/faults.rs cuts
//! bodies mid-way and checks that the next request is answered right.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::{Method, StatusCode};
use support::{Desk, Proxy, Req, keys};

#[tokio::test]
async fn sequential_requests_share_one_upstream_connection() {
    let desk = Desk::start().await;
    let proxy = Proxy::start(&desk.manifest(keys())).await;
    let token = proxy.mint("127.0.0.1");
    for i in 0..20 {
        let resp = proxy.send(Req::get(&format!("/spawner/seq{i}")).abc(&token)).await;
        assert_eq!(resp.seen().path(), format!("/spawner/seq{i}"));
    }
    // HEAD: a response without a body gives its connection back as well.
    for i in 0..5 {
        let resp = proxy.send(Req::new(Method::HEAD, &format!("/spawner/head{i}")).abc(&token)).await;
        assert_eq!(resp.status, StatusCode::OK);
    }
    assert_eq!(desk.up("spawner").hits(), 25);
    assert_eq!(desk.up("spawner").connections(), 1, "every request after the first reused its connection");
    proxy.finish();
}

#[tokio::test]
async fn concurrent_requests_open_connections_that_are_then_reused() {
    let desk = Desk::start().await;
    let proxy = Proxy::start(&desk.manifest(keys())).await;
    let token = proxy.mint("127.0.0.1");
    for round in 0..3 {
        let answers = futures_util::future::join_all(
            (0..8).map(|i| proxy.send(Req::get(&format!("/spawner/r{round}-{i}")).abc(&token))),
        )
        .await;
        assert!(answers.iter().all(|r| r.status == StatusCode::OK));
    }
    let connections = desk.up("spawner").connections();
    assert!(connections <= 8, "24 requests, 8 at a time, opened {connections} connections");
    proxy.finish();
}
