//! A body-counting upstream and a streamed upload client.

use std::convert::Infallible;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};

pub async fn sink_server(listen: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|request: hyper::Request<Incoming>| async move {
                let mut body = request.into_body();
                let mut total = 0u64;
                while let Some(Ok(frame)) = body.frame().await {
                    total += frame.data_ref().map_or(0, |d| d.len() as u64);
                }
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(format!("ok {total}\n")))))
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

pub async fn upload(url: &str, bytes: u64, headers: &[String]) -> anyhow::Result<()> {
    const CHUNK: usize = 256 * 1024;
    let chunk = Bytes::from(vec![b'z'; CHUNK]);
    let chunks = bytes.div_ceil(CHUNK as u64);
    let stream = futures_util::stream::iter((0..chunks).map(move |i| {
        let left = bytes - i * CHUNK as u64;
        let piece = if left >= CHUNK as u64 { chunk.clone() } else { chunk.slice(..left as usize) };
        Ok::<_, Infallible>(Frame::data(piece))
    }));
    let mut request = hyper::Request::post(url).header(http::header::CONTENT_LENGTH, bytes);
    for header in headers {
        if let Some((name, value)) = header.split_once(':') {
            request = request.header(name.trim(), value.trim());
        }
    }
    let request = request.body(StreamBody::new(stream))?;
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let started = Instant::now();
    let response = client.request(request).await?;
    let status = response.status();
    let _ = response.into_body().collect().await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"status\":{},\"mib_per_sec\":{:.1},\"seconds\":{secs:.2}}}",
        status.as_u16(),
        bytes as f64 / secs / (1024.0 * 1024.0)
    );
    Ok(())
}
