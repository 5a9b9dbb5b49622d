//! Raw HTTP/1 over a TcpStream: for what no well-behaved client sends (smuggling attempts,
//! folded headers, bare LF, oversized heads, absolute-form, CONNECT) and for watching what the
//! proxy does to the connection (answers, closes, cuts).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

use super::{STEP, within};

/// One response read from a raw connection.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// The head, status line included, as text.
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// A header's value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How a read on a raw connection ended.
#[derive(Debug)]
pub enum Ended {
    /// The peer closed (EOF or reset).
    Closed,
    /// Nothing happened within the limit.
    Open,
}

/// A client connection that writes whatever bytes it is given.
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = within(STEP, "connect to proxy", TcpStream::connect(addr)).await.expect("connect");
        Self { stream, buf: Vec::new() }
    }

    /// Connects from a given local address of the loopback range (127.0.0.2, ...).
    pub async fn connect_from(addr: SocketAddr, local: std::net::IpAddr) -> Self {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(local, 0)).expect("bind local address");
        let stream = within(STEP, "connect to proxy", socket.connect(addr)).await.expect("connect");
        Self { stream, buf: Vec::new() }
    }

    /// Writes `bytes`; a write error (the proxy closed) is ignored.
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.try_send(bytes).await;
    }

    /// Writes `bytes`, and says whether the proxy took them all (as a client that gives up on a
    /// broken pipe would see it).
    pub async fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    async fn fill(&mut self, deadline: Instant) -> bool {
        let mut chunk = [0_u8; 16 * 1024];
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, self.stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            _ => false,
        }
    }

    /// The next response, or `None` when the connection ends (or `limit` passes) first.
    /// Interim 1xx responses are returned like any other.
    pub async fn response(&mut self, limit: Duration) -> Option<RawResponse> {
        let deadline = Instant::now() + limit;
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill(deadline).await {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end);
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let mut response = RawResponse { status, head, body: Vec::new() };
        let chunked = response.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if chunked {
            loop {
                let line_end = loop {
                    if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    if !self.fill(deadline).await {
                        return Some(response);
                    }
                };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
                while self.buf.len() < line_end + 2 + size + 2 {
                    if !self.fill(deadline).await {
                        return Some(response);
                    }
                }
                response.body.extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
                self.buf.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    return Some(response);
                }
            }
        }
        let len: usize = match response.header("content-length") {
            Some(len) => len.parse().ok()?,
            None if status < 200 || status == 204 || status == 304 => 0,
            // No length: the body runs to the end of the connection.
            None => {
                while self.fill(deadline).await {}
                response.body = std::mem::take(&mut self.buf);
                return Some(response);
            }
        };
        while self.buf.len() < len {
            if !self.fill(deadline).await {
                response.body = std::mem::take(&mut self.buf);
                return Some(response);
            }
        }
        response.body = self.buf.drain(..len).collect();
        Some(response)
    }

    /// Waits up to `limit` for the proxy to close the connection; bytes that arrive are kept.
    pub async fn ended(&mut self, limit: Duration) -> Ended {
        let deadline = Instant::now() + limit;
        let mut chunk = [0_u8; 4096];
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, self.stream.read(&mut chunk)).await {
                Ok(Ok(0) | Err(_)) => return Ended::Closed,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return Ended::Open,
            }
        }
    }

    /// Bytes received and not yet read as a response.
    pub fn leftover(&self) -> &[u8] {
        &self.buf
    }
}

/// Sends `bytes` on a fresh connection and reads one response (at most [`STEP`]).
pub async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Option<RawResponse> {
    let mut conn = RawConn::connect(addr).await;
    conn.send(bytes).await;
    conn.response(STEP).await
}
