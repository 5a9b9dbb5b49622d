//! The HTTP client side: hyper 1 + hyper-util, and a raw TCP client for what a well-behaved
//! client cannot send (a head without its body, a body past a limit).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::upstream::Seen;
use super::{STEP, within};

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A request to send through the proxy.
pub struct Req {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    pub timeout: Duration,
}

impl Req {
    pub fn new(method: Method, path: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body: Empty::new().map_err(|never| match never {}).boxed_unsync(),
            timeout: STEP,
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn post(path: &str, body: impl Into<Bytes>) -> Self {
        Self::new(Method::POST, path).body(body)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `ABCAuthorization: <token>`.
    pub fn abc(self, token: &str) -> Self {
        self.header("ABCAuthorization", token)
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Full::new(body.into()).map_err(|never| match never {}).boxed_unsync();
        self
    }

    pub fn stream_body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// A response, body read to its end.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// What the recording upstream saw, from its JSON answer.
    pub fn seen(&self) -> Seen {
        assert_eq!(self.status, StatusCode::OK, "expected an upstream's answer, got: {}", self.text());
        Seen::from_json(&self.json()).unwrap_or_else(|| panic!("not an upstream's answer: {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A pooled HTTP/1.1 client.
pub fn http_client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(5)).build_http()
}

/// Sends `req` to `addr`; `Err` is a transport failure (no response at all).
pub async fn send(client: &Client<HttpConnector, Body>, addr: SocketAddr, req: Req) -> Result<Resp, String> {
    let mut builder = http::Request::builder().method(req.method).uri(format!("http://{addr}{}", req.path));
    for (k, v) in &req.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let request = builder.body(req.body).map_err(|e| e.to_string())?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| format!("{e:?}"))?.to_bytes();
        Ok(Resp { status: parts.status, headers: parts.headers, body })
    };
    let limit = req.timeout;
    tokio::time::timeout(limit, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no complete response within {limit:?}")))
}

/// A response head read from a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
}

/// Writes `head` (a request head, `\r\n\r\n` included) on a fresh connection, then `body_chunks`
/// chunks produced by `chunk` (ignoring write errors: the proxy may answer and close early),
/// and reads the response head. The head is read concurrently with the upload.
pub async fn raw_exchange(
    addr: SocketAddr,
    head: String,
    chunks: usize,
    chunk: impl Fn(usize) -> Bytes + Send + 'static,
) -> RawResponse {
    let stream = within(STEP, "connect to proxy", TcpStream::connect(addr)).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let upload = tokio::spawn(async move {
        if writer.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for i in 0..chunks {
            if writer.write_all(&chunk(i)).await.is_err() {
                return;
            }
        }
        let _ = writer.flush().await;
        // Keep the write half open: closing it could end the exchange before the answer.
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let read_head = async {
        let mut head = Vec::new();
        let mut buf = [0_u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        head
    };
    let head = within(STEP, "response head on a raw connection", read_head).await;
    upload.abort();
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no response head; got {head:?}"));
    RawResponse { status, head }
}
