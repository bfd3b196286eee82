//! Differential tests: X25519 on the Edwards form (our fast path) against
//! RFC 7748 X25519 as `x25519-dalek` computes it with the Montgomery ladder.
//!
//! For every input the spec accepts (canonical, on the curve) the outputs
//! must be equal; every input it rejects (non-canonical or on the twist)
//! must be rejected. Curve membership is decided independently here with
//! Euler's criterion in arbitrary-precision arithmetic.
//!
//! The batched decoding (`CurvePoint::from_u_bytes_batch`, one inversion per
//! batch) must agree with the per-point decoding input by input, and a
//! batched unwrap with one-by-one unwraps on every α, including which frames
//! are dropped and why.

use std::collections::HashSet;

use betanet::crypto::x25519::{CurvePoint, is_canonical, x25519, x25519_base};
use betanet::sphinx::{
    FinalCommand, NodeId, PathHop, SphinxProcessor, SphinxSecretKey, create_packet_with_seed,
};
use num_bigint::BigUint;
use proptest::prelude::*;

fn prime() -> BigUint {
    (BigUint::from(1u8) << 255u32) - BigUint::from(19u8)
}

fn to_int(u: &[u8; 32]) -> BigUint {
    BigUint::from_bytes_le(u)
}

fn from_int(n: &BigUint) -> [u8; 32] {
    let mut out = [0u8; 32];
    let bytes = n.to_bytes_le();
    out[..bytes.len()].copy_from_slice(&bytes);
    out
}

/// True when u (already reduced) is the u-coordinate of a point on
/// Curve25519 itself: v² = u³ + 486662u² + u has a square root mod p.
fn on_curve(u: &BigUint) -> bool {
    let p = prime();
    let rhs = (u * u * u + BigUint::from(486662u32) * u * u + u) % &p;
    if rhs == BigUint::from(0u8) {
        return true;
    }
    rhs.modpow(&((&p - 1u8) >> 1u32), &p) == BigUint::from(1u8)
}

/// The reference: what our fast path must return for an accepted `u`.
fn reference(k: &[u8; 32], u: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::x25519(*k, *u)
}

fn check(k: &[u8; 32], u: &[u8; 32]) {
    let accepted = CurvePoint::from_u_bytes(u);
    let canonical = to_int(&{
        let mut masked = *u;
        masked[31] &= 0x7f;
        masked
    }) < prime()
        && u[31] & 0x80 == 0;
    assert_eq!(
        is_canonical(u),
        canonical,
        "canonical check for {}",
        hex::encode(u)
    );
    let should_accept = canonical && on_curve(&to_int(u));
    assert_eq!(
        accepted.is_some(),
        should_accept,
        "acceptance of u = {}",
        hex::encode(u)
    );
    if let Some(point) = accepted {
        assert_eq!(x25519(k, &point), reference(k, u), "u = {}", hex::encode(u));
    }
}

/// The u-coordinates of the low-order points of Curve25519 (orders 1/2/4/8)
/// and their non-canonical aliases, as listed in the X25519 literature.
fn low_order_and_edge_inputs() -> Vec<[u8; 32]> {
    let p = prime();
    let mut ints = vec![
        BigUint::from(0u8),
        BigUint::from(1u8),
        BigUint::parse_bytes(
            b"325606250916557431795983626356110631294008115727848805560023387167927233504",
            10,
        )
        .unwrap(),
        BigUint::parse_bytes(
            b"39382357235489614581723060781553021112529911719440698176882885853963445705823",
            10,
        )
        .unwrap(),
        &p - 1u8, // u = −1: on the twist
        &p - 2u8,
        BigUint::from(2u8), // on the twist (spec vector "alpha-on-twist")
        BigUint::from(9u8), // the base point
    ];
    // Non-canonical encodings: p, p + 1, …, 2^255 − 1.
    for extra in 0u8..19 {
        ints.push(&p + extra);
    }
    let mut inputs: Vec<[u8; 32]> = ints.iter().map(from_int).collect();
    // Top bit set on otherwise valid encodings.
    for base in inputs.clone().iter().take(4) {
        let mut with_top = *base;
        with_top[31] |= 0x80;
        inputs.push(with_top);
    }
    inputs
}

#[test]
fn edge_inputs_match_the_ladder_or_are_rejected() {
    let scalars = [[0u8; 32], [0xff; 32], [0x42; 32], {
        let mut k = [0u8; 32];
        k[0] = 1;
        k
    }];
    for u in low_order_and_edge_inputs() {
        for k in &scalars {
            check(k, &u);
        }
    }
}

#[test]
fn low_order_inputs_give_an_all_zero_secret() {
    // The Sphinx engine drops these as invalid_key because of the zero output.
    let small_order = low_order_and_edge_inputs()
        .iter()
        .filter_map(CurvePoint::from_u_bytes)
        .filter(CurvePoint::is_small_order)
        .collect::<Vec<_>>();
    // u = 0, 1 and the two order-8 points (and aliases that are rejected).
    assert_eq!(small_order.len(), 4);
    for point in small_order {
        assert_eq!(x25519(&[0x42; 32], &point), [0u8; 32]);
    }
}

#[test]
fn rfc7748_section_5_2_vectors() {
    let cases = [
        (
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
        ),
        (
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
        ),
    ];
    for (k, u, out) in cases {
        let k: [u8; 32] = hex::decode(k).unwrap().try_into().unwrap();
        let mut u: [u8; 32] = hex::decode(u).unwrap().try_into().unwrap();
        // RFC 7748 masks the top bit of u; our wire format requires it clear.
        u[31] &= 0x7f;
        assert_eq!(hex::encode(reference(&k, &u)), out, "the reference itself");
        // These u were chosen without regard to the twist; the spec rejects
        // twist points, so each is either computed exactly or rejected.
        match CurvePoint::from_u_bytes(&u) {
            Some(point) => assert_eq!(hex::encode(x25519(&k, &point)), out),
            None => assert!(!on_curve(&to_int(&u)), "rejected a curve point"),
        }
        check(&k, &u);
    }
}

/// What a decoding gave: the point's canonical Edwards encoding, or None.
fn decoded(point: Option<CurvePoint>) -> Option<[u8; 32]> {
    point.map(|p| p.edwards().compress().to_bytes())
}

/// Decodes `us` as one batch (with a `None` slot between every two inputs)
/// and checks every result against `from_u_bytes` on its own.
fn check_batch(us: &[[u8; 32]]) {
    let mut slots: Vec<Option<&[u8; 32]>> = Vec::new();
    for u in us {
        slots.push(Some(u));
        slots.push(None);
    }
    let batch = CurvePoint::from_u_bytes_batch(&slots);
    assert_eq!(batch.len(), slots.len());
    for (slot, point) in slots.iter().zip(batch) {
        match slot {
            Some(u) => assert_eq!(
                decoded(point),
                decoded(CurvePoint::from_u_bytes(u)),
                "u = {}",
                hex::encode(u)
            ),
            None => assert!(point.is_none(), "an empty slot decoded to a point"),
        }
    }
}

#[test]
fn batch_decoding_matches_one_by_one_on_edge_inputs() {
    let edges = low_order_and_edge_inputs();
    check_batch(&edges);
    // Each edge input alone, and at either end of a batch of honest points.
    let honest: Vec<[u8; 32]> = (1..=5u8).map(|i| x25519_base(&[i; 32])).collect();
    for edge in &edges {
        check_batch(&[*edge]);
        let mut batch = vec![*edge];
        batch.extend(&honest);
        batch.push(*edge);
        check_batch(&batch);
    }
    assert!(CurvePoint::from_u_bytes_batch(&[]).is_empty());
}

/// Frames of one honest packet with α replaced by every edge input, mixed
/// with honest and malformed frames: a batch unwrap gives exactly what
/// unwrapping them one by one gives (drop reasons included).
#[test]
fn unwrap_batch_matches_unwrap_on_edge_alphas() {
    let secrets = [[3u8; 32], [5u8; 32]];
    let path: Vec<PathHop> = secrets
        .iter()
        .enumerate()
        .map(|(i, s)| PathHop {
            id: NodeId::from_bytes([i as u8; 16]),
            public_key: SphinxSecretKey::from_bytes(*s).public_key(),
        })
        .collect();
    let node = SphinxProcessor::new(SphinxSecretKey::from_bytes(secrets[0]));
    let honest = |seed: u8| {
        create_packet_with_seed(&path, FinalCommand::Drop, b"edge", &[seed; 32])
            .unwrap()
            .frame
            .to_vec()
    };
    let mut frames = vec![honest(1)];
    for (i, u) in low_order_and_edge_inputs().iter().enumerate() {
        let mut frame = honest(2);
        frame[2..34].copy_from_slice(u);
        frames.push(frame);
        if i % 5 == 0 {
            frames.push(honest(10 + i as u8));
            frames.push(vec![1, 0, 9]); // malformed: too short
        }
    }
    frames.push(honest(1)); // a replay within the batch

    let mut singles = frames.clone();
    let mut cache = HashSet::new();
    let one_by_one: Vec<String> = singles
        .iter_mut()
        .map(|f| format!("{:?}", node.unwrap(f, &mut cache)))
        .collect();
    let mut batch = frames.clone();
    let batched: Vec<String> = node
        .unwrap_batch(&mut batch, &mut HashSet::new())
        .iter()
        .map(|r| format!("{r:?}"))
        .collect();
    assert_eq!(one_by_one, batched);
    assert!(batched.iter().any(|r| r.contains("InvalidKey")));
    assert!(batched.iter().any(|r| r.contains("Malformed")));
    assert!(batched.iter().any(|r| r.contains("Replay")));
    assert!(batched.iter().any(|r| r.starts_with("Ok")));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Batches of random u (curve, twist, a few non-canonical) mixed with
    /// honest points decode exactly as one by one.
    #[test]
    fn random_batches_decode_as_one_by_one(
        random in prop::collection::vec(any::<[u8; 32]>(), 0..24),
        honest in prop::collection::vec(any::<[u8; 32]>(), 0..8),
    ) {
        let mut us = random;
        us.extend(honest.iter().map(x25519_base));
        check_batch(&us);
    }

    /// Random 32-byte strings: about half are on the curve, half on the
    /// twist, a few non-canonical.
    #[test]
    fn random_u_coordinates(k in any::<[u8; 32]>(), u in any::<[u8; 32]>()) {
        check(&k, &u);
    }

    /// Random canonical points known to be on the curve, k·G.
    #[test]
    fn random_curve_points(k in any::<[u8; 32]>(), e in any::<[u8; 32]>()) {
        let u = x25519_base(&e);
        prop_assert_eq!(u, x25519_dalek::x25519(e, x25519_dalek::X25519_BASEPOINT_BYTES));
        check(&k, &u);
        prop_assert!(CurvePoint::from_u_bytes(&u).is_some());
    }

    /// Random points on the twist: rejected, never computed.
    #[test]
    fn random_twist_points(u in any::<[u8; 32]>()) {
        let mut u = u;
        u[31] &= 0x7f;
        let n = to_int(&u) % prime();
        let u = from_int(&n);
        prop_assume!(!on_curve(&n));
        prop_assert!(CurvePoint::from_u_bytes(&u).is_none());
    }
}
