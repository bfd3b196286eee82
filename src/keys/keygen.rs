//! `betanet keygen`: create a new node's keys and signed descriptor.

use std::net::SocketAddr;
use std::path::Path;

use ed25519_dalek::SigningKey;
use rand::TryRng;
use rand::rngs::{SysError, SysRng};
use zeroize::Zeroizing;

use super::error::KeyError;
use super::node_keys::{NodeKeys, refuse_existing};
use super::vrf::VrfSecretKey;
use crate::role::NodeRole;
use crate::sphinx::SphinxSecretKey;
use crate::topology::{DESCRIPTOR_FILE, DescriptorError, NodeDescriptor, SphinxKeyEntry};

/// Why keygen failed.
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    /// Writing the key files failed.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The descriptor could not be built or written.
    #[error(transparent)]
    Descriptor(#[from] DescriptorError),
    /// The operating system's random number generator failed.
    #[error("cannot get randomness from the operating system for new keys: {0}")]
    Random(SysError),
}

/// Generates a node's keys into `dir` (`identity.key`, `sphinx.key`,
/// `vrf.key`, mode 0600; `dir` mode 0700 if created) and writes its signed
/// descriptor as `dir/node.json`, with one Sphinx key for epoch 0.
///
/// Never overwrites: if any of the four files exists, nothing is written.
/// The descriptor is built and verified before any key touches the disk, so
/// bad arguments (such as a 0.0.0.0 address) leave no files behind.
pub fn keygen(
    dir: &Path,
    role: NodeRole,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    http_addr: SocketAddr,
) -> Result<NodeDescriptor, KeygenError> {
    let descriptor_path = dir.join(DESCRIPTOR_FILE);
    let mut all_paths = NodeKeys::key_paths(dir).to_vec();
    all_paths.push(descriptor_path.clone());
    refuse_existing(&all_paths)?;

    let keys = generate_from_os()?;
    let sphinx_keys = vec![SphinxKeyEntry {
        epoch: 0,
        public_key: keys.sphinx_public_key(),
    }];
    let descriptor =
        NodeDescriptor::new_signed(&keys, role, udp_addr, tcp_addr, http_addr, sphinx_keys)?;

    keys.write_new(dir)?;
    if let Err(error) = descriptor.save(&descriptor_path) {
        // Keys without a descriptor would block a retry ("exists") for no
        // benefit: they were never published, so remove them.
        for path in NodeKeys::key_paths(dir) {
            let _ = std::fs::remove_file(path);
        }
        return Err(error.into());
    }
    Ok(descriptor)
}

/// Fresh keys straight from the operating system's generator: long-lived
/// keys should not depend on a user-space generator's state, and an RNG
/// failure is reported, not a panic.
fn generate_from_os() -> Result<NodeKeys, KeygenError> {
    let draw = || -> Result<Zeroizing<[u8; 32]>, KeygenError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        SysRng
            .try_fill_bytes(&mut seed[..])
            .map_err(KeygenError::Random)?;
        Ok(seed)
    };
    Ok(NodeKeys {
        identity: SigningKey::from_bytes(&*draw()?),
        sphinx: SphinxSecretKey::from_bytes(*draw()?),
        vrf: VrfSecretKey::from_bytes(*draw()?),
    })
}
