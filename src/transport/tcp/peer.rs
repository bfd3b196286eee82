//! The writer task of one next hop: connects lazily, writes queued frames
//! in batches, reconnects with backoff, and retires when idle.
//!
//! Frames queued while the connection is down wait (the queue is bounded
//! by `send`). Frames whose write failed are counted as lost, not retried:
//! part of them may have arrived, and the next hop's replay cache would
//! drop a resent copy anyway.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_util::codec::Encoder;

use super::backoff::Backoff;
use super::codec::FrameCodec;
use super::egress::{Inner, PeerQueue};
use super::stats;
use crate::pipeline::PacketBuf;
use crate::sphinx::FRAME_LEN;

/// Most frames written per syscall. Large enough to amortise the write and
/// flush, small enough that one broken write loses little.
const MAX_BATCH: usize = 64;

/// Runs until shutdown or until the next hop has been idle long enough to
/// retire its queue.
pub(super) async fn run(
    inner: Arc<Inner>,
    addr: SocketAddr,
    queue: Arc<PeerQueue>,
    mut rx: mpsc::Receiver<PacketBuf>,
) {
    let mut writer = Writer {
        backoff: Backoff::new(
            inner.limits.reconnect_backoff_initial,
            inner.limits.reconnect_backoff_max,
        ),
        inner,
        addr,
        queue,
        batch: Vec::with_capacity(MAX_BATCH),
        out: BytesMut::with_capacity(MAX_BATCH * FRAME_LEN),
        connected_before: false,
    };
    let shutdown = writer.inner.shutdown.clone();
    // Cancelling here, around the whole task, drops whatever it was
    // awaiting; every await in it is cancel-safe or only loses a write that
    // shutdown abandons anyway.
    let end = tokio::select! {
        biased;
        _ = shutdown.cancelled() => End::Abandon,
        end = writer.run(&mut rx) => end,
    };
    if let End::Abandon = end {
        writer.drop_all(&mut rx);
    }
}

/// How a writer task ends.
enum End {
    /// Idle with nothing queued; the queue is already retired.
    Retired,
    /// Shutdown, or a next hop unreachable too long: drop what is queued.
    Abandon,
}

struct Writer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    queue: Arc<PeerQueue>,
    /// Frames taken from the queue and not yet written.
    batch: Vec<PacketBuf>,
    /// The encoded batch.
    out: BytesMut,
    backoff: Backoff,
    connected_before: bool,
}

/// Why the writer left a connected stretch.
enum Leave {
    /// The connection broke or the peer closed it.
    Broken,
    /// The queue was retired.
    Retired,
}

impl Writer {
    async fn run(&mut self, rx: &mut mpsc::Receiver<PacketBuf>) -> End {
        loop {
            // Disconnected: only connect once there is something to send.
            if self.batch.is_empty() && !self.wait_for_frames(rx).await {
                return End::Retired;
            }
            let Some(stream) = self.connect().await else {
                return End::Abandon;
            };
            match self.serve(stream, rx).await {
                Leave::Broken => continue,
                Leave::Retired => return End::Retired,
            }
        }
    }

    /// Fills the batch; false when the queue was retired for idleness.
    async fn wait_for_frames(&mut self, rx: &mut mpsc::Receiver<PacketBuf>) -> bool {
        loop {
            let idle = self.inner.limits.idle_timeout;
            match tokio::time::timeout(idle, rx.recv_many(&mut self.batch, MAX_BATCH)).await {
                Ok(0) => return false, // every sender is gone
                Ok(_) => return true,
                Err(_) => {
                    if self.retire_if_idle() {
                        return false;
                    }
                }
            }
        }
    }

    /// Connects, pausing between failures; `None` once the next hop has been
    /// unreachable for the idle timeout.
    async fn connect(&mut self) -> Option<TcpStream> {
        let limits = &self.inner.limits;
        let started = Instant::now();
        loop {
            let attempt =
                tokio::time::timeout(limits.connect_timeout, TcpStream::connect(self.addr));
            match attempt.await {
                Ok(Ok(stream)) => {
                    // Frames are latency-sensitive; never coalesce writes.
                    let _ = stream.set_nodelay(true);
                    if self.connected_before {
                        stats::add(&self.inner.stats.reconnects, 1);
                    }
                    self.connected_before = true;
                    return Some(stream);
                }
                Ok(Err(error)) => {
                    tracing::debug!(addr = %self.addr, %error, "TCP connect failed");
                }
                Err(_elapsed) => {
                    tracing::debug!(addr = %self.addr, "TCP connect timed out");
                }
            }
            stats::add(&self.inner.stats.connect_failures, 1);
            if started.elapsed() >= limits.idle_timeout {
                // Frames this old are no use to anyone, and a next hop gone
                // for good must not hold a queue forever.
                tracing::debug!(addr = %self.addr, "next hop unreachable; dropping its queue");
                return None;
            }
            tokio::time::sleep(self.backoff.next_pause()).await;
        }
    }

    /// Writes batches until the connection breaks or the queue retires.
    async fn serve(&mut self, stream: TcpStream, rx: &mut mpsc::Receiver<PacketBuf>) -> Leave {
        let (mut reader, mut writer) = stream.into_split();
        // Next hops never send on this connection; reading only notices
        // when they close it, so a dead connection is replaced before the
        // next frames are written into it and lost.
        let mut scratch = [0u8; 256];
        loop {
            if self.batch.is_empty() {
                let idle = self.inner.limits.idle_timeout;
                tokio::select! {
                    biased;
                    read = reader.read(&mut scratch) => match read {
                        Ok(0) | Err(_) => return Leave::Broken,
                        Ok(_) => continue, // unexpected bytes: ignore
                    },
                    got = tokio::time::timeout(idle, rx.recv_many(&mut self.batch, MAX_BATCH)) => {
                        match got {
                            Ok(0) => return Leave::Retired,
                            Ok(_) => {}
                            Err(_) if self.retire_if_idle() => return Leave::Retired,
                            Err(_) => continue,
                        }
                    }
                }
            }
            if !self.write_batch(&mut writer).await {
                return Leave::Broken;
            }
        }
    }

    /// Writes the batch; false (and the batch counted lost) on failure.
    async fn write_batch(&mut self, writer: &mut OwnedWriteHalf) -> bool {
        let mut codec = FrameCodec::new();
        self.out.clear();
        for frame in &self.batch {
            // `send` only queues whole frames, so this cannot fail; a frame
            // that somehow did would be skipped rather than break framing.
            let _ = codec.encode(frame, &mut self.out);
        }
        let n = self.batch.len();
        let write = async {
            writer.write_all(&self.out).await?;
            writer.flush().await
        };
        let ok = matches!(
            tokio::time::timeout(self.inner.limits.write_timeout, write).await,
            Ok(Ok(()))
        );
        let counter = if ok {
            // The connection carries traffic: the next failure starts the
            // backoff afresh.
            self.backoff.reset();
            &self.inner.stats.sent
        } else {
            tracing::debug!(addr = %self.addr, frames = n, "TCP write failed");
            &self.inner.stats.lost
        };
        stats::add(counter, n as u64);
        self.batch.clear();
        self.queue.release(n);
        ok
    }

    /// Retires the queue if nothing is waiting; true if it did.
    fn retire_if_idle(&self) -> bool {
        self.batch.is_empty()
            && self
                .inner
                .retire_if(self.addr, &self.queue, |queue| queue.pending() > 0)
    }

    /// Drops the batch taken from the queue, counting it.
    fn abandon_batch(&mut self) {
        let n = self.batch.len();
        self.batch.clear();
        stats::add(&self.inner.stats.abandoned, n as u64);
        self.queue.release(n);
    }

    /// Retires the queue and drops everything in it (at shutdown or when
    /// giving up on the next hop).
    fn drop_all(&mut self, rx: &mut mpsc::Receiver<PacketBuf>) {
        // Retired first, under the lock, so no frame can join the queue
        // after it is drained.
        self.inner.retire_if(self.addr, &self.queue, |_| false);
        self.abandon_batch();
        rx.close();
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        stats::add(&self.inner.stats.abandoned, n);
        self.queue.release(n as usize);
    }
}
