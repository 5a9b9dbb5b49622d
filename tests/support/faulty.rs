//! An upstream that misbehaves on purpose, on a port it keeps across restarts: it answers
//! normally, resets before or in the middle of its answer, hangs before its head or in the
//! middle of its body, accepts a WebSocket upgrade and then drops the connection, or is not
//! listening at all. Raw TCP, so every fault is exactly what is asked.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// What the upstream does with the next request heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `200 OK`, body `ok`, keep-alive.
    Healthy,
    /// Reset (RST) as soon as the request head is read.
    ResetBeforeHead,
    /// Answer the first request of a connection (keep-alive), reset at the next: a server
    /// whose keep-alive timeout fires just as a reused connection brings a request.
    ResetReused,
    /// A 200 head announcing 100000 bytes, 1000 of them, then a reset.
    ResetMidBody,
    /// Read the head, never answer.
    HangBeforeHead,
    /// A 200 head announcing 100000 bytes, 1000 of them, then nothing.
    HangMidBody,
    /// Accept a WebSocket upgrade (101), send one text frame, then drop the connection.
    WsDrop,
}

struct Shared {
    fault: Mutex<Fault>,
    heads: Mutex<Vec<String>>,
}

/// A misbehaving upstream on a fixed port of 127.0.0.1.
pub struct Faulty {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Option<JoinSet<()>>,
}

impl Faulty {
    pub async fn start(fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared { fault: Mutex::new(fault), heads: Mutex::new(Vec::new()) });
        let mut faulty = Self { addr, shared, tasks: None };
        faulty.serve(listener);
        faulty
    }

    fn serve(&mut self, listener: TcpListener) {
        let mut tasks = JoinSet::new();
        let shared = Arc::clone(&self.shared);
        // Connections live in the same set as the accept loop: `stop` ends them all.
        let (conn_tx, mut conn_rx) = tokio::sync::mpsc::unbounded_channel::<TcpStream>();
        tasks.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                if conn_tx.send(stream).is_err() {
                    break;
                }
            }
        });
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Some(stream) = conn_rx.recv().await {
                conns.spawn(connection(Arc::clone(&shared), stream));
                while conns.try_join_next().is_some() {}
            }
        });
        self.tasks = Some(tasks);
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap() = fault;
    }

    /// Request lines received.
    pub fn heads(&self) -> Vec<String> {
        self.shared.heads.lock().unwrap().clone()
    }

    /// Stops listening and drops every open connection (resets for those with unread bytes).
    pub async fn stop(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.shutdown().await;
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(err) if tries < 50 => {
                    tries += 1;
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(err) => panic!("rebind {}: {err}", self.addr),
            }
        };
        self.serve(listener);
    }
}

impl Drop for Faulty {
    fn drop(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.abort_all();
        }
    }
}

async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0_u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            buf.drain(..end + 4);
            return Some(head);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn reset(stream: TcpStream) {
    // SO_LINGER 0: dropping the socket sends RST instead of FIN.
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn connection(shared: Arc<Shared>, mut stream: TcpStream) {
    let mut buf = Vec::new();
    let mut answered = 0;
    while let Some(head) = read_head(&mut stream, &mut buf).await {
        let line = head.lines().next().unwrap_or("").to_owned();
        shared.heads.lock().unwrap().push(line);
        let fault = *shared.fault.lock().unwrap();
        // Request bodies are not expected here (GETs only).
        match fault {
            Fault::ResetReused if answered > 0 => return reset(stream),
            Fault::Healthy | Fault::ResetReused => {
                answered += 1;
                let answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
                if stream.write_all(answer).await.is_err() {
                    return;
                }
            }
            Fault::ResetBeforeHead => return reset(stream),
            Fault::ResetMidBody | Fault::HangMidBody => {
                let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n";
                let _ = stream.write_all(head).await;
                let _ = stream.write_all(&[7_u8; 1000]).await;
                let _ = stream.flush().await;
                if fault == Fault::ResetMidBody {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return reset(stream);
                }
                std::future::pending::<()>().await;
            }
            Fault::HangBeforeHead => std::future::pending::<()>().await,
            Fault::WsDrop => {
                let key = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.trim().eq_ignore_ascii_case("sec-websocket-key").then(|| v.trim().to_owned())
                    })
                    .unwrap_or_default();
                let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
                let answer = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                // One unmasked text frame, "hi", then the connection is gone without a close frame.
                let _ = stream.write_all(&[0x81, 0x02, b'h', b'i']).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                return reset(stream);
            }
        }
    }
}
