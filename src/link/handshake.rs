//! The link handshake: Noise `hybridIK` between nodes, `hybridNK` from an
//! anonymous client to an entry node, both X25519 + ML-KEM-768 with
//! ChaCha20-Poly1305 and SHA-256 (clatter's true hybrid handshake: every DH
//! and every KEM secret goes into one chaining key, so the session is safe
//! while either X25519 or ML-KEM holds).
//!
//! On the wire (both directions over one TCP connection):
//!
//! ```text
//! initiator → responder: preamble (16) || len (u16 BE) || Noise message 1
//! responder → initiator: len (u16 BE) || Noise message 2
//! preamble = "BNLK" || version (1) || pattern (1) || 0x0000 || key epoch (u64 BE)
//! ```
//!
//! The preamble is the Noise prologue, so changing a byte of it (say the
//! pattern, to strip the post-quantum half) breaks the handshake. Its first
//! byte is never a Sphinx frame's first byte, so one port serves both
//! plaintext frames and links. The key epoch names which of the
//! responder's published link keys the initiator used. Sans-IO: these
//! functions take and return bytes; `transport` moves them.

use clatter::bytearray::ByteArray;
use clatter::crypto::cipher::ChaChaPoly;
use clatter::crypto::dh::X25519;
use clatter::crypto::hash::Sha256;
use clatter::crypto::kem::rust_crypto_ml_kem::MlKem768;
use clatter::handshakepattern::{HandshakePattern, noise_hybrid_ik, noise_hybrid_nk};
use clatter::traits::Handshaker;
use clatter::{HybridHandshake, HybridHandshakeParams};

use super::error::HandshakeFailure;
use super::keys::{LINK_KEM_LEN, LinkKeyPair, LinkPublicKey};
use super::session::Session;

type Suite = HybridHandshake<X25519, MlKem768, MlKem768, ChaChaPoly, Sha256>;

/// The first four bytes of every link connection.
pub const LINK_MAGIC: [u8; 4] = *b"BNLK";
/// The link protocol version this build speaks.
pub const LINK_VERSION: u8 = 1;
/// Bytes of the preamble.
pub const PREAMBLE_LEN: usize = 16;
/// The longest handshake message accepted (hybridIK's first is 3,552).
pub const MAX_HANDSHAKE_LEN: usize = 8192;

/// Who opens a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkPattern {
    /// Another node: `hybridIK`, its static link key sent encrypted in the
    /// first message and checked against the topology.
    Member,
    /// A client: `hybridNK`, no initiator key (an anonymous initiator).
    Anonymous,
}

impl LinkPattern {
    fn code(self) -> u8 {
        match self {
            LinkPattern::Member => 1,
            LinkPattern::Anonymous => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(LinkPattern::Member),
            2 => Some(LinkPattern::Anonymous),
            _ => None,
        }
    }

    fn noise(self) -> HandshakePattern {
        match self {
            LinkPattern::Member => noise_hybrid_ik(),
            LinkPattern::Anonymous => noise_hybrid_nk(),
        }
    }

    /// The Noise protocol name, e.g. for logs and docs.
    pub fn protocol_name(self) -> &'static str {
        match self {
            LinkPattern::Member => "Noise_hybridIK_25519+MLKEM768_ChaChaPoly_SHA256",
            LinkPattern::Anonymous => "Noise_hybridNK_25519+MLKEM768_ChaChaPoly_SHA256",
        }
    }
}

/// The clear first 16 bytes of a link connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preamble {
    /// Who is opening the session.
    pub pattern: LinkPattern,
    /// Which of the responder's link keys (by key epoch) was used.
    pub key_epoch: u64,
}

impl Preamble {
    /// The 16 bytes on the wire.
    pub fn encode(&self) -> [u8; PREAMBLE_LEN] {
        let mut out = [0u8; PREAMBLE_LEN];
        out[..4].copy_from_slice(&LINK_MAGIC);
        out[4] = LINK_VERSION;
        out[5] = self.pattern.code();
        out[8..].copy_from_slice(&self.key_epoch.to_be_bytes());
        out
    }

    /// Parses a preamble: `Malformed` without the magic, `Unsupported` for
    /// another version or an unknown pattern (a classical-only pattern is
    /// one: there is no downgrade to offer).
    pub fn decode(bytes: &[u8; PREAMBLE_LEN]) -> Result<Self, HandshakeFailure> {
        if bytes[..4] != LINK_MAGIC || bytes[6..8] != [0, 0] {
            return Err(HandshakeFailure::Malformed);
        }
        if bytes[4] != LINK_VERSION {
            return Err(HandshakeFailure::Unsupported);
        }
        let pattern = LinkPattern::from_code(bytes[5]).ok_or(HandshakeFailure::Unsupported)?;
        let mut epoch = [0u8; 8];
        epoch.copy_from_slice(&bytes[8..]);
        Ok(Preamble {
            pattern,
            key_epoch: u64::from_be_bytes(epoch),
        })
    }
}

/// True if `first` can start a link connection (and so is not a frame).
pub fn starts_link(first: u8) -> bool {
    first == LINK_MAGIC[0]
}

fn length_prefixed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + message.len());
    // Handshake messages are a few KB; MAX_HANDSHAKE_LEN fits a u16.
    out.extend_from_slice(&(message.len() as u16).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The opening side of a handshake, between its two messages.
pub struct Initiator {
    noise: Suite,
}

impl Initiator {
    /// Starts a handshake with the holder of `peer` (its link key for
    /// `peer_epoch`). `own` is this node's link key, or `None` for an
    /// anonymous client. Returns the bytes to send: preamble, length and
    /// the first message.
    pub fn start(
        own: Option<&LinkKeyPair>,
        peer: &LinkPublicKey,
        peer_epoch: u64,
    ) -> Result<(Self, Vec<u8>), HandshakeFailure> {
        let pattern = if own.is_some() {
            LinkPattern::Member
        } else {
            LinkPattern::Anonymous
        };
        let preamble = Preamble {
            pattern,
            key_epoch: peer_epoch,
        }
        .encode();
        let mut params = HybridHandshakeParams::new(pattern.noise(), true)
            .with_prologue(&preamble)
            .with_rs(peer.clatter_dh())
            .with_rs_kem(peer.clatter_kem());
        if let Some(own) = own {
            params = params
                .with_s(own.clatter_dh())
                .with_s_kem(own.clatter_kem());
        }
        let mut noise = Suite::new(params).map_err(|_| HandshakeFailure::Crypto)?;
        let mut message = vec![0u8; MAX_HANDSHAKE_LEN];
        let n = noise
            .write_message(&[], &mut message)
            .map_err(|_| HandshakeFailure::Crypto)?;
        let mut out = preamble.to_vec();
        out.extend_from_slice(&length_prefixed(&message[..n]));
        Ok((Initiator { noise }, out))
    }

    /// Reads the responder's message (without its length prefix) and
    /// returns the session. Fails if the responder does not hold the
    /// pinned key (a man in the middle) or the message was altered.
    pub fn finish(mut self, message: &[u8]) -> Result<Session, HandshakeFailure> {
        if message.len() > MAX_HANDSHAKE_LEN {
            return Err(HandshakeFailure::Malformed);
        }
        self.noise
            .read_message(message, &mut [])
            .map_err(|_| HandshakeFailure::Crypto)?;
        if !self.noise.is_finished() {
            return Err(HandshakeFailure::Crypto);
        }
        let transport = self
            .noise
            .finalize()
            .map_err(|_| HandshakeFailure::Crypto)?;
        Ok(Session::new(transport.take(), true))
    }
}

/// What the responder learns from a handshake it accepted.
pub struct Accepted {
    /// The initiator's static link key (`None`: an anonymous client).
    pub peer: Option<LinkPublicKey>,
    /// The bytes to send back: length and the second message.
    pub reply: Vec<u8>,
    /// The session, ready for records.
    pub session: Session,
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// Answers a handshake: `own` is this node's link key for
/// `preamble.key_epoch`; `message` the first message (without its length).
/// `authorize` sees the initiator's static key (or `None`) after the first
/// message is authenticated and before any reply is computed, so a refused
/// peer costs one message's work and learns nothing.
pub fn respond(
    preamble: &Preamble,
    message: &[u8],
    own: &LinkKeyPair,
    authorize: impl FnOnce(Option<&LinkPublicKey>) -> Result<(), HandshakeFailure>,
) -> Result<Accepted, HandshakeFailure> {
    if message.len() > MAX_HANDSHAKE_LEN {
        return Err(HandshakeFailure::Malformed);
    }
    let prologue = preamble.encode();
    let params = HybridHandshakeParams::new(preamble.pattern.noise(), false)
        .with_prologue(&prologue)
        .with_s(own.clatter_dh())
        .with_s_kem(own.clatter_kem());
    let mut noise = Suite::new(params).map_err(|_| HandshakeFailure::Crypto)?;
    noise
        .read_message(message, &mut [])
        .map_err(|_| HandshakeFailure::Crypto)?;
    let peer = match preamble.pattern {
        LinkPattern::Anonymous => None,
        LinkPattern::Member => {
            let remote = noise.get_remote_static().ok_or(HandshakeFailure::Crypto)?;
            let mut bytes = remote.dh().to_vec();
            bytes.extend_from_slice(remote.kem().as_slice());
            debug_assert_eq!(bytes.len(), 32 + LINK_KEM_LEN);
            Some(LinkPublicKey::from_bytes(&bytes).ok_or(HandshakeFailure::Malformed)?)
        }
    };
    authorize(peer.as_ref())?;
    let mut reply = vec![0u8; MAX_HANDSHAKE_LEN];
    let n = noise
        .write_message(&[], &mut reply)
        .map_err(|_| HandshakeFailure::Crypto)?;
    if !noise.is_finished() {
        return Err(HandshakeFailure::Crypto);
    }
    let transport = noise.finalize().map_err(|_| HandshakeFailure::Crypto)?;
    Ok(Accepted {
        peer,
        reply: length_prefixed(&reply[..n]),
        session: Session::new(transport.take(), false),
    })
}
