//! Cryptographic primitives beneath the Sphinx engine.
//!
//! Each file holds one primitive exactly as `sphinx-v1.md` defines it:
//! the ChaCha20 keystream, the LIONESS wide-block cipher and X25519 computed
//! on the Edwards form of Curve25519, plus the field arithmetic the batched
//! X25519 needs beyond curve25519-dalek's API.

pub mod field;
pub mod lioness;
pub mod stream;
pub mod x25519;
