//! API semantics the operator and kubectl rely on, checked in-process (`request`) and over raw
//! HTTP where headers matter: resourceVersions, conflicts, error `Status` objects, patches,
//! server-side apply ownership, finalizers, dry runs, selectors, exact lists, Events, Tables.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use http::Method;
use route_test_apiserver::TestApiServer;
use serde_json::{Value, json};

use common::*;

#[tokio::test]
async fn resource_versions_conflicts_and_status_objects() {
    let server = TestApiServer::start().await.unwrap();
    let a = server.request(Method::POST, SECRETS, Some(&secret("a"))).unwrap();
    let b = server.request(Method::POST, SECRETS, Some(&secret("b"))).unwrap();
    assert!(rv(&b) > rv(&a), "one global counter");
    assert_eq!(a["data"]["k"], "dg==");
    assert!(a.get("stringData").is_none());
    assert_eq!(a["metadata"]["uid"].as_str().unwrap().len(), 36);

    let e = api_error(server.request(Method::POST, SECRETS, Some(&secret("a"))));
    assert_eq!(
        (e.code, e.reason, e.message.as_str()),
        (409, "AlreadyExists", r#"secrets "a" already exists"#)
    );
    let e = api_error(server.request(Method::GET, &format!("{SECRETS}/nope"), None));
    assert_eq!(
        e.to_status(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "secrets \"nope\" not found", "reason": "NotFound", "code": 404,
        "details": {"name": "nope", "group": "", "kind": "secrets"}})
    );

    // A stale update conflicts; an unconditional one (no resourceVersion) is allowed for Secrets.
    let mut stale = a.clone();
    stale["data"]["k"] = json!("eA==");
    server.request(Method::PUT, &format!("{SECRETS}/a"), Some(&stale)).unwrap();
    let e = api_error(server.request(Method::PUT, &format!("{SECRETS}/a"), Some(&stale)));
    assert_eq!((e.code, e.reason), (409, "Conflict"));
    assert!(e.message.contains("the object has been modified"), "{}", e.message);
    stale["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    stale["data"]["k"] = json!("eQ==");
    let updated = server.request(Method::PUT, &format!("{SECRETS}/a"), Some(&stale)).unwrap();
    // A write that changes nothing keeps the resourceVersion.
    let same = server.request(Method::PUT, &format!("{SECRETS}/a"), Some(&updated)).unwrap();
    assert_eq!(rv(&same), rv(&updated));

    let e = api_error(server.request(
        Method::POST,
        SECRETS,
        Some(&json!({"apiVersion": "v1", "kind": "Secret", "metadata": {}})),
    ));
    assert_eq!((e.code, e.reason), (422, "Invalid"));
    assert_eq!(
        e.message,
        r#"Secret "" is invalid: metadata.name: Required value: name or generateName is required"#
    );
    let g = server
        .request(
            Method::POST,
            SECRETS,
            Some(&json!({"kind": "Secret", "metadata": {"generateName": "gen-"}})),
        )
        .unwrap();
    assert!(g["metadata"]["name"].as_str().unwrap().starts_with("gen-"));
    let e = api_error(server.request(
        Method::POST,
        SECRETS,
        Some(&json!({"kind": "Secret", "metadata": {"name": "x"}, "data": {"k": "!!"}})),
    ));
    assert_eq!(e.code, 400, "undecodable base64");
    let e = api_error(server.request(
        Method::POST,
        SECRETS,
        Some(&json!({"kind": "Secret", "metadata": {"name": "x"}, "data": {"a b": ""}})),
    ));
    assert_eq!(e.code, 422, "{e:?}");
}

#[tokio::test]
async fn http_answers_for_what_is_not_served() {
    let server = with_widgets().await;
    let (code, _, body) = raw(&server, "GET /apis/nope/v1/things HTTP/1.1", "").await;
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (code, status["reason"].as_str(), status["kind"].as_str()),
        (404, Some("NotFound"), Some("Status"))
    );
    let (code, _, _) =
        raw(&server, &format!("POST {SECRETS}/x HTTP/1.1\r\nContent-Type: application/json"), "{}").await;
    assert_eq!(code, 405);
    let (code, _, body) = raw(
        &server,
        &format!("PATCH {WIDGETS}/w HTTP/1.1\r\nContent-Type: application/strategic-merge-patch+json"),
        "{}",
    )
    .await;
    assert_eq!(code, 415, "{body}");
    let (code, _, _) =
        raw(&server, &format!("PATCH {SECRETS}/w HTTP/1.1\r\nContent-Type: text/plain"), "{}").await;
    assert_eq!(code, 415);
    let (code, _, _) =
        raw(&server, &format!("GET {SECRETS} HTTP/1.1\r\nAccept: application/vnd.kubernetes.protobuf"), "")
            .await;
    assert_eq!(code, 406);
    let (code, _, body) =
        raw(&server, &format!("GET {SECRETS}?watch=1&sendInitialEvents=true HTTP/1.1"), "").await;
    assert_eq!(code, 422, "{body}");

    // fieldValidation: Warn (the default) prunes and warns; Strict refuses.
    let body = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"w"},"extra":1}"#;
    let (code, headers, created) =
        raw(&server, &format!("POST {SECRETS} HTTP/1.1\r\nContent-Type: application/json"), body).await;
    assert_eq!(code, 201);
    assert!(headers.to_lowercase().contains(r#"warning: 299 - "unknown field \"extra\"""#), "{headers}");
    assert!(!created.contains("extra"));
    let head = format!("POST {SECRETS}?fieldValidation=Strict HTTP/1.1\r\nContent-Type: application/json");
    let (code, _, _) = raw(&server, &head, &body.replace("\"w\"", "\"w2\"")).await;
    assert_eq!(code, 400);

    // Tables for kubectl get.
    let head = format!(
        "GET {SECRETS} HTTP/1.1\r\nAccept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    );
    let (code, _, body) = raw(&server, &head, "").await;
    let table: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((code, table["kind"].as_str()), (200, Some("Table")));
    let names: Vec<&str> =
        table["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Name", "Type", "Data", "Age"]);
    assert_eq!(table["rows"][0]["cells"].as_array().unwrap()[..3], [json!("w"), json!("Opaque"), json!(0)]);
}

#[tokio::test]
async fn patches_and_server_side_apply_ownership() {
    let server = with_widgets().await;
    let path = format!("{SECRETS}/p");
    server.request(Method::POST, SECRETS, Some(&secret("p"))).unwrap();
    let patched = server
        .request(
            Method::PATCH,
            &path,
            Some(&json!({"metadata": {"labels": {"a": "1"}}, "data": {"k": null}})),
        )
        .unwrap();
    assert!(patched.get("data").is_none_or(|d| d.get("k").is_none()), "merge patch null deletes");

    // Server-side apply through HTTP: create, then a second apply drops what it no longer sets.
    let apply = |body: &'static str, manager: &'static str| {
        let head = format!(
            "PATCH {WIDGETS}/w?fieldManager={manager} HTTP/1.1\r\nContent-Type: application/apply-patch+yaml"
        );
        let server = &server;
        async move { raw(server, &head, body).await }
    };
    let (code, _, _) = apply("apiVersion: example.route.io/v1\nkind: Widget\nmetadata: {labels: {a: x, b: y}}\nspec: {size: 2, tags: [t]}\n", "op").await;
    assert_eq!(code, 201, "apply creates");
    let (code, _, body) = apply(
        "apiVersion: example.route.io/v1\nkind: Widget\nmetadata: {labels: {a: x}}\nspec: {size: 2}\n",
        "op",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let w: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(w["metadata"]["labels"], json!({"a": "x"}), "label b was dropped with its owner's apply");
    assert!(w["spec"].get("tags").is_none(), "tags were dropped: {w}");
    assert_eq!(w["spec"]["color"], "blue", "defaults stay");
    let (code, _, body) =
        apply("apiVersion: example.route.io/v1\nkind: Widget\nspec: {size: 3}\n", "other").await;
    assert_eq!(code, 409, "{body}");
    let (code, _, _) = raw(
        &server,
        &format!("PATCH {WIDGETS}/w HTTP/1.1\r\nContent-Type: application/apply-patch+yaml"),
        "kind: Widget",
    )
    .await;
    assert_eq!(code, 422, "fieldManager is required");

    // Status conditions (list-type map keyed by type) merge across managers.
    let generation = server.get_json(&format!("{WIDGETS}/w")).unwrap()["metadata"]["generation"].clone();
    assert_eq!(generation, 2, "dropping spec.tags changed the spec");
    for (manager, cond) in [("a", "Ready"), ("b", "Synced")] {
        let body = format!(
            r#"{{"apiVersion":"example.route.io/v1","kind":"Widget","status":{{"conditions":[{{"type":"{cond}","status":"True"}}]}}}}"#
        );
        let head = format!(
            "PATCH {WIDGETS}/w/status?fieldManager={manager}&force=true HTTP/1.1\r\nContent-Type: application/apply-patch+yaml"
        );
        assert_eq!(raw(&server, &head, &body).await.0, 200);
    }
    let w = server.get_json(&format!("{WIDGETS}/w")).unwrap();
    let types: Vec<&str> =
        w["status"]["conditions"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["Ready", "Synced"]);
    assert_eq!(w["metadata"]["generation"], generation, "status applies leave generation alone");

    // JSON patch, with a failing test.
    let head = format!("PATCH {WIDGETS}/w HTTP/1.1\r\nContent-Type: application/json-patch+json");
    let (code, _, body) = raw(
        &server,
        &head,
        r#"[{"op":"replace","path":"/spec/size","value":5},{"op":"add","path":"/spec/tags","value":["x"]}]"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, _, _) = raw(&server, &head, r#"[{"op":"test","path":"/spec/size","value":1}]"#).await;
    assert_eq!(code, 422);
    assert_eq!(server.get_json(&format!("{WIDGETS}/w")).unwrap()["metadata"]["generation"], 3);
}

#[tokio::test]
async fn finalizers_dry_run_collections_and_namespaces() {
    let server = TestApiServer::start().await.unwrap();
    let mut s = secret("f");
    s["metadata"]["finalizers"] = json!(["example.com/keep"]);
    server.request(Method::POST, SECRETS, Some(&s)).unwrap();
    let marked = server.request(Method::DELETE, &format!("{SECRETS}/f"), None).unwrap();
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert!(server.get_json(&format!("{SECRETS}/f")).is_some(), "kept until the finalizer goes");
    let e = api_error(server.request(
        Method::PATCH,
        &format!("{SECRETS}/f"),
        Some(&json!({"metadata": {"finalizers": ["a", "example.com/keep"]}})),
    ));
    assert_eq!(e.code, 422, "no new finalizers while deleting");
    server
        .request(Method::PATCH, &format!("{SECRETS}/f"), Some(&json!({"metadata": {"finalizers": null}})))
        .unwrap();
    assert!(server.get_json(&format!("{SECRETS}/f")).is_none());

    server.request(Method::POST, &format!("{SECRETS}?dryRun=All"), Some(&secret("dry"))).unwrap();
    assert!(server.get_json(&format!("{SECRETS}/dry")).is_none());

    for (name, app) in [("x1", "a"), ("x2", "a"), ("x3", "b")] {
        let mut s = secret(name);
        s["metadata"]["labels"] = json!({"app": app});
        server.request(Method::POST, SECRETS, Some(&s)).unwrap();
    }
    let deleted = server.request(Method::DELETE, &format!("{SECRETS}?labelSelector=app%3Da"), None).unwrap();
    assert_eq!(deleted["items"].as_array().unwrap().len(), 2);
    let list = server.get_json(SECRETS).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let e = api_error(server.request(Method::GET, &format!("{SECRETS}?fieldSelector=data.k%3Dx"), None));
    assert_eq!(e.code, 400);

    server.create_namespace("team").unwrap();
    server.request(Method::POST, "/api/v1/namespaces/team/secrets", Some(&secret("t"))).unwrap();
    server.request(Method::DELETE, "/api/v1/namespaces/team", None).unwrap();
    assert!(server.get_json("/api/v1/namespaces/team/secrets/t").is_none());
    let e = api_error(server.request(Method::POST, "/api/v1/namespaces/team/secrets", Some(&secret("t"))));
    assert_eq!((e.code, e.message.as_str()), (404, r#"namespaces "team" not found"#));
}

#[tokio::test]
async fn exact_lists_and_history() {
    let server = TestApiServer::start().await.unwrap();
    let first = server.request(Method::POST, SECRETS, Some(&secret("h"))).unwrap();
    let at = rv(&first);
    server.request(Method::PATCH, &format!("{SECRETS}/h"), Some(&json!({"stringData": {"k": "w"}}))).unwrap();
    server.request(Method::POST, SECRETS, Some(&secret("later"))).unwrap();
    let old = server.get_json(&format!("{SECRETS}?resourceVersion={at}&resourceVersionMatch=Exact")).unwrap();
    assert_eq!(old["metadata"]["resourceVersion"], at.to_string());
    assert_eq!(old["items"].as_array().unwrap().len(), 1);
    assert_eq!(old["items"][0]["data"]["k"], "dg==");
    let legacy = server.get_json(&format!("{SECRETS}?resourceVersion={at}&limit=10")).unwrap();
    assert_eq!(legacy["items"][0]["data"]["k"], "dg==", "under a limit, a resourceVersion is exact");
    let (current, future) = (server.resource_version(), server.resource_version() + 10);
    let e = api_error(server.request(Method::GET, &format!("{SECRETS}?resourceVersion={future}"), None));
    assert_eq!(
        (e.code, e.reason, e.message),
        (504, "Timeout", format!("Timeout: Too large resource version: {future}, current: {current}")),
        "in-process requests do not wait"
    );
    server.compact();
    let e = api_error(server.request(
        Method::GET,
        &format!("{SECRETS}?resourceVersion={at}&resourceVersionMatch=Exact"),
        None,
    ));
    assert_eq!((e.code, e.reason), (410, "Expired"));
}

#[tokio::test]
async fn events_in_both_api_versions() {
    let server = TestApiServer::start().await.unwrap();
    let v1 = "/apis/events.k8s.io/v1/namespaces/default/events";
    let e = api_error(server.request(
        Method::POST,
        v1,
        Some(&json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"}})),
    ));
    assert_eq!(e.code, 422);
    assert!(e.message.contains("reportingController: Required value"), "{}", e.message);
    let event = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"},
        "eventTime": "2025-01-01T00:00:00.000000Z", "reportingController": "route", "reportingInstance": "route-0",
        "action": "Reload", "reason": "Rotated", "type": "Normal", "note": "new keys",
        "regarding": {"kind": "Secret", "name": "s", "namespace": "default"}});
    server.request(Method::POST, v1, Some(&event)).unwrap();
    let core = server.get_json("/api/v1/namespaces/default/events/e1").unwrap();
    assert_eq!(
        (core["message"].as_str(), core["involvedObject"]["name"].as_str()),
        (Some("new keys"), Some("s"))
    );
    assert_eq!(core["reportingComponent"], "route");
    let back = server.get_json(&format!("{v1}/e1")).unwrap();
    assert_eq!(
        (back["note"].as_str(), back["apiVersion"].as_str()),
        (Some("new keys"), Some("events.k8s.io/v1"))
    );
    let listed =
        server.get_json("/api/v1/events?fieldSelector=involvedObject.name%3Ds,reason%3DRotated").unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn patterns_and_cel_rules_of_the_schema() {
    let server = with_widgets().await;
    let widget = |spec: Value| json!({"apiVersion": "example.route.io/v1", "kind": "Widget", "metadata": {"name": "c"}, "spec": spec});
    let e =
        api_error(server.request(Method::POST, WIDGETS, Some(&widget(json!({"size": 7, "color": "green"})))));
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        r#"Widget.example.route.io "c" is invalid: spec: Invalid value: "object": green widgets are at most 5"#
    );
    let e = api_error(server.request(Method::POST, WIDGETS, Some(&widget(json!({"size": 1, "code": "A1"})))));
    assert!(e.message.contains("spec.code in body should match '^[a-z]+$'"), "{}", e.message);
    server.request(Method::POST, WIDGETS, Some(&widget(json!({"size": 7, "code": "ok"})))).unwrap();
    let e = api_error(server.request(
        Method::PATCH,
        &format!("{WIDGETS}/c"),
        Some(&json!({"spec": {"color": "green"}})),
    ));
    assert_eq!(e.code, 422, "rules hold on updates too");
}

#[tokio::test]
async fn status_put_and_watch_timeout() {
    let server = with_widgets().await;
    let w = json!({"apiVersion": "example.route.io/v1", "kind": "Widget", "metadata": {"name": "s"}, "spec": {"size": 1},
        "status": {"observedGeneration": 9}});
    let created = server.request(Method::POST, WIDGETS, Some(&w)).unwrap();
    assert!(created.get("status").is_none(), "status is not set on create when the subresource exists");
    let mut put = created.clone();
    put["spec"]["size"] = json!(4);
    put["metadata"]["labels"] = json!({"x": "y"});
    put["status"] = json!({"observedGeneration": 1});
    let after = server.request(Method::PUT, &format!("{WIDGETS}/s/status"), Some(&put)).unwrap();
    assert_eq!(
        (after["spec"]["size"].as_i64(), after["status"]["observedGeneration"].as_i64()),
        (Some(1), Some(1))
    );
    assert!(after["metadata"].get("labels").is_none(), "a status write changes only the status");
    let e = api_error(server.request(Method::PUT, &format!("{WIDGETS}/s/status"), Some(&put)));
    assert_eq!(e.code, 409, "stale resourceVersion");
    let e = api_error(server.request(Method::POST, &format!("{WIDGETS}/s/status"), Some(&put)));
    assert_eq!(e.code, 405);
    let e = api_error(server.request(Method::GET, &format!("{SECRETS}/x/status"), None));
    assert_eq!(e.code, 404, "Secrets have no status subresource");

    let started = std::time::Instant::now();
    let (code, _, body) = raw(&server, &format!("GET {WIDGETS}?watch=1&timeoutSeconds=1 HTTP/1.1"), "").await;
    assert_eq!(code, 200);
    assert!(body.contains(r#""type":"ADDED""#), "synthetic ADDED for the current state: {body}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test]
async fn pagination_over_a_consistent_snapshot() {
    let server = TestApiServer::start().await.unwrap();
    for name in ["p1", "p2", "p3", "p4", "p5"] {
        server.request(Method::POST, SECRETS, Some(&secret(name))).unwrap();
    }
    let first = server.get_json(&format!("{SECRETS}?limit=2")).unwrap();
    let names = |l: &Value| {
        l["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&first), ["p1", "p2"]);
    assert_eq!(first["metadata"]["remainingItemCount"], 3);
    let token = first["metadata"]["continue"].as_str().unwrap().to_owned();
    server.request(Method::DELETE, &format!("{SECRETS}/p3"), None).unwrap();
    let second = server.get_json(&format!("{SECRETS}?limit=2&continue={token}")).unwrap();
    assert_eq!(names(&second), ["p3", "p4"], "pages come from the first page's snapshot");
    assert_eq!(second["metadata"]["resourceVersion"], first["metadata"]["resourceVersion"]);
    let token = second["metadata"]["continue"].as_str().unwrap().to_owned();
    let last = server.get_json(&format!("{SECRETS}?limit=2&continue={token}")).unwrap();
    assert_eq!(names(&last), ["p5"]);
    assert!(last["metadata"].get("continue").is_none());
    server.compact();
    let e = api_error(server.request(Method::GET, &format!("{SECRETS}?limit=2&continue={token}"), None));
    assert_eq!((e.code, e.reason), (410, "Expired"));
    let e = api_error(server.request(Method::GET, &format!("{SECRETS}?continue=garbage"), None));
    assert_eq!(e.code, 400);
}
