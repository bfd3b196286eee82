//! Opening a session over a blocking `std` TCP stream: clients and tools
//! that have no async runtime.

use std::io::{self, Read, Write};
use std::net::TcpStream;

use super::handshake::{Initiator, MAX_HANDSHAKE_LEN};
use super::keys::{LinkKeyPair, LinkPublicKey};
use super::session::Session;

/// Runs the initiator's side of a handshake on `stream` (already connected,
/// with whatever timeouts the caller set) to the holder of `peer` (its link
/// key for `peer_epoch`): as a member with `own`, or anonymously with
/// `None`. A refused or failed handshake is an `io::Error` whose inner
/// error is the [`HandshakeFailure`](super::HandshakeFailure).
pub fn open_session(
    stream: &mut TcpStream,
    own: Option<&LinkKeyPair>,
    peer: &LinkPublicKey,
    peer_epoch: u64,
) -> io::Result<Session> {
    let (initiator, first) = Initiator::start(own, peer, peer_epoch).map_err(io::Error::other)?;
    stream.write_all(&first)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let len = usize::from(u16::from_be_bytes(len));
    if len > MAX_HANDSHAKE_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "handshake reply longer than any valid one",
        ));
    }
    let mut reply = vec![0u8; len];
    stream.read_exact(&mut reply)?;
    initiator.finish(&reply).map_err(io::Error::other)
}
