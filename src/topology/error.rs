//! Why a topology is unusable.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::descriptor_error::DescriptorError;
use crate::role::NodeRole;
use crate::sphinx::NodeId;

/// Why a topology could not be built, read or written.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The topology file could not be read.
    #[error("cannot read topology file {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        error: io::Error,
    },

    /// The topology file could not be written.
    #[error("cannot write topology file {}: {error}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        error: io::Error,
    },

    /// The topology in a file is invalid.
    #[error("{}: {error}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: Box<TopologyError>,
    },

    /// The text is not a topology.
    #[error(
        "not a valid topology file: {0} (build it with `betanet topology build \
         --out topology.json NODE.json...`)"
    )]
    Json(serde_json::Error),

    /// The topology could not be encoded (should not happen).
    #[error("cannot encode the topology as JSON: {0}")]
    Encode(serde_json::Error),

    /// The format version is not one this build understands.
    #[error(
        "topology version {0} is not supported; this betanet reads version 1 \
         (upgrade betanet, or rebuild the topology)"
    )]
    UnsupportedVersion(u32),

    /// An input descriptor file for a new topology is unusable.
    #[error(transparent)]
    Descriptor(DescriptorError),

    /// A node's descriptor does not verify.
    #[error("node {id}: {error}")]
    InvalidNode {
        /// The node id the descriptor claims.
        id: NodeId,
        /// What is wrong with it.
        error: DescriptorError,
    },

    /// A node is listed twice.
    #[error("node {0} is listed twice; list each node's descriptor once")]
    DuplicateId(NodeId),

    /// Two nodes claim the same address.
    #[error(
        "nodes {first} and {second} both use {protocol} address {addr}; each \
         node needs its own addresses: fix one node's address and regenerate \
         its descriptor"
    )]
    DuplicateAddr {
        /// `UDP` or `TCP`.
        protocol: &'static str,
        /// The shared address.
        addr: SocketAddr,
        /// The node listed first.
        first: NodeId,
        /// The node listed second.
        second: NodeId,
    },

    /// A layer has no node, so no path can be built.
    #[error(
        "the topology has no {0} node: every path crosses layers 1, 2 and 3, so \
         each needs at least one node; add a {0} node's descriptor"
    )]
    MissingLayer(NodeRole),
}
