//! Load clients and upstreams for `bench/run`: what wrk cannot do (WebSocket message rates,
//! bulk frames, idle tunnels, streamed uploads) and the upstreams they talk to. Prints one JSON
//! object per measurement on stdout.

mod http_load;
mod http_rate;
mod plain_proxy;
mod ws;

use clap::Parser as _;

#[derive(Debug, clap::Parser)]
enum Cmd {
    /// WebSocket echo upstream.
    WsEcho {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// HTTP upstream that reads and counts every request body, then answers `ok`.
    Sink {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// Small-frame round trips: each connection sends a message and waits for its echo.
    WsRate {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 32)]
        conns: usize,
        #[arg(long, default_value_t = 10)]
        secs: u64,
        #[arg(long, default_value_t = 32)]
        size: usize,
    },
    /// Large frames, pipelined, echoed back: throughput.
    WsBulk {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 10)]
        secs: u64,
        #[arg(long, default_value_t = 1 << 20)]
        size: usize,
    },
    /// Opens COUNT WebSockets, reports when all are open, holds them for SECS.
    WsIdle {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        #[arg(long, default_value_t = 20)]
        secs: u64,
    },
    /// A minimal hyper reverse proxy to UPSTREAM (the floor of route's stack), one thread.
    PlainProxy {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        #[arg(long)]
        upstream: String,
        /// One upstream connection per client connection (hyper's connection API, no pool).
        #[arg(long)]
        direct: bool,
    },
    /// GET at a fixed rate (open loop): p50/p99 from when each request was due.
    HttpRate {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// Extra header, `Name: value`.
        #[arg(long)]
        header: Vec<String>,
    },
    /// Streams BYTES in a POST body (generated on the fly) and reports MiB/s.
    Upload {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 2 << 30)]
        bytes: u64,
        /// Extra header, `Name: value`.
        #[arg(long)]
        header: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cmd = Cmd::parse();
    if let Cmd::PlainProxy { listen, upstream, direct } = &cmd {
        // One thread, as route and nginx run in the comparison.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        return if *direct {
            runtime.block_on(plain_proxy::run_direct(listen, upstream))
        } else {
            runtime.block_on(plain_proxy::run(listen, upstream))
        };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match cmd {
            Cmd::WsEcho { listen } => ws::echo_server(&listen).await,
            Cmd::Sink { listen } => http_load::sink_server(&listen).await,
            Cmd::WsRate { url, conns, secs, size } => ws::rate(&url, conns, secs, size).await,
            Cmd::WsBulk { url, secs, size } => ws::bulk(&url, secs, size).await,
            Cmd::WsIdle { url, count, secs } => ws::idle(&url, count, secs).await,
            Cmd::Upload { url, bytes, header } => http_load::upload(&url, bytes, &header).await,
            Cmd::HttpRate { url, rate, secs, header } => http_rate::rate(&url, rate, secs, &header).await,
            Cmd::PlainProxy { listen, upstream, .. } => plain_proxy::run(&listen, &upstream).await,
        }
    })
}

/// Latency percentile of sorted microseconds.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
