//! What a node publishes for each epoch (`GET /vrf/{epoch}`): its VRF public
//! key and the proofs and outputs of its delay and neighbour evaluations.
//!
//! ```json
//! {
//!   "epoch": 491520,
//!   "vrf_public_key": "<64 hex digits>",
//!   "delay": { "proof": "<160 hex digits>", "output": "<128 hex digits>" },
//!   "neighbors": { "proof": "<160 hex digits>", "output": "<128 hex digits>" },
//!   "network": { "mean_delay_us": 20000, "max_delay_us": 2000000, ... }
//! }
//! ```
//!
//! `network` repeats the parameters of the node's signed descriptor
//! ([`NetworkParams`]) for readers of the proofs; verifiers trust the
//! descriptor's copy, which is signed.

use serde::{Deserialize, Serialize};

use super::delay::{EpochDelayKey, delay_alpha};
use super::ecvrf::{prove, verify};
use super::epoch::Epoch;
use super::neighbors::{neighbors_alpha, select_neighbors};
use super::types::{VrfError, VrfOutput, VrfProof};
use crate::keys::{VrfPublicKey, VrfSecretKey};
use crate::sphinx::NodeId;
use crate::topology::NetworkParams;

/// One VRF evaluation as published: the proof and the output it proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochProof {
    /// `π`, hex.
    pub proof: VrfProof,
    /// `β`, hex. Redundant with `proof` (β is a hash of it), published so
    /// that readers need not run the VRF to use it; [`EpochProofs::verify`]
    /// checks the two agree.
    pub output: VrfOutput,
}

impl EpochProof {
    fn evaluate(secret: &VrfSecretKey, alpha: &[u8]) -> Self {
        let (proof, output) = prove(secret, alpha);
        EpochProof { proof, output }
    }

    fn verify(&self, public: &VrfPublicKey, alpha: &[u8]) -> Result<(), VrfError> {
        if verify(public, alpha, &self.proof)? != self.output {
            return Err(VrfError::OutputMismatch);
        }
        Ok(())
    }
}

/// A node's VRF evaluations for one epoch, as served at `GET /vrf/{epoch}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochProofs {
    /// The epoch `E` the evaluations are for.
    pub epoch: Epoch,
    /// The key that proves them. A reader must also check that it is the key
    /// the topology lists for the node ([`EpochProofs::verify_for`]).
    pub vrf_public_key: VrfPublicKey,
    /// `π_d`, `β_d` for input `"betanet delay v1" ‖ u64be(E)`.
    pub delay: EpochProof,
    /// `π_n`, `β_n` for input `"betanet neighbors v1" ‖ u64be(E)`.
    pub neighbors: EpochProof,
}

impl EpochProofs {
    /// Evaluates both VRF inputs of `epoch` (two proofs; done once per epoch).
    pub fn evaluate(secret: &VrfSecretKey, epoch: Epoch) -> Self {
        EpochProofs {
            epoch,
            vrf_public_key: secret.public_key(),
            delay: EpochProof::evaluate(secret, &delay_alpha(epoch)),
            neighbors: EpochProof::evaluate(secret, &neighbors_alpha(epoch)),
        }
    }

    /// Checks both proofs against the embedded key and this epoch's inputs,
    /// and that each published output is the one its proof proves.
    pub fn verify(&self) -> Result<(), VrfError> {
        self.delay
            .verify(&self.vrf_public_key, &delay_alpha(self.epoch))?;
        self.neighbors
            .verify(&self.vrf_public_key, &neighbors_alpha(self.epoch))
    }

    /// [`EpochProofs::verify`], and that the embedded key is `expected` (the
    /// node's key from the signed topology).
    pub fn verify_for(&self, expected: &VrfPublicKey) -> Result<(), VrfError> {
        if self.vrf_public_key != *expected {
            return Err(VrfError::UnexpectedKey);
        }
        self.verify()
    }

    /// The epoch's delay key `K_d`, from the published `β_d`. Trust it only
    /// after [`EpochProofs::verify`].
    pub fn delay_key(&self) -> EpochDelayKey {
        EpochDelayKey::from_output(&self.delay.output)
    }

    /// The epoch's neighbours among `candidates`, from the published `β_n`
    /// (see [`select_neighbors`]). Trust it only after [`EpochProofs::verify`].
    pub fn select_neighbors(&self, candidates: &[NodeId], k: usize) -> Vec<NodeId> {
        select_neighbors(&self.neighbors.output, candidates, k)
    }
}

/// What `GET /vrf/{epoch}` serves: an epoch's proofs and the network
/// parameters the node mixes with (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochPublication {
    /// The epoch's proofs, as top-level fields.
    #[serde(flatten)]
    pub proofs: EpochProofs,
    /// The node's network parameters (absent from older nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkParams>,
}
