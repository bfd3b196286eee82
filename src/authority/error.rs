//! Why an authority document, vote or set was refused. Messages name the
//! problem and what to do; they never echo key material or peer bytes.

use crate::sphinx::NodeId;

/// Why a document, vote, reveal or authority set was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// The authority set names no authority.
    #[error("no directory authorities configured: list at least one under [authorities]")]
    NoAuthorities,
    /// More authorities than the bound.
    #[error(
        "{0} directory authorities configured; at most {max} are supported",
        max = super::set::MAX_AUTHORITIES
    )]
    TooManyAuthorities(usize),
    /// An authority key is not a valid Ed25519 public key.
    #[error(
        "authority identity key {0} is not a valid Ed25519 public key; copy it again from the authority's `authority.json`"
    )]
    InvalidAuthorityKey(String),
    /// The same authority key is listed twice.
    #[error("authority identity key {0} is listed twice under [authorities]")]
    DuplicateAuthority(String),
    /// The document's format version is not this build's.
    #[error("unsupported {what} version {version}; upgrade betanet")]
    UnsupportedVersion {
        /// Which document.
        what: &'static str,
        /// Its version.
        version: u32,
    },
    /// The bytes are not a document of this kind.
    #[error("malformed {what}: {error}")]
    Parse {
        /// Which document.
        what: &'static str,
        /// The JSON error (positions only, no input echoed).
        error: serde_json::Error,
    },
    /// The document is larger than its bound.
    #[error("{what} of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Which document.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// Signed by a key that is not in the pinned authority set.
    #[error("{what} signed by an authority not in the configured set")]
    UnknownAuthority {
        /// Which document.
        what: &'static str,
    },
    /// The signature does not verify.
    #[error("{what} has a bad signature")]
    BadSignature {
        /// Which document.
        what: &'static str,
    },
    /// Fewer valid authority signatures than the threshold.
    #[error(
        "consensus has {valid} valid authority signatures, {threshold} needed; \
         fetch it again from another authority or check [authorities] lists the network's keys"
    )]
    BelowThreshold {
        /// Valid signatures from distinct pinned authorities.
        valid: usize,
        /// Signatures needed.
        threshold: usize,
    },
    /// The consensus is for another time.
    #[error(
        "consensus valid from {valid_after} to {valid_until} (unix s) but it is {now}; \
         check this machine's clock or wait for the next consensus"
    )]
    NotValidNow {
        /// Start of validity.
        valid_after: u64,
        /// End of validity.
        valid_until: u64,
        /// Now.
        now: u64,
    },
    /// The consensus is for another epoch than asked for.
    #[error("document is for epoch {got}, expected {expected}")]
    WrongEpoch {
        /// The epoch expected.
        expected: u64,
        /// The document's.
        got: u64,
    },
    /// A vote lists too many nodes.
    #[error("vote lists {0} nodes, more than the supported maximum")]
    TooManyNodes(usize),
    /// A vote or consensus lists one node twice.
    #[error("node {0} is listed twice")]
    DuplicateNode(NodeId),
    /// Encoding failed (not expected for these types).
    #[error("cannot encode document: {0}")]
    Encode(serde_json::Error),
}
