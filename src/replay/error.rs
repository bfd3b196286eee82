//! Why a replay cache could not be opened.
//!
//! Every message names the journal file and says what the operator can do,
//! because these errors stop a node from starting: a node that cannot load
//! its replay journal must not run with an empty filter (that would reopen
//! every replay of that key). The two ways out are always the same: restore
//! the journal, or retire the key (delete its `sphinx-<epoch>.key` file and
//! the journal; the node makes a new key, whose filter starts empty, and
//! packets built for the old key are refused).

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
    /// e.g. version 01 or 02 (unchecksummed records of the old exact cache,
    /// which this release does not convert).
    #[error(
        "replay journal {path} has format version {found}, but this node reads only version \
         {supported} (checksummed blocks for the replay filter; versions 01 and 02 are not \
         converted); starting without its tags would let packets of this key be replayed, so \
         either keep running the node release that wrote it until this Sphinx key is retired \
         (at most sphinx.key_epoch_seconds + 2 x sphinx.key_grace_seconds), or retire the key \
         now: stop the node, delete this file and the key's sphinx-<epoch>.key file, and start \
         it again (a new key is made; packets built for the old one are refused)"
    )]
    UnsupportedVersion {
        /// The journal file.
        path: PathBuf,
        /// The version in the file's magic (its bytes 6..8), e.g. "01".
        found: String,
        /// The version this node reads and writes, e.g. "02".
        supported: String,
    },

    /// The journal of a key that may have accepted packets is missing.
    #[error(
        "replay journal {path} is missing, but its Sphinx key exists and may have accepted \
         packets; starting with an empty replay filter would let them be replayed. Restore the \
         journal (e.g. the node's data_dir from a backup), or retire the key: delete its \
         sphinx-<epoch>.key file (a new key is made; packets built for the old one are refused)"
    )]
    Missing {
        /// The journal file that should exist.
        path: PathBuf,
    },

    /// The journal is damaged somewhere other than a torn last block.
    #[error(
        "replay journal {path} is damaged at byte {offset}: {reason}; its tags cannot be \
         trusted, and loading around the damage would forget accepted tags (reopening their \
         replays). Restore the journal from a backup, or retire the key: stop the node, delete \
         this file and the key's sphinx-<epoch>.key file, and start it again"
    )]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// Where the damaged block starts.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },

    /// The data directory or a journal is readable by others and could not
    /// be restricted.
    #[error(
        "{path} has mode {mode:o} and cannot be set to {wanted:o}: {source}; replay journals \
         show which packets this node handled, so fix it (chown it to the node's user, \
         chmod {wanted:o})"
    )]
    Permissions {
        /// The directory or file.
        path: PathBuf,
        /// Its mode now.
        mode: u32,
        /// The mode it must have.
        wanted: u32,
        /// What the OS said.
        source: io::Error,
    },

    /// The journal belongs to another Sphinx key.
    #[error(
        "replay journal {path} belongs to key id {found}, not {expected}; \
         the file was renamed or copied from another key: move it back or delete it"
    )]
    WrongKey {
        /// The journal file.
        path: PathBuf,
        /// The expected key id, in hex.
        expected: String,
        /// The key id in the header, in hex.
        found: String,
    },
}
