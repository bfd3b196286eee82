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
    /// Their replay filters (same order), whose sizes are atomics read at
    /// scrape time.
    pub caches: Vec<Arc<ReplayCache>>,
    /// Journal sync failures of keys retired since start.
    pub retired_journal_errors: u64,
    /// Failed attempts to delete retired key files since start.
    pub deletion_failures: u64,
    /// Retired keys whose files are not deleted yet.
    pub deletions_pending: u64,
}

impl KeyStatus {
    /// Tags held now in the replay caches of all held keys.
    pub(crate) fn replay_entries(&self) -> usize {
        self.caches.iter().map(|c| c.len()).sum()
    }

    /// The fullest held key's filter: its epoch and fill ratio (0 when no
    /// key is held).
    pub(crate) fn fullest_replay_filter(&self) -> (u64, f64) {
        self.held_epochs
            .iter()
            .zip(&self.caches)
            .map(|(&epoch, cache)| (epoch, cache.fill_ratio()))
            .fold((self.current_epoch, 0.0), |best, this| {
                if this.1 > best.1 { this } else { best }
            })
    }

    /// Memory the held keys' filters take now, in bytes.
    pub(crate) fn replay_capacity_bytes(&self) -> u64 {
        self.caches.iter().map(|c| c.capacity_bytes() as u64).sum()
    }

    /// Failed replay journal syncs since start (retired keys included).
    pub(crate) fn replay_journal_errors(&self) -> u64 {
        self.retired_journal_errors + self.caches.iter().map(|c| c.journal_errors()).sum::<u64>()
    }

    /// The epoch of a held key whose last journal sync failed, if any.
    pub(crate) fn failing_journal(&self) -> Option<u64> {
        self.held_epochs
            .iter()
            .zip(&self.caches)
            .find(|(_, cache)| cache.journal_failing())
            .map(|(&epoch, _)| epoch)
    }
}

/// The latest [`KeyStatus`], shared between the key manager (writer) and
/// the HTTP endpoint (readers). Reading never blocks.
pub(crate) type SharedKeyStatus = Arc<ArcSwap<KeyStatus>>;
