//! A child's output pipe read on a thread of its own into a shared buffer, at full speed or
//! paced like a slow log collector (the logging tests hold route's standard error, then read
//! it slowly or at once).

use std::io::{BufRead as _, BufReader};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Reads `pipe` line by line into a buffer, at most `pace` (bytes, per interval) if given.
pub fn capture(
    pipe: impl std::io::Read + Send + 'static,
    pace: Option<(usize, Duration)>,
) -> Arc<Mutex<String>> {
    let buffer = Arc::new(Mutex::new(String::new()));
    capture_into(pipe, pace, Arc::clone(&buffer));
    buffer
}

/// As [`capture`], into an existing buffer (a held pipe read from later).
pub fn capture_into(
    pipe: impl std::io::Read + Send + 'static,
    pace: Option<(usize, Duration)>,
    sink: Arc<Mutex<String>>,
) {
    std::thread::spawn(move || {
        let mut reader: Box<dyn std::io::Read> = match pace {
            Some((bytes, every)) => Box::new(Paced { pipe, bytes, every }),
            None => Box::new(pipe),
        };
        let mut reader = BufReader::with_capacity(pace.map_or(8192, |(bytes, _)| bytes), &mut reader);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    });
}

/// A slow reader: at most `bytes` per read, one read per `every`.
struct Paced<R> {
    pipe: R,
    bytes: usize,
    every: Duration,
}

impl<R: std::io::Read> std::io::Read for Paced<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::thread::sleep(self.every);
        let len = buf.len().min(self.bytes);
        self.pipe.read(&mut buf[..len])
    }
}
