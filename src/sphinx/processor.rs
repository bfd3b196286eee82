//! Unwrapping one layer of a Sphinx frame (`sphinx-v1.md`, "Processing one
//! hop"), one frame at a time or in batches that share field inversions.
//!
//! Frames are transformed in place: a RELAY frame's buffer becomes the next
//! hop's frame, a final frame's buffer holds the delivered message.

use curve25519_dalek::EdwardsPoint;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::drop_reason::DropReason;
use super::geometry::{
    BETA_LEN, FRAME_LEN, FRAME_VERSION, KIND_SPHINX, MAC_LEN, MAX_MESSAGE, PAYLOAD_ZERO_PREFIX,
    ROUTING_LEN, SLOT, offsets,
};
use super::hop_keys::HopKeys;
use super::key::{SphinxPublicKey, SphinxSecretKey};
use super::node_id::NodeId;
use super::replay::{ReplayFilter, ReplayTag};
use super::routing::{FinalCommand, RoutingCommand, SurbId};
use crate::crypto::lioness;
use crate::crypto::stream::xor_keystream;
use crate::crypto::x25519::{self, CurvePoint};

/// A frame this hop accepted, borrowing the buffer it was unwrapped in.
#[derive(Debug, PartialEq, Eq)]
pub enum Unwrapped<'a> {
    /// Forward `frame` (exactly `FRAME_LEN` bytes) to the node `next`.
    Relay {
        /// The next hop's id.
        next: NodeId,
        /// The frame to send on.
        frame: &'a [u8],
        /// This hop's replay tag of the packet.
        replay_tag: ReplayTag,
    },
    /// This hop is the last one: carry out `command` with `message` (for
    /// REPLY, `message` is the datagram `surb_id ‖ δ'` to deliver).
    Final {
        /// DELIVER, LOOP or DROP.
        command: FinalCommand,
        /// The message (at most `MAX_MESSAGE` bytes).
        message: &'a [u8],
        /// This hop's replay tag of the packet.
        replay_tag: ReplayTag,
    },
}

impl Unwrapped<'_> {
    /// This hop's replay tag `τ` of the packet (the VRF delay input).
    pub fn replay_tag(&self) -> &ReplayTag {
        match self {
            Unwrapped::Relay { replay_tag, .. } | Unwrapped::Final { replay_tag, .. } => replay_tag,
        }
    }
}

/// What is left after the symmetric work: the relay's blinding, or the
/// length of the final message.
enum Peeled {
    Relay {
        next: NodeId,
        blind: Zeroizing<[u8; 32]>,
        tag: ReplayTag,
    },
    Final {
        command: FinalCommand,
        /// Where the message lies in the unwrapped frame.
        message: std::ops::Range<usize>,
        tag: ReplayTag,
    },
}

impl Peeled {
    fn blind(&self) -> Option<&[u8; 32]> {
        match self {
            Peeled::Relay { blind, .. } => Some(blind),
            Peeled::Final { .. } => None,
        }
    }
}

/// Holds one node's Sphinx secret and unwraps frames addressed to it.
///
/// Stateless apart from the key: replay protection is the caller's
/// [`ReplayFilter`], so one processor can serve many worker threads.
#[derive(Debug, Clone)]
pub struct SphinxProcessor {
    secret: SphinxSecretKey,
    public: SphinxPublicKey,
}

impl SphinxProcessor {
    /// A processor for the node holding `secret`.
    pub fn new(secret: SphinxSecretKey) -> Self {
        let public = secret.public_key();
        SphinxProcessor { secret, public }
    }

    /// The public key senders build packets for.
    pub fn public_key(&self) -> SphinxPublicKey {
        self.public
    }

    /// Unwraps one frame in place.
    ///
    /// Any byte string is safe to pass: everything that is not a valid
    /// frame for this node comes back as the spec's [`DropReason`].
    pub fn unwrap<'a, R: ReplayFilter + ?Sized>(
        &self,
        frame: &'a mut [u8],
        replay: &mut R,
    ) -> Result<Unwrapped<'a>, DropReason> {
        let point = open(frame)?;
        let shared = Zeroizing::new(x25519::x25519(self.secret.expose(), &point));
        let peeled = peel(frame, &shared, replay)?;
        let next_alpha = peeled
            .blind()
            .map(|blind| x25519::to_u(&point.mul_clamped(blind)));
        Ok(finish(frame, peeled, next_alpha))
    }

    /// Unwraps a batch of frames in place, returning one result per frame in
    /// order, identical to calling [`unwrap`](Self::unwrap) on each in turn
    /// (including replays within the batch).
    ///
    /// Three field inversions per packet (u → Edwards y when decoding `α`,
    /// and the two Edwards→Montgomery conversions of the shared secret and
    /// the blinded `α'`) become three per batch (Montgomery's trick).
    pub fn unwrap_batch<'a, B, R>(
        &self,
        frames: &'a mut [B],
        replay: &mut R,
    ) -> Vec<Result<Unwrapped<'a>, DropReason>>
    where
        B: AsMut<[u8]>,
        R: ReplayFilter + ?Sized,
    {
        let mut buffers: Vec<&'a mut [u8]> = frames.iter_mut().map(AsMut::as_mut).collect();
        // α is decoded for the whole batch at once (one inversion).
        let shapes: Vec<Result<[u8; 32], DropReason>> = buffers
            .iter()
            .map(|frame| frame_alpha(frame).copied())
            .collect();
        let alphas: Vec<Option<&[u8; 32]>> = shapes.iter().map(|s| s.as_ref().ok()).collect();
        let points = CurvePoint::from_u_bytes_batch(&alphas);
        let opened: Vec<Result<CurvePoint, DropReason>> = shapes
            .iter()
            .zip(points)
            .map(|(shape, point)| match shape {
                Ok(_) => point.ok_or(DropReason::InvalidKey),
                Err(reason) => Err(*reason),
            })
            .collect();

        // x·α for every frame that opened; the identity stands in for the
        // others so indices stay aligned (batch inversion skips zeros).
        // These are the shared secrets on Edwards form: wiped on drop.
        let products: Zeroizing<Vec<EdwardsPoint>> = Zeroizing::new(
            opened
                .iter()
                .map(|point| match point {
                    Ok(point) => point.mul_clamped(self.secret.expose()),
                    Err(_) => EdwardsPoint::default(),
                })
                .collect(),
        );
        let shared = Zeroizing::new(x25519::to_u_batch(&products));

        let peeled: Vec<Result<Peeled, DropReason>> = buffers
            .iter_mut()
            .zip(&opened)
            .zip(shared.iter())
            .map(|((frame, opened), shared)| match opened {
                Ok(_) => peel(frame, shared, replay),
                Err(reason) => Err(*reason),
            })
            .collect();

        // b·α for the relays, again with one inversion for all of them.
        // These are the next hops' α: public, so not wiped.
        let blinded: Vec<EdwardsPoint> = peeled
            .iter()
            .zip(&opened)
            .map(|(peeled, point)| match (peeled, point) {
                (Ok(peeled), Ok(point)) => match peeled.blind() {
                    Some(blind) => point.mul_clamped(blind),
                    None => EdwardsPoint::default(),
                },
                _ => EdwardsPoint::default(),
            })
            .collect();
        let next_alphas = x25519::to_u_batch(&blinded);

        buffers
            .into_iter()
            .zip(peeled)
            .zip(next_alphas)
            .map(|((frame, peeled), next_alpha)| {
                let peeled = peeled?;
                let next_alpha = peeled.blind().map(|_| next_alpha);
                Ok(finish(frame, peeled, next_alpha))
            })
            .collect()
    }
}

/// Steps 1–2: frame shape and `α`.
fn open(frame: &[u8]) -> Result<CurvePoint, DropReason> {
    CurvePoint::from_u_bytes(frame_alpha(frame)?).ok_or(DropReason::InvalidKey)
}

/// Step 1: frame shape; the encoded `α` of a well-formed frame.
fn frame_alpha(frame: &[u8]) -> Result<&[u8; 32], DropReason> {
    if frame.len() != FRAME_LEN || frame[0] != FRAME_VERSION || frame[1] != KIND_SPHINX {
        return Err(DropReason::Malformed);
    }
    frame[offsets::ALPHA]
        .try_into()
        .map_err(|_| DropReason::Malformed)
}

/// Steps 3 (zero check) to 8 and 10: everything but the curve arithmetic.
fn peel<R: ReplayFilter + ?Sized>(
    frame: &mut [u8],
    shared: &[u8; 32],
    replay: &mut R,
) -> Result<Peeled, DropReason> {
    if bool::from(shared.ct_eq(&[0u8; 32])) {
        return Err(DropReason::InvalidKey);
    }
    let keys = HopKeys::derive(shared);
    if !keys.verify_mac(&frame[offsets::BETA], &frame[offsets::GAMMA]) {
        return Err(DropReason::Mac);
    }
    if replay.check_and_insert(&keys.tag) {
        return Err(DropReason::Replay);
    }

    // B = (β ‖ 0^64) ^ ChaCha20(ρ, 384).
    let mut b = [0u8; BETA_LEN + SLOT];
    b[..BETA_LEN].copy_from_slice(&frame[offsets::BETA]);
    xor_keystream(&keys.rho, &mut b);
    let mut routing = [0u8; ROUTING_LEN];
    routing.copy_from_slice(&b[..ROUTING_LEN]);
    // Decoding before LIONESS spares the payload work on junk; the drop
    // reason is the same either way.
    let command = RoutingCommand::decode(&routing).ok_or(DropReason::Routing)?;
    frame[offsets::GAMMA].copy_from_slice(&b[ROUTING_LEN..SLOT]);
    frame[offsets::BETA].copy_from_slice(&b[SLOT..]);
    lioness::decrypt(&keys.lioness, &mut frame[offsets::DELTA]);

    match command {
        RoutingCommand::Relay { next } => Ok(Peeled::Relay {
            next,
            blind: Zeroizing::new(keys.blind),
            tag: keys.tag,
        }),
        RoutingCommand::Final(
            command @ FinalCommand::Reply {
                surb_id: SurbId(id),
                ..
            },
        ) => {
            // A reply's payload is readable only by the SURB's creator: no
            // check here (`sphinx-v1.md`, "Replies").
            let datagram = offsets::REPLY_DATAGRAM;
            frame[datagram.start..offsets::DELTA.start].copy_from_slice(&id);
            Ok(Peeled::Final {
                command,
                message: datagram,
                tag: keys.tag,
            })
        }
        RoutingCommand::Final(command) => {
            let delta = &frame[offsets::DELTA];
            let zero_prefix = &delta[..PAYLOAD_ZERO_PREFIX];
            if !bool::from(zero_prefix.ct_eq(&[0u8; PAYLOAD_ZERO_PREFIX])) {
                return Err(DropReason::Payload);
            }
            let len_at = PAYLOAD_ZERO_PREFIX;
            let message_len = usize::from(u16::from_be_bytes([delta[len_at], delta[len_at + 1]]));
            if message_len > MAX_MESSAGE {
                return Err(DropReason::Payload);
            }
            Ok(Peeled::Final {
                command,
                message: offsets::MESSAGE..offsets::MESSAGE + message_len,
                tag: keys.tag,
            })
        }
    }
}

/// Step 9 (write `α'`) and the result.
fn finish(frame: &mut [u8], peeled: Peeled, next_alpha: Option<[u8; 32]>) -> Unwrapped<'_> {
    match peeled {
        Peeled::Relay { next, tag, .. } => {
            if let Some(alpha) = next_alpha {
                frame[offsets::ALPHA].copy_from_slice(&alpha);
            }
            Unwrapped::Relay {
                next,
                frame: &frame[..],
                replay_tag: tag,
            }
        }
        Peeled::Final {
            command,
            message,
            tag,
        } => Unwrapped::Final {
            command,
            message: &frame[message],
            replay_tag: tag,
        },
    }
}

const _: () = assert!(MAC_LEN + ROUTING_LEN == SLOT);
