//! A node's secret keys: the Ed25519 identity key, the VRF key and the
//! X25519 Sphinx keys (one per key epoch), their files on disk, the rotation
//! schedule, and `keygen`, which creates a new node.
//!
//! Key files are private (mode 0600), written atomically and never
//! overwritten; they are read only as regular files owned by the node's
//! user (no symlinks, FIFOs or devices). No error message, log line or
//! `Debug` output contains key material.

mod deletions;
mod error;
mod key_file;
mod keygen;
mod node_keys;
mod public_point;
mod rotation;
mod sphinx_store;
mod vrf;

pub use deletions::{DeletionFailure, MAX_RETRY_SECONDS, PendingDeletions};
pub use error::KeyError;
pub(crate) use key_file::{read_key_file, write_key_file};
pub use keygen::{KeygenError, KeygenParams, keygen};
pub use node_keys::{IDENTITY_KEY_FILE, NodeKeys, VRF_KEY_FILE};
pub(crate) use public_point::is_valid_edwards_public_key;
pub use rotation::{KeyPlan, KeyRotation, KeySchedule};
pub use sphinx_store::{SPHINX_KEY_DIR, SphinxKeyStore};
pub use vrf::{ParseVrfKeyError, VrfPublicKey, VrfSecretKey};
