//! `route-test-apiserver`: the test API server as a process, for trying kubectl by hand or
//! driving it from another language. Prints `listening http://127.0.0.1:PORT` and serves until
//! killed (SIGINT or SIGTERM).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use route_test_apiserver::{Config, TestApiServer};

/// An in-memory stand-in for kube-apiserver, for tests.
#[derive(Debug, Parser)]
#[command(name = "route-test-apiserver", version)]
struct Args {
    /// Write a kubeconfig for the server here.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Seconds between watch bookmarks.
    #[arg(long, default_value_t = 1.0)]
    bookmark_interval: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = Config {
        addr: args.listen,
        bookmark_interval: Duration::from_secs_f64(args.bookmark_interval.max(0.001)),
    };
    let server = TestApiServer::start_with(config).await.context("starting the server")?;
    if let Some(path) = &args.kubeconfig {
        server.write_kubeconfig(path).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("listening {}", server.url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    server.stop().await;
    Ok(())
}
