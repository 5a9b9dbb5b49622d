//! The real `route` binary as a child process: started with `--listen 127.0.0.1:0`,
//! `--admin-listen 127.0.0.1:0` and `--log-format json`, its ports read from the
//! `listening http|https|admin ADDR` lines on stdout, its stderr captured. Killed on drop.
//!
//! Every request sent through [`Proxy::send`] (and every WebSocket handshake through
//! [`Proxy::ws`]) is remembered. When the proxy is finished or dropped it asserts that:
//! - no token the test used (registered with [`Proxy::secret`] or minted with
//!   [`Proxy::mint`]) appears in any log line, whole or as its claims+signature tail;
//! - the proxy logged one access line per request, with the method, the path (tokens
//!   redacted: any text may stand where the token was), and the status (matching in
//!   [`super::access_log`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use route_mint::KeySet;
use serde_json::Value;

pub use super::access_log::path_matches;
use super::access_log::{Access, Expected, match_access, needles};
use super::capture::{capture, capture_into};
use super::client::{self, Body, Req, Resp};
use super::eventually;
use super::manifest::Manifest;
use super::ws::{self, Handshake};

mod builder;

pub use builder::{Builder, Exited, run};

pub const BIN: &str = env!("CARGO_BIN_EXE_route");

/// How long the checks at the end wait for access lines to be written.
const ACCESS_LOG_WAIT: Duration = Duration::from_secs(3);

/// A running `route serve`.
pub struct Proxy {
    child: Child,
    http: Option<SocketAddr>,
    https: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    dir: tempfile::TempDir,
    manifest_path: Option<PathBuf>,
    keys: Option<KeySet>,
    stdout: Arc<Mutex<String>>,
    logs: Arc<Mutex<String>>,
    /// Standard error while nobody reads it ([`Builder::hold_stderr`]).
    held: Option<std::process::ChildStderr>,
    secrets: Mutex<Vec<String>>,
    expected: Mutex<Vec<Expected>>,
    client: Client<HttpConnector, Body>,
    check_access: bool,
    exit: Option<ExitStatus>,
    done: bool,
}

impl Proxy {
    /// `route serve --manifests <file>` with `m`.
    pub async fn start(m: &Manifest) -> Self {
        Self::builder().manifest(m).start().await
    }

    pub fn addr(&self) -> SocketAddr {
        self.http.expect("http listener")
    }

    pub fn https_addr(&self) -> SocketAddr {
        self.https.expect("https listener")
    }

    /// The admin listener: `/metrics`, `/readyz`, `/healthz`.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.expect("admin listener")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Registers a token (or any credential) that must never appear in the logs.
    pub fn secret(&self, token: &str) -> String {
        self.secrets.lock().unwrap().push(token.to_owned());
        token.to_owned()
    }

    /// A token for `target` with the manifest's keys (420 s), registered as a secret.
    pub fn mint(&self, target: &str) -> String {
        let keys = self.keys.as_ref().expect("proxy started without a manifest: no keys");
        self.secret(&super::mint_with(keys, target, 420))
    }

    /// Remembers a request made outside [`Proxy::send`], to find in the access log.
    pub fn expect_access(&self, method: &str, path: &str, status: u16) {
        self.expected.lock().unwrap().push(Expected {
            method: method.to_owned(),
            path: path.to_owned(),
            status,
        });
    }

    /// Sends a request; `Err` is a transport failure (nothing answered).
    pub async fn try_send(&self, req: Req) -> Result<Resp, String> {
        let (method, path) = (req.method.to_string(), req.path.clone());
        let resp = client::send(&self.client, self.addr(), req).await?;
        self.expect_access(&method, &path, resp.status.as_u16());
        Ok(resp)
    }

    /// Sends a request and reads the whole response.
    pub async fn send(&self, req: Req) -> Resp {
        let path = req.path.clone();
        match self.try_send(req).await {
            Ok(resp) => resp,
            Err(e) => panic!("request {} got no response: {e}", self.redact(&path)),
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Req::get(path)).await
    }

    /// `GET path` on the admin listener (no access line is written there).
    pub async fn admin_get(&self, path: &str) -> Resp {
        match client::send(&self.client, self.admin_addr(), Req::get(path)).await {
            Ok(resp) => resp,
            Err(e) => panic!("admin {path} got no response: {e}"),
        }
    }

    /// `GET /metrics` on the admin listener, as text.
    pub async fn metrics(&self) -> String {
        let resp = self.admin_get("/metrics").await;
        assert_eq!(resp.status, StatusCode::OK, "/metrics: {}", resp.text());
        resp.text()
    }

    /// A WebSocket handshake through the proxy.
    pub async fn ws(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Handshake {
        let outcome = ws::connect(self.addr(), path_and_query, headers).await;
        let status = match &outcome {
            Handshake::Open(..) => 101,
            Handshake::Refused(status) => status.as_u16(),
        };
        self.expect_access("GET", path_and_query, status);
        outcome
    }

    /// The manifest file the proxy was started with.
    pub fn manifest_path(&self) -> &Path {
        self.manifest_path.as_deref().expect("proxy started without a manifest")
    }

    /// Replaces the manifest file atomically with `m`; tokens minted later use `m`'s keys.
    pub fn update(&mut self, m: &Manifest) {
        m.write_atomic(self.manifest_path());
        self.keys = Some(m.keys.clone());
    }

    /// Starts reading a held standard error ([`Builder::hold_stderr`]): at full speed, or at
    /// most `bytes` every `every`.
    pub fn read_logs(&mut self, pace: Option<(usize, Duration)>) {
        let pipe = self.held.take().expect("standard error is not held");
        capture_into(pipe, pace, Arc::clone(&self.logs));
    }

    /// Everything the proxy wrote to stderr so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// The log lines that are JSON objects.
    pub fn log_lines(&self) -> Vec<Value> {
        self.logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// The logs with every registered secret replaced by `<TOKEN>`, safe to print.
    pub fn logs_redacted(&self) -> String {
        self.redact(&self.logs())
    }

    fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in self.secrets.lock().unwrap().iter() {
            for needle in needles(secret) {
                text = text.replace(&needle, "<TOKEN>");
            }
        }
        text
    }

    /// Peak resident set size (VmHWM) of the proxy, in KiB.
    pub fn vm_hwm_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid()).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("kill -TERM");
    }

    /// Waits for the process to exit, at most `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let child = &mut self.child;
        let status = eventually(limit, "route exits", || {
            let status = child.try_wait().expect("try_wait");
            async move { status }
        })
        .await;
        self.exit = Some(status);
        status
    }

    /// Ends the test's use of the proxy: checks the logs (see the module doc) and kills it.
    pub fn finish(mut self) {
        self.check();
    }

    fn check(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let unmatched = self.wait_for_access_lines();
        self.stop();
        // Leaked tokens, checked after the process is gone so that every line is in.
        let logs = self.logs();
        let secrets = self.secrets.lock().unwrap().clone();
        let leaks: Vec<String> = logs
            .lines()
            .filter(|line| secrets.iter().any(|s| needles(s).iter().any(|n| line.contains(n.as_str()))))
            .map(|line| self.redact(line))
            .collect();
        assert!(
            leaks.is_empty(),
            "tokens appear in {} log line(s) (shown redacted):\n{}",
            leaks.len(),
            leaks.join("\n")
        );
        if !unmatched.is_empty() {
            let missing: Vec<String> = unmatched
                .iter()
                .map(|e| format!("{} {} -> {}", e.method, self.redact(&e.path), e.status))
                .collect();
            panic!(
                "no access line for {} request(s):\n{}\nlogs (redacted):\n{}",
                missing.len(),
                missing.join("\n"),
                tail(&self.logs_redacted(), 60)
            );
        }
    }

    /// Waits until every expected request has its own access line; returns the ones without.
    fn wait_for_access_lines(&self) -> Vec<Expected> {
        let expected = self.expected.lock().unwrap().clone();
        if !self.check_access || expected.is_empty() {
            return Vec::new();
        }
        let secrets = self.secrets.lock().unwrap().clone();
        let deadline = Instant::now() + ACCESS_LOG_WAIT;
        loop {
            let access: Vec<Access> = self.log_lines().iter().filter_map(Access::from_line).collect();
            let unmatched = match_access(&expected, &access, &secrets);
            if unmatched.is_empty() || Instant::now() >= deadline || self.exit.is_some() {
                return unmatched;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if self.exit.is_none() {
            if matches!(self.child.try_wait(), Ok(None)) {
                let _ = self.child.kill();
            }
            self.exit = self.child.wait().ok();
        }
        // Let the capture threads read what is left in the pipes.
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut last = usize::MAX;
        while Instant::now() < deadline {
            let len = self.logs.lock().unwrap().len();
            if len == last {
                break;
            }
            last = len;
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.done = true;
            self.stop();
            return;
        }
        self.check();
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
