//! Route choice: one random node from each layer, entry → middle → exit,
//! among the nodes whose descriptor has a Sphinx key for the current key
//! epoch.

use rand::Rng;

use super::ClientError;
use crate::role::NodeRole;
use crate::sphinx::PathHop;
use crate::topology::{NodeDescriptor, Topology};

/// The three nodes a packet passes through, with the Sphinx key of each
/// that was chosen with them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    nodes: Vec<NodeDescriptor>,
    /// Fixed when the route is chosen, so a key epoch boundary between
    /// choosing and building cannot leave a node without a key.
    hops: Vec<PathHop>,
}

impl Route {
    /// The entry node (where the client sends).
    pub fn entry(&self) -> &NodeDescriptor {
        &self.nodes[0]
    }

    /// The nodes in path order.
    pub fn nodes(&self) -> &[NodeDescriptor] {
        &self.nodes
    }

    /// The Sphinx path: ids and the public keys for the key epoch the route
    /// was chosen in.
    pub fn hops(&self) -> Vec<PathHop> {
        self.hops.clone()
    }
}

/// Picks a node uniformly at random from each layer, among those with a
/// Sphinx key usable now (by the system clock).
pub fn choose_route<R: Rng + ?Sized>(
    topology: &Topology,
    rng: &mut R,
) -> Result<Route, ClientError> {
    choose_route_at(topology, crate::clock::unix_now(), rng)
}

/// [`choose_route`] at `unix_seconds`: nodes are candidates only if their
/// descriptor has a key for that time's key epoch
/// ([`NodeDescriptor::sphinx_key_at`]).
///
/// Fails with [`ClientError::NoUsableKey`] when no node of a layer has one
/// (their descriptors are older or newer than the clock says: refresh them).
pub fn choose_route_at<R: Rng + ?Sized>(
    topology: &Topology,
    unix_seconds: u64,
    rng: &mut R,
) -> Result<Route, ClientError> {
    let mut nodes = Vec::with_capacity(NodeRole::ALL.len());
    let mut hops = Vec::with_capacity(NodeRole::ALL.len());
    for role in NodeRole::ALL {
        let layer = topology.layer(role);
        if layer.is_empty() {
            return Err(ClientError::EmptyLayer(role));
        }
        let keyed: Vec<(&NodeDescriptor, PathHop)> = layer
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
        if keyed.is_empty() {
            return Err(ClientError::NoUsableKey {
                role,
                key_epoch: layer[0].key_epoch_at(unix_seconds),
            });
        }
        let i = (rng.next_u64() % keyed.len() as u64) as usize;
        let (node, hop) = keyed[i];
        nodes.push(node.clone());
        hops.push(hop);
    }
    Ok(Route { nodes, hops })
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng as StdRng;

    use super::*;
    use crate::keys::NodeKeys;
    use crate::sphinx::SphinxSecretKey;
    use crate::topology::SphinxKeyEntry;

    const EPOCH: u64 = 100;

    /// Node `n` of `role` whose keys start at key epochs `epochs`.
    fn node(n: u8, role: NodeRole, epochs: &[u64]) -> NodeDescriptor {
        let keys = NodeKeys::generate(&mut StdRng::seed_from_u64(u64::from(n)));
        let sphinx_keys = epochs
            .iter()
            .map(|&epoch| SphinxKeyEntry {
                epoch,
                public_key: SphinxSecretKey::from_bytes([n; 32]).public_key(),
            })
            .collect();
        let addr = |port| SocketAddr::from(([10, 0, 0, n], port));
        NodeDescriptor::new_signed(
            &keys,
            role,
            addr(9000),
            addr(9000),
            addr(8080),
            sphinx_keys,
            EPOCH,
        )
        .unwrap()
    }

    #[test]
    fn nodes_without_a_key_for_the_epoch_are_skipped() {
        let topology = Topology::build([
            node(1, NodeRole::Entry, &[5]),
            node(2, NodeRole::Entry, &[7, 8]),
            node(3, NodeRole::Middle, &[5]),
            node(4, NodeRole::Exit, &[5]),
        ])
        .unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        // Key epoch 6: only node 1's key has started.
        for _ in 0..20 {
            let route = choose_route_at(&topology, 6 * EPOCH, &mut rng).unwrap();
            assert_eq!(route.entry().sphinx_keys[0].epoch, 5);
            assert_eq!(route.hops().len(), 3);
        }
        // Key epoch 4: no entry has a key yet.
        let err = choose_route_at(&topology, 4 * EPOCH + 99, &mut rng).unwrap_err();
        assert!(matches!(
            err,
            ClientError::NoUsableKey {
                role: NodeRole::Entry,
                key_epoch: 4
            }
        ));
        assert!(
            err.to_string().starts_with("refresh descriptors: "),
            "{err}"
        );
    }
}
