//! The writer task of one next hop: connects lazily, writes queued frames
//! in batches, reconnects with backoff, and retires when idle.
//!
//! It runs on the node's one I/O thread, next to every inbound connection,
//! so its cost per wake-up is kept small: a batch is written with a plain
//! non-blocking write when the socket takes it (the usual case), and
//! timers are armed only when a write must wait or, for idleness, once
//! per idle period rather than once per batch.
//!
//! Frames queued while the connection is down wait (the queue is bounded
//! by `send`). Frames whose write failed are counted as lost, not retried:
//! part of them may have arrived, and the next hop's replay cache would
//! drop a resent copy anyway.

use std::io;
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
use crate::link::handshake::MAX_HANDSHAKE_LEN;
use crate::link::session::Sealer;
use crate::link::{HandshakeFailure, Initiator, RECORD_LEN};
use crate::pipeline::PacketBuf;
use crate::sphinx::FRAME_LEN;
use crate::transport::links::{SessionClass, SessionGauge};

/// Frames gathered for one write: once a batch holds this many, no further
/// group joins it. Large enough to amortise the syscall, small enough that
/// one broken write loses little (a single group may exceed it).
const MAX_BATCH: usize = 64;

/// Runs until shutdown or until the next hop has been idle long enough to
/// retire its queue.
pub(super) async fn run(
    inner: Arc<Inner>,
    addr: SocketAddr,
    queue: Arc<PeerQueue>,
    mut rx: mpsc::Receiver<Vec<PacketBuf>>,
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
        sealer: None,
        sealed: Vec::new(),
        session: None,
        handshake_failing_since: None,
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
    /// The link session's sending half, when the next hop is a member and
    /// links are on: batches are sealed into records.
    sealer: Option<Sealer>,
    /// The sealed batch.
    sealed: Vec<u8>,
    /// Counts the open session in `betanet_link_sessions`.
    session: Option<SessionGauge>,
    /// Since when every handshake with this next hop has failed.
    handshake_failing_since: Option<Instant>,
}

/// Why the writer left a connected stretch.
enum Leave {
    /// The connection broke or the peer closed it.
    Broken,
    /// The queue was retired.
    Retired,
}

impl Writer {
    async fn run(&mut self, rx: &mut mpsc::Receiver<Vec<PacketBuf>>) -> End {
        loop {
            // Disconnected: only connect once there is something to send.
            if self.batch.is_empty() && !self.wait_for_frames(rx).await {
                return End::Retired;
            }
            let Some(mut stream) = self.connect().await else {
                return End::Abandon;
            };
            if let Err(why) = self.open_session(&mut stream).await {
                if let Some(links) = &self.inner.links {
                    links.stats().failed(why);
                }
                stats::add(&self.inner.stats.connect_failures, 1);
                tracing::debug!(addr = %self.addr, %why, "link handshake failed");
                let failing = *self
                    .handshake_failing_since
                    .get_or_insert_with(Instant::now);
                if failing.elapsed() >= self.inner.limits.idle_timeout {
                    return End::Abandon;
                }
                tokio::time::sleep(self.backoff.next_pause()).await;
                continue;
            }
            self.handshake_failing_since = None;
            match self.serve(stream, rx).await {
                Leave::Broken => continue,
                Leave::Retired => return End::Retired,
            }
        }
    }

    /// Fills the batch; false when the queue was retired for idleness.
    async fn wait_for_frames(&mut self, rx: &mut mpsc::Receiver<Vec<PacketBuf>>) -> bool {
        loop {
            let idle = self.inner.limits.idle_timeout;
            match tokio::time::timeout(idle, self.gather(rx)).await {
                Ok(got) => return got, // false: every sender is gone
                Err(_) => {
                    if self.retire_if_idle() {
                        return false;
                    }
                }
            }
        }
    }

    /// Waits for the next group, then adds whatever else is queued, up to
    /// [`MAX_BATCH`] frames. False once every sender is gone. Cancel-safe:
    /// the only await is the channel's, and nothing is taken before it.
    async fn gather(&mut self, rx: &mut mpsc::Receiver<Vec<PacketBuf>>) -> bool {
        let Some(group) = rx.recv().await else {
            return false;
        };
        self.batch.extend(group);
        while self.batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(group) => self.batch.extend(group),
                Err(_) => break,
            }
        }
        true
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

    /// Opens a link session on `stream` if the next hop is a member that
    /// publishes a link key and links are on (else the connection carries
    /// plaintext frames, as to a non-member). The peer's key is pinned from
    /// its signed descriptor: anyone else fails the handshake.
    async fn open_session(&mut self, stream: &mut TcpStream) -> Result<(), HandshakeFailure> {
        self.sealer = None;
        self.session = None;
        let Some(links) = &self.inner.links else {
            return Ok(());
        };
        let Some((peer_key, epoch)) = links.peer_key(self.addr) else {
            return Ok(());
        };
        let own = links.own_key().ok_or(HandshakeFailure::UnknownKey)?;
        let (initiator, first) = Initiator::start(Some(&own), &peer_key, epoch)?;
        let deadline = Instant::now() + self.inner.limits.connect_timeout;
        let exchange = async {
            stream.write_all(&first).await?;
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).await?;
            let len = usize::from(u16::from_be_bytes(len));
            if len > MAX_HANDSHAKE_LEN {
                return Err(io::ErrorKind::InvalidData.into());
            }
            let mut reply = vec![0u8; len];
            stream.read_exact(&mut reply).await?;
            Ok::<_, io::Error>(reply)
        };
        let reply = match tokio::time::timeout_at(deadline.into(), exchange).await {
            Err(_) => return Err(HandshakeFailure::Timeout),
            Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(HandshakeFailure::Malformed);
            }
            Ok(Err(_)) => return Err(HandshakeFailure::Io),
            Ok(Ok(reply)) => reply,
        };
        let session = initiator.finish(&reply)?;
        stats::add(&links.stats().handshakes_ok, 1);
        self.sealer = Some(session.sealer);
        self.session = Some(SessionGauge::enter(
            links.stats(),
            SessionClass::MemberOutbound,
        ));
        tracing::debug!(addr = %self.addr, key = %peer_key.fingerprint(), "link session opened");
        Ok(())
    }

    /// Writes batches until the connection breaks or the queue retires.
    async fn serve(&mut self, stream: TcpStream, rx: &mut mpsc::Receiver<Vec<PacketBuf>>) -> Leave {
        let (mut reader, mut writer) = stream.into_split();
        // Next hops never send on this connection; reading only notices
        // when they close it, so a dead connection is replaced before the
        // next frames are written into it and lost.
        let mut scratch = [0u8; 256];
        let idle = self.inner.limits.idle_timeout;
        // One timer for idleness, re-armed only when it fires: a busy
        // queue writes thousands of batches per idle period.
        let mut last_write = Instant::now();
        let idle_check = tokio::time::sleep_until((last_write + idle).into());
        tokio::pin!(idle_check);
        loop {
            if self.batch.is_empty() {
                tokio::select! {
                    biased;
                    read = reader.read(&mut scratch) => match read {
                        Ok(0) | Err(_) => return Leave::Broken,
                        Ok(_) => continue, // unexpected bytes: ignore
                    },
                    got = self.gather(rx) => if !got {
                        return Leave::Retired;
                    },
                    () = &mut idle_check => {
                        let due = last_write + idle;
                        if Instant::now() >= due {
                            if self.retire_if_idle() {
                                return Leave::Retired;
                            }
                            last_write = Instant::now();
                        }
                        idle_check.as_mut().reset((last_write + idle).into());
                        continue;
                    }
                }
            }
            if !self.write_batch(&mut writer).await {
                return Leave::Broken;
            }
            last_write = Instant::now();
        }
    }

    /// Writes the batch; false (and the batch counted lost) on failure.
    async fn write_batch(&mut self, writer: &mut OwnedWriteHalf) -> bool {
        let bytes: &[u8] = if let Some(sealer) = &mut self.sealer {
            self.sealed.clear();
            self.sealed.reserve(self.batch.len() * RECORD_LEN);
            let now = Instant::now();
            let before = sealer.rekeys();
            for frame in &self.batch {
                // `send` only queues whole frames, so this cannot fail; a
                // frame that somehow did would be skipped, not sent.
                let _ = sealer.seal(now, frame, &mut self.sealed);
            }
            if let Some(links) = &self.inner.links {
                stats::add(&links.stats().rekeys, sealer.rekeys() - before);
            }
            &self.sealed
        } else {
            let mut codec = FrameCodec::new();
            self.out.clear();
            for frame in &self.batch {
                // As above: whole frames only.
                let _ = codec.encode(frame, &mut self.out);
            }
            &self.out
        };
        let n = self.batch.len();
        let ok = match write_now(writer, bytes) {
            Ok(written) if written == bytes.len() => true,
            // The socket buffer is full: wait for room, but not forever.
            Ok(written) => {
                let rest = &bytes[written..];
                let write = async {
                    writer.write_all(rest).await?;
                    writer.flush().await
                };
                matches!(
                    tokio::time::timeout(self.inner.limits.write_timeout, write).await,
                    Ok(Ok(()))
                )
            }
            Err(_) => false,
        };
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
    fn drop_all(&mut self, rx: &mut mpsc::Receiver<Vec<PacketBuf>>) {
        // Retired first, under the lock, so no frame can join the queue
        // after it is drained.
        self.inner.retire_if(self.addr, &self.queue, |_| false);
        self.abandon_batch();
        rx.close();
        let mut n = 0;
        while let Ok(group) = rx.try_recv() {
            n += group.len();
        }
        stats::add(&self.inner.stats.abandoned, n as u64);
        self.queue.release(n);
    }
}

/// Writes as much of `bytes` as the socket takes without waiting; how much
/// that was. On loopback and any connection with an open window, that is
/// all of it, and no timer or waker is involved.
fn write_now(writer: &OwnedWriteHalf, bytes: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        match writer.try_write(&bytes[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}
