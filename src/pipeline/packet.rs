//! Packets as they move through the pipeline.

use std::net::SocketAddr;
use std::time::Instant;

use super::pool::PacketBuf;
use crate::mixing::Held;
use crate::sphinx::geometry::{REPLY_DATAGRAM_LEN, offsets};
use crate::sphinx::{MessageId, NodeId};

/// A frame as received, before unwrapping.
#[derive(Debug)]
pub struct Packet {
    /// The received bytes.
    pub buf: PacketBuf,
    /// Who sent it.
    pub source: SocketAddr,
    /// When it arrived (start of the processing-latency measurement).
    pub received_at: Instant,
}

impl AsMut<[u8]> for Packet {
    fn as_mut(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }
}

/// Where a ready packet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The unwrapped frame goes to the next mix.
    Hop {
        /// The next node's id.
        next: NodeId,
        /// Its address.
        addr: SocketAddr,
    },
    /// The message goes to its destination (exit nodes); for a reply, the
    /// datagram `surb_id ‖ δ'` goes to the SURB's creator.
    Deliver {
        /// The destination.
        destination: SocketAddr,
        /// The sender's message id.
        message_id: MessageId,
        /// Message length.
        len: usize,
    },
}

/// A packet that has served its mixing delay, as egress sends it.
pub type Outbound = Held<PacketBuf>;

impl Held<PacketBuf> {
    /// The bytes to send: the whole frame for a hop, the message for
    /// DELIVER, `surb_id ‖ δ'` for REPLY (the only datagram that long).
    pub fn payload(&self) -> &[u8] {
        match self.target {
            Target::Hop { .. } => &self.packet,
            Target::Deliver {
                len: REPLY_DATAGRAM_LEN,
                ..
            } => self.packet.get(offsets::REPLY_DATAGRAM).unwrap_or(&[]),
            Target::Deliver { len, .. } => self
                .packet
                .get(offsets::MESSAGE..offsets::MESSAGE + len)
                .unwrap_or(&[]),
        }
    }
}
