//! Compression (contract.md section 4): text responses of 2 KiB or more are gzipped when the
//! client accepts gzip, proxied ones included; never on `/speedtest`, never small ones, never
//! binary types.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::StatusCode;
use support::{Desk, Proxy, Req, keys};

#[tokio::test]
async fn large_text_responses_are_gzipped_when_accepted() {
    let desk = Desk::start().await;
    let proxy = Proxy::start(&desk.manifest(keys())).await;
    let token = proxy.mint("127.0.0.1");

    let resp = proxy
        .send(Req::get("/spawner").abc(&token).header("Accept-Encoding", "gzip").header("X-Test-Pad", "8192"))
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.header("content-encoding"), Some("gzip"), "8 KiB of JSON not gzipped");
    assert!(resp.body.len() < 4096, "a gzipped body of {} bytes", resp.body.len());
    let mut json = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&resp.body[..]), &mut json).expect("gunzip");
    let seen: serde_json::Value = serde_json::from_slice(&json).expect("gunzipped JSON");
    assert_eq!(seen["upstream"], "spawner");
    assert!(seen["pad"].as_str().is_some_and(|p| p.len() >= 8192), "the padding did not survive");
    assert!(
        resp.header("content-length").is_none_or(|l| l == resp.body.len().to_string()),
        "a stale Content-Length"
    );

    // Not accepted: plain.
    let resp = proxy.send(Req::get("/spawner").abc(&token).header("X-Test-Pad", "8192")).await;
    assert!(resp.header("content-encoding").is_none());
    assert!(resp.json()["pad"].is_string());

    // Small: plain.
    let resp = proxy.send(Req::get("/spawner").abc(&token).header("Accept-Encoding", "gzip")).await;
    assert!(resp.header("content-encoding").is_none(), "a small answer was gzipped");

    // Not a text type: plain.
    let resp = proxy
        .send(
            Req::get("/spawner")
                .abc(&token)
                .header("Accept-Encoding", "gzip")
                .header("X-Test-Download", "8192"),
        )
        .await;
    assert!(resp.header("content-encoding").is_none(), "application/octet-stream was gzipped");
    assert_eq!(resp.body.len(), 8192);

    // Never on /speedtest.
    let resp = proxy
        .send(
            Req::get("/speedtest/garbage.php").header("Accept-Encoding", "gzip").header("X-Test-Pad", "8192"),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(resp.header("content-encoding").is_none(), "/speedtest was compressed");
    proxy.finish();
}
