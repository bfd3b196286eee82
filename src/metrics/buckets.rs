//! Fixed Prometheus `le` bounds and their conversion from the pipeline's
//! log-bucketed [`HistogramSnapshot`].
//!
//! The pipeline records into 8-per-octave buckets whose edges are not round
//! numbers, so a count "at or below 1 ms" is the buckets wholly below 1 ms:
//! it may miss observations in the one straddling bucket (≤ ~9% of the
//! bound). Fixed bounds keep the series set stable across scrapes and nodes.

use std::time::Duration;

use crate::pipeline::HistogramSnapshot;

const fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Bounds of `betanet_processing_time_seconds`: 10 µs … 10 s.
pub const PROCESSING_BUCKETS: &[Duration] = &[
    us(10),
    us(25),
    us(50),
    us(100),
    us(250),
    us(500),
    ms(1),
    us(2_500),
    ms(5),
    ms(10),
    ms(25),
    ms(50),
    ms(100),
    ms(250),
    ms(500),
    s(1),
    ms(2_500),
    s(5),
    s(10),
];

/// Bounds of the mixing-delay and loop-RTT histograms: 100 µs … 60 s.
pub const DELAY_BUCKETS: &[Duration] = &[
    us(100),
    us(250),
    us(500),
    ms(1),
    us(2_500),
    ms(5),
    ms(10),
    ms(25),
    ms(50),
    ms(100),
    ms(250),
    ms(500),
    s(1),
    ms(2_500),
    s(5),
    s(10),
    s(30),
    s(60),
];

/// `(upper bound in seconds, observations in this bucket only)` for each
/// bound plus a final `+Inf`, as `MetricEncoder::encode_histogram` expects
/// (it accumulates them itself). The running sum therefore ends at
/// `snapshot.count()`.
pub fn cumulative_buckets(snapshot: &HistogramSnapshot, bounds: &[Duration]) -> Vec<(f64, u64)> {
    let total = snapshot.count();
    let mut below = 0;
    let mut out = Vec::with_capacity(bounds.len() + 1);
    for bound in bounds {
        // Clamping guards against a racing fold (the count and the
        // buckets are read separately) ever making a bucket exceed +Inf.
        let at_or_below = snapshot.count_at_or_below(*bound).clamp(below, total);
        out.push((bound.as_secs_f64(), at_or_below - below));
        below = at_or_below;
    }
    out.push((f64::INFINITY, total - below));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Histogram;

    #[test]
    fn buckets_sum_to_count_and_follow_the_bounds() {
        let h = Histogram::default();
        for v in [us(5), us(300), ms(3), s(20)] {
            h.record(v);
        }
        let mut snap = HistogramSnapshot::default();
        h.fold_into(&mut snap);
        let b = cumulative_buckets(&snap, PROCESSING_BUCKETS);
        assert_eq!(b.len(), PROCESSING_BUCKETS.len() + 1);
        assert_eq!(b.iter().map(|(_, c)| c).sum::<u64>(), 4);
        assert_eq!(b[0], (1e-5, 1), "5 µs is under 10 µs");
        assert_eq!(b.last(), Some(&(f64::INFINITY, 1)), "20 s is over 10 s");
        assert!(b.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn empty_snapshot_has_zero_buckets() {
        let b = cumulative_buckets(&HistogramSnapshot::default(), DELAY_BUCKETS);
        assert!(b.iter().all(|(_, c)| *c == 0));
    }
}
