//! How the binary is started: [`Builder`] for `route serve`, [`run`] for its other commands.

use super::*;

/// How to start the binary.
pub struct Builder {
    manifest: Option<Manifest>,
    /// Pass the folder holding the manifest instead of the file.
    folder: bool,
    env: Vec<(String, String)>,
    args: Vec<String>,
    log_level: String,
    text_logs: bool,
    tls: bool,
    check_access: bool,
    keys: Option<KeySet>,
    hold_stderr: bool,
}

impl Builder {
    /// The keys [`Proxy::mint`] uses when no manifest gives them (legacy env mode).
    pub fn keys(mut self, keys: &KeySet) -> Self {
        self.keys = Some(keys.clone());
        self
    }

    pub fn manifest(mut self, m: &Manifest) -> Self {
        self.manifest = Some(m.clone());
        self
    }

    /// `--manifests <folder>` instead of `--manifests <file>`.
    pub fn folder(mut self) -> Self {
        self.folder = true;
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    pub fn log_level(mut self, filter: &str) -> Self {
        filter.clone_into(&mut self.log_level);
        self
    }

    /// Also listen for HTTPS (`--tls-listen 127.0.0.1:0`).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// `--log-format text` (the default format) instead of JSON. The access-line check reads
    /// JSON, so it is skipped; the token-leak check reads raw lines and still runs.
    pub fn text_logs(mut self) -> Self {
        self.text_logs = true;
        self.check_access = false;
        self
    }

    /// Leave standard error unread (a stalled log collector) until [`Proxy::read_logs`]; the
    /// access-line check is skipped (lines are dropped by design).
    pub fn hold_stderr(mut self) -> Self {
        self.hold_stderr = true;
        self.check_access = false;
        self
    }

    /// Skip the access-line check (tests that kill the process in ways that lose its logs).
    pub fn no_access_check(mut self) -> Self {
        self.check_access = false;
        self
    }

    fn command(&self, dir: &Path) -> (Command, Option<PathBuf>) {
        let mut cmd = Command::new(BIN);
        cmd.env_clear();
        if let Ok(path) = std::env::var("PATH") {
            cmd.env("PATH", path);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.arg("serve");
        let mut manifest_path = None;
        if let Some(m) = &self.manifest {
            let folder = dir.join("manifests");
            std::fs::create_dir_all(&folder).expect("manifests folder");
            let file = folder.join("route.yaml");
            m.write_atomic(&file);
            cmd.arg("--manifests").arg(if self.folder { &folder } else { &file });
            manifest_path = Some(file);
        }
        let format = if self.text_logs { "text" } else { "json" };
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--log-format",
            format,
            "--log-level",
            &self.log_level,
        ]);
        if self.tls {
            cmd.args(["--tls-listen", "127.0.0.1:0"]);
        }
        cmd.args(&self.args);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        (cmd, manifest_path)
    }

    /// Starts the binary and waits for its listening lines.
    pub async fn start(self) -> Proxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut cmd, manifest_path) = self.command(dir.path());
        let mut child = cmd.spawn().expect("spawn route");
        let stdout = capture(child.stdout.take().expect("stdout"), None);
        let stderr = child.stderr.take().expect("stderr");
        let (logs, held) = if self.hold_stderr {
            (Arc::new(Mutex::new(String::new())), Some(stderr))
        } else {
            (capture(stderr, None), None)
        };
        let keys = self.manifest.as_ref().map(|m| m.keys.clone()).or_else(|| self.keys.clone());
        let mut proxy = Proxy {
            child,
            http: None,
            https: None,
            admin: None,
            dir,
            manifest_path,
            keys,
            stdout,
            logs,
            held,
            secrets: Mutex::new(Vec::new()),
            expected: Mutex::new(Vec::new()),
            client: client::http_client(),
            check_access: self.check_access,
            exit: None,
            done: false,
        };
        let wanted = if self.tls { 3 } else { 2 };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = proxy.stdout.lock().unwrap().clone();
            let listening: Vec<(&str, SocketAddr)> = out
                .lines()
                .filter_map(|l| {
                    let mut words = l.split_whitespace();
                    (words.next() == Some("listening"))
                        .then(|| Some((words.next()?, words.next()?.parse().ok()?)))
                        .flatten()
                })
                .collect();
            if listening.len() >= wanted {
                for (scheme, addr) in listening {
                    match scheme {
                        "http" => proxy.http = Some(addr),
                        "https" => proxy.https = Some(addr),
                        "admin" => proxy.admin = Some(addr),
                        other => panic!("unknown listener {other:?} in {out:?}"),
                    }
                }
                assert!(proxy.http.is_some(), "no `listening http` line: {out:?}");
                assert!(proxy.admin.is_some(), "no `listening admin` line: {out:?}");
                return proxy;
            }
            if let Some(status) = proxy.child.try_wait().expect("try_wait") {
                proxy.exit = Some(status);
                proxy.done = true;
                panic!(
                    "route exited with {status} before listening; stdout: {out:?}; stderr:\n{}",
                    proxy.logs_redacted()
                );
            }
            assert!(
                Instant::now() < deadline,
                "route did not print its listening lines within 30 s; stdout: {out:?}; stderr:\n{}",
                proxy.logs_redacted()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the binary and waits for it to exit (a start-up failure), at most 30 s.
    pub async fn start_expect_exit(self) -> Exited {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cmd, _) = self.command(dir.path());
        Exited::of(tokio::process::Command::from(cmd), Duration::from_secs(30)).await
    }
}

/// A finished `route` process.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Exited {
    /// Runs `cmd` to its end, at most `limit` (killed past it).
    async fn of(mut cmd: tokio::process::Command, limit: Duration) -> Self {
        cmd.kill_on_drop(true);
        let output = super::super::within(limit, "route exits", cmd.output()).await.expect("run route");
        Self {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs `route <args>` with a clean environment plus `env`, at most 60 s.
pub async fn run(args: &[&str], env: &[(&str, &str)]) -> Exited {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    cmd.envs(env.iter().copied()).args(args).stdin(Stdio::null());
    Exited::of(cmd, Duration::from_secs(60)).await
}

impl Proxy {
    pub fn builder() -> Builder {
        Builder {
            manifest: None,
            folder: false,
            env: Vec::new(),
            args: Vec::new(),
            log_level: "info".into(),
            text_logs: false,
            tls: false,
            check_access: true,
            keys: None,
            hold_stderr: false,
        }
    }
}
