//! The network's public view: signed node descriptors (`node.json`) and the
//! topology built from them (`topology.json`).
//!
//! A descriptor says who a node is (id, identity key), what it does (role),
//! where it listens and which Sphinx and VRF keys it uses, all signed by its
//! identity key. A topology is a verified set of descriptors covering all
//! three layers; nodes use it to route RELAY packets and to drop frames from
//! non-members.
//!
//! Sphinx keys rotate every key epoch, so the descriptors in a topology file
//! age; [`directory_client`](crate::directory_client) fetches each node's
//! current descriptor from its `GET /descriptor`, and the pure rules of
//! [`refresh`] accept it only if it is signed by the identity key the
//! topology lists. Nothing here does I/O but reading and writing files.

mod atomic_file;
mod descriptor;
mod descriptor_error;
mod descriptor_file;
mod directory;
mod error;
mod file;
pub(crate) mod hex_serde;
mod live;
mod network_params;
pub mod refresh;

pub use descriptor::{
    DESCRIPTOR_SIGNING_CONTEXT, DESCRIPTOR_VERSION, LinkKeyEntry, NodeDescriptor, SphinxKeyEntry,
};
pub use descriptor_error::DescriptorError;
pub use descriptor_file::DESCRIPTOR_FILE;
pub use directory::Topology;
pub use error::TopologyError;
pub use file::{TOPOLOGY_VERSION, build_topology_file};
pub use live::{EgressProtocol, LiveTopology};
pub use network_params::NetworkParams;
pub use refresh::{
    DESCRIPTOR_PATH, MAX_DESCRIPTOR_BYTES, NodeRefresh, RefreshError, RefreshOutcome,
    RefreshReport, check_update,
};
