//! Route choice: one random node from each layer, entry → middle → exit.

use rand::Rng;

use super::ClientError;
use crate::role::NodeRole;
use crate::sphinx::PathHop;
use crate::topology::{NodeDescriptor, Topology};

/// The three nodes a packet passes through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route(Vec<NodeDescriptor>);

impl Route {
    /// The entry node (where the client sends).
    pub fn entry(&self) -> &NodeDescriptor {
        &self.0[0]
    }

    /// The nodes in path order.
    pub fn nodes(&self) -> &[NodeDescriptor] {
        &self.0
    }

    /// The Sphinx path: ids and current public keys.
    pub fn hops(&self) -> Vec<PathHop> {
        self.0
            .iter()
            .filter_map(|d| {
                d.current_sphinx_key().map(|k| PathHop {
                    id: d.id,
                    public_key: k.public_key,
                })
            })
            .collect()
    }
}

/// Picks a node uniformly at random from each layer.
pub fn choose_route<R: Rng + ?Sized>(
    topology: &Topology,
    rng: &mut R,
) -> Result<Route, ClientError> {
    NodeRole::ALL
        .iter()
        .map(|role| {
            let layer = topology.layer(*role);
            if layer.is_empty() {
                return Err(ClientError::EmptyLayer(*role));
            }
            let i = (rng.next_u64() % layer.len() as u64) as usize;
            Ok(layer[i].clone())
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Route)
}
