//! Verifiable mixing at run time: at each epoch start the node evaluates its
//! delay and neighbour VRFs once, rotates the delay key the workers use,
//! installs the epoch's neighbour set, and keeps the proofs it publishes at
//! `GET /vrf/{epoch}`.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::keys::VrfSecretKey;
use crate::role::NodeRole;
use crate::topology::{LiveTopology, Topology};
use crate::vrf::{Epoch, EpochProofs, VrfDelay};

/// Epochs of proofs kept for `/vrf/{epoch}` (a day of hourly epochs).
const PROOFS_KEPT: usize = 48;
/// How often the driver checks the clock and the topology.
const TICK: Duration = Duration::from_millis(250);

/// The node's published VRF evaluations.
#[derive(Default)]
pub struct EpochState {
    current: AtomicU64,
    proofs: Mutex<BTreeMap<u64, EpochProofs>>,
}

impl EpochState {
    /// The current epoch number.
    pub fn current(&self) -> u64 {
        self.current.load(Ordering::Relaxed)
    }

    /// The proofs of `epoch`, if still kept (`None`: the current epoch).
    pub fn proofs(&self, epoch: Option<u64>) -> Option<EpochProofs> {
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
pub struct EpochParams {
    /// The node's VRF secret.
    pub secret: VrfSecretKey,
    /// Network-wide epoch length.
    pub epoch_seconds: u64,
    /// Neighbours per epoch (0: the whole next layer).
    pub neighbors_k: usize,
    /// The layer this node relays into.
    pub next_layer: NodeRole,
}

/// Evaluates the current epoch now (so the node starts verifiable), and
/// returns the delay policy and the published state.
pub fn start(
    params: &EpochParams,
    topology: &LiveTopology,
    mean: Duration,
    max: Duration,
) -> (Arc<VrfDelay>, Arc<EpochState>) {
    let epoch = Epoch::now(params.epoch_seconds);
    let proofs = EpochProofs::evaluate(&params.secret, epoch);
    let delay = Arc::new(VrfDelay::new(epoch, proofs.delay_key(), mean, max));
    install_neighbors(&proofs, params, topology, &topology.snapshot());
    let state = Arc::new(EpochState::default());
    state.publish(proofs);
    (delay, state)
}

/// Rolls epochs over until `stop` is set.
pub fn spawn_driver(
    params: EpochParams,
    topology: Arc<LiveTopology>,
    delay: Arc<VrfDelay>,
    state: Arc<EpochState>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("betanet-epochs".into())
        .spawn(move || {
            let mut seen_topology = topology.snapshot();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                let epoch = Epoch::now(params.epoch_seconds);
                if epoch.0 > state.current() {
                    let proofs = EpochProofs::evaluate(&params.secret, epoch);
                    delay.rotate(epoch, proofs.delay_key());
                    install_neighbors(&proofs, &params, &topology, &topology.snapshot());
                    state.publish(proofs);
                    tracing::info!(epoch = epoch.0, "VRF epoch started");
                }
                // A reloaded topology changes the candidates, not the VRF.
                let now = topology.snapshot();
                if !Arc::ptr_eq(&now, &seen_topology) {
                    if let Some(proofs) = state.proofs(None) {
                        install_neighbors(&proofs, &params, &topology, &now);
                    }
                    seen_topology = now;
                }
            }
        })
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
