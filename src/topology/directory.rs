//! The verified set of nodes a node routes through.
//!
//! Built once (at start-up or reload) and then only read, on the per-packet
//! path: lookups by id and the membership check of a sender's IP are hash
//! lookups, and a layer is a contiguous slice of the sorted node list.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use super::descriptor::NodeDescriptor;
use super::error::TopologyError;
use crate::role::NodeRole;
use crate::sphinx::NodeId;

/// A verified topology: at least one node per layer, unique ids and
/// addresses, every descriptor's signature checked.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Sorted by layer, then id.
    nodes: Vec<NodeDescriptor>,
    /// Index into `nodes` by id.
    by_id: HashMap<NodeId, usize>,
    /// The slice of `nodes` of each layer (index `layer - 1`).
    layers: [Range<usize>; 3],
    /// IPs of every node's UDP and TCP mix addresses, canonical form.
    member_ips: HashSet<IpAddr>,
}

impl Topology {
    /// Verifies every descriptor and indexes them.
    ///
    /// Fails on a descriptor that does not verify, a repeated node id, two
    /// nodes sharing a UDP address or a TCP listening address (mix or
    /// HTTP), or an empty layer.
    pub fn build(
        descriptors: impl IntoIterator<Item = NodeDescriptor>,
    ) -> Result<Self, TopologyError> {
        let nodes: Vec<NodeDescriptor> = descriptors.into_iter().collect();
        for node in &nodes {
            node.verify()
                .map_err(|error| TopologyError::InvalidNode { id: node.id, error })?;
        }
        Self::from_verified(nodes)
    }

    /// The topology with `updates` in place of the descriptors with the
    /// same ids. The updates must be verified already (refresh does it), so
    /// only the cross-node checks run again: an updated address may clash
    /// with another node's. Ids not in the topology are ignored.
    pub(super) fn with_updates(
        &self,
        updates: impl IntoIterator<Item = NodeDescriptor>,
    ) -> Result<Self, TopologyError> {
        let mut nodes = self.nodes.clone();
        for update in updates {
            if let Some(&i) = self.by_id.get(&update.id) {
                nodes[i] = update;
            }
        }
        Self::from_verified(nodes)
    }

    /// Indexes descriptors that each verified on their own.
    fn from_verified(mut nodes: Vec<NodeDescriptor>) -> Result<Self, TopologyError> {
        nodes.sort_by_key(|node| (node.layer, node.id));

        let by_id = index_by_id(&nodes)?;
        check_unique_addresses(&nodes)?;
        let layers = layer_ranges(&nodes)?;
        let member_ips = nodes
            .iter()
            .flat_map(|node| [node.udp_addr.ip(), node.tcp_addr.ip()])
            .map(|ip| ip.to_canonical())
            .collect();
        Ok(Topology {
            nodes,
            by_id,
            layers,
            member_ips,
        })
    }

    /// The node with this id.
    pub fn get(&self, id: &NodeId) -> Option<&NodeDescriptor> {
        self.by_id.get(id).map(|&i| &self.nodes[i])
    }

    /// Whether the node with this id is a member.
    pub fn contains(&self, id: &NodeId) -> bool {
        self.by_id.contains_key(id)
    }

    /// The nodes serving `role`'s layer, sorted by id (never empty).
    pub fn layer(&self, role: NodeRole) -> &[NodeDescriptor] {
        let range = &self.layers[usize::from(role.layer() - 1)];
        &self.nodes[range.clone()]
    }

    /// All nodes, sorted by layer, then id.
    pub fn nodes(&self) -> &[NodeDescriptor] {
        &self.nodes
    }

    /// Whether `ip` is the IP of some node's UDP or TCP mix address; frames
    /// to middle and exit nodes from anywhere else are dropped. An
    /// IPv4-mapped IPv6 address (as a dual-stack socket reports IPv4 peers)
    /// matches its IPv4 address.
    pub fn is_member_ip(&self, ip: IpAddr) -> bool {
        self.member_ips.contains(&ip.to_canonical())
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a built topology has a node in every layer. (Provided
    /// because `len` is.)
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// Two topologies are equal when they hold the same descriptors; the
/// indexes are derived from those.
impl PartialEq for Topology {
    fn eq(&self, other: &Self) -> bool {
        self.nodes == other.nodes
    }
}

impl Eq for Topology {}

fn index_by_id(nodes: &[NodeDescriptor]) -> Result<HashMap<NodeId, usize>, TopologyError> {
    let mut by_id = HashMap::with_capacity(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        if by_id.insert(node.id, i).is_some() {
            return Err(TopologyError::DuplicateId(node.id));
        }
    }
    Ok(by_id)
}

/// Two nodes on one address would receive each other's packets. UDP and TCP
/// are separate port spaces; a node's mix TCP and HTTP listeners share one.
fn check_unique_addresses(nodes: &[NodeDescriptor]) -> Result<(), TopologyError> {
    let mut udp: HashMap<SocketAddr, NodeId> = HashMap::new();
    let mut tcp: HashMap<SocketAddr, NodeId> = HashMap::new();
    for node in nodes {
        claim(&mut udp, "UDP", node.udp_addr, node.id)?;
        claim(&mut tcp, "TCP", node.tcp_addr, node.id)?;
        claim(&mut tcp, "TCP", node.http_addr, node.id)?;
    }
    Ok(())
}

/// Records that `node` listens on `addr`, failing if another node does.
fn claim(
    owners: &mut HashMap<SocketAddr, NodeId>,
    protocol: &'static str,
    addr: SocketAddr,
    node: NodeId,
) -> Result<(), TopologyError> {
    match owners.entry(canonical(addr)) {
        Entry::Vacant(slot) => {
            slot.insert(node);
            Ok(())
        }
        // A node claiming one TCP address twice is already refused by
        // descriptor verification, so here `first` is another node.
        Entry::Occupied(owner) => Err(TopologyError::DuplicateAddr {
            protocol,
            addr,
            first: *owner.get(),
            second: node,
        }),
    }
}

/// The address with an IPv4-mapped IPv6 IP written as IPv4, so both
/// spellings of one socket count as the same address.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// The range of each layer in `nodes` (sorted by layer), failing on an
/// empty layer.
fn layer_ranges(nodes: &[NodeDescriptor]) -> Result<[Range<usize>; 3], TopologyError> {
    let mut ranges = [0..0, 0..0, 0..0];
    for (range, role) in ranges.iter_mut().zip(NodeRole::ALL) {
        let start = nodes.partition_point(|node| node.layer < role.layer());
        let end = nodes.partition_point(|node| node.layer <= role.layer());
        if start == end {
            return Err(TopologyError::MissingLayer(role));
        }
        *range = start..end;
    }
    Ok(ranges)
}
