//! Listeners: accept, TLS, HTTP/1.1 and HTTP/2, and the drain on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::service::{Connection, Proxy};
use crate::settings::Settings;
use crate::{Error, Result};

/// How long a client may take to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds a listening socket.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })
}

/// The listeners of one process and what they serve.
pub struct Server {
    proxy: Arc<Proxy>,
    settings: watch::Receiver<Arc<Settings>>,
    http: TcpListener,
    https: Option<(TcpListener, TlsAcceptor)>,
    /// Turned to true when the drain is over: open tunnels close.
    tunnels_stop: watch::Sender<bool>,
}

impl Server {
    /// `tunnels_stop` must be the sender of the receiver the proxy was built with.
    pub fn new(
        proxy: Arc<Proxy>,
        settings: watch::Receiver<Arc<Settings>>,
        http: TcpListener,
        https: Option<TcpListener>,
        tunnels_stop: watch::Sender<bool>,
    ) -> Self {
        let https = https.map(|listener| (listener, tls_acceptor(settings.clone())));
        Self { proxy, settings, http, https, tunnels_stop }
    }

    /// Serves until `signal` completes, then drains: stops accepting, lets in-flight requests
    /// finish within the settings' drain deadline, then closes the WebSocket tunnels.
    pub async fn run(self, signal: impl Future<Output = ()>) {
        let graceful = GracefulShutdown::new();
        let header_read_timeout = self.settings.borrow().limits.header_read_timeout;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).header_read_timeout(header_read_timeout).keep_alive(true);
        builder.http2().timer(TokioTimer::new());
        tokio::pin!(signal);
        loop {
            tokio::select! {
                () = &mut signal => break,
                accepted = self.http.accept() => if let Ok((stream, peer)) = accepted {
                    self.spawn_plain(stream, peer, &builder, &graceful);
                },
                accepted = accept_tls(self.https.as_ref()) => if let Some((stream, peer, acceptor)) = accepted {
                    self.spawn_tls(stream, peer, acceptor, &builder, &graceful);
                },
            }
        }
        drop(self.http);
        drop(self.https);
        let deadline = self.settings.borrow().limits.drain_timeout;
        let in_flight = graceful.count();
        tracing::info!(in_flight, deadline_secs = deadline.as_secs_f64(), "draining");
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("drained"),
            () = tokio::time::sleep(deadline) => tracing::warn!("drain deadline passed, closing what is left"),
        }
        let _ = self.tunnels_stop.send(true);
    }

    fn spawn_plain(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        builder: &auto::Builder<TokioExecutor>,
        graceful: &GracefulShutdown,
    ) {
        let _ = stream.set_nodelay(true);
        let conn = Connection { peer, scheme: "http" };
        let served = serve(stream, conn, Arc::clone(&self.proxy), builder.clone(), graceful.watcher());
        tokio::spawn(served);
    }

    fn spawn_tls(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        acceptor: TlsAcceptor,
        builder: &auto::Builder<TokioExecutor>,
        graceful: &GracefulShutdown,
    ) {
        let _ = stream.set_nodelay(true);
        let proxy = Arc::clone(&self.proxy);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    serve(tls, Connection { peer, scheme: "https" }, proxy, builder, watcher).await
                }
                Ok(Err(err)) => tracing::debug!(peer = %peer, error = %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
            }
        });
    }
}

async fn accept_tls(
    https: Option<&(TcpListener, TlsAcceptor)>,
) -> Option<(TcpStream, SocketAddr, TlsAcceptor)> {
    match https {
        Some((listener, acceptor)) => listener.accept().await.ok().map(|(s, p)| (s, p, acceptor.clone())),
        None => std::future::pending().await,
    }
}

async fn serve<I>(
    io: I,
    conn: Connection,
    proxy: Arc<Proxy>,
    builder: auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let metrics = Arc::clone(proxy.metrics());
    metrics.connections_open.inc();
    let service = service_fn(move |request| {
        let proxy = Arc::clone(&proxy);
        async move { Ok::<_, Infallible>(proxy.handle(request, conn).await) }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(err) = watcher.watch(connection.into_owned()).await {
        tracing::debug!(peer = %conn.peer, error = %err, "client connection ended with an error");
    }
    metrics.connections_open.dec();
}

/// TLS 1.2 and 1.3, ALPN h2 and http/1.1, and the certificate of the current settings at
/// every handshake: a renewed certificate is served without a restart.
fn tls_acceptor(settings: watch::Receiver<Arc<Settings>>) -> TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map(|builder| builder.with_no_client_auth().with_cert_resolver(Arc::new(CurrentCert { settings })));
    let mut config = match config {
        Ok(config) => config,
        // The ring provider supports both versions; this cannot fail at run time.
        Err(err) => unreachable!("TLS versions unsupported by ring: {err}"),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}

#[derive(Debug)]
struct CurrentCert {
    settings: watch::Receiver<Arc<Settings>>,
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.settings.borrow().tls.clone()
    }
}
