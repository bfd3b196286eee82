//! Directory authorities and the signed consensus: a network, not a file.
//!
//! A network names a set of authorities ([`AuthoritySet`]: identity keys
//! and addresses, pinned in every node's and client's configuration).
//! Nodes upload their signed descriptors to every authority. Each epoch
//! every authority forms a [`Vote`] (the descriptors it accepts, with the
//! reachability it measured, the parameters it proposes, a commitment to a
//! secret), the authorities exchange votes and then reveals, compute the
//! [`Consensus`] by one deterministic rule ([`compute_consensus`]) and sign
//! it. A [`SignedConsensus`] is valid with signatures from a majority of
//! the set ([`SignedConsensus::verify`]).
//!
//! The protocol logic is pure: [`AuthorityState`] is a sans-IO state
//! machine fed `(now, input)`; [`daemon`] is the tokio + hyper driver
//! behind `betanet authority`. See `docs/authorities.md` for the design and
//! where it differs from Tor's and Katzenpost's.

pub mod config;
pub mod daemon;
mod document;
mod error;
pub mod key;
mod params;
pub mod reward;
mod rule;
mod set;
mod shared_random;
mod signing;
mod state;
mod vote;

pub use document::{
    CONSENSUS_PATH, CONSENSUS_SIGNING_CONTEXT, CONSENSUS_VERSION, Consensus, ConsensusNode,
    ConsensusSignature, MAX_CONSENSUS_BYTES, SignedConsensus, Verified,
};
pub use error::AuthorityError;
pub use params::{ConsensusParams, median_params};
pub use reward::{Reward, RewardCalculator};
pub use rule::{RuleError, RuleReport, VALID_EPOCHS_AFTER, compute_consensus};
pub use set::{AuthorityInfo, AuthoritySet, MAX_AUTHORITIES};
pub use shared_random::{commitment, rank, shared_random};
pub use state::{
    Action, AuthorityState, Counters, MAX_UPLOADED, MIN_EPOCH_SECONDS, PROBE_WINDOW, Phase, Timing,
    UploadError,
};
pub use vote::{
    MAX_SMALL_BYTES, MAX_VOTE_BYTES, MAX_VOTE_NODES, REVEAL_SIGNING_CONTEXT, Reveal, SignedReveal,
    SignedVote, VOTE_SIGNING_CONTEXT, VOTE_VERSION, Vote, VotedNode,
};
