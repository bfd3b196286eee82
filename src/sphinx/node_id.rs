//! Node identifiers (`sphinx-v1.md`, "Node identity").

use std::fmt;
use std::str::FromStr;

/// Derivation context of node ids.
const NODE_ID_CONTEXT: &str = "betanet node id v1";

/// A node's 16-byte id: `BLAKE3.derive_key("betanet node id v1", identity_public_key)[0..16]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId([u8; 16]);

impl NodeId {
    /// Length of an id in bytes.
    pub const LEN: usize = 16;

    /// Wraps raw id bytes (as read from a routing command).
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        NodeId(bytes)
    }

    /// Derives the id of the node whose Ed25519 identity public key this is.
    pub fn from_identity_key(identity_public: &[u8; 32]) -> Self {
        let key = blake3::derive_key(NODE_ID_CONTEXT, identity_public);
        let mut id = [0u8; 16];
        id.copy_from_slice(&key[..16]);
        NodeId(id)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// Why a string is not a node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a node id is 32 hex digits (16 bytes); got {0:?}")]
pub struct ParseNodeIdError(String);

impl FromStr for NodeId {
    type Err = ParseNodeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut id = [0u8; 16];
        hex::decode_to_slice(s, &mut id).map_err(|_| ParseNodeIdError(s.to_owned()))?;
        Ok(NodeId(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = NodeId::from_bytes([0xab; 16]);
        assert_eq!(id.to_string().parse::<NodeId>(), Ok(id));
        assert!("abc".parse::<NodeId>().is_err());
    }
}
