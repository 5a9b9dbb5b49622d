//! The real `kubectl` against the test API server, as an operator would use it: a CRD with a
//! status subresource, printer columns and a short name; custom resources and Secrets through
//! client-side apply (create, then a patch), server-side apply, merge patches, deletes, label and
//! field selectors, `get --watch`, and a watch from a compacted resourceVersion.
//!
//! Skipped, saying so, when no `kubectl` is on the PATH.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use route_test_apiserver::TestApiServer;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(60);
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

struct Kubectl {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

#[derive(Debug)]
struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    /// None (and a note on stderr) when kubectl is not installed.
    async fn new(server: &TestApiServer) -> Option<Self> {
        if Command::new("kubectl").args(["version", "--client"]).output().await.is_err() {
            eprintln!("skipped: no kubectl on the PATH");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();
        Some(Self { dir, kubeconfig })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).arg("--cache-dir").arg(self.dir.path().join("cache"));
        cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        cmd
    }

    async fn run(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut child = self.command(args).spawn().expect("kubectl starts");
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).await.unwrap();
        }
        drop(input);
        let output = timeout(LIMIT, child.wait_with_output()).await.expect("kubectl ends in time").unwrap();
        let out = Out {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        eprintln!("$ kubectl {}\n{}{}", args.join(" "), out.stdout, out.stderr);
        out
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, None).await;
        assert!(out.ok, "kubectl {args:?} failed: {out:?}");
        out.stdout
    }

    async fn apply(&self, yaml: &str, extra: &[&str]) -> Out {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        self.run(&args, Some(yaml)).await
    }

    async fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin).await;
        assert!(!out.ok, "kubectl {args:?} should fail: {out:?}");
        out.stderr
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all).await).unwrap()
    }
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

/// The table kubectl printed, as rows of whitespace-separated cells.
fn rows(table: &str) -> Vec<Vec<String>> {
    table.lines().map(|l| l.split_whitespace().map(str::to_owned).collect()).collect()
}

fn decode(b64: &str) -> String {
    use base64::Engine as _;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap()
}

#[tokio::test]
async fn crd_and_custom_resources() {
    let server = TestApiServer::start().await.unwrap();
    let Some(k) = Kubectl::new(&server).await else { return };
    let out = k.apply(&fixture("widget-crd.yaml"), &[]).await;
    assert_eq!(
        out.stdout.trim(),
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.route.io created"
    );
    let wait = ["wait", "--for", "condition=established", "crd/widgets.example.route.io", "--timeout=10s"];
    assert!(k.ok(&wait).await.contains("condition met"));
    let resources = k.ok(&["api-resources", "--api-group=example.route.io"]).await;
    assert_eq!(rows(&resources)[1], ["widgets", "wdg", "example.route.io/v1", "true", "Widget"]);

    let widget = fixture("widget.yaml");
    assert_eq!(k.apply(&widget, &[]).await.stdout.trim(), "widget.example.route.io/w1 created");
    let table = rows(&k.ok(&["get", "widgets"]).await);
    assert_eq!(table[0], ["NAME", "SIZE", "COLOR", "READY", "AGE"]);
    assert_eq!(table[1][..3], ["w1", "3", "blue"], "printer columns, with the schema default");
    assert_eq!(rows(&k.ok(&["get", "wdg"]).await)[1][0], "w1", "the short name");
    assert_eq!(rows(&k.ok(&["get", "route"]).await)[1][0], "w1", "the category");

    let status = r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#;
    k.ok(&["patch", "wdg", "w1", "--subresource=status", "--type=merge", "-p", status]).await;
    let table = rows(&k.ok(&["get", "wdg", "w1"]).await);
    assert_eq!(table[1][..4], ["w1", "3", "blue", "True"], "the Ready condition column");
    assert_eq!(k.json(&["get", "wdg", "w1"]).await["metadata"]["generation"], 1);

    // Client-side apply again: a three-way JSON merge patch.
    let bigger = widget.replace("size: 3", "size: 4");
    assert_eq!(k.apply(&bigger, &[]).await.stdout.trim(), "widget.example.route.io/w1 configured");
    assert_eq!(k.apply(&bigger, &[]).await.stdout.trim(), "widget.example.route.io/w1 unchanged");
    let w = k.json(&["get", "wdg", "w1"]).await;
    assert_eq!((w["spec"]["size"].as_i64(), w["metadata"]["generation"].as_i64()), (Some(4), Some(2)));
    assert_eq!(w["status"]["conditions"][0]["status"], "True", "spec writes keep the status");

    let unknown = widget.replace("size: 3", "size: 3\n  bogus: 1");
    let err = k.fails(&["apply", "-f", "-"], Some(&unknown)).await;
    assert!(err.contains(r#"strict decoding error: unknown field "spec.bogus""#), "{err}");
    let invalid = widget.replace("size: 3", "size: 11");
    let err = k.fails(&["apply", "-f", "-"], Some(&invalid)).await;
    assert!(
        err.contains("spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10"),
        "{err}"
    );

    // Server-side apply over client-side apply: a conflict, then forced.
    let six = widget.replace("size: 3", "size: 6");
    let err = k.fails(&["apply", "--server-side", "-f", "-"], Some(&six)).await;
    assert!(err.contains(r#"conflict with "kubectl-client-side-apply""#), "{err}");
    let out = k.apply(&six, &["--server-side", "--force-conflicts"]).await;
    assert_eq!(out.stdout.trim(), "widget.example.route.io/w1 serverside-applied");
    assert_eq!(k.ok(&["get", "wdg", "w1", "-o", "jsonpath={.spec.size}"]).await, "6");

    let red = r#"{"spec":{"color":"red"}}"#;
    assert_eq!(
        k.ok(&["patch", "wdg", "w1", "--type=merge", "-p", red]).await.trim(),
        "widget.example.route.io/w1 patched"
    );
    let again = k.ok(&["patch", "wdg", "w1", "--type=merge", "-p", red]).await;
    assert_eq!(again.trim(), "widget.example.route.io/w1 patched (no change)");
    let err = k.fails(&["patch", "wdg", "w1", "-p", red], None).await;
    assert!(
        err.contains("application/strategic-merge-patch+json is not supported"),
        "strategic merge patch on a custom resource: {err}"
    );

    let out = k.run(&["delete", "-f", "-"], Some(&widget)).await;
    assert_eq!(out.stdout.trim(), r#"widget.example.route.io "w1" deleted"#);
    let err = k.fails(&["get", "wdg", "w1"], None).await;
    assert!(
        err.contains(r#"Error from server (NotFound): widgets.example.route.io "w1" not found"#),
        "{err}"
    );
    k.ok(&["delete", "crd", "widgets.example.route.io"]).await;
    // kubectl's discovery cache still knows the type: the list itself answers 404.
    let err = k.fails(&["get", "widgets"], None).await;
    assert!(err.contains("the server could not find the requested resource"), "{err}");
}

#[tokio::test]
async fn secrets_data_string_data_and_selectors() {
    let server = TestApiServer::start().await.unwrap();
    let Some(k) = Kubectl::new(&server).await else { return };
    let secrets = fixture("secrets.yaml");
    assert_eq!(k.apply(&secrets, &[]).await.stdout, "secret/signing created\nsecret/payload created\n");
    let signing = k.json(&["get", "secret", "signing"]).await;
    assert!(signing.get("stringData").is_none(), "stringData is never stored: {signing}");
    let pem = decode(signing["data"]["public.pem"].as_str().unwrap());
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\nAAAA"), "{pem}");
    assert_eq!(signing["type"], "Opaque");
    let yaml = k.ok(&["get", "secret", "payload", "-o", "yaml"]).await;
    assert!(yaml.contains("data:\n  private.pem: aGVsbG8=\n"), "{yaml}");
    let table = rows(&k.ok(&["get", "secrets"]).await);
    assert_eq!(table[0], ["NAME", "TYPE", "DATA", "AGE"]);
    assert_eq!(table[1][..3], ["payload", "Opaque", "1"]);

    // Rotation through client-side apply (a strategic merge patch of data).
    let rotated = secrets.replace("AAAA", "BBBB").replace("aGVsbG8=", "d29ybGQ=");
    assert_eq!(k.apply(&rotated, &[]).await.stdout, "secret/signing configured\nsecret/payload configured\n");
    // stringData is never in the live object, so kubectl always finds something to send for it
    // (as against a real server); the server sees no change and keeps the resourceVersion.
    let rv = k.ok(&["get", "secret", "signing", "-o", "jsonpath={.metadata.resourceVersion}"]).await;
    assert_eq!(k.apply(&rotated, &[]).await.stdout, "secret/signing configured\nsecret/payload unchanged\n");
    assert_eq!(k.ok(&["get", "secret", "signing", "-o", "jsonpath={.metadata.resourceVersion}"]).await, rv);
    let signing = k.json(&["get", "secret", "signing"]).await;
    assert!(decode(signing["data"]["public.pem"].as_str().unwrap()).contains("BBBB"));
    assert_eq!(k.ok(&["get", "secret", "payload", "-o", "jsonpath={.data.private\\.pem}"]).await, "d29ybGQ=");

    let spec = "apiVersion: v1\nkind: Secret\nmetadata: {name: bad}\nspec: {x: 1}\n";
    let err = k.fails(&["apply", "-f", "-"], Some(spec)).await;
    assert!(err.contains(r#"Secret in version "v1" cannot be handled as a Secret: strict decoding error: unknown field "spec""#), "{err}");

    let ssa = "apiVersion: v1\nkind: Secret\nmetadata: {name: ssa}\nstringData: {k: v}\n";
    assert_eq!(k.apply(ssa, &["--server-side"]).await.stdout.trim(), "secret/ssa serverside-applied");
    assert_eq!(k.ok(&["get", "secret", "ssa", "-o", "jsonpath={.data.k}"]).await, "dg==");
    k.ok(&["create", "secret", "generic", "lit", "--from-literal=a=b"]).await;
    k.ok(&["label", "secret", "payload", "app=web"]).await;
    k.ok(&["label", "secret", "lit", "app=db"]).await;
    let names = |out: String| out.lines().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(names(k.ok(&["get", "secrets", "-l", "app=web", "-o", "name"]).await), ["secret/payload"]);
    assert_eq!(
        names(k.ok(&["get", "secrets", "-l", "app in (web,db)", "-o", "name"]).await),
        ["secret/lit", "secret/payload"]
    );
    assert_eq!(
        names(k.ok(&["get", "secrets", "-l", "app notin (web)", "-o", "name"]).await),
        ["secret/lit", "secret/signing", "secret/ssa"]
    );
    assert_eq!(
        names(k.ok(&["get", "secrets", "-l", "!app", "-o", "name"]).await),
        ["secret/signing", "secret/ssa"]
    );
    let by_name = k
        .ok(&["get", "secrets", "--field-selector", "metadata.name!=signing,type=Opaque", "-o", "name"])
        .await;
    assert_eq!(names(by_name), ["secret/lit", "secret/payload", "secret/ssa"]);
    assert_eq!(
        k.ok(&["delete", "secret", "lit", "ssa"]).await,
        "secret \"lit\" deleted\nsecret \"ssa\" deleted\n"
    );
    k.ok(&["create", "namespace", "abcdesktop"]).await;
    k.run(&["apply", "-n", "abcdesktop", "-f", "-"], Some(&secrets)).await;
    assert_eq!(k.ok(&["get", "secrets", "-A", "-o", "name"]).await.lines().count(), 4);
    let err = k.fails(&["apply", "-n", "nowhere", "-f", "-"], Some(&secrets)).await;
    assert!(err.contains(r#"namespaces "nowhere" not found"#), "{err}");
}

#[tokio::test]
async fn events_through_kubectl() {
    let server = TestApiServer::start().await.unwrap();
    let Some(k) = Kubectl::new(&server).await else { return };
    let event = "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {name: e1}\n\
        eventTime: \"2025-01-01T00:00:00.000000Z\"\nreportingController: route\nreportingInstance: route-0\n\
        action: Reload\nreason: KeyRejected\ntype: Warning\nnote: bad PEM\n\
        regarding: {kind: Secret, name: signing, namespace: default, apiVersion: v1}\n";
    assert_eq!(k.apply(event, &[]).await.stdout.trim(), "event.events.k8s.io/e1 created");
    let table = rows(&k.ok(&["get", "events"]).await);
    assert_eq!(table[0], ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
    assert_eq!(table[1][1..], ["Warning", "KeyRejected", "secret/signing", "bad", "PEM"]);
    let listed = k.ok(&["events", "--for", "secret/signing"]).await;
    assert!(listed.contains("KeyRejected"), "{listed}");
    let core = k.json(&["get", "events.v1.", "e1"]).await;
    assert_eq!(
        (core["message"].as_str(), core["involvedObject"]["name"].as_str()),
        (Some("bad PEM"), Some("signing"))
    );
}

#[tokio::test]
async fn get_watch_sees_a_change() {
    let server = TestApiServer::start().await.unwrap();
    let Some(k) = Kubectl::new(&server).await else { return };
    k.apply(&fixture("secrets.yaml"), &[]).await;
    let mut child = k.command(&["get", "secrets", "--watch", "--output-watch-events"]).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let modified = timeout(Duration::from_secs(20), async {
        let mut patched = false;
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push(line.clone());
            if !patched && line.starts_with("ADDED") && seen.len() >= 3 {
                k.ok(&["patch", "secret", "payload", "-p", r#"{"stringData":{"extra":"x"}}"#]).await;
                patched = true;
            }
            if line.starts_with("MODIFIED") {
                return line;
            }
        }
        panic!("the watch ended: {seen:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no MODIFIED line in time: {seen:?}"));
    let _ = child.kill().await;
    assert_eq!(rows(&seen[0]), [["EVENT", "NAME", "TYPE", "DATA", "AGE"]]);
    assert_eq!(rows(&modified)[0][..4], ["MODIFIED", "payload", "Opaque", "2"]);
}

#[tokio::test]
async fn watch_from_a_compacted_version_answers_410() {
    let server = TestApiServer::start().await.unwrap();
    let Some(k) = Kubectl::new(&server).await else { return };
    k.apply(&fixture("secrets.yaml"), &[]).await;
    let rv = k.ok(&["get", "secret", "payload", "-o", "jsonpath={.metadata.resourceVersion}"]).await;
    k.ok(&["patch", "secret", "payload", "-p", r#"{"stringData":{"more":"y"}}"#]).await;
    let path = format!("/api/v1/namespaces/default/secrets?watch=1&resourceVersion={rv}");
    server.compact();
    let out = k.ok(&["get", "--raw", &path, "--request-timeout=20s"]).await;
    let event: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["kind"], "Status");
    assert_eq!(
        (event["object"]["code"].as_i64(), event["object"]["reason"].as_str()),
        (Some(410), Some("Expired"))
    );
    let list = format!("/api/v1/namespaces/default/secrets?resourceVersion={rv}&resourceVersionMatch=Exact");
    let err = k.fails(&["get", "--raw", &list], None).await;
    assert!(err.contains("Expired") || err.contains("410") || err.contains("too old"), "{err}");
}

#[tokio::test]
async fn unknown_paths_and_kinds_are_refused_as_a_server_would() {
    let server = TestApiServer::start().await.unwrap();
    let Some(k) = Kubectl::new(&server).await else { return };
    let err = k.fails(&["get", "--raw", "/api/v1/namespaces/default/pods"], None).await;
    assert!(
        err.contains("Error from server (NotFound): the server could not find the requested resource"),
        "{err}"
    );
    let err = k.fails(&["get", "configmaps"], None).await;
    assert!(err.contains(r#"the server doesn't have a resource type "configmaps""#), "{err}");
    let err = k.fails(&["get", "secret", "nope"], None).await;
    assert!(err.contains(r#"Error from server (NotFound): secrets "nope" not found"#), "{err}");
    let err = k.fails(&["create", "secret", "generic", "Bad_Name", "--from-literal=a=b"], None).await;
    assert!(err.contains("is invalid: metadata.name: Invalid value: \"Bad_Name\""), "{err}");
    let err = k.fails(&["delete", "namespace", "default"], None).await;
    assert!(err.contains("Forbidden"), "{err}");
    let version = k.ok(&["version", "-o", "json"]).await;
    let version: Value = serde_json::from_str(&version).unwrap();
    assert_eq!(version["serverVersion"]["major"], "1");
}

#[tokio::test]
async fn the_binary_serves_until_killed() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_route-test-apiserver"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = timeout(LIMIT, lines.next_line()).await.unwrap().unwrap().unwrap();
    let url = first.strip_prefix("listening ").unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{first}");
    let config = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(config.contains(&format!("server: {url}")), "{config}");
    if Command::new("kubectl").args(["version", "--client"]).output().await.is_ok() {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["get", "namespaces", "-o", "name"])
            .output()
            .await
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().next(), Some("namespace/default"));
    }
    child.kill().await.unwrap();
}
