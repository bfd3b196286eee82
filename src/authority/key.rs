//! An authority's identity key on disk: `identity.key` (mode 0600,
//! written atomically, never overwritten; read only as a regular file of
//! the authority's user), as a node keeps its own.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use zeroize::Zeroizing;

use crate::keys::{IDENTITY_KEY_FILE, KeyError};

/// The key file in `dir`.
pub fn key_path(dir: &Path) -> PathBuf {
    dir.join(IDENTITY_KEY_FILE)
}

/// Writes `seed` as a new identity key into `dir` (which must exist) and
/// returns the key. Fails if the file exists.
pub fn write_new(dir: &Path, seed: Zeroizing<[u8; 32]>) -> Result<SigningKey, KeyError> {
    crate::keys::write_key_file(&key_path(dir), &seed)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Loads the identity key from `dir`.
pub fn load(dir: &Path) -> Result<SigningKey, KeyError> {
    let secret = crate::keys::read_key_file(&key_path(dir))?;
    Ok(SigningKey::from_bytes(&secret))
}
