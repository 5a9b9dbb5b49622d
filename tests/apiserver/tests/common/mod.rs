//! Helpers the test files of this crate share.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use http::Method;
use route_test_apiserver::{Error, TestApiServer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const SECRETS: &str = "/api/v1/namespaces/default/secrets";
pub const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
pub const WIDGETS: &str = "/apis/example.route.io/v1/namespaces/default/widgets";

pub fn api_error(r: Result<Value, Error>) -> route_test_apiserver::ApiError {
    match r {
        Err(Error::Api(e)) => e,
        other => panic!("expected an API error, got {other:?}"),
    }
}

pub fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
}

pub fn secret(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"k": "v"}})
}

pub async fn with_widgets() -> TestApiServer {
    let server = TestApiServer::start().await.unwrap();
    let yaml =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/widget-crd.yaml"))
            .unwrap();
    let crd: Value = serde_yaml::from_str(&yaml).unwrap();
    server
        .request(Method::POST, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", Some(&crd))
        .unwrap();
    server
}

/// One HTTP/1.1 request; answers (status, headers, body).
pub async fn raw(server: &TestApiServer, head: &str, body: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let req =
        format!("{head}\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await.unwrap().unwrap();
    let (headers, body) = out.split_once("\r\n\r\n").unwrap();
    let code = headers.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, headers.to_owned(), body.to_owned())
}
