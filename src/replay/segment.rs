//! One segment of the replay filter: a bucketed cuckoo table of 32-bit
//! fingerprints (8 per 32-byte bucket), with partial-key cuckoo hashing.
//!
//! A tag may sit in its primary bucket `i1` (from [`TagKey::index_bits`])
//! or its alternate `i2 = i1 ^ h(fp)`, which is computed from the
//! fingerprint alone, so an entry can be moved between its two buckets
//! without knowing its tag. A lookup reads both buckets: 16 slots, each
//! matching a fresh tag's fingerprint with probability 2^-32.
//!
//! Inserts are deterministic (the slot to evict comes from a generator
//! seeded by the fingerprint), so replaying the same inserts rebuilds the
//! same table: the journal only needs the tags, in order.

use super::fingerprint::TagKey;

/// Fingerprints per bucket. With 8 slots and two choices a cuckoo table
/// fills past 95% before an insert fails.
pub(super) const SLOTS: usize = 8;
/// Bytes per bucket.
pub(super) const BUCKET_BYTES: usize = SLOTS * size_of::<u32>();
/// Evictions tried before an insert gives up (and is undone). At the load
/// a segment is sealed at, chains are a few evictions long; the cap only
/// bounds the rare bad case.
const MAX_KICKS: usize = 256;

/// Eight fingerprints; 0 is an empty slot. 32-byte aligned, so a bucket
/// never straddles a cache line.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[repr(C, align(32))]
struct Bucket([u32; SLOTS]);

impl Bucket {
    fn contains(&self, fp: u32) -> bool {
        // Branch-free, so the compiler compares all slots at once (SIMD).
        self.0.iter().fold(false, |found, &x| found | (x == fp))
    }

    /// Puts `fp` into a free slot, if there is one.
    fn put(&mut self, fp: u32) -> bool {
        match self.0.iter_mut().find(|x| **x == 0) {
            Some(slot) => {
                *slot = fp;
                true
            }
            None => false,
        }
    }
}

/// A fixed-size cuckoo table; see the [module docs](self).
pub(super) struct Segment {
    buckets: Box<[Bucket]>,
    /// `buckets.len() - 1` (the length is a power of two).
    mask: u32,
    len: usize,
}

impl Segment {
    /// An empty segment of `buckets` buckets (a power of two, at most 2^32).
    pub(super) fn new(buckets: usize) -> Segment {
        assert!(
            buckets.is_power_of_two() && u32::try_from(buckets - 1).is_ok(),
            "segment size {buckets} must be a power of two up to 2^32"
        );
        Segment {
            buckets: vec![Bucket::default(); buckets].into_boxed_slice(),
            mask: (buckets - 1) as u32,
            len: 0,
        }
    }

    /// Number of buckets.
    pub(super) fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Fingerprint slots.
    #[cfg(test)]
    pub(super) fn slots(&self) -> usize {
        self.buckets.len() * SLOTS
    }

    /// Bytes of memory the table takes.
    pub(super) fn bytes(&self) -> usize {
        self.buckets.len() * BUCKET_BYTES
    }

    /// Fingerprints held.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    fn primary(&self, key: TagKey) -> usize {
        (key.index_bits() & self.mask) as usize
    }

    /// The other bucket of a fingerprint held in bucket `i`. An involution:
    /// `alternate(alternate(i, fp), fp) == i`.
    fn alternate(&self, i: usize, fp: u32) -> usize {
        // A multiplicative hash of the fingerprint (MurmurHash2's
        // constant), so entries with nearby fingerprints spread out.
        (i ^ fp.wrapping_mul(0x5bd1_e995) as usize) & self.mask as usize
    }

    /// Whether `key`'s fingerprint is in one of its two buckets: either the
    /// tag was inserted, or (probability ≤ 16 × 2^-32) another tag shares
    /// its buckets' fingerprint.
    pub(super) fn contains(&self, key: TagKey) -> bool {
        let fp = key.fingerprint();
        let i1 = self.primary(key);
        let i2 = self.alternate(i1, fp);
        self.buckets[i1].contains(fp) | self.buckets[i2].contains(fp)
    }

    /// Inserts `key` (without checking whether it is there). Fails, leaving
    /// the table exactly as it was, when no place is found within
    /// [`MAX_KICKS`] evictions.
    pub(super) fn insert(&mut self, key: TagKey) -> bool {
        let fp = key.fingerprint();
        let i1 = self.primary(key);
        let i2 = self.alternate(i1, fp);
        if self.buckets[i1].put(fp) || self.buckets[i2].put(fp) {
            self.len += 1;
            return true;
        }
        // Both full: evict along a chain, logging each swap so a chain
        // that finds no room can be undone.
        let mut log = [(0u32, 0u8); MAX_KICKS];
        let mut rng = u64::from(fp) | 1;
        let mut held = fp;
        let mut at = if fp & 1 == 0 { i1 } else { i2 };
        for entry in log.iter_mut() {
            // xorshift64: deterministic, and cheap.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let slot = (rng >> 61) as usize;
            std::mem::swap(&mut held, &mut self.buckets[at].0[slot]);
            *entry = (at as u32, slot as u8);
            at = self.alternate(at, held);
            if self.buckets[at].put(held) {
                self.len += 1;
                return true;
            }
        }
        for &(at, slot) in log.iter().rev() {
            std::mem::swap(&mut held, &mut self.buckets[at as usize].0[slot as usize]);
        }
        debug_assert_eq!(held, fp, "undo restores the table");
        false
    }

    /// The table as bytes (little-endian fingerprints).
    #[cfg(test)]
    pub(super) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes());
        for bucket in self.buckets.iter() {
            for fp in bucket.0 {
                out.extend_from_slice(&fp.to_le_bytes());
            }
        }
        out
    }

    /// A segment from [`to_bytes`](Self::to_bytes); `None` if the length is
    /// not a power-of-two number of buckets.
    #[cfg(test)]
    pub(super) fn from_bytes(bytes: &[u8]) -> Option<Segment> {
        if !bytes.len().is_multiple_of(BUCKET_BYTES) {
            return None;
        }
        let buckets = bytes.len() / BUCKET_BYTES;
        if !buckets.is_power_of_two() || u32::try_from(buckets - 1).is_err() {
            return None;
        }
        let mut segment = Segment::new(buckets);
        let mut len = 0;
        for (bucket, chunk) in segment
            .buckets
            .iter_mut()
            .zip(bytes.chunks_exact(BUCKET_BYTES))
        {
            for (slot, fp) in bucket.0.iter_mut().zip(chunk.chunks_exact(4)) {
                *slot = u32::from_le_bytes([fp[0], fp[1], fp[2], fp[3]]);
                len += usize::from(*slot != 0);
            }
        }
        segment.len = len;
        Some(segment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> TagKey {
        TagKey::for_test(i)
    }

    #[test]
    fn inserted_keys_are_found_and_others_are_not() {
        let mut s = Segment::new(64);
        for i in 0..400 {
            assert!(s.insert(key(i)), "{i}");
        }
        assert_eq!(s.len(), 400);
        assert!((0..400).all(|i| s.contains(key(i))));
        assert!((400..10_000).all(|i| !s.contains(key(i))));
    }

    #[test]
    fn fills_past_95_percent_and_a_failed_insert_changes_nothing() {
        let mut s = Segment::new(1024);
        let mut i = 0;
        while s.insert(key(i)) {
            i += 1;
        }
        let load = s.len() as f64 / s.slots() as f64;
        assert!(load > 0.95, "load {load}");
        let before = s.to_bytes();
        assert!(!s.insert(key(i)));
        assert_eq!(s.to_bytes(), before, "the failed insert was undone");
        assert!((0..i).all(|j| s.contains(key(j))));
    }

    #[test]
    fn inserts_are_deterministic_and_bytes_round_trip() {
        let build = || {
            let mut s = Segment::new(256);
            for i in 0..1900 {
                s.insert(key(i));
            }
            s
        };
        let (a, b) = (build(), build());
        assert_eq!(a.to_bytes(), b.to_bytes());
        let c = Segment::from_bytes(&a.to_bytes()).unwrap();
        assert_eq!(c.len(), a.len());
        assert_eq!(c.to_bytes(), a.to_bytes());
        assert!(Segment::from_bytes(&[0; 96]).is_none(), "3 buckets");
        assert!(Segment::from_bytes(&[0; 33]).is_none());
    }

    #[test]
    fn alternate_is_an_involution() {
        let s = Segment::new(1 << 10);
        for i in 0..1024 {
            for fp in [1, 7, 0xdead_beef, u32::MAX] {
                assert_eq!(s.alternate(s.alternate(i, fp), fp), i);
            }
        }
    }
}
