//! The receiving side of a request: the message, and a handle to answer it
//! through the SURBs it came with, without learning who sent it.

use std::io;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
    /// Replies refused because the receiver's reply budget was spent.
    pub replies_over_budget: AtomicU64,
}

/// Reply packets a receiver sends at most: a token bucket shared by every
/// [`ReplyHandle`] of one [`Receiver`](super::Receiver), so that requests
/// (anyone can send them, with SURBs that deliver anywhere) cannot make it
/// send without bound.
#[derive(Debug)]
pub struct ReplyBudget {
    /// Reply packets per second, sustained.
    rate: f64,
    /// Reply packets at once.
    burst: f64,
    tokens: f64,
    last: std::time::Instant,
}

impl ReplyBudget {
    /// `rate` reply packets per second, `burst` at once (at least one
    /// request's worth: [`envelope::MAX_SURBS_PER_REQUEST`]).
    pub fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst).max(envelope::MAX_SURBS_PER_REQUEST as f64);
        ReplyBudget {
            rate: rate.max(0.0),
            burst,
            tokens: burst,
            last: std::time::Instant::now(),
        }
    }

    /// Takes `n` packets' worth at `now`, or nothing if there is not enough.
    pub fn take(&mut self, n: usize, now: std::time::Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens + 1e-9 < n as f64 {
            return false;
        }
        self.tokens -= n as f64;
        true
    }
}

impl Default for ReplyBudget {
    /// 1,000 reply packets per second (an entry node's default budget per
    /// source), 1,000 at once.
    fn default() -> Self {
        ReplyBudget::new(1000.0, 1000)
    }
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
    /// The receiver's reply budget is spent for now.
    #[error(
        "the reply budget ({0} reply packets per second) is spent; this reply was not sent \
         (raise it with Receiver::with_reply_budget, or --reply-rate)"
    )]
    OverBudget(f64),
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
    budget: Arc<Mutex<ReplyBudget>>,
}

impl ReplyHandle {
    pub(super) fn new(
        surbs: Vec<Surb>,
        socket: UdpSocket,
        stats: Arc<ReceiverStats>,
        budget: Arc<Mutex<ReplyBudget>>,
    ) -> Self {
        ReplyHandle {
            surbs,
            socket,
            stats,
            budget,
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
        {
            let mut budget = self.budget.lock().unwrap_or_else(|e| e.into_inner());
            if !budget.take(frames.len(), std::time::Instant::now()) {
                ReceiverStats::add(&self.stats.replies_over_budget, 1);
                return Err(ReplyError::OverBudget(budget.rate));
            }
        }
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn the_budget_refills_at_its_rate_up_to_its_burst() {
        let t0 = Instant::now();
        let mut budget = ReplyBudget::new(100.0, 64);
        assert!(budget.take(64, t0));
        assert!(!budget.take(1, t0));
        // 100/s: 10 packets after 100 ms.
        assert!(budget.take(10, t0 + Duration::from_millis(100)));
        assert!(!budget.take(1, t0 + Duration::from_millis(100)));
        // Never more than the burst.
        assert!(!budget.take(65, t0 + Duration::from_secs(60)));
        assert!(budget.take(64, t0 + Duration::from_secs(60)));
    }
}
