//! A Kubernetes API server for tests: a **stand-in for kube-apiserver**, in memory, over plain
//! HTTP on 127.0.0.1, for driving the real `kubectl` and kube-rs where no cluster can run.
//!
//! It is written to be faithful rather than permissive: what it implements behaves as
//! kube-apiserver 1.32 does for the requests kubectl 1.32 and kube-rs 5 send, and what it does not
//! implement is answered as a real server answers an unknown request (404 `NotFound`, 405
//! `MethodNotAllowed`, 406, 415 `UnsupportedMediaType`), always with a `Status` object.
//!
//! # What it covers
//!
//! - **Discovery**: `/version`, `/api`, `/apis`, `/apis/<group>`, `/api/v1` and
//!   `/apis/<group>/<version>` resource lists (verbs, scope, kind, short names, categories,
//!   subresources), and aggregated discovery (`apidiscovery.k8s.io/v2` and `v2beta1`).
//! - **OpenAPI v3** index and per group/version documents, enough for kubectl to see that the
//!   server validates fields (`fieldValidation=Strict`); custom resources carry their schema.
//! - **Resources**: `v1` Secrets (`stringData` folded into `data` and never stored, key, size,
//!   type and `immutable` rules), Namespaces (`default`, `kube-system`, `kube-public`,
//!   `kube-node-lease` exist; deleting one removes its objects at once), `v1` Events and
//!   `events.k8s.io/v1` Events (one storage, converted between the two), and
//!   `apiextensions.k8s.io/v1` CustomResourceDefinitions: applying one makes its resource
//!   servable at once (discovery, OpenAPI, CRUD, watch, `status` subresource, printer columns),
//!   with `NamesAccepted`/`Established` conditions; deleting it deletes its objects. A schema
//!   that is not structural is refused (422) with the real field paths and messages: a `type` on
//!   every node (unless int-or-string or preserving unknown fields), no `additionalProperties` at
//!   the root or beside `properties`, only `name`/`generateName` under the root `metadata`,
//!   nothing structural inside `anyOf`/`allOf`/`oneOf`/`not`, and unsupported keywords.
//! - **Semantics**: one global monotonic `resourceVersion`; `uid`, `creationTimestamp`,
//!   `generation` (bumped by changes outside metadata and, with a status subresource, status);
//!   optimistic concurrency (409 Conflict on a stale resourceVersion; custom resources refuse
//!   unconditional updates); no-op writes keep the resourceVersion and send no event;
//!   `generateName`; finalizers (`deletionTimestamp`, removal when the last one goes); `dryRun=All`;
//!   `fieldValidation` Strict/Warn/Ignore with unknown fields pruned; `managedFields` (FieldsV1);
//!   structural schemas of CRDs: defaults, null pruning, types, required, enums, bounds, lengths,
//!   `pattern`, list-type uniqueness, and CEL `x-kubernetes-validations` (kube-cel, with the
//!   Kubernetes CEL libraries and `oldSelf`).
//! - **Patches**: JSON merge patch, JSON patch, strategic merge patch for built-in kinds (415 for
//!   custom resources, as a real server), server-side apply with field ownership, conflicts
//!   (409 unless `force`), removal of fields a manager stops applying, and list-type map/set
//!   merging from the schema.
//! - **Reads**: list with `labelSelector` (`=`, `==`, `!=`, `in`, `notin`, exists, `!`) and
//!   `fieldSelector` (`metadata.name`, `metadata.namespace`, and the per-kind fields), the
//!   `resourceVersion`/`resourceVersionMatch` rules (Exact lists, and a resourceVersion under a
//!   `limit`, rebuilt from history, 410 when compacted, 504 at once for a future version), a list
//!   or get not older than a resourceVersion the store has not reached waiting for it up to 3 s,
//!   as the watch cache does, then 504 `Timeout` (`ResourceVersionTooLarge`, retry after 1 s;
//!   in-process requests answer at once), `limit`/`continue` pagination over a consistent
//!   snapshot (410 when the snapshot was compacted), Table answers (`as=Table`) with CRD printer columns
//!   (JSONPath subset: `.a.b`, `[0]`, `[*]`, `[?(@.type=="Ready")]`) and built-in columns, and
//!   `PartialObjectMetadata` answers.
//! - **Watch**: from a resourceVersion, with synthetic ADDED events for `""`/`"0"`, streaming
//!   lists (`sendInitialEvents=true`, closed by an `initial-events-end` bookmark), periodic
//!   bookmarks (every second by default), selectors (objects leaving a selector are DELETED),
//!   `timeoutSeconds`, 410 Expired as an ERROR event for a compacted resourceVersion; from a
//!   resourceVersion the store has not reached, a watch starts at once and sends only what is
//!   newer, and a streaming list waits up to 3 s, then gets the 504 `Status` as an ERROR event.
//! - **Test controls** on [`TestApiServer`]: compaction, stop and restart on the same port
//!   (objects kept; the resourceVersion moves on and the history is compacted, so every earlier
//!   watch resumes with 410), fault injection ([`Fault`]: by method, path, count), the request
//!   log, in-process requests and reads.
//!
//! # What it does not do
//!
//! No authentication or authorization (no RBAC: every request is allowed), no TLS, no
//! admission, no CBOR, protobuf only for request bodies of Secrets, Namespaces and
//! DeleteOptions (what kubectl's typed clients send; answers are JSON), no garbage collection of
//! `ownerReferences`, no other built-in kinds (Pods, ConfigMaps, Leases... answer 404), no CRD
//! conversion webhooks (versions of a CRD are served as-is, `apiVersion` rewritten: the `None`
//! strategy), no `format`/`anyOf`/`oneOf`/`allOf` checks in schemas (types, required, enum,
//! bounds, lengths, `pattern`, list uniqueness, defaults and CEL rules are applied), no checks of
//! a CRD schema's list/map-type extensions, defaults, patterns or CEL rules when it is applied
//! (only its structure), no `scale` subresource, namespaces are removed at once (no
//! `Terminating` phase), and no persistence.

mod apply;
mod builtin;
mod cel;
mod crd;
mod discovery;
mod events;
mod kinds;
mod managed;
mod media;
mod meta;
mod openapi;
mod ops;
mod patch;
mod protobuf;
mod query;
mod resources;
mod router;
mod schema;
mod selector;
mod server;
mod status;
mod store;
mod structural;
mod table;
mod watch;
mod write;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde_json::Value;
use tokio::net::TcpListener;

pub use server::{Fault, RequestRecord};
pub use status::ApiError;

use router::{Incoming, Reply};
use server::{Running, Shared};

/// Errors of the test server's own operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot bind {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the kubeconfig {path}")]
    Kubeconfig {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the API answered {0}")]
    Api(#[from] ApiError),
    #[error("a watch cannot be read in-process")]
    Stream,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Options of [`TestApiServer::start_with`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The address to bind; port 0 picks a free one.
    pub addr: SocketAddr,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self { addr: SocketAddr::from(([127, 0, 0, 1], 0)), bookmark_interval: Duration::from_secs(1) }
    }
}

/// A running API server for tests. Dropping it stops it.
pub struct TestApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    running: tokio::sync::Mutex<Option<Running>>,
}

impl std::fmt::Debug for TestApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApiServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl TestApiServer {
    /// Starts a server on 127.0.0.1 with a free port.
    pub async fn start() -> Result<Self> {
        Self::start_with(Config::default()).await
    }

    pub async fn start_with(config: Config) -> Result<Self> {
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| Error::Bind { addr: config.addr, source })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind { addr: config.addr, source })?;
        let shared = Arc::new(Shared::new(config.bookmark_interval));
        shared.set_address(addr);
        let running = server::spawn(Arc::clone(&shared), listener);
        Ok(Self { shared, addr, running: tokio::sync::Mutex::new(Some(running)) })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig for this server: plain HTTP, no credentials, namespace `default`.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test-apiserver\n  cluster:\n    server: {}\n\
             contexts:\n- name: test-apiserver\n  context:\n    cluster: test-apiserver\n    user: test-user\n    \
             namespace: default\ncurrent-context: test-apiserver\nusers:\n- name: test-user\n  user: {{}}\n\
             preferences: {{}}\n",
            self.url()
        )
    }

    /// Writes [`kubeconfig`](Self::kubeconfig) to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.kubeconfig())
            .map_err(|source| Error::Kubeconfig { path: path.display().to_string(), source })
    }

    /// Forgets the change history: watches and exact lists from an older resourceVersion get 410.
    pub fn compact(&self) {
        self.shared.lock_store().compact();
    }

    /// The newest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock_store().current_rv()
    }

    /// Stops serving: the port closes, every connection and watch is dropped. Objects stay.
    pub async fn stop(&self) {
        let running = self.running.lock().await.take();
        if let Some(running) = running {
            running.stop().await;
        }
        self.shared.lock_store().close_watchers(None);
    }

    pub async fn is_running(&self) -> bool {
        self.running.lock().await.is_some()
    }

    /// Simulates an API server restart: stops (if running), moves the resourceVersion on (as the
    /// rest of a real cluster does meanwhile) and compacts the history, then serves again on the
    /// same port with the same objects. Every watch from before the restart resumes with 410
    /// Gone, so clients relist.
    pub async fn restart(&self) -> Result<()> {
        self.stop().await;
        {
            let mut store = self.shared.lock_store();
            store.advance();
            store.compact();
        }
        let mut last = None;
        for _ in 0..50 {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => {
                    *self.running.lock().await = Some(server::spawn(Arc::clone(&self.shared), listener));
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let source = last.unwrap_or_else(|| std::io::Error::other("bind failed"));
        Err(Error::Bind { addr: self.addr, source })
    }

    /// The next `n` requests get a `Status` with `code` (500, 503, 429...).
    pub fn fail_next(&self, n: usize, code: u16) {
        self.fail(Fault::new(code).times(n));
    }

    /// Every request gets `code` until [`clear_faults`](Self::clear_faults).
    pub fn fail_all(&self, code: u16) {
        self.fail(Fault::new(code));
    }

    /// Injects a failure for the requests it matches (the first matching fault applies).
    pub fn fail(&self, fault: Fault) {
        self.shared.faults().push(fault);
    }

    pub fn clear_faults(&self) {
        self.shared.faults().clear();
    }

    /// How often watches get a bookmark.
    pub fn set_bookmark_interval(&self, interval: Duration) {
        self.shared.set_bookmark_interval(interval);
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.requests().clone()
    }

    pub fn clear_requests(&self) {
        self.shared.requests().clear();
    }

    /// Reads an API path (`/api/v1/namespaces/default/secrets/x`) straight from the store, as a
    /// GET would answer it; None when it is not found.
    pub fn get_json(&self, path: &str) -> Option<Value> {
        self.request(Method::GET, path, None).ok()
    }

    /// Runs a request in-process (no HTTP): `path` may carry a query; `body` is JSON for
    /// POST/PUT and a merge patch for PATCH. Returns the answer or the error `Status`.
    pub fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let content_type =
            if method == Method::PATCH { "application/merge-patch+json" } else { "application/json" };
        let incoming = Incoming {
            method,
            path,
            query,
            accept: Some("application/json"),
            content_type: Some(content_type),
            user_agent: Some("route-test-apiserver/in-process"),
            body: &bytes,
        };
        match router::dispatch(&self.shared, &incoming) {
            Reply::Json { code, body, .. } if code < 300 => Ok(body),
            Reply::Json { body, code, .. } => Err(Error::Api(status_error(code, &body))),
            Reply::Text { body, .. } => Ok(Value::String(body)),
            Reply::Stream { .. } => Err(Error::Stream),
        }
    }

    /// Creates a namespace (no error when it exists).
    pub fn create_namespace(&self, name: &str) -> Result<()> {
        let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        match self.request(Method::POST, "/api/v1/namespaces", Some(&body)) {
            Ok(_) => Ok(()),
            Err(Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn status_error(code: u16, body: &Value) -> ApiError {
    const REASONS: [&str; 16] = [
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Invalid",
        "BadRequest",
        "Expired",
        "Gone",
        "MethodNotAllowed",
        "Forbidden",
        "Unauthorized",
        "Timeout",
        "InternalError",
        "ServiceUnavailable",
        "TooManyRequests",
        "UnsupportedMediaType",
        "NotAcceptable",
    ];
    let given = body.get("reason").and_then(Value::as_str).unwrap_or("");
    let reason = REASONS.iter().find(|r| **r == given).copied().unwrap_or("");
    let message = body.get("message").and_then(Value::as_str).unwrap_or("").to_owned();
    let mut e = ApiError::new(code, reason, message);
    e.details = body.get("details").cloned();
    e
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        if let Ok(mut running) = self.running.try_lock()
            && let Some(running) = running.take()
        {
            running.abort();
        }
    }
}
