//! Per-hop key derivation and the header MAC (`sphinx-v1.md`, "Hop keys").

use std::sync::LazyLock;

use blake3::hazmat::{ContextKey, HasherExt, hash_derive_key_context};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::geometry::MAC_LEN;
use super::replay::ReplayTag;
use crate::crypto::lioness::LionessKeys;

const HOP_KEYS_CONTEXT: &str = "betanet sphinx v1 hop keys";

/// The context string hashed once, not once per hop (`derive_key`'s first
/// step; the result is the same).
static HOP_KEYS_CONTEXT_KEY: LazyLock<ContextKey> =
    LazyLock::new(|| hash_derive_key_context(HOP_KEYS_CONTEXT));

/// Everything one hop derives from its shared secret `s`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct HopKeys {
    /// `ρ`: header stream key.
    pub rho: [u8; 32],
    /// `μ`: header MAC key.
    pub mu: [u8; 32],
    /// `b`: blinding scalar (X25519 clamps it).
    pub blind: [u8; 32],
    /// `τ`: replay tag (public once the packet is accepted).
    #[zeroize(skip)]
    pub tag: ReplayTag,
    /// `λ1..λ4`.
    pub lioness: LionessKeys,
}

impl HopKeys {
    /// `K = BLAKE3.derive_key("betanet sphinx v1 hop keys", s).XOF(256)`, split as the spec says.
    pub fn derive(shared_secret: &[u8; 32]) -> Self {
        let mut k = [0u8; 256];
        let mut hasher = blake3::Hasher::new_from_context_key(&HOP_KEYS_CONTEXT_KEY);
        hasher.update(shared_secret);
        let mut reader = hasher.finalize_xof();
        reader.fill(&mut k);
        // Both hold the shared secret (the hasher's input buffer, the
        // reader's last block): wiped, a few hundred bytes per hop.
        reader.zeroize();
        hasher.zeroize();
        let part = |i: usize| {
            let mut out = [0u8; 32];
            out.copy_from_slice(&k[32 * i..32 * (i + 1)]);
            out
        };
        let keys = HopKeys {
            rho: part(0),
            mu: part(1),
            blind: part(2),
            tag: ReplayTag(part(3)),
            lioness: LionessKeys::new([part(4), part(5), part(6), part(7)]),
        };
        k.zeroize();
        keys
    }

    /// `MAC(μ, β)`.
    pub fn mac(&self, beta: &[u8]) -> [u8; MAC_LEN] {
        mac(&self.mu, beta)
    }

    /// Checks `γ` against `MAC(μ, β)` in constant time.
    pub fn verify_mac(&self, beta: &[u8], gamma: &[u8]) -> bool {
        self.mac(beta).ct_eq(gamma).into()
    }
}

impl std::fmt::Debug for HopKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HopKeys")
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

/// `MAC(μ, β) = BLAKE3.keyed_hash(μ, β)[0..16]`.
pub fn mac(mu: &[u8; 32], beta: &[u8]) -> [u8; MAC_LEN] {
    let digest = blake3::keyed_hash(mu, beta);
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&digest.as_bytes()[..MAC_LEN]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precomputed_context_is_derive_key() {
        let secret = [0x5au8; 32];
        let mut expected = [0u8; 256];
        let mut hasher = blake3::Hasher::new_derive_key(HOP_KEYS_CONTEXT);
        hasher.update(&secret);
        hasher.finalize_xof().fill(&mut expected);
        let keys = HopKeys::derive(&secret);
        assert_eq!(keys.rho, expected[..32]);
        assert_eq!(keys.tag.0, expected[96..128]);
    }
}
