//! Listeners: accept, TLS, HTTP/1.1 and HTTP/2, and the drain on shutdown.
//!
//! What a client may hold of the process is bounded here ([`ServerOptions`]): connections in
//! all and per client address (a connection over a limit is answered 503 and closed at once),
//! the size and count of request headers (431), the request line (414, by [`crate::guard`]),
//! the time to the first bytes and to a whole request head (the settings' header read
//! timeout), and the silence of a request body (408).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;

use crate::guard::GuardLimits;
use crate::metrics::{Metrics, ReasonLabel};
use crate::service::{Connection, Proxy};
use crate::settings::Settings;
use crate::{Error, Result};

/// How long a client may take to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The length of the HTTP/2 connection preface: until that many bytes arrived, the protocol is
/// not known and no HTTP timer runs, so the first-bytes deadline covers them.
const PREFACE_LEN: usize = 24;

/// How long the accept loop pauses after an accept error (out of file descriptors, mostly),
/// instead of spinning on it.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The smallest read buffer hyper accepts.
const MIN_BUF: usize = 8192;

/// Process-level limits of the listeners. They are not part of the settings snapshot: they
/// shape sockets and parsers, and come from `route serve` flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Client connections open at once, over every listener (WebSocket tunnels included).
    pub max_connections: usize,
    /// Client connections open at once from one IP address; 0 for no such limit (the default:
    /// behind an ingress or a NAT, every client shares an address).
    pub max_connections_per_ip: usize,
    /// Largest request head (request line and headers), in bytes: over it, 431. HTTP/2 header
    /// lists are bounded the same.
    pub max_header_bytes: usize,
    /// Most request header lines: over it, 431.
    pub max_headers: usize,
    /// Longest path and query, in bytes: over it, 414.
    pub max_uri_bytes: usize,
    /// Longest silence of a request body while the proxy waits for it: past it, 408.
    pub body_idle_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_ip: 0,
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            max_uri_bytes: crate::guard::DEFAULT_MAX_URI_BYTES,
            body_idle_timeout: crate::forward::body::DEFAULT_CLIENT_BODY_IDLE,
        }
    }
}

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
    options: ServerOptions,
    limiter: Arc<Limiter>,
}

impl Server {
    /// `tunnels_stop` must be the sender of the receiver the proxy was built with.
    pub fn new(
        proxy: Arc<Proxy>,
        settings: watch::Receiver<Arc<Settings>>,
        http: TcpListener,
        https: Option<TcpListener>,
        tunnels_stop: watch::Sender<bool>,
        options: ServerOptions,
    ) -> Self {
        let https = https.map(|listener| (listener, tls_acceptor(settings.clone())));
        crate::forward::body::set_client_body_idle_timeout(options.body_idle_timeout);
        let limiter = Arc::new(Limiter::new(&options, Arc::clone(proxy.metrics())));
        Self { proxy, settings, http, https, tunnels_stop, options, limiter }
    }

    /// Serves until `signal` completes, then drains: stops accepting, lets in-flight requests
    /// finish within the settings' drain deadline, then closes the WebSocket tunnels.
    pub async fn run(self, signal: impl Future<Output = ()>) {
        let graceful = GracefulShutdown::new();
        let header_read_timeout = self.settings.borrow().limits.header_read_timeout;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .keep_alive(true)
            .max_headers(self.options.max_headers)
            // hyper answers 431 when a head does not fit its read buffer: the buffer's bound
            // is the head limit (and the read size of bodies, which 32 KiB serves well).
            .max_buf_size(self.options.max_header_bytes.max(MIN_BUF));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(self.options.max_header_bytes).unwrap_or(u32::MAX));
        tokio::pin!(signal);
        loop {
            tokio::select! {
                () = &mut signal => break,
                accepted = self.http.accept() => match accepted {
                    Ok((stream, peer)) => match self.limiter.acquire(peer.ip()) {
                        Ok(permit) => self.spawn_plain(stream, peer, permit, &builder, &graceful),
                        Err(reason) => refuse_plain(&stream, peer, reason),
                    },
                    Err(err) => accept_failed(&err).await,
                },
                accepted = accept_tls(self.https.as_ref()) => match accepted {
                    Ok((stream, peer, acceptor)) => match self.limiter.acquire(peer.ip()) {
                        Ok(permit) => self.spawn_tls(stream, peer, acceptor, permit, &builder, &graceful),
                        Err(reason) => tracing::debug!(peer = %peer, reason, "connection refused"),
                    },
                    Err(err) => accept_failed(&err).await,
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

    fn first_bytes_deadline(&self) -> Duration {
        self.settings.borrow().limits.header_read_timeout
    }

    fn guard_limits(&self) -> GuardLimits {
        GuardLimits { max_uri_bytes: self.options.max_uri_bytes }
    }

    fn spawn_plain(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        permit: Permit,
        builder: &auto::Builder<TokioExecutor>,
        graceful: &GracefulShutdown,
    ) {
        let _ = stream.set_nodelay(true);
        let conn = Connection::new(peer, "http", self.guard_limits());
        let io = ClientIo::new(stream, permit, self.first_bytes_deadline());
        let served = serve(io, conn, Arc::clone(&self.proxy), builder.clone(), graceful.watcher());
        tokio::spawn(served);
    }

    fn spawn_tls(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        acceptor: TlsAcceptor,
        permit: Permit,
        builder: &auto::Builder<TokioExecutor>,
        graceful: &GracefulShutdown,
    ) {
        let _ = stream.set_nodelay(true);
        let proxy = Arc::clone(&self.proxy);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let deadline = self.first_bytes_deadline();
        let limits = self.guard_limits();
        tokio::spawn(async move {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let io = ClientIo::new(tls, permit, deadline);
                    serve(io, Connection::new(peer, "https", limits), proxy, builder, watcher).await
                }
                Ok(Err(err)) => tracing::debug!(peer = %peer, error = %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
            }
        });
    }
}

async fn accept_tls(
    https: Option<&(TcpListener, TlsAcceptor)>,
) -> io::Result<(TcpStream, SocketAddr, TlsAcceptor)> {
    match https {
        Some((listener, acceptor)) => listener.accept().await.map(|(s, p)| (s, p, acceptor.clone())),
        None => std::future::pending().await,
    }
}

/// An accept error (EMFILE, ENFILE, ENOBUFS) persists until connections close: pause rather
/// than spin on it.
async fn accept_failed(err: &io::Error) {
    tracing::warn!(error = %err, "accept failed; pausing the listener");
    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
}

/// The answer to a connection over a limit, written without waiting (a fresh socket's send
/// buffer has room for it), then the socket is closed.
fn refuse_plain(stream: &TcpStream, peer: SocketAddr, reason: &'static str) {
    const ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 29\r\nRetry-After: 1\r\nX-Frame-Options: SAMEORIGIN\r\nConnection: close\r\n\r\n503 too many open connections\n";
    let _ = stream.try_write(ANSWER);
    tracing::debug!(peer = %peer, reason, "connection refused");
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
    let peer = conn.peer;
    let conn = Arc::new(conn);
    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
        let proxy = Arc::clone(&proxy);
        let conn = Arc::clone(&conn);
        async move { Ok::<_, Infallible>(proxy.handle(request, &conn).await) }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(err) = watcher.watch(connection.into_owned()).await {
        tracing::debug!(peer = %peer, error = %err, "client connection ended with an error");
    }
    metrics.connections_open.dec();
}

/// Open client connections, in all and per address.
struct Limiter {
    max_total: usize,
    max_per_ip: usize,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    metrics: Arc<Metrics>,
}

impl Limiter {
    fn new(options: &ServerOptions, metrics: Arc<Metrics>) -> Self {
        Self {
            max_total: options.max_connections,
            max_per_ip: options.max_connections_per_ip,
            total: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// A permit for one more connection from `ip`, or the name of the limit it would pass.
    fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, &'static str> {
        let ip = ip.to_canonical();
        let refuse = |reason: &'static str| {
            self.metrics.connections_refused.get_or_create(&ReasonLabel { reason }).inc();
            Err(reason)
        };
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return refuse("total");
        }
        if self.max_per_ip > 0 {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let count = per_ip.entry(ip).or_insert(0);
            if *count >= self.max_per_ip {
                drop(per_ip);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return refuse("per_ip");
            }
            *count += 1;
        }
        Ok(Permit { limiter: Arc::clone(self), ip })
    }

    fn release(&self, ip: IpAddr) {
        if self.max_per_ip > 0 {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(count) = per_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
        self.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One counted connection; released when the socket is dropped (for a WebSocket, when the
/// tunnel ends: the permit travels with the I/O into the upgrade).
struct Permit {
    limiter: Arc<Limiter>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.release(self.ip);
    }
}

/// A client socket with its permit, and a deadline for its first bytes: until the protocol is
/// known (the first [`PREFACE_LEN`] bytes, or fewer when they already rule out HTTP/2) no
/// HTTP timer runs, so a client that connects and stays silent would hold the socket forever.
struct ClientIo<I> {
    io: I,
    _permit: Permit,
    first_bytes: Option<(Pin<Box<Sleep>>, usize)>,
}

impl<I> ClientIo<I> {
    fn new(io: I, permit: Permit, deadline: Duration) -> Self {
        Self { io, _permit: permit, first_bytes: Some((Box::pin(tokio::time::sleep(deadline)), 0)) }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ClientIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Some((timer, seen)) = this.first_bytes.as_mut() {
            match &polled {
                Poll::Ready(Ok(())) => {
                    let new = &buf.filled()[before..];
                    // Not `P`: not the HTTP/2 preface, so HTTP/1 takes over at once, and its
                    // header read timeout covers the request head from here.
                    let not_h2 = *seen == 0 && new.first().is_some_and(|&b| b != b'P');
                    *seen += new.len();
                    if not_h2 || *seen >= PREFACE_LEN {
                        this.first_bytes = None;
                    }
                }
                Poll::Pending => {
                    if timer.as_mut().poll(cx).is_ready() {
                        this.first_bytes = None;
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no request within the header read timeout",
                        )));
                    }
                }
                Poll::Ready(Err(_)) => {}
            }
        }
        polled
    }
}

crate::forward::write_through!(ClientIo);

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
