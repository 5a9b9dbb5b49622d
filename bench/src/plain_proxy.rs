//! The floor of a hyper-based proxy: the same server and client stack `route` uses (hyper-util
//! auto server, pooled legacy client, one current-thread runtime) with no routing, no token, no
//! header work. `bench/run` measures it beside nginx and route, so the table shows what the
//! framework costs and what route's own work adds.

use std::convert::Infallible;
use std::time::Duration;

use anyhow::Context as _;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

pub async fn run(listen: &str, upstream: &str) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await.context("bind")?;
    println!("listening {}", listener.local_addr()?);
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(connector);
    let base: &'static str = Box::leak(format!("http://{upstream}").into_boxed_str());
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let client = client.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                let client = client.clone();
                async move {
                    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
                    let sent = match format!("{base}{path}").parse::<http::Uri>() {
                        Ok(uri) => {
                            *request.uri_mut() = uri;
                            client.request(request).await.ok()
                        }
                        Err(_) => None,
                    };
                    Ok::<_, Infallible>(answer(sent))
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The same proxy with one upstream connection per client connection, driven by hyper's
/// connection API directly (no shared pool): what a pool of route's own could approach.
pub async fn run_direct(listen: &str, upstream: &str) -> anyhow::Result<()> {
    use std::sync::{Arc, Mutex};

    use hyper::client::conn::http1::SendRequest;

    let listener = TcpListener::bind(listen).await.context("bind")?;
    println!("listening {}", listener.local_addr()?);
    let upstream: &'static str = Box::leak(upstream.to_owned().into_boxed_str());
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let slot: Arc<Mutex<Option<SendRequest<Incoming>>>> = Arc::default();
            let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                let slot = Arc::clone(&slot);
                async move {
                    let kept = slot.lock().ok().and_then(|mut s| s.take()).filter(|s| !s.is_closed());
                    let sender = match kept {
                        Some(sender) => Some(sender),
                        None => match tokio::net::TcpStream::connect(upstream).await {
                            Ok(stream) => {
                                let _ = stream.set_nodelay(true);
                                match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                                    Ok((sender, conn)) => {
                                        tokio::spawn(conn);
                                        Some(sender)
                                    }
                                    Err(_) => None,
                                }
                            }
                            Err(_) => None,
                        },
                    };
                    let mut response = None;
                    if let Some(mut sender) = sender
                        && sender.ready().await.is_ok()
                    {
                        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
                        if let Ok(uri) = path.parse::<http::Uri>() {
                            *request.uri_mut() = uri;
                            response = sender.send_request(request).await.ok();
                        }
                        if let Ok(mut s) = slot.lock() {
                            *s = Some(sender);
                        }
                    }
                    Ok::<_, Infallible>(answer(response))
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Answer = http::Response<http_body_util::Either<Incoming, http_body_util::Empty<bytes::Bytes>>>;

/// The upstream's response, or an empty 502.
fn answer(response: Option<http::Response<Incoming>>) -> Answer {
    match response {
        Some(response) => response.map(http_body_util::Either::Left),
        None => {
            let mut bad = http::Response::new(http_body_util::Either::Right(http_body_util::Empty::new()));
            *bad.status_mut() = http::StatusCode::BAD_GATEWAY;
            bad
        }
    }
}
