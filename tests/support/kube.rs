//! A Kubernetes API for the operator's end-to-end tests, driven with the real `kubectl`.
//!
//! By default each test gets its own in-memory test API server (`route-test-apiserver`), and
//! each test binary says once that no real cluster is configured. When `ROUTE_TEST_KUBECONFIG`
//! names a kubeconfig, the tests run against that cluster instead, each in a namespace of its
//! own (deleted at the end); tests that need to stop or compact the API server skip there,
//! saying so. Without `kubectl` on the PATH the tests fail, unless `ROUTE_ALLOW_NO_KUBECTL=1`
//! (and `CI` unset) lets them skip, saying so. These lines go straight to the terminal, past
//! the test harness's output capture, so that a passing run shows them too.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use route_mint::{KeySet, PAYLOAD_PRIVATE, SIGNING_PUBLIC};
use route_test_apiserver::TestApiServer;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use super::proxy::{Builder, Proxy};

/// The environment variable naming a real cluster's kubeconfig.
pub const REAL_CLUSTER: &str = "ROUTE_TEST_KUBECONFIG";
/// `1` lets the kube tests skip when kubectl is missing (never when `CI` is set).
pub const ALLOW_NO_KUBECTL: &str = "ROUTE_ALLOW_NO_KUBECTL";

/// The deadline of one kubectl command.
const KUBECTL: Duration = Duration::from_secs(30);

/// Where the tests' API lives.
pub enum Api {
    Test(TestApiServer),
    Real,
}

/// An API server (or a real cluster), a kubeconfig for it, and the namespace a test uses.
pub struct Cluster {
    pub api: Api,
    pub kubeconfig: PathBuf,
    pub namespace: String,
    _dir: tempfile::TempDir,
}

/// What kubectl printed.
#[derive(Debug)]
pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Cluster {
    /// A cluster with the RouteConfig CRD applied and a namespace for the test, or `None` (the
    /// test is skipped, and says so) when `needs_test_server` and a real cluster is configured,
    /// or without kubectl when `ROUTE_ALLOW_NO_KUBECTL=1` and `CI` is unset. Without kubectl
    /// otherwise, the test fails.
    pub async fn start(test: &str, needs_test_server: bool) -> Option<Self> {
        let real = std::env::var(REAL_CLUSTER).ok().filter(|path| !path.is_empty());
        announce(real.as_deref());
        if tokio::process::Command::new("kubectl").args(["version", "--client"]).output().await.is_err() {
            let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
            let allowed = std::env::var(ALLOW_NO_KUBECTL).is_ok_and(|v| v == "1");
            assert!(!ci, "{test}: no kubectl on the PATH, and CI is set: the kube tests need kubectl");
            assert!(
                allowed,
                "{test}: no kubectl on the PATH: the kube tests drive the API server with it. Install \
                 kubectl, or set {ALLOW_NO_KUBECTL}=1 to skip these tests (not in CI)."
            );
            say(&format!("{test}: skipped: no kubectl on the PATH ({ALLOW_NO_KUBECTL}=1)"));
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (api, kubeconfig, namespace) = match real {
            Some(path) => {
                if needs_test_server {
                    say(&format!(
                        "{test}: skipped on a real cluster ({REAL_CLUSTER}): it needs the test API server"
                    ));
                    return None;
                }
                static N: AtomicU32 = AtomicU32::new(0);
                let ns = format!("route-e2e-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
                (Api::Real, PathBuf::from(path), ns)
            }
            None => {
                let server = TestApiServer::start().await.expect("test API server");
                let path = dir.path().join("kubeconfig");
                server.write_kubeconfig(&path).expect("kubeconfig");
                (Api::Test(server), path, "abcdesktop".to_owned())
            }
        };
        let cluster = Self { api, kubeconfig, namespace, _dir: dir };
        let crd = super::proxy::run(&["crd"], &[]).await;
        assert!(crd.status.success(), "route crd: {}", crd.stderr);
        cluster.apply(&crd.stdout).await;
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cluster.namespace}});
        cluster.apply(&ns.to_string()).await;
        Some(cluster)
    }

    pub fn test_server(&self) -> Option<&TestApiServer> {
        match &self.api {
            Api::Test(server) => Some(server),
            Api::Real => None,
        }
    }

    /// Runs kubectl with `args` (and `stdin`), at most 30 s.
    pub async fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn kubectl");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(text.as_bytes()).await.expect("write kubectl stdin");
            drop(pipe);
        }
        let out = super::within(KUBECTL, &format!("kubectl {}", args.join(" ")), child.wait_with_output())
            .await
            .expect("kubectl");
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `kubectl apply -f -` with `yaml` (YAML or JSON), which must succeed.
    pub async fn apply(&self, yaml: &str) -> String {
        let out = self.try_apply(yaml).await;
        assert!(out.ok, "kubectl apply failed: {}", out.stderr);
        out.stdout
    }

    pub async fn try_apply(&self, yaml: &str) -> Out {
        self.kubectl(&["apply", "-n", &self.namespace, "-f", "-"], Some(yaml)).await
    }

    /// `kubectl -n NS <args>`, which must succeed.
    pub async fn ns(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.namespace.as_str()];
        all.extend_from_slice(args);
        let out = self.kubectl(&all, None).await;
        assert!(out.ok, "kubectl {}: {}", all.join(" "), out.stderr);
        out.stdout
    }

    /// The RouteConfig `route` as JSON.
    pub async fn route_config(&self) -> Value {
        serde_json::from_str(&self.ns(&["get", "routeconfig", "route", "-o", "json"]).await).expect("json")
    }

    /// The condition `type_` of the RouteConfig's status.
    pub async fn condition(&self, type_: &str) -> Option<Value> {
        let rc = self.route_config().await;
        rc["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_).cloned()
    }

    /// The events of the namespace, as `reason: note` lines.
    pub async fn events(&self) -> Vec<String> {
        let out = self.ns(&["get", "events.v1.events.k8s.io", "-o", "json"]).await;
        let list: Value = serde_json::from_str(&out).expect("json");
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| format!("{}: {}", e["reason"].as_str().unwrap_or(""), e["note"].as_str().unwrap_or("")))
            .collect()
    }

    /// Starts `route serve --kube` against this cluster; `keys` are what [`Proxy::mint`] uses.
    pub async fn route(&self, keys: &KeySet) -> Proxy {
        self.route_builder(keys).start().await
    }

    pub fn route_builder(&self, keys: &KeySet) -> Builder {
        Proxy::builder()
            .keys(keys)
            .env("KUBECONFIG", &self.kubeconfig.display().to_string())
            .env("POD_NAME", "route-e2e")
            .arg("--kube")
            .arg("--namespace")
            .arg(&self.namespace)
            .log_level("info,route_operator=debug")
    }
}

/// Writes `line` to the process's stderr, past libtest's capture of `eprintln!`.
fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Says, once per test binary, where the kube tests run.
fn announce(real: Option<&str>) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| match real {
        Some(path) => say(&format!("real cluster: {REAL_CLUSTER}={path}; the kube tests run against it")),
        None => say(&format!(
            "real cluster: not configured ({REAL_CLUSTER} unset); running against the in-repo API server \
             stand-in (tests/apiserver)"
        )),
    });
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if matches!(self.api, Api::Real) {
            // Best effort, without waiting for the namespace to go.
            let _ = std::process::Command::new("kubectl")
                .env("KUBECONFIG", &self.kubeconfig)
                .args(["delete", "namespace", &self.namespace, "--wait=false"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The signing Secret as abcdesktop names it, with the public key of `keys` (`stringData`).
pub fn signing_secret(keys: &KeySet) -> String {
    signing_secret_pem(&keys.signing_public)
}

pub fn signing_secret_pem(pem: &str) -> String {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "abcdesktopjwtdesktopsigning"},
        "type": "Opaque",
        "stringData": {SIGNING_PUBLIC: pem},
    })
    .to_string()
}

/// The payload Secret with the private key of `keys` (base64 `data`).
pub fn payload_secret(keys: &KeySet) -> String {
    payload_secret_pem(&keys.payload_private)
}

pub fn payload_secret_pem(pem: &str) -> String {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "abcdesktopjwtdesktoppayload"},
        "type": "Opaque",
        "data": {PAYLOAD_PRIVATE: STANDARD.encode(pem)},
    })
    .to_string()
}

/// The RouteConfig `route` with `spec`.
pub fn route_config(spec: &Value) -> String {
    json!({
        "apiVersion": "route.abcdesktop.io/v1alpha1",
        "kind": "RouteConfig",
        "metadata": {"name": "route"},
        "spec": spec,
    })
    .to_string()
}

/// A key set with the signing pair of `signing` and the payload pair of `payload`.
pub fn mixed(signing: &KeySet, payload: &KeySet) -> KeySet {
    KeySet {
        signing_private: signing.signing_private.clone(),
        signing_public: signing.signing_public.clone(),
        payload_private: payload.payload_private.clone(),
        payload_public: payload.payload_public.clone(),
    }
}
