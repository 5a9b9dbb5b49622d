//! kube-rs 5 against the test API server: a client from the written kubeconfig, watchers (list +
//! watch and streaming lists) that see create/update/delete and survive a restart with compacted
//! history, raw watches (bookmarks, 410), status patches of a custom resource with server-side
//! apply and merge patch, Events through the runtime recorder, and injected faults.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event as CoreEvent, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, Event as WEvent};
use kube::{Client, CustomResource, Resource, ResourceExt};
use route_test_apiserver::{Fault, TestApiServer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(group = "example.route.io", version = "v1", kind = "Widget", namespaced, status = "WidgetStatus")]
struct WidgetSpec {
    size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    color: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct WidgetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    observed_generation: Option<i64>,
    #[serde(default)]
    conditions: Vec<Condition>,
}

async fn client_for(server: &TestApiServer) -> (Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    server.write_kubeconfig(&path).unwrap();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    assert_eq!(config.default_namespace, "default");
    (Client::try_from(config).unwrap(), dir)
}

fn secret(name: &str, value: &str) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.to_owned());
    s.string_data = Some(BTreeMap::from([("key".to_owned(), value.to_owned())]));
    s
}

fn value_of(s: &Secret) -> String {
    let bytes = s.data.as_ref().and_then(|d| d.get("key")).map(|b| b.0.clone()).unwrap_or_default();
    String::from_utf8(bytes).unwrap()
}

/// Next watcher event that is an object (Apply/InitApply/Delete), skipping the rest.
async fn next_object(rx: &mut mpsc::UnboundedReceiver<WEvent<Secret>>) -> (&'static str, Secret) {
    loop {
        match timeout(WAIT, rx.recv()).await.expect("a watcher event in time").expect("watcher alive") {
            WEvent::Apply(s) => return ("apply", s),
            WEvent::InitApply(s) => return ("init", s),
            WEvent::Delete(s) => return ("delete", s),
            WEvent::Init | WEvent::InitDone => {}
        }
    }
}

fn spawn_watcher(api: Api<Secret>, config: watcher::Config) -> mpsc::UnboundedReceiver<WEvent<Secret>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        while let Some(event) = stream.next().await {
            if let Ok(event) = event
                && tx.send(event).is_err()
            {
                return;
            }
        }
    });
    rx
}

#[tokio::test]
async fn watcher_by_name_sees_changes_and_relists_after_a_restart() {
    let server = TestApiServer::start().await.unwrap();
    let (client, _dir) = client_for(&server).await;
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    secrets.create(&PostParams::default(), &secret("other", "x")).await.unwrap();
    let mut rx = spawn_watcher(secrets.clone(), watcher::Config::default().fields("metadata.name=signing"));

    secrets.create(&PostParams::default(), &secret("signing", "one")).await.unwrap();
    let (kind, s) = next_object(&mut rx).await;
    assert_eq!((kind, s.name_any().as_str(), value_of(&s).as_str()), ("apply", "signing", "one"));

    secrets
        .replace("signing", &PostParams::default(), &{
            let mut s = secrets.get("signing").await.unwrap();
            s.string_data = Some(BTreeMap::from([("key".to_owned(), "two".to_owned())]));
            s
        })
        .await
        .unwrap();
    secrets
        .patch("other", &PatchParams::default(), &Patch::Merge(json!({"stringData": {"key": "y"}})))
        .await
        .unwrap();
    let (kind, s) = next_object(&mut rx).await;
    assert_eq!((kind, value_of(&s).as_str()), ("apply", "two"), "only the watched name arrives");

    secrets.delete("signing", &DeleteParams::default()).await.unwrap();
    let (kind, s) = next_object(&mut rx).await;
    assert_eq!((kind, s.name_any().as_str()), ("delete", "signing"));

    // A restart with nothing changed: the watcher was up to date, yet the server comes back at a
    // newer resourceVersion with its history compacted (as a real cluster, where leases and
    // events move the revision on), so the watch resumes with 410 Gone and the watcher relists.
    secrets.create(&PostParams::default(), &secret("signing", "three")).await.unwrap();
    let (_, s) = next_object(&mut rx).await;
    assert_eq!(value_of(&s), "three");
    tokio::time::sleep(Duration::from_millis(1200)).await; // a bookmark: the watcher is current
    server.clear_requests();
    server.restart().await.unwrap();
    let relisted = || {
        server
            .requests()
            .iter()
            .any(|r| r.method == "GET" && !r.query.contains("watch") && r.path.ends_with("/secrets"))
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while !relisted() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no relist after the restart: {:#?}",
            server.requests()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let merge = |v: &str| Patch::Merge(json!({"stringData": {"key": v}}));
    secrets.patch("signing", &PatchParams::default(), &merge("four")).await.unwrap();
    loop {
        let (_, s) = next_object(&mut rx).await;
        if value_of(&s) == "four" {
            break;
        }
    }

    // An outage during which the Secret changes: the watcher relists and gets the change.
    server.stop().await;
    let path = "/api/v1/namespaces/default/secrets/signing";
    server.request(http::Method::PATCH, path, Some(&json!({"stringData": {"key": "five"}}))).unwrap();
    server.restart().await.unwrap();
    loop {
        let (kind, s) = next_object(&mut rx).await;
        if value_of(&s) == "five" {
            assert!(kind == "apply" || kind == "init", "{kind}");
            break;
        }
    }
    secrets.patch("signing", &PatchParams::default(), &merge("six")).await.unwrap();
    let (kind, s) = next_object(&mut rx).await;
    assert_eq!((kind, value_of(&s).as_str()), ("apply", "six"), "watching again after the relist");
}

#[tokio::test]
async fn paged_lists_of_the_watcher() {
    let server = TestApiServer::start().await.unwrap();
    let (client, _dir) = client_for(&server).await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    for i in 0..5 {
        secrets.create(&PostParams::default(), &secret(&format!("s{i}"), "v")).await.unwrap();
    }
    let mut rx = spawn_watcher(secrets.clone(), watcher::Config::default().page_size(2));
    let mut names = Vec::new();
    while names.len() < 5 {
        let (kind, s) = next_object(&mut rx).await;
        assert_eq!(kind, "init");
        names.push(s.name_any());
    }
    assert_eq!(names, ["s0", "s1", "s2", "s3", "s4"]);
    let pages = server.requests().iter().filter(|r| r.query.contains("limit=2")).count();
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_state_then_changes() {
    let server = TestApiServer::start().await.unwrap();
    let (client, _dir) = client_for(&server).await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    secrets.create(&PostParams::default(), &secret("a", "1")).await.unwrap();
    let mut rx =
        spawn_watcher(secrets.clone(), watcher::Config::default().streaming_lists().labels("!ignored"));
    let (kind, s) = next_object(&mut rx).await;
    assert_eq!((kind, s.name_any().as_str()), ("init", "a"));
    secrets.create(&PostParams::default(), &secret("b", "2")).await.unwrap();
    let (kind, s) = next_object(&mut rx).await;
    assert_eq!((kind, s.name_any().as_str()), ("apply", "b"));
    let requests = server.requests();
    assert!(requests.iter().any(|r| r.query.contains("sendInitialEvents=true")), "{requests:#?}");
}

#[tokio::test]
async fn raw_watch_bookmarks_selectors_and_gone() {
    let server = TestApiServer::start().await.unwrap();
    server.set_bookmark_interval(Duration::from_millis(200));
    let (client, _dir) = client_for(&server).await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    let created = secrets.create(&PostParams::default(), &secret("s", "1")).await.unwrap();
    let rv = created.resource_version().unwrap();

    let wp = WatchParams::default().timeout(5).labels("app in (a, b)");
    let mut stream = secrets.watch(&wp, &rv).await.unwrap().boxed();
    secrets
        .patch("s", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "a"}}})))
        .await
        .unwrap();
    secrets
        .patch("s", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "c"}}})))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match timeout(WAIT, stream.try_next()).await.unwrap().unwrap().unwrap() {
            WatchEvent::Added(s) => seen.push(format!("ADDED {}", s.labels()["app"])),
            WatchEvent::Modified(_) => seen.push("MODIFIED".to_owned()),
            WatchEvent::Deleted(s) => seen.push(format!("DELETED {}", s.labels()["app"])),
            WatchEvent::Bookmark(b) => {
                if seen.len() == 2 {
                    assert!(
                        b.metadata.resource_version.parse::<u64>().unwrap() >= server.resource_version() - 1
                    );
                    seen.push("BOOKMARK".to_owned());
                }
            }
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(seen, ["ADDED a", "DELETED a", "BOOKMARK"], "moving in and out of a selector");

    server.compact();
    let mut stream = secrets.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    match timeout(WAIT, stream.try_next()).await.unwrap().unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
    let exact = secrets.list(&ListParams::default().at(&rv).matching(kube::api::VersionMatch::Exact)).await;
    assert!(matches!(exact, Err(kube::Error::Api(ref s)) if s.code == 410), "{exact:?}");
}

async fn install_widget_crd(client: &Client) {
    let yaml =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/widget-crd.yaml"))
            .unwrap();
    let crd: CustomResourceDefinition = serde_yaml::from_str(&yaml).unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let established = created
        .status
        .unwrap()
        .conditions
        .unwrap()
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established);
}

#[tokio::test]
async fn custom_resource_status_with_apply_and_merge() {
    let server = TestApiServer::start().await.unwrap();
    let (client, _dir) = client_for(&server).await;
    install_widget_crd(&client).await;
    let widgets: Api<Widget> = Api::default_namespaced(client.clone());
    let w = Widget::new("w", WidgetSpec { size: 2, color: None });
    let w = widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(w.spec.color.as_deref(), Some("blue"), "the schema default");
    assert_eq!(w.metadata.generation, Some(1));

    let condition = json!({"type": "Ready", "status": "True", "reason": "Fine", "message": "",
        "lastTransitionTime": "2025-01-01T00:00:00Z"});
    let status = json!({"apiVersion": Widget::api_version(&()), "kind": "Widget",
        "status": {"observedGeneration": 1, "conditions": [condition]}});
    let pp = PatchParams::apply("route-operator").force();
    let w = widgets.patch_status("w", &pp, &Patch::Apply(&status)).await.unwrap();
    let st = w.status.clone().unwrap();
    assert_eq!((st.observed_generation, st.conditions[0].type_.as_str()), (Some(1), "Ready"));
    assert_eq!(w.metadata.generation, Some(1), "status writes do not bump generation");

    // Merge patch of the status; spec changes sent to /status are ignored.
    let w = widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 9}, "status": {"observedGeneration": 2}})),
        )
        .await
        .unwrap();
    assert_eq!((w.spec.size, w.status.as_ref().unwrap().observed_generation), (2, Some(2)));

    // A spec change bumps generation; status sent to the main resource is ignored.
    let w = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 3}, "status": {"observedGeneration": 7}})),
        )
        .await
        .unwrap();
    assert_eq!((w.metadata.generation, w.status.as_ref().unwrap().observed_generation), (Some(2), Some(2)));

    // Server-side apply of the spec: a second manager conflicts unless forced.
    let spec = json!({"apiVersion": "example.route.io/v1", "kind": "Widget", "spec": {"size": 5}});
    let err = widgets.patch("w", &PatchParams::apply("other"), &Patch::Apply(&spec)).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409 && s.message.contains("conflict")),
        "{err:?}"
    );
    let w = widgets.patch("w", &PatchParams::apply("other").force(), &Patch::Apply(&spec)).await.unwrap();
    assert_eq!(w.spec.size, 5);

    // Unconditional updates are refused for custom resources; stale ones conflict.
    let mut stale = w.clone();
    stale.metadata.resource_version = Some("1".to_owned());
    let err = widgets.replace("w", &PostParams::default(), &stale).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 409), "{err:?}");

    let too_big = Widget::new("big", WidgetSpec { size: 11, color: None });
    let err = widgets.create(&PostParams::default(), &too_big).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422 && s.message.contains("less than or equal to 10")),
        "{err:?}"
    );
}

#[tokio::test]
async fn events_recorded_by_kube_runtime_are_listed_as_core_events() {
    let server = TestApiServer::start().await.unwrap();
    let (client, _dir) = client_for(&server).await;
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let s = secrets.create(&PostParams::default(), &secret("keys", "v")).await.unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter { controller: "route".into(), instance: Some("route-0".into()) },
    );
    let event = Event {
        type_: EventType::Warning,
        reason: "KeyRejected".into(),
        note: Some("bad PEM".into()),
        action: "Reload".into(),
        secondary: None,
    };
    recorder.publish(&event, &s.object_ref(&())).await.unwrap();
    recorder.publish(&event, &s.object_ref(&())).await.unwrap();
    let core: Api<CoreEvent> = Api::default_namespaced(client);
    let listed = core.list(&ListParams::default().fields("involvedObject.name=keys")).await.unwrap();
    assert_eq!(listed.items.len(), 1, "the second publish updated the series");
    let e = &listed.items[0];
    assert_eq!(
        (e.reason.as_deref(), e.message.as_deref(), e.type_.as_deref()),
        (Some("KeyRejected"), Some("bad PEM"), Some("Warning"))
    );
    assert_eq!(e.reporting_component.as_deref(), Some("route"));
    assert!(e.series.is_some());
}

#[tokio::test]
async fn injected_faults_and_stopped_server() {
    let server = TestApiServer::start().await.unwrap();
    let (client, _dir) = client_for(&server).await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    server.fail_next(1, 403);
    let err = secrets.list(&ListParams::default()).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 403), "{err:?}");
    secrets.list(&ListParams::default()).await.unwrap();
    server.fail_all(500);
    assert!(secrets.get_opt("x").await.is_err());
    server.clear_faults();
    assert!(secrets.get_opt("x").await.unwrap().is_none());

    // A fault for one kind of request only.
    secrets.create(&PostParams::default(), &secret("f", "1")).await.unwrap();
    server.fail(Fault::new(409).times(1).method("PATCH").path_contains("/secrets/f"));
    secrets.get("f").await.unwrap();
    let merge = Patch::Merge(json!({"stringData": {"key": "2"}}));
    let err = secrets.patch("f", &PatchParams::default(), &merge).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 409), "{err:?}");
    secrets.patch("f", &PatchParams::default(), &merge).await.unwrap();

    server.stop().await;
    assert!(!server.is_running().await);
    assert!(timeout(WAIT, secrets.list(&ListParams::default())).await.unwrap().is_err(), "nobody listens");
    server.restart().await.unwrap();
    timeout(WAIT, secrets.list(&ListParams::default())).await.unwrap().unwrap();
}
