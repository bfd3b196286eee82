//! A lock-free latency histogram with log-spaced buckets (8 per power of
//! two, so any quantile is within ~9% of the true value). Recording is one
//! relaxed atomic add; snapshots are folded across workers on read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// Buckets for values up to 2^64 ns.
const BUCKETS: usize = 64 * SUB;

/// Bucket index of a value in nanoseconds.
fn bucket_of(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    let octave = 63 - ns.leading_zeros();
    let sub = (ns >> (octave - SUB_BITS)) as usize & (SUB - 1);
    (octave as usize - SUB_BITS as usize + 1) * SUB + sub
}

/// The largest value (ns) that falls in bucket `i`.
fn upper_bound(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let octave = (i / SUB) as u32 + SUB_BITS - 1;
    let sub = (i % SUB) as u64;
    let base = 1u64 << octave;
    let step = base >> SUB_BITS;
    (base - 1).saturating_add((sub + 1) * step)
}

/// Concurrent histogram of durations.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one observation.
    pub fn record(&self, value: Duration) {
        let ns = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Adds this histogram's counts into `into`.
    pub fn fold_into(&self, into: &mut HistogramSnapshot) {
        for (total, bucket) in into.counts.iter_mut().zip(self.buckets.iter()) {
            *total += bucket.load(Ordering::Relaxed);
        }
        into.sum_ns = into
            .sum_ns
            .saturating_add(self.sum_ns.load(Ordering::Relaxed));
    }
}

/// A point-in-time copy of one or more histograms.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    counts: Vec<u64>,
    sum_ns: u64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        HistogramSnapshot {
            counts: vec![0; BUCKETS],
            sum_ns: 0,
        }
    }
}

impl HistogramSnapshot {
    /// Adds another snapshot's observations to this one.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
    }

    /// The observations recorded after `earlier` (a snapshot of the same
    /// histograms taken before this one): the distribution over a window.
    pub fn since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self
                .counts
                .iter()
                .zip(&earlier.counts)
                .map(|(now, then)| now.saturating_sub(*then))
                .collect(),
            sum_ns: self.sum_ns.saturating_sub(earlier.sum_ns),
        }
    }

    /// Observations recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Sum of all observations.
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_ns)
    }

    /// Mean observation (zero when empty).
    pub fn mean(&self) -> Duration {
        match self.count() {
            0 => Duration::ZERO,
            n => Duration::from_nanos(self.sum_ns / n),
        }
    }

    /// The `q` quantile (0.0–1.0), as the upper bound of its bucket; zero
    /// when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        let total = self.count();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Duration::from_nanos(upper_bound(i));
            }
        }
        Duration::from_nanos(u64::MAX)
    }

    /// Observations at or below `bound` (for Prometheus `le` buckets);
    /// exact at bucket edges, otherwise the buckets wholly below `bound`.
    pub fn count_at_or_below(&self, bound: Duration) -> u64 {
        let ns = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
        self.counts
            .iter()
            .enumerate()
            .take_while(|(i, _)| upper_bound(*i) <= ns)
            .map(|(_, c)| c)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_their_values() {
        for ns in [0u64, 1, 7, 8, 9, 15, 16, 1000, 123_456, 1 << 40, u64::MAX] {
            let i = bucket_of(ns);
            assert!(ns <= upper_bound(i), "{ns} above bucket {i}");
            if i > 0 {
                assert!(ns > upper_bound(i - 1), "{ns} fits an earlier bucket");
            }
        }
    }

    #[test]
    fn quantiles_within_bucket_precision() {
        let h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let mut s = HistogramSnapshot::default();
        h.fold_into(&mut s);
        assert_eq!(s.count(), 1000);
        for (q, want) in [(0.5, 500.0), (0.99, 990.0)] {
            let got = s.quantile(q).as_secs_f64() * 1e6;
            assert!(got >= want && got < want * 1.13, "q{q}: {got}");
        }
        assert_eq!(s.mean(), Duration::from_nanos(500_500));
    }

    #[test]
    fn since_keeps_only_the_window() {
        let h = Histogram::default();
        for _ in 0..100 {
            h.record(Duration::from_secs(1));
        }
        let mut before = HistogramSnapshot::default();
        h.fold_into(&mut before);
        for _ in 0..10 {
            h.record(Duration::from_millis(1));
        }
        let mut after = HistogramSnapshot::default();
        h.fold_into(&mut after);
        let window = after.since(&before);
        assert_eq!(window.count(), 10);
        assert!(window.quantile(1.0) < Duration::from_micros(1100));
        assert_eq!(window.mean(), Duration::from_millis(1));
    }
}
