//! Limits follow the RouteConfig in `--kube` mode: the same checks as `limits_reload.rs`, with
//! the spec applied to the real API server. The server starts before any settings arrive in
//! this mode, so a limit read once at start (as `headerReadTimeoutSeconds` was) never applies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;
use support::kube::{Cluster, payload_secret, route_config, signing_secret};
use support::limit_checks::{self, SpecSource};
use support::{Behavior, Manifest, Proxy, Upstream, eventually, keys};

/// `route serve --kube`: the spec is applied to the cluster as a RouteConfig.
struct KubeSource<'a>(&'a Cluster);

impl SpecSource for KubeSource<'_> {
    async fn publish(&mut self, _: &mut Proxy, m: &Manifest) {
        self.0.apply(&route_config(&Value::Object(m.spec.clone()))).await;
    }
}

/// The cluster with the keys and a RouteConfig pointing `/spawner` at an upstream that behaves
/// as `behavior`, and `route serve --kube` ready on it.
async fn setup(test: &str, behavior: Behavior) -> Option<(Cluster, Proxy, Upstream, Manifest)> {
    let cluster = Cluster::start(test).await?;
    let up = Upstream::start_with("spawner", behavior).await;
    let m = Manifest::new(keys()).port("spawner", up.port());
    cluster.apply(&signing_secret(keys())).await;
    cluster.apply(&payload_secret(keys())).await;
    cluster.apply(&route_config(&Value::Object(m.spec.clone()))).await;
    let proxy = cluster.route(keys()).await;
    eventually(Duration::from_secs(15), "/readyz answers 200", || async {
        (proxy.admin_get("/readyz").await.status == StatusCode::OK).then_some(())
    })
    .await;
    Some((cluster, proxy, up, m))
}

#[tokio::test]
async fn header_read_timeout_follows_a_route_config_edit() {
    let Some((cluster, mut proxy, _up, m)) =
        setup("header_read_timeout_follows_a_route_config_edit", Behavior::Echo).await
    else {
        return;
    };
    limit_checks::header_read_timeout_follows(&mut proxy, &mut KubeSource(&cluster), m).await;
    proxy.finish();
}

#[tokio::test]
async fn a_route_body_limit_follows_a_route_config_edit() {
    let Some((cluster, mut proxy, _up, m)) =
        setup("a_route_body_limit_follows_a_route_config_edit", Behavior::Echo).await
    else {
        return;
    };
    limit_checks::route_body_limit_follows(&mut proxy, &mut KubeSource(&cluster), m).await;
    proxy.finish();
}

#[tokio::test]
async fn a_route_read_timeout_follows_a_route_config_edit() {
    let behavior = Behavior::Delay(Duration::from_secs(2));
    let Some((cluster, mut proxy, _up, m)) =
        setup("a_route_read_timeout_follows_a_route_config_edit", behavior).await
    else {
        return;
    };
    limit_checks::route_read_timeout_follows(&mut proxy, &mut KubeSource(&cluster), m).await;
    proxy.finish();
}
