//! Bodies that stream through the proxy, never buffered whole.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::io::Write as _;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
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
    /// The client sent nothing of its request body for the body idle timeout.
    #[error("client request body idle past {0:?}")]
    ClientIdle(Duration),
    #[error("gzip failed")]
    Compress,
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
}

/// A clock that runs only while a body waits for its next bytes: armed by the first poll that
/// finds nothing, cleared by the next frame. Most bodies arrive whole and never arm it.
#[derive(Debug, Default)]
struct IdleTimer {
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl IdleTimer {
    /// Bytes arrived: the next wait starts a new clock.
    fn reset(&mut self) {
        self.waiting = false;
    }

    /// Nothing arrived: starts the clock if it is not running; ready once `idle` has passed.
    fn poll_expired(&mut self, cx: &mut Context<'_>, idle: Duration) -> Poll<()> {
        if !self.waiting {
            self.waiting = true;
            let deadline = Instant::now() + idle;
            match self.timer.as_mut() {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        match self.timer.as_mut() {
            Some(timer) => timer.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

/// A client's request body on its way upstream: counted, cut at the route's limit, and cut
/// when the client stops sending while the upstream waits for more.
#[derive(Debug)]
pub struct RequestBody {
    inner: Option<Incoming>,
    remaining: Option<u64>,
    limit: u64,
    bytes: Counter,
    idle: Duration,
    /// Runs only while the proxy waits on the client.
    timer: IdleTimer,
}

impl RequestBody {
    /// `idle`: the longest silence of the client while the upstream waits for more.
    pub fn new(inner: Incoming, limit: Option<u64>, idle: Duration, bytes: Counter) -> Self {
        Self {
            inner: Some(inner),
            remaining: limit,
            limit: limit.unwrap_or(u64::MAX),
            bytes,
            idle,
            timer: IdleTimer::default(),
        }
    }

    /// A body with nothing in it (WebSocket handshakes).
    pub fn empty(bytes: Counter) -> Self {
        Self {
            inner: None,
            remaining: None,
            limit: u64::MAX,
            bytes,
            // Never waited on: it has nothing to come.
            idle: Duration::ZERO,
            timer: IdleTimer::default(),
        }
    }

    /// A body with nothing in it, counted where this one is: what a bodiless request is sent
    /// again with.
    pub(crate) fn emptied(&self) -> Self {
        Self::empty(self.bytes.clone())
    }

    /// Pending from the client: starts the idle clock on the first such poll, and fails the
    /// body once it has run out.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.timer.poll_expired(cx, self.idle) {
            Poll::Ready(()) => {
                self.inner = None;
                Poll::Ready(Some(Err(BodyError::ClientIdle(self.idle))))
            }
            Poll::Pending => Poll::Pending,
        }
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
        let Poll::Ready(polled) = Pin::new(inner).poll_frame(cx) else {
            return this.poll_idle(cx);
        };
        this.timer.reset();
        let frame = match polled {
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
    Upstream {
        inner: Incoming,
        /// The pooled connection the body arrives on, given back when the body has ended.
        lease: Option<super::http1::Lease>,
        idle: Duration,
        timer: IdleTimer,
        bytes: Counter,
        /// Set when the response is gzipped on its way to the client.
        gzip: Option<Box<GzEncoder<Vec<u8>>>>,
    },
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

    pub fn upstream(
        inner: Incoming,
        lease: Option<super::http1::Lease>,
        idle: Duration,
        bytes: Counter,
    ) -> Self {
        Self {
            kind: Kind::Upstream { inner, lease, idle, timer: IdleTimer::default(), bytes, gzip: None },
            record: None,
            sent: 0,
        }
    }

    /// Gzips the upstream body on the way (fastest level, as nginx's default `gzip_comp_level 1`).
    pub fn gzipped(mut self) -> Self {
        if let Kind::Upstream { gzip, .. } = &mut self.kind {
            *gzip = Some(Box::new(GzEncoder::new(Vec::new(), Compression::fast())));
        }
        self
    }

    /// Attaches the access line, written when the body ends.
    pub fn with_record(mut self, record: AccessRecord) -> Self {
        self.record = Some(Box::new(record));
        self
    }
}

impl ResponseBody {
    fn poll_upstream(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let Kind::Upstream { inner, lease, idle, timer, bytes, gzip } = &mut self.kind else {
            return Poll::Ready(None);
        };
        loop {
            match Pin::new(&mut *inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    timer.reset();
                    let Some(encoder) = gzip.as_mut() else {
                        if let Some(data) = frame.data_ref() {
                            bytes.inc_by(data.len() as u64);
                        }
                        return Poll::Ready(Some(Ok(frame)));
                    };
                    // Trailers are dropped on a gzipped response: the body they describe changed.
                    let Ok(data) = frame.into_data() else { continue };
                    if encoder.write_all(&data).is_err() {
                        return Poll::Ready(Some(Err(BodyError::Compress)));
                    }
                    let out = std::mem::take(encoder.get_mut());
                    if !out.is_empty() {
                        bytes.inc_by(out.len() as u64);
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                }
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err.into()))),
                Poll::Ready(None) => {
                    if let Some(lease) = lease.take() {
                        lease.release();
                    }
                    let Some(encoder) = gzip.take() else { return Poll::Ready(None) };
                    let tail = encoder.finish().map_err(|_| BodyError::Compress);
                    let tail = match tail {
                        Ok(tail) => tail,
                        Err(err) => return Poll::Ready(Some(Err(err))),
                    };
                    bytes.inc_by(tail.len() as u64);
                    self.kind = Kind::Full(None);
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(tail)))));
                }
                Poll::Pending => {
                    return match timer.poll_expired(cx, *idle) {
                        Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::Idle))),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
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
            Kind::Upstream { .. } => this.poll_upstream(cx),
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
            Kind::Upstream { inner, gzip, .. } => gzip.is_none() && inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Upstream { gzip: Some(_), .. } => SizeHint::default(),
            Kind::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // A body with nothing left (HEAD, 204, 304, or read to its end without the final
        // poll) frees its connection; one cut short takes the connection with it.
        if let Kind::Upstream { inner, lease, .. } = &mut self.kind
            && inner.is_end_stream()
            && let Some(lease) = lease.take()
        {
            lease.release();
        }
        if let Some(mut record) = self.record.take() {
            record.write(self.sent);
        }
    }
}
