//! Kubernetes for the operator's end-to-end tests: a real kube-apiserver, driven with the real
//! `kubectl`, and `route serve --kube` running as the chart's ServiceAccount.
//!
//! By default the tests of one binary share a control plane of their own (etcd and
//! kube-apiserver 1.20.2, `control_plane.rs`), each test in a namespace of its own; tests that
//! stop or compact the server start one for themselves. When `ROUTE_TEST_KUBECONFIG` names a
//! kubeconfig, the tests run against that cluster instead (each in a namespace deleted at the
//! end); tests that need to stop or compact the server skip there, saying so.
//!
//! In each namespace the ServiceAccount, Role and RoleBinding are applied as `helm template`
//! renders them from `charts/route`, and `route` gets a kubeconfig holding only that account's
//! token: a verb or resource missing from the Role fails the tests (see `kube_requests.rs`).
//! The test's own kubectl runs as the admin.
//!
//! Without `kubectl` on the PATH the tests fail, unless `ROUTE_ALLOW_NO_KUBECTL=1` (and `CI`
//! unset) lets them skip, saying so. These lines go straight to the terminal, past the test
//! harness's output capture, so that a passing run shows them too.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Once, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use route_mint::{KeySet, PAYLOAD_PRIVATE, SIGNING_PUBLIC};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use super::control_plane::{self, ControlPlane};
use super::proxy::{Builder, Proxy};

/// The environment variable naming a real cluster's kubeconfig.
pub const REAL_CLUSTER: &str = "ROUTE_TEST_KUBECONFIG";
/// `1` lets the kube tests skip when kubectl is missing (never when `CI` is set).
pub const ALLOW_NO_KUBECTL: &str = "ROUTE_ALLOW_NO_KUBECTL";
/// The chart's release name: its ServiceAccount, Role and RouteConfig are all `route`.
pub const RELEASE: &str = "route";
/// The chart.
pub const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/route");
/// The Kubernetes version `helm template` renders for: the chart's `kubeVersion` floor.
pub const CHART_KUBE_VERSION: &str = "1.25.0";

/// The deadline of one kubectl command.
const KUBECTL: Duration = Duration::from_secs(30);

/// Where the tests' API lives.
pub enum Api {
    /// The control plane this test binary shares.
    Shared(&'static ControlPlane),
    /// A control plane of the test's own.
    Own(ControlPlane),
    Real,
}

/// An API server, an admin kubeconfig for it, the namespace a test uses, and a kubeconfig with
/// the chart ServiceAccount's token in that namespace.
pub struct Cluster {
    pub api: Api,
    /// The admin's kubeconfig: the test's own kubectl.
    pub kubeconfig: PathBuf,
    /// Only the chart ServiceAccount's token: what `route` runs with.
    pub route_kubeconfig: PathBuf,
    /// That token.
    pub route_token: String,
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
    /// A namespace on this test binary's shared control plane (or the real cluster), with the
    /// RouteConfig CRD and the chart's RBAC applied; `None` (the test is skipped, and says so)
    /// without kubectl when `ROUTE_ALLOW_NO_KUBECTL=1` and `CI` is unset. Without kubectl
    /// otherwise, the test fails.
    pub async fn start(test: &str) -> Option<Self> {
        let real = real_cluster();
        if !kubectl_present(test).await {
            return None;
        }
        let api = match real {
            Some(_) => Api::Real,
            None => {
                Api::Shared(tokio::task::spawn_blocking(ControlPlane::shared).await.expect("control plane"))
            }
        };
        Some(Self::prepare(test, api).await)
    }

    /// A control plane of the test's own (it stops, restarts or compacts it), with `extra`
    /// kube-apiserver flags; `None` (skipped, saying so) on a real cluster.
    pub async fn start_own(test: &str, extra: &[&str]) -> Option<Self> {
        if real_cluster().is_some() {
            say(&format!(
                "{test}: skipped on a real cluster ({REAL_CLUSTER}): it stops or compacts the API server"
            ));
            return None;
        }
        if !kubectl_present(test).await {
            return None;
        }
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let plane = tokio::task::spawn_blocking(move || {
            ControlPlane::own(&extra.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .expect("control plane");
        Some(Self::prepare(test, Api::Own(plane)).await)
    }

    async fn prepare(test: &str, api: Api) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = tempfile::tempdir().expect("tempdir");
        let n = N.fetch_add(1, Ordering::Relaxed);
        let (kubeconfig, namespace) = match &api {
            Api::Real => (
                PathBuf::from(real_cluster().expect("real cluster")),
                format!("route-e2e-{}-{n}", std::process::id()),
            ),
            Api::Shared(plane) => (plane.admin_kubeconfig.clone(), format!("t{n}-{}", slug(test))),
            Api::Own(plane) => (plane.admin_kubeconfig.clone(), format!("t{n}-{}", slug(test))),
        };
        let route_kubeconfig = dir.path().join("route.kubeconfig");
        let mut cluster =
            Self { api, kubeconfig, route_kubeconfig, route_token: String::new(), namespace, _dir: dir };
        cluster.apply_crd().await;
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cluster.namespace}});
        cluster.apply(&ns.to_string()).await;
        cluster.apply_chart_rbac().await;
        cluster.write_route_kubeconfig().await;
        cluster
    }

    /// The control plane, unless on a real cluster.
    pub fn plane(&self) -> Option<&ControlPlane> {
        match &self.api {
            Api::Shared(plane) => Some(plane),
            Api::Own(plane) => Some(plane),
            Api::Real => None,
        }
    }

    /// The CRD, once per API server, and established.
    async fn apply_crd(&self) {
        // Held across the apply: two tests creating the CRD at once would conflict.
        static APPLIED: tokio::sync::Mutex<Vec<PathBuf>> = tokio::sync::Mutex::const_new(Vec::new());
        let mut applied = APPLIED.lock().await;
        if applied.contains(&self.kubeconfig) {
            return;
        }
        let crd = super::proxy::run(&["crd"], &[]).await;
        assert!(crd.status.success(), "route crd: {}", crd.stderr);
        // Before 1.25 the server knows no `x-kubernetes-validations` (CEL): kubectl's validation
        // refuses the field, and without it the server drops it (the CEL rules are then not
        // enforced; crds/src/cel_tests.rs runs them offline).
        let validate = if self.server_minor().await < 25 { "--validate=false" } else { "--validate=true" };
        let out = self.kubectl(&["apply", validate, "-f", "-"], Some(&crd.stdout)).await;
        assert!(out.ok, "kubectl apply of the CRD: {}", out.stderr);
        let out = self
            .kubectl(
                &[
                    "wait",
                    "--for=condition=Established",
                    "--timeout=20s",
                    "crd/routeconfigs.route.abcdesktop.io",
                ],
                None,
            )
            .await;
        assert!(out.ok, "the CRD is not established: {}", out.stderr);
        applied.push(self.kubeconfig.clone());
    }

    /// The ServiceAccount, Role and RoleBinding exactly as the chart renders them for this
    /// namespace, applied with kubectl.
    async fn apply_chart_rbac(&self) {
        let rendered = helm_template(
            &self.namespace,
            &["--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml"],
        )
        .await;
        for kind in ["kind: ServiceAccount", "kind: Role", "kind: RoleBinding"] {
            assert!(rendered.contains(kind), "the chart renders no {kind}: {rendered}");
        }
        self.apply(&rendered).await;
    }

    /// Mints the chart ServiceAccount's token (TokenRequest, `kubectl create token`) and writes
    /// a kubeconfig holding only that token.
    async fn write_route_kubeconfig(&mut self) {
        let token = self.ns(&["create", "token", RELEASE, "--duration=24h"]).await;
        let token = token.trim();
        assert!(token.split('.').count() == 3, "not a token: {token}");
        let (server, ca) = match self.plane() {
            Some(plane) => (plane.server(), plane.ca_pem.clone()),
            None => {
                let view = self.kubectl(&["config", "view", "--raw", "--minify", "-o", "json"], None).await;
                assert!(view.ok, "kubectl config view: {}", view.stderr);
                let view: Value = serde_json::from_str(&view.stdout).expect("json");
                let cluster = &view["clusters"][0]["cluster"];
                let ca = match (
                    cluster["certificate-authority-data"].as_str(),
                    cluster["certificate-authority"].as_str(),
                ) {
                    (Some(data), _) => {
                        String::from_utf8(STANDARD.decode(data).expect("base64")).expect("utf8")
                    }
                    (None, Some(file)) => std::fs::read_to_string(file).expect("CA file"),
                    (None, None) => panic!("the real cluster's kubeconfig names no CA"),
                };
                (cluster["server"].as_str().expect("server").to_owned(), ca)
            }
        };
        control_plane::write_kubeconfig_for(&self.route_kubeconfig, &server, &ca, token, &self.namespace);
        self.route_token = token.to_owned();
    }

    /// Runs kubectl as the admin with `args` (and `stdin`), at most 30 s.
    pub async fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Out {
        kubectl_with(&self.kubeconfig, args, stdin).await
    }

    /// Runs kubectl as route's ServiceAccount (its kubeconfig), in its namespace.
    pub async fn kubectl_as_route(&self, args: &[&str]) -> Out {
        let mut all = vec!["-n", self.namespace.as_str()];
        all.extend_from_slice(args);
        kubectl_with(&self.route_kubeconfig, &all, None).await
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

    /// The server's minor version (20 for the control plane started here).
    pub async fn server_minor(&self) -> u32 {
        let out = self.kubectl(&["version", "-o", "json"], None).await;
        let version: Value = serde_json::from_str(&out.stdout).expect("kubectl version json");
        let minor = version["serverVersion"]["minor"].as_str().unwrap_or("");
        minor.trim_end_matches('+').parse().unwrap_or_else(|_| panic!("server version: {}", out.stdout))
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

    /// The events of the namespace (`events.k8s.io/v1`) as JSON, oldest first.
    pub async fn event_objects(&self) -> Vec<Value> {
        let out = self.ns(&["get", "events.v1.events.k8s.io", "-o", "json"]).await;
        let list: Value = serde_json::from_str(&out).expect("json");
        let mut items = list["items"].as_array().cloned().unwrap_or_default();
        items.sort_by_key(|e| e["eventTime"].as_str().unwrap_or("").to_owned());
        items
    }

    /// The events of the namespace, as `reason: note` lines.
    pub async fn events(&self) -> Vec<String> {
        self.event_objects()
            .await
            .iter()
            .map(|e| format!("{}: {}", e["reason"].as_str().unwrap_or(""), e["note"].as_str().unwrap_or("")))
            .collect()
    }

    /// Starts `route serve --kube` against this cluster as the chart's ServiceAccount; `keys`
    /// are what [`Proxy::mint`] uses.
    pub async fn route(&self, keys: &KeySet) -> Proxy {
        self.route_builder(keys).start().await
    }

    pub fn route_builder(&self, keys: &KeySet) -> Builder {
        self.route_builder_with(keys, &self.route_kubeconfig)
    }

    /// As [`route_builder`](Self::route_builder), with another kubeconfig (a fault proxy's).
    pub fn route_builder_with(&self, keys: &KeySet, kubeconfig: &Path) -> Builder {
        Proxy::builder()
            .keys(keys)
            .env("KUBECONFIG", &kubeconfig.display().to_string())
            .env("POD_NAME", "route-e2e")
            .arg("--kube")
            .arg("--namespace")
            .arg(&self.namespace)
            .log_level("info,route_operator=debug")
    }
}

fn real_cluster() -> Option<String> {
    let real = std::env::var(REAL_CLUSTER).ok().filter(|path| !path.is_empty());
    announce(real.as_deref());
    real
}

async fn kubectl_present(test: &str) -> bool {
    if tokio::process::Command::new("kubectl").args(["version", "--client"]).output().await.is_ok() {
        return true;
    }
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    let allowed = std::env::var(ALLOW_NO_KUBECTL).is_ok_and(|v| v == "1");
    assert!(!ci, "{test}: no kubectl on the PATH, and CI is set: the kube tests need kubectl");
    assert!(
        allowed,
        "{test}: no kubectl on the PATH: the kube tests drive the API server with it. Install \
         kubectl, or set {ALLOW_NO_KUBECTL}=1 to skip these tests (not in CI)."
    );
    say(&format!("{test}: skipped: no kubectl on the PATH ({ALLOW_NO_KUBECTL}=1)"));
    false
}

/// A namespace-friendly short form of a test name.
fn slug(test: &str) -> String {
    let s: String = test.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(40).collect();
    s.trim_end_matches('-').to_owned()
}

/// kubectl with `kubeconfig`, at most 30 s.
pub async fn kubectl_with(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Out {
    let mut cmd = tokio::process::Command::new("kubectl");
    cmd.env("KUBECONFIG", kubeconfig)
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

/// helm, from the PATH or fetched by `tests/k8s/helm` (into ~/.cache/route-ci/bin), once.
pub fn helm() -> PathBuf {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/k8s/helm");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/k8s/helm");
        assert!(out.status.success(), "tests/k8s/helm failed: no helm for the kube tests");
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

/// `helm template route charts/route -n NAMESPACE --kube-version 1.25.0 <args>`: the chart's
/// objects as a GitOps tool renders them.
pub async fn helm_template(namespace: &str, args: &[&str]) -> String {
    let helm = tokio::task::spawn_blocking(helm).await.expect("helm");
    let out = tokio::process::Command::new(helm)
        .args(["template", RELEASE, CHART, "-n", namespace, "--kube-version", CHART_KUBE_VERSION])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("helm template");
    assert!(out.status.success(), "helm template {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf8")
}

/// Writes `line` to the process's stderr, past libtest's capture of `eprintln!`.
pub fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Says, once per test binary, where the kube tests run.
fn announce(real: Option<&str>) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| match real {
        Some(path) => say(&format!("real cluster: {REAL_CLUSTER}={path}; the kube tests run against it")),
        None => say(&format!(
            "kube tests: against etcd and kube-apiserver {} started here ({REAL_CLUSTER} unset)",
            control_plane::VERSION
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
