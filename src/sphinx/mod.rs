//! The betanet Sphinx v1 packet engine, exactly as `sphinx-v1.md` specifies.
//!
//! Pure and deterministic: no sockets, clocks or global state. A node holds a
//! [`SphinxProcessor`] and calls [`SphinxProcessor::unwrap_batch`]; senders
//! call [`create_packet`]; SURB creators call [`create_surb`], repliers
//! [`Surb::pack_reply`], and creators read replies with [`SurbKey::recover`].

#![forbid(unsafe_code)]

mod builder;
mod drop_reason;
pub mod geometry;
mod hop_keys;
mod key;
mod node_id;
mod processor;
mod replay;
mod routing;
mod surb;

pub use builder::{BuildError, BuiltPacket, PathHop, create_packet, create_packet_with_seed};
pub use drop_reason::DropReason;
pub use geometry::{FRAME_LEN, MAX_HOPS, MAX_MESSAGE};
pub use hop_keys::{HopKeys, mac};
pub use key::{ParsePublicKeyError, SphinxPublicKey, SphinxSecretKey};
pub use node_id::{NodeId, ParseNodeIdError};
pub use processor::{SphinxProcessor, Unwrapped};
pub use replay::{ReplayFilter, ReplayTag};
pub use routing::{FinalCommand, LoopId, MessageId, RoutingCommand, SurbId};
pub use surb::{
    MAX_REPLY, SURB_LEN, SURB_VERSION, Surb, SurbError, SurbKey, create_surb,
    create_surb_with_seed, parse_reply_datagram, surb_id,
};
