//! Random paths for cover packets.
//!
//! The three layers form a ring for cover purposes: entry → middle → exit →
//! entry → … A cover packet from a node of layer `L` visits the layers that
//! follow `L` in that order, one random node per layer.
//!
//! * **Loop** (`num_hops = n`, clamped to `2..=MAX_HOPS`): `n − 1` hops
//!   going round the ring from the layer after `L`, then the node itself
//!   (its own id and current Sphinx key). With the normal `n = 3` that is
//!   one node of each other layer and back: an entry loops
//!   middle → exit → itself. `n = 1` is treated as 2: a one-hop "loop" to
//!   itself would never leave the node and would test nothing.
//! * **Drop** (`n` clamped to `1..=MAX_HOPS`): `n` hops going round the
//!   ring from the layer after `L`, the last one discarding it. With
//!   `n = 3` that is one node of each layer, ending in this node's own
//!   layer (an entry's drop goes middle → exit → some entry).
//!
//! The first hop always comes from the nodes this node may relay to
//! ([`LiveTopology::reachable`] of the next layer, i.e. the VRF neighbour
//! set), so cover leaves on the same links as forwarded traffic. Later hops
//! are uniform over their layer of the topology. A random pick in this
//! node's own layer avoids the node itself when the layer has anyone else:
//! passing through ourselves would waste a hop without covering any link.
//! Each hop is given the Sphinx key its descriptor lists for the time the
//! path is chosen (`unix_seconds`, on the node's key-schedule clock:
//! [`NodeDescriptor::sphinx_key_at`]); nodes with no key for that time are
//! never chosen. The node's descriptor refresher keeps the others' keys
//! current.

use std::net::SocketAddr;

use rand::{Rng, RngExt};

use crate::role::NodeRole;
use crate::sphinx::{MAX_HOPS, NodeId, PathHop, SphinxPublicKey};
use crate::topology::{EgressProtocol, LiveTopology, NodeDescriptor, Topology};

/// The node that builds cover packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Its id (the last hop of its loops).
    pub id: NodeId,
    /// Its layer; cover goes round the ring from the next one.
    pub role: NodeRole,
    /// Its current Sphinx public key (loops are built to come back to it).
    pub public_key: SphinxPublicKey,
}

/// Where the first hop of a cover packet is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirstHop {
    /// The first hop's id (the scheduler's "next" node).
    pub id: NodeId,
    /// Its UDP address.
    pub udp_addr: SocketAddr,
    /// Its TCP address.
    pub tcp_addr: SocketAddr,
}

impl FirstHop {
    /// The address frames go to under `protocol` (as the pipeline resolves
    /// next hops, so cover and forwarded frames share a connection).
    pub fn addr(&self, protocol: EgressProtocol) -> SocketAddr {
        match protocol {
            EgressProtocol::Udp => self.udp_addr,
            EgressProtocol::Tcp => self.tcp_addr,
        }
    }
}

/// A chosen cover path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoverPath {
    /// The Sphinx path, first hop first.
    pub hops: Vec<PathHop>,
    /// How to reach `hops[0]`.
    pub first: FirstHop,
}

impl CoverPath {
    /// The ids of the other nodes on the path, in path order: the nodes a
    /// lost loop is evidence against.
    pub fn others(&self, own: NodeId) -> Vec<NodeId> {
        self.hops
            .iter()
            .map(|h| h.id)
            .filter(|id| *id != own)
            .collect()
    }
}

/// Why no cover path could be chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// This node may relay to no node (with a Sphinx key for the current
    /// key epoch) of the next layer.
    #[error(
        "no reachable {0} node with a Sphinx key for the current key epoch to \
         send cover to (refresh descriptors: are the nodes' /descriptor \
         endpoints reachable, and is the clock right?)"
    )]
    NoReachable(NodeRole),
    /// A layer the path must cross has no node with a Sphinx key for the
    /// current key epoch.
    #[error(
        "the {0} layer has no node with a Sphinx key for the current key epoch \
         (refresh descriptors: are the nodes' /descriptor endpoints reachable, \
         and is the clock right?)"
    )]
    EmptyLayer(NodeRole),
    /// This node is not in the topology, so no node would relay a loop
    /// back to it (and its loss would be blamed on innocent nodes).
    #[error("this node is not in the topology: its loops could not come back")]
    NotInTopology,
}

/// The layer after `role` in the cover ring (exit wraps to entry).
pub fn ring_next(role: NodeRole) -> NodeRole {
    role.next().unwrap_or(NodeRole::Entry)
}

/// The layers of `hops` consecutive hops going round the ring from the
/// layer after `own`.
pub fn ring_after(own: NodeRole, hops: usize) -> Vec<NodeRole> {
    std::iter::successors(Some(ring_next(own)), |r| Some(ring_next(*r)))
        .take(hops)
        .collect()
}

/// Hops of a loop for the configured `num_hops`: clamped to
/// `2..=MAX_HOPS`, since a one-hop loop would never leave the node.
pub fn loop_hops(num_hops: usize) -> usize {
    num_hops.clamp(2, MAX_HOPS)
}

/// Hops of a drop for the configured `num_hops`: clamped to `1..=MAX_HOPS`.
pub fn drop_hops(num_hops: usize) -> usize {
    num_hops.clamp(1, MAX_HOPS)
}

/// Chooses a loop path: [`loop_hops`]`(num_hops) − 1` hops round the ring
/// from the layer after `origin`'s, then `origin` itself (with the normal
/// `num_hops = 3`: one node of each other layer, then home).
/// `reachable_next` are the next-layer nodes this node may relay to (the
/// first hop is one of them); `topology` supplies the later hops, avoiding
/// `origin` in its own layer when anyone else is there. Fails if `origin`
/// is not in `topology`: nobody would relay the loop home. Every hop gets
/// the Sphinx key its descriptor lists for `unix_seconds`.
pub fn loop_path<R: Rng + ?Sized>(
    origin: &Origin,
    reachable_next: &[NodeDescriptor],
    topology: &Topology,
    num_hops: usize,
    unix_seconds: u64,
    rng: &mut R,
) -> Result<CoverPath, PathError> {
    if !topology.contains(&origin.id) {
        return Err(PathError::NotInTopology);
    }
    let layers = ring_after(origin.role, loop_hops(num_hops) - 1);
    let mut path = ring_path(origin, &layers, reachable_next, topology, unix_seconds, rng)?;
    path.hops.push(PathHop {
        id: origin.id,
        public_key: origin.public_key,
    });
    Ok(path)
}

/// Chooses a drop path: [`drop_hops`]`(num_hops)` hops round the ring from
/// the layer after `origin`'s, the first from `reachable_next`, the last
/// discarding the packet (with `num_hops = 3` it ends in `origin`'s own
/// layer, at another node if there is one). Every hop gets the Sphinx key
/// its descriptor lists for `unix_seconds`.
pub fn drop_path<R: Rng + ?Sized>(
    origin: &Origin,
    reachable_next: &[NodeDescriptor],
    topology: &Topology,
    num_hops: usize,
    unix_seconds: u64,
    rng: &mut R,
) -> Result<CoverPath, PathError> {
    let layers = ring_after(origin.role, drop_hops(num_hops));
    ring_path(origin, &layers, reachable_next, topology, unix_seconds, rng)
}

/// [`loop_path`] over the live topology's current state.
pub fn live_loop_path<R: Rng + ?Sized>(
    origin: &Origin,
    topology: &LiveTopology,
    num_hops: usize,
    unix_seconds: u64,
    rng: &mut R,
) -> Result<CoverPath, PathError> {
    let reachable = topology.reachable(ring_next(origin.role));
    loop_path(
        origin,
        &reachable,
        &topology.snapshot(),
        num_hops,
        unix_seconds,
        rng,
    )
}

/// [`drop_path`] over the live topology's current state.
pub fn live_drop_path<R: Rng + ?Sized>(
    origin: &Origin,
    topology: &LiveTopology,
    num_hops: usize,
    unix_seconds: u64,
    rng: &mut R,
) -> Result<CoverPath, PathError> {
    let reachable = topology.reachable(ring_next(origin.role));
    drop_path(
        origin,
        &reachable,
        &topology.snapshot(),
        num_hops,
        unix_seconds,
        rng,
    )
}

/// One node per layer of `layers` (non-empty): the first from
/// `reachable_next`, the rest from the topology.
fn ring_path<R: Rng + ?Sized>(
    origin: &Origin,
    layers: &[NodeRole],
    reachable_next: &[NodeDescriptor],
    topology: &Topology,
    unix_seconds: u64,
    rng: &mut R,
) -> Result<CoverPath, PathError> {
    let first_layer = layers[0];
    let (first, first_hop) = pick(reachable_next, origin.id, unix_seconds, rng)
        .ok_or(PathError::NoReachable(first_layer))?;
    let mut hops = vec![first_hop];
    for role in &layers[1..] {
        let (_, hop) = pick(topology.layer(*role), origin.id, unix_seconds, rng)
            .ok_or(PathError::EmptyLayer(*role))?;
        hops.push(hop);
    }
    Ok(CoverPath {
        hops,
        first: FirstHop {
            id: first.id,
            udp_addr: first.udp_addr,
            tcp_addr: first.tcp_addr,
        },
    })
}

/// A uniformly random node with a Sphinx key for `unix_seconds`, and its
/// path hop, avoiding `own` unless it is the only candidate.
fn pick<'a, R: Rng + ?Sized>(
    nodes: &'a [NodeDescriptor],
    own: NodeId,
    unix_seconds: u64,
    rng: &mut R,
) -> Option<(&'a NodeDescriptor, PathHop)> {
    let keyed: Vec<(&NodeDescriptor, PathHop)> = nodes
        .iter()
        .filter_map(|d| {
            let key = d.sphinx_key_at(unix_seconds)?;
            Some((
                d,
                PathHop {
                    id: d.id,
                    public_key: key.public_key,
                },
            ))
        })
        .collect();
    let others: Vec<_> = keyed.iter().filter(|(d, _)| d.id != own).collect();
    let candidates: Vec<_> = if others.is_empty() {
        keyed.iter().collect()
    } else {
        others
    };
    if candidates.is_empty() {
        return None;
    }
    Some(*candidates[rng.random_range(0..candidates.len())])
}
