//! What the replay filter keeps of a tag: the first 8 bytes of `τ`, read as
//! a little-endian `u64` ([`TagKey`]), split into a bucket index (low 32
//! bits) and a 32-bit fingerprint (high 32 bits).
//!
//! `τ` is a BLAKE3 output, so for honest packets both halves are uniform
//! and independent: no hashing is needed. A sender can grind its own
//! packets' tags, but every try costs an X25519 scalar multiplication, and
//! a collision it grinds only drops its own packet.

use crate::sphinx::ReplayTag;

/// The 64 bits of `τ` the filter and its journal keep per tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct TagKey(pub(super) u64);

/// Bytes of a [`TagKey`] (and of a journal record).
pub(super) const KEY_LEN: usize = size_of::<u64>();

impl TagKey {
    /// The key of `tag`: its first 8 bytes, little-endian.
    pub(super) fn of(tag: &ReplayTag) -> TagKey {
        let mut first = [0u8; KEY_LEN];
        first.copy_from_slice(&tag.0[..KEY_LEN]);
        TagKey(u64::from_le_bytes(first))
    }

    /// A uniform key for test number `i` (the key of a BLAKE3 output, as a
    /// real tag's is).
    #[cfg(test)]
    pub(super) fn for_test(i: u64) -> TagKey {
        TagKey::of(&ReplayTag(*blake3::hash(&i.to_le_bytes()).as_bytes()))
    }

    /// The bits that pick the primary bucket (masked by each segment).
    pub(super) fn index_bits(self) -> u32 {
        // Truncation intended: the low half.
        self.0 as u32
    }

    /// The fingerprint stored in a slot: the high 32 bits, with 0 (the
    /// empty slot) mapped to 1. That makes 1 twice as likely as any other
    /// value, which raises the false-positive rate by ~2^-32 of itself.
    pub(super) fn fingerprint(self) -> u32 {
        ((self.0 >> 32) as u32).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_first_eight_bytes_little_endian() {
        let mut tag = [0xffu8; 32];
        let first: [u8; 8] = std::array::from_fn(|i| i as u8 + 1);
        tag[..8].copy_from_slice(&first);
        let key = TagKey::of(&ReplayTag(tag));
        assert_eq!(key.0, 0x0807_0605_0403_0201);
        assert_eq!(key.index_bits(), 0x0403_0201);
        assert_eq!(key.fingerprint(), 0x0807_0605);
        // Bytes 8.. are ignored.
        tag[8..].fill(0);
        assert_eq!(TagKey::of(&ReplayTag(tag)), key);
    }

    #[test]
    fn zero_fingerprint_is_never_stored() {
        assert_eq!(TagKey(0x0000_0000_dead_beef).fingerprint(), 1);
        assert_eq!(TagKey(0x0000_0001_0000_0000).fingerprint(), 1);
        assert_eq!(TagKey(u64::MAX).fingerprint(), u32::MAX);
    }
}
