//! One access line per request, written when the response body is done. Tokens never appear:
//! the logged path and query are redacted first.
//!
//! The binary hands its log writer to [`write_lines_to`]; lines are then formatted here, in the
//! layout of the process's other log lines, straight into one reused buffer per thread. A
//! tracing event per request cost five times as much (field visitors, `fmt` machinery, a
//! timestamp computed from scratch: docs/performance.md). Without a writer (library use,
//! tests), the line is a tracing event. Either way `RUST_LOG` decides whether it is written:
//! the target is `route::access`.

mod line;
mod redact;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use tokio::time::Instant;

pub use line::LineFormat;
pub use redact::{redact, redact_into};

/// What the access line says of a request. It holds the request's URI as received (a cheap
/// reference-counted clone) and redacts it only when a line is written.
#[derive(Debug)]
pub struct AccessRecord {
    pub method: http::Method,
    pub uri: http::Uri,
    pub route: Arc<str>,
    pub status: u16,
    pub started: Instant,
    /// The upstream host and port, when one was chosen.
    pub upstream: Option<(Arc<str>, u16)>,
    pub peer: SocketAddr,
    pub body_error: Option<String>,
    /// Set once the line is out. A record dropped before that belongs to a request whose
    /// client went before its answer was decided (hyper dropped the request's future).
    written: bool,
}

/// The status logged for a request whose client closed its connection before the answer:
/// nginx's, which log tooling knows.
pub const CLIENT_CLOSED: u16 = 499;

/// Takes one formatted line.
type WriteLine = Box<dyn Fn(&[u8]) + Send + Sync>;

/// Where formatted lines go, and in which layout.
struct Sink {
    format: LineFormat,
    write: WriteLine,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Formats access lines here from now on, in `format`, and hands each to `write` (the process's
/// non-blocking log writer). The first call wins.
pub fn write_lines_to(format: LineFormat, write: impl Fn(&[u8]) + Send + Sync + 'static) {
    let _ = SINK.set(Sink { format, write: Box::new(write) });
}

impl AccessRecord {
    /// The record of a request just received: no route, no status, no upstream yet.
    pub fn new(
        method: http::Method,
        uri: http::Uri,
        route: Arc<str>,
        started: Instant,
        peer: SocketAddr,
    ) -> Self {
        Self {
            method,
            uri,
            route,
            status: 0,
            started,
            upstream: None,
            peer,
            body_error: None,
            written: false,
        }
    }

    /// The path and query for a log line, tokens redacted.
    pub fn path(&self) -> String {
        redact(self.uri.path(), self.uri.query())
    }

    /// `host:port` of the upstream, or `-`.
    pub fn upstream(&self) -> String {
        self.upstream.as_ref().map_or_else(|| "-".to_owned(), |(host, port)| format!("{host}:{port}"))
    }

    pub fn write(&mut self, bytes: u64) {
        self.written = true;
        if !tracing::enabled!(target: "route::access", tracing::Level::INFO) {
            return;
        }
        let elapsed = self.started.elapsed();
        if let Some(sink) = SINK.get() {
            line::with_line(sink.format, self, elapsed, bytes, |line| (sink.write)(line));
            return;
        }
        tracing::info!(
            target: "route::access",
            method = %self.method,
            path = %self.path(),
            route = %self.route,
            status = self.status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            bytes,
            upstream = %self.upstream(),
            peer = %self.peer,
            body_error = self.body_error.as_deref(),
            "request"
        );
    }
}

impl Drop for AccessRecord {
    fn drop(&mut self) {
        if !self.written {
            self.status = CLIENT_CLOSED;
            self.write(0);
        }
    }
}
