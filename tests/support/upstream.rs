//! A recording upstream: an HTTP/1.1 server on 127.0.0.1 that records what it received
//! (method, path and query, headers, body length and SHA-256, streamed, never held) and answers
//! JSON of what it saw. A WebSocket upgrade is accepted and echoed (see [`super::ws`]).
//!
//! Behaviours, switchable at run time: answer at once, answer after a delay, never answer, or
//! close the connection without answering.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// How the upstream answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// Read the whole body, answer 200 with the JSON of what was seen.
    Echo,
    /// Like `Echo`, after waiting this long (the body is read first).
    Delay(Duration),
    /// Read the request head, then never answer (the connection stays open).
    Hang,
    /// Close the connection as soon as the request head arrives, without answering.
    Close,
}

/// What the upstream received for one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The name given to [`Upstream::start`].
    pub upstream: String,
    pub port: u16,
    pub method: String,
    /// Path and query, as on the request line.
    pub uri: String,
    pub version: String,
    /// Every header line in order, names lower-case.
    pub headers: Vec<(String, String)>,
    pub body_len: u64,
    pub body_sha256: String,
    /// False when the body ended with an error (the client or the proxy aborted it).
    pub complete: bool,
    /// Whether this was a WebSocket upgrade.
    pub websocket: bool,
}

impl Seen {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of a header, one per header line.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().filter(|(k, _)| *k == name).map(|(_, v)| v.as_str()).collect()
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.uri.split_once('?').map_or(&self.uri, |(p, _)| p)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "upstream": self.upstream,
            "port": self.port,
            "method": self.method,
            "uri": self.uri,
            "version": self.version,
            "headers": self.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "body_len": self.body_len,
            "body_sha256": self.body_sha256,
            "complete": self.complete,
            "websocket": self.websocket,
        })
    }

    pub fn from_json(v: &Value) -> Option<Self> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(Self {
            upstream: s("upstream")?,
            port: u16::try_from(v.get("port")?.as_u64()?).ok()?,
            method: s("method")?,
            uri: s("uri")?,
            version: s("version")?,
            headers: v
                .get("headers")?
                .as_array()?
                .iter()
                .filter_map(|pair| {
                    Some((pair.get(0)?.as_str()?.to_owned(), pair.get(1)?.as_str()?.to_owned()))
                })
                .collect(),
            body_len: v.get("body_len")?.as_u64()?,
            body_sha256: s("body_sha256")?,
            complete: v.get("complete")?.as_bool()?,
            websocket: v.get("websocket")?.as_bool()?,
        })
    }
}

struct Shared {
    name: String,
    port: u16,
    behavior: Mutex<Behavior>,
    seen: Mutex<Vec<Seen>>,
    /// Request heads received (counted before the body is read, so `Hang` and `Close` count).
    heads: Mutex<Vec<String>>,
    /// Connections accepted.
    connections: std::sync::atomic::AtomicUsize,
    changed: Notify,
}

/// A running recording upstream; stops when dropped.
pub struct Upstream {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// Starts an upstream named `name` on an ephemeral port of 127.0.0.1.
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, Behavior::Echo).await
    }

    pub async fn start_with(name: &str, behavior: Behavior) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            port: addr.port(),
            behavior: Mutex::new(behavior),
            seen: Mutex::new(Vec::new()),
            heads: Mutex::new(Vec::new()),
            connections: std::sync::atomic::AtomicUsize::new(0),
            changed: Notify::new(),
        });
        let accept_shared = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = Arc::clone(&accept_shared);
                shared.connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if *shared.behavior.lock().unwrap() == Behavior::Close {
                    tokio::spawn(close_after_head(shared, stream));
                    continue;
                }
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(Arc::clone(&shared), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Self { shared, addr, task }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn set_behavior(&self, behavior: Behavior) {
        *self.shared.behavior.lock().unwrap() = behavior;
    }

    /// Every request seen so far whose body was read to its end (or aborted).
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Path and query of every request head received, answered or not.
    pub fn heads(&self) -> Vec<String> {
        self.shared.heads.lock().unwrap().clone()
    }

    /// How many request heads arrived.
    pub fn hits(&self) -> usize {
        self.shared.heads.lock().unwrap().len()
    }

    /// The last request seen; fails when none was.
    pub fn last(&self) -> Seen {
        self.seen().pop().unwrap_or_else(|| panic!("upstream {} saw no request", self.shared.name))
    }

    /// Waits until `n` requests have been recorded (bodies read), at most `limit`.
    pub async fn wait_seen(&self, n: usize, limit: Duration) -> Vec<Seen> {
        let what = format!("upstream {} records {n} request(s)", self.shared.name);
        super::within(limit, &what, async {
            loop {
                let notified = self.shared.changed.notified();
                let seen = self.seen();
                if seen.len() >= n {
                    return seen;
                }
                notified.await;
            }
        })
        .await
    }
}

/// The upstream's response body: JSON of what it saw, or a generated download.
pub type ResponseBody = BoxBody<Bytes, Infallible>;

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<ResponseBody>, Infallible> {
    let uri = req.uri().path_and_query().map_or_else(|| req.uri().to_string(), ToString::to_string);
    shared.heads.lock().unwrap().push(uri.clone());
    shared.changed.notify_waiters();
    let behavior = *shared.behavior.lock().unwrap();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let mut seen = Seen {
        upstream: shared.name.clone(),
        port: shared.port,
        method: req.method().to_string(),
        uri,
        version: format!("{:?}", req.version()),
        headers,
        body_len: 0,
        body_sha256: String::new(),
        complete: true,
        websocket: false,
    };

    if behavior == Behavior::Hang {
        std::future::pending::<()>().await;
    }

    // `X-Test-Status: N` asks for a plain answer with that status (upgrades included).
    if let Some(status) = seen.header("x-test-status").and_then(|v| v.parse::<u16>().ok()) {
        let body = serde_json::to_vec(&seen.to_json()).expect("json");
        record(&shared, seen);
        let response = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)).boxed())
            .expect("response");
        return Ok(response);
    }

    if super::ws::is_upgrade(&req) {
        seen.websocket = true;
        let response = super::ws::accept(req, seen.to_json());
        record(&shared, seen);
        return Ok(response.map(BodyExt::boxed));
    }

    let mut body = req.into_body();
    let mut hasher = openssl::sha::Sha256::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    hasher.update(data);
                    seen.body_len += data.len() as u64;
                }
            }
            Err(_) => {
                seen.complete = false;
                break;
            }
        }
    }
    seen.body_sha256 = hex::encode(hasher.finish());
    if let Behavior::Delay(d) = behavior {
        tokio::time::sleep(d).await;
    }
    let mut answer = seen.to_json();
    // `X-Test-Pad: N` asks for an answer padded with N bytes of text (compression tests).
    if let Some(pad) = seen.header("x-test-pad").and_then(|v| v.parse::<usize>().ok()) {
        answer["pad"] = Value::String("abcdesktop ".repeat(pad / 11 + 1));
    }
    let download = seen.header("x-test-download").and_then(|v| v.parse::<u64>().ok());
    let response_hop = seen.has_header("x-test-response-hop");
    let body = serde_json::to_vec(&answer).expect("json");
    record(&shared, seen);
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header("server", "recording-upstream/1.0")
        .header("x-upstream", shared.name.as_str())
        .header("keep-alive", "timeout=5");
    if response_hop {
        // A hop-by-hop header named by Connection: the proxy must not pass it on.
        response = response.header("connection", "x-resp-hop").header("x-resp-hop", "hop");
    }
    let response = match download {
        // `X-Test-Download: N`: N bytes, generated as they are sent, never held.
        Some(len) => response
            .header("content-type", "application/octet-stream")
            .header("content-length", len)
            .body(download_body(len)),
        None => {
            response.header("content-type", "application/json").body(Full::new(Bytes::from(body)).boxed())
        }
    };
    Ok(response.expect("response"))
}

/// The chunk a download is made of; byte `i` of a download is `download_byte(i)`.
pub const DOWNLOAD_CHUNK: usize = 256 * 1024;

fn download_body(len: u64) -> ResponseBody {
    use futures_util::StreamExt as _;
    let chunk = Bytes::from((0..DOWNLOAD_CHUNK).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let chunks = len.div_ceil(DOWNLOAD_CHUNK as u64);
    let stream = futures_util::stream::iter(0..chunks).map(move |i| {
        let remaining = len - i * DOWNLOAD_CHUNK as u64;
        let n = usize::try_from(remaining.min(DOWNLOAD_CHUNK as u64)).unwrap_or(DOWNLOAD_CHUNK);
        Ok::<_, Infallible>(Frame::data(chunk.slice(..n)))
    });
    BodyExt::boxed(StreamBody::new(stream))
}

fn record(shared: &Shared, seen: Seen) {
    shared.seen.lock().unwrap().push(seen);
    shared.changed.notify_waiters();
}

/// `Behavior::Close`: read the request head, then drop the connection without a byte.
async fn close_after_head(shared: Arc<Shared>, mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt as _;
    let mut head = Vec::new();
    let mut buf = [0_u8; 4096];
    let read_head = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read_head).await;
    let line = String::from_utf8_lossy(&head);
    let uri = line.split(' ').nth(1).unwrap_or("").to_owned();
    shared.heads.lock().unwrap().push(uri);
    shared.changed.notify_waiters();
    drop(stream);
}
