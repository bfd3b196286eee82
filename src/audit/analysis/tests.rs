//! The analysis on simulated networks: delays exponential with mean 20 ms,
//! a network baseline of 0.5 ms, one-sided jitter, some late outliers.
//! Each scenario runs over many seeds: verdicts must hold for all of them.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

const MEAN: f64 = 20.0;

fn id(n: u8) -> NodeId {
    NodeId::from_bytes([n; 16])
}

/// How a simulated node treats its delays.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Holds `factor` of every required delay.
    Scales(f64),
    /// Skips the delay of each packet with probability `p`.
    SkipsSome(f64),
}

struct Sim {
    rng: ChaCha8Rng,
    /// Entry, middle and exit layers: (id, behaviour).
    layers: [Vec<(NodeId, Behaviour)>; 3],
    /// Mean of the (exponential) jitter on every sample, ms.
    jitter: f64,
    /// Share of samples delayed by up to `late_ms` of congestion.
    late: f64,
    late_ms: f64,
}

impl Sim {
    fn new(seed: u64, layers: [Vec<(NodeId, Behaviour)>; 3]) -> Sim {
        Sim {
            rng: ChaCha8Rng::seed_from_u64(seed),
            layers,
            jitter: 0.3,
            late: 0.05,
            late_ms: 30.0,
        }
    }

    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.rng.random::<f64>()).ln()
    }

    fn samples(&mut self, n: usize) -> Vec<Sample> {
        (0..n).map(|_| self.sample()).collect()
    }

    fn sample(&mut self) -> Sample {
        let mut transit = 0.5 + self.exp(self.jitter);
        if self.rng.random::<f64>() < self.late {
            transit += self.late_ms * self.rng.random::<f64>();
        }
        let mut hops = Vec::new();
        for layer in 0..3 {
            let i = self.rng.random_range(0..self.layers[layer].len());
            let (node, behaviour) = self.layers[layer][i];
            let expected = self.exp(MEAN);
            transit += match behaviour {
                Behaviour::Scales(f) => f * expected,
                Behaviour::SkipsSome(p) if self.rng.random::<f64>() < p => 0.0,
                Behaviour::SkipsSome(_) => expected,
            };
            hops.push(HopDelay {
                node,
                expected_ms: expected,
            });
        }
        Sample {
            hops,
            transit_ms: transit,
        }
    }
}

const HONEST: Behaviour = Behaviour::Scales(1.0);

/// Two entries, the audited middle (id 9), two exits.
fn layers(target: Behaviour) -> [Vec<(NodeId, Behaviour)>; 3] {
    [
        vec![(id(1), HONEST), (id(2), HONEST)],
        vec![(id(9), target)],
        vec![(id(5), HONEST), (id(6), HONEST)],
    ]
}

fn params() -> AnalysisParams {
    AnalysisParams {
        tolerance_ms: 2.0,
        mean_delay_ms: MEAN,
    }
}

fn verdict(a: &Analysis, n: u8) -> Verdict {
    a.finding(&id(n)).unwrap().verdict
}

#[test]
fn an_honest_network_passes_everywhere() {
    for seed in 0..20 {
        let samples = Sim::new(seed, layers(HONEST)).samples(150);
        let a = analyse(&samples, &params());
        for f in &a.nodes {
            assert_eq!(f.verdict, Verdict::Ok, "seed {seed}: {f:?}");
            assert!((f.held - 1.0).abs() < 0.05, "seed {seed}: {f:?}");
            assert!(f.within_tolerance > 0.95, "seed {seed}: {f:?}");
        }
        let baseline = a.baseline_ms.unwrap();
        assert!((0.3..1.5).contains(&baseline), "seed {seed}: {baseline}");
        // The floor is the fastest transit: 0.5 ms plus a little jitter.
        let floor = a.floor_ms.unwrap();
        assert!((0.3..0.7).contains(&floor) && floor <= baseline, "{a:#?}");
        assert_eq!(a.early, 0, "{a:#?}");
        assert!(a.trimmed > 0, "the late outliers are trimmed");
    }
}

#[test]
fn a_node_that_skips_mixing_is_named_and_no_one_else() {
    for seed in 0..20 {
        let samples = Sim::new(seed, layers(Behaviour::Scales(0.0))).samples(150);
        let a = analyse(&samples, &params());
        let target = a.finding(&id(9)).unwrap();
        assert_eq!(target.verdict, Verdict::NotMixing, "seed {seed}: {a:#?}");
        assert!(target.held.abs() < 0.05, "{target:?}");
        assert!(target.within_tolerance < 0.3, "{target:?}");
        assert!(target.worst_deviation_ms < -40.0, "{target:?}");
        for n in [1, 2, 5, 6] {
            assert_eq!(verdict(&a, n), Verdict::Ok, "seed {seed}: node {n}: {a:#?}");
        }
    }
}

#[test]
fn a_node_that_shortens_its_delays_is_caught() {
    for seed in 0..20 {
        let samples = Sim::new(seed, layers(Behaviour::Scales(0.3))).samples(150);
        let a = analyse(&samples, &params());
        let target = a.finding(&id(9)).unwrap();
        assert_eq!(target.verdict, Verdict::NotMixing, "seed {seed}: {a:#?}");
        assert!((target.held - 0.3).abs() < 0.05, "{target:?}");
        for n in [1, 2, 5, 6] {
            assert_eq!(verdict(&a, n), Verdict::Ok, "seed {seed}: node {n}");
        }
    }
}

#[test]
fn a_cheater_among_the_varying_hops_is_told_apart_from_the_audited_node() {
    let mut l = layers(HONEST);
    l[0][1].1 = Behaviour::Scales(0.0);
    for seed in 0..20 {
        let a = analyse(&Sim::new(seed, l.clone()).samples(150), &params());
        assert_eq!(verdict(&a, 2), Verdict::NotMixing, "seed {seed}: {a:#?}");
        for n in [1, 9, 5, 6] {
            assert_eq!(verdict(&a, n), Verdict::Ok, "seed {seed}: node {n}: {a:#?}");
        }
    }
}

#[test]
fn a_node_that_skips_half_its_packets_never_passes_and_no_one_else_is_blamed() {
    // Skipping at random makes the estimate noisy (the few longest delays
    // weigh most): the node may come out inconclusive, never OK.
    let mut caught = 0;
    for seed in 0..20 {
        let samples = Sim::new(seed, layers(Behaviour::SkipsSome(0.5))).samples(200);
        let a = analyse(&samples, &params());
        let target = a.finding(&id(9)).unwrap();
        assert_ne!(target.verdict, Verdict::Ok, "seed {seed}: {a:#?}");
        caught += usize::from(target.verdict == Verdict::NotMixing);
        for n in [1, 2, 5, 6] {
            assert_ne!(verdict(&a, n), Verdict::NotMixing, "seed {seed}: node {n}");
        }
    }
    assert!(caught >= 10, "named NOT MIXING in only {caught} of 20 runs");
}

#[test]
fn a_slight_shortening_within_the_tolerance_passes() {
    // 5 % of a 20 ms mean is 1 ms, under the 2 ms tolerance.
    let samples = Sim::new(7, layers(Behaviour::Scales(0.95))).samples(200);
    let a = analyse(&samples, &params());
    assert_eq!(verdict(&a, 9), Verdict::Ok, "{a:#?}");
}

#[test]
fn a_single_path_network_still_separates_the_hops() {
    let l = [
        vec![(id(1), HONEST)],
        vec![(id(9), Behaviour::Scales(0.0))],
        vec![(id(5), HONEST)],
    ];
    for seed in 0..10 {
        let a = analyse(&Sim::new(seed, l.clone()).samples(150), &params());
        assert_eq!(verdict(&a, 9), Verdict::NotMixing, "seed {seed}: {a:#?}");
        assert_eq!(verdict(&a, 1), Verdict::Ok, "seed {seed}: {a:#?}");
        assert_eq!(verdict(&a, 5), Verdict::Ok, "seed {seed}: {a:#?}");
    }
}

#[test]
fn too_few_samples_are_inconclusive() {
    let samples = Sim::new(1, layers(HONEST)).samples(8);
    let a = analyse(&samples, &params());
    assert!(a.nodes.iter().all(|f| f.verdict == Verdict::Inconclusive));
    let a = analyse(&[], &params());
    assert!(a.nodes.is_empty() && a.baseline_ms.is_none());
}

#[test]
fn heavy_noise_is_inconclusive_rather_than_an_accusation() {
    let mut sim = Sim::new(3, layers(HONEST));
    let mut samples = sim.samples(30);
    for (i, s) in samples.iter_mut().enumerate() {
        // Up to 40 ms of lateness on every other packet, and only 30 samples.
        s.transit_ms += if i % 2 == 0 { 40.0 } else { 0.0 } * sim.rng.random::<f64>();
    }
    let a = analyse(&samples, &params());
    assert_ne!(verdict(&a, 9), Verdict::NotMixing, "{a:#?}");
}

#[test]
fn congestion_never_makes_an_honest_node_look_like_a_cheater() {
    for seed in 0..50 {
        let mut sim = Sim::new(seed, layers(HONEST));
        (sim.jitter, sim.late, sim.late_ms) = (3.0, 0.1, 300.0);
        let a = analyse(&sim.samples(150), &params());
        for f in &a.nodes {
            assert_ne!(f.verdict, Verdict::NotMixing, "seed {seed}: {f:?}");
        }
        let mut sim = Sim::new(seed, layers(Behaviour::Scales(0.0)));
        (sim.jitter, sim.late, sim.late_ms) = (3.0, 0.1, 300.0);
        let a = analyse(&sim.samples(150), &params());
        assert_eq!(verdict(&a, 9), Verdict::NotMixing, "seed {seed}: {a:#?}");
    }
}
