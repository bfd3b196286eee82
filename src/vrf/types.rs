//! The VRF's byte strings — proof `π` (80 bytes) and output `β` (64 bytes) —
//! and why a proof is rejected.
//!
//! Both travel as lowercase hex strings in JSON (`GET /vrf/{epoch}`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a VRF proof (or a claim derived from one) was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VrfError {
    /// The public key is not a canonically encoded Edwards25519 point of
    /// large order (RFC 9381 `validate_key`, plus canonical encoding).
    #[error("invalid VRF public key (non-canonical, not on the curve, or of small order)")]
    InvalidPublicKey,
    /// A proof is exactly 80 bytes.
    #[error("a VRF proof is {expected} bytes, got {got}", expected = VrfProof::LEN)]
    InvalidLength {
        /// The length that was given.
        got: usize,
    },
    /// Γ is not a canonical encoding of a point of the prime-order subgroup.
    #[error("malformed VRF proof: Gamma is not a valid prime-order point")]
    InvalidGamma,
    /// `s` is not reduced modulo the group order ℓ.
    #[error("malformed VRF proof: s is not a canonical scalar (s >= l)")]
    NonCanonicalScalar,
    /// The proof is well formed but does not verify for this key and input.
    #[error("VRF proof does not verify")]
    InvalidProof,
    /// The proofs are made with another key than the one the node is known by.
    #[error("the VRF proofs are for another public key")]
    UnexpectedKey,
    /// The proof verifies, but the output published next to it is not the
    /// one it proves.
    #[error("the published VRF output does not match its proof")]
    OutputMismatch,
}

/// Why a string is not a hex-encoded VRF proof or output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {0} hex digits")]
pub struct ParseVrfBytesError(usize);

/// A VRF proof `π = Γ (32) ‖ c (16) ‖ s (32)`.
///
/// Any 80 bytes make a `VrfProof`; whether they are a *valid* proof is only
/// known relative to a public key and an input, in [`super::verify`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VrfProof([u8; 80]);

impl VrfProof {
    /// Length of an encoded proof in bytes.
    pub const LEN: usize = 80;

    /// Wraps 80 proof bytes.
    pub const fn from_bytes(bytes: [u8; 80]) -> Self {
        VrfProof(bytes)
    }

    /// Wraps a slice that must be exactly 80 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, VrfError> {
        let bytes: [u8; 80] = bytes
            .try_into()
            .map_err(|_| VrfError::InvalidLength { got: bytes.len() })?;
        Ok(VrfProof(bytes))
    }

    /// The encoded proof.
    pub const fn to_bytes(&self) -> [u8; 80] {
        self.0
    }

    /// The encoded proof, borrowed.
    pub const fn as_bytes(&self) -> &[u8; 80] {
        &self.0
    }
}

/// A VRF output `β = VRF_hash(secret, α)`: 64 bytes (SHA-512), the same for
/// every valid proof of one key and input.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VrfOutput([u8; 64]);

impl VrfOutput {
    /// Length of an output in bytes.
    pub const LEN: usize = 64;

    /// Wraps 64 output bytes.
    pub const fn from_bytes(bytes: [u8; 64]) -> Self {
        VrfOutput(bytes)
    }

    /// The output bytes.
    pub const fn to_bytes(&self) -> [u8; 64] {
        self.0
    }

    /// The output bytes, borrowed.
    pub const fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

/// Hex `Display`, `Debug`, `FromStr` and serde for a fixed-size byte newtype.
macro_rules! hex_bytes {
    ($name:ident, $len:expr) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = ParseVrfBytesError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut bytes = [0u8; $len];
                hex::decode_to_slice(s, &mut bytes).map_err(|_| ParseVrfBytesError(2 * $len))?;
                Ok($name(bytes))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_bytes!(VrfProof, 80);
hex_bytes!(VrfOutput, 64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let proof = VrfProof::from_bytes([0xa5; 80]);
        let json = serde_json::to_string(&proof).unwrap();
        assert_eq!(json, format!("\"{}\"", "a5".repeat(80)));
        assert_eq!(serde_json::from_str::<VrfProof>(&json).unwrap(), proof);

        let output = VrfOutput::from_bytes([7; 64]);
        let json = serde_json::to_string(&output).unwrap();
        assert_eq!(serde_json::from_str::<VrfOutput>(&json).unwrap(), output);
        assert!(serde_json::from_str::<VrfOutput>("\"abcd\"").is_err());
        assert!(serde_json::from_str::<VrfProof>(&format!("\"{}\"", "zz".repeat(80))).is_err());
    }

    #[test]
    fn from_slice_checks_length() {
        assert_eq!(
            VrfProof::from_slice(&[0; 79]),
            Err(VrfError::InvalidLength { got: 79 })
        );
        assert!(VrfProof::from_slice(&[0; 80]).is_ok());
    }
}
