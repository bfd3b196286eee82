//! Domain-separated Ed25519 signatures over canonical JSON, shared by the
//! consensus, votes and reveals: `context ‖ compact JSON of a struct whose
//! field order is its declaration`, hex in lower case. The verifier
//! re-derives the bytes from parsed values, so formatting cannot break or
//! forge a signature (as for descriptors).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::Serialize;

use super::error::AuthorityError;

/// `context ‖ canonical JSON of value`.
pub(crate) fn message(context: &[u8], value: &impl Serialize) -> Result<Vec<u8>, AuthorityError> {
    let mut out = context.to_vec();
    serde_json::to_writer(&mut out, value).map_err(AuthorityError::Encode)?;
    Ok(out)
}

/// Signs `message` with `key`.
pub(crate) fn sign(key: &SigningKey, message: &[u8]) -> [u8; 64] {
    key.sign(message).to_bytes()
}

/// Strictly verifies `signature` by `public_key` over `message`; `what`
/// names the document in the error.
pub(crate) fn verify(
    public_key: &[u8; 32],
    message: &[u8],
    signature: &[u8; 64],
    what: &'static str,
) -> Result<(), AuthorityError> {
    let key =
        VerifyingKey::from_bytes(public_key).map_err(|_| AuthorityError::BadSignature { what })?;
    key.verify_strict(message, &Signature::from_bytes(signature))
        .map_err(|_| AuthorityError::BadSignature { what })
}

/// Parses at most `max` bytes of JSON as `T`.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    max: usize,
    what: &'static str,
) -> Result<T, AuthorityError> {
    if bytes.len() > max {
        return Err(AuthorityError::TooLarge {
            what,
            len: bytes.len(),
            max,
        });
    }
    serde_json::from_slice(bytes).map_err(|error| AuthorityError::Parse { what, error })
}
