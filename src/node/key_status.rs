//! What `/metrics` needs to know about the Sphinx keys, published by the
//! key manager after every rotation step and read without its lock.
//!
//! The key manager holds its mutex through key creation and journal
//! creation (file writes and fsyncs); a scrape must never wait for that.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::replay::ReplayCache;

/// The held keys as of the last rotation step.
#[derive(Clone, Default)]
pub(crate) struct KeyStatus {
    /// The current key epoch.
    pub current_epoch: u64,
    /// The epochs whose keys are held, oldest first.
    pub held_epochs: Vec<u64>,
    /// Their replay caches, whose sizes are atomics read at scrape time.
    pub caches: Vec<Arc<ReplayCache>>,
    /// Failed attempts to delete retired key files since start.
    pub deletion_failures: u64,
    /// Retired keys whose files are not deleted yet.
    pub deletions_pending: u64,
}

impl KeyStatus {
    /// Tags held now in the replay caches of all held keys.
    pub fn replay_entries(&self) -> usize {
        self.caches.iter().map(|c| c.len()).sum()
    }
}

/// The latest [`KeyStatus`], shared between the key manager (writer) and
/// the HTTP endpoint (readers). Reading never blocks.
pub(crate) type SharedKeyStatus = Arc<ArcSwap<KeyStatus>>;
