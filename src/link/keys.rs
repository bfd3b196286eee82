//! Link keys: a hybrid static key pair (X25519 + ML-KEM-768) per key epoch.
//!
//! A node's link key for an epoch is derived from its Sphinx secret key for
//! that epoch (BLAKE3 `derive_key`, a context of its own), so link keys
//! follow the Sphinx key schedule exactly: published ahead in the signed
//! descriptor, accepted through the grace period, and gone (unrecoverable)
//! once the Sphinx key file is deleted. One store, one rotation, one
//! deletion path; the two keys are independent for anyone without the seed.

use std::fmt;

use clatter::bytearray::{ByteArray, HeapArray, SensitiveByteArray};
use clatter::crypto::dh::X25519;
use clatter::traits::Dh;
use ml_kem::{B32, EncodedSizeUser, KemCore, MlKem768};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, Zeroizing};

/// Bytes of the X25519 half of a link public key.
pub const LINK_DH_LEN: usize = 32;
/// Bytes of the ML-KEM-768 half of a link public key (an encapsulation key).
pub const LINK_KEM_LEN: usize = 1184;
/// Bytes of a whole link public key: X25519 then ML-KEM-768.
pub const LINK_PUBLIC_LEN: usize = LINK_DH_LEN + LINK_KEM_LEN;
/// Bytes of an ML-KEM-768 decapsulation key.
pub(crate) const LINK_KEM_SECRET_LEN: usize = 2400;

/// BLAKE3 context for deriving a link key from a Sphinx secret key.
const DERIVE_CONTEXT: &str = "betanet 2026-12 link key from sphinx key v1";

/// A node's public link key: what its descriptor publishes and what a peer
/// pins when it opens a session.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkPublicKey {
    dh: [u8; LINK_DH_LEN],
    kem: Box<[u8; LINK_KEM_LEN]>,
}

impl LinkPublicKey {
    /// Parses `dh || kem`; `None` unless exactly [`LINK_PUBLIC_LEN`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != LINK_PUBLIC_LEN {
            return None;
        }
        let (dh, kem) = bytes.split_at(LINK_DH_LEN);
        Some(LinkPublicKey {
            dh: dh.try_into().ok()?,
            kem: Box::new(kem.try_into().ok()?),
        })
    }

    /// `dh || kem`, [`LINK_PUBLIC_LEN`] bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LINK_PUBLIC_LEN);
        out.extend_from_slice(&self.dh);
        out.extend_from_slice(&self.kem[..]);
        out
    }

    /// The X25519 half.
    pub fn dh(&self) -> &[u8; LINK_DH_LEN] {
        &self.dh
    }

    /// The ML-KEM-768 half.
    pub fn kem(&self) -> &[u8; LINK_KEM_LEN] {
        &self.kem
    }

    /// A short name for logs: the first 8 bytes of its BLAKE3 hash, in hex.
    pub fn fingerprint(&self) -> String {
        let hash = blake3::Hasher::new()
            .update(&self.dh)
            .update(&self.kem[..])
            .finalize();
        hex::encode(&hash.as_bytes()[..8])
    }

    pub(crate) fn clatter_dh(&self) -> [u8; LINK_DH_LEN] {
        self.dh
    }

    pub(crate) fn clatter_kem(&self) -> HeapArray<LINK_KEM_LEN> {
        HeapArray::from_slice(&self.kem[..])
    }
}

impl fmt::Debug for LinkPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkPublicKey({})", self.fingerprint())
    }
}

impl Serialize for LinkPublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(self.to_bytes()))
    }
}

impl<'de> Deserialize<'de> for LinkPublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = hex::decode(&text).ok();
        bytes
            .as_deref()
            .and_then(LinkPublicKey::from_bytes)
            .ok_or_else(|| {
                serde::de::Error::custom(format_args!(
                    "expected {} hex digits ({LINK_PUBLIC_LEN} bytes: X25519 then ML-KEM-768)",
                    2 * LINK_PUBLIC_LEN
                ))
            })
    }
}

/// A link key pair. The secret halves are wiped when it is dropped and are
/// never printed.
pub struct LinkKeyPair {
    dh_secret: Zeroizing<[u8; LINK_DH_LEN]>,
    kem_secret: Zeroizing<Vec<u8>>,
    public: LinkPublicKey,
}

impl LinkKeyPair {
    /// The link key pair belonging to a Sphinx secret key (its 32 bytes).
    pub fn derive(sphinx_secret: &[u8; 32]) -> Self {
        let mut seed = Zeroizing::new([0u8; 96]);
        let key = Zeroizing::new(blake3::derive_key(DERIVE_CONTEXT, sphinx_secret));
        blake3::Hasher::new_keyed(&key)
            .finalize_xof()
            .fill(&mut seed[..]);
        Self::from_seed(&seed)
    }

    /// A fresh random key pair (tests, clients' throwaway keys).
    pub fn generate<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 96]);
        rng.fill_bytes(&mut seed[..]);
        Self::from_seed(&seed)
    }

    fn from_seed(seed: &[u8; 96]) -> Self {
        let mut dh_secret = Zeroizing::new([0u8; LINK_DH_LEN]);
        dh_secret.copy_from_slice(&seed[..32]);
        let dh_public = X25519::pubkey(&SensitiveByteArray::from_slice(&dh_secret[..]));
        let mut d = B32::default();
        let mut z = B32::default();
        d.copy_from_slice(&seed[32..64]);
        z.copy_from_slice(&seed[64..96]);
        let (dk, ek) = MlKem768::generate_deterministic(&d, &z);
        d.zeroize();
        z.zeroize();
        let mut dk_bytes = dk.as_bytes();
        let kem_secret = Zeroizing::new(dk_bytes.to_vec());
        dk_bytes.zeroize();
        let ek_bytes = ek.as_bytes();
        let mut kem = Box::new([0u8; LINK_KEM_LEN]);
        kem.copy_from_slice(&ek_bytes);
        LinkKeyPair {
            dh_secret,
            kem_secret,
            public: LinkPublicKey { dh: dh_public, kem },
        }
    }

    /// The public half.
    pub fn public(&self) -> &LinkPublicKey {
        &self.public
    }

    pub(crate) fn clatter_dh(&self) -> clatter::KeyPair<[u8; 32], SensitiveByteArray<[u8; 32]>> {
        clatter::KeyPair::new(
            self.public.dh,
            SensitiveByteArray::from_slice(&self.dh_secret[..]),
        )
    }

    pub(crate) fn clatter_kem(
        &self,
    ) -> clatter::KeyPair<HeapArray<LINK_KEM_LEN>, SensitiveByteArray<HeapArray<LINK_KEM_SECRET_LEN>>>
    {
        clatter::KeyPair::new(
            self.public.clatter_kem(),
            SensitiveByteArray::from_slice(&self.kem_secret),
        )
    }
}

impl fmt::Debug for LinkKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_deterministic_and_separates_seeds() {
        let a = LinkKeyPair::derive(&[7; 32]);
        let b = LinkKeyPair::derive(&[7; 32]);
        let c = LinkKeyPair::derive(&[8; 32]);
        assert_eq!(a.public(), b.public());
        assert_ne!(a.public(), c.public());
        assert_ne!(a.public().dh(), &[7; 32]);
    }

    #[test]
    fn public_key_round_trips_and_rejects_bad_lengths() {
        let k = LinkKeyPair::generate(&mut rand::rng());
        let bytes = k.public().to_bytes();
        assert_eq!(bytes.len(), LINK_PUBLIC_LEN);
        assert_eq!(LinkPublicKey::from_bytes(&bytes).as_ref(), Some(k.public()));
        assert!(LinkPublicKey::from_bytes(&bytes[1..]).is_none());
        let json = serde_json::to_string(k.public()).unwrap();
        let back: LinkPublicKey = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, k.public());
        let err = serde_json::from_str::<LinkPublicKey>("\"abcd\"").unwrap_err();
        assert!(err.to_string().contains("hex digits"), "{err}");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let k = LinkKeyPair::derive(&[1; 32]);
        let text = format!("{k:?}");
        assert!(!text.contains(&hex::encode(&k.dh_secret[..])));
        assert!(text.contains(&k.public().fingerprint()));
    }
}
