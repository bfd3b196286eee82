//! Per-source token buckets. Pure: the caller passes the clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
}

/// Buckets per source IP, bounded in number: when the table is full, idle
/// (refilled) sources are forgotten first, so a flood of spoofed sources
/// cannot grow memory.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    max_sources: usize,
    buckets: Mutex<HashMap<IpAddr, TokenBucket>>,
}

impl RateLimiter {
    /// `rate` packets per second per source, bursts of `burst`.
    pub fn new(rate: f64, burst: f64, max_sources: usize) -> Self {
        RateLimiter {
            rate,
            burst,
            max_sources: max_sources.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// True if `source` may send `n` more packets at `now`.
    pub fn allow(&self, source: IpAddr, n: u32, now: Instant) -> bool {
        // The table stays valid even if a holder panicked.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(&source) && buckets.len() >= self.max_sources {
            self.evict_idle(&mut buckets, now);
            if buckets.len() >= self.max_sources {
                // Still full of active sources: treat the newcomer as over its rate.
                return false;
            }
        }
        let (rate, burst) = (self.rate, self.burst);
        buckets
            .entry(source)
            .or_insert_with(|| TokenBucket::new(burst, now))
            .take(f64::from(n), rate, burst, now)
    }

    /// Sources tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn evict_idle(&self, buckets: &mut HashMap<IpAddr, TokenBucket>, now: Instant) {
        // A bucket that would be full again carries no state worth keeping.
        let refill = Duration::from_secs_f64(self.burst / self.rate.max(f64::MIN_POSITIVE));
        buckets.retain(|_, b| now.saturating_duration_since(b.last) < refill);
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
}
