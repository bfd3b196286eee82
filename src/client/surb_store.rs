//! The SURB keys a client holds while it waits for replies: bounded in
//! count, each single use, each expiring. Pure (fed `now`), so tested in
//! virtual time.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::sphinx::{SurbId, SurbKey};

/// Bounds of a [`SurbStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SurbStoreLimits {
    /// SURB keys held at most; the oldest goes first when full.
    pub max_entries: usize,
    /// How long a SURB key is kept after it was made (also bounded by the
    /// SURB's own expiry, when its keys are retired).
    pub ttl: Duration,
}

impl Default for SurbStoreLimits {
    /// 4,096 SURB keys (about 1 MB), kept 10 minutes at most.
    fn default() -> Self {
        SurbStoreLimits {
            max_entries: 4096,
            ttl: Duration::from_secs(600),
        }
    }
}

/// One SURB key and what it answers.
#[derive(Debug)]
pub struct Entry {
    /// The request (client-local number) the SURB was sent with.
    pub request: u64,
    /// Which attempt of the request.
    pub attempt: u32,
    /// The creator's keys.
    pub key: SurbKey,
    created: Instant,
}

/// SURB keys by id. Every way out is counted: used, expired (timed out,
/// keys retired, or evicted to make room) or discarded (its request is over).
#[derive(Debug)]
pub struct SurbStore {
    limits: SurbStoreLimits,
    entries: HashMap<SurbId, Entry>,
    order: BTreeMap<u64, SurbId>,
    seq_of: HashMap<SurbId, u64>,
    next_seq: u64,
    /// SURB keys dropped unused because they expired or were evicted.
    pub expired: u64,
}

impl SurbStore {
    /// An empty store within `limits` (at least one entry).
    pub fn new(mut limits: SurbStoreLimits) -> Self {
        limits.max_entries = limits.max_entries.max(1);
        SurbStore {
            limits,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            seq_of: HashMap::new(),
            next_seq: 0,
            expired: 0,
        }
    }

    /// SURB keys held now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keeps `key`, made at `now`, for `request`'s `attempt`; makes room by
    /// dropping expired keys, then the oldest.
    pub fn insert(&mut self, request: u64, attempt: u32, key: SurbKey, now: Instant, unix: u64) {
        self.expire(now, unix);
        while self.entries.len() >= self.limits.max_entries {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.seq_of.remove(&oldest);
            if self.entries.remove(&oldest).is_some() {
                self.expired += 1;
            }
        }
        let id = key.id();
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(old) = self.seq_of.insert(id, seq) {
            self.order.remove(&old);
        }
        self.order.insert(seq, id);
        self.entries.insert(
            id,
            Entry {
                request,
                attempt,
                key,
                created: now,
            },
        );
    }

    /// Takes the key of SURB `id` (single use: it is gone afterwards);
    /// `None` if unknown, used already or expired.
    pub fn take(&mut self, id: &SurbId, now: Instant, unix: u64) -> Option<Entry> {
        self.expire(now, unix);
        let entry = self.entries.remove(id)?;
        if let Some(seq) = self.seq_of.remove(id) {
            self.order.remove(&seq);
        }
        Some(entry)
    }

    /// Drops every key of `request` (it was answered or given up); returns
    /// how many there were.
    pub fn discard_request(&mut self, request: u64) -> usize {
        let ids: Vec<SurbId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.request == request)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.entries.remove(id);
            if let Some(seq) = self.seq_of.remove(id) {
                self.order.remove(&seq);
            }
        }
        ids.len()
    }

    /// Drops keys older than the TTL or past their SURB's expiry.
    fn expire(&mut self, now: Instant, unix: u64) {
        let ttl = self.limits.ttl;
        let stale: Vec<SurbId> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                now.saturating_duration_since(e.created) >= ttl || unix >= e.key.expires()
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.entries.remove(&id);
            if let Some(seq) = self.seq_of.remove(&id) {
                self.order.remove(&seq);
            }
            self.expired += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sphinx::{NodeId, PathHop, SphinxSecretKey, create_surb_with_seed};

    fn key(n: u8, expires: u64) -> SurbKey {
        let hop = PathHop {
            id: NodeId::from_bytes([n; 16]),
            public_key: SphinxSecretKey::from_bytes([7; 32]).public_key(),
        };
        let addr = "127.0.0.1:1".parse().unwrap();
        create_surb_with_seed(&[hop], addr, addr, expires, &[n; 32])
            .unwrap()
            .1
    }

    #[test]
    fn bounded_single_use_and_expiring() {
        let t0 = Instant::now();
        let mut store = SurbStore::new(SurbStoreLimits {
            max_entries: 2,
            ttl: Duration::from_secs(10),
        });
        let (a, b, c) = (key(1, 1000), key(2, 1000), key(3, 50));
        let (ida, idb, idc) = (a.id(), b.id(), c.id());
        store.insert(1, 0, a, t0, 0);
        store.insert(1, 0, b, t0, 0);
        store.insert(2, 0, c, t0, 0);
        // Full: the oldest went.
        assert_eq!(store.len(), 2);
        assert!(store.take(&ida, t0, 0).is_none());
        assert_eq!(store.expired, 1);
        // Single use.
        assert_eq!(store.take(&idb, t0, 0).unwrap().request, 1);
        assert!(store.take(&idb, t0, 0).is_none());
        // c's keys are retired at unix 50.
        assert!(store.take(&idc, t0, 50).is_none());
        assert_eq!(store.expired, 2);
        // TTL.
        store.insert(3, 0, key(4, 1000), t0, 0);
        assert!(
            store
                .take(&key(4, 1000).id(), t0 + Duration::from_secs(10), 0)
                .is_none()
        );
        assert!(store.is_empty());
        store.insert(4, 0, key(5, 1000), t0, 0);
        assert_eq!(store.discard_request(4), 1);
        assert!(store.is_empty());
    }
}
