//! API semantics the operator and kubectl rely on, checked in-process (`request`) and over raw
//! HTTP where headers matter: resourceVersions, conflicts, error `Status` objects, patches,
//! server-side apply ownership, finalizers, dry runs, selectors, exact lists, Events, Tables,
//! structural CRD schemas.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use http::Method;
use route_test_apiserver::{Error, TestApiServer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRETS: &str = "/api/v1/namespaces/default/secrets";
const WIDGETS: &str = "/apis/example.route.io/v1/namespaces/default/widgets";

fn api_error(r: Result<Value, Error>) -> route_test_apiserver::ApiError {
    match r {
        Err(Error::Api(e)) => e,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
}

fn secret(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"k": "v"}})
}

async fn with_widgets() -> TestApiServer {
    let server = TestApiServer::start().await.unwrap();
    let yaml =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/widget-crd.yaml"))
            .unwrap();
    let crd: Value = serde_yaml::from_str(&yaml).unwrap();
    server
        .request(Method::POST, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", Some(&crd))
        .unwrap();
    server
}

/// One HTTP/1.1 request; answers (status, headers, body).
async fn raw(server: &TestApiServer, head: &str, body: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let req =
        format!("{head}\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await.unwrap().unwrap();
    let (headers, body) = out.split_once("\r\n\r\n").unwrap();
    let code = headers.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, headers.to_owned(), body.to_owned())
}

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

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

fn gadget_crd(versions: Value) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.route.io"},
        "spec": {"group": "example.route.io", "scope": "Namespaced",
            "names": {"kind": "Gadget", "plural": "gadgets"}, "versions": versions}})
}

fn one_version(schema: Value) -> Value {
    gadget_crd(
        json!([{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": schema}}]),
    )
}

#[tokio::test]
async fn non_structural_crds_are_refused() {
    let server = TestApiServer::start().await.unwrap();
    let crd = one_version(
        json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}),
    );
    let (code, _, body) =
        raw(&server, &format!("POST {CRDS} HTTP/1.1\r\nContent-Type: application/json"), &crd.to_string())
            .await;
    assert_eq!(code, 422, "{body}");
    let status: Value = serde_json::from_str(&body).unwrap();
    let field = "spec.validation.openAPIV3Schema.properties[spec].type";
    let detail = "Required value: must not be empty for specified object fields";
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        format!(
            r#"CustomResourceDefinition.apiextensions.k8s.io "gadgets.example.route.io" is invalid: {field}: {detail}"#
        )
    );
    assert_eq!(
        status["details"]["causes"],
        json!([{"reason": "FieldValueRequired", "message": detail, "field": field}])
    );
    assert!(server.get_json(&format!("{CRDS}/gadgets.example.route.io")).is_none());
    assert!(server.get_json("/apis/example.route.io/v1").is_none(), "nothing served");

    let refused = |schema: Value| {
        let e = api_error(server.request(Method::POST, CRDS, Some(&one_version(schema))));
        assert_eq!((e.code, e.reason), (422, "Invalid"), "{e:?}");
        let causes = e.details.unwrap()["causes"].as_array().unwrap().clone();
        causes
            .iter()
            .map(|c| format!("{}: {}", c["field"].as_str().unwrap(), c["message"].as_str().unwrap()))
            .collect::<Vec<_>>()
    };
    let at = "spec.validation.openAPIV3Schema";
    assert_eq!(
        refused(json!({"type": "object", "properties": {"m": {"type": "object",
            "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}}}})),
        [format!(
            "{at}.properties[m].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
        )]
    );
    assert_eq!(
        refused(json!({"type": "object", "properties": {"m": {"type": "object",
            "properties": {"a": {"type": "string"}}, "additionalProperties": false}}})),
        [format!(
            "{at}.properties[m].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
        )]
    );
    assert_eq!(
        refused(json!({"type": "object", "additionalProperties": {"type": "string"}})),
        [format!("{at}.additionalProperties: Forbidden: must not be used at the root")]
    );
    assert_eq!(
        refused(json!({"type": "object", "properties": {"metadata": {"type": "object",
            "properties": {"labels": {"type": "object"}}}}})),
        [format!(
            "{at}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
        )]
    );
    assert_eq!(
        refused(json!({"type": "object", "properties": {"l": {"type": "array"}, "s": {"type": "string",
            "anyOf": [{"type": "string", "description": "x"}]}}})),
        [
            format!("{at}.properties[l].items: Required value: must be specified"),
            format!("{at}.properties[s].anyOf[0].description: Forbidden: must be empty to be structural"),
            format!("{at}.properties[s].anyOf[0].type: Forbidden: must be empty to be structural"),
        ],
        "sorted as the server sorts them"
    );
    assert_eq!(
        refused(json!({"type": "object", "properties": {"l": {"type": "array", "items": {}}},
            "anyOf": [{"properties": {"x": {"minLength": 1}}}]})),
        [
            format!(
                "{at}.properties[l].items.type: Required value: must not be empty for specified array items"
            ),
            format!(
                "{at}.properties[x]: Required value: because it is defined in {at}.anyOf[0].properties[x]"
            ),
        ]
    );
    assert_eq!(
        refused(json!({"type": "string"})),
        [format!("{at}.type: Invalid value: \"string\": must be object at the root")]
    );
    assert_eq!(
        refused(json!({"type": "object", "properties": {"t": {"type": "text"}}})),
        [format!(
            r#"{at}.properties[t].type: Unsupported value: "text": supported values: "array", "boolean", "integer", "number", "object", "string""#
        )]
    );

    // Versions with different schemas are checked where they are.
    let versions = json!([
        {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}},
        {"name": "v2", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {}}}}},
    ]);
    let e = api_error(server.request(Method::POST, CRDS, Some(&gadget_crd(versions))));
    assert!(
        e.message.ends_with("spec.versions[1].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"),
        "{}",
        e.message
    );

    // What a structural schema may leave untyped, and the names metadata may restrict.
    let fine = json!({"type": "object", "properties": {
        "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}},
        "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "raw": {"x-kubernetes-preserve-unknown-fields": true},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        "open": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": true},
        "size": {"type": "integer", "anyOf": [{"minimum": 1}, {"maximum": -1}]}}});
    server.request(Method::POST, CRDS, Some(&one_version(fine))).unwrap();
}

#[tokio::test]
async fn printer_columns_are_checked_where_the_server_checks_them() {
    let server = TestApiServer::start().await.unwrap();
    let version = |name: &str, storage: bool, columns: Value| {
        json!({"name": name, "served": true, "storage": storage, "additionalPrinterColumns": columns,
            "schema": {"openAPIV3Schema": {"type": "object"}}})
    };
    let bad = json!([{"name": "Size", "type": "text", "jsonPath": "spec.size"}]);
    let e = api_error(server.request(
        Method::POST,
        CRDS,
        Some(&gadget_crd(json!([version("v1", true, bad.clone())]))),
    ));
    assert!(
        e.message.ends_with(
            r#"[spec.additionalPrinterColumns[0].type: Invalid value: "text": must be one of boolean,date,integer,number,string, spec.additionalPrinterColumns[0].JSONPath: Invalid value: "spec.size": must be a simple json path starting with .]"#
        ),
        "{}",
        e.message
    );
    let versions = json!([version("v1", true, bad), version("v2", false, json!([]))]);
    let e = api_error(server.request(Method::POST, CRDS, Some(&gadget_crd(versions))));
    assert!(
        e.message.contains("spec.versions[0].additionalPrinterColumns[0].type: Invalid value"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn the_project_crd_is_accepted() {
    let server = TestApiServer::start().await.unwrap();
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../charts/route/crds/routeconfig.yaml"
    ))
    .unwrap();
    let crd: Value = serde_yaml::from_str(&yaml).unwrap();
    let created = server.request(Method::POST, CRDS, Some(&crd)).unwrap();
    assert_eq!(created["status"]["conditions"][1]["type"], "Established");
    assert!(server.get_json("/apis/route.abcdesktop.io/v1alpha1/namespaces/default/routeconfigs").is_some());
}

/// The JSON lines of a watch answer read by [`raw`] (chunked).
fn events(body: &str) -> Vec<Value> {
    body.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test]
async fn reads_ahead_of_the_store_wait_for_it_then_time_out() {
    let server = TestApiServer::start().await.unwrap();
    let list = format!("GET {SECRETS}?resourceVersion={} HTTP/1.1", server.resource_version() + 1);
    let write_soon = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.request(Method::POST, SECRETS, Some(&secret("late"))).unwrap();
    };
    let ((code, _, body), ()) = tokio::join!(raw(&server, &list, ""), write_soon);
    assert_eq!(code, 200, "the list waited for the write: {body}");
    assert!(body.contains(r#""name":"late""#), "{body}");

    let (current, far) = (server.resource_version(), server.resource_version() + 5);
    let list = format!("GET {SECRETS}?resourceVersion={far}&resourceVersionMatch=NotOlderThan HTTP/1.1");
    let get = format!("GET {SECRETS}/late?resourceVersion={far} HTTP/1.1");
    let watch_list = format!(
        "GET {SECRETS}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan\
         &allowWatchBookmarks=true&resourceVersion={far} HTTP/1.1"
    );
    let started = std::time::Instant::now();
    let (list, get, stream) =
        tokio::join!(raw(&server, &list, ""), raw(&server, &get, ""), raw(&server, &watch_list, ""));
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(5), "{took:?}");
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("Timeout: Too large resource version: {far}, current: {current}"),
        "reason": "Timeout", "code": 504,
        "details": {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1}});
    for (code, _, body) in [list, get] {
        assert_eq!((code, serde_json::from_str::<Value>(&body).unwrap()), (504, status.clone()));
    }
    assert_eq!(stream.0, 200, "a watch fails in an ERROR event");
    assert_eq!(events(&stream.2), [json!({"type": "ERROR", "object": status})]);
}

#[tokio::test]
async fn a_watch_ahead_of_the_store_sends_only_newer_changes() {
    let server = TestApiServer::start().await.unwrap();
    server.set_bookmark_interval(Duration::from_millis(100));
    let from = server.resource_version() + 2;
    let watch = format!(
        "GET {SECRETS}?watch=1&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion={from} HTTP/1.1"
    );
    let writes = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for name in ["w1", "w2", "w3"] {
            server.request(Method::POST, SECRETS, Some(&secret(name))).unwrap();
        }
    };
    let started = std::time::Instant::now();
    let ((code, _, body), ()) = tokio::join!(raw(&server, &watch, ""), writes);
    assert!(started.elapsed() < Duration::from_secs(2), "no wait: the watch ends at its timeout");
    assert_eq!(code, 200);
    let events = events(&body);
    let names: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] != "BOOKMARK")
        .map(|e| e["object"]["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["w3"], "{body}");
    assert!(events.iter().all(|e| rv(&e["object"]) >= from), "nothing older than the watch: {body}");
}
