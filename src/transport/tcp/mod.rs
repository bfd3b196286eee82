//! The TCP transport: Sphinx frames back to back on a stream, each exactly
//! [`FRAME_LEN`](crate::sphinx::FRAME_LEN) bytes, with no other framing.
//!
//! Inbound, a [`TcpServer`] accepts connections (middle and exit nodes only
//! from topology members; capped per source, with a share of the slots
//! kept for members), reads frames with the [`FrameCodec`], admits each through the
//! [`SourceGate`](crate::transport::SourceGate) and submits it to the
//! pipeline. Outbound, a [`TcpEgress`] keeps a bounded queue and a
//! kept-open connection per next hop. Every buffer and queue is bounded,
//! and nothing a peer sends can make either side panic.

mod backoff;
mod codec;
mod connection;
mod egress;
mod limits;
mod peer;
mod server;
mod sink;
mod stats;

pub use codec::FrameCodec;
pub use egress::TcpEgress;
pub use limits::{
    DEFAULT_BACKOFF_INITIAL, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PEERS,
    DEFAULT_STRANGER_EVICTABLE_AFTER, TcpLimits,
};
pub use server::{TcpServer, serve};
pub use stats::{EgressStats, TcpStats};
