//! A node's Sphinx key pair: X25519 secret `x`, public `y = X25519(x, G)`.

use std::fmt;
use std::str::FromStr;

use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::x25519::{self, CurvePoint};

/// A node's Sphinx secret. Zeroized on drop; `Debug` never shows it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SphinxSecretKey([u8; 32]);

impl SphinxSecretKey {
    /// Wraps 32 secret bytes (X25519 clamps them when used).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SphinxSecretKey(bytes)
    }

    /// Draws a fresh secret.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        // Filled in place, so no copy of the secret is left behind.
        let mut key = SphinxSecretKey([0u8; 32]);
        rng.fill_bytes(&mut key.0);
        key
    }

    /// The raw secret, for writing a key file. Handle with care.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// `y = X25519(x, G)`.
    pub fn public_key(&self) -> SphinxPublicKey {
        SphinxPublicKey(x25519::x25519_base(&self.0))
    }

    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SphinxSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SphinxSecretKey(<redacted>)")
    }
}

/// A node's Sphinx public key (an X25519 u-coordinate).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SphinxPublicKey(pub [u8; 32]);

impl SphinxPublicKey {
    /// The key as a checked curve point; `None` if it is non-canonical, on
    /// the twist, or of small order (no real key is).
    pub fn to_point(&self) -> Option<CurvePoint> {
        CurvePoint::from_u_bytes(&self.0).filter(|p| !p.is_small_order())
    }
}

impl fmt::Display for SphinxPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SphinxPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SphinxPublicKey({self})")
    }
}

/// Why a string is not a Sphinx public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a Sphinx public key is 64 hex digits (32 bytes)")]
pub struct ParsePublicKeyError;

impl FromStr for SphinxPublicKey {
    type Err = ParsePublicKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(s, &mut key).map_err(|_| ParsePublicKeyError)?;
        Ok(SphinxPublicKey(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let key = SphinxSecretKey::from_bytes([0x42; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains("42"), "{shown}");
    }
}
