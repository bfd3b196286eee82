//! Configuration files of the authority system:
//!
//! - `authority.toml`, the daemon's own ([`AuthorityConfig`]);
//! - `authorities.json`, the network's pinned authority list that nodes
//!   and clients are given ([`AuthoritiesFile`]), written by
//!   `betanet authority keygen` for one authority and concatenated by the
//!   operator for the network.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::AuthorityError;
use super::set::{AuthorityInfo, AuthoritySet};
use super::state::{MIN_EPOCH_SECONDS, Timing};

/// Largest `authorities.json` read.
const MAX_AUTHORITIES_FILE: u64 = 64 << 10;

/// `authority.toml`: one directory authority.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorityConfig {
    /// Directory holding `identity.key` (made by `betanet authority keygen`).
    pub key_dir: PathBuf,
    /// Address the HTTP endpoint binds (uploads, votes, `/consensus`).
    pub listen_addr: SocketAddr,
    /// The network's authorities (this one included), as in
    /// `authorities.json`.
    pub authorities: PathBuf,
    /// Consensus epoch length, seconds (at least 8; Katzenpost uses 1200).
    #[serde(default = "default_epoch_seconds")]
    pub epoch_seconds: u64,
    /// Seconds between probes of every uploaded node; default a quarter
    /// epoch.
    #[serde(default)]
    pub probe_interval_seconds: Option<u64>,
    /// Most nodes per layer in the consensus; 0 = all.
    #[serde(default)]
    pub max_nodes_per_layer: u32,
    /// A mixnode configuration file whose mixing, VRF, cover and Sphinx key
    /// settings this authority proposes; default: betanet's defaults.
    #[serde(default)]
    pub network_config: Option<PathBuf>,
}

fn default_epoch_seconds() -> u64 {
    1200
}

impl AuthorityConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read authority config {}: {e}", path.display()))?;
        let config: AuthorityConfig =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if config.epoch_seconds < MIN_EPOCH_SECONDS {
            return Err(format!(
                "{}: epoch_seconds = {} is below the minimum of {MIN_EPOCH_SECONDS}",
                path.display(),
                config.epoch_seconds
            ));
        }
        Ok(config)
    }

    /// The schedule this configuration asks for.
    pub fn timing(&self) -> Timing {
        let mut t = Timing::for_epoch(self.epoch_seconds);
        if let Some(p) = self.probe_interval_seconds {
            t.probe_interval_seconds = p.max(1);
        }
        t
    }
}

/// `authorities.json`: the authorities of a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthoritiesFile {
    /// Each authority's identity key and address.
    pub authorities: Vec<AuthorityInfo>,
}

impl AuthoritiesFile {
    /// Reads `path` (at most 64 KiB) and checks it is a valid set.
    pub fn load(path: &Path) -> Result<AuthoritySet, String> {
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("cannot read authorities file {}: {e}", path.display()))?;
        if meta.len() > MAX_AUTHORITIES_FILE {
            return Err(format!(
                "{} is {} bytes, more than an authorities file can be ({MAX_AUTHORITIES_FILE})",
                path.display(),
                meta.len()
            ));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read authorities file {}: {e}", path.display()))?;
        let file: AuthoritiesFile = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not an authorities file: {e}", path.display()))?;
        AuthoritySet::new(file.authorities)
            .map_err(|e: AuthorityError| format!("{}: {e}", path.display()))
    }

    /// Writes the set as `authorities.json` (pretty JSON).
    pub fn write(path: &Path, set: &AuthoritySet) -> std::io::Result<()> {
        let file = AuthoritiesFile {
            authorities: set.iter().copied().collect(),
        };
        let mut text = serde_json::to_string_pretty(&file).map_err(std::io::Error::other)?;
        text.push('\n');
        std::fs::write(path, text)
    }
}
