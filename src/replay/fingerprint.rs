//! The fingerprint a replay cache keeps per tag (the first 16 bytes of `τ`,
//! as `sphinx-v1.md` requires), and the shard and hash derived from it.
//!
//! `τ` is a BLAKE3 output, so for honest packets its first 16 bytes are
//! uniform: folding them to 64 bits (low half XOR high half) gives the hash
//! directly (hashing costs one XOR), and a slice of the folded bits that the
//! hash table does not use picks the shard.
//!
//! A sender chooses its own packets and could grind `τ` to crowd one shard
//! or one probe sequence, but every try costs it an X25519 scalar
//! multiplication: crowding a table of 2^k buckets costs on the order of
//! 2^k tries per packet, far more than simply sending more packets.

use std::hash::Hasher;

use crate::sphinx::ReplayTag;

/// What the cache keeps per tag: its first 16 bytes, little-endian.
pub(super) type Fingerprint = u128;

/// Bytes of `τ` kept per tag (and per journal record).
pub(super) const FINGERPRINT_LEN: usize = size_of::<Fingerprint>();

/// Number of shards (a power of two). 64 keeps lock contention low for any
/// realistic number of crypto workers, and means a table growth (which
/// briefly holds old and new tables) touches 1/64 of the memory at a time.
pub(super) const SHARDS: usize = 64;

/// Shard index bits: 51..57 of the folded hash ([`fold`]). std's `HashSet`
/// (hashbrown) takes the bucket index from the low bits and its 7-bit
/// control tag from the top 7 bits of the hash (on 32-bit targets: bits
/// 0..32), so these bits are used by neither; keys within one shard still
/// differ in every bit the table uses.
const SHARD_SHIFT: u32 = 51;

/// The fingerprint kept for `tag`: its first 16 bytes, little-endian.
pub(super) fn fingerprint(tag: &ReplayTag) -> Fingerprint {
    let mut first = [0u8; FINGERPRINT_LEN];
    first.copy_from_slice(&tag.0[..FINGERPRINT_LEN]);
    Fingerprint::from_le_bytes(first)
}

/// The 64-bit hash of `fp`: its low half XOR its high half. Uniform when
/// `fp` is, and depends on all 128 bits.
fn fold(fp: Fingerprint) -> u64 {
    // Truncations intended: the two 64-bit halves.
    (fp as u64) ^ ((fp >> 64) as u64)
}

/// The shard that holds `fp`.
pub(super) fn shard_of(fp: Fingerprint) -> usize {
    // Masking to SHARDS - 1 makes the truncation lossless.
    ((fold(fp) >> SHARD_SHIFT) as usize) & (SHARDS - 1)
}

/// A `Hasher` for keys that are already uniform: a `u64` key is its own
/// hash, a `u128` key ([`Fingerprint`]) is hashed to its two halves XORed.
#[derive(Default, Clone, Copy)]
pub(super) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = fold(n);
    }

    /// Only `u64` and `u128` keys are hashed with this hasher; other input is
    /// folded in anyway so that misuse degrades performance, not correctness.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, BuildHasherDefault};

    use super::*;

    #[test]
    fn fingerprint_is_first_sixteen_bytes_little_endian() {
        let mut tag = [0xffu8; 32];
        let first: [u8; 16] = std::array::from_fn(|i| i as u8 + 1);
        tag[..16].copy_from_slice(&first);
        assert_eq!(
            fingerprint(&ReplayTag(tag)),
            0x100f_0e0d_0c0b_0a09_0807_0605_0403_0201
        );
        // Bytes 16.. are ignored.
        tag[16..].fill(0);
        assert_eq!(
            fingerprint(&ReplayTag(tag)),
            0x100f_0e0d_0c0b_0a09_0807_0605_0403_0201
        );
    }

    #[test]
    fn identity_hasher_returns_the_key_or_its_folded_halves() {
        let build = BuildHasherDefault::<IdentityHasher>::default();
        assert_eq!(build.hash_one(0xdead_beef_u64), 0xdead_beef);
        let fp: u128 = (0x1234_5678_0000_0000_u128 << 64) | 0xdead_beef;
        assert_eq!(build.hash_one(fp), 0x1234_5678_dead_beef);
        // Both halves matter: keys differing in either half hash apart.
        assert_ne!(build.hash_one(fp ^ 1), build.hash_one(fp));
        assert_ne!(build.hash_one(fp ^ (1 << 64)), build.hash_one(fp));
    }

    #[test]
    fn shard_bits_avoid_hashbrown_index_and_tag_bits() {
        // Flipping bits that land on the hash's low 51 or top 7 bits, in
        // either half, never moves a key between shards.
        let fp = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210_u128;
        for bit in (0..51).chain(57..64) {
            assert_eq!(shard_of(fp ^ (1 << bit)), shard_of(fp), "bit {bit}");
            let high = bit + 64;
            assert_eq!(shard_of(fp ^ (1 << high)), shard_of(fp), "bit {high}");
        }
        // Every shard is reachable from either half.
        for shift in [51, 51 + 64] {
            let shards: std::collections::HashSet<usize> =
                (0..SHARDS as u128).map(|i| shard_of(i << shift)).collect();
            assert_eq!(shards.len(), SHARDS, "shift {shift}");
        }
    }
}
