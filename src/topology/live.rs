//! The topology a running node routes by, swappable at run time (SIGHUP or
//! a changed file) without stopping traffic: readers take a cheap snapshot.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::Topology;
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
}

impl LiveTopology {
    /// Starts with `topology`; next hops resolve to the `egress` address.
    pub fn new(topology: Topology, egress: EgressProtocol) -> Self {
        LiveTopology {
            current: ArcSwap::from_pointee(topology),
            egress,
            neighbors: ArcSwap::from_pointee(None),
            next_layer: None,
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

    /// Replaces the topology; packets in flight keep the snapshot they took.
    pub fn replace(&self, topology: Topology) {
        self.current.store(Arc::new(topology));
    }

    /// True if `ip` is the address of any topology member.
    pub fn is_member_ip(&self, ip: IpAddr) -> bool {
        self.current.load().is_member_ip(ip)
    }
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
