//! Why a handshake or a record was refused, as metric labels.

use std::fmt;

/// Why a link handshake failed. Each is a label of
/// `betanet_link_handshakes_total{result}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HandshakeFailure {
    /// Not the link protocol's framing (bad magic, length, or reserved bits).
    Malformed,
    /// Another protocol version, or a pattern this build does not run (a
    /// classical-only handshake is one: downgrades are refused here).
    Unsupported,
    /// The preamble names a key epoch whose link key this node no longer
    /// (or does not yet) hold.
    UnknownKey,
    /// The Noise handshake did not authenticate: a wrong or substituted key
    /// (a man in the middle), or altered bytes.
    Crypto,
    /// The initiator's static key belongs to no topology member.
    UnknownPeer,
    /// An anonymous initiator at a middle or exit node, which takes frames
    /// only from members.
    AnonymousRefused,
    /// The source is over its rate budget (a handshake is charged as
    /// several frames).
    RateLimited,
    /// The peer did not complete the handshake in time.
    Timeout,
    /// The connection failed during the handshake.
    Io,
}

impl HandshakeFailure {
    /// Every reason, for pre-registering metric labels.
    pub const ALL: [HandshakeFailure; 9] = [
        HandshakeFailure::Malformed,
        HandshakeFailure::Unsupported,
        HandshakeFailure::UnknownKey,
        HandshakeFailure::Crypto,
        HandshakeFailure::UnknownPeer,
        HandshakeFailure::AnonymousRefused,
        HandshakeFailure::RateLimited,
        HandshakeFailure::Timeout,
        HandshakeFailure::Io,
    ];

    /// Position in [`ALL`](Self::ALL), for counter arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::Malformed => "malformed",
            HandshakeFailure::Unsupported => "unsupported",
            HandshakeFailure::UnknownKey => "unknown_key",
            HandshakeFailure::Crypto => "crypto",
            HandshakeFailure::UnknownPeer => "unknown_peer",
            HandshakeFailure::AnonymousRefused => "anonymous_refused",
            HandshakeFailure::RateLimited => "rate_limited",
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Io => "io",
        }
    }
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for HandshakeFailure {}

/// A record that did not decrypt: replayed, reordered, forged or cut.
/// The session cannot continue after one (its nonces are out of step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRejected;

impl fmt::Display for RecordRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("link record failed authentication (replayed, reordered or forged)")
    }
}

impl std::error::Error for RecordRejected {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_position_and_labels_are_unique() {
        let mut labels = std::collections::HashSet::new();
        for (i, why) in HandshakeFailure::ALL.iter().enumerate() {
            assert_eq!(why.index(), i);
            assert!(labels.insert(why.as_str()));
        }
    }
}
