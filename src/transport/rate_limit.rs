//! Per-source token buckets. Pure: the caller passes the clock.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::bucket_table::BucketTable;

/// Sources per shard of a large table. Small tables get one shard, so they
/// evict exactly least-recently-used; large ones split the lock.
const SHARD_SOURCES: usize = 4096;

/// Most shards: enough that the UDP receiver and the TCP connections rarely
/// wait for one another.
const MAX_SHARDS: usize = 16;

/// A token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: f64, now: Instant) -> Self {
        TokenBucket {
            tokens: burst,
            last: now,
        }
    }

    /// Takes `n` tokens if there are enough (after refilling to `now`).
    pub fn take(&mut self, n: f64, rate: f64, burst: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// When the bucket was last asked for tokens.
    pub fn last(&self) -> Instant {
        self.last
    }
}

/// Buckets per source, bounded in number, with O(1) work per packet even
/// under a flood of new (spoofed) sources.
///
/// Sources are spread over a few shards by a keyed hash (an attacker cannot
/// aim at one shard), each a [`BucketTable`] in least-recently-used order
/// behind its own lock. When a shard is full, its least recently used
/// source is forgotten if its bucket would be full again anyway; otherwise
/// every source in it is active, and the newcomer is treated as over its
/// rate rather than allowed to push out a source that is being limited.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    /// How long a bucket takes to refill from empty: after that long
    /// untouched, forgetting it loses nothing.
    refill: Duration,
    hasher: RandomState,
    shards: Box<[Mutex<BucketTable>]>,
}

impl RateLimiter {
    /// `rate` packets per second per source, bursts of `burst`, at most
    /// (about) `max_sources` sources tracked.
    pub fn new(rate: f64, burst: f64, max_sources: usize) -> Self {
        let max_sources = max_sources.max(1);
        let shards = (max_sources / SHARD_SOURCES).clamp(1, MAX_SHARDS);
        let per_shard = max_sources.div_ceil(shards);
        RateLimiter {
            rate,
            burst,
            refill: Duration::try_from_secs_f64(burst / rate.max(f64::MIN_POSITIVE))
                .unwrap_or(Duration::MAX),
            hasher: RandomState::new(),
            shards: (0..shards)
                .map(|_| Mutex::new(BucketTable::new(per_shard)))
                .collect(),
        }
    }

    /// True if `source` may send `n` more packets at `now`.
    pub fn allow(&self, source: IpAddr, n: u32, now: Instant) -> bool {
        let shard = self.hasher.hash_one(source) as usize % self.shards.len();
        // The table stays valid even if a holder panicked: every update
        // leaves it consistent before the next can fail.
        let mut table = self.shards[shard].lock().unwrap_or_else(|e| e.into_inner());
        match table.bucket(source, self.burst, self.refill, now) {
            Some(bucket) => bucket.take(f64::from(n), self.rate, self.burst, now),
            // Full of active sources: the newcomer is over its rate.
            None => false,
        }
    }

    /// Sources tracked now.
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, t0);
        assert!(b.take(10.0, 100.0, 10.0, t0));
        assert!(!b.take(1.0, 100.0, 10.0, t0));
        assert!(b.take(1.0, 100.0, 10.0, t0 + Duration::from_millis(10)));
    }

    #[test]
    fn sources_are_limited_independently_and_bounded() {
        let t0 = Instant::now();
        let limiter = RateLimiter::new(10.0, 5.0, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let c: IpAddr = "127.0.0.3".parse().unwrap();
        assert!(limiter.allow(a, 5, t0));
        assert!(!limiter.allow(a, 1, t0));
        assert!(limiter.allow(b, 1, t0));
        // Table full of active sources: a third is refused, not added.
        assert!(!limiter.allow(c, 1, t0));
        assert_eq!(limiter.tracked(), 2);
        // Once the others are idle long enough they are forgotten.
        assert!(limiter.allow(c, 1, t0 + Duration::from_secs(5)));
    }

    #[test]
    fn a_flood_of_new_sources_stays_bounded_and_quick() {
        // 200,000 new sources a millisecond apart into a table of 65,536:
        // every newcomer past the capacity evicts in O(1) (the old code
        // scanned the whole table for each one, under one global lock).
        let limiter = RateLimiter::new(1_000.0, 10.0, 65_536);
        let t0 = Instant::now();
        for n in 0..200_000u32 {
            let source = IpAddr::from((0x0a00_0000 | n).to_be_bytes());
            let now = t0 + Duration::from_millis(u64::from(n));
            assert!(limiter.allow(source, 1, now), "source {n}");
        }
        let tracked = limiter.tracked();
        assert!(tracked <= 65_536, "{tracked}");
        assert!(tracked > 60_000, "{tracked}");
    }

    #[test]
    fn absurd_rates_do_not_panic() {
        let t0 = Instant::now();
        let limiter = RateLimiter::new(f64::MIN_POSITIVE, f64::from(u32::MAX), 1);
        assert!(limiter.allow("10.0.0.1".parse().unwrap(), 1, t0));
        assert!(!limiter.allow("10.0.0.2".parse().unwrap(), 1, t0));
    }
}
