//! The spec's `ChaCha20(k, n)`: RFC 8439 ChaCha20 with an all-zero 96-bit
//! nonce and the block counter starting at 0.

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};

/// XORs `buf` with the first `buf.len()` bytes of `ChaCha20(key, ·)`.
///
/// Every key the spec feeds to ChaCha20 is used for exactly one stream, so a
/// fixed nonce is safe here.
pub fn xor_keystream(key: &[u8; 32], buf: &mut [u8]) {
    let mut cipher = ChaCha20::new(key.into(), &[0u8; 12].into());
    cipher.apply_keystream(buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8439 §2.4.2 keystream block 1 would need counter 1; with counter 0
    /// and the all-zero key and nonce the first block is the well-known
    /// "76b8e0ad…" vector (RFC 8439 A.1, test vector #1).
    #[test]
    fn zero_key_zero_nonce_block_zero() {
        let mut buf = [0u8; 64];
        xor_keystream(&[0u8; 32], &mut buf);
        assert_eq!(
            hex::encode(&buf[..32]),
            "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
        );
    }
}
