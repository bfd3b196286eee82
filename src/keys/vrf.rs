//! The node's VRF key pair (ECVRF-EDWARDS25519-SHA512-TAI, RFC 9381 suite
//! 0x03), used for verifiable mixing delays and neighbour selection.
//!
//! The secret is a 32-byte seed; RFC 9381 derives the secret scalar and the
//! public key from it exactly as Ed25519 does (SHA-512, clamp, multiply by
//! the base point), so the public key is computed with ed25519-dalek. The
//! VRF key is nonetheless a separate key from the identity key: reusing one
//! key for signatures and VRF proofs is not covered by either proof of
//! security.

use std::fmt;
use std::str::FromStr;

use rand_core::CryptoRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::public_point::is_valid_edwards_public_key;

/// A node's VRF secret seed. Zeroized on drop; `Debug` never shows it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct VrfSecretKey([u8; 32]);

impl VrfSecretKey {
    /// Wraps a 32-byte seed (every seed is a valid key).
    pub fn from_bytes(seed: [u8; 32]) -> Self {
        VrfSecretKey(seed)
    }

    /// Draws a fresh seed.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        VrfSecretKey(seed)
    }

    /// The raw seed, for writing a key file. Handle with care.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The public key `Y = x·B` with `x` = clamp(SHA-512(seed)[0..32]), as
    /// RFC 9381 §5.1 (via RFC 8032 §5.1.5) derives it.
    pub fn public_key(&self) -> VrfPublicKey {
        // The temporary signing key zeroizes its copy of the seed on drop.
        let expanded = ed25519_dalek::SigningKey::from_bytes(&self.0);
        VrfPublicKey(expanded.verifying_key().to_bytes())
    }
}

impl fmt::Debug for VrfSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VrfSecretKey(<redacted>)")
    }
}

/// A node's VRF public key: a compressed Edwards25519 point.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VrfPublicKey(pub [u8; 32]);

impl VrfPublicKey {
    /// Whether the key is usable: a canonically encoded Edwards25519 point
    /// that is not of small order (RFC 9381 `validate_key`).
    pub fn is_valid(&self) -> bool {
        is_valid_edwards_public_key(&self.0)
    }
}

impl fmt::Display for VrfPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for VrfPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VrfPublicKey({self})")
    }
}

/// Why a string is not a VRF public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a VRF public key is 64 hex digits (32 bytes)")]
pub struct ParseVrfKeyError;

impl FromStr for VrfPublicKey {
    type Err = ParseVrfKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(s, &mut key).map_err(|_| ParseVrfKeyError)?;
        Ok(VrfPublicKey(key))
    }
}

// Published keys travel as hex strings in node.json and topology.json.
impl Serialize for VrfPublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for VrfPublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let key = VrfSecretKey::from_bytes([0x42; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains("42"), "{shown}");
    }

    #[test]
    fn public_key_is_the_ed25519_derivation() {
        // RFC 8032 §7.1 test 1: this seed's Ed25519 public key. RFC 9381
        // §B.3 example 16 uses the same secret and lists the same public key.
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let public = VrfSecretKey::from_bytes(seed).public_key();
        assert_eq!(
            public.to_string(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert!(public.is_valid());
    }

    #[test]
    fn hex_round_trip() {
        let public = VrfSecretKey::from_bytes([9; 32]).public_key();
        assert_eq!(public.to_string().parse::<VrfPublicKey>(), Ok(public));
        assert!("abcd".parse::<VrfPublicKey>().is_err());
        let json = serde_json::to_string(&public).unwrap();
        assert_eq!(serde_json::from_str::<VrfPublicKey>(&json).unwrap(), public);
    }
}
