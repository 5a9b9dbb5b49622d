//! The steps the Kubernetes operator tests share: a cluster with abcdesktop's keys and a
//! RouteConfig, route serving it, and waits on its status, events and traffic.

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;

use super::kube::{Cluster, payload_secret, route_config, signing_secret};
use super::{Manifest, Proxy, Req, Upstream, eventually, keys};

/// How long a change may take to show (status, events); traffic is checked to a tighter bound.
pub const SHOW: Duration = Duration::from_secs(10);

/// A spec pointing `/spawner` at `up`, with `grace` seconds of key grace.
pub fn spec(up: &Upstream, grace: u64) -> Value {
    Value::Object(Manifest::new(keys()).port("spawner", up.port()).grace_seconds(grace).spec)
}

/// The cluster with the keys of [`keys()`] and a RouteConfig, and `route` serving it.
pub async fn setup(test: &str, grace: u64) -> Option<(Cluster, Proxy, Upstream)> {
    let cluster = Cluster::start(test).await?;
    let up = Upstream::start("spawner").await;
    cluster.apply(&signing_secret(keys())).await;
    cluster.apply(&payload_secret(keys())).await;
    cluster.apply(&route_config(&spec(&up, grace))).await;
    let proxy = cluster.route(keys()).await;
    ready(&proxy).await;
    Some((cluster, proxy, up))
}

pub async fn ready(proxy: &Proxy) {
    eventually(SHOW, "/readyz answers 200", || async {
        (proxy.admin_get("/readyz").await.status == StatusCode::OK).then_some(())
    })
    .await;
}

/// The status of `/spawner` with `token` (200 when it reached the upstream).
pub async fn spawner(proxy: &Proxy, token: &str) -> StatusCode {
    proxy.send(Req::get("/spawner").abc(token)).await.status
}

/// Waits until `token` reaches the upstream; returns how long it took.
pub async fn until_accepted(proxy: &Proxy, token: &str, what: &str) -> Duration {
    let started = Instant::now();
    eventually(SHOW, what, || async { (spawner(proxy, token).await == StatusCode::OK).then_some(()) }).await;
    started.elapsed()
}

pub async fn condition_is(cluster: &Cluster, type_: &str, status: &str, reason: &str) -> Value {
    eventually(SHOW, &format!("condition {type_} {status} ({reason})"), || async {
        cluster.condition(type_).await.filter(|c| c["status"] == status && c["reason"] == reason)
    })
    .await
}

pub async fn fingerprints(cluster: &Cluster, field: &str) -> Vec<String> {
    let rc = cluster.route_config().await;
    rc["status"][field]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// `status.lastReload` (RFC 3339, UTC, whole seconds: ordered as strings).
pub async fn last_reload(cluster: &Cluster) -> String {
    let rc = cluster.route_config().await;
    let text =
        rc["status"]["lastReload"].as_str().unwrap_or_else(|| panic!("no lastReload: {}", rc["status"]));
    assert!(text.len() == "2025-01-01T00:00:00Z".len() && text.ends_with('Z'), "lastReload {text}");
    text.to_owned()
}

pub async fn event_with(cluster: &Cluster, needle: &str) -> String {
    eventually(SHOW, &format!("an event with {needle:?}"), || async {
        cluster.events().await.into_iter().find(|e| e.contains(needle))
    })
    .await
}

/// `text` without list indexes (`[0]`).
pub fn without_indexes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close) if close > 0 && after[..close].bytes().all(|b| b.is_ascii_digit()) => {
                rest = &after[close + 1..]
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The message of the newest `SettingsRejected` Warning, from `kubectl get events` (core/v1).
pub async fn newest_warning(cluster: &Cluster) -> Option<String> {
    let out = cluster
        .ns(&["get", "events", "--field-selector", "type=Warning,reason=SettingsRejected", "-o", "json"])
        .await;
    let list: Value = serde_json::from_str(&out).ok()?;
    let mut items = list["items"].as_array()?.clone();
    items.sort_by_key(|e| {
        let series = e["series"]["lastObservedTime"].as_str().unwrap_or("");
        let time = e["eventTime"].as_str().or(e["lastTimestamp"].as_str()).unwrap_or("");
        series.max(time).to_owned()
    });
    items.last().and_then(|e| e["message"].as_str()).map(str::to_owned)
}

/// The Secrets of the setup's RouteConfig.
pub const SECRETS: [&str; 2] = ["abcdesktopjwtdesktopsigning", "abcdesktopjwtdesktoppayload"];

/// Ready, serving a fresh token, and saying so in the status.
pub async fn ready_and_serving(cluster: &Cluster, proxy: &Proxy) {
    ready(proxy).await;
    assert_eq!(spawner(proxy, &proxy.mint("127.0.0.1")).await, StatusCode::OK);
    condition_is(cluster, "Ready", "True", "Loaded").await;
}
