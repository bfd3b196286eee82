//! Serde adapters that write binary values as lower-case hex strings, as
//! `node.json` and `topology.json` carry them.
//!
//! Parse errors say how many digits were expected and never echo the input.

use serde::{Deserialize, Deserializer, Serializer};

/// Decodes exactly `N` bytes of hex.
fn decode<const N: usize, E: serde::de::Error>(text: &str) -> Result<[u8; N], E> {
    let mut bytes = [0u8; N];
    hex::decode_to_slice(text, &mut bytes)
        .map_err(|_| E::custom(format_args!("expected {} hex digits ({N} bytes)", 2 * N)))?;
    Ok(bytes)
}

/// `[u8; N]` as `2N` hex digits.
pub(crate) mod array {
    use super::*;

    pub(crate) fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u8; N], D::Error> {
        decode(&String::deserialize(deserializer)?)
    }
}

/// A [`NodeId`](crate::sphinx::NodeId) as 32 hex digits.
pub(crate) mod node_id {
    use super::*;
    use crate::sphinx::NodeId;

    pub(crate) fn serialize<S: Serializer>(id: &NodeId, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(id.as_bytes()))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<NodeId, D::Error> {
        decode(&String::deserialize(deserializer)?).map(NodeId::from_bytes)
    }
}

/// A [`SphinxPublicKey`](crate::sphinx::SphinxPublicKey) as 64 hex digits.
pub(crate) mod sphinx_key {
    use super::*;
    use crate::sphinx::SphinxPublicKey;

    pub(crate) fn serialize<S: Serializer>(
        key: &SphinxPublicKey,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(key.0))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SphinxPublicKey, D::Error> {
        decode(&String::deserialize(deserializer)?).map(SphinxPublicKey)
    }
}
