//! The TCP listener: accepts connections, refuses strangers where only
//! members may send, enforces the connection slots and runs one task per
//! connection until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::connection::{self, Shared};
use super::limits::TcpLimits;
use super::stats::{self, TcpStats};
use crate::pipeline::Submitter;
use crate::transport::slots::{SlotPolicy, Slots};
use crate::transport::{LinkContext, SourceGate};

/// Pause after a failed `accept`. Failures like "too many open files" would
/// otherwise make the loop spin at full speed until a descriptor frees up.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(20);

/// Receives Sphinx frames over TCP and feeds them to the pipeline.
///
/// Build it, keep [`stats`](Self::stats) for metrics, then
/// [`run`](Self::run) it on a listener.
pub struct TcpServer {
    shared: Arc<Shared>,
    slots: Arc<Slots>,
}

impl TcpServer {
    /// A server admitting frames through `gate` into `submitter`'s pipeline.
    pub fn new(gate: Arc<SourceGate>, submitter: Submitter, limits: TcpLimits) -> Self {
        Self::with_links(gate, submitter, limits, None)
    }

    /// As [`new`](Self::new), answering link handshakes with `links` (and
    /// applying its rules to plaintext frames) when given.
    pub fn with_links(
        gate: Arc<SourceGate>,
        submitter: Submitter,
        limits: TcpLimits,
        links: Option<Arc<LinkContext>>,
    ) -> Self {
        let limits = limits.sanitized();
        let slots = Slots::new(SlotPolicy {
            per_source: limits.max_connections_per_source,
            total: limits.max_connections,
            reserved_for_members: limits.reserved_member_connections,
            stranger_evictable_after: limits.stranger_evictable_after,
        });
        TcpServer {
            shared: Arc::new(Shared {
                gate,
                submitter,
                limits,
                stats: Arc::new(TcpStats::default()),
                links,
                handshakes: Arc::new(tokio::sync::Semaphore::new(
                    connection::MAX_CONCURRENT_HANDSHAKES,
                )),
            }),
            slots,
        }
    }

    /// The server's connection counters.
    pub fn stats(&self) -> &Arc<TcpStats> {
        &self.shared.stats
    }

    /// Accepts on `listener` until `shutdown` fires, then closes every
    /// connection and returns once their tasks have ended, so no frame is
    /// submitted after this returns.
    pub async fn run(self, listener: TcpListener, shutdown: CancellationToken) {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                // Reap finished connections so the set stays as small as the
                // number open.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => self.start(stream, peer, &mut connections, &shutdown),
                    Err(error) => {
                        tracing::debug!(%error, "TCP accept failed");
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                        }
                    }
                },
            }
        }
        drop(listener);
        // Every connection watches the same token, so this is prompt.
        while connections.join_next().await.is_some() {}
    }

    /// Starts serving one accepted connection, or closes it: a stranger
    /// where only members may send, or no slot for it.
    fn start(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        connections: &mut JoinSet<()>,
        shutdown: &CancellationToken,
    ) {
        let stats = &self.shared.stats;
        // Dropping `stream` on the early returns closes it.
        let Some(class) = self.shared.gate.classify(peer.ip()) else {
            stats::add(&stats.unauthorized_connections, 1);
            tracing::debug!(%peer, "TCP connection from outside the topology; closing");
            return;
        };
        let admission = match self.slots.try_acquire(peer.ip(), class, Instant::now()) {
            Ok(admission) => admission,
            Err(refusal) => {
                stats::add(&stats.rejected_connections, 1);
                tracing::debug!(%peer, ?refusal, "no TCP connection slot; closing");
                return;
            }
        };
        if admission.evicted_another {
            stats::add(&stats.evicted_connections, 1);
        }
        let permit = admission.permit;
        stats::add(&stats.accepted, 1);
        // Frames are latency-sensitive; never wait to coalesce small writes.
        // Failure means the socket is already dead, which the read reports.
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&self.shared);
        let shutdown = shutdown.clone();
        connections.spawn(connection::serve(stream, peer, permit, shared, shutdown));
    }
}

/// Runs a [`TcpServer`] on `listener` until `shutdown`; for callers that do
/// not need its counters.
pub async fn serve(
    listener: TcpListener,
    gate: Arc<SourceGate>,
    submitter: Submitter,
    limits: TcpLimits,
    shutdown: CancellationToken,
) {
    TcpServer::new(gate, submitter, limits)
        .run(listener, shutdown)
        .await;
}
