//! What requests and replies carry above Sphinx: a request's SURBs before
//! its body, and each reply packet's place in a reply split over several
//! SURBs. Pure and bounded; any byte string is safe to parse.
//!
//! ```text
//! request     = n (u8, 1..=MAX_SURBS_PER_REQUEST) ‖ n × SURB (427 bytes) ‖ body
//! reply chunk = index (u16 BE) ‖ count (u16 BE) ‖ data (≤ CHUNK_DATA bytes)
//! ```
//!
//! A request travels as a fragmented message of kind
//! [`Request`](super::fragment::Kind::Request); reply chunk `i` of `count`
//! is the message of the reply packet built from the request's SURB `i`.

use crate::sphinx::{MAX_REPLY, SURB_LEN, Surb};

/// Most SURBs one request may carry: bounds what a receiver holds and
/// sends for one request (a larger request is refused whole).
pub const MAX_SURBS_PER_REQUEST: usize = 64;
/// `index ‖ count`.
pub const CHUNK_HEADER: usize = 4;
/// Reply bytes one SURB carries.
pub const CHUNK_DATA: usize = MAX_REPLY - CHUNK_HEADER;
/// Longest reply a request can ask for.
pub const MAX_REPLY_BYTES: usize = CHUNK_DATA * MAX_SURBS_PER_REQUEST;

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// No SURB count, a count of 0 or above [`MAX_SURBS_PER_REQUEST`], or
    /// fewer bytes than the SURBs need.
    #[error("not a well-formed request (SURB count or length wrong)")]
    Malformed,
}

/// `n ‖ SURBs ‖ body`. At most [`MAX_SURBS_PER_REQUEST`] SURBs (the caller
/// ensures it).
pub fn encode_request(surbs: &[Surb], body: &[u8]) -> Vec<u8> {
    debug_assert!((1..=MAX_SURBS_PER_REQUEST).contains(&surbs.len()));
    let mut out = Vec::with_capacity(1 + surbs.len() * SURB_LEN + body.len());
    out.push(surbs.len().min(MAX_SURBS_PER_REQUEST) as u8);
    for surb in surbs.iter().take(MAX_SURBS_PER_REQUEST) {
        surb.encode_into(&mut out);
    }
    out.extend_from_slice(body);
    out
}

/// Splits a request into its SURBs and body.
pub fn decode_request(request: &[u8]) -> Result<(Vec<Surb>, &[u8]), EnvelopeError> {
    let (&n, rest) = request.split_first().ok_or(EnvelopeError::Malformed)?;
    let n = usize::from(n);
    if n == 0 || n > MAX_SURBS_PER_REQUEST || rest.len() < n * SURB_LEN {
        return Err(EnvelopeError::Malformed);
    }
    let (surbs, body) = rest.split_at(n * SURB_LEN);
    let surbs = surbs
        .chunks_exact(SURB_LEN)
        .map(Surb::decode)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| EnvelopeError::Malformed)?;
    Ok((surbs, body))
}

/// SURBs needed for a reply of `len` bytes.
pub fn chunks_for(len: usize) -> usize {
    len.div_ceil(CHUNK_DATA).max(1)
}

/// Splits a reply into chunks (`index ‖ count ‖ data`), one per SURB;
/// `None` if it needs more than `MAX_SURBS_PER_REQUEST`.
pub fn split_reply(reply: &[u8]) -> Option<Vec<Vec<u8>>> {
    let count = chunks_for(reply.len());
    if count > MAX_SURBS_PER_REQUEST {
        return None;
    }
    let pieces: Vec<&[u8]> = if reply.is_empty() {
        vec![&[]]
    } else {
        reply.chunks(CHUNK_DATA).collect()
    };
    Some(
        pieces
            .iter()
            .enumerate()
            .map(|(i, data)| {
                let mut chunk = Vec::with_capacity(CHUNK_HEADER + data.len());
                // Both below MAX_SURBS_PER_REQUEST ≤ u16::MAX.
                chunk.extend_from_slice(&(i as u16).to_be_bytes());
                chunk.extend_from_slice(&(count as u16).to_be_bytes());
                chunk.extend_from_slice(data);
                chunk
            })
            .collect(),
    )
}

/// One parsed reply chunk.
#[derive(Debug, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// Its place.
    pub index: u16,
    /// How many chunks the reply has.
    pub count: u16,
    /// Its bytes.
    pub data: &'a [u8],
}

/// Parses a recovered reply message; `None` unless `index < count`.
pub fn parse_chunk(message: &[u8]) -> Option<Chunk<'_>> {
    if message.len() < CHUNK_HEADER {
        return None;
    }
    let index = u16::from_be_bytes([message[0], message[1]]);
    let count = u16::from_be_bytes([message[2], message[3]]);
    (index < count).then_some(Chunk {
        index,
        count,
        data: &message[CHUNK_HEADER..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_split_and_parse() {
        let reply: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        let chunks = split_reply(&reply).unwrap();
        assert_eq!(chunks.len(), 3);
        let mut joined = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            assert!(chunk.len() <= MAX_REPLY);
            let parsed = parse_chunk(chunk).unwrap();
            assert_eq!((parsed.index as usize, parsed.count), (i, 3));
            joined.extend_from_slice(parsed.data);
        }
        assert_eq!(joined, reply);
        assert_eq!(split_reply(b"").unwrap().len(), 1);
        assert!(split_reply(&vec![0; MAX_REPLY_BYTES + 1]).is_none());
    }

    #[test]
    fn junk_requests_are_refused() {
        for junk in [&[][..], &[0], &[1, 2, 3], &[65; 500]] {
            assert_eq!(decode_request(junk).unwrap_err(), EnvelopeError::Malformed);
        }
        assert!(parse_chunk(&[0, 1, 0, 1]).is_none());
    }
}
