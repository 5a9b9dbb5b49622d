//! A fixed-rate GET load (open loop): what the other clients of a busy router look like.
//! wrk keeps its connections saturated, so beside a CPU-heavy load it measures who wins the
//! CPU, not how long a normal client waits. Latency counts from when each request was due,
//! so a stalled proxy cannot hide its stall (no coordinated omission).

use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use crate::percentile;

pub async fn rate(url: &str, per_sec: u64, secs: u64, headers: &[String]) -> anyhow::Result<()> {
    let client: Client<_, Empty<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1024).build_http();
    let uri: http::Uri = url.parse()?;
    let mut template = hyper::Request::get(uri.clone());
    for header in headers {
        if let Some((name, value)) = header.split_once(':') {
            template = template.header(name.trim(), value.trim());
        }
    }
    let template = template.body(Empty::<bytes::Bytes>::new())?;
    let interval = Duration::from_nanos(1_000_000_000 / per_sec.max(1));
    let start = Instant::now();
    let total = per_sec * secs;
    let mut tasks = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for i in 0..total {
        let due = start + interval * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due).await;
        let client = client.clone();
        let mut request = hyper::Request::get(uri.clone()).body(Empty::new())?;
        *request.headers_mut() = template.headers().clone();
        tasks.push(tokio::spawn(async move {
            let ok = match client.request(request).await {
                Ok(response) => {
                    let good = response.status().is_success();
                    good && response.into_body().collect().await.is_ok()
                }
                Err(_) => false,
            };
            (ok, due.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut failed = 0u64;
    for task in tasks {
        let (ok, took) = task.await?;
        if !ok {
            failed += 1;
        }
        latencies.push(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
    }
    latencies.sort_unstable();
    let achieved = latencies.len() as f64 / start.elapsed().as_secs_f64();
    println!(
        "{{\"rps\":{achieved:.0},\"p50_ms\":{},\"p99_ms\":{},\"failed\":{failed}}}",
        percentile(&latencies, 50.0) as f64 / 1000.0,
        percentile(&latencies, 99.0) as f64 / 1000.0,
    );
    Ok(())
}
