//! A request's life, one phase at a time: guard, builtins, route, token, upstream, forward;
//! every other end goes through [`crate::outcome::respond`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::request::Parts;
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::access::AccessRecord;
use crate::auth::{AuthError, LastToken, Resolver, extract};
use crate::builtins;
use crate::forward::{
    ExchangeError, RequestBody, ResponseBody, compress, headers,
    http1::{ConnectionPool, Destination},
    tunnel,
};
use crate::metrics::{DOWNSTREAM, DirectionLabel, Metrics, UPSTREAM};
use crate::outcome::{self, Outcome};
use crate::route_table::{Backend, Rewrite, Route, parse_container, rewrite_path};
use crate::settings::Settings;

/// What the listener knows of a client connection.
#[derive(Debug)]
pub struct Connection {
    pub peer: SocketAddr,
    /// `http` or `https`, for `X-Forwarded-Proto`.
    pub scheme: &'static str,
    /// The peer's address as a header value, formatted once for every request it sends.
    pub client_ip: http::HeaderValue,
    /// The token it sent last, and its answer.
    last_token: LastToken,
}

impl Connection {
    pub fn new(peer: SocketAddr, scheme: &'static str) -> Self {
        Self { peer, scheme, client_ip: headers::client_ip_value(peer), last_token: LastToken::default() }
    }
}

/// Handles every request of the public listeners ([`Handler::handle`]), from the settings
/// snapshot of the moment.
#[derive(Debug)]
pub struct Handler {
    settings: watch::Receiver<Arc<Settings>>,
    resolver: Resolver,
    pool: ConnectionPool,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    bytes_up: Counter,
    bytes_down: Counter,
    labels: Labels,
}

/// Route labels of requests no route took, allocated once.
#[derive(Debug)]
struct Labels {
    none: Arc<str>,
    guard: Arc<str>,
    builtin: Arc<str>,
}

/// Where a request goes, once its route and token are settled.
struct Plan {
    route: Arc<Route>,
    host: Arc<str>,
    ip: Option<IpAddr>,
    port: u16,
    path_and_query: String,
}

impl Handler {
    pub fn new(
        settings: watch::Receiver<Arc<Settings>>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let bytes_up = metrics.bytes.get_or_create(&DirectionLabel { direction: UPSTREAM }).clone();
        let bytes_down = metrics.bytes.get_or_create(&DirectionLabel { direction: DOWNSTREAM }).clone();
        Self {
            resolver: Resolver::new(Arc::clone(&metrics)),
            pool: ConnectionPool::with_metrics(&metrics),
            settings,
            metrics,
            shutdown,
            bytes_up,
            bytes_down,
            labels: Labels { none: Arc::from("-"), guard: Arc::from("guard"), builtin: Arc::from("builtin") },
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    pub fn settings(&self) -> Arc<Settings> {
        Arc::clone(&self.settings.borrow())
    }

    pub async fn handle(&self, request: Request<Incoming>, conn: &Connection) -> Response<ResponseBody> {
        let started = Instant::now();
        let settings = self.settings();
        // Dropped with this future before an answer (the client went), it logs a 499.
        let mut record = AccessRecord::new(
            request.method().clone(),
            request.uri().clone(),
            Arc::clone(&self.labels.none),
            started,
            conn.peer,
        );
        let version = request.version();
        let max_uri_bytes = settings.limits.client.max_uri_bytes;
        if let Some(violation) = crate::guard::check(&request, &settings.routes, max_uri_bytes) {
            record.route = Arc::clone(&self.labels.guard);
            return self.end(violation.into(), version, record);
        }
        if let Some(answer) = builtins::answer(&settings, request.uri().path()).await {
            record.route = Arc::clone(&self.labels.builtin);
            return self.end(Outcome::Builtin(answer), version, record);
        }
        let (parts, body) = request.into_parts();
        let plan = match self.plan(&parts, &settings, conn, &mut record).await {
            Ok(plan) => plan,
            Err(outcome) => return self.end(outcome, version, record),
        };
        record.route = Arc::clone(&plan.route.name);
        record.upstream = Some((Arc::clone(&plan.host), plan.port));
        if let Some(limit) = plan.route.max_body
            && content_length(&parts).is_some_and(|len| len > limit)
        {
            // Refused before the client uploads anything: no 100-continue goes out.
            linger(body);
            return self.end(ExchangeError::BodyTooLarge(limit).into(), version, record);
        }
        let upgrade = headers::websocket_upgrade(&parts.headers)
            .filter(|_| plan.route.websocket && parts.version == Version::HTTP_11);
        let result = match upgrade {
            Some(protocol) => self.tunnel(parts, body, &plan, conn, protocol, &settings).await,
            None => self.forward(parts, body, &plan, conn, &settings).await,
        };
        match result {
            Ok(response) => self.finish(response, record),
            Err(err) => self.end(err.into(), version, record),
        }
    }

    /// Route, token and target: everything decided before a byte goes upstream. The route's
    /// name goes into `record` as soon as it is known.
    async fn plan(
        &self,
        parts: &Parts,
        settings: &Arc<Settings>,
        conn: &Connection,
        record: &mut AccessRecord,
    ) -> Result<Plan, Outcome> {
        let path = parts.uri.path();
        let Some((prefix, route)) = settings.routes.lookup(path) else {
            return Err(Outcome::NoRoute);
        };
        let route = Arc::clone(route);
        record.route = Arc::clone(&route.name);
        let fallback = &settings.auth.fallback_sources;
        let (token, port, path_and_query) = match &route.backend {
            Backend::Service { host, port } => {
                let path_and_query = rewrite_path(route.rewrite, prefix, path, parts.uri.query());
                return Ok(Plan { host: Arc::clone(host), ip: None, port: *port, path_and_query, route });
            }
            Backend::Desktop { port, sources } => {
                let token = extract::extract(parts, sources, fallback).ok_or(AuthError::Missing)?;
                (token, *port, rewrite_path(route.rewrite, prefix, path, parts.uri.query()))
            }
            Backend::Container { sources } => {
                let container = parse_container(&path[prefix.len()..]).ok_or(Outcome::ContainerPath)?;
                if !settings.auth.targets.allows_container_port(container.port) {
                    return Err(AuthError::PortPolicy.into());
                }
                let token = match container.token {
                    Some(token) => token,
                    None => extract::extract(parts, sources, fallback).ok_or(AuthError::Missing)?,
                };
                let path_and_query = match container.rest {
                    Some(rest) => rewrite_path(Rewrite::Keep, "", rest, parts.uri.query()),
                    None => rewrite_path(Rewrite::Keep, prefix, path, parts.uri.query()),
                };
                (token, container.port, path_and_query)
            }
        };
        let resolved = self.resolver.resolve_for(token, settings, &conn.last_token).await?;
        let target = &resolved.target;
        Ok(Plan { host: Arc::clone(target.shared_host()), ip: target.ip(), port, path_and_query, route })
    }

    async fn forward(
        &self,
        mut parts: Parts,
        body: Incoming,
        plan: &Plan,
        conn: &Connection,
        settings: &Settings,
    ) -> Result<Response<ResponseBody>, ExchangeError> {
        let uri = Uri::try_from(plan.path_and_query.as_str()).map_err(ExchangeError::Path)?;
        let client_authority = parts.uri.authority().map(|a| a.as_str().to_owned());
        let gzip_ok = plan.route.compress && compress::accepts_gzip(&parts.headers);
        let method = parts.method.clone();
        let has_host = headers::to_upstream(
            &mut parts.headers,
            &conn.client_ip,
            conn.scheme,
            client_authority.as_deref(),
            None,
        );
        if !has_host {
            // An HTTP/1.0 client may send none; HTTP/1.1 requires one upstream.
            let host = format!("{}:{}", plan.host, plan.port);
            if let Ok(value) = http::HeaderValue::from_str(&host) {
                parts.headers.insert(http::header::HOST, value);
            }
        }
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        let idle = settings.limits.client.body_idle_timeout;
        let request = Request::from_parts(
            parts,
            RequestBody::new(body, plan.route.max_body, idle, self.bytes_up.clone()),
        );
        let to = Destination {
            host: &plan.host,
            ip: plan.ip,
            port: plan.port,
            connect_timeout: settings.limits.connect_timeout,
        };
        let (response, lease) = self.pool.send(to, request, plan.route.read_timeout).await?;
        let (mut head, body) = response.into_parts();
        headers::to_client(&mut head.headers, None);
        let mut body =
            ResponseBody::upstream(body, Some(lease), plan.route.read_timeout, self.bytes_down.clone());
        if gzip_ok && compress::worth_compressing(&method, head.status, &head.headers) {
            compress::mark_compressed(&mut head.headers);
            body = body.gzipped();
        }
        Ok(Response::from_parts(head, body))
    }

    async fn tunnel(
        &self,
        parts: Parts,
        body: Incoming,
        plan: &Plan,
        conn: &Connection,
        protocol: http::HeaderValue,
        settings: &Settings,
    ) -> Result<Response<ResponseBody>, ExchangeError> {
        let mut request = Request::from_parts(parts, body);
        let client_upgrade = hyper::upgrade::on(&mut request);
        let (mut parts, _) = request.into_parts();
        let stream = tunnel::connect(&plan.host, plan.ip, plan.port, settings.limits.connect_timeout)
            .await
            .map_err(ExchangeError::Connect)?;
        let client_authority = parts.uri.authority().map(|a| a.as_str().to_owned());
        headers::to_upstream(
            &mut parts.headers,
            &conn.client_ip,
            conn.scheme,
            client_authority.as_deref(),
            Some(protocol.clone()),
        );
        parts.uri = plan.path_and_query.parse().map_err(ExchangeError::Path)?;
        let request = Request::from_parts(parts, RequestBody::empty(self.bytes_up.clone()));
        let (response, upstream_upgrade) =
            tunnel::handshake(stream, request, plan.route.read_timeout).await?;
        let (mut head, body) = response.into_parts();
        let Some(upstream_upgrade) = upstream_upgrade else {
            // The upstream declined the upgrade: its answer goes back as a plain response.
            headers::to_client(&mut head.headers, None);
            return Ok(Response::from_parts(
                head,
                ResponseBody::upstream(body, None, plan.route.read_timeout, self.bytes_down.clone()),
            ));
        };
        headers::to_client(&mut head.headers, Some(protocol));
        let idle = plan.route.idle_timeout;
        let shutdown = self.shutdown.clone();
        let metrics = Arc::clone(&self.metrics);
        let route = Arc::clone(&plan.route.name);
        tokio::spawn(async move {
            let opened = Instant::now();
            let end = tunnel::splice(client_upgrade, upstream_upgrade, idle, shutdown, metrics).await;
            tracing::debug!(route = %route, end = ?end, seconds = opened.elapsed().as_secs_f64(), "WebSocket tunnel closed");
        });
        Ok(Response::from_parts(head, ResponseBody::empty()))
    }

    /// Ends a request with `outcome`: answered, logged and counted in one place.
    fn end(&self, outcome: Outcome, version: Version, record: AccessRecord) -> Response<ResponseBody> {
        let response = outcome::respond(outcome, version, &record, &self.metrics);
        self.finish(response, record)
    }

    /// Counts the response, and hands the access line to its body.
    fn finish(&self, response: Response<ResponseBody>, mut record: AccessRecord) -> Response<ResponseBody> {
        let status = response.status();
        record.status = status.as_u16();
        self.metrics.record_request(&record.route, status, record.started.elapsed().as_secs_f64());
        let (head, body) = response.into_parts();
        Response::from_parts(head, body.with_record(record))
    }
}

/// How long the body of a refused request is read and dropped at most.
const LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and drops the body of a request refused before its upload, for [`LINGER`] at most.
/// A client that sends its body without waiting (no `Expect: 100-continue`) reads the answer
/// only if its bytes are taken in meanwhile: a connection closed with them unread is reset
/// under it, and it sees a broken pipe instead of the 413 (nginx's lingering close).
fn linger(mut body: Incoming) {
    use http_body_util::BodyExt;
    tokio::spawn(tokio::time::timeout(LINGER, async move { while let Some(Ok(_)) = body.frame().await {} }));
}

fn content_length(parts: &Parts) -> Option<u64> {
    parts.headers.get(http::header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}
