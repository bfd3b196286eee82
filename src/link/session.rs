//! An established link session: fixed-size records, each one Sphinx frame
//! (or a rekey marker) under ChaCha20-Poly1305 with the session's counter
//! nonces.
//!
//! ```text
//! record    = AEAD(kind (1) || body (FRAME_LEN))   RECORD_LEN = 1 + FRAME_LEN + 16
//! kind      = 0: body is a frame   1: rekey after this record (body zero)
//! ```
//!
//! Every record is the same size, so an observer of a link learns what it
//! learned of plaintext frames (how many, when) and nothing more. Records
//! travel in order (TCP), so the nonce is implicit: a replayed, dropped,
//! reordered or forged record fails authentication and ends the session.
//! The sender rekeys (Noise `REKEY`, §11.3) after a bounded number of
//! records or time, announcing it in-band so the receiver follows at
//! exactly the same record.

use std::time::{Duration, Instant};

use clatter::cipherstate::{CipherState, CipherStates};
use clatter::crypto::cipher::ChaChaPoly;

use super::error::RecordRejected;
use crate::sphinx::FRAME_LEN;

/// Bytes of the AEAD tag.
const TAG_LEN: usize = 16;
/// Bytes of one record on the wire.
pub const RECORD_LEN: usize = 1 + FRAME_LEN + TAG_LEN;

const KIND_FRAME: u8 = 0;
const KIND_REKEY: u8 = 1;

/// When a sender rekeys: after this many records or this much time,
/// whichever comes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RekeyPolicy {
    /// Records under one key at most.
    pub records: u64,
    /// Time under one key at most.
    pub interval: Duration,
}

impl Default for RekeyPolicy {
    /// 2^20 records (about 1.5 GB) or two minutes.
    fn default() -> Self {
        RekeyPolicy {
            records: 1 << 20,
            interval: Duration::from_secs(120),
        }
    }
}

/// An established session, both directions.
pub struct Session {
    /// This side's sending half.
    pub sealer: Sealer,
    /// This side's receiving half.
    pub opener: Opener,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("sent_rekeys", &self.sealer.rekeys)
            .field("received_rekeys", &self.opener.rekeys)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(states: CipherStates<ChaChaPoly>, initiator: bool) -> Self {
        let CipherStates {
            initiator_to_responder,
            responder_to_initiator,
        } = states;
        let (send, recv) = if initiator {
            (initiator_to_responder, responder_to_initiator)
        } else {
            (responder_to_initiator, initiator_to_responder)
        };
        Session {
            sealer: Sealer {
                cipher: send,
                policy: RekeyPolicy::default(),
                since_rekey: 0,
                keyed_at: None,
                rekeys: 0,
            },
            opener: Opener {
                cipher: recv,
                rekeys: 0,
            },
        }
    }
}

/// Seals frames into records.
pub struct Sealer {
    cipher: CipherState<ChaChaPoly>,
    policy: RekeyPolicy,
    since_rekey: u64,
    keyed_at: Option<Instant>,
    rekeys: u64,
}

impl Sealer {
    /// Replaces the rekey policy (tests use small ones).
    pub fn set_policy(&mut self, policy: RekeyPolicy) {
        self.policy = policy;
    }

    /// Times this side has rekeyed its sending key.
    pub fn rekeys(&self) -> u64 {
        self.rekeys
    }

    /// Appends the record of `frame` to `out` (preceded by a rekey record
    /// when one is due at `now`). `frame` must be exactly `FRAME_LEN` bytes;
    /// anything else is a bug upstream and is refused, not sent.
    pub fn seal(
        &mut self,
        now: Instant,
        frame: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RecordRejected> {
        if frame.len() != FRAME_LEN {
            return Err(RecordRejected);
        }
        let keyed_at = *self.keyed_at.get_or_insert(now);
        if self.since_rekey >= self.policy.records
            || now.saturating_duration_since(keyed_at) >= self.policy.interval
        {
            self.push(KIND_REKEY, None, out)?;
            self.cipher.rekey().map_err(|_| RecordRejected)?;
            self.since_rekey = 0;
            self.keyed_at = Some(now);
            self.rekeys += 1;
        }
        self.push(KIND_FRAME, Some(frame), out)
    }

    fn push(
        &mut self,
        kind: u8,
        body: Option<&[u8]>,
        out: &mut Vec<u8>,
    ) -> Result<(), RecordRejected> {
        let start = out.len();
        out.resize(start + RECORD_LEN, 0);
        let record = &mut out[start..];
        record[0] = kind;
        if let Some(body) = body {
            record[1..1 + FRAME_LEN].copy_from_slice(body);
        }
        let sealed = self
            .cipher
            .encrypt_with_ad_in_place(&[], record, 1 + FRAME_LEN)
            .map_err(|_| RecordRejected);
        if sealed.is_err() {
            out.truncate(start);
        }
        self.since_rekey += 1;
        sealed.map(|_| ())
    }
}

/// Opens records.
pub struct Opener {
    cipher: CipherState<ChaChaPoly>,
    rekeys: u64,
}

impl Opener {
    /// Times the peer has rekeyed (as seen here).
    pub fn rekeys(&self) -> u64 {
        self.rekeys
    }

    /// Decrypts one record in place; its frame, or `None` for a rekey
    /// marker (the receiving key has then moved on). An error ends the
    /// session: nothing after a rejected record can be trusted or opened.
    pub fn open<'a>(&mut self, record: &'a mut [u8]) -> Result<Option<&'a [u8]>, RecordRejected> {
        if record.len() != RECORD_LEN {
            return Err(RecordRejected);
        }
        self.cipher
            .decrypt_with_ad_in_place(&[], record, RECORD_LEN)
            .map_err(|_| RecordRejected)?;
        match record[0] {
            KIND_FRAME => Ok(Some(&record[1..1 + FRAME_LEN])),
            KIND_REKEY => {
                self.cipher.rekey().map_err(|_| RecordRejected)?;
                self.rekeys += 1;
                Ok(None)
            }
            _ => Err(RecordRejected),
        }
    }
}
