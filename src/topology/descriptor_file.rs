//! Reading and writing `node.json`.

use std::path::Path;

use super::atomic_file::write_atomically;
use super::descriptor::NodeDescriptor;
use super::descriptor_error::DescriptorError;

/// The descriptor's file name in a node directory.
pub const DESCRIPTOR_FILE: &str = "node.json";

impl NodeDescriptor {
    /// Parses a descriptor. Does not verify it: call
    /// [`verify`](Self::verify), or use [`load`](Self::load).
    pub fn from_json(text: &[u8]) -> Result<Self, DescriptorError> {
        serde_json::from_slice(text).map_err(DescriptorError::Json)
    }

    /// The descriptor as pretty-printed JSON with a final newline (for
    /// people; the signature covers the canonical form, not this text).
    pub fn to_json(&self) -> Result<Vec<u8>, DescriptorError> {
        let mut text = serde_json::to_vec_pretty(self).map_err(DescriptorError::Encode)?;
        text.push(b'\n');
        Ok(text)
    }

    /// Reads, parses and verifies the descriptor in `path`.
    pub fn load(path: &Path) -> Result<Self, DescriptorError> {
        let text = std::fs::read(path).map_err(|error| DescriptorError::Read {
            path: path.to_owned(),
            error,
        })?;
        let in_file = |error| DescriptorError::InFile {
            path: path.to_owned(),
            error: Box::new(error),
        };
        let descriptor = Self::from_json(&text).map_err(in_file)?;
        descriptor.verify().map_err(in_file)?;
        Ok(descriptor)
    }

    /// Writes the descriptor to `path`, atomically replacing any old one.
    pub fn save(&self, path: &Path) -> Result<(), DescriptorError> {
        write_atomically(path, &self.to_json()?).map_err(|error| DescriptorError::Write {
            path: path.to_owned(),
            error,
        })
    }
}
