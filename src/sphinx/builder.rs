//! Creating packets (`sphinx-v1.md`, "Creating a packet").

use std::ops::Mul;

use curve25519_dalek::Scalar;
use curve25519_dalek::scalar::clamp_integer;
use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

use super::geometry::{
    ALPHA_LEN, BETA_LEN, FRAME_LEN, FRAME_VERSION, HEADER_LEN, KIND_SPHINX, MAC_LEN, MAX_HOPS,
    MAX_MESSAGE, PAYLOAD_LEN, PAYLOAD_ZERO_PREFIX, ROUTING_LEN, SLOT, offsets,
};
use super::hop_keys::{HopKeys, mac};
use super::key::SphinxPublicKey;
use super::node_id::NodeId;
use super::replay::ReplayTag;
use super::routing::{FinalCommand, RoutingCommand};
use crate::crypto::lioness;
use crate::crypto::stream::xor_keystream;
use crate::crypto::x25519;

const PADDING_CONTEXT: &str = "betanet sphinx v1 header padding";

/// One node on a packet's path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathHop {
    /// The node's id (the previous hop's RELAY target).
    pub id: NodeId,
    /// The node's current Sphinx public key.
    pub public_key: SphinxPublicKey,
}

/// Why a packet cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A path needs at least one hop.
    #[error("a path needs at least one hop")]
    EmptyPath,
    /// More hops than the header has room for.
    #[error("a path has at most {MAX_HOPS} hops; this one has {0}")]
    PathTooLong(usize),
    /// The message does not fit one packet.
    #[error("a packet carries at most {MAX_MESSAGE} message bytes; this message has {0}")]
    MessageTooLong(usize),
    /// A hop's public key is not a usable Curve25519 point.
    #[error("the Sphinx public key of hop {0} is not a valid Curve25519 key")]
    InvalidPublicKey(usize),
}

/// A freshly built packet and what its sender may want to remember.
#[derive(Clone, Debug)]
pub struct BuiltPacket {
    /// The frame to send to the first hop.
    pub frame: Box<[u8; FRAME_LEN]>,
    /// The replay tag each hop will see, in path order. A sender that knows
    /// the tags can recompute every hop's VRF-derived delay.
    pub replay_tags: Vec<ReplayTag>,
}

/// Builds a packet along `path` with a fresh random seed from `rng`.
pub fn create_packet<R: CryptoRng + ?Sized>(
    path: &[PathHop],
    final_command: FinalCommand,
    message: &[u8],
    rng: &mut R,
) -> Result<BuiltPacket, BuildError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(seed.as_mut());
    create_packet_with_seed(path, final_command, message, &seed)
}

/// Builds a packet deterministically from the seed `e` (for test vectors;
/// real senders use [`create_packet`]).
pub fn create_packet_with_seed(
    path: &[PathHop],
    final_command: FinalCommand,
    message: &[u8],
    seed: &[u8; 32],
) -> Result<BuiltPacket, BuildError> {
    if message.len() > MAX_MESSAGE {
        check_path(path)?;
        return Err(BuildError::MessageTooLong(message.len()));
    }
    let (header, keys) = build_header(path, final_command, seed)?;
    let mut frame = Box::new([0u8; FRAME_LEN]);
    frame[0] = FRAME_VERSION;
    frame[1] = KIND_SPHINX;
    frame[offsets::ALPHA.start..offsets::BETA.end].copy_from_slice(&header[..]);

    let delta = &mut frame[offsets::DELTA];
    let len_at = PAYLOAD_ZERO_PREFIX;
    // Checked above: message.len() ≤ MAX_MESSAGE < u16::MAX.
    delta[len_at..len_at + 2].copy_from_slice(&(message.len() as u16).to_be_bytes());
    delta[len_at + 2..len_at + 2 + message.len()].copy_from_slice(message);
    for k in keys.iter().rev() {
        lioness::encrypt(&k.lioness, delta);
    }
    debug_assert_eq!(delta.len(), PAYLOAD_LEN);

    Ok(BuiltPacket {
        frame,
        replay_tags: keys.iter().map(|k| k.tag).collect(),
    })
}

/// Checks the path length (1 to `MAX_HOPS`).
fn check_path(path: &[PathHop]) -> Result<(), BuildError> {
    match path.len() {
        0 => Err(BuildError::EmptyPath),
        n if n > MAX_HOPS => Err(BuildError::PathTooLong(n)),
        _ => Ok(()),
    }
}

/// The header `α_0 ‖ γ ‖ β` of a packet along `path` from the seed `e`,
/// and every hop's keys (`sphinx-v1.md`, "Creating a packet", all but `δ`).
/// Packets and SURBs share it.
pub(crate) fn build_header(
    path: &[PathHop],
    final_command: FinalCommand,
    seed: &[u8; 32],
) -> Result<(Box<[u8; HEADER_LEN]>, Vec<HopKeys>), BuildError> {
    check_path(path)?;
    let hops = path.len();
    let alpha0 = x25519::x25519_base(seed);
    let keys = hop_keys(path, seed)?;
    let streams: Vec<Zeroizing<[u8; BETA_LEN + SLOT]>> = keys
        .iter()
        .map(|k| {
            let mut stream = Zeroizing::new([0u8; BETA_LEN + SLOT]);
            xor_keystream(&k.rho, stream.as_mut());
            stream
        })
        .collect();

    // The filler makes the tail of β look the same at every hop.
    let mut filler: Vec<u8> = Vec::with_capacity(SLOT * (hops - 1));
    for stream in &streams[..hops - 1] {
        filler.extend_from_slice(&[0u8; SLOT]);
        let tail = &stream[stream.len() - filler.len()..];
        for (f, s) in filler.iter_mut().zip(tail) {
            *f ^= s;
        }
    }

    let plain_len = BETA_LEN - SLOT * (hops - 1);
    let mut beta = [0u8; BETA_LEN];
    beta[..ROUTING_LEN].copy_from_slice(&RoutingCommand::Final(final_command).encode());
    let mut padding = blake3::Hasher::new_derive_key(PADDING_CONTEXT);
    padding.update(seed);
    let mut reader = padding.finalize_xof();
    reader.fill(&mut beta[SLOT..plain_len]);
    // Both hold the seed (or its hash state): wiped.
    reader.zeroize();
    padding.zeroize();
    for (b, s) in beta[..plain_len].iter_mut().zip(streams[hops - 1].iter()) {
        *b ^= s;
    }
    beta[plain_len..].copy_from_slice(&filler);
    let mut gamma = mac(&keys[hops - 1].mu, &beta);

    for i in (0..hops - 1).rev() {
        let mut next = [0u8; BETA_LEN];
        let relay = RoutingCommand::Relay {
            next: path[i + 1].id,
        };
        next[..ROUTING_LEN].copy_from_slice(&relay.encode());
        next[ROUTING_LEN..SLOT].copy_from_slice(&gamma);
        next[SLOT..].copy_from_slice(&beta[..BETA_LEN - SLOT]);
        for (b, s) in next.iter_mut().zip(streams[i].iter()) {
            *b ^= s;
        }
        beta = next;
        gamma = mac(&keys[i].mu, &beta);
    }

    let mut header = Box::new([0u8; HEADER_LEN]);
    header[..ALPHA_LEN].copy_from_slice(&alpha0);
    header[ALPHA_LEN..ALPHA_LEN + MAC_LEN].copy_from_slice(&gamma);
    header[ALPHA_LEN + MAC_LEN..].copy_from_slice(&beta);
    Ok((header, keys))
}

/// The hop keys of every hop. `s_i` is `y_i` times the product of the
/// clamped seed and the clamped blinding scalars of the earlier hops: one
/// multiplication per hop instead of `i + 1`.
pub(crate) fn hop_keys(path: &[PathHop], seed: &[u8; 32]) -> Result<Vec<HopKeys>, BuildError> {
    // The clamped integers are multiples of 8, so K·Y = (K/8)·(8Y); 8Y lies
    // in the prime-order subgroup, so K/8 may be reduced modulo ℓ. This keeps
    // the result equal to sequential X25519 even for keys with torsion.
    //
    // The running product is the sender's secret for every later hop, and
    // each `s_i` on Edwards form is a shared secret: all are wiped.
    let inverse_eight = Scalar::from(8u8).invert();
    let clamped = Zeroizing::new(clamp_integer(*seed));
    let mut product = Zeroizing::new(Scalar::from_bytes_mod_order(*clamped) * inverse_eight);
    let mut keys = Vec::with_capacity(path.len());
    for (i, hop) in path.iter().enumerate() {
        let point = hop
            .public_key
            .to_point()
            .ok_or(BuildError::InvalidPublicKey(i))?;
        // By reference, so no unwiped copy of the product is made.
        let shared_point = Zeroizing::new(point.edwards().mul_by_cofactor().mul(&*product));
        let shared = Zeroizing::new(x25519::to_u(&shared_point));
        let hop_keys = HopKeys::derive(&shared);
        let blind = Zeroizing::new(Scalar::from_bytes_mod_order(clamp_integer(hop_keys.blind)));
        *product *= &*blind;
        keys.push(hop_keys);
    }
    Ok(keys)
}
