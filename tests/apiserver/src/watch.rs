//! Watches: JSON lines of `{"type", "object"}` from a resourceVersion (410 Expired as an ERROR
//! event when it was compacted; nothing older than it, even when the store has not reached it),
//! synthetic ADDED events for `""`/`"0"`, streaming lists (`sendInitialEvents=true` ending with an
//! `initial-events-end` bookmark; ahead of the store, a 504 ERROR event after 3 s), periodic
//! BOOKMARKs, selectors (objects moving out of a selector are DELETED, moving in ADDED),
//! `timeoutSeconds`, and Table or metadata-only objects when asked.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::ops::parse_rv;
use crate::query::Ctx;
use crate::selector::Selector;
use crate::server::Shared;
use crate::status::{ApiError, ApiResult};
use crate::store::{Change, ChangeKind, Store};
use crate::table::{self, Include};

/// How objects are written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Object,
    Table(Include),
    Metadata,
}

/// Default watch length when `timeoutSeconds` is absent (the server's minimum request timeout).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Emitter {
    ctx: Ctx,
    selector: Selector,
    format: Format,
    headers_sent: bool,
    /// The resourceVersion the watch starts from: nothing older is sent.
    floor: u64,
    tx: mpsc::Sender<Bytes>,
}

impl Emitter {
    async fn send(&mut self, kind: &str, object: Value) -> bool {
        let object = match self.format {
            Format::Object => object,
            Format::Metadata => table::partial(&object),
            Format::Table(include) => {
                let t = table::table(
                    &self.ctx.rt,
                    &self.ctx.version,
                    &[object],
                    None,
                    include,
                    !self.headers_sent,
                );
                self.headers_sent = true;
                t
            }
        };
        self.raw(&json!({"type": kind, "object": object})).await
    }

    async fn raw(&self, event: &Value) -> bool {
        let mut line = event.to_string().into_bytes();
        line.push(b'\n');
        self.tx.send(Bytes::from(line)).await.is_ok()
    }

    async fn error(&self, e: &ApiError) {
        self.raw(&json!({"type": "ERROR", "object": e.to_status()})).await;
    }

    /// A bookmark at the watch's own resourceVersion is sent: in a real cluster other kinds'
    /// writes move it on, in a quiet store here they do not.
    async fn bookmark(&self, rv: u64, initial_end: bool) -> bool {
        if matches!(self.format, Format::Table(_)) || rv < self.floor {
            return true;
        }
        let mut object = json!({"kind": self.ctx.rt.kind, "apiVersion": self.ctx.api_version(),
            "metadata": {"resourceVersion": rv.to_string(), "creationTimestamp": null}});
        if initial_end {
            object["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        self.raw(&json!({"type": "BOOKMARK", "object": object})).await
    }

    /// Emits a change as this watcher sees it through its selector.
    async fn change(&mut self, change: &Change) -> bool {
        if change.rv <= self.floor {
            return true;
        }
        let new = self.ctx.to_view(change.object.clone());
        let was = change.old.as_ref().map(|o| self.selector.matches(&self.ctx.to_view(o.clone())));
        let is = self.selector.matches(&new);
        match (change.kind, was, is) {
            (ChangeKind::Added, _, true) => self.send("ADDED", new).await,
            (ChangeKind::Modified, Some(true), true) => self.send("MODIFIED", new).await,
            (ChangeKind::Modified, Some(false), true) => self.send("ADDED", new).await,
            (ChangeKind::Modified, Some(true), false) => {
                let mut old = self.ctx.to_view(change.old.clone().unwrap_or_default());
                old["metadata"]["resourceVersion"] = json!(change.rv.to_string());
                self.send("DELETED", old).await
            }
            (ChangeKind::Deleted, Some(true), _) => self.send("DELETED", new).await,
            _ => true,
        }
    }
}

/// Starts a watch; the receiver yields the body's chunks.
pub(crate) fn start(
    shared: &Arc<Shared>,
    ctx: Ctx,
    selector: Selector,
    format: Format,
) -> ApiResult<mpsc::Receiver<Bytes>> {
    let q = &ctx.query;
    let send_initial = match q.get("sendInitialEvents") {
        None => None,
        Some(_) => Some(q.flag("sendInitialEvents")?),
    };
    let bookmarks = q.flag("allowWatchBookmarks")?;
    let rv_match = q.get("resourceVersionMatch").filter(|s| !s.is_empty());
    let invalid =
        |msg: &str| ApiError::unprocessable(format!("ListOptions.meta.k8s.io \"\" is invalid: {msg}"));
    match (send_initial, rv_match) {
        (Some(_), m) if m != Some("NotOlderThan") => {
            return Err(invalid(
                "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ));
        }
        _ => {}
    }
    if send_initial == Some(true) && !bookmarks {
        return Err(invalid(
            "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
        ));
    }
    let timeout = match q.get("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse().map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        ),
        None => DEFAULT_TIMEOUT,
    };
    let rv = q.get("resourceVersion").filter(|s| !s.is_empty()).map(parse_rv).transpose()?;
    let (group, plural) = ctx.rt.storage();
    let ns = ctx.namespace.clone();
    // A streaming list ahead of the store waits for it, as the watch cache does, then fails
    // (504 in an ERROR event); other watches start at once and send only what is newer.
    let ahead = rv.filter(|&rv| send_initial == Some(true) && rv > shared.lock_store().current_rv());
    let opened = ahead
        .is_none()
        .then(|| open(&mut shared.lock_store(), &group, &plural, ns.as_deref(), rv, send_initial));
    let (tx, rx) = mpsc::channel(64);
    let floor = rv.unwrap_or(0);
    let mut emitter = Emitter { ctx, selector, format, headers_sent: false, floor, tx };
    let shared = Arc::clone(shared);
    let interval = shared.bookmark_interval();
    tokio::spawn(async move {
        if let Some(rv) = ahead
            && !shared.wait_for(rv).await
        {
            let current = shared.lock_store().current_rv();
            emitter.error(&ApiError::too_large_resource_version(rv, current)).await;
            return;
        }
        let opened = opened.unwrap_or_else(|| {
            open(&mut shared.lock_store(), &group, &plural, ns.as_deref(), rv, send_initial)
        });
        let Opening { initial, backlog, live, end_rv } = match opened {
            Ok(opening) => opening,
            Err(e) => return emitter.error(&e).await,
        };
        for object in initial {
            let view = emitter.ctx.to_view(object);
            if emitter.selector.matches(&view) && !emitter.send("ADDED", view).await {
                return;
            }
        }
        if let Some(rv) = end_rv
            && !emitter.bookmark(rv, true).await
        {
            return;
        }
        for change in backlog {
            if !emitter.change(&change).await {
                return;
            }
        }
        run(emitter, live, &shared, bookmarks, interval, timeout).await;
    });
    Ok(rx)
}

/// What a watch starts with, read under one lock.
struct Opening {
    /// The objects of a synthetic or streamed initial list.
    initial: Vec<Value>,
    /// The changes after the watch's resourceVersion.
    backlog: Vec<Arc<Change>>,
    live: mpsc::UnboundedReceiver<Arc<Change>>,
    /// The `initial-events-end` bookmark of a streaming list.
    end_rv: Option<u64>,
}

fn open(
    store: &mut Store,
    group: &str,
    plural: &str,
    ns: Option<&str>,
    rv: Option<u64>,
    send_initial: Option<bool>,
) -> ApiResult<Opening> {
    let current = store.current_rv();
    let (initial, backlog) = if send_initial.unwrap_or(matches!(rv, None | Some(0))) {
        (store.list(group, plural, ns), Vec::new())
    } else {
        // "0" without initial events means from now, as "" does.
        let from = rv.filter(|&rv| rv > 0).unwrap_or(current);
        (Vec::new(), store.changes_since(group, plural, ns, from)?)
    };
    let live = store.subscribe(group, plural, ns);
    Ok(Opening { initial, backlog, live, end_rv: (send_initial == Some(true)).then_some(current) })
}

async fn run(
    mut emitter: Emitter,
    mut live: mpsc::UnboundedReceiver<Arc<Change>>,
    shared: &Shared,
    bookmarks: bool,
    interval: Duration,
    timeout: Duration,
) {
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            change = live.recv() => match change {
                Some(change) => {
                    if !emitter.change(&change).await {
                        return;
                    }
                }
                None => return,
            },
            _ = ticker.tick(), if bookmarks => {
                // Changes are sent under the store lock: an empty queue under the lock means
                // everything up to the current resourceVersion was delivered.
                let rv = {
                    let store = shared.lock_store();
                    live.is_empty().then(|| store.current_rv())
                };
                if let Some(rv) = rv
                    && !emitter.bookmark(rv, false).await {
                        return;
                    }
            }
            () = &mut deadline => return,
            () = emitter.tx.closed() => return,
        }
    }
}
