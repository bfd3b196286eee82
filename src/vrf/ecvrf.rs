//! ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381 §5, suite 0x03): prove and verify.
//!
//! The arithmetic is the `vrf-rfc9381` crate's (checked against the RFC's
//! Appendix B.3 examples in `tests/vrf.rs`). Its proof decoding is lenient,
//! so [`verify`] checks the encoding itself before handing the proof over:
//!
//! - `s` must be below the group order ℓ (RFC 9381 §5.4.4 step 5). The crate
//!   reduces `s` modulo ℓ, which would make `s + ℓ` a second valid proof.
//! - Γ must be the canonical encoding of a point of order exactly ℓ. The RFC
//!   only requires Γ to decode; an honest Γ = x·H always has order ℓ (H is
//!   cofactor-cleared), so this rejects no honest proof, and it stops a
//!   prover from adding a torsion component to Γ (or re-encoding it) to mint
//!   a second proof of the same output.
//! - The public key must be canonical and not of small order (RFC 9381
//!   `validate_key`, and betanet's rule for every published key).

use curve25519_dalek::Scalar;
use curve25519_dalek::edwards::CompressedEdwardsY;
use vrf_rfc9381::ec::edwards25519::tai::{
    EdVrfEdwards25519Tai, EdVrfEdwards25519TaiPublicKey, EdVrfEdwards25519TaiSecretKey,
};
use vrf_rfc9381::{Ciphersuite, Proof as _, Prover as _, VRF as _, Verifier as _};
use zeroize::Zeroizing;

use super::types::{VrfError, VrfOutput, VrfProof};
use crate::keys::{VrfPublicKey, VrfSecretKey};

/// Proves `alpha` under `secret`: the proof `π` and the output `β` it proves.
///
/// Deterministic: the same key and input always give the same proof (the
/// nonce is derived from the key and `H`, RFC 9381 §5.4.2.2).
pub fn prove(secret: &VrfSecretKey, alpha: &[u8]) -> (VrfProof, VrfOutput) {
    // The seed copy is wiped on return; the crate's key zeroizes itself.
    let seed = Zeroizing::new(secret.to_bytes());
    let prover =
        EdVrfEdwards25519TaiSecretKey::from_slice(seed.as_slice()).expect("a VRF seed is 32 bytes");
    // Proving fails only if try-and-increment finds no curve point in 255
    // hashes, a 2^-255 event: not worth an error path in every caller.
    let proof = prover
        .prove(alpha)
        .expect("try-and-increment found no point in 255 attempts");
    let pi =
        VrfProof::from_slice(&proof.encode_to_pi()).expect("an edwards25519 proof is 80 bytes");
    let beta = proof
        .proof_to_hash(Ciphersuite::ECVRF_EDWARDS25519_SHA512_TAI)
        .expect("proof_to_hash cannot fail on a decoded point");
    (pi, output_from_slice(beta.as_slice()))
}

/// Verifies `proof` for `alpha` under `public` and returns the output `β` it
/// proves. Rejects malformed proofs (see the module docs) as well as proofs
/// that do not verify.
pub fn verify(
    public: &VrfPublicKey,
    alpha: &[u8],
    proof: &VrfProof,
) -> Result<VrfOutput, VrfError> {
    if !public.is_valid() {
        return Err(VrfError::InvalidPublicKey);
    }
    let pi = proof.as_bytes();
    check_gamma(pi[..32].try_into().expect("32 bytes"))?;
    let s: [u8; 32] = pi[48..].try_into().expect("32 bytes");
    if !bool::from(Scalar::from_canonical_bytes(s).is_some()) {
        return Err(VrfError::NonCanonicalScalar);
    }
    let verifier = EdVrfEdwards25519TaiPublicKey::from_slice(&public.0)
        .map_err(|_| VrfError::InvalidPublicKey)?;
    let beta = EdVrfEdwards25519Tai
        .verify(&verifier, alpha, pi)
        .map_err(|_| VrfError::InvalidProof)?;
    Ok(output_from_slice(beta.as_slice()))
}

/// Γ must decode, be canonically encoded and have order exactly ℓ.
fn check_gamma(bytes: &[u8; 32]) -> Result<(), VrfError> {
    let compressed = CompressedEdwardsY(*bytes);
    let point = compressed.decompress().ok_or(VrfError::InvalidGamma)?;
    if point.compress() != compressed || point.is_small_order() || !point.is_torsion_free() {
        return Err(VrfError::InvalidGamma);
    }
    Ok(())
}

fn output_from_slice(beta: &[u8]) -> VrfOutput {
    VrfOutput::from_bytes(beta.try_into().expect("SHA-512 output is 64 bytes"))
}

#[cfg(test)]
mod tests {
    use curve25519_dalek::constants::EIGHT_TORSION;

    use super::*;

    #[test]
    fn round_trip_and_wrong_input() {
        let secret = VrfSecretKey::from_bytes([3; 32]);
        let public = secret.public_key();
        let (proof, output) = prove(&secret, b"alpha");
        assert_eq!(verify(&public, b"alpha", &proof), Ok(output));
        assert_eq!(
            verify(&public, b"beta", &proof),
            Err(VrfError::InvalidProof)
        );
        let other = VrfSecretKey::from_bytes([4; 32]).public_key();
        assert_eq!(
            verify(&other, b"alpha", &proof),
            Err(VrfError::InvalidProof)
        );
    }

    #[test]
    fn gamma_with_a_torsion_component_is_rejected() {
        let secret = VrfSecretKey::from_bytes([5; 32]);
        let (proof, _) = prove(&secret, b"x");
        let mut bytes = proof.to_bytes();
        let gamma = CompressedEdwardsY(bytes[..32].try_into().unwrap())
            .decompress()
            .unwrap();
        let mixed = gamma + EIGHT_TORSION[1];
        bytes[..32].copy_from_slice(mixed.compress().as_bytes());
        assert_eq!(
            verify(&secret.public_key(), b"x", &VrfProof::from_bytes(bytes)),
            Err(VrfError::InvalidGamma)
        );
    }
}
