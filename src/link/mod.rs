//! Encrypted, authenticated, post-quantum links between nodes (and from a
//! client to its entry node).
//!
//! A link is a TCP connection that opens with a Noise hybrid handshake
//! ([`handshake`]) and then carries fixed-size records ([`session`]), one
//! Sphinx frame each. Nodes authenticate with `hybridIK` against the link
//! keys in each other's signed descriptors ([`keys`]); clients use
//! `hybridNK` and stay anonymous. Middle and exit nodes take frames only
//! from sessions whose peer key belongs to a topology member
//! ([`membership`]), so a forged source address gains nothing.
//!
//! Everything here is sans-IO: bytes in, bytes out. The TCP driver lives in
//! `transport::tcp`. docs/links.md has the design and its reasoning.

pub mod blocking;
mod error;
pub mod handshake;
pub mod keys;
pub mod membership;
pub mod session;

pub use error::{HandshakeFailure, RecordRejected};
pub use handshake::{Accepted, Initiator, LinkPattern, Preamble, respond, starts_link};
pub use keys::{LINK_PUBLIC_LEN, LinkKeyPair, LinkPublicKey};
pub use membership::{LinkKeySet, LinkKeys, PeerIdentity, member_with_key};
pub use session::{RECORD_LEN, RekeyPolicy, Session};

#[cfg(test)]
mod tests;
