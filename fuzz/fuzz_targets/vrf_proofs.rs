//! VRF proof parsing and verification, as `betanet audit` and peers run it
//! on what a node publishes at `GET /vrf/{epoch}`.
//!
//! Modes (first input byte):
//! - `EpochPublication` / `EpochProofs` JSON: parsing and `verify` never
//!   panic; what verifies round-trips through JSON unchanged;
//! - a proof from raw bytes (`VrfProof::from_slice`, any length) verified
//!   under the test key or any 32 bytes, for any input: a proof that
//!   verifies under the test key must be the one `prove` makes (proofs are
//!   unique: betanet refuses the encodings that would allow a second one);
//! - a real proof with bits flipped: it verifies if and only if no bit
//!   changed, and only for the input it was made for.

#![no_main]

use std::sync::OnceLock;

use betanet::keys::{VrfPublicKey, VrfSecretKey};
use betanet::sphinx::NodeId;
use betanet::vrf::{
    Epoch, EpochProofs, EpochPublication, VrfError, VrfProof, delay_alpha, neighbors_alpha, prove,
    verify, verify_neighbors,
};
use betanet_fuzz::flip_bits;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    let _ = match mode % 3 {
        0 => json(rest),
        1 => raw_proof(&mut u),
        _ => mutated_proof(&mut u),
    };
});

fn secret() -> VrfSecretKey {
    VrfSecretKey::from_bytes([0x5a; 32])
}

/// The test key's proofs of epochs 0 to 3.
fn real() -> &'static [EpochProofs] {
    static REAL: OnceLock<Vec<EpochProofs>> = OnceLock::new();
    REAL.get_or_init(|| {
        (0..4)
            .map(|e| EpochProofs::evaluate(&secret(), Epoch(e)))
            .collect()
    })
}

fn json(text: &[u8]) -> Result<()> {
    if let Ok(publication) = serde_json::from_slice::<EpochPublication>(text)
        && publication.proofs.verify().is_ok()
    {
        let again: EpochPublication =
            serde_json::from_slice(&serde_json::to_vec(&publication).expect("encodes"))
                .expect("our own JSON parses");
        assert_eq!(again, publication);
        let _ = publication.proofs.delay_key();
        let ids: Vec<NodeId> = (0..5).map(|i| NodeId::from_bytes([i; 16])).collect();
        assert_eq!(publication.proofs.select_neighbors(&ids, 2).len(), 2);
    }
    if let Ok(proofs) = serde_json::from_slice::<EpochProofs>(text) {
        let key = proofs.vrf_public_key;
        assert_eq!(proofs.verify_for(&key).is_ok(), proofs.verify().is_ok());
    }
    Ok(())
}

fn raw_proof(u: &mut Unstructured<'_>) -> Result<()> {
    let len = if u.ratio(7, 8)? {
        VrfProof::LEN
    } else {
        usize::from(u.int_in_range(0..=100u8)?)
    };
    let bytes = u.bytes(len.min(u.len()))?;
    let proof = match VrfProof::from_slice(bytes) {
        Ok(proof) => proof,
        Err(error) => {
            assert_ne!(bytes.len(), VrfProof::LEN);
            assert_eq!(error, VrfError::InvalidLength { got: bytes.len() });
            return Ok(());
        }
    };
    let test_key = u.arbitrary()?;
    let public = if test_key {
        secret().public_key()
    } else {
        VrfPublicKey(u.arbitrary()?)
    };
    let alpha_len = usize::from(u.int_in_range(0..=64u8)?).min(u.len());
    let alpha = u.bytes(alpha_len)?;
    if let Ok(output) = verify(&public, alpha, &proof) {
        assert_eq!(verify(&public, alpha, &proof), Ok(output));
        if public == secret().public_key() {
            assert_eq!(
                prove(&secret(), alpha),
                (proof, output),
                "a second valid proof"
            );
        }
    }
    Ok(())
}

fn mutated_proof(u: &mut Unstructured<'_>) -> Result<()> {
    let real = u.choose(real())?;
    let epoch = real.epoch;
    let public = real.vrf_public_key;
    let (original, alpha, output) = if u.arbitrary()? {
        (
            real.delay.proof,
            delay_alpha(epoch).to_vec(),
            real.delay.output,
        )
    } else {
        (
            real.neighbors.proof,
            neighbors_alpha(epoch).to_vec(),
            real.neighbors.output,
        )
    };
    let mut bytes = original.to_bytes();
    flip_bits(u, &mut bytes)?;
    let proof = VrfProof::from_bytes(bytes);

    let result = verify(&public, &alpha, &proof);
    if proof == original {
        assert_eq!(result, Ok(output));
    } else {
        assert!(result.is_err(), "a changed proof verified");
    }
    // The same proof for another epoch's input never verifies.
    let other = Epoch(epoch.0 + 4);
    assert!(verify(&public, &delay_alpha(other), &proof).is_err());

    let candidates: Vec<NodeId> = (0..u.int_in_range(0..=8u8)?)
        .map(|i| NodeId::from_bytes([i; 16]))
        .collect();
    let k = usize::from(u.int_in_range(0..=9u8)?);
    let neighbors = verify_neighbors(&public, epoch, &proof, &candidates, k, &candidates);
    if proof == real.neighbors.proof {
        let everyone = k == 0 || k >= candidates.len();
        assert_eq!(neighbors, Ok(everyone));
    } else {
        assert!(neighbors.is_err());
    }
    Ok(())
}
