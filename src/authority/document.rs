//! The consensus document: one per epoch for everyone, signed by the
//! authorities, valid with a majority of their signatures.
//!
//! # Signed bytes
//!
//! Each authority signs `b"betanet consensus v1\0" ‖ canonical JSON` of
//! [`Consensus`] (compact, fields in declaration order, node descriptors
//! as in `node.json` including their own signatures). Signatures are
//! detached ([`ConsensusSignature`]): the document served is
//! [`SignedConsensus`], the consensus plus the signatures collected, and a
//! reader counts the valid ones from distinct pinned authorities
//! ([`SignedConsensus::verify`]).

use serde::{Deserialize, Serialize};

use super::error::AuthorityError;
use super::params::ConsensusParams;
use super::set::AuthoritySet;
use super::signing;
use crate::role::NodeRole;
use crate::topology::{NodeDescriptor, Topology, TopologyError, hex_serde};

/// Domain separation for consensus signatures.
pub const CONSENSUS_SIGNING_CONTEXT: &[u8] = b"betanet consensus v1\0";

/// The consensus format version this build reads and writes.
pub const CONSENSUS_VERSION: u32 = 1;

/// Largest consensus document (with signatures) read: about 8,000 nodes.
pub const MAX_CONSENSUS_BYTES: usize = 8 << 20;

/// Path a consensus is served at (authorities, and nodes that cache it).
pub const CONSENSUS_PATH: &str = "/consensus";

/// One listed node: its descriptor and the reliability the authorities
/// measured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusNode {
    /// The node's own signed descriptor (verifiable on its own).
    pub descriptor: NodeDescriptor,
    /// Share of the authorities' probes the node answered, in parts per
    /// thousand (median over the voting authorities that listed it).
    pub reliability_permille: u16,
}

/// What the authorities agree on for one epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consensus {
    /// Format version, [`CONSENSUS_VERSION`].
    pub version: u32,
    /// The consensus epoch: `floor(unix / epoch_seconds)`.
    pub epoch: u64,
    /// Unix second from which it is used (start of `epoch`).
    pub valid_after: u64,
    /// Unix second from which a newer one should be available (start of
    /// the next epoch).
    pub fresh_until: u64,
    /// Unix second after which it must not be used.
    pub valid_until: u64,
    /// The network parameters.
    pub params: ConsensusParams,
    /// The shared random value of this epoch (commit–reveal among the
    /// authorities); it orders each layer and picks the active set.
    #[serde(with = "hex_serde::array")]
    pub shared_random: [u8; 32],
    /// Identity keys of the authorities whose votes were counted, sorted.
    #[serde(with = "hex_list")]
    pub voters: Vec<[u8; 32]>,
    /// The nodes, by layer; within a layer in shared-random order.
    pub nodes: Vec<ConsensusNode>,
}

/// One authority's signature on a [`Consensus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusSignature {
    /// The signer's identity key.
    #[serde(with = "hex_serde::array")]
    pub authority: [u8; 32],
    /// Ed25519 over the signed bytes (module docs).
    #[serde(with = "hex_serde::array")]
    pub signature: [u8; 64],
}

/// A consensus with the signatures collected for it: what authorities serve
/// at [`CONSENSUS_PATH`] and readers verify.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedConsensus {
    /// The document.
    pub consensus: Consensus,
    /// Signatures, any order; unknown or bad ones are ignored by readers.
    pub signatures: Vec<ConsensusSignature>,
}

impl Consensus {
    /// The bytes every authority signs.
    pub fn signed_message(&self) -> Result<Vec<u8>, AuthorityError> {
        signing::message(CONSENSUS_SIGNING_CONTEXT, self)
    }

    /// A BLAKE3 digest of the signed bytes: authorities compare documents by
    /// it, and logs name a consensus by it.
    pub fn digest(&self) -> Result<[u8; 32], AuthorityError> {
        Ok(*blake3::hash(&self.signed_message()?).as_bytes())
    }

    /// This authority's signature on the document.
    pub fn sign(
        &self,
        key: &ed25519_dalek::SigningKey,
    ) -> Result<ConsensusSignature, AuthorityError> {
        Ok(ConsensusSignature {
            authority: key.verifying_key().to_bytes(),
            signature: signing::sign(key, &self.signed_message()?),
        })
    }

    /// The listed nodes of `role`'s layer, in shared-random order.
    pub fn layer(&self, role: NodeRole) -> impl Iterator<Item = &ConsensusNode> {
        self.nodes.iter().filter(move |n| n.descriptor.role == role)
    }

    /// The nodes as a [`Topology`] (every descriptor verified again), for
    /// routing, cover loops and key choice.
    pub fn topology(&self) -> Result<Topology, TopologyError> {
        Topology::build(self.nodes.iter().map(|n| n.descriptor.clone()))
    }
}

/// What [`SignedConsensus::verify`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Distinct pinned authorities with a valid signature.
    pub valid: usize,
    /// Signatures ignored: unknown signer, bad signature, or repeated.
    pub ignored: usize,
}

impl SignedConsensus {
    /// Parses a served document (at most [`MAX_CONSENSUS_BYTES`]).
    /// Untrusted until [`verify`](Self::verify)ed.
    pub fn from_json(bytes: &[u8]) -> Result<Self, AuthorityError> {
        signing::parse(bytes, MAX_CONSENSUS_BYTES, "consensus")
    }

    /// The document as JSON (what `/consensus` serves).
    pub fn to_json(&self) -> Result<Vec<u8>, AuthorityError> {
        serde_json::to_vec(self).map_err(AuthorityError::Encode)
    }

    /// Checks the document against the pinned `authorities` at `now` (unix
    /// seconds): version, validity window, and at least
    /// [`threshold`](AuthoritySet::threshold) valid signatures from distinct
    /// authorities of the set. Signatures by strangers, bad signatures and
    /// repeats are ignored, never fatal: a misbehaving authority cannot
    /// invalidate a document the others signed.
    pub fn verify(&self, authorities: &AuthoritySet, now: u64) -> Result<Verified, AuthorityError> {
        let c = &self.consensus;
        if c.version != CONSENSUS_VERSION {
            return Err(AuthorityError::UnsupportedVersion {
                what: "consensus",
                version: c.version,
            });
        }
        if now < c.valid_after || now >= c.valid_until {
            return Err(AuthorityError::NotValidNow {
                valid_after: c.valid_after,
                valid_until: c.valid_until,
                now,
            });
        }
        let verified = self.count_signatures(authorities)?;
        if verified.valid < authorities.threshold() {
            return Err(AuthorityError::BelowThreshold {
                valid: verified.valid,
                threshold: authorities.threshold(),
            });
        }
        Ok(verified)
    }

    /// Counts the valid signatures from distinct pinned authorities,
    /// ignoring the time (authorities use it on documents being signed).
    pub fn count_signatures(&self, authorities: &AuthoritySet) -> Result<Verified, AuthorityError> {
        let message = self.consensus.signed_message()?;
        let mut seen: Vec<[u8; 32]> = Vec::new();
        let mut ignored = 0;
        // At most one signature per authority is checked: a flood of
        // signatures costs a lookup each, not a verification each.
        for sig in &self.signatures {
            if !authorities.contains(&sig.authority) || seen.contains(&sig.authority) {
                ignored += 1;
                continue;
            }
            if signing::verify(&sig.authority, &message, &sig.signature, "consensus").is_ok() {
                seen.push(sig.authority);
            } else {
                ignored += 1;
            }
        }
        Ok(Verified {
            valid: seen.len(),
            ignored,
        })
    }
}

/// A list of 32-byte keys as hex strings.
mod hex_list {
    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeSeq};

    pub(super) fn serialize<S: Serializer>(keys: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(keys.len()))?;
        for k in keys {
            seq.serialize_element(&hex::encode(k))?;
        }
        seq.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts
            .iter()
            .map(|t| {
                let mut out = [0u8; 32];
                hex::decode_to_slice(t, &mut out)
                    .map_err(|_| serde::de::Error::custom("expected 64 hex digits (32 bytes)"))?;
                Ok(out)
            })
            .collect()
    }
}
