//! `--real-crypto`: real Sphinx packets for small networks, to cross-check
//! the modelled run.
//!
//! Every packet is built with [`create_packet`] along its simulated route,
//! and every node unwraps it with its own [`SphinxProcessor`] (and replay
//! filter) when the modelled crypto worker finishes. The unwrap must agree
//! with the simulation — RELAY to the next node of the route, or the final
//! command the packet was built with — and any disagreement is counted.
//! The virtual clock still charges the modelled cost, and this module
//! draws from its own random stream, so a run with real crypto has exactly
//! the statistics of the same run without it; the tests check that.

use std::collections::{HashMap, HashSet};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::sphinx::{
    FRAME_LEN, FinalCommand, NodeId, PathHop, ReplayTag, SphinxProcessor, SphinxSecretKey,
    Unwrapped, create_packet,
};

/// What the real packets showed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RealCryptoStats {
    /// Packets built.
    pub built: u64,
    /// Hops unwrapped.
    pub unwrapped: u64,
    /// Unwraps that did not route as the simulation did (must be 0).
    pub route_mismatches: u64,
    /// Unwraps refused (bad MAC, replay…; must be 0).
    pub refused: u64,
    /// Wall time of the real unwraps, in nanoseconds per hop.
    pub wall_ns_per_unwrap: f64,
}

/// What a hop must do with a packet, per the simulation.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// Forward to this node.
    Relay(NodeId),
    /// End with this command.
    Final(FinalCommand),
}

/// Keys, replay filters and in-flight frames of a real-crypto run.
pub struct RealCrypto {
    processors: Vec<SphinxProcessor>,
    replay: Vec<HashSet<ReplayTag>>,
    frames: HashMap<u64, Box<[u8; FRAME_LEN]>>,
    rng: ChaCha8Rng,
    unwrap_ns: u128,
    stats: RealCryptoStats,
}

impl RealCrypto {
    /// Fresh keys for `nodes` nodes, from `seed`.
    pub fn new(nodes: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc0ff_ee00_5eed);
        let processors = (0..nodes)
            .map(|_| SphinxProcessor::new(SphinxSecretKey::generate(&mut rng)))
            .collect();
        RealCrypto {
            processors,
            replay: (0..nodes).map(|_| HashSet::new()).collect(),
            frames: HashMap::new(),
            rng,
            unwrap_ns: 0,
            stats: RealCryptoStats::default(),
        }
    }

    /// Builds packet `id` along `route` (node index, id) ending in `last`.
    pub fn build(&mut self, id: u64, route: &[(u32, NodeId)], last: FinalCommand) {
        let path: Vec<PathHop> = route
            .iter()
            .filter_map(|&(node, id)| {
                self.processors.get(node as usize).map(|p| PathHop {
                    id,
                    public_key: p.public_key(),
                })
            })
            .collect();
        let message = id.to_be_bytes();
        match create_packet(&path, last, &message, &mut self.rng) {
            Ok(built) => {
                self.stats.built += 1;
                self.frames.insert(id, built.frame);
            }
            Err(_) => self.stats.refused += 1,
        }
    }

    /// Node `node` unwraps packet `id`; the result must match `expect`.
    pub fn unwrap(&mut self, id: u64, node: u32, expect: Expect) {
        let (Some(frame), Some(processor), Some(replay)) = (
            self.frames.get_mut(&id),
            self.processors.get(node as usize),
            self.replay.get_mut(node as usize),
        ) else {
            self.stats.refused += 1;
            return;
        };
        let started = std::time::Instant::now();
        let result = processor.unwrap(&mut frame[..], replay);
        self.unwrap_ns += started.elapsed().as_nanos();
        self.stats.unwrapped += 1;
        let (agrees, next_frame) = match (result, expect) {
            (Ok(Unwrapped::Relay { next, frame, .. }), Expect::Relay(want)) => {
                (next == want, <[u8; FRAME_LEN]>::try_from(frame).ok())
            }
            (
                Ok(Unwrapped::Final {
                    command, message, ..
                }),
                Expect::Final(want),
            ) => (command == want && message == id.to_be_bytes(), None),
            (Ok(_), _) => (false, None),
            (Err(_), _) => {
                self.stats.refused += 1;
                self.frames.remove(&id);
                return;
            }
        };
        if !agrees {
            self.stats.route_mismatches += 1;
        }
        match next_frame {
            Some(next) => {
                if let Some(slot) = self.frames.get_mut(&id) {
                    **slot = next;
                }
            }
            None => {
                self.frames.remove(&id);
            }
        }
    }

    /// Packet `id` was lost: forget its frame.
    pub fn forget(&mut self, id: u64) {
        self.frames.remove(&id);
    }

    /// The counts so far.
    pub fn stats(&self) -> RealCryptoStats {
        let mut stats = self.stats.clone();
        if stats.unwrapped > 0 {
            stats.wall_ns_per_unwrap = self.unwrap_ns as f64 / stats.unwrapped as f64;
        }
        stats
    }
}
