//! RFC 7748 X25519 computed on the Edwards form of Curve25519.
//!
//! The Montgomery ladder costs two to four times as much as a variable-base
//! Edwards multiplication in curve25519-dalek (which can use AVX2 or
//! AVX-512 IFMA). For a u-coordinate that is canonical and on the curve
//! itself (not its twist), mapping it to Edwards, multiplying by the clamped
//! scalar and mapping back gives exactly the X25519 output; the spec rejects
//! every other input, so the fast path is complete for the inputs we accept.
//! The conversion back needs one field inversion, which [`to_u_batch`]
//! shares across a whole batch (Montgomery's trick); so does the map from u
//! to Edwards y in [`CurvePoint::from_u_bytes_batch`], leaving one square
//! root (the Edwards decompression) per point.
//!
//! Wiping: products and conversions that are shared secrets are wiped
//! here or by the caller. Left as they are, deliberately: the copies
//! curve25519-dalek makes inside its own functions (the clamped scalar in
//! `mul_clamped`, field elements in the batch inversion), which only that
//! crate could wipe, and stack slots the next packet overwrites.

use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::{EdwardsPoint, MontgomeryPoint};
use zeroize::{Zeroize, Zeroizing};

use super::field::{self, FieldElement};

/// The canonical encoding of u = −1 = p − 1, the one u on the twist where
/// the map y = (u − 1)/(u + 1) divides by zero.
const MINUS_ONE: [u8; 32] = {
    let mut bytes = [0xff; 32];
    bytes[0] = 0xec;
    bytes[31] = 0x7f;
    bytes
};

/// A point on Curve25519 decoded from a u-coordinate that passed the spec's
/// checks: canonical encoding and on the curve, not the twist.
///
/// Holding one proves the checks were made, so the multiplications below
/// cannot be fed an unchecked encoding.
#[derive(Clone, Copy, Debug)]
pub struct CurvePoint(EdwardsPoint);

impl CurvePoint {
    /// Decodes a u-coordinate; `None` when it is non-canonical (top bit set,
    /// or a value ≥ 2^255 − 19) or names a point on the twist.
    pub fn from_u_bytes(u: &[u8; 32]) -> Option<Self> {
        if !is_canonical(u) {
            return None;
        }
        // `to_edwards` rejects twist points (including u = −1) by failing
        // Edwards decompression. Either sign is fine: X25519 only sees u.
        MontgomeryPoint(*u).to_edwards(0).map(CurvePoint)
    }

    /// [`from_u_bytes`](Self::from_u_bytes) for many u-coordinates, with
    /// one field inversion for the whole batch instead of one per point; the
    /// result is identical input by input. `None` inputs (frames that failed
    /// earlier checks) cost nothing and come back as `None`.
    ///
    /// The inputs are public (α is sent in the clear), but the arithmetic is
    /// constant time anyway; only which inputs are rejected shows.
    pub fn from_u_bytes_batch(us: &[Option<&[u8; 32]>]) -> Vec<Option<Self>> {
        // The checks `from_u_bytes` makes before its inversion. The one
        // exceptional u (−1: u + 1 = 0) is rejected by value, as
        // curve25519-dalek does: y = 0 would decompress to a valid point.
        let accepted: Vec<bool> = us
            .iter()
            .map(|u| u.is_some_and(|u| is_canonical(u) && *u != MINUS_ONE))
            .collect();
        let mut numerators = Vec::with_capacity(us.len());
        let mut denominators = Vec::with_capacity(us.len());
        for (u, accepted) in us.iter().zip(&accepted) {
            match u {
                Some(u) if *accepted => {
                    let u = FieldElement::from_bytes(u);
                    numerators.push(u.sub(&FieldElement::ONE));
                    denominators.push(u.add(&FieldElement::ONE));
                }
                // Zeros are skipped by the batch inversion at no cost to
                // the others; the result is never used.
                _ => {
                    numerators.push(FieldElement::ZERO);
                    denominators.push(FieldElement::ZERO);
                }
            }
        }
        field::batch_invert(&mut denominators);
        numerators
            .iter()
            .zip(&denominators)
            .zip(accepted)
            .map(|((numerator, inverse), accepted)| {
                if !accepted {
                    return None;
                }
                // y = (u − 1)/(u + 1), canonical bytes, sign 0: exactly the
                // bytes `MontgomeryPoint::to_edwards(0)` decompresses.
                let y = numerator.mul(inverse).to_bytes();
                CompressedEdwardsY(y).decompress().map(CurvePoint)
            })
            .collect()
    }

    /// The fixed base point `G` (u = 9).
    pub fn base() -> Self {
        CurvePoint(curve25519_dalek::constants::ED25519_BASEPOINT_POINT)
    }

    /// `k · P` for the RFC 7748 clamping of `scalar`, still on Edwards form;
    /// map it back with [`to_u`] or [`to_u_batch`]. Constant time in `scalar`.
    pub fn mul_clamped(&self, scalar: &[u8; 32]) -> EdwardsPoint {
        self.0.mul_clamped(*scalar)
    }

    /// The point in Edwards coordinates.
    pub fn edwards(&self) -> &EdwardsPoint {
        &self.0
    }

    /// True for points of order 1, 2, 4 or 8, which no honest key or α is.
    pub fn is_small_order(&self) -> bool {
        self.0.is_small_order()
    }
}

/// True when `u` encodes a field element in canonical form: top bit clear
/// and the value below p = 2^255 − 19. The input is public, so the early
/// exits leak nothing.
pub fn is_canonical(u: &[u8; 32]) -> bool {
    if u[31] & 0x80 != 0 {
        return false;
    }
    // Values ≥ p with the top bit clear are exactly 0x7fff…ff{ed..ff}.
    let high_all_ones = u[31] == 0x7f && u[1..31].iter().all(|b| *b == 0xff);
    !(high_all_ones && u[0] >= 0xed)
}

/// The X25519 output (the u-coordinate) of an Edwards point. The identity
/// maps to u = 0, matching X25519 on low-order inputs.
pub fn to_u(point: &EdwardsPoint) -> [u8; 32] {
    point.to_montgomery().to_bytes()
}

/// [`to_u`] for many points at the cost of one field inversion.
///
/// The outputs may be shared secrets: the intermediate Montgomery points
/// are wiped here, and the caller wipes what it gets back.
pub fn to_u_batch(points: &[EdwardsPoint]) -> Vec<[u8; 32]> {
    let mut montgomery = EdwardsPoint::to_montgomery_batch(points);
    let out = montgomery.iter().map(MontgomeryPoint::to_bytes).collect();
    montgomery.zeroize();
    out
}

/// X25519(k, u) for an already-checked point: one multiplication, one
/// conversion. The product (the shared secret on Edwards form) is wiped.
pub fn x25519(scalar: &[u8; 32], point: &CurvePoint) -> [u8; 32] {
    let product = Zeroizing::new(point.mul_clamped(scalar));
    to_u(&product)
}

/// X25519(k, G), using dalek's precomputed base-point tables.
pub fn x25519_base(scalar: &[u8; 32]) -> [u8; 32] {
    to_u(&EdwardsPoint::mul_base_clamped(*scalar))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_boundaries() {
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(!is_canonical(&p), "p itself");
        p[0] = 0xec;
        assert!(is_canonical(&p), "p - 1");
        let mut top = [0u8; 32];
        top[31] = 0x80;
        assert!(!is_canonical(&top));
        assert!(is_canonical(&[0u8; 32]));
    }

    #[test]
    fn base_point_round_trips() {
        let mut nine = [0u8; 32];
        nine[0] = 9;
        let g = CurvePoint::from_u_bytes(&nine).expect("9 is on the curve");
        let k = [7u8; 32];
        assert_eq!(x25519(&k, &g), x25519_base(&k));
        assert_eq!(to_u(CurvePoint::base().edwards()), nine);
    }

    #[test]
    fn minus_one_is_rejected() {
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        assert!(CurvePoint::from_u_bytes(&minus_one).is_none());
    }
}
