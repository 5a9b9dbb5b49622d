//! What a client may hold of the process: connections in all and per address ([`Limiter`],
//! a [`Permit`] per connection), and the time to its first bytes ([`ClientIo`]).

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::Sleep;

use super::PREFACE_LEN;
use crate::metrics::{Metrics, ReasonLabel};
use crate::settings::ClientLimits;

/// Open client connections, in all and per address, against the limits of the moment.
pub(super) struct Limiter {
    total: AtomicUsize,
    /// Connections per address, counted only while a per-address limit is set: each permit
    /// remembers whether it was counted here.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    metrics: Arc<Metrics>,
}

impl Limiter {
    pub(super) fn new(metrics: Arc<Metrics>) -> Self {
        Self { total: AtomicUsize::new(0), per_ip: Mutex::new(HashMap::new()), metrics }
    }

    /// A permit for one more connection from `ip`, or the name of the limit it would pass.
    pub(super) fn acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        limits: &ClientLimits,
    ) -> Result<Permit, &'static str> {
        let ip = ip.to_canonical();
        let refuse = |reason: &'static str| {
            self.metrics.connections_refused.get_or_create(&ReasonLabel { reason }).inc();
            Err(reason)
        };
        if self.total.fetch_add(1, Ordering::AcqRel) >= limits.max_connections.max(1) {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return refuse("total");
        }
        let per_ip_counted = limits.max_connections_per_ip > 0;
        if per_ip_counted {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let count = per_ip.entry(ip).or_insert(0);
            if *count >= limits.max_connections_per_ip {
                drop(per_ip);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return refuse("per_ip");
            }
            *count += 1;
        }
        Ok(Permit { limiter: Arc::clone(self), ip, per_ip_counted })
    }

    fn release(&self, ip: IpAddr, per_ip_counted: bool) {
        if per_ip_counted {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(count) = per_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
        self.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One counted connection; released when the socket is dropped (for a WebSocket, when the
/// tunnel ends: the permit travels with the I/O into the upgrade).
pub(super) struct Permit {
    limiter: Arc<Limiter>,
    ip: IpAddr,
    per_ip_counted: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.release(self.ip, self.per_ip_counted);
    }
}

/// A client socket with its permit, and a deadline for its first bytes: until the protocol is
/// known (the first [`PREFACE_LEN`] bytes, or fewer when they already rule out HTTP/2) no
/// HTTP timer runs, so a client that connects and stays silent would hold the socket forever.
pub(super) struct ClientIo<I> {
    io: I,
    _permit: Permit,
    first_bytes: Option<(Pin<Box<Sleep>>, usize)>,
}

impl<I> ClientIo<I> {
    pub(super) fn new(io: I, permit: Permit, deadline: Duration) -> Self {
        Self { io, _permit: permit, first_bytes: Some((Box::pin(tokio::time::sleep(deadline)), 0)) }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ClientIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Some((timer, seen)) = this.first_bytes.as_mut() {
            match &polled {
                Poll::Ready(Ok(())) => {
                    let new = &buf.filled()[before..];
                    // Not `P`: not the HTTP/2 preface, so HTTP/1 takes over at once, and its
                    // header read timeout covers the request head from here.
                    let not_h2 = *seen == 0 && new.first().is_some_and(|&b| b != b'P');
                    *seen += new.len();
                    if not_h2 || *seen >= PREFACE_LEN {
                        this.first_bytes = None;
                    }
                }
                Poll::Pending => {
                    if timer.as_mut().poll(cx).is_ready() {
                        this.first_bytes = None;
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no request within the header read timeout",
                        )));
                    }
                }
                Poll::Ready(Err(_)) => {}
            }
        }
        polled
    }
}

crate::forward::write_through!(ClientIo);
