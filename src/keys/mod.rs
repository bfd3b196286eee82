//! A node's secret keys: the Ed25519 identity key, the X25519 Sphinx key and
//! the VRF key, their files on disk, and `keygen`, which creates a new node.
//!
//! Key files are private (mode 0600) and never overwritten; no error
//! message, log line or `Debug` output contains key material.

mod error;
mod key_file;
mod keygen;
mod node_keys;
mod public_point;
mod vrf;

pub use error::KeyError;
pub use keygen::{KeygenError, keygen};
pub use node_keys::{IDENTITY_KEY_FILE, NodeKeys, SPHINX_KEY_FILE, VRF_KEY_FILE};
pub(crate) use public_point::is_valid_edwards_public_key;
pub use vrf::{ParseVrfKeyError, VrfPublicKey, VrfSecretKey};
