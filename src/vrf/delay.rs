//! VRF-derived mixing delays (`sphinx-v1.md`, "VRF-derived mixing delays").
//!
//! Per epoch `E`: `β_d = VRF_hash(vrf_secret, "betanet delay v1" ‖ u64be(E))`
//! and `K_d = BLAKE3.derive_key("betanet vrf delay key v1", β_d)`. A packet
//! with replay tag `τ` is held
//! `min(floor(−mean_µs · ln u), max_µs)` with `u = ((v >> 11) + 1) / 2^53`
//! and `v = u64le(BLAKE3.keyed_hash(K_d, τ)[0..8])`.
//!
//! The node cannot choose its delays (they follow from its VRF key and the
//! sender's packet), and the sender, who knows `τ`, can recompute them from
//! the published proof `π_d` with [`expected_delay`].
//!
//! # The epoch boundary
//!
//! A packet's delay uses the key of the epoch that is current **when it is
//! unwrapped**, i.e. when the worker calls [`DelayPolicy::delay`] right after
//! unwrapping it. "Current" is the epoch most recently installed with
//! [`VrfDelay::rotate`], which the node calls once at the start of each epoch
//! after evaluating the VRF for it. A packet unwrapped in `E` keeps `E`'s
//! delay even if it leaves during `E + 1`.
//!
//! [`VrfDelay`] keeps the previous epoch's key after a rotation, so delays
//! of packets unwrapped in `E` can still be computed during `E + 1`
//! ([`VrfDelay::delay_in`]) — for a caller that stamped the unwrap epoch
//! before a batch straddled the rollover, or to account for packets still
//! queued. A verifier that saw its packet reach the node close to a boundary
//! should accept the delay of either neighbouring epoch: it cannot know on
//! which side of the node's rollover the unwrap fell.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::ecvrf::{prove, verify};
use super::epoch::Epoch;
use super::types::{VrfError, VrfOutput, VrfProof};
use crate::keys::{VrfPublicKey, VrfSecretKey};
use crate::mixing::{DelayPolicy, ExponentialDelay};
use crate::sphinx::ReplayTag;

/// Prefix of the delay VRF input.
const DELAY_ALPHA_PREFIX: &[u8; 16] = b"betanet delay v1";

/// Derivation context of `K_d`.
const DELAY_KEY_CONTEXT: &str = "betanet vrf delay key v1";

/// The VRF input for epoch `E`'s delays: `"betanet delay v1" ‖ u64be(E)`.
pub fn delay_alpha(epoch: Epoch) -> [u8; 24] {
    let mut alpha = [0u8; 24];
    alpha[..16].copy_from_slice(DELAY_ALPHA_PREFIX);
    alpha[16..].copy_from_slice(&epoch.to_be_bytes());
    alpha
}

/// One epoch's delay key `K_d`, derived once from `β_d`. Zeroized on drop;
/// `Debug` never shows it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct EpochDelayKey([u8; 32]);

impl EpochDelayKey {
    /// `K_d = BLAKE3.derive_key("betanet vrf delay key v1", β_d)`.
    pub fn from_output(beta: &VrfOutput) -> Self {
        EpochDelayKey(blake3::derive_key(DELAY_KEY_CONTEXT, beta.as_bytes()))
    }

    /// Evaluates the VRF for `epoch`'s delays: the key, with the proof and
    /// output to publish.
    pub fn evaluate(secret: &VrfSecretKey, epoch: Epoch) -> (Self, VrfProof, VrfOutput) {
        let (proof, beta) = prove(secret, &delay_alpha(epoch));
        (Self::from_output(&beta), proof, beta)
    }

    /// `v = u64le(BLAKE3.keyed_hash(K_d, τ)[0..8])`, the packet's 64 uniform bits.
    pub fn uniform_bits(&self, tag: &ReplayTag) -> u64 {
        let hash = blake3::keyed_hash(&self.0, &tag.0);
        let mut v = [0u8; 8];
        v.copy_from_slice(&hash.as_bytes()[..8]);
        u64::from_le_bytes(v)
    }

    /// The delay of the packet with replay tag `tag`, for a mean delay `mean`
    /// capped at `max`.
    pub fn delay_for(&self, tag: &ReplayTag, mean: Duration, max: Duration) -> Duration {
        self.delay_with(tag, &ExponentialDelay::new(mean, max))
    }

    // The u → delay mapping is ExponentialDelay's, so VRF and CSPRNG delays
    // can never drift apart.
    fn delay_with(&self, tag: &ReplayTag, exponential: &ExponentialDelay) -> Duration {
        exponential.from_uniform_bits(self.uniform_bits(tag))
    }
}

impl fmt::Debug for EpochDelayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EpochDelayKey(<redacted>)")
    }
}

/// The delay a node must have applied to the packet with replay tag `tag` in
/// `epoch`, after checking the node's published delay proof. Fails if the
/// proof does not verify under `public` for that epoch.
pub fn expected_delay(
    public: &VrfPublicKey,
    epoch: Epoch,
    proof: &VrfProof,
    tag: &ReplayTag,
    mean: Duration,
    max: Duration,
) -> Result<Duration, VrfError> {
    let beta = verify(public, &delay_alpha(epoch), proof)?;
    Ok(EpochDelayKey::from_output(&beta).delay_for(tag, mean, max))
}

/// The keys [`VrfDelay`] swaps as one unit, so a reader never sees a current
/// key with the wrong previous one.
struct EpochKeys {
    current: (Epoch, EpochDelayKey),
    previous: Option<(Epoch, EpochDelayKey)>,
}

/// The node's [`DelayPolicy`] for verifiable mixing: delays from the current
/// epoch's [`EpochDelayKey`], with the previous epoch's key kept for packets
/// unwrapped before the rollover (see the module docs for the boundary rule).
///
/// Readers (the workers) never block: the keys sit behind an [`ArcSwap`]
/// that [`VrfDelay::rotate`] replaces atomically.
pub struct VrfDelay {
    exponential: ExponentialDelay,
    keys: ArcSwap<EpochKeys>,
}

impl VrfDelay {
    /// A policy whose current epoch is `epoch` with key `key` (and no
    /// previous key), delays with mean `mean` capped at `max`.
    pub fn new(epoch: Epoch, key: EpochDelayKey, mean: Duration, max: Duration) -> Self {
        VrfDelay {
            exponential: ExponentialDelay::new(mean, max),
            keys: ArcSwap::from_pointee(EpochKeys {
                current: (epoch, key),
                previous: None,
            }),
        }
    }

    /// Evaluates the VRF for `epoch` and starts a policy there. The proof is
    /// not returned: publish it from [`super::EpochProofs::evaluate`].
    pub fn evaluate(secret: &VrfSecretKey, epoch: Epoch, mean: Duration, max: Duration) -> Self {
        let (key, _, _) = EpochDelayKey::evaluate(secret, epoch);
        Self::new(epoch, key, mean, max)
    }

    /// Makes `epoch` current with `key`; the epoch that was current becomes
    /// the previous one. Called once at each epoch start. Returns `false`
    /// (and changes nothing) unless `epoch` is later than the current epoch,
    /// so a late or repeated rotation cannot move delays backwards.
    pub fn rotate(&self, epoch: Epoch, key: EpochDelayKey) -> bool {
        let mut rotated = false;
        self.keys.rcu(|keys| {
            rotated = epoch > keys.current.0;
            if !rotated {
                return Arc::clone(keys);
            }
            Arc::new(EpochKeys {
                current: (epoch, key.clone()),
                previous: Some(keys.current.clone()),
            })
        });
        rotated
    }

    /// The epoch whose key [`DelayPolicy::delay`] uses now.
    pub fn current_epoch(&self) -> Epoch {
        self.keys.load().current.0
    }

    /// The epoch before the current one, if its key is still held.
    pub fn previous_epoch(&self) -> Option<Epoch> {
        self.keys.load().previous.as_ref().map(|(epoch, _)| *epoch)
    }

    /// The delay of a packet unwrapped in `epoch`, if that epoch's key is
    /// held (the current or the previous epoch); `None` otherwise.
    pub fn delay_in(&self, epoch: Epoch, tag: &ReplayTag) -> Option<Duration> {
        let keys = self.keys.load();
        let key = if keys.current.0 == epoch {
            &keys.current.1
        } else {
            match &keys.previous {
                Some((previous, key)) if *previous == epoch => key,
                _ => return None,
            }
        };
        Some(key.delay_with(tag, &self.exponential))
    }
}

impl DelayPolicy for VrfDelay {
    /// The delay under the current epoch's key. `random` is ignored: the
    /// delay must follow from the tag alone to be verifiable.
    fn delay(&self, tag: &ReplayTag, _random: u64) -> Duration {
        self.keys
            .load()
            .current
            .1
            .delay_with(tag, &self.exponential)
    }
}

impl fmt::Debug for VrfDelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VrfDelay")
            .field("exponential", &self.exponential)
            .field("current_epoch", &self.current_epoch())
            .field("previous_epoch", &self.previous_epoch())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_layout() {
        let alpha = delay_alpha(Epoch(0x0102_0304_0506_0708));
        assert_eq!(&alpha[..16], b"betanet delay v1");
        assert_eq!(alpha[16..], [1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn debug_is_redacted() {
        let key = EpochDelayKey([0x42; 32]);
        assert_eq!(format!("{key:?}"), "EpochDelayKey(<redacted>)");
    }

    #[test]
    fn rotation_never_goes_backwards() {
        let secret = VrfSecretKey::from_bytes([1; 32]);
        let ms = Duration::from_millis;
        let policy = VrfDelay::evaluate(&secret, Epoch(10), ms(5), ms(500));
        let (key, _, _) = EpochDelayKey::evaluate(&secret, Epoch(9));
        assert!(!policy.rotate(Epoch(9), key.clone()));
        assert!(!policy.rotate(Epoch(10), key));
        assert_eq!(policy.current_epoch(), Epoch(10));
        assert_eq!(policy.previous_epoch(), None);
    }
}
