//! A node's secret keys: the Ed25519 identity key, the VRF key and the
//! X25519 Sphinx keys (one per key epoch), their files on disk, the rotation
//! schedule, and `keygen`, which creates a new node.
//!
//! Key files are private (mode 0600) and never overwritten; no error
//! message, log line or `Debug` output contains key material.

mod error;
mod key_file;
mod keygen;
mod node_keys;
mod public_point;
mod rotation;
mod sphinx_store;
mod vrf;

pub use error::KeyError;
pub use keygen::{KeygenError, KeygenParams, keygen};
pub use node_keys::{IDENTITY_KEY_FILE, NodeKeys, VRF_KEY_FILE};
pub(crate) use public_point::is_valid_edwards_public_key;
pub use rotation::{KeyPlan, KeyRotation, KeySchedule};
pub use sphinx_store::{SPHINX_KEY_DIR, SphinxKeyStore};
pub use vrf::{ParseVrfKeyError, VrfPublicKey, VrfSecretKey};
