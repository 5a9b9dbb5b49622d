//! WebSocket echo upstream and clients.

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::percentile;

pub async fn echo_server(listen: &str) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    println!("listening {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_binary() || msg.is_text() {
                    if ws.send(msg).await.is_err() {
                        break;
                    }
                } else if msg.is_close() {
                    break;
                }
            }
        });
    }
}

async fn connect(
    url: &str,
) -> anyhow::Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
> {
    let (ws, _) = tokio_tungstenite::connect_async(url).await?;
    Ok(ws)
}

pub async fn rate(url: &str, conns: usize, secs: u64, size: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let mut ws = connect(url).await?;
        let payload = vec![b'x'; size];
        tasks.push(tokio::spawn(async move {
            let mut rtts = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                if ws.send(Message::binary(payload.clone())).await.is_err() {
                    errors += 1;
                    break;
                }
                match ws.next().await {
                    Some(Ok(_)) => rtts.push(sent.elapsed().as_micros() as u64),
                    _ => {
                        errors += 1;
                        break;
                    }
                }
            }
            let _ = ws.close(None).await;
            (rtts, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (rtts, e) = task.await?;
        all.extend(rtts);
        errors += e;
    }
    all.sort_unstable();
    println!(
        "{{\"messages_per_sec\":{:.0},\"p50_us\":{},\"p99_us\":{},\"errors\":{errors}}}",
        all.len() as f64 / secs as f64,
        percentile(&all, 50.0),
        percentile(&all, 99.0)
    );
    Ok(())
}

pub async fn bulk(url: &str, secs: u64, size: usize) -> anyhow::Result<()> {
    let ws = connect(url).await?;
    let (mut tx, mut rx) = ws.split();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let payload = bytes::Bytes::from(vec![b'y'; size]);
    let sender = tokio::spawn(async move {
        while Instant::now() < deadline {
            if tx.send(Message::Binary(payload.clone())).await.is_err() {
                break;
            }
        }
        let _ = tx.close().await;
    });
    let mut received = 0u64;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(5), rx.next()).await {
        received += msg.len() as u64;
        if Instant::now() > deadline {
            break;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    sender.abort();
    println!("{{\"mib_per_sec\":{:.1}}}", received as f64 / elapsed / (1024.0 * 1024.0));
    Ok(())
}

pub async fn idle(url: &str, count: usize, secs: u64) -> anyhow::Result<()> {
    let mut open = Vec::with_capacity(count);
    let mut failed = 0;
    for _ in 0..count {
        // A handshake that never completes counts as failed rather than stalling the run.
        match tokio::time::timeout(Duration::from_secs(5), connect(url)).await {
            Ok(Ok(ws)) => open.push(ws),
            _ => failed += 1,
        }
    }
    println!("{{\"open\":{},\"failed\":{failed}}}", open.len());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    Ok(())
}
