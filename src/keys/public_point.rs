//! Validity of published Edwards25519 public keys (identity and VRF keys).

use curve25519_dalek::edwards::CompressedEdwardsY;

/// Whether `bytes` is a key other nodes can safely use: the canonical
/// encoding of a point on Edwards25519 that is not of small order.
///
/// Canonical matters because a key is compared and hashed by its bytes (the
/// node id is derived from them): two encodings of one point would give one
/// node two ids. Small-order keys are rejected because signatures and VRF
/// proofs under them prove nothing (RFC 8032 strict verification, RFC 9381
/// `validate_key`).
pub(crate) fn is_valid_edwards_public_key(bytes: &[u8; 32]) -> bool {
    let compressed = CompressedEdwardsY(*bytes);
    match compressed.decompress() {
        Some(point) => point.compress() == compressed && !point.is_small_order(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_small_order() {
        // The identity point (y = 1) has small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(!is_valid_edwards_public_key(&identity));
    }

    #[test]
    fn rejects_non_canonical_encoding_of_a_good_point() {
        // y and y + p (p = 2^255 - 19) decode to the same point; only y < p
        // is canonical. Find a small y that is a good point, then encode y + p.
        let mut checked = 0;
        for y in 2u8..19 {
            let mut canonical = [0u8; 32];
            canonical[0] = y;
            if !is_valid_edwards_public_key(&canonical) {
                continue;
            }
            let mut plus_p = [0xff; 32];
            plus_p[0] = 0xed + y;
            plus_p[31] = 0x7f;
            assert!(!is_valid_edwards_public_key(&plus_p), "y = {y}");
            checked += 1;
        }
        assert!(checked > 0, "no small y was a valid point");
    }

    #[test]
    fn accepts_a_real_key() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        assert!(is_valid_edwards_public_key(key.verifying_key().as_bytes()));
    }
}
