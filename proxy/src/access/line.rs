//! An access line in the layout of the process's other log lines (tracing-subscriber's text
//! layout, or its JSON layout with the event flattened), formatted without a tracing event.

use std::cell::RefCell;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::AccessRecord;
use super::redact::redact_into;

/// The layout of the process's log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    Text,
    Json,
}

/// Buffers reused by every line of a thread.
#[derive(Default)]
struct Scratch {
    line: Vec<u8>,
    path: String,
    clock: Clock,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// Formats the line of `record` and hands it to `write`.
pub(super) fn with_line(
    format: LineFormat,
    record: &AccessRecord,
    elapsed: Duration,
    bytes: u64,
    write: impl FnOnce(&[u8]),
) {
    SCRATCH.with(|scratch| {
        // Only a line written from inside `write` could find it borrowed; it is not written.
        let Ok(mut scratch) = scratch.try_borrow_mut() else { return };
        let Scratch { line, path, clock } = &mut *scratch;
        line.clear();
        path.clear();
        redact_into(path, record.uri.path(), record.uri.query());
        let stamp = clock.stamp(SystemTime::now());
        match format {
            LineFormat::Text => text(line, &stamp, record, path, elapsed, bytes),
            LineFormat::Json => json(line, &stamp, record, path, elapsed, bytes),
        }
        write(line);
    });
}

/// One field's value, written as each layout wants it.
enum Value<'a> {
    Text(&'a str),
    Number(u64),
    Millis(Duration),
    /// `host:port` of the upstream, or `-`: a validated name or address, nothing to escape.
    Upstream(Option<&'a (std::sync::Arc<str>, u16)>),
    Peer(SocketAddr),
    /// Quoted in text too, as tracing writes a string field.
    Quoted(&'a str),
}

/// The fields of an access line, in the order both layouts write them; `body_error` only
/// when there is one.
fn fields<'a>(
    record: &'a AccessRecord,
    path: &'a str,
    elapsed: Duration,
    bytes: u64,
) -> impl Iterator<Item = (&'static str, Value<'a>)> {
    let error = record.body_error.as_deref().map(|error| ("body_error", Value::Quoted(error)));
    [
        ("method", Value::Text(record.method.as_str())),
        ("path", Value::Text(path)),
        ("route", Value::Text(&record.route)),
        ("status", Value::Number(u64::from(record.status))),
        ("duration_ms", Value::Millis(elapsed)),
        ("bytes", Value::Number(bytes)),
        ("upstream", Value::Upstream(record.upstream.as_ref())),
        ("peer", Value::Peer(record.peer)),
    ]
    .into_iter()
    .chain(error)
}

/// `2026-12-06T04:51:51.985568Z  INFO route::access: request method=GET path=/x ...`
fn text(line: &mut Vec<u8>, stamp: &[u8], record: &AccessRecord, path: &str, elapsed: Duration, bytes: u64) {
    line.extend_from_slice(stamp);
    line.extend_from_slice(b"  INFO route::access: request");
    for (name, value) in fields(record, path, elapsed, bytes) {
        line.push(b' ');
        line.extend_from_slice(name.as_bytes());
        line.push(b'=');
        match value {
            Value::Text(text) => line.extend_from_slice(text.as_bytes()),
            Value::Number(n) => number(line, n),
            Value::Millis(elapsed) => millis(line, elapsed),
            Value::Upstream(to) => upstream(line, to),
            Value::Peer(addr) => peer(line, addr),
            Value::Quoted(text) => {
                let _ = write!(line, "{text:?}");
            }
        }
    }
    line.push(b'\n');
}

/// `{"timestamp":"...","level":"INFO","message":"request","method":"GET",...,"target":"route::access"}`
fn json(line: &mut Vec<u8>, stamp: &[u8], record: &AccessRecord, path: &str, elapsed: Duration, bytes: u64) {
    line.extend_from_slice(b"{\"timestamp\":\"");
    line.extend_from_slice(stamp);
    line.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\"");
    for (name, value) in fields(record, path, elapsed, bytes) {
        line.extend_from_slice(b",\"");
        line.extend_from_slice(name.as_bytes());
        line.extend_from_slice(b"\":");
        match value {
            Value::Text(text) | Value::Quoted(text) => string(line, text),
            Value::Number(n) => number(line, n),
            Value::Millis(elapsed) => millis(line, elapsed),
            Value::Upstream(to) => {
                line.push(b'"');
                upstream(line, to);
                line.push(b'"');
            }
            Value::Peer(addr) => {
                line.push(b'"');
                peer(line, addr);
                line.push(b'"');
            }
        }
    }
    line.extend_from_slice(b",\"target\":\"route::access\"}\n");
}

fn string(line: &mut Vec<u8>, value: &str) {
    let _ = serde_json::to_writer(&mut *line, value);
}

fn number(line: &mut Vec<u8>, value: u64) {
    line.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Milliseconds with three decimals (microseconds are what the clock resolves here).
fn millis(line: &mut Vec<u8>, elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    number(line, micros / 1000);
    line.push(b'.');
    digits(line, micros % 1000, 3);
}

fn upstream(line: &mut Vec<u8>, to: Option<&(std::sync::Arc<str>, u16)>) {
    match to {
        Some((host, port)) => {
            line.extend_from_slice(host.as_bytes());
            line.push(b':');
            number(line, u64::from(*port));
        }
        None => line.push(b'-'),
    }
}

/// `ip:port`: an IPv4 peer without `fmt` (its `Display` was a third of a line's cost).
fn peer(line: &mut Vec<u8>, peer: SocketAddr) {
    match peer {
        SocketAddr::V4(v4) => {
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    line.push(b'.');
                }
                number(line, u64::from(octet));
            }
            line.push(b':');
            number(line, u64::from(v4.port()));
        }
        SocketAddr::V6(_) => {
            let _ = write!(line, "{peer}");
        }
    }
}

/// `value` in exactly `width` decimal digits, zero-padded.
fn digits(line: &mut Vec<u8>, mut value: u64, width: usize) {
    let start = line.len();
    line.resize(start + width, b'0');
    for slot in line[start..].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// RFC 3339 timestamps in UTC with microseconds, as tracing-subscriber writes them. The date
/// and time of day change once a second, so they are formatted once a second.
#[derive(Default)]
struct Clock {
    second: Option<u64>,
    /// `YYYY-MM-DDTHH:MM:SS` of `second`.
    prefix: [u8; 19],
}

impl Clock {
    fn stamp(&mut self, now: SystemTime) -> [u8; 27] {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let second = since.as_secs();
        if self.second != Some(second) {
            let whole = i64::try_from(second).ok().and_then(|s| jiff::Timestamp::from_second(s).ok());
            // `2026-12-06T04:51:51Z`: the whole second, without its `Z`.
            let text = whole.map_or_else(|| "1970-01-01T00:00:00Z".to_owned(), |ts| ts.to_string());
            if let Some(prefix) = text.as_bytes().get(..19) {
                self.prefix.copy_from_slice(prefix);
            }
            self.second = Some(second);
        }
        let mut stamp = [b'0'; 27];
        stamp[..19].copy_from_slice(&self.prefix);
        stamp[19] = b'.';
        let mut micros = since.subsec_micros();
        for slot in stamp[20..26].iter_mut().rev() {
            *slot = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        stamp[26] = b'Z';
        stamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(body_error: Option<&str>) -> AccessRecord {
        AccessRecord {
            method: http::Method::GET,
            uri: "/websockify?jwt_token=eyJhbGciOiJSUzI1NiJ9.eyJoYXNoIjoiYSJ9.c2lnbmF0dXJl&x=%22"
                .parse()
                .unwrap(),
            route: std::sync::Arc::from("web\"sockify"),
            status: 101,
            started: tokio::time::Instant::now(),
            upstream: Some((std::sync::Arc::from("10.0.0.7"), 6081)),
            peer: "127.0.0.1:5555".parse().unwrap(),
            body_error: body_error.map(str::to_owned),
            // Formatted by these tests, never written.
            written: true,
        }
    }

    fn line(format: LineFormat, record: &AccessRecord) -> String {
        let mut out = String::new();
        with_line(format, record, Duration::from_micros(2_526_352), 27, |line| {
            out = String::from_utf8(line.to_vec()).unwrap();
        });
        out
    }

    #[test]
    fn json_lines_carry_every_field_of_the_tracing_layout() {
        let before = jiff::Timestamp::now();
        let text = line(LineFormat::Json, &record(Some("upstream \"reset\"")));
        assert!(text.ends_with("}\n"), "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let stamp: jiff::Timestamp = value["timestamp"].as_str().unwrap().parse().unwrap();
        assert!(
            stamp >= before.round(jiff::Unit::Microsecond).unwrap() - jiff::SignedDuration::from_micros(1)
        );
        assert!(stamp <= jiff::Timestamp::now(), "{stamp}");
        assert_eq!(value["timestamp"].as_str().unwrap().len(), 27, "{text}");
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["target"], "route::access");
        assert_eq!(value["message"], "request");
        assert_eq!(value["method"], "GET");
        assert_eq!(value["path"], "/websockify?jwt_token=<redacted>&x=%22");
        assert_eq!(value["route"], "web\"sockify", "escaped");
        assert_eq!(value["status"], 101);
        assert_eq!(value["duration_ms"], 2526.352);
        assert_eq!(value["bytes"], 27);
        assert_eq!(value["upstream"], "10.0.0.7:6081");
        assert_eq!(value["peer"], "127.0.0.1:5555");
        assert_eq!(value["body_error"], "upstream \"reset\"");
        assert!(!text.contains("eyJ"), "{text}");
    }

    #[test]
    fn text_lines_read_as_the_tracing_layout() {
        let text = line(LineFormat::Text, &record(None));
        let (stamp, rest) = text.split_once("  ").unwrap();
        assert!(stamp.parse::<jiff::Timestamp>().is_ok() && stamp.len() == 27, "{text}");
        assert_eq!(
            rest,
            "INFO route::access: request method=GET path=/websockify?jwt_token=<redacted>&x=%22 \
             route=web\"sockify status=101 duration_ms=2526.352 bytes=27 upstream=10.0.0.7:6081 \
             peer=127.0.0.1:5555\n"
        );
        let mut failed = record(Some("reset"));
        failed.upstream = None;
        failed.peer = "[2001:db8::1]:443".parse().unwrap();
        let text = line(LineFormat::Text, &failed);
        assert!(text.ends_with(" upstream=- peer=[2001:db8::1]:443 body_error=\"reset\"\n"), "{text}");
    }

    #[test]
    fn timestamps_follow_the_clock_across_seconds() {
        let mut clock = Clock::default();
        let at =
            |secs: u64, micros: u64| UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros);
        let stamp = |clock: &mut Clock, t| String::from_utf8(clock.stamp(t).to_vec()).unwrap();
        assert_eq!(stamp(&mut clock, at(1_796_532_711, 985_568)), "2026-12-06T04:51:51.985568Z");
        assert_eq!(stamp(&mut clock, at(1_796_532_711, 7)), "2026-12-06T04:51:51.000007Z");
        assert_eq!(stamp(&mut clock, at(1_796_532_712, 0)), "2026-12-06T04:51:52.000000Z");
        assert_eq!(stamp(&mut clock, at(0, 1)), "1970-01-01T00:00:00.000001Z");
    }
}
