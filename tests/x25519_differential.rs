//! Differential tests: X25519 on the Edwards form (our fast path) against
//! RFC 7748 X25519 as `x25519-dalek` computes it with the Montgomery ladder.
//!
//! For every input the spec accepts (canonical, on the curve) the outputs
//! must be equal; every input it rejects (non-canonical or on the twist)
//! must be rejected. Curve membership is decided independently here with
//! Euler's criterion in arbitrary-precision arithmetic.

use betanet::crypto::x25519::{CurvePoint, is_canonical, x25519, x25519_base};
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

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
