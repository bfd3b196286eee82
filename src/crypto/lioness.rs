//! LIONESS over the 1024-byte Sphinx payload (`sphinx-v1.md`, "LIONESS").
//!
//! A wide-block cipher: changing any bit of the ciphertext garbles the whole
//! decrypted block, which is what makes payload tagging attacks fail at the
//! final hop's zero-prefix check.

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::stream::xor_keystream;

/// Bytes in the left half `L` of a block (one ChaCha20 key).
const LEFT: usize = 32;

/// The four 32-byte LIONESS keys `λ1..λ4` of one hop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct LionessKeys(pub(crate) [[u8; 32]; 4]);

impl LionessKeys {
    /// Builds the key set from its four parts.
    pub fn new(keys: [[u8; 32]; 4]) -> Self {
        Self(keys)
    }
}

impl std::fmt::Debug for LionessKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LionessKeys(<redacted>)")
    }
}

/// `R ^= ChaCha20(L ^ k, |R|)`.
fn stream_round(key: &[u8; 32], left: &[u8], right: &mut [u8]) {
    let mut round_key = [0u8; 32];
    for (out, (l, k)) in round_key.iter_mut().zip(left.iter().zip(key)) {
        *out = l ^ k;
    }
    xor_keystream(&round_key, right);
    round_key.zeroize();
}

/// `L ^= BLAKE3.keyed_hash(k, R)`.
fn hash_round(key: &[u8; 32], left: &mut [u8], right: &[u8]) {
    let digest = blake3::keyed_hash(key, right);
    for (l, h) in left.iter_mut().zip(digest.as_bytes()) {
        *l ^= h;
    }
}

/// Encrypts `block` in place. Blocks shorter than 33 bytes are not LIONESS
/// blocks; the engine only ever passes the 1024-byte payload.
pub fn encrypt(keys: &LionessKeys, block: &mut [u8]) {
    debug_assert!(block.len() > LEFT);
    let (left, right) = block.split_at_mut(LEFT);
    let [k1, k2, k3, k4] = &keys.0;
    stream_round(k1, left, right);
    hash_round(k2, left, right);
    stream_round(k3, left, right);
    hash_round(k4, left, right);
}

/// Decrypts `block` in place (the inverse of [`encrypt`]).
pub fn decrypt(keys: &LionessKeys, block: &mut [u8]) {
    debug_assert!(block.len() > LEFT);
    let (left, right) = block.split_at_mut(LEFT);
    let [k1, k2, k3, k4] = &keys.0;
    hash_round(k4, left, right);
    stream_round(k3, left, right);
    hash_round(k2, left, right);
    stream_round(k1, left, right);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decrypt_inverts_encrypt() {
        let keys = LionessKeys::new([[1; 32], [2; 32], [3; 32], [4; 32]]);
        let plain: Vec<u8> = (0..1024u32).map(|i| i as u8).collect();
        let mut block = plain.clone();
        encrypt(&keys, &mut block);
        assert_ne!(block, plain);
        decrypt(&keys, &mut block);
        assert_eq!(block, plain);
    }

    #[test]
    fn one_flipped_bit_garbles_the_whole_block() {
        let keys = LionessKeys::new([[5; 32], [6; 32], [7; 32], [8; 32]]);
        let mut block = vec![0u8; 1024];
        encrypt(&keys, &mut block);
        block[700] ^= 1;
        decrypt(&keys, &mut block);
        // The first 16 bytes are what the final hop checks for zero.
        assert_ne!(&block[..16], &[0u8; 16]);
        let zeros = block.iter().filter(|b| **b == 0).count();
        assert!(zeros < 40, "{zeros} zero bytes survived");
    }
}
