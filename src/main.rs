//! `route`: the JWT-authenticated desktop router of abcdesktop. This file wires the CLI to the
//! control plane (`route-operator`) and the data plane (`route-proxy`); nothing else.

mod cli;
mod demo;
mod logging;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

/// mimalloc's thread-local free lists, not glibc's arenas: a request allocates and frees a few
/// dozen small blocks (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::Parser as _;
use route_mint::{KeySet, Minter, PrivateFormat, unix_now};
use route_operator::{ConfigError, Context, Publisher};
use route_proxy::metrics::Metrics;
use route_proxy::server::{self, Server};
use route_proxy::settings::ClientLimits;
use route_proxy::{Handler, Settings};

use crate::cli::{Cli, Command, ServeArgs};

/// Exit code of an invalid start-up configuration (EX_USAGE), before any port is bound.
const EXIT_CONFIG: u8 = 64;
/// How often file sources look for changes: a changed file serves within a second.
const POLL: Duration = Duration::from_millis(250);

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Lives to the end of main, after the runtime: every exit path writes out what is queued.
    let _logs = logging::init(cli.log_format, cli.log_level.as_deref(), cli.log_queue_lines);
    // The control plane (settings sources, publisher, admin listener, signals) is mostly idle:
    // one current-thread runtime on the main thread. The data plane gets its own runtimes,
    // one per worker thread ([`Server`]).
    let mut runtime = tokio::runtime::Builder::new_current_thread();
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("route: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Check { manifests } => check(&manifests),
            Command::Token(args) => token(args),
            Command::Keys { out, bits, pkcs1 } => keys(&out, bits, pkcs1),
            Command::Crd => crd(),
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("route: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `text` to standard output in one write, ignoring a closed stdout: nobody reading
/// (`route demo | head`, a script that stopped after the line it wanted) is no reason to stop
/// serving, and `println!` would panic on the broken pipe.
fn print_to_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}

fn context(source: String) -> Context {
    Context { node_name: std::env::var("NODE_NAME").unwrap_or_default(), source }
}

fn report(errors: &[ConfigError]) {
    for error in errors {
        eprintln!("route: {error}");
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if args.kube {
        return serve_kube(args).await;
    }
    let (ctx, initial) = match &args.manifests {
        Some(path) => {
            let ctx = context(format!("manifests:{}", path.display()));
            let loaded = route_operator::manifests::load(path, &ctx);
            (ctx, loaded)
        }
        None => {
            let ctx = context("env".into());
            let env = route_operator::legacy_env::LegacyEnv::from_env();
            let loaded = route_operator::legacy_env::load(&env, &ctx);
            (ctx, loaded)
        }
    };
    let initial = match initial {
        Ok(settings) => settings,
        Err(errors) => {
            report(&errors);
            eprintln!("route: invalid configuration ({} errors), not starting", errors.len());
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let running = Running::start(initial, Listeners::from(&args)).await?;
    let publisher = running.publisher.clone();
    match args.manifests {
        Some(path) => tokio::spawn(route_operator::manifests::watch(path, ctx, publisher, POLL)),
        None => {
            let env = route_operator::legacy_env::LegacyEnv::from_env();
            tokio::spawn(route_operator::legacy_env::watch(env, ctx, publisher, POLL))
        }
    };
    running.serve().await;
    Ok(ExitCode::SUCCESS)
}

/// `serve --kube`: settings from a RouteConfig and its Secrets in the cluster.
///
/// Only a missing or unusable kube config is a start-up error (exit 64). A RouteConfig that is
/// missing or invalid at start is not: the proxy binds, answers `/healthz`, answers `/readyz`
/// with 503 until the first valid settings arrive, and reports the problem in the status, an
/// event and the logs. Exiting would only crash-loop the pod on a bad Secret, restarting
/// nothing that could fix it, while a running replica reports the reason and picks up the fix
/// the moment it is applied.
async fn serve_kube(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let client = match route_operator::kube::client().await {
        Ok(client) => client,
        Err(err) => {
            eprintln!("route: no usable Kubernetes configuration (in-cluster or KUBECONFIG): {err:#}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let file = Path::new(route_operator::kube::NAMESPACE_FILE);
    let namespace = route_operator::kube::namespace(args.namespace.as_deref(), file);
    let config = route_operator::kube::Config::new(
        &args.name,
        &namespace,
        std::env::var("NODE_NAME").unwrap_or_default(),
        std::env::var("POD_NAME").ok().filter(|name| !name.is_empty()),
    );
    tracing::info!(namespace = %config.namespace, name = %config.name, "following the RouteConfig");
    let running = Running::start_unloaded(Listeners::from(&args)).await?;
    tokio::spawn(route_operator::kube::run(client, config, running.publisher.clone()));
    running.serve().await;
    Ok(ExitCode::SUCCESS)
}

fn crd() -> anyhow::Result<ExitCode> {
    let yaml = serde_yaml::to_string(&route_crds::crd()).context("serializing the CRD")?;
    let mut stdout = std::io::stdout().lock();
    write!(stdout, "{CRD_HEADER}{yaml}")?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The first lines of the generated CRD.
const CRD_HEADER: &str = "# Generated by `route crd` from the types in crds/src: do not edit.\n\
                          # Regenerate: cargo run -q -- crd > charts/route/crds/routeconfig.yaml\n";

/// Where to listen, and the client limits every snapshot carries.
pub(crate) struct Listeners {
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
    pub admin: SocketAddr,
    pub client: ClientLimits,
}

/// Data-plane worker runtimes: `ROUTE_WORKERS` when set to a positive number, else one per
/// core the process may use (`available_parallelism` reads the cgroup's CPU quota too).
fn worker_count() -> usize {
    std::env::var("ROUTE_WORKERS")
        .ok()
        .and_then(|w| w.parse::<usize>().ok())
        .filter(|&w| w > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
}

impl From<&ServeArgs> for Listeners {
    fn from(args: &ServeArgs) -> Self {
        Self {
            http: args.listen,
            https: args.tls_listen,
            admin: args.admin_listen,
            client: (&args.server).into(),
        }
    }
}

/// A proxy bound to its listeners, with its first settings published.
pub(crate) struct Running {
    pub publisher: Publisher,
    /// The address the admin listener bound.
    pub admin: SocketAddr,
    server: Server,
}

impl Running {
    pub async fn start(initial: Settings, listeners: Listeners) -> anyhow::Result<Self> {
        Self::launch(Some(initial), listeners).await
    }

    /// Without settings: the proxy serves builtins only, `/readyz` 503, until a source publishes.
    pub async fn start_unloaded(listeners: Listeners) -> anyhow::Result<Self> {
        Self::launch(None, listeners).await
    }

    async fn launch(initial: Option<Settings>, listeners: Listeners) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new());
        let dropped = metrics.log_lines_dropped.clone();
        logging::export_dropped(move |lines| {
            dropped.inc_by(lines);
        });
        let (tx, rx) = Settings::channel_with(listeners.client.clone());
        let publisher = Publisher::new(tx, Arc::clone(&metrics)).with_client_limits(listeners.client);
        let loaded = initial.is_some();
        if let Some(initial) = initial {
            publisher.publish(initial);
        }
        let workers = worker_count();
        let http = server::bind_shared(listeners.http, workers)?;
        let https = match listeners.https {
            Some(addr) => Some(server::bind_shared(addr, workers)?),
            None => None,
        };
        let admin = server::bind(listeners.admin).await?;
        if loaded && https.is_some() && rx.borrow().tls.is_none() {
            tracing::warn!("an HTTPS listener is configured but the settings hold no certificate (spec.tls)");
        }
        // Tests and scripts read these lines to learn the ports bound (`--listen 127.0.0.1:0`).
        let mut lines = format!("listening http {}\n", http[0].local_addr()?);
        if let Some(https) = &https {
            lines.push_str(&format!("listening https {}\n", https[0].local_addr()?));
        }
        let admin_addr = admin.local_addr()?;
        lines.push_str(&format!("listening admin {admin_addr}\n"));
        print_to_stdout(&lines);
        let (tunnels_stop, tunnels_stopped) = tokio::sync::watch::channel(false);
        let handler = Arc::new(Handler::new(rx.clone(), metrics, tunnels_stopped));
        let mut https = https.map(Vec::into_iter);
        let sockets = http
            .into_iter()
            .map(|http| server::WorkerSockets { http, https: https.as_mut().and_then(Iterator::next) })
            .collect();
        let server = Server::new(handler, rx, sockets, admin, tunnels_stop)?;
        tracing::info!(workers, "serving");
        Ok(Self { publisher, admin: admin_addr, server })
    }

    pub async fn serve(self) {
        self.server.run(shutdown_signal()).await;
        tracing::info!("stopped");
    }
}

/// SIGTERM (Kubernetes) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutting down"),
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn check(manifests: &Path) -> anyhow::Result<ExitCode> {
    let ctx = context(format!("manifests:{}", manifests.display()));
    match route_operator::manifests::check(manifests, &ctx) {
        Ok(summary) => {
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            report(&errors);
            eprintln!("route: {} errors", errors.len());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn token(args: cli::TokenArgs) -> anyhow::Result<ExitCode> {
    let keys = KeySet::read_dir(&args.keys)
        .with_context(|| format!("reading the key set in {}", args.keys.display()))?;
    let algorithm = args.alg.parse().map_err(|_| anyhow::anyhow!("unknown algorithm {}", args.alg))?;
    let minter = Minter::from_key_set(&keys)?.with_padding(args.oaep.into()).with_algorithm(algorithm);
    let now = unix_now();
    let exp = args.exp.unwrap_or(now + args.lifetime);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for _ in 0..args.count {
        writeln!(out, "{}", minter.mint(&args.target, now, exp)?)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn keys(out: &Path, bits: u32, pkcs1: bool) -> anyhow::Result<ExitCode> {
    let format = if pkcs1 { PrivateFormat::Pkcs1 } else { PrivateFormat::Pkcs8 };
    KeySet::generate(bits, format)?.write_dir(out)?;
    eprintln!("route: wrote a {bits}-bit abcdesktop key set to {}", out.display());
    Ok(ExitCode::SUCCESS)
}
