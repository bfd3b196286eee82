//! Idle detection: a stream wrapper that notes when bytes last moved, and a
//! future that completes once none have for a while.
//!
//! hyper's own timeout only covers reading request heads; this catches the
//! rest (a client that stops reading its response, a stalled body).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::transport::slots::SlotPermit;

/// When a connection last moved a byte, as milliseconds since it opened;
/// and the connection's slot, kept up to date for idle-first eviction and
/// freed when the last holder (the stream or the task) drops this.
pub(super) struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
    slot: Option<SlotPermit>,
}

impl Activity {
    #[cfg(test)]
    pub(super) fn new() -> Arc<Self> {
        Self::holding(None)
    }

    /// Activity of a connection holding `slot`.
    pub(super) fn holding(slot: Option<SlotPermit>) -> Arc<Self> {
        Arc::new(Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
            slot,
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
        if let Some(slot) = &self.slot {
            slot.touch(std::time::Instant::now());
        }
    }

    /// Cancelled when the connection's slot is given to another; never,
    /// without a slot.
    pub(super) fn evicted(&self) -> tokio_util::sync::CancellationToken {
        self.slot
            .as_ref()
            .map_or_else(Default::default, |slot| slot.evicted().clone())
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Completes once nothing has moved for `limit`.
    pub(super) async fn idle_for(&self, limit: Duration) {
        loop {
            let deadline = self.last() + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A stream that reports its reads and writes to an [`Activity`].
pub(super) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub(super) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Tracked { inner, activity }
    }
}

// `S: Unpin` (a TcpStream is) makes `Tracked<S>` Unpin, so the inner stream
// can be re-pinned with `Pin::new` and no projection (or unsafe) is needed.
impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn idle_future_waits_for_silence() {
        let activity = Activity::new();
        let (a, mut b) = tokio::io::duplex(64);
        let mut tracked = Tracked::new(a, Arc::clone(&activity));
        tokio::time::sleep(Duration::from_millis(150)).await;
        b.write_all(b"x").await.unwrap();
        let mut byte = [0u8; 1];
        tracked.read_exact(&mut byte).await.unwrap();
        let read_at = Instant::now();
        activity.idle_for(Duration::from_millis(200)).await;
        // Measured from the read, not from opening (which was 150 ms
        // earlier); the stored time is truncated to whole milliseconds.
        let waited = read_at.elapsed();
        assert!(waited >= Duration::from_millis(190), "{waited:?}");
    }
}
