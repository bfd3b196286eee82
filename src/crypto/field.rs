//! Arithmetic in GF(2^255 − 19), the field of Curve25519, for what
//! curve25519-dalek does not export: inverting many elements at once.
//!
//! The limb arithmetic is fiat-crypto's (formally verified, constant time);
//! this file only adds the exponentiation for the inverse and Montgomery's
//! batch-inversion trick on top. Every operation here is constant time in
//! the values; only the number of elements of a batch shows.

use fiat_crypto::curve25519_64::{
    fiat_25519_add, fiat_25519_carry, fiat_25519_carry_mul, fiat_25519_carry_square,
    fiat_25519_from_bytes, fiat_25519_loose_field_element, fiat_25519_relax, fiat_25519_selectznz,
    fiat_25519_sub, fiat_25519_tight_field_element, fiat_25519_to_bytes,
};
use subtle::{Choice, ConstantTimeEq};

/// A field element, reduced enough (fiat's "tight" bounds) for any
/// operation here to take it as input.
#[derive(Clone, Copy)]
pub struct FieldElement(fiat_25519_tight_field_element);

impl FieldElement {
    /// 0.
    pub const ZERO: FieldElement = FieldElement(fiat_25519_tight_field_element([0; 5]));
    /// 1.
    pub const ONE: FieldElement = FieldElement(fiat_25519_tight_field_element([1, 0, 0, 0, 0]));

    /// Decodes 32 little-endian bytes as RFC 7748 does: the top bit is
    /// ignored, values ≥ p are reduced. Callers that need canonical input
    /// check it first.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let mut masked = *bytes;
        masked[31] &= 0x7f; // fiat's input bound, and RFC 7748's decoding
        let mut out = fiat_25519_tight_field_element([0; 5]);
        fiat_25519_from_bytes(&mut out, &masked);
        FieldElement(out)
    }

    /// The canonical (fully reduced) little-endian encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        fiat_25519_to_bytes(&mut out, &self.0);
        out
    }

    fn loose(&self) -> fiat_25519_loose_field_element {
        let mut out = fiat_25519_loose_field_element([0; 5]);
        fiat_25519_relax(&mut out, &self.0);
        out
    }

    fn tighten(loose: &fiat_25519_loose_field_element) -> Self {
        let mut out = fiat_25519_tight_field_element([0; 5]);
        fiat_25519_carry(&mut out, loose);
        FieldElement(out)
    }

    /// `self + other`.
    pub fn add(&self, other: &Self) -> Self {
        let mut sum = fiat_25519_loose_field_element([0; 5]);
        fiat_25519_add(&mut sum, &self.0, &other.0);
        Self::tighten(&sum)
    }

    /// `self − other`.
    pub fn sub(&self, other: &Self) -> Self {
        let mut difference = fiat_25519_loose_field_element([0; 5]);
        fiat_25519_sub(&mut difference, &self.0, &other.0);
        Self::tighten(&difference)
    }

    /// `self · other`.
    pub fn mul(&self, other: &Self) -> Self {
        let mut out = fiat_25519_tight_field_element([0; 5]);
        fiat_25519_carry_mul(&mut out, &self.loose(), &other.loose());
        FieldElement(out)
    }

    /// `self^(2^k)`, for k ≥ 1.
    fn square_times(&self, k: u32) -> Self {
        let mut x = *self;
        for _ in 0..k {
            let mut out = fiat_25519_tight_field_element([0; 5]);
            fiat_25519_carry_square(&mut out, &x.loose());
            x = FieldElement(out);
        }
        x
    }

    /// True when the element is 0 (in any representation).
    pub fn is_zero(&self) -> Choice {
        self.to_bytes().ct_eq(&[0u8; 32])
    }

    /// `a` where `choice` is 0, `b` where it is 1, without branching.
    fn select(a: &Self, b: &Self, choice: Choice) -> Self {
        let mut out = [0u64; 5];
        fiat_25519_selectznz(&mut out, choice.unwrap_u8(), &a.0.0, &b.0.0);
        FieldElement(fiat_25519_tight_field_element(out))
    }

    /// `self^(p − 2)`: the inverse, and 0 for 0. A fixed chain of 254
    /// squarings and 11 multiplications (the one curve25519-dalek uses).
    pub fn invert(&self) -> Self {
        let x = self;
        let x2 = x.square_times(1);
        let x9 = x.mul(&x2.square_times(2));
        let x11 = x2.mul(&x9);
        let e5 = x9.mul(&x11.square_times(1)); // x^(2^5 − 1)
        let e10 = e5.square_times(5).mul(&e5);
        let e20 = e10.square_times(10).mul(&e10);
        let e40 = e20.square_times(20).mul(&e20);
        let e50 = e40.square_times(10).mul(&e10);
        let e100 = e50.square_times(50).mul(&e50);
        let e200 = e100.square_times(100).mul(&e100);
        let e250 = e200.square_times(50).mul(&e50); // x^(2^250 − 1)
        e250.square_times(5).mul(&x11) // x^(2^255 − 21) = x^(p − 2)
    }
}

/// Inverts every element in place with one field inversion and three
/// multiplications per element (Montgomery's trick). A zero stays zero, as
/// with [`FieldElement::invert`], without spoiling the others.
pub fn batch_invert(elements: &mut [FieldElement]) {
    // A zero would zero the whole product: it stands in as 1.
    let zeros: Vec<Choice> = elements.iter().map(FieldElement::is_zero).collect();
    // prefix[i] = product of the stand-ins before i.
    let mut prefix = Vec::with_capacity(elements.len());
    let mut acc = FieldElement::ONE;
    for (element, zero) in elements.iter_mut().zip(&zeros) {
        *element = FieldElement::select(element, &FieldElement::ONE, *zero);
        prefix.push(acc);
        acc = acc.mul(element);
    }
    let mut inverse = acc.invert(); // of the product of all the stand-ins
    for ((element, before), zero) in elements.iter_mut().zip(prefix).zip(zeros).rev() {
        let inverted = inverse.mul(&before);
        inverse = inverse.mul(element);
        *element = FieldElement::select(&inverted, &FieldElement::ZERO, zero);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fe(n: u64) -> FieldElement {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        FieldElement::from_bytes(&bytes)
    }

    #[test]
    fn inverse_times_element_is_one() {
        for n in [1u64, 2, 3, 9, 486662, u64::MAX] {
            let x = fe(n);
            assert_eq!(x.mul(&x.invert()).to_bytes(), FieldElement::ONE.to_bytes());
        }
        let minus_one = FieldElement::ZERO.sub(&FieldElement::ONE);
        assert_eq!(
            minus_one.mul(&minus_one.invert()).to_bytes(),
            FieldElement::ONE.to_bytes()
        );
    }

    #[test]
    fn zero_inverts_to_zero() {
        assert!(bool::from(FieldElement::ZERO.invert().is_zero()));
    }

    #[test]
    fn batch_matches_one_by_one_with_zeros_anywhere() {
        let elements = [fe(0), fe(5), fe(0), fe(7), fe(123_456_789), fe(0)];
        let mut batch = elements;
        batch_invert(&mut batch);
        for (x, inv) in elements.iter().zip(&batch) {
            assert_eq!(inv.to_bytes(), x.invert().to_bytes());
        }
        batch_invert(&mut []);
    }

    #[test]
    fn encoding_is_canonical() {
        // p + 1 decodes to 1 and encodes as 1.
        let mut p_plus_one = [0xffu8; 32];
        p_plus_one[0] = 0xee;
        p_plus_one[31] = 0x7f;
        assert_eq!(
            FieldElement::from_bytes(&p_plus_one).to_bytes(),
            fe(1).to_bytes()
        );
    }
}
