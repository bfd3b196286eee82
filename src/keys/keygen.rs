//! `betanet keygen`: create a new node's keys and signed descriptor.

use std::net::SocketAddr;
use std::path::Path;

use ed25519_dalek::SigningKey;
use rand::TryRng;
use rand::rngs::{SysError, SysRng};
use zeroize::Zeroizing;

use super::error::KeyError;
use super::node_keys::{NodeKeys, refuse_existing};
use super::rotation::KeySchedule;
use super::sphinx_store::{SPHINX_KEY_DIR, SphinxKeyStore};
use super::vrf::VrfSecretKey;
use crate::link::LinkKeyPair;
use crate::role::NodeRole;
use crate::sphinx::SphinxSecretKey;
use crate::topology::{
    DESCRIPTOR_FILE, DescriptorError, LinkKeyEntry, NetworkParams, NodeDescriptor, SphinxKeyEntry,
};

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

/// Where and what a new node is.
#[derive(Clone, Copy, Debug)]
pub struct KeygenParams {
    /// The node's layer.
    pub role: NodeRole,
    /// Where it receives frames over UDP.
    pub udp_addr: SocketAddr,
    /// Where it receives frames over TCP.
    pub tcp_addr: SocketAddr,
    /// Its HTTP endpoint.
    pub http_addr: SocketAddr,
    /// The network's `sphinx.key_epoch_seconds`.
    pub key_epoch_seconds: u64,
    /// Now, in unix seconds (picks the first key epochs).
    pub now_unix: u64,
    /// The mixing and cover parameters the node will run with, published in
    /// its descriptor (the node re-signs it if its configuration differs).
    pub network: NetworkParams,
}

/// Generates a node's keys into `dir` (`identity.key`, `vrf.key` and the
/// Sphinx keys of the current and next key epochs in `sphinx/`, mode 0600;
/// directories mode 0700) and writes its signed descriptor as
/// `dir/node.json`.
///
/// Never overwrites: if any of those exists, nothing is written. The
/// descriptor is built and verified before any key touches the disk, so bad
/// arguments (such as a 0.0.0.0 address) leave no files behind.
pub fn keygen(dir: &Path, params: KeygenParams) -> Result<NodeDescriptor, KeygenError> {
    let descriptor_path = dir.join(DESCRIPTOR_FILE);
    let mut all_paths = NodeKeys::key_paths(dir).to_vec();
    all_paths.push(descriptor_path.clone());
    all_paths.push(dir.join(SPHINX_KEY_DIR));
    refuse_existing(&all_paths)?;

    let keys = generate_from_os()?;
    let first = KeySchedule::new(params.key_epoch_seconds, 0).epoch_at(params.now_unix);
    let sphinx = [
        (first, SphinxSecretKey::from_bytes(*draw()?)),
        (first + 1, SphinxSecretKey::from_bytes(*draw()?)),
    ];
    let sphinx_keys = sphinx
        .iter()
        .map(|(epoch, key)| SphinxKeyEntry {
            epoch: *epoch,
            public_key: key.public_key(),
        })
        .collect();
    let mut descriptor = NodeDescriptor::new_signed(
        &keys,
        params.role,
        params.udp_addr,
        params.tcp_addr,
        params.http_addr,
        sphinx_keys,
        params.key_epoch_seconds,
    )?;
    // Each epoch's link key comes from its Sphinx secret (see `link::keys`).
    descriptor.link_keys = sphinx
        .iter()
        .map(|(epoch, key)| LinkKeyEntry {
            epoch: *epoch,
            public_key: LinkKeyPair::derive(&key.to_bytes()).public().clone(),
        })
        .collect();
    let descriptor = descriptor.with_network(params.network, &keys)?;

    keys.write_new(dir)?;
    let written = SphinxKeyStore::open(dir)
        .and_then(|store| {
            sphinx
                .iter()
                .try_for_each(|(epoch, key)| store.insert(*epoch, key))
        })
        .map_err(KeygenError::from)
        .and_then(|()| descriptor.save(&descriptor_path).map_err(Into::into));
    if let Err(error) = written {
        // Keys without a descriptor would block a retry ("exists") for no
        // benefit: they were never published, so remove them.
        for path in NodeKeys::key_paths(dir) {
            let _ = std::fs::remove_file(path);
        }
        let _ = std::fs::remove_dir_all(dir.join(SPHINX_KEY_DIR));
        return Err(error);
    }
    Ok(descriptor)
}

/// 32 fresh bytes straight from the operating system's generator:
/// long-lived keys should not depend on a user-space generator's state, and
/// an RNG failure is reported, not a panic.
fn draw() -> Result<Zeroizing<[u8; 32]>, KeygenError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    SysRng
        .try_fill_bytes(&mut seed[..])
        .map_err(KeygenError::Random)?;
    Ok(seed)
}

fn generate_from_os() -> Result<NodeKeys, KeygenError> {
    Ok(NodeKeys {
        identity: SigningKey::from_bytes(&*draw()?),
        vrf: VrfSecretKey::from_bytes(*draw()?),
    })
}
