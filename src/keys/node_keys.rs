//! A node's long-term secret keys and their directory on disk.
//!
//! The keys are separate on purpose: the identity key signs the descriptor,
//! the VRF key proves delays and neighbour choices, and the Sphinx keys
//! (one per key epoch, in [`SphinxKeyStore`](super::SphinxKeyStore)) unwrap
//! packets. Compromise or rotation of one does not touch the others.

use std::fmt;
use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use rand_core::CryptoRng;
use zeroize::ZeroizeOnDrop;

use super::error::KeyError;
use super::key_file::{read_key_file, write_key_file};
use super::vrf::{VrfPublicKey, VrfSecretKey};
use crate::sphinx::NodeId;

/// File name of the Ed25519 identity key in a key directory.
pub const IDENTITY_KEY_FILE: &str = "identity.key";
/// File name of the VRF key in a key directory.
pub const VRF_KEY_FILE: &str = "vrf.key";

/// Permission bits of a key directory created by [`NodeKeys::write_new`].
const KEY_DIR_MODE: u32 = 0o700;

/// A node's long-term secret keys. Every part zeroizes itself on drop, and
/// `Debug` shows no key material.
#[derive(Clone)]
pub struct NodeKeys {
    /// Ed25519 identity key: signs the node descriptor; its public key
    /// determines the node id.
    pub identity: SigningKey,
    /// ECVRF-EDWARDS25519-SHA512-TAI key for verifiable delays and
    /// neighbour selection.
    pub vrf: VrfSecretKey,
}

// Each field zeroizes itself on drop (ed25519-dalek with its `zeroize`
// feature, and our own secret types), so the whole does.
impl ZeroizeOnDrop for NodeKeys {}

impl NodeKeys {
    /// Draws two independent fresh keys.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut seed[..]);
        NodeKeys {
            identity: SigningKey::from_bytes(&seed),
            vrf: VrfSecretKey::generate(rng),
        }
    }

    /// The node id: derived from the identity public key (`sphinx-v1.md`,
    /// "Node identity").
    pub fn node_id(&self) -> NodeId {
        NodeId::from_identity_key(self.identity.verifying_key().as_bytes())
    }

    /// The Ed25519 identity public key.
    pub fn identity_public_key(&self) -> [u8; 32] {
        self.identity.verifying_key().to_bytes()
    }

    /// The VRF public key.
    pub fn vrf_public_key(&self) -> VrfPublicKey {
        self.vrf.public_key()
    }

    /// The paths of the two key files in `dir`, in the order identity, VRF.
    pub fn key_paths(dir: &Path) -> [PathBuf; 2] {
        [IDENTITY_KEY_FILE, VRF_KEY_FILE].map(|name| dir.join(name))
    }

    /// Writes the keys into `dir` (created with mode 0700 if missing) as
    /// `identity.key` and `vrf.key`, each mode 0600 and written atomically.
    ///
    /// Never overwrites: if any of the files exists, nothing is written. If a
    /// later file fails, the ones already written are removed again, so the
    /// directory is left as it was found.
    pub fn write_new(&self, dir: &Path) -> Result<(), KeyError> {
        DirBuilder::new()
            .recursive(true)
            .mode(KEY_DIR_MODE)
            .create(dir)
            .map_err(|error| KeyError::CreateDir {
                path: dir.to_owned(),
                error,
            })?;

        let paths = Self::key_paths(dir);
        // Check both first so that an existing key is reported before
        // anything new appears next to it. (create_new below still guards
        // against a file appearing in between.)
        refuse_existing(&paths)?;

        let secrets = [
            zeroize::Zeroizing::new(self.identity.to_bytes()),
            zeroize::Zeroizing::new(self.vrf.to_bytes()),
        ];
        for (i, (path, secret)) in paths.iter().zip(&secrets).enumerate() {
            if let Err(error) = write_key_file(path, secret) {
                for written in &paths[..i] {
                    let _ = std::fs::remove_file(written);
                }
                return Err(error);
            }
        }
        Ok(())
    }

    /// Loads the keys from `dir`, refusing any key file that is a symlink or
    /// not a regular file, belongs to another user, or is readable or
    /// writable by group or others.
    pub fn load(dir: &Path) -> Result<Self, KeyError> {
        let [identity_path, vrf_path] = Self::key_paths(dir);
        let identity = read_key_file(&identity_path)?;
        let vrf = read_key_file(&vrf_path)?;
        Ok(NodeKeys {
            identity: SigningKey::from_bytes(&identity),
            vrf: VrfSecretKey::from_bytes(*vrf),
        })
    }
}

impl fmt::Debug for NodeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The node id is public and tells keys apart in logs; nothing else is
        // shown (not even public keys, so no key hex ever lands in a log).
        f.debug_struct("NodeKeys")
            .field("node_id", &self.node_id())
            .field("identity", &format_args!("<redacted>"))
            .field("vrf", &format_args!("<redacted>"))
            .finish()
    }
}

/// Fails with [`KeyError::Exists`] for the first of `paths` that exists
/// (as anything, even a dangling symlink).
pub(crate) fn refuse_existing(paths: &[PathBuf]) -> Result<(), KeyError> {
    match paths.iter().find(|path| path.symlink_metadata().is_ok()) {
        Some(path) => Err(KeyError::Exists { path: path.clone() }),
        None => Ok(()),
    }
}
