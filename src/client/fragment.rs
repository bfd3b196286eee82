//! Splitting messages into packet-sized fragments and putting them back
//! together. Pure and bounded: a receiver never holds more than
//! `max_pending` partial messages or `max_message` bytes per message.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::sphinx::MAX_MESSAGE;

/// Fragment format version.
const VERSION: u8 = 1;
/// version (1) ‖ message id (16) ‖ index (2, BE) ‖ count (2, BE).
pub const HEADER_LEN: usize = 1 + 16 + 2 + 2;
/// Payload bytes per fragment.
pub const FRAGMENT_DATA: usize = MAX_MESSAGE - HEADER_LEN;
/// Longest message: 65,535 fragments.
pub const MAX_FRAGMENTED: usize = FRAGMENT_DATA * u16::MAX as usize;

/// Why a message cannot be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a message is at most {MAX_FRAGMENTED} bytes; this one has {0}")]
pub struct TooLong(pub usize);

/// Splits `message` into fragments, each small enough for one packet.
pub fn split(message_id: [u8; 16], message: &[u8]) -> Result<Vec<Vec<u8>>, TooLong> {
    let chunks: Vec<&[u8]> = if message.is_empty() {
        vec![&[]]
    } else {
        message.chunks(FRAGMENT_DATA).collect()
    };
    let count = u16::try_from(chunks.len()).map_err(|_| TooLong(message.len()))?;
    Ok(chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut f = Vec::with_capacity(HEADER_LEN + chunk.len());
            f.push(VERSION);
            f.extend_from_slice(&message_id);
            // `i < count ≤ u16::MAX`, so this cannot truncate.
            f.extend_from_slice(&(i as u16).to_be_bytes());
            f.extend_from_slice(&count.to_be_bytes());
            f.extend_from_slice(chunk);
            f
        })
        .collect())
}

/// One parsed fragment.
#[derive(Debug, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// The message it belongs to.
    pub message_id: [u8; 16],
    /// Its position.
    pub index: u16,
    /// How many fragments the message has.
    pub count: u16,
    /// Its bytes.
    pub data: &'a [u8],
}

/// Parses a delivered datagram; `None` if it is not a fragment.
pub fn parse(datagram: &[u8]) -> Option<Fragment<'_>> {
    if datagram.len() < HEADER_LEN || datagram[0] != VERSION {
        return None;
    }
    let mut message_id = [0u8; 16];
    message_id.copy_from_slice(&datagram[1..17]);
    let index = u16::from_be_bytes([datagram[17], datagram[18]]);
    let count = u16::from_be_bytes([datagram[19], datagram[20]]);
    (count > 0 && index < count).then_some(Fragment {
        message_id,
        index,
        count,
        data: &datagram[HEADER_LEN..],
    })
}

struct Partial {
    parts: Vec<Option<Vec<u8>>>,
    received: usize,
    bytes: usize,
    first_seen: Instant,
}

/// Reassembles messages from fragments arriving in any order.
pub struct Reassembler {
    pending: HashMap<[u8; 16], Partial>,
    max_pending: usize,
    max_message: usize,
    timeout: Duration,
}

impl Reassembler {
    /// Holds at most `max_pending` incomplete messages of at most
    /// `max_message` bytes, each for at most `timeout`.
    pub fn new(max_pending: usize, max_message: usize, timeout: Duration) -> Self {
        Reassembler {
            pending: HashMap::new(),
            max_pending: max_pending.max(1),
            max_message,
            timeout,
        }
    }

    /// Feeds one delivered datagram; returns a message once it is complete.
    /// Datagrams that are not fragments are returned as they are.
    pub fn push(&mut self, datagram: &[u8], now: Instant) -> Option<Vec<u8>> {
        let Some(fragment) = parse(datagram) else {
            return Some(datagram.to_vec());
        };
        if fragment.count == 1 {
            return Some(fragment.data.to_vec());
        }
        self.expire(now);
        if !self.pending.contains_key(&fragment.message_id)
            && self.pending.len() >= self.max_pending
        {
            return None;
        }
        let partial = self
            .pending
            .entry(fragment.message_id)
            .or_insert_with(|| Partial {
                parts: vec![None; usize::from(fragment.count)],
                received: 0,
                bytes: 0,
                first_seen: now,
            });
        let index = usize::from(fragment.index);
        if partial.parts.len() != usize::from(fragment.count)
            || partial.parts[index].is_some()
            || partial.bytes + fragment.data.len() > self.max_message
        {
            return None;
        }
        partial.parts[index] = Some(fragment.data.to_vec());
        partial.received += 1;
        partial.bytes += fragment.data.len();
        if partial.received < partial.parts.len() {
            return None;
        }
        let done = self.pending.remove(&fragment.message_id)?;
        Some(done.parts.into_iter().flatten().flatten().collect())
    }

    /// Incomplete messages held now.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn expire(&mut self, now: Instant) {
        let timeout = self.timeout;
        self.pending
            .retain(|_, p| now.saturating_duration_since(p.first_seen) < timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_reassemble_in_any_order() {
        let message: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let mut fragments = split([7; 16], &message).unwrap();
        assert_eq!(fragments.len(), 5000usize.div_ceil(FRAGMENT_DATA));
        assert!(fragments.iter().all(|f| f.len() <= MAX_MESSAGE));
        fragments.reverse();
        let mut r = Reassembler::new(8, 1 << 20, Duration::from_secs(10));
        let now = Instant::now();
        let mut out = None;
        for f in &fragments {
            assert!(out.is_none());
            out = r.push(f, now);
        }
        assert_eq!(out, Some(message));
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn small_and_empty_messages_are_one_fragment() {
        for m in [&b""[..], b"hi"] {
            let f = split([1; 16], m).unwrap();
            assert_eq!(f.len(), 1);
            let mut r = Reassembler::new(1, 100, Duration::from_secs(1));
            assert_eq!(r.push(&f[0], Instant::now()).as_deref(), Some(m));
        }
    }

    #[test]
    fn bounded_and_robust() {
        let now = Instant::now();
        let mut r = Reassembler::new(1, 2000, Duration::from_millis(10));
        let a = split([1; 16], &[0u8; 3000]).unwrap();
        let b = split([2; 16], &[0u8; 3000]).unwrap();
        assert_eq!(r.push(&a[0], now), None);
        // A second partial message does not fit.
        assert_eq!(r.push(&b[0], now), None);
        assert_eq!(r.pending(), 1);
        // Too many bytes for one message: refused.
        assert_eq!(r.push(&a[1], now), None);
        assert_eq!(r.push(&a[2], now), None);
        // After the timeout the slot frees up.
        assert_eq!(r.push(&b[0], now + Duration::from_millis(20)), None);
        assert_eq!(r.pending(), 1);
        // Garbage and inconsistent headers never panic.
        for junk in [
            &[][..],
            &[1u8; 5],
            &[1u8; 21],
            &[
                1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 2,
            ],
        ] {
            let _ = r.push(junk, now);
        }
    }
}
