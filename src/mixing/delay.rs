//! Exponential (Poisson) mixing delays, as in Loopix: memoryless, so the
//! time a packet has waited says nothing about when it leaves.

use std::time::Duration;

use crate::sphinx::ReplayTag;

/// Chooses each packet's mixing delay.
pub trait DelayPolicy: Send + Sync {
    /// The delay for a packet with this replay tag. `random` is 64 fresh
    /// bits from the worker's CSPRNG, for policies that need them.
    fn delay(&self, tag: &ReplayTag, random: u64) -> Duration;
}

/// Exponential delays with a mean, capped at a maximum, drawn from the
/// worker's CSPRNG.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExponentialDelay {
    mean_us: f64,
    max_us: u64,
}

impl ExponentialDelay {
    /// Delays with mean `mean` (zero disables mixing) capped at `max`.
    pub fn new(mean: Duration, max: Duration) -> Self {
        ExponentialDelay {
            // Whole microseconds, exactly as the spec's `mean_delay_µs`, so
            // a verifier following the spec gets the same floor.
            mean_us: mean.as_micros() as f64,
            max_us: u64::try_from(max.as_micros()).unwrap_or(u64::MAX),
        }
    }

    /// `min(floor(−mean · ln u), max)` for `u = ((v >> 11) + 1) / 2^53`,
    /// the same mapping the spec uses for VRF delays, so `0 < u ≤ 1`.
    pub fn from_uniform_bits(&self, v: u64) -> Duration {
        let u = ((v >> 11) + 1) as f64 / (1u64 << 53) as f64;
        let us = (-self.mean_us * u.ln()).floor();
        // `us` is ≥ 0 (u ≤ 1) and finite (u > 0); the cast saturates.
        Duration::from_micros((us as u64).min(self.max_us))
    }
}

impl DelayPolicy for ExponentialDelay {
    fn delay(&self, _tag: &ReplayTag, random: u64) -> Duration {
        self.from_uniform_bits(random)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extremes_and_cap() {
        let d = ExponentialDelay::new(Duration::from_millis(50), Duration::from_secs(2));
        // u = 1 → 0 delay.
        assert_eq!(d.from_uniform_bits(u64::MAX), Duration::ZERO);
        // u = 2^-53 → 50 ms · 36.7 = 1.8 s, under the cap.
        assert_eq!(d.from_uniform_bits(0), Duration::from_micros(1_836_840));
        let capped = ExponentialDelay::new(Duration::from_millis(50), Duration::from_millis(100));
        assert_eq!(capped.from_uniform_bits(0), Duration::from_millis(100));
    }

    #[test]
    fn mean_is_close() {
        let d = ExponentialDelay::new(Duration::from_millis(5), Duration::from_secs(10));
        let n = 100_000u64;
        // A simple full-period LCG is enough to sweep u uniformly here.
        let mut v = 0x1234_5678_u64;
        let total: f64 = (0..n)
            .map(|_| {
                v = v
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                d.from_uniform_bits(v).as_secs_f64()
            })
            .sum();
        let mean_ms = total / n as f64 * 1e3;
        assert!((mean_ms - 5.0).abs() < 0.15, "mean {mean_ms} ms");
    }
}
