//! The anonymity one exponential mix gives, as a global passive adversary
//! computes it from timing alone.
//!
//! The adversary sees every packet enter and leave but not the delays.
//! Exponential delays are memoryless, so whichever packets are held, each
//! is equally likely to be the next to leave (Loopix, §4.1; Piotrowska's
//! simulator, arXiv 2107.12172, tracks the same quantity per packet). Let
//! `q_i` be the probability that input `i` is still held. A departure is
//! input `i` with probability `q_i / S`, `S = Σ q_i` (which is exactly the
//! number of packets held), and afterwards every `q_i` shrinks by the same
//! factor `1 − 1/S`.
//!
//! Because every departure scales all `q_i` alike, two sums suffice — `S`
//! and `T = Σ q_i ln q_i` — and the entropy of a departure's origin,
//! `H = ln S − T / S`, costs O(1) per packet however many inputs the mix
//! has seen. In steady state with arrival rate `λ` and mean delay `μ`,
//! `H → log2(e · λ · μ)` bits: the Poisson-mix prediction the simulator is
//! checked against.

use std::f64::consts::LN_2;

/// The running origin-entropy of one mix's pool (see the module docs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolEntropy {
    /// `S = Σ q_i`: packets held (kept exact: it only gains and loses 1).
    held: f64,
    /// `T = Σ q_i ln q_i` (≤ 0).
    q_ln_q: f64,
}

impl PoolEntropy {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// A packet entered the pool (`q = 1`, which adds `1 · ln 1 = 0` to `T`).
    pub fn arrive(&mut self) {
        self.held += 1.0;
    }

    /// A packet left the pool. Returns the entropy, in bits, of the
    /// adversary's distribution over which input it was.
    pub fn depart(&mut self) -> f64 {
        if self.held <= 1.0 {
            // The last packet held: its origin spread over the inputs still
            // carrying mass, and afterwards nothing is held.
            let bits = self.bits();
            *self = Self::default();
            return bits;
        }
        let bits = self.bits();
        let s = self.held;
        let shrink = 1.0 - 1.0 / s;
        // Σ c·q_i · ln(c·q_i) = c·(T + S·ln c).
        self.q_ln_q = shrink * (self.q_ln_q + s * shrink.ln());
        self.held = s - 1.0;
        bits
    }

    /// The entropy, in bits, a departure now would have: how well the mix
    /// hides the packet it sends next (0 when it holds at most one input).
    pub fn bits(&self) -> f64 {
        if self.held <= 0.0 {
            return 0.0;
        }
        let s = self.held;
        // ln S − T/S, clamped: rounding must not report negative entropy.
        ((s.ln() - self.q_ln_q / s) / LN_2).max(0.0)
    }

    /// Packets held, as the adversary counts them.
    pub fn pool(&self) -> f64 {
        self.held
    }
}

/// The Poisson-mix model's steady-state entropy, in bits, of a departure
/// from an exponential mix with arrival rate `rate_pps` and mean delay
/// `mean_delay_s`: `log2(e · λ · μ)` (for `λμ ≥ 1`; a near-empty mix hides
/// little, and the model is only asymptotic there).
pub fn poisson_mix_bits(rate_pps: f64, mean_delay_s: f64) -> f64 {
    let held = rate_pps * mean_delay_s;
    if held <= 0.0 {
        return 0.0;
    }
    (std::f64::consts::E * held).log2().max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same distribution, computed the slow way: every `q_i` kept.
    #[derive(Default)]
    struct Exact(Vec<f64>);

    impl Exact {
        fn arrive(&mut self) {
            self.0.push(1.0);
        }
        fn depart(&mut self) -> f64 {
            let s: f64 = self.0.iter().sum();
            let h = -self
                .0
                .iter()
                .filter(|q| **q > 0.0)
                .map(|q| (q / s) * (q / s).log2())
                .sum::<f64>();
            let c = 1.0 - 1.0 / s;
            self.0.iter_mut().for_each(|q| *q *= c);
            h
        }
    }

    #[test]
    fn matches_the_exact_distribution() {
        let mut fast = PoolEntropy::new();
        let mut exact = Exact::default();
        // A fixed pattern of arrivals and departures that never empties.
        for step in 0..2_000u32 {
            let arrivals = 1 + (step * 7 % 3);
            for _ in 0..arrivals {
                fast.arrive();
                exact.arrive();
            }
            let departures = if fast.pool() > 20.0 { 3 } else { 1 };
            for _ in 0..departures {
                let (a, b) = (fast.depart(), exact.depart());
                assert!((a - b).abs() < 1e-6, "step {step}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn one_input_hides_nothing_and_n_fresh_inputs_hide_log_n() {
        let mut e = PoolEntropy::new();
        e.arrive();
        assert_eq!(e.bits(), 0.0);
        assert_eq!(e.depart(), 0.0);
        assert_eq!(e.pool(), 0.0);
        for _ in 0..8 {
            e.arrive();
        }
        assert!((e.bits() - 3.0).abs() < 1e-12);
        assert!((e.depart() - 3.0).abs() < 1e-12);
        // Afterwards seven are held, spread evenly over eight inputs.
        assert!((e.bits() - 3.0).abs() < 1e-12);
    }

    #[test]
    fn steady_state_approaches_the_poisson_mix_model() {
        // Alternate one arrival and one departure around a pool of 100:
        // the origin of a departure is then geometric over past arrivals
        // with mean 100, whose entropy tends to log2(e · 100).
        let mut e = PoolEntropy::new();
        for _ in 0..100 {
            e.arrive();
        }
        let mut last = 0.0;
        for _ in 0..20_000 {
            e.arrive();
            last = e.depart();
        }
        let model = poisson_mix_bits(100.0, 1.0);
        assert!((last - model).abs() < 0.02, "{last} vs {model}");
    }
}
