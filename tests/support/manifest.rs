//! Manifests as one would `kubectl apply` them: the two abcdesktop key Secrets and a
//! RouteConfig, written as YAML documents into one file.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use route_mint::{KeySet, PAYLOAD_PRIVATE, SIGNING_PUBLIC};
use serde_json::{Map, Value, json};

/// A RouteConfig spec plus its key Secrets.
#[derive(Clone)]
pub struct Manifest {
    pub keys: KeySet,
    pub spec: Map<String, Value>,
    /// Further documents (a TLS Secret, ...).
    pub extra: Vec<Value>,
    /// When set, written instead of the generated YAML (an invalid edit).
    pub raw: Option<String>,
}

impl Manifest {
    /// Default settings with `keys`, every fixed service pointed at a closed port, and short
    /// timeouts suited to tests.
    pub fn new(keys: &KeySet) -> Self {
        let closed = super::closed_port();
        let spec = json!({
            "keys": {"graceSeconds": 600},
            "jwt": {"algorithms": ["RS256"], "decryption": "pkcs1v15"},
            "cache": {"ttlCapSeconds": 600, "maxEntries": 100000},
            "services": {
                "pyos": {"host": "127.0.0.1", "port": closed},
                "website": {"host": "127.0.0.1", "port": closed},
                "console": {"host": "127.0.0.1", "port": closed},
                "speedtest": {"host": "127.0.0.1", "port": closed},
            },
            "ports": {},
            "routes": [],
            "limits": {"connectTimeoutSeconds": 5, "drainSeconds": 10, "headerReadTimeoutSeconds": 30},
            "nodeName": "node-test",
        });
        let Value::Object(spec) = spec else { unreachable!() };
        Self { keys: keys.clone(), spec, extra: Vec::new(), raw: None }
    }

    /// Points a desktop route (`spawner`, `filer`, ...) at `port` of the token's target.
    pub fn port(mut self, route: &str, port: u16) -> Self {
        self.obj("ports").insert(route.to_owned(), json!(port));
        self
    }

    /// Points a fixed service (`pyos`, `website`, `console`, `speedtest`) at 127.0.0.1:`port`.
    pub fn service(mut self, name: &str, port: u16) -> Self {
        self.obj("services").insert(name.to_owned(), json!({"host": "127.0.0.1", "port": port}));
        self
    }

    /// Adds a route entry (merged by name over the built-in table).
    pub fn route(mut self, entry: Value) -> Self {
        self.spec.get_mut("routes").and_then(Value::as_array_mut).expect("routes").push(entry);
        self
    }

    /// Sets `spec.<key>` to `value` (replacing it).
    pub fn set(mut self, key: &str, value: Value) -> Self {
        self.spec.insert(key.to_owned(), value);
        self
    }

    /// Removes `spec.<key>` (the default applies).
    pub fn unset(mut self, key: &str) -> Self {
        self.spec.remove(key);
        self
    }

    /// Sets `spec.<section>.<key>` to `value`.
    pub fn set_in(mut self, section: &str, key: &str, value: Value) -> Self {
        self.obj(section).insert(key.to_owned(), value);
        self
    }

    pub fn keys(mut self, keys: &KeySet) -> Self {
        self.keys = keys.clone();
        self
    }

    pub fn grace_seconds(self, secs: u64) -> Self {
        self.set_in("keys", "graceSeconds", json!(secs))
    }

    /// An HTTPS certificate: a `kubernetes.io/tls` Secret named `route-tls`, and `spec.tls`.
    pub fn tls(mut self, cert_pem: &str, key_pem: &str) -> Self {
        self.extra.push(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "route-tls", "namespace": "abcdesktop"},
            "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": cert_pem, "tls.key": key_pem},
        }));
        self.set("tls", json!({"secretName": "route-tls"}))
    }

    /// Replaces the whole file content by `text` (an invalid edit).
    pub fn raw(mut self, text: &str) -> Self {
        self.raw = Some(text.to_owned());
        self
    }

    fn obj(&mut self, key: &str) -> &mut Map<String, Value> {
        self.spec
            .entry(key.to_owned())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .unwrap_or_else(|| panic!("spec.{key} is not an object"))
    }

    /// The documents: the signing Secret (stringData), the payload Secret (base64 data), the
    /// RouteConfig, then any extra ones.
    pub fn documents(&self) -> Vec<Value> {
        let mut docs = vec![
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "abcdesktopjwtdesktopsigning", "namespace": "abcdesktop"},
                "type": "Opaque",
                "stringData": {SIGNING_PUBLIC: self.keys.signing_public},
            }),
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "abcdesktopjwtdesktoppayload", "namespace": "abcdesktop"},
                "type": "Opaque",
                "data": {PAYLOAD_PRIVATE: STANDARD.encode(&self.keys.payload_private)},
            }),
            json!({
                "apiVersion": "route.abcdesktop.io/v1alpha1",
                "kind": "RouteConfig",
                "metadata": {"name": "route", "namespace": "abcdesktop"},
                "spec": self.spec,
            }),
        ];
        docs.extend(self.extra.iter().cloned());
        docs
    }

    pub fn to_yaml(&self) -> String {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        self.documents()
            .iter()
            .map(|doc| serde_yaml::to_string(doc).expect("yaml"))
            .collect::<Vec<_>>()
            .join("---\n")
    }

    /// Writes the file atomically (a temporary file renamed over it), as a ConfigMap update or
    /// an editor's save does.
    pub fn write_atomic(&self, path: &Path) {
        let tmp = path.with_extension("yaml.tmp");
        std::fs::write(&tmp, self.to_yaml()).expect("write manifest");
        std::fs::rename(&tmp, path).expect("rename manifest");
    }

    /// Rewrites the file in place (truncate and write), as `echo > file` does.
    pub fn write_in_place(&self, path: &Path) {
        std::fs::write(path, self.to_yaml()).expect("write manifest");
    }
}
