//! Reads from a resourceVersion the store has not reached: lists and gets wait, then time out
//! with 504 as kube-apiserver does; watches send only what is newer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use http::Method;
use route_test_apiserver::TestApiServer;
use serde_json::{Value, json};

use common::*;

/// The JSON lines of a watch answer read by [`raw`] (chunked).
fn events(body: &str) -> Vec<Value> {
    body.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test]
async fn reads_ahead_of_the_store_wait_for_it_then_time_out() {
    let server = TestApiServer::start().await.unwrap();
    let list = format!("GET {SECRETS}?resourceVersion={} HTTP/1.1", server.resource_version() + 1);
    let write_soon = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.request(Method::POST, SECRETS, Some(&secret("late"))).unwrap();
    };
    let ((code, _, body), ()) = tokio::join!(raw(&server, &list, ""), write_soon);
    assert_eq!(code, 200, "the list waited for the write: {body}");
    assert!(body.contains(r#""name":"late""#), "{body}");

    let (current, far) = (server.resource_version(), server.resource_version() + 5);
    let list = format!("GET {SECRETS}?resourceVersion={far}&resourceVersionMatch=NotOlderThan HTTP/1.1");
    let get = format!("GET {SECRETS}/late?resourceVersion={far} HTTP/1.1");
    let watch_list = format!(
        "GET {SECRETS}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan\
         &allowWatchBookmarks=true&resourceVersion={far} HTTP/1.1"
    );
    let started = std::time::Instant::now();
    let (list, get, stream) =
        tokio::join!(raw(&server, &list, ""), raw(&server, &get, ""), raw(&server, &watch_list, ""));
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(5), "{took:?}");
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("Timeout: Too large resource version: {far}, current: {current}"),
        "reason": "Timeout", "code": 504,
        "details": {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1}});
    for (code, _, body) in [list, get] {
        assert_eq!((code, serde_json::from_str::<Value>(&body).unwrap()), (504, status.clone()));
    }
    assert_eq!(stream.0, 200, "a watch fails in an ERROR event");
    assert_eq!(events(&stream.2), [json!({"type": "ERROR", "object": status})]);
}

#[tokio::test]
async fn a_watch_ahead_of_the_store_sends_only_newer_changes() {
    let server = TestApiServer::start().await.unwrap();
    server.set_bookmark_interval(Duration::from_millis(100));
    let from = server.resource_version() + 2;
    let watch = format!(
        "GET {SECRETS}?watch=1&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion={from} HTTP/1.1"
    );
    let writes = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for name in ["w1", "w2", "w3"] {
            server.request(Method::POST, SECRETS, Some(&secret(name))).unwrap();
        }
    };
    let started = std::time::Instant::now();
    let ((code, _, body), ()) = tokio::join!(raw(&server, &watch, ""), writes);
    assert!(started.elapsed() < Duration::from_secs(2), "no wait: the watch ends at its timeout");
    assert_eq!(code, 200);
    let events = events(&body);
    let names: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] != "BOOKMARK")
        .map(|e| e["object"]["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["w3"], "{body}");
    assert!(events.iter().all(|e| rv(&e["object"]) >= from), "nothing older than the watch: {body}");
}
