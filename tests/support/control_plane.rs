//! A real Kubernetes control plane for the tests: Debian's etcd and kube-apiserver 1.20.2
//! (built from Debian's `kubernetes` source package by `tests/k8s/build`, which runs here when
//! the binaries are missing), on free loopback ports in a temporary directory.
//!
//! The server runs with RBAC, TLS (a certificate for 127.0.0.1 made here), a token file holding
//! one admin identity (set-up and kubectl only: `route` gets a ServiceAccount token, see
//! `kube.rs`), ServiceAccount signing keys, and an audit log of every request with its verdict.
//!
//! Every process is started through `setpriv --pdeathsig KILL` from one thread that lives as
//! long as the test binary, so a test binary that crashes or is killed leaves none behind; a
//! control plane owned by one test is also stopped when dropped.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// The version `tests/k8s/build` builds.
pub const VERSION: &str = "v1.20.2";
/// The admin identity's bearer token: only the test's own kubectl uses it.
const ADMIN_TOKEN: &str = "route-tests-admin";
/// How long the server may take to answer `/readyz` (about 4 s on 2 idle cores).
const READY: Duration = Duration::from_secs(60);

/// Where the control plane binaries are cached.
pub fn bin_dir() -> PathBuf {
    let cache = std::env::var_os("ROUTE_K8S_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
        home.join(".cache/route-ci/k8s").join(VERSION)
    });
    cache.join("bin")
}

/// Runs `tests/k8s/build` unless kube-apiserver and etcd are there (once per test binary).
fn ensure_built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let have = bin_dir().join("kube-apiserver").exists() && which("etcd").is_some();
        if have {
            return;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/k8s/build");
        super::kube::say(&format!(
            "control plane: {} missing; building it with {} (minutes, once per machine)",
            bin_dir().display(),
            script.display()
        ));
        let status =
            Command::new("bash").arg(&script).stdin(Stdio::null()).status().expect("run tests/k8s/build");
        assert!(status.success(), "tests/k8s/build failed ({status}): no control plane for the kube tests");
    });
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A command for `program` under `setpriv --pdeathsig KILL`: the child gets SIGKILL when the
/// thread that forked it ends. [`spawn`] forks from a thread that lives until the process
/// exits, so the child ends with the test binary, however it ends.
fn supervised(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", "KILL", "--"]).arg(program);
    cmd
}

/// Spawns `cmd` from the one long-lived spawner thread (see [`supervised`]).
fn spawn(cmd: Command) -> Child {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("control-plane-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawner thread");
        Mutex::new(tx)
    });
    let what = format!("{:?}", cmd.get_args().nth(3));
    let (reply, answer) = mpsc::channel();
    sender.lock().unwrap().send((cmd, reply)).expect("spawner alive");
    answer.recv().expect("spawner answers").unwrap_or_else(|e| panic!("spawn {what}: {e}"))
}

fn free_port() -> u16 {
    super::closed_port()
}

/// Stops `child` with SIGTERM, then SIGKILL after 10 s.
fn stop(child: &mut Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A running etcd and kube-apiserver.
pub struct ControlPlane {
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    etcd_port: u16,
    pub port: u16,
    etcd: Mutex<Option<Child>>,
    apiserver: Mutex<Option<Child>>,
    extra: Vec<String>,
    /// The server certificate (PEM), which the kubeconfigs trust.
    pub ca_pem: String,
    /// A kubeconfig with the admin token (tests' own kubectl only).
    pub admin_kubeconfig: PathBuf,
}

impl ControlPlane {
    /// The control plane this test binary shares (its tests each take a namespace), started on
    /// first use. Never dropped: its processes end with the test binary (see [`spawn`]).
    pub fn shared() -> &'static ControlPlane {
        static SHARED: OnceLock<ControlPlane> = OnceLock::new();
        SHARED.get_or_init(|| Self::start_in(None, &[]))
    }

    /// A control plane of its own (tests that stop or compact it), stopped when dropped;
    /// `extra` are more kube-apiserver flags.
    pub fn own(extra: &[&str]) -> ControlPlane {
        let tmp = tempfile::Builder::new().prefix("route-k8s-").tempdir().expect("tempdir");
        Self::start_in(Some(tmp), extra)
    }

    fn start_in(tmp: Option<tempfile::TempDir>, extra: &[&str]) -> ControlPlane {
        ensure_built();
        let started = Instant::now();
        let (tmp, dir) = match tmp {
            Some(t) => {
                let d = t.path().to_owned();
                (Some(t), d)
            }
            None => {
                // Shared: never dropped, so named for the test binary's pid, and the directories
                // of earlier binaries that are gone are removed here.
                remove_stale_dirs();
                let d = std::env::temp_dir().join(format!("route-k8s-shared-{}", std::process::id()));
                std::fs::create_dir_all(&d).expect("control plane dir");
                (None, d)
            }
        };
        let (cert, key, _) = super::tls::self_signed();
        std::fs::write(dir.join("server.crt"), &cert).expect("write cert");
        std::fs::write(dir.join("server.key"), &key).expect("write key");
        let sa = openssl::rsa::Rsa::generate(2048).expect("rsa");
        std::fs::write(dir.join("sa.key"), sa.private_key_to_pem().expect("pem")).expect("write sa.key");
        std::fs::write(dir.join("sa.pub"), sa.public_key_to_pem().expect("pem")).expect("write sa.pub");
        std::fs::write(dir.join("tokens.csv"), format!("{ADMIN_TOKEN},admin,admin,\"system:masters\"\n"))
            .expect("write tokens.csv");
        // Every request, without bodies, with its verdict (the authorization annotations).
        std::fs::write(
            dir.join("audit-policy.yaml"),
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: Metadata\n",
        )
        .expect("write audit policy");
        let port = free_port();
        let admin_kubeconfig = dir.join("admin.kubeconfig");
        write_kubeconfig(&admin_kubeconfig, port, &cert, ADMIN_TOKEN, "default");
        let plane = ControlPlane {
            dir,
            _tmp: tmp,
            etcd_port: free_port(),
            port,
            etcd: Mutex::new(None),
            apiserver: Mutex::new(None),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            ca_pem: cert,
            admin_kubeconfig,
        };
        plane.start_etcd();
        plane.start_apiserver();
        plane.check_empty_string_default();
        super::kube::say(&format!(
            "control plane: etcd and kube-apiserver {VERSION} on 127.0.0.1:{} ready in {:.1} s ({})",
            plane.port,
            started.elapsed().as_secs_f64(),
            plane.dir.display()
        ));
        plane
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn start_etcd(&self) {
        let peer = free_port();
        let client = format!("http://127.0.0.1:{}", self.etcd_port);
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(self.dir.join("etcd.log")).expect("etcd log");
        let mut cmd = supervised("etcd");
        cmd.args(["--name", "route-tests", "--data-dir"])
            .arg(self.dir.join("etcd"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("route-tests={peer_url}")])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        *self.etcd.lock().unwrap() = Some(spawn(cmd));
        let deadline = Instant::now() + READY;
        loop {
            if http_request(self.etcd_port, "GET", "/health", None).is_some_and(|b| b.contains("true")) {
                return;
            }
            assert!(Instant::now() < deadline, "etcd not healthy within {READY:?}: {}", self.log("etcd.log"));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts kube-apiserver (again, after [`stop_apiserver`](Self::stop_apiserver)) on the same
    /// port, and waits until `/readyz` answers.
    pub fn start_apiserver(&self) {
        let d = |name: &str| self.dir.join(name).display().to_string();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("apiserver.log"))
            .expect("apiserver log");
        let mut cmd = supervised(bin_dir().join("kube-apiserver"));
        cmd.arg(format!("--etcd-servers=http://127.0.0.1:{}", self.etcd_port))
            .args(["--bind-address=127.0.0.1", &format!("--secure-port={}", self.port), "--insecure-port=0"])
            .arg(format!("--cert-dir={}", d("certs")))
            .arg(format!("--tls-cert-file={}", d("server.crt")))
            .arg(format!("--tls-private-key-file={}", d("server.key")))
            .args([
                "--service-cluster-ip-range=10.0.0.0/24",
                "--service-account-issuer=https://kubernetes.default.svc",
            ])
            .arg(format!("--service-account-key-file={}", d("sa.pub")))
            .arg(format!("--service-account-signing-key-file={}", d("sa.key")))
            .arg(format!("--token-auth-file={}", d("tokens.csv")))
            .args(["--authorization-mode=RBAC", "--endpoint-reconciler-type=none"])
            .arg(format!("--audit-policy-file={}", d("audit-policy.yaml")))
            .arg(format!("--audit-log-path={}", d("audit.log")))
            .args(["--audit-log-mode=blocking", "--audit-log-maxsize=0", "-v=1"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        *self.apiserver.lock().unwrap() = Some(spawn(cmd));
        let deadline = Instant::now() + READY;
        loop {
            let out = self.kubectl_blocking(&["get", "--raw", "/readyz"], None);
            if out.is_some_and(|o| o.trim() == "ok") {
                return;
            }
            if let Some(status) =
                self.apiserver.lock().unwrap().as_mut().and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("kube-apiserver exited with {status}: {}", self.log("apiserver.log"));
            }
            assert!(
                Instant::now() < deadline,
                "kube-apiserver not ready within {READY:?}: {}",
                self.log("apiserver.log")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops kube-apiserver (SIGTERM; etcd keeps running).
    pub fn stop_apiserver(&self) {
        if let Some(mut child) = self.apiserver.lock().unwrap().take() {
            stop(&mut child);
        }
    }

    /// Compacts etcd's history up to its current revision: a watch resumed from an older
    /// resourceVersion is then answered 410 Gone. Returns the revision.
    pub fn compact_etcd(&self) -> u64 {
        let revision = self.etcd_revision();
        let out = http_request(
            self.etcd_port,
            "POST",
            "/v3/kv/compaction",
            Some(&json!({"revision": revision.to_string(), "physical": true})),
        )
        .expect("etcd compaction");
        assert!(out.contains("header"), "etcd compaction: {out}");
        revision
    }

    /// etcd's current revision (every write to the server bumps it).
    pub fn etcd_revision(&self) -> u64 {
        let range = http_request(
            self.etcd_port,
            "POST",
            "/v3/kv/range",
            Some(&json!({"key": STANDARD.encode("\0")})),
        )
        .expect("etcd range");
        let body: Value = serde_json::from_str(&range).unwrap_or_else(|e| panic!("etcd range: {e}: {range}"));
        body["header"]["revision"].as_str().and_then(|r| r.parse().ok()).expect("revision")
    }

    /// The audit log's events (`audit.k8s.io/v1` Event objects, one per line).
    pub fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn log(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// kubectl as the admin, blocking (set-up); `None` when it fails.
    pub fn kubectl_blocking(&self, args: &[&str], stdin: Option<&str>) -> Option<String> {
        let mut child = Command::new("kubectl")
            .env("KUBECONFIG", &self.admin_kubeconfig)
            .args(args)
            .args(["--request-timeout=5s"])
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        if let Some(text) = stdin {
            child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("kubectl stdin");
        }
        let out = child.wait_with_output().expect("kubectl");
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The server must take an empty string for a string (Debian's 1.20 needs a patch of
    /// kube-openapi for that, see tests/k8s/build): the route CRD's `acmeChallengeDir` defaults
    /// to "" and route writes empty condition messages.
    fn check_empty_string_default(&self) {
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "emptychecks.tests.route.abcdesktop.io"},
            "spec": {
                "group": "tests.route.abcdesktop.io",
                "names": {"kind": "EmptyCheck", "plural": "emptychecks"},
                "scope": "Namespaced",
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"s": {"type": "string", "default": ""}, "t": {"type": "string"}},
                }}}],
            },
        });
        self.kubectl_blocking(&["apply", "-f", "-"], Some(&crd.to_string())).expect("apply the check CRD");
        self.kubectl_blocking(
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=30s",
                "crd/emptychecks.tests.route.abcdesktop.io",
            ],
            None,
        )
        .expect("the check CRD is established");
        let object = json!({
            "apiVersion": "tests.route.abcdesktop.io/v1", "kind": "EmptyCheck",
            "metadata": {"name": "empty", "namespace": "default"}, "t": "",
        });
        let mut created = None;
        for _ in 0..50 {
            created = self.kubectl_blocking(&["create", "-o", "json", "-f", "-"], Some(&object.to_string()));
            if created.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let created: Value = serde_json::from_str(&created.unwrap_or_else(|| {
            panic!(
                "kube-apiserver refuses an empty string (is kube-openapi's fix #230 missing from the build? \
                 see tests/k8s/build): {}",
                self.log("apiserver.log")
            )
        }))
        .expect("json");
        assert_eq!((created["s"].as_str(), created["t"].as_str()), (Some(""), Some("")), "{created}");
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop_apiserver();
        if let Some(mut child) = self.etcd.lock().unwrap().take() {
            stop(&mut child);
        }
    }
}

/// Removes the shared control planes' directories of test binaries that have exited.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("route-k8s-shared-").and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A kubeconfig for `127.0.0.1:port` trusting `ca_pem`, with `token`, in `namespace`.
pub fn write_kubeconfig(path: &Path, port: u16, ca_pem: &str, token: &str, namespace: &str) {
    let server = format!("https://127.0.0.1:{port}");
    write_kubeconfig_for(path, &server, ca_pem, token, namespace);
}

pub fn write_kubeconfig_for(path: &Path, server: &str, ca_pem: &str, token: &str, namespace: &str) {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "tests", "cluster": {
            "server": server,
            "certificate-authority-data": STANDARD.encode(ca_pem),
        }}],
        "users": [{"name": "tests", "user": {"token": token}}],
        "contexts": [{"name": "tests", "context": {"cluster": "tests", "user": "tests", "namespace": namespace}}],
        "current-context": "tests",
    });
    std::fs::write(path, serde_json::to_string_pretty(&config).expect("json")).expect("write kubeconfig");
}

/// A plain HTTP/1.0 request to etcd on loopback; the body of a 200, else `None`.
fn http_request(port: u16, method: &str, path: &str, body: Option<&Value>) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.split_whitespace().nth(1).is_some_and(|code| code == "200").then(|| body.to_owned())
}
