//! The node's Sphinx secrets, one file per key epoch:
//! `KEY_DIR/sphinx/epoch-<N>.key` (mode 0600, directory 0700).
//!
//! Keys are random per epoch, never derived from one another, so deleting a
//! retired key file really forgets it (forward secrecy). Files are written
//! atomically (a temporary file, synced, then named) and never rewritten;
//! a temporary file a crash left behind is deleted when the keys are
//! loaded.

use std::collections::BTreeMap;
use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rand_core::CryptoRng;

use super::error::KeyError;
use super::key_file::{is_temp_name, read_key_file, sync_dir, write_key_file};
use crate::sphinx::SphinxSecretKey;

/// Name of the Sphinx key directory inside a key directory.
pub const SPHINX_KEY_DIR: &str = "sphinx";

const PREFIX: &str = "epoch-";
const SUFFIX: &str = ".key";
/// Marker a node leaves once it has run with these keys: from then on a
/// key loaded from this directory may have accepted packets, so its replay
/// journal must exist (keys fresh from `betanet keygen` have none yet).
pub(crate) const IN_USE_MARKER: &str = "node-started";

/// The Sphinx key files of one node.
#[derive(Clone, Debug)]
pub struct SphinxKeyStore {
    dir: PathBuf,
}

impl SphinxKeyStore {
    /// The store inside `key_dir` (created, mode 0700, if missing).
    pub fn open(key_dir: &Path) -> Result<Self, KeyError> {
        let dir = key_dir.join(SPHINX_KEY_DIR);
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|error| KeyError::CreateDir {
                path: dir.clone(),
                error,
            })?;
        Ok(SphinxKeyStore { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `epoch`'s key.
    pub fn path_of(&self, epoch: u64) -> PathBuf {
        self.dir.join(format!("{PREFIX}{epoch}{SUFFIX}"))
    }

    /// Every key held, by epoch. A file that is not a key (or is readable
    /// by others) is an error naming it: a node must not run with keys it
    /// cannot account for.
    pub fn load_all(&self) -> Result<BTreeMap<u64, SphinxSecretKey>, KeyError> {
        let read_dir = |error| KeyError::Read {
            path: self.dir.clone(),
            error,
        };
        let mut keys = BTreeMap::new();
        for entry in std::fs::read_dir(&self.dir).map_err(read_dir)? {
            let path = entry.map_err(read_dir)?.path();
            let name = path.file_name().and_then(|n| n.to_str());
            if name == Some(IN_USE_MARKER) && !path.is_symlink() && path.is_file() {
                continue;
            }
            if name.is_some_and(is_temp_name) && !path.is_symlink() && path.is_file() {
                // A key write a crash interrupted: never published, and it
                // may hold a whole key, so it goes.
                remove_file(&path)?;
                continue;
            }
            let epoch = name
                .and_then(parse_name)
                .ok_or_else(|| KeyError::UnexpectedFile { path: path.clone() })?;
            let secret = read_key_file(&path)?;
            keys.insert(epoch, SphinxSecretKey::from_bytes(*secret));
        }
        Ok(keys)
    }

    /// Generates and stores the key of `epoch` (which must not exist yet).
    pub fn create<R: CryptoRng + ?Sized>(
        &self,
        epoch: u64,
        rng: &mut R,
    ) -> Result<SphinxSecretKey, KeyError> {
        let key = SphinxSecretKey::generate(rng);
        self.insert(epoch, &key)?;
        Ok(key)
    }

    /// Stores `key` as the key of `epoch` (which must not exist yet).
    pub fn insert(&self, epoch: u64, key: &SphinxSecretKey) -> Result<(), KeyError> {
        write_key_file(
            &self.path_of(epoch),
            &zeroize::Zeroizing::new(key.to_bytes()),
        )
    }

    /// Whether a node has run with these keys (the `node-started` marker file).
    pub fn in_use(&self) -> bool {
        self.dir.join(IN_USE_MARKER).is_file()
    }

    /// Leaves the `node-started` marker file (durably), before any key unwraps a
    /// packet.
    pub fn mark_in_use(&self) -> Result<(), KeyError> {
        let path = self.dir.join(IN_USE_MARKER);
        if self.in_use() {
            return Ok(());
        }
        let write = |error| KeyError::Write {
            path: path.clone(),
            error,
        };
        std::fs::write(&path, b"a node has run with these Sphinx keys\n").map_err(write)?;
        sync_dir(&self.dir).map_err(write)?;
        Ok(())
    }

    /// Deletes the key of `epoch`; a key already gone is not an error.
    pub fn delete(&self, epoch: u64) -> Result<(), KeyError> {
        remove_file(&self.path_of(epoch))?;
        if let Err(error) = sync_dir(&self.dir) {
            // The name is gone now; only its durability across a crash is
            // in doubt, and a restart would retire the key again.
            tracing::warn!(dir = %self.dir.display(), %error, "cannot sync the key directory after a deletion");
        }
        Ok(())
    }
}

/// Deletes `path`; already gone is fine.
fn remove_file(path: &Path) -> Result<(), KeyError> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(KeyError::Delete {
            path: path.to_owned(),
            error,
        }),
        _ => Ok(()),
    }
}

fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    // Canonical decimal only, so one epoch has exactly one file name.
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_only_canonical_ones_parse() {
        assert_eq!(parse_name("epoch-0.key"), Some(0));
        assert_eq!(parse_name("epoch-20411.key"), Some(20411));
        for bad in [
            "epoch-.key",
            "epoch-01.key",
            "epoch-+1.key",
            "epoch-1.key~",
            "sphinx.key",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn create_load_delete() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SphinxKeyStore::open(tmp.path()).unwrap();
        let mut rng = rand::rng();
        let a = store.create(7, &mut rng).unwrap();
        let b = store.create(8, &mut rng).unwrap();
        assert!(matches!(
            store.create(7, &mut rng),
            Err(KeyError::Exists { .. })
        ));
        let loaded = store.load_all().unwrap();
        assert_eq!(loaded.keys().copied().collect::<Vec<_>>(), vec![7, 8]);
        assert_eq!(loaded[&7].public_key(), a.public_key());
        assert_eq!(loaded[&8].public_key(), b.public_key());
        store.delete(7).unwrap();
        store.delete(7).unwrap();
        assert!(!store.path_of(7).exists());
        assert_eq!(store.load_all().unwrap().len(), 1);
    }

    #[test]
    fn a_temporary_file_left_by_a_crash_is_deleted_on_load() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SphinxKeyStore::open(tmp.path()).unwrap();
        store.create(4, &mut rand::rng()).unwrap();
        let stale = store.dir().join(".epoch-5.key.00000000deadbeef.tmp");
        std::fs::write(&stale, "half a key").unwrap();
        let loaded = store.load_all().unwrap();
        assert_eq!(loaded.keys().copied().collect::<Vec<_>>(), vec![4]);
        assert!(!stale.exists());
    }

    #[test]
    fn a_stray_file_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SphinxKeyStore::open(tmp.path()).unwrap();
        std::fs::write(store.dir().join("notes.txt"), "x").unwrap();
        let error = store.load_all().unwrap_err().to_string();
        assert!(error.contains("notes.txt"), "{error}");
    }
}
