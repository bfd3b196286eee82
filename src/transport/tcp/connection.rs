//! One inbound connection: read frames, admit each through the source gate
//! and hand it to the pipeline. The read buffer is bounded, and a peer that
//! stalls mid-frame or goes quiet is dropped, so a connection costs a fixed
//! amount of memory however the peer behaves.
//!
//! A connection whose first byte starts a link preamble is a link: the
//! handshake is answered (its crypto on the blocking pool, at most
//! [`MAX_CONCURRENT_HANDSHAKES`] at once, each charged to the source's rate
//! budget first) and then records are read instead of frames. Plaintext
//! frames are dropped as `unauthenticated` where only sessions count.
//!
//! Every connection runs on the node's one I/O thread, so the per-read
//! cost is kept small: a read's frames are admitted with one look-up, and
//! the connection's single timer is re-armed only when its deadline moves
//! earlier or it fires (not once per read).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder as _;
use tokio_util::sync::CancellationToken;

use super::codec::FrameCodec;
use super::limits::TcpLimits;
use super::stats::{self, TcpStats};
use crate::link::handshake::{MAX_HANDSHAKE_LEN, PREAMBLE_LEN};
use crate::link::session::Opener;
use crate::link::{HandshakeFailure, PeerIdentity, Preamble, RECORD_LEN, starts_link};
use crate::pipeline::DropCause;
use crate::pipeline::Submitter;
use crate::sphinx::FRAME_LEN;
use crate::transport::LinkContext;
use crate::transport::SourceGate;
use crate::transport::links::{SessionClass, SessionGauge};
use crate::transport::slots::SlotPermit;

/// Most bytes buffered per connection. A few records per read keeps the
/// syscall count low; more would only let a fast peer hold more memory.
/// (Also holds a whole first handshake flight.)
const READ_BUF_LEN: usize = 8 * RECORD_LEN;

/// Handshakes answered at once, node-wide: each costs a few hundred µs of
/// CPU, so a flood of them waits here instead of crowding out unwrapping.
pub(super) const MAX_CONCURRENT_HANDSHAKES: usize = 2;

/// A handshake costs about as much as this many frames' unwraps; it is
/// charged to the source's rate budget before any crypto is done.
const HANDSHAKE_COST_FRAMES: u32 = 8;

/// What every connection shares.
pub(super) struct Shared {
    pub(super) gate: Arc<SourceGate>,
    pub(super) submitter: Submitter,
    pub(super) limits: TcpLimits,
    pub(super) stats: Arc<TcpStats>,
    pub(super) links: Option<Arc<LinkContext>>,
    pub(super) handshakes: Arc<tokio::sync::Semaphore>,
}

/// How the bytes of a connection become frames.
enum Unwrapping {
    /// Frames back to back, no session.
    Plain(FrameCodec),
    /// A link session's records.
    Link {
        opener: Opener,
        _gauge: SessionGauge,
    },
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
    let mut decoder = Unwrapping::Plain(FrameCodec::new());
    if let Some(links) = &shared.links {
        let opened = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            opened = open_link(&mut stream, &mut buf, peer, &shared, links) => opened,
        };
        match opened {
            Ok(Some(link)) => decoder = link,
            Ok(None) => {}
            Err(why) => {
                links.stats().failed(why);
                tracing::debug!(%peer, %why, "link handshake refused");
                return;
            }
        }
    }
    // When the frame now partly buffered must be complete.
    let mut frame_deadline: Option<Instant> = None;
    // When bytes last arrived: the idle clock runs from there.
    let mut last_read = Instant::now();
    let timer = tokio::time::sleep_until((last_read + shared.limits.idle_timeout).into());
    tokio::pin!(timer);

    loop {
        let now = Instant::now();
        let completed = match accept_frames(&shared, &mut decoder, &mut buf, peer, now) {
            Ok(completed) => completed,
            Err(()) => {
                tracing::debug!(%peer, "link record failed authentication; closing");
                return;
            }
        };

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

/// Takes every whole frame (or record) out of `buf`, admits and submits
/// each; true if there was at least one. The frames of one read come from
/// one peer, so they are admitted with one look-up, and frame by frame only
/// if that fails (so a peer near its rate limit still gets what it is
/// owed). `Err` when a record fails authentication: the session is over.
fn accept_frames(
    shared: &Shared,
    decoder: &mut Unwrapping,
    buf: &mut BytesMut,
    peer: SocketAddr,
    now: Instant,
) -> Result<bool, ()> {
    let unit = match decoder {
        Unwrapping::Plain(_) => FRAME_LEN,
        Unwrapping::Link { .. } => RECORD_LEN,
    };
    let n = buf.len() / unit;
    if n == 0 {
        return Ok(false);
    }
    let ingress = shared.submitter.ingress_counters();
    ingress.received_tcp.fetch_add(n as u64, Ordering::Relaxed);
    if shared.gate.plaintext_refused() && matches!(decoder, Unwrapping::Plain(_)) {
        // Outside any session: nothing here proves who sent it.
        for _ in 0..n {
            ingress.drop(DropCause::Unauthenticated);
        }
        buf.advance(n * unit);
        return Ok(true);
    }
    let whole = n > 1
        && u32::try_from(n)
            .ok()
            .is_some_and(|n| shared.gate.admit(peer, n, now).is_ok());
    match decoder {
        Unwrapping::Plain(codec) => {
            // Decoding cannot fail: any FRAME_LEN bytes are a frame.
            while let Ok(Some(frame)) = codec.decode(buf) {
                submit(shared, whole, &frame, peer, now);
            }
        }
        Unwrapping::Link { opener, .. } => {
            while buf.len() >= RECORD_LEN {
                let mut record = buf.split_to(RECORD_LEN);
                let before = opener.rekeys();
                match opener.open(&mut record) {
                    Ok(Some(frame)) => submit(shared, whole, frame, peer, now),
                    Ok(None) => {}
                    Err(_) => {
                        if let Some(links) = &shared.links {
                            stats::add(&links.stats().records_rejected, 1);
                        }
                        return Err(());
                    }
                }
                if opener.rekeys() != before
                    && let Some(links) = &shared.links
                {
                    stats::add(&links.stats().rekeys, 1);
                }
            }
        }
    }
    Ok(true)
}

/// Admits (unless the whole read was) and submits one frame.
fn submit(shared: &Shared, admitted: bool, frame: &[u8], peer: SocketAddr, now: Instant) {
    if !admitted && let Err(cause) = shared.gate.admit(peer, 1, now) {
        shared.submitter.ingress_counters().drop(cause);
        return;
    }
    // A refusal (queue at its limit, shutdown) is counted by the submitter
    // itself, before any copy.
    let _ = shared.submitter.submit_frame(frame, peer, now);
}

/// Reads until `buf` holds `want` bytes; `Timeout` after `deadline`.
async fn fill(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    want: usize,
    deadline: Instant,
) -> Result<(), HandshakeFailure> {
    while buf.len() < want {
        let room = READ_BUF_LEN.saturating_sub(buf.len());
        if room == 0 {
            return Err(HandshakeFailure::Malformed);
        }
        let mut limited = (&mut *buf).limit(room);
        match tokio::time::timeout_at(deadline.into(), stream.read_buf(&mut limited)).await {
            Err(_) => return Err(HandshakeFailure::Timeout),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(HandshakeFailure::Io),
            Ok(Ok(_)) => {}
        }
    }
    Ok(())
}

/// Reads the first byte; if it starts a link, runs the handshake and
/// returns the session's decoder. `Ok(None)`: plaintext (the bytes read
/// stay in `buf`).
async fn open_link(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    links: &Arc<LinkContext>,
) -> Result<Option<Unwrapping>, HandshakeFailure> {
    let deadline = Instant::now() + shared.limits.read_timeout;
    buf.reserve(READ_BUF_LEN);
    fill(stream, buf, 1, deadline).await?;
    if !starts_link(buf[0]) {
        return Ok(None);
    }
    fill(stream, buf, PREAMBLE_LEN + 2, deadline).await?;
    let mut head = [0u8; PREAMBLE_LEN];
    head.copy_from_slice(&buf[..PREAMBLE_LEN]);
    let preamble = Preamble::decode(&head)?;
    let len = usize::from(u16::from_be_bytes([
        buf[PREAMBLE_LEN],
        buf[PREAMBLE_LEN + 1],
    ]));
    if len > MAX_HANDSHAKE_LEN {
        return Err(HandshakeFailure::Malformed);
    }
    fill(stream, buf, PREAMBLE_LEN + 2 + len, deadline).await?;
    buf.advance(PREAMBLE_LEN + 2);
    let message = buf.split_to(len);
    if shared
        .gate
        .admit(peer, HANDSHAKE_COST_FRAMES, Instant::now())
        .is_err()
    {
        return Err(HandshakeFailure::RateLimited);
    }
    let permit = tokio::time::timeout_at(
        deadline.into(),
        Arc::clone(&shared.handshakes).acquire_owned(),
    )
    .await
    .map_err(|_| HandshakeFailure::Timeout)?
    .map_err(|_| HandshakeFailure::Io)?;
    let ctx = Arc::clone(links);
    let answered = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        ctx.accept(&preamble, &message)
    })
    .await
    .map_err(|_| HandshakeFailure::Io)?;
    let (identity, accepted) = answered?;
    let reply = tokio::time::timeout_at(deadline.into(), stream.write_all(&accepted.reply));
    match reply.await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return Err(HandshakeFailure::Io),
        Err(_) => return Err(HandshakeFailure::Timeout),
    }
    stats::add(&links.stats().handshakes_ok, 1);
    let class = match identity {
        PeerIdentity::Member(_) => SessionClass::MemberInbound,
        PeerIdentity::Anonymous => SessionClass::Client,
    };
    tracing::debug!(%peer, ?identity, "link session established");
    Ok(Some(Unwrapping::Link {
        opener: accepted.session.opener,
        _gauge: SessionGauge::enter(links.stats(), class),
    }))
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
