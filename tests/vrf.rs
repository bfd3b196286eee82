//! Verifiable mixing: the ECVRF against RFC 9381's examples, strict proof
//! decoding, the spec's delay and neighbour formulas recomputed here from
//! scratch, the delay distribution, the epoch boundary, and the published
//! per-epoch proofs.

#![cfg(feature = "vrf")]

use std::collections::HashSet;
use std::time::Duration;

use betanet::keys::{VrfPublicKey, VrfSecretKey};
use betanet::mixing::DelayPolicy;
use betanet::sphinx::{NodeId, ReplayTag};
use betanet::vrf::{
    self, Epoch, EpochDelayKey, EpochProofs, VrfDelay, VrfError, VrfOutput, VrfProof,
    expected_delay, select_neighbors, verify_neighbors,
};
use curve25519_dalek::constants::EIGHT_TORSION;

/// RFC 9381 Appendix B.3 (ECVRF-EDWARDS25519-SHA512-TAI), Examples 16, 17
/// and 18: (SK, PK, alpha, pi, beta). Taken from the vrf-rfc9381 crate's
/// repository (OtaK/vrf-rfc9381,
/// tests/test-vectors/test-vector-data/edwards25519_tai.json, which lists
/// them as the RFC's examples 16–18); independent implementations citing
/// the RFC quote the same values.
const RFC9381_TAI: [(&str, &str, &str, &str, &str); 3] = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "8657106690b5526245a92b003bb079ccd1a92130477671f6fc01ad16f26f723f\
         26f8a57ccaed74ee1b190bed1f479d9727d2d0f9b005a6e456a35d4fb0daab12\
         68a1b0db10836d9826a528ca76567805",
        "90cf1df3b703cce59e2a35b925d411164068269d7b2d29f3301c03dd757876ff\
         66b71dda49d2de59d03450451af026798e8f81cd2e333de5cdf4f3e140fdd8ae",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "f3141cd382dc42909d19ec5110469e4feae18300e94f304590abdced48aed593\
         3bf0864a62558b3ed7f2fea45c92a465301b3bbf5e3e54ddf2d935be3b67926d\
         a3ef39226bbc355bdc9850112c8f4b02",
        "eb4440665d3891d668e7e0fcaf587f1b4bd7fbfe99d0eb2211ccec90496310eb\
         5e33821bc613efb94db5e5b54c70a848a0bef4553a41befc57663b56373a5031",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "9bc0f79119cc5604bf02d23b4caede71393cedfbb191434dd016d30177ccbf80\
         96bb474e53895c362d8628ee9f9ea3c0e52c7a5c691b6c18c9979866568add7a\
         2d41b00b05081ed0f58ee5e31b3a970e",
        "645427e5d00c62a23fb703732fa5d892940935942101e456ecca7bb217c61c45\
         2118fec1219202a0edcf038bb6373241578be7217ba85a2687f7a0310b2df19f",
    ),
];

/// The edwards25519 group order ℓ, little-endian.
const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn unhex<const N: usize>(text: &str) -> [u8; N] {
    hex::decode(text).unwrap().try_into().unwrap()
}

fn secret(seed: u8) -> VrfSecretKey {
    VrfSecretKey::from_bytes([seed; 32])
}

/// A deterministic stream of replay tags, so statistics cannot flake.
fn tag(i: u64) -> ReplayTag {
    ReplayTag(*blake3::hash(&[b"tag".as_slice(), &i.to_le_bytes()].concat()).as_bytes())
}

// ---------------------------------------------------------------- the ECVRF

#[test]
fn rfc9381_examples_prove_and_verify() {
    for (sk, pk, alpha, pi, beta) in RFC9381_TAI {
        let secret = VrfSecretKey::from_bytes(unhex(sk));
        let public = secret.public_key();
        assert_eq!(public.to_string(), pk);
        let alpha = hex::decode(alpha).unwrap();

        let (proof, output) = vrf::prove(&secret, &alpha);
        assert_eq!(proof.to_string(), pi, "pi for alpha {alpha:02x?}");
        assert_eq!(output.to_string(), beta, "beta for alpha {alpha:02x?}");
        assert_eq!(vrf::verify(&public, &alpha, &proof), Ok(output));
        // The published proof, parsed from its bytes, verifies too.
        let parsed = VrfProof::from_bytes(unhex(pi));
        assert_eq!(vrf::verify(&public, &alpha, &parsed), Ok(output));
    }
}

#[test]
fn rfc9381_examples_reject_every_flipped_byte() {
    for (sk, _, alpha, pi, _) in RFC9381_TAI {
        let public = VrfSecretKey::from_bytes(unhex(sk)).public_key();
        let alpha = hex::decode(alpha).unwrap();
        let good: [u8; 80] = unhex(pi);
        for i in 0..VrfProof::LEN {
            for mask in [0x01, 0x80, 0xff] {
                let mut bad = good;
                bad[i] ^= mask;
                let result = vrf::verify(&public, &alpha, &VrfProof::from_bytes(bad));
                assert!(result.is_err(), "byte {i} ^ {mask:#04x} accepted");
            }
        }
        // And the right proof for a different input.
        let mut other = alpha.clone();
        other.push(0);
        let result = vrf::verify(&public, &other, &VrfProof::from_bytes(good));
        assert_eq!(result, Err(VrfError::InvalidProof));
    }
}

#[test]
fn s_plus_group_order_is_rejected() {
    for (sk, _, alpha, pi, _) in RFC9381_TAI {
        let public = VrfSecretKey::from_bytes(unhex(sk)).public_key();
        let alpha = hex::decode(alpha).unwrap();
        let mut bytes: [u8; 80] = unhex(pi);
        // s + ℓ < 2^256 for every s < ℓ (ℓ < 2^253): the same scalar modulo
        // ℓ, so a verifier that reduced s would accept this second proof.
        let mut carry = 0u16;
        for (byte, ell) in bytes[48..].iter_mut().zip(ELL) {
            let sum = u16::from(*byte) + u16::from(ell) + carry;
            *byte = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0);
        assert_eq!(
            vrf::verify(&public, &alpha, &VrfProof::from_bytes(bytes)),
            Err(VrfError::NonCanonicalScalar)
        );
    }
}

#[test]
fn small_order_public_keys_are_rejected() {
    let (_, _, alpha, pi, _) = RFC9381_TAI[0];
    let alpha = hex::decode(alpha).unwrap();
    let proof = VrfProof::from_bytes(unhex(pi));
    for point in EIGHT_TORSION {
        let public = VrfPublicKey(point.compress().to_bytes());
        assert_eq!(
            vrf::verify(&public, &alpha, &proof),
            Err(VrfError::InvalidPublicKey),
            "{public}"
        );
    }
    // Not a point at all (y = 2 is not on the curve).
    let mut off_curve = [0u8; 32];
    off_curve[0] = 2;
    assert_eq!(
        vrf::verify(&VrfPublicKey(off_curve), &alpha, &proof),
        Err(VrfError::InvalidPublicKey)
    );
}

#[test]
fn small_order_gamma_is_rejected() {
    let (sk, _, alpha, pi, _) = RFC9381_TAI[1];
    let public = VrfSecretKey::from_bytes(unhex(sk)).public_key();
    let alpha = hex::decode(alpha).unwrap();
    for point in EIGHT_TORSION {
        let mut bytes: [u8; 80] = unhex(pi);
        bytes[..32].copy_from_slice(point.compress().as_bytes());
        assert_eq!(
            vrf::verify(&public, &alpha, &VrfProof::from_bytes(bytes)),
            Err(VrfError::InvalidGamma)
        );
    }
}

#[test]
fn proofs_have_exactly_80_bytes() {
    assert_eq!(
        VrfProof::from_slice(&[0; 81]),
        Err(VrfError::InvalidLength { got: 81 })
    );
    let (proof, _) = vrf::prove(&secret(1), b"x");
    assert_eq!(VrfProof::from_slice(&proof.to_bytes()), Ok(proof));
}

// ------------------------------------------------------------------ delays

/// The spec's delay, computed here without any betanet code beyond `prove`
/// (itself pinned by the RFC examples above).
fn spec_delay_us(
    secret: &VrfSecretKey,
    epoch: u64,
    tag: &ReplayTag,
    mean_us: u64,
    max_us: u64,
) -> u64 {
    let alpha = [b"betanet delay v1".as_slice(), &epoch.to_be_bytes()].concat();
    let (_, beta) = vrf::prove(secret, &alpha);
    let k_d = blake3::derive_key("betanet vrf delay key v1", beta.as_bytes());
    let hash = blake3::keyed_hash(&k_d, &tag.0);
    let v = u64::from_le_bytes(hash.as_bytes()[..8].try_into().unwrap());
    let u = ((v >> 11) + 1) as f64 / 2f64.powi(53);
    let delay = (-(mean_us as f64) * u.ln()).floor();
    (delay as u64).min(max_us)
}

#[test]
fn delays_follow_the_spec_formula() {
    let (mean, max) = (Duration::from_millis(50), Duration::from_secs(2));
    for (seed, epoch) in [(1u8, 0u64), (2, 1), (3, 491_520), (4, u64::MAX)] {
        let secret = secret(seed);
        let (key, proof, _) = EpochDelayKey::evaluate(&secret, Epoch(epoch));
        for i in 0..200 {
            let tag = tag(i);
            let expected =
                Duration::from_micros(spec_delay_us(&secret, epoch, &tag, 50_000, 2_000_000));
            assert_eq!(
                key.delay_for(&tag, mean, max),
                expected,
                "seed {seed} epoch {epoch} tag {i}"
            );
            let public = secret.public_key();
            let checked = expected_delay(&public, Epoch(epoch), &proof, &tag, mean, max);
            assert_eq!(checked, Ok(expected));
        }
    }
}

#[test]
fn delay_regression_value() {
    // Produced by this implementation, and equal to the independent
    // computation above: a change here means the delay derivation changed.
    let secret = VrfSecretKey::from_bytes(unhex(RFC9381_TAI[0].0));
    let tag = ReplayTag([0x11; 32]);
    let us = spec_delay_us(&secret, 1, &tag, 50_000, 2_000_000);
    let (key, _, beta) = EpochDelayKey::evaluate(&secret, Epoch(1));
    let got = key.delay_for(&tag, Duration::from_millis(50), Duration::from_secs(2));
    assert_eq!(got, Duration::from_micros(us));
    assert_eq!(
        EpochDelayKey::from_output(&beta).uniform_bits(&tag),
        key.uniform_bits(&tag)
    );
    assert_eq!(got, Duration::from_micros(REGRESSION_DELAY_US));
}

/// See [`delay_regression_value`].
const REGRESSION_DELAY_US: u64 = 182_493;

#[test]
fn delays_are_capped_and_zero_mean_disables_mixing() {
    let (key, _, _) = EpochDelayKey::evaluate(&secret(5), Epoch(7));
    let (mean, cap) = (Duration::from_secs(1), Duration::from_millis(1));
    let capped = (0..100)
        .filter(|&i| key.delay_for(&tag(i), mean, cap) == cap)
        .count();
    // P(delay ≥ 1 ms) = e^-0.001 for a 1 s mean: nearly every one.
    assert!(capped >= 95, "{capped}");
    assert!((0..100).all(|i| key.delay_for(&tag(i), mean, cap) <= cap));
    assert!((0..100).all(|i| key.delay_for(&tag(i), Duration::ZERO, cap).is_zero()));
}

#[test]
fn a_wrong_proof_gives_no_expected_delay() {
    let secret = secret(6);
    let public = secret.public_key();
    let (_, proof, _) = EpochDelayKey::evaluate(&secret, Epoch(10));
    let (mean, max) = (Duration::from_millis(5), Duration::from_secs(1));
    // Another epoch's proof, or the neighbour proof, does not prove epoch 10's delays.
    assert!(expected_delay(&public, Epoch(11), &proof, &tag(0), mean, max).is_err());
    let proofs = EpochProofs::evaluate(&secret, Epoch(10));
    assert!(
        expected_delay(
            &public,
            Epoch(10),
            &proofs.neighbors.proof,
            &tag(0),
            mean,
            max
        )
        .is_err()
    );
    assert!(expected_delay(&public, Epoch(10), &proofs.delay.proof, &tag(0), mean, max).is_ok());
    let other = other_public();
    assert!(expected_delay(&other, Epoch(10), &proof, &tag(0), mean, max).is_err());
}

fn other_public() -> VrfPublicKey {
    secret(99).public_key()
}

/// Kolmogorov–Smirnov: 10,000 delays against Exp(mean). Deterministic key
/// and tags, so the test cannot flake; the bound is the α = 0.001 critical
/// value 1.95/√n.
#[test]
fn delays_are_exponential_with_the_configured_mean() {
    let n = 10_000u64;
    let mean_us = 10_000.0;
    let (mean, max) = (Duration::from_millis(10), Duration::from_secs(60));
    let (key, _, _) = EpochDelayKey::evaluate(&secret(7), Epoch(123));
    let mut samples: Vec<f64> = (0..n)
        .map(|i| key.delay_for(&tag(i), mean, max).as_micros() as f64)
        .collect();
    samples.sort_by(f64::total_cmp);

    let count = n as f64;
    let d = samples
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let cdf = 1.0 - (-x / mean_us).exp();
            f64::max(cdf - i as f64 / count, (i + 1) as f64 / count - cdf)
        })
        .fold(0.0, f64::max);
    let critical = 1.95 / count.sqrt();
    eprintln!("KS D = {d:.5} (critical {critical:.5})");
    assert!(d < critical, "KS D = {d}, critical {critical}");

    // The standard error of the mean is mean/√n = 1 %; allow 3 %.
    let sample_mean = samples.iter().sum::<f64>() / count;
    eprintln!("sample mean {sample_mean:.1} µs");
    assert!(
        (sample_mean / mean_us - 1.0).abs() < 0.03,
        "mean {sample_mean} µs, want {mean_us}"
    );
}

// ------------------------------------------------------ the epoch boundary

#[test]
fn the_policy_uses_the_current_epoch_and_keeps_the_previous_one() {
    let secret = secret(8);
    let (mean, max) = (Duration::from_millis(20), Duration::from_secs(5));
    let e = Epoch(1000);
    let keys: Vec<EpochDelayKey> = (0..3)
        .map(|i| EpochDelayKey::evaluate(&secret, Epoch(e.0 + i)).0)
        .collect();
    let policy = VrfDelay::new(e, keys[0].clone(), mean, max);
    let t = tag(42);
    let in_epoch = |k: usize| keys[k].delay_for(&t, mean, max);
    // Enough tags differ between epochs for the checks below to mean something.
    assert_ne!(in_epoch(0), in_epoch(1));

    assert_eq!(policy.current_epoch(), e);
    assert_eq!(policy.previous_epoch(), None);
    // `random` is ignored: the delay is a function of the tag alone.
    assert_eq!(policy.delay(&t, 1), in_epoch(0));
    assert_eq!(policy.delay(&t, u64::MAX), in_epoch(0));
    assert_eq!(policy.delay_in(e, &t), Some(in_epoch(0)));
    assert_eq!(policy.delay_in(e.next(), &t), None);

    // Rollover to E + 1: packets unwrapped from now on use E + 1's key;
    // E's key is still there for packets unwrapped before the rollover.
    assert!(policy.rotate(e.next(), keys[1].clone()));
    assert_eq!(policy.current_epoch(), e.next());
    assert_eq!(policy.previous_epoch(), Some(e));
    assert_eq!(policy.delay(&t, 0), in_epoch(1));
    assert_eq!(policy.delay_in(e.next(), &t), Some(in_epoch(1)));
    assert_eq!(policy.delay_in(e, &t), Some(in_epoch(0)));

    // A repeated or late rotation changes nothing.
    assert!(!policy.rotate(e, keys[0].clone()));
    assert!(!policy.rotate(e.next(), keys[0].clone()));
    assert_eq!(policy.delay(&t, 0), in_epoch(1));

    // One more rollover: E is now two epochs old and forgotten.
    assert!(policy.rotate(e.next().next(), keys[2].clone()));
    assert_eq!(policy.previous_epoch(), Some(e.next()));
    assert_eq!(policy.delay_in(e, &t), None);
    assert_eq!(policy.delay_in(e.next(), &t), Some(in_epoch(1)));
    assert_eq!(policy.delay(&t, 0), in_epoch(2));
}

#[test]
fn workers_see_every_rotation_whole() {
    let secret = secret(9);
    let (mean, max) = (Duration::from_millis(20), Duration::from_secs(5));
    let t = tag(7);
    let epochs = 20u64;
    let keys: Vec<EpochDelayKey> = (0..epochs)
        .map(|e| EpochDelayKey::evaluate(&secret, Epoch(e)).0)
        .collect();
    let valid: HashSet<Duration> = keys.iter().map(|k| k.delay_for(&t, mean, max)).collect();
    let policy = VrfDelay::new(Epoch(0), keys[0].clone(), mean, max);

    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let mut last = Epoch(0);
                for _ in 0..20_000 {
                    let epoch = policy.current_epoch();
                    assert!(epoch >= last, "epochs went backwards");
                    last = epoch;
                    assert!(valid.contains(&policy.delay(&t, 0)));
                }
            });
        }
        for (e, key) in keys.iter().enumerate().skip(1) {
            assert!(policy.rotate(Epoch(e as u64), key.clone()));
        }
    });
    assert_eq!(policy.current_epoch(), Epoch(epochs - 1));
}

#[test]
fn epochs_are_floor_division() {
    assert_eq!(Epoch::at(1_769_472_000, 3600), Epoch(491_520));
    assert_eq!(Epoch::at(1_769_475_599, 3600), Epoch(491_520));
    assert_eq!(Epoch(491_520).start_unix(3600), 1_769_472_000);
    assert_eq!(Epoch(491_520).next().start_unix(3600), 1_769_475_600);
    let now = Epoch::now(&betanet::clock::SystemClock, 3600);
    assert!(now.next() > now && now.prev() < now);
}

// ---------------------------------------------------------------- neighbours

#[test]
fn neighbours_are_the_lowest_scores_computed_from_the_spec() {
    let secret = secret(10);
    let epoch = 77u64;
    let candidates: Vec<NodeId> = (0u8..12)
        .map(|i| NodeId::from_identity_key(&[i; 32]))
        .collect();

    // Independently: β_n, K_n, scores, sort.
    let alpha = [b"betanet neighbors v1".as_slice(), &epoch.to_be_bytes()].concat();
    let (proof, beta) = vrf::prove(&secret, &alpha);
    let k_n = blake3::derive_key("betanet vrf neighbor key v1", beta.as_bytes());
    let mut ranked: Vec<([u8; 32], NodeId)> = candidates
        .iter()
        .map(|id| (*blake3::keyed_hash(&k_n, id.as_bytes()).as_bytes(), *id))
        .collect();
    ranked.sort();
    let ranked: Vec<NodeId> = ranked.into_iter().map(|(_, id)| id).collect();

    assert_eq!(select_neighbors(&beta, &candidates, 5), ranked[..5]);
    assert_eq!(select_neighbors(&beta, &candidates, 0), ranked);
    assert_eq!(select_neighbors(&beta, &candidates, 100), ranked);

    let public = secret.public_key();
    let e = Epoch(epoch);
    let mut claimed = ranked[..5].to_vec();
    claimed.reverse(); // order does not matter
    assert_eq!(
        verify_neighbors(&public, e, &proof, &candidates, 5, &claimed),
        Ok(true)
    );
    assert_eq!(
        verify_neighbors(&public, e, &proof, &candidates, 0, &ranked),
        Ok(true)
    );
    // Swapping in a node ranked 6th is caught, and so is a short list.
    claimed[0] = ranked[5];
    assert_eq!(
        verify_neighbors(&public, e, &proof, &candidates, 5, &claimed),
        Ok(false)
    );
    assert_eq!(
        verify_neighbors(&public, e, &proof, &candidates, 5, &ranked[..4]),
        Ok(false)
    );
    // A proof for another epoch proves nothing.
    assert_eq!(
        verify_neighbors(&public, e.next(), &proof, &candidates, 5, &ranked[..5]),
        Err(VrfError::InvalidProof)
    );
}

#[test]
fn neighbour_sets_differ_between_epochs() {
    let secret = secret(11);
    let candidates: Vec<NodeId> = (0u8..50).map(|i| NodeId::from_bytes([i; 16])).collect();
    let sets: HashSet<Vec<NodeId>> = (0..5)
        .map(|e| EpochProofs::evaluate(&secret, Epoch(e)).select_neighbors(&candidates, 5))
        .collect();
    assert!(sets.len() > 1);
}

// ------------------------------------------------------- published proofs

#[test]
fn epoch_proofs_verify_and_round_trip_as_json() {
    let secret = secret(12);
    let proofs = EpochProofs::evaluate(&secret, Epoch(491_520));
    assert_eq!(proofs.verify(), Ok(()));
    assert_eq!(proofs.verify_for(&secret.public_key()), Ok(()));
    assert_eq!(
        proofs.verify_for(&other_public()),
        Err(VrfError::UnexpectedKey)
    );

    let json: serde_json::Value = serde_json::to_value(proofs).unwrap();
    assert_eq!(json["epoch"], 491_520);
    assert_eq!(json["vrf_public_key"], secret.public_key().to_string());
    assert_eq!(json["delay"]["proof"].as_str().unwrap().len(), 160);
    assert_eq!(json["delay"]["output"].as_str().unwrap().len(), 128);
    assert_eq!(
        json["neighbors"]["proof"],
        proofs.neighbors.proof.to_string()
    );
    let back: EpochProofs = serde_json::from_value(json).unwrap();
    assert_eq!(back, proofs);

    // The published keys match what each part computes on its own.
    let (key, proof, output) = EpochDelayKey::evaluate(&secret, Epoch(491_520));
    assert_eq!((proofs.delay.proof, proofs.delay.output), (proof, output));
    assert_eq!(
        proofs.delay_key().uniform_bits(&tag(1)),
        key.uniform_bits(&tag(1))
    );
}

#[test]
fn tampered_epoch_proofs_are_rejected() {
    let proofs = EpochProofs::evaluate(&secret(13), Epoch(5));

    let mut wrong_output = proofs;
    wrong_output.delay.output = VrfOutput::from_bytes([0; 64]);
    assert_eq!(wrong_output.verify(), Err(VrfError::OutputMismatch));

    let mut swapped = proofs;
    std::mem::swap(&mut swapped.delay, &mut swapped.neighbors);
    assert_eq!(swapped.verify(), Err(VrfError::InvalidProof));

    let mut other_epoch = proofs;
    other_epoch.epoch = Epoch(6);
    assert_eq!(other_epoch.verify(), Err(VrfError::InvalidProof));

    let mut other_key = proofs;
    other_key.vrf_public_key = other_public();
    assert_eq!(other_key.verify(), Err(VrfError::InvalidProof));

    let mut bad_bytes = proofs;
    let mut pi = proofs.neighbors.proof.to_bytes();
    pi[40] ^= 1;
    bad_bytes.neighbors.proof = VrfProof::from_bytes(pi);
    assert!(bad_bytes.verify().is_err());
}
