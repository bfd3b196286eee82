//! Every reason a node drops a packet: the spec's Sphinx reasons plus the
//! node's own (load, policy, shutdown). Each is a metrics label.

use std::fmt;

use crate::sphinx::DropReason;

/// Why a node dropped a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropCause {
    /// The Sphinx engine refused the frame.
    Sphinx(DropReason),
    /// A bounded queue was full (backpressure).
    Overload,
    /// The sender exceeded its per-source rate.
    RateLimited,
    /// RELAY to a node id the topology does not know.
    UnknownNextHop,
    /// A middle or exit node received a frame from outside the topology.
    UnauthorizedSource,
    /// DELIVER to a destination the exit policy does not allow, or at a
    /// node that is not an exit.
    ExitPolicy,
    /// Still held for mixing when the node shut down.
    Shutdown,
    /// The network refused the send (e.g. no route, buffer error).
    SendFailed,
    /// The replay filter of the packet's key reached its memory budget: the
    /// packet could not be checked, so it was refused (fail closed).
    ReplayCapacity,
    /// The packet waited longer than the allowed dwell time between arrival
    /// and unwrap (the node is overloaded; Katzenpost's `UnwrapDelay`).
    Dwell,
    /// A plaintext frame where only authenticated link sessions are taken
    /// (at a middle or exit node with links on, or at an entry node with
    /// `transport.client_plaintext = false`), whatever its source address.
    Unauthenticated,
}

impl DropCause {
    /// Number of distinct causes (the size of a counter array).
    pub const COUNT: usize = DropReason::ALL.len() + 10;

    /// Every cause, in a fixed order matching [`index`](Self::index).
    pub const ALL: [DropCause; Self::COUNT] = [
        DropCause::Sphinx(DropReason::Malformed),
        DropCause::Sphinx(DropReason::InvalidKey),
        DropCause::Sphinx(DropReason::Mac),
        DropCause::Sphinx(DropReason::Replay),
        DropCause::Sphinx(DropReason::Routing),
        DropCause::Sphinx(DropReason::Payload),
        DropCause::Overload,
        DropCause::RateLimited,
        DropCause::UnknownNextHop,
        DropCause::UnauthorizedSource,
        DropCause::ExitPolicy,
        DropCause::Shutdown,
        DropCause::SendFailed,
        DropCause::ReplayCapacity,
        DropCause::Dwell,
        DropCause::Unauthenticated,
    ];

    /// Position in [`ALL`](Self::ALL), for counter arrays.
    pub const fn index(self) -> usize {
        match self {
            DropCause::Sphinx(DropReason::Malformed) => 0,
            DropCause::Sphinx(DropReason::InvalidKey) => 1,
            DropCause::Sphinx(DropReason::Mac) => 2,
            DropCause::Sphinx(DropReason::Replay) => 3,
            DropCause::Sphinx(DropReason::Routing) => 4,
            DropCause::Sphinx(DropReason::Payload) => 5,
            DropCause::Overload => 6,
            DropCause::RateLimited => 7,
            DropCause::UnknownNextHop => 8,
            DropCause::UnauthorizedSource => 9,
            DropCause::ExitPolicy => 10,
            DropCause::Shutdown => 11,
            DropCause::SendFailed => 12,
            DropCause::ReplayCapacity => 13,
            DropCause::Dwell => 14,
            DropCause::Unauthenticated => 15,
        }
    }

    /// The metrics label (`reason="…"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            DropCause::Sphinx(reason) => reason.as_str(),
            DropCause::Overload => "overload",
            DropCause::RateLimited => "rate_limited",
            DropCause::UnknownNextHop => "unknown_next_hop",
            DropCause::UnauthorizedSource => "unauthorized_source",
            DropCause::ExitPolicy => "exit_policy",
            DropCause::Shutdown => "shutdown",
            DropCause::SendFailed => "send_failed",
            DropCause::ReplayCapacity => "replay_capacity",
            DropCause::Dwell => "dwell",
            DropCause::Unauthenticated => "unauthenticated",
        }
    }
}

impl From<DropReason> for DropCause {
    fn from(reason: DropReason) -> Self {
        DropCause::Sphinx(reason)
    }
}

impl fmt::Display for DropCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_position_and_labels_are_unique() {
        let mut labels = std::collections::HashSet::new();
        for (i, cause) in DropCause::ALL.iter().enumerate() {
            assert_eq!(cause.index(), i);
            assert!(labels.insert(cause.as_str()));
        }
    }
}
