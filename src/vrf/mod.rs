//! Verifiable mixing: ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381, suite 0x03)
//! and what betanet derives from it each epoch (`sphinx-v1.md`, "VRF-derived
//! mixing delays" and "VRF neighbour selection").
//!
//! Once per epoch `E` a node evaluates its VRF on two inputs: one gives the
//! key of its mixing delays ([`delay`]), the other the ranking of its
//! neighbours ([`neighbors`]). It publishes both proofs ([`EpochProofs`]), so
//! anyone can check that it neither chose its delays nor hand-picked its
//! neighbours.
//!
//! The VRF itself is the `vrf-rfc9381` crate (pure Rust, on the same
//! curve25519-dalek 5 as the rest of betanet), wrapped in [`ecvrf`], which
//! adds the strict proof decoding that crate lacks (it reduces `s` modulo ℓ
//! and accepts any decodable Γ).

pub mod delay;
pub mod ecvrf;
pub mod epoch;
pub mod neighbors;
pub mod proofs;
mod types;

pub use delay::{EpochDelayKey, VrfDelay, delay_alpha, expected_delay};
pub use ecvrf::{prove, verify};
pub use epoch::Epoch;
pub use neighbors::{neighbor_score, neighbors_alpha, select_neighbors, verify_neighbors};
pub use proofs::{EpochProof, EpochProofs, EpochPublication};
pub use types::{ParseVrfBytesError, VrfError, VrfOutput, VrfProof};
