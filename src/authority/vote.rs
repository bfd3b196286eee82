//! An authority's vote for one epoch: the descriptors it accepts with the
//! reachability it measured, the parameters it proposes, and its
//! commitment to this epoch's shared random value; and the reveal that
//! opens the commitment later.
//!
//! Both are signed by the authority's identity key over
//! `b"betanet vote v1\0"` / `b"betanet reveal v1\0"` ‖ canonical JSON.

use serde::{Deserialize, Serialize};

use super::error::AuthorityError;
use super::params::ConsensusParams;
use super::set::AuthoritySet;
use super::shared_random::commitment;
use super::signing;
use crate::topology::{NodeDescriptor, hex_serde};

/// Domain separation for votes.
pub const VOTE_SIGNING_CONTEXT: &[u8] = b"betanet vote v1\0";
/// Domain separation for reveals.
pub const REVEAL_SIGNING_CONTEXT: &[u8] = b"betanet reveal v1\0";
/// The vote format version.
pub const VOTE_VERSION: u32 = 1;
/// Most nodes one vote may list (bounds what a peer can make us hold).
pub const MAX_VOTE_NODES: usize = 8_192;
/// Largest vote read.
pub const MAX_VOTE_BYTES: usize = 8 << 20;
/// Largest reveal or signature message read.
pub const MAX_SMALL_BYTES: usize = 4 << 10;

/// A node an authority votes for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VotedNode {
    /// The descriptor the node uploaded (its own signature inside).
    pub descriptor: NodeDescriptor,
    /// Share of this authority's recent probes the node answered, ‰.
    pub reliability_permille: u16,
}

/// What one authority proposes for one epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vote {
    /// Format version, [`VOTE_VERSION`].
    pub version: u32,
    /// The consensus epoch voted on.
    pub epoch: u64,
    /// The voter's identity key.
    #[serde(with = "hex_serde::array")]
    pub authority: [u8; 32],
    /// The parameters it proposes.
    pub params: ConsensusParams,
    /// Its commitment to a secret reveal ([`commitment`]).
    #[serde(with = "hex_serde::array")]
    pub commit: [u8; 32],
    /// The nodes it accepts (valid descriptor, answering probes), sorted by id.
    pub nodes: Vec<VotedNode>,
}

/// A vote and its author's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedVote {
    /// The vote.
    pub vote: Vote,
    /// Ed25519 by `vote.authority`.
    #[serde(with = "hex_serde::array")]
    pub signature: [u8; 64],
}

impl Vote {
    /// Signs the vote with `key` (whose public key must be `authority`).
    pub fn sign(self, key: &ed25519_dalek::SigningKey) -> Result<SignedVote, AuthorityError> {
        let message = signing::message(VOTE_SIGNING_CONTEXT, &self)?;
        Ok(SignedVote {
            signature: signing::sign(key, &message),
            vote: self,
        })
    }
}

impl SignedVote {
    /// Parses a vote (at most [`MAX_VOTE_BYTES`]); untrusted until verified.
    pub fn from_json(bytes: &[u8]) -> Result<Self, AuthorityError> {
        signing::parse(bytes, MAX_VOTE_BYTES, "vote")
    }

    /// Checks the envelope: version, epoch, a pinned author, the node-count
    /// bound and the author's signature. The listed descriptors are checked
    /// one by one by the consensus rule (a bad one is dropped, not the vote).
    pub fn verify(&self, authorities: &AuthoritySet, epoch: u64) -> Result<(), AuthorityError> {
        let v = &self.vote;
        if v.version != VOTE_VERSION {
            return Err(AuthorityError::UnsupportedVersion {
                what: "vote",
                version: v.version,
            });
        }
        if v.epoch != epoch {
            return Err(AuthorityError::WrongEpoch {
                expected: epoch,
                got: v.epoch,
            });
        }
        if !authorities.contains(&v.authority) {
            return Err(AuthorityError::UnknownAuthority { what: "vote" });
        }
        if v.nodes.len() > MAX_VOTE_NODES {
            return Err(AuthorityError::TooManyNodes(v.nodes.len()));
        }
        let message = signing::message(VOTE_SIGNING_CONTEXT, v)?;
        signing::verify(&v.authority, &message, &self.signature, "vote")
    }
}

/// An authority opening its commitment for one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reveal {
    /// The consensus epoch.
    pub epoch: u64,
    /// The revealer's identity key.
    #[serde(with = "hex_serde::array")]
    pub authority: [u8; 32],
    /// The secret committed to in the vote.
    #[serde(with = "hex_serde::array")]
    pub value: [u8; 32],
}

/// A reveal and its author's signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedReveal {
    /// The reveal.
    pub reveal: Reveal,
    /// Ed25519 by `reveal.authority`.
    #[serde(with = "hex_serde::array")]
    pub signature: [u8; 64],
}

impl Reveal {
    /// Signs the reveal with `key`.
    pub fn sign(self, key: &ed25519_dalek::SigningKey) -> Result<SignedReveal, AuthorityError> {
        let message = signing::message(REVEAL_SIGNING_CONTEXT, &self)?;
        Ok(SignedReveal {
            signature: signing::sign(key, &message),
            reveal: self,
        })
    }

    /// Whether this reveal opens `commit`.
    pub fn opens(&self, commit: &[u8; 32]) -> bool {
        commitment(self.epoch, &self.authority, &self.value) == *commit
    }
}

impl SignedReveal {
    /// Parses a reveal (at most [`MAX_SMALL_BYTES`]).
    pub fn from_json(bytes: &[u8]) -> Result<Self, AuthorityError> {
        signing::parse(bytes, MAX_SMALL_BYTES, "reveal")
    }

    /// Checks epoch, a pinned author and the signature.
    pub fn verify(&self, authorities: &AuthoritySet, epoch: u64) -> Result<(), AuthorityError> {
        let r = &self.reveal;
        if r.epoch != epoch {
            return Err(AuthorityError::WrongEpoch {
                expected: epoch,
                got: r.epoch,
            });
        }
        if !authorities.contains(&r.authority) {
            return Err(AuthorityError::UnknownAuthority { what: "reveal" });
        }
        let message = signing::message(REVEAL_SIGNING_CONTEXT, r)?;
        signing::verify(&r.authority, &message, &self.signature, "reveal")
    }
}
