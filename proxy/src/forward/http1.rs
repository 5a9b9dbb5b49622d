//! Pooled keep-alive HTTP/1.1 to upstreams.

use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::{ProxyError, RequestBody, classify};

/// The upstream client: one connection pool for every upstream, keyed by host and port.
#[derive(Clone, Debug)]
pub struct Upstreams {
    client: Client<HttpConnector, RequestBody>,
}

impl Upstreams {
    pub fn new(connect_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(connector);
        Self { client }
    }

    /// Sends `request` (absolute URI) and waits for the response head at most `timeout`.
    pub async fn send(
        &self,
        request: http::Request<RequestBody>,
        timeout: Duration,
    ) -> Result<http::Response<Incoming>, ProxyError> {
        match tokio::time::timeout(timeout, self.client.request(request)).await {
            Err(_) => Err(ProxyError::Timeout),
            Ok(Err(err)) => Err(classify(&err)),
            Ok(Ok(response)) => Ok(response),
        }
    }
}
