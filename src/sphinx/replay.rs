//! Replay tags and the hook through which the caller's replay cache is
//! consulted. The cache itself (sizing, persistence, epochs) is the node's.

use std::collections::HashSet;
use std::fmt;

/// A packet's replay tag `τ` at one hop. Two packets with the same tag at the
/// same node under the same key are the same packet.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplayTag(pub [u8; 32]);

impl ReplayTag {
    /// The first 16 bytes, which the spec allows a cache to keep.
    pub fn prefix(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out.copy_from_slice(&self.0[..16]);
        out
    }
}

impl fmt::Debug for ReplayTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplayTag({})", hex::encode(self.0))
    }
}

/// The caller's replay cache, consulted once per packet after its MAC
/// verified, so forged packets cannot fill it.
pub trait ReplayFilter {
    /// Records `tag` and reports whether it had been recorded before
    /// (`true` means the packet is a replay and is dropped).
    fn check_and_insert(&mut self, tag: &ReplayTag) -> bool;
}

impl ReplayFilter for HashSet<ReplayTag> {
    fn check_and_insert(&mut self, tag: &ReplayTag) -> bool {
        !self.insert(*tag)
    }
}

impl<F: FnMut(&ReplayTag) -> bool> ReplayFilter for F {
    fn check_and_insert(&mut self, tag: &ReplayTag) -> bool {
        self(tag)
    }
}
