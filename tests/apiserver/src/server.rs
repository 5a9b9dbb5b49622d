//! The HTTP side: the accept loop, connections (HTTP/1.1 and h2c), fault injection, the request
//! log, and stopping (every connection and watch dropped at once, as when a process dies).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming as Body};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch as signal;
use tracing::debug;

use crate::router::{self, Incoming, Reply};
use crate::status::ApiError;
use crate::store::Store;

/// Largest request body accepted (a real server allows 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// How long a read waits for the store to reach the resourceVersion it asks for (the watch
/// cache's `blockTimeout`) before the server answers 504.
const FRESH_TIMEOUT: Duration = Duration::from_secs(3);

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    /// The raw query string ("" when none).
    pub query: String,
    pub status: u16,
    /// The `User-Agent` header ("" when none): `kubectl/v1.32...` for kubectl; kube-rs sends
    /// none unless its client is told to.
    pub user_agent: String,
}

/// An injected failure: requests that match get a `Status` with `code` instead of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    code: u16,
    remaining: Option<usize>,
    method: Option<String>,
    path_contains: Option<String>,
}

impl Fault {
    /// Every request fails with `code` (500, 503, 429, 403...) until cleared.
    pub fn new(code: u16) -> Self {
        Self { code, remaining: None, method: None, path_contains: None }
    }

    /// Only the next `n` matching requests fail.
    pub fn times(mut self, n: usize) -> Self {
        self.remaining = Some(n);
        self
    }

    /// Only requests with this method (`GET`, `PATCH`...) fail.
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Only requests whose path contains this text fail (`/secrets`, `/status`...).
    pub fn path_contains(mut self, text: &str) -> Self {
        self.path_contains = Some(text.to_owned());
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.remaining != Some(0)
            && self.method.as_deref().is_none_or(|m| m == method)
            && self.path_contains.as_deref().is_none_or(|p| path.contains(p))
    }
}

/// State shared by the server task, its connections and the test handle.
pub(crate) struct Shared {
    store: Mutex<Store>,
    faults: Mutex<Vec<Fault>>,
    requests: Mutex<Vec<RequestRecord>>,
    bookmark_ms: AtomicU64,
    addr: Mutex<Option<SocketAddr>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub fn new(bookmark_interval: Duration) -> Self {
        Self {
            store: Mutex::new(Store::new()),
            faults: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            bookmark_ms: AtomicU64::new(bookmark_interval.as_millis().max(1) as u64),
            addr: Mutex::new(None),
        }
    }

    pub fn lock_store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    pub fn faults(&self) -> MutexGuard<'_, Vec<Fault>> {
        lock(&self.faults)
    }

    pub fn requests(&self) -> MutexGuard<'_, Vec<RequestRecord>> {
        lock(&self.requests)
    }

    pub fn bookmark_interval(&self) -> Duration {
        Duration::from_millis(self.bookmark_ms.load(Ordering::Relaxed))
    }

    pub fn set_bookmark_interval(&self, interval: Duration) {
        self.bookmark_ms.store(interval.as_millis().max(1) as u64, Ordering::Relaxed);
    }

    /// `host:port` the server listens on.
    pub fn address(&self) -> String {
        lock(&self.addr).map(|a| a.to_string()).unwrap_or_default()
    }

    pub fn set_address(&self, addr: SocketAddr) {
        *lock(&self.addr) = Some(addr);
    }

    /// Waits until the store reaches `rv`, at most [`FRESH_TIMEOUT`]; false when it did not.
    pub async fn wait_for(&self, rv: u64) -> bool {
        let mut current = self.lock_store().rv_signal();
        let reached = tokio::time::timeout(FRESH_TIMEOUT, current.wait_for(|now| *now >= rv)).await;
        reached.is_ok_and(|r| r.is_ok())
    }

    fn take_fault(&self, method: &str, path: &str) -> Option<u16> {
        let mut faults = self.faults();
        let fault = faults.iter_mut().find(|f| f.matches(method, path))?;
        if let Some(n) = fault.remaining.as_mut() {
            *n -= 1;
        }
        let code = fault.code;
        faults.retain(|f| f.remaining != Some(0));
        Some(code)
    }
}

type ResBody = BoxBody<Bytes, Infallible>;

fn full(bytes: impl Into<Bytes>) -> ResBody {
    Full::new(bytes.into()).boxed()
}

/// Serves one request.
async fn serve(shared: Arc<Shared>, req: Request<Body>) -> Result<Response<ResBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let header =
        |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let reply = match shared.take_fault(parts.method.as_str(), parts.uri.path()) {
        Some(code) => Reply::error(&ApiError::injected(code)),
        None => match Limited::new(body, MAX_BODY).collect().await {
            Ok(collected) => {
                let bytes = collected.to_bytes();
                let (accept, content_type, user_agent) =
                    (header(header::ACCEPT), header(header::CONTENT_TYPE), header(header::USER_AGENT));
                let incoming = Incoming {
                    method: parts.method.clone(),
                    path: parts.uri.path(),
                    query: parts.uri.query(),
                    accept: accept.as_deref(),
                    content_type: content_type.as_deref(),
                    user_agent: user_agent.as_deref(),
                    body: &bytes,
                };
                if let Some(rv) = router::not_older_than(&incoming) {
                    shared.wait_for(rv).await;
                }
                router::dispatch(&shared, &incoming)
            }
            Err(_) => Reply::error(&ApiError::new(413, "RequestEntityTooLarge", "the request is too large")),
        },
    };
    let response = render(reply);
    let record = RequestRecord {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        status: response.status().as_u16(),
        user_agent: header(header::USER_AGENT).unwrap_or_default(),
    };
    debug!(method = %record.method, path = %record.path, query = %record.query, status = record.status, "request");
    shared.requests().push(record);
    Ok(response)
}

/// Turns a reply into a response.
pub(crate) fn render(reply: Reply) -> Response<ResBody> {
    let mut builder = Response::builder();
    let (status, content_type, body) = match reply {
        Reply::Json { code, body, warnings, yaml, content_type } => {
            for w in warnings {
                let value = format!("299 - {}", serde_json::Value::String(w));
                if let Ok(v) = HeaderValue::from_str(&value) {
                    builder = builder.header(header::WARNING, v);
                }
            }
            if yaml {
                let text = serde_yaml::to_string(&body).unwrap_or_default();
                (code, "application/yaml".to_owned(), full(text))
            } else {
                let mut bytes = body.to_string().into_bytes();
                bytes.push(b'\n');
                (code, content_type.unwrap_or_else(|| "application/json".to_owned()), full(bytes))
            }
        }
        Reply::Text { code, body } => (code, "text/plain; charset=utf-8".to_owned(), full(body)),
        Reply::Stream { rx } => {
            let frames = stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), rx))
            });
            (200, "application/json".to_owned(), StreamBody::new(frames).boxed())
        }
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let builder = builder
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header("Cache-Control", "no-cache, private");
    match builder.body(body) {
        Ok(response) => response,
        Err(_) => Response::new(full("internal error")),
    }
}

/// A running accept loop.
pub(crate) struct Running {
    stop: signal::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting and drops every open connection; returns once the port is released.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Stops without waiting (for `Drop`).
    pub fn abort(self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

/// Starts serving on `listener`.
pub(crate) fn spawn(shared: Arc<Shared>, listener: TcpListener) -> Running {
    let (stop, mut stopped) = signal::channel(false);
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stopped.changed() => break,
            };
            let Ok((socket, _)) = accepted else { continue };
            let shared = Arc::clone(&shared);
            let mut conn_stopped = stopped.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| serve(Arc::clone(&shared), req));
                let builder = auto::Builder::new(TokioExecutor::new());
                let conn = builder.serve_connection(TokioIo::new(socket), service);
                tokio::select! {
                    _ = conn => {}
                    _ = conn_stopped.changed() => {}
                }
            });
        }
    });
    Running { stop, task }
}
