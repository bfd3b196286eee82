//! betanet: a mixnode that makes network traffic unlinkable.
//!
//! Senders wrap each message in layered Sphinx encryption ([`sphinx`]); each
//! node peels one layer, holds the packet for a random, verifiable delay,
//! mixes it with others and passes it on.
//!
//! The protocol logic is pure and tested without sockets or clocks; the
//! daemon that drives it lives at the edges.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(unreachable_pub)]

#[cfg(not(feature = "sphinx"))]
compile_error!("betanet needs the `sphinx` feature: the Sphinx engine is the core of the node");

#[cfg(feature = "vrf")]
pub mod audit;
pub mod authority;
pub mod client;
pub mod clock;
pub mod config;
#[cfg(feature = "cover-traffic")]
pub mod cover;
pub mod crypto;
pub mod directory_client;
pub mod http;
pub mod keys;
pub mod link;
pub mod metrics;
pub mod mixing;
pub mod node;
// Four `pub` items of private modules (scheduler, worker) are left for the
// data-path rewrite to narrow.
#[allow(unreachable_pub)]
pub mod pipeline;
pub mod replay;
pub mod role;
mod shutdown;
pub mod sim;
pub mod sphinx;
pub mod testnet;
pub mod topology;
pub mod transport;
#[cfg(feature = "vrf")]
pub mod vrf;

pub use node::Mixnode;
pub use pipeline::{MixnodeStats, PacketPipeline};
pub use role::NodeRole;
pub use sphinx::SphinxProcessor;

/// The README's Rust examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
