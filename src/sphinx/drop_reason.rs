//! Why a hop refuses a frame (`sphinx-v1.md`, "Processing one hop").

use std::fmt;

/// The spec's drop reasons, exactly. Nodes count every drop by reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Wrong length, version or kind.
    Malformed,
    /// `α` non-canonical, on the twist, or giving an all-zero shared secret.
    InvalidKey,
    /// The header MAC does not verify.
    Mac,
    /// The replay tag was seen before under this key.
    Replay,
    /// Unknown routing command.
    Routing,
    /// The final hop's payload is not well formed (tampered or garbled).
    Payload,
}

impl DropReason {
    /// Every reason, in spec order.
    pub const ALL: [DropReason; 6] = [
        DropReason::Malformed,
        DropReason::InvalidKey,
        DropReason::Mac,
        DropReason::Replay,
        DropReason::Routing,
        DropReason::Payload,
    ];

    /// The spec's name, used as the metrics label.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::InvalidKey => "invalid_key",
            DropReason::Mac => "mac",
            DropReason::Replay => "replay",
            DropReason::Routing => "routing",
            DropReason::Payload => "payload",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
