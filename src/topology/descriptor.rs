//! The signed node descriptor (`node.json`): everything other nodes and
//! clients need to route through a node, signed by its identity key.
//!
//! # Signed bytes
//!
//! The Ed25519 signature covers
//! `b"betanet descriptor v1\0" ‖ canonical JSON`, where the canonical JSON is
//! the descriptor without `signature`, compact (no whitespace), fields in the
//! order `version, id, role, layer, udp_addr, tcp_addr, http_addr,
//! identity_key, sphinx_keys (epoch, public_key), key_epoch_seconds,
//! vrf_key, network` (`network` left out when absent, so descriptors of
//! builds before it still verify), hex in lower case and addresses as Rust's `SocketAddr` displays
//! them (RFC 5952 for IPv6). The file itself may be formatted any way: the
//! verifier re-derives the canonical form from the parsed values, so
//! whitespace or hex case in the file cannot break (or forge) a signature.
//!
//! # Key epochs
//!
//! Sphinx keys rotate every `key_epoch_seconds`; key epoch
//! `E = floor(unix_seconds / key_epoch_seconds)`. A node publishes the keys
//! of the current and the next epoch, each with the first epoch in which
//! senders use it, and senders pick the entry with the greatest
//! `epoch ≤ E` ([`NodeDescriptor::sphinx_key_at`]). Publishing the next key
//! ahead of time lets senders whose clocks run a little fast, or who hold a
//! descriptor fetched just before a rotation, still reach the node.

use std::net::SocketAddr;

use ed25519_dalek::{Signature, Signer, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::descriptor_error::DescriptorError;
use super::hex_serde;
use super::network_params::NetworkParams;
use crate::keys::{NodeKeys, VrfPublicKey, is_valid_edwards_public_key};
use crate::link::LinkPublicKey;
use crate::role::NodeRole;
use crate::sphinx::{NodeId, SphinxPublicKey};

/// Domain separation: these signatures can never be confused with an
/// identity-key signature over anything else.
pub const DESCRIPTOR_SIGNING_CONTEXT: &[u8] = b"betanet descriptor v1\0";

/// The descriptor format version this build reads and writes.
pub const DESCRIPTOR_VERSION: u32 = 1;

/// One published Sphinx public key and the epoch from which it is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SphinxKeyEntry {
    /// First key epoch in which senders use this key.
    pub epoch: u64,
    /// The X25519 public key.
    #[serde(with = "hex_serde::sphinx_key")]
    pub public_key: SphinxPublicKey,
}

/// One published link public key (the X25519 + ML-KEM-768 key peers open
/// encrypted sessions to) and the key epoch it belongs to: the same epochs
/// as the Sphinx keys, since each link key is derived from its epoch's
/// Sphinx secret key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkKeyEntry {
    /// The key epoch this key belongs to.
    pub epoch: u64,
    /// The public key, as 2,432 hex digits (X25519 then ML-KEM-768).
    pub public_key: LinkPublicKey,
}

/// A node's public, signed description.
///
/// Fields are public so tools can read them; any change after signing makes
/// [`NodeDescriptor::verify`] fail. A descriptor parsed from a file is
/// untrusted until verified (`load` and [`Topology`](super::Topology) do it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDescriptor {
    /// Format version, [`DESCRIPTOR_VERSION`].
    pub version: u32,
    /// Node id, derived from `identity_key`.
    #[serde(with = "hex_serde::node_id")]
    pub id: NodeId,
    /// The layer the node serves.
    pub role: NodeRole,
    /// `role`'s layer number (redundant, for readers of the JSON).
    pub layer: u8,
    /// Where the node receives Sphinx frames over UDP.
    pub udp_addr: SocketAddr,
    /// Where the node receives Sphinx frames over TCP.
    pub tcp_addr: SocketAddr,
    /// The node's HTTP endpoint (health, metrics, VRF proofs).
    pub http_addr: SocketAddr,
    /// Ed25519 identity public key.
    #[serde(with = "hex_serde::array")]
    pub identity_key: [u8; 32],
    /// Sphinx public keys, oldest epoch first.
    pub sphinx_keys: Vec<SphinxKeyEntry>,
    /// Length of a key epoch in seconds (the network's
    /// `sphinx.key_epoch_seconds`, at least 1).
    pub key_epoch_seconds: u64,
    /// VRF public key.
    pub vrf_key: VrfPublicKey,
    /// The mixing and cover parameters the node runs with, so verifiers
    /// need not assume them. `None` only in descriptors written by builds
    /// that did not publish them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkParams>,
    /// Link public keys, oldest epoch first. Empty only in descriptors
    /// written by builds without encrypted links: such a node can be sent
    /// plaintext frames only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link_keys: Vec<LinkKeyEntry>,
    /// Ed25519 signature by `identity_key` (see the module docs).
    #[serde(with = "hex_serde::array")]
    pub signature: [u8; 64],
}

/// The signed part of a descriptor, in canonical field order. A separate
/// struct (not a JSON value with `signature` removed) so the order is fixed
/// by this declaration, not by a map implementation.
#[derive(Serialize)]
struct SignedFields<'a> {
    version: u32,
    #[serde(with = "hex_serde::node_id")]
    id: NodeId,
    role: NodeRole,
    layer: u8,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    http_addr: SocketAddr,
    #[serde(with = "hex_serde::array")]
    identity_key: [u8; 32],
    sphinx_keys: &'a [SphinxKeyEntry],
    key_epoch_seconds: u64,
    vrf_key: VrfPublicKey,
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<&'a NetworkParams>,
    #[serde(skip_serializing_if = "<[LinkKeyEntry]>::is_empty")]
    link_keys: &'a [LinkKeyEntry],
}

impl NodeDescriptor {
    /// Builds and signs the descriptor of the node holding `keys`, then
    /// verifies it, so an unusable descriptor (say, a 0.0.0.0 address) is
    /// refused here rather than by every peer.
    ///
    /// `sphinx_keys` are the published Sphinx keys, oldest epoch first;
    /// `key_epoch_seconds` is the network's key epoch length.
    pub fn new_signed(
        keys: &NodeKeys,
        role: NodeRole,
        udp_addr: SocketAddr,
        tcp_addr: SocketAddr,
        http_addr: SocketAddr,
        sphinx_keys: Vec<SphinxKeyEntry>,
        key_epoch_seconds: u64,
    ) -> Result<Self, DescriptorError> {
        let mut descriptor = NodeDescriptor {
            version: DESCRIPTOR_VERSION,
            id: keys.node_id(),
            role,
            layer: role.layer(),
            udp_addr,
            tcp_addr,
            http_addr,
            identity_key: keys.identity_public_key(),
            sphinx_keys,
            key_epoch_seconds,
            vrf_key: keys.vrf_public_key(),
            network: None,
            link_keys: Vec::new(),
            signature: [0; 64],
        };
        descriptor.sign(keys)?;
        Ok(descriptor)
    }

    /// This descriptor publishing `network`, re-signed by `keys`.
    pub fn with_network(
        mut self,
        network: NetworkParams,
        keys: &NodeKeys,
    ) -> Result<Self, DescriptorError> {
        self.network = Some(network);
        self.sign(keys)?;
        Ok(self)
    }

    /// Signs the current fields with `keys` (after a field changed), then
    /// verifies the result.
    pub fn sign(&mut self, keys: &NodeKeys) -> Result<(), DescriptorError> {
        let message = self.signed_message()?;
        self.signature = keys.identity.sign(&message).to_bytes();
        self.verify()
    }

    /// The bytes the signature covers: the signing context followed by the
    /// canonical JSON (see the module docs).
    pub fn signed_message(&self) -> Result<Vec<u8>, DescriptorError> {
        let fields = SignedFields {
            version: self.version,
            id: self.id,
            role: self.role,
            layer: self.layer,
            udp_addr: self.udp_addr,
            tcp_addr: self.tcp_addr,
            http_addr: self.http_addr,
            identity_key: self.identity_key,
            sphinx_keys: &self.sphinx_keys,
            key_epoch_seconds: self.key_epoch_seconds,
            vrf_key: self.vrf_key,
            network: self.network.as_ref(),
            link_keys: &self.link_keys,
        };
        let mut message = DESCRIPTOR_SIGNING_CONTEXT.to_vec();
        serde_json::to_writer(&mut message, &fields).map_err(DescriptorError::Encode)?;
        Ok(message)
    }

    /// Checks everything a peer relies on: version, role/layer agreement,
    /// key encodings, the id derivation, usable addresses, and finally the
    /// signature (last, being the most expensive check).
    pub fn verify(&self) -> Result<(), DescriptorError> {
        if self.version != DESCRIPTOR_VERSION {
            return Err(DescriptorError::UnsupportedVersion(self.version));
        }
        if NodeRole::from_layer(self.layer) != Some(self.role) {
            return Err(DescriptorError::LayerMismatch {
                role: self.role,
                layer: self.layer,
            });
        }
        if !is_valid_edwards_public_key(&self.identity_key) {
            return Err(DescriptorError::InvalidIdentityKey);
        }
        let derived = NodeId::from_identity_key(&self.identity_key);
        if derived != self.id {
            return Err(DescriptorError::IdMismatch {
                claimed: self.id,
                derived,
            });
        }
        self.check_addresses()?;
        if self.key_epoch_seconds == 0 {
            return Err(DescriptorError::ZeroKeyEpoch);
        }
        self.check_sphinx_keys()?;
        self.check_link_keys()?;
        if !self.vrf_key.is_valid() {
            return Err(DescriptorError::InvalidVrfKey);
        }
        self.check_signature()
    }

    /// The key epoch `unix_seconds` falls in:
    /// `floor(unix_seconds / key_epoch_seconds)`. (An unverified descriptor
    /// with `key_epoch_seconds = 0` counts as 1 s epochs rather than
    /// dividing by zero.)
    pub fn key_epoch_at(&self, unix_seconds: u64) -> u64 {
        unix_seconds / self.key_epoch_seconds.max(1)
    }

    /// The Sphinx key senders use at `unix_seconds`: the entry with the
    /// greatest `epoch` not after that time's key epoch. `None` if every
    /// published key starts later (the descriptor is from the future, or
    /// the clock is wrong).
    ///
    /// This does not check that the key is still current: a descriptor
    /// fetched long ago yields its newest key, which the node may have
    /// retired. Refresh descriptors
    /// ([`directory_client::refresh_topology`](crate::directory_client::refresh_topology))
    /// to avoid that.
    pub fn sphinx_key_at(&self, unix_seconds: u64) -> Option<&SphinxKeyEntry> {
        self.sphinx_key_for_epoch(self.key_epoch_at(unix_seconds))
    }

    /// The Sphinx key senders use now, by the system clock
    /// ([`sphinx_key_at`](Self::sphinx_key_at) of the current time).
    pub fn sphinx_key_now(&self) -> Option<&SphinxKeyEntry> {
        self.sphinx_key_at(crate::clock::unix_now())
    }

    /// The Sphinx key in use during key epoch `epoch`: the latest one whose
    /// epoch is not after it.
    pub fn sphinx_key_for_epoch(&self, epoch: u64) -> Option<&SphinxKeyEntry> {
        self.sphinx_keys
            .iter()
            .filter(|entry| entry.epoch <= epoch)
            .max_by_key(|entry| entry.epoch)
    }

    /// The link key to open a session with during key epoch `epoch`: the
    /// latest one whose epoch is not after it, else the oldest published
    /// (a peer whose clock runs behind still reaches a held key).
    pub fn link_key_for_epoch(&self, epoch: u64) -> Option<&LinkKeyEntry> {
        self.link_keys
            .iter()
            .filter(|entry| entry.epoch <= epoch)
            .max_by_key(|entry| entry.epoch)
            .or_else(|| self.link_keys.first())
    }

    /// Whether `key` is one of this node's published link keys.
    pub fn has_link_key(&self, key: &LinkPublicKey) -> bool {
        self.link_keys.iter().any(|entry| &entry.public_key == key)
    }

    /// The greatest key epoch this descriptor publishes a key for (`None`
    /// only for an unverified descriptor without keys). A refreshed
    /// descriptor must not go below the known one's: that would be a
    /// rollback to keys the node may have retired.
    pub fn newest_key_epoch(&self) -> Option<u64> {
        self.sphinx_keys.iter().map(|entry| entry.epoch).max()
    }

    /// Whether this descriptor was signed for the node holding `keys`: same
    /// identity and VRF keys (so a node can refuse to start with a
    /// `node.json` from another key set). Sphinx keys are not compared:
    /// they rotate, and the node re-signs its descriptor when they do.
    pub fn matches_keys(&self, keys: &NodeKeys) -> bool {
        self.identity_key == keys.identity_public_key() && self.vrf_key == keys.vrf_public_key()
    }

    fn check_addresses(&self) -> Result<(), DescriptorError> {
        for (field, addr) in [
            ("udp_addr", self.udp_addr),
            ("tcp_addr", self.tcp_addr),
            ("http_addr", self.http_addr),
        ] {
            if addr.ip().is_unspecified() || addr.port() == 0 {
                return Err(DescriptorError::UnusableAddr { field, addr });
            }
        }
        // UDP and TCP mix ports may share ip:port (different protocols);
        // the two TCP listeners may not.
        if self.tcp_addr == self.http_addr {
            return Err(DescriptorError::TcpHttpClash(self.tcp_addr));
        }
        Ok(())
    }

    fn check_sphinx_keys(&self) -> Result<(), DescriptorError> {
        if self.sphinx_keys.is_empty() {
            return Err(DescriptorError::NoSphinxKey);
        }
        for pair in self.sphinx_keys.windows(2) {
            if pair[1].epoch <= pair[0].epoch {
                return Err(DescriptorError::SphinxEpochOrder(pair[1].epoch));
            }
        }
        match self
            .sphinx_keys
            .iter()
            .find(|k| k.public_key.to_point().is_none())
        {
            Some(bad) => Err(DescriptorError::InvalidSphinxKey(bad.epoch)),
            None => Ok(()),
        }
    }

    fn check_link_keys(&self) -> Result<(), DescriptorError> {
        for pair in self.link_keys.windows(2) {
            if pair[1].epoch <= pair[0].epoch {
                return Err(DescriptorError::LinkEpochOrder(pair[1].epoch));
            }
        }
        Ok(())
    }

    fn check_signature(&self) -> Result<(), DescriptorError> {
        let key = VerifyingKey::from_bytes(&self.identity_key)
            .map_err(|_| DescriptorError::InvalidIdentityKey)?;
        let message = self.signed_message()?;
        // Strict verification rejects non-canonical and small-order
        // components, so a valid signature cannot be altered into another.
        key.verify_strict(&message, &Signature::from_bytes(&self.signature))
            .map_err(|_| DescriptorError::BadSignature)
    }
}
