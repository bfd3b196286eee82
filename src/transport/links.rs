//! What the TCP transport needs to run link sessions: this node's link
//! keys, the topology (whose descriptors hold every member's link keys),
//! the admission rules by role, and the counters operators watch.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::link::{
    Accepted, HandshakeFailure, LinkKeyPair, LinkKeys, LinkPattern, LinkPublicKey, PeerIdentity,
    Preamble, member_with_key, respond,
};
use crate::role::NodeRole;
use crate::topology::LiveTopology;

/// Link counters, read by metrics.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Handshakes completed (either side).
    pub handshakes_ok: AtomicU64,
    /// Handshakes failed, by [`HandshakeFailure`] (indexed as `ALL`).
    pub handshakes_failed: [AtomicU64; HandshakeFailure::ALL.len()],
    /// Sessions open now: inbound from members.
    pub sessions_member_inbound: AtomicI64,
    /// Sessions open now: outbound to members.
    pub sessions_member_outbound: AtomicI64,
    /// Sessions open now: inbound from anonymous clients.
    pub sessions_client: AtomicI64,
    /// Rekeys (sent and received).
    pub rekeys: AtomicU64,
    /// Records that failed authentication (each ends its session).
    pub records_rejected: AtomicU64,
}

impl LinkStats {
    /// Counts one failed handshake.
    pub fn failed(&self, why: HandshakeFailure) {
        self.handshakes_failed[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Failed handshakes for `why` so far.
    pub fn failures(&self, why: HandshakeFailure) -> u64 {
        self.handshakes_failed[why.index()].load(Ordering::Relaxed)
    }
}

/// Which gauge an open session counts in; decremented when dropped.
pub(crate) struct SessionGauge(Arc<LinkStats>, SessionClass);

#[derive(Clone, Copy)]
pub(crate) enum SessionClass {
    MemberInbound,
    MemberOutbound,
    Client,
}

impl SessionGauge {
    pub(crate) fn enter(stats: &Arc<LinkStats>, class: SessionClass) -> Self {
        gauge(stats, class).fetch_add(1, Ordering::Relaxed);
        SessionGauge(Arc::clone(stats), class)
    }
}

impl Drop for SessionGauge {
    fn drop(&mut self) {
        gauge(&self.0, self.1).fetch_sub(1, Ordering::Relaxed);
    }
}

fn gauge(stats: &LinkStats, class: SessionClass) -> &AtomicI64 {
    match class {
        SessionClass::MemberInbound => &stats.sessions_member_inbound,
        SessionClass::MemberOutbound => &stats.sessions_member_outbound,
        SessionClass::Client => &stats.sessions_client,
    }
}

/// A node's link settings and state, shared by its TCP server and egress.
pub struct LinkContext {
    keys: Arc<LinkKeys>,
    topology: Arc<LiveTopology>,
    role: NodeRole,
    client_plaintext: bool,
    stats: Arc<LinkStats>,
}

impl LinkContext {
    /// Links for a node of `role` holding `keys`, whose members are those
    /// of `topology`. `client_plaintext`: an entry node also takes
    /// plaintext client frames.
    pub fn new(
        keys: Arc<LinkKeys>,
        topology: Arc<LiveTopology>,
        role: NodeRole,
        client_plaintext: bool,
    ) -> Self {
        LinkContext {
            keys,
            topology,
            role,
            client_plaintext,
            stats: Arc::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<LinkStats> {
        &self.stats
    }

    /// Whether plaintext frames (outside any session) may enter: only at an
    /// entry node that still takes plaintext clients. Middle and exit nodes
    /// take nothing but member sessions, whatever a frame's source address.
    pub fn plaintext_allowed(&self) -> bool {
        self.role == NodeRole::Entry && self.client_plaintext
    }

    /// Answers a handshake (CPU-bound: a few hundred µs): picks this node's
    /// key for the preamble's epoch, refuses anonymous initiators except at
    /// an entry node, and members' keys not in the topology.
    pub fn accept(
        &self,
        preamble: &Preamble,
        message: &[u8],
    ) -> Result<(PeerIdentity, Accepted), HandshakeFailure> {
        if preamble.pattern == LinkPattern::Anonymous && self.role != NodeRole::Entry {
            return Err(HandshakeFailure::AnonymousRefused);
        }
        let keys = self.keys.load();
        let own = keys
            .for_epoch(preamble.key_epoch)
            .ok_or(HandshakeFailure::UnknownKey)?;
        let mut identity = PeerIdentity::Anonymous;
        let accepted = respond(preamble, message, own, |peer| {
            if let Some(key) = peer {
                let id = member_with_key(&self.topology.snapshot(), key)
                    .ok_or(HandshakeFailure::UnknownPeer)?;
                identity = PeerIdentity::Member(id);
            }
            Ok(())
        })?;
        Ok((identity, accepted))
    }

    /// The key pair this node opens sessions with.
    pub fn own_key(&self) -> Option<Arc<LinkKeyPair>> {
        self.keys.load().current().cloned()
    }

    /// The link key (and its epoch) of the member listening on TCP at
    /// `addr`, for the current epoch; `None` for a non-member (a DELIVER
    /// destination) or a member that publishes no link key.
    pub fn peer_key(&self, addr: SocketAddr) -> Option<(LinkPublicKey, u64)> {
        let epoch = self.keys.load().current_epoch()?;
        let topology = self.topology.snapshot();
        let node = topology.nodes().iter().find(|n| n.tcp_addr == addr)?;
        let entry = node.link_key_for_epoch(epoch)?;
        Some((entry.public_key.clone(), entry.epoch))
    }
}
