//! Why a node descriptor is unusable.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::role::NodeRole;
use crate::sphinx::NodeId;

/// Why a node descriptor could not be read, written or trusted.
#[derive(Debug, thiserror::Error)]
pub enum DescriptorError {
    /// The descriptor file could not be read.
    #[error("cannot read node descriptor {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        error: io::Error,
    },

    /// The descriptor file could not be written.
    #[error("cannot write node descriptor {}: {error}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        error: io::Error,
    },

    /// The descriptor in a file is invalid.
    #[error("{}: {error}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: Box<DescriptorError>,
    },

    /// The text is not a descriptor.
    #[error(
        "not a valid node descriptor: {0} (use the node.json that \
         `betanet keygen` wrote, unedited)"
    )]
    Json(serde_json::Error),

    /// The descriptor could not be encoded (should not happen).
    #[error("cannot encode the node descriptor as JSON: {0}")]
    Encode(serde_json::Error),

    /// The format version is not one this build understands.
    #[error(
        "node descriptor version {0} is not supported; this betanet reads \
         version 1 (upgrade betanet, or regenerate the descriptor)"
    )]
    UnsupportedVersion(u32),

    /// `layer` does not belong to `role`.
    #[error(
        "layer {layer} does not match role {role} (entry is layer 1, middle 2, \
         exit 3); the descriptor was edited — regenerate it"
    )]
    LayerMismatch {
        /// The claimed role.
        role: NodeRole,
        /// The claimed layer.
        layer: u8,
    },

    /// The identity key is not a usable Ed25519 public key.
    #[error("the identity key is not a valid Ed25519 public key; regenerate the descriptor")]
    InvalidIdentityKey,

    /// The id is not the one derived from the identity key.
    #[error(
        "node id {claimed} does not belong to the identity key (which gives \
         {derived}); the descriptor was edited — regenerate it"
    )]
    IdMismatch {
        /// The id in the descriptor.
        claimed: NodeId,
        /// The id the identity key gives.
        derived: NodeId,
    },

    /// An address cannot be dialled by other nodes.
    #[error(
        "{field} {addr} cannot be reached by other nodes: publish the node's \
         public IP address and a non-zero port (0.0.0.0 and :: are bind-only)"
    )]
    UnusableAddr {
        /// Which address (`udp_addr`, `tcp_addr` or `http_addr`).
        field: &'static str,
        /// The address.
        addr: SocketAddr,
    },

    /// The TCP mix port and the HTTP port are the same socket.
    #[error(
        "tcp_addr and http_addr are both {0}; two TCP listeners cannot share an \
         address — give the HTTP endpoint its own port"
    )]
    TcpHttpClash(SocketAddr),

    /// The key epoch length is zero.
    #[error(
        "key_epoch_seconds is 0; it must be at least 1 (the network's \
         sphinx.key_epoch_seconds) — regenerate the descriptor"
    )]
    ZeroKeyEpoch,

    /// No Sphinx key is published.
    #[error("the descriptor lists no Sphinx key; regenerate it")]
    NoSphinxKey,

    /// Sphinx key epochs are not listed in strictly increasing order.
    #[error(
        "Sphinx key epochs must be strictly increasing (one key per epoch, \
         oldest first); epoch {0} is out of order"
    )]
    SphinxEpochOrder(u64),

    /// Link key epochs are not listed in strictly increasing order.
    #[error(
        "link key epochs must be strictly increasing (one key per epoch, \
         oldest first); epoch {0} is out of order — regenerate the descriptor"
    )]
    LinkEpochOrder(u64),

    /// A Sphinx public key is not a usable X25519 key.
    #[error(
        "the Sphinx public key of epoch {0} is not a valid Curve25519 key; regenerate the descriptor"
    )]
    InvalidSphinxKey(u64),

    /// The VRF key is not a usable public key.
    #[error("the VRF key is not a valid Edwards25519 public key; regenerate the descriptor")]
    InvalidVrfKey,

    /// The signature does not verify.
    #[error(
        "the signature does not verify: the descriptor was changed after \
         signing or was not signed by its identity key; use the node.json that \
         keygen wrote, unedited"
    )]
    BadSignature,
}
