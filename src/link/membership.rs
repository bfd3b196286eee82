//! Whose session is it: this node's own link keys by epoch, and the rule
//! that a peer is a member only if its static key is in the topology.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::keys::{LinkKeyPair, LinkPublicKey};
use crate::sphinx::NodeId;
use crate::topology::Topology;

/// Who is at the other end of an authenticated session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerIdentity {
    /// A topology member, proven by its static link key.
    Member(NodeId),
    /// An anonymous initiator (a client at an entry node).
    Anonymous,
}

/// The topology member whose descriptor publishes `key`, if any.
pub fn member_with_key(topology: &Topology, key: &LinkPublicKey) -> Option<NodeId> {
    topology
        .nodes()
        .iter()
        .find(|node| node.has_link_key(key))
        .map(|node| node.id)
}

/// This node's link key pairs by key epoch and which one it opens sessions
/// with, replaced as a whole when keys rotate.
#[derive(Default)]
pub struct LinkKeySet {
    keys: BTreeMap<u64, Arc<LinkKeyPair>>,
    current: Option<u64>,
}

impl LinkKeySet {
    /// The keys held (`keys`) and the epoch of the one used to initiate.
    pub fn new(keys: BTreeMap<u64, Arc<LinkKeyPair>>, current: u64) -> Self {
        LinkKeySet {
            current: keys.contains_key(&current).then_some(current),
            keys,
        }
    }

    /// The key pair of `epoch`, if held.
    pub fn for_epoch(&self, epoch: u64) -> Option<&Arc<LinkKeyPair>> {
        self.keys.get(&epoch)
    }

    /// The key pair this node initiates with.
    pub fn current(&self) -> Option<&Arc<LinkKeyPair>> {
        self.current.and_then(|e| self.keys.get(&e))
    }

    /// The epoch of the key this node initiates with.
    pub fn current_epoch(&self) -> Option<u64> {
        self.current
    }

    /// Epochs held, oldest first.
    pub fn epochs(&self) -> impl Iterator<Item = u64> + '_ {
        self.keys.keys().copied()
    }
}

/// A node's live [`LinkKeySet`], read by every connection and swapped by
/// key rotation without stopping any.
#[derive(Default)]
pub struct LinkKeys(ArcSwap<LinkKeySet>);

impl LinkKeys {
    /// Starts with `set`.
    pub fn new(set: LinkKeySet) -> Self {
        LinkKeys(ArcSwap::from_pointee(set))
    }

    /// The current set.
    pub fn load(&self) -> Arc<LinkKeySet> {
        self.0.load_full()
    }

    /// Replaces the set (key rotation).
    pub fn store(&self, set: LinkKeySet) {
        self.0.store(Arc::new(set));
    }
}
