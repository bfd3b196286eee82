//! What can go wrong creating or loading a node's key files.
//!
//! Messages name the file and say what to do. They never contain key
//! material: not even a fragment of a malformed key file is echoed, since a
//! "malformed" file may still be a real key with a stray byte.

use std::io;
use std::path::PathBuf;

/// Why key files could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key directory could not be created.
    #[error("cannot create key directory {}: {error}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The operating system's reason.
        error: io::Error,
    },

    /// A file that keygen would write is already there.
    #[error(
        "{} already exists; keygen never overwrites keys or descriptors \
         (a node's keys are its identity): choose an empty directory, or move \
         the old files away if you really mean to replace this node",
        path.display()
    )]
    Exists {
        /// The file that exists.
        path: PathBuf,
    },

    /// A key file could not be written.
    #[error("cannot write key file {}: {error}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        error: io::Error,
    },

    /// A key file could not be opened or read.
    #[error(
        "cannot read key file {}: {error} (create keys with `betanet keygen --out DIR`)",
        path.display()
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        error: io::Error,
    },

    /// A key file is not a regular file.
    #[error("key file {} is not a regular file; it must be the file keygen wrote", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },

    /// A key file path is a symbolic link.
    #[error(
        "key file {} is a symbolic link; key files are read only as regular \
         files, never through a link: put the key file itself there",
        path.display()
    )]
    Symlink {
        /// The path.
        path: PathBuf,
    },

    /// A key file belongs to another user than the one the node runs as.
    #[error(
        "key file {} is owned by uid {owner}, but the node runs as uid {expected}; \
         a secret key must belong to the node's user: run `chown {expected} {}`",
        path.display(),
        path.display()
    )]
    WrongOwner {
        /// The file.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// The node's effective uid.
        expected: u32,
    },

    /// The file at a key path changed between its check and its opening.
    #[error(
        "key file {} was replaced while it was being opened; refusing to read it",
        path.display()
    )]
    Replaced {
        /// The path.
        path: PathBuf,
    },

    /// A key file can be read or written by users other than its owner, or
    /// has setuid, setgid or sticky bits.
    #[error(
        "key file {} is accessible by group or others or has special bits \
         (mode {mode:04o}); a secret key must be private to the node: run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// A key file does not hold a key.
    #[error(
        "key file {} is not valid: {reason}; it must hold 64 hex digits and a \
         newline, as keygen writes it. Restore it from a backup (or, to start a \
         new node, run keygen into an empty directory)",
        path.display()
    )]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, without any of the file's content.
        reason: &'static str,
    },

    /// A retired key file could not be deleted (it must not outlive its
    /// epoch: forward secrecy depends on it).
    #[error(
        "cannot delete retired key file {}: {error}; delete it by hand \
         (the node no longer uses it)",
        path.display()
    )]
    Delete {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        error: io::Error,
    },

    /// The Sphinx key directory holds a file that is not ours.
    #[error(
        "{} is not a Sphinx key file (expected epoch-<N>.key); move it out of \
         the key directory",
        path.display()
    )]
    UnexpectedFile {
        /// The file.
        path: PathBuf,
    },
}
