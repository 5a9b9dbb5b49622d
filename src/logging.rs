//! Log output off the serving threads. An event is formatted where it happens (an access line
//! by `route_proxy::access`, in the same layout, at a fraction of an event's cost) and handed
//! to a bounded queue (tracing-appender's lossy non-blocking writer); one writer thread drains it
//! into standard error in batches. A slow or stalled standard error (a full container log
//! pipe, a stuck collector) never delays a request: lines that find the queue full are
//! dropped and counted (`route_log_lines_dropped_total`), and once the writer has caught up
//! again, one warning says how many were lost.

use std::io::{self, BufWriter, Stderr, Write};
use std::sync::OnceLock;
use std::time::Duration;

use tracing::Dispatch;
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::cli::LogFormat;

/// Bytes the writer thread gathers before a write: lines queued together go out together.
const BATCH_BYTES: usize = 64 * 1024;
/// How often the dropped-lines metric catches up with the writer's count.
const EXPORT_EVERY: Duration = Duration::from_millis(250);

/// Adds to `route_log_lines_dropped_total`, once the proxy's metrics exist.
static EXPORT: OnceLock<Box<dyn Fn(u64) + Send + Sync>> = OnceLock::new();

/// Keeps the writer thread; dropping it writes out what is queued (at most ~1 s when the
/// sink is stalled). Hold it until the process exits.
#[must_use = "dropping the guard stops the log writer"]
pub struct Logs {
    _writer: WorkerGuard,
}

/// Installs the global subscriber: `filter` (or `RUST_LOG`, else `info`), `format`, at most
/// `queue_lines` lines waiting for standard error.
pub fn init(format: LogFormat, filter: Option<&str>, queue_lines: usize) -> Logs {
    let filter = filter
        .map(tracing_subscriber::EnvFilter::new)
        .or_else(|| tracing_subscriber::EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal: in a pod or a file the escape codes are noise.
    let ansi = io::IsTerminal::is_terminal(&io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let notice =
        Dispatch::new(subscriber(format, ansi, tracing_subscriber::EnvFilter::new("warn"), io::stderr));
    // Only the writer thread knows when the sink has caught up, so the count it reports is
    // read there; it is filled in once the queue exists.
    let dropped = std::sync::Arc::new(OnceLock::new());
    let sink = Sink {
        out: BufWriter::with_capacity(BATCH_BYTES, io::stderr()),
        dropped: std::sync::Arc::clone(&dropped),
        reported: 0,
        notice,
    };
    let (queue, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(queue_lines.max(1))
        .thread_name("route-log")
        .finish(sink);
    let access = queue.clone();
    let layout = match format {
        LogFormat::Json => route_proxy::access::LineFormat::Json,
        LogFormat::Text => route_proxy::access::LineFormat::Text,
    };
    route_proxy::access::write_lines_to(layout, move |line| {
        let _ = access.make_writer().write_all(line);
    });
    let counter = queue.error_counter();
    let _ = dropped.set(counter.clone());
    // Already set only if called twice; the first subscriber stays.
    let _ = subscriber(format, ansi, filter, queue).try_init();
    let _ = std::thread::Builder::new().name("route-log-count".into()).spawn(move || export(&counter));
    Logs { _writer: guard }
}

/// Counts dropped lines into `add` (the proxy's metric) from now on, including those dropped
/// before.
pub fn export_dropped(add: impl Fn(u64) + Send + Sync + 'static) {
    let _ = EXPORT.set(Box::new(add));
}

type Subscriber = Box<dyn tracing::Subscriber + Send + Sync>;

fn subscriber<W>(
    format: LogFormat,
    ansi: bool,
    filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> Subscriber
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Json => Box::new(builder.json().flatten_event(true).with_current_span(false).finish()),
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
    }
}

/// Copies the writer's dropped-lines count into the metric. Its own thread: the writer thread
/// is blocked exactly while lines are being dropped.
fn export(counter: &ErrorCounter) {
    let mut exported = 0u64;
    loop {
        std::thread::sleep(EXPORT_EVERY);
        let dropped = counter.dropped_lines() as u64;
        if let Some(add) = EXPORT.get()
            && dropped > exported
        {
            add(dropped - exported);
            exported = dropped;
        }
    }
}

/// Standard error as the writer thread sees it: lines gathered into one write per batch, and
/// the loss warning written when a batch ends, that is when the queue has been drained.
struct Sink {
    out: BufWriter<Stderr>,
    dropped: std::sync::Arc<OnceLock<ErrorCounter>>,
    /// Dropped lines already reported.
    reported: usize,
    /// Formats the warning as the other lines are, straight to standard error.
    notice: Dispatch,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()?;
        let total = self.dropped.get().map_or(0, ErrorCounter::dropped_lines);
        if total > self.reported {
            let lost = total - self.reported;
            self.reported = total;
            tracing::dispatcher::with_default(&self.notice, || {
                tracing::warn!(lost, total, "log lines lost: standard error did not keep up")
            });
        }
        Ok(())
    }
}
