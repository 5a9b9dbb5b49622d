//! Bodies that stream through the proxy, never buffered whole.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use prometheus_client::metrics::counter::Counter;
use tokio::time::{Instant, Sleep};

use crate::access::AccessRecord;

/// Errors a streamed body can end with.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The request body passed the route's limit (answered 413 when nothing was sent yet).
    #[error("request body over the limit of {0} bytes")]
    TooLarge(u64),
    /// The upstream sent nothing for the route's read timeout.
    #[error("upstream body idle past the read timeout")]
    Idle,
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
}

/// A client's request body on its way upstream: counted, and cut at the route's limit.
#[derive(Debug)]
pub struct RequestBody {
    inner: Option<Incoming>,
    remaining: Option<u64>,
    limit: u64,
    bytes: Counter,
}

impl RequestBody {
    pub fn new(inner: Incoming, limit: Option<u64>, bytes: Counter) -> Self {
        Self { inner: Some(inner), remaining: limit, limit: limit.unwrap_or(u64::MAX), bytes }
    }

    /// A body with nothing in it (WebSocket handshakes).
    pub fn empty(bytes: Counter) -> Self {
        Self { inner: None, remaining: None, limit: u64::MAX, bytes }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        let frame = match ready!(Pin::new(inner).poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
            Some(Ok(frame)) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let len = data.len() as u64;
            if let Some(remaining) = this.remaining.as_mut() {
                if len > *remaining {
                    this.inner = None;
                    return Poll::Ready(Some(Err(BodyError::TooLarge(this.limit))));
                }
                *remaining -= len;
            }
            this.bytes.inc_by(len);
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

/// What the proxy answers a client with: a local body, or the upstream's, streamed with an
/// idle timeout. Either way the access line is written when the body is done (or dropped).
pub struct ResponseBody {
    kind: Kind,
    record: Option<Box<AccessRecord>>,
    sent: u64,
}

enum Kind {
    Full(Option<Bytes>),
    Upstream { inner: Incoming, idle: Duration, timer: Pin<Box<Sleep>>, bytes: Counter },
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").field("sent", &self.sent).finish_non_exhaustive()
    }
}

impl ResponseBody {
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        Self { kind: Kind::Full((!data.is_empty()).then_some(data)), record: None, sent: 0 }
    }

    pub fn empty() -> Self {
        Self::full(Bytes::new())
    }

    pub fn upstream(inner: Incoming, idle: Duration, bytes: Counter) -> Self {
        let timer = Box::pin(tokio::time::sleep(idle));
        Self { kind: Kind::Upstream { inner, idle, timer, bytes }, record: None, sent: 0 }
    }

    /// Attaches the access line, written when the body ends.
    pub fn with_record(mut self, record: AccessRecord) -> Self {
        self.record = Some(Box::new(record));
        self
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let polled = match &mut this.kind {
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Upstream { inner, idle, timer, bytes } => match Pin::new(inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        bytes.inc_by(data.len() as u64);
                    }
                    timer.as_mut().reset(Instant::now() + *idle);
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err.into()))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::Idle))),
                    Poll::Pending => Poll::Pending,
                },
            },
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                this.sent += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
            Poll::Ready(Some(Err(err))) => {
                if let Some(record) = this.record.as_mut() {
                    record.body_error = Some(err.to_string());
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(data) => data.is_none(),
            Kind::Upstream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            record.write(self.sent);
        }
    }
}
