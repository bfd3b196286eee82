//! Verifiable mixing at run time: at each epoch start the node evaluates its
//! delay and neighbour VRFs once, rotates the delay key the workers use,
//! installs the epoch's neighbour set, and keeps the proofs it publishes at
//! `GET /vrf/{epoch}`.
//!
//! Epochs are read from the node's injected [`WallClock`], the one its key
//! schedule reads, and the driver sleeps until the next epoch starts, the
//! topology changes, the clock is moved, or the node stops.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clock::WallClock;
use crate::keys::VrfSecretKey;
use crate::role::NodeRole;
use crate::shutdown::{Shutdown, Wake};
use crate::topology::{LiveTopology, Topology};
use crate::vrf::{Epoch, EpochProofs, VrfDelay};

/// Epochs of proofs kept for `/vrf/{epoch}` (a day of hourly epochs).
const PROOFS_KEPT: usize = 48;

/// The node's published VRF evaluations.
#[derive(Default)]
pub(crate) struct EpochState {
    current: AtomicU64,
    proofs: Mutex<BTreeMap<u64, EpochProofs>>,
}

impl EpochState {
    /// The current epoch number.
    pub(crate) fn current(&self) -> u64 {
        self.current.load(Ordering::Relaxed)
    }

    /// The proofs of `epoch`, if still kept (`None`: the current epoch).
    pub(crate) fn proofs(&self, epoch: Option<u64>) -> Option<EpochProofs> {
        let epoch = epoch.unwrap_or_else(|| self.current());
        lock(&self.proofs).get(&epoch).copied()
    }

    fn publish(&self, proofs: EpochProofs) {
        let mut kept = lock(&self.proofs);
        kept.insert(proofs.epoch.0, proofs);
        while kept.len() > PROOFS_KEPT {
            kept.pop_first();
        }
        drop(kept);
        self.current.store(proofs.epoch.0, Ordering::Relaxed);
    }
}

/// What the driver needs.
pub(crate) struct EpochParams {
    /// The node's VRF secret.
    pub(crate) secret: VrfSecretKey,
    /// Network-wide epoch length.
    pub(crate) epoch_seconds: u64,
    /// Neighbours per epoch (0: the whole next layer).
    pub(crate) neighbors_k: usize,
    /// The layer this node relays into.
    pub(crate) next_layer: NodeRole,
    /// The node's wall clock.
    pub(crate) clock: Arc<dyn WallClock>,
}

/// Rolls the node's VRF epochs over: the delay key, the neighbour set and
/// the published proofs.
pub(crate) struct EpochDriver {
    params: EpochParams,
    topology: Arc<LiveTopology>,
    delay: Arc<VrfDelay>,
    state: Arc<EpochState>,
    /// The topology the neighbours were last chosen from.
    seen: Arc<Topology>,
}

impl EpochDriver {
    /// Evaluates the current epoch now (so the node starts verifiable).
    pub(crate) fn start(
        params: EpochParams,
        topology: Arc<LiveTopology>,
        mean: Duration,
        max: Duration,
    ) -> Self {
        let epoch = Epoch::now(params.clock.as_ref(), params.epoch_seconds);
        let proofs = EpochProofs::evaluate(&params.secret, epoch);
        let delay = Arc::new(VrfDelay::new(epoch, proofs.delay_key(), mean, max));
        let seen = topology.snapshot();
        install_neighbors(&proofs, &params, &topology, &seen);
        let state = Arc::new(EpochState::default());
        state.publish(proofs);
        EpochDriver {
            params,
            topology,
            delay,
            state,
            seen,
        }
    }

    /// The delay policy whose key the driver rotates.
    pub(crate) fn delay(&self) -> Arc<VrfDelay> {
        Arc::clone(&self.delay)
    }

    /// The published evaluations.
    pub(crate) fn state(&self) -> Arc<EpochState> {
        Arc::clone(&self.state)
    }

    /// Starts the epoch the clock is in, if it is newer than the current
    /// one, and re-chooses the neighbours from a changed topology (a new
    /// topology changes the candidates, not the VRF). Returns when the
    /// next epoch starts, in unix seconds on the node's clock.
    pub(crate) fn step(&mut self) -> u64 {
        let epoch = Epoch::now(self.params.clock.as_ref(), self.params.epoch_seconds);
        let now = self.topology.snapshot();
        if epoch.0 > self.state.current() {
            let proofs = EpochProofs::evaluate(&self.params.secret, epoch);
            self.delay.rotate(epoch, proofs.delay_key());
            install_neighbors(&proofs, &self.params, &self.topology, &now);
            self.state.publish(proofs);
            tracing::info!(epoch = epoch.0, "VRF epoch started");
        } else if !Arc::ptr_eq(&now, &self.seen)
            && let Some(proofs) = self.state.proofs(None)
        {
            install_neighbors(&proofs, &self.params, &self.topology, &now);
        }
        self.seen = now;
        epoch.next().start_unix(self.params.epoch_seconds)
    }

    /// Runs [`step`](Self::step) on a thread at every epoch start, topology
    /// change and clock move, until `shutdown`.
    pub(crate) fn spawn(mut self, shutdown: Shutdown) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("betanet-epochs".into())
            .spawn(move || {
                let changes = self.topology.changes();
                let jumps = self.params.clock.jumps();
                let watched: Vec<_> = [Some(&changes), jumps.as_ref()]
                    .into_iter()
                    .flatten()
                    .collect();
                loop {
                    let next = self.step();
                    let wait = self.params.clock.until(next).min(crate::clock::RECHECK);
                    if shutdown.wait(Instant::now().checked_add(wait), &watched) == Wake::Stop {
                        return;
                    }
                }
            })
    }
}

fn install_neighbors(
    proofs: &EpochProofs,
    params: &EpochParams,
    live: &LiveTopology,
    topology: &Topology,
) {
    let candidates: Vec<_> = topology
        .layer(params.next_layer)
        .iter()
        .map(|d| d.id)
        .collect();
    let k = params.neighbors_k;
    if k == 0 || k >= candidates.len() {
        live.set_neighbors(None);
    } else {
        let chosen: HashSet<_> = proofs
            .select_neighbors(&candidates, k)
            .into_iter()
            .collect();
        live.set_neighbors(Some(chosen));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::clock::ManualClock;
    use crate::keys::NodeKeys;
    use crate::sphinx::{ReplayTag, SphinxSecretKey};
    use crate::topology::{EgressProtocol, NodeDescriptor, SphinxKeyEntry};

    const EPOCH: u64 = 3600;

    /// Two nodes per layer, so a neighbour set of one is a real choice.
    fn topology(rng: &mut ChaCha8Rng) -> Topology {
        let nodes = (0..6u8).map(|n| {
            let keys = NodeKeys::generate(&mut *rng);
            let role = [NodeRole::Entry, NodeRole::Middle, NodeRole::Exit][usize::from(n / 2)];
            let addr = SocketAddr::from(([127, 0, 0, 1], 41_000 + u16::from(n)));
            let http = SocketAddr::from(([127, 0, 0, 1], 42_000 + u16::from(n)));
            let key = SphinxKeyEntry {
                epoch: 0,
                public_key: SphinxSecretKey::from_bytes([n + 1; 32]).public_key(),
            };
            NodeDescriptor::new_signed(&keys, role, addr, addr, http, vec![key], 86_400).unwrap()
        });
        Topology::build(nodes).unwrap()
    }

    fn driver(clock: &ManualClock) -> EpochDriver {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let live = LiveTopology::new(topology(&mut rng), EgressProtocol::Udp)
            .with_next_layer(NodeRole::Exit);
        let params = EpochParams {
            secret: NodeKeys::generate(&mut rng).vrf,
            epoch_seconds: EPOCH,
            neighbors_k: 1,
            next_layer: NodeRole::Exit,
            clock: Arc::new(clock.clone()),
        };
        let mean = Duration::from_millis(10);
        EpochDriver::start(params, Arc::new(live), mean, mean * 10)
    }

    #[test]
    fn a_manual_clock_moves_the_node_across_a_vrf_epoch() {
        let clock = ManualClock::new(1_000 * EPOCH + 5);
        let mut driver = driver(&clock);
        let state = driver.state();
        let delay = driver.delay();
        let tag = ReplayTag([7; 32]);
        let before = crate::mixing::DelayPolicy::delay(delay.as_ref(), &tag, 0);
        assert_eq!(state.current(), 1_000);
        assert_eq!(
            driver.step(),
            1_001 * EPOCH,
            "the next change is the next epoch start"
        );

        // Just before the boundary nothing changes; at it, everything does.
        clock.set(1_001 * EPOCH - 1);
        assert_eq!(driver.step(), 1_001 * EPOCH);
        assert_eq!(state.current(), 1_000);
        clock.set(1_001 * EPOCH);
        assert_eq!(driver.step(), 1_002 * EPOCH);
        assert_eq!(state.current(), 1_001);
        assert!(state.proofs(Some(1_000)).is_some() && state.proofs(None).is_some());
        let after = crate::mixing::DelayPolicy::delay(delay.as_ref(), &tag, 0);
        assert_ne!(before, after, "the delay key did not rotate");
    }

    #[test]
    fn the_driver_thread_follows_the_clock_and_stops_at_the_signal() {
        let clock = ManualClock::new(2_000 * EPOCH);
        let driver = driver(&clock);
        let state = driver.state();
        let shutdown = Shutdown::new();
        let thread = driver.spawn(shutdown.clone()).unwrap();
        // The thread sleeps towards an epoch start an hour away; moving the
        // clock wakes it.
        clock.set(2_003 * EPOCH + 1);
        let deadline = Instant::now() + Duration::from_secs(30);
        while state.current() != 2_003 {
            assert!(
                Instant::now() < deadline,
                "the driver missed the clock move"
            );
            std::thread::yield_now();
        }
        shutdown.trigger();
        thread.join().unwrap();
    }
}
