//! Listeners: accept, TLS, HTTP/1.1 and HTTP/2, and the drain on shutdown.
//!
//! What a client may hold of the process is bounded here, from the settings snapshot of the
//! moment ([`crate::settings::Limits`]): connections in all and per client address (a
//! connection over a limit is answered 503 and closed at once), the size and count of request
//! headers (431), the time to the first bytes and to a whole request head (the header read
//! timeout). A reload applies to the next connection accepted.

use std::convert::Infallible;
use std::future::Future;
use std::io;
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
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

mod limits;

use limits::{ClientIo, Limiter, Permit};

use crate::handler::{Connection, Handler};
use crate::metrics::WorkerLabel;
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

/// Binds a listening socket.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })
}

/// How many connections wait in each listening socket's accept queue (tokio's own default).
const BACKLOG: u32 = 1024;

/// Binds `count` listening sockets to `addr` with `SO_REUSEPORT`, one per worker runtime: the
/// kernel spreads new connections across them. With port 0 the first bind picks the port and
/// the others join it. Returned as std sockets, since a tokio listener belongs to the runtime
/// that registered it: each worker registers its own.
pub fn bind_shared(addr: SocketAddr, count: usize) -> Result<Vec<std::net::TcpListener>> {
    let failed = |source| Error::Bind { addr, source };
    let mut bound = addr;
    let mut listeners = Vec::with_capacity(count.max(1));
    for _ in 0..count.max(1) {
        let socket =
            if bound.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(failed)?;
        socket.set_reuseaddr(true).map_err(failed)?;
        socket.set_reuseport(true).map_err(failed)?;
        socket.bind(bound).map_err(failed)?;
        bound = socket.local_addr().map_err(failed)?;
        let listener = socket.listen(BACKLOG).map_err(failed)?;
        listeners.push(listener.into_std().map_err(failed)?);
    }
    Ok(listeners)
}

/// The listening sockets of one worker runtime.
pub struct WorkerSockets {
    pub http: std::net::TcpListener,
    pub https: Option<std::net::TcpListener>,
}

/// The listeners of one process and what they serve.
///
/// The data plane runs one current-thread runtime per worker thread, each accepting on its own
/// `SO_REUSEPORT` sockets: no task migrates between cores, and the kernel balances
/// connections. What the workers share is process-wide: the handler (settings, token cache,
/// upstream pool, metrics) and the connection limiter. The admin listener runs where
/// [`Server::run`] is awaited (the control plane's runtime), so probes and `/metrics` answer
/// even when every worker is saturated.
pub struct Server {
    handler: Arc<Handler>,
    settings: watch::Receiver<Arc<Settings>>,
    workers: Vec<(WorkerSockets, tokio::runtime::Runtime)>,
    tls: Option<TlsAcceptor>,
    admin: TcpListener,
    /// Turned to true when the drain is over: open tunnels close, and the workers stop.
    tunnels_stop: watch::Sender<bool>,
    limiter: Arc<Limiter>,
}

/// The connection builder of one settings generation: rebuilt when a new snapshot is served,
/// shared (cloned) by every connection accepted under it.
struct Builder {
    generation: u64,
    builder: auto::Builder<TokioExecutor>,
}

impl Builder {
    fn new(settings: &Settings) -> Self {
        let limits = &settings.limits;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true)
            .max_headers(limits.client.max_headers)
            // hyper answers 431 when a head does not fit its read buffer: the buffer's bound
            // is the head limit (and the read size of bodies, which 32 KiB serves well).
            .max_buf_size(limits.client.max_header_bytes.max(MIN_BUF));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.client.max_header_bytes).unwrap_or(u32::MAX));
        Self { generation: settings.generation, builder }
    }

    /// The builder for the settings of the moment.
    fn current(&mut self, settings: &Settings) -> &auto::Builder<TokioExecutor> {
        if settings.generation != self.generation {
            *self = Self::new(settings);
        }
        &self.builder
    }
}

/// What every worker shares, and how it learns to stop.
#[derive(Clone)]
struct Shared {
    handler: Arc<Handler>,
    settings: watch::Receiver<Arc<Settings>>,
    tls: Option<TlsAcceptor>,
    limiter: Arc<Limiter>,
    /// True once the process is to stop accepting.
    stop: watch::Receiver<bool>,
    /// True once the drain is over on every worker.
    finished: watch::Receiver<bool>,
}

impl Server {
    /// `tunnels_stop` must be the sender of the receiver the handler was built with. `workers`
    /// holds one [`WorkerSockets`] per worker runtime (all with an HTTPS socket or none).
    pub fn new(
        handler: Arc<Handler>,
        settings: watch::Receiver<Arc<Settings>>,
        workers: Vec<WorkerSockets>,
        admin: TcpListener,
        tunnels_stop: watch::Sender<bool>,
    ) -> Result<Self> {
        let tls = workers.iter().any(|w| w.https.is_some()).then(|| tls_acceptor(settings.clone()));
        let limiter = Arc::new(Limiter::new(Arc::clone(handler.metrics())));
        let workers = workers
            .into_iter()
            .map(|sockets| {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                Ok((sockets, runtime))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { handler, settings, workers, tls, admin, tunnels_stop, limiter })
    }

    /// Serves until `signal` completes, then drains: every worker stops accepting and lets its
    /// in-flight requests finish within the settings' drain deadline; once all are done the
    /// WebSocket tunnels close. The admin listener answers until the end.
    pub async fn run(self, signal: impl Future<Output = ()>) {
        let Self { handler, settings, workers, tls, admin, tunnels_stop, limiter } = self;
        let admin = AbortOnDrop(tokio::spawn(crate::admin::serve(admin, Arc::clone(&handler))));
        let (stop_tx, stop) = watch::channel(false);
        let (finished_tx, finished) = watch::channel(false);
        let shared = Shared { handler, settings, tls, limiter, stop, finished };
        let mut drained = Vec::with_capacity(workers.len());
        let mut threads = Vec::with_capacity(workers.len());
        for (worker, (sockets, runtime)) in workers.into_iter().enumerate() {
            let (done, done_rx) = tokio::sync::oneshot::channel::<()>();
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("route-worker-{worker}"))
                .spawn(move || runtime.block_on(serve_worker(worker, sockets, shared, done)));
            match spawned {
                Ok(thread) => {
                    threads.push(thread);
                    drained.push(done_rx);
                }
                Err(err) => tracing::error!(worker, error = %err, "cannot start a worker thread"),
            }
        }
        drop(shared);
        signal.await;
        let _ = stop_tx.send(true);
        // Each worker bounds its own drain by the deadline; a worker that ended early (its
        // sender dropped) counts as drained too.
        for done in drained {
            let _ = done.await;
        }
        let _ = tunnels_stop.send(true);
        let _ = finished_tx.send(true);
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        });
        let _ = joined.await;
        drop(admin);
    }
}

/// One worker: accepts on its own sockets until the stop, drains its connections, reports,
/// then keeps its runtime turning (tunnels and pooled upstream connections the other workers
/// may still use live here) until every worker is done.
async fn serve_worker(
    worker: usize,
    sockets: WorkerSockets,
    shared: Shared,
    done: tokio::sync::oneshot::Sender<()>,
) {
    let Shared { handler, settings, tls, limiter, mut stop, mut finished } = shared;
    // New tokens' RSA work runs here, between polls of this runtime's sockets.
    tokio::spawn(crate::auth::lane::install());
    let _timers = crate::forward::deadline::keep();
    let listeners = TcpListener::from_std(sockets.http).and_then(|http| {
        let https = sockets.https.map(TcpListener::from_std).transpose()?;
        Ok((http, https.zip(tls)))
    });
    let (http, https) = match listeners {
        Ok(listeners) => listeners,
        Err(err) => {
            tracing::error!(worker, error = %err, "cannot register the worker's listeners");
            return;
        }
    };
    let accepted = handler.metrics().connections_accepted.get_or_create(&WorkerLabel { worker }).clone();
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(&settings.borrow());
    loop {
        tokio::select! {
            _ = stop.wait_for(|&stop| stop) => break,
            accepted_conn = http.accept() => match accepted_conn {
                Ok((stream, peer)) => {
                    accepted.inc();
                    let current = Arc::clone(&settings.borrow());
                    match limiter.acquire(peer.ip(), &current.limits.client) {
                        Ok(permit) => {
                            let builder = builder.current(&current).clone();
                            spawn_plain(stream, peer, permit, &current, &handler, builder, &graceful);
                        }
                        Err(reason) => refuse_plain(&stream, peer, reason),
                    }
                }
                Err(err) => accept_failed(&err).await,
            },
            accepted_conn = accept_tls(https.as_ref()) => match accepted_conn {
                Ok((stream, peer, acceptor)) => {
                    accepted.inc();
                    let current = Arc::clone(&settings.borrow());
                    match limiter.acquire(peer.ip(), &current.limits.client) {
                        Ok(permit) => {
                            let builder = builder.current(&current).clone();
                            let deadline = current.limits.header_read_timeout;
                            spawn_tls(stream, peer, acceptor, permit, deadline, &handler, builder, &graceful);
                        }
                        Err(reason) => tracing::debug!(peer = %peer, reason, "connection refused"),
                    }
                }
                Err(err) => accept_failed(&err).await,
            },
        }
    }
    drop(http);
    drop(https);
    let deadline = settings.borrow().limits.drain_timeout;
    let in_flight = graceful.count();
    tracing::info!(worker, in_flight, deadline_secs = deadline.as_secs_f64(), "draining");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!(worker, "drained"),
        () = tokio::time::sleep(deadline) => tracing::warn!(worker, "drain deadline passed, closing what is left"),
    }
    let _ = done.send(());
    let _ = finished.wait_for(|&finished| finished).await;
}

/// Aborts the task when dropped: the admin listener ends with the server.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn spawn_plain(
    stream: TcpStream,
    peer: SocketAddr,
    permit: Permit,
    settings: &Settings,
    handler: &Arc<Handler>,
    builder: auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
) {
    let _ = stream.set_nodelay(true);
    let conn = Connection::new(peer, "http");
    let io = ClientIo::new(stream, permit, settings.limits.header_read_timeout);
    let served = serve(io, conn, Arc::clone(handler), builder, graceful.watcher());
    tokio::spawn(served);
}

#[allow(clippy::too_many_arguments)]
fn spawn_tls(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    permit: Permit,
    first_bytes_deadline: Duration,
    handler: &Arc<Handler>,
    builder: auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
) {
    let _ = stream.set_nodelay(true);
    let handler = Arc::clone(handler);
    let watcher = graceful.watcher();
    tokio::spawn(async move {
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                let io = ClientIo::new(tls, permit, first_bytes_deadline);
                serve(io, Connection::new(peer, "https"), handler, builder, watcher).await
            }
            Ok(Err(err)) => tracing::debug!(peer = %peer, error = %err, "TLS handshake failed"),
            Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
        }
    });
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
    handler: Arc<Handler>,
    builder: auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let metrics = Arc::clone(handler.metrics());
    metrics.connections_open.inc();
    let peer = conn.peer;
    let conn = Arc::new(conn);
    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
        let handler = Arc::clone(&handler);
        let conn = Arc::clone(&conn);
        async move { Ok::<_, Infallible>(handler.handle(request, &conn).await) }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(err) = watcher.watch(connection.into_owned()).await {
        tracing::debug!(peer = %peer, error = %err, "client connection ended with an error");
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
