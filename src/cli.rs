//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use route_mint::Padding;

#[derive(Debug, clap::Parser)]
#[command(name = "route", version, about = "JWT-authenticated desktop router for abcdesktop")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format.
    #[arg(long, global = true, env = "ROUTE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax, e.g. `info,route::access=warn`); default `RUST_LOG`, then `info`.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// Log lines that may wait for standard error; past them, lines are dropped (and counted
    /// in `route_log_lines_dropped_total`) rather than slow a request.
    #[arg(long, global = true, env = "ROUTE_LOG_QUEUE_LINES", default_value_t = 16 * 1024)]
    pub log_queue_lines: usize,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the proxy. Settings come from `--manifests`, or else from the original router's
    /// environment variables (JWT_DESKTOP_SIGNING_PUBLIC_KEY, JWT_DESKTOP_PAYLOAD_PRIVATE_KEY, ...).
    Serve(ServeArgs),
    /// Run the proxy on an embedded default with fresh keys and a demo desktop, and print a
    /// request to try.
    Demo(DemoArgs),
    /// Validate manifests offline; exit non-zero with every error.
    Check {
        #[arg(long)]
        manifests: PathBuf,
    },
    /// Mint a desktop token as pyos does.
    Token(TokenArgs),
    /// Print the RouteConfig CustomResourceDefinition (YAML), generated from the Rust types;
    /// `charts/route/crds/routeconfig.yaml` holds its output.
    Crd,
    /// Write an abcdesktop key set (four PEM files).
    Keys {
        /// Folder to write into.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 2048)]
        bits: u32,
        /// Private keys as PKCS#1 (`BEGIN RSA PRIVATE KEY`, OpenSSL 1.1) instead of PKCS#8.
        #[arg(long)]
        pkcs1: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A YAML file or folder: a RouteConfig and the Secrets it names, as for `kubectl apply`.
    #[arg(long, env = "ROUTE_MANIFESTS", conflicts_with = "kube")]
    pub manifests: Option<PathBuf>,
    /// Watch a RouteConfig and the Secrets it names in the cluster (in-cluster config, or
    /// KUBECONFIG), and reload on every valid change.
    #[arg(long)]
    pub kube: bool,
    /// With --kube: the RouteConfig's name.
    #[arg(long, env = "ROUTE_CONFIG_NAME", default_value = "route", requires = "kube")]
    pub name: String,
    /// With --kube: its namespace; default the pod's (service account) namespace, else abcdesktop.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// HTTP listen address.
    #[arg(long, env = "ROUTE_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// HTTPS listen address (certificate from the RouteConfig's `tls`).
    #[arg(long, env = "ROUTE_TLS_LISTEN")]
    pub tls_listen: Option<SocketAddr>,
    /// Admin listen address: /metrics, /readyz, /healthz, kept off the public listeners.
    #[arg(long, env = "ROUTE_ADMIN_LISTEN", default_value = "0.0.0.0:9090")]
    pub admin_listen: SocketAddr,
    #[command(flatten)]
    pub server: ServerFlags,
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// HTTP listen address.
    #[arg(long, env = "ROUTE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Admin listen address (/metrics, /readyz).
    #[arg(long, env = "ROUTE_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// Folder holding the key set (abcdesktop file names).
    #[arg(long)]
    pub keys: PathBuf,
    /// The pod IP or FQDN to encrypt into the `hash` claim.
    #[arg(long)]
    pub target: String,
    /// Seconds until `exp`.
    #[arg(long, default_value_t = 420)]
    pub lifetime: u64,
    /// Absolute `exp` (Unix seconds); overrides --lifetime.
    #[arg(long)]
    pub exp: Option<u64>,
    /// Encrypt with OAEP instead of PKCS#1 v1.5.
    #[arg(long, value_enum, default_value = "none")]
    pub oaep: Oaep,
    /// Signature algorithm.
    #[arg(long, default_value = "RS256")]
    pub alg: String,
    /// Print this many tokens, one a line (each with its own randomised `hash`), for load runs.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Oaep {
    None,
    Sha1,
    Sha256,
}

impl From<Oaep> for Padding {
    fn from(oaep: Oaep) -> Self {
        match oaep {
            Oaep::None => Self::Pkcs1v15,
            Oaep::Sha1 => Self::OaepSha1,
            Oaep::Sha256 => Self::OaepSha256,
        }
    }
}

/// What a client may hold and send (`route_proxy::settings::ClientLimits`): part of every
/// settings snapshot the process publishes.
#[derive(Debug, clap::Args)]
pub struct ServerFlags {
    /// Client connections open at once, WebSocket tunnels included; more are answered 503.
    #[arg(long, env = "ROUTE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Client connections open at once from one IP address; 0: no such limit (behind an
    /// ingress or a NAT, clients share an address).
    #[arg(long, env = "ROUTE_MAX_CONNECTIONS_PER_IP", default_value_t = 0)]
    pub max_connections_per_ip: usize,
    /// Largest request head (request line and headers) in bytes; larger is answered 431.
    #[arg(long, env = "ROUTE_MAX_HEADER_BYTES", default_value_t = 32 * 1024)]
    pub max_header_bytes: usize,
    /// Most request header lines; more are answered 431.
    #[arg(long, env = "ROUTE_MAX_HEADERS", default_value_t = 100)]
    pub max_headers: usize,
    /// Longest path and query in bytes; longer is answered 414.
    #[arg(long, env = "ROUTE_MAX_URI_BYTES", default_value_t = 8 * 1024)]
    pub max_uri_bytes: usize,
    /// Seconds a request body may stay silent while the proxy waits for it; then 408.
    #[arg(long, env = "ROUTE_BODY_IDLE_TIMEOUT", default_value_t = 60)]
    pub body_idle_timeout: u64,
}

impl From<&ServerFlags> for route_proxy::settings::ClientLimits {
    fn from(flags: &ServerFlags) -> Self {
        Self {
            max_connections: flags.max_connections.max(1),
            max_connections_per_ip: flags.max_connections_per_ip,
            max_header_bytes: flags.max_header_bytes,
            max_headers: flags.max_headers,
            max_uri_bytes: flags.max_uri_bytes,
            body_idle_timeout: std::time::Duration::from_secs(flags.body_idle_timeout.max(1)),
        }
    }
}
