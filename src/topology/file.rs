//! `topology.json`: `{"version": 1, "nodes": [descriptor, ...]}`, nodes
//! sorted by layer, then id.
//!
//! Loading verifies every descriptor again: the file may have been copied
//! around or edited since it was built, and the daemon trusts what it loads.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::atomic_file::write_atomically;
use super::descriptor::NodeDescriptor;
use super::directory::Topology;
use super::error::TopologyError;

/// The topology format version this build reads and writes.
pub const TOPOLOGY_VERSION: u32 = 1;

/// The file as parsed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologyFile {
    version: u32,
    nodes: Vec<NodeDescriptor>,
}

/// The file as written (borrowing, so saving copies no descriptors).
#[derive(Serialize)]
struct TopologyFileRef<'a> {
    version: u32,
    nodes: &'a [NodeDescriptor],
}

impl Topology {
    /// Parses and verifies a topology.
    pub fn from_json(text: &[u8]) -> Result<Self, TopologyError> {
        let file: TopologyFile = serde_json::from_slice(text).map_err(TopologyError::Json)?;
        if file.version != TOPOLOGY_VERSION {
            return Err(TopologyError::UnsupportedVersion(file.version));
        }
        Topology::build(file.nodes)
    }

    /// The topology as pretty-printed JSON with a final newline.
    pub fn to_json(&self) -> Result<Vec<u8>, TopologyError> {
        let file = TopologyFileRef {
            version: TOPOLOGY_VERSION,
            nodes: self.nodes(),
        };
        let mut text = serde_json::to_vec_pretty(&file).map_err(TopologyError::Encode)?;
        text.push(b'\n');
        Ok(text)
    }

    /// Reads, parses and verifies the topology in `path`.
    pub fn load(path: &Path) -> Result<Self, TopologyError> {
        let text = std::fs::read(path).map_err(|error| TopologyError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::from_json(&text).map_err(|error| TopologyError::InFile {
            path: path.to_owned(),
            error: Box::new(error),
        })
    }

    /// Writes the topology to `path`, atomically replacing any old one.
    pub fn save(&self, path: &Path) -> Result<(), TopologyError> {
        write_atomically(path, &self.to_json()?).map_err(|error| TopologyError::Write {
            path: path.to_owned(),
            error,
        })
    }
}

/// `betanet topology build --out OUT NODE.json...`: loads and verifies each
/// node descriptor, builds the topology and saves it to `out`.
///
/// An error names the input file (or node) at fault; `out` is written only
/// if everything checks out.
pub fn build_topology_file(out: &Path, inputs: &[PathBuf]) -> Result<Topology, TopologyError> {
    let descriptors = inputs
        .iter()
        .map(|input| NodeDescriptor::load(input).map_err(TopologyError::Descriptor))
        .collect::<Result<Vec<_>, _>>()?;
    let topology = Topology::build(descriptors)?;
    topology.save(out)?;
    Ok(topology)
}
