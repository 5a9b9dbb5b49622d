//! One watcher per object: the RouteConfig, and each Secret it names, every one by name
//! (`fieldSelector=metadata.name=<name>`), so that RBAC can grant `get`/`list`/`watch` on
//! those names alone (`resourceNames`).
//!
//! kube-runtime's watcher lists then watches, resumes from the last resourceVersion after a
//! dropped connection and relists when the server answers 410 Gone; [`retry`](super::retry)
//! waits before each retry and starts the watcher over from a list when its watch keeps
//! failing. Each watcher turns its stream into [`Update`]s of its one object: the first list
//! (and every relist) gives one update, whether it found the object or not.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use prometheus_client::metrics::counter::Counter;
use route_crds::RouteConfig;
use route_proxy::metrics::{Metrics, WatchLabels};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use super::retry::Retry;
use super::state::{SecretData, Update};

/// A watcher's failure counters: `route_watch_failures_total` of its kind.
#[derive(Clone)]
pub(crate) struct Failures {
    retry: Counter,
    relist: Counter,
}

impl Failures {
    pub(crate) fn of(metrics: &Metrics, kind: &'static str) -> Self {
        let counter = |next| metrics.watch_failures.get_or_create(&WatchLabels { kind, next }).clone();
        Self { retry: counter("retry"), relist: counter("relist") }
    }

    fn count(&self, relist: bool) {
        if relist { &self.relist } else { &self.retry }.inc();
    }
}

/// Watches the RouteConfig `name` in `namespace`, sending its updates on `tx` until the
/// receiver is gone.
pub(crate) fn route_config(
    client: Client,
    namespace: &str,
    name: &str,
    tx: mpsc::Sender<Update>,
    metrics: &Metrics,
) -> JoinHandle<()> {
    let api: Api<RouteConfig> = Api::namespaced(client, namespace);
    let span = tracing::info_span!("watch", kind = "RouteConfig", %namespace, %name);
    let failures = Failures::of(metrics, "RouteConfig");
    let update = |rc: Option<RouteConfig>| Update::RouteConfig(rc.map(Box::new));
    tokio::spawn(one(api, name.to_owned(), tx, failures, update).instrument(span))
}

/// The Secret watchers, one per name the RouteConfig refers to.
pub(crate) struct SecretWatchers {
    client: Client,
    namespace: String,
    tx: mpsc::Sender<Update>,
    failures: Failures,
    running: BTreeMap<String, JoinHandle<()>>,
}

impl SecretWatchers {
    pub(crate) fn new(client: Client, namespace: &str, tx: mpsc::Sender<Update>, metrics: &Metrics) -> Self {
        let failures = Failures::of(metrics, "Secret");
        Self { client, namespace: namespace.to_owned(), tx, failures, running: BTreeMap::new() }
    }

    /// Starts a watcher for each name in `wanted` without one and stops the others.
    pub(crate) fn set(&mut self, wanted: &BTreeSet<String>) {
        self.running.retain(|name, task| {
            let keep = wanted.contains(name);
            if !keep {
                tracing::info!(secret = %name, "no longer named: stopped watching");
                task.abort();
            }
            keep
        });
        for name in wanted {
            if self.running.contains_key(name) {
                continue;
            }
            tracing::info!(secret = %name, namespace = %self.namespace, "watching");
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
            let span = tracing::info_span!("watch", kind = "Secret", namespace = %self.namespace, %name);
            let secret = name.clone();
            let update =
                move |s: Option<Secret>| Update::Secret { name: secret.clone(), data: s.map(secret_data) };
            let task = one(api, name.clone(), self.tx.clone(), self.failures.clone(), update);
            self.running.insert(name.clone(), tokio::spawn(task.instrument(span)));
        }
    }
}

impl Drop for SecretWatchers {
    fn drop(&mut self) {
        for task in self.running.values() {
            task.abort();
        }
    }
}

/// `data`, then `stringData` over it (a server never returns `stringData`, but a stand-in might).
fn secret_data(secret: Secret) -> SecretData {
    let mut data: SecretData = secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
    for (key, value) in secret.string_data.unwrap_or_default() {
        data.insert(key, value.into_bytes());
    }
    data
}

/// Runs the watcher of the one object `name` and sends what it sees, as `update` makes it.
async fn one<K, F>(api: Api<K>, name: String, tx: mpsc::Sender<Update>, failures: Failures, update: F)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    F: Fn(Option<K>) -> Update,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let start = || watcher::watcher(api.clone(), config.clone()).boxed();
    let mut stream = start();
    let mut retry = Retry::default();
    // What the list in progress found (the field selector lets at most one object through).
    let mut listed: Option<K> = None;
    while let Some(event) = stream.next().await {
        let sent = match event {
            Ok(Event::Init) => {
                listed = None;
                continue;
            }
            Ok(Event::InitApply(object)) => {
                listed = Some(object);
                continue;
            }
            Ok(Event::InitDone) => {
                if retry.failures() > 0 {
                    tracing::info!(failures = retry.failures(), "listed again");
                }
                retry.succeeded();
                tx.send(update(listed.take())).await
            }
            Ok(Event::Apply(object)) => {
                retry.succeeded();
                tx.send(update(Some(object))).await
            }
            Ok(Event::Delete(_)) => {
                retry.succeeded();
                tx.send(update(None)).await
            }
            Err(err) => {
                // The proxy keeps serving the last settings meanwhile.
                let next = retry.failed();
                failures.count(next.relist);
                let wait_ms = u64::try_from(next.wait.as_millis()).unwrap_or(u64::MAX);
                if next.relist {
                    tracing::warn!(
                        error = %err, failures = next.failures, wait_ms,
                        "watch keeps failing; restarting it from a fresh list"
                    );
                } else {
                    tracing::warn!(error = %err, failures = next.failures, wait_ms, "watch failed; retrying");
                }
                tokio::time::sleep(next.wait).await;
                if next.relist {
                    stream = start();
                }
                continue;
            }
        };
        if sent.is_err() {
            return;
        }
    }
}
