//! Sending a request to its upstream: pooled HTTP/1.1, or a spliced WebSocket tunnel.

pub mod body;
pub mod compress;
pub mod deadline;
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

/// Why an exchange with an upstream did not give the client the upstream's response. Sources
/// stay typed: [`crate::outcome::Outcome`] labels, logs and answers them.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("upstream connect failed")]
    Connect(#[source] ConnectError),
    /// No response head within the route's read timeout.
    #[error("no upstream response head within the read timeout")]
    Timeout,
    /// The request body passed the route's limit.
    #[error("request body over the limit of {0} bytes")]
    BodyTooLarge(u64),
    /// The client stopped sending its request body before the upstream answered.
    #[error("client request body idle past {0:?}")]
    ClientIdle(std::time::Duration),
    /// The client's connection broke while its request body was read.
    #[error("client connection broke")]
    ClientGone(#[source] hyper::Error),
    /// The upstream broke the exchange (reset, closed, bad response).
    #[error("upstream exchange failed")]
    Upstream(#[source] hyper::Error),
    #[error("invalid upstream path")]
    Path(#[source] http::uri::InvalidUri),
}

/// Why a connection to an upstream could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// Refused, unreachable, or the name did not resolve.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("HTTP/1.1 handshake failed")]
    Handshake(#[source] hyper::Error),
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

/// What an exchange with an upstream ended with, once connected: a failure of the request body
/// (ours, or the client's connection) is the client's; anything else the upstream's.
pub(crate) fn classify(err: hyper::Error) -> ExchangeError {
    match body_error_in(&err) {
        Some(BodyError::TooLarge(limit)) => ExchangeError::BodyTooLarge(*limit),
        Some(BodyError::ClientIdle(idle)) => ExchangeError::ClientIdle(*idle),
        Some(BodyError::Hyper(_)) => ExchangeError::ClientGone(err),
        _ => ExchangeError::Upstream(err),
    }
}
