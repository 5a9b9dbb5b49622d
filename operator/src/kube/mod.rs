//! The Kubernetes source: one `RouteConfig` and the Secrets it names, watched in the cluster.
//!
//! - [`watch`]: a watcher per object, each by name, so RBAC can grant `get`/`list`/`watch` on
//!   those names alone; the Secret watchers follow the names the RouteConfig gives.
//! - [`retry`]: the waits between a watcher's retries, and its restart from a list when its
//!   watch keeps failing.
//! - [`state`]: what the watchers have seen; translate() runs once everything it needs has been
//!   listed (a Secret that does not exist is reported by translate()).
//! - `controller`: every change goes through the same translate() and Publisher as the other
//!   sources; a refused change is not published (the last good settings keep serving) and is
//!   reported in the status, in an event and in the logs and metrics.
//! - [`status`] and `writer`: the status subresource, written without flapping between replicas.
//! - [`events`]: Kubernetes Events for loads, rejections, rotations and deletion.
//!
//! The proxy never depends on the API server: when it goes away the last settings keep
//! serving, the watchers retry with backoff and relist after a 410 Gone or repeated failures.

mod controller;
pub mod events;
mod retry;
pub mod state;
pub mod status;
pub mod watch;
mod writer;

use std::path::Path;

use crate::publisher::Publisher;
use crate::translate::Context;

/// The namespace a pod runs in, as the service account mount tells it.
pub const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
/// The namespace when neither a flag nor the service account says one.
pub const DEFAULT_NAMESPACE: &str = "abcdesktop";

/// Which RouteConfig to follow, and how this replica names itself.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub namespace: String,
    /// The replica's name in events (its pod name), if known.
    pub instance: Option<String>,
    /// translate()'s context; its `source` names the RouteConfig (`kube:abcdesktop/route`).
    pub ctx: Context,
}

impl Config {
    pub fn new(name: &str, namespace: &str, node_name: String, instance: Option<String>) -> Self {
        let ctx = Context { node_name, source: format!("kube:{namespace}/{name}") };
        Self { name: name.to_owned(), namespace: namespace.to_owned(), instance, ctx }
    }
}

/// The namespace to use: `flag` (or `POD_NAMESPACE`) if given, else the service account's
/// namespace file, else `abcdesktop`.
pub fn namespace(flag: Option<&str>, file: &Path) -> String {
    if let Some(ns) = flag.map(str::trim).filter(|ns| !ns.is_empty()) {
        return ns.to_owned();
    }
    match std::fs::read_to_string(file) {
        Ok(ns) if !ns.trim().is_empty() => ns.trim().to_owned(),
        _ => DEFAULT_NAMESPACE.to_owned(),
    }
}

/// A client as `kube::Client::try_default` (kube 5, `Config::infer`) makes it: from a kubeconfig
/// (the files `KUBECONFIG` names, else `~/.kube/config`) when one loads, else from the in-cluster
/// configuration (the service account token and `KUBERNETES_SERVICE_HOST`/`_PORT`). In a pod
/// without a kubeconfig that is the in-cluster configuration.
pub async fn client() -> crate::Result<kube::Client> {
    kube::Client::try_default().await.map_err(crate::Error::KubeConfig)
}

/// Follows the RouteConfig `config` names and publishes every valid change through
/// `publisher`. Runs until the process ends; never fails (problems are reported and retried).
pub async fn run(client: kube::Client, config: Config, publisher: Publisher) {
    let span = tracing::info_span!("kube", namespace = %config.namespace, name = %config.name);
    tracing::Instrument::instrument(controller::run(client, config, publisher), span).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_from_flag_then_file_then_default() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("namespace");
        assert_eq!(namespace(None, &file), DEFAULT_NAMESPACE);
        std::fs::write(&file, "desktops\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(namespace(None, &file), "desktops");
        assert_eq!(namespace(Some(" mine "), &file), "mine");
        assert_eq!(namespace(Some(""), &file), "desktops");
    }
}
