//! The admin listener: what operators and their tools call, kept off the public listeners
//! (as linkerd2-proxy's and ingress-nginx's admin ports do): `/metrics` (Prometheus),
//! `/readyz` (settings loaded) and `/healthz`. Anything else is 404.

use std::convert::Infallible;
use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::forward::ResponseBody;
use crate::handler::Handler;
use crate::outcome::text;

/// How long an admin client may take to send its request head.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves the admin endpoints on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, handler: Arc<Handler>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let handler = Arc::clone(&handler);
                async move { Ok::<_, Infallible>(answer(&handler, &request).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(err) = served {
                tracing::debug!(peer = %peer, error = %err, "admin connection ended with an error");
            }
        });
    }
}

async fn answer(handler: &Handler, request: &Request<Incoming>) -> Response<ResponseBody> {
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "OK\n"),
        "/readyz" if handler.settings().is_loaded() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "settings not loaded\n"),
        "/metrics" => {
            let metrics = handler.metrics();
            let entries = handler.resolver().cached_entries().await;
            metrics.cache_entries.set(i64::try_from(entries).unwrap_or(i64::MAX));
            let mut response = text(StatusCode::OK, metrics.encode());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "404 Not Found: not an admin endpoint\n"),
    }
}
