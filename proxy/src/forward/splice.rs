//! Copying both ways between two connections without a buffer per idle tunnel.
//!
//! `tokio::io::copy_bidirectional` holds two 8 KiB buffers for the whole life of a tunnel, and
//! most desktop tunnels sit idle most of the time: 10,000 idle WebSockets cost 160 MiB of
//! buffers. Here a read lands in one scratch buffer per thread and goes straight on to the
//! other side; only the bytes a slow peer does not take at once are kept, in a buffer of their
//! own that is freed when they are written. An idle tunnel holds no buffer.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read at once (tokio's copy uses 8 KiB; larger reads mean fewer calls for bulk frames).
const SCRATCH: usize = 16 * 1024;

/// Reads one direction may do in a row before letting the other direction and other tasks run.
const BURST: usize = 32;

thread_local! {
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// One direction of the copy.
#[derive(Debug, Default)]
struct Direction {
    /// Read but not yet written (the writer was not ready); empty when caught up.
    pending: Vec<u8>,
    written: usize,
    need_flush: bool,
    read_done: bool,
    done: bool,
    bytes: u64,
}

/// Copies `a` to `b` and `b` to `a` until both reach end of stream (each end is passed on as a
/// write shutdown) or one fails. Returns the bytes copied `a` to `b` and `b` to `a`.
pub async fn copy_both<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut a_to_b = Direction::default();
    let mut b_to_a = Direction::default();
    poll_fn(|cx| {
        let forward = if a_to_b.done { Poll::Ready(Ok(())) } else { a_to_b.poll(cx, &mut *a, &mut *b) };
        let backward = if b_to_a.done { Poll::Ready(Ok(())) } else { b_to_a.poll(cx, &mut *b, &mut *a) };
        match (forward, backward) {
            (Poll::Ready(Err(err)), _) | (_, Poll::Ready(Err(err))) => Poll::Ready(Err(err)),
            (Poll::Ready(Ok(())), Poll::Ready(Ok(()))) => Poll::Ready(Ok((a_to_b.bytes, b_to_a.bytes))),
            _ => Poll::Pending,
        }
    })
    .await
}

impl Direction {
    fn poll<R, W>(&mut self, cx: &mut Context<'_>, reader: &mut R, writer: &mut W) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        for _ in 0..BURST {
            ready!(self.poll_pending(cx, writer))?;
            if self.read_done {
                ready!(Pin::new(&mut *writer).poll_shutdown(cx))?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            match self.poll_read_and_write(cx, reader, writer) {
                Poll::Ready(result) => result?,
                Poll::Pending => {
                    // Nothing to read now: push out what a buffering writer (TLS) holds.
                    if self.need_flush {
                        ready!(Pin::new(&mut *writer).poll_flush(cx))?;
                        self.need_flush = false;
                    }
                    return Poll::Pending;
                }
            }
        }
        // A busy direction yields after a burst, and asks to be polled again.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Writes what is left of an earlier read, then frees its buffer.
    fn poll_pending<W>(&mut self, cx: &mut Context<'_>, writer: &mut W) -> Poll<io::Result<()>>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        while self.written < self.pending.len() {
            let n = ready!(Pin::new(&mut *writer).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
            self.need_flush = true;
        }
        if !self.pending.is_empty() {
            self.pending = Vec::new();
            self.written = 0;
        }
        Poll::Ready(Ok(()))
    }

    /// One read into the thread's scratch buffer, written on at once; what the writer does not
    /// take is kept in `pending`.
    fn poll_read_and_write<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        SCRATCH_BUF.with(|scratch| {
            // Never borrowed across an await: the read and the write below complete or return
            // within this call.
            let Ok(mut scratch) = scratch.try_borrow_mut() else {
                return Poll::Ready(Err(io::Error::other("splice scratch buffer in use")));
            };
            let mut buf = ReadBuf::new(&mut scratch[..]);
            ready!(Pin::new(&mut *reader).poll_read(cx, &mut buf))?;
            let data = buf.filled();
            if data.is_empty() {
                self.read_done = true;
                return Poll::Ready(Ok(()));
            }
            self.bytes += data.len() as u64;
            let written = match Pin::new(&mut *writer).poll_write(cx, data) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => 0,
            };
            if written > 0 {
                self.need_flush = true;
            }
            if written < data.len() {
                self.pending = data[written..].to_vec();
                self.written = 0;
            }
            Poll::Ready(Ok(()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Bytes cross both ways intact, a slow reader is waited for (nothing lost), and each end
    /// of stream reaches the other side.
    #[tokio::test]
    async fn copies_both_ways_and_passes_on_the_ends() {
        // Small pipes: writes block, so the pending path runs.
        let (mut client, mut proxy_client) = tokio::io::duplex(1024);
        let (mut proxy_upstream, mut upstream) = tokio::io::duplex(1024);
        let splice = tokio::spawn(async move { copy_both(&mut proxy_client, &mut proxy_upstream).await });
        let up: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let down: Vec<u8> = (0..150_000u32).map(|i| (i % 241) as u8).collect();
        let (up_sent, down_sent) = (up.clone(), down.clone());
        let writer = tokio::spawn(async move {
            client.write_all(&up_sent).await?;
            client.shutdown().await?;
            let mut got = Vec::new();
            client.read_to_end(&mut got).await?;
            io::Result::Ok(got)
        });
        let mut got_up = Vec::new();
        upstream.read_to_end(&mut got_up).await.ok();
        assert_eq!(got_up, up);
        upstream.write_all(&down_sent).await.ok();
        upstream.shutdown().await.ok();
        let got_down = writer.await.ok().and_then(Result::ok);
        assert_eq!(got_down, Some(down));
        let counts = splice.await.ok().and_then(Result::ok);
        assert_eq!(counts, Some((200_000, 150_000)));
    }

    /// One side's end waits for the other's (a half-closed tunnel stays open one way); a
    /// write to a side that is gone ends the copy with the error.
    #[tokio::test]
    async fn half_close_waits_and_an_error_ends() {
        let (client, mut proxy_client) = tokio::io::duplex(64);
        let (mut proxy_upstream, mut upstream) = tokio::io::duplex(64);
        drop(client);
        let copy = copy_both(&mut proxy_client, &mut proxy_upstream);
        tokio::pin!(copy);
        let early = tokio::time::timeout(std::time::Duration::from_millis(100), &mut copy).await;
        assert!(early.is_err(), "the copy ended while the upstream was still open");
        // The upstream sends to the client, which is gone.
        upstream.write_all(b"to nobody").await.ok();
        let end = tokio::time::timeout(std::time::Duration::from_secs(5), copy).await;
        assert!(matches!(end, Ok(Err(_))), "{end:?}");
    }
}
