//! The Helm chart on a real kube-apiserver, sent as a GitOps tool sends it: `helm template
//! --kube-version 1.25.0` (the chart's floor) of the default values and of each
//! `charts/route/ci/*.yaml`, then `kubectl apply` of every object, so that the server validates
//! each one. The default release then runs `route serve --kube` with the Deployment's args and
//! env, as the chart's ServiceAccount, and serves a desktop request through the rendered
//! RouteConfig.
//!
//! `helm install` proper needs a server the chart's `kubeVersion` admits (>= 1.25, where the
//! CRD's CEL rules are enforced): on a real cluster (`ROUTE_TEST_KUBECONFIG`) of that age it
//! installs, upgrades and uninstalls; on the 1.20 server started here it must refuse, naming
//! the version.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};
use support::kube::{CHART, Cluster, RELEASE, helm, helm_template, payload_secret, signing_secret};
use support::kube_requests::assert_requests_name_their_objects;
use support::{Proxy, Req, Upstream, eventually, keys};

const SHOW: Duration = Duration::from_secs(15);
const SECRETS: [&str; 2] = ["abcdesktopjwtdesktopsigning", "abcdesktopjwtdesktoppayload"];

/// The documents of a rendering.
fn documents(rendered: &str) -> Vec<Value> {
    rendered
        .split("\n---")
        .filter_map(|doc| serde_yaml::from_str::<Value>(doc).ok())
        .filter(Value::is_object)
        .collect()
}

/// The values files the chart is tested with: the defaults, then `charts/route/ci/*.yaml`.
fn values_files() -> Vec<Option<String>> {
    let mut files: Vec<String> = std::fs::read_dir(format!("{CHART}/ci"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".yaml"))
        .collect();
    files.sort();
    std::iter::once(None).chain(files.into_iter().map(Some)).collect()
}

/// The API versions the server serves (`kubectl api-versions`).
async fn api_versions(cluster: &Cluster) -> BTreeSet<String> {
    let out = cluster.kubectl(&["api-versions"], None).await;
    assert!(out.ok, "kubectl api-versions: {}", out.stderr);
    out.stdout.lines().map(str::to_owned).collect()
}

/// `helm template <args>`, then `kubectl apply` of the objects whose API version the server
/// serves (the others go to `skipped`).
async fn apply_rendering(
    cluster: &Cluster,
    served: &BTreeSet<String>,
    args: &[&str],
    skipped: &mut BTreeSet<String>,
) -> (support::kube::Out, Vec<Value>) {
    let docs = documents(&helm_template(&cluster.namespace, args).await);
    assert!(docs.iter().any(|d| d["kind"] == "Deployment"), "{args:?}: no Deployment");
    let (apply, unserved): (Vec<Value>, Vec<Value>) =
        docs.into_iter().partition(|d| served.contains(d["apiVersion"].as_str().unwrap_or("")));
    for d in &unserved {
        skipped.insert(format!("{} {}", d["apiVersion"].as_str().unwrap(), d["kind"].as_str().unwrap()));
    }
    let list = json!({"apiVersion": "v1", "kind": "List", "items": apply});
    (cluster.try_apply(&list.to_string()).await, apply)
}

#[tokio::test]
async fn every_rendering_applies_to_the_server() {
    let Some(cluster) = Cluster::start("every_rendering_applies_to_the_server").await else { return };
    let served = api_versions(&cluster).await;
    let minor = cluster.server_minor().await;
    let mut skipped = BTreeSet::new();
    for values in values_files() {
        let name = values.as_deref().unwrap_or("default");
        let mut args: Vec<&str> = values.iter().flat_map(|v| ["-f", v.as_str()]).collect();
        let (mut out, mut apply) = apply_rendering(&cluster, &served, &args, &mut skipped).await;
        if !out.ok && minor < 30 && out.stderr.contains(r#"unknown field "sleep""#) {
            // The `sleep` preStop action (preStopSleepSeconds) is Kubernetes 1.30+, as the values
            // say: refused by name here, and the rest of the rendering applies without it.
            support::kube::say(&format!(
                "kube_chart: {name}: preStop sleep refused by 1.{minor}; applied without it"
            ));
            args.extend(["--set", "preStopSleepSeconds=0"]);
            (out, apply) = apply_rendering(&cluster, &served, &args, &mut skipped).await;
        }
        assert!(out.ok, "{name}: kubectl apply of the rendering refused: {}", out.stderr);
        let kinds: Vec<&str> = apply.iter().filter_map(|d| d["kind"].as_str()).collect();
        support::kube::say(&format!("kube_chart: {name}: applied {kinds:?}"));
        // Node ports are cluster-wide: the next values file may claim the same ones.
        cluster.ns(&["delete", "service", "--all"]).await;
    }
    // What a 1.20 server cannot take: the chart's PodDisruptionBudget (policy/v1 is 1.21+), its
    // HorizontalPodAutoscaler (autoscaling/v2 is 1.23+); the ServiceMonitor needs the
    // Prometheus operator's CRD on any server.
    let mut allowed = BTreeSet::from(["monitoring.coreos.com/v1 ServiceMonitor".to_owned()]);
    if minor < 25 {
        allowed.insert("policy/v1 PodDisruptionBudget".to_owned());
        allowed.insert("autoscaling/v2 HorizontalPodAutoscaler".to_owned());
    }
    assert!(skipped.is_subset(&allowed), "objects of API versions the server lacks: {skipped:?}");
    support::kube::say(&format!("kube_chart: not served by 1.{minor}, not applied: {skipped:?}"));
}

#[tokio::test]
async fn the_default_release_serves_as_the_deployment_runs_it() {
    let Some(cluster) = Cluster::start("the_default_release_serves_as_the_deployment_runs_it").await else {
        return;
    };
    let docs = documents(&helm_template(&cluster.namespace, &[]).await);
    cluster.apply(&signing_secret(keys())).await;
    cluster.apply(&payload_secret(keys())).await;
    let rc = docs.iter().find(|d| d["kind"] == "RouteConfig").expect("a RouteConfig");
    cluster.apply(&rc.to_string()).await;
    // route as the Deployment runs it: its args (but the listen addresses) and env (the
    // downward API filled in), with the ServiceAccount's token.
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(deployment["spec"]["template"]["spec"]["serviceAccountName"], RELEASE);
    let mut builder = Proxy::builder().keys(keys());
    for arg in container["args"].as_array().unwrap().iter().filter_map(Value::as_str) {
        if arg != "serve" && !arg.starts_with("--listen") && !arg.starts_with("--admin-listen") {
            builder = builder.arg(arg);
        }
    }
    for e in container["env"].as_array().unwrap() {
        if let Some(value) = e["value"].as_str() {
            builder = builder.env(e["name"].as_str().unwrap(), value);
        }
    }
    let proxy = builder
        .env("KUBECONFIG", &cluster.route_kubeconfig.display().to_string())
        .env("POD_NAMESPACE", &cluster.namespace)
        .env("POD_NAME", "route-0")
        .env("NODE_NAME", "node-1")
        .start()
        .await;
    eventually(SHOW, "/readyz answers 200", || async {
        (proxy.admin_get("/readyz").await.status == StatusCode::OK).then_some(())
    })
    .await;
    let desk = Upstream::start("desktop").await;
    let token = proxy.mint("127.0.0.1");
    let resp = proxy.send(Req::get(&format!("/container/{token}/{}/index.html", desk.port()))).await;
    assert_eq!(resp.status, StatusCode::OK, "a desktop request through the release");
    assert_eq!(resp.seen().upstream, "desktop");
    let bad = proxy.send(Req::get(&format!("/container/x.y.z/{}/index.html", desk.port()))).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert_eq!(proxy.get("/node").await.text(), "node-1");
    let public_metrics = proxy.get("/metrics").await.text();
    assert!(!public_metrics.contains("route_requests_total"), "/metrics is answered on the public listener");
    assert!(proxy.metrics().await.contains("route_requests_total"), "/metrics on the admin listener");
    eventually(SHOW, "the RouteConfig is Ready", || async {
        let rc = cluster.route_config().await;
        let ready = rc["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")?.clone();
        (ready["status"] == "True").then_some(())
    })
    .await;
    assert_requests_name_their_objects(&cluster, &SECRETS);
    proxy.finish();
}

#[tokio::test]
async fn helm_install_runs_where_the_server_is_new_enough_and_refuses_clearly_elsewhere() {
    let test = "helm_install_runs_where_the_server_is_new_enough_and_refuses_clearly_elsewhere";
    let Some(cluster) = Cluster::start(test).await else { return };
    let minor = cluster.server_minor().await;
    let helm = tokio::task::spawn_blocking(helm).await.unwrap();
    let run = |args: Vec<String>| {
        let (helm, kubeconfig) = (helm.clone(), cluster.kubeconfig.clone());
        async move {
            let out = tokio::process::Command::new(helm)
                .env("KUBECONFIG", kubeconfig)
                .args(&args)
                .kill_on_drop(true)
                .output()
                .await
                .unwrap();
            let text =
                format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            (out.status.success(), text)
        }
    };
    let ns = cluster.namespace.clone();
    let install: Vec<String> =
        ["install", RELEASE, CHART, "-n", &ns, "--set", "rbac.create=false,serviceAccount.create=false"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
    if minor < 25 {
        // helm v4 installs the chart's CRD first, by server-side apply, which a server without
        // CEL refuses, naming the field.
        let (ok, text) = run(install.clone()).await;
        assert!(!ok, "helm install succeeded on 1.{minor}: {text}");
        assert!(
            text.contains("x-kubernetes-validations"),
            "helm's refusal does not name the CEL field: {text}"
        );
        // With the CRD applied beforehand (kubectl, as these tests do), the chart's kubeVersion
        // gate refuses, naming the version, before anything is sent.
        let mut skip_crds = install;
        skip_crds.push("--skip-crds".to_owned());
        let (ok, text) = run(skip_crds).await;
        assert!(!ok, "helm install --skip-crds succeeded on 1.{minor}: {text}");
        assert!(
            text.contains("kubeVersion") && text.contains(&format!("v1.{minor}")),
            "helm's refusal does not name the version: {text}"
        );
        return;
    }
    let (ok, text) = run(install).await;
    assert!(ok, "helm install: {text}");
    let upgrade = ["upgrade", RELEASE, CHART, "-n", &ns, "--reuse-values", "--set", "replicaCount=2"];
    let (ok, text) = run(upgrade.iter().map(|s| (*s).to_owned()).collect()).await;
    assert!(ok, "helm upgrade: {text}");
    let deployment: Value =
        serde_json::from_str(&cluster.ns(&["get", "deployment", RELEASE, "-o", "json"]).await).unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2);
    let (ok, text) = run(["uninstall", RELEASE, "-n", &ns].iter().map(|s| (*s).to_owned()).collect()).await;
    assert!(ok, "helm uninstall: {text}");
}
