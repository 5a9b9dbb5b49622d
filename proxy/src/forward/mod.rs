//! Sending a request to its upstream: pooled HTTP/1.1, or a spliced WebSocket tunnel.

pub mod body;
pub mod compress;
pub mod headers;
pub mod http1;
pub mod splice;
pub mod tunnel;

pub use body::{BodyError, RequestBody, ResponseBody};

/// `AsyncWrite` for a socket wrapper that only watches reads: every write goes to its `io`
/// field as it is (vectored writes included, so hyper keeps using `writev`).
macro_rules! write_through {
    ($wrapper:ident) => {
        impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $wrapper<I> {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.io).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.io.is_write_vectored()
            }
        }
    };
}
pub(crate) use write_through;

/// Why a request did not get an upstream response. Each side knows its status.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Could not connect (refused, unreachable, name not resolved, connect timeout): 502.
    #[error("upstream connect failed: {0}")]
    Connect(String),
    /// No response head within the route's read timeout: 504.
    #[error("upstream timed out")]
    Timeout,
    /// The request body passed the route's limit: 413.
    #[error("request body over the limit of {0} bytes")]
    TooLarge(u64),
    /// The client stopped sending its request body before the upstream answered: 408.
    #[error("client request body idle")]
    ClientTimeout,
    /// The upstream broke the exchange (reset, bad response): 502.
    #[error("upstream failed: {0}")]
    Upstream(String),
}

impl ProxyError {
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::Connect(_) | Self::Upstream(_) => http::StatusCode::BAD_GATEWAY,
            Self::Timeout => http::StatusCode::GATEWAY_TIMEOUT,
            Self::TooLarge(_) => http::StatusCode::PAYLOAD_TOO_LARGE,
            Self::ClientTimeout => http::StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// A short label for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Timeout => "timeout",
            Self::TooLarge(_) => "too_large",
            Self::ClientTimeout => "client_timeout",
            Self::Upstream(_) => "upstream",
        }
    }
}

/// Finds our own body errors inside a client error's source chain.
fn body_error_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyError> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(body) = e.downcast_ref::<BodyError>() {
            return Some(body);
        }
        current = e.source();
    }
    None
}

/// Flattens an error and its sources into one line for logs.
fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// What an exchange with an upstream ended with, once connected.
pub(crate) fn classify(err: &hyper::Error) -> ProxyError {
    match body_error_in(err) {
        Some(BodyError::TooLarge(limit)) => ProxyError::TooLarge(*limit),
        Some(BodyError::ClientIdle(_)) => ProxyError::ClientTimeout,
        _ => ProxyError::Upstream(describe(err)),
    }
}
