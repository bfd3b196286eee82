//! A fixed-capacity table of token buckets kept in least-recently-used
//! order: look-up, insertion and eviction each cost O(1), so a flood of new
//! sources costs the same per packet as traffic from one source.
//!
//! The order is a doubly linked list threaded through a slot vector by
//! index (no pointers, no unsafe). Only the least recently used entry is
//! ever evicted, and only once its bucket would be full again: if even that
//! one is still active, every entry is, and the newcomer is refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::rate_limit::TokenBucket;

/// "No slot": the end of the list.
const NIL: u32 = u32::MAX;

/// One tracked source.
struct Slot {
    key: IpAddr,
    bucket: TokenBucket,
    /// Towards the most recently used end.
    prev: u32,
    /// Towards the least recently used end.
    next: u32,
}

/// Buckets by source, at most `capacity` of them.
pub(super) struct BucketTable {
    index: HashMap<IpAddr, u32>,
    slots: Vec<Slot>,
    capacity: usize,
    /// Most recently used slot.
    head: u32,
    /// Least recently used slot: the only eviction candidate.
    tail: u32,
}

impl BucketTable {
    /// An empty table for at most `capacity` sources (at least 1). Memory
    /// grows with the sources seen, up to the capacity.
    pub(super) fn new(capacity: usize) -> Self {
        BucketTable {
            index: HashMap::new(),
            slots: Vec::new(),
            capacity: capacity.clamp(1, NIL as usize - 1),
            head: NIL,
            tail: NIL,
        }
    }

    /// Sources tracked now.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The bucket of `key`, now the most recently used. A new source gets a
    /// full bucket (`burst` tokens): in a free slot, or in the least
    /// recently used one if that has been untouched for `idle` (its bucket
    /// would be full again, so forgetting it changes nothing). `None`: the
    /// table is full of sources active within `idle`.
    pub(super) fn bucket(
        &mut self,
        key: IpAddr,
        burst: f64,
        idle: Duration,
        now: Instant,
    ) -> Option<&mut TokenBucket> {
        let i = match self.index.get(&key) {
            Some(&i) => {
                self.unlink(i);
                i
            }
            None if self.slots.len() < self.capacity => {
                let i = self.slots.len() as u32;
                self.slots.push(Slot {
                    key,
                    bucket: TokenBucket::new(burst, now),
                    prev: NIL,
                    next: NIL,
                });
                self.index.insert(key, i);
                i
            }
            None => {
                let i = self.tail;
                let lru = &self.slots[i as usize];
                if now.saturating_duration_since(lru.bucket.last()) < idle {
                    return None;
                }
                self.unlink(i);
                let old = std::mem::replace(&mut self.slots[i as usize].key, key);
                self.index.remove(&old);
                self.index.insert(key, i);
                self.slots[i as usize].bucket = TokenBucket::new(burst, now);
                i
            }
        };
        self.push_front(i);
        Some(&mut self.slots[i as usize].bucket)
    }

    /// Takes slot `i` out of the list.
    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let slot = &self.slots[i as usize];
            (slot.prev, slot.next)
        };
        match prev {
            NIL => self.head = next,
            p => self.slots[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n as usize].prev = prev,
        }
    }

    /// Puts slot `i` (not in the list) at the most recently used end.
    fn push_front(&mut self, i: u32) {
        let old_head = self.head;
        {
            let slot = &mut self.slots[i as usize];
            slot.prev = NIL;
            slot.next = old_head;
        }
        match old_head {
            NIL => self.tail = i,
            h => self.slots[h as usize].prev = i,
        }
        self.head = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    const IDLE: Duration = Duration::from_secs(1);

    #[test]
    fn the_least_recently_used_idle_source_makes_room() {
        let t0 = Instant::now();
        let mut table = BucketTable::new(2);
        assert!(table.bucket(ip(1), 5.0, IDLE, t0).is_some());
        assert!(table.bucket(ip(2), 5.0, IDLE, t0).is_some());
        // Full of sources active just now: a newcomer is refused.
        assert!(table.bucket(ip(3), 5.0, IDLE, t0).is_none());
        // 1 is used again, so 2 is the least recent; once idle it goes.
        let t1 = t0 + IDLE;
        assert!(table.bucket(ip(1), 5.0, IDLE, t1).is_some());
        assert!(table.bucket(ip(3), 5.0, IDLE, t1).is_some());
        assert_eq!(table.len(), 2);
        assert!(table.index.contains_key(&ip(1)));
        assert!(table.index.contains_key(&ip(3)));
        assert!(!table.index.contains_key(&ip(2)));
    }

    #[test]
    fn a_returning_source_keeps_its_bucket() {
        let t0 = Instant::now();
        let mut table = BucketTable::new(4);
        let bucket = table.bucket(ip(1), 2.0, IDLE, t0).unwrap();
        assert!(bucket.take(2.0, 1.0, 2.0, t0));
        let bucket = table.bucket(ip(1), 2.0, IDLE, t0).unwrap();
        assert!(!bucket.take(1.0, 1.0, 2.0, t0), "no fresh bucket");
    }

    #[test]
    fn a_flood_of_new_sources_is_cheap_and_bounded() {
        // A million distinct sources through a table of 4,096: each one
        // evicts the least recent in O(1), so this is quick.
        let mut table = BucketTable::new(4096);
        let t0 = Instant::now();
        for n in 0..1_000_000u32 {
            let now = t0 + Duration::from_millis(u64::from(n));
            let bucket = table.bucket(ip(n), 1.0, Duration::from_millis(1), now);
            assert!(bucket.is_some(), "source {n}");
        }
        assert_eq!(table.len(), 4096);
        assert_eq!(table.index.len(), 4096);
        // The list still links every slot, most recent first.
        let mut seen = 0;
        let mut i = table.head;
        let mut last_key = None;
        while i != NIL {
            last_key = Some(table.slots[i as usize].key);
            seen += 1;
            i = table.slots[i as usize].next;
        }
        assert_eq!(seen, 4096);
        assert_eq!(last_key, Some(ip(1_000_000 - 4096)));
    }
}
