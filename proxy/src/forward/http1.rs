//! Pooled keep-alive HTTP/1.1 to upstreams, on hyper's connection API.
//!
//! Not hyper-util's pooled client, which spawns a task per response to put its connection
//! back (why: docs/performance.md). Here a connection goes back to the pool when the response
//! body that used it has ended (the body holds its [`Lease`]), and a request that a reused
//! connection did not start (it had been closed by the upstream meanwhile) is sent again on a
//! fresh one. So is a bodiless idempotent request that a reused connection lost before any
//! answer: an upstream closes an idle connection when its keep-alive timeout fires (5 s in
//! Node and uvicorn, 75 s in nginx), and one that fires just as route reuses the connection
//! resets the request in flight. nginx retries those too.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use prometheus_client::metrics::counter::Counter;

use super::deadline::Deadline;
use super::{ConnectError, ExchangeError, RequestBody, classify, tunnel};
use crate::metrics::{Metrics, ReasonLabel};

/// How long an idle connection stays pooled.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Idle connections kept per upstream; more are closed.
const MAX_IDLE_PER_UPSTREAM: usize = 256;

/// How often idle connections past their timeout are closed (and dead ones dropped): an idle
/// connection holds a descriptor here and a slot on the upstream.
const SWEEP_INTERVAL: Duration = Duration::from_secs(15);

/// How long a pooled connection must have been idle for a request on it to be kept for a
/// replay: upstreams' keep-alive timeouts are whole seconds.
const REPLAY_AFTER_IDLE: Duration = Duration::from_millis(100);

type Key = (Arc<str>, u16);

/// A few upstreams (host, port) a process: a seeded foldhash, cheaper than SipHash on the two
/// lookups of every request.
type Hasher = foldhash::fast::RandomState;

struct Idle {
    sender: SendRequest<RequestBody>,
    since: Instant,
}

impl Idle {
    fn usable(&self, now: Instant) -> bool {
        !self.sender.is_closed() && now.saturating_duration_since(self.since) < IDLE_TIMEOUT
    }
}

#[derive(Default)]
struct Pool {
    idle: Mutex<HashMap<Key, Vec<Idle>, Hasher>>,
    /// Set once the sweeper task runs (started by the first exchange, inside the runtime).
    sweeping: AtomicBool,
    /// Requests sent again: not started on a reused connection, or lost by one.
    resent_unsent: Counter,
    resent_lost: Counter,
}

/// The upstream connections of every route, pooled by host and port.
#[derive(Clone, Default)]
pub struct ConnectionPool {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPool").finish_non_exhaustive()
    }
}

/// Where an exchange goes, and how long connecting there may take (from the settings of the
/// moment: a reload applies to the next new connection).
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    pub host: &'a Arc<str>,
    /// The address when the target is an IP; a name is resolved at connect time.
    pub ip: Option<IpAddr>,
    pub port: u16,
    pub connect_timeout: Duration,
}

/// A connection lent to one exchange: it goes back to the pool when the response body has
/// been read to its end ([`Lease::release`]); dropped before that, the connection closes.
pub struct Lease {
    sender: Option<SendRequest<RequestBody>>,
    key: Key,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("upstream", &self.key).finish_non_exhaustive()
    }
}

impl Lease {
    /// The exchange is over: the connection may serve the next request.
    pub fn release(mut self) {
        let Some(sender) = self.sender.take() else { return };
        if sender.is_closed() {
            return;
        }
        let key = self.key.clone();
        self.pool.put(key, sender);
    }
}

impl Pool {
    /// A pooled connection to `key`, and how long it was idle.
    fn take(&self, key: &Key) -> Option<(SendRequest<RequestBody>, Duration)> {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = idle.get_mut(key)?;
        // The most recently used ready one: its connection is the likeliest to be warm. One
        // that is not ready yet (its upstream answered before the request body was all sent)
        // stays for later rather than make this request wait for another client's upload;
        // dead and stale ones are left to the sweeper.
        let found = list
            .iter()
            .rposition(|entry| entry.usable(now) && entry.sender.is_ready())
            .map(|i| list.remove(i))
            .map(|entry| (entry.sender, now.saturating_duration_since(entry.since)));
        if list.is_empty() {
            idle.remove(key);
        }
        found
    }

    fn put(&self, key: Key, sender: SendRequest<RequestBody>) {
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = idle.entry(key).or_default();
        if list.len() >= MAX_IDLE_PER_UPSTREAM {
            // The oldest goes: dropping its sender closes the connection.
            list.remove(0);
        }
        list.push(Idle { sender, since: Instant::now() });
    }

    /// Closes the connections idle past the timeout and forgets the dead ones (pods come and
    /// go; their entries would otherwise stay).
    fn sweep(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        idle.retain(|_, list| {
            list.retain(|entry| entry.usable(now));
            !list.is_empty()
        });
    }

    /// Starts the sweeper once; it ends with the pool.
    fn start_sweeping(self: &Arc<Self>) {
        if self.sweeping.swap(true, Ordering::Relaxed) {
            return;
        }
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                pool.sweep();
            }
        });
    }

    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.idle.lock().map_or(0, |idle| idle.values().map(Vec::len).sum())
    }
}

impl ConnectionPool {
    pub fn new() -> Self {
        Self::default()
    }

    /// A pool counting the requests it sends again in `metrics`.
    pub fn with_metrics(metrics: &Metrics) -> Self {
        let resent = |reason| metrics.upstream_resent.get_or_create(&ReasonLabel { reason }).clone();
        let pool = Pool { resent_unsent: resent("unsent"), resent_lost: resent("lost"), ..Pool::default() };
        Self { pool: Arc::new(pool) }
    }

    /// Sends `request` (origin-form URI, `Host` set) to `to` and waits for the response head
    /// at most `timeout`. The [`Lease`] must travel with the response body.
    pub async fn send(
        &self,
        to: Destination<'_>,
        request: http::Request<RequestBody>,
        timeout: Duration,
    ) -> Result<(http::Response<Incoming>, Lease), ExchangeError> {
        let deadline = Deadline::after(timeout);
        tokio::select! {
            biased;
            result = self.exchange(to, request) => result,
            () = deadline => Err(ExchangeError::Timeout),
        }
    }

    async fn exchange(
        &self,
        to: Destination<'_>,
        mut request: http::Request<RequestBody>,
    ) -> Result<(http::Response<Incoming>, Lease), ExchangeError> {
        let key: Key = (Arc::clone(to.host), to.port);
        self.pool.start_sweeping();
        loop {
            let (mut sender, idle_for) = match self.pool.take(&key) {
                Some((sender, idle_for)) => (sender, Some(idle_for)),
                None => (connect(to).await?, None),
            };
            let reused = idle_for.is_some();
            // A connection can close between the pool and here (a fresh one: during its
            // handshake); a pooled one that did is replaced.
            if let Err(err) = sender.ready().await {
                if reused {
                    continue;
                }
                return Err(ExchangeError::Upstream(err));
            }
            // Only a connection idle for a while can meet its upstream's keep-alive timeout;
            // one in steady use costs no copy.
            let replay = idle_for.filter(|idle| *idle >= REPLAY_AFTER_IDLE).and_then(|_| replay_of(&request));
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let lease = Lease { sender: Some(sender), key, pool: Arc::clone(&self.pool) };
                    return Ok((response, lease));
                }
                Err(mut err) => match (err.take_message(), replay) {
                    // Not started on a reused connection the upstream had closed: a fresh one
                    // gets it (as any client does with keep-alive races).
                    (Some(unsent), _) if reused => {
                        self.pool.resent_unsent.inc();
                        request = unsent;
                    }
                    (None, Some(replay)) => {
                        self.pool.resent_lost.inc();
                        tracing::debug!(error = %err.error(), upstream = %key.0, port = key.1, "a reused upstream connection lost a request; sending it again");
                        request = replay;
                    }
                    _ => return Err(classify(err.into_error())),
                },
            }
        }
    }
}

/// A copy of `request` to send again if a reused connection loses it: only an idempotent one
/// without a body (RFC 9110, 9.2.2), which the upstream may see twice without harm.
fn replay_of(request: &http::Request<RequestBody>) -> Option<http::Request<RequestBody>> {
    use http::Method;
    let idempotent = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    );
    if !idempotent || !http_body::Body::is_end_stream(request.body()) {
        return None;
    }
    let mut copy = http::Request::new(request.body().emptied());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    Some(copy)
}

/// A new connection to `to`, its driver spawned on the current runtime.
async fn connect(to: Destination<'_>) -> Result<SendRequest<RequestBody>, ExchangeError> {
    let stream =
        tunnel::connect(to.host, to.ip, to.port, to.connect_timeout).await.map_err(ExchangeError::Connect)?;
    let (sender, connection) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|err| ExchangeError::Connect(ConnectError::Handshake(err)))?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "upstream connection ended");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle connection past its timeout is closed by the sweep, not kept until the next
    /// request to its upstream (the soak run caught descriptors that never came back).
    #[tokio::test]
    async fn the_sweep_closes_idle_connections() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (closed_tx, closed) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            if let Ok((mut stream, _)) = listener.accept().await {
                // Reads until the proxy closes its side.
                let mut buf = [0u8; 64];
                while tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await.is_ok_and(|n| n > 0) {}
                let _ = closed_tx.send(());
            }
        });
        let upstreams = ConnectionPool::new();
        let host: Arc<str> = Arc::from("127.0.0.1");
        let to = Destination {
            host: &host,
            ip: Some(addr.ip()),
            port: addr.port(),
            connect_timeout: Duration::from_secs(1),
        };
        let sender = connect(to).await;
        let Ok(sender) = sender else { panic!("no connection") };
        let key: Key = (Arc::from("127.0.0.1"), addr.port());
        upstreams.pool.put(key.clone(), sender);
        assert_eq!(upstreams.pool.idle_count(), 1);
        upstreams.pool.sweep();
        assert_eq!(upstreams.pool.idle_count(), 1, "a fresh idle connection was closed");
        if let Ok(mut idle) = upstreams.pool.idle.lock()
            && let Some(entry) = idle.get_mut(&key).and_then(|list| list.first_mut())
        {
            entry.since =
                Instant::now().checked_sub(IDLE_TIMEOUT + Duration::from_secs(1)).unwrap_or(entry.since);
        }
        upstreams.pool.sweep();
        assert_eq!(upstreams.pool.idle_count(), 0);
        let ended = tokio::time::timeout(Duration::from_secs(5), closed).await;
        assert!(matches!(ended, Ok(Ok(()))), "the upstream never saw the connection close");
    }
}
