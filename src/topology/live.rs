//! The topology a running node routes by, swappable at run time (SIGHUP or
//! a changed file) without stopping traffic: readers take a cheap snapshot.
//!
//! Descriptors refreshed from the nodes themselves (fetched by
//! [`directory_client`](crate::directory_client)) are kept in an overlay on
//! top of the file, so a reload of an unchanged (or older) `topology.json` does not
//! bring back Sphinx keys the nodes have since rotated away from.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};

use super::refresh::{Fetched, RefreshReport, apply_fetched, check_update};
use super::{NodeDescriptor, Topology};
use crate::pipeline::NextHops;
use crate::sphinx::NodeId;

/// Which of a node's addresses frames are sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EgressProtocol {
    /// One frame per datagram to the node's `udp_addr`.
    Udp,
    /// Back-to-back frames over a connection to the node's `tcp_addr`.
    Tcp,
}

/// The current topology, shared by every stage.
pub struct LiveTopology {
    current: ArcSwap<Topology>,
    egress: EgressProtocol,
    /// This node's neighbours in the next layer for the current epoch;
    /// `None` means the whole next layer (the default, `neighbors_k = 0`).
    neighbors: ArcSwap<Option<HashSet<NodeId>>>,
    /// The layer this node forwards to, if the node knows its role.
    next_layer: Option<crate::role::NodeRole>,
    /// Refreshed descriptors newer than the file's, by node id. The lock
    /// also serialises the writers of `current` (refresh and reload), so
    /// neither can overwrite the other's topology with a stale one.
    overlay: Mutex<HashMap<NodeId, NodeDescriptor>>,
    /// Told of every new topology (see [`changes`](Self::changes)).
    watchers: Mutex<Vec<Sender<()>>>,
}

impl LiveTopology {
    /// Starts with `topology`; next hops resolve to the `egress` address.
    pub fn new(topology: Topology, egress: EgressProtocol) -> Self {
        LiveTopology {
            current: ArcSwap::from_pointee(topology),
            egress,
            neighbors: ArcSwap::from_pointee(None),
            next_layer: None,
            overlay: Mutex::new(HashMap::new()),
            watchers: Mutex::new(Vec::new()),
        }
    }

    /// Restricts RELAYs into `next_layer` to the neighbour set installed
    /// with [`set_neighbors`](Self::set_neighbors). Relays to other layers
    /// (a cover loop's way back) are not restricted.
    pub fn with_next_layer(mut self, next_layer: crate::role::NodeRole) -> Self {
        self.next_layer = Some(next_layer);
        self
    }

    /// Installs this epoch's neighbours (`None`: the whole next layer).
    pub fn set_neighbors(&self, neighbors: Option<HashSet<NodeId>>) {
        self.neighbors.store(Arc::new(neighbors));
    }

    /// The nodes of `role` this node may relay to now, in topology order.
    pub fn reachable(&self, role: crate::role::NodeRole) -> Vec<super::NodeDescriptor> {
        let topology = self.current.load();
        let neighbors = self.neighbors.load();
        topology
            .layer(role)
            .iter()
            .filter(|d| self.allowed(role, &d.id, &neighbors))
            .cloned()
            .collect()
    }

    fn allowed(
        &self,
        role: crate::role::NodeRole,
        id: &NodeId,
        neighbors: &Option<HashSet<NodeId>>,
    ) -> bool {
        match neighbors {
            Some(set) if Some(role) == self.next_layer => set.contains(id),
            _ => true,
        }
    }

    /// A snapshot of the current topology.
    pub fn snapshot(&self) -> Arc<Topology> {
        self.current.load_full()
    }

    /// Replaces the topology (a reloaded `topology.json`); packets in
    /// flight keep the snapshot they took.
    ///
    /// Refreshed descriptors are applied on top again if they still pass
    /// [`check_update`](super::check_update) against the new file's entry
    /// (same identity key, role and addresses) and publish a newer key
    /// epoch than it;
    /// the others are dropped. When the file is as new as a refreshed
    /// descriptor the file wins, so an operator's fix (say, a new address)
    /// is not masked by an older refresh.
    pub fn replace(&self, topology: Topology) {
        let mut overlay = self.lock_overlay();
        overlay.retain(|id, refreshed| {
            topology.get(id).is_some_and(|file| {
                check_update(file, refreshed).is_ok()
                    && refreshed.newest_key_epoch() > file.newest_key_epoch()
            })
        });
        let merged = if overlay.is_empty() {
            topology
        } else {
            match topology.with_updates(overlay.values().cloned()) {
                Ok(merged) => merged,
                // The new file moved another node onto an address a
                // refreshed descriptor uses: trust the file; the next
                // refresh sorts it out.
                Err(_) => {
                    overlay.clear();
                    topology
                }
            }
        };
        self.install(merged);
    }

    /// A channel told whenever the topology is replaced or refreshed, so a
    /// thread that derives something from it can sleep until then. Several
    /// changes before it looks are one message.
    pub fn changes(&self) -> Receiver<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        lock(&self.watchers).push(tx);
        rx
    }

    /// Stores a new topology and tells the watchers (callers hold the
    /// overlay lock, which orders the writers).
    fn install(&self, topology: Topology) {
        self.current.store(Arc::new(topology));
        // A full channel has a message pending; a closed one has no reader.
        lock(&self.watchers).retain(|w| {
            !matches!(
                w.try_send(()),
                Err(crossbeam_channel::TrySendError::Disconnected(()))
            )
        });
    }

    /// Applies fetched descriptors to the current topology (the rules of
    /// [`refresh`](super::refresh)) and remembers the accepted ones.
    pub(crate) fn apply_fetched(&self, fetched: Vec<Fetched>) -> RefreshReport {
        let mut overlay = self.lock_overlay();
        let applied = apply_fetched(&self.current.load(), fetched);
        if let Some(topology) = applied.topology {
            self.install(topology);
        }
        for descriptor in applied.accepted {
            overlay.insert(descriptor.id, descriptor);
        }
        applied.report
    }

    /// The descriptors installed by refreshes that are in effect now, by
    /// node id (for status pages and tests).
    pub fn refreshed(&self) -> HashMap<NodeId, NodeDescriptor> {
        self.lock_overlay().clone()
    }

    /// The overlay, even if a thread panicked holding it: the map is
    /// updated in single steps, so it is never half-written.
    fn lock_overlay(&self) -> MutexGuard<'_, HashMap<NodeId, NodeDescriptor>> {
        self.overlay.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True if `ip` is the address of any topology member.
    pub fn is_member_ip(&self, ip: IpAddr) -> bool {
        self.current.load().is_member_ip(ip)
    }
}

/// Locks a mutex whose data is changed in single steps (never half-written).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl NextHops for LiveTopology {
    fn next_hop(&self, id: &NodeId) -> Option<SocketAddr> {
        let topology = self.current.load();
        let node = topology.get(id)?;
        if !self.allowed(node.role, id, &self.neighbors.load()) {
            return None;
        }
        Some(match self.egress {
            EgressProtocol::Udp => node.udp_addr,
            EgressProtocol::Tcp => node.tcp_addr,
        })
    }
}
