//! The receiving side of a request: the message, and a handle to answer it
//! through the SURBs it came with, without learning who sent it.

use std::io;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::envelope::{self, CHUNK_DATA};
use crate::sphinx::{Surb, SurbError};

/// A receiver's request and reply counts, cumulative.
#[derive(Debug, Default)]
pub struct ReceiverStats {
    /// Requests received (well formed, with SURBs).
    pub requests: AtomicU64,
    /// Requests refused: malformed envelope or too many SURBs.
    pub requests_refused: AtomicU64,
    /// Replies sent whole.
    pub replies_sent: AtomicU64,
    /// SURBs used to send reply packets.
    pub surbs_used: AtomicU64,
    /// Replies refused because a SURB had expired (its keys retired).
    pub surbs_expired: AtomicU64,
}

impl ReceiverStats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Why a reply was not sent.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The reply needs more SURBs than the request brought.
    #[error(
        "the reply has {len} bytes but the request's {surbs} SURB(s) carry at most {max}; \
         the requester must send more SURBs (RequestOptions::reply_surbs)"
    )]
    TooLong {
        /// The reply's length.
        len: usize,
        /// SURBs available.
        surbs: usize,
        /// The longest reply they carry.
        max: usize,
    },
    /// A SURB could not be used (expired: the requester must ask again).
    #[error("cannot use the request's SURB: {0}")]
    Surb(#[from] SurbError),
    /// The first hop could not be sent to.
    #[error("cannot send the reply: {0}")]
    Io(#[from] io::Error),
}

/// An answer path for one request: its SURBs, used at most once.
#[derive(Debug)]
pub struct ReplyHandle {
    surbs: Vec<Surb>,
    socket: UdpSocket,
    stats: Arc<ReceiverStats>,
}

impl ReplyHandle {
    pub(super) fn new(surbs: Vec<Surb>, socket: UdpSocket, stats: Arc<ReceiverStats>) -> Self {
        ReplyHandle {
            surbs,
            socket,
            stats,
        }
    }

    /// The longest reply the request's SURBs carry.
    pub fn capacity(&self) -> usize {
        self.surbs.len() * CHUNK_DATA
    }

    /// SURBs the request brought.
    pub fn surbs(&self) -> usize {
        self.surbs.len()
    }

    /// Sends `reply` back through the SURBs (one packet per
    /// [`CHUNK_DATA`] bytes, to each SURB's first hop). Consumes the handle:
    /// a SURB is single use, and a second reply would be dropped as a
    /// replay anyway.
    pub fn reply(self, reply: &[u8]) -> Result<usize, ReplyError> {
        let too_long = || ReplyError::TooLong {
            len: reply.len(),
            surbs: self.surbs.len(),
            max: self.capacity(),
        };
        let chunks = envelope::split_reply(reply).ok_or_else(too_long)?;
        if chunks.len() > self.surbs.len() {
            return Err(too_long());
        }
        let now = crate::clock::unix_now();
        // Every frame is packed before any is sent: an expired SURB refuses
        // the whole reply rather than half of it.
        let frames = chunks
            .iter()
            .zip(&self.surbs)
            .map(|(chunk, surb)| Ok((surb.first_hop(), surb.pack_reply(chunk, now)?)))
            .collect::<Result<Vec<_>, SurbError>>()
            .inspect_err(|e| {
                if matches!(e, SurbError::Expired { .. }) {
                    ReceiverStats::add(&self.stats.surbs_expired, 1);
                }
            })?;
        for (first_hop, frame) in &frames {
            self.socket.send_to(&frame[..], first_hop)?;
        }
        ReceiverStats::add(&self.stats.surbs_used, frames.len() as u64);
        ReceiverStats::add(&self.stats.replies_sent, 1);
        Ok(frames.len())
    }
}

/// A message as a [`Receiver`](super::Receiver) hands it over: a one-way
/// message, or a request that can be answered.
#[derive(Debug)]
pub struct Incoming {
    /// The message (a request's body, without its SURBs).
    pub message: Vec<u8>,
    /// The way to answer, if it is a request.
    pub reply: Option<ReplyHandle>,
}

impl Incoming {
    /// Whether the sender asked for a reply.
    pub fn is_request(&self) -> bool {
        self.reply.is_some()
    }
}
