//! Single-use reply blocks (`sphinx-v1.md`, "Replies (SURBs)").
//!
//! A SURB lets a recipient answer a sender it cannot identify. Its creator
//! builds a Sphinx header along a path that ends in a REPLY command naming
//! the creator's address and the SURB id, and hands the recipient (the
//! replier) the header, the first hop's address and a payload key. The
//! replier encrypts its reply with the payload key and sends header and
//! payload to the first hop; each hop processes the packet as any other;
//! the last hop delivers `surb_id ‖ δ'` to the creator, who alone holds the
//! keys to remove every hop's LIONESS layer and then the replier's.
//!
//! Everything is derived from one 32-byte SURB seed the creator keeps
//! ([`SurbKey`]), with the path's public keys.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::builder::{BuildError, PathHop, build_header, hop_keys};
use super::geometry::{
    FRAME_LEN, FRAME_VERSION, HEADER_LEN, KIND_SPHINX, MAX_MESSAGE, PAYLOAD_LEN,
    PAYLOAD_ZERO_PREFIX, REPLY_DATAGRAM_LEN, SURB_ID_LEN, offsets,
};
use super::routing::{FinalCommand, SurbId};
use crate::crypto::lioness::{self, LionessKeys};

/// The only SURB format version v1 defines.
pub const SURB_VERSION: u8 = 0x01;
/// `version (1) ‖ first hop address (16) ‖ port (2) ‖ expires (8) ‖
/// header (368) ‖ payload key (32)`.
pub const SURB_LEN: usize = 1 + 16 + 2 + 8 + HEADER_LEN + 32;
/// Longest reply one SURB carries (as a forward packet's message).
pub const MAX_REPLY: usize = MAX_MESSAGE;

const HEADER_SEED_CONTEXT: &str = "betanet surb v1 header seed";
const PAYLOAD_KEY_CONTEXT: &str = "betanet surb v1 payload key";
const SURB_ID_CONTEXT: &str = "betanet surb v1 id";
const PAYLOAD_KEYS_CONTEXT: &str = "betanet surb v1 payload keys";

/// Where each field sits in an encoded SURB.
mod layout {
    use std::ops::Range;

    pub(super) const VERSION: usize = 0;
    pub(super) const ADDRESS: Range<usize> = 1..17;
    pub(super) const PORT: Range<usize> = 17..19;
    pub(super) const EXPIRES: Range<usize> = 19..27;
    pub(super) const HEADER: Range<usize> = 27..27 + super::HEADER_LEN;
    pub(super) const PAYLOAD_KEY: Range<usize> = HEADER.end..HEADER.end + 32;
}

const _: () = assert!(layout::PAYLOAD_KEY.end == SURB_LEN && SURB_LEN == 427);

/// Why a SURB cannot be used, or a reply not recovered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SurbError {
    /// The bytes are not a v1 SURB.
    #[error("not a betanet v1 SURB (wrong length or version)")]
    Malformed,
    /// A key the SURB was built for is no longer accepted by its node.
    #[error(
        "the SURB expired at unix time {expires} (now {now}): its nodes have retired the \
         keys it was built for; ask the sender for a fresh one"
    )]
    Expired {
        /// The SURB's expiry (unix seconds).
        expires: u64,
        /// The time it was used at.
        now: u64,
    },
    /// The reply does not fit one SURB.
    #[error("one SURB carries at most {MAX_REPLY} reply bytes; this reply has {0}")]
    TooLong(usize),
    /// The reply datagram is not `surb_id ‖ δ'` of the right length.
    #[error("a reply datagram is exactly {REPLY_DATAGRAM_LEN} bytes; this one has {0}")]
    BadDatagram(usize),
    /// The recovered payload is not well formed: it was tampered with on
    /// the way, or is not a reply to this SURB (drop reason `payload`).
    #[error("the reply is garbled (tampered with, or not for this SURB)")]
    Garbled,
}

/// What the replier receives: enough to send one reply, nothing that
/// names the SURB's creator.
#[derive(Clone, PartialEq, Eq)]
pub struct Surb {
    first_hop: SocketAddr,
    expires: u64,
    header: Box<[u8; HEADER_LEN]>,
    payload_key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Surb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Surb")
            .field("first_hop", &self.first_hop)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Surb {
    /// Where the reply frame goes (the first hop's UDP address).
    pub fn first_hop(&self) -> SocketAddr {
        self.first_hop
    }

    /// Unix second from which the SURB is refused (the earliest moment a
    /// key it was built for may be retired).
    pub fn expires(&self) -> u64 {
        self.expires
    }

    /// The prepared header `α ‖ γ ‖ β`.
    pub fn header(&self) -> &[u8; HEADER_LEN] {
        &self.header
    }

    /// Appends the `SURB_LEN`-byte encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + SURB_LEN, 0);
        let bytes = &mut out[start..];
        bytes[layout::VERSION] = SURB_VERSION;
        let ip = match self.first_hop.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        bytes[layout::ADDRESS].copy_from_slice(&ip.octets());
        bytes[layout::PORT].copy_from_slice(&self.first_hop.port().to_be_bytes());
        bytes[layout::EXPIRES].copy_from_slice(&self.expires.to_be_bytes());
        bytes[layout::HEADER].copy_from_slice(&self.header[..]);
        bytes[layout::PAYLOAD_KEY].copy_from_slice(&self.payload_key[..]);
    }

    /// The encoding, `SURB_LEN` bytes (holds the payload key: wiped on drop).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(SURB_LEN));
        self.encode_into(&mut out);
        out
    }

    /// Parses an encoded SURB. Any byte string is safe to pass.
    pub fn decode(bytes: &[u8]) -> Result<Self, SurbError> {
        if bytes.len() != SURB_LEN || bytes[layout::VERSION] != SURB_VERSION {
            return Err(SurbError::Malformed);
        }
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&bytes[layout::ADDRESS]);
        let v6 = Ipv6Addr::from(octets);
        let ip = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
        let port = u16::from_be_bytes([bytes[layout::PORT.start], bytes[layout::PORT.start + 1]]);
        let mut expires = [0u8; 8];
        expires.copy_from_slice(&bytes[layout::EXPIRES]);
        let mut header = Box::new([0u8; HEADER_LEN]);
        header.copy_from_slice(&bytes[layout::HEADER]);
        let mut payload_key = Zeroizing::new([0u8; 32]);
        payload_key.copy_from_slice(&bytes[layout::PAYLOAD_KEY]);
        Ok(Surb {
            first_hop: SocketAddr::new(ip, port),
            expires: u64::from_be_bytes(expires),
            header,
            payload_key,
        })
    }

    /// Packs `reply` into a frame for [`first_hop`](Self::first_hop), at
    /// unix time `now` (refused once the SURB has expired).
    ///
    /// `δ = LIONESS.encrypt(λ̃, 0^16 ‖ u16be(len) ‖ reply ‖ 0…)`, frame
    /// `= 0x01 ‖ 0x00 ‖ header ‖ δ`.
    pub fn pack_reply(&self, reply: &[u8], now: u64) -> Result<Box<[u8; FRAME_LEN]>, SurbError> {
        if now >= self.expires {
            return Err(SurbError::Expired {
                expires: self.expires,
                now,
            });
        }
        if reply.len() > MAX_REPLY {
            return Err(SurbError::TooLong(reply.len()));
        }
        let mut frame = Box::new([0u8; FRAME_LEN]);
        frame[0] = FRAME_VERSION;
        frame[1] = KIND_SPHINX;
        frame[offsets::ALPHA.start..offsets::BETA.end].copy_from_slice(&self.header[..]);
        let delta = &mut frame[offsets::DELTA];
        let len_at = PAYLOAD_ZERO_PREFIX;
        // Checked above: reply.len() ≤ MAX_MESSAGE < u16::MAX.
        delta[len_at..len_at + 2].copy_from_slice(&(reply.len() as u16).to_be_bytes());
        delta[len_at + 2..len_at + 2 + reply.len()].copy_from_slice(reply);
        lioness::encrypt(&payload_keys(&self.payload_key), delta);
        Ok(frame)
    }
}

/// What the SURB's creator keeps to read the reply: the SURB seed and the
/// path. Secret (it decrypts the reply): wiped on drop, never printed.
pub struct SurbKey {
    id: SurbId,
    seed: Zeroizing<[u8; 32]>,
    path: Vec<PathHop>,
    expires: u64,
}

impl fmt::Debug for SurbKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SurbKey")
            .field("id", &self.id)
            .field("hops", &self.path.len())
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl SurbKey {
    /// The id the reply's last hop names.
    pub fn id(&self) -> SurbId {
        self.id
    }

    /// When the SURB expires (unix seconds).
    pub fn expires(&self) -> u64 {
        self.expires
    }

    /// Recovers the reply from `δ'`, the payload the last hop delivered:
    /// re-applies every hop's LIONESS layer (`encrypt`, last hop first),
    /// removes the replier's (`decrypt` with `λ̃`), and checks the zero
    /// prefix and length as a final hop does.
    pub fn recover(&self, delivered: &[u8; PAYLOAD_LEN]) -> Result<Vec<u8>, SurbError> {
        let mut block = Zeroizing::new(*delivered);
        let header_seed = derive(HEADER_SEED_CONTEXT, &self.seed);
        // The path was usable when the SURB was built, so this cannot fail.
        let keys = hop_keys(&self.path, &header_seed).map_err(|_| SurbError::Garbled)?;
        for k in keys.iter().rev() {
            lioness::encrypt(&k.lioness, &mut block[..]);
        }
        let payload_key = derive(PAYLOAD_KEY_CONTEXT, &self.seed);
        lioness::decrypt(&payload_keys(&payload_key), &mut block[..]);
        if !bool::from(block[..PAYLOAD_ZERO_PREFIX].ct_eq(&[0u8; PAYLOAD_ZERO_PREFIX])) {
            return Err(SurbError::Garbled);
        }
        let len_at = PAYLOAD_ZERO_PREFIX;
        let len = usize::from(u16::from_be_bytes([block[len_at], block[len_at + 1]]));
        if len > MAX_REPLY {
            return Err(SurbError::Garbled);
        }
        Ok(block[len_at + 2..len_at + 2 + len].to_vec())
    }
}

/// A SURB for `path` (1 to `MAX_HOPS` hops, the first reachable at
/// `first_hop`) whose reply is delivered to `destination`, valid until unix
/// second `expires`, from a fresh random seed.
pub fn create_surb<R: CryptoRng + ?Sized>(
    path: &[PathHop],
    first_hop: SocketAddr,
    destination: SocketAddr,
    expires: u64,
    rng: &mut R,
) -> Result<(Surb, SurbKey), BuildError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(seed.as_mut());
    create_surb_with_seed(path, first_hop, destination, expires, &seed)
}

/// [`create_surb`] from the SURB seed `S` (for test vectors).
///
/// `e = derive_key("betanet surb v1 header seed", S)`, `k =
/// derive_key("betanet surb v1 payload key", S)`, `id = derive_key("betanet
/// surb v1 id", S)[0..16]`; the header is a packet header from seed `e`
/// with the final command `REPLY(destination, id)`.
pub fn create_surb_with_seed(
    path: &[PathHop],
    first_hop: SocketAddr,
    destination: SocketAddr,
    expires: u64,
    seed: &[u8; 32],
) -> Result<(Surb, SurbKey), BuildError> {
    let id = surb_id(seed);
    let header_seed = derive(HEADER_SEED_CONTEXT, seed);
    let command = FinalCommand::Reply {
        destination,
        surb_id: id,
    };
    let (header, _keys) = build_header(path, command, &header_seed)?;
    let surb = Surb {
        first_hop,
        expires,
        header,
        payload_key: derive(PAYLOAD_KEY_CONTEXT, seed),
    };
    let key = SurbKey {
        id,
        seed: Zeroizing::new(*seed),
        path: path.to_vec(),
        expires,
    };
    Ok((surb, key))
}

/// The SURB id derived from the SURB seed.
pub fn surb_id(seed: &[u8; 32]) -> SurbId {
    let full = derive(SURB_ID_CONTEXT, seed);
    let mut id = [0u8; SURB_ID_LEN];
    id.copy_from_slice(&full[..SURB_ID_LEN]);
    SurbId(id)
}

/// Splits a datagram a reply's last hop delivered into the SURB id and
/// `δ'`; `None` unless it is exactly `REPLY_DATAGRAM_LEN` bytes.
pub fn parse_reply_datagram(datagram: &[u8]) -> Option<(SurbId, &[u8; PAYLOAD_LEN])> {
    if datagram.len() != REPLY_DATAGRAM_LEN {
        return None;
    }
    let (id, delta) = datagram.split_at(SURB_ID_LEN);
    Some((SurbId(id.try_into().ok()?), delta.try_into().ok()?))
}

/// `λ̃1..λ̃4 = derive_key("betanet surb v1 payload keys", k).XOF(128)`.
fn payload_keys(payload_key: &[u8; 32]) -> LionessKeys {
    let mut k = Zeroizing::new([0u8; 128]);
    let mut hasher = blake3::Hasher::new_derive_key(PAYLOAD_KEYS_CONTEXT);
    hasher.update(payload_key);
    let mut reader = hasher.finalize_xof();
    reader.fill(&mut k[..]);
    reader.zeroize();
    hasher.zeroize();
    let part = |i: usize| {
        let mut out = [0u8; 32];
        out.copy_from_slice(&k[32 * i..32 * (i + 1)]);
        out
    };
    LionessKeys::new([part(0), part(1), part(2), part(3)])
}

/// `BLAKE3.derive_key(context, seed)`, wiped on drop.
fn derive(context: &str, seed: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(blake3::derive_key(context, seed))
}
