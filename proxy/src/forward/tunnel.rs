//! WebSocket: forward the upgrade handshake, then splice the two upgraded connections with an
//! idle timeout (a silent tunnel is closed; a busy one lives as long as it is used).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{ConnectError, ExchangeError, RequestBody};
use crate::metrics::Metrics;

/// Connects to `host:port` (a name is resolved now: pods come and go) within `timeout`.
pub async fn connect(
    host: &str,
    ip: Option<std::net::IpAddr>,
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    // A configured service may be an IP literal, IPv6 in brackets as in a URI.
    let ip = ip.or_else(|| host.trim_start_matches('[').trim_end_matches(']').parse().ok());
    let attempt = async {
        match ip {
            Some(ip) => TcpStream::connect(SocketAddr::new(ip, port)).await,
            None => TcpStream::connect((host, port)).await,
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Err(_) => Err(ConnectError::Timeout(timeout)),
        Ok(Err(err)) => Err(ConnectError::Io(err)),
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
    }
}

/// Sends the handshake on a fresh connection (tunnels are never pooled) and returns the
/// upstream's answer with its upgrade, when it agreed to one.
pub async fn handshake(
    stream: TcpStream,
    request: http::Request<RequestBody>,
    timeout: Duration,
) -> Result<(http::Response<Incoming>, Option<OnUpgrade>), ExchangeError> {
    let exchange = async {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| ExchangeError::Connect(ConnectError::Handshake(err)))?;
        tokio::spawn(async move {
            if let Err(err) = connection.with_upgrades().await {
                tracing::debug!(error = %err, "upstream WebSocket connection ended");
            }
        });
        let mut response = sender.send_request(request).await.map_err(ExchangeError::Upstream)?;
        let upgrade = (response.status() == http::StatusCode::SWITCHING_PROTOCOLS)
            .then(|| hyper::upgrade::on(&mut response));
        Ok((response, upgrade))
    };
    tokio::time::timeout(timeout, exchange).await.unwrap_or(Err(ExchangeError::Timeout))
}

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelEnd {
    Closed,
    Idle,
    Shutdown,
    Error,
}

/// Splices the client and upstream connections once both upgrades complete. Runs until one
/// side closes, nothing moves for `idle`, or `shutdown` turns true.
pub async fn splice(
    client: OnUpgrade,
    upstream: OnUpgrade,
    idle: Duration,
    mut shutdown: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) -> TunnelEnd {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(err) => {
            tracing::debug!(error = %err, "WebSocket upgrade failed");
            return TunnelEnd::Error;
        }
    };
    let epoch = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut client = Activity { io: TokioIo::new(client), last: Arc::clone(&last), epoch };
    let mut upstream = Activity { io: TokioIo::new(upstream), last: Arc::clone(&last), epoch };
    metrics.websockets_open.inc();
    let watchdog = async {
        loop {
            let last_ms = last.load(Ordering::Relaxed);
            let deadline = epoch + Duration::from_millis(last_ms) + idle;
            tokio::time::sleep_until(deadline).await;
            if last.load(Ordering::Relaxed) == last_ms {
                return;
            }
        }
    };
    let end = tokio::select! {
        result = super::splice::copy_both(&mut client, &mut upstream) => match result {
            Ok((up, down)) => {
                metrics.bytes.get_or_create(&crate::metrics::DirectionLabel { direction: crate::metrics::UPSTREAM }).inc_by(up);
                metrics.bytes.get_or_create(&crate::metrics::DirectionLabel { direction: crate::metrics::DOWNSTREAM }).inc_by(down);
                TunnelEnd::Closed
            }
            Err(err) => {
                tracing::debug!(error = %err, "WebSocket tunnel broke");
                TunnelEnd::Error
            }
        },
        () = watchdog => TunnelEnd::Idle,
        _ = shutdown.wait_for(|stop| *stop) => TunnelEnd::Shutdown,
    };
    metrics.websockets_open.dec();
    end
}

/// An upgraded connection that notes the time of its last read, for the idle watchdog.
struct Activity<T> {
    io: T,
    last: Arc<AtomicU64>,
    epoch: Instant,
}

impl<T: AsyncRead + Unpin> AsyncRead for Activity<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last.store(ms, Ordering::Relaxed);
        }
        polled
    }
}

super::write_through!(Activity);
