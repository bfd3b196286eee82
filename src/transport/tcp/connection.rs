//! One inbound connection: read frames, admit each through the source gate
//! and hand it to the pipeline. The read buffer is bounded, and a peer that
//! stalls mid-frame or goes quiet is dropped, so a connection costs a fixed
//! amount of memory however the peer behaves.
//!
//! Every connection runs on the node's one I/O thread, so the per-read
//! cost is kept small: a read's frames are admitted with one look-up, and
//! the connection's single timer is re-armed only when its deadline moves
//! earlier or it fires (not once per read).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::{BufMut, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use super::codec::FrameCodec;
use super::limits::TcpLimits;
use super::stats::{self, TcpStats};
use crate::pipeline::Submitter;
use crate::sphinx::FRAME_LEN;
use crate::transport::SourceGate;
use crate::transport::slots::SlotPermit;

/// Most bytes buffered per connection. A few frames per read keeps the
/// syscall count low; more would only let a fast peer hold more memory.
const READ_BUF_LEN: usize = 8 * FRAME_LEN;

/// What every connection shares.
pub(super) struct Shared {
    pub(super) gate: Arc<SourceGate>,
    pub(super) submitter: Submitter,
    pub(super) limits: TcpLimits,
    pub(super) stats: Arc<TcpStats>,
}

/// Serves `stream` until the peer leaves, misbehaves, its slot is given to
/// another connection or `shutdown` fires. Holds `slot` until it ends.
pub(super) async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    slot: SlotPermit,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let _active = ActiveGauge::enter(&shared.stats);
    let mut buf = BytesMut::with_capacity(READ_BUF_LEN);
    let mut codec = FrameCodec::new();
    // When the frame now partly buffered must be complete.
    let mut frame_deadline: Option<Instant> = None;
    // When bytes last arrived: the idle clock runs from there.
    let mut last_read = Instant::now();
    let timer = tokio::time::sleep_until((last_read + shared.limits.idle_timeout).into());
    tokio::pin!(timer);

    loop {
        let now = Instant::now();
        let completed = accept_frames(&shared, &mut codec, &mut buf, peer, now);

        let (deadline, stalled) = if buf.is_empty() {
            frame_deadline = None;
            (last_read + shared.limits.idle_timeout, false)
        } else {
            // The clock runs from the frame's first byte, not the last read,
            // so trickling a byte at a time does not keep a slot forever.
            if completed || frame_deadline.is_none() {
                frame_deadline = Some(now + shared.limits.read_timeout);
            }
            (frame_deadline.unwrap_or(now), true)
        };
        // A later deadline is caught up with lazily, when the timer fires.
        if deadline < timer.deadline().into_std() {
            timer.as_mut().reset(deadline.into());
        }

        // The frames above are dropped, so this reclaims the same
        // allocation: the buffer never grows past READ_BUF_LEN.
        buf.reserve(READ_BUF_LEN - buf.len());
        let room = READ_BUF_LEN - buf.len();
        let mut room = (&mut buf).limit(room);
        let read = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = slot.evicted().cancelled() => {
                tracing::debug!(%peer, "idle TCP connection evicted to make room");
                return;
            }
            read = stream.read_buf(&mut room) => read,
            () = &mut timer => {
                if Instant::now() < deadline {
                    timer.as_mut().reset(deadline.into());
                    continue;
                }
                let counter = if stalled {
                    &shared.stats.read_timeouts
                } else {
                    &shared.stats.idle_timeouts
                };
                stats::add(counter, 1);
                tracing::debug!(%peer, stalled, "closing timed-out TCP connection");
                return;
            }
        };

        match read {
            // Bytes moved: not idle, whatever they turn out to be.
            Ok(n) if n > 0 => {
                last_read = Instant::now();
                slot.touch(last_read);
            }
            // EOF or a socket error: either way the peer is gone.
            _ => {
                if !buf.is_empty() {
                    stats::add(&shared.stats.truncated_frames, 1);
                }
                return;
            }
        }
    }
}

/// Takes every whole frame out of `buf`, admits and submits each; true if
/// there was at least one. The frames of one read come from one peer, so
/// they are admitted with one look-up, and frame by frame only if that
/// fails (so a peer near its rate limit still gets what it is owed).
fn accept_frames(
    shared: &Shared,
    codec: &mut FrameCodec,
    buf: &mut BytesMut,
    peer: SocketAddr,
    now: Instant,
) -> bool {
    let n = buf.len() / FRAME_LEN;
    if n == 0 {
        return false;
    }
    let ingress = shared.submitter.ingress_counters();
    ingress.received_tcp.fetch_add(n as u64, Ordering::Relaxed);
    let whole = n > 1
        && u32::try_from(n)
            .ok()
            .is_some_and(|n| shared.gate.admit(peer, n, now).is_ok());
    // Decoding cannot fail: any FRAME_LEN bytes are a frame.
    while let Ok(Some(frame)) = codec.decode(buf) {
        if !whole && let Err(cause) = shared.gate.admit(peer, 1, now) {
            ingress.drop(cause);
            continue;
        }
        // A refusal (queue at its limit, shutdown) is counted by the
        // submitter itself, before any copy.
        let _ = shared.submitter.submit_frame(&frame, peer, now);
    }
    true
}

/// Keeps `active_connections` right however the task ends.
struct ActiveGauge(Arc<TcpStats>);

impl ActiveGauge {
    fn enter(stats: &Arc<TcpStats>) -> Self {
        stats::add(&stats.active_connections, 1);
        ActiveGauge(Arc::clone(stats))
    }
}

impl Drop for ActiveGauge {
    fn drop(&mut self) {
        stats::dec(&self.0.active_connections);
    }
}
