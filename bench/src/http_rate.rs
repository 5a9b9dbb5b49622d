//! A fixed-rate GET load (open loop): what the other clients of a busy router look like.
//! wrk keeps its connections saturated, so beside a CPU-heavy load it measures who wins the
//! CPU, not how long a normal client waits. Latency counts from when each request was due,
//! so a stalled proxy cannot hide its stall (no coordinated omission). Requests go out on the
//! timer's 1 ms ticks, so that latency includes up to 1 ms of waiting for the tick; the
//! `sent_*` figures count from when each request actually went out instead: no request waits
//! for another's answer, so they carry no coordinated omission either, at microsecond
//! resolution (`lag_p99_ms` says how late the sends were).

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
            let sent = Instant::now();
            let ok = match client.request(request).await {
                Ok(response) => {
                    let good = response.status().is_success();
                    good && response.into_body().collect().await.is_ok()
                }
                Err(_) => false,
            };
            (ok, due.elapsed(), sent.elapsed(), sent.saturating_duration_since(due))
        }));
    }
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let (mut latencies, mut from_send, mut lags) = (Vec::new(), Vec::new(), Vec::new());
    let mut failed = 0u64;
    for task in tasks {
        let (ok, since_due, since_sent, lag) = task.await?;
        if !ok {
            failed += 1;
        }
        latencies.push(micros(since_due));
        from_send.push(micros(since_sent));
        lags.push(micros(lag));
    }
    for list in [&mut latencies, &mut from_send, &mut lags] {
        list.sort_unstable();
    }
    let ms = |list: &[u64], p: f64| percentile(list, p) as f64 / 1000.0;
    let achieved = latencies.len() as f64 / start.elapsed().as_secs_f64();
    println!(
        "{{\"rps\":{achieved:.0},\"p50_ms\":{},\"p99_ms\":{},\"sent_p50_ms\":{},\"sent_p99_ms\":{},\"sent_p999_ms\":{},\"lag_p99_ms\":{},\"failed\":{failed}}}",
        ms(&latencies, 50.0),
        ms(&latencies, 99.0),
        ms(&from_send, 50.0),
        ms(&from_send, 99.0),
        ms(&from_send, 99.9),
        ms(&lags, 99.0),
    );
    Ok(())
}
