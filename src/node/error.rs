//! Why a node cannot start, each with what the operator should do.

use std::path::PathBuf;

/// A node failed to start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The node's keys could not be loaded.
    #[error("cannot load the node keys: {0} (create them with `betanet keygen --out DIR`)")]
    Keys(#[from] crate::keys::KeyError),
    /// The node's own descriptor is missing or invalid.
    #[error(
        "cannot load the node descriptor: {0} (`betanet keygen --out DIR` creates it with the keys)"
    )]
    Descriptor(#[from] crate::topology::DescriptorError),
    /// The descriptor in the key directory is not for these keys or role.
    #[error("{path}: {reason}")]
    DescriptorMismatch {
        /// The descriptor file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// A Sphinx key could not be created or deleted during rotation.
    #[error("Sphinx key rotation: {0}")]
    Rotation(crate::keys::KeyError),
    /// The descriptor could not be re-signed with the current Sphinx keys.
    #[error("cannot sign the node descriptor {}: {source}", path.display())]
    Sign {
        /// Where the descriptor is written.
        path: PathBuf,
        /// Why signing failed.
        source: crate::topology::DescriptorError,
    },
    /// The topology could not be loaded.
    #[error("cannot load the topology: {0} (assemble it with `betanet topology build`)")]
    Topology(#[from] crate::topology::TopologyError),
    /// The replay cache could not be opened.
    #[error("cannot open the replay cache: {0}")]
    Replay(#[from] crate::replay::ReplayError),
    /// A socket could not be bound or configured.
    #[error("cannot bind {what} on {addr}: {source} (is another process using the port?)")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The node would listen somewhere else than its descriptor tells peers
    /// to send: its traffic would vanish.
    #[error(
        "{what}: the node would listen on {bound} but its descriptor ({}) advertises {advertised}. \
         Start it without --port/--listen-addr/--http-addr (it then uses the addresses node.json \
         advertises), regenerate node.json with `betanet keygen --addr`, or, behind NAT or a \
         proxy, set --advertised-addr (node.advertise_addr) to the address node.json advertises",
        path.display()
    )]
    AddressMismatch {
        /// Which listener (`node.port`, `node.http_addr`, ...).
        what: &'static str,
        /// Where it would listen.
        bound: std::net::SocketAddr,
        /// What the descriptor advertises.
        advertised: std::net::SocketAddr,
        /// The descriptor file.
        path: PathBuf,
    },
    /// A thread or runtime could not be started.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// What failed to start.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}
