//! Why a replay cache could not be opened.
//!
//! Every message names the journal file and says what the operator can do,
//! because these errors stop a node from starting: a node that cannot load
//! its replay journal must not run with an empty cache (that would reopen
//! every replay of the current key epoch).

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Opening a [`ReplayCache`](super::ReplayCache) failed.
#[derive(Debug, Error)]
pub enum ReplayError {
    /// The journal directory could not be created.
    #[error(
        "cannot create replay journal directory {dir}: {source}; check the path and its permissions"
    )]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// What the OS said.
        source: io::Error,
    },

    /// Reading, writing or creating the journal failed at the OS level.
    #[error("replay journal {path}: cannot {action} it: {source}; check the disk and permissions")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// What was being done ("read", "create", ...).
        action: &'static str,
        /// What the OS said.
        source: io::Error,
    },

    /// Another process (or another cache in this process) holds the journal.
    #[error(
        "replay journal {path} is locked by another process or cache; \
         stop the other node instance using this key before starting this one"
    )]
    Locked {
        /// The journal file.
        path: PathBuf,
    },

    /// The file is shorter than the journal header.
    #[error(
        "replay journal {path} is only {len} bytes, shorter than its {header_len}-byte header, \
         so it is damaged; restore it from a backup, or if this key's replays no longer matter \
         (the key is retired) delete it"
    )]
    TruncatedHeader {
        /// The journal file.
        path: PathBuf,
        /// Its length in bytes.
        len: u64,
        /// The header length in bytes.
        header_len: usize,
    },

    /// The file does not start with the journal magic.
    #[error(
        "{path} is not a betanet replay journal (found magic {found}); \
         move it out of the journal directory, or delete it if it is not needed"
    )]
    BadMagic {
        /// The journal file.
        path: PathBuf,
        /// The first 8 bytes of the file, in hex.
        found: String,
    },

    /// The file is a replay journal in a format this node does not read,
    /// e.g. version 01, which kept only the first 8 bytes of each tag:
    /// those records cannot be widened to the 16 bytes kept now, and
    /// reading them as 16-byte records would produce garbage.
    #[error(
        "replay journal {path} has format version {found}, but this node reads only version \
         {supported} (which keeps the first 16 bytes of each replay tag; version 01 kept 8 \
         and cannot be converted); starting without its tags would let packets of this key \
         epoch be replayed, so either keep running the node release that wrote it until this \
         Sphinx key is retired, or retire the key now (rotate to a new Sphinx key, whose \
         journal starts empty) and then delete this file"
    )]
    UnsupportedVersion {
        /// The journal file.
        path: PathBuf,
        /// The version in the file's magic (its bytes 6..8), e.g. "01".
        found: String,
        /// The version this node reads and writes, e.g. "02".
        supported: String,
    },

    /// The journal belongs to another Sphinx key.
    #[error(
        "replay journal {path} belongs to key id prefix {found}, not {expected}; \
         the file was renamed or copied from another key: move it back or delete it"
    )]
    WrongKey {
        /// The journal file.
        path: PathBuf,
        /// The first 8 bytes of the expected key id, in hex.
        expected: String,
        /// The first 8 bytes of the key id in the header, in hex.
        found: String,
    },
}
